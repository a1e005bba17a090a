/* Plain reference routines in float64 (and a float32 gemm).
 *
 * Tests compare every backend op against these; the CPU backend also falls
 * back on them when it is built without OpenBLAS or LAPACKE (e.g. on a
 * locked-down GPU node), so they are written for clarity first.
 */
#ifndef DLAB_REF_H
#define DLAB_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "dlab/status.h"

/* Row-major C = alpha op(A) op(B) + beta C in double; same argument meaning
 * as dl_gemm_args with batch 1. */
void dl_ref_dgemm(bool ta, bool tb, int m, int n, int k, double alpha, const double *a, int lda,
                  const double *b, int ldb, double beta, double *c, int ldc);

/* The same in float with float accumulation, cache-friendly loop order. */
void dl_ref_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);

/* Thin SVD by one-sided Jacobi rotations, row-major m x n input, p = min(m,n):
 * s[p] descending, u m x p, vt p x n (either may be NULL). */
dl_status dl_ref_svd(int m, int n, const double *a, double *s, double *u, double *vt);

#endif
