#include "dlab/factorise.h"
#include "dlab/comm.h"
#include "dlab/tsqr.h"
#include "dlab/factorise_scale.h"
#include "dlab/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Device buffers of one group of models. Parameters of model b are laid out as
 * [U (m x k) | V (n x k)] at params + b*P, P = (m + n) k, and the gradients
 * mirror them, so one optimiser launch updates U and V of every model. */
typedef struct {
    int m, n, k, seeds; /* m: the rows this rank holds */
    bool ranks;         /* the rows are spread over the ranks of be->comm */
    size_t per_model;
    float *a, *e, *params, *grads, *metrics, *hist;
    int32_t *counter;
    dl_optim opt;
} fact_ctx;

static dl_status fact_epoch(dl_backend *be, void *vctx)
{
    fact_ctx *c = vctx;
    const size_t P = c->per_model, mk = (size_t)c->m * c->k, mn = (size_t)c->m * c->n;
    float *u = c->params, *v = c->params + mk, *du = c->grads, *dv = c->grads + mk;
    /* E = U V^T */
    dl_gemm_args g1 = {.trans_b = true,
                       .m = c->m,
                       .n = c->n,
                       .k = c->k,
                       .alpha = 1.0f,
                       .a = u,
                       .lda = c->k,
                       .stride_a = P,
                       .b = v,
                       .ldb = c->k,
                       .stride_b = P,
                       .beta = 0.0f,
                       .c = c->e,
                       .ldc = c->n,
                       .stride_c = mn,
                       .batch = c->seeds};
    DL_TRY(dl_gemm(be, &g1));
    /* E -= A, metrics[b] = sum E^2 */
    DL_TRY(dl_residual_sse(be, c->e, c->a, mn, c->seeds, 0, c->metrics));
    /* dU = 2 E V */
    dl_gemm_args g2 = {.m = c->m,
                       .n = c->k,
                       .k = c->n,
                       .alpha = 2.0f,
                       .a = c->e,
                       .lda = c->n,
                       .stride_a = mn,
                       .b = v,
                       .ldb = c->k,
                       .stride_b = P,
                       .beta = 0.0f,
                       .c = du,
                       .ldc = c->k,
                       .stride_c = P,
                       .batch = c->seeds};
    DL_TRY(dl_gemm(be, &g2));
    /* dV = 2 E^T U */
    dl_gemm_args g3 = {.trans_a = true,
                       .m = c->n,
                       .n = c->k,
                       .k = c->m,
                       .alpha = 2.0f,
                       .a = c->e,
                       .lda = c->n,
                       .stride_a = mn,
                       .b = u,
                       .ldb = c->k,
                       .stride_b = P,
                       .beta = 0.0f,
                       .c = dv,
                       .ldc = c->k,
                       .stride_c = P,
                       .batch = c->seeds};
    DL_TRY(dl_gemm(be, &g3));
    if (c->ranks) { /* one model: dV and the loss summed over the ranks' rows */
        DL_TRY(dl_allreduce_sum(be, dv, (size_t)c->n * c->k));
        DL_TRY(dl_allreduce_sum(be, c->metrics, 1));
    }
    DL_TRY(dl_optim_step(be, &c->opt, c->params, c->grads, NULL, NULL, P * c->seeds, NULL));
    return dl_record(be, c->hist, c->metrics, c->seeds, c->counter);
}

dl_status dl_factorise_validate(int m, int n, const dl_factorise_config *cfg)
{
    int p = m < n ? m : n;
    if (m < 2 || n < 1)
        return DL_FAIL(DL_E_INPUT, "the matrix is %dx%d; need at least 2 rows and 1 column", m, n);
    if (cfg->rank < 1 || cfg->rank > p)
        return DL_FAIL(DL_E_USAGE, "--rank %d is out of range for a %dx%d matrix (1 to %d)",
                       cfg->rank, m, n, p);
    if (cfg->epochs < 1)
        return DL_FAIL(DL_E_USAGE, "--epochs must be at least 1 (got %d)", cfg->epochs);
    if (cfg->preset != DL_FACTORISE_LAB && cfg->preset != DL_FACTORISE_CAREFUL)
        return DL_FAIL(DL_E_USAGE, "unknown factorise preset %d", (int)cfg->preset);
    if (!(cfg->lr >= 0.0f) || !isfinite(cfg->lr)) /* 0: the preset's step */
        return DL_FAIL(DL_E_USAGE, "--lr must be a positive finite number (got %g)",
                       (double)cfg->lr);
    if (cfg->seeds < 1)
        return DL_FAIL(DL_E_USAGE, "--seeds must be at least 1 (got %d)", cfg->seeds);
    return DL_OK;
}

