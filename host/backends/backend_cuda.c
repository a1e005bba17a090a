/* The CUDA backend: custom kernels (the .cu files in kernels/, declared in
 * host/backends/kernels.h), cuBLAS for gemm, cuSOLVER for the SVD and cuRAND
 * for initial values, all on one stream so that every op is ordered after
 * the previous one and an epoch can be captured as a CUDA graph.
 *
 * Rules this file keeps:
 * - Every CUDA, cuBLAS, cuSOLVER and cuRAND call is checked; a failure
 *   becomes DL_E_RUNTIME with the call's text and the library's error name,
 *   recorded at the call's file:line.
 * - Ops that can run inside the epoch loop (gemm, sq_err, optim_step,
 *   bias_act, relu_bwd, softmax_xent, col_sum, record, fill, copy) never
 *   allocate and never synchronise: reductions use a scratch buffer made at
 *   create time and cuBLAS uses a workspace made at create time, so an epoch
 *   can be captured and replayed.
 * - Nothing is leaked on any failure path.
 */
#include "dlab/backend.h"
#include "kernels.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cusolverDn.h>
#include <curand.h>

/* cuBLAS allocates its own workspace on first use unless given one, and an
 * allocation is not allowed during graph capture. 32 MiB is what NVIDIA
 * recommends for Hopper. */
#define DL_CUDA_BLAS_WORKSPACE_BYTES ((size_t)32 << 20)

/* Per-block partial sums of the deterministic reductions: 8 MiB of doubles,
 * enough for ten thousand models at a hundred blocks each; larger batches are
 * reduced in groups (see host/backends/kernels.h). */
#define DL_CUDA_SCRATCH_DOUBLES ((size_t)1 << 20)

typedef struct {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;
    cusolverDnHandle_t solver;
    curandGenerator_t rng;
    double *scratch;
    size_t scratch_len; /* doubles */
    cudaEvent_t timer_begin, timer_end;
    bool timer_started;
} cuda_impl;

/* One captured epoch, replayable with cudaGraphLaunch. */
struct dl_graph {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
};

/* --- error handling ----------------------------------------------------- */

static const char *cusolver_status_name(cusolverStatus_t s)
{
    switch (s) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR: return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED:
        return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_ZERO_PIVOT: return "CUSOLVER_STATUS_ZERO_PIVOT";
    case CUSOLVER_STATUS_INVALID_LICENSE: return "CUSOLVER_STATUS_INVALID_LICENSE";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "unknown cuSOLVER status";
    }
}

static const char *curand_status_name(curandStatus_t s)
{
    switch (s) {
    case CURAND_STATUS_SUCCESS: return "CURAND_STATUS_SUCCESS";
    case CURAND_STATUS_VERSION_MISMATCH: return "CURAND_STATUS_VERSION_MISMATCH";
    case CURAND_STATUS_NOT_INITIALIZED: return "CURAND_STATUS_NOT_INITIALIZED";
    case CURAND_STATUS_ALLOCATION_FAILED: return "CURAND_STATUS_ALLOCATION_FAILED";
    case CURAND_STATUS_TYPE_ERROR: return "CURAND_STATUS_TYPE_ERROR";
    case CURAND_STATUS_OUT_OF_RANGE: return "CURAND_STATUS_OUT_OF_RANGE";
    case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "CURAND_STATUS_LENGTH_NOT_MULTIPLE";
    case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: return "CURAND_STATUS_DOUBLE_PRECISION_REQUIRED";
    case CURAND_STATUS_LAUNCH_FAILURE: return "CURAND_STATUS_LAUNCH_FAILURE";
    case CURAND_STATUS_PREEXISTING_FAILURE: return "CURAND_STATUS_PREEXISTING_FAILURE";
    case CURAND_STATUS_INITIALIZATION_FAILED: return "CURAND_STATUS_INITIALIZATION_FAILED";
    case CURAND_STATUS_ARCH_MISMATCH: return "CURAND_STATUS_ARCH_MISMATCH";
    case CURAND_STATUS_INTERNAL_ERROR: return "CURAND_STATUS_INTERNAL_ERROR";
    default: return "unknown cuRAND status";
    }
}

