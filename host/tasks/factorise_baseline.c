/* The factorisation's baselines and the pieces around training: the SVD
 * baseline on the device (fact_svd_baseline) and, for a row-sharded matrix,
 * by TSQR on the host (fact_svd_baseline_rows), the step and initial values
 * every group starts from, placing A on the device, measuring it before
 * training, and gathering row-sharded results on rank 0. The epoch, training
 * and the many-model group function are in factorise.c; the two share
 * factorise_internal.h. */
#include "factorise_internal.h"
#include "dlab/comm.h"
#include "dlab/tsqr.h"
#include "dlab/factorise_scale.h"
#include "dlab/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The SVD baseline on the device's matrix, which holds 2^e A: singular
 * values, the rank-k error from the discarded ones, and the same error
 * recomputed from U_k S_k V_k^T as a cross-check, all scaled back to the
 * data's units in double. */
dl_status fact_svd_baseline(dl_backend *be, fact_ctx *c, int e, dl_factorise_result *res)
{
    int m = c->m, n = c->n, k = c->k, p = m < n ? m : n;
    float *s_d = NULL, *u_d = NULL, *vt_d = NULL, *us_d = NULL, *rec = NULL;
    float *us = NULL, *s = NULL, *vt = NULL;
    dl_status st = DL_OK;
    res->n_sv = p;
    res->singular_values = malloc(sizeof(double) * (size_t)p);
    res->svd_u = malloc(sizeof(float) * (size_t)m * p);
    res->svd_v = malloc(sizeof(float) * (size_t)n * k);
    us = malloc(sizeof(float) * (size_t)m * k);
    s = malloc(sizeof(float) * (size_t)p);
    vt = malloc(sizeof(float) * (size_t)k * n);
    if (!res->singular_values || !res->svd_u || !res->svd_v || !us || !s || !vt) {
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for the SVD of a %dx%d matrix", m, n);
        goto done;
    }
    if ((st = dl_alloc(be, sizeof(float) * (size_t)p, (void **)&s_d)) ||
        (st = dl_alloc(be, sizeof(float) * (size_t)m * p, (void **)&u_d)) ||
        (st = dl_alloc(be, sizeof(float) * (size_t)p * n, (void **)&vt_d)) ||
        (st = dl_alloc(be, sizeof(float) * (size_t)m * k, (void **)&us_d)) ||
        (st = dl_alloc(be, sizeof(float) * (size_t)m * n, (void **)&rec)))
        goto done;
    double t;
    if ((st = dl_timer_start(be)) || (st = dl_svd(be, m, n, c->a, s_d, u_d, vt_d)) ||
        (st = dl_timer_stop(be, &t)))
        goto done;
    res->svd_seconds = t;
    if ((st = dl_download(be, s, s_d, sizeof(float) * (size_t)p)) ||
        (st = dl_download(be, res->svd_u, u_d, sizeof(float) * (size_t)m * p)) ||
        (st = dl_download(be, vt, vt_d, sizeof(float) * (size_t)k * n)))
        goto done;
    for (int i = 0; i < n; i++) /* V_k = the first k rows of V^T, transposed */
        for (int j = 0; j < k; j++) res->svd_v[(size_t)i * k + j] = vt[(size_t)j * n + i];
    double tail = 0.0;
    for (int i = k; i < p; i++) tail += (double)s[i] * s[i];
    res->sse_svd = ldexp(tail, -2 * e);
    for (int i = 0; i < p; i++) res->singular_values[i] = ldexp(s[i], -e);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++) us[(size_t)i * k + j] = res->svd_u[(size_t)i * p + j] * s[j];
    float sse_rec;
    if ((st = dl_upload(be, us_d, us, sizeof(float) * (size_t)m * k)) ||
        (st = dl_matmul(be, false, false, m, n, k, 1.0f, us_d, vt_d, 0.0f, rec)) ||
        (st = dl_residual_sse(be, rec, c->a, (size_t)m * n, 1, 0, c->metrics)) ||
        (st = dl_download(be, &sse_rec, c->metrics, sizeof sse_rec)))
        goto done;
    res->sse_svd_recon = ldexp(sse_rec, -2 * e);
    res->have_svd = true;
