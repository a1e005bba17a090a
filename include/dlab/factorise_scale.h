/* Units and step sizes for the factorisation: an exact power-of-two scaling
 * of the data into float32's safe range, sigma_1 by power iteration on the
 * backend, the careful preset's step and initial scale, and what a
 * divergence means.
 *
 * Why scale. The loss sums m n squares. In float32 a matrix whose every
 * entry fits can still have a sum of squares above FLT_MAX (iris x 1e20:
 * 1.5e43), and one in small units squares to below FLT_MIN (iris x 1e-30:
 * the squares are about 1e-60 and flush to zero). Multiplying A by 2^e only
 * changes exponents, so it is exact and commutes with float rounding: a run
 * on 2^e A is the run on A with every figure scaled by an exact power of
 * two. Choosing e from ||A||_F makes the scaled matrix the same bits for A
 * and for 2^k A, so the relative figures of the two runs are identical.
 *
 * The careful preset's rules, for loss = ||U V^T - A||_F^2 (no 1/2):
 * - Step. At a balanced solution (U^T U = V^T V, ||U||_2^2 = sigma_1) the
 *   loss's largest Hessian eigenvalue along the top singular pair is
 *   2 (||u||^2 + ||v||^2) = 4 sigma_1, so gradient descent is stable below
 *   lr = 2 / (4 sigma_1) = 0.5 / sigma_1. The preset takes a fixed fraction
 *   of that scale, lr = DL_CAREFUL_LR_SIGMA / sigma_1, the 1/sigma_1 step of
 *   the analyses of gradient descent on asymmetric factorisation (Du, Hu and
 *   Lee, "Algorithmic regularization in learning deep homogeneous models:
 *   layers are automatically balanced", NeurIPS 2018; Ye and Du, "Global
 *   convergence of gradient descent for asymmetric low-rank matrix
 *   factorization", NeurIPS 2021); the fraction was measured on iris
 *   (README: the gap over 200 seeds).
 * - Start. U, V ~ N(0, s^2) with the same s for both, so U^T U - V^T V (which
 *   gradient descent nearly conserves, Du et al. 2018) starts near zero, and
 *   small, so that the first epochs act as a power method towards the top
 *   singular subspace (Stoeger and Soltanolkotabi, "Small random
 *   initialization is akin to spectral learning", NeurIPS 2021):
 *   s = DL_CAREFUL_INIT * sqrt(sigma_1 / ((sqrt(m) + sqrt(k)) (sqrt(n) + sqrt(k)))),
 *   which puts ||U||_2 ||V||_2 near DL_CAREFUL_INIT^2 sigma_1 (a Gaussian
 *   m x k matrix of unit entries has ||.||_2 about sqrt(m) + sqrt(k)).
 * - sigma_1 by power iteration on A^T A from a Gaussian start: the estimate
 *   never exceeds sigma_1, and with a random start it is within a few
 *   percent after a few tens of steps with overwhelming probability
 *   (Kuczynski and Wozniakowski, SIAM J. Matrix Anal. Appl. 13(4), 1992);
 *   the step's margin (0.1 against the 0.5 limit) covers the rest.
 */
#ifndef DLAB_FACTORISE_SCALE_H
#define DLAB_FACTORISE_SCALE_H

#include <stddef.h>

#include "dlab/backend.h"
#include "dlab/factorise.h"

#define DL_CAREFUL_LR_SIGMA 0.1  /* careful lr = this / sigma_1 */
#define DL_CAREFUL_INIT     0.01 /* careful start: ||U|| ||V|| about this^2 sigma_1 */
#define DL_LAB_LR           0.01 /* the lab's step */
#define DL_SIGMA1_MAX_ITERS 30   /* power iterations at most */

/* The exponent e with 2^e ||A||_F in [0.5, 1) for the n floats of a (0 when
 * they are all zero), and ||A||_F^2 in *sumsq, accumulated in double (each
 * square is exact in double). For b = 2^k a (exactly) it returns e - k. */
int dl_scale_exponent(const float *a, size_t n, double *sumsq);

/* The same exponent from ||A||_F^2 already summed (over the ranks holding
 * A's rows, say): -e with sqrt(sumsq) = f 2^e, f in [0.5, 1); 0 when sumsq
 * is 0 or not finite. */
int dl_scale_exponent_of(double sumsq);

/* dst[i] = 2^e src[i] (ldexpf: exact while the results stay normal floats).
 * dst may be src. */
