#include "dlab/factorise.h"
#include "dlab/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Device buffers of one run. Parameters of model b are laid out as
 * [U (m x k) | V (n x k)] at params + b*P, P = (m + n) k, and the gradients
 * mirror them, so one optimiser launch updates U and V of every model. */
typedef struct {
    int m, n, k, seeds;
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
    DL_TRY(be->gemm(be, &g1));
    /* E -= A, metrics[b] = sum E^2 */
    DL_TRY(be->sq_err(be, c->e, c->a, mn, c->seeds, 0, c->metrics));
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
    DL_TRY(be->gemm(be, &g2));
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
    DL_TRY(be->gemm(be, &g3));
    DL_TRY(be->optim_step(be, &c->opt, c->params, c->grads, NULL, NULL, P * c->seeds, NULL));
    return be->record(be, c->hist, c->metrics, c->seeds, c->counter);
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
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return DL_FAIL(DL_E_USAGE, "--lr must be a positive finite number (got %g)",
                       (double)cfg->lr);
    if (cfg->seeds < 1)
        return DL_FAIL(DL_E_USAGE, "--seeds must be at least 1 (got %d)", cfg->seeds);
    return DL_OK;
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

/* The SVD baseline: singular values, the rank-k error from the discarded
 * ones, and the same error recomputed from U_k S_k V_k^T as a cross-check. */
static dl_status svd_baseline(dl_backend *be, fact_ctx *c, dl_factorise_result *res)
{
    int m = c->m, n = c->n, k = c->k, p = m < n ? m : n;
    float *s_d = NULL, *u_d = NULL, *vt_d = NULL, *us_d = NULL, *rec = NULL;
    float *us = NULL, *vt = NULL;
    dl_status st = DL_OK;
    res->n_sv = p;
    res->singular_values = malloc(sizeof(float) * (size_t)p);
    res->svd_u = malloc(sizeof(float) * (size_t)m * p);
    res->svd_v = malloc(sizeof(float) * (size_t)n * k);
    us = malloc(sizeof(float) * (size_t)m * k);
    vt = malloc(sizeof(float) * (size_t)k * n);
    if (!res->singular_values || !res->svd_u || !res->svd_v || !us || !vt) {
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for the SVD of a %dx%d matrix", m, n);
        goto done;
    }
    if ((st = be->alloc(be, sizeof(float) * (size_t)p, (void **)&s_d)) ||
        (st = be->alloc(be, sizeof(float) * (size_t)m * p, (void **)&u_d)) ||
        (st = be->alloc(be, sizeof(float) * (size_t)p * n, (void **)&vt_d)) ||
        (st = be->alloc(be, sizeof(float) * (size_t)m * k, (void **)&us_d)) ||
        (st = be->alloc(be, sizeof(float) * (size_t)m * n, (void **)&rec)))
        goto done;
    double t;
    if ((st = be->timer_start(be)) || (st = be->svd(be, m, n, c->a, s_d, u_d, vt_d)) ||
        (st = be->timer_stop(be, &t)))
        goto done;
    res->svd_seconds = t;
    if ((st = be->download(be, res->singular_values, s_d, sizeof(float) * (size_t)p)) ||
        (st = be->download(be, res->svd_u, u_d, sizeof(float) * (size_t)m * p)) ||
        (st = be->download(be, vt, vt_d, sizeof(float) * (size_t)k * n)))
        goto done;
    for (int i = 0; i < n; i++) /* V_k = the first k rows of V^T, transposed */
        for (int j = 0; j < k; j++) res->svd_v[(size_t)i * k + j] = vt[(size_t)j * n + i];
    double tail = 0.0;
    for (int i = k; i < p; i++) tail += (double)res->singular_values[i] * res->singular_values[i];
    res->sse_svd = tail;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++)
            us[(size_t)i * k + j] = res->svd_u[(size_t)i * p + j] * res->singular_values[j];
    float sse_rec;
    if ((st = be->upload(be, us_d, us, sizeof(float) * (size_t)m * k)) ||
        (st = dl_matmul(be, false, false, m, n, k, 1.0f, us_d, vt_d, 0.0f, rec)) ||
        (st = be->sq_err(be, rec, c->a, (size_t)m * n, 1, 0, c->metrics)) ||
        (st = be->download(be, &sse_rec, c->metrics, sizeof sse_rec)))
        goto done;
    res->sse_svd_recon = sse_rec;
    res->have_svd = true;
done:
    free(us), free(vt);
    be->free(be, s_d), be->free(be, u_d), be->free(be, vt_d), be->free(be, us_d), be->free(be, rec);
    return st;
}

