/* The backend interface: everything a task may ask of a compute device.
 *
 * Tasks (factorise, mlp) and the benchmark are written once against the
 * dl_<op>() functions below and never call CUDA, cuBLAS or CBLAS themselves.
 * Each dl_<op>(be, ...) checks its arguments against the op's contract,
 * once for every backend, and then calls the backend's implementation
 * through the function table in struct dl_backend (ggml's
 * ggml_backend_* functions over ggml_backend_i are the model). Two
 * implementations exist: "cpu" (host/backends/backend_cpu*.c: CBLAS, LAPACKE,
 * OpenMP loops) and "cuda" (host/backends/backend_cuda*.c + kernels/: custom
 * kernels, cuBLAS, cuSOLVER, cuRAND on one stream).
 *
 * Conventions shared by every op
 * - Buffers are device pointers obtained from dl_alloc() (host pointers on
 *   the CPU backend). Tasks never dereference them; they move data with
 *   dl_upload()/dl_download().
 * - Matrices are float32 and row-major. dl_gemm() has row-major semantics;
 *   the CUDA backend maps it onto column-major cuBLAS internally.
 * - Ops are asynchronous on the CUDA backend (one stream, in order). The
 *   ones that wait for the device are dl_download(), dl_sync() and
 *   dl_timer_stop(), and, outside the epoch loop, dl_alloc(), dl_svd(),
 *   dl_graph_free() and dl_rand_normal() of an odd count.
 * - "batch" runs the same op over `batch` (>= 1) independent models laid out
 *   one after another; strides are in elements. A stride of 0 shares one
 *   input operand among all models (e.g. the data matrix of a
 *   factorisation); outputs of different models must not overlap.
 * - Ops that reduce (residual_sse, softmax_xent, col_sum) are deterministic:
 *   a fixed summation order, no floating-point atomics, so the same inputs
 *   give bit-identical outputs run after run. Partial sums are accumulated
 *   in double.
 * - Data values are never checked (that would need a round trip to the
 *   device): NaN and Inf propagate as IEEE arithmetic makes them, and a
 *   training loop sees them in its recorded metrics.
 * - An empty op (a zero size or count where the contract allows one) does
 *   nothing, touches no pointer and returns DL_OK; pointers may then be NULL.
 *
 * Failures
 * - A call that breaks its op's contract (NULL backend, NULL pointer where
 *   data is needed, negative or overflowing shape, leading dimension or
 *   stride too small, bad optimiser setting...) does nothing and returns
 *   DL_E_RUNTIME; dl_errmsg() then reads "dl_<op>: " followed by the bad
 *   value. Such a call is a bug in the caller, which is why it is a runtime
 *   failure (exit 1) rather than a usage error.
 * - Running out of memory in dl_alloc() (or in an op that needs temporary
 *   memory: dl_svd(), dl_rand_normal(), dl_graph_create()) returns
 *   DL_E_MEMORY.
 * - A failed library or device call returns DL_E_RUNTIME with the call and
 *   the library's error name. On the CUDA backend a kernel fault may only
 *   surface at the next call that waits for the device.
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
typedef struct dl_fused_factorise_args dl_fused_factorise_args; /* see dl_fused_factorise() */
typedef struct dl_fused_mlp_args dl_fused_mlp_args;             /* see dl_fused_mlp() */

/* One epoch's worth of ops, issued against `be`. Captured once as a CUDA
 * graph and replayed on the CUDA backend; called directly on the CPU. It
 * must issue the same ops with the same arguments every time it is called:
 * anything that changes per epoch lives in device memory (see dl_record()). */
typedef dl_status (*dl_epoch_fn)(dl_backend *be, void *ctx);

typedef enum { DL_OPTIM_SGD = 0, DL_OPTIM_MOMENTUM, DL_OPTIM_ADAM } dl_optim_kind;

/* An optimiser and its hyperparameters. Only the fields of `kind` are read
 * (and checked, see dl_optim_step()). */
typedef struct {
    dl_optim_kind kind;
    float lr;           /* > 0, finite */
    float momentum;     /* DL_OPTIM_MOMENTUM: in [0, 1) */
    float beta1, beta2; /* DL_OPTIM_ADAM: each in [0, 1) */
    float eps;          /* DL_OPTIM_ADAM: > 0, finite */
} dl_optim;

