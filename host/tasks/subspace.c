#include "dlab/subspace.h"
#include "dlab/summary.h"
#include "dlab/ref.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool all_finite(int m, int k, const double *a, int lda)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++)
            if (!isfinite(a[(size_t)i * lda + j])) return false;
    return true;
}

/* A packed m x k copy (ld = k) of the m x k matrix a (lda). */
static double *copy_packed(int m, int k, const double *a, int lda)
{
    double *c = malloc(sizeof(double) * ((size_t)m * k + 1));
    if (!c) return NULL;
    for (int i = 0; i < m; i++) memcpy(c + (size_t)i * k, a + (size_t)i * lda, sizeof(double) * k);
    return c;
}

static double col_dot(int m, const double *q, int ldq, int i, int j)
{
    double s = 0.0;
    for (int r = 0; r < m; r++) s += q[(size_t)r * ldq + i] * q[(size_t)r * ldq + j];
    return s;
}

/* y[:, j] -= alpha * x[:, i] */
static void col_axpy(int m, double alpha, const double *x, int ldx, int i, double *y, int ldy,
                     int j)
{
    for (int r = 0; r < m; r++) y[(size_t)r * ldy + j] -= alpha * x[(size_t)r * ldx + i];
}

int dl_orthonormalise(int m, int k, double *q, int ldq)
{
    int rank = 0;
    for (int j = 0; j < k; j++) {
        double before = sqrt(col_dot(m, q, ldq, j, j));
        /* The second pass removes what rounding left of the first
         * ("twice is enough", Kahan and Parlett). */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < rank; i++)
                col_axpy(m, col_dot(m, q, ldq, i, j), q, ldq, i, q, ldq, j);
        double after = sqrt(col_dot(m, q, ldq, j, j));
        if (!(after > 1e-12 * before)) continue; /* dependent (or zero): drop it */
        for (int r = 0; r < m; r++) q[(size_t)r * ldq + rank] = q[(size_t)r * ldq + j] / after;
        rank++;
    }
    for (int j = rank; j < k; j++)
        for (int r = 0; r < m; r++) q[(size_t)r * ldq + j] = 0.0;
    return rank;
}

/* Angles between span(ql) (m x rl, orthonormal, packed) and span(qs)
 * (m x rs, orthonormal, packed), rl >= rs >= 1: rs values. The cosines are
 * the singular values of ql^T qs, the sines those of qs - ql ql^T qs; each
 * angle comes from whichever of the two is better conditioned. */
static dl_status angles_orthonormal(int m, int rl, const double *ql, int rs, const double *qs,
                                    double *theta)
{
    double *c = malloc(sizeof(double) * (size_t)rl * rs);
    double *w = malloc(sizeof(double) * (size_t)m * rs);
    double *cosv = malloc(sizeof(double) * (size_t)rs);
    double *sinv = malloc(sizeof(double) * (size_t)rs);
    dl_status st = DL_OK;
    if (!c || !w || !cosv || !sinv) {
        st = DL_FAIL(DL_E_MEMORY, "principal angles: out of host memory for %d x %d", m, rl);
        goto done;
    }
    dl_ref_dgemm(true, false, rl, rs, m, 1.0, ql, rl, qs, rs, 0.0, c, rs);
    memcpy(w, qs, sizeof(double) * (size_t)m * rs);
    dl_ref_dgemm(false, false, m, rs, rl, -1.0, ql, rl, c, rs, 0.0, w, rs);
    for (size_t i = 0; i < (size_t)m * rs; i++) w[i] += qs[i];
    if ((st = dl_ref_svd(rl, rs, c, cosv, NULL, NULL)) ||
        (st = dl_ref_svd(m, rs, w, sinv, NULL, NULL)))
        goto done;
    for (int i = 0; i < rs; i++) {
        double cs = cosv[i] < 1.0 ? cosv[i] : 1.0;
        double sn = sinv[rs - 1 - i] < 1.0 ? sinv[rs - 1 - i] : 1.0; /* sines ascend */
        theta[i] = cs * cs < 0.5 ? acos(cs) : asin(sn);
    }
done:
    free(c), free(w), free(cosv), free(sinv);
    return st;
}

