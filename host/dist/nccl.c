/* NCCL between the ranks' GPUs, bootstrapped through dl_comm. The policy
 * (bootstrap, deterministic sums, capture, emulation) is in nccl_comm.h. */
#include "nccl_comm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

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
 * use, made current. */
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
    e = cudaSetDevice(device);
    if (e != cudaSuccess)
        return DL_FAIL(DL_E_RUNTIME, "cudaSetDevice(%d) failed: %s", device, cudaGetErrorString(e));
    return DL_OK;
}

/* Where a rank's GPU is: its node and PCI bus id. Ranks that each see one
 * GPU through CUDA_VISIBLE_DEVICES all call it device 0, so the device
 * index cannot tell whether two ranks share a GPU; the bus id can. */
typedef struct {
    char host[80]; /* a node name: up to 64 bytes on Linux */
    char bus[32];
} gpu_place;

static dl_status merge_places(void *ud, const char *all, const size_t *sizes, int ranks)
{
    (void)ud, (void)sizes;
    const gpu_place *p = (const gpu_place *)all;
    for (int a = 0; a < ranks; a++)
        for (int b = a + 1; b < ranks; b++)
            if (!strcmp(p[a].host, p[b].host) && !strcmp(p[a].bus, p[b].bus))
                return DL_FAIL(DL_E_NODEVICE,
                               "ranks %d and %d share the GPU %s on %s; NCCL needs a GPU of its "
                               "own for every rank: start at most as many ranks on a node as "
                               "it has GPUs",
                               a, b, p[a].bus, p[a].host);
    return DL_OK;
}

/* Every rank on a GPU of its own, or every rank fails (NCCL would refuse
 * later, inside the collective ncclCommInitRank). */
static dl_status distinct_devices(dl_comm *c, int device, dl_status st)
{
    gpu_place me;
    memset(&me, 0, sizeof me);
    struct utsname node;
    snprintf(me.host, sizeof me.host, "%s", uname(&node) == 0 ? node.nodename : "this node");
    if (st == DL_OK) {
        cudaError_t e = cudaDeviceGetPCIBusId(me.bus, (int)sizeof me.bus, device);
        if (e != cudaSuccess)
            st = DL_FAIL(DL_E_RUNTIME, "cudaDeviceGetPCIBusId(%d) failed: %s", device,
                         cudaGetErrorString(e));
    }
    return dl_comm_gather_merge(c, st, &me, sizeof me, merge_places, NULL);
}

dl_status dl_nccl_create(dl_comm *c, int device, dl_nccl **out)
{
    *out = NULL;
    dl_nccl *nc = calloc(1, sizeof *nc);
    dl_status st = nc ? local_device(c, device) : DL_FAIL(DL_E_MEMORY, "out of host memory");
    if (dl_comm_size(c) > 1) st = distinct_devices(c, device, st);
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
    if (!nc->comm) return DL_FAIL(DL_E_RUNTIME, "the NCCL communicator was aborted");
    ncclResult_t async = ncclSuccess;
    NCCL_TRY(ncclCommGetAsyncError(nc->comm, &async));
    if (async != ncclSuccess)
        return DL_FAIL(DL_E_RUNTIME, "NCCL reported an asynchronous error on rank %d: %s",
                       dl_comm_rank(nc->c), ncclGetErrorString(async));
    return DL_OK;
}

void dl_nccl_wait(dl_nccl *nc, cudaStream_t stream)
{
    for (long polls = 0;; polls++) {
        cudaError_t e = cudaStreamQuery(stream);
        dl_status st = e == cudaSuccess || e == cudaErrorNotReady ? dl_nccl_check(nc) : DL_OK;
        if (st == DL_OK && e != cudaSuccess && e != cudaErrorNotReady)
            st = DL_FAIL(DL_E_RUNTIME, "cudaStreamQuery failed: %s (%s)", cudaGetErrorName(e),
                         cudaGetErrorString(e));
        if (st != DL_OK) {
            if (nc->comm) ncclCommAbort(nc->comm);
            nc->comm = NULL;
            dl_comm_abort(nc->c, st); /* the others may wait in a sum that cannot end */
        }
        if (e == cudaSuccess) return;
        if (polls >= 100) nanosleep(&(struct timespec){0, 50000}, NULL);
    }
}
