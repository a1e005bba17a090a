/* Elementwise kernels: fill, bias + activation, ReLU backward, and the
 * device-side history append. All are memory-bound one-pass loops; the
 * per-element math comes from host/backends/elem_math.h, shared with the CPU
 * backend. */
#include "kernels.h"
#include "elem_math.h"

static __global__ void fill_kernel(float *x, size_t n, float value)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = value;
}

/* One flat loop over all batch*rows*cols outputs: the column (and so the
 * bias entry) of element i is i % cols, its model i / (rows*cols). */
static __global__ void bias_act_kernel(float *y, const float *bias, size_t per_model, int cols,
                                       size_t total, size_t bias_stride, bool relu)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = y[i];
        if (bias) {
            size_t b = i / per_model, c = i % (size_t)cols;
            x += bias[b * bias_stride + c];
        }
        y[i] = relu ? dl_relu(x) : x;
    }
}

static __global__ void relu_bwd_kernel(float *dh, const float *h, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dh[i] = dl_relu_grad(h[i], dh[i]);
}

/* A single block: every thread reads *counter before the barrier, thread 0
 * bumps it after, so the row index is the same for all threads and the
 * counter moves exactly once per call. */
static __global__ void record_kernel(float *hist, const float *vals, int n, int32_t *counter)
{
    size_t row = (size_t)*counter * (size_t)n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) hist[row + (size_t)i] = vals[i];
    __syncthreads();
    if (threadIdx.x == 0) *counter += 1;
}

extern "C" cudaError_t dl_launch_fill(float *x, size_t n, float value, cudaStream_t stream)
{
    if (n == 0) return cudaSuccess;
    if (!x) return cudaErrorInvalidValue;
    fill_kernel<<<dl_grid_for(n), DL_BLOCK, 0, stream>>>(x, n, value);
    return cudaGetLastError();
}

extern "C" cudaError_t dl_launch_bias_act(float *y, const float *bias, int rows, int cols,
                                          int batch, size_t bias_stride, bool relu,
                                          cudaStream_t stream)
{
    if (rows < 0 || cols < 0 || batch < 0) return cudaErrorInvalidValue;
    size_t per_model = (size_t)rows * (size_t)cols;
    size_t total = per_model * (size_t)batch;
    if (total == 0) return cudaSuccess;
    if (!y) return cudaErrorInvalidValue;
    bias_act_kernel<<<dl_grid_for(total), DL_BLOCK, 0, stream>>>(y, bias, per_model, cols, total,
                                                                 bias_stride, relu);
    return cudaGetLastError();
}

extern "C" cudaError_t dl_launch_relu_bwd(float *dh, const float *h, size_t n, cudaStream_t stream)
{
    if (n == 0) return cudaSuccess;
    if (!dh || !h) return cudaErrorInvalidValue;
    relu_bwd_kernel<<<dl_grid_for(n), DL_BLOCK, 0, stream>>>(dh, h, n);
    return cudaGetLastError();
}

extern "C" cudaError_t dl_launch_record(float *hist, const float *vals, int n, int32_t *counter,
                                        cudaStream_t stream)
{
    if (n < 0 || !counter || (n > 0 && (!hist || !vals))) return cudaErrorInvalidValue;
    record_kernel<<<1, DL_BLOCK, 0, stream>>>(hist, vals, n, counter);
    return cudaGetLastError();
}