static dl_status run(dl_backend *be, fact_ctx *c, const dl_factorise_config *cfg,
                     dl_factorise_result *res)
{
    const int m = c->m, n = c->n, k = c->k, S = c->seeds, E = cfg->epochs;
    const size_t P = c->per_model;
    dl_graph *graph = NULL;
    res->loss_history = malloc(sizeof(float) * (size_t)E * S);
    res->sse_gd = malloc(sizeof(float) * (size_t)S);
    res->u_gd = malloc(sizeof(float) * (size_t)m * k);
    res->v_gd = malloc(sizeof(float) * (size_t)n * k);
    if (!res->loss_history || !res->sse_gd || !res->u_gd || !res->v_gd)
        return DL_FAIL(DL_E_MEMORY, "out of host memory for the loss history");

    for (int b = 0; b < S; b++)
        DL_TRY(be->rand_uniform(be, c->params + (size_t)b * P, P, DL_INIT_KEY,
                                dl_init_offset(cfg->seed + (uint64_t)b, P)));

    DL_TRY(be->graph_create(be, fact_epoch, c, &graph));
    dl_loop loop = cfg->loop;
    loop.per_epoch = S;
    loop.check_first = 0;
    loop.check_count = S;
    loop.lr = cfg->lr;
    dl_status st = dl_train_loop(be, graph, E, c->hist, res->loss_history, &loop, &res->epochs_run,
                                 &res->train_seconds);
    be->graph_free(be, graph);
    if (st != DL_OK && st != DL_E_DIVERGED && st != DL_E_INTERRUPTED) return st;
    res->stop = st;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", dl_errmsg());

    /* The error of the final U, V (after the last update). */
    dl_gemm_args g = {.trans_b = true,
                      .m = m,
                      .n = n,
                      .k = k,
                      .alpha = 1.0f,
                      .a = c->params,
                      .lda = k,
                      .stride_a = P,
                      .b = c->params + (size_t)m * k,
                      .ldb = k,
                      .stride_b = P,
                      .beta = 0.0f,
                      .c = c->e,
                      .ldc = n,
                      .stride_c = (size_t)m * n,
                      .batch = S};
    DL_TRY(be->gemm(be, &g));
    DL_TRY(be->sq_err(be, c->e, c->a, (size_t)m * n, S, 0, c->metrics));
    DL_TRY(be->download(be, res->sse_gd, c->metrics, sizeof(float) * (size_t)S));
    DL_TRY(be->download(be, res->u_gd, c->params, sizeof(float) * (size_t)m * k));
    DL_TRY(be->download(be, res->v_gd, c->params + (size_t)m * k, sizeof(float) * (size_t)n * k));
    if (cfg->svd && st != DL_E_DIVERGED) DL_TRY(svd_baseline(be, c, res));
    if (st != DL_OK) DL_FAIL(st, "%s", saved); /* restore the stop's message */
    return st;
}

static dl_status factorise_on_device(dl_backend *be, const float *a_host, int m, int n,
                                     int true_rank, float noise, uint64_t data_seed,
                                     const dl_factorise_config *cfg, dl_factorise_result *res);

/* Puts the groups' results side by side (see dl_cpu_groups): the history is
 * cut to the shortest group's, the SVD baseline is group 0's. */