dl_factorise_config dl_factorise_defaults(dl_factorise_preset preset)
{
    return (dl_factorise_config){.preset = preset,
                                 .rank = 2,
                                 .epochs = 1000,
                                 .lr = 0.0f,
                                 .seed = 1,
                                 .seeds = 1,
                                 .svd = true};
}

void dl_factorise_result_free(dl_factorise_result *r)
{
    if (!r) return;
    free(r->loss_history);
    free(r->sse_gd);
    free(r->singular_values);
    free(r->svd_u);
    free(r->svd_v);
    free(r->u_gd);
    free(r->v_gd);
    memset(r, 0, sizeof *r);
}

/* What the task knows of A before it reaches the device. */
typedef struct {
    const float *raw;    /* m x n as given (host), NULL for a synthetic matrix */
    const float *scaled; /* 2^e raw (host), NULL for a synthetic matrix */
    int e;               /* the SVD and the final errors use 2^e A */
    double sumsq;        /* ||A||_F^2 in the data's units; synthetic: measured on the device */
    double sigma1_t;     /* careful: sigma_1 of the training matrix, < 0 until estimated */
    int true_rank;       /* synthetic: A = L R^T + noise */
    float noise;
    uint64_t data_seed;
} fact_input;

/* The careful preset trains on 2^e A; the lab on A itself. */
static int train_exponent(const fact_input *in, const dl_factorise_config *cfg)
{
    return cfg->preset == DL_FACTORISE_CAREFUL ? in->e : 0;
}

/* The progress line shows the loss in the data's units. */
typedef struct {
    void (*fn)(void *ud, const dl_progress *p);
    void *ud;
    double scale;
} progress_units;

static void progress_in_data_units(void *ud, const dl_progress *p)
{
    const progress_units *pu = ud;
    if (!p) {
        pu->fn(pu->ud, NULL);
        return;
    }
    dl_progress q = *p;
    q.scale = pu->scale;
    pu->fn(pu->ud, &q);
}

/* The SVD baseline on the device's matrix, which holds 2^e A: singular
 * values, the rank-k error from the discarded ones, and the same error
 * recomputed from U_k S_k V_k^T as a cross-check, all scaled back to the
 * data's units in double. */
