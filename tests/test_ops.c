/* Every backend op, called through its checked dl_<op>() entry point,
 * against a float64 reference on fresh random inputs of several shapes, odd
 * sizes included (ggml's test-backend-ops is the model); then the contracts
 * of backend.h: bad labels give NaN, each entry point refuses what its
 * contract forbids, and empty ops do what the contract says. Run with
 * --backend cpu or --backend cuda; the cuda run exits 77 (skipped) where no
 * GPU answers. */
#include <string.h>

#include "backend_arg.h"
#include "dl_test.h"
#include "dlab/backend.h"
#include "dlab/ref.h"
#include "dlab/rng.h"

static dl_backend *be;
static dl_rng rng;

/* --- small helpers: device buffers filled from host arrays ------------- */

static void *dev_from(const void *host, size_t bytes)
{
    void *d = NULL;
    if (dl_alloc(be, bytes ? bytes : 4, &d) != DL_OK) {
        fprintf(stderr, "alloc failed: %s\n", dl_errmsg());
        exit(1);
    }
    if (host && dl_upload(be, d, host, bytes) != DL_OK) {
        fprintf(stderr, "upload failed: %s\n", dl_errmsg());
        exit(1);
    }
    return d;
}

static void to_host(void *host, const void *dev, size_t bytes)
{
    if (dl_download(be, host, dev, bytes) != DL_OK) {
        fprintf(stderr, "download failed: %s\n", dl_errmsg());
        exit(1);
    }
}

static float *rand_floats(size_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)dl_rng_uniform(&rng);
    return x;
}