/* C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b] for b < batch, row-major,
 * op(X) = X or X^T. op(A) is m x k, op(B) is k x n, C is m x n. Leading
 * dimensions are row strides of the stored (untransposed) matrices.
 * A[b] = a + b*stride_a, and likewise for B and C. See dl_gemm(). */
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

/* A backend: its name, its capabilities and the table of its ops.
 *
 * The table is what a backend implements; callers use the dl_<op>()
 * functions, never the table. Each member takes the backend and then the
 * same arguments, in the same order, as its dl_<op>() function, and may
 * assume they passed dl_<op>()'s checks: no NULL where data is needed, no
 * empty op (dl_<op>() returns before calling it), shapes and strides that
 * fit. The contract of each op is written once, at its dl_<op>() below. */
struct dl_backend {
    const char *name; /* "cpu" or "cuda" */
    char device[160]; /* human-readable: CPU model and threads, or GPU name */
    /* Capability: many models run fastest as independent groups, one per host
     * thread, each on a backend of its own (the CPU). False where one launch
     * already covers every model of a batch (CUDA). */
    bool model_groups;
    /* Capability: the buffers dl_alloc() returns are host memory, so a task's
     * host copies and the backend's buffers draw on one budget (the CPU). */
    bool host_memory;
    void *impl;
    /* Set by dl_timer_start(), cleared by dl_timer_stop(); backends leave it. */
    bool timer_running;
    /* The ranks dl_allreduce_sum() sums over (dlab/comm.h); NULL: this
     * process alone. Set by the program after creating the backend. */
    struct dl_comm *comm;

    void (*destroy)(dl_backend *be);

    /* --- memory ------------------------------------------------------- */
    dl_status (*alloc)(dl_backend *be, size_t bytes, void **out);
    void (*free)(dl_backend *be, void *p);
    dl_status (*upload)(dl_backend *be, void *dst, const void *src, size_t bytes);
    dl_status (*download)(dl_backend *be, void *dst, const void *src, size_t bytes);
    dl_status (*copy)(dl_backend *be, void *dst, const void *src, size_t bytes);
    dl_status (*fill)(dl_backend *be, float *x, size_t n, float value);
    dl_status (*mem_info)(dl_backend *be, size_t *free_bytes, size_t *total_bytes);

    /* --- dense linear algebra ----------------------------------------- */
    dl_status (*gemm)(dl_backend *be, const dl_gemm_args *g);
    dl_status (*svd)(dl_backend *be, int m, int n, const float *a, float *s, float *u, float *vt);

    /* --- random numbers ------------------------------------------------- */
    dl_status (*rand_uniform)(dl_backend *be, float *x, size_t n, uint64_t seed, uint64_t offset);
    dl_status (*rand_normal)(dl_backend *be, float *x, size_t n, float mean, float stddev,
                             uint64_t seed, uint64_t offset);

    /* --- custom ops ----------------------------------------------------- */
    dl_status (*residual_sse)(dl_backend *be, float *e, const float *a, size_t n, int batch,
                              size_t a_stride, float *sse);
    dl_status (*optim_step)(dl_backend *be, const dl_optim *opt, float *p, const float *g, float *m,
                            float *v, size_t n, int32_t *t);
    dl_status (*bias_act)(dl_backend *be, float *y, const float *bias, int rows, int cols,
                          int batch, size_t bias_stride, bool relu);
    dl_status (*relu_bwd)(dl_backend *be, float *dh, const float *h, size_t n);
    dl_status (*softmax_xent)(dl_backend *be, const float *logits, const int32_t *labels, int rows,
                              int classes, int batch, size_t label_stride, float *dlogits,
                              float *loss, float *acc);
    dl_status (*col_sum)(dl_backend *be, const float *g, int rows, int cols, int batch, float *out,
                         size_t out_stride);
    dl_status (*record)(dl_backend *be, float *hist, const float *vals, int n, int32_t *counter);
    dl_status (*allreduce_sum)(dl_backend *be, float *x, size_t n);
    /* Prepares allreduce_sum over be->comm (a collective over its ranks),
     * or leaves it NULL and says why in sum_note; see
     * dl_backend_join_ranks(). NULL: nothing to prepare. */
    dl_status (*join_ranks)(dl_backend *be);
    char sum_note[224]; /* why dl_allreduce_sum cannot run on several ranks ("" if it can) */