done:
    free(us), free(s), free(vt);
    dl_free(be, s_d), dl_free(be, u_d), dl_free(be, vt_d), dl_free(be, us_d), dl_free(be, rec);
    return st;
}

/* The step and the start in training units (A on the device is 2^te A),
 * the same for every group; the careful preset's needs in->sigma1_t. */
dl_status fact_choose_start(const dl_factorise_config *cfg, const fact_input *in, int te, int m,
                            int n, float *lr_t, double *std_t, dl_factorise_result *res)
{
    if (cfg->preset == DL_FACTORISE_LAB) {
        *lr_t = cfg->lr > 0.0f ? cfg->lr : (float)DL_LAB_LR;
        *std_t = 0.0;
        res->lr = *lr_t;
        return DL_OK;
    }
    res->sigma1_est = ldexp(in->sigma1_t, -te);
    /* lr in the data's units is lr_t 2^te: a run on 2^te A with U, V scaled
     * by 2^(te/2) follows the run on A step for step. */
    double lr = cfg->lr > 0.0f ? ldexp(cfg->lr, -te) : dl_careful_lr(in->sigma1_t);
    *lr_t = (float)lr;
    if (!(*lr_t > 0.0f) || !isfinite(*lr_t))
        return DL_FAIL(DL_E_USAGE,
                       "--lr %g is out of float32's range for this data: it trains scaled by "
                       "2^%d, which takes the step to %g",
                       (double)cfg->lr, te, lr);
    *std_t = dl_careful_init_std(in->sigma1_t, m, n, cfg->rank);
    res->lr = ldexp(*lr_t, te);
    res->init_std = *std_t * sqrt(ldexp(1.0, -te));
    return DL_OK;
}

/* The initial U, V of the group's models: model first + b draws from the
 * same stream position whatever the grouping. */
dl_status fact_draw_start(dl_backend *be, fact_ctx *c, const dl_factorise_config *cfg, int first,
                          double std_t)
{
    const size_t P = c->per_model;
    for (int b = 0; b < c->seeds; b++) {
        float *p = c->params + (size_t)b * P;
        uint64_t at = dl_init_offset(cfg->seed + (uint64_t)(first + b), P);
        if (cfg->preset == DL_FACTORISE_LAB)
            DL_TRY(dl_rand_uniform(be, p, P, DL_INIT_KEY, at));
        else
            DL_TRY(dl_rand_normal(be, p, P, 0.0f, (float)std_t, DL_INIT_KEY, at));
    }
    return DL_OK;
}

static dl_status draw(dl_backend *be, const dl_factorise_config *cfg, float *p, size_t n,
                      uint64_t at, double std_t)
{
    if (cfg->preset == DL_FACTORISE_LAB) return dl_rand_uniform(be, p, n, DL_INIT_KEY, at);
    return dl_rand_normal(be, p, n, 0.0f, (float)std_t, DL_INIT_KEY, at);
}

/* Row-sharded, one model: the whole [U | V] that one process would draw,
 * of which this rank keeps its rows of U and V. */
dl_status fact_draw_start_rows(dl_backend *be, fact_ctx *c, const fact_job *j, double std_t)
{
    const size_t k = (size_t)c->k, whole = ((size_t)j->m + c->n) * k;
    float *all = NULL;
    dl_status st = dl_alloc(be, sizeof(float) * whole, (void **)&all);
    if (!st) st = draw(be, j->cfg, all, whole, dl_init_offset(j->cfg->seed, whole), std_t);
    if (!st)
        st = dl_copy(be, c->params, all + (size_t)j->first_row * k,
                     sizeof(float) * (size_t)c->m * k);
    if (!st)
        st = dl_copy(be, c->params + (size_t)c->m * k, all + (size_t)j->m * k,
                     sizeof(float) * (size_t)c->n * k);
    dl_free(be, all);
    return st;
}

/* A sink of fact_synthetic_rows: rows uploaded into the device matrix. */
typedef struct {
    dl_backend *be;
    float *a;
    int n;
} device_rows;

