/* Force-included (-include) into the CUDA backend's host code in the cuda-emu
 * build, ahead of everything else in the file.
 *
 * The real toolkit headers come first, so the host code sees CUDA's own
 * types, enum values and status codes; the emulation library
 * (tests/cuda_emu/src) defines the runtime, cuBLAS and cuSOLVER functions
 * under their real names. Each call the host code makes is then wrapped so
 * that the emulator knows its file:line: an error it reports (a copy past an
 * allocation's end, a library call whose operands leave their allocation)
 * names the line of the call, not a line inside the emulator.
 *
 * cuRAND is the exception to "real names": the real libcurand is linked too
 * (the CPU backend uses its host generator), so the emulated device
 * generator lives under dl_emu_curand* names and the calls are renamed here;
 * the two never interpose on each other.
 */
#ifndef DL_EMU_HOST_H
#define DL_EMU_HOST_H

#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cusolverDn.h>
#include <curand.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Records the file:line of the next emulated API call on this thread. */
void dl_emu_site(const char *file, int line);

curandStatus_t dl_emu_curandCreateGenerator(curandGenerator_t *generator, curandRngType_t type);
curandStatus_t dl_emu_curandDestroyGenerator(curandGenerator_t generator);
curandStatus_t dl_emu_curandSetStream(curandGenerator_t generator, cudaStream_t stream);
curandStatus_t dl_emu_curandSetPseudoRandomGeneratorSeed(curandGenerator_t generator,
                                                         unsigned long long seed);
curandStatus_t dl_emu_curandSetGeneratorOffset(curandGenerator_t generator,
                                               unsigned long long offset);
curandStatus_t dl_emu_curandGenerateUniform(curandGenerator_t generator, float *out, size_t n);
curandStatus_t dl_emu_curandGenerateNormal(curandGenerator_t generator, float *out, size_t n,
                                           float mean, float stddev);

#ifdef __cplusplus
}
#endif

#define DL_EMU_AT(fn, ...) (dl_emu_site(__FILE__, __LINE__), fn(__VA_ARGS__))

/* CUDA runtime */
#define cudaGetDeviceCount(...)        DL_EMU_AT(cudaGetDeviceCount, __VA_ARGS__)
#define cudaGetDevice(...)             DL_EMU_AT(cudaGetDevice, __VA_ARGS__)
#define cudaGetDeviceProperties(...)   DL_EMU_AT(cudaGetDeviceProperties, __VA_ARGS__)
#define cudaSetDevice(...)             DL_EMU_AT(cudaSetDevice, __VA_ARGS__)
#define cudaDeviceGetPCIBusId(...)     DL_EMU_AT(cudaDeviceGetPCIBusId, __VA_ARGS__)
#define cudaStreamIsCapturing(...)     DL_EMU_AT(cudaStreamIsCapturing, __VA_ARGS__)
#define cudaMalloc(...)                DL_EMU_AT(cudaMalloc, __VA_ARGS__)
#define cudaFree(...)                  DL_EMU_AT(cudaFree, __VA_ARGS__)
#define cudaMemGetInfo(...)            DL_EMU_AT(cudaMemGetInfo, __VA_ARGS__)
#define cudaMemcpy(...)                DL_EMU_AT(cudaMemcpy, __VA_ARGS__)
#define cudaMemcpyAsync(...)           DL_EMU_AT(cudaMemcpyAsync, __VA_ARGS__)
#define cudaMemsetAsync(...)           DL_EMU_AT(cudaMemsetAsync, __VA_ARGS__)
#define cudaStreamCreateWithFlags(...) DL_EMU_AT(cudaStreamCreateWithFlags, __VA_ARGS__)
#define cudaStreamDestroy(...)         DL_EMU_AT(cudaStreamDestroy, __VA_ARGS__)
#define cudaStreamSynchronize(...)     DL_EMU_AT(cudaStreamSynchronize, __VA_ARGS__)
#define cudaStreamQuery(...)           DL_EMU_AT(cudaStreamQuery, __VA_ARGS__)
#define cudaDeviceSynchronize(...)     DL_EMU_AT(cudaDeviceSynchronize, __VA_ARGS__)
#define cudaStreamBeginCapture(...)    DL_EMU_AT(cudaStreamBeginCapture, __VA_ARGS__)
#define cudaStreamEndCapture(...)      DL_EMU_AT(cudaStreamEndCapture, __VA_ARGS__)
#define cudaGraphInstantiate(...)      DL_EMU_AT(cudaGraphInstantiate, __VA_ARGS__)
#define cudaGraphLaunch(...)           DL_EMU_AT(cudaGraphLaunch, __VA_ARGS__)
#define cudaGraphExecDestroy(...)      DL_EMU_AT(cudaGraphExecDestroy, __VA_ARGS__)
#define cudaGraphDestroy(...)          DL_EMU_AT(cudaGraphDestroy, __VA_ARGS__)
#define cudaEventCreate(...)           DL_EMU_AT(cudaEventCreate, __VA_ARGS__)
#define cudaEventDestroy(...)          DL_EMU_AT(cudaEventDestroy, __VA_ARGS__)
#define cudaEventRecord(...)           DL_EMU_AT(cudaEventRecord, __VA_ARGS__)
#define cudaEventSynchronize(...)      DL_EMU_AT(cudaEventSynchronize, __VA_ARGS__)
#define cudaEventElapsedTime(...)      DL_EMU_AT(cudaEventElapsedTime, __VA_ARGS__)