static dl_status svd_baseline(dl_backend *be, fact_ctx *c, int e, dl_factorise_result *res)
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
static dl_status choose_start(const dl_factorise_config *cfg, const fact_input *in, int te, int m,
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
static dl_status draw_start(dl_backend *be, fact_ctx *c, const dl_factorise_config *cfg, int first,
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

/* The input every group shares, the start they all take, and the result
 * each fills its slice of. */
typedef struct {
    int m, n;
    /* Row-sharded over the ranks of comm (NULL: this process holds A): this
     * rank holds rows [first_row, first_row + m_local); raw and scaled in
     * `in` are those rows. */
    dl_comm *comm;
    int first_row, m_local;
    fact_input in;
    const dl_factorise_config *cfg;
    int te;         /* the training matrix is 2^te A */
    float lr_t;     /* the step in training units */
    double std_t;   /* careful: the initial std in training units */
    float *hist;    /* epochs x seeds: every model's loss history in training units */
    int *bad_epoch; /* seeds: the 1-based epoch whose loss was first not finite, 0: none */
    bool *bad_nan;  /* seeds: that loss was NaN (else Inf) */
    progress_units pu;
    dl_factorise_result *res;
} fact_job;

static dl_status draw(dl_backend *be, const dl_factorise_config *cfg, float *p, size_t n,
                      uint64_t at, double std_t)
{
    if (cfg->preset == DL_FACTORISE_LAB) return dl_rand_uniform(be, p, n, DL_INIT_KEY, at);
    return dl_rand_normal(be, p, n, 0.0f, (float)std_t, DL_INIT_KEY, at);
}

/* Row-sharded, one model: the whole [U | V] that one process would draw,
 * of which this rank keeps its rows of U and V. */
static dl_status draw_start_rows(dl_backend *be, fact_ctx *c, const fact_job *j, double std_t)
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

/* Puts 2^e A on the device: the caller's matrix (as given for e = 0, else
 * its scaled copy), or the synthetic L R^T + noise with L, R entries ~
 * N(0, r^-1/2) so that the entries of L R^T are ~N(0, 1); it is never
 * rescaled (e = 0). Every group draws the same A from the same seeds. */
static dl_status place_matrix(dl_backend *be, fact_ctx *c, const fact_input *in, int e)
{
    const int m = c->m, n = c->n;
    const size_t mn = (size_t)m * n;
    if (in->raw) return dl_upload(be, c->a, e ? in->scaled : in->raw, sizeof(float) * mn);
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
static dl_status measure(dl_backend *be, fact_job *j, int e, bool sumsq, double *sigma1)
{
    const size_t mn = (size_t)j->m_local * j->n;
    fact_ctx c = {.m = j->m_local, .n = j->n};
    dl_status st = dl_alloc(be, sizeof(float) * mn, (void **)&c.a);
    if (st == DL_OK) st = dl_alloc(be, sizeof(float) * mn, (void **)&c.e);
    if (st == DL_OK) st = dl_alloc(be, sizeof(float), (void **)&c.metrics);
    if (st == DL_OK) st = place_matrix(be, &c, &j->in, e);
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

/* Records, for each of the group's models, the first epoch whose loss is
 * not finite (the loop stopped the group there or a few epochs later). */
static void note_divergence(fact_job *j, const dl_group *grp, int epochs_run)
{
    for (int b = grp->first; b < grp->first + grp->count; b++)
        for (int e = 0; e < epochs_run; e++) {
            float v = j->hist[(size_t)e * grp->models + b];
            if (!isfinite(v)) {
                j->bad_epoch[b] = e + 1, j->bad_nan[b] = isnan(v);
                break;
            }
        }
}

/* Rank 0 receives the m x k rows of the device matrix `dev` (this rank's
 * m_local x k at dev) of every rank in rank order, which is row order; the
 * other ranks only send (whole may be NULL there). A collective. */
static dl_status gather_rows(dl_backend *be, dl_comm *comm, float *whole, const float *dev,
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
static dl_status svd_baseline_rows(fact_job *j, dl_factorise_result *res)
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

/* Trains the group's models from their initial values, then writes its
 * slice of the result: the loss history (through the loop) and the final
 * errors. The group holding model 0 also writes U of model 0 and, unless
 * training was interrupted (the user wants out; a divergence leaves A and
 * its SVD as they were), the SVD baseline. */
static dl_status train(dl_backend *be, fact_ctx *c, fact_job *j, const dl_group *grp,
                       dl_outcome *out)
{
    const dl_factorise_config *cfg = j->cfg;
    const fact_input *in = &j->in;
    dl_factorise_result *res = j->res;
    const int m = c->m, n = c->n, k = c->k, S = c->seeds, te = j->te;
    const size_t P = c->per_model, mn = (size_t)m * n;
    dl_graph *graph = NULL;
    if (j->comm) {
        /* Every rank starts the loop's collectives, or none does. */
        dl_status ok = draw_start_rows(be, c, j, j->std_t);
        if (!ok) ok = dl_graph_create(be, fact_epoch, c, &graph);
        if ((ok = dl_comm_agree(j->comm, ok)) != DL_OK) {
            dl_graph_free(be, graph);
            return ok;
        }
    } else {
        DL_TRY(draw_start(be, c, cfg, grp->first, j->std_t));
        DL_TRY(dl_graph_create(be, fact_epoch, c, &graph));
    }
    dl_loop loop = cfg->loop;
    if (loop.progress) loop.progress = progress_in_data_units, loop.progress_ud = &j->pu;
    loop.metrics = 1;
    loop.check_first = 0;
    loop.check_count = 1;
    loop.lr = j->lr_t;
    loop.comm = j->comm;
    dl_status st = dl_train_loop(be, graph, cfg->epochs, c->hist, j->hist, &loop, grp, out);
    dl_graph_free(be, graph);
    DL_TRY(st);
    if (out->stop.kind == DL_STOP_DIVERGED) note_divergence(j, grp, out->epochs_run);

    /* The final errors on 2^e A, whatever the units of training: E = 2^(e -
     * te) U V^T - 2^e A is exact scaling, and its squares stay in range. */
    if (in->e != te) DL_TRY(dl_upload(be, c->a, in->scaled, sizeof(float) * mn));
    dl_gemm_args g = {.trans_b = true,
                      .m = m,
                      .n = n,
                      .k = k,
                      .alpha = ldexpf(1.0f, in->e - te),
                      .a = c->params,
                      .lda = k,
                      .stride_a = P,
                      .b = c->params + (size_t)m * k,
                      .ldb = k,
                      .stride_b = P,
                      .beta = 0.0f,
                      .c = c->e,
                      .ldc = n,
                      .stride_c = mn,
                      .batch = S};
    st = dl_gemm(be, &g);
    if (!st) st = dl_residual_sse(be, c->e, c->a, mn, S, 0, c->metrics);
    if (j->comm) { /* the rows' errors summed over the ranks */
        if ((st = dl_comm_agree(j->comm, st)) == DL_OK) st = dl_allreduce_sum(be, c->metrics, S);
    }
    DL_TRY(st);
    float *sse = malloc(sizeof(float) * (size_t)S);
    if (!sse) return DL_FAIL(DL_E_MEMORY, "out of host memory for %d errors", S);
    st = dl_download(be, sse, c->metrics, sizeof(float) * (size_t)S);
    for (int b = 0; b < S && st == DL_OK; b++)
        res->sse_gd[grp->first + b] = isfinite(sse[b]) ? ldexp(sse[b], -2 * in->e) : NAN;
    free(sse);
    DL_TRY(st);
    if (grp->index != 0) return DL_OK;
    if (j->comm)
        DL_TRY(gather_rows(be, j->comm, res->u_gd, c->params, m, j->m, k));
    else
        DL_TRY(dl_download(be, res->u_gd, c->params, sizeof(float) * (size_t)m * k));
    DL_TRY(dl_download(be, res->v_gd, c->params + (size_t)m * k, sizeof(float) * (size_t)n * k));
    /* U V^T approximates 2^te A, so U 2^-h and V 2^-(te-h) approximate A:
     * powers of two, exact unless an entry leaves float32's normal range. */
    const int h = te / 2;
    if (res->u_gd) dl_scale_copy(res->u_gd, res->u_gd, (size_t)j->m * k, -h);
    dl_scale_copy(res->v_gd, res->v_gd, (size_t)n * k, -(te - h));
    if (cfg->svd && out->stop.kind != DL_STOP_INTERRUPTED)
        DL_TRY(j->comm ? svd_baseline_rows(j, res) : svd_baseline(be, c, in->e, res));
    return DL_OK;
}

/* Bytes a group of `models` models allocates on its backend (with the SVD
 * baseline for the group holding model 0). */
static size_t group_bytes(int m, int n, const dl_factorise_config *cfg, int models, bool svd)
{
    const size_t mn = (size_t)m * n, S = (size_t)models, P = ((size_t)m + n) * cfg->rank;
    size_t need = sizeof(float) * (mn * (1 + S) + 2 * P * S + S + (size_t)cfg->epochs * S);
    if (svd) need += sizeof(float) * (2 * mn + (size_t)(m < n ? m : n) * (m + n + 1));
    return need;
}

/* One group (dl_group_fn): its buffers, A, training. */
static dl_status factorise_group(dl_backend *be, const dl_group *grp, void *ud, dl_outcome *out)
{
    fact_job *j = ud;
    const dl_factorise_config *cfg = j->cfg;
    const int m = j->m_local, n = j->n;
    fact_ctx c = {.m = m,
                  .n = n,
                  .k = cfg->rank,
                  .seeds = grp->count,
                  .ranks = j->comm != NULL,
                  .per_model = ((size_t)m + n) * cfg->rank,
                  /* a launch argument of the recorded epoch: set before recording */
                  .opt = {.kind = DL_OPTIM_SGD, .lr = j->lr_t}};
    const size_t mn = (size_t)m * n, S = (size_t)grp->count;
    DL_TRY(dl_check_fits(be, group_bytes(m, n, cfg, grp->count, cfg->svd && grp->index == 0),
                         "this factorisation"));

    dl_status st;
    if ((st = dl_alloc(be, sizeof(float) * mn, (void **)&c.a)) ||
        (st = dl_alloc(be, sizeof(float) * mn * S, (void **)&c.e)) ||
        (st = dl_alloc(be, sizeof(float) * c.per_model * S, (void **)&c.params)) ||
        (st = dl_alloc(be, sizeof(float) * c.per_model * S, (void **)&c.grads)) ||
        (st = dl_alloc(be, sizeof(float) * S, (void **)&c.metrics)) ||
        (st = dl_alloc(be, sizeof(float) * (size_t)cfg->epochs * S, (void **)&c.hist)) ||
        (st = dl_alloc(be, sizeof(int32_t), (void **)&c.counter)))
        goto done;
    st = place_matrix(be, &c, &j->in, j->te);
done:
    if (j->comm) st = dl_comm_agree(j->comm, st);
    if (st == DL_OK) st = train(be, &c, j, grp, out);
    dl_free(be, c.a), dl_free(be, c.e), dl_free(be, c.params), dl_free(be, c.grads);
    dl_free(be, c.metrics), dl_free(be, c.hist), dl_free(be, c.counter);
    return st;
}

/* The divergence fields of the result, from the model that diverged first
 * (the lowest-numbered one on a tie), and the stop's message saying why
 * (dl_factorise_explain). */
static dl_status explain_divergence(dl_backend *be, fact_job *j)
{
    dl_factorise_result *res = j->res;
    const int S = res->seeds;
    int first = -1;
    for (int b = 0; b < S; b++)
        if (j->bad_epoch[b] > 0 && (first < 0 || j->bad_epoch[b] < j->bad_epoch[first])) first = b;
    res->diverged_epoch = first >= 0 ? j->bad_epoch[first] : res->epochs_run;
    bool nan = first >= 0 && j->bad_nan[first];
    if (!(res->sigma1_est > 0.0)) {
        double s1;
        DL_TRY(measure(be, j, j->in.e, false, &s1));
        res->sigma1_est = ldexp(s1, -j->in.e);
    }
    res->data_overflow = dl_sumsq_overflows(ldexp(res->sumsq, 2 * j->te));
    res->stable_lr = dl_stable_lr(res->preset, res->sigma1_est, j->m, j->n, res->rank);
    res->suggested_lr = dl_suggested_lr(res->preset, res->sigma1_est, j->m, j->n, res->rank);
    dl_factorise_explain(res, j->cfg->epochs, nan, res->stop.message, sizeof res->stop.message);
    return DL_OK;
}

/* Validates, measures A where the preset needs it, allocates the result for
 * every model, and trains them. */
static dl_status factorise_on_device(dl_backend *be, fact_job *j)
{
    const dl_factorise_config *cfg = j->cfg;
    dl_factorise_result *res = j->res;
    const int m = j->m, n = j->n, S = cfg->seeds, E = cfg->epochs;
    DL_TRY(dl_factorise_validate(m, n, cfg));
    res->m = m, res->n = n, res->rank = cfg->rank, res->seeds = S;
    res->preset = cfg->preset;
    res->scale_log2 = j->in.e;
    j->te = train_exponent(&j->in, cfg);
    /* Refused before anything is allocated: the measurement below needs less
     * than the groups together. */
    dl_status fits = dl_check_fits(be, group_bytes(j->m_local, n, cfg, S, cfg->svd && !j->comm),
                                   "this factorisation");
    DL_TRY(j->comm ? dl_comm_agree(j->comm, fits) : fits);

    /* Every group starts from the same sigma_1, estimated once here. */
    bool careful = cfg->preset == DL_FACTORISE_CAREFUL;
    dl_status st = DL_OK;
    if (!j->in.raw || careful)
        st = measure(be, j, j->te, !j->in.raw, careful ? &j->in.sigma1_t : NULL);
    res->sumsq = j->in.sumsq;
    if (st == DL_OK) st = choose_start(cfg, &j->in, j->te, m, n, &j->lr_t, &j->std_t, res);
    if (st != DL_OK) {
        dl_factorise_result_free(res);
        return st;
    }
    j->pu = (progress_units){cfg->loop.progress, cfg->loop.progress_ud, ldexp(1.0, -2 * j->te)};

    j->hist = malloc(sizeof(float) * (size_t)E * S);
    j->bad_epoch = calloc((size_t)S, sizeof *j->bad_epoch);
    j->bad_nan = calloc((size_t)S, sizeof *j->bad_nan);
    res->loss_history = malloc(sizeof(double) * (size_t)E * S);
    res->sse_gd = malloc(sizeof(double) * (size_t)S);
    /* Row-sharded, rank 0 alone receives the rows of U (dl_factorise_rows). */
    bool whole_u = !j->comm || dl_comm_rank(j->comm) == 0;
    res->u_gd = whole_u ? malloc(sizeof(float) * (size_t)m * cfg->rank) : NULL;
    res->v_gd = malloc(sizeof(float) * (size_t)n * cfg->rank);
    if (!j->hist || !j->bad_epoch || !j->bad_nan || !res->loss_history || !res->sse_gd ||
        (whole_u && !res->u_gd) || !res->v_gd)
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for the loss history");
    if (j->comm) st = dl_comm_agree(j->comm, st);
    dl_outcome out;
    if (st == DL_OK) st = dl_run_models(be, S, factorise_group, j, &out);
    if (st == DL_OK) {
        res->epochs_run = out.epochs_run;
        res->train_seconds = out.seconds;
        res->stop = out.stop;
        for (size_t i = 0; i < (size_t)res->epochs_run * S; i++)
            res->loss_history[i] = ldexp(j->hist[i], -2 * j->te);
        if (res->stop.kind == DL_STOP_DIVERGED) st = explain_divergence(be, j);
    }
    free(j->hist), free(j->bad_epoch), free(j->bad_nan);
    if (st != DL_OK) dl_factorise_result_free(res);
    return st;
}

dl_status dl_factorise(dl_backend *be, const float *a, int m, int n, const dl_factorise_config *cfg,
                       dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    DL_TRY(dl_factorise_validate(m, n, cfg));
    const size_t mn = (size_t)m * n;
    fact_job j = {.m = m, .n = n, .m_local = m, .cfg = cfg, .res = res};
    j.in = (fact_input){.raw = a, .sigma1_t = -1.0};
    j.in.e = dl_scale_exponent(a, mn, &j.in.sumsq);
    float *scaled = malloc(sizeof(float) * mn);
    if (!scaled) return DL_FAIL(DL_E_MEMORY, "out of host memory for a %dx%d matrix", m, n);
    dl_scale_copy(scaled, a, mn, j.in.e);
    j.in.scaled = scaled;
    dl_status st = factorise_on_device(be, &j);
    free(scaled);
    return st;
}

dl_status dl_factorise_synthetic(dl_backend *be, int m, int n, int true_rank, float noise,
                                 uint64_t data_seed, const dl_factorise_config *cfg,
                                 dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    if (true_rank < 1) return DL_FAIL(DL_E_USAGE, "synthetic rank must be at least 1");
    fact_job j = {.m = m, .n = n, .m_local = m, .cfg = cfg, .res = res};
    j.in = (fact_input){
        .sigma1_t = -1.0, .true_rank = true_rank, .noise = noise, .data_seed = data_seed};
    return factorise_on_device(be, &j);
}

dl_status dl_factorise_rows(dl_backend *be, const float *a, int m, int n,
                            const dl_factorise_config *cfg, dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    dl_comm *comm = be->comm;
    if (!comm || dl_comm_size(comm) == 1) return dl_factorise(be, a, m, n, cfg, res);
    const int ranks = dl_comm_size(comm);
    fact_job j = {.m = m, .n = n, .comm = comm, .cfg = cfg, .res = res};
    dl_comm_shard(m, ranks, dl_comm_rank(comm), &j.first_row, &j.m_local);
    /* Every rank checks the same things, so they agree without a word. */
    DL_TRY(dl_factorise_validate(m, n, cfg));
    if (!be->allreduce_sum)
        return DL_FAIL(DL_E_USAGE, "the %s backend cannot share a matrix's rows over ranks yet",
                       be->name);
    if (m < ranks)
        return DL_FAIL(DL_E_USAGE, "the matrix has %d rows, fewer than the %d ranks sharing them",
                       m, ranks);
    if (cfg->seeds != 1)
        return DL_FAIL(DL_E_USAGE,
                       "--seeds %d: several models on rows spread over %d ranks is "
                       "not supported; run them in one process",
                       cfg->seeds, ranks);
    const size_t mn = (size_t)j.m_local * n;
    j.in = (fact_input){.raw = a, .sigma1_t = -1.0};
    double local;
    (void)dl_scale_exponent(a, mn, &local);
    float *scaled = malloc(sizeof(float) * (mn ? mn : 1));
    dl_status st =
        scaled ? DL_OK : DL_FAIL(DL_E_MEMORY, "out of host memory for %d rows", j.m_local);
    /* ||A||^2 over every row sets one scale for all ranks. */
    j.in.sumsq = local;
    if ((st = dl_comm_agree(comm, st)) == DL_OK)
        st = dl_comm_allreduce_sum_f64(comm, &j.in.sumsq, 1);
    if (st == DL_OK) {
        j.in.e = dl_scale_exponent_of(j.in.sumsq);
        dl_scale_copy(scaled, a, mn, j.in.e);
        j.in.scaled = scaled;
        st = factorise_on_device(be, &j);
    }
    free(scaled);
    return st;
}
