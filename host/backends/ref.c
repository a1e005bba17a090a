#include "dlab/ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline double elem_d(const double *x, int ld, bool t, int i, int j)
{
    return t ? x[(size_t)j * ld + i] : x[(size_t)i * ld + j];
}

void dl_ref_dgemm(bool ta, bool tb, int m, int n, int k, double alpha, const double *a, int lda,
                  const double *b, int ldb, double beta, double *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) acc += elem_d(a, lda, ta, i, p) * elem_d(b, ldb, tb, p, j);
            double *cij = &c[(size_t)i * ldc + j];
            *cij = alpha * acc + (beta == 0.0 ? 0.0 : beta * *cij);
        }
}

void dl_ref_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++) ci[j] = beta == 0.0f ? 0.0f : beta * ci[j];
        for (int p = 0; p < k; p++) {
            float aip = alpha * (ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
            if (!tb) {
                const float *bp = b + (size_t)p * ldb; /* row p of B: contiguous */
                for (int j = 0; j < n; j++) ci[j] += aip * bp[j];
            } else {
                for (int j = 0; j < n; j++) ci[j] += aip * b[(size_t)j * ldb + p];
            }
        }
    }
}

/* One-sided Jacobi on the columns of W (rows x cols, column-major here for
 * contiguous column access), accumulating the rotations in V (cols x cols).
 * Converged columns are W = U S. */
static void jacobi_columns(int rows, int cols, double *w, double *v)
{
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++) v[(size_t)i * cols + j] = (i == j);
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0.0;
        for (int p = 0; p < cols - 1; p++)
            for (int q = p + 1; q < cols; q++) {
                double *wp = w + (size_t)p * rows, *wq = w + (size_t)q * rows;
                double alpha = 0, beta = 0, gamma = 0;
                for (int i = 0; i < rows; i++) {
                    alpha += wp[i] * wp[i];
                    beta += wq[i] * wq[i];
                    gamma += wp[i] * wq[i];
                }
                if (gamma == 0.0) continue;
                double rel = fabs(gamma) / sqrt(alpha * beta);
                if (rel > off) off = rel;
                if (rel < 1e-15) continue;
                double zeta = (beta - alpha) / (2.0 * gamma);
                double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                double c = 1.0 / sqrt(1.0 + t * t), s = c * t;
                for (int i = 0; i < rows; i++) {
                    double x = wp[i], y = wq[i];
                    wp[i] = c * x - s * y;
                    wq[i] = s * x + c * y;
                }
                double *vp = v + (size_t)p * cols, *vq = v + (size_t)q * cols;
                for (int i = 0; i < cols; i++) {
                    double x = vp[i], y = vq[i];
                    vp[i] = c * x - s * y;
                    vq[i] = s * x + c * y;
                }
            }
        if (off < 1e-15) break;
    }
}

dl_status dl_ref_svd(int m, int n, const double *a, double *s, double *u, double *vt)
{
    /* Work on the tall orientation: X = A (m >= n) or X = A^T, rows >= cols. */
    bool tall = m >= n;
    int rows = tall ? m : n, cols = tall ? n : m, p = cols;
    double *w = malloc(sizeof(double) * (size_t)rows * cols);
    double *v = malloc(sizeof(double) * (size_t)cols * cols);
    int *order = malloc(sizeof(int) * (size_t)p);
    double *norms = malloc(sizeof(double) * (size_t)p);
    if (!w || !v || !order || !norms) {
        free(w), free(v), free(order), free(norms);
        return DL_FAIL(DL_E_MEMORY, "reference SVD: out of host memory for a %dx%d matrix", m, n);
    }
    /* Column j of X, stored contiguously: X[i][j] = tall ? A[i][j] : A[j][i]. */
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++)
            w[(size_t)j * rows + i] = tall ? a[(size_t)i * n + j] : a[(size_t)j * n + i];
    jacobi_columns(rows, cols, w, v);
    for (int j = 0; j < p; j++) {
        double nrm = 0;
        for (int i = 0; i < rows; i++) nrm += w[(size_t)j * rows + i] * w[(size_t)j * rows + i];
        norms[j] = sqrt(nrm);
        order[j] = j;
    }
    for (int i = 1; i < p; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && norms[order[j]] > norms[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    /* X = Ux S Vx^T with Ux columns = w/norm, Vx columns = rows of v. For A
     * tall: U = Ux, V = Vx. For A wide (X = A^T): U = Vx, V = Ux. */
    for (int r = 0; r < p; r++) {
        int j = order[r];
        double sj = norms[j], inv = sj > 0 ? 1.0 / sj : 0.0;
        s[r] = sj;
        const double *uxj = w + (size_t)j * rows; /* length rows */
        const double *vxj = v + (size_t)j * cols; /* length cols */
        if (tall) {
            if (u)
                for (int i = 0; i < m; i++) u[(size_t)i * p + r] = uxj[i] * inv;
            if (vt)
                for (int i = 0; i < n; i++) vt[(size_t)r * n + i] = vxj[i];
        } else {
            if (u)
                for (int i = 0; i < m; i++) u[(size_t)i * p + r] = vxj[i];
            if (vt)
                for (int i = 0; i < n; i++) vt[(size_t)r * n + i] = uxj[i] * inv;
        }
    }
    free(w), free(v), free(order), free(norms);
    return DL_OK;
}
