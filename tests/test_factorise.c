/* The factorisation task in the lab's protocol (--preset lab): its reference
 * numbers on iris, the gradient against finite differences, divergence,
 * many models at once, and (on the cuda backend) agreement with the CPU.
 * The careful preset, scaling and definedness: test_factorise_scale.c. */
#include <string.h>

#include "backend_arg.h"
#include "dlab/summary.h"
#include "dl_test.h"
#include "dlab/data.h"
#include "dlab/factorise.h"
#include "dlab/rng.h"

static dl_backend *be;
static dl_dataset iris;
static const char *iris_path;

static dl_factorise_config lab_config(uint64_t seed)
{
    dl_factorise_config cfg = dl_factorise_defaults(DL_FACTORISE_LAB);
    cfg.lr = 0.01f;
    cfg.seed = seed;
    return cfg;
}

static void test_reference_numbers(void)
{
    dl_factorise_config cfg = lab_config(1);
    dl_factorise_result r;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &r) == DL_OK, "factorise: %s",
             dl_errmsg());
    DL_CHECK_NEAR(r.sse_svd, 15.22883, 1e-4, "rank-2 SVD error");
    DL_CHECK_NEAR(r.sse_svd_recon, r.sse_svd, 1e-3, "SVD error from the reconstruction");
    const double sv[4] = {25.0899, 6.0079, 3.4205, 1.8785};
    for (int i = 0; i < 4; i++) DL_CHECK_NEAR(r.singular_values[i], sv[i], 1e-4, "singular value");
    DL_CHECK(r.epochs_run == 1000 && r.stop.kind == DL_STOP_NONE, "ran %d epochs", r.epochs_run);
    /* Seed 1 is one of the slower starts (gap 1.6e-3 after 1000 epochs);
     * the typical gap is checked over many seeds below. */
    DL_CHECK(r.sse_gd[0] >= r.sse_svd - 1e-3, "gradient descent ended below the optimum: %g < %g",
             r.sse_gd[0], r.sse_svd);
    DL_CHECK(r.preset == DL_FACTORISE_LAB && r.lr == (double)0.01f && r.init_std == 0.0,
             "lab preset reported as %d, lr %g, init std %g", (int)r.preset, r.lr, r.init_std);
    DL_CHECK(r.sse_gd[0] - r.sse_svd < 1e-2, "seed 1 gap %g", r.sse_gd[0] - r.sse_svd);
    /* The loss history starts high and ends at the final error. */
    DL_CHECK(r.loss_history[0] > 10 * r.sse_gd[0], "first loss %g is not far above the end",
             r.loss_history[0]);
    DL_CHECK_NEAR(r.loss_history[999], r.sse_gd[0], 1e-3, "last recorded loss");
    dl_factorise_result_free(&r);
}

/* Over 200 seeds, trained together: the distribution DESIGN.md reports for
 * float64 (median gap 1.1e-4; about one start in five still more than 1e-3
 * away after 1000 epochs; a few stall far away) and none below the optimum. */
static void test_gap_over_seeds(void)
{
    enum { N = 200 };
    dl_factorise_config cfg = lab_config(1);
    cfg.seeds = N;
    dl_factorise_result r;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &r) == DL_OK, "%d seeds: %s", N,
             dl_errmsg());
    if (r.seeds != N) return;
    double gaps[N];
    int far = 0;
    for (int s = 0; s < N; s++) {
        gaps[s] = r.sse_gd[s] - r.sse_svd;
        DL_CHECK(gaps[s] > -1e-3, "seed %d ended below the SVD optimum (gap %g)", 1 + s, gaps[s]);
        far += gaps[s] > 1e-3;
    }
    qsort(gaps, N, sizeof gaps[0], dl_cmp_double);
    double median = 0.5 * (gaps[N / 2 - 1] + gaps[N / 2]);
    DL_CHECK(median > 2e-5 && median < 5e-4, "median gap over %d seeds is %g (reference 1.1e-4)", N,
             median);
    DL_CHECK(far >= N / 10 && far <= N * 2 / 5,
             "%d of %d seeds more than 1e-3 away (reference: about 1 in 5)", far, N);
    dl_factorise_result_free(&r);
}