static dl_status upload_rows(void *ud, int row, int rows, const float *v)
{
    const device_rows *d = ud;
    return dl_upload(d->be, d->a + (size_t)row * d->n, v, sizeof(float) * (size_t)rows * d->n);
}

/* Puts 2^e A on the device: the caller's matrix (as given for e = 0, else
 * its scaled copy), or the synthetic L R^T + noise with L, R entries ~
 * N(0, r^-1/2) so that the entries of L R^T are ~N(0, 1); it is never
 * rescaled (e = 0). Every group draws the same A from the same seeds. The
 * synthetic matrix is made by rows on the host (factorise_synth.c: the bits
 * do not depend on how the rows are split), except by one process on a GPU,
 * where cuBLAS makes it on the device and nothing crosses the bus (its
 * product's rounding may differ from the host's in the last bit). */
dl_status fact_place_matrix(dl_backend *be, fact_ctx *c, const fact_input *in, int e)
{
    const int m = c->m, n = c->n;
    const size_t mn = (size_t)m * n;
    if (in->raw) return dl_upload(be, c->a, e ? in->scaled : in->raw, sizeof(float) * mn);
    if (be->host_memory) {
        fact_synth s = {
            .m = m, .n = n, .true_rank = in->true_rank, .noise = in->noise, .seed = in->data_seed};
        device_rows sink = {be, c->a, n};
        return fact_synthetic_rows(be, &s, 0, m, upload_rows, &sink);
    }
    float *lr_fac = NULL;
    size_t lr_n = ((size_t)m + n) * in->true_rank;
    dl_status st = dl_alloc(be, sizeof(float) * lr_n, (void **)&lr_fac);
    if (!st)
        st = dl_rand_normal(be, lr_fac, lr_n, 0.0f, 1.0f / sqrtf(sqrtf((float)in->true_rank)),
                            in->data_seed, 0);
    if (!st) st = dl_rand_normal(be, c->a, mn, 0.0f, in->noise, in->data_seed + 1, 0);
    if (!st)
        st = dl_matmul(be, false, true, m, n, in->true_rank, 1.0f, lr_fac,
                       lr_fac + (size_t)m * in->true_rank, 1.0f, c->a);
    dl_free(be, lr_fac);
    return st;
}

/* What the task measures of A on the device before any group trains (a
 * synthetic matrix's ||A||^2; sigma_1 of the training matrix for the careful
 * preset), and after a divergence (sigma_1 of 2^e A, when not known yet):
 * A is placed in a scratch buffer of `be` for the measurement. */
dl_status fact_measure(dl_backend *be, fact_job *j, int e, bool sumsq, double *sigma1)
{
    const size_t mn = (size_t)j->m_local * j->n;
    fact_ctx c = {.m = j->m_local, .n = j->n};
    dl_status st = dl_alloc(be, sizeof(float) * mn, (void **)&c.a);
    if (st == DL_OK) st = dl_alloc(be, sizeof(float) * mn, (void **)&c.e);
    if (st == DL_OK) st = dl_alloc(be, sizeof(float), (void **)&c.metrics);
    if (st == DL_OK) st = fact_place_matrix(be, &c, &j->in, e);
    if (j->comm) st = dl_comm_agree(j->comm, st); /* before the power iteration's sums */
    if (st == DL_OK) {
        if (sumsq) {
            /* ||A||^2: E = 0 - A through the fused residual op. */
            float ss;
            if ((st = dl_fill(be, c.e, mn, 0.0f)) == DL_OK &&
                (st = dl_residual_sse(be, c.e, c.a, mn, 1, 0, c.metrics)) == DL_OK &&
                (st = dl_download(be, &ss, c.metrics, sizeof ss)) == DL_OK)
                j->in.sumsq = ss;
        }
        if (st == DL_OK && sigma1)
            st = j->comm ? dl_sigma1_estimate_rows(be, c.a, j->m_local, j->n, sigma1)
                         : dl_sigma1_estimate(be, c.a, j->m, j->n, sigma1);
    }
    dl_free(be, c.a), dl_free(be, c.e), dl_free(be, c.metrics);
    return st;
}

