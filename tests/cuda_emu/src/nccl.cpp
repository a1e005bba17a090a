/* NCCL on the emulator: the calls host/dist/nccl.c makes, under NCCL's own
 * names and signatures (nccl.h), carried out by MPI between the processes
 * of the job. Built into the emulator only when MPI is found.
 *
 * Model. A communicator is an MPI communicator of all the job's processes
 * (MPI_COMM_WORLD split in rank order, so NCCL rank r is MPI rank r). A
 * collective is work queued on its stream like a kernel: it runs when this
 * process's host synchronises, and a collective queued during capture is
 * recorded in the graph and runs again on every replay. When it runs it
 * calls MPI's all-gather with the other processes; their matching
 * collectives run when their hosts synchronise, so each process's streams
 * meet the others' in the order NCCL requires (every rank issues the same
 * collectives in the same order). Unlike a GPU, a rank's queued collective
 * makes no progress while its host waits in a host-side MPI call of its own:
 * code whose ranks synchronise in different places from one another may hang
 * here where it would not on GPUs. So a collective that waits longer than
 * DLAB_CUDA_EMU_NCCL_TIMEOUT seconds (default 300) is reported as an error.
 *
 * Without MPI running (a plain process), a communicator has one rank and the
 * all-gather is a copy.
 *
 * The all-reduce (sum) gathers the ranks' vectors and adds them in rank
 * order in double, rounding once, which is the order of
 * dl_comm_allreduce_sum_f32: deterministic, where NCCL's own order depends on
 * the algorithm it picks.
 */
#include "emu.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

/* MPI's C interface only (Open MPI's mpi.h otherwise brings its C++ one). */
#define OMPI_SKIP_MPICXX  1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <nccl.h>
#include <unistd.h>

using namespace dl_emu;

struct ncclComm {
    MPI_Comm mpi = MPI_COMM_NULL; /* MPI_COMM_NULL: one rank, no MPI */
    int rank = 0, size = 1;
    bool finalized = false;
};

namespace
{

/* The id rank 0 makes: a tag, its process id and a count, so that a
 * communicator made from someone else's id is told apart. */
constexpr char id_tag[] = "dlab-cuda-emu-nccl";

bool mpi_running()
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

double timeout_seconds()
{
    const char *v = getenv("DLAB_CUDA_EMU_NCCL_TIMEOUT");
    double t = v && *v ? atof(v) : 300.0;
    return t > 0 ? t : 300.0;
}

double now()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t type_size(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8:
    case ncclUint8: return 1;
    case ncclFloat16:
    case ncclBfloat16: return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32: return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64: return 8;
    default: return 0;
    }
}

const char *type_name(ncclDataType_t t)
{
    switch (t) {
    case ncclFloat32: return "ncclFloat";
    case ncclFloat64: return "ncclDouble";
    case ncclInt32: return "ncclInt32";
    default: return "another type";
    }
}

/* Every rank's `bytes` bytes at send, side by side in rank order at recv
 * (send may be recv's own slot). Fails with the call's site when the other
 * ranks do not join within the timeout. */
void all_gather(const ncclComm *c, const site &s, const std::string &what, const void *send,
                void *recv, size_t bytes)
{
    char *mine = (char *)recv + (size_t)c->rank * bytes;
    if (c->mpi == MPI_COMM_NULL) {
        if (send != mine) memmove(mine, send, bytes);
        return;
    }
    if (bytes > (size_t)INT32_MAX)
        fail(s, "%s: %zu bytes a rank: over the emulator's limit of MPI's int counts", what.c_str(),
             bytes);
    MPI_Request req;
    int rc = MPI_Iallgather(send == mine ? MPI_IN_PLACE : send, (int)bytes, MPI_BYTE, recv,
                            (int)bytes, MPI_BYTE, c->mpi, &req);
    if (rc != MPI_SUCCESS) fail(s, "%s: MPI_Iallgather failed (%d)", what.c_str(), rc);
    const double limit = timeout_seconds(), start = now();
    for (int done = 0;;) {
        rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) fail(s, "%s: MPI_Test failed (%d)", what.c_str(), rc);
        if (done) return;
        if (now() - start > limit)
            fail(s,
                 "%s (rank %d of %d) waited %.0f s for the other ranks: each rank's queued "
                 "collectives run only when its host synchronises, so every rank must "
                 "synchronise in the same places (DLAB_CUDA_EMU_NCCL_TIMEOUT)",
                 what.c_str(), c->rank, c->size, limit);
        usleep(50);
    }
}

ncclResult_t check_buffers(const site &s, const char *call, const void *send, size_t send_bytes,
                           const void *recv, size_t recv_bytes)
{
    if (!send || !recv) {
        note(s, "%s: NULL buffer (ncclInvalidArgument)", call);
        return ncclInvalidArgument;
    }
    require_device_range(s, (std::string("send buffer of ") + call).c_str(), send, send_bytes);
    require_device_range(s, (std::string("receive buffer of ") + call).c_str(), recv, recv_bytes);
    return ncclSuccess;
}

} // namespace

