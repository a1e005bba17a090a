/* The fused training ops (dl_fused_factorise, dl_fused_mlp) against the
 * general path on the same backend: the same epochs written here from the
 * public dl_<op>() functions (gemm, residual_sse, optim_step for the
 * factorisation; the forward, backward and metric ops of the MLP task),
 * from the same starting point, on iris-sized and odd shapes. Then what
 * backend.h promises beyond agreement: the same bits run after run, from one
 * call of E1 + E2 epochs as from two calls, and for a model alone as among
 * others; NaN from a label out of range; and refusal of a model that does
 * not fit. A backend without the fused ops fails this suite (it is not
 * skipped): every backend of the project has them. Run with --backend cpu or
 * --backend cuda; the cuda run exits 77 (skipped) where no GPU answers. */
#include <string.h>

#include "backend_arg.h"
#include "dl_test.h"
#include "dlab/backend.h"
#include "dlab/rng.h"

static dl_backend *be;
static dl_rng rng;

/* --- helpers --------------------------------------------------------------- */

static void die(const char *what)
{
    fprintf(stderr, "%s failed: %s\n", what, dl_errmsg());
    exit(1);
}

static void *dev_alloc(size_t bytes)
{
    void *d = NULL;
    if (dl_alloc(be, bytes ? bytes : 4, &d) != DL_OK) die("alloc");
    return d;
}

static void *dev_from(const void *host, size_t bytes)
{
    void *d = dev_alloc(bytes);
    if (bytes && dl_upload(be, d, host, bytes) != DL_OK) die("upload");
    return d;
}

static void to_host(void *host, const void *dev, size_t bytes)
{
    if (bytes && dl_download(be, host, dev, bytes) != DL_OK) die("download");
}

static void to_dev(void *dev, const void *host, size_t bytes)
{
    if (bytes && dl_upload(be, dev, host, bytes) != DL_OK) die("upload");
}

static float *rand_floats(size_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)dl_rng_uniform(&rng);
    return x;
}

static float *host_floats(size_t n) { return malloc(sizeof(float) * (n ? n : 1)); }

/* Device buffer of n NaNs, so that an element an op forgets to write shows. */
static float *poisoned_dev(size_t n)
{
    float *h = host_floats(n);
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    float *d = dev_from(h, sizeof(float) * n);
    free(h);
    return d;
}

/* |x - ref| <= tol (1 + |ref|) for every element, NaN only where ref is NaN;
 * reports the first offender. */
static void check_close(const float *x, const float *ref, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        bool ok = isnan(ref[i]) ? isnan(x[i])
                                : !isnan(x[i]) && fabs((double)x[i] - ref[i]) <=
                                                      tol * (1.0 + fabs((double)ref[i]));
        if (!ok) {
            DL_CHECK(false, "%s[%zu] = %.9g, general path %.9g (tolerance %.2g relative)", what, i,
                     (double)x[i], (double)ref[i], tol);
            return;
        }
    }
}

static void check_bits(const float *x, const float *y, size_t n, const char *what)
{
    DL_CHECK(memcmp(x, y, sizeof(float) * n) == 0, "%s: bits differ", what);
}

/* --- factorisation -------------------------------------------------------- */

typedef struct {
    int m, n, k, models;
} fact_shape;

static float fact_lr(fact_shape s) { return 0.1f / (float)(s.m + s.n); }

/* The general path's epochs (host/tasks/factorise.c's epoch): E = U V^T,
 * E -= A with the SSE, dU = 2 E V, dV = 2 E^T U, one SGD step; hist[e*models
 * + b] = the SSE. params (device) is updated in place. */