/* Rank 0 receives the m x k rows of the device matrix `dev` (this rank's
 * m_local x k at dev) of every rank in rank order, which is row order; the
 * other ranks only send (whole may be NULL there). A collective. */
dl_status fact_gather_rows(dl_backend *be, dl_comm *comm, float *whole, const float *dev,
                           int m_local, int m, int k)
{
    const size_t bytes = sizeof(float) * (size_t)m_local * k;
    float *mine = malloc(bytes ? bytes : 1);
    dl_status st = mine ? dl_download(be, mine, dev, bytes)
                        : DL_FAIL(DL_E_MEMORY, "out of host memory for %d rows", m_local);
    void *all = NULL;
    if ((st = dl_comm_agree(comm, st)) == DL_OK) st = dl_comm_gather(comm, mine, bytes, &all, NULL);
    if (st == DL_OK && all && whole) memcpy(whole, all, sizeof(float) * (size_t)m * k);
    free(mine);
    free(all);
    return st;
}

static double wall_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The SVD baseline of the row-sharded 2^e A by TSQR (dlab/tsqr.h), in
 * float64 on the host: singular values and the rank-k error from the
 * discarded ones, the same error recomputed from this rank's rows of
 * U_k S_k V_k^T and summed over the ranks, V_k on every rank and the rows
 * of U gathered on rank 0 (svd_u is NULL on the other ranks). */
dl_status fact_svd_baseline_rows(fact_job *j, dl_factorise_result *res)
{
    const int ml = j->m_local, n = j->n, k = j->cfg->rank, e = j->in.e;
    const float *a = j->in.scaled;
    const bool root = dl_comm_rank(j->comm) == 0;
    dl_tsqr_result t;
    double t0 = wall_seconds();
    DL_TRY(dl_tsqr_svd(j->comm, a, ml, n, false, true, &t));
    res->svd_seconds = wall_seconds() - t0;
    const int p = t.p;
    dl_status st = DL_OK;
    float *u32 = malloc(sizeof(float) * ((size_t)ml * p + 1));
    res->n_sv = p;
    res->singular_values = malloc(sizeof(double) * (size_t)p);
    res->svd_v = malloc(sizeof(float) * (size_t)n * k);
    res->svd_u = root ? malloc(sizeof(float) * (size_t)j->m * p) : NULL;
    if (!u32 || !res->singular_values || !res->svd_v || (root && !res->svd_u))
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for the SVD of a %dx%d matrix", j->m, n);
    double rec = 0.0;
    if (st == DL_OK) {
        double tail = 0.0;
        for (int i = k; i < p; i++) tail += t.s[i] * t.s[i];
        res->sse_svd = ldexp(tail, -2 * e);
        for (int i = 0; i < p; i++) res->singular_values[i] = ldexp(t.s[i], -e);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < k; c++)
                res->svd_v[(size_t)i * k + c] = (float)t.vt[(size_t)c * n + i];
        for (int r = 0; r < ml; r++) {
            for (int c = 0; c < p; c++) u32[(size_t)r * p + c] = (float)t.u[(size_t)r * p + c];
            for (int col = 0; col < n; col++) {
                double x = 0.0;
                for (int c = 0; c < k; c++)
                    x += t.u[(size_t)r * p + c] * t.s[c] * t.vt[(size_t)c * n + col];
                x -= a[(size_t)r * n + col];
                rec += x * x;
            }
        }
    }
    dl_tsqr_result_free(&t);
    void *all = NULL;
    if ((st = dl_comm_agree(j->comm, st)) == DL_OK &&
        (st = dl_comm_allreduce_sum_f64(j->comm, &rec, 1)) == DL_OK)
        st = dl_comm_gather(j->comm, u32, sizeof(float) * (size_t)ml * p, &all, NULL);
    if (st == DL_OK && root) memcpy(res->svd_u, all, sizeof(float) * (size_t)j->m * p);
    free(all);
    free(u32);
    DL_TRY(st);
    res->sse_svd_recon = ldexp(rec, -2 * e);
    res->have_svd = true;
    return DL_OK;
}
