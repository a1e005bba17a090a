#include "factorise_internal.h"
#include "dlab/factorise.h"
#include "dlab/comm.h"
#include "dlab/factorise_scale.h"
#include "dlab/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Epochs [first, first + n) of every model of the group in one fused call
 * (the loop's run hook); the losses go to the same rows of the device
 * history as the epoch graph's dl_record would put them. */
static dl_status fact_run(dl_backend *be, void *vctx, int first, int n)
{
    fact_ctx *c = vctx;
    dl_fused_factorise_args a = {.m = c->m,
                                 .n = c->n,
                                 .k = c->k,
                                 .models = c->seeds,
                                 .a = c->a,
                                 .params = c->params,
                                 .lr = c->opt.lr,
                                 .epochs = n,
                                 .hist = c->hist + (size_t)first * c->seeds};
    return dl_fused_factorise(be, &a);
}

/* Whether the run trains on the fused op (dl_fused_mode); DL_E_USAGE with
 * the reason when ON cannot be honoured. */
static dl_status fact_choose_path(dl_backend *be, const fact_job *j, bool *fused)
{
    const dl_factorise_config *cfg = j->cfg;
    *fused = false;
    if (cfg->fused == DL_FUSED_OFF) return DL_OK;
    const bool on = cfg->fused == DL_FUSED_ON;
    if (j->comm) {
        if (on)
            return DL_FAIL(DL_E_USAGE,
                           "--fused on: rows spread over %d ranks train on the general path",
                           dl_comm_size(j->comm));
        return DL_OK;
    }
    const size_t bytes = dl_fused_factorise_bytes(j->m, j->n, cfg->rank);
    *fused = on ? dl_fused_fits(be, bytes) : dl_fused_factorise_pays(be, j->m, j->n, cfg->rank);
    if (*fused || !on) return DL_OK;
    if (!be->fused_factorise || !be->fused_limit)
        return DL_FAIL(DL_E_USAGE, "--fused on: the %s backend has no fused training ops",
                       be->name);
    return DL_FAIL(DL_E_USAGE,
                   "--fused on: a %dx%d rank-%d model needs %zu bytes of fast memory, more than "
                   "the %s backend's %zu",
                   j->m, j->n, cfg->rank, bytes, be->name, be->fused_limit(be));
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
                                 .svd = true,
                                 .fused = DL_FUSED_AUTO};
}

void dl_factorise_result_free(dl_factorise_result *r)
{
    if (!r) return;
    free(r->loss_history);
    free(r->sse_gd);
    free(r->epochs_trained);
    free(r->singular_values);
    free(r->svd_u);
    free(r->svd_v);
    free(r->u_gd);
    free(r->v_gd);
    memset(r, 0, sizeof *r);
}