/* One epoch: U1 = U0 - lr * dL/dU with both gradients taken at (U0, V0).
 * The gradient is checked against central differences of the loss in
 * double, and the loss history's first entry against the double loss. */
static double loss_d(const double *u, const double *v, const float *a, int m, int n, int k)
{
    double sum = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double p = 0;
            for (int r = 0; r < k; r++) p += u[i * k + r] * v[j * k + r];
            double e = p - a[i * n + j];
            sum += e * e;
        }
    return sum;
}

static void check_gradient(const float *a, int m, int n, int k, uint64_t seed)
{
    const float lr = 1e-3f;
    size_t P = (size_t)(m + n) * k;
    float *init = NULL;
    dl_alloc(be, sizeof(float) * P, (void **)&init);
    dl_rand_uniform(be, init, P, DL_INIT_KEY, dl_init_offset(seed, P));
    float *h = malloc(sizeof(float) * P);
    dl_download(be, h, init, sizeof(float) * P);
    dl_free(be, init);
    double *u = malloc(sizeof(double) * P), *v;
    for (size_t i = 0; i < P; i++) u[i] = h[i];
    v = u + (size_t)m * k;

    dl_factorise_config cfg = dl_factorise_defaults(DL_FACTORISE_LAB);
    cfg.rank = k, cfg.epochs = 1, cfg.lr = lr, cfg.seed = seed, cfg.svd = false;
    dl_factorise_result r;
    DL_CHECK(dl_factorise(be, a, m, n, &cfg, &r) == DL_OK, "factorise: %s", dl_errmsg());
    double l0 = loss_d(u, v, a, m, n, k);
    DL_CHECK(fabs(r.loss_history[0] - l0) <= 1e-5 * l0, "first loss %g, double %g",
             r.loss_history[0], l0);
    double num = 0, den = 0;
    for (int i = 0; i < m * k; i++) {
        double keep = u[i], hstep = 1e-4;
        u[i] = keep + hstep;
        double lp = loss_d(u, v, a, m, n, k);
        u[i] = keep - hstep;
        double lm = loss_d(u, v, a, m, n, k);
        u[i] = keep;
        double g_fd = (lp - lm) / (2 * hstep);
        double g_task = ((double)h[i] - r.u_gd[i]) / lr; /* what the task applied */
        num += (g_task - g_fd) * (g_task - g_fd);
        den += g_fd * g_fd;
    }
    DL_CHECK(sqrt(num / den) < 2e-3, "%dx%d rank %d: dU differs from finite differences (rel %.3g)",
             m, n, k, sqrt(num / den));
    dl_factorise_result_free(&r);
    free(h), free(u);
}

static void test_gradient(void)
{
    check_gradient(iris.x, iris.rows, iris.cols, 2, 5);
    float a[7 * 5];
    for (int i = 0; i < 35; i++) a[i] = (float)sin(i * 1.7) * 2;
    check_gradient(a, 7, 5, 3, 11);
    check_gradient(a, 5, 7, 1, 12);
}