/* A failed runtime call also leaves the error in the runtime's "last error"
 * slot; the kernel launchers read that slot after each launch, so it is
 * cleared here to keep an old failure from being blamed on a later launch. */
static dl_status check_cuda(cudaError_t err, const char *call, const char *file, int line)
{
    if (err == cudaSuccess) return DL_OK;
    (void)cudaGetLastError();
    return dl_fail_at(DL_E_RUNTIME, file, line, "%s failed: %s (%s)", call, cudaGetErrorName(err),
                      cudaGetErrorString(err));
}

static dl_status check_cublas(cublasStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUBLAS_STATUS_SUCCESS) return DL_OK;
    (void)cudaGetLastError();
    return dl_fail_at(DL_E_RUNTIME, file, line, "%s failed: %s (%s)", call, cublasGetStatusName(s),
                      cublasGetStatusString(s));
}

static dl_status check_cusolver(cusolverStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUSOLVER_STATUS_SUCCESS) return DL_OK;
    (void)cudaGetLastError();
    return dl_fail_at(DL_E_RUNTIME, file, line, "%s failed: %s", call, cusolver_status_name(s));
}

static dl_status check_curand(curandStatus_t s, const char *call, const char *file, int line)
{
    if (s == CURAND_STATUS_SUCCESS) return DL_OK;
    (void)cudaGetLastError();
    return dl_fail_at(DL_E_RUNTIME, file, line, "%s failed: %s", call, curand_status_name(s));
}

#define CUDA_CHECK(call)     check_cuda((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call)   check_cublas((call), #call, __FILE__, __LINE__)
#define CUSOLVER_CHECK(call) check_cusolver((call), #call, __FILE__, __LINE__)
#define CURAND_CHECK(call)   check_curand((call), #call, __FILE__, __LINE__)
#define CUDA_TRY(call)       DL_TRY(CUDA_CHECK(call))
#define CUBLAS_TRY(call)     DL_TRY(CUBLAS_CHECK(call))
#define CUSOLVER_TRY(call)   DL_TRY(CUSOLVER_CHECK(call))
#define CURAND_TRY(call)     DL_TRY(CURAND_CHECK(call))

/* Bad arguments are programming errors in the caller, reported as runtime
 * failures the way the CPU backend reports them. */
#define ARG_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) return DL_FAIL(DL_E_RUNTIME, __VA_ARGS__);                                    \
    } while (0)

static double gib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

/* cudaMalloc with an out-of-memory message that says how much was asked
 * for and how much the device has left. */
static dl_status device_malloc(const char *what, size_t bytes, void **out)
{
    *out = NULL;
    cudaError_t err = cudaMalloc(out, bytes);
    if (err == cudaSuccess) return DL_OK;
    *out = NULL;
    (void)cudaGetLastError();
    if (err != cudaErrorMemoryAllocation)
        return DL_FAIL(DL_E_RUNTIME, "%s: cudaMalloc(%zu bytes) failed: %s (%s)", what, bytes,
                       cudaGetErrorName(err), cudaGetErrorString(err));
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
    return DL_FAIL(DL_E_MEMORY,
                   "%s: out of GPU memory allocating %zu bytes (%.2f GiB); %.2f GiB free of "
                   "%.2f GiB",
                   what, bytes, gib(bytes), gib(free_bytes), gib(total_bytes));
}

/* --- lifetime ------------------------------------------------------------ */

/* Frees whatever a (possibly partial) create made, in reverse order. Errors
 * are ignored: there is nobody left to tell, and freeing must go on. */
static void cuda_release(cuda_impl *c)
{
    if (c->stream) (void)cudaStreamSynchronize(c->stream);
    if (c->timer_end) (void)cudaEventDestroy(c->timer_end);
    if (c->timer_begin) (void)cudaEventDestroy(c->timer_begin);
    if (c->scratch) (void)cudaFree(c->scratch);
    if (c->rng) (void)curandDestroyGenerator(c->rng);
    if (c->solver) (void)cusolverDnDestroy(c->solver);
    if (c->blas) (void)cublasDestroy(c->blas); /* before its workspace goes */
    if (c->blas_workspace) (void)cudaFree(c->blas_workspace);
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
}