void dl_scale_copy(float *dst, const float *src, size_t n, int e);

/* sigma_1 of the row-major m x n device matrix a by power iteration on
 * A^T A, with gemm ops on the backend, from a Gaussian start drawn from a
 * fixed Philox key (so the estimate depends on the data only). Stops after
 * DL_SIGMA1_MAX_ITERS steps or when the estimate changes by less than 1e-6
 * relative (float32's floor). The result is a lower bound of sigma_1 up to
 * float rounding; 0 for a zero matrix. Intermediate values are bounded by
 * ||A||_F^2, so A must be in float32's safe range (dl_scale_exponent).
 * Allocates 2 (m + n) + 2 floats on the backend for the call. */
dl_status dl_sigma1_estimate(dl_backend *be, const float *a, int m, int n, double *sigma1);

/* The same for a matrix whose rows are spread over the ranks of be->comm:
 * `a` holds this rank's m_local rows (m_local >= 1). Each step's products
 * A v and A^T w are local; ||A v||^2 and A^T w are summed over the ranks
 * (dl_allreduce_sum), so every rank iterates alike and returns the same
 * estimate. A collective. With one rank it is dl_sigma1_estimate. */
dl_status dl_sigma1_estimate_rows(dl_backend *be, const float *a, int m_local, int n,
                                  double *sigma1);

/* The careful preset's step, DL_CAREFUL_LR_SIGMA / sigma1, in the units of
 * sigma1 (1 / units). For sigma1 = 0 (a zero matrix: any step keeps U V^T
 * at zero) it returns DL_CAREFUL_LR_SIGMA. */
double dl_careful_lr(double sigma1);

/* The careful preset's initial std for an m x k U and n x k V (see above),
 * in the square root of sigma1's units. For sigma1 = 0 it uses sigma1 = 1. */
double dl_careful_init_std(double sigma1, int m, int n, int k);

/* The step above which gradient descent from the preset's start is not
 * expected to be stable, in the units of sigma1. Near a fit the loss's
 * largest Hessian eigenvalue is about 2 (||U||_2^2 + ||V||_2^2), so the
 * limit is 1 / (||U||_2^2 + ||V||_2^2) at its largest along the run. That
 * sum starts at c0 = ||U_0||_2^2 + ||V_0||_2^2 and, since gradient descent
 * nearly conserves U^T U - V^T V (difference d along the top direction),
 * ends near sqrt(d^2 + 4 sigma_1^2): the limit is 1 / max(c0, sqrt(d^2 +
 * 4 sigma_1^2)). The careful start has c0, d ~ 0, which gives 0.5 / sigma_1;
 * the lab's U[0,1) start has c0 = (m + n) k / 4 and d = |m - n| k / 4 (the
 * all-ones direction of its mean 1/2): for iris, 0.0113 against its 0.01. */
double dl_stable_lr(dl_factorise_preset preset, double sigma1, int m, int n, int k);

/* The step to suggest after a divergence, in sigma1's units. For the
 * careful start it is the careful step 0.1 / sigma_1 (a fifth of its limit
 * 0.5 / sigma_1, which it reaches the optimum with). The lab's start is
 * dominated by its all-ones direction, which converges at a rate
 * proportional to the step, so a step well under the limit cannot reach the
 * optimum within the lab's epochs (0.2 x limit on iris leaves a relative gap
 * of 2.4 after 1000 epochs): it gets DL_SUGGESTED_FRACTION_LAB of the
 * limit, close to the lab's own 0.01 on iris. */
#define DL_SUGGESTED_FRACTION_LAB 0.9
double dl_suggested_lr(dl_factorise_preset preset, double sigma1, int m, int n, int k);

/* True when the training matrix's sum of squares (in training units) leaves
 * no room for the loss in float32: within a factor 16 of FLT_MAX, where the
 * loss of a start at U V^T = 0 is already at the edge. */
bool dl_sumsq_overflows(double train_sumsq);

/* One line saying why training diverged, from a result with stop ==
 * DL_E_DIVERGED: the epoch and NaN/Inf, then either "the data overflow
 * float32" (the sum of squares against FLT_MAX, and that no step can help
 * in these units) or "the learning rate is too large" (against the stable
 * step from sigma_1), and a step that suits the data. */
void dl_factorise_explain(const dl_factorise_result *r, int epochs, bool nan, char *buf,
                          size_t len);

#endif
