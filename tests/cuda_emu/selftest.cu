/* The emulator's own checks, each shown to fire (and to stay quiet on
 * correct code): races and divergent barriers, memory outside allocations,
 * host pointers in kernels, copies of the wrong kind, stale data without a
 * synchronisation, the capture rules, launch limits, and the libraries'
 * argument rules and results. A check that ends the program runs in a child
 * process whose stderr must carry the expected report.
 *
 * CUDA code compiled only by the cuda-emu build (its launches rewritten and
 * the emulator's prelude forced in, like kernels/).
 */
#include "dl_emu_asan.h" /* ASan's reports replace the emulator's own */
#include "dl_emu_host.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

static int passed, failed;

static void check(bool ok, const char *what)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    (ok ? passed : failed)++;
}

/* Runs fn in a child; true when the child died and its stderr holds `want`
 * (one of the '|'-separated alternatives). */
static bool dies_with(void (*fn)(), const char *want)
{
    fflush(stdout);
    fflush(stderr);
    int fd[2];
    if (pipe(fd)) return false;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        fn();
        fflush(stderr);
        _exit(0);
    }
    close(fd[1]);
    std::string err;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) err.append(buf, (size_t)n);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool died = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    bool said = false;
    std::string alts = want;
    for (size_t a = 0, b; a <= alts.size(); a = b + 1) {
        b = alts.find('|', a);
        if (b == std::string::npos) b = alts.size();
        said |= err.find(alts.substr(a, b - a)) != std::string::npos;
    }
    if (!died || !said) fprintf(stderr, "  child (died %d) said: %s\n", (int)died, err.c_str());
    return died && said;
}

template <class T> static T *device(size_t n)
{
    void *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) abort();
    return (T *)p;
}

/* --- kernels --------------------------------------------------------------- */

__global__ void neighbour_kernel(float *out, bool sync)
{
    __shared__ float s[256];
    s[threadIdx.x] = (float)threadIdx.x;
    if (sync) __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 1) % 256];
}

