/* TSQR: the SVD of a row-sharded matrix from the R factors of its blocks.
 * The algorithm, its cost and its conventions are in dlab/tsqr.h. */
#include "dlab/tsqr.h"
#include "dlab/ref.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef DLAB_HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef DLAB_HAVE_LAPACKE
#include <lapacke.h>
#endif

/* --- QR of one block ------------------------------------------------------ */

dl_status dl_ref_qr(int m, int n, const double *a, double *r, double *q)
{
    const int k = m < n ? m : n;
    double *w = malloc(sizeof(double) * ((size_t)m * n + (size_t)n + (size_t)k));
    if (!w) return DL_FAIL(DL_E_MEMORY, "QR: out of host memory for a %dx%d matrix", m, n);
    double *s = w + (size_t)m * n, *tau = s + n;
    memcpy(w, a, sizeof(double) * (size_t)m * n);
#define W(i, j) w[(size_t)(i)*n + (j)]
    for (int j = 0; j < k; j++) {
        /* The reflector that zeroes W(j+1:m, j): LAPACK's dlarfg. */
        double alpha = W(j, j), xnorm = 0.0;
        for (int i = j + 1; i < m; i++) xnorm = hypot(xnorm, W(i, j));
        tau[j] = 0.0;
        if (xnorm == 0.0) continue; /* already zero below the diagonal: H = I */
        double beta = -copysign(hypot(alpha, xnorm), alpha);
        tau[j] = (beta - alpha) / beta;
        double scale = 1.0 / (alpha - beta);
        for (int i = j + 1; i < m; i++) W(i, j) *= scale; /* v, with v(j) = 1 implied */
        W(j, j) = beta;
        /* W(j:m, j+1:n) -= tau v (v^T W(j:m, j+1:n)), row by row for contiguous access. */
        for (int c = j + 1; c < n; c++) s[c] = W(j, c);
        for (int i = j + 1; i < m; i++)
            for (int c = j + 1; c < n; c++) s[c] += W(i, j) * W(i, c);
        for (int c = j + 1; c < n; c++) W(j, c) -= tau[j] * s[c];
        for (int i = j + 1; i < m; i++)
            for (int c = j + 1; c < n; c++) W(i, c) -= tau[j] * s[c] * W(i, j);
    }
    for (int i = 0; i < k; i++)
        for (int c = 0; c < n; c++) r[(size_t)i * n + c] = c >= i ? W(i, c) : 0.0;
    if (q) {
        /* Q = H_0 H_1 ... H_{k-1} I(:, 0:k), accumulated from the last
         * reflector: H_j touches rows j..m-1 and, so far, columns j..k-1. */
#define Q(i, j) q[(size_t)(i)*k + (j)]
        for (int i = 0; i < m; i++)
            for (int c = 0; c < k; c++) Q(i, c) = i == c;
        for (int j = k - 1; j >= 0; j--) {
            if (tau[j] == 0.0) continue;
            for (int c = j; c < k; c++) s[c] = Q(j, c);
            for (int i = j + 1; i < m; i++)
                for (int c = j; c < k; c++) s[c] += W(i, j) * Q(i, c);
            for (int c = j; c < k; c++) Q(j, c) -= tau[j] * s[c];
            for (int i = j + 1; i < m; i++)
                for (int c = j; c < k; c++) Q(i, c) -= tau[j] * s[c] * W(i, j);
        }
#undef Q
    }
#undef W
    free(w);
    return DL_OK;
}

dl_status dl_qr(int m, int n, const double *a, double *r, double *q)
{
#ifdef DLAB_HAVE_LAPACKE
    const int k = m < n ? m : n;
    if (k == 0) return DL_OK;
    double *w = malloc(sizeof(double) * ((size_t)m * n + (size_t)k));
    if (!w) return DL_FAIL(DL_E_MEMORY, "QR: out of host memory for a %dx%d matrix", m, n);
    double *tau = w + (size_t)m * n;
    memcpy(w, a, sizeof(double) * (size_t)m * n);
    lapack_int info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, n, w, n, tau);
    if (info != 0) {
        free(w);
        return DL_FAIL(DL_E_RUNTIME, "LAPACKE_dgeqrf failed on a %dx%d matrix: info=%d", m, n,
                       (int)info);
    }
    for (int i = 0; i < k; i++)
        for (int c = 0; c < n; c++) r[(size_t)i * n + c] = c >= i ? w[(size_t)i * n + c] : 0.0;
    if (q) {
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, k, k, w, n, tau);
        if (info != 0) {
            free(w);
            return DL_FAIL(DL_E_RUNTIME, "LAPACKE_dorgqr failed on a %dx%d matrix: info=%d", m, k,
                           (int)info);
        }
        for (int i = 0; i < m; i++)
            memcpy(q + (size_t)i * k, w + (size_t)i * n, sizeof(double) * k);
    }
    free(w);
    return DL_OK;
#else
    return dl_ref_qr(m, n, a, r, q);