static void fact_general(fact_shape s, const float *a, float *params, int epochs, float *hist)
{
    const size_t mk = (size_t)s.m * s.k, nk = (size_t)s.n * s.k, mn = (size_t)s.m * s.n;
    const size_t P = mk + nk, S = (size_t)s.models;
    float *grads = dev_alloc(sizeof(float) * P * S), *e = dev_alloc(sizeof(float) * mn * S);
    float *sse = dev_alloc(sizeof(float) * S);
    const dl_optim sgd = {.kind = DL_OPTIM_SGD, .lr = fact_lr(s)};
    for (int ep = 0; ep < epochs; ep++) {
        dl_gemm_args g1 = {.trans_b = true,
                           .m = s.m,
                           .n = s.n,
                           .k = s.k,
                           .alpha = 1.0f,
                           .a = params,
                           .lda = s.k,
                           .stride_a = P,
                           .b = params + mk,
                           .ldb = s.k,
                           .stride_b = P,
                           .c = e,
                           .ldc = s.n,
                           .stride_c = mn,
                           .batch = s.models};
        dl_gemm_args g2 = {.m = s.m,
                           .n = s.k,
                           .k = s.n,
                           .alpha = 2.0f,
                           .a = e,
                           .lda = s.n,
                           .stride_a = mn,
                           .b = params + mk,
                           .ldb = s.k,
                           .stride_b = P,
                           .c = grads,
                           .ldc = s.k,
                           .stride_c = P,
                           .batch = s.models};
        dl_gemm_args g3 = {.trans_a = true,
                           .m = s.n,
                           .n = s.k,
                           .k = s.m,
                           .alpha = 2.0f,
                           .a = e,
                           .lda = s.n,
                           .stride_a = mn,
                           .b = params,
                           .ldb = s.k,
                           .stride_b = P,
                           .c = grads + mk,
                           .ldc = s.k,
                           .stride_c = P,
                           .batch = s.models};
        if (dl_gemm(be, &g1) != DL_OK || dl_residual_sse(be, e, a, mn, s.models, 0, sse) != DL_OK ||
            dl_gemm(be, &g2) != DL_OK || dl_gemm(be, &g3) != DL_OK ||
            dl_optim_step(be, &sgd, params, grads, NULL, NULL, P * S, NULL) != DL_OK)
            die("general factorisation epoch");
        to_host(hist + (size_t)ep * S, sse, sizeof(float) * S);
    }
    dl_free(be, grads), dl_free(be, e), dl_free(be, sse);
}

/* The fused op over `epochs` epochs: params (device) in place, hist (host). */
static dl_status fact_fused(fact_shape s, const float *a, float *params, int epochs, float *hist)
{
    const size_t n = (size_t)epochs * s.models;
    float *dh = poisoned_dev(n);
    dl_fused_factorise_args args = {.m = s.m,
                                    .n = s.n,
                                    .k = s.k,
                                    .models = s.models,
                                    .a = a,
                                    .params = params,
                                    .lr = fact_lr(s),
                                    .epochs = epochs,
                                    .hist = dh};
    dl_status st = dl_fused_factorise(be, &args);
    if (st == DL_OK) to_host(hist, dh, sizeof(float) * n);
    dl_free(be, dh);
    return st;
}

/* One shape: the fused op against the general path from the same start;
 * then the same bits again, in two calls, and for model models/2 alone. */
static void check_factorise(fact_shape s, int epochs)
{
    const size_t mn = (size_t)s.m * s.n, P = ((size_t)s.m + s.n) * s.k, S = (size_t)s.models;
    const size_t np = P * S, nh = (size_t)epochs * S;
    float *a = rand_floats(mn, -1.0f, 1.0f), *p0 = rand_floats(np, -0.5f, 0.5f);
    float *da = dev_from(a, sizeof(float) * mn);
    float *dp = dev_from(p0, sizeof(float) * np), *dq = dev_from(p0, sizeof(float) * np);
    float *hf = host_floats(nh), *hg = host_floats(nh), *pf = host_floats(np),
          *pg = host_floats(np);
    char what[96];
    snprintf(what, sizeof what, "factorise %dx%d rank %d, %d models", s.m, s.n, s.k, s.models);

    DL_CHECK(dl_fused_factorise(be, &(dl_fused_factorise_args){.m = s.m,
                                                               .n = s.n,
                                                               .k = s.k,
                                                               .models = s.models,
                                                               .a = da,
                                                               .params = dp,
                                                               .lr = fact_lr(s),
                                                               .epochs = 0,
                                                               .hist = NULL}) == DL_OK,
             "%s: zero epochs refused", what);
    DL_CHECK(fact_fused(s, da, dp, epochs, hf) == DL_OK, "%s: %s", what, dl_errmsg());
    fact_general(s, da, dq, epochs, hg);
    to_host(pf, dp, sizeof(float) * np);
    to_host(pg, dq, sizeof(float) * np);
    check_close(hf, hg, nh, 1e-4, what);
    check_close(pf, pg, np, 1e-4, what);
    /* the SSE does fall: the op trains */
    for (size_t b = 0; b < S; b++)
        DL_CHECK(hf[nh - S + b] < hf[b], "%s: model %zu's SSE %g after %d epochs, %g after one",
                 what, b, (double)hf[nh - S + b], epochs, (double)hf[b]);

    /* determinism, and E1 + E2 epochs in two calls */
    const int e1 = epochs / 3, e2 = epochs - e1;
    float *h2 = host_floats(nh), *p2 = host_floats(np);
    to_dev(dp, p0, sizeof(float) * np);
    DL_CHECK(fact_fused(s, da, dp, epochs, h2) == DL_OK, "%s: %s", what, dl_errmsg());
    to_host(p2, dp, sizeof(float) * np);
    check_bits(h2, hf, nh, "factorise rerun history");
    check_bits(p2, pf, np, "factorise rerun parameters");
    to_dev(dp, p0, sizeof(float) * np);
    DL_CHECK(fact_fused(s, da, dp, e1, h2) == DL_OK &&
                 fact_fused(s, da, dp, e2, h2 + e1 * S) == DL_OK,
             "%s: %s", what, dl_errmsg());
    to_host(p2, dp, sizeof(float) * np);
    check_bits(h2, hf, nh, "factorise history, two calls");
    check_bits(p2, pf, np, "factorise parameters, two calls");

    /* model b alone */
    if (s.models > 1) {
        const int b = s.models / 2;
        fact_shape one = s;
        one.models = 1;
        float *d1 = dev_from(p0 + b * P, sizeof(float) * P), *h1 = host_floats(epochs);
        DL_CHECK(fact_fused(one, da, d1, epochs, h1) == DL_OK, "%s: %s", what, dl_errmsg());
        to_host(p2, d1, sizeof(float) * P);
        check_bits(p2, pf + b * P, P, "factorise parameters, alone vs among others");
        for (int e = 0; e < epochs; e++)
            DL_CHECK(memcmp(&h1[e], &hf[(size_t)e * S + b], sizeof(float)) == 0,
                     "%s: epoch %d's SSE alone %.9g, among others %.9g", what, e, (double)h1[e],
                     (double)hf[(size_t)e * S + b]);
        dl_free(be, d1);
        free(h1);
    }
    dl_free(be, da), dl_free(be, dp), dl_free(be, dq);
    free(a), free(p0), free(hf), free(hg), free(pf), free(pg), free(h2), free(p2);
}

