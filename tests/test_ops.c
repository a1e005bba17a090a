/* Every backend op against a float64 reference on fresh random inputs of
 * several shapes, odd sizes included (ggml's test-backend-ops is the model).
 * Run with --backend cpu or --backend cuda; the cuda run exits 77 (skipped)
 * where no GPU answers. */
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
    if (be->alloc(be, bytes ? bytes : 4, &d) != DL_OK) {
        fprintf(stderr, "alloc failed: %s\n", dl_errmsg());
        exit(1);
    }
    if (host && be->upload(be, d, host, bytes) != DL_OK) {
        fprintf(stderr, "upload failed: %s\n", dl_errmsg());
        exit(1);
    }
    return d;
}

static void to_host(void *host, const void *dev, size_t bytes)
{
    if (be->download(be, host, dev, bytes) != DL_OK) {
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
    dl_status st = be->gemm(be, &g);
    DL_CHECK(st == DL_OK, "gemm failed: %s", dl_errmsg());
    to_host(c, dc, sizeof(float) * nc);
    for (int i = 0; i < batch; i++)
        dl_ref_dgemm(ta, tb, m, n, k, alpha, ad + i * sa, lda, bd + i * sb, ldb, beta, cd + i * sc,
                     ldc);
    double err = dl_rel_err(c, cd, nc);
    DL_CHECK(err < 2e-6 * sqrt((double)k + 1), "gemm ta=%d tb=%d %dx%dx%d batch %d: rel err %.3g",
             ta, tb, m, n, k, batch, err);
    be->free(be, da), be->free(be, db), be->free(be, dc);
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
    dl_status st = be->svd(be, m, n, da, ds, du, dvt);
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
    be->free(be, da), be->free(be, ds), be->free(be, du), be->free(be, dvt);
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
    DL_CHECK(be->rand_uniform(be, d, n, 42, 0) == DL_OK, "rand_uniform: %s", dl_errmsg());
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
    DL_CHECK(be->rand_uniform(be, d, n, 42, 0) == DL_OK, "rand_uniform: %s", dl_errmsg());
    to_host(h2, d, sizeof(float) * n);
    DL_CHECK(memcmp(h, h2, sizeof(float) * n) == 0, "rand_uniform is not reproducible");
    DL_CHECK(be->rand_uniform(be, d, 10, 42, 100) == DL_OK, "rand_uniform: %s", dl_errmsg());
    to_host(h2, d, sizeof(float) * 10);
    DL_CHECK(memcmp(h + 100, h2, sizeof(float) * 10) == 0,
             "offset 100 is not the stream from element 100");
    DL_CHECK(be->rand_uniform(be, d, 10, 43, 0) == DL_OK, "rand_uniform: %s", dl_errmsg());
    to_host(h2, d, sizeof(float) * 10);
    DL_CHECK(memcmp(h, h2, sizeof(float) * 10) != 0, "seeds 42 and 43 gave the same numbers");

    DL_CHECK(be->rand_normal(be, d, n, 1.5f, 2.0f, 7, 0) == DL_OK, "rand_normal: %s", dl_errmsg());
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
        cpu->alloc(cpu, sizeof(float) * 1001, (void **)&c);
        cpu->rand_uniform(cpu, c, 1001, 9, 3);
        be->rand_uniform(be, d, 1001, 9, 3);
        to_host(h, d, sizeof(float) * 1001);
        DL_CHECK(memcmp(h, c, sizeof(float) * 1001) == 0,
                 "uniform numbers differ from the CPU backend's");
        cpu->rand_normal(cpu, c, 1001, 0.0f, 1.0f, 9, 0);
        be->rand_normal(be, d, 1001, 0.0f, 1.0f, 9, 0);
        to_host(h, d, sizeof(float) * 1001);
        double diff = 0;
        for (int i = 0; i < 1001; i++) diff = fmax(diff, fabs((double)h[i] - c[i]));
        DL_CHECK(diff < 1e-5, "normal numbers differ from the CPU backend's by %.3g", diff);
        cpu->free(cpu, c);
        dl_backend_destroy(cpu);
    }
    be->free(be, d);
    free(h), free(h2);
}

/* Calls that continue a stream (or skip a little ahead, or jump) give the
 * same numbers as calls made from a freshly positioned generator: the CPU
 * backend keeps its generator where the last call left it. */
static void draw(int kind, float *d, size_t n, uint64_t seed, uint64_t off, float *out)
{
    dl_status st = kind ? be->rand_normal(be, d, n, 0.0f, 1.0f, seed, off)
                        : be->rand_uniform(be, d, n, seed, off);
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
    be->free(be, d);
}

/* --- custom ops --------------------------------------------------------- */

