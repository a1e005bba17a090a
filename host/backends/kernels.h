/* Launchers for the CUDA backend's custom kernels (the .cu files in kernels/).
 *
 * Each launcher queues its kernel(s) on `stream`, checks the launch with
 * cudaGetLastError and returns that error (cudaSuccess when nothing was
 * wrong). Kernel faults that happen later surface at the next
 * synchronising call. Launchers never allocate, never synchronise and never
 * read device memory from the host, so every one of them may be captured in
 * a CUDA graph.
 *
 * Pointers are device pointers unless said otherwise. Shapes follow
 * include/dlab/backend.h, whose dl_<op>() entry points check them and give
 * the messages; the launchers only refuse impossible ones with
 * cudaErrorInvalidValue.
 *
 * The reducing launchers (residual_sse, col_sum, softmax_xent) are
 * deterministic:
 * each block sums a fixed slice of a model in a fixed tree order, writes one
 * double per block into `scratch`, and a second kernel adds each model's
 * partials in index order. The slicing depends only on the per-model shape,
 * never on the batch size or the GPU, so a model gives the same bits whether
 * it is trained alone or among ten thousand. `scratch` holds `scratch_len`
 * doubles; models are processed in groups that fit it.
 */
#ifndef DLAB_KERNELS_H
#define DLAB_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <cuda_runtime_api.h>

#include "dlab/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- elementwise.cu ---------------------------------------------------- */

/* x[i] = value for i < n. */
cudaError_t dl_launch_fill(float *x, size_t n, float value, cudaStream_t stream);

/* Y[b][r][c] += bias[b*bias_stride + c], then relu if asked. bias may be
 * NULL (no bias: only the activation is applied). */
cudaError_t dl_launch_bias_act(float *y, const float *bias, int rows, int cols, int batch,
                               size_t bias_stride, bool relu, cudaStream_t stream);

/* dh[i] = dl_relu_grad(h[i], dh[i]) for i < n. */
cudaError_t dl_launch_relu_bwd(float *dh, const float *h, size_t n, cudaStream_t stream);

/* hist[(*counter)*n + i] = vals[i] for i < n, then (*counter)++ (device side). */
cudaError_t dl_launch_record(float *hist, const float *vals, int n, int32_t *counter,
                             cudaStream_t stream);

/* --- reduce.cu ----------------------------------------------------------- */

/* For b < batch: E[b] -= A[b] and sse[b] = sum E[b][i]^2 (double partials),
 * E[b] = e + b*n, A[b] = a + b*a_stride. sse may be NULL. */
cudaError_t dl_launch_residual_sse(float *e, const float *a, size_t n, int batch, size_t a_stride,
                                   float *sse, double *scratch, size_t scratch_len,
                                   cudaStream_t stream);

/* out[b*out_stride + c] = sum over r of G[b][r][c], G[b] = g + b*rows*cols. */
cudaError_t dl_launch_col_sum(const float *g, int rows, int cols, int batch, float *out,
                              size_t out_stride, double *scratch, size_t scratch_len,
                              cudaStream_t stream);

/* --- loss.cu ------------------------------------------------------------- */

/* Fused softmax cross-entropy forward and backward plus argmax accuracy;
 * see softmax_xent in backend.h. dlogits, loss and acc may each be NULL.
 * A label outside [0, classes) makes that row's loss NaN (and its gradient
 * row NaN), so a corrupt label shows up as divergence, not as a wild read. */
cudaError_t dl_launch_softmax_xent(const float *logits, const int32_t *labels, int rows,
                                   int classes, int batch, size_t label_stride, float *dlogits,
                                   float *loss, float *acc, double *scratch, size_t scratch_len,
                                   cudaStream_t stream);

/* --- optim.cu ------------------------------------------------------------ */

/* One optimiser step over n parameters, one launch over the whole vector.
 * `opt` is a host pointer read at launch time. Momentum needs m; Adam needs
 * m, v and the device step counter t, which a one-thread kernel increments
 * before the update kernel reads it (so the step number never leaves the
 * device and the step can be graph-replayed). */
cudaError_t dl_launch_optim_step(const dl_optim *opt, float *p, const float *g, float *m, float *v,
                                 size_t n, int32_t *t, cudaStream_t stream);

/* --- fused.cu ----------------------------------------------------------- */

/* Bytes of a model's working set (dl_fused_factorise_bytes,
 * dl_fused_mlp_bytes) the fused kernels accept: the MLP kernel's shared pool
 * (its layout is exactly dl_fused_mlp_bytes), and half the factorisation
 * kernel's, whose layout double-buffers U and V. With the kernels' fixed
 * scratch (3 KiB at most) both stay under sm_90's 48 KiB of static shared
 * memory per block. */
