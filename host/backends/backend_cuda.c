/* The CUDA backend: custom kernels (the .cu files in kernels/, declared in
 * kernels.h) and, in backend_cuda_libs.c, cuBLAS for gemm, cuSOLVER for the
 * SVD and cuRAND for initial values, all on one stream so that every op is
 * ordered after the previous one and an epoch can be captured as a CUDA
 * graph. Arguments arrive checked by the dl_<op>() entry points
 * (backend.c); what is checked here is the device.
 *
 * Rules the CUDA files keep:
 * - Every CUDA, cuBLAS, cuSOLVER and cuRAND call is checked; a failure
 *   becomes DL_E_RUNTIME with the call's text and the library's error name,
 *   recorded at the call's file:line.
 * - Ops that can run inside the epoch loop (gemm, residual_sse, optim_step,
 *   bias_act, relu_bwd, softmax_xent, col_sum, record, fill, copy) never
 *   allocate and never synchronise: reductions use a scratch buffer made at
 *   create time and cuBLAS uses a workspace made at create time, so an epoch
 *   can be captured and replayed.
 * - Nothing is leaked on any failure path.
 */
#include "dlab/backend.h"
#include "backend_cuda.h"
#include "dlab/comm.h"
#include "kernels.h"
#ifdef DLAB_HAVE_NCCL
#include "nccl_comm.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cuBLAS allocates its own workspace on first use unless given one, and an
 * allocation is not allowed during graph capture. 32 MiB is what NVIDIA
 * recommends for Hopper. */
#define DL_CUDA_BLAS_WORKSPACE_BYTES ((size_t)32 << 20)

/* Per-block partial sums of the deterministic reductions: 8 MiB of doubles,
 * enough for ten thousand models at a hundred blocks each; larger batches are
 * reduced in groups (see kernels.h). */
#define DL_CUDA_SCRATCH_DOUBLES ((size_t)1 << 20)

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

dl_status dl_cuda_check(cudaError_t err, const char *call, const char *file, int line)
{
    if (err == cudaSuccess) return DL_OK;
    (void)cudaGetLastError();
    return dl_fail_at(DL_E_RUNTIME, file, line, "%s failed: %s (%s)", call, cudaGetErrorName(err),
                      cudaGetErrorString(err));
}

dl_status dl_cublas_check(cublasStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUBLAS_STATUS_SUCCESS) return DL_OK;
    (void)cudaGetLastError();
    return dl_fail_at(DL_E_RUNTIME, file, line, "%s failed: %s (%s)", call, cublasGetStatusName(s),
                      cublasGetStatusString(s));
}

dl_status dl_cusolver_check(cusolverStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUSOLVER_STATUS_SUCCESS) return DL_OK;
    (void)cudaGetLastError();
    return dl_fail_at(DL_E_RUNTIME, file, line, "%s failed: %s", call, cusolver_status_name(s));
}

dl_status dl_curand_check(curandStatus_t s, const char *call, const char *file, int line)
{
    if (s == CURAND_STATUS_SUCCESS) return DL_OK;
    (void)cudaGetLastError();
    return dl_fail_at(DL_E_RUNTIME, file, line, "%s failed: %s", call, curand_status_name(s));
}

static double gib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

dl_status dl_cuda_malloc(const char *what, size_t bytes, void **out)
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
#ifdef DLAB_HAVE_NCCL
    dl_nccl_destroy(c->nccl); /* every rank destroys its backend: a collective */
#endif
    if (c->sum_scratch) (void)cudaFree(c->sum_scratch);
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
    void *p = NULL;
    DL_TRY(dl_cuda_malloc("alloc", bytes, &p));
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
    if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

static dl_status cuda_upload(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_impl *c = be->impl;
    /* From pageable memory this returns once the source has been staged, so
     * the caller may reuse its buffer immediately. */
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    return DL_OK;
}

/* The host waits for the stream. With sums over ranks queued on it, NCCL's
 * asynchronous errors are polled meanwhile (dl_nccl_wait): a dead peer
 * then stops every rank with NCCL's reason instead of blocking forever. */
static dl_status stream_wait(cuda_impl *c)
{
#ifdef DLAB_HAVE_NCCL
    if (c->nccl) {
        dl_nccl_wait(c->nccl, c->stream);
        return DL_OK;
    }
#endif
    CUDA_TRY(cudaStreamSynchronize(c->stream));
    return DL_OK;
}

static dl_status cuda_download(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    return stream_wait(c);
}

static dl_status cuda_copy(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
    return DL_OK;
}

static dl_status cuda_fill(dl_backend *be, float *x, size_t n, float value)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_fill(x, n, value, c->stream));
    return DL_OK;
}

static dl_status cuda_mem_info(dl_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
    return DL_OK;
}

/* --- custom ops ---------------------------------------------------------- */

static dl_status cuda_residual_sse(dl_backend *be, float *e, const float *a, size_t n, int batch,
                                   size_t a_stride, float *sse)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_residual_sse(e, a, n, batch, a_stride, sse, c->scratch, c->scratch_len,
                                    c->stream));
    return DL_OK;
}