/* The careful preset trains on 2^e A; the lab on A itself. */
static int train_exponent(const fact_input *in, const dl_factorise_config *cfg)
{
    return cfg->preset == DL_FACTORISE_CAREFUL ? in->e : 0;
}

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
        dl_status ok = fact_draw_start_rows(be, c, j, j->std_t);
        if (!ok) ok = dl_graph_create(be, fact_epoch, c, &graph);
        if ((ok = dl_comm_agree(j->comm, ok)) != DL_OK) {
            dl_graph_free(be, graph);
            return ok;
        }
    } else {
        DL_TRY(fact_draw_start(be, c, cfg, grp->first, j->std_t));
        if (!c->fused) DL_TRY(dl_graph_create(be, fact_epoch, c, &graph));
    }
    dl_loop loop = cfg->loop;
    if (c->fused) {
        loop.run = fact_run, loop.run_ctx = c;
        /* E, dU and dV: 2 m n k multiply-adds each */
        dl_loop_fused_chunks(&loop, 6.0 * m * n * k * S);
    } else {
        loop.run = NULL, loop.run_ctx = NULL;
    }
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
        DL_TRY(fact_gather_rows(be, j->comm, res->u_gd, c->params, m, j->m, k));
    else
        DL_TRY(dl_download(be, res->u_gd, c->params, sizeof(float) * (size_t)m * k));
    DL_TRY(dl_download(be, res->v_gd, c->params + (size_t)m * k, sizeof(float) * (size_t)n * k));
    /* U V^T approximates 2^te A, so U 2^-h and V 2^-(te-h) approximate A:
     * powers of two, exact unless an entry leaves float32's normal range. */
    const int h = te / 2;
    if (res->u_gd) dl_scale_copy(res->u_gd, res->u_gd, (size_t)j->m * k, -h);
    dl_scale_copy(res->v_gd, res->v_gd, (size_t)n * k, -(te - h));
    if (cfg->svd && out->stop.kind != DL_STOP_INTERRUPTED)
        DL_TRY(j->comm ? fact_svd_baseline_rows(j, res) : fact_svd_baseline(be, c, in->e, res));
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
                  .opt = {.kind = DL_OPTIM_SGD, .lr = j->lr_t},
                  .fused = j->fused};
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
    st = fact_place_matrix(be, &c, &j->in, j->te);
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
        DL_TRY(fact_measure(be, j, j->in.e, false, &s1));
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
    DL_TRY(fact_choose_path(be, j, &j->fused)); /* the same answer on every rank */
    res->fused = j->fused;

    /* Every group starts from the same sigma_1, estimated once here. */
    bool careful = cfg->preset == DL_FACTORISE_CAREFUL;
    dl_status st = DL_OK;
    if (!j->in.raw || careful)
        st = fact_measure(be, j, j->te, !j->in.raw, careful ? &j->in.sigma1_t : NULL);
    res->sumsq = j->in.sumsq;
    if (st == DL_OK) st = fact_choose_start(cfg, &j->in, j->te, m, n, &j->lr_t, &j->std_t, res);
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
    return fact_rows(be, a, m, n, cfg, false, res);
}

dl_status fact_rows_fit(dl_backend *be, int m_local, int n, const dl_factorise_config *cfg,
                        size_t host_floats)
{
    const size_t host = sizeof(float) * host_floats, dev = group_bytes(m_local, n, cfg, 1, false);
    dl_status st;
    if (be->host_memory) { /* one budget for the host copy and the backend's buffers */
        st = dl_check_fits(be, host + dev, "this rank's share of the factorisation");
    } else {
        size_t avail = 0, total = 0;
        dl_host_mem_info(&avail, &total);
        st = host > avail - avail / 10
                 ? DL_FAIL(DL_E_MEMORY,
                           "this rank's share of the factorisation needs %.2f GiB of host "
                           "memory, but only %.2f GiB of %.2f GiB is free",
                           host / 1073741824.0, avail / 1073741824.0, total / 1073741824.0)
                 : dl_check_fits(be, dev, "this rank's share of the factorisation");
    }
    return dl_comm_agree(be->comm, st);
}

dl_status fact_rows(dl_backend *be, const float *a, int m, int n, const dl_factorise_config *cfg,
                    bool synthetic, dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    dl_comm *comm = be->comm;
    const int ranks = dl_comm_size(comm);
    fact_job j = {.m = m, .n = n, .comm = comm, .cfg = cfg, .res = res};
    dl_comm_shard(m, ranks, dl_comm_rank(comm), &j.first_row, &j.m_local);
    /* Every rank checks the same things, so they agree without a word. */
    DL_TRY(dl_factorise_validate(m, n, cfg));
    if (!be->allreduce_sum)
        return DL_FAIL(DL_E_USAGE, "the %s backend cannot share a matrix's rows over ranks%s%s",
                       be->name, be->sum_note[0] ? ": " : "", be->sum_note);
    if (m < ranks)
        return DL_FAIL(DL_E_USAGE, "the matrix has %d rows, fewer than the %d ranks sharing them",
                       m, ranks);
    if (cfg->seeds != 1)
        return DL_FAIL(DL_E_USAGE,
                       "--seeds %d: several models on rows spread over %d ranks is "
                       "not supported; run them in one process",
                       cfg->seeds, ranks);
    const size_t mn = (size_t)j.m_local * n;
    DL_TRY(fact_rows_fit(be, j.m_local, n, cfg, mn)); /* the scaled copy */
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
        j.in.e = synthetic ? 0 : dl_scale_exponent_of(j.in.sumsq);
        dl_scale_copy(scaled, a, mn, j.in.e);
        j.in.scaled = scaled;
        st = factorise_on_device(be, &j);
    }
    free(scaled);
    return st;
}