    /* --- fused training (NULL when the backend has none) --------------- */
    size_t (*fused_limit)(dl_backend *be); /* bytes of a model's working set it accepts */
    dl_status (*fused_factorise)(dl_backend *be, const dl_fused_factorise_args *args);
    dl_status (*fused_mlp)(dl_backend *be, const dl_fused_mlp_args *args);
    /* Whether a fitting m x n rank-k factorisation is expected to train
     * faster fused than on the general path (NULL: whenever it fits). */
    bool (*fused_factorise_pays)(dl_backend *be, int m, int n, int k);

    /* --- sync, timing, graphs ----------------------------------------- */
    dl_status (*sync)(dl_backend *be);
    dl_status (*timer_start)(dl_backend *be);
    dl_status (*timer_stop)(dl_backend *be, double *seconds);
    dl_status (*graph_create)(dl_backend *be, dl_epoch_fn fn, void *ctx, dl_graph **out);
    dl_status (*graph_run)(dl_backend *be, dl_graph *g, int times);
    void (*graph_free)(dl_backend *be, dl_graph *g);
};

/* --- memory ---------------------------------------------------------- */

/* A zeroed buffer of `bytes` bytes at *out (64-byte aligned on the CPU,
 * 256-byte on the GPU). bytes == 0 gives *out = NULL and DL_OK. *out is NULL
 * after any failure. Errors: out NULL (DL_E_RUNTIME); not enough memory
 * (DL_E_MEMORY, with the size asked for and, on the GPU, what is free). */
dl_status dl_alloc(dl_backend *be, size_t bytes, void **out);

/* Frees a buffer from dl_alloc() of the same backend. p == NULL (or be ==
 * NULL) does nothing. On the CUDA backend queued work that still uses p must
 * have finished (dl_sync()). */
void dl_free(dl_backend *be, void *p);

/* Copies `bytes` bytes from host memory src to the buffer dst. The caller
 * may reuse src as soon as it returns. dst and src must not be NULL unless
 * bytes == 0. */
dl_status dl_upload(dl_backend *be, void *dst, const void *src, size_t bytes);

/* Copies `bytes` bytes from the buffer src to host memory dst, waiting for
 * all queued work first. dst and src must not be NULL unless bytes == 0. */
dl_status dl_download(dl_backend *be, void *dst, const void *src, size_t bytes);

/* Copies `bytes` bytes between two buffers of the backend. dst and src must
 * not be NULL unless bytes == 0, and the two ranges must not overlap
 * (DL_E_RUNTIME). */
dl_status dl_copy(dl_backend *be, void *dst, const void *src, size_t bytes);

/* x[i] = value for i < n. x must not be NULL unless n == 0; n floats must be
 * addressable (n * sizeof(float) must not overflow). */
dl_status dl_fill(dl_backend *be, float *x, size_t n, float value);

/* Free and total memory this backend can allocate from, in bytes (the
 * host's MemAvailable and physical memory on the CPU; cudaMemGetInfo on the
 * GPU). Either pointer may be NULL. */
dl_status dl_mem_info(dl_backend *be, size_t *free_bytes, size_t *total_bytes);

/* The host's memory in bytes: available is MemAvailable from /proc/meminfo
 * (what can be allocated without swapping; the total where that file is not
 * readable), total the physical memory (sysconf). Either pointer may be
 * NULL. */
void dl_host_mem_info(size_t *available_bytes, size_t *total_bytes);

/* --- dense linear algebra ------------------------------------------- */

/* Batched row-major GEMM as described at dl_gemm_args. Checks, each failing
 * with DL_E_RUNTIME: g not NULL; m, n, k >= 0; batch >= 1; lda >= the
 * stored A's column count (k, or m when trans_a) and >= 1, likewise ldb
 * (n, or k when trans_b) and ldc (n); strides at most PTRDIFF_MAX; with
 * batch > 1, stride_c at least one C's extent ((m - 1) * ldc + n) so that
 * models do not write over each other; a, b not NULL when k > 0 and c not
 * NULL. m == 0 or n == 0 is an empty op. k == 0 gives C = beta * C. With
 * beta == 0 C's old contents are not read (NaN there does not propagate).
 * C must not overlap A or B (not checked). Float32 arithmetic: OpenBLAS or
 * a register-resident loop for small products on the CPU, cuBLAS without
 * TF32 on the GPU. */