static void test_factorise_shapes(void)
{
    DL_CHECK(dl_fused_fits(be, dl_fused_factorise_bytes(150, 4, 2)),
             "the %s backend has no fused ops, or iris does not fit them", be->name);
    if (!be->fused_factorise) return;
    check_factorise((fact_shape){150, 4, 2, 1}, 40); /* iris */
    check_factorise((fact_shape){37, 5, 1, 7}, 25);
    check_factorise((fact_shape){3, 1, 2, 7}, 30);
    check_factorise((fact_shape){1, 1, 1, 1}, 10);
    check_factorise((fact_shape){20, 9, 4, 3}, 15);  /* the largest rank held in registers */
    check_factorise((fact_shape){16, 10, 6, 2}, 15); /* a rank accumulated in shared memory */
    check_factorise((fact_shape){300, 6, 3, 2}, 12); /* more rows than threads */
    check_factorise((fact_shape){5, 300, 1, 2}, 12); /* more columns than threads */
    check_factorise((fact_shape){1124, 4, 1, 1}, 4); /* exactly at the limit on cuda */
}

/* --- MLP ---------------------------------------------------------------- */

typedef struct {
    int d, h, c, n_train, n_val, batch, models;
    dl_optim opt;
    int64_t first_step;
} mlp_shape;

typedef struct {
    mlp_shape s;
    size_t P;
    float *xtr, *xva;   /* device */
    int32_t *ytr, *yva; /* device */
} mlp_data;

static size_t mlp_params(int d, int h, int c) { return (size_t)d * h + h + (size_t)h * c + c; }

static int32_t *rand_labels(size_t n, int c)
{
    int32_t *y = malloc(sizeof(int32_t) * n);
    for (size_t i = 0; i < n; i++) y[i] = (int32_t)dl_rng_below(&rng, (uint64_t)c);
    return y;
}

/* Random splits; bad_train / bad_val (>= 0) put a label out of range into
 * that model's training / validation labels. */
static mlp_data mlp_make(mlp_shape s, int bad_train, int bad_val)
{
    mlp_data D = {.s = s, .P = mlp_params(s.d, s.h, s.c)};
    const size_t S = (size_t)s.models, ntr = S * s.n_train, nva = S * s.n_val;
    float *xtr = rand_floats(ntr * s.d, -1.0f, 2.0f), *xva = rand_floats(nva * s.d, -1.0f, 2.0f);
    int32_t *ytr = rand_labels(ntr, s.c), *yva = rand_labels(nva, s.c);
    if (bad_train >= 0) ytr[(size_t)bad_train * s.n_train + s.n_train / 2] = s.c;
    if (bad_val >= 0) yva[(size_t)bad_val * s.n_val] = -1;
    D.xtr = dev_from(xtr, sizeof(float) * ntr * s.d);
    D.xva = dev_from(xva, sizeof(float) * nva * s.d);
    D.ytr = dev_from(ytr, sizeof(int32_t) * ntr);
    D.yva = dev_from(yva, sizeof(int32_t) * nva);
    free(xtr), free(xva), free(ytr), free(yva);
    return D;
}

