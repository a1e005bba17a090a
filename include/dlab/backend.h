/* The backend interface: everything a task may ask of a compute device.
 *
 * Tasks (factorise, mlp) are written once against this struct and never call
 * CUDA, cuBLAS or CBLAS themselves. Two implementations exist: "cpu"
 * (host/backends/backend_cpu.c: CBLAS, LAPACKE, OpenMP loops) and "cuda"
 * (host/backends/backend_cuda.c + kernels/: custom kernels, cuBLAS, cuSOLVER,
 * cuRAND on one stream).
 *
 * Conventions
 * - Buffers are device pointers obtained from alloc() (host pointers on the
 *   CPU backend). Tasks never dereference them; they move data with
 *   upload()/download().
 * - Matrices are float32 and row-major. gemm() has row-major semantics; the
 *   CUDA backend maps it onto column-major cuBLAS internally.
 * - Ops are asynchronous on the CUDA backend (one stream, in order); only
 *   download(), sync(), mem_info(), timer_stop() and graph_run() completion
 *   wait for the device.
 * - "batch" runs the same op over `batch` independent models laid out one
 *   after another; strides are in elements. A stride of 0 shares one operand
 *   among all models (e.g. the data matrix of a factorisation).
 * - Ops that reduce (sq_err, softmax_xent, col_sum) are deterministic: a
 *   fixed summation order, no floating-point atomics, so the same inputs give
 *   bit-identical outputs run after run. Partial sums are accumulated in
 *   double.
 * - Every op returns DL_OK or a failure status with a message (see status.h).
 */
#ifndef DLAB_BACKEND_H
#define DLAB_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "dlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_backend dl_backend;
typedef struct dl_graph dl_graph;

/* One epoch's worth of ops, issued against `be`. Captured once as a CUDA
 * graph and replayed on the CUDA backend; called directly on the CPU. It
 * must issue the same ops with the same arguments every time it is called:
 * anything that changes per epoch lives in device memory (see record()). */
typedef dl_status (*dl_epoch_fn)(dl_backend *be, void *ctx);

typedef enum { DL_OPTIM_SGD = 0, DL_OPTIM_MOMENTUM, DL_OPTIM_ADAM } dl_optim_kind;

typedef struct {
    dl_optim_kind kind;
    float lr;
    float momentum;     /* DL_OPTIM_MOMENTUM */
    float beta1, beta2; /* DL_OPTIM_ADAM */
    float eps;          /* DL_OPTIM_ADAM */
} dl_optim;

/* C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] for b < batch, row-major,
 * op(X) = X or X^T. op(A) is m x k, op(B) is k x n, C is m x n. Leading
 * dimensions are row strides of the stored (untransposed) matrices. */
typedef struct {
    bool trans_a, trans_b;
    int m, n, k;
    float alpha;
    const float *a;
    int lda;
    size_t stride_a;
    const float *b;
    int ldb;
    size_t stride_b;
    float beta;
    float *c;
    int ldc;
    size_t stride_c;
    int batch; /* >= 1 */
} dl_gemm_args;

struct dl_backend {
    const char *name; /* "cpu" or "cuda" */
    char device[160]; /* human-readable: CPU model and threads, or GPU name */
    /* Capability: many models run fastest as independent groups, one per host
     * thread, each on a backend of its own (the CPU). False where one launch
     * already covers every model of a batch (CUDA). */
    bool model_groups;
    void *impl;

    void (*destroy)(dl_backend *be);

    /* --- memory ------------------------------------------------------- */
    dl_status (*alloc)(dl_backend *be, size_t bytes, void **out); /* zeroed */
    void (*free)(dl_backend *be, void *p);                        /* NULL ok */
    dl_status (*upload)(dl_backend *be, void *dst, const void *src, size_t bytes);
    dl_status (*download)(dl_backend *be, void *dst, const void *src, size_t bytes);
    dl_status (*copy)(dl_backend *be, void *dst, const void *src, size_t bytes);
    dl_status (*fill)(dl_backend *be, float *x, size_t n, float value);
    /* Free and total memory this backend can allocate from, in bytes. */
    dl_status (*mem_info)(dl_backend *be, size_t *free_bytes, size_t *total_bytes);

    /* --- dense linear algebra ----------------------------------------- */
    dl_status (*gemm)(dl_backend *be, const dl_gemm_args *g);
    /* Thin SVD of the row-major m x n matrix A (not modified), p = min(m, n):
     * s[p] descending, u m x p row-major, vt p x n row-major. u or vt may be
     * NULL when not wanted. */
    dl_status (*svd)(dl_backend *be, int m, int n, const float *a, float *s, float *u, float *vt);

    /* --- random numbers (Philox4x32-10, identical on both backends) ----- */
    /* x[i] ~ U[0,1) (cuRAND's (0,1]); the sequence is that of a Philox
     * generator seeded with `seed` at stream offset `offset`. */
    dl_status (*rand_uniform)(dl_backend *be, float *x, size_t n, uint64_t seed, uint64_t offset);
    dl_status (*rand_normal)(dl_backend *be, float *x, size_t n, float mean, float stddev,
                             uint64_t seed, uint64_t offset);

