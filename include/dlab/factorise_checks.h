/* Which derived figures of a factorisation are defined, and why not.
 *
 * The relative gap (sse_gd - sse_svd) / sse_svd, the principal angles and
 * the aligned residual against the SVD's U_k all assume something of the
 * spectrum of A:
 * - the relative gap needs an optimum above rounding. Singular values at or
 *   below tol = max(m, n) eps sigma_1 (eps = FLT_EPSILON, the precision of
 *   the data; the threshold numpy's matrix_rank uses, after Press et al.,
 *   Numerical Recipes, 2nd ed., section 2.6) are rounding, so when sigma_{k+1}
 *   <= tol the optimum is zero or rounding noise and any ratio to it is
 *   meaningless (1e9 to 1e16 for an exact fit).
 * - the angles and the residual need the rank-k optimal subspace: when
 *   sigma_k <= tol (rank k above the numerical rank, a zero matrix) every
 *   subspace holding the significant directions is optimal, and U_k's
 *   remaining columns are arbitrary.
 * - when sigma_k = sigma_{k+1} within tol (both above it) the optimal
 *   subspace is not unique either; the figures are kept, with a warning that
 *   they compare against one of many optimal subspaces.
 * The checks depend on ratios of singular values only, so they do not
 * depend on the data's units.
 */
#ifndef DLAB_FACTORISE_CHECKS_H
#define DLAB_FACTORISE_CHECKS_H

#include <stdbool.h>

#define DL_CHECKS_MAX_WARNINGS 6
#define DL_CHECKS_LINE         320

typedef struct {
    double sv_tol;             /* singular values at or below this are rounding */
    int numerical_rank;        /* singular values above sv_tol */
    bool relative_gap_defined; /* sigma_{k+1} > sv_tol */
    bool subspace_defined;     /* sigma_k > sv_tol: angles and aligned residual */
    bool tied;                 /* sigma_k = sigma_{k+1} within sv_tol, both above it */
    char gap_why[128];         /* why the relative gap is undefined, "" when defined */
    char subspace_why[128];    /* why the angles and residual are undefined, "" when defined */
    int n_warnings;
    char warnings[DL_CHECKS_MAX_WARNINGS][DL_CHECKS_LINE]; /* one line each */
} dl_factorise_checks;

/* The checks for rank k of an m x n matrix with the p = min(m, n) singular
 * values s (descending, any units). Fills every field, with one warning per
 * undefined figure's cause and one for a tie. */
void dl_factorise_check_spectrum(int m, int n, int k, const double *s, int p,
                                 dl_factorise_checks *c);

/* Marks the figures undefined for a zero matrix, saying why (e.g. "the
 * matrix is zero", or "the matrix is zero after centring (every column is
 * constant)" when the data were not zero before), and replaces the
 * warnings with the one that says so. Called by
 * dl_factorise_check_spectrum when sigma_1 = 0. */
void dl_factorise_check_zero(dl_factorise_checks *c, const char *why);

/* How far below sse_svd a gradient-descent SSE may lie by float32 rounding
 * alone, for an m x n matrix with ||A||_F^2 = sumsq: 4 t (sqrt(sse_svd) + t)
 * with t = max(m, n) eps ||A||_F, the first-order effect of perturbing A and
 * U V^T by t in norm. */
double dl_factorise_below_tol(int m, int n, double sumsq, double sse_svd);

/* Adds a warning when some model's SSE lies below sse_svd by more than
 * dl_factorise_below_tol (the SVD baseline is then the inaccurate one). */
void dl_factorise_check_below(int m, int n, double sumsq, double sse_svd, const double *sse_gd,
                              int seeds, dl_factorise_checks *c);

/* Adds a warning when the lab preset's step cannot move its start towards
 * the data: from U, V ~ U[0,1) (entries of order 1) the data enter each
 * epoch's update only through the term 2 lr A V of the gradient, which
 * changes the factors by about lr sigma_1 of their size per epoch (sigma_1 =
 * ||A||_2). When lr sigma_1 epochs < DL_LAB_MIN_PROGRESS the whole run moves
 * them by less than that fraction towards A (e.g. iris x 1e-30 at lr 0.01:
 * 2.5e-28), so the result says nothing about the data. sigma1 <= 0 (a zero
 * matrix, or no estimate) adds nothing. */
#define DL_LAB_MIN_PROGRESS 1e-3
void dl_factorise_check_lab_step(double lr, double sigma1, int epochs, dl_factorise_checks *c);

/* Appends a warning (printf-style, cut to one line); ignored once
 * DL_CHECKS_MAX_WARNINGS are held. */
void dl_factorise_warn(dl_factorise_checks *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