static dl_status cuda_optim_step(dl_backend *be, const dl_optim *opt, float *p, const float *g,
                                 float *m, float *v, size_t n, int32_t *t)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_optim_step(opt, p, g, m, v, n, t, c->stream));
    return DL_OK;
}

static dl_status cuda_bias_act(dl_backend *be, float *y, const float *bias, int rows, int cols,
                               int batch, size_t bias_stride, bool relu)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_bias_act(y, bias, rows, cols, batch, bias_stride, relu, c->stream));
    return DL_OK;
}

static dl_status cuda_relu_bwd(dl_backend *be, float *dh, const float *h, size_t n)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_relu_bwd(dh, h, n, c->stream));
    return DL_OK;
}

static dl_status cuda_softmax_xent(dl_backend *be, const float *logits, const int32_t *labels,
                                   int rows, int classes, int batch, size_t label_stride,
                                   float *dlogits, float *loss, float *acc)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_softmax_xent(logits, labels, rows, classes, batch, label_stride, dlogits,
                                    loss, acc, c->scratch, c->scratch_len, c->stream));
    return DL_OK;
}

static dl_status cuda_col_sum(dl_backend *be, const float *g, int rows, int cols, int batch,
                              float *out, size_t out_stride)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_col_sum(g, rows, cols, batch, out, out_stride, c->scratch, c->scratch_len,
                               c->stream));
    return DL_OK;
}

static dl_status cuda_record(dl_backend *be, float *hist, const float *vals, int n,
                             int32_t *counter)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_record(hist, vals, n, counter, c->stream));
    return DL_OK;
}

/* --- sums over ranks ------------------------------------------------------ */

/* The ranks' vectors side by side: 16 MiB, so a sum never allocates (it may
 * be captured in an epoch's graph); longer sums go pass by pass. */
#define DL_CUDA_SUM_FLOATS ((size_t)1 << 22)

#ifdef DLAB_HAVE_NCCL
/* Queued on the stream, capturable: NCCL's all-gather, then the rank-order
 * double sum (host/dist/nccl_comm.h), bit for bit the CPU ranks' formula. */
static dl_status cuda_allreduce_sum(dl_backend *be, float *x, size_t n)
{
    cuda_impl *c = be->impl;
    const size_t pass = c->sum_floats / (size_t)dl_nccl_size(c->nccl);
    for (size_t done = 0; done < n; done += pass) {
        size_t len = n - done < pass ? n - done : pass;
        DL_TRY(dl_nccl_allreduce_sum(c->nccl, x + done, x + done, len, c->sum_scratch, c->stream));
    }
    return DL_OK;
}
#endif

/* Every rank: NCCL over be->comm on this backend's GPU, and the sum buffer.
 * A failure leaves the sums off on every rank, with the reason. */
static dl_status cuda_join_ranks(dl_backend *be)
{
    be->allreduce_sum = NULL;
#ifdef DLAB_HAVE_NCCL
    cuda_impl *c = be->impl;
    dl_status st = dl_nccl_create(be->comm, c->device, &c->nccl);
    if (st == DL_OK) {
        c->sum_floats = DL_CUDA_SUM_FLOATS;
        st = dl_cuda_malloc("the sum over ranks", sizeof(float) * c->sum_floats,
                            (void **)&c->sum_scratch);
        if ((st = dl_comm_agree(be->comm, st)) != DL_OK) {
            dl_nccl_destroy(c->nccl);
            c->nccl = NULL;
        }
    }
    if (st == DL_OK) {
        be->allreduce_sum = cuda_allreduce_sum;
        return DL_OK;
    }
    /* Rank 0's findings name the ranks themselves; another rank's keep its
     * prefix. */
    const char *why = dl_errmsg();
    if (!strncmp(why, "rank 0: ", 8)) why += 8;
    snprintf(be->sum_note, sizeof be->sum_note, "%s", why);
    dl_clear_error();
#else
    snprintf(be->sum_note, sizeof be->sum_note,
             "this build has no NCCL (none beside the CUDA toolkit, or DLAB_NCCL=OFF)");
#endif
    return DL_OK;
}

dl_status dl_cuda_use_rank_device(const dl_comm *comm)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count < 1) {
        (void)cudaGetLastError();
        return DL_FAIL(DL_E_NODEVICE, "no usable CUDA GPU: %s",
                       err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device found");
    }
    int device = dl_comm_device(comm, count);
    CUDA_TRY(cudaSetDevice(device));
    return DL_OK;
}

/* --- fused training (kernels/fused.cu) ---------------------------------- */

/* One block's shared memory holds a model's working set; see fused.cu for
 * the layouts behind the limit. Called directly, never captured. */
static size_t cuda_fused_limit(dl_backend *be)
{
    (void)be;
    return DL_FUSED_LIMIT_BYTES;
}