static void test_divergence(void)
{
    dl_factorise_config cfg = lab_config(1);
    cfg.lr = 10.0f;
    dl_factorise_result r;
    dl_status st = dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &r);
    DL_CHECK(st == DL_OK, "lr 10 returned %s (%s); a divergence is an outcome, not a failure",
             dl_status_name(st), dl_errmsg());
    if (st != DL_OK) return;
    DL_CHECK(r.stop.kind == DL_STOP_DIVERGED, "stop %s, expected diverged",
             dl_stop_name(r.stop.kind));
    DL_CHECK(strstr(r.stop.message, "epoch") && strstr(r.stop.message, "too large") &&
                 strstr(r.stop.message, "smaller learning rate such as --lr"),
             "message: %s", r.stop.message);
    DL_CHECK(r.epochs_run >= 1 && r.epochs_run < 1000, "diverged run reports %d epochs",
             r.epochs_run);
    /* The SVD baseline does not depend on training: a divergence still has
     * it, the same as a run that converges on the same data. */
    dl_factorise_config ok_cfg = lab_config(1);
    dl_factorise_result ok;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &ok_cfg, &ok) == DL_OK, "lab run: %s",
             dl_errmsg());
    DL_CHECK(r.have_svd && ok.have_svd && r.sse_svd == ok.sse_svd && r.n_sv == ok.n_sv,
             "SVD baseline after a divergence: have %d, SSE %g against %g", r.have_svd, r.sse_svd,
             ok.sse_svd);
    dl_factorise_result_free(&ok);
    /* Not the data: a step above the limit estimated from sigma_1 (about
     * 0.0113 from the lab's start), and a suggestion below it. */
    DL_CHECK(!r.data_overflow && r.diverged_epoch >= 1 && r.diverged_epoch <= r.epochs_run,
             "overflow %d, diverged at %d of %d", r.data_overflow, r.diverged_epoch, r.epochs_run);
    DL_CHECK(fabs(r.sigma1_est - 25.0899) < 1e-3, "sigma_1 estimate %g", r.sigma1_est);
    DL_CHECK(r.lr > r.stable_lr && r.suggested_lr < r.stable_lr && r.suggested_lr > 0,
             "lr %g, stable %g, suggested %g", r.lr, r.stable_lr, r.suggested_lr);
    /* The process still exits 1 with the stop's message. */
    DL_CHECK(dl_stop_status(&r.stop) == DL_E_DIVERGED && !strcmp(dl_errmsg(), r.stop.message),
             "stop status %s: %s", dl_status_name(dl_stop_status(&r.stop)), dl_errmsg());
    dl_factorise_result_free(&r);
}

static void test_bad_config(void)
{
    dl_factorise_config cfg = lab_config(1);
    dl_factorise_result r;
    cfg.rank = 5;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &r) == DL_E_USAGE,
             "rank 5 of 150x4 accepted");
    DL_CHECK(strstr(dl_errmsg(), "--rank") != NULL, "message: %s", dl_errmsg());
    cfg.rank = 0;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &r) == DL_E_USAGE,
             "rank 0 accepted");
    cfg = lab_config(1);
    cfg.epochs = 0;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &r) == DL_E_USAGE,
             "0 epochs accepted");
    cfg = lab_config(1);
    cfg.lr = -1;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &r) == DL_E_USAGE,
             "negative lr accepted");
}

/* N models in one run equal N separate runs with the same seeds: bit for
 * bit on the CPU; on the GPU to float rounding, since cuBLAS may pick a
 * different kernel (summation order) for a batched product. */
static bool same(double a, double b)
{
    return strcmp(be->name, "cpu") == 0 ? a == b : fabs(a - b) <= 1e-5 * fabs(b);
}

static void test_many_models(void)
{
    dl_factorise_config cfg = lab_config(7);
    cfg.seeds = 3;
    cfg.epochs = 200;
    cfg.svd = false;
    dl_factorise_result all;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &all) == DL_OK, "3 models: %s",
             dl_errmsg());
    for (int s = 0; s < 3; s++) {
        dl_factorise_config one = cfg;
        one.seeds = 1;
        one.seed = 7 + s;
        dl_factorise_result r;
        DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &one, &r) == DL_OK, "seed %d: %s",
                 7 + s, dl_errmsg());
        DL_CHECK(same(r.sse_gd[0], all.sse_gd[s]), "seed %d alone %.9g, in a batch %.9g", 7 + s,
                 r.sse_gd[0], all.sse_gd[s]);
        DL_CHECK(same(r.loss_history[150], all.loss_history[150 * 3 + s]),
                 "seed %d history differs at epoch 150", 7 + s);
        dl_factorise_result_free(&r);
    }
    dl_factorise_result_free(&all);
}

static void test_synthetic(void)
{
    dl_factorise_config cfg = dl_factorise_defaults(DL_FACTORISE_LAB);
    cfg.rank = 4, cfg.epochs = 300, cfg.lr = 2e-4f, cfg.seed = 3;
    dl_factorise_result r;
    DL_CHECK(dl_factorise_synthetic(be, 300, 60, 4, 0.1f, 99, &cfg, &r) == DL_OK, "synthetic: %s",
             dl_errmsg());
    /* Noise 0.1 on 300x60: the optimum is near the noise energy, 18000 * 0.01 * (56/60). */
    DL_CHECK(r.sse_svd > 100 && r.sse_svd < 250, "synthetic SVD error %g", r.sse_svd);
    DL_CHECK(r.sse_gd[0] >= r.sse_svd * (1 - 1e-4), "gd %g below svd %g", r.sse_gd[0], r.sse_svd);
    DL_CHECK(r.loss_history[r.epochs_run - 1] < r.loss_history[0], "loss did not fall");
    dl_factorise_result_free(&r);
}