static void mlp_free(mlp_data *D)
{
    dl_free(be, D->xtr), dl_free(be, D->xva), dl_free(be, D->ytr), dl_free(be, D->yva);
}

static int mlp_states(dl_optim_kind k)
{
    return k == DL_OPTIM_ADAM ? 2 : k == DL_OPTIM_MOMENTUM ? 1 : 0;
}

/* Training state of every model: parameters, then m and v where used. */
typedef struct {
    float *p, *m, *v; /* device, models x P each */
} mlp_state;

static mlp_state mlp_state_from(const mlp_data *D, const float *host)
{
    const size_t n = D->P * D->s.models;
    const int st = mlp_states(D->s.opt.kind);
    mlp_state s = {.p = dev_from(host, sizeof(float) * n)};
    if (st > 0) s.m = dev_from(host + n, sizeof(float) * n);
    if (st > 1) s.v = dev_from(host + 2 * n, sizeof(float) * n);
    return s;
}

static void mlp_state_host(const mlp_data *D, const mlp_state *s, float *host)
{
    const size_t n = D->P * D->s.models;
    const int st = mlp_states(D->s.opt.kind);
    to_host(host, s->p, sizeof(float) * n);
    if (st > 0) to_host(host + n, s->m, sizeof(float) * n);
    if (st > 1) to_host(host + 2 * n, s->v, sizeof(float) * n);
}

static void mlp_state_free(mlp_state *s)
{
    dl_free(be, s->p), dl_free(be, s->m), dl_free(be, s->v);
}

/* hid = relu(X W1 + b1), logits = hid W2 + b2 for `rows` rows of each model,
 * model b's rows at x + b*x_stride (host/tasks/mlp.c's forward). */
static void ops_forward(const mlp_data *D, const float *p, const float *x, size_t x_stride,
                        int rows, float *hid, float *logits)
{
    const mlp_shape *s = &D->s;
    const size_t P = D->P, w2 = (size_t)s->d * s->h + s->h, rh = (size_t)rows * s->h,
                 rc = (size_t)rows * s->c;
    dl_gemm_args g1 = {.m = rows,
                       .n = s->h,
                       .k = s->d,
                       .alpha = 1.0f,
                       .a = x,
                       .lda = s->d,
                       .stride_a = x_stride,
                       .b = p,
                       .ldb = s->h,
                       .stride_b = P,
                       .c = hid,
                       .ldc = s->h,
                       .stride_c = rh,
                       .batch = s->models};
    dl_gemm_args g2 = {.m = rows,
                       .n = s->c,
                       .k = s->h,
                       .alpha = 1.0f,
                       .a = hid,
                       .lda = s->h,
                       .stride_a = rh,
                       .b = p + w2,
                       .ldb = s->c,
                       .stride_b = P,
                       .c = logits,
                       .ldc = s->c,
                       .stride_c = rc,
                       .batch = s->models};
    if (dl_gemm(be, &g1) != DL_OK ||
        dl_bias_act(be, hid, p + (size_t)s->d * s->h, rows, s->h, s->models, P, true) != DL_OK ||
        dl_gemm(be, &g2) != DL_OK ||
        dl_bias_act(be, logits, p + w2 + (size_t)s->h * s->c, rows, s->c, s->models, P, false) !=
            DL_OK)
        die("general MLP forward");
}

/* The general path's epochs: per mini-batch the forward pass, the logit
 * gradient, backpropagation (host/tasks/mlp.c's backprop) and one optimiser
 * step; then validation and training loss and accuracy of the updated
 * models into hist (host, epochs x 4 x models). */