static void cuda_destroy(dl_backend *be)
{
    if (!be) return;
    if (be->impl) {
        cuda_release(be->impl);
        free(be->impl);
    }
    free(be);
}

/* --- memory -------------------------------------------------------------- */

static dl_status cuda_alloc(dl_backend *be, size_t bytes, void **out)
{
    cuda_impl *c = be->impl;
    *out = NULL;
    if (bytes == 0) return DL_OK;
    void *p = NULL;
    DL_TRY(device_malloc("alloc", bytes, &p));
    /* Zeroed on the backend's stream, then waited for: alloc is never in the
     * epoch loop, and callers may rely on the zeros immediately. */
    dl_status st = CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, c->stream));
    if (st == DL_OK) st = CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (st != DL_OK) {
        (void)cudaFree(p);
        (void)cudaGetLastError();
        return st;
    }
    *out = p;
    return DL_OK;
}

static void cuda_free(dl_backend *be, void *p)
{
    (void)be;
    if (p && cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

static dl_status cuda_upload(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_impl *c = be->impl;
    if (bytes == 0) return DL_OK;
    ARG_CHECK(dst && src, "upload: NULL pointer");
    /* From pageable memory this returns once the source has been staged, so
     * the caller may reuse its buffer immediately. */
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    return DL_OK;
}

static dl_status cuda_download(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_impl *c = be->impl;
    if (bytes == 0) return DL_OK;
    ARG_CHECK(dst && src, "download: NULL pointer");
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return DL_OK;
}

static dl_status cuda_copy(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_impl *c = be->impl;
    if (bytes == 0) return DL_OK;
    ARG_CHECK(dst && src, "copy: NULL pointer");
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
    return DL_OK;
}

static dl_status cuda_fill(dl_backend *be, float *x, size_t n, float value)
{
    cuda_impl *c = be->impl;
    if (n == 0) return DL_OK;
    ARG_CHECK(x, "fill: NULL pointer");
    CUDA_TRY(dl_launch_fill(x, n, value, c->stream));
    return DL_OK;
}

static dl_status cuda_mem_info(dl_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    size_t f = 0, t = 0;
    CUDA_TRY(cudaMemGetInfo(&f, &t));
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return DL_OK;
}

/* --- dense linear algebra ------------------------------------------------ */

static int max_int(int a, int b) { return a > b ? a : b; }

/* Row-major C = op(A) op(B) is, read column-major, C^T = op(B)^T op(A)^T.
 * A row-major matrix is its own transpose in column-major, so cuBLAS is
 * called with the operands swapped, the same transpose flags, and n and m
 * exchanged; leading dimensions carry over unchanged. */
static dl_status cuda_gemm(dl_backend *be, const dl_gemm_args *g)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(g->m >= 0 && g->n >= 0 && g->k >= 0 && g->batch >= 1,
              "gemm: invalid shape m=%d n=%d k=%d batch=%d", g->m, g->n, g->k, g->batch);
    /* Each stored (untransposed) matrix needs a row stride of at least its
     * column count. */
    int a_cols = g->trans_a ? g->m : g->k;
    int b_cols = g->trans_b ? g->k : g->n;
    ARG_CHECK(g->lda >= max_int(1, a_cols) && g->ldb >= max_int(1, b_cols) &&
                  g->ldc >= max_int(1, g->n),
              "gemm: leading dimensions lda=%d ldb=%d ldc=%d too small for m=%d n=%d k=%d "
              "(trans_a=%d trans_b=%d)",
              g->lda, g->ldb, g->ldc, g->m, g->n, g->k, (int)g->trans_a, (int)g->trans_b);
    ARG_CHECK(g->stride_a <= (size_t)LLONG_MAX && g->stride_b <= (size_t)LLONG_MAX &&
                  g->stride_c <= (size_t)LLONG_MAX,
              "gemm: batch stride out of range");
    if (g->m == 0 || g->n == 0) return DL_OK;
    ARG_CHECK(g->a && g->b && g->c, "gemm: NULL matrix pointer");

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
    float *s_tmp;  /* when the caller passes s == NULL */
    float *work;
    int *info;
} svd_buffers;

static void svd_buffers_free(cuda_impl *c, svd_buffers *w)
{
    /* Queued work may still use the buffers if a later call failed. */
    (void)cudaStreamSynchronize(c->stream);
    float *bufs[] = {w->a_work, w->u_cm, w->vt_cm, w->s_tmp, w->work};
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

    DL_TRY(device_malloc("svd", mn * sizeof(float), (void **)&w->a_work));
    if (wide) {
        CUDA_TRY(
            cudaMemcpyAsync(w->a_work, a, mn * sizeof(float), cudaMemcpyDeviceToDevice, c->stream));
    } else {
        /* B is not read when beta == 0. */
        CUBLAS_TRY(cublasSgeam(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, n, &one, a, n, &zero, NULL, m,
                               w->a_work, m));
    }
    if (!s) DL_TRY(device_malloc("svd", (size_t)cols * sizeof(float), (void **)&w->s_tmp));
    float *s_out = s ? s : w->s_tmp;

    /* Where gesvd's U (rows x cols) and VT (cols x cols) go. */
    float *u_g = NULL, *vt_g = NULL;
    if (wide) {
        u_g = vt;
        vt_g = u;
    } else {
        if (u) DL_TRY(device_malloc("svd", mn * sizeof(float), (void **)&w->u_cm));
        if (vt)
            DL_TRY(device_malloc("svd", (size_t)n * (size_t)n * sizeof(float), (void **)&w->vt_cm));
        u_g = w->u_cm;
        vt_g = w->vt_cm;
    }
    /* 'S': the first cols columns of U. VT is cols x cols either way, and
     * 'A' is the long-standing spelling for it. */
    signed char jobu = u_g ? 'S' : 'N', jobvt = vt_g ? 'A' : 'N';

    int lwork = 0;
    CUSOLVER_TRY(cusolverDnSgesvd_bufferSize(c->solver, rows, cols, &lwork));
    DL_TRY(device_malloc("svd", (size_t)max_int(lwork, 1) * sizeof(float), (void **)&w->work));
    DL_TRY(device_malloc("svd", sizeof(int), (void **)&w->info));
    CUSOLVER_TRY(cusolverDnSgesvd(c->solver, jobu, jobvt, rows, cols, w->a_work, rows, s_out, u_g,
                                  rows, vt_g, cols, w->work, lwork, NULL, w->info));
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

static dl_status cuda_svd(dl_backend *be, int m, int n, const float *a, float *s, float *u,
                          float *vt)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(m >= 0 && n >= 0, "svd: invalid shape %dx%d", m, n);
    if (m == 0 || n == 0) return DL_OK;
    ARG_CHECK(a, "svd: NULL input matrix");
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

static dl_status cuda_rand_uniform(dl_backend *be, float *x, size_t n, uint64_t seed,
                                   uint64_t offset)
{
    cuda_impl *c = be->impl;
    if (n == 0) return DL_OK;
    ARG_CHECK(x, "rand_uniform: NULL pointer");
    DL_TRY(rng_seek(c, seed, offset));
    CURAND_TRY(curandGenerateUniform(c->rng, x, n));
    return DL_OK;
}

/* Box-Muller makes normals in pairs, so cuRAND wants an even count (and the
 * pairs are written as float2). An odd count, or a destination that is not
 * 8-byte aligned, goes through a temporary of the rounded-up size; the first
 * n values are the same either way. */
static dl_status cuda_rand_normal(dl_backend *be, float *x, size_t n, float mean, float stddev,
                                  uint64_t seed, uint64_t offset)
{
    cuda_impl *c = be->impl;
    if (n == 0) return DL_OK;
    ARG_CHECK(x, "rand_normal: NULL pointer");
    DL_TRY(rng_seek(c, seed, offset));
    size_t even = (n + 1) & ~(size_t)1;
    bool direct = even == n && ((uintptr_t)x % (2 * sizeof(float))) == 0;
    if (direct) {
        CURAND_TRY(curandGenerateNormal(c->rng, x, n, mean, stddev));
        return DL_OK;
    }
    float *tmp = NULL;
    DL_TRY(device_malloc("rand_normal", even * sizeof(float), (void **)&tmp));
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

/* --- custom ops ---------------------------------------------------------- */

static dl_status cuda_sq_err(dl_backend *be, float *e, const float *a, size_t n, int batch,
                             size_t a_stride, float *sse)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(batch >= 0, "sq_err: invalid batch %d", batch);
    if (batch == 0) return DL_OK;
    ARG_CHECK(e && a, "sq_err: NULL pointer");
    CUDA_TRY(
        dl_launch_sq_err(e, a, n, batch, a_stride, sse, c->scratch, c->scratch_len, c->stream));
    return DL_OK;
}

static dl_status cuda_optim_step(dl_backend *be, const dl_optim *opt, float *p, const float *g,
                                 float *m, float *v, size_t n, int32_t *t)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(opt, "optim_step: NULL optimiser");
    switch (opt->kind) {
    case DL_OPTIM_SGD: break;
    case DL_OPTIM_MOMENTUM:
        ARG_CHECK(n == 0 || m, "optim_step: momentum needs its velocity buffer (m)");
        break;
    case DL_OPTIM_ADAM:
        ARG_CHECK(t, "optim_step: adam needs its device step counter (t)");
        ARG_CHECK(n == 0 || (m && v), "optim_step: adam needs its moment buffers (m, v)");
        break;
    default: return DL_FAIL(DL_E_RUNTIME, "optim_step: unknown optimiser %d", (int)opt->kind);
    }
    ARG_CHECK(n == 0 || (p && g), "optim_step: NULL parameter or gradient pointer");
    CUDA_TRY(dl_launch_optim_step(opt, p, g, m, v, n, t, c->stream));
    return DL_OK;
}

static dl_status cuda_bias_act(dl_backend *be, float *y, const float *bias, int rows, int cols,
                               int batch, size_t bias_stride, bool relu)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(rows >= 0 && cols >= 0 && batch >= 0,
              "bias_act: invalid shape rows=%d cols=%d batch=%d", rows, cols, batch);
    if ((size_t)rows * (size_t)cols * (size_t)batch == 0) return DL_OK;
    ARG_CHECK(y, "bias_act: NULL pointer");
    CUDA_TRY(dl_launch_bias_act(y, bias, rows, cols, batch, bias_stride, relu, c->stream));
    return DL_OK;
}

