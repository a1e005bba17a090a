#include "dlab/factorise.h"
#include "dlab/factorise_scale.h"
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
    free(r->u_gd);
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
    float *us = NULL, *s = NULL;
    dl_status st = DL_OK;
    res->n_sv = p;
    res->singular_values = malloc(sizeof(double) * (size_t)p);
    res->svd_u = malloc(sizeof(float) * (size_t)m * p);
    us = malloc(sizeof(float) * (size_t)m * k);
    s = malloc(sizeof(float) * (size_t)p);
    if (!res->singular_values || !res->svd_u || !us || !s) {
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
    if ((st = be->download(be, s, s_d, sizeof(float) * (size_t)p)) ||
        (st = be->download(be, res->svd_u, u_d, sizeof(float) * (size_t)m * p)))
        goto done;
    double tail = 0.0;
    for (int i = k; i < p; i++) tail += (double)s[i] * s[i];
    res->sse_svd = ldexp(tail, -2 * e);
    for (int i = 0; i < p; i++) res->singular_values[i] = ldexp(s[i], -e);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++) us[(size_t)i * k + j] = res->svd_u[(size_t)i * p + j] * s[j];
    float sse_rec;
    if ((st = be->upload(be, us_d, us, sizeof(float) * (size_t)m * k)) ||
        (st = dl_matmul(be, false, false, m, n, k, 1.0f, us_d, vt_d, 0.0f, rec)) ||
        (st = be->sq_err(be, rec, c->a, (size_t)m * n, 1, 0, c->metrics)) ||
        (st = be->download(be, &sse_rec, c->metrics, sizeof sse_rec)))
        goto done;
    res->sse_svd_recon = ldexp(sse_rec, -2 * e);
    res->have_svd = true;
done:
    free(us), free(s);
    be->free(be, s_d), be->free(be, u_d), be->free(be, vt_d), be->free(be, us_d), be->free(be, rec);
    return st;
}

/* The step and the start in training units (A on the device is 2^te A). */
static dl_status choose_start(dl_backend *be, fact_ctx *c, const dl_factorise_config *cfg,
                              fact_input *in, int te, float *lr_t, double *std_t,
                              dl_factorise_result *res)
{
    if (cfg->preset == DL_FACTORISE_LAB) {
        *lr_t = cfg->lr > 0.0f ? cfg->lr : (float)DL_LAB_LR;
        *std_t = 0.0;
        res->lr = *lr_t;
        return DL_OK;
    }
    if (in->sigma1_t < 0.0) DL_TRY(dl_sigma1_estimate(be, c->a, c->m, c->n, &in->sigma1_t));
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
    *std_t = dl_careful_init_std(in->sigma1_t, c->m, c->n, c->k);
    res->lr = ldexp(*lr_t, te);
    res->init_std = *std_t * sqrt(ldexp(1.0, -te));
    return DL_OK;
}

static dl_status draw_start(dl_backend *be, fact_ctx *c, const dl_factorise_config *cfg,
                            double std_t)
{
    const size_t P = c->per_model;
    for (int b = 0; b < c->seeds; b++) {
        float *p = c->params + (size_t)b * P;
        uint64_t at = dl_init_offset(cfg->seed + (uint64_t)b, P);
        if (cfg->preset == DL_FACTORISE_LAB)
            DL_TRY(be->rand_uniform(be, p, P, DL_INIT_KEY, at));
        else
            DL_TRY(be->rand_normal(be, p, P, 0.0f, (float)std_t, DL_INIT_KEY, at));
    }
    return DL_OK;
}

/* Fills the divergence fields of res and sets the status message. */
static dl_status explain_divergence(dl_backend *be, fact_ctx *c, const fact_input *in, int te,
                                    int epochs, dl_factorise_result *res)
{
    const int S = res->seeds;
    bool nan = false;
    res->diverged_epoch = res->epochs_run;
    for (int e = 0; e < res->epochs_run; e++) {
        int b = 0;
        while (b < S && isfinite(res->loss_history[(size_t)e * S + b])) b++;
        if (b < S) {
            res->diverged_epoch = e + 1;
            nan = isnan(res->loss_history[(size_t)e * S + b]);
            break;
        }
    }
    if (!(res->sigma1_est > 0.0)) {
        double s1;
        DL_TRY(dl_sigma1_estimate(be, c->a, c->m, c->n, &s1)); /* c->a holds 2^e A now */
        res->sigma1_est = ldexp(s1, -in->e);
    }
    res->data_overflow = dl_sumsq_overflows(ldexp(res->sumsq, 2 * te));
    res->stable_lr = dl_stable_lr(res->preset, res->sigma1_est, c->m, c->n, c->k);
    res->suggested_lr = dl_suggested_lr(res->preset, res->sigma1_est, c->m, c->n, c->k);
    char msg[1024];
    dl_factorise_explain(res, epochs, nan, msg, sizeof msg);
    return DL_FAIL(DL_E_DIVERGED, "%s", msg);
}

