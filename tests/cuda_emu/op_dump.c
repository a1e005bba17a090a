/* Runs every backend op once on fixed pseudo-random inputs (odd shapes,
 * batches) plus a short factorisation, and writes each op's outputs to a
 * file, so that two runs can be compared op by op (compare_ops.py): the
 * emulated CUDA backend against the CPU backend in the cuda-emu build
 * (ctest cuda_emu_ops_vs_cpu), and, on a machine with a GPU, the real CUDA
 * backend against the emulated one (scripts/gpu-check.sh). The inputs
 * depend only on the seed, never on the backend.
 *
 * Each line of the output is one op: its name, the relative tolerance two
 * backends' results must agree to (0: bit for bit), then the values in C99
 * hex-float notation. The tolerances are the ones the suites use between a
 * float64 reference and a backend (tests/test_ops.c, test_factorise.c).
 *
 * usage: cuda_op_dump --backend cpu|cuda OUT_FILE       (exit 0, 1 on failure)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlab/backend.h"
#include "dlab/factorise.h"
#include "dlab/rng.h"

static dl_backend *be;
static dl_rng rng;
static FILE *out;

static void die(const char *what)
{
    fprintf(stderr, "cuda_op_dump: %s: %s\n", what, dl_errmsg());
    exit(1);
}

static void ok(dl_status st, const char *what)
{
    if (st != DL_OK) die(what);
}

static float *host_rand(size_t n, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    if (!x) die("out of memory");
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)dl_rng_uniform(&rng);
    return x;
}

static void *dev(const void *host, size_t bytes)
{
    void *d = NULL;
    ok(dl_alloc(be, bytes ? bytes : 4, &d), "alloc");
    if (host) ok(dl_upload(be, d, host, bytes), "upload");
    return d;
}

static float *dev_rand(size_t n, float lo, float hi)
{
    float *h = host_rand(n, lo, hi), *d = dev(h, sizeof(float) * n);
    free(h);
    return d;
}

/* Downloads n floats of d and writes them as one line. */
static void emit(const char *name, double tol, const float *d, size_t n)
{
    float *h = malloc(sizeof(float) * (n ? n : 1));
    if (!h) die("out of memory");
    ok(dl_download(be, h, d, sizeof(float) * n), "download");
    fprintf(out, "%s %.3g", name, tol);
    for (size_t i = 0; i < n; i++) fprintf(out, " %a", (double)h[i]);
    fputc('\n', out);
    free(h);
}

static void op_gemm(void)
{
    static const int shapes[][6] = {
        /* m, n, k, trans_a, trans_b, batch */
        {7, 5, 3, 0, 0, 1},   {33, 65, 17, 1, 0, 1}, {150, 4, 2, 0, 1, 1},   {5, 17, 7, 1, 1, 1},
        {19, 7, 23, 0, 0, 4}, {64, 48, 80, 1, 0, 3}, {257, 31, 129, 0, 1, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], batch = shapes[s][5];
        bool ta = shapes[s][3], tb = shapes[s][4];
        size_t sa = (size_t)m * k, sb = (size_t)k * n, sc = (size_t)m * n;
        float *a = dev_rand(sa * batch, -1, 1), *b = dev_rand(sb * batch, -1, 1);
        float *c = dev_rand(sc * batch, -1, 1);
        dl_gemm_args g = {.trans_a = ta,
                          .trans_b = tb,
                          .m = m,
                          .n = n,
                          .k = k,
                          .alpha = 1.5f,
                          .a = a,
                          .lda = ta ? m : k,
                          .stride_a = sa,
                          .b = b,
                          .ldb = tb ? k : n,
                          .stride_b = sb,
                          .beta = -0.5f,
                          .c = c,
                          .ldc = n,
                          .stride_c = sc,
                          .batch = batch};
        ok(dl_gemm(be, &g), "gemm");
        char name[64];
        snprintf(name, sizeof name, "gemm_%dx%dx%d_t%d%d_b%d", m, n, k, ta, tb, batch);
        emit(name, 2e-6 * sqrt((double)k + 1), c, sc * batch);
        dl_free(be, a), dl_free(be, b), dl_free(be, c);
    }
}

