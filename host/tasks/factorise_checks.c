/* Definedness of a factorisation's derived figures (see
 * include/dlab/factorise_checks.h for the rules and their source). */
#include "dlab/factorise_checks.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void dl_factorise_warn(dl_factorise_checks *c, const char *fmt, ...)
{
    if (c->n_warnings >= DL_CHECKS_MAX_WARNINGS) return;
    char *line = c->warnings[c->n_warnings++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, DL_CHECKS_LINE, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

void dl_factorise_check_zero(dl_factorise_checks *c, const char *why)
{
    c->relative_gap_defined = c->subspace_defined = c->tied = false;
    snprintf(c->gap_why, sizeof c->gap_why, "%s", why);
    snprintf(c->subspace_why, sizeof c->subspace_why, "%s", why);
    c->n_warnings = 0;
    dl_factorise_warn(c,
                      "%s: every factorisation with U V^T = 0 is optimal, so the relative gap, "
                      "the principal angles and the aligned residual are undefined",
                      why);
}

void dl_factorise_check_spectrum(int m, int n, int k, const double *s, int p,
                                 dl_factorise_checks *c)
{
    memset(c, 0, sizeof *c);
    double s1 = p > 0 && s[0] > 0.0 ? s[0] : 0.0;
    c->sv_tol = (m > n ? m : n) * (double)FLT_EPSILON * s1;
    for (int i = 0; i < p; i++) c->numerical_rank += s[i] > c->sv_tol;
    double sk = k >= 1 && k <= p ? s[k - 1] : 0.0, sk1 = k < p ? s[k] : 0.0;
    c->relative_gap_defined = sk1 > c->sv_tol;
    c->subspace_defined = sk > c->sv_tol;
    c->tied = c->relative_gap_defined && sk - sk1 <= c->sv_tol;
    if (s1 == 0.0) {
        dl_factorise_check_zero(c, "the matrix is zero");
        return;
    }
    if (!c->relative_gap_defined) {
        if (k >= p)
            snprintf(c->gap_why, sizeof c->gap_why,
                     "the optimum is 0 (rank %d keeps every "
                     "singular value)",
                     k);
        else
            snprintf(c->gap_why, sizeof c->gap_why,
                     "the optimum is at rounding level (numerical rank %d <= rank %d)",
                     c->numerical_rank, k);
        dl_factorise_warn(c,
                          "relative gap undefined: %s; singular values at or below %.3g "
                          "(max(m, n) eps sigma_1) are rounding, so a ratio to the optimum means "
                          "nothing",
                          c->gap_why, c->sv_tol);
    }
    if (!c->subspace_defined) {
        snprintf(c->subspace_why, sizeof c->subspace_why,
                 "rank %d exceeds the numerical rank %d: many rank-%d subspaces are optimal", k,
                 c->numerical_rank, k);
        dl_factorise_warn(
            c,
            "principal angles and aligned residual undefined: rank %d exceeds the "
            "matrix's numerical rank %d (sigma_%d = %.3g is at rounding level), so "
            "every rank-%d subspace holding the %d significant direction%s is optimal",
            k, c->numerical_rank, k, sk, k, c->numerical_rank, c->numerical_rank == 1 ? "" : "s");
    }
    if (c->tied)
        dl_factorise_warn(c,
                          "sigma_%d = %.6g and sigma_%d = %.6g are equal within rounding (%.3g): "
                          "the rank-%d subspace is not unique, so the principal angles and the "
                          "aligned residual compare against one of many optimal subspaces",
                          k, sk, k + 1, sk1, c->sv_tol, k);
}

double dl_factorise_below_tol(int m, int n, double sumsq, double sse_svd)
{
    double t = (m > n ? m : n) * (double)FLT_EPSILON * sqrt(sumsq > 0.0 ? sumsq : 0.0);
    return 4.0 * t * (sqrt(sse_svd > 0.0 ? sse_svd : 0.0) + t);
}

void dl_factorise_check_below(int m, int n, double sumsq, double sse_svd, const double *sse_gd,
                              int seeds, dl_factorise_checks *c)
{
    double tol = dl_factorise_below_tol(m, n, sumsq, sse_svd);
    int below = 0, worst = -1;
    for (int b = 0; b < seeds; b++)
        if (sse_gd[b] < sse_svd - tol) {
            below++;
            if (worst < 0 || sse_gd[b] < sse_gd[worst]) worst = b;
        }
    if (below)
        dl_factorise_warn(c,
                          "%d model%s ended below the SVD optimum by more than rounding (by up to "
                          "%.3g; rounding allows %.3g): the SVD baseline is inaccurate here",
                          below, below == 1 ? "" : "s", sse_svd - sse_gd[worst], tol);
}

void dl_factorise_check_lab_step(double lr, double sigma1, int epochs, dl_factorise_checks *c)
{
    if (!(sigma1 > 0.0) || !(lr > 0.0) || epochs < 1) return;
    double progress = lr * sigma1 * epochs;
    if (progress >= DL_LAB_MIN_PROGRESS) return;
    dl_factorise_warn(c,
                      "the lab preset's learning rate %.3g is far below the data's scale "
                      "(sigma_1 = %.3g: lr x sigma_1 x epochs = %.2g), so gradient descent "
                      "from its U[0,1) start cannot make progress and the result says nothing "
                      "about the data; use the careful preset (--preset careful), which takes "
                      "its step from sigma_1",
                      lr, sigma1, progress);
}