__global__ void divergent_kernel(float *out)
{
    if (threadIdx.x < 128) __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void late_barrier_kernel(float *out)
{
    out[threadIdx.x] = 1.0f;
    if (threadIdx.x == 200) __syncthreads();
}

__global__ void fill_kernel(float *x, size_t n)
{
    for (size_t i = threadIdx.x; i <= n; i += blockDim.x) x[i] = 1.0f; /* one too many */
}

__global__ void store_kernel(float *x, float v) { x[threadIdx.x] = v; }

__global__ void count_kernel(int *c)
{
    if (threadIdx.x == 0) *c += 1;
}

/* --- kernels: schedules and barriers ----------------------------------------- */

static void race()
{
    neighbour_kernel<<<1, 256>>>(device<float>(256), false), cudaDeviceSynchronize();
}
static void divergent()
{
    divergent_kernel<<<1, 256>>>(device<float>(256)), cudaDeviceSynchronize();
}
static void late_barrier()
{
    late_barrier_kernel<<<1, 256>>>(device<float>(256)), cudaDeviceSynchronize();
}

static void test_kernels()
{
    check(dies_with(race, "depends on the order the threads run in"),
          "a read of another thread's shared write without a barrier is reported");
    float *d = device<float>(256), h[256];
    neighbour_kernel<<<1, 256>>>(d, true);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    bool right = true;
    for (int i = 0; i < 256; i++) right &= h[i] == (float)((i + 1) % 256);
    check(right, "with the barrier, every schedule gives the right result");
    check(dies_with(divergent, "wait at different barriers"),
          "a barrier reached by half the block is reported");
    check(dies_with(late_barrier, "wait at different barriers"),
          "a barrier reached by one thread after others finished is reported");
    cudaFree(d);
}

/* --- memory ---------------------------------------------------------------- */

static void past_guard() /* 64 floats end on a page: the next one faults */
{
    fill_kernel<<<1, 32>>>(device<float>(64), 64), cudaDeviceSynchronize();
}
static void past_slack() /* 60 floats: the next one lands in the slack */
{
    fill_kernel<<<1, 32>>>(device<float>(60), 60), cudaDeviceSynchronize();
}
static void host_pointer()
{
    static float h[256];
    store_kernel<<<1, 256>>>(h, 1.0f);
}
static void copy_wrong_kind()
{
    float *a = device<float>(4), *b = device<float>(4);
    cudaMemcpy(a, b, 16, cudaMemcpyHostToDevice);
}
static void copy_past_end()
{
    float *a = device<float>(4), h[8] = {0};
    cudaMemcpy(a, h, sizeof h, cudaMemcpyHostToDevice);
}
static void use_after_free()
{
    float *a = device<float>(4);
    cudaFree(a);
    store_kernel<<<1, 4>>>(a, 1.0f);
}

static void test_memory()
{
    /* Under ASan its report stands for both of the emulator's. */
#ifdef DL_EMU_ASAN
    const char *oob = "heap-buffer-overflow", *slack = oob;
#else
    const char *oob = "invalid memory access: 0x", *slack = "wrote past the end of allocation";
#endif
    check(dies_with(past_guard, oob), "a kernel writing past an allocation's page is reported");
    check(dies_with(past_slack, slack), "a kernel writing just past an allocation is reported");
    check(dies_with(host_pointer, "is not device memory"),
          "a host pointer passed to a kernel is reported");
    check(dies_with(copy_wrong_kind, "the source is device memory"),
          "a copy of the wrong kind is reported");
    check(dies_with(copy_past_end, "past the end of allocation"),
          "a copy past an allocation's end is reported");
    check(dies_with(use_after_free, "is inside freed allocation"),
          "a freed allocation passed to a kernel is reported");
}

/* --- streams, events, graphs ---------------------------------------------- */

static void test_streams()
{
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    float *d = device<float>(256), h[256];
    for (float &x : h) x = -1.0f;
    store_kernel<<<1, 256, 0, s>>>(d, 7.0f);
    cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, s);
    check(h[0] == -1.0f, "queued work has not run before a synchronisation (stale data shows)");
    cudaStreamSynchronize(s);
    check(h[0] == 7.0f && h[255] == 7.0f, "it has run after cudaStreamSynchronize");

    cudaEvent_t a, b;
    cudaEventCreate(&a), cudaEventCreate(&b);
    cudaEventRecord(a, s);
    store_kernel<<<1, 256, 0, s>>>(d, 1.0f);
    cudaEventRecord(b, s);
    float ms = -1;
    check(cudaEventElapsedTime(&ms, a, b) == cudaErrorNotReady,
          "cudaEventElapsedTime before the events ran: cudaErrorNotReady");
    cudaEventSynchronize(b);
    check(cudaEventElapsedTime(&ms, a, b) == cudaSuccess && ms >= 0,
          "cudaEventElapsedTime after cudaEventSynchronize");
    cudaEventDestroy(a), cudaEventDestroy(b);

    /* Capture: work is recorded, not run; replays run it again. */
    int *c = device<int>(1), hc = -1;
    cudaMemsetAsync(c, 0, sizeof(int), s);
    cudaGraph_t g = nullptr;
    cudaGraphExec_t e = nullptr;
    check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess,
          "cudaStreamBeginCapture");
    count_kernel<<<1, 32, 0, s>>>(c);
    check(cudaStreamEndCapture(s, &g) == cudaSuccess && g, "cudaStreamEndCapture gives a graph");
    check(cudaGraphInstantiate(&e, g, 0) == cudaSuccess, "cudaGraphInstantiate");
    for (int i = 0; i < 3; i++) cudaGraphLaunch(e, s);
    cudaMemcpyAsync(&hc, c, sizeof hc, cudaMemcpyDeviceToHost, s);
    cudaStreamSynchronize(s);
    check(hc == 3, "three replays of a captured launch ran it three times (not the capture)");
    cudaGraphExecDestroy(e), cudaGraphDestroy(g);

    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    void *p = nullptr;
    check(cudaMalloc(&p, 16) == cudaErrorStreamCaptureUnsupported,
          "cudaMalloc during capture: cudaErrorStreamCaptureUnsupported");
    g = (cudaGraph_t)1;
    check(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated && !g,
          "... and the capture is invalidated");
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    check(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported,
          "cudaStreamSynchronize during capture: cudaErrorStreamCaptureUnsupported");
    check(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated,
          "... and the capture is invalidated");
    (void)cudaGetLastError();

    store_kernel<<<1, 1025, 0, s>>>(d, 1.0f);
    check(cudaGetLastError() == cudaErrorInvalidConfiguration,
          "1025 threads per block: cudaErrorInvalidConfiguration");
    store_kernel<<<dim3(1, 65536), 1, 0, s>>>(d, 1.0f);
    check(cudaGetLastError() == cudaErrorInvalidConfiguration,
          "grid y of 65536: cudaErrorInvalidConfiguration");
    store_kernel<<<1, dim3(1, 1, 65), 0, s>>>(d, 1.0f);
    check(cudaGetLastError() == cudaErrorInvalidConfiguration,
          "block z of 65: cudaErrorInvalidConfiguration");
    check(cudaGetLastError() == cudaSuccess, "cudaGetLastError clears the error");
    cudaFree(d), cudaFree(c);
    cudaStreamDestroy(s);
}