dl_status dl_gemm(dl_backend *be, const dl_gemm_args *g);

/* Thin SVD of the row-major m x n matrix A (not modified), p = min(m, n):
 * s[p] descending, u m x p row-major, vt p x n row-major (LAPACK's sgesvd on
 * the CPU, or its one-sided Jacobi reference without LAPACKE; cuSOLVER's
 * gesvd on the GPU). u or vt may be NULL when not wanted; a and s must not
 * be NULL. m, n >= 0 (m == 0 or n == 0 is an empty op). Waits for the
 * device. Errors: DL_E_MEMORY for the workspace, DL_E_RUNTIME when the
 * solver fails or does not converge. */
dl_status dl_svd(dl_backend *be, int m, int n, const float *a, float *s, float *u, float *vt);

/* --- random numbers (Philox4x32-10, identical on both backends) ------ */

/* x[i] ~ U(0,1] (cuRAND's convention) for i < n: the values at positions
 * offset .. offset + n - 1 of the Philox4x32-10 stream seeded with `seed`,
 * so a call depends only on (seed, offset) and the CPU (cuRAND's host
 * generator) gives the GPU's numbers bit for bit. A CPU-only build without
 * the CUDA toolkit falls back on dl_rng (splitmix64, dlab/rng.h): the same
 * distributions, other numbers. x must not be NULL unless n == 0. */
dl_status dl_rand_uniform(dl_backend *be, float *x, size_t n, uint64_t seed, uint64_t offset);

/* x[i] ~ N(mean, stddev^2) for i < n, by cuRAND's Box-Muller over the same
 * stream as dl_rand_uniform() (normals come in pairs: an odd n draws one
 * more and drops it). mean must be finite and stddev finite and >= 0
 * (DL_E_RUNTIME); x must not be NULL unless n == 0. CPU and GPU agree to a
 * few ulps (their logf/sinf/cosf differ). */
dl_status dl_rand_normal(dl_backend *be, float *x, size_t n, float mean, float stddev,
                         uint64_t seed, uint64_t offset);

/* --- custom ops -------------------------------------------------------- */

/* Residual and its sum of squares, fused, for each model b < batch:
 *   E[b] -= A[b]  and  sse[b] = sum_i E[b][i]^2 (after the subtraction),
 * with E[b] = e + b*n (packed) and A[b] = a + b*a_stride (0 shares one A).
 * batch >= 1; e and a not NULL unless n == 0; sse not NULL (n == 0 gives
 * sse[b] = 0). */
dl_status dl_residual_sse(dl_backend *be, float *e, const float *a, size_t n, int batch,
                          size_t a_stride, float *sse);

/* One optimiser step over n parameters: p[i] = f(p[i], g[i], state), with
 * the per-element formulas of host/backends/elem_math.h:
 *   SGD       p -= lr g
 *   momentum  m = momentum m + g;  p -= lr m
 *   Adam      m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
 *             p -= lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 *             (Kingma & Ba 2015, Algorithm 1)
 * `t` is a device int32 step counter used by Adam: the op increments it and
 * uses the new value as the 1-based step number, even when n == 0 (a step
 * was taken), so the step can be graph-replayed. Checks (DL_E_RUNTIME): opt
 * not NULL and of a known kind, its fields as documented at dl_optim; p and
 * g not NULL unless n == 0; momentum: m not NULL unless n == 0; Adam: m and
 * v not NULL unless n == 0, t never NULL. Unused state pointers may be NULL. */
dl_status dl_optim_step(dl_backend *be, const dl_optim *opt, float *p, const float *g, float *m,
                        float *v, size_t n, int32_t *t);

/* Y[b][r][c] += bias[b*bias_stride + c], then Y = relu(Y) if `relu`, with
 * Y[b] = y + b*rows*cols. rows, cols >= 0 (an empty Y is an empty op),
 * batch >= 1, y and bias not NULL. */
dl_status dl_bias_act(dl_backend *be, float *y, const float *bias, int rows, int cols, int batch,
                      size_t bias_stride, bool relu);

/* dh[i] = h[i] > 0 ? dh[i] : 0 for i < n (h is the ReLU output). dh and h
 * not NULL unless n == 0. */
dl_status dl_relu_bwd(dl_backend *be, float *dh, const float *h, size_t n);