static dl_status cuda_relu_bwd(dl_backend *be, float *dh, const float *h, size_t n)
{
    cuda_impl *c = be->impl;
    if (n == 0) return DL_OK;
    ARG_CHECK(dh && h, "relu_bwd: NULL pointer");
    CUDA_TRY(dl_launch_relu_bwd(dh, h, n, c->stream));
    return DL_OK;
}

static dl_status cuda_softmax_xent(dl_backend *be, const float *logits, const int32_t *labels,
                                   int rows, int classes, int batch, size_t label_stride,
                                   float *dlogits, float *loss, float *acc)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(rows >= 0 && classes >= 1 && batch >= 0,
              "softmax_xent: invalid shape rows=%d classes=%d batch=%d", rows, classes, batch);
    if (batch == 0) return DL_OK;
    ARG_CHECK(rows == 0 || (logits && labels), "softmax_xent: NULL pointer");
    CUDA_TRY(dl_launch_softmax_xent(logits, labels, rows, classes, batch, label_stride, dlogits,
                                    loss, acc, c->scratch, c->scratch_len, c->stream));
    return DL_OK;
}

static dl_status cuda_col_sum(dl_backend *be, const float *g, int rows, int cols, int batch,
                              float *out, size_t out_stride)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(rows >= 0 && cols >= 0 && batch >= 0,
              "col_sum: invalid shape rows=%d cols=%d batch=%d", rows, cols, batch);
    if (cols == 0 || batch == 0) return DL_OK;
    ARG_CHECK(out && (rows == 0 || g), "col_sum: NULL pointer");
    CUDA_TRY(dl_launch_col_sum(g, rows, cols, batch, out, out_stride, c->scratch, c->scratch_len,
                               c->stream));
    return DL_OK;
}

