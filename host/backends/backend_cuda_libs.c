/* The CUDA backend's library calls: cuBLAS for gemm, cuSOLVER for the SVD
 * and cuRAND for random fills, on the backend's one stream (see
 * backend_cuda.c for the rules these keep). */
#include "dlab/backend.h"
#include "backend_cuda.h"

#include <stdint.h>
#include <stdlib.h>

/* --- dense linear algebra ------------------------------------------------ */

static int max_int(int a, int b) { return a > b ? a : b; }

/* Row-major C = op(A) op(B) is, read column-major, C^T = op(B)^T op(A)^T.
 * A row-major matrix is its own transpose in column-major, so cuBLAS is
 * called with the operands swapped, the same transpose flags, and n and m
 * exchanged; leading dimensions carry over unchanged. */
dl_status dl_cuda_gemm(dl_backend *be, const dl_gemm_args *g)
{
    cuda_impl *c = be->impl;
    cublasOperation_t op_a = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (g->batch == 1) {
        CUBLAS_TRY(cublasSgemm(c->blas, op_b, op_a, g->n, g->m, g->k, &g->alpha, g->b, g->ldb, g->a,
                               g->lda, &g->beta, g->c, g->ldc));
    } else {
        CUBLAS_TRY(cublasSgemmStridedBatched(c->blas, op_b, op_a, g->n, g->m, g->k, &g->alpha, g->b,
                                             g->ldb, (long long)g->stride_b, g->a, g->lda,
                                             (long long)g->stride_a, &g->beta, g->c, g->ldc,
                                             (long long)g->stride_c, g->batch));
    }
    return DL_OK;
}

/* Device buffers of one SVD call, freed together whatever happens. */
typedef struct {
    float *a_work; /* the input copy gesvd destroys */
    float *u_cm;   /* tall case: U column-major, before transposing into u */
    float *vt_cm;  /* tall case: VT column-major, before transposing into vt */
    float *work;
    int *info;
} svd_buffers;

static void svd_buffers_free(cuda_impl *c, svd_buffers *w)
{
    /* Queued work may still use the buffers if a later call failed. */
    (void)cudaStreamSynchronize(c->stream);
    float *bufs[] = {w->a_work, w->u_cm, w->vt_cm, w->work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) (void)cudaFree(bufs[i]);
    if (w->info) (void)cudaFree(w->info);
    (void)cudaGetLastError();
}

/* cusolverDnSgesvd wants a column-major matrix with rows >= cols. The row-major
 * m x n input, read column-major, is A^T (n x m):
 * - wide or square (n >= m): factor X = A^T directly. X = Ux S VxT gives
 *   A = VxT^T S Ux^T, so u = VxT^T and vt = Ux^T; and in memory the
 *   row-major u is exactly the column-major VxT, the row-major vt exactly
 *   the column-major Ux: gesvd writes straight into the caller's buffers.
 * - tall (m > n): transpose on the device (cublasSgeam) to get A itself in
 *   column-major, factor it, and transpose U and VT back to row-major. */