/* Softmax cross-entropy, fused forward and backward, for each model b:
 *   logits[b] = logits + b*rows*classes, labels[b] = labels + b*label_stride,
 *   loss[b]   = mean over rows of -log softmax(row)[label],
 *   acc[b]    = fraction of rows whose argmax (first maximum) is the label,
 *   dlogits[b] (if not NULL) = (softmax - onehot) / rows, laid out as logits.
 * A label outside [0, classes) makes that row's loss NaN, so loss[b] is NaN,
 * its gradient row NaN, and the row counts as wrong: a corrupt label shows
 * up as divergence, never as a read out of bounds. Checks (DL_E_RUNTIME):
 * rows >= 1, classes >= 1, batch >= 1; logits and labels not NULL; dlogits
 * must not overlap logits. dlogits, loss and acc may each be NULL. */
dl_status dl_softmax_xent(dl_backend *be, const float *logits, const int32_t *labels, int rows,
                          int classes, int batch, size_t label_stride, float *dlogits, float *loss,
                          float *acc);

/* out[b*out_stride + c] = sum over r of G[b][r][c], G[b] = g + b*rows*cols,
 * summed in double in row order. rows, cols >= 0 (cols == 0 is an empty op,
 * rows == 0 writes zeros), batch >= 1; out not NULL, g not NULL unless
 * rows == 0; with batch > 1, out_stride >= cols so that models do not write
 * over each other. */
dl_status dl_col_sum(dl_backend *be, const float *g, int rows, int cols, int batch, float *out,
                     size_t out_stride);

/* Appends n values to a device-side history:
 *   hist[(*counter) * n + i] = vals[i]  for i < n;  then (*counter)++,
 * with counter a device int32. This is how an epoch records its metrics
 * without a host round trip and without any per-epoch argument (so the
 * epoch can be graph-replayed). The caller sizes hist for the number of
 * calls (not checked: *counter lives on the device). n >= 0; counter not
 * NULL; hist and vals not NULL unless n == 0 (the counter still moves). */
dl_status dl_record(dl_backend *be, float *hist, const float *vals, int n, int32_t *counter);

/* x[i] = the sum of x[i] over the ranks of be->comm, in place, for i < n,
 * on every rank the same bits, run after run (the rank-order sum in double
 * of dl_comm_allreduce_sum_f32). A collective: every rank calls it with the
 * same n in the same place of its epoch. With no communicator or a single
 * rank it does nothing, so a one-process run is unchanged. The CPU backend
 * sums with MPI on the calling thread; a backend without the op refuses a
 * communicator of several ranks (DL_E_USAGE). x not NULL unless n == 0. */
dl_status dl_allreduce_sum(dl_backend *be, float *x, size_t n);

/* --- fused training of small models ---------------------------------- *
 *
 * The general path issues one op per step of an epoch (three gemms, the
 * residual, the optimiser step...), which on the lab's tiny problems costs
 * far more than their arithmetic: a kernel launch or an OpenMP region per
 * op. The two ops below train whole models for `epochs` epochs in one call
 * when a model's working set fits fast memory (dl_fused_fits): on the CPU
 * one sweep per epoch per model over cache-resident data, on the GPU one
 * persistent kernel launch in which each model's data and parameters stay
 * in its block's shared memory for every epoch.
 *
 * They compute what the general path computes from the same starting point
 * (the same formulas, the shared per-element math of elem_math.h) but not
 * in the same summation order, so results agree within the tolerances the
 * tests use for CPU against GPU, not bit for bit. Each is deterministic:
 * the same call gives the same bits run after run, and a model's bits do
 * not depend on how many models share the call or on `epochs` per call
 * (calling twice with E1 and E2 epochs gives the bits of one call with
 * E1 + E2). They are not graph ops: they are called directly, once per
 * chunk of epochs, never inside dl_graph_create(). */

/* Gradient-descent factorisation A ~ U V^T of `models` models that share
 * A, the epoch of the general path fused:
 *   E = U V^T - A,  sse = sum E^2 (accumulated in double, stored as float),
 *   dU = 2 E V,  dV = 2 E^T U (both from the U, V the epoch started with),
 *   U -= lr dU,  V -= lr dV  (plain SGD, dl_sgd_step).
 * Shapes: A m x n row-major; model b's parameters at params + b*(m+n)*k
 * are [U (m x k) | V (n x k)], row-major, updated in place; hist receives
 * epochs x models floats, hist[e*models + b] = model b's sse before the
 * step of the call's epoch e (the general path's recorded loss). */