static dl_status cuda_record(dl_backend *be, float *hist, const float *vals, int n,
                             int32_t *counter)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(n >= 0 && counter, "record: invalid arguments (n=%d)", n);
    ARG_CHECK(n == 0 || (hist && vals), "record: NULL pointer");
    CUDA_TRY(dl_launch_record(hist, vals, n, counter, c->stream));
    return DL_OK;
}

/* --- sync, timing, graphs ------------------------------------------------ */

static dl_status cuda_sync(dl_backend *be)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return DL_OK;
}

static dl_status cuda_timer_start(dl_backend *be)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(cudaEventRecord(c->timer_begin, c->stream));
    c->timer_started = true;
    return DL_OK;
}

static dl_status cuda_timer_stop(dl_backend *be, double *seconds)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(c->timer_started, "timer_stop called without timer_start");
    c->timer_started = false;
    CUDA_TRY(cudaEventRecord(c->timer_end, c->stream));
    CUDA_TRY(cudaEventSynchronize(c->timer_end));
    float ms = 0.0f;
    CUDA_TRY(cudaEventElapsedTime(&ms, c->timer_begin, c->timer_end));
    if (seconds) *seconds = (double)ms / 1000.0;
    return DL_OK;
}

static void graph_destroy(dl_graph *g)
{
    if (!g) return;
    if (g->exec) (void)cudaGraphExecDestroy(g->exec);
    if (g->graph) (void)cudaGraphDestroy(g->graph);
    (void)cudaGetLastError();
    free(g);
}