static dl_status merge_groups(dl_factorise_result *parts, const int *firsts, int groups, int seeds,
                              dl_factorise_result *res)
{
    *res = parts[0];
    res->seeds = seeds;
    res->loss_history = NULL, res->sse_gd = NULL;
    parts[0].singular_values = NULL, parts[0].svd_u = NULL, parts[0].svd_v = NULL; /* moved */
    parts[0].u_gd = NULL, parts[0].v_gd = NULL;
    for (int g = 0; g < groups; g++) {
        if (parts[g].epochs_run < res->epochs_run) res->epochs_run = parts[g].epochs_run;
        if (parts[g].train_seconds > res->train_seconds)
            res->train_seconds = parts[g].train_seconds;
        if (parts[g].stop == DL_E_DIVERGED || (parts[g].stop && !res->stop))
            res->stop = parts[g].stop;
    }
    res->loss_history = malloc(sizeof(float) * ((size_t)res->epochs_run * seeds + 1));
    res->sse_gd = malloc(sizeof(float) * (size_t)seeds);
    if (!res->loss_history || !res->sse_gd)
        return DL_FAIL(DL_E_MEMORY, "out of host memory for the loss history");
    for (int g = 0; g < groups; g++) {
        const dl_factorise_result *p = &parts[g];
        for (int e = 0; e < res->epochs_run; e++)
            memcpy(res->loss_history + (size_t)e * seeds + firsts[g],
                   p->loss_history + (size_t)e * p->seeds, sizeof(float) * (size_t)p->seeds);
        memcpy(res->sse_gd + firsts[g], p->sse_gd, sizeof(float) * (size_t)p->seeds);
    }
    return DL_OK;
}

/* Many models on the CPU: one group of seeds per thread, each on its own
 * backend; only group 0 computes the SVD baseline and reports progress. */
typedef struct {
    const float *a_host;
    int m, n, true_rank;
    float noise;
    uint64_t data_seed;
    const dl_factorise_config *cfg;
    dl_factorise_result *parts;
} group_job;

static dl_status factorise_group(dl_backend *be, int g, int first, int count, void *ud)
{
    group_job *j = ud;
    dl_factorise_config sc = *j->cfg;
    sc.seed += (uint64_t)first;
    sc.seeds = count;
    sc.svd = j->cfg->svd && g == 0;
    if (g != 0) sc.loop.progress = NULL;
    return factorise_on_device(be, j->a_host, j->m, j->n, j->true_rank, j->noise, j->data_seed, &sc,
                               &j->parts[g]);
}

static dl_status factorise_groups(const float *a_host, int m, int n, int true_rank, float noise,
                                  uint64_t data_seed, const dl_factorise_config *cfg, int groups,
                                  dl_factorise_result *res)
{
    group_job job = {a_host, m,         n,   true_rank,
                     noise,  data_seed, cfg, calloc((size_t)groups, sizeof(dl_factorise_result))};
    int *firsts = calloc((size_t)groups, sizeof *firsts);
    if (!job.parts || !firsts) {
        free(job.parts), free(firsts);
        return DL_FAIL(DL_E_MEMORY, "out of host memory splitting %d models", cfg->seeds);
    }
    dl_status st = dl_run_groups(cfg->seeds, groups, factorise_group, &job, firsts);
    if (st == DL_OK || st == DL_E_DIVERGED || st == DL_E_INTERRUPTED) {
        char saved[1024];
        snprintf(saved, sizeof saved, "%s", dl_errmsg());
        dl_status ms = merge_groups(job.parts, firsts, groups, cfg->seeds, res);
        if (ms != DL_OK)
            st = ms, dl_factorise_result_free(res);
        else if (st != DL_OK)
            DL_FAIL(st, "%s", saved);
    }
    for (int g = 0; g < groups; g++) dl_factorise_result_free(&job.parts[g]);
    free(job.parts), free(firsts);
    return st;
}

