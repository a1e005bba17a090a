/* How close a learned factor is to the SVD's, in float64.
 *
 * Gradient descent on sum((U V^T - A)^2) can only recover the optimal rank-k
 * factors up to an invertible k x k map: U V^T = (U M)(V M^-T)^T. So Û is
 * compared with the top-k left singular vectors U_k through two numbers that
 * do not depend on M:
 *
 * - principal angles between span(Û) and span(U_k): 0 when the subspaces
 *   agree, 90 degrees for a direction of one that is orthogonal to the other;
 * - the aligned residual  min_M ||Û M - U_k S_k||_F / ||U_k S_k||_F,  how much
 *   of the SVD projection of the data no linear map of Û reproduces.
 *
 * Matrices are row-major with a leading dimension (row stride) in elements.
 */
#ifndef DLAB_SUBSPACE_H
#define DLAB_SUBSPACE_H

#include "dlab/status.h"

/* Orthonormalises the k columns of the m x k matrix q (ldq) in place by
 * modified Gram-Schmidt, run twice so the result is orthonormal to working
 * precision. A column left with no more than 1e-12 of its original norm is
 * taken as dependent on the ones before it (a zero column too): it is dropped
 * and the columns after it move left; the freed columns on the right are set
 * to zero. Returns the rank found. */
int dl_orthonormalise(int m, int k, double *q, int ldq);

/* Principal angles, in radians ascending, between span(A) (m x ka) and
 * span(B) (m x kb): min(ka, kb) values in theta. Neither matrix needs
 * orthonormal columns. When a matrix has dependent columns its span is
 * smaller: the angles it cannot supply are reported as pi/2. Small angles are
 * taken from sines and large ones from cosines, so both ends are accurate.
 * DL_E_INPUT when an entry is not finite. */
dl_status dl_principal_angles(int m, int ka, const double *a, int lda, int kb, const double *b,
                              int ldb, double *theta);

/* min over M (kx x ky) of ||X M - Y||_F / ||Y||_F for X m x kx, Y m x ky;
 * 0 when Y is zero. DL_E_INPUT when an entry is not finite. */
dl_status dl_aligned_residual(int m, int kx, const double *x, int ldx, int ky, const double *y,
                              int ldy, double *rel);

/* Both numbers for a factorisation's float32 results: Û (m x k, packed) from
 * gradient descent against U_k S_k from the SVD's u (m x ldu, first k
 * columns used) and singular values s. angles_deg receives k values in
 * degrees, ascending. */
dl_status dl_subspace_compare(int m, int k, const float *u_gd, const float *svd_u, int ldu,
                              const float *s, double *angles_deg, double *residual);

#endif