static void mlp_general(const mlp_data *D, mlp_state *st, int epochs, float *hist)
{
    const mlp_shape *s = &D->s;
    const size_t S = (size_t)s->models, P = D->P, d = (size_t)s->d, h = (size_t)s->h,
                 c = (size_t)s->c;
    const size_t rows = (size_t)(s->n_train > s->n_val ? s->n_train : s->n_val);
    float *grads = dev_alloc(sizeof(float) * P * S);
    float *hid = dev_alloc(sizeof(float) * S * rows * h),
          *dhid = dev_alloc(sizeof(float) * S * rows * h);
    float *logits = dev_alloc(sizeof(float) * S * rows * c);
    float *dlogits = dev_alloc(sizeof(float) * S * rows * c);
    float *metrics = dev_alloc(sizeof(float) * 4 * S);
    int32_t step = (int32_t)s->first_step;
    int32_t *t = dev_from(&step, sizeof step);
    const size_t w2 = d * h + h, b2 = w2 + h * c;
    for (int ep = 0; ep < epochs; ep++) {
        for (int r0 = 0; r0 < s->n_train; r0 += s->batch) {
            const int R = s->n_train - r0 < s->batch ? s->n_train - r0 : s->batch;
            const float *x = D->xtr + (size_t)r0 * d;
            const size_t xs = (size_t)s->n_train * d, rh = (size_t)R * h, rc = (size_t)R * c;
            ops_forward(D, st->p, x, xs, R, hid, logits);
            dl_gemm_args gw2 = {.trans_a = true,
                                .m = s->h,
                                .n = s->c,
                                .k = R,
                                .alpha = 1.0f,
                                .a = hid,
                                .lda = s->h,
                                .stride_a = rh,
                                .b = dlogits,
                                .ldb = s->c,
                                .stride_b = rc,
                                .c = grads + w2,
                                .ldc = s->c,
                                .stride_c = P,
                                .batch = s->models};
            dl_gemm_args gh = {.trans_b = true,
                               .m = R,
                               .n = s->h,
                               .k = s->c,
                               .alpha = 1.0f,
                               .a = dlogits,
                               .lda = s->c,
                               .stride_a = rc,
                               .b = st->p + w2,
                               .ldb = s->c,
                               .stride_b = P,
                               .c = dhid,
                               .ldc = s->h,
                               .stride_c = rh,
                               .batch = s->models};
            dl_gemm_args gw1 = {.trans_a = true,
                                .m = s->d,
                                .n = s->h,
                                .k = R,
                                .alpha = 1.0f,
                                .a = x,
                                .lda = s->d,
                                .stride_a = xs,
                                .b = dhid,
                                .ldb = s->h,
                                .stride_b = rh,
                                .c = grads,
                                .ldc = s->h,
                                .stride_c = P,
                                .batch = s->models};
            if (dl_softmax_xent(be, logits, D->ytr + r0, R, s->c, s->models, (size_t)s->n_train,
                                dlogits, NULL, NULL) != DL_OK ||
                dl_gemm(be, &gw2) != DL_OK ||
                dl_col_sum(be, dlogits, R, s->c, s->models, grads + b2, P) != DL_OK ||
                dl_gemm(be, &gh) != DL_OK || dl_relu_bwd(be, dhid, hid, rh * S) != DL_OK ||
                dl_gemm(be, &gw1) != DL_OK ||
                dl_col_sum(be, dhid, R, s->h, s->models, grads + d * h, P) != DL_OK ||
                dl_optim_step(be, &s->opt, st->p, grads, st->m, st->v, P * S, t) != DL_OK)
                die("general MLP step");
        }
        ops_forward(D, st->p, D->xva, (size_t)s->n_val * d, s->n_val, hid, logits);
        if (dl_softmax_xent(be, logits, D->yva, s->n_val, s->c, s->models, (size_t)s->n_val, NULL,
                            metrics + 1 * S, metrics + 3 * S) != DL_OK)
            die("general MLP validation metrics");
        ops_forward(D, st->p, D->xtr, (size_t)s->n_train * d, s->n_train, hid, logits);
        if (dl_softmax_xent(be, logits, D->ytr, s->n_train, s->c, s->models, (size_t)s->n_train,
                            NULL, metrics + 0 * S, metrics + 2 * S) != DL_OK)
            die("general MLP training metrics");
        to_host(hist + (size_t)ep * 4 * S, metrics, sizeof(float) * 4 * S);
    }
    dl_free(be, grads), dl_free(be, hid), dl_free(be, dhid), dl_free(be, logits);
    dl_free(be, dlogits), dl_free(be, metrics), dl_free(be, t);
}

static dl_status mlp_fused(const mlp_data *D, mlp_state *st, int64_t first_step, int epochs,
                           float *hist)
{
    const mlp_shape *s = &D->s;
    const size_t n = (size_t)epochs * DL_MLP_METRICS_N * s->models;
    float *dh = poisoned_dev(n);
    dl_fused_mlp_args args = {.d = s->d,
                              .h = s->h,
                              .c = s->c,
                              .models = s->models,
                              .n_train = s->n_train,
                              .n_val = s->n_val,
                              .batch = s->batch,
                              .x_train = D->xtr,
                              .y_train = D->ytr,
                              .x_val = D->xva,
                              .y_val = D->yva,
                              .params = st->p,
                              .opt = s->opt,
                              .m = st->m,
                              .v = st->v,
                              .first_step = first_step,
                              .epochs = epochs,
                              .hist = dh};
    dl_status r = dl_fused_mlp(be, &args);
    if (r == DL_OK) to_host(hist, dh, sizeof(float) * n);
    dl_free(be, dh);
    return r;
}