struct dl_fused_factorise_args {
    int m, n, k;    /* m, n >= 1; 1 <= k */
    int models;     /* >= 1 */
    const float *a; /* m x n, shared by every model */
    float *params;  /* models x (m + n) k, updated in place */
    float lr;       /* > 0, finite */
    int epochs;     /* >= 0; 0 is an empty op */
    float *hist;    /* epochs x models */
};

/* One-hidden-layer classifier (dlab/mlp.h's network) trained for `epochs`
 * epochs, the epoch of the general path fused. Per model b:
 *   parameters at params + b*P, P = d*h + h + h*c + c, laid out
 *   [W1 (d x h) | b1 (h) | W2 (h x c) | b2 (c)];
 *   X_train at x_train + b*n_train*d (row-major n_train x d), labels at
 *   y_train + b*n_train; likewise X_val, y_val with n_val rows.
 * Each epoch: the mini-batches rows [r0, r0 + batch) in order (the last may
 * be short), each: hid = relu(X W1 + b1), logits = hid W2 + b2, the softmax
 * cross-entropy gradient (softmax - onehot) / rows, backpropagated to every
 * parameter, then one optimiser step (dl_optim_step's formulas, elem_math.h)
 * on every parameter. Then the metrics of the updated model, recorded at
 *   hist[(e*DL_MLP_METRICS_N + k)*models + b], k = 0 train loss, 1 validation
 *   loss, 2 train accuracy, 3 validation accuracy
 * (mean softmax cross-entropy over the split; fraction of rows whose first
 * maximal logit is the label; a label outside [0, c) gives NaN loss, as in
 * dl_softmax_xent). Optimiser state: momentum needs m, Adam m and v, each
 * models x P and laid out as params, updated in place; Adam's 1-based step
 * number of the call's first step is first_step + 1 (steps taken so far by
 * the caller, the same for every model; each mini-batch is one step). */
#define DL_MLP_METRICS_N 4
struct dl_fused_mlp_args {
    int d, h, c;            /* features, hidden units, classes: each >= 1 (c >= 2) */
    int models;             /* >= 1 */
    int n_train, n_val;     /* >= 1 */
    int batch;              /* rows per mini-batch, 1 <= batch <= n_train */
    const float *x_train;   /* models x n_train x d */
    const int32_t *y_train; /* models x n_train */
    const float *x_val;     /* models x n_val x d */
    const int32_t *y_val;   /* models x n_val */
    float *params;          /* models x P, updated in place */
    dl_optim opt;           /* checked as in dl_optim_step() */
    float *m, *v;           /* optimiser state, models x P (NULL where unused) */
    int64_t first_step;     /* >= 0: optimiser steps taken before this call */
    int epochs;             /* >= 0; 0 is an empty op */
    float *hist;            /* epochs x DL_MLP_METRICS_N x models */
};

/* Bytes of fast memory one model's fused training works in: its data, its
 * parameters and gradients (and optimiser state), and the activations of
 * one mini-batch. These are what dl_fused_fits() is asked about. */
size_t dl_fused_factorise_bytes(int m, int n, int k);
size_t dl_fused_mlp_bytes(int d, int h, int c, int n_train, int n_val, int batch, dl_optim_kind o);

/* Whether this backend has the fused ops and a model whose working set is
 * `bytes` (from the functions above) fits its fast memory: a share of the
 * per-core cache on the CPU, one block's shared memory on the GPU. False
 * for a backend without fused ops, so a task falls back on the general
 * path. */
bool dl_fused_fits(dl_backend *be, size_t bytes);

/* What --fused auto asks: dl_fused_fits() for the model's working set and,
 * where the backend knows a shape beyond which its general path is faster
 * (the CPU: a V of more than 512 values, which no longer lives in
 * registers, against OpenBLAS's blocked gemm), that the shape is within it. */
bool dl_fused_factorise_pays(dl_backend *be, int m, int n, int k);

/* The two fused ops. Checks (DL_E_RUNTIME, "dl_fused_<op>: ..."): args not
 * NULL; shapes as documented at the argument structs; every pointer the
 * arguments need not NULL; sizes fit the address space; the model fits
 * (dl_fused_fits() is true for its working set). */