/* --- the fused path (dl_fused_factorise) --------------------------------- */

static bool fused_fits(int m, int n, int k)
{
    return dl_fused_fits(be, dl_fused_factorise_bytes(m, n, k));
}

static dl_status run_iris(dl_factorise_config cfg, dl_fused_mode mode, dl_factorise_result *r)
{
    cfg.fused = mode;
    dl_status st = dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, r);
    DL_CHECK(st == DL_OK, "factorise (fused mode %d): %s", (int)mode, dl_errmsg());
    return st;
}

static bool rel_close(double x, double ref, double tol)
{
    return fabs(x - ref) <= tol * fabs(ref) && !isnan(x);
}

/* AUTO fuses exactly when the backend has the op and the model fits; ON
 * refuses (with the reason) where AUTO would not; OFF never fuses. Without
 * the op, AUTO is the general path bit for bit. */
static void test_fused_choice(void)
{
    dl_factorise_config cfg = lab_config(1);
    cfg.epochs = 50;
    const bool fits = fused_fits(iris.rows, iris.cols, 2);
    dl_factorise_result a, off;
    if (run_iris(cfg, DL_FUSED_AUTO, &a) != DL_OK) return;
    if (run_iris(cfg, DL_FUSED_OFF, &off) != DL_OK) return;
    DL_CHECK(a.fused == fits && !off.fused, "auto fused %d (fits %d), off fused %d", a.fused, fits,
             off.fused);
    if (!fits)
        DL_CHECK(memcmp(a.loss_history, off.loss_history, sizeof(double) * 50) == 0 &&
                     a.sse_gd[0] == off.sse_gd[0],
                 "auto without the fused op differs from --fused off");
    dl_factorise_result_free(&a), dl_factorise_result_free(&off);
    dl_factorise_result on;
    cfg.fused = DL_FUSED_ON;
    dl_status st = dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &on);
    if (fits) {
        DL_CHECK(st == DL_OK && on.fused, "--fused on: %s (fused %d)", dl_errmsg(), on.fused);
        if (st == DL_OK) dl_factorise_result_free(&on);
    } else {
        DL_CHECK(st == DL_E_USAGE && strstr(dl_errmsg(), "--fused on: "),
                 "--fused on without the op: %s (%s)", dl_status_name(st), dl_errmsg());
    }
    /* A matrix past any fast memory: AUTO takes the general path, ON says why not. */
    dl_factorise_config big = lab_config(1);
    big.epochs = 1, big.svd = false, big.lr = 1e-4f;
    DL_CHECK(!fused_fits(1500, 400, 2), "a 1500x400 model fits the fast memory");
    dl_factorise_result r;
    st = dl_factorise_synthetic(be, 1500, 400, 2, 0.1f, 5, &big, &r);
    DL_CHECK(st == DL_OK && !r.fused, "1500x400 auto: %s (fused %d)", dl_errmsg(),
             st == DL_OK && r.fused);
    if (st == DL_OK) dl_factorise_result_free(&r);
    big.fused = DL_FUSED_ON;
    st = dl_factorise_synthetic(be, 1500, 400, 2, 0.1f, 5, &big, &r);
    DL_CHECK(st == DL_E_USAGE && strstr(dl_errmsg(), "--fused on: ") &&
                 (strstr(dl_errmsg(), "fast memory") || strstr(dl_errmsg(), "no fused")),
             "1500x400 --fused on: %s (%s)", dl_status_name(st), dl_errmsg());
}

/* Fused and general agree within the CPU-against-GPU tolerance: the final
 * error, the loss history along the way, the factors; the SVD baseline is
 * the same computation on both paths. */
