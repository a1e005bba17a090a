/* The deterministic end of a sum over ranks: after ncclAllGather has put
 * every rank's vector side by side, each element is added over the ranks in
 * rank order in double and rounded once, which is the formula of
 * dl_comm_allreduce_sum_f32 on the CPU (host/dist/comm.c). One thread per
 * element and no shared state: the result cannot depend on the schedule. */
#include "nccl_comm.h"

#define DL_DIST_BLOCK    256
#define DL_DIST_MAX_GRID 65535u

static __global__ void rank_sum_kernel(const float *parts, float *out, size_t n, int ranks)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double acc = parts[i];
        for (int r = 1; r < ranks; r++) acc += parts[(size_t)r * n + i];
        out[i] = (float)acc;
    }
}

extern "C" cudaError_t dl_launch_rank_sum(const float *parts, float *out, size_t n, int ranks,
                                          cudaStream_t stream)
{
    if (ranks < 1 || (n > 0 && (!parts || !out))) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    size_t blocks = (n + DL_DIST_BLOCK - 1) / DL_DIST_BLOCK;
    unsigned grid = blocks < DL_DIST_MAX_GRID ? (unsigned)blocks : DL_DIST_MAX_GRID;
    rank_sum_kernel<<<grid, DL_DIST_BLOCK, 0, stream>>>(parts, out, n, ranks);
    return cudaGetLastError();
}