static dl_status run(dl_backend *be, fact_ctx *c, const dl_factorise_config *cfg, fact_input *in,
                     dl_factorise_result *res)
{
    const int m = c->m, n = c->n, k = c->k, S = c->seeds, E = cfg->epochs;
    const int te = train_exponent(in, cfg);
    const size_t P = c->per_model, mn = (size_t)m * n;
    dl_graph *graph = NULL;
    res->preset = cfg->preset;
    res->scale_log2 = in->e;
    res->sumsq = in->sumsq;
    float *hist = malloc(sizeof(float) * (size_t)E * S);
    float *sse = malloc(sizeof(float) * (size_t)S);
    res->loss_history = malloc(sizeof(double) * (size_t)E * S);
    res->sse_gd = malloc(sizeof(double) * (size_t)S);
    res->u_gd = malloc(sizeof(float) * (size_t)m * k);
    dl_status st = DL_OK;
    if (!hist || !sse || !res->loss_history || !res->sse_gd || !res->u_gd) {
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for the loss history");
        goto done;
    }

    float lr_t = 0.0f;
    double std_t = 0.0;
    if ((st = choose_start(be, c, cfg, in, te, &lr_t, &std_t, res)) ||
        (st = draw_start(be, c, cfg, std_t)))
        goto done;
    c->opt.lr = lr_t; /* a launch argument of the recorded epoch: set before recording */
    if ((st = be->graph_create(be, fact_epoch, c, &graph))) goto done;
    progress_units pu = {cfg->loop.progress, cfg->loop.progress_ud, ldexp(1.0, -2 * te)};
    dl_loop loop = cfg->loop;
    if (loop.progress) loop.progress = progress_in_data_units, loop.progress_ud = &pu;
    loop.per_epoch = S;
    loop.check_first = 0;
    loop.check_count = S;
    loop.lr = lr_t;
    st = dl_train_loop(be, graph, E, c->hist, hist, &loop, &res->epochs_run, &res->train_seconds);
    be->graph_free(be, graph);
    if (st != DL_OK && st != DL_E_DIVERGED && st != DL_E_INTERRUPTED) goto done;
    res->stop = st;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", dl_errmsg());
    for (size_t i = 0; i < (size_t)res->epochs_run * S; i++)
        res->loss_history[i] = ldexp(hist[i], -2 * te);

    /* The final errors on 2^e A, whatever the units of training: E = 2^(e -
     * te) U V^T - 2^e A is exact scaling, and its squares stay in range. */
    if (in->e != te && (st = be->upload(be, c->a, in->scaled, sizeof(float) * mn))) goto done;
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
    if ((st = be->gemm(be, &g)) || (st = be->sq_err(be, c->e, c->a, mn, S, 0, c->metrics)) ||
        (st = be->download(be, sse, c->metrics, sizeof(float) * (size_t)S)) ||
        (st = be->download(be, res->u_gd, c->params, sizeof(float) * (size_t)m * k)))
        goto done;
    for (int b = 0; b < S; b++) res->sse_gd[b] = isfinite(sse[b]) ? ldexp(sse[b], -2 * in->e) : NAN;
    if (res->stop == DL_E_DIVERGED) {
        st = explain_divergence(be, c, in, te, E, res);
        goto done;
    }
    if (cfg->svd && (st = svd_baseline(be, c, in->e, res))) goto done;
    st = res->stop;
    if (st != DL_OK) DL_FAIL(st, "%s", saved); /* restore the stop's message */
done:
    free(hist), free(sse);
    return st;
}

static dl_status factorise_on_device(dl_backend *be, int m, int n, fact_input *in,
                                     const dl_factorise_config *cfg, dl_factorise_result *res);

/* Puts the groups' results side by side (see dl_cpu_groups): the history is
 * cut to the shortest group's, the SVD baseline is group 0's, a divergence's
 * figures are the earliest one's. */
