/* NCCL between the ranks' GPUs (host/dist/nccl.c), one rank per GPU: as
 * one plain process, or under mpirun with a GPU of its own for every rank
 * (on the cuda-emu build every process has its own emulated GPU and MPI
 * stands in for NCCL). Exits 77 (skipped) where ranks would share a GPU.
 *
 * The deterministic sum must give exactly the bits of the rank-order
 * double sum the CPU communicator gives; ncclAllReduce agrees to float
 * rounding; both replay correctly from a CUDA graph, on new inputs. */
#include <stdint.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "dist_test.h"
#include "nccl_comm.h"

static dl_comm *C;
static dl_nccl *NC;
static int R, P;
static cudaStream_t stream;

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float value(int r, size_t i)
{
    uint64_t h = mix(((uint64_t)r << 40) ^ i);
    double mant = 1.0 + (double)(h >> 11) * 0x1p-53;
    return (float)((h & 1 ? -1.0 : 1.0) * ldexp(mant, (int)((h >> 3) % 40) - 20));
}

/* Rank r's inputs of generation g are value(r + 1000 g, i). */
static float expected(int g, size_t i)
{
    double acc = value(1000 * g, i);
    for (int r = 1; r < P; r++) acc += value(r + 1000 * g, i);
    return (float)acc;
}

typedef struct {
    size_t n;
    float *send, *recv, *scratch, *host;
} buffers;

static bool cuda_ok(cudaError_t e, const char *what)
{
    DL_CHECK(e == cudaSuccess, "%s: %s", what, cudaGetErrorString(e));
    return e == cudaSuccess;
}

static bool upload_generation(buffers *b, int g)
{
    for (size_t i = 0; i < b->n; i++) b->host[i] = value(R + 1000 * g, i);
    return cuda_ok(cudaMemcpy(b->send, b->host, sizeof(float) * b->n, cudaMemcpyHostToDevice),
                   "upload");
}

/* Compares recv with generation g's sums: bit for bit, or (`exact` false)
 * within the rounding of P float additions in any order,
 * 2 P 2^-24 sum_r |x_r[i]|. */
static void check_recv(buffers *b, int g, bool exact, const char *what)
{
    if (!cuda_ok(cudaStreamSynchronize(stream), what)) return;
    if (!cuda_ok(cudaMemcpy(b->host, b->recv, sizeof(float) * b->n, cudaMemcpyDeviceToHost), what))
        return;
    size_t wrong = 0;
    for (size_t i = 0; i < b->n; i++) {
        float want = expected(g, i);
        double size = 0;
        for (int r = 0; r < P; r++) size += fabs(value(r + 1000 * g, i));
        bool same = exact ? memcmp(&b->host[i], &want, sizeof want) == 0
                          : fabs(b->host[i] - want) <= 2.0 * P * 0x1p-24 * size;
        if (!same && wrong++ < 3)
            fprintf(stderr, "  %s n=%zu i=%zu: %.9g, expected %.9g\n", what, b->n, i, b->host[i],
                    want);
    }
    DL_CHECK(wrong == 0, "%s of %zu values: %zu wrong", what, b->n, wrong);
    DL_CHECK(dl_nccl_check(NC) == DL_OK, "%s: %s", what, dl_errmsg());
}

static void check_length(size_t n)
{
    buffers b = {.n = n, .host = malloc(sizeof(float) * n)};
    if (!cuda_ok(cudaMalloc((void **)&b.send, sizeof(float) * n), "cudaMalloc") ||
        !cuda_ok(cudaMalloc((void **)&b.recv, sizeof(float) * n), "cudaMalloc") ||
        !cuda_ok(cudaMalloc((void **)&b.scratch, sizeof(float) * dl_nccl_scratch_floats(NC, n)),
                 "cudaMalloc"))
        goto done;

    if (upload_generation(&b, 0)) {
        DL_CHECK(dl_nccl_allreduce_sum(NC, b.send, b.recv, n, b.scratch, stream) == DL_OK,
                 "sum: %s", dl_errmsg());
        check_recv(&b, 0, true, "deterministic sum");
        DL_CHECK(dl_nccl_allreduce_sum_fast(NC, b.send, b.recv, n, stream) == DL_OK, "fast sum: %s",
                 dl_errmsg());
        check_recv(&b, 0, false, "ncclAllReduce");
    }

    /* Captured once, replayed on two generations of inputs. */
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    if (cuda_ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture")) {
        dl_status st = dl_nccl_allreduce_sum(NC, b.send, b.recv, n, b.scratch, stream);
        cudaError_t e = cudaStreamEndCapture(stream, &graph);
        DL_CHECK(st == DL_OK, "captured sum: %s", dl_errmsg());
        if (st == DL_OK && cuda_ok(e, "end capture") &&
            cuda_ok(cudaGraphInstantiate(&exec, graph, 0), "instantiate"))
            for (int g = 1; g <= 2; g++)
                if (upload_generation(&b, g) &&
                    cuda_ok(cudaMemsetAsync(b.recv, 0, sizeof(float) * n, stream), "memset") &&
                    cuda_ok(cudaGraphLaunch(exec, stream), "graph launch"))
                    check_recv(&b, g, true, "replayed sum");
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
done:
    cudaFree(b.send), cudaFree(b.recv), cudaFree(b.scratch);
    free(b.host);
}

static void test_sums(void)
{
    const size_t lengths[] = {1, 7, 1000, ((size_t)1 << 20) + 3};
    for (size_t t = 0; t < sizeof lengths / sizeof *lengths; t++) check_length(lengths[t]);
}

int main(int argc, char **argv)
{
    if (dl_comm_init(&argc, &argv, &C) != DL_OK) {
        fprintf(stderr, "test_nccl: %s\n", dl_errmsg());
        return 1;
    }
    R = dl_comm_rank(C), P = dl_comm_size(C);
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
    /* dl_nccl_create is a collective: every rank gets DL_E_NODEVICE where
     * any rank has no GPU of its own, and then every rank skips. */
    dl_status st = dl_nccl_create(C, devices > 0 ? dl_comm_device(C, devices) : 0, &NC);
    if (st == DL_E_NODEVICE) {
        if (R == 0) printf("test_nccl: skipped: %s\n", dl_errmsg());
        dl_comm_finalize(C);
        return DL_SKIP;
    }
    if (st != DL_OK || cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
        fprintf(stderr, "test_nccl: %s\n", dl_errmsg());
        dl_nccl_destroy(NC);
        dl_comm_finalize(C);
        return 1;
    }
    DL_RUN(test_sums);
    int rc = dl_t_ranks_summary(C, "test_nccl");
    cudaStreamDestroy(stream);
    dl_nccl_destroy(NC);
    dl_comm_finalize(C);
    return rc;
}