    /* --- custom ops ----------------------------------------------------- */
    /* Residual and squared error, fused: for each model b,
     *   E[b] -= A[b]  and  sse[b] = sum_i E[b][i]^2,
     * with E[b] = e + b*n and A[b] = a + b*a_stride. */
    dl_status (*sq_err)(dl_backend *be, float *e, const float *a, size_t n, int batch,
                        size_t a_stride, float *sse);

    /* One optimiser step over n parameters: p -= f(g). `m` and `v` are the
     * optimiser's state (momentum: m only; adam: both; sgd: neither, may be
     * NULL). `t` is a device int32 step counter used by Adam: the op
     * increments it and uses the new value as the 1-based step number. */
    dl_status (*optim_step)(dl_backend *be, const dl_optim *opt, float *p, const float *g, float *m,
                            float *v, size_t n, int32_t *t);

    /* Y[b][r][c] += bias[b][c], then Y = relu(Y) if `relu`. Y[b] = y + b*rows*cols,
     * bias[b] = bias + b*bias_stride. */
    dl_status (*bias_act)(dl_backend *be, float *y, const float *bias, int rows, int cols,
                          int batch, size_t bias_stride, bool relu);

    /* dH[i] = dH[i] if H[i] > 0 else 0, for i < n (H is the ReLU output). */
    dl_status (*relu_bwd)(dl_backend *be, float *dh, const float *h, size_t n);

    /* Softmax cross-entropy, fused forward and backward, for each model b:
     *   logits[b] = logits + b*rows*classes, labels[b] = labels + b*label_stride,
     *   loss[b]   = mean over rows of -log softmax(row)[label],
     *   acc[b]    = fraction of rows whose argmax is the label,
     *   dlogits[b] (if not NULL) = (softmax - onehot) / rows.
     * loss or acc may be NULL; dlogits must not overlap logits. */
    dl_status (*softmax_xent)(dl_backend *be, const float *logits, const int32_t *labels, int rows,
                              int classes, int batch, size_t label_stride, float *dlogits,
                              float *loss, float *acc);

    /* out[b*out_stride + c] = sum_r G[b][r][c], G[b] = g + b*rows*cols. */
    dl_status (*col_sum)(dl_backend *be, const float *g, int rows, int cols, int batch, float *out,
                         size_t out_stride);

    /* Appends n values to a device-side history:
     *   hist[(*counter) * n + i] = vals[i]  for i < n;  then (*counter)++.
     * This is how an epoch records its metrics without a host round trip and
     * without any per-epoch argument (so the epoch can be graph-replayed). */
    dl_status (*record)(dl_backend *be, float *hist, const float *vals, int n, int32_t *counter);

    /* --- sync, timing, graphs ----------------------------------------- */
    dl_status (*sync)(dl_backend *be);
    /* Wall time of the device work between timer_start and timer_stop (CUDA
     * events on the GPU, a monotonic clock on the CPU). timer_stop waits. */
    dl_status (*timer_start)(dl_backend *be);
    dl_status (*timer_stop)(dl_backend *be, double *seconds);
    /* Records one call of fn(be, ctx) as a replayable graph (on CUDA the
     * call is captured, not executed). graph_run replays it `times` times
     * and returns once they are queued. */
    dl_status (*graph_create)(dl_backend *be, dl_epoch_fn fn, void *ctx, dl_graph **out);
    dl_status (*graph_run)(dl_backend *be, dl_graph *g, int times);
    void (*graph_free)(dl_backend *be, dl_graph *g);
};

typedef enum { DL_DEVICE_AUTO = 0, DL_DEVICE_CPU, DL_DEVICE_CUDA } dl_device;

/* Creates a backend. With DL_DEVICE_AUTO the CUDA backend is tried first;
 * when it cannot start, the CPU backend is used and `note` (if not NULL,
 * `note_len` bytes) receives one line saying why. DL_DEVICE_CUDA with no
 * usable GPU fails with DL_E_NODEVICE. */
dl_status dl_backend_create(dl_device dev, dl_backend **out, char *note, size_t note_len);
void dl_backend_destroy(dl_backend *be);
dl_status dl_device_parse(const char *s, dl_device *out);

dl_status dl_backend_cpu_create(dl_backend **out);
dl_status dl_backend_cuda_create(dl_backend **out); /* DL_E_NODEVICE without CUDA */
bool dl_have_cuda_build(void);

/* Convenience wrappers over gemm (packed leading dimensions, batch = 1). */
dl_status dl_matmul(dl_backend *be, bool ta, bool tb, int m, int n, int k, float alpha,
                    const float *a, const float *b, float beta, float *c);

#ifdef __cplusplus
}
#endif
#endif