/* Relative tolerance of losses and parameters against the general path, as
 * test_mlp's between backends: Adam divides by sqrt(v), which magnifies
 * rounding differences in small gradients. */
static double mlp_tol(const mlp_shape *s) { return s->opt.kind == DL_OPTIM_ADAM ? 1e-3 : 1e-4; }

/* Accuracies may differ by a row where a logit is within rounding of a tie;
 * losses and parameters agree to float tolerance. */
static void check_mlp_hist(const mlp_shape *s, const float *hf, const float *hg, int epochs,
                           const char *what)
{
    const size_t S = (size_t)s->models;
    for (int e = 0; e < epochs; e++)
        for (int k = 0; k < 4; k++) {
            const float *x = hf + ((size_t)e * 4 + k) * S, *r = hg + ((size_t)e * 4 + k) * S;
            char w[200];
            snprintf(w, sizeof w, "%s, epoch %d metric %d", what, e, k);
            const int rows = k == 0 || k == 2 ? s->n_train : s->n_val;
            check_close(x, r, S, k < 2 ? mlp_tol(s) : 1.01 / rows, w);
        }
}

/* One shape: fused against general from the same start; then rerun bits,
 * two calls, and model models/2 alone. */
static void check_mlp(mlp_shape s, int epochs, int bad_train, int bad_val)
{
    mlp_data D = mlp_make(s, bad_train, bad_val);
    const size_t S = (size_t)s.models, n = D.P * S, nst = n * (1 + mlp_states(s.opt.kind));
    const size_t nh = (size_t)epochs * 4 * S;
    float *init = rand_floats(nst, -1.0f, 1.0f);
    /* optimiser state as if some steps had been taken: small, v >= 0 */
    for (size_t i = n; i < nst; i++)
        init[i] = i >= 2 * n ? 0.01f * init[i] * init[i] : 0.1f * init[i];
    char what[128];
    snprintf(what, sizeof what, "mlp %d-%d-%d, %d+%d rows, batch %d, optimiser %d, %d models", s.d,
             s.h, s.c, s.n_train, s.n_val, s.batch, (int)s.opt.kind, s.models);

    mlp_state f = mlp_state_from(&D, init), g = mlp_state_from(&D, init);
    float *hf = host_floats(nh), *hg = host_floats(nh), *sf = host_floats(nst),
          *sg = host_floats(nst);
    DL_CHECK(mlp_fused(&D, &f, s.first_step, epochs, hf) == DL_OK, "%s: %s", what, dl_errmsg());
    mlp_general(&D, &g, epochs, hg);
    mlp_state_host(&D, &f, sf);
    mlp_state_host(&D, &g, sg);
    check_mlp_hist(&s, hf, hg, epochs, what);
    check_close(sf, sg, nst, mlp_tol(&s), what);
    if (bad_train >= 0) {
        DL_CHECK(isnan(hf[(size_t)bad_train]), "%s: a bad training label gave loss %g", what,
                 (double)hf[(size_t)bad_train]);
        DL_CHECK(isnan(sf[(size_t)bad_train * D.P]), "%s: a bad label left finite parameters",
                 what);
    }
    if (bad_val >= 0) {
        DL_CHECK(isnan(hf[S + (size_t)bad_val]), "%s: a bad validation label gave loss %g", what,
                 (double)hf[S + (size_t)bad_val]);
        DL_CHECK(!isnan(sf[(size_t)bad_val * D.P]),
                 "%s: a bad validation label reached the parameters", what);
    }
    for (size_t b = 0; b < S; b++)
        if ((int)b != bad_train && (int)b != bad_val)
            DL_CHECK(isfinite(hf[(size_t)(epochs - 1) * 4 * S + b]),
                     "%s: model %zu's final loss %g", what, b,
                     (double)hf[(size_t)(epochs - 1) * 4 * S + b]);

    /* determinism, and E1 + E2 epochs in two calls (Adam's step carried on) */
    const int e1 = epochs / 2, e2 = epochs - e1;
    const int64_t batches = (s.n_train + s.batch - 1) / s.batch;
    float *h2 = host_floats(nh), *s2 = host_floats(nst);
    mlp_state r = mlp_state_from(&D, init);
    DL_CHECK(mlp_fused(&D, &r, s.first_step, epochs, h2) == DL_OK, "%s: %s", what, dl_errmsg());
    mlp_state_host(&D, &r, s2);
    check_bits(h2, hf, nh, "mlp rerun history");
    check_bits(s2, sf, nst, "mlp rerun state");
    mlp_state_free(&r);
    r = mlp_state_from(&D, init);
    DL_CHECK(mlp_fused(&D, &r, s.first_step, e1, h2) == DL_OK &&
                 mlp_fused(&D, &r, s.first_step + e1 * batches, e2, h2 + (size_t)e1 * 4 * S) ==
                     DL_OK,
             "%s: %s", what, dl_errmsg());
    mlp_state_host(&D, &r, s2);
    check_bits(h2, hf, nh, "mlp history, two calls");
    check_bits(s2, sf, nst, "mlp state, two calls");
    mlp_state_free(&r);

    /* model b alone: its rows, labels and state copied out */
    if (s.models > 1) {
        const int b = s.models / 2;
        mlp_shape one = s;
        one.models = 1;
        mlp_data D1 = {.s = one, .P = D.P};
        const size_t tr = (size_t)s.n_train, va = (size_t)s.n_val, dd = (size_t)s.d;
        D1.xtr = dev_alloc(sizeof(float) * tr * dd), D1.xva = dev_alloc(sizeof(float) * va * dd);
        D1.ytr = dev_alloc(sizeof(int32_t) * tr), D1.yva = dev_alloc(sizeof(int32_t) * va);
        if (dl_copy(be, D1.xtr, D.xtr + b * tr * dd, sizeof(float) * tr * dd) != DL_OK ||
            dl_copy(be, D1.xva, D.xva + b * va * dd, sizeof(float) * va * dd) != DL_OK ||
            dl_copy(be, D1.ytr, D.ytr + b * tr, sizeof(int32_t) * tr) != DL_OK ||
            dl_copy(be, D1.yva, D.yva + b * va, sizeof(int32_t) * va) != DL_OK)
            die("copy");
        const int st = 1 + mlp_states(s.opt.kind);
        float *init1 = host_floats((size_t)st * D.P), *h1 = host_floats((size_t)epochs * 4),
              *s1 = host_floats((size_t)st * D.P);
        for (int q = 0; q < st; q++)
            memcpy(init1 + q * D.P, init + q * n + b * D.P, sizeof(float) * D.P);
        mlp_state r1 = mlp_state_from(&D1, init1);
        DL_CHECK(mlp_fused(&D1, &r1, s.first_step, epochs, h1) == DL_OK, "%s: %s", what,
                 dl_errmsg());
        mlp_state_host(&D1, &r1, s1);
        for (int q = 0; q < st; q++)
            check_bits(s1 + q * D.P, sf + q * n + b * D.P, D.P, "mlp state, alone vs among others");
        for (int e = 0; e < epochs; e++)
            for (int k = 0; k < 4; k++)
                DL_CHECK(memcmp(&h1[e * 4 + k], &hf[((size_t)e * 4 + k) * S + b], sizeof(float)) ==
                             0,
                         "%s: epoch %d metric %d alone %.9g, among others %.9g", what, e, k,
                         (double)h1[e * 4 + k], (double)hf[((size_t)e * 4 + k) * S + b]);
        mlp_state_free(&r1);
        mlp_free(&D1);
        free(init1), free(h1), free(s1);
    }
    mlp_state_free(&f), mlp_state_free(&g);
    mlp_free(&D);
    free(init), free(hf), free(hg), free(sf), free(sg), free(h2), free(s2);
}

