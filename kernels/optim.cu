/* Optimiser steps: SGD, momentum and Adam, each one launch over the whole
 * parameter vector (a factorisation's U and V, or all of an MLP's weights,
 * laid out contiguously, so one launch updates everything). The per-element
 * updates are dl_sgd_step, dl_momentum_step and dl_adam_step from
 * host/backends/elem_math.h, shared with the CPU backend. */
#include "kernels.h"
#include "elem_math.h"

static __global__ void sgd_kernel(float *p, const float *g, size_t n, float lr)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = dl_sgd_step(p[i], g[i], lr);
}

static __global__ void momentum_kernel(float *p, const float *g, float *vel, size_t n, float lr,
                                       float mu)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = vel[i];
        p[i] = dl_momentum_step(p[i], g[i], &v, lr, mu);
        vel[i] = v;
    }
}

/* Adam's step number lives on the device so that a captured epoch replays
 * correctly: this kernel advances it, the update kernel (queued after it on
 * the same stream) reads the new value. */
static __global__ void adam_tick_kernel(int32_t *t) { *t += 1; }

static __global__ void adam_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr,
                                   float beta1, float beta2, float eps, const int32_t *t)
{
    const int step = *t;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float mi = m[i], vi = v[i];
        p[i] = dl_adam_step(p[i], g[i], &mi, &vi, lr, beta1, beta2, eps, step);
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" cudaError_t dl_launch_optim_step(const dl_optim *opt, float *p, const float *g, float *m,
                                            float *v, size_t n, int32_t *t, cudaStream_t stream)
{
    if (!opt) return cudaErrorInvalidValue;
    unsigned grid = dl_grid_for(n);
    switch (opt->kind) {
    case DL_OPTIM_SGD:
        if (n == 0) return cudaSuccess;
        if (!p || !g) return cudaErrorInvalidValue;
        sgd_kernel<<<grid, DL_BLOCK, 0, stream>>>(p, g, n, opt->lr);
        return cudaGetLastError();
    case DL_OPTIM_MOMENTUM:
        if (n == 0) return cudaSuccess;
        if (!p || !g || !m) return cudaErrorInvalidValue;
        momentum_kernel<<<grid, DL_BLOCK, 0, stream>>>(p, g, m, n, opt->lr, opt->momentum);
        return cudaGetLastError();
    case DL_OPTIM_ADAM: {
        /* The counter advances even for an empty vector: a step was taken. */
        if (!t || (n > 0 && (!p || !g || !m || !v))) return cudaErrorInvalidValue;
        adam_tick_kernel<<<1, 1, 0, stream>>>(t);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess || n == 0) return err;
        adam_kernel<<<grid, DL_BLOCK, 0, stream>>>(p, g, m, v, n, opt->lr, opt->beta1, opt->beta2,
                                                   opt->eps, t);
        return cudaGetLastError();
    }
    }
    return cudaErrorInvalidValue;
}