static void check_sq_err(size_t n, int batch, bool shared)
{
    size_t na = shared ? n : n * batch;
    float *e = rand_floats(n * batch, -2, 2), *a = rand_floats(na, -2, 2);
    float *de = dev_from(e, sizeof(float) * n * batch), *da = dev_from(a, sizeof(float) * na);
    float *ds = poisoned_dev(batch), *ds2 = poisoned_dev(batch);
    DL_CHECK(be->sq_err(be, de, da, n, batch, shared ? 0 : n, ds) == DL_OK, "sq_err: %s",
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
    DL_CHECK(dl_rel_err(s, ref, batch) < 1e-6, "sq_err n=%zu batch=%d: rel err %.3g", n, batch,
             dl_rel_err(s, ref, batch));
    DL_CHECK(dl_rel_err(eo, eref, n * batch) < 1e-7, "sq_err residual n=%zu: rel err %.3g", n,
             dl_rel_err(eo, eref, n * batch));
    /* Deterministic: the same inputs give bit-identical sums. */
    DL_CHECK(be->upload(be, de, e, sizeof(float) * n * batch) == DL_OK, "upload");
    DL_CHECK(be->sq_err(be, de, da, n, batch, shared ? 0 : n, ds2) == DL_OK, "sq_err: %s",
             dl_errmsg());
    float *s2 = malloc(sizeof(float) * batch);
    to_host(s2, ds2, sizeof(float) * batch);
    DL_CHECK(memcmp(s, s2, sizeof(float) * batch) == 0, "sq_err n=%zu not bit-identical on rerun",
             n);
    be->free(be, de), be->free(be, da), be->free(be, ds), be->free(be, ds2);
    free(e), free(a), free(s), free(s2), free(eo), free(ref), free(eref);
}

static void test_sq_err(void)
{
    check_sq_err(1, 1, false);
    check_sq_err(600, 1, false);
    check_sq_err(600, 7, true);
    check_sq_err(1000003, 1, false);
    check_sq_err(70001, 3, false);
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
        be->upload(be, dg, g, sizeof(float) * n);
        DL_CHECK(be->optim_step(be, &o, dp, dg, dm, dv, n, dt) == DL_OK, "optim_step: %s",
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
    be->free(be, dp), be->free(be, dg), be->free(be, dm), be->free(be, dv), be->free(be, dt);
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
    DL_CHECK(be->bias_act(be, dy, db, rows, cols, batch, stride, relu) == DL_OK, "bias_act: %s",
             dl_errmsg());
    to_host(y, dy, sizeof(float) * n);
    DL_CHECK(dl_rel_err(y, ref, n) < 1e-7, "bias_act %dx%d batch %d relu %d: rel err %.3g", rows,
             cols, batch, relu, dl_rel_err(y, ref, n));
    be->free(be, dy), be->free(be, db);
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
    DL_CHECK(be->relu_bwd(be, ddh, dhh, n) == DL_OK, "relu_bwd: %s", dl_errmsg());
    to_host(dh, ddh, sizeof(float) * n);
    DL_CHECK(dl_rel_err(dh, ref, n) == 0.0, "relu_bwd differs from the reference");
    be->free(be, ddh), be->free(be, dhh);
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
    DL_CHECK(be->softmax_xent(be, dz, dl, rows, classes, batch, lstride, dg, dloss, dacc) == DL_OK,
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
        be->free(be, dg);
    }
    be->free(be, dz), be->free(be, dl), be->free(be, dloss), be->free(be, dacc);
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
    DL_CHECK(be->col_sum(be, dg, rows, cols, batch, dout, ostride) == DL_OK, "col_sum: %s",
             dl_errmsg());
    to_host(out, dout, sizeof(float) * ostride * batch);
    DL_CHECK(dl_rel_err(out, ref, ostride * batch) < 1e-6, "col_sum %dx%d batch %d: rel err %.3g",
             rows, cols, batch, dl_rel_err(out, ref, ostride * batch));
    be->free(be, dg), be->free(be, dout);
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
    DL_CHECK(be->copy(be, d2, d, sizeof(float) * n) == DL_OK, "copy: %s", dl_errmsg());
    to_host(back, d2, sizeof(float) * n);
    DL_CHECK(memcmp(h, back, sizeof(float) * n) == 0,
             "upload/copy/download round trip changed data");
    DL_CHECK(be->fill(be, d2, n, 3.25f) == DL_OK, "fill: %s", dl_errmsg());
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
    DL_CHECK(be->mem_info(be, &fr, &tot) == DL_OK && tot > 0 && fr <= tot,
             "mem_info: free %zu total %zu", fr, tot);
    be->free(be, d), be->free(be, d2), be->free(be, z);
    be->free(be, NULL);
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
    DL_TRY(b->record(b, c->hist, c->vals, 3, c->counter));
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
    DL_TRY(b->gemm(b, &g)); /* tmp = 2 * x * vals, x = 1 */
    return b->copy(b, c->vals, c->tmp, 3 * sizeof(float));
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
    DL_CHECK(be->graph_create(be, graph_epoch, &c, &g) == DL_OK, "graph_create: %s", dl_errmsg());
    if (!g) return;
    DL_CHECK(be->graph_run(be, g, 4) == DL_OK, "graph_run: %s", dl_errmsg());
    DL_CHECK(be->graph_run(be, g, 2) == DL_OK, "graph_run: %s", dl_errmsg());
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
    be->graph_free(be, g);
    be->free(be, c.hist), be->free(be, c.vals), be->free(be, c.tmp), be->free(be, c.counter),
        be->free(be, c.x);
}

static void test_timer(void)
{
    double s = -1;
    DL_CHECK(be->timer_start(be) == DL_OK, "timer_start: %s", dl_errmsg());
    DL_CHECK(be->sync(be) == DL_OK, "sync: %s", dl_errmsg());
    DL_CHECK(be->timer_stop(be, &s) == DL_OK, "timer_stop: %s", dl_errmsg());
    DL_CHECK(s >= 0 && s < 10, "timer gave %g s for nothing", s);
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
    DL_RUN(test_sq_err);
    DL_RUN(test_optim);
    DL_RUN(test_bias_act);
    DL_RUN(test_relu_bwd);
    DL_RUN(test_softmax_xent);
    DL_RUN(test_col_sum);
    DL_RUN(test_record_and_graph);
    DL_RUN(test_timer);
    char suite[32];
    snprintf(suite, sizeof suite, "test_ops[%s]", be->name);
    dl_backend_destroy(be);
    return dl_test_summary(suite);
}
