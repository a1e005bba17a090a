/* Shared by the CUDA backend's files: backend_cuda.c (memory, custom ops,
 * timing, graphs, creation) and backend_cuda_libs.c (the library calls:
 * cuBLAS gemm, cuSOLVER SVD, cuRAND fills). */
#ifndef DLAB_BACKEND_CUDA_H
#define DLAB_BACKEND_CUDA_H

#include "dlab/backend.h"

#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cusolverDn.h>
#include <curand.h>

typedef struct {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;
    cusolverDnHandle_t solver;
    curandGenerator_t rng;
    double *scratch;
    size_t scratch_len; /* doubles */
    cudaEvent_t timer_begin, timer_end;
    struct dl_nccl *nccl; /* the sums over ranks (NULL: one rank, or none possible) */
    float *sum_scratch;   /* the ranks' vectors side by side, sum_floats floats */
    size_t sum_floats;
} cuda_impl;

/* Each turns a failed call into DL_E_RUNTIME with the call's text and the
 * library's error name, recorded at file:line, and clears the runtime's
 * "last error" slot (the kernel launchers read that slot after each launch,
 * so an old failure must not be blamed on a later launch). */
dl_status dl_cuda_check(cudaError_t err, const char *call, const char *file, int line);
dl_status dl_cublas_check(cublasStatus_t s, const char *call, const char *file, int line);
dl_status dl_cusolver_check(cusolverStatus_t s, const char *call, const char *file, int line);
dl_status dl_curand_check(curandStatus_t s, const char *call, const char *file, int line);

#define CUDA_CHECK(call)     dl_cuda_check((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call)   dl_cublas_check((call), #call, __FILE__, __LINE__)
#define CUSOLVER_CHECK(call) dl_cusolver_check((call), #call, __FILE__, __LINE__)
#define CURAND_CHECK(call)   dl_curand_check((call), #call, __FILE__, __LINE__)
#define CUDA_TRY(call)       DL_TRY(CUDA_CHECK(call))
#define CUBLAS_TRY(call)     DL_TRY(CUBLAS_CHECK(call))
#define CUSOLVER_TRY(call)   DL_TRY(CUSOLVER_CHECK(call))
#define CURAND_TRY(call)     DL_TRY(CURAND_CHECK(call))

/* cudaMalloc with an out-of-memory message (DL_E_MEMORY) that says what the
 * memory was for, how much was asked for and how much the device has left.
 * *out is NULL after a failure. */
dl_status dl_cuda_malloc(const char *what, size_t bytes, void **out);

/* The library-backed ops (backend_cuda_libs.c). */
dl_status dl_cuda_gemm(dl_backend *be, const dl_gemm_args *g);
dl_status dl_cuda_svd(dl_backend *be, int m, int n, const float *a, float *s, float *u, float *vt);
dl_status dl_cuda_rand_uniform(dl_backend *be, float *x, size_t n, uint64_t seed, uint64_t offset);
dl_status dl_cuda_rand_normal(dl_backend *be, float *x, size_t n, float mean, float stddev,
                              uint64_t seed, uint64_t offset);

#endif