/* --- libraries ------------------------------------------------------------- */

static void gemm_operand_too_small()
{
    cublasHandle_t h;
    cublasCreate(&h);
    float *a = device<float>(3), *b = device<float>(4), *c = device<float>(4), one = 1, zero = 0;
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a, 2, b, 2, &zero, c, 2);
}

static void test_blas()
{
    cublasHandle_t h;
    cublasCreate(&h);
    float one = 1, zero = 0;
    float *a = device<float>(6), *b = device<float>(6), *c = device<float>(4);
    const float ha[6] = {1, 2, 3, 4, 5, 6}; /* column-major 2x3 */
    const float hb[6] = {1, 0, 0, 1, 1, 1}; /* column-major 3x2 */
    cudaMemcpy(a, ha, sizeof ha, cudaMemcpyHostToDevice);
    cudaMemcpy(b, hb, sizeof hb, cudaMemcpyHostToDevice);
    float nan4[4] = {NAN, NAN, NAN, NAN}, hc[4];
    cudaMemcpy(c, nan4, sizeof nan4, cudaMemcpyHostToDevice);
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 2, b, 3, &zero, c, 2) ==
              CUBLAS_STATUS_SUCCESS,
          "cublasSgemm 2x3 by 3x2");
    cudaMemcpy(hc, c, sizeof hc, cudaMemcpyDeviceToHost);
    /* A B, column-major: [1 3 5; 2 4 6] [1 1; 0 1; 0 1] = [1 9; 2 12]. */
    check(hc[0] == 1 && hc[1] == 2 && hc[2] == 9 && hc[3] == 12,
          "column-major product; C's NaNs not read with beta 0");
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 1, b, 3, &zero, c, 2) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "lda < m: CUBLAS_STATUS_INVALID_VALUE");
    check(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, 3, &one, a, 2, b, 3, &zero, c, 2) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "transposed A with lda < k: CUBLAS_STATUS_INVALID_VALUE");
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 2, 3, &one, a, 2, b, 3, &zero, c, 2) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "m < 0: CUBLAS_STATUS_INVALID_VALUE");
    check(cublasSgemm(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 2, b, 3, &zero, c, 2) ==
              CUBLAS_STATUS_NOT_INITIALIZED,
          "no handle: CUBLAS_STATUS_NOT_INITIALIZED");
    check(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 3, &one, a, 2, 0, b, 3, 0,
                                    &zero, c, 2, 0, -1) == CUBLAS_STATUS_INVALID_VALUE,
          "a negative batch count: CUBLAS_STATUS_INVALID_VALUE");
    check(dies_with(gemm_operand_too_small, "operand A of cublasSgemm_v2 (2x2, ld 2)"),
          "an operand whose extent leaves its allocation is reported");

    /* geam: the transpose the SVD uses, B NULL and beta 0. */
    float *t = device<float>(6), ht[6];
    check(cublasSgeam(h, CUBLAS_OP_T, CUBLAS_OP_N, 3, 2, &one, a, 2, &zero, nullptr, 3, t, 3) ==
              CUBLAS_STATUS_SUCCESS,
          "cublasSgeam transpose with B NULL and beta 0");
    cudaMemcpy(ht, t, sizeof ht, cudaMemcpyDeviceToHost);
    check(ht[0] == 1 && ht[1] == 3 && ht[2] == 5 && ht[3] == 2 && ht[5] == 6,
          "cublasSgeam transposes");
    check(cublasSgeam(h, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, &one, c, 2, &zero, nullptr, 2, c, 2) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "cublasSgeam in place with A transposed: CUBLAS_STATUS_INVALID_VALUE");
    cublasDestroy(h);
    cudaFree(a), cudaFree(b), cudaFree(c), cudaFree(t);
}