dl_status dl_principal_angles(int m, int ka, const double *a, int lda, int kb, const double *b,
                              int ldb, double *theta)
{
    if (m < 1 || ka < 1 || kb < 1)
        return DL_FAIL(DL_E_USAGE, "principal angles: bad shape m %d, ka %d, kb %d", m, ka, kb);
    if (!all_finite(m, ka, a, lda) || !all_finite(m, kb, b, ldb))
        return DL_FAIL(DL_E_INPUT, "principal angles: the matrices hold NaN or Inf");
    int q = ka < kb ? ka : kb;
    for (int i = 0; i < q; i++) theta[i] = acos(0.0);
    double *qa = copy_packed(m, ka, a, lda), *qb = copy_packed(m, kb, b, ldb);
    if (!qa || !qb) {
        free(qa), free(qb);
        return DL_FAIL(DL_E_MEMORY, "principal angles: out of host memory for %d rows", m);
    }
    int ra = dl_orthonormalise(m, ka, qa, ka), rb = dl_orthonormalise(m, kb, qb, kb);
    /* The orthonormal columns sit first; repack them with their rank as ld. */
    for (int i = 0; i < m; i++)
        memmove(qa + (size_t)i * ra, qa + (size_t)i * ka, sizeof(double) * ra);
    for (int i = 0; i < m; i++)
        memmove(qb + (size_t)i * rb, qb + (size_t)i * kb, sizeof(double) * rb);
    dl_status st = DL_OK;
    if (ra > 0 && rb > 0)
        st = ra >= rb ? angles_orthonormal(m, ra, qa, rb, qb, theta)
                      : angles_orthonormal(m, rb, qb, ra, qa, theta);
    free(qa), free(qb);
    if (st == DL_OK) qsort(theta, (size_t)q, sizeof(double), dl_cmp_double);
    return st;
}

dl_status dl_aligned_residual(int m, int kx, const double *x, int ldx, int ky, const double *y,
                              int ldy, double *rel)
{
    if (m < 1 || kx < 1 || ky < 1)
        return DL_FAIL(DL_E_USAGE, "aligned residual: bad shape m %d, kx %d, ky %d", m, kx, ky);
    if (!all_finite(m, kx, x, ldx) || !all_finite(m, ky, y, ldy))
        return DL_FAIL(DL_E_INPUT, "aligned residual: the matrices hold NaN or Inf");
    double *q = copy_packed(m, kx, x, ldx), *r = copy_packed(m, ky, y, ldy);
    double *c = malloc(sizeof(double) * (size_t)kx * ky);
    if (!q || !r || !c) {
        free(q), free(r), free(c);
        return DL_FAIL(DL_E_MEMORY, "aligned residual: out of host memory for %d rows", m);
    }
    /* min_M ||X M - Y|| is the part of Y outside span(X): Y - Q Q^T Y, with
     * the projection repeated once to clear rounding. Dropped columns of Q
     * are zero and take no part. */
    dl_orthonormalise(m, kx, q, kx);
    for (int pass = 0; pass < 2; pass++) {
        dl_ref_dgemm(true, false, kx, ky, m, 1.0, q, kx, r, ky, 0.0, c, ky);
        dl_ref_dgemm(false, false, m, ky, kx, -1.0, q, kx, c, ky, 1.0, r, ky);
    }
    double num = 0.0, den = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < ky; j++) {
            double yij = y[(size_t)i * ldy + j], rij = r[(size_t)i * ky + j];
            num += rij * rij;
            den += yij * yij;
        }
    *rel = den > 0.0 ? sqrt(num / den) : 0.0;
    free(q), free(r), free(c);
    return DL_OK;
}

dl_status dl_subspace_compare(int m, int k, const float *u_gd, const float *svd_u, int ldu,
                              const float *s, double *angles_deg, double *residual)
{
    if (m < 1 || k < 1 || ldu < k)
        return DL_FAIL(DL_E_USAGE, "subspace comparison: bad shape m %d, k %d, ldu %d", m, k, ldu);
    double *g = malloc(sizeof(double) * (size_t)m * k);
    double *uk = malloc(sizeof(double) * (size_t)m * k);
    double *us = malloc(sizeof(double) * (size_t)m * k);
    dl_status st;
    if (!g || !uk || !us) {
        st = DL_FAIL(DL_E_MEMORY, "subspace comparison: out of host memory for %d x %d", m, k);
        goto done;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < k; j++) {
            size_t at = (size_t)i * k + j;
            g[at] = u_gd[at];
            uk[at] = svd_u[(size_t)i * ldu + j];
            us[at] = uk[at] * (double)s[j];
        }
    if ((st = dl_principal_angles(m, k, g, k, k, uk, k, angles_deg))) goto done;
    for (int j = 0; j < k; j++) angles_deg[j] *= 180.0 / acos(-1.0);
    st = dl_aligned_residual(m, k, g, k, k, us, k, residual);
done:
    free(g), free(uk), free(us);
    return st;
}
