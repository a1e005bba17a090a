/* NCCL between the GPUs of the ranks of a dl_comm (private to the CUDA side:
 * the backend calls it, tasks never do).
 *
 * Bootstrap. NCCL needs every rank to hold the same ncclUniqueId: rank 0
 * makes it and dl_comm_bcast sends it (128 bytes over MPI), then every rank
 * calls ncclCommInitRank on its own device. Each rank must own a distinct
 * GPU (NCCL refuses two ranks on one device): use dl_comm_device. Before
 * NCCL starts, the ranks compare their GPUs' node name and PCI bus id (the
 * device index cannot tell: ranks given one GPU each by CUDA_VISIBLE_DEVICES
 * all call theirs device 0) and all refuse together when two share one.
 * With one rank (no MPI) the same code makes a one-rank NCCL communicator.
 *
 * Sums. dl_nccl_allreduce_sum is deterministic: ncclAllGather only moves
 * bytes (P vectors of n floats into `scratch`), then a kernel adds the P
 * vectors in rank order in double and rounds once (kernels/dist.cu), the
 * same formula as dl_comm's CPU sum. ncclAllReduce's order of additions
 * depends on the algorithm and protocol NCCL picks from the topology and
 * the message size, and NVLS reductions on Hopper are documented by NVIDIA
 * as not run-to-run deterministic, so it is offered separately
 * (dl_nccl_allreduce_sum_fast) for runs that value speed over bit-identical
 * reruns. Both only queue work on `stream` (no host synchronisation, no
 * allocation), so both may be captured in a CUDA graph with the epoch.
 *
 * Emulation. The NCCL calls used are exactly ncclGetUniqueId,
 * ncclCommInitRank, ncclAllGather, ncclAllReduce (sum, float),
 * ncclCommGetAsyncError, ncclCommFinalize, ncclCommDestroy, ncclCommAbort
 * and ncclGetErrorString, which the cuda-emu build stands MPI in for
 * (tests/cuda_emu/src/nccl.cpp): the unique id is an opaque token, the
 * communicator is the MPI job's ranks in rank order, and when the emulated
 * stream reaches an ncclAllGather it calls MPI's all-gather (ncclAllReduce:
 * the rank-order sum of dl_comm_allreduce_sum_f32), which keeps every
 * rank's streams in the same collective order, as NCCL requires.
 */
#ifndef DLAB_NCCL_COMM_H
#define DLAB_NCCL_COMM_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "dlab/comm.h"
#include "dlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_nccl dl_nccl;

/* Makes the NCCL communicator of all ranks of `c`, this rank on CUDA device
 * `device` (made current). A collective over c: every rank returns the same
 * status (DL_E_NODEVICE when a rank has no such device or two ranks share a
 * GPU, naming them; DL_E_RUNTIME naming the failing NCCL or CUDA call).
 * `c` must outlive the result. */
dl_status dl_nccl_create(dl_comm *c, int device, dl_nccl **out);

/* Ends the communicator after its queued work (ncclCommFinalize then
 * ncclCommDestroy; ncclCommAbort if finalising fails). NULL is ignored.
 * A collective. */
void dl_nccl_destroy(dl_nccl *nc);

int dl_nccl_size(const dl_nccl *nc);

/* Floats of scratch that dl_nccl_allreduce_sum needs for n values: P n. */
size_t dl_nccl_scratch_floats(const dl_nccl *nc, size_t n);

/* recv[i] = sum over ranks r of send_r[i], added in rank order in double,
 * on every rank, queued on `stream`. send may equal recv; scratch (device,
 * dl_nccl_scratch_floats(nc, n) floats) must not overlap either. */
dl_status dl_nccl_allreduce_sum(dl_nccl *nc, const float *send, float *recv, size_t n,
                                float *scratch, cudaStream_t stream);

/* The same sum by ncclAllReduce: faster for long vectors, bit-identical
 * from run to run only while NCCL keeps its algorithm (see above). */
dl_status dl_nccl_allreduce_sum_fast(dl_nccl *nc, const float *send, float *recv, size_t n,
                                     cudaStream_t stream);

/* DL_E_RUNTIME if NCCL has recorded an asynchronous error (a peer died, a
 * network fault). */
dl_status dl_nccl_check(dl_nccl *nc);

/* Waits for `stream` as cudaStreamSynchronize does, but polls NCCL's
 * asynchronous error meanwhile (cudaStreamQuery, then
 * ncclCommGetAsyncError: the pattern of NCCL's documentation, "Fault
 * Tolerance"), so a collective that can never finish does not block the
 * host forever. On such an error, or when the stream itself failed, the
 * other ranks may be waiting in a sum that cannot end: the communicator is
 * aborted (ncclCommAbort, which also stops its pending kernels) and every
 * rank is stopped with this rank's message (dl_comm_abort, exit 1). It
 * returns only once the stream's work is done. Busy for the first 100
 * polls, then sleeping 50 us between polls. */
void dl_nccl_wait(dl_nccl *nc, cudaStream_t stream);

/* kernels/dist.cu: out[i] = (float)(parts[0][i] + ... + parts[ranks-1][i])
 * added in double in rank order, part r at parts + r*n; queued on stream
 * (capturable). Returns the launch error. */
cudaError_t dl_launch_rank_sum(const float *parts, float *out, size_t n, int ranks,
                               cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