static const dl_optim SGD = {.kind = DL_OPTIM_SGD, .lr = 0.01f};
static const dl_optim MOMENTUM = {.kind = DL_OPTIM_MOMENTUM, .lr = 0.05f, .momentum = 0.9f};
static const dl_optim ADAM = {
    .kind = DL_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};

static void test_mlp_shapes(void)
{
    DL_CHECK(dl_fused_fits(be, dl_fused_mlp_bytes(4, 12, 3, 100, 50, 100, DL_OPTIM_SGD)),
             "the %s backend has no fused ops, or the lab MLP does not fit them", be->name);
    if (!be->fused_mlp) return;
    /* the lab: iris-sized, full batch, SGD */
    check_mlp((mlp_shape){4, 12, 3, 100, 50, 100, 1, SGD, 0}, 12, -1, -1);
    /* mini-batches with a short last one, momentum, 7 models */
    check_mlp((mlp_shape){3, 5, 2, 37, 11, 10, 7, MOMENTUM, 0}, 6, -1, -1);
    /* Adam from step 5, one feature and one hidden unit */
    check_mlp((mlp_shape){1, 1, 4, 9, 3, 4, 2, ADAM, 5}, 6, -1, -1);
    /* more rows than threads, validation in several chunks, the larger pool */
    check_mlp((mlp_shape){6, 10, 5, 150, 140, 64, 3, ADAM, 0}, 3, -1, -1);
    /* exactly at the limit on cuda */
    check_mlp((mlp_shape){1, 1, 2, 700, 10, 700, 1, SGD, 0}, 2, -1, -1);
}