#endif
}

/* --- helpers -------------------------------------------------------------- */

dl_status dl_tsqr_column_means(dl_comm *c, const float *a, int m_local, int n, double *means,
                               int *m_total)
{
    double *sums = calloc((size_t)n + 1, sizeof(double));
    dl_status st = sums ? DL_OK : DL_FAIL(DL_E_MEMORY, "out of host memory for column means");
    if ((st = dl_comm_agree(c, st)) != DL_OK) return free(sums), st;
    for (int i = 0; i < m_local; i++)
        for (int j = 0; j < n; j++) sums[j] += a[(size_t)i * n + j];
    sums[n] = m_local; /* exact in a double */
    st = dl_comm_allreduce_sum_f64(c, sums, (size_t)n + 1);
    if (st == DL_OK && sums[n] < 1.0)
        st = DL_FAIL(DL_E_INPUT, "column means of a matrix without rows");
    if (st == DL_OK) {
        for (int j = 0; j < n; j++) means[j] = sums[j] / sums[n];
        if (m_total) *m_total = (int)sums[n];
    }
    free(sums);
    return st;
}

/* Thin SVD of the K x n row-major matrix x (overwritten): s[p], u K x p
 * (may be NULL), vt p x n, p = min(K, n). */
static dl_status svd_f64(int K, int n, double *x, double *s, double *u, double *vt)
{
#ifdef DLAB_HAVE_LAPACKE
    int p = K < n ? K : n;
    double *superb = malloc(sizeof(double) * (size_t)(p > 1 ? p : 2));
    if (!superb) return DL_FAIL(DL_E_MEMORY, "SVD: out of host memory");
    lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, u ? 'S' : 'N', 'S', K, n, x, n, s, u,
                                     u ? p : 1, vt, n, superb);
    free(superb);
    if (info != 0)
        return DL_FAIL(DL_E_RUNTIME, "LAPACKE_dgesvd failed on the stacked %dx%d R: info=%d", K, n,
                       (int)info);
    return DL_OK;
#else
    return dl_ref_svd(K, n, x, s, u, vt);
#endif
}

/* y (m x p) = a (m x k) b (k x p), all row-major and dense. */
static void matmul_f64(int m, int p, int k, const double *a, const double *b, double *y)
{
    if (m == 0 || p == 0) return;
#ifdef DLAB_HAVE_CBLAS
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, p, k, 1.0, a, k > 0 ? k : 1, b, p,
                0.0, y, p);
#else
    dl_ref_dgemm(false, false, m, p, k, 1.0, a, k > 0 ? k : 1, b, p, 0.0, y, p);
#endif
}

/* Flips each singular pair so that v_j's largest-magnitude entry (the first
 * on a tie) is positive; u (K x p, may be NULL) follows. */
static void fix_signs(int p, int n, int K, double *vt, double *u)
{
    for (int j = 0; j < p; j++) {
        double *v = vt + (size_t)j * n;
        int big = 0;
        for (int i = 1; i < n; i++)
            if (fabs(v[i]) > fabs(v[big])) big = i;
        if (v[big] >= 0.0) continue;
        for (int i = 0; i < n; i++) v[i] = -v[i];
        if (u)
            for (int i = 0; i < K; i++) u[(size_t)i * p + j] = -u[(size_t)i * p + j];
    }
}

/* --- TSQR ----------------------------------------------------------------- */

void dl_tsqr_result_free(dl_tsqr_result *res)
{
    if (!res) return;
    free(res->s), free(res->vt), free(res->u), free(res->means);
    memset(res, 0, sizeof *res);
}

/* Every rank must pass the same n and flags: checked in one exchange of
 * maxima (of x and of -x). */
static dl_status check_same_arguments(dl_comm *c, int n, bool centre, bool want_u)
{
    int32_t v[6] = {n, -n, centre, -(int32_t)centre, want_u, -(int32_t)want_u};
    DL_TRY(dl_comm_allreduce_max_i32(c, v, 6));
    if (v[0] != -v[1] || v[2] != -v[3] || v[4] != -v[5])
        return DL_FAIL(DL_E_USAGE,
                       "TSQR: the ranks disagree on the columns (%d to %d) or the "
                       "options",
                       -v[1], v[0]);
    return DL_OK;
}

/* Rank 0's part: the SVD of the stacked R factors, with fixed signs. */
static dl_status svd_of_stack(int K, int n, int p, double *stack, double *s, double *ur, double *vt)
{
    DL_TRY(svd_f64(K, n, stack, s, ur, vt));
    fix_signs(p, n, K, vt, ur);
    return DL_OK;
}