/* The epoch function's ops are recorded, not run: the stream is in capture
 * mode while fn issues them. ThreadLocal mode lets other threads keep using
 * CUDA normally while this one captures. */
static dl_status cuda_graph_create(dl_backend *be, dl_epoch_fn fn, void *ctx, dl_graph **out)
{
    cuda_impl *c = be->impl;
    *out = NULL;
    ARG_CHECK(fn, "graph_create: NULL epoch function");
    dl_graph *g = calloc(1, sizeof *g);
    if (!g) return DL_FAIL(DL_E_MEMORY, "graph_create: out of host memory");

    dl_status st = CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    if (st != DL_OK) {
        free(g);
        return st;
    }
    dl_status fn_st = fn(be, ctx);
    cudaError_t end_err = cudaStreamEndCapture(c->stream, &g->graph);
    if (fn_st != DL_OK) {
        /* fn's message is the one worth keeping; the capture it broke is
         * discarded quietly. */
        if (end_err != cudaSuccess) (void)cudaGetLastError();
        graph_destroy(g);
        return fn_st;
    }
    st = check_cuda(end_err, "cudaStreamEndCapture(stream, &graph)", __FILE__, __LINE__);
    if (st == DL_OK) st = CUDA_CHECK(cudaGraphInstantiate(&g->exec, g->graph, 0));
    if (st != DL_OK) {
        graph_destroy(g);
        return st;
    }
    *out = g;
    return DL_OK;
}

static dl_status cuda_graph_run(dl_backend *be, dl_graph *g, int times)
{
    cuda_impl *c = be->impl;
    ARG_CHECK(g && g->exec, "graph_run: no graph");
    ARG_CHECK(times >= 0, "graph_run: invalid repeat count %d", times);
    for (int i = 0; i < times; i++) CUDA_TRY(cudaGraphLaunch(g->exec, c->stream));
    return DL_OK;
}

static void cuda_graph_free(dl_backend *be, dl_graph *g)
{
    cuda_impl *c = be->impl;
    /* A replay may still be running. */
    if (g && cudaStreamSynchronize(c->stream) != cudaSuccess) (void)cudaGetLastError();
    graph_destroy(g);
}

/* --- creation ------------------------------------------------------------ */