static void check_paths_agree(const char *what, const dl_factorise_result *f,
                              const dl_factorise_result *g)
{
    DL_CHECK(f->fused && !g->fused, "%s: paths fused %d, general %d", what, f->fused, g->fused);
    DL_CHECK(f->epochs_run == g->epochs_run && f->seeds == g->seeds,
             "%s: %d/%d epochs, %d/%d seeds", what, f->epochs_run, g->epochs_run, f->seeds,
             g->seeds);
    if (f->epochs_run != g->epochs_run || f->seeds != g->seeds) return;
    for (int b = 0; b < f->seeds; b++) {
        DL_CHECK(rel_close(f->sse_gd[b], g->sse_gd[b], 1e-4),
                 "%s model %d: fused %.9g, general %.9g", what, b, f->sse_gd[b], g->sse_gd[b]);
        const int at[] = {0, 1, 10, f->epochs_run / 2, f->epochs_run - 1};
        for (int i = 0; i < 5; i++) {
            size_t k = (size_t)at[i] * f->seeds + b;
            DL_CHECK(rel_close(f->loss_history[k], g->loss_history[k], 1e-4),
                     "%s model %d epoch %d: loss fused %.9g, general %.9g", what, b, at[i] + 1,
                     f->loss_history[k], g->loss_history[k]);
        }
    }
    /* U V^T agrees; U and V alone may move along the directions the loss
     * does not see, so compare the products' first rows. */
    double num = 0, den = 0;
    for (int i = 0; i < 10 && i < f->m; i++)
        for (int j = 0; j < f->n; j++) {
            double pf = 0, pg = 0;
            for (int r = 0; r < f->rank; r++) {
                pf += (double)f->u_gd[i * f->rank + r] * f->v_gd[j * f->rank + r];
                pg += (double)g->u_gd[i * f->rank + r] * g->v_gd[j * f->rank + r];
            }
            num += (pf - pg) * (pf - pg), den += pg * pg;
        }
    DL_CHECK(sqrt(num / den) < 1e-3, "%s: U V^T differs by %.3g (relative)", what, sqrt(num / den));
    DL_CHECK(f->have_svd == g->have_svd && (!f->have_svd || f->sse_svd == g->sse_svd),
             "%s: SVD baseline %g against %g", what, f->sse_svd, g->sse_svd);
}

static void test_fused_matches_general(void)
{
    if (!fused_fits(iris.rows, iris.cols, 2)) return; /* test_fused_choice covers the fallback */
    dl_factorise_config cfgs[3] = {lab_config(1), dl_factorise_defaults(DL_FACTORISE_CAREFUL),
                                   lab_config(3)};
    cfgs[2].seeds = 5;
    const char *names[3] = {"iris lab", "iris careful", "iris lab, 5 seeds"};
    for (int i = 0; i < 3; i++) {
        dl_factorise_result f, g;
        if (run_iris(cfgs[i], DL_FUSED_ON, &f) != DL_OK) continue;
        if (run_iris(cfgs[i], DL_FUSED_OFF, &g) == DL_OK) {
            check_paths_agree(names[i], &f, &g);
            if (i == 1) /* the careful preset trains on 2^e A with its own step */
                DL_CHECK(f.scale_log2 == g.scale_log2 && f.lr == g.lr && f.init_std == g.init_std,
                         "careful: scale 2^%d/2^%d, lr %g/%g", f.scale_log2, g.scale_log2, f.lr,
                         g.lr);
            dl_factorise_result_free(&g);
        }
        dl_factorise_result_free(&f);
    }
    if (!fused_fits(300, 60, 4)) return;
    dl_factorise_config cfg = dl_factorise_defaults(DL_FACTORISE_LAB);
    cfg.rank = 4, cfg.epochs = 300, cfg.lr = 2e-4f, cfg.seed = 3;
    dl_factorise_result f, g;
    cfg.fused = DL_FUSED_ON;
    dl_status sf = dl_factorise_synthetic(be, 300, 60, 4, 0.1f, 99, &cfg, &f);
    cfg.fused = DL_FUSED_OFF;
    dl_status sg = dl_factorise_synthetic(be, 300, 60, 4, 0.1f, 99, &cfg, &g);
    DL_CHECK(sf == DL_OK && sg == DL_OK, "synthetic: %s", dl_errmsg());
    if (sf == DL_OK && sg == DL_OK) check_paths_agree("synthetic 300x60 rank 4", &f, &g);
    if (sf == DL_OK) dl_factorise_result_free(&f);
    if (sg == DL_OK) dl_factorise_result_free(&g);
}

