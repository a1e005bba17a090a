/* Deterministic reductions: the fused residual and its sum of squares
 * (residual_sse) of the factorisation, and column sums (bias gradients of
 * the MLP).
 *
 * No floating-point atomics anywhere: the order of every addition is fixed
 * by the launch shape, and the launch shape is fixed by the per-model size
 * alone. Partial sums are doubles, so the float results are the correctly
 * rounded sums in all but pathological cases and agree with the CPU
 * backend's double accumulation. */
#include "kernels.h"

/* --- residual_sse ------------------------------------------------------- */

/* A block takes at least this many elements per thread before another block
 * joins the same model: small models (iris is 600 elements) get one block,
 * large ones (20000 x 2000) spread over many. */
#define DL_RESIDUAL_SSE_ELEMS_PER_THREAD 16
#define DL_RESIDUAL_SSE_MAX_BLOCKS       1024

/* Stage 1: block x of model y subtracts A from E over its grid-stride slice
 * and writes the block's sum of squares to partials[y][x]. */
static __global__ void residual_sse_partials_kernel(float *e, const float *a, size_t n, int models,
                                                    size_t a_stride, double *partials)
{
    __shared__ double shared[DL_BLOCK];
    for (int b = blockIdx.y; b < models; b += gridDim.y) {
        float *eb = e + (size_t)b * n;
        const float *ab = a + (size_t)b * a_stride;
        double acc = 0.0;
        for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
             i += (size_t)gridDim.x * blockDim.x) {
            float r = eb[i] - ab[i];
            eb[i] = r;
            acc += (double)r * (double)r; /* exact: a float square fits a double */
        }
        double total = dl_block_sum(acc, shared);
        if (threadIdx.x == 0) partials[(size_t)b * gridDim.x + blockIdx.x] = total;
    }
}

/* Stage 2: one thread per model adds its `parts` partials in index order. */
static __global__ void sum_partials_kernel(const double *partials, int parts, int models,
                                           float *out)
{
    for (int b = blockIdx.x * blockDim.x + threadIdx.x; b < models; b += gridDim.x * blockDim.x) {
        const double *pb = partials + (size_t)b * parts;
        double total = 0.0;
        for (int k = 0; k < parts; k++) total += pb[k];
        out[b] = (float)total;
    }
}

extern "C" cudaError_t dl_launch_residual_sse(float *e, const float *a, size_t n, int batch,
                                              size_t a_stride, float *sse, double *scratch,
                                              size_t scratch_len, cudaStream_t stream)
{
    if (batch < 0) return cudaErrorInvalidValue;
    if (batch == 0) return cudaSuccess;
    if (!e || !a || !scratch || scratch_len == 0) return cudaErrorInvalidValue;

    size_t per_block = (size_t)DL_BLOCK * DL_RESIDUAL_SSE_ELEMS_PER_THREAD;
    size_t blocks = (n + per_block - 1) / per_block;
    if (blocks < 1) blocks = 1;
    if (blocks > DL_RESIDUAL_SSE_MAX_BLOCKS) blocks = DL_RESIDUAL_SSE_MAX_BLOCKS;
    dl_reduce_plan plan =
        dl_reduce_plan_make(dl_reduce_fit(blocks, 1, scratch_len), 1, scratch_len);

    return dl_reduce_run(plan, batch, [&](size_t b0, int models) {
        residual_sse_partials_kernel<<<dl_reduce_grid(plan, models), DL_BLOCK, 0, stream>>>(
            e + b0 * n, a + b0 * a_stride, n, models, a_stride, scratch);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess || !sse) return err;
        sum_partials_kernel<<<dl_grid_for((size_t)models), DL_BLOCK, 0, stream>>>(
            scratch, (int)plan.slices, models, sse + b0);
        return cudaGetLastError();
    });
}

/* --- col_sum ------------------------------------------------------------- */

/* Up to this many rows are summed by one thread. Longer columns are cut into
 * parts whose partial sums a second kernel adds, so tall matrices still get
 * many threads. */
#define DL_COL_SUM_ROWS_PER_PART 256

/* p[i * stride] for i from begin up to (not including) end, added in that
 * order into a double: the one summation order of every column sum below. */