static void op_svd(void)
{
    static const int shapes[][2] = {{150, 4}, {4, 150}, {33, 20}, {20, 33}, {7, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], p = m < n ? m : n;
        float *a = dev_rand((size_t)m * n, -1, 1), *sv = dev(NULL, sizeof(float) * p);
        ok(dl_svd(be, m, n, a, sv, NULL, NULL), "svd");
        char name[64];
        snprintf(name, sizeof name, "svd_values_%dx%d", m, n);
        emit(name, 1e-5, sv, (size_t)p);
        dl_free(be, a), dl_free(be, sv);
    }
}

static void op_rand(void)
{
    float *d = dev(NULL, sizeof(float) * 1001);
    ok(dl_rand_uniform(be, d, 1001, 9, 3), "rand_uniform");
    emit("rand_uniform", 0, d, 1001);
    ok(dl_rand_normal(be, d, 1001, 0.5f, 2.0f, 9, 0), "rand_normal");
    emit("rand_normal", 1e-5, d, 1001);
    dl_free(be, d);
}

static void op_residual_sse(void)
{
    static const size_t ns[][2] = {{600, 1}, {600, 7}, {70001, 3}};
    for (size_t s = 0; s < 3; s++) {
        size_t n = ns[s][0];
        int batch = (int)ns[s][1];
        float *e = dev_rand(n * batch, -2, 2), *a = dev_rand(n * batch, -2, 2);
        float *sse = dev(NULL, sizeof(float) * batch);
        ok(dl_residual_sse(be, e, a, n, batch, n, sse), "residual_sse");
        char name[64];
        snprintf(name, sizeof name, "residual_sse_sse_%zu_b%d", n, batch);
        emit(name, 1e-6, sse, (size_t)batch);
        snprintf(name, sizeof name, "residual_sse_residual_%zu_b%d", n, batch);
        emit(name, 0, e, n * batch);
        dl_free(be, e), dl_free(be, a), dl_free(be, sse);
    }
}

static void op_optim(void)
{
    for (int k = 0; k < 3; k++) {
        dl_optim o = {.kind = (dl_optim_kind)k,
                      .lr = 0.05f,
                      .momentum = 0.9f,
                      .beta1 = 0.9f,
                      .beta2 = 0.999f,
                      .eps = 1e-8f};
        const size_t n = 1201;
        float *p = dev_rand(n, -1, 1), *m = dev(NULL, sizeof(float) * n);
        float *v = dev(NULL, sizeof(float) * n);
        int32_t *t = dev(NULL, sizeof(int32_t));
        for (int step = 0; step < 3; step++) {
            float *g = dev_rand(n, -1, 1);
            ok(dl_optim_step(be, &o, p, g, m, v, n, t), "optim_step");
            dl_free(be, g);
        }
        static const char *names[] = {"optim_sgd", "optim_momentum", "optim_adam"};
        emit(names[k], 1e-5, p, n);
        dl_free(be, p), dl_free(be, m), dl_free(be, v), dl_free(be, t);
    }
}

static void op_elementwise(void)
{
    const int rows = 37, cols = 13, batch = 3;
    const size_t n = (size_t)rows * cols * batch, stride = cols + 3;
    float *y = dev_rand(n, -1, 1), *bias = dev_rand(stride * batch, -1, 1);
    ok(dl_bias_act(be, y, bias, rows, cols, batch, stride, true), "bias_act");
    emit("bias_act_relu", 0, y, n);
    float *dh = dev_rand(n, -1, 1);
    ok(dl_relu_bwd(be, dh, y, n), "relu_bwd");
    emit("relu_bwd", 0, dh, n);
    ok(dl_fill(be, dh, 1001, 3.25f), "fill");
    emit("fill", 0, dh, n);
    ok(dl_copy(be, dh, y, sizeof(float) * 100), "copy");
    emit("copy", 0, dh, n);
    dl_free(be, y), dl_free(be, bias), dl_free(be, dh);
}