static bool same_run(const dl_factorise_result *a, const dl_factorise_result *b, int model_a,
                     int model_b)
{
    if (a->epochs_run != b->epochs_run) return false;
    for (int e = 0; e < a->epochs_run; e++)
        if (memcmp(&a->loss_history[(size_t)e * a->seeds + model_a],
                   &b->loss_history[(size_t)e * b->seeds + model_b], sizeof(double)))
            return false;
    return !memcmp(&a->sse_gd[model_a], &b->sse_gd[model_b], sizeof(double));
}

/* The same bits run after run, whatever the number of models in the run
 * and however the epochs are cut into calls. */
static void test_fused_bits_are_stable(void)
{
    if (!fused_fits(iris.rows, iris.cols, 2)) return;
    dl_factorise_config cfg = lab_config(7);
    cfg.seeds = 4, cfg.epochs = 300, cfg.svd = false;
    dl_factorise_result all, again;
    if (run_iris(cfg, DL_FUSED_ON, &all) != DL_OK) return;
    if (run_iris(cfg, DL_FUSED_ON, &again) == DL_OK) {
        bool same = true;
        for (int b = 0; b < 4; b++) same = same && same_run(&all, &again, b, b);
        DL_CHECK(same && !memcmp(all.u_gd, again.u_gd, sizeof(float) * iris.rows * 2) &&
                     !memcmp(all.v_gd, again.v_gd, sizeof(float) * iris.cols * 2),
                 "two fused runs differ");
        dl_factorise_result_free(&again);
    }
    for (int b = 0; b < 4; b++) {
        dl_factorise_config one = cfg;
        one.seeds = 1, one.seed = cfg.seed + (uint64_t)b;
        dl_factorise_result r;
        if (run_iris(one, DL_FUSED_ON, &r) != DL_OK) continue;
        DL_CHECK(same_run(&r, &all, 0, b), "seed %d alone differs from it among 4", 7 + b);
        dl_factorise_result_free(&r);
    }
    /* one call for the whole run against calls of 1, 2, 4 and then 7 epochs */
    dl_factorise_config whole = cfg, pieces = cfg;
    whole.loop.first_chunk = cfg.epochs;
    pieces.loop.first_chunk = 1, pieces.loop.max_chunk = 7;
    dl_factorise_result w, p;
    if (run_iris(whole, DL_FUSED_ON, &w) == DL_OK) {
        if (run_iris(pieces, DL_FUSED_ON, &p) == DL_OK) {
            bool same = true;
            for (int b = 0; b < 4; b++)
                same = same && same_run(&w, &p, b, b) && same_run(&w, &all, b, b);
            DL_CHECK(same && !memcmp(w.u_gd, p.u_gd, sizeof(float) * iris.rows * 2),
                     "one chunk and chunks of 7 epochs differ");
            dl_factorise_result_free(&p);
        }
        dl_factorise_result_free(&w);
    }
    dl_factorise_result_free(&all);
}

/* A divergence on the fused path stops after the same epochs as on the
 * general path (the same chunks) and names the same epoch, with the
 * factors of that epoch: as finite or not as the general path's. */
