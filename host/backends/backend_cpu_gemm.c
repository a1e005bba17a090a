/* The CPU backend's gemm: OpenBLAS for products large enough to pay for a
 * BLAS call, and register-resident loops for the tiny products that
 * dominate an iris epoch. Without OpenBLAS the large ones go to the float
 * reference gemm (dlab/ref.h). */
#include "dlab/backend.h"
#include "dlab/ref.h"
#include "backend_cpu.h"

#ifdef DLAB_HAVE_CBLAS
#include <cblas.h>
#endif

/* Below this many multiply-adds the plain loop beats a BLAS call's setup. */
#define DL_CPU_SMALL_GEMM 16384
/* Tiny products (iris: 150x4 at rank 2; the MLP's 4-12-3 layers) cost less
 * as plain loops than a BLAS call's packing and dispatch.
 * op(A)[i][p] = a[i*ai + p*ap] and op(B)[p][j] = b[p*bp + j*bj] cover the
 * four transpose cases.
 *
 * Outputs up to 16 columns wide (the rank, the feature count, a small hidden
 * layer) get one function per width: the row's accumulators stay in
 * registers and, with op(B)'s rows contiguous, the inner loop is a constant
 * number of vector FMAs. A transposed B is first copied into row order on
 * the stack (it is at most SMALL_BT floats). Wider outputs use dot
 * products. */
#define SMALL_NARROW_MAX 16
#define SMALL_BT         4096

#define SMALL_GEMM_NARROW(N)                                                                       \
    static void small_gemm_n##N(int m, int k, float alpha, const float *a, size_t ai, size_t ap,   \
                                const float *b, size_t bp, float beta, float *c, int ldc)          \
    {                                                                                              \
        for (int i = 0; i < m; i++) {                                                              \
            float acc[N] = {0};                                                                    \
            const float *x = a + i * ai;                                                           \
            for (int p = 0; p < k; p++) {                                                          \
                const float xp = x[p * ap], *y = b + p * bp;                                       \
                for (int j = 0; j < N; j++) acc[j] += xp * y[j];                                   \
            }                                                                                      \
            float *ci = c + (size_t)i * ldc;                                                       \
            for (int j = 0; j < N; j++)                                                            \
                ci[j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * ci[j];             \
        }                                                                                          \
    }
SMALL_GEMM_NARROW(1)
SMALL_GEMM_NARROW(2)
SMALL_GEMM_NARROW(3)
SMALL_GEMM_NARROW(4)
SMALL_GEMM_NARROW(5)
SMALL_GEMM_NARROW(6)
SMALL_GEMM_NARROW(7)
SMALL_GEMM_NARROW(8)
SMALL_GEMM_NARROW(9)
SMALL_GEMM_NARROW(10)
SMALL_GEMM_NARROW(11)
SMALL_GEMM_NARROW(12)
SMALL_GEMM_NARROW(13)
SMALL_GEMM_NARROW(14)
SMALL_GEMM_NARROW(15)
SMALL_GEMM_NARROW(16)

typedef void (*small_gemm_fn)(int, int, float, const float *, size_t, size_t, const float *, size_t,
                              float, float *, int);
static const small_gemm_fn small_gemm_narrow[SMALL_NARROW_MAX + 1] = {
    NULL,           small_gemm_n1,  small_gemm_n2,  small_gemm_n3,  small_gemm_n4,  small_gemm_n5,
    small_gemm_n6,  small_gemm_n7,  small_gemm_n8,  small_gemm_n9,  small_gemm_n10, small_gemm_n11,
    small_gemm_n12, small_gemm_n13, small_gemm_n14, small_gemm_n15, small_gemm_n16};

static void small_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc)
{
    const size_t ai = ta ? 1 : (size_t)lda, ap = ta ? (size_t)lda : 1;
    if (n >= 1 && n <= SMALL_NARROW_MAX && (!tb || (size_t)k * n <= SMALL_BT)) {
        float bt[SMALL_BT];
        const float *rows = b;
        size_t row_stride = (size_t)ldb;
        if (tb) { /* op(B)[p][j] = B[j][p]: gather into row order */
            for (int p = 0; p < k; p++)
                for (int j = 0; j < n; j++) bt[(size_t)p * n + j] = b[(size_t)j * ldb + p];
            rows = bt;
            row_stride = (size_t)n;
        }
        small_gemm_narrow[n](m, k, alpha, a, ai, ap, rows, row_stride, beta, c, ldc);
        return;
    }
    const size_t bp = tb ? 1 : (size_t)ldb, bj = tb ? (size_t)ldb : 1;
    for (int i = 0; i < m; i++) {
        const float *x = a + i * ai;
        float *ci = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++) {
            const float *y = b + j * bj;
            float acc = 0.0f;
            for (int p = 0; p < k; p++) acc += x[p * ap] * y[p * bp];
            ci[j] = beta == 0.0f ? alpha * acc : alpha * acc + beta * ci[j];
        }
    }
}

static void gemm_one(const dl_gemm_args *g, size_t b, bool small)
{
    const float *a = g->a + b * g->stride_a;
    const float *bb = g->b + b * g->stride_b;
    float *c = g->c + b * g->stride_c;
    if (small) {
        small_sgemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, a, g->lda, bb, g->ldb,
                    g->beta, c, g->ldc);
        return;
    }
#ifdef DLAB_HAVE_CBLAS
    cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                g->trans_b ? CblasTrans : CblasNoTrans, g->m, g->n, g->k, g->alpha, a, g->lda, bb,
                g->ldb, g->beta, c, g->ldc);
#else
    dl_ref_sgemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, a, g->lda, bb, g->ldb, g->beta,
                 c, g->ldc);
#endif
}

dl_status dl_cpu_gemm(dl_backend *be, const dl_gemm_args *g)
{
    double work = (double)g->m * g->n * g->k;
    bool small = work < DL_CPU_SMALL_GEMM;
    /* Many models: one model per thread (BLAS then runs single-threaded
     * inside each, as OpenBLAS does for calls from a parallel region). */
    DL_FOR(g->batch > 1 && work * g->batch > DL_CPU_PAR_MIN, b, g->batch, gemm_one(g, b, small););
    return DL_OK;
}
