#include "dlab/factorise.h"
#include "dlab/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Device buffers of one group of models. Parameters of model b are laid out as
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
    free(r->u_gd);
    memset(r, 0, sizeof *r);
}

/* The SVD baseline: singular values, the rank-k error from the discarded
 * ones, and the same error recomputed from U_k S_k V_k^T as a cross-check. */
static dl_status svd_baseline(dl_backend *be, fact_ctx *c, dl_factorise_result *res)
{
    int m = c->m, n = c->n, k = c->k, p = m < n ? m : n;
    float *s_d = NULL, *u_d = NULL, *vt_d = NULL, *us_d = NULL, *rec = NULL;
    float *us = NULL;
    dl_status st = DL_OK;
    res->n_sv = p;
    res->singular_values = malloc(sizeof(float) * (size_t)p);
    res->svd_u = malloc(sizeof(float) * (size_t)m * p);
    us = malloc(sizeof(float) * (size_t)m * k);
    if (!res->singular_values || !res->svd_u || !us) {
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
    if ((st = dl_download(be, res->singular_values, s_d, sizeof(float) * (size_t)p)) ||
        (st = dl_download(be, res->svd_u, u_d, sizeof(float) * (size_t)m * p)))
        goto done;
    double tail = 0.0;
    for (int i = k; i < p; i++) tail += (double)res->singular_values[i] * res->singular_values[i];
    res->sse_svd = tail;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++)
            us[(size_t)i * k + j] = res->svd_u[(size_t)i * p + j] * res->singular_values[j];
    float sse_rec;
    if ((st = dl_upload(be, us_d, us, sizeof(float) * (size_t)m * k)) ||
        (st = dl_matmul(be, false, false, m, n, k, 1.0f, us_d, vt_d, 0.0f, rec)) ||
        (st = dl_residual_sse(be, rec, c->a, (size_t)m * n, 1, 0, c->metrics)) ||
        (st = dl_download(be, &sse_rec, c->metrics, sizeof sse_rec)))
        goto done;
    res->sse_svd_recon = sse_rec;
    res->have_svd = true;
done:
    free(us);
    dl_free(be, s_d), dl_free(be, u_d), dl_free(be, vt_d), dl_free(be, us_d), dl_free(be, rec);
    return st;
}

/* The input every group shares and the result each fills its slice of. */
typedef struct {
    const float *a_host; /* NULL: synthesise A on the backend */
    int m, n, true_rank;
    float noise;
    uint64_t data_seed;
    const dl_factorise_config *cfg;
    dl_factorise_result *res;
} fact_job;

/* A on the device: the caller's matrix, or L R^T + noise with L, R entries
 * ~ N(0, r^-1/2) so that the entries of L R^T are ~N(0, 1). Every group
 * draws the same A from the same seeds. */
static dl_status make_matrix(dl_backend *be, const fact_ctx *c, const fact_job *j)
{
    const size_t mn = (size_t)c->m * c->n;
    if (j->a_host) return dl_upload(be, c->a, j->a_host, sizeof(float) * mn);
    float *lr_fac = NULL;
    size_t lr_n = ((size_t)c->m + c->n) * j->true_rank;
    dl_status st = dl_alloc(be, sizeof(float) * lr_n, (void **)&lr_fac);
    if (!st)
        st = dl_rand_normal(be, lr_fac, lr_n, 0.0f, 1.0f / sqrtf(sqrtf((float)j->true_rank)),
                            j->data_seed, 0);
    if (!st) st = dl_rand_normal(be, c->a, mn, 0.0f, j->noise, j->data_seed + 1, 0);
    if (!st)
        st = dl_matmul(be, false, true, c->m, c->n, j->true_rank, 1.0f, lr_fac,
                       lr_fac + (size_t)c->m * j->true_rank, 1.0f, c->a);
    dl_free(be, lr_fac);
    return st;
}

/* Trains the group's models from their initial values, then writes its
 * slice of the result: the loss history (through the loop) and the final
 * errors. The group holding model 0 also writes U of model 0 and, unless it
 * diverged, the SVD baseline. */
static dl_status train(dl_backend *be, fact_ctx *c, const fact_job *j, const dl_group *grp,
                       dl_outcome *out)
{
    const dl_factorise_config *cfg = j->cfg;
    dl_factorise_result *res = j->res;
    const int m = c->m, n = c->n, k = c->k, S = c->seeds;
    const size_t P = c->per_model;
    for (int b = 0; b < S; b++)
        DL_TRY(dl_rand_uniform(be, c->params + (size_t)b * P, P, DL_INIT_KEY,
                               dl_init_offset(cfg->seed + (uint64_t)(grp->first + b), P)));

    dl_graph *graph = NULL;
    DL_TRY(dl_graph_create(be, fact_epoch, c, &graph));
    dl_loop loop = cfg->loop;
    loop.metrics = 1;
    loop.check_first = 0;
    loop.check_count = 1;
    loop.lr = cfg->lr;
    dl_status st =
        dl_train_loop(be, graph, cfg->epochs, c->hist, res->loss_history, &loop, grp, out);
    dl_graph_free(be, graph);
    DL_TRY(st);

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
    DL_TRY(dl_gemm(be, &g));
    DL_TRY(dl_residual_sse(be, c->e, c->a, (size_t)m * n, S, 0, c->metrics));
    DL_TRY(dl_download(be, res->sse_gd + grp->first, c->metrics, sizeof(float) * (size_t)S));
    if (grp->index != 0) return DL_OK;
    DL_TRY(dl_download(be, res->u_gd, c->params, sizeof(float) * (size_t)m * k));
    if (cfg->svd && out->stop.kind != DL_STOP_DIVERGED) DL_TRY(svd_baseline(be, c, res));
    return DL_OK;
}