static void op_softmax_col_sum(void)
{
    const int rows = 1031, classes = 10, batch = 2;
    const size_t n = (size_t)rows * classes * batch, lstride = (size_t)rows + 1;
    float *z = dev_rand(n, -5, 5);
    int32_t *lab_h = malloc(sizeof(int32_t) * lstride * batch);
    if (!lab_h) die("out of memory");
    for (size_t i = 0; i < lstride * batch; i++) lab_h[i] = (int32_t)dl_rng_below(&rng, classes);
    int32_t *lab = dev(lab_h, sizeof(int32_t) * lstride * batch);
    float *dz = dev(NULL, sizeof(float) * n), *loss = dev(NULL, sizeof(float) * batch);
    float *acc = dev(NULL, sizeof(float) * batch);
    ok(dl_softmax_xent(be, z, lab, rows, classes, batch, lstride, dz, loss, acc), "softmax_xent");
    emit("softmax_loss", 2e-6, loss, batch);
    emit("softmax_accuracy", 0, acc, batch);
    emit("softmax_grad", 1e-5, dz, n);
    float *cs = dev(NULL, sizeof(float) * classes * batch);
    ok(dl_col_sum(be, dz, rows, classes, batch, cs, classes), "col_sum");
    emit("col_sum_grad", 1e-6, cs, (size_t)classes * batch);
    float *g = dev_rand((size_t)20011 * 67, -1, 1), *cs2 = dev(NULL, sizeof(float) * 67);
    ok(dl_col_sum(be, g, 20011, 67, 1, cs2, 67), "col_sum");
    emit("col_sum_tall", 1e-6, cs2, 67);
    dl_free(be, z), dl_free(be, lab), dl_free(be, dz), dl_free(be, loss), dl_free(be, acc);
    dl_free(be, cs), dl_free(be, g), dl_free(be, cs2);
    free(lab_h);
}

static void op_record(void)
{
    float *hist = dev(NULL, sizeof(float) * 12), *vals = dev_rand(4, -1, 1);
    int32_t *counter = dev(NULL, sizeof(int32_t));
    for (int i = 0; i < 3; i++) ok(dl_record(be, hist, vals, 4, counter), "record");
    emit("record", 0, hist, 12);
    dl_free(be, hist), dl_free(be, vals), dl_free(be, counter);
}

/* A whole training run: its loss curve and final error (the suites' CPU-GPU
 * agreement is 1e-4 relative on the final SSE). */
static void run_factorise(void)
{
    dl_factorise_config cfg = {
        .rank = 4, .epochs = 200, .lr = 2e-4f, .seed = 3, .seeds = 2, .svd = true};
    dl_factorise_result r;
    ok(dl_factorise_synthetic(be, 120, 40, 4, 0.1f, 99, &cfg, &r), "factorise");
    float sse_svd = (float)r.sse_svd;
    fprintf(out, "factorise_sse_gd 1e-4 %a %a\n", (double)r.sse_gd[0], (double)r.sse_gd[1]);
    fprintf(out, "factorise_sse_svd 1e-4 %a\n", (double)sse_svd);
    fprintf(out, "factorise_loss_history 1e-4");
    for (int i = 0; i < r.epochs_run * r.seeds; i++) fprintf(out, " %a", (double)r.loss_history[i]);
    fputc('\n', out);
    dl_factorise_result_free(&r);
}

int main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[1], "--backend") != 0) {
        fprintf(stderr, "usage: %s --backend cpu|cuda OUT_FILE\n", argv[0]);
        return 2;
    }
    dl_device d;
    if (dl_device_parse(argv[2], &d) != DL_OK || d == DL_DEVICE_AUTO) {
        fprintf(stderr, "usage: %s --backend cpu|cuda OUT_FILE\n", argv[0]);
        return 2;
    }
    ok(dl_backend_create(d, &be, NULL, 0), "backend");
    out = fopen(argv[3], "w");
    if (!out) {
        perror(argv[3]);
        return 1;
    }
    fprintf(out, "# backend %s (%s)\n", be->name, be->device);
    dl_rng_seed(&rng, 20261129);
    op_gemm();
    op_svd();
    op_rand();
    op_residual_sse();
    op_optim();
    op_elementwise();
    op_softmax_col_sum();
    op_record();
    run_factorise();
    dl_backend_destroy(be);
    if (fclose(out) != 0) {
        perror(argv[3]);
        return 1;
    }
    return 0;
}
