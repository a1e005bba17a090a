/* Prelude force-included (-include) into every kernel file (kernels/, .cu) when the cuda-emu
 * build compiles it as host C++ (g++ -x c++), after the build has rewritten
 * each `kernel<<<grid, block, shmem, stream>>>(args)` into
 * `DL_EMU_LAUNCH(kernel, grid, block, shmem, stream)(args)`
 * (tests/cuda_emu/rewrite_launches.cmake).
 *
 * What the CUDA dialect means here:
 * - __global__, __device__, __host__ mark nothing: every function is host code.
 * - threadIdx, blockIdx, blockDim, gridDim are the values of the thread the
 *   emulator is running now (each thread of a block is a fiber, see
 *   src/exec.cpp).
 * - __shared__ variables are per OS thread (`static thread_local`); the
 *   emulator runs one block at a time on one OS thread, all its threads on
 *   that thread, so that is exactly one copy per block.
 * - __syncthreads() is a barrier: the calling fiber waits until every thread
 *   of its block has reached the same barrier.
 */
#ifndef DL_EMU_KERNEL_H
#define DL_EMU_KERNEL_H

/* The toolkit's C++ header (its own kernels' parameters are called
 * blockDim and gridDim) comes before the macros below rename them. */
#include <cuda_runtime.h>

#include "dl_emu_launch.h"

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__      static thread_local
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

/* A read through the read-only data cache is a plain read here. */
template <class T> static inline T __ldg(const T *p) { return *p; }

#define threadIdx       (dl_emu_k.thread_idx)
#define blockIdx        (dl_emu_k.block_idx)
#define blockDim        (dl_emu_k.block_dim)
#define gridDim         (dl_emu_k.grid_dim)
#define __syncthreads() dl_emu::syncthreads(__FILE__, __LINE__)

#define DL_EMU_LAUNCH(kernel, ...)                                                                 \
    dl_emu::make_launch(kernel, #kernel, __FILE__, __LINE__, __VA_ARGS__)

#endif