/* One group (dl_group_fn): its buffers, A, training. */
static dl_status factorise_group(dl_backend *be, const dl_group *grp, void *ud, dl_outcome *out)
{
    const fact_job *j = ud;
    const dl_factorise_config *cfg = j->cfg;
    const int m = j->m, n = j->n;
    fact_ctx c = {.m = m,
                  .n = n,
                  .k = cfg->rank,
                  .seeds = grp->count,
                  .per_model = ((size_t)m + n) * cfg->rank,
                  .opt = {.kind = DL_OPTIM_SGD, .lr = cfg->lr}};
    const size_t mn = (size_t)m * n, S = (size_t)grp->count;
    size_t need =
        sizeof(float) * (mn * (1 + S) + 2 * c.per_model * S + S + (size_t)cfg->epochs * S);
    if (cfg->svd && grp->index == 0)
        need += sizeof(float) * (2 * mn + (size_t)(m < n ? m : n) * (m + n + 1));
    DL_TRY(dl_check_fits(be, need, "this factorisation"));

    dl_status st;
    if ((st = dl_alloc(be, sizeof(float) * mn, (void **)&c.a)) ||
        (st = dl_alloc(be, sizeof(float) * mn * S, (void **)&c.e)) ||
        (st = dl_alloc(be, sizeof(float) * c.per_model * S, (void **)&c.params)) ||
        (st = dl_alloc(be, sizeof(float) * c.per_model * S, (void **)&c.grads)) ||
        (st = dl_alloc(be, sizeof(float) * S, (void **)&c.metrics)) ||
        (st = dl_alloc(be, sizeof(float) * (size_t)cfg->epochs * S, (void **)&c.hist)) ||
        (st = dl_alloc(be, sizeof(int32_t), (void **)&c.counter)))
        goto done;
    st = make_matrix(be, &c, j);
    if (st == DL_OK) st = train(be, &c, j, grp, out);
done:
    dl_free(be, c.a), dl_free(be, c.e), dl_free(be, c.params), dl_free(be, c.grads);
    dl_free(be, c.metrics), dl_free(be, c.hist), dl_free(be, c.counter);
    return st;
}

/* Validates, allocates the result for every model, and trains them. */
static dl_status factorise_on_device(dl_backend *be, fact_job *j)
{
    const dl_factorise_config *cfg = j->cfg;
    dl_factorise_result *res = j->res;
    const int m = j->m, S = cfg->seeds;
    memset(res, 0, sizeof *res);
    DL_TRY(dl_factorise_validate(m, j->n, cfg));
    res->m = m, res->n = j->n, res->rank = cfg->rank, res->seeds = S;
    res->loss_history = malloc(sizeof(float) * (size_t)cfg->epochs * S);
    res->sse_gd = malloc(sizeof(float) * (size_t)S);
    res->u_gd = malloc(sizeof(float) * (size_t)m * cfg->rank);
    dl_status st = DL_OK;
    if (!res->loss_history || !res->sse_gd || !res->u_gd)
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for the loss history");
    dl_outcome out;
    if (st == DL_OK) st = dl_run_models(be, S, factorise_group, j, &out);
    if (st != DL_OK) {
        dl_factorise_result_free(res);
        return st;
    }
    res->epochs_run = out.epochs_run;
    res->train_seconds = out.seconds;
    res->stop = out.stop;
    return DL_OK;
}

dl_status dl_factorise(dl_backend *be, const float *a, int m, int n, const dl_factorise_config *cfg,
                       dl_factorise_result *res)
{
    fact_job j = {.a_host = a, .m = m, .n = n, .cfg = cfg, .res = res};
    return factorise_on_device(be, &j);
}

dl_status dl_factorise_synthetic(dl_backend *be, int m, int n, int true_rank, float noise,
                                 uint64_t data_seed, const dl_factorise_config *cfg,
                                 dl_factorise_result *res)
{
    if (true_rank < 1) return DL_FAIL(DL_E_USAGE, "synthetic rank must be at least 1");
    fact_job j = {.m = m, .n = n, .cfg = cfg, .res = res};
    j.true_rank = true_rank, j.noise = noise, j.data_seed = data_seed;
    return factorise_on_device(be, &j);
}