static dl_status factorise_on_device(dl_backend *be, const float *a_host, int m, int n,
                                     int true_rank, float noise, uint64_t data_seed,
                                     const dl_factorise_config *cfg, dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    DL_TRY(dl_factorise_validate(m, n, cfg));
    int groups = dl_cpu_groups(be, cfg->seeds);
    if (groups > 1)
        return factorise_groups(a_host, m, n, true_rank, noise, data_seed, cfg, groups, res);
    fact_ctx c = {.m = m,
                  .n = n,
                  .k = cfg->rank,
                  .seeds = cfg->seeds,
                  .per_model = ((size_t)m + n) * cfg->rank,
                  .opt = {.kind = DL_OPTIM_SGD, .lr = cfg->lr}};
    res->m = m, res->n = n, res->rank = cfg->rank, res->seeds = cfg->seeds;
    const size_t mn = (size_t)m * n, S = (size_t)cfg->seeds;
    size_t need =
        sizeof(float) * (mn * (1 + S) + 2 * c.per_model * S + S + (size_t)cfg->epochs * S);
    if (cfg->svd) need += sizeof(float) * (2 * mn + (size_t)(m < n ? m : n) * (m + n + 1));
    DL_TRY(dl_check_fits(be, need, "this factorisation"));

    dl_status st;
    if ((st = be->alloc(be, sizeof(float) * mn, (void **)&c.a)) ||
        (st = be->alloc(be, sizeof(float) * mn * S, (void **)&c.e)) ||
        (st = be->alloc(be, sizeof(float) * c.per_model * S, (void **)&c.params)) ||
        (st = be->alloc(be, sizeof(float) * c.per_model * S, (void **)&c.grads)) ||
        (st = be->alloc(be, sizeof(float) * S, (void **)&c.metrics)) ||
        (st = be->alloc(be, sizeof(float) * (size_t)cfg->epochs * S, (void **)&c.hist)) ||
        (st = be->alloc(be, sizeof(int32_t), (void **)&c.counter)))
        goto done;
    if (a_host) {
        st = be->upload(be, c.a, a_host, sizeof(float) * mn);
    } else {
        /* A = L R^T + noise; L, R entries ~ N(0, r^-1/2) so L R^T entries are ~N(0, 1). */
        float *lr_fac = NULL;
        size_t lr_n = ((size_t)m + n) * true_rank;
        st = be->alloc(be, sizeof(float) * lr_n, (void **)&lr_fac);
        if (!st)
            st = be->rand_normal(be, lr_fac, lr_n, 0.0f, 1.0f / sqrtf(sqrtf((float)true_rank)),
                                 data_seed, 0);
        if (!st) st = be->rand_normal(be, c.a, mn, 0.0f, noise, data_seed + 1, 0);
        if (!st)
            st = dl_matmul(be, false, true, m, n, true_rank, 1.0f, lr_fac,
                           lr_fac + (size_t)m * true_rank, 1.0f, c.a);
        be->free(be, lr_fac);
    }
    if (st == DL_OK) st = run(be, &c, cfg, res);
done:
    be->free(be, c.a), be->free(be, c.e), be->free(be, c.params), be->free(be, c.grads);
    be->free(be, c.metrics), be->free(be, c.hist), be->free(be, c.counter);
    if (st != DL_OK && st != DL_E_DIVERGED && st != DL_E_INTERRUPTED) dl_factorise_result_free(res);
    return st;
}

dl_status dl_factorise(dl_backend *be, const float *a, int m, int n, const dl_factorise_config *cfg,
                       dl_factorise_result *res)
{
    return factorise_on_device(be, a, m, n, 0, 0.0f, 0, cfg, res);
}

dl_status dl_factorise_synthetic(dl_backend *be, int m, int n, int true_rank, float noise,
                                 uint64_t data_seed, const dl_factorise_config *cfg,
                                 dl_factorise_result *res)
{
    if (true_rank < 1) return DL_FAIL(DL_E_USAGE, "synthetic rank must be at least 1");
    return factorise_on_device(be, NULL, m, n, true_rank, noise, data_seed, cfg, res);
}