dl_status dl_fused_factorise(dl_backend *be, const dl_fused_factorise_args *args);
dl_status dl_fused_mlp(dl_backend *be, const dl_fused_mlp_args *args);

/* --- sync, timing, graphs ------------------------------------------- */

/* Waits until every queued op has finished. */
dl_status dl_sync(dl_backend *be);

/* Wall time of the device work between dl_timer_start() and
 * dl_timer_stop(), in seconds (CUDA events on the GPU, a monotonic clock on
 * the CPU). timer_stop waits for the device; seconds may be NULL. Starting
 * again restarts the timer; dl_timer_stop() without a running timer fails
 * with DL_E_RUNTIME. */
dl_status dl_timer_start(dl_backend *be);
dl_status dl_timer_stop(dl_backend *be, double *seconds);

/* Records one call of fn(be, ctx) as a replayable graph at *out (on CUDA
 * the call is captured, not executed; on the CPU the graph calls fn again
 * on every replay). fn and out must not be NULL; *out is NULL after any
 * failure, and a failure of fn is returned as it is. */
dl_status dl_graph_create(dl_backend *be, dl_epoch_fn fn, void *ctx, dl_graph **out);

/* Replays g `times` times (>= 0) in order and returns once they are queued.
 * g must not be NULL. */
dl_status dl_graph_run(dl_backend *be, dl_graph *g, int times);

/* Frees a graph of this backend, waiting for replays still running.
 * g == NULL (or be == NULL) does nothing. */
void dl_graph_free(dl_backend *be, dl_graph *g);

/* Packed row-major C = alpha op(A) op(B) + beta C with batch 1: dl_gemm()
 * with lda = (ta ? m : k), ldb = (tb ? k : n) and ldc = n. */
dl_status dl_matmul(dl_backend *be, bool ta, bool tb, int m, int n, int k, float alpha,
                    const float *a, const float *b, float beta, float *c);

/* --- creating a backend ---------------------------------------------- */

typedef enum { DL_DEVICE_AUTO = 0, DL_DEVICE_CPU, DL_DEVICE_CUDA } dl_device;

/* Creates a backend. With DL_DEVICE_AUTO the CUDA backend is tried first;
 * when it cannot start, the CPU backend is used and `note` (if not NULL,
 * `note_len` bytes) receives one line saying why. DL_DEVICE_CUDA with no
 * usable GPU fails with DL_E_NODEVICE. */
dl_status dl_backend_create(dl_device dev, dl_backend **out, char *note, size_t note_len);
void dl_backend_destroy(dl_backend *be); /* NULL ok */
dl_status dl_device_parse(const char *s, dl_device *out);

/* dl_backend_create() for one rank of `comm` (NULL: a single process): the
 * CUDA backend opens this rank's GPU, dl_comm_device(comm, visible GPUs),
 * so the ranks of a node take distinct GPUs while there are enough (one
 * visible GPU per rank, as CUDA_VISIBLE_DEVICES or Slurm's --gpus-per-task
 * give, is device 0 for each). Not a collective. */
dl_status dl_backend_create_rank(dl_device dev, struct dl_comm *comm, dl_backend **out, char *note,
                                 size_t note_len);

/* Gives be the ranks it works with (be->comm = comm) and, with several,
 * prepares dl_allreduce_sum over them: the CUDA backend makes its NCCL
 * communicator (bootstrapped over comm) and its sum buffer. A collective:
 * every rank of comm calls it once, before any dl_allreduce_sum. When the
 * sums cannot run (ranks on different backends, GPUs shared by several
 * ranks, a build without NCCL, NCCL failing to start) that is no error:
 * be->allreduce_sum is NULL on every rank and be->sum_note says why, so
 * work that needs no sums (a seed sweep) still runs. Errors: an MPI
 * failure (DL_E_RUNTIME). comm NULL or of one rank: only sets be->comm. */
dl_status dl_backend_join_ranks(dl_backend *be, struct dl_comm *comm);

dl_status dl_backend_cpu_create(dl_backend **out);
dl_status dl_backend_cuda_create(dl_backend **out); /* DL_E_NODEVICE without CUDA */
bool dl_have_cuda_build(void);
/* How this build has the CUDA backend, for --version: "built in", "not
 * built", or emulated on the CPU (the cuda-emu build). */
const char *dl_cuda_build_words(void);

#ifdef __cplusplus
}
#endif
#endif
