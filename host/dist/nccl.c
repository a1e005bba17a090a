/* NCCL between the ranks' GPUs, bootstrapped through dl_comm. The policy
 * (bootstrap, deterministic sums, capture, emulation) is in nccl_comm.h. */
#include "nccl_comm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

struct dl_nccl {
    dl_comm *c;
    ncclComm_t comm;
    int size;
};

#define NCCL_TRY(call)                                                                             \
    do {                                                                                           \
        ncclResult_t nr_ = (call);                                                                 \
        if (nr_ != ncclSuccess)                                                                    \
            return DL_FAIL(DL_E_RUNTIME, "%s failed: %s", #call, ncclGetErrorString(nr_));         \
    } while (0)

/* This rank's part before the collective ncclCommInitRank: a device to
 * use, and no more ranks on this node than it has GPUs. */
static dl_status local_device(dl_comm *c, int device)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1)
        return DL_FAIL(DL_E_NODEVICE, "rank %d sees no CUDA device (%s)", dl_comm_rank(c),
                       cudaGetErrorString(e));
    if (device < 0 || device >= count)
        return DL_FAIL(DL_E_NODEVICE, "rank %d has no CUDA device %d (it sees %d)", dl_comm_rank(c),
                       device, count);
    if (dl_comm_local_size(c) > count)
        return DL_FAIL(DL_E_NODEVICE,
                       "%d ranks share a node with %d GPUs; NCCL needs a GPU of its own for "
                       "every rank: start at most %d ranks per node",
                       dl_comm_local_size(c), count, count);
    e = cudaSetDevice(device);
    if (e != cudaSuccess)
        return DL_FAIL(DL_E_RUNTIME, "cudaSetDevice(%d) failed: %s", device, cudaGetErrorString(e));
    return DL_OK;
}

dl_status dl_nccl_create(dl_comm *c, int device, dl_nccl **out)
{
    *out = NULL;
    dl_nccl *nc = calloc(1, sizeof *nc);
    dl_status st = nc ? local_device(c, device) : DL_FAIL(DL_E_MEMORY, "out of host memory");
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (st == DL_OK && dl_comm_rank(c) == 0) {
        ncclResult_t nr = ncclGetUniqueId(&id);
        if (nr != ncclSuccess)
            st = DL_FAIL(DL_E_RUNTIME, "ncclGetUniqueId failed: %s", ncclGetErrorString(nr));
    }
    /* Every rank must enter ncclCommInitRank, or none: it blocks until all
     * have joined. */
    st = dl_comm_agree(c, st);
    if (st == DL_OK) st = dl_comm_bcast(c, &id, sizeof id, 0);
    if (st == DL_OK) {
        nc->c = c;
        nc->size = dl_comm_size(c);
        ncclResult_t nr = ncclCommInitRank(&nc->comm, nc->size, id, dl_comm_rank(c));
        if (nr != ncclSuccess) {
            nc->comm = NULL;
            st = DL_FAIL(DL_E_RUNTIME, "ncclCommInitRank (rank %d of %d, device %d) failed: %s",
                         dl_comm_rank(c), nc->size, device, ncclGetErrorString(nr));
        }
        st = dl_comm_agree(c, st);
    }
    if (st != DL_OK) {
        if (nc && nc->comm) ncclCommAbort(nc->comm);
        free(nc);
        return st;
    }
    *out = nc;
    return DL_OK;
}

void dl_nccl_destroy(dl_nccl *nc)
{
    if (!nc) return;
    if (nc->comm) {
        if (ncclCommFinalize(nc->comm) == ncclSuccess)
            ncclCommDestroy(nc->comm);
        else
            ncclCommAbort(nc->comm);
    }
    free(nc);
}

int dl_nccl_size(const dl_nccl *nc) { return nc->size; }

size_t dl_nccl_scratch_floats(const dl_nccl *nc, size_t n) { return (size_t)nc->size * n; }

dl_status dl_nccl_allreduce_sum(dl_nccl *nc, const float *send, float *recv, size_t n,
                                float *scratch, cudaStream_t stream)
{
    if (n == 0) return DL_OK;
    if (!send || !recv || !scratch) return DL_FAIL(DL_E_USAGE, "NCCL sum: NULL buffer");
    NCCL_TRY(ncclAllGather(send, scratch, n, ncclFloat, nc->comm, stream));
    cudaError_t e = dl_launch_rank_sum(scratch, recv, n, nc->size, stream);
    if (e != cudaSuccess)
        return DL_FAIL(DL_E_RUNTIME, "dl_launch_rank_sum failed: %s", cudaGetErrorString(e));
    return DL_OK;
}

dl_status dl_nccl_allreduce_sum_fast(dl_nccl *nc, const float *send, float *recv, size_t n,
                                     cudaStream_t stream)
{
    if (n == 0) return DL_OK;
    if (!send || !recv) return DL_FAIL(DL_E_USAGE, "NCCL sum: NULL buffer");
    NCCL_TRY(ncclAllReduce(send, recv, n, ncclFloat, ncclSum, nc->comm, stream));
    return DL_OK;
}

dl_status dl_nccl_check(dl_nccl *nc)
{
    ncclResult_t async = ncclSuccess;
    NCCL_TRY(ncclCommGetAsyncError(nc->comm, &async));
    if (async != ncclSuccess)
        return DL_FAIL(DL_E_RUNTIME, "NCCL reported an asynchronous error on rank %d: %s",
                       dl_comm_rank(nc->c), ncclGetErrorString(async));
    return DL_OK;
}