static void test_fused_divergence(void)
{
    if (!fused_fits(iris.rows, iris.cols, 2)) return;
    dl_factorise_config cfg = lab_config(1);
    cfg.lr = 10.0f;
    dl_factorise_result f, g;
    if (run_iris(cfg, DL_FUSED_ON, &f) != DL_OK) return;
    if (run_iris(cfg, DL_FUSED_OFF, &g) == DL_OK) {
        DL_CHECK(f.stop.kind == DL_STOP_DIVERGED && g.stop.kind == DL_STOP_DIVERGED,
                 "stops %s and %s", dl_stop_name(f.stop.kind), dl_stop_name(g.stop.kind));
        DL_CHECK(f.diverged_epoch == g.diverged_epoch && f.diverged_epoch >= 1,
                 "diverged at epoch %d fused, %d general", f.diverged_epoch, g.diverged_epoch);
        DL_CHECK(f.epochs_run == g.epochs_run && f.epochs_run >= f.diverged_epoch,
                 "epochs run %d fused (diverged at %d), %d general", f.epochs_run, f.diverged_epoch,
                 g.epochs_run);
        bool ff = true, gf = true;
        for (int i = 0; i < iris.rows * 2; i++) ff = ff && isfinite(f.u_gd[i]);
        for (int i = 0; i < iris.rows * 2; i++) gf = gf && isfinite(g.u_gd[i]);
        DL_CHECK(ff == gf && isnan(f.sse_gd[0]) == isnan(g.sse_gd[0]),
                 "after the divergence: U finite %d fused, %d general; SSE %g, %g", ff, gf,
                 f.sse_gd[0], g.sse_gd[0]);
        char at[32];
        snprintf(at, sizeof at, "at epoch %d ", f.diverged_epoch);
        DL_CHECK(strstr(f.stop.message, at) && strstr(f.stop.message, "too large") && f.have_svd &&
                     f.sse_svd == g.sse_svd,
                 "fused divergence: %s", f.stop.message);
        dl_factorise_result_free(&g);
    }
    dl_factorise_result_free(&f);
}

/* GPU only: the CPU and GPU agree on the same seed, and reruns are identical. */
static void test_matches_cpu(void)
{
    dl_backend *cpu = NULL;
    DL_CHECK(dl_backend_cpu_create(&cpu) == DL_OK, "cpu backend: %s", dl_errmsg());
    dl_factorise_config cfg = lab_config(1);
    dl_factorise_result g1, g2, c;
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &g1) == DL_OK, "gpu run 1: %s",
             dl_errmsg());
    DL_CHECK(dl_factorise(be, iris.x, iris.rows, iris.cols, &cfg, &g2) == DL_OK, "gpu run 2: %s",
             dl_errmsg());
    DL_CHECK(dl_factorise(cpu, iris.x, iris.rows, iris.cols, &cfg, &c) == DL_OK, "cpu run: %s",
             dl_errmsg());
    DL_CHECK(memcmp(g1.loss_history, g2.loss_history, sizeof(double) * 1000) == 0,
             "GPU reruns differ");
    DL_CHECK(fabs(g1.sse_gd[0] - c.sse_gd[0]) <= 1e-4 * c.sse_gd[0], "GPU %.9g vs CPU %.9g",
             g1.sse_gd[0], c.sse_gd[0]);
    DL_CHECK(fabs(g1.sse_svd - c.sse_svd) <= 1e-4 * c.sse_svd, "GPU SVD %.9g vs CPU %.9g",
             g1.sse_svd, c.sse_svd);
    dl_factorise_result_free(&g1), dl_factorise_result_free(&g2), dl_factorise_result_free(&c);
    dl_backend_destroy(cpu);
}

int main(int argc, char **argv)
{
    be = dl_test_backend(argc, argv);
    iris_path = DLAB_DATA_DIR "/iris.data";
    if (dl_dataset_load(iris_path, &iris) != DL_OK) {
        fprintf(stderr, "cannot load %s: %s\n", iris_path, dl_errmsg());
        return 1;
    }
    dl_dataset_center(&iris, NULL);
    DL_RUN(test_reference_numbers);
    DL_RUN(test_gap_over_seeds);
    DL_RUN(test_gradient);
    DL_RUN(test_divergence);
    DL_RUN(test_bad_config);
    DL_RUN(test_many_models);
    DL_RUN(test_synthetic);
    DL_RUN(test_fused_choice);
    DL_RUN(test_fused_matches_general);
    DL_RUN(test_fused_bits_are_stable);
    DL_RUN(test_fused_divergence);
    if (strcmp(be->name, "cpu") != 0) DL_RUN(test_matches_cpu);
    char suite[40];
    snprintf(suite, sizeof suite, "test_factorise[%s]", be->name);
    dl_dataset_free(&iris);
    dl_backend_destroy(be);
    return dl_test_summary(suite);
}