static dl_status merge_groups(dl_factorise_result *parts, const int *firsts, int groups, int seeds,
                              dl_factorise_result *res)
{
    *res = parts[0];
    res->seeds = seeds;
    res->loss_history = NULL, res->sse_gd = NULL;
    parts[0].singular_values = NULL, parts[0].svd_u = NULL, parts[0].u_gd = NULL; /* moved */
    for (int g = 0; g < groups; g++) {
        const dl_factorise_result *p = &parts[g];
        if (p->epochs_run < res->epochs_run) res->epochs_run = p->epochs_run;
        if (p->train_seconds > res->train_seconds) res->train_seconds = p->train_seconds;
        if (p->stop == DL_E_DIVERGED &&
            (res->stop != DL_E_DIVERGED || p->diverged_epoch < res->diverged_epoch)) {
            res->diverged_epoch = p->diverged_epoch, res->data_overflow = p->data_overflow;
            res->stable_lr = p->stable_lr, res->suggested_lr = p->suggested_lr;
            if (!(res->sigma1_est > 0.0)) res->sigma1_est = p->sigma1_est;
        }
        if (p->stop == DL_E_DIVERGED || (p->stop && !res->stop)) res->stop = p->stop;
    }
    res->loss_history = malloc(sizeof(double) * ((size_t)res->epochs_run * seeds + 1));
    res->sse_gd = malloc(sizeof(double) * (size_t)seeds);
    if (!res->loss_history || !res->sse_gd)
        return DL_FAIL(DL_E_MEMORY, "out of host memory for the loss history");
    for (int g = 0; g < groups; g++) {
        const dl_factorise_result *p = &parts[g];
        for (int e = 0; e < res->epochs_run; e++)
            memcpy(res->loss_history + (size_t)e * seeds + firsts[g],
                   p->loss_history + (size_t)e * p->seeds, sizeof(double) * (size_t)p->seeds);
        memcpy(res->sse_gd + firsts[g], p->sse_gd, sizeof(double) * (size_t)p->seeds);
    }
    return DL_OK;
}

/* Many models on the CPU: one group of seeds per thread, each on its own
 * backend; only group 0 computes the SVD baseline and reports progress. */
typedef struct {
    int m, n;
    const fact_input *in;
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
    fact_input in = *j->in;
    return factorise_on_device(be, j->m, j->n, &in, &sc, &j->parts[g]);
}