dl_status dl_tsqr_svd(dl_comm *c, const float *a, int m_local, int n, bool centre, bool want_u,
                      dl_tsqr_result *res)
{
    memset(res, 0, sizeof *res);
    const int P = dl_comm_size(c), me = dl_comm_rank(c);
    DL_TRY(check_same_arguments(c, n, centre, want_u));
    dl_status st = DL_OK;
    if (n < 1) st = DL_FAIL(DL_E_INPUT, "TSQR of a matrix with %d columns", n);
    if (m_local < 0) st = DL_FAIL(DL_E_INPUT, "TSQR: rank %d holds %d rows", me, m_local);
    DL_TRY(dl_comm_agree(c, st));

    /* The block, in double and centred. */
    int m = 0;
    if (centre) {
        res->means = malloc(sizeof(double) * (size_t)n);
        st = res->means ? DL_OK : DL_FAIL(DL_E_MEMORY, "out of host memory for column means");
        if ((st = dl_comm_agree(c, st)) == DL_OK)
            st = dl_tsqr_column_means(c, a, m_local, n, res->means, &m);
    } else {
        double rows = m_local;
        st = dl_comm_allreduce_sum_f64(c, &rows, 1);
        m = (int)rows;
        if (st == DL_OK && m < 1) st = DL_FAIL(DL_E_INPUT, "TSQR of a matrix without rows");
    }
    if (st != DL_OK) return dl_tsqr_result_free(res), st;
    const int k = m_local < n ? m_local : n, p = m < n ? m : n;
    res->m = m, res->n = n, res->p = p, res->m_local = m_local;

    double *w = malloc(sizeof(double) * ((size_t)m_local * n + 1));
    double *r = malloc(sizeof(double) * ((size_t)k * n + 1));
    double *q = want_u ? malloc(sizeof(double) * ((size_t)m_local * k + 1)) : NULL;
    res->s = malloc(sizeof(double) * (size_t)p);
    res->vt = malloc(sizeof(double) * (size_t)p * n);
    int *rows = malloc(sizeof(int) * ((size_t)P + 1));  /* k of every rank, then K */
    size_t *sizes = malloc(sizeof(size_t) * (size_t)P); /* bytes of every rank's R */
    double *stack = NULL, *ur = NULL;
    int offset = 0;
    if (!w || !r || (want_u && !q) || !res->s || !res->vt || !rows || !sizes) {
        st = DL_FAIL(DL_E_MEMORY, "TSQR: out of host memory for a %dx%d block", m_local, n);
    } else {
        for (size_t i = 0; i < (size_t)m_local; i++)
            for (int j = 0; j < n; j++)
                w[i * n + j] = (double)a[i * n + j] - (centre ? res->means[j] : 0.0);
        if (k > 0) st = dl_qr(m_local, n, w, r, q);
    }
    if ((st = dl_comm_agree(c, st)) != DL_OK) goto done;

    /* Stack the R factors on rank 0 and take their SVD there. */
    st = dl_comm_gather(c, r, sizeof(double) * (size_t)k * n, (void **)&stack, sizes);
    if (st == DL_OK && me == 0) {
        int K = 0;
        for (int q_ = 0; q_ < P; q_++) {
            rows[q_] = (int)(sizes[q_] / (sizeof(double) * (size_t)n));
            K += rows[q_];
        }
        rows[P] = K;
        ur = want_u ? malloc(sizeof(double) * (size_t)K * p) : NULL;
        if (want_u && !ur)
            st = DL_FAIL(DL_E_MEMORY, "TSQR: out of host memory for a %dx%d U", K, p);
        else
            st = svd_of_stack(K, n, p, stack, res->s, ur, res->vt);
    }
    if ((st = dl_comm_agree(c, st)) != DL_OK) goto done;
    if ((st = dl_comm_bcast(c, res->s, sizeof(double) * (size_t)p, 0)) ||
        (st = dl_comm_bcast(c, res->vt, sizeof(double) * (size_t)p * n, 0)))
        goto done;
    if (!want_u) goto done;

    /* U of this rank's rows: Q_r times its rows of U_R. */
    if ((st = dl_comm_bcast(c, rows, sizeof(int) * ((size_t)P + 1), 0))) goto done;
    if (me != 0) {
        ur = malloc(sizeof(double) * ((size_t)rows[P] * p + 1));
        st = ur ? DL_OK : DL_FAIL(DL_E_MEMORY, "TSQR: out of host memory for U");
    }
    if (st == DL_OK && m_local > 0) {
        res->u = malloc(sizeof(double) * (size_t)m_local * p);
        if (!res->u) st = DL_FAIL(DL_E_MEMORY, "TSQR: out of host memory for this rank's U");
    }
    if ((st = dl_comm_agree(c, st)) != DL_OK) goto done;
    if ((st = dl_comm_bcast(c, ur, sizeof(double) * (size_t)rows[P] * p, 0))) goto done;
    for (int q_ = 0; q_ < me; q_++) offset += rows[q_];
    matmul_f64(m_local, p, k, q, ur + (size_t)offset * p, res->u);
done:
    free(w), free(r), free(q), free(rows), free(sizes), free(stack), free(ur);
    if (st != DL_OK) dl_tsqr_result_free(res);
    return st;
}
