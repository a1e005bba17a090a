/* Scaling, sigma_1, the careful preset's rules and divergence messages for
 * the factorisation (see include/dlab/factorise_scale.h for the sources). */
#include "dlab/factorise_scale.h"
#include "dlab/comm.h"

#include <float.h>
#include <math.h>
#include <stdio.h>

/* A fixed key for the power iteration's start, apart from the models' own
 * initial values (DL_INIT_KEY), so that the estimate depends on A alone. */
#define DL_SIGMA1_KEY 0x7369676d61ULL /* "sigma" */

int dl_scale_exponent(const float *a, size_t n, double *sumsq)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    *sumsq = s;
    return dl_scale_exponent_of(s);
}

int dl_scale_exponent_of(double sumsq)
{
    if (!(sumsq > 0.0) || !isfinite(sumsq)) return 0;
    int e;
    frexp(sqrt(sumsq), &e); /* sqrt(s) = f 2^e, f in [0.5, 1) */
    return -e;
}

void dl_scale_copy(float *dst, const float *src, size_t n, int e)
{
    for (size_t i = 0; i < n; i++) dst[i] = ldexpf(src[i], e);
}

/* x^T y for device vectors of length len, downloaded as a double; with
 * `ranks`, summed over the ranks of be->comm (x, y hold this rank's part). */
static dl_status dot(dl_backend *be, const float *x, const float *y, int len, float *scratch,
                     bool ranks, double *out)
{
    float v;
    DL_TRY(dl_matmul(be, false, false, 1, 1, len, 1.0f, x, y, 0.0f, scratch));
    if (ranks) DL_TRY(dl_allreduce_sum(be, scratch, 1));
    DL_TRY(dl_download(be, &v, scratch, sizeof v));
    *out = v;
    return DL_OK;
}

/* With `ranks`, a holds this rank's m rows: w is this rank's part of A v,
 * and A^T w is summed over the ranks, so v is whole on every rank. */
static dl_status power_iterate(dl_backend *be, const float *a, int m, int n, float *v, float *w,
                               float *scratch, bool ranks, double *sigma1)
{
    DL_TRY(dl_rand_normal(be, v, (size_t)n, 0.0f, 1.0f, DL_SIGMA1_KEY, 0));
    double vv;
    DL_TRY(dot(be, v, v, n, scratch, false, &vv));
    double est = 0.0;
    for (int it = 0; it < DL_SIGMA1_MAX_ITERS && vv > 0.0; it++) {
        /* w = A v / ||v||: ||w|| = ||A v^|| <= sigma_1 */
        DL_TRY(dl_matmul(be, false, false, m, 1, n, (float)(1.0 / sqrt(vv)), a, v, 0.0f, w));
        double ww;
        DL_TRY(dot(be, w, w, m, scratch, ranks, &ww));
        if (!(ww > 0.0)) break; /* A v = 0: a zero matrix (or a start in its null space) */
        /* v = A^T w / ||w||: ||v|| = ||A^T w^|| <= sigma_1 */
        DL_TRY(dl_matmul(be, true, false, n, 1, m, (float)(1.0 / sqrt(ww)), a, w, 0.0f, v));
        if (ranks) DL_TRY(dl_allreduce_sum(be, v, (size_t)n));
        DL_TRY(dot(be, v, v, n, scratch, false, &vv));
        double now = sqrt(vv > ww ? vv : ww);
        if (!isfinite(now))
            return DL_FAIL(DL_E_RUNTIME, "power iteration: sigma_1 estimate is not finite");
        bool settled = it >= 2 && fabs(now - est) <= 1e-6 * now; /* float32's own floor */
        est = now > est ? now : est;
        if (settled) break;
    }
    *sigma1 = est;
    return DL_OK;
}

static dl_status sigma1_estimate(dl_backend *be, const float *a, int m, int n, bool ranks,
                                 double *sigma1)
{
    *sigma1 = 0.0;
    if (m < 1 || n < 1) return DL_FAIL(DL_E_USAGE, "sigma_1 estimate: bad shape %dx%d", m, n);
    float *v = NULL, *w = NULL, *scratch = NULL;
    dl_status st = dl_alloc(be, sizeof(float) * ((size_t)n + 1), (void **)&v);
    if (st == DL_OK) st = dl_alloc(be, sizeof(float) * ((size_t)m + 1), (void **)&w);
    if (st == DL_OK) st = dl_alloc(be, sizeof(float) * 2, (void **)&scratch);
    if (ranks && be->comm) st = dl_comm_agree(be->comm, st); /* every rank iterates, or none */
    if (st == DL_OK) st = power_iterate(be, a, m, n, v, w, scratch, ranks, sigma1);
    dl_free(be, v), dl_free(be, w), dl_free(be, scratch);
    return st;
}