extern "C" {

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    take_site();
    if (!id) return ncclInvalidArgument;
    static unsigned count;
    memset(id, 0, sizeof *id);
    snprintf(id->internal, sizeof id->internal, "%s %ld %u", id_tag, (long)getpid(), ++count);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank)
{
    site s = take_site();
    if (!out) return ncclInvalidArgument;
    *out = nullptr;
    if (strncmp(id.internal, id_tag, sizeof id_tag - 1) != 0) {
        note(s, "ncclCommInitRank: the unique id was not made by ncclGetUniqueId "
                "(ncclInvalidArgument)");
        return ncclInvalidArgument;
    }
    if (nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    auto *c = new ncclComm;
    if (mpi_running()) {
        int world_rank = 0, world_size = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &world_size);
        if (MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &c->mpi) != MPI_SUCCESS) {
            delete c;
            return ncclSystemError;
        }
        MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
        MPI_Comm_rank(c->mpi, &c->rank);
        MPI_Comm_size(c->mpi, &c->size);
        /* Every rank must hold rank 0's id. */
        ncclUniqueId root = id;
        MPI_Bcast(root.internal, sizeof root.internal, MPI_BYTE, 0, c->mpi);
        if (c->size != nranks || c->rank != rank ||
            memcmp(root.internal, id.internal, sizeof id.internal) != 0) {
            note(s,
                 "ncclCommInitRank(nranks %d, rank %d): the emulator's communicator is every "
                 "process of the MPI job in rank order (%d of %d) with one id (ncclInvalidUsage)",
                 nranks, rank, c->rank, c->size);
            MPI_Comm_free(&c->mpi);
            delete c;
            return ncclInvalidUsage;
        }
    } else if (nranks != 1) {
        note(s, "ncclCommInitRank: %d ranks without MPI running (ncclInvalidUsage)", nranks);
        delete c;
        return ncclInvalidUsage;
    }
    *out = c;
    return ncclSuccess;
}

ncclResult_t ncclAllGather(const void *send, void *recv, size_t count, ncclDataType_t type,
                           ncclComm_t c, cudaStream_t stream)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    if (!c || c->finalized) return ncclInvalidArgument;
    size_t es = type_size(type);
    if (!es) return ncclInvalidArgument;
    if (count == 0) return ncclSuccess;
    size_t bytes = es * count;
    ncclResult_t r = check_buffers(s, "ncclAllGather", send, bytes, recv, bytes * c->size);
    if (r != ncclSuccess) return r;
    const char *mine = (const char *)recv + bytes * (size_t)c->rank;
    if (send != mine && (const char *)send < (const char *)recv + bytes * c->size &&
        (const char *)recv < (const char *)send + bytes)
        fail(s, "ncclAllGather: the send buffer overlaps the receive buffer other than at this "
                "rank's own slot");
    std::string what =
        "ncclAllGather(" + std::to_string(count) + " x " + type_name(type) + ") at " + where(s);
    work w{s, what, [=] {
               require_device_range(s, (what + " send buffer (when it ran)").c_str(), send, bytes);
               require_device_range(s, (what + " receive buffer (when it ran)").c_str(), recv,
                                    bytes * c->size);
               all_gather(c, s, what, send, recv, bytes);
               check_canaries(find_allocation(recv, 0), s, what);
           }};
    return enqueue(stream, std::move(w)) == cudaSuccess ? ncclSuccess : ncclInvalidUsage;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type,
                           ncclRedOp_t op, ncclComm_t c, cudaStream_t stream)
{
    std::lock_guard<std::recursive_mutex> guard(lock());
    site s = take_site();
    if (!c || c->finalized) return ncclInvalidArgument;
    if (type != ncclFloat32 || op != ncclSum) {
        note(s, "ncclAllReduce: the emulator has only the float sum (ncclInvalidArgument)");
        return ncclInvalidArgument;
    }
    if (count == 0) return ncclSuccess;
    size_t bytes = sizeof(float) * count;
    ncclResult_t r = check_buffers(s, "ncclAllReduce", send, bytes, recv, bytes);
    if (r != ncclSuccess) return r;
    std::string what = "ncclAllReduce(" + std::to_string(count) + " x ncclFloat) at " + where(s);
    work w{s, what, [=] {
               require_device_range(s, (what + " send buffer (when it ran)").c_str(), send, bytes);
               require_device_range(s, (what + " receive buffer (when it ran)").c_str(), recv,
                                    bytes);
               std::vector<float> all((size_t)c->size * count);
               char *slot = (char *)all.data() + bytes * (size_t)c->rank;
               memcpy(slot, send, bytes);
               all_gather(c, s, what, slot, all.data(), bytes);
               float *out = (float *)recv;
               for (size_t i = 0; i < count; i++) {
                   double acc = all[i];
                   for (int q = 1; q < c->size; q++) acc += all[(size_t)q * count + i];
                   out[i] = (float)acc;
               }
               check_canaries(find_allocation(recv, 0), s, what);
           }};
    return enqueue(stream, std::move(w)) == cudaSuccess ? ncclSuccess : ncclInvalidUsage;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t c, ncclResult_t *async)
{
    take_site();
    if (!c || !async) return ncclInvalidArgument;
    /* DLAB_CUDA_EMU_NCCL_FAULT=R: rank R's communicator reports what NCCL
     * reports when a peer has died, to test the callers' polling. */
    const char *f = getenv("DLAB_CUDA_EMU_NCCL_FAULT");
    *async = f && *f && atoi(f) == c->rank ? ncclRemoteError : ncclSuccess;
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t c)
{
    take_site();
    if (!c) return ncclInvalidArgument;
    c->finalized = true;
    return ncclSuccess;
}

static ncclResult_t release(ncclComm_t c)
{
    if (!c) return ncclInvalidArgument;
    if (c->mpi != MPI_COMM_NULL && mpi_running()) MPI_Comm_free(&c->mpi);
    delete c;
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t c)
{
    take_site();
    return release(c);
}

ncclResult_t ncclCommAbort(ncclComm_t c)
{
    take_site();
    return release(c);
}

} /* extern "C" */