static dl_status factorise_groups(int m, int n, const fact_input *in,
                                  const dl_factorise_config *cfg, int groups,
                                  dl_factorise_result *res)
{
    group_job job = {m, n, in, cfg, calloc((size_t)groups, sizeof(dl_factorise_result))};
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

/* Puts A on the device: the training matrix for the preset, or the
 * synthetic one generated there (whose sum of squares is measured then). */
static dl_status place_matrix(dl_backend *be, fact_ctx *c, fact_input *in,
                              const dl_factorise_config *cfg)
{
    const int m = c->m, n = c->n;
    const size_t mn = (size_t)m * n;
    if (in->raw)
        return be->upload(be, c->a, train_exponent(in, cfg) ? in->scaled : in->raw,
                          sizeof(float) * mn);
    /* A = L R^T + noise; L, R entries ~ N(0, r^-1/2) so L R^T entries are ~N(0, 1). */
    float *lr_fac = NULL;
    size_t lr_n = ((size_t)m + n) * in->true_rank;
    dl_status st = be->alloc(be, sizeof(float) * lr_n, (void **)&lr_fac);
    if (!st)
        st = be->rand_normal(be, lr_fac, lr_n, 0.0f, 1.0f / sqrtf(sqrtf((float)in->true_rank)),
                             in->data_seed, 0);
    if (!st) st = be->rand_normal(be, c->a, mn, 0.0f, in->noise, in->data_seed + 1, 0);
    if (!st)
        st = dl_matmul(be, false, true, m, n, in->true_rank, 1.0f, lr_fac,
                       lr_fac + (size_t)m * in->true_rank, 1.0f, c->a);
    be->free(be, lr_fac);
    /* ||A||^2: E = 0 - A through the fused residual op. */
    float ss;
    if (!st) st = be->fill(be, c->e, mn, 0.0f);
    if (!st) st = be->sq_err(be, c->e, c->a, mn, 1, 0, c->metrics);
    if (!st) st = be->download(be, &ss, c->metrics, sizeof ss);
    if (!st) in->sumsq = ss;
    return st;
}

static dl_status factorise_on_device(dl_backend *be, int m, int n, fact_input *in,
                                     const dl_factorise_config *cfg, dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    DL_TRY(dl_factorise_validate(m, n, cfg));
    fact_ctx c = {.m = m,
                  .n = n,
                  .k = cfg->rank,
                  .seeds = cfg->seeds,
                  .per_model = ((size_t)m + n) * cfg->rank,
                  .opt = {.kind = DL_OPTIM_SGD}};
    int groups = dl_cpu_groups(be, cfg->seeds);
    const size_t mn = (size_t)m * n, S = (size_t)cfg->seeds;
    size_t need = sizeof(float) * (mn * (1 + S) + 2 * c.per_model * S + S +
                                   (size_t)cfg->epochs * S + 2 * ((size_t)m + n) + 4);
    if (cfg->svd) need += sizeof(float) * (2 * mn + (size_t)(m < n ? m : n) * (m + n + 1));
    if (groups == 1) DL_TRY(dl_check_fits(be, need, "this factorisation"));

    dl_status st = DL_OK;
    if (groups > 1) {
        /* Every group starts from the same sigma_1, estimated once here. */
        if (cfg->preset == DL_FACTORISE_CAREFUL && in->sigma1_t < 0.0) {
            if ((st = be->alloc(be, sizeof(float) * mn, (void **)&c.a)) == DL_OK &&
                (st = be->alloc(be, sizeof(float) * mn, (void **)&c.e)) == DL_OK &&
                (st = be->alloc(be, sizeof(float), (void **)&c.metrics)) == DL_OK &&
                (st = place_matrix(be, &c, in, cfg)) == DL_OK)
                st = dl_sigma1_estimate(be, c.a, m, n, &in->sigma1_t);
            be->free(be, c.a), be->free(be, c.e), be->free(be, c.metrics);
        }
        return st == DL_OK ? factorise_groups(m, n, in, cfg, groups, res) : st;
    }
    if ((st = be->alloc(be, sizeof(float) * mn, (void **)&c.a)) ||
        (st = be->alloc(be, sizeof(float) * mn * S, (void **)&c.e)) ||
        (st = be->alloc(be, sizeof(float) * S, (void **)&c.metrics)) ||
        (st = place_matrix(be, &c, in, cfg)))
        goto done;
    res->m = m, res->n = n, res->rank = cfg->rank, res->seeds = cfg->seeds;
    if ((st = be->alloc(be, sizeof(float) * c.per_model * S, (void **)&c.params)) ||
        (st = be->alloc(be, sizeof(float) * c.per_model * S, (void **)&c.grads)) ||
        (st = be->alloc(be, sizeof(float) * (size_t)cfg->epochs * S, (void **)&c.hist)) ||
        (st = be->alloc(be, sizeof(int32_t), (void **)&c.counter)))
        goto done;
    st = run(be, &c, cfg, in, res);
done:
    be->free(be, c.a), be->free(be, c.e), be->free(be, c.params), be->free(be, c.grads);
    be->free(be, c.metrics), be->free(be, c.hist), be->free(be, c.counter);
    if (st != DL_OK && st != DL_E_DIVERGED && st != DL_E_INTERRUPTED) dl_factorise_result_free(res);
    return st;
}

dl_status dl_factorise(dl_backend *be, const float *a, int m, int n, const dl_factorise_config *cfg,
                       dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    DL_TRY(dl_factorise_validate(m, n, cfg));
    const size_t mn = (size_t)m * n;
    fact_input in = {.raw = a, .sigma1_t = -1.0};
    in.e = dl_scale_exponent(a, mn, &in.sumsq);
    float *scaled = malloc(sizeof(float) * mn);
    if (!scaled) return DL_FAIL(DL_E_MEMORY, "out of host memory for a %dx%d matrix", m, n);
    dl_scale_copy(scaled, a, mn, in.e);
    in.scaled = scaled;
    dl_status st = factorise_on_device(be, m, n, &in, cfg, res);
    free(scaled);
    return st;
}

dl_status dl_factorise_synthetic(dl_backend *be, int m, int n, int true_rank, float noise,
                                 uint64_t data_seed, const dl_factorise_config *cfg,
                                 dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    if (true_rank < 1) return DL_FAIL(DL_E_USAGE, "synthetic rank must be at least 1");
    fact_input in = {
        .sigma1_t = -1.0, .true_rank = true_rank, .noise = noise, .data_seed = data_seed};
    return factorise_on_device(be, m, n, &in, cfg, res);
}