#define DL_FUSED_LIMIT_BYTES ((size_t)22 * 1024)

/* dl_fused_factorise() and dl_fused_mlp() (backend.h), one persistent launch
 * each: one block per model for every epoch of the call. `args` is a host
 * pointer read at launch time. A model whose working set is over
 * DL_FUSED_LIMIT_BYTES is refused with cudaErrorInvalidValue. */
cudaError_t dl_launch_fused_factorise(const dl_fused_factorise_args *args, cudaStream_t stream);
cudaError_t dl_launch_fused_mlp(const dl_fused_mlp_args *args, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

/* --- helpers shared by the .cu files (nvcc, or a host C++ compiler with the
 * CUDA emulation headers and DLAB_CUDA_EMU) ------------------------------ */
#if defined(__CUDACC__) || defined(DLAB_CUDA_EMU)

/* Every kernel runs 256-thread blocks: a power of two for the tree sums and
 * enough warps per block to hide memory latency on sm_90. */
#define DL_BLOCK 256

/* Grid-stride kernels need no more blocks than this to fill any current GPU
 * several times over; more would only add scheduling overhead. */
#define DL_MAX_GRID_BLOCKS 16384u

/* CUDA caps grid y and z at 65535: batched kernels loop over models. */
#define DL_MAX_GRID_Y 65535u

static inline unsigned dl_grid_for(size_t n)
{
    size_t blocks = (n + DL_BLOCK - 1) / DL_BLOCK;
    if (blocks < 1) blocks = 1;
    if (blocks > DL_MAX_GRID_BLOCKS) blocks = DL_MAX_GRID_BLOCKS;
    return (unsigned)blocks;
}

/* Sum of one double per thread over a DL_BLOCK-thread block, in a fixed tree
 * order (so the result is the same every run). Every thread gets the total.
 * `shared` must hold DL_BLOCK doubles; it may be reused right after return. */
static __device__ __forceinline__ double dl_block_sum(double v, double *shared)
{
    shared[threadIdx.x] = v;
    __syncthreads();
    for (unsigned half = DL_BLOCK / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    double total = shared[0];
    __syncthreads(); /* everyone has read shared[0] before anyone writes again */
    return total;
}

/* The two-stage plan every reducing launcher follows. Stage 1 cuts each
 * model into `slices` (blocks, or row parts) that each leave `slots` doubles
 * in scratch; stage 2 adds each model's slices in index order. The plan
 * depends only on the per-model shape and on scratch_len, never on the
 * batch size, which is what keeps a model's bits independent of its batch. */
typedef struct {
    size_t slices;    /* stage-1 slices per model */
    size_t per_model; /* scratch doubles per model: slices * slots */
    size_t group;     /* models per pass: as many as scratch holds */
} dl_reduce_plan;

/* At most as many slices as the scratch buffer holds for one model. */
static inline size_t dl_reduce_fit(size_t slices, size_t slots, size_t scratch_len)
{
    return slices * slots > scratch_len ? scratch_len / slots : slices;
}

/* `slices` must be at least 1 and fit scratch (see dl_reduce_fit). */
static inline dl_reduce_plan dl_reduce_plan_make(size_t slices, size_t slots, size_t scratch_len)
{
    dl_reduce_plan p;
    p.slices = slices;
    p.per_model = slices * slots;
    p.group = scratch_len / p.per_model;
    return p;
}

/* Runs the plan over `batch` models: models go in groups that fit the
 * scratch buffer, and stream order keeps one group's stage 2 ahead of the
 * next group's stage 1. stages(b0, models) queues both stages for models
 * [b0, b0 + models) and returns the first launch error (cudaSuccess when
 * there was none); the first error stops the loop. */
template <typename Stages>
static inline cudaError_t dl_reduce_run(const dl_reduce_plan &plan, int batch, Stages stages)
{
    for (size_t b0 = 0; b0 < (size_t)batch; b0 += plan.group) {
        size_t left = (size_t)batch - b0;
        int models = (int)(left < plan.group ? left : plan.group);
        cudaError_t err = stages(b0, models);
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

/* Grid of a stage-1 kernel that loops over models in blockIdx.y. */
static inline dim3 dl_reduce_grid(const dl_reduce_plan &plan, int models)
{
    return dim3((unsigned)plan.slices,
                (unsigned)models < DL_MAX_GRID_Y ? (unsigned)models : DL_MAX_GRID_Y);
}

#endif /* __CUDACC__ || DLAB_CUDA_EMU */

#endif