template <typename T>
static __device__ double strided_sum(const T *p, size_t begin, size_t end, size_t stride)
{
    double acc = 0.0;
    for (size_t i = begin; i < end; i++) acc += p[i * stride];
    return acc;
}

/* One thread per (model, column): the whole column in row order, which is
 * also the CPU backend's order, so the two agree bit for bit. */
static __global__ void col_sum_direct_kernel(const float *g, int rows, int cols, size_t total,
                                             float *out, size_t out_stride)
{
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t b = idx / (size_t)cols, c = idx % (size_t)cols;
        const float *col = g + b * (size_t)rows * cols + c;
        out[b * out_stride + c] = (float)strided_sum(col, 0, (size_t)rows, (size_t)cols);
    }
}

/* One thread per (model, part, column); idx enumerates them column-fastest,
 * so neighbouring threads read neighbouring floats and partials[idx] is the
 * partial of that triple. */
static __global__ void col_sum_parts_kernel(const float *g, int rows, int cols, int parts,
                                            int rows_per_part, size_t total, double *partials)
{
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t c = idx % (size_t)cols;
        size_t k = (idx / (size_t)cols) % (size_t)parts;
        size_t b = idx / ((size_t)cols * parts);
        size_t r0 = k * (size_t)rows_per_part;
        size_t r1 = r0 + (size_t)rows_per_part < (size_t)rows ? r0 + rows_per_part : (size_t)rows;
        const float *col = g + b * (size_t)rows * cols + c;
        partials[idx] = strided_sum(col, r0, r1, (size_t)cols);
    }
}

/* One thread per (model, column) adds the column's parts in order. */
static __global__ void col_sum_finish_kernel(const double *partials, int cols, int parts,
                                             size_t total, float *out, size_t out_stride)
{
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        size_t b = idx / (size_t)cols, c = idx % (size_t)cols;
        const double *pb = partials + b * (size_t)parts * cols + c;
        out[b * out_stride + c] = (float)strided_sum(pb, 0, (size_t)parts, (size_t)cols);
    }
}

extern "C" cudaError_t dl_launch_col_sum(const float *g, int rows, int cols, int batch, float *out,
                                         size_t out_stride, double *scratch, size_t scratch_len,
                                         cudaStream_t stream)
{
    if (rows < 0 || cols < 0 || batch < 0) return cudaErrorInvalidValue;
    if (cols == 0 || batch == 0) return cudaSuccess;
    if (!out || (rows > 0 && !g)) return cudaErrorInvalidValue;

    size_t parts = ((size_t)rows + DL_COL_SUM_ROWS_PER_PART - 1) / DL_COL_SUM_ROWS_PER_PART;
    if (parts > 1) parts = scratch ? dl_reduce_fit(parts, (size_t)cols, scratch_len) : 1;
    if (parts <= 1) {
        size_t total = (size_t)batch * (size_t)cols;
        col_sum_direct_kernel<<<dl_grid_for(total), DL_BLOCK, 0, stream>>>(g, rows, cols, total,
                                                                           out, out_stride);
        return cudaGetLastError();
    }
    int rows_per_part = (int)(((size_t)rows + parts - 1) / parts);
    parts = ((size_t)rows + rows_per_part - 1) / (size_t)rows_per_part; /* no empty parts */
    dl_reduce_plan plan = dl_reduce_plan_make(parts, (size_t)cols, scratch_len);

    return dl_reduce_run(plan, batch, [&](size_t b0, int models) {
        const float *gb = g + b0 * (size_t)rows * cols;
        size_t part_total = (size_t)models * plan.per_model;
        col_sum_parts_kernel<<<dl_grid_for(part_total), DL_BLOCK, 0, stream>>>(
            gb, rows, cols, (int)plan.slices, rows_per_part, part_total, scratch);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return err;
        size_t out_total = (size_t)models * (size_t)cols;
        col_sum_finish_kernel<<<dl_grid_for(out_total), DL_BLOCK, 0, stream>>>(
            scratch, cols, (int)plan.slices, out_total, out + b0 * out_stride, out_stride);
        return cudaGetLastError();
    });
}