static dl_status svd_run(cuda_impl *c, int m, int n, const float *a, float *s, float *u, float *vt,
                         svd_buffers *w)
{
    const float one = 1.0f, zero = 0.0f;
    const size_t mn = (size_t)m * (size_t)n;
    const bool wide = n >= m;
    const int rows = wide ? n : m, cols = wide ? m : n; /* cols == min(m, n) */

    DL_TRY(dl_cuda_malloc("svd", mn * sizeof(float), (void **)&w->a_work));
    if (wide) {
        CUDA_TRY(
            cudaMemcpyAsync(w->a_work, a, mn * sizeof(float), cudaMemcpyDeviceToDevice, c->stream));
    } else {
        /* B is not read when beta == 0. */
        CUBLAS_TRY(cublasSgeam(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, &one, a, n, &zero, NULL, m,
                               w->a_work, m));
    }

    /* Where gesvd's U (rows x cols) and VT (cols x cols) go. */
    float *u_g = NULL, *vt_g = NULL;
    if (wide) {
        u_g = vt;
        vt_g = u;
    } else {
        if (u) DL_TRY(dl_cuda_malloc("svd", mn * sizeof(float), (void **)&w->u_cm));
        if (vt)
            DL_TRY(
                dl_cuda_malloc("svd", (size_t)n * (size_t)n * sizeof(float), (void **)&w->vt_cm));
        u_g = w->u_cm;
        vt_g = w->vt_cm;
    }
    /* 'S': the first cols columns of U. VT is cols x cols either way, and
     * 'A' is the long-standing spelling for it. */
    signed char jobu = u_g ? 'S' : 'N', jobvt = vt_g ? 'A' : 'N';

    int lwork = 0;
    CUSOLVER_TRY(cusolverDnSgesvd_bufferSize(c->solver, rows, cols, &lwork));
    DL_TRY(dl_cuda_malloc("svd", (size_t)max_int(lwork, 1) * sizeof(float), (void **)&w->work));
    DL_TRY(dl_cuda_malloc("svd", sizeof(int), (void **)&w->info));
    CUSOLVER_TRY(cusolverDnSgesvd(c->solver, jobu, jobvt, rows, cols, w->a_work, rows, s, u_g, rows,
                                  vt_g, cols, w->work, lwork, NULL, w->info));
    int info = 0;
    CUDA_TRY(cudaMemcpyAsync(&info, w->info, sizeof info, cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    if (info < 0)
        return DL_FAIL(DL_E_RUNTIME,
                       "cusolverDnSgesvd rejected argument %d (info=%d) for a "
                       "%dx%d matrix",
                       -info, info, m, n);
    if (info > 0)
        return DL_FAIL(DL_E_RUNTIME,
                       "cusolverDnSgesvd did not converge: %d superdiagonals "
                       "left (info=%d) for a %dx%d matrix",
                       info, info, m, n);

    if (!wide) {
        /* u: row-major m x n == column-major n x m == U^T. */
        if (u)
            CUBLAS_TRY(cublasSgeam(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, &one, w->u_cm, m, &zero,
                                   NULL, n, u, n));
        /* vt: row-major n x n == column-major (VT)^T. */
        if (vt)
            CUBLAS_TRY(cublasSgeam(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, &one, w->vt_cm, n,
                                   &zero, NULL, n, vt, n));
    }
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return DL_OK;
}

dl_status dl_cuda_svd(dl_backend *be, int m, int n, const float *a, float *s, float *u, float *vt)
{
    cuda_impl *c = be->impl;
    svd_buffers w = {0};
    dl_status st = svd_run(c, m, n, a, s, u, vt, &w);
    svd_buffers_free(c, &w);
    return st;
}

/* --- random numbers ------------------------------------------------------ */

/* The generator is re-seeded and re-positioned on every call, so a call's
 * numbers depend only on (seed, offset) and match the CPU backend's cuRAND
 * host generator of the same type. */
static dl_status rng_seek(cuda_impl *c, uint64_t seed, uint64_t offset)
{
    CURAND_TRY(curandSetPseudoRandomGeneratorSeed(c->rng, (unsigned long long)seed));
    CURAND_TRY(curandSetGeneratorOffset(c->rng, (unsigned long long)offset));
    return DL_OK;
}

dl_status dl_cuda_rand_uniform(dl_backend *be, float *x, size_t n, uint64_t seed, uint64_t offset)
{
    cuda_impl *c = be->impl;
    DL_TRY(rng_seek(c, seed, offset));
    CURAND_TRY(curandGenerateUniform(c->rng, x, n));
    return DL_OK;
}

/* Box-Muller makes normals in pairs, so cuRAND wants an even count (and the
 * pairs are written as float2). An odd count, or a destination that is not
 * 8-byte aligned, goes through a temporary of the rounded-up size; the first
 * n values are the same either way. */
dl_status dl_cuda_rand_normal(dl_backend *be, float *x, size_t n, float mean, float stddev,
                              uint64_t seed, uint64_t offset)
{
    cuda_impl *c = be->impl;
    DL_TRY(rng_seek(c, seed, offset));
    size_t even = (n + 1) & ~(size_t)1;
    bool direct = even == n && ((uintptr_t)x % (2 * sizeof(float))) == 0;
    if (direct) {
        CURAND_TRY(curandGenerateNormal(c->rng, x, n, mean, stddev));
        return DL_OK;
    }
    float *tmp = NULL;
    DL_TRY(dl_cuda_malloc("rand_normal", even * sizeof(float), (void **)&tmp));
    dl_status st = CURAND_CHECK(curandGenerateNormal(c->rng, tmp, even, mean, stddev));
    if (st == DL_OK)
        st = CUDA_CHECK(
            cudaMemcpyAsync(x, tmp, n * sizeof(float), cudaMemcpyDeviceToDevice, c->stream));
    /* The copy must finish before the temporary goes. */
    dl_status sync_st = CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (st == DL_OK) st = sync_st;
    (void)cudaFree(tmp);
    return st;
}