static dl_status cuda_init(dl_backend *be, cuda_impl *c)
{
    CUDA_TRY(cudaGetDevice(&c->device));
    struct cudaDeviceProp prop;
    CUDA_TRY(cudaGetDeviceProperties(&prop, c->device));
    snprintf(be->device, sizeof be->device, "%.100s (sm_%d%d, %d SMs, %.1f GiB)", prop.name,
             prop.major, prop.minor, prop.multiProcessorCount, gib(prop.totalGlobalMem));

    /* Non-blocking: the legacy default stream never orders against ours, so
     * nothing outside this backend can break a capture in progress. */
    CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));

    CUBLAS_TRY(cublasCreate(&c->blas));
    CUBLAS_TRY(cublasSetStream(c->blas, c->stream));
    CUBLAS_TRY(cublasSetPointerMode(c->blas, CUBLAS_POINTER_MODE_HOST));
    /* Default math: full float32, no TF32, so results track the CPU backend. */
    CUBLAS_TRY(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
    /* After cublasSetStream, which resets the workspace to cuBLAS's own pool. */
    DL_TRY(device_malloc("cuBLAS workspace", DL_CUDA_BLAS_WORKSPACE_BYTES, &c->blas_workspace));
    CUBLAS_TRY(cublasSetWorkspace(c->blas, c->blas_workspace, DL_CUDA_BLAS_WORKSPACE_BYTES));

    CUSOLVER_TRY(cusolverDnCreate(&c->solver));
    CUSOLVER_TRY(cusolverDnSetStream(c->solver, c->stream));

    CURAND_TRY(curandCreateGenerator(&c->rng, CURAND_RNG_PSEUDO_PHILOX4_32_10));
    CURAND_TRY(curandSetStream(c->rng, c->stream));

    c->scratch_len = DL_CUDA_SCRATCH_DOUBLES;
    DL_TRY(
        device_malloc("reduction scratch", c->scratch_len * sizeof(double), (void **)&c->scratch));

    CUDA_TRY(cudaEventCreate(&c->timer_begin));
    CUDA_TRY(cudaEventCreate(&c->timer_end));
    return DL_OK;
}

dl_status dl_backend_cuda_create(dl_backend **out)
{
    *out = NULL;
    /* Without a driver this is cudaErrorInsufficientDriver, with a driver but
     * no GPU cudaErrorNoDevice; any failure here means "no usable GPU", which
     * is what lets --device auto fall back to the CPU. */
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return DL_FAIL(DL_E_NODEVICE, "no usable CUDA GPU: %s", cudaGetErrorString(err));
    }
    if (count == 0) return DL_FAIL(DL_E_NODEVICE, "no usable CUDA GPU: no CUDA device found");

    dl_backend *be = calloc(1, sizeof *be);
    cuda_impl *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return DL_FAIL(DL_E_MEMORY, "out of host memory creating the CUDA backend");
    }
    be->impl = c;
    be->name = "cuda";
    dl_status st = cuda_init(be, c);
    if (st != DL_OK) {
        cuda_destroy(be);
        return st;
    }

    be->destroy = cuda_destroy;
    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->upload = cuda_upload;
    be->download = cuda_download;
    be->copy = cuda_copy;
    be->fill = cuda_fill;
    be->mem_info = cuda_mem_info;
    be->gemm = cuda_gemm;
    be->svd = cuda_svd;
    be->rand_uniform = cuda_rand_uniform;
    be->rand_normal = cuda_rand_normal;
    be->sq_err = cuda_sq_err;
    be->optim_step = cuda_optim_step;
    be->bias_act = cuda_bias_act;
    be->relu_bwd = cuda_relu_bwd;
    be->softmax_xent = cuda_softmax_xent;
    be->col_sum = cuda_col_sum;
    be->record = cuda_record;
    be->sync = cuda_sync;
    be->timer_start = cuda_timer_start;
    be->timer_stop = cuda_timer_stop;
    be->graph_create = cuda_graph_create;
    be->graph_run = cuda_graph_run;
    be->graph_free = cuda_graph_free;
    *out = be;
    return DL_OK;
}

bool dl_have_cuda_build(void) { return true; }