static dl_status cuda_fused_factorise(dl_backend *be, const dl_fused_factorise_args *args)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_fused_factorise(args, c->stream));
    return DL_OK;
}

static dl_status cuda_fused_mlp(dl_backend *be, const dl_fused_mlp_args *args)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(dl_launch_fused_mlp(args, c->stream));
    return DL_OK;
}

/* --- sync, timing, graphs ------------------------------------------------ */

static dl_status cuda_sync(dl_backend *be) { return stream_wait(be->impl); }

static dl_status cuda_timer_start(dl_backend *be)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(cudaEventRecord(c->timer_begin, c->stream));
    return DL_OK;
}

static dl_status cuda_timer_stop(dl_backend *be, double *seconds)
{
    cuda_impl *c = be->impl;
    CUDA_TRY(cudaEventRecord(c->timer_end, c->stream));
    DL_TRY(stream_wait(c)); /* the event is the stream's last item */
    CUDA_TRY(cudaEventSynchronize(c->timer_end));
    float ms = 0.0f;
    CUDA_TRY(cudaEventElapsedTime(&ms, c->timer_begin, c->timer_end));
    *seconds = (double)ms / 1000.0;
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
    st = dl_cuda_check(end_err, "cudaStreamEndCapture(stream, &graph)", __FILE__, __LINE__);
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
    for (int i = 0; i < times; i++) CUDA_TRY(cudaGraphLaunch(g->exec, c->stream));
    return DL_OK;
}

static void cuda_graph_free(dl_backend *be, dl_graph *g)
{
    cuda_impl *c = be->impl;
    /* A replay may still be running. */
    if (cudaStreamSynchronize(c->stream) != cudaSuccess) (void)cudaGetLastError();
    graph_destroy(g);
}

/* --- creation ------------------------------------------------------------ */

static dl_status cuda_init(dl_backend *be, cuda_impl *c)
{
    CUDA_TRY(cudaGetDevice(&c->device));
    struct cudaDeviceProp prop;
    CUDA_TRY(cudaGetDeviceProperties(&prop, c->device));
    snprintf(be->device, sizeof be->device, "%.100s (sm_%d%d, %d SMs, %.1f GiB, device %d)",
             prop.name, prop.major, prop.minor, prop.multiProcessorCount, gib(prop.totalGlobalMem),
             c->device);

    /* Non-blocking: the legacy default stream never orders against ours, so
     * nothing outside this backend can break a capture in progress. */
    CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));

    CUBLAS_TRY(cublasCreate(&c->blas));
    CUBLAS_TRY(cublasSetStream(c->blas, c->stream));
    CUBLAS_TRY(cublasSetPointerMode(c->blas, CUBLAS_POINTER_MODE_HOST));
    /* Default math: full float32, no TF32, so results track the CPU backend. */
    CUBLAS_TRY(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
    /* After cublasSetStream, which resets the workspace to cuBLAS's own pool. */
    DL_TRY(dl_cuda_malloc("cuBLAS workspace", DL_CUDA_BLAS_WORKSPACE_BYTES, &c->blas_workspace));
    CUBLAS_TRY(cublasSetWorkspace(c->blas, c->blas_workspace, DL_CUDA_BLAS_WORKSPACE_BYTES));

    CUSOLVER_TRY(cusolverDnCreate(&c->solver));
    CUSOLVER_TRY(cusolverDnSetStream(c->solver, c->stream));

    CURAND_TRY(curandCreateGenerator(&c->rng, CURAND_RNG_PSEUDO_PHILOX4_32_10));
    CURAND_TRY(curandSetStream(c->rng, c->stream));

    c->scratch_len = DL_CUDA_SCRATCH_DOUBLES;
    DL_TRY(
        dl_cuda_malloc("reduction scratch", c->scratch_len * sizeof(double), (void **)&c->scratch));

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
    be->gemm = dl_cuda_gemm;
    be->svd = dl_cuda_svd;
    be->rand_uniform = dl_cuda_rand_uniform;
    be->rand_normal = dl_cuda_rand_normal;
    be->residual_sse = cuda_residual_sse;
    be->optim_step = cuda_optim_step;
    be->bias_act = cuda_bias_act;
    be->relu_bwd = cuda_relu_bwd;
    be->softmax_xent = cuda_softmax_xent;
    be->col_sum = cuda_col_sum;
    be->record = cuda_record;
    be->fused_limit = cuda_fused_limit;
    be->fused_factorise = cuda_fused_factorise;
    be->fused_mlp = cuda_fused_mlp;
    be->sync = cuda_sync;
    be->timer_start = cuda_timer_start;
    be->timer_stop = cuda_timer_stop;
    be->graph_create = cuda_graph_create;
    be->graph_run = cuda_graph_run;
    be->graph_free = cuda_graph_free;
    be->join_ranks = cuda_join_ranks;
    *out = be;
    return DL_OK;
}

bool dl_have_cuda_build(void) { return true; }
const char *dl_cuda_build_words(void) { return "built in"; }