dl_status dl_sigma1_estimate(dl_backend *be, const float *a, int m, int n, double *sigma1)
{
    return sigma1_estimate(be, a, m, n, false, sigma1);
}

dl_status dl_sigma1_estimate_rows(dl_backend *be, const float *a, int m_local, int n,
                                  double *sigma1)
{
    return sigma1_estimate(be, a, m_local, n, true, sigma1);
}

double dl_careful_lr(double sigma1)
{
    return sigma1 > 0.0 ? DL_CAREFUL_LR_SIGMA / sigma1 : DL_CAREFUL_LR_SIGMA;
}

double dl_careful_init_std(double sigma1, int m, int n, int k)
{
    double s1 = sigma1 > 0.0 ? sigma1 : 1.0;
    double rm = sqrt((double)m) + sqrt((double)k), rn = sqrt((double)n) + sqrt((double)k);
    return DL_CAREFUL_INIT * sqrt(s1 / (rm * rn));
}

double dl_stable_lr(dl_factorise_preset preset, double sigma1, int m, int n, int k)
{
    /* The lab's U[0,1) start: the mean 1/2 of every entry gives the
     * all-ones direction a squared norm of m k / 4 in U and n k / 4 in V. */
    double c0 = 0.0, d = 0.0;
    if (preset == DL_FACTORISE_LAB)
        c0 = ((double)m + n) * k / 4.0, d = fabs((double)m - n) * k / 4.0;
    double end = sqrt(d * d + 4.0 * sigma1 * sigma1);
    double top = c0 > end ? c0 : end;
    return top > 0.0 ? 1.0 / top : INFINITY;
}

double dl_suggested_lr(dl_factorise_preset preset, double sigma1, int m, int n, int k)
{
    double stable = dl_stable_lr(preset, sigma1, m, n, k);
    if (preset != DL_FACTORISE_LAB || !isfinite(stable)) return dl_careful_lr(sigma1);
    return DL_SUGGESTED_FRACTION_LAB * stable;
}

bool dl_sumsq_overflows(double train_sumsq) { return !(train_sumsq < FLT_MAX / 16.0); }

void dl_factorise_explain(const dl_factorise_result *r, int epochs, bool nan, char *buf, size_t len)
{
    int n = snprintf(buf, len, "training diverged: the loss became %s at epoch %d of %d",
                     nan ? "NaN" : "Inf", r->diverged_epoch, epochs);
    if (n < 0 || (size_t)n >= len) return;
    buf += n, len -= (size_t)n;
    double s1 = r->sigma1_est;
    if (r->data_overflow) {
        double train_sumsq =
            ldexp(r->sumsq, 2 * (r->preset == DL_FACTORISE_CAREFUL ? r->scale_log2 : 0));
        snprintf(
            buf, len,
            ": the data overflow float32 - their sum of squares, %.3g, %s float32's largest "
            "value (%.3g) although every entry fits, so the loss cannot be represented and no "
            "learning rate helps in these units; use the careful preset (--preset careful, the "
            "default), which trains on the data scaled by an exact power of two, or divide "
            "the data by 2^%d; a step for this data is lr %.3g in its units (about %.2g / sigma_1, "
            "sigma_1 = %.4g)",
            train_sumsq, train_sumsq > FLT_MAX ? "exceeds" : "comes within a factor 16 of",
            (double)FLT_MAX, -r->scale_log2 > 0 ? -r->scale_log2 : 0, dl_careful_lr(s1),
            DL_CAREFUL_LR_SIGMA, s1);
        return;
    }
    /* Just under the limit is the fastest stable step from the lab's start;
     * a smaller one is stable too but needs more epochs. */
    const char *slower = r->preset == DL_FACTORISE_LAB
                             ? " (just under that limit; smaller steps are stable but need more "
                               "epochs)"
                             : "";
    /* The lab's start converges slowly at any stable step: say what does. */
    const char *lab = r->preset == DL_FACTORISE_LAB
                          ? ", or the careful preset (the default), which starts balanced and "
                            "takes its step from sigma_1"
                          : "";
    if (r->lr > r->stable_lr)
        snprintf(buf, len,
                 ": the learning rate %.3g is too large for this data - with sigma_1 = %.4g "
                 "(power iteration) gradient descent from this start is stable only below about "
                 "%.3g; try a smaller learning rate such as --lr %.2g%s%s",
                 r->lr, s1, r->stable_lr, r->suggested_lr, slower, lab);
    else /* never suggest a step as large as the one that diverged */
        snprintf(buf, len,
                 " although the learning rate %.3g is below the stable limit estimated from "
                 "sigma_1 = %.4g (about %.3g); try a smaller learning rate such as --lr %.2g%s",
                 r->lr, s1, r->stable_lr, r->lr <= r->suggested_lr ? r->lr / 2 : r->suggested_lr,
                 lab);
}