static void test_mlp_bad_labels(void)
{
    if (!be->fused_mlp) {
        DL_CHECK(false, "the %s backend has no fused MLP", be->name);
        return;
    }
    /* model 2 has a training label out of range, model 4 a validation one */
    check_mlp((mlp_shape){3, 5, 2, 37, 11, 10, 7, MOMENTUM, 0}, 4, 2, 4);
}

/* --- refusals ------------------------------------------------------------- */

static void test_refusals(void)
{
    if (!be->fused_factorise || !be->fused_mlp) {
        DL_CHECK(false, "the %s backend has no fused ops", be->name);
        return;
    }
    const size_t limit = be->fused_limit(be);
    /* the smallest square factorisation over the limit */
    int side = 1;
    while (dl_fused_factorise_bytes(side, side, 1) <= limit) side++;
    DL_CHECK(!dl_fused_fits(be, dl_fused_factorise_bytes(side, side, 1)), "fits over the limit");
    const size_t mn = (size_t)side * side, np = 2 * (size_t)side;
    float *a = dev_alloc(sizeof(float) * mn), *p = poisoned_dev(np), *h = poisoned_dev(4);
    dl_fused_factorise_args fa = {.m = side,
                                  .n = side,
                                  .k = 1,
                                  .models = 1,
                                  .a = a,
                                  .params = p,
                                  .lr = 0.01f,
                                  .epochs = 4,
                                  .hist = h};
    DL_CHECK(dl_fused_factorise(be, &fa) == DL_E_RUNTIME, "a %dx%d model over the limit accepted",
             side, side);
    DL_CHECK(strstr(dl_errmsg(), "dl_fused_factorise") != NULL, "message: %s", dl_errmsg());
    fa.m = side - 1, fa.n = side - 1;
    fa.lr = 0.0f;
    DL_CHECK(dl_fused_factorise(be, &fa) == DL_E_RUNTIME, "lr 0 accepted");
    float hh[4];
    to_host(hh, h, sizeof hh);
    for (int i = 0; i < 4; i++) DL_CHECK(isnan(hh[i]), "a refused call wrote its history");

    /* an MLP whose training rows pass the limit */
    int rows = 1;
    while (dl_fused_mlp_bytes(1, 1, 2, rows, 1, rows, DL_OPTIM_SGD) <= limit) rows++;
    mlp_shape s = {1, 1, 2, rows, 1, rows, 1, SGD, 0};
    mlp_data D = mlp_make(s, -1, -1);
    float *pm = poisoned_dev(D.P);
    dl_fused_mlp_args ma = {.d = 1,
                            .h = 1,
                            .c = 2,
                            .models = 1,
                            .n_train = rows,
                            .n_val = 1,
                            .batch = rows,
                            .x_train = D.xtr,
                            .y_train = D.ytr,
                            .x_val = D.xva,
                            .y_val = D.yva,
                            .params = pm,
                            .opt = SGD,
                            .epochs = 1,
                            .hist = h};
    DL_CHECK(dl_fused_mlp(be, &ma) == DL_E_RUNTIME, "an MLP on %d rows over the limit accepted",
             rows);
    ma.n_train = ma.batch = rows - 1;
    ma.opt = MOMENTUM; /* without its m buffer */
    DL_CHECK(dl_fused_mlp(be, &ma) == DL_E_RUNTIME, "momentum without m accepted");
    to_host(hh, h, sizeof hh);
    for (int i = 0; i < 4; i++) DL_CHECK(isnan(hh[i]), "a refused call wrote its history");
    dl_free(be, a), dl_free(be, p), dl_free(be, h), dl_free(be, pm);
    mlp_free(&D);
}

int main(int argc, char **argv)
{
    be = dl_test_backend(argc, argv);
    dl_rng_seed(&rng, 20261129);
    DL_RUN(test_factorise_shapes);
    DL_RUN(test_mlp_shapes);
    DL_RUN(test_mlp_bad_labels);
    DL_RUN(test_refusals);
    char suite[40];
    snprintf(suite, sizeof suite, "test_fused_ops[%s]", be->name);
    dl_backend_destroy(be);
    return dl_test_summary(suite);
}