static void test_solver()
{
    cusolverDnHandle_t h;
    cusolverDnCreate(&h);
    int lwork = 0;
    check(cusolverDnSgesvd_bufferSize(h, 3, 2, &lwork) == CUSOLVER_STATUS_SUCCESS && lwork > 0,
          "cusolverDnSgesvd_bufferSize");
    check(cusolverDnSgesvd_bufferSize(h, 2, 3, &lwork) == CUSOLVER_STATUS_INVALID_VALUE,
          "bufferSize with m < n: CUSOLVER_STATUS_INVALID_VALUE");
    cusolverDnSgesvd_bufferSize(h, 3, 2, &lwork);
    float *a = device<float>(6), *s = device<float>(2), *u = device<float>(6),
          *vt = device<float>(4);
    float *w = device<float>((size_t)lwork);
    int *info = device<int>(1), hinfo = -99;
    const float ha[6] = {3, 0, 0, 0, 2, 0}; /* column-major 3x2: singular values 3, 2 */
    cudaMemcpy(a, ha, sizeof ha, cudaMemcpyHostToDevice);
    check(cusolverDnSgesvd(h, 'N', 'N', 2, 3, a, 2, s, u, 2, vt, 3, w, lwork, nullptr, info) ==
              CUSOLVER_STATUS_INVALID_VALUE,
          "gesvd with m < n: CUSOLVER_STATUS_INVALID_VALUE");
    check(cusolverDnSgesvd(h, 'S', 'A', 3, 2, a, 3, s, u, 3, vt, 2, w, 1, nullptr, info) ==
              CUSOLVER_STATUS_INVALID_VALUE,
          "gesvd with too small a workspace: CUSOLVER_STATUS_INVALID_VALUE");
    check(cusolverDnSgesvd(h, 'X', 'A', 3, 2, a, 3, s, u, 3, vt, 2, w, lwork, nullptr, info) ==
              CUSOLVER_STATUS_INVALID_VALUE,
          "gesvd with jobu 'X': CUSOLVER_STATUS_INVALID_VALUE");
    check(cusolverDnSgesvd(h, 'S', 'A', 3, 2, a, 3, s, u, 3, vt, 2, w, lwork, nullptr, info) ==
              CUSOLVER_STATUS_SUCCESS,
          "gesvd 3x2");
    float hs[2] = {0, 0};
    cudaMemcpy(hs, s, sizeof hs, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hinfo, info, sizeof hinfo, cudaMemcpyDeviceToHost);
    check(hinfo == 0 && fabsf(hs[0] - 3) < 1e-6f && fabsf(hs[1] - 2) < 1e-6f,
          "singular values 3, 2 and devInfo 0 in device memory");
    cusolverDnDestroy(h);
    cudaFree(a), cudaFree(s), cudaFree(u), cudaFree(vt), cudaFree(w), cudaFree(info);
}

static void test_rand()
{
    curandGenerator_t dev, host;
    check(curandCreateGenerator(&dev, CURAND_RNG_PSEUDO_PHILOX4_32_10) == CURAND_STATUS_SUCCESS,
          "curandCreateGenerator (device)");
    (curandCreateGeneratorHost)(&host, CURAND_RNG_PSEUDO_PHILOX4_32_10);
    float *d = device<float>(101), hd[101], hh[101];
    curandSetPseudoRandomGeneratorSeed(dev, 5);
    curandSetGeneratorOffset(dev, 3);
    curandGenerateUniform(dev, d, 101);
    (curandSetPseudoRandomGeneratorSeed)(host, 5);
    (curandSetGeneratorOffset)(host, 3);
    (curandGenerateUniform)(host, hh, 101);
    cudaMemcpy(hd, d, sizeof hd, cudaMemcpyDeviceToHost);
    check(memcmp(hd, hh, sizeof hd) == 0,
          "the device generator gives the host generator's numbers");
    check(curandGenerateNormal(dev, d, 101, 0.0f, 1.0f) == CURAND_STATUS_LENGTH_NOT_MULTIPLE,
          "an odd count of normals: CURAND_STATUS_LENGTH_NOT_MULTIPLE");
    curandDestroyGenerator(dev);
    (curandDestroyGenerator)(host);
    cudaFree(d);
}

int main()
{
    test_kernels();
    test_memory();
    test_streams();
    test_blas();
    test_solver();
    test_rand();
    printf("cuda_emu_selftest: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
