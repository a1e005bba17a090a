/* The SVD of a matrix whose rows are spread over ranks, by TSQR.
 *
 * TSQR ("tall-skinny QR", Demmel, Grigori, Hoemmen and Langou,
 * "Communication-optimal parallel and sequential QR and LU factorizations",
 * SIAM J. Sci. Comput. 34(1), 2012), here with one level of reduction:
 *
 *   1. each rank r holds the contiguous rows A_r (m_r x n) and factors
 *      A_r = Q_r R_r, with k_r = min(m_r, n): Q_r is m_r x k_r with
 *      orthonormal columns, R_r is k_r x n upper trapezoidal (a rank with
 *      fewer rows than columns has a wide R; a rank with no rows none);
 *   2. rank 0 stacks R = [R_0; R_1; ...; R_{P-1}] (K x n, K = sum k_r) and
 *      computes its SVD R = U_R S V^T. Since A = diag(Q_0, ..., Q_{P-1}) R
 *      and diag(Q_r) has orthonormal columns, A and R have the same
 *      singular values S and right singular vectors V;
 *   3. S and V^T are broadcast; the left singular vectors of rank r's rows
 *      are U_r = Q_r U_R[rows of R_r], so the m x p matrix U is spread over
 *      the ranks like A (what principal angles against the gradient-descent
 *      factor need).
 *
 * Everything is float64 (the input rows are converted), so the singular
 * values agree with a one-process float64 SVD to about 1e-13 relative and
 * with the backends' float32 SVD to its own accuracy. QR and SVD use
 * LAPACKE (dgeqrf, dorgqr, dgesvd) when the build has it (DLAB_HAVE_LAPACKE),
 * else dl_ref_qr below and dl_ref_svd's one-sided Jacobi.
 *
 * Cost: the local QRs are O(m_r n^2) each; rank 0 receives K <= P n rows of
 * n doubles and computes an O(K n^2) SVD, so this suits n up to a few
 * thousand columns (rank 0 holds P n^2 doubles).
 *
 * Signs: each singular pair (u_j, v_j) is flipped so that the entry of v_j
 * with the largest magnitude is positive (the first such entry on a tie),
 * so V does not depend on P or on the QR's conventions.
 */
#ifndef DLAB_TSQR_H
#define DLAB_TSQR_H

#include <stdbool.h>

#include "dlab/comm.h"
#include "dlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int m, n, p;   /* rows over all ranks, columns, p = min(m, n) */
    int m_local;   /* this rank's rows */
    double *s;     /* p singular values, descending (every rank) */
    double *vt;    /* p x n right singular vectors V^T, row-major (every rank) */
    double *u;     /* m_local x p left singular vectors of this rank's rows,
                      row-major; NULL unless asked for (or when m_local is 0) */
    double *means; /* the n column means subtracted; NULL unless centred */
} dl_tsqr_result;

/* The SVD of the matrix whose rows [first_r, first_r + m_local) are `a`
 * (m_local x n, row-major, leading dimension n) on rank r of `c`, ranks
 * holding consecutive blocks in rank order. With `centre`, the columns'
 * means over all rows (dl_tsqr_column_means) are subtracted first; with
 * `want_u`, res->u receives this rank's rows of U. A collective: every rank
 * passes the same n, centre and want_u, and every rank returns the same
 * status (DL_E_INPUT when the matrix has no rows or n < 1; DL_E_RUNTIME
 * when LAPACK fails; DL_E_MEMORY). res is zeroed first; free it with
 * dl_tsqr_result_free. */
dl_status dl_tsqr_svd(dl_comm *c, const float *a, int m_local, int n, bool centre, bool want_u,
                      dl_tsqr_result *res);

void dl_tsqr_result_free(dl_tsqr_result *res);

/* The column means of a row-sharded m x n matrix: each rank adds its rows in
 * row order in double, the sums are added over the ranks in rank order
 * (dl_comm_allreduce_sum_f64), and divided by the total number of rows,
 * which *m_total receives (may be NULL). Every rank gets the same bits.
 * A collective. */
dl_status dl_tsqr_column_means(dl_comm *c, const float *a, int m_local, int n, double *means,
                               int *m_total);

/* Thin QR by Householder reflections, as LAPACK's dgeqrf/dorgqr define it
 * (H_j = I - tau v v^T, v(j) = 1, beta = -sign(alpha) ||x||), written for
 * clarity: a is m x n row-major (not modified), k = min(m, n); r receives
 * the k x n upper-trapezoidal R (row-major), q (may be NULL) the m x k Q
 * (row-major) with orthonormal columns and A = Q R. DL_E_MEMORY only. */
dl_status dl_ref_qr(int m, int n, const double *a, double *r, double *q);

/* The same through LAPACKE dgeqrf + dorgqr when the build has it, else
 * dl_ref_qr. DL_E_RUNTIME names the LAPACK routine and its info. */
dl_status dl_qr(int m, int n, const double *a, double *r, double *q);

#ifdef __cplusplus
}
#endif
#endif