/* cuBLAS: cublas_v2.h maps the unversioned names onto the _v2 entry points
 * with object-like macros; these replace them, keeping the same targets. */
#undef cublasCreate
#undef cublasDestroy
#undef cublasSetStream
#undef cublasSetPointerMode
#undef cublasSetWorkspace
#undef cublasSgemm
#define cublasCreate(...)              DL_EMU_AT(cublasCreate_v2, __VA_ARGS__)
#define cublasDestroy(...)             DL_EMU_AT(cublasDestroy_v2, __VA_ARGS__)
#define cublasSetStream(...)           DL_EMU_AT(cublasSetStream_v2, __VA_ARGS__)
#define cublasSetPointerMode(...)      DL_EMU_AT(cublasSetPointerMode_v2, __VA_ARGS__)
#define cublasSetWorkspace(...)        DL_EMU_AT(cublasSetWorkspace_v2, __VA_ARGS__)
#define cublasSetMathMode(...)         DL_EMU_AT(cublasSetMathMode, __VA_ARGS__)
#define cublasSgemm(...)               DL_EMU_AT(cublasSgemm_v2, __VA_ARGS__)
#define cublasSgemmStridedBatched(...) DL_EMU_AT(cublasSgemmStridedBatched, __VA_ARGS__)
#define cublasSgeam(...)               DL_EMU_AT(cublasSgeam, __VA_ARGS__)

/* cuSOLVER */
#define cusolverDnCreate(...)            DL_EMU_AT(cusolverDnCreate, __VA_ARGS__)
#define cusolverDnDestroy(...)           DL_EMU_AT(cusolverDnDestroy, __VA_ARGS__)
#define cusolverDnSetStream(...)         DL_EMU_AT(cusolverDnSetStream, __VA_ARGS__)
#define cusolverDnSgesvd_bufferSize(...) DL_EMU_AT(cusolverDnSgesvd_bufferSize, __VA_ARGS__)
#define cusolverDnSgesvd(...)            DL_EMU_AT(cusolverDnSgesvd, __VA_ARGS__)

/* cuRAND's device generator */
#define curandCreateGenerator(...)  DL_EMU_AT(dl_emu_curandCreateGenerator, __VA_ARGS__)
#define curandDestroyGenerator(...) DL_EMU_AT(dl_emu_curandDestroyGenerator, __VA_ARGS__)
#define curandSetStream(...)        DL_EMU_AT(dl_emu_curandSetStream, __VA_ARGS__)
#define curandSetPseudoRandomGeneratorSeed(...)                                                    \
    DL_EMU_AT(dl_emu_curandSetPseudoRandomGeneratorSeed, __VA_ARGS__)
#define curandSetGeneratorOffset(...) DL_EMU_AT(dl_emu_curandSetGeneratorOffset, __VA_ARGS__)
#define curandGenerateUniform(...)    DL_EMU_AT(dl_emu_curandGenerateUniform, __VA_ARGS__)
#define curandGenerateNormal(...)     DL_EMU_AT(dl_emu_curandGenerateNormal, __VA_ARGS__)

/* The emulated backend must never pass for the real one: its creator is
 * renamed here and wrapped by the emulator (src/runtime.cpp), which names
 * the backend "cuda-emu". */
#define dl_backend_cuda_create dl_emu_backend_cuda_create_inner
#define dl_cuda_build_words    dl_emu_cuda_build_words_inner

/* NCCL, stood in for by MPI (src/nccl.cpp), in the files built with
 * DL_EMU_NCCL (host/dist/nccl.c when MPI is found). */
#ifdef DL_EMU_NCCL
#include <nccl.h>
#define ncclGetUniqueId(...)       DL_EMU_AT(ncclGetUniqueId, __VA_ARGS__)
#define ncclCommInitRank(...)      DL_EMU_AT(ncclCommInitRank, __VA_ARGS__)
#define ncclAllGather(...)         DL_EMU_AT(ncclAllGather, __VA_ARGS__)
#define ncclAllReduce(...)         DL_EMU_AT(ncclAllReduce, __VA_ARGS__)
#define ncclCommGetAsyncError(...) DL_EMU_AT(ncclCommGetAsyncError, __VA_ARGS__)
#define ncclCommFinalize(...)      DL_EMU_AT(ncclCommFinalize, __VA_ARGS__)
#define ncclCommDestroy(...)       DL_EMU_AT(ncclCommDestroy, __VA_ARGS__)
#define ncclCommAbort(...)         DL_EMU_AT(ncclCommAbort, __VA_ARGS__)
#endif

#endif