static double *to_double(const float *x, size_t n)
{
    double *d = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* Output buffers start poisoned so an element the op forgets to write shows. */
static float *poisoned_dev(size_t n)
{
    float *h = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    float *d = dev_from(h, sizeof(float) * n);
    free(h);
    return d;
}

/* --- gemm ------------------------------------------------------------- */

static void check_gemm(bool ta, bool tb, int m, int n, int k, float alpha, float beta, int batch,
                       bool shared_a)
{
    int lda = ta ? m : k, ldb = tb ? k : n, ldc = n;
    size_t sa = shared_a ? 0 : (size_t)m * k, sb = (size_t)k * n, sc = (size_t)m * n;
    size_t na = shared_a ? (size_t)m * k : sa * batch, nb = sb * batch, nc = sc * batch;
    float *a = rand_floats(na, -1, 1), *b = rand_floats(nb, -1, 1), *c = rand_floats(nc, -1, 1);
    double *ad = to_double(a, na), *bd = to_double(b, nb), *cd = to_double(c, nc);
    float *da = dev_from(a, sizeof(float) * na), *db = dev_from(b, sizeof(float) * nb);
    float *dc = dev_from(c, sizeof(float) * nc);
    dl_gemm_args g = {.trans_a = ta,
                      .trans_b = tb,
                      .m = m,
                      .n = n,
                      .k = k,
                      .alpha = alpha,
                      .a = da,
                      .lda = lda,
                      .stride_a = sa,
                      .b = db,
                      .ldb = ldb,
                      .stride_b = sb,
                      .beta = beta,
                      .c = dc,
                      .ldc = ldc,
                      .stride_c = sc,
                      .batch = batch};
    dl_status st = dl_gemm(be, &g);
    DL_CHECK(st == DL_OK, "gemm failed: %s", dl_errmsg());
    to_host(c, dc, sizeof(float) * nc);
    for (int i = 0; i < batch; i++)
        dl_ref_dgemm(ta, tb, m, n, k, alpha, ad + i * sa, lda, bd + i * sb, ldb, beta, cd + i * sc,
                     ldc);
    double err = dl_rel_err(c, cd, nc);
    DL_CHECK(err < 2e-6 * sqrt((double)k + 1), "gemm ta=%d tb=%d %dx%dx%d batch %d: rel err %.3g",
             ta, tb, m, n, k, batch, err);
    dl_free(be, da), dl_free(be, db), dl_free(be, dc);
    free(a), free(b), free(c), free(ad), free(bd), free(cd);
}

static void test_gemm(void)
{
    static const int shapes[][3] = {{1, 1, 1},   {7, 5, 3},    {150, 4, 2},   {4, 2, 150},
                                    {150, 2, 4}, {33, 65, 17}, {128, 96, 64}, {257, 31, 129},
                                    {3, 300, 1}, {5, 16, 7},   {5, 17, 7},    {100, 12, 4},
                                    {3, 10, 450}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            check_gemm(t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, 1,
                       false);
    check_gemm(false, true, 37, 11, 5, 2.0f, -1.0f, 1, false);
    check_gemm(true, false, 9, 13, 21, -0.5f, 0.5f, 1, false);
    check_gemm(false, true, 150, 4, 2, 1.0f, 0.0f, 5, false);
    check_gemm(false, false, 19, 7, 23, 1.0f, 1.0f, 4, true);
    check_gemm(true, false, 64, 48, 80, 2.0f, 0.0f, 3, false);
}

/* --- SVD -------------------------------------------------------------- */

static void check_svd(int m, int n)
{
    int p = m < n ? m : n;
    size_t mn = (size_t)m * n;
    float *a = rand_floats(mn, -1, 1);
    double *ad = to_double(a, mn), *sref = malloc(sizeof(double) * p);
    DL_CHECK(dl_ref_svd(m, n, ad, sref, NULL, NULL) == DL_OK, "reference SVD failed");
    float *da = dev_from(a, sizeof(float) * mn), *ds = poisoned_dev(p);
    float *du = poisoned_dev((size_t)m * p), *dvt = poisoned_dev((size_t)p * n);
    dl_status st = dl_svd(be, m, n, da, ds, du, dvt);
    DL_CHECK(st == DL_OK, "svd %dx%d failed: %s", m, n, dl_errmsg());
    float *s = malloc(sizeof(float) * p), *u = malloc(sizeof(float) * m * p);
    float *vt = malloc(sizeof(float) * p * n), *a2 = malloc(sizeof(float) * mn);
    to_host(s, ds, sizeof(float) * p);
    to_host(u, du, sizeof(float) * m * p);
    to_host(vt, dvt, sizeof(float) * p * n);
    to_host(a2, da, sizeof(float) * mn);
    DL_CHECK(memcmp(a, a2, sizeof(float) * mn) == 0, "svd %dx%d modified its input", m, n);
    DL_CHECK(dl_rel_err(s, sref, p) < 1e-5, "svd %dx%d singular values: rel err %.3g", m, n,
             dl_rel_err(s, sref, p));
    for (int i = 1; i < p; i++)
        DL_CHECK(s[i] <= s[i - 1], "svd %dx%d: s not descending at %d", m, n, i);
    /* U diag(s) V^T must rebuild A, and U, V must have orthonormal columns. */
    double *rec = calloc(mn, sizeof(double));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            for (int r = 0; r < p; r++)
                rec[(size_t)i * n + j] +=
                    (double)u[(size_t)i * p + r] * s[r] * vt[(size_t)r * n + j];
    double err = 0, nrm = 0, orth = 0;
    for (size_t i = 0; i < mn; i++)
        err += (rec[i] - a[i]) * (rec[i] - a[i]), nrm += (double)a[i] * a[i];
    DL_CHECK(sqrt(err / nrm) < 1e-5, "svd %dx%d reconstruction rel err %.3g", m, n,
             sqrt(err / nrm));
    for (int r = 0; r < p; r++)
        for (int q = 0; q < p; q++) {
            double du_ = 0, dv_ = 0;
            for (int i = 0; i < m; i++) du_ += (double)u[(size_t)i * p + r] * u[(size_t)i * p + q];
            for (int j = 0; j < n; j++)
                dv_ += (double)vt[(size_t)r * n + j] * vt[(size_t)q * n + j];
            orth = fmax(orth, fmax(fabs(du_ - (r == q)), fabs(dv_ - (r == q))));
        }
    DL_CHECK(orth < 1e-4, "svd %dx%d: U or V not orthonormal (max dev %.3g)", m, n, orth);
    dl_free(be, da), dl_free(be, ds), dl_free(be, du), dl_free(be, dvt);
    free(a), free(ad), free(sref), free(s), free(u), free(vt), free(a2), free(rec);
}

static void test_svd(void)
{
    check_svd(150, 4);
    check_svd(4, 150);
    check_svd(7, 7);
    check_svd(33, 20);
    check_svd(20, 33);
    check_svd(1, 5);
    check_svd(64, 1);
}

/* --- random fills ------------------------------------------------------ */

static void test_rand(void)
{
    const size_t n = 100001; /* odd on purpose: normals come in pairs */
    float *d = poisoned_dev(n), *h = malloc(sizeof(float) * n), *h2 = malloc(sizeof(float) * n);
    DL_CHECK(dl_rand_uniform(be, d, n, 42, 0) == DL_OK, "rand_uniform: %s", dl_errmsg());
    to_host(h, d, sizeof(float) * n);
    double mean = 0, var = 0;
    bool in_range = true;
    for (size_t i = 0; i < n; i++) {
        in_range &= h[i] > 0.0f && h[i] <= 1.0f;
        mean += h[i];
    }
    mean /= n;
    for (size_t i = 0; i < n; i++) var += (h[i] - mean) * (h[i] - mean);
    var /= n;
    DL_CHECK(in_range, "uniform values outside (0, 1]");
    DL_CHECK_NEAR(mean, 0.5, 0.01, "uniform mean");
    DL_CHECK_NEAR(var, 1.0 / 12, 0.005, "uniform variance");
    /* Same seed, same numbers; an offset skips ahead in the same stream. */
    DL_CHECK(dl_rand_uniform(be, d, n, 42, 0) == DL_OK, "rand_uniform: %s", dl_errmsg());
    to_host(h2, d, sizeof(float) * n);
    DL_CHECK(memcmp(h, h2, sizeof(float) * n) == 0, "rand_uniform is not reproducible");
    DL_CHECK(dl_rand_uniform(be, d, 10, 42, 100) == DL_OK, "rand_uniform: %s", dl_errmsg());
    to_host(h2, d, sizeof(float) * 10);
    DL_CHECK(memcmp(h + 100, h2, sizeof(float) * 10) == 0,
             "offset 100 is not the stream from element 100");
    DL_CHECK(dl_rand_uniform(be, d, 10, 43, 0) == DL_OK, "rand_uniform: %s", dl_errmsg());
    to_host(h2, d, sizeof(float) * 10);
    DL_CHECK(memcmp(h, h2, sizeof(float) * 10) != 0, "seeds 42 and 43 gave the same numbers");

    DL_CHECK(dl_rand_normal(be, d, n, 1.5f, 2.0f, 7, 0) == DL_OK, "rand_normal: %s", dl_errmsg());
    to_host(h, d, sizeof(float) * n);
    mean = var = 0;
    for (size_t i = 0; i < n; i++) mean += h[i];
    mean /= n;
    for (size_t i = 0; i < n; i++) var += (h[i] - mean) * (h[i] - mean);
    var /= n;
    DL_CHECK_NEAR(mean, 1.5, 0.03, "normal mean");
    DL_CHECK_NEAR(sqrt(var), 2.0, 0.03, "normal stddev");
    DL_CHECK(!isnan(h[n - 1]), "last (odd) normal not written");

    /* The CPU backend's host generator and this backend give the same numbers. */
    dl_backend *cpu = NULL;
    if (strcmp(be->name, "cpu") != 0 && dl_backend_cpu_create(&cpu) == DL_OK) {
        float *c = NULL;
        dl_alloc(cpu, sizeof(float) * 1001, (void **)&c);
        dl_rand_uniform(cpu, c, 1001, 9, 3);
        dl_rand_uniform(be, d, 1001, 9, 3);
        to_host(h, d, sizeof(float) * 1001);
        DL_CHECK(memcmp(h, c, sizeof(float) * 1001) == 0,
                 "uniform numbers differ from the CPU backend's");
        dl_rand_normal(cpu, c, 1001, 0.0f, 1.0f, 9, 0);
        dl_rand_normal(be, d, 1001, 0.0f, 1.0f, 9, 0);
        to_host(h, d, sizeof(float) * 1001);
        double diff = 0;
        for (int i = 0; i < 1001; i++) diff = fmax(diff, fabs((double)h[i] - c[i]));
        DL_CHECK(diff < 1e-5, "normal numbers differ from the CPU backend's by %.3g", diff);
        dl_free(cpu, c);
        dl_backend_destroy(cpu);
    }
    dl_free(be, d);
    free(h), free(h2);
}

/* Calls that continue a stream (or skip a little ahead, or jump) give the
 * same numbers as calls made from a freshly positioned generator: the CPU
 * backend keeps its generator where the last call left it. */
static void draw(int kind, float *d, size_t n, uint64_t seed, uint64_t off, float *out)
{
    dl_status st = kind ? dl_rand_normal(be, d, n, 0.0f, 1.0f, seed, off)
                        : dl_rand_uniform(be, d, n, seed, off);
    DL_CHECK(st == DL_OK, "rand: %s", dl_errmsg());
    to_host(out, d, sizeof(float) * n);
}

static void test_rand_stream(void)
{
    static const struct {
        int kind;
        size_t n;
        uint64_t off;
    } calls[] = {{0, 10, 0}, {1, 8, 10},   {0, 7, 20},  {1, 5, 27},
                 {0, 3, 40}, {0, 4, 5000}, {1, 6, 5004}};
    const size_t nc = sizeof calls / sizeof calls[0];
    float *d = poisoned_dev(16), a[16], b[16];
    float seq[7][16];
    for (size_t i = 0; i < nc; i++) draw(calls[i].kind, d, calls[i].n, 77, calls[i].off, seq[i]);
    for (size_t i = 0; i < nc; i++) {
        draw(0, d, 3, 78, 0, a); /* another seed: the next call must re-position */
        draw(calls[i].kind, d, calls[i].n, 77, calls[i].off, b);
        DL_CHECK(memcmp(seq[i], b, sizeof(float) * calls[i].n) == 0,
                 "call %zu (n=%zu at %llu) differs when the generator is re-positioned", i,
                 calls[i].n, (unsigned long long)calls[i].off);
    }
    dl_free(be, d);
}

/* --- custom ops --------------------------------------------------------- */

static void check_residual_sse(size_t n, int batch, bool shared)
{
    size_t na = shared ? n : n * batch;
    float *e = rand_floats(n * batch, -2, 2), *a = rand_floats(na, -2, 2);
    float *de = dev_from(e, sizeof(float) * n * batch), *da = dev_from(a, sizeof(float) * na);
    float *ds = poisoned_dev(batch), *ds2 = poisoned_dev(batch);
    DL_CHECK(dl_residual_sse(be, de, da, n, batch, shared ? 0 : n, ds) == DL_OK, "residual_sse: %s",
             dl_errmsg());
    float *s = malloc(sizeof(float) * batch), *eo = malloc(sizeof(float) * n * batch);
    to_host(s, ds, sizeof(float) * batch);
    to_host(eo, de, sizeof(float) * n * batch);
    double *ref = malloc(sizeof(double) * batch), *eref = malloc(sizeof(double) * n * batch);
    for (int b = 0; b < batch; b++) {
        ref[b] = 0;
        for (size_t i = 0; i < n; i++) {
            double r = (double)e[b * n + i] - a[(shared ? 0 : b * n) + i];
            eref[b * n + i] = r;
            ref[b] += r * r;
        }
    }
    DL_CHECK(dl_rel_err(s, ref, batch) < 1e-6, "residual_sse n=%zu batch=%d: rel err %.3g", n,
             batch, dl_rel_err(s, ref, batch));
    DL_CHECK(dl_rel_err(eo, eref, n * batch) < 1e-7, "residual_sse residual n=%zu: rel err %.3g", n,
             dl_rel_err(eo, eref, n * batch));
    /* Deterministic: the same inputs give bit-identical sums. */
    DL_CHECK(dl_upload(be, de, e, sizeof(float) * n * batch) == DL_OK, "upload");
    DL_CHECK(dl_residual_sse(be, de, da, n, batch, shared ? 0 : n, ds2) == DL_OK,
             "residual_sse: %s", dl_errmsg());
    float *s2 = malloc(sizeof(float) * batch);
    to_host(s2, ds2, sizeof(float) * batch);
    DL_CHECK(memcmp(s, s2, sizeof(float) * batch) == 0,
             "residual_sse n=%zu not bit-identical on rerun", n);
    dl_free(be, de), dl_free(be, da), dl_free(be, ds), dl_free(be, ds2);
    free(e), free(a), free(s), free(s2), free(eo), free(ref), free(eref);
}

static void test_residual_sse(void)
{
    check_residual_sse(1, 1, false);
    check_residual_sse(600, 1, false);
    check_residual_sse(600, 7, true);
    check_residual_sse(1000003, 1, false);
    check_residual_sse(70001, 3, false);
}

static void check_optim(dl_optim_kind kind, size_t n, int steps)
{
    dl_optim o = {
        .kind = kind, .lr = 0.05f, .momentum = 0.9f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    float *p = rand_floats(n, -1, 1);
    double *pr = to_double(p, n), *mr = calloc(n, sizeof(double)), *vr = calloc(n, sizeof(double));
    float *dp = dev_from(p, sizeof(float) * n), *dg = poisoned_dev(n);
    float *dm = dev_from(NULL, sizeof(float) * n), *dv = dev_from(NULL, sizeof(float) * n);
    int32_t *dt = dev_from(NULL, sizeof(int32_t));
    for (int t = 1; t <= steps; t++) {
        float *g = rand_floats(n, -1, 1);
        dl_upload(be, dg, g, sizeof(float) * n);
        DL_CHECK(dl_optim_step(be, &o, dp, dg, dm, dv, n, dt) == DL_OK, "optim_step: %s",
                 dl_errmsg());
        for (size_t i = 0; i < n; i++) { /* the textbook formulas, in double */
            double gi = g[i];
            if (kind == DL_OPTIM_SGD)
                pr[i] -= o.lr * gi;
            else if (kind == DL_OPTIM_MOMENTUM) {
                mr[i] = o.momentum * mr[i] + gi;
                pr[i] -= o.lr * mr[i];
            } else {
                mr[i] = o.beta1 * mr[i] + (1 - o.beta1) * gi;
                vr[i] = o.beta2 * vr[i] + (1 - o.beta2) * gi * gi;
                double mh = mr[i] / (1 - pow(o.beta1, t)), vh = vr[i] / (1 - pow(o.beta2, t));
                pr[i] -= o.lr * mh / (sqrt(vh) + o.eps);
            }
        }
        free(g);
    }
    to_host(p, dp, sizeof(float) * n);
    DL_CHECK(dl_rel_err(p, pr, n) < 1e-5, "optim %d n=%zu: rel err %.3g", kind, n,
             dl_rel_err(p, pr, n));
    if (kind == DL_OPTIM_ADAM) {
        int32_t t;
        to_host(&t, dt, sizeof t);
        DL_CHECK(t == steps, "adam step counter is %d after %d steps", t, steps);
    }
    dl_free(be, dp), dl_free(be, dg), dl_free(be, dm), dl_free(be, dv), dl_free(be, dt);
    free(p), free(pr), free(mr), free(vr);
}

static void test_optim(void)
{
    for (int k = 0; k < 3; k++) {
        check_optim((dl_optim_kind)k, 1, 3);
        check_optim((dl_optim_kind)k, 1201, 5);
        check_optim((dl_optim_kind)k, 100003, 2);
    }
}

static void check_bias_act(int rows, int cols, int batch, bool relu)
{
    size_t n = (size_t)rows * cols * batch,
           stride = (size_t)cols + 3; /* bias inside a bigger block */
    float *y = rand_floats(n, -1, 1), *bias = rand_floats(stride * batch, -1, 1);
    double *ref = malloc(sizeof(double) * n);
    for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                size_t i = ((size_t)b * rows + r) * cols + c;
                double v = (double)y[i] + bias[b * stride + c];
                ref[i] = relu && v < 0 ? 0 : v;
            }
    float *dy = dev_from(y, sizeof(float) * n),
          *db = dev_from(bias, sizeof(float) * stride * batch);
    DL_CHECK(dl_bias_act(be, dy, db, rows, cols, batch, stride, relu) == DL_OK, "bias_act: %s",
             dl_errmsg());
    to_host(y, dy, sizeof(float) * n);
    DL_CHECK(dl_rel_err(y, ref, n) < 1e-7, "bias_act %dx%d batch %d relu %d: rel err %.3g", rows,
             cols, batch, relu, dl_rel_err(y, ref, n));
    dl_free(be, dy), dl_free(be, db);
    free(y), free(bias), free(ref);
}

static void test_bias_act(void)
{
    check_bias_act(1, 1, 1, false);
    check_bias_act(100, 12, 1, true);
    check_bias_act(37, 3, 5, false);
    check_bias_act(513, 129, 2, true);
}

static void test_relu_bwd(void)
{
    const size_t n = 40007;
    float *dh = rand_floats(n, -1, 1), *h = rand_floats(n, -1, 1);
    for (size_t i = 0; i < n; i += 7) h[i] = 0.0f; /* the boundary: relu output exactly 0 */
    double *ref = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) ref[i] = h[i] > 0 ? dh[i] : 0.0;
    float *ddh = dev_from(dh, sizeof(float) * n), *dhh = dev_from(h, sizeof(float) * n);
    DL_CHECK(dl_relu_bwd(be, ddh, dhh, n) == DL_OK, "relu_bwd: %s", dl_errmsg());
    to_host(dh, ddh, sizeof(float) * n);
    DL_CHECK(dl_rel_err(dh, ref, n) == 0.0, "relu_bwd differs from the reference");
    dl_free(be, ddh), dl_free(be, dhh);
    free(dh), free(h), free(ref);
}

static void check_softmax(int rows, int classes, int batch, bool with_grad, float spread)
{
    size_t n = (size_t)rows * classes * batch, lstride = (size_t)rows + 1;
    float *z = rand_floats(n, -spread, spread);
    int32_t *lab = malloc(sizeof(int32_t) * lstride * batch);
    for (size_t i = 0; i < lstride * batch; i++)
        lab[i] = (int32_t)dl_rng_below(&rng, (uint64_t)classes);
    double *gref = malloc(sizeof(double) * n), *lref = malloc(sizeof(double) * batch),
           *aref = malloc(sizeof(double) * batch);
    for (int b = 0; b < batch; b++) {
        double lsum = 0;
        int correct = 0;
        for (int r = 0; r < rows; r++) {
            const float *zr = z + ((size_t)b * rows + r) * classes;
            int y = lab[b * lstride + r], arg = 0;
            double mx = zr[0], se = 0;
            for (int c = 1; c < classes; c++)
                if (zr[c] > zr[arg]) arg = c;
            mx = zr[arg];
            for (int c = 0; c < classes; c++) se += exp((double)zr[c] - mx);
            lsum += log(se) - ((double)zr[y] - mx);
            correct += arg == y;
            for (int c = 0; c < classes; c++)
                gref[((size_t)b * rows + r) * classes + c] =
                    (exp((double)zr[c] - mx) / se - (c == y)) / rows;
        }
        lref[b] = lsum / rows;
        aref[b] = (double)correct / rows;
    }
    float *dz = dev_from(z, sizeof(float) * n), *dg = with_grad ? poisoned_dev(n) : NULL;
    int32_t *dl = dev_from(lab, sizeof(int32_t) * lstride * batch);
    float *dloss = poisoned_dev(batch), *dacc = poisoned_dev(batch);
    DL_CHECK(dl_softmax_xent(be, dz, dl, rows, classes, batch, lstride, dg, dloss, dacc) == DL_OK,
             "softmax_xent: %s", dl_errmsg());
    float *loss = malloc(sizeof(float) * batch), *acc = malloc(sizeof(float) * batch);
    to_host(loss, dloss, sizeof(float) * batch);
    to_host(acc, dacc, sizeof(float) * batch);
    DL_CHECK(dl_rel_err(loss, lref, batch) < 2e-6, "softmax loss %dx%d: rel err %.3g", rows,
             classes, dl_rel_err(loss, lref, batch));
    DL_CHECK(dl_rel_err(acc, aref, batch) < 1e-7, "softmax accuracy %dx%d: rel err %.3g", rows,
             classes, dl_rel_err(acc, aref, batch));
    if (with_grad) {
        float *g = malloc(sizeof(float) * n);
        to_host(g, dg, sizeof(float) * n);
        DL_CHECK(dl_rel_err(g, gref, n) < 1e-5, "softmax grad %dx%d: rel err %.3g", rows, classes,
                 dl_rel_err(g, gref, n));
        free(g);
        dl_free(be, dg);
    }
    dl_free(be, dz), dl_free(be, dl), dl_free(be, dloss), dl_free(be, dacc);
    free(z), free(lab), free(gref), free(lref), free(aref), free(loss), free(acc);
}

static void test_softmax_xent(void)
{
    check_softmax(1, 1, 1, true, 1);
    check_softmax(100, 3, 1, true, 3);
    check_softmax(50, 3, 4, false, 3);
    check_softmax(1031, 10, 2, true, 5);
    check_softmax(64, 7, 1, true, 80); /* large logits: max-subtraction keeps it finite */
}

/* Labels outside [0, classes): the row's loss and gradient row are NaN and
 * the row counts as wrong, on every backend; the other rows and models are
 * untouched. 4 models of 4x4 logits are 256 bytes, a whole number of the
 * CPU allocator's 64-byte blocks, so a read at logits[-1] (model 0's label
 * -1) or one past the end (model 3's last label 4) leaves the allocation
 * and AddressSanitizer reports it. */
static void test_softmax_bad_labels(void)
{
    enum { R = 4, C = 4, B = 4, N = R * C * B };
    float *z = rand_floats(N, -3, 3);
    int32_t lab[R * B];
    for (int i = 0; i < R * B; i++) lab[i] = (int32_t)dl_rng_below(&rng, C);
    lab[0 * R + 0] = -1; /* model 0, first row */
    lab[1 * R + 2] = C;  /* model 1: one past the last class */
    lab[3 * R + 3] = C;  /* model 3, last row: one past the end of logits */
    const bool bad_model[B] = {true, true, false, true};
    double gref[N], lref[B], aref[B];
    for (int b = 0; b < B; b++) {
        double lsum = 0;
        int correct = 0;
        for (int r = 0; r < R; r++) {
            const float *zr = z + (b * R + r) * C;
            int y = lab[b * R + r], arg = 0;
            for (int c = 1; c < C; c++)
                if (zr[c] > zr[arg]) arg = c;
            double mx = zr[arg], se = 0;
            for (int c = 0; c < C; c++) se += exp((double)zr[c] - mx);
            bool ok = y >= 0 && y < C;
            if (ok) lsum += log(se) - ((double)zr[y] - mx);
            correct += ok && arg == y;
            for (int c = 0; c < C; c++)
                gref[(b * R + r) * C + c] =
                    ok ? (exp((double)zr[c] - mx) / se - (c == y)) / R : NAN;
        }
        lref[b] = lsum / R;
        aref[b] = (double)correct / R;
    }
    float *dz = dev_from(z, sizeof(float) * N), *dg = poisoned_dev(N);
    int32_t *dl = dev_from(lab, sizeof lab);
    float *dloss = poisoned_dev(B), *dacc = poisoned_dev(B);
    for (int with_grad = 1; with_grad >= 0; with_grad--) {
        DL_CHECK(dl_softmax_xent(be, dz, dl, R, C, B, R, with_grad ? dg : NULL, dloss, dacc) ==
                     DL_OK,
                 "softmax_xent with bad labels: %s", dl_errmsg());
        float loss[B], acc[B];
        to_host(loss, dloss, sizeof loss);
        to_host(acc, dacc, sizeof acc);
        for (int b = 0; b < B; b++) {
            if (bad_model[b])
                DL_CHECK(isnan(loss[b]), "model %d has a bad label but loss %g", b,
                         (double)loss[b]);
            else
                DL_CHECK_NEAR(loss[b], lref[b], 2e-6 * fabs(lref[b]),
                              "loss of the model without bad labels");
            DL_CHECK_NEAR(acc[b], aref[b], 1e-7, "accuracy (bad rows count as wrong)");
        }
    }
    float g[N];
    to_host(g, dg, sizeof g);
    for (int row = 0; row < R * B; row++) {
        bool ok = lab[row] >= 0 && lab[row] < C;
        for (int c = 0; c < C; c++) {
            float v = g[row * C + c];
            if (!ok)
                DL_CHECK(isnan(v), "row %d (label %d): gradient %g, expected NaN", row, lab[row],
                         (double)v);
            else
                DL_CHECK(fabs(v - gref[row * C + c]) <= 1e-6, "row %d: gradient %g, expected %g",
                         row, (double)v, gref[row * C + c]);
        }
    }
    dl_free(be, dz), dl_free(be, dg), dl_free(be, dl), dl_free(be, dloss), dl_free(be, dacc);
    free(z);
}

static void check_col_sum(int rows, int cols, int batch)
{
    size_t n = (size_t)rows * cols * batch, ostride = (size_t)cols + 5;
    float *g = rand_floats(n, -1, 1);
    double *ref = calloc(ostride * batch, sizeof(double));
    float *out = malloc(sizeof(float) * ostride * batch);
    for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                ref[b * ostride + c] += g[((size_t)b * rows + r) * cols + c];
    float *dg = dev_from(g, sizeof(float) * n),
          *dout = dev_from(NULL, sizeof(float) * ostride * batch);
    DL_CHECK(dl_col_sum(be, dg, rows, cols, batch, dout, ostride) == DL_OK, "col_sum: %s",
             dl_errmsg());
    to_host(out, dout, sizeof(float) * ostride * batch);
    DL_CHECK(dl_rel_err(out, ref, ostride * batch) < 1e-6, "col_sum %dx%d batch %d: rel err %.3g",
             rows, cols, batch, dl_rel_err(out, ref, ostride * batch));
    dl_free(be, dg), dl_free(be, dout);
    free(g), free(ref), free(out);
}

static void test_col_sum(void)
{
    check_col_sum(1, 1, 1);
    check_col_sum(100, 12, 1);
    check_col_sum(100, 3, 6);
    check_col_sum(20011, 67, 1);
    check_col_sum(7, 130, 3);
}

/* --- memory, record, graphs -------------------------------------------- */

static void test_memory(void)
{
    const size_t n = 12345;
    float *h = rand_floats(n, -1, 1), *back = malloc(sizeof(float) * n);
    float *d = dev_from(h, sizeof(float) * n), *d2 = poisoned_dev(n);
    DL_CHECK(dl_copy(be, d2, d, sizeof(float) * n) == DL_OK, "copy: %s", dl_errmsg());
    to_host(back, d2, sizeof(float) * n);
    DL_CHECK(memcmp(h, back, sizeof(float) * n) == 0,
             "upload/copy/download round trip changed data");
    DL_CHECK(dl_fill(be, d2, n, 3.25f) == DL_OK, "fill: %s", dl_errmsg());
    to_host(back, d2, sizeof(float) * n);
    bool all = true;
    for (size_t i = 0; i < n; i++) all &= back[i] == 3.25f;
    DL_CHECK(all, "fill left other values");
    float *z = dev_from(NULL, sizeof(float) * n);
    to_host(back, z, sizeof(float) * n);
    all = true;
    for (size_t i = 0; i < n; i++) all &= back[i] == 0.0f;
    DL_CHECK(all, "alloc did not zero the buffer");
    size_t fr = 0, tot = 0;
    DL_CHECK(dl_mem_info(be, &fr, &tot) == DL_OK && tot > 0 && fr <= tot,
             "mem_info: free %zu total %zu", fr, tot);
    dl_free(be, d), dl_free(be, d2), dl_free(be, z);
    dl_free(be, NULL);
    free(h), free(back);
}

typedef struct {
    float *hist, *vals, *tmp;
    int32_t *counter;
    float *x;
} graph_ctx;

/* Each replay appends vals and then doubles them: the recorded history
 * shows whether replays run in order and see the previous replay's data. */
static dl_status graph_epoch(dl_backend *b, void *vctx)
{
    graph_ctx *c = vctx;
    DL_TRY(dl_record(b, c->hist, c->vals, 3, c->counter));
    dl_gemm_args g = {.m = 1,
                      .n = 3,
                      .k = 1,
                      .alpha = 2.0f,
                      .a = c->x,
                      .lda = 1,
                      .b = c->vals,
                      .ldb = 3,
                      .beta = 0.0f,
                      .c = c->tmp,
                      .ldc = 3,
                      .batch = 1};
    DL_TRY(dl_gemm(b, &g)); /* tmp = 2 * x * vals, x = 1 */
    return dl_copy(b, c->vals, c->tmp, 3 * sizeof(float));
}

static void test_record_and_graph(void)
{
    const float v0[3] = {1, 2, 3}, one = 1.0f;
    graph_ctx c = {.hist = poisoned_dev(3 * 6),
                   .vals = dev_from(v0, sizeof v0),
                   .tmp = poisoned_dev(3),
                   .counter = dev_from(NULL, sizeof(int32_t)),
                   .x = dev_from(&one, sizeof one)};
    dl_graph *g = NULL;
    DL_CHECK(dl_graph_create(be, graph_epoch, &c, &g) == DL_OK, "graph_create: %s", dl_errmsg());
    if (!g) return;
    DL_CHECK(dl_graph_run(be, g, 4) == DL_OK, "graph_run: %s", dl_errmsg());
    DL_CHECK(dl_graph_run(be, g, 2) == DL_OK, "graph_run: %s", dl_errmsg());
    float hist[18];
    int32_t count;
    to_host(hist, c.hist, sizeof hist);
    to_host(&count, c.counter, sizeof count);
    DL_CHECK(count == 6, "counter is %d after 6 replays", count);
    for (int e = 0; e < 6; e++)
        for (int i = 0; i < 3; i++)
            DL_CHECK(hist[e * 3 + i] == v0[i] * (float)(1 << e),
                     "replay %d value %d is %g, expected %g", e, i, (double)hist[e * 3 + i],
                     (double)(v0[i] * (float)(1 << e)));
    dl_graph_free(be, g);
    dl_free(be, c.hist), dl_free(be, c.vals), dl_free(be, c.tmp), dl_free(be, c.counter),
        dl_free(be, c.x);
}

static void test_timer(void)
{
    double s = -1;
    DL_CHECK(dl_timer_start(be) == DL_OK, "timer_start: %s", dl_errmsg());
    DL_CHECK(dl_sync(be) == DL_OK, "sync: %s", dl_errmsg());
    DL_CHECK(dl_timer_stop(be, &s) == DL_OK, "timer_stop: %s", dl_errmsg());
    DL_CHECK(s >= 0 && s < 10, "timer gave %g s for nothing", s);
}

/* --- the checked entry points ----------------------------------------- */

/* A call that breaks its op's contract returns DL_E_RUNTIME with a message
 * that starts "dl_<op>: ". */
#define REFUSED(op, call)                                                                          \
    do {                                                                                           \
        dl_clear_error();                                                                          \
        dl_status st_ = (call);                                                                    \
        DL_CHECK(st_ == DL_E_RUNTIME && strncmp(dl_errmsg(), "dl_" op ": ", strlen(op) + 5) == 0,  \
                 "%s gave %s \"%s\", expected runtime \"dl_" op ": ...\"", #call,                  \
                 dl_status_name(st_), dl_errmsg());                                                \
    } while (0)

static dl_status noop_epoch(dl_backend *b, void *ctx) { return DL_OK; }

/* Every entry point refuses what its contract in backend.h forbids, before
 * anything reaches the backend: the buffers the bad calls name stay as they
 * were, and so do Adam's step counter and record's counter. */
static void test_contract_refusals(void)
{
    enum { G = 64 };
    float *gh = rand_floats(G, -1, 1), back[G];
    float *guard = dev_from(gh, sizeof(float) * G), *x = dev_from(gh, sizeof(float) * G);
    int32_t *lab = dev_from(NULL, sizeof(int32_t) * G), *t = dev_from(NULL, sizeof(int32_t));
    void *p = guard;

    /* memory */
    REFUSED("alloc", dl_alloc(NULL, 16, &p));
    REFUSED("alloc", dl_alloc(be, 16, NULL));
    REFUSED("upload", dl_upload(be, NULL, gh, 4));
    REFUSED("upload", dl_upload(be, guard, NULL, 4));
    REFUSED("download", dl_download(be, back, NULL, 4));
    REFUSED("download", dl_download(be, NULL, guard, 4));
    REFUSED("copy", dl_copy(be, guard + 1, guard, 8));
    REFUSED("copy", dl_copy(be, guard, guard, 4));
    REFUSED("copy", dl_copy(be, NULL, x, 4));
    REFUSED("fill", dl_fill(be, NULL, 3, 1.0f));
    REFUSED("fill", dl_fill(be, guard, SIZE_MAX, 1.0f));
    REFUSED("mem_info", dl_mem_info(NULL, NULL, NULL));

    /* gemm: 2x2 products into guard, each with one thing wrong */
    const dl_gemm_args ok = {.m = 2,
                             .n = 2,
                             .k = 2,
                             .alpha = 1,
                             .a = x,
                             .lda = 2,
                             .b = x,
                             .ldb = 2,
                             .c = guard,
                             .ldc = 2,
                             .batch = 1};
    dl_gemm_args g;
    REFUSED("gemm", dl_gemm(be, NULL));
    REFUSED("gemm", dl_gemm(NULL, &ok));
    g = ok, g.m = -1;
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.k = -2;
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.batch = 0;
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.k = 3; /* A is 2x3: lda 2 is too short */
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.trans_a = true, g.m = 3, g.ldc = 2, g.n = 1, g.lda = 2; /* stored A is 2x3 */
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.trans_b = true, g.k = 3, g.lda = 3; /* stored B is 2x3, ldb 2 */
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.ldc = 1;
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.ldb = 0, g.n = 0, g.ldc = 0; /* empty, but ldb must still be >= 1 */
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.a = NULL;
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.b = NULL;
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.c = NULL;
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.batch = 2, g.stride_c = 3; /* each C spans 4 elements: models would collide */
    REFUSED("gemm", dl_gemm(be, &g));
    g = ok, g.batch = 3, g.stride_c = 4, g.stride_a = SIZE_MAX / 2;
    REFUSED("gemm", dl_gemm(be, &g));
    REFUSED("gemm", dl_matmul(be, false, false, 2, 2, 2, 1.0f, NULL, x, 0.0f, guard));
    REFUSED("svd", dl_svd(be, -1, 2, x, guard, NULL, NULL));
    REFUSED("svd", dl_svd(be, 2, 2, NULL, guard, NULL, NULL));
    REFUSED("svd", dl_svd(be, 2, 2, x, NULL, guard, guard + 4));

    /* random numbers */
    REFUSED("rand_uniform", dl_rand_uniform(be, NULL, 4, 1, 0));
    REFUSED("rand_normal", dl_rand_normal(be, NULL, 4, 0.0f, 1.0f, 1, 0));
    REFUSED("rand_normal", dl_rand_normal(be, guard, 4, NAN, 1.0f, 1, 0));
    REFUSED("rand_normal", dl_rand_normal(be, guard, 4, 0.0f, -1.0f, 1, 0));
    REFUSED("rand_normal", dl_rand_normal(be, guard, 4, 0.0f, INFINITY, 1, 0));

    /* custom ops */
    REFUSED("residual_sse", dl_residual_sse(be, guard, x, 4, 0, 4, guard + 8));
    REFUSED("residual_sse", dl_residual_sse(be, guard, x, 4, 1, 4, NULL));
    REFUSED("residual_sse", dl_residual_sse(be, guard, NULL, 4, 1, 4, guard + 8));
    REFUSED("residual_sse", dl_residual_sse(be, guard, x, SIZE_MAX / 2, 3, 0, guard + 8));

    const dl_optim sgd = {.kind = DL_OPTIM_SGD, .lr = 0.1f};
    const dl_optim adam = {
        .kind = DL_OPTIM_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    const dl_optim mom = {.kind = DL_OPTIM_MOMENTUM, .lr = 0.1f, .momentum = 0.9f};
    dl_optim o;
    REFUSED("optim_step", dl_optim_step(be, NULL, guard, x, NULL, NULL, 4, NULL));
    o = sgd, o.lr = 0.0f;
    REFUSED("optim_step", dl_optim_step(be, &o, guard, x, NULL, NULL, 4, NULL));
    o = sgd, o.lr = NAN;
    REFUSED("optim_step", dl_optim_step(be, &o, guard, x, NULL, NULL, 4, NULL));
    o = sgd, o.kind = (dl_optim_kind)7;
    REFUSED("optim_step", dl_optim_step(be, &o, guard, x, NULL, NULL, 4, NULL));
    REFUSED("optim_step", dl_optim_step(be, &sgd, NULL, x, NULL, NULL, 4, NULL));
    REFUSED("optim_step", dl_optim_step(be, &sgd, guard, NULL, NULL, NULL, 4, NULL));
    o = mom, o.momentum = 1.0f;
    REFUSED("optim_step", dl_optim_step(be, &o, guard, x, guard + 8, NULL, 4, NULL));
    REFUSED("optim_step", dl_optim_step(be, &mom, guard, x, NULL, NULL, 4, NULL));
    o = adam, o.beta1 = 1.0f;
    REFUSED("optim_step", dl_optim_step(be, &o, guard, x, guard + 8, guard + 16, 4, t));
    o = adam, o.beta2 = -0.5f;
    REFUSED("optim_step", dl_optim_step(be, &o, guard, x, guard + 8, guard + 16, 4, t));
    o = adam, o.eps = 0.0f;
    REFUSED("optim_step", dl_optim_step(be, &o, guard, x, guard + 8, guard + 16, 4, t));
    REFUSED("optim_step", dl_optim_step(be, &adam, guard, x, guard + 8, guard + 16, 4, NULL));
    REFUSED("optim_step", dl_optim_step(be, &adam, guard, x, guard + 8, NULL, 4, t));
    REFUSED("optim_step", dl_optim_step(be, &adam, guard, x, NULL, guard + 16, 4, t));

    REFUSED("bias_act", dl_bias_act(be, guard, x, -1, 4, 1, 0, true));
    REFUSED("bias_act", dl_bias_act(be, guard, x, 2, 4, 0, 0, true));
    REFUSED("bias_act", dl_bias_act(be, guard, NULL, 2, 4, 1, 0, true));
    REFUSED("bias_act", dl_bias_act(be, NULL, x, 2, 4, 1, 0, true));
    REFUSED("relu_bwd", dl_relu_bwd(be, guard, NULL, 4));
    REFUSED("relu_bwd", dl_relu_bwd(be, NULL, x, 4));

    REFUSED("softmax_xent", dl_softmax_xent(be, x, lab, 0, 4, 1, 0, guard, guard, guard + 1));
    REFUSED("softmax_xent", dl_softmax_xent(be, x, lab, 4, 0, 1, 0, guard, guard, guard + 1));
    REFUSED("softmax_xent", dl_softmax_xent(be, x, lab, 4, 4, 0, 0, guard, guard, guard + 1));
    REFUSED("softmax_xent", dl_softmax_xent(be, x, NULL, 4, 4, 1, 0, guard, guard, guard + 1));
    REFUSED("softmax_xent", dl_softmax_xent(be, NULL, lab, 4, 4, 1, 0, guard, guard, guard + 1));
    REFUSED("softmax_xent", dl_softmax_xent(be, guard, lab, 4, 4, 1, 0, guard + 15, NULL, NULL));

    REFUSED("col_sum", dl_col_sum(be, x, 4, -1, 1, guard, 0));
    REFUSED("col_sum", dl_col_sum(be, x, 4, 4, 0, guard, 4));
    REFUSED("col_sum", dl_col_sum(be, x, 4, 4, 1, NULL, 4));
    REFUSED("col_sum", dl_col_sum(be, NULL, 4, 4, 1, guard, 4));
    REFUSED("col_sum", dl_col_sum(be, x, 2, 4, 2, guard, 3)); /* outputs would overlap */

    REFUSED("record", dl_record(be, guard, x, -1, t));
    REFUSED("record", dl_record(be, guard, x, 4, NULL));
    REFUSED("record", dl_record(be, guard, NULL, 4, t));
    REFUSED("record", dl_record(be, NULL, x, 4, t));

    /* sync, timing, graphs */
    REFUSED("sync", dl_sync(NULL));
    REFUSED("timer_start", dl_timer_start(NULL));
    double secs = -1;
    REFUSED("timer_stop", dl_timer_stop(be, &secs));
    DL_CHECK(secs == -1, "a refused timer_stop wrote %g", secs);
    dl_graph *gr = (dl_graph *)guard;
    REFUSED("graph_create", dl_graph_create(be, NULL, NULL, &gr));
    DL_CHECK(gr == NULL, "a refused graph_create left a graph");
    REFUSED("graph_create", dl_graph_create(be, noop_epoch, NULL, NULL));
    REFUSED("graph_run", dl_graph_run(be, NULL, 1));
    DL_CHECK(dl_graph_create(be, noop_epoch, NULL, &gr) == DL_OK, "graph_create: %s", dl_errmsg());
    REFUSED("graph_run", dl_graph_run(be, gr, -1));
    dl_graph_free(be, gr);
    dl_graph_free(be, NULL);
    dl_free(be, NULL);
    dl_free(NULL, guard); /* no backend: nothing to free with, nothing happens */

    /* nothing the refused calls named has changed */
    to_host(back, guard, sizeof back);
    DL_CHECK(memcmp(back, gh, sizeof back) == 0, "a refused call wrote to its output buffer");
    int32_t count = -1;
    to_host(&count, t, sizeof count);
    DL_CHECK(count == 0, "refused calls moved the step/record counter to %d", count);
    dl_free(be, guard), dl_free(be, x), dl_free(be, lab), dl_free(be, t);
    free(gh);
}

/* Empty ops succeed without touching their pointers (NULL is fine), and the
 * ones whose contract says so still write: sums over no element, Adam's
 * step and record's counter. */
static void test_contract_empty(void)
{
    void *p = &p;
    DL_CHECK(dl_alloc(be, 0, &p) == DL_OK && p == NULL, "alloc(0) did not give NULL: %s",
             dl_errmsg());
    DL_CHECK(dl_upload(be, NULL, NULL, 0) == DL_OK, "upload of 0 bytes: %s", dl_errmsg());
    DL_CHECK(dl_download(be, NULL, NULL, 0) == DL_OK, "download of 0 bytes: %s", dl_errmsg());
    DL_CHECK(dl_copy(be, NULL, NULL, 0) == DL_OK, "copy of 0 bytes: %s", dl_errmsg());
    DL_CHECK(dl_fill(be, NULL, 0, 1.0f) == DL_OK, "fill of 0: %s", dl_errmsg());
    DL_CHECK(dl_mem_info(be, NULL, NULL) == DL_OK, "mem_info without outputs: %s", dl_errmsg());
    dl_gemm_args g = {.m = 0, .n = 3, .k = 2, .alpha = 1, .lda = 2, .ldb = 3, .ldc = 3, .batch = 2};
    DL_CHECK(dl_gemm(be, &g) == DL_OK, "gemm with m = 0: %s", dl_errmsg());
    DL_CHECK(dl_svd(be, 0, 5, NULL, NULL, NULL, NULL) == DL_OK, "svd of 0x5: %s", dl_errmsg());
    DL_CHECK(dl_rand_uniform(be, NULL, 0, 1, 0) == DL_OK, "rand_uniform of 0: %s", dl_errmsg());
    DL_CHECK(dl_rand_normal(be, NULL, 0, 0.0f, 0.0f, 1, 0) == DL_OK, "rand_normal of 0: %s",
             dl_errmsg());
    DL_CHECK(dl_bias_act(be, NULL, NULL, 0, 4, 1, 0, true) == DL_OK, "bias_act of 0 rows: %s",
             dl_errmsg());
    DL_CHECK(dl_relu_bwd(be, NULL, NULL, 0) == DL_OK, "relu_bwd of 0: %s", dl_errmsg());
    DL_CHECK(dl_col_sum(be, NULL, 4, 0, 3, NULL, 0) == DL_OK, "col_sum of 0 columns: %s",
             dl_errmsg());

    /* Writes that an empty op still makes. */
    float *out = poisoned_dev(8), *e = dev_from(NULL, sizeof(float)), h[8];
    int32_t *t = dev_from(NULL, sizeof(int32_t)), count = -1;
    const dl_optim adam = {
        .kind = DL_OPTIM_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    DL_CHECK(dl_col_sum(be, NULL, 0, 3, 2, out, 4) == DL_OK, "col_sum of 0 rows: %s", dl_errmsg());
    to_host(h, out, sizeof h);
    DL_CHECK(h[0] == 0 && h[1] == 0 && h[2] == 0 && isnan(h[3]) && h[4] == 0 && h[5] == 0 &&
                 h[6] == 0 && isnan(h[7]),
             "col_sum of 0 rows must write zeros to the outputs and nothing between them");
    DL_CHECK(dl_residual_sse(be, e, e, 0, 2, 0, out) == DL_OK, "residual_sse of 0: %s",
             dl_errmsg());
    to_host(h, out, sizeof h);
    DL_CHECK(h[0] == 0 && h[1] == 0, "residual_sse over no element gave %g, %g", (double)h[0],
             (double)h[1]);
    DL_CHECK(dl_optim_step(be, &adam, NULL, NULL, NULL, NULL, 0, t) == DL_OK,
             "adam over no parameter: %s", dl_errmsg());
    DL_CHECK(dl_record(be, NULL, NULL, 0, t) == DL_OK, "record of 0 values: %s", dl_errmsg());
    to_host(&count, t, sizeof count);
    DL_CHECK(count == 2, "adam's step and record's counter moved to %d, expected 2", count);
    DL_CHECK(dl_timer_start(be) == DL_OK && dl_timer_stop(be, NULL) == DL_OK,
             "timer_stop without an output: %s", dl_errmsg());
    dl_free(be, out), dl_free(be, e), dl_free(be, t);
}

int main(int argc, char **argv)
{
    be = dl_test_backend(argc, argv);
    dl_rng_seed(&rng, 20261128);
    DL_RUN(test_memory);
    DL_RUN(test_gemm);
    DL_RUN(test_svd);
    DL_RUN(test_rand);
    DL_RUN(test_rand_stream);
    DL_RUN(test_residual_sse);
    DL_RUN(test_optim);
    DL_RUN(test_bias_act);
    DL_RUN(test_relu_bwd);
    DL_RUN(test_softmax_xent);
    DL_RUN(test_softmax_bad_labels);
    DL_RUN(test_col_sum);
    DL_RUN(test_record_and_graph);
    DL_RUN(test_timer);
    DL_RUN(test_contract_refusals);
    DL_RUN(test_contract_empty);
    char suite[32];
    snprintf(suite, sizeof suite, "test_ops[%s]", be->name);
    dl_backend_destroy(be);
    return dl_test_summary(suite);
}
