/* Fused training of small models: one persistent launch trains every model
 * of a call for all of the call's epochs, one model per thread block, with
 * the model's data, parameters and working buffers in the block's shared
 * memory from the first epoch to the last. Only the per-epoch metrics go to
 * device memory while it runs; the parameters (and optimiser state) are
 * written back once, at the end. The per-element math is elem_math.h's,
 * shared with the CPU backend and the general path's kernels.
 *
 * Shared memory. Each kernel keeps a static pool of a fixed size (dynamic
 * shared memory would let the pool follow the shape, but static arrays are
 * what both nvcc and the emulation build understand, and they need no
 * opt-in attribute). A small pool costs occupancy nothing, a large one caps
 * the blocks per SM, so each kernel is instantiated for two pool sizes and
 * the launcher picks the smaller one that holds the shape; the layout inside
 * the pool, and hence every result bit, is the same in both. The
 * backend's limit (DL_FUSED_LIMIT_BYTES, kernels.h) is what both kernels
 * accept: the MLP's layout is exactly dl_fused_mlp_bytes(), the
 * factorisation's double-buffers U and V (see below) and so takes at most
 * twice dl_fused_factorise_bytes(); its large pool is twice the limit.
 *
 * Determinism. Every sum runs in an order fixed by the model's shape (never
 * by the number of models, the GPU or the thread schedule), each block works
 * on one model alone, and all state carried from one epoch to the next is in
 * the parameters and optimiser buffers the call writes back (and, for Adam,
 * in first_step). So a model's bits do not depend on how many models share
 * the call, nor on how its epochs are split into calls.
 */
#include "kernels.h"
#include "elem_math.h"

/* --- factorisation -------------------------------------------------------
 *
 * Threads T = min(256, max(m, n k) rounded up to a warp). Shared: A (m x n),
 * U twice and V twice (the epoch reads one copy and writes the other, so no
 * thread has to wait for the others to finish reading before it writes), and
 * fixed scratch: one float per thread for partial sums of dV, one double per
 * thread for partial SSEs, one double per group of 16 threads.
 *
 * One epoch, two barriers:
 *   phase 1  each thread takes rows i = tid, tid + T, ...: E_i = U_i V^T - A_i
 *            (n dot products of length k), SSE_i += E_ij^2 in double, and the
 *            new row U'_i = U_i - lr 2 E_i V, accumulated in registers (k <= 4) or
 *            in place in U'.
 *            At the same time, item (j, l, s) of n k S items sums
 *            E_ij U_il over the s-th of S row slices (E_ij recomputed: k
 *            multiply-adds, cheaper than a barrier and an m x n buffer); with
 *            S = 1 it writes V'_jl = V_jl - lr 2 sum straight away.
 *   barrier
 *   phase 2  with S > 1, thread jl adds its S partials in slice order and
 *            writes V'_jl; the last T/16 threads (the ones with the fewest
 *            rows and items) each add the SSEs of 16 threads in order. The
 *            last thread adds those group sums in phase 1 of the next
 *            epoch (or after the last one) and writes the history.
 *   barrier
 * S = min(T / (n k), ceil(sqrt m)) balances the slice loop (m / S rows)
 * against the combine (S adds). Every order depends on (m, n, k) alone.
 *
 * Cost for iris (m 150, n 4, k 2; T 160, 5 warps, S 13, 12 rows a slice):
 *   phase 1  row threads (k in registers): 4 x 5 independent shared loads,
 *            16 multiply-adds and 4 double squares, about 150 cycles; item
 *            threads: 12 rows of 3 shared loads and 3 multiply-adds, one
 *            12-long dependent chain, about 100 cycles; the last thread:
 *            10 dependent double adds, about 80 cycles.
 *   phase 2  13 dependent float adds (combine) and 16 dependent double adds
 *            (SSE groups, about 130 cycles) in different warps.
 * About 350 cycles per epoch with the two barriers of a 5-warp block,
 * some 0.2 us at 1.98 GHz: 1000 epochs in about 0.2 ms plus the launches,
 * against a 0.5 ms goal. (The generic rank, k > 4, accumulates U' through
 * shared memory: a load-add-store chain per column, some 40 cycles each.)
 * Global memory sees one float of history per epoch. One block per model
 * and an 11 KiB footprint, so several hundred models per call take the
 * wall time of one on a 132-SM H200.
 */

#define FACT_MAX_THREADS 256
#define FACT_GROUP       16
/* The two pool sizes, in floats: 8 KiB for iris-sized models, and twice the
 * backend's limit for everything it accepts. */
#define FACT_POOL_SMALL 2048
#define FACT_POOL_LARGE ((int)(2 * DL_FUSED_LIMIT_BYTES / sizeof(float)))

static __device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }

/* The rank in registers: K > 0 is a kernel built for k == K, whose row
 * loop keeps U_i and its gradient in registers (its loops unrolled, no
 * shared-memory read-modify-write chain); K == 0 takes any k and
 * accumulates in U'. Both do the same operations in the same order. */
#define FACT_MAX_K_REGS 4

template <int POOL, int K>
static __global__ void __launch_bounds__(FACT_MAX_THREADS)
    fused_factorise_kernel(const float *a, float *params, float *hist, int m, int n, int k_arg,
                           int models, int epochs, float lr, int slices)
{
    const int k = K > 0 ? K : k_arg;
    __shared__ float pool[POOL];
    __shared__ float part[FACT_MAX_THREADS];
    __shared__ double row_sse[FACT_MAX_THREADS];
    __shared__ double group_sse[FACT_MAX_THREADS / FACT_GROUP];

    const int T = (int)blockDim.x, tid = (int)threadIdx.x;
    const int mn = m * n, mk = m * k, nk = n * k;
    /* A, then U's two copies, then V's; copy c of U at ub + c mk */
    float *A = pool, *ub = A + mn, *vb = ub + 2 * mk;
    const int rows_per_slice = (m + slices - 1) / slices;
    const int items = nk * slices;
    const int groups = (T + FACT_GROUP - 1) / FACT_GROUP;

    for (int b = blockIdx.x; b < models; b += gridDim.x) {
        float *pu = params + (size_t)b * (size_t)(mk + nk), *pv = pu + mk;
        for (int i = tid; i < mn; i += T) A[i] = a[i];
        for (int i = tid; i < mk; i += T) ub[i] = pu[i];
        for (int i = tid; i < nk; i += T) vb[i] = pv[i];
        __syncthreads();

        for (int e = 0; e < epochs; e++) {
            const int cur = e & 1, next = cur ^ 1;
            const float *U = ub + cur * mk, *V = vb + cur * nk;
            float *Un = ub + next * mk, *Vn = vb + next * nk;

            /* the previous epoch's SSE, from the group sums of its phase 2 */
            if (e > 0 && tid == T - 1) {
                double s = 0.0;
                for (int g = 0; g < groups; g++) s += group_sse[g];
                hist[(size_t)(e - 1) * models + b] = (float)s;
            }

            /* phase 1: rows */
            double sse = 0.0;
            for (int i = tid; i < m && K > 0; i += T) {
                const float *ai = A + i * n;
                float u[K > 0 ? K : 1], du[K > 0 ? K : 1];
                for (int l = 0; l < K; l++) u[l] = U[i * K + l], du[l] = 0.0f;
                for (int j = 0; j < n; j++) {
                    const float *vj = V + j * K;
                    float dot = 0.0f;
                    for (int l = 0; l < K; l++) dot += u[l] * vj[l];
                    const float r = dot - ai[j];
                    sse += (double)r * (double)r;
                    for (int l = 0; l < K; l++) du[l] += r * vj[l];
                }
                for (int l = 0; l < K; l++) Un[i * K + l] = dl_sgd_step(u[l], 2.0f * du[l], lr);
            }
            for (int i = tid; i < m && K == 0; i += T) {
                const float *ui = U + i * k, *ai = A + i * n;
                float *un = Un + i * k;
                for (int l = 0; l < k; l++) un[l] = 0.0f;
                for (int j = 0; j < n; j++) {
                    const float *vj = V + j * k;
                    float dot = 0.0f;
                    for (int l = 0; l < k; l++) dot += ui[l] * vj[l];
                    const float r = dot - ai[j];
                    sse += (double)r * (double)r; /* exact: a float square fits a double */
                    for (int l = 0; l < k; l++) un[l] += r * vj[l];
                }
                for (int l = 0; l < k; l++) un[l] = dl_sgd_step(ui[l], 2.0f * un[l], lr);
            }
            row_sse[tid] = sse;

            /* phase 1: dV = 2 E^T U by row slices */
            for (int q = tid; q < items; q += T) {
                const int jl = q % nk, s = q / nk, j = jl / k, l = jl % k;
                const float *vj = V + j * k;
                const int i0 = s * rows_per_slice, i1 = imin(m, i0 + rows_per_slice);
                float acc = 0.0f;
                for (int i = i0; i < i1; i++) {
                    const float *ui = U + i * k;
                    float dot = 0.0f;
                    for (int l2 = 0; l2 < k; l2++) dot += ui[l2] * vj[l2];
                    acc += (dot - A[i * n + j]) * ui[l];
                }
                if (slices == 1)
                    Vn[jl] = dl_sgd_step(V[jl], 2.0f * acc, lr);
                else
                    part[q] = acc;
            }
            __syncthreads();

            /* phase 2: combine the slices, and the SSE by groups */
            if (slices > 1)
                for (int jl = tid; jl < nk; jl += T) {
                    float acc = 0.0f;
                    for (int s = 0; s < slices; s++) acc += part[s * nk + jl];
                    Vn[jl] = dl_sgd_step(V[jl], 2.0f * acc, lr);
                }
            /* the last threads, which have the fewest rows and items */
            if (T - 1 - tid < groups) {
                const int g = T - 1 - tid;
                double s = 0.0;
                for (int t = g * FACT_GROUP; t < imin(T, (g + 1) * FACT_GROUP); t++)
                    s += row_sse[t];
                group_sse[g] = s;
            }
            __syncthreads();
        }

        /* the last epoch's SSE and the trained factors */
        if (tid == T - 1) {
            double s = 0.0;
            for (int g = 0; g < groups; g++) s += group_sse[g];
            hist[(size_t)(epochs - 1) * models + b] = (float)s;
        }
        const float *U = ub + (epochs & 1) * mk, *V = vb + (epochs & 1) * nk;
        for (int i = tid; i < mk; i += T) pu[i] = U[i];
        for (int i = tid; i < nk; i += T) pv[i] = V[i];
        __syncthreads(); /* the pool is reloaded for the next model */
    }
}

/* --- MLP ------------------------------------------------------------------
 *
 * 128 threads (four warps: enough threads for the lab's 100-row batches,
 * few enough that a barrier stays cheap). Shared, exactly the floats of
 * dl_fused_mlp_bytes(): both splits and their labels, the parameters,
 * gradients (only W2's and b2's are stored; W1's and b1's are applied as
 * they are computed), the optimiser state, and one mini-batch's hidden
 * activations, logits and their gradients; fixed scratch for the metrics'
 * block sums.
 *
 * One step (a mini-batch of R rows), five barriers:
 *   hid = relu(X W1 + b1)           R h items (d multiply-adds each)   | bar
 *   logits = hid W2 + b2            R c items (h each)                 | bar
 *   dlogits, one row per thread     dl_softmax_xent_row                | bar
 *   dhid = relu'(dlogits W2^T)      R h items (c each); dW2, db2       | bar
 *   dW1, db1 and the optimiser step on all P parameters                | bar
 * Then the metrics: the forward pass (two barriers) over each split in
 * chunks of `batch` rows, one row's loss per thread, and a fixed tree sum
 * over the 128 threads (eight barriers) of loss (double) and correct rows
 * (int, exact). Sums over rows run in row order; loss means are taken in
 * double as in dl_softmax_xent.
 *
 * Cost of the lab epoch (4-12-3, 100 + 50 rows, full batch): 8.4k
 * multiply-adds forward over the training rows, 13.5k backward, 12.6k for
 * the metrics' two forward passes: about 35k, some 270 per thread, with
 * about two shared loads each, and 17 barriers. The longest dependent
 * chains are the gradient sums over the 100 rows (db1, db2 in double,
 * about 800 cycles each), so one block needs some 2-4 us an epoch. The
 * small pool takes 19 KiB with the scratch, and 48 registers a thread
 * (held under 51 by the launch bounds), so ten blocks share an SM: 1320
 * models at a time on 132 SMs, 10,000 models in 8 waves, whose latency
 * (8 x 100 epochs x 3 us, some 2.4 ms) hides behind the throughput bound:
 * 10,000 x 100 x 70k shared loads are 2.2e9 warp-wide loads, 8.4 ms at
 * one per cycle per SM, and as many multiply-add instructions. Expected
 * 10-20 ms in all for 10,000 lab models, against a 50 ms goal.
 */

#define MLP_THREADS 128 /* a power of two: the metrics' tree sum */
/* Registers for ten blocks of 128 threads per SM (at most 51 each; the
 * small pool's shared memory allows eleven). */
#define MLP_MIN_BLOCKS 10
#define MLP_POOL_SMALL 4096
#define MLP_POOL_LARGE ((int)(DL_FUSED_LIMIT_BYTES / sizeof(float)))

/* hid = relu(x W1 + b1) and logits = hid W2 + b2 for rows [0, rows) of x;
 * two barriers, the last one after the logits. */
static __device__ __forceinline__ void mlp_forward(const float *x, int rows, int d, int h, int c,
                                                   const float *w1, const float *b1,
                                                   const float *w2, const float *b2, float *hid,
                                                   float *logits)
{
    const int T = (int)blockDim.x, tid = (int)threadIdx.x;
    for (int it = tid; it < rows * h; it += T) {
        const int r = it / h, u = it % h;
        float s = 0.0f;
        for (int i = 0; i < d; i++) s += x[r * d + i] * w1[i * h + u];
        hid[it] = dl_relu(s + b1[u]);
    }
    __syncthreads();
    for (int it = tid; it < rows * c; it += T) {
        const int r = it / c, j = it % c;
        float s = 0.0f;
        for (int u = 0; u < h; u++) s += hid[r * h + u] * w2[u * c + j];
        logits[it] = s + b2[j];
    }
    __syncthreads();
}

/* Loss sum and correct rows of one split, accumulated into this thread's
 * *loss and *correct (rows tid, tid + T, ... of each chunk). */
static __device__ __forceinline__ void
mlp_split_metrics(const float *x, const int32_t *y, int rows, int batch, int d, int h, int c,
                  const float *w1, const float *b1, const float *w2, const float *b2, float *hid,
                  float *logits, double *loss, int *correct)
{
    const int T = (int)blockDim.x, tid = (int)threadIdx.x;
    for (int r0 = 0; r0 < rows; r0 += batch) {
        const int R = imin(batch, rows - r0);
        mlp_forward(x + (size_t)r0 * d, R, d, h, c, w1, b1, w2, b2, hid, logits);
        /* The next chunk's first write to the logits comes after its first
         * barrier, so these reads need none of their own. */
        for (int r = tid; r < R; r += T) {
            int ok = 0;
            *loss += dl_softmax_xent_row(logits + r * c, c, y[r0 + r], NULL, 0.0f, &ok);
            *correct += ok;
        }
    }
}

template <int POOL>
static __global__ void __launch_bounds__(MLP_THREADS, MLP_MIN_BLOCKS)
    fused_mlp_kernel(const float *x_train, const int32_t *y_train, const float *x_val,
                     const int32_t *y_val, float *params, float *opt_m, float *opt_v, float *hist,
                     int d, int h, int c, int models, int n_train, int n_val, int batch, int kind,
                     float lr, float momentum, float beta1, float beta2, float eps, int first_step,
                     int epochs)
{
    __shared__ float pool[POOL];
    __shared__ double loss_sum[2][MLP_THREADS];
    __shared__ int correct_sum[2][MLP_THREADS];

    const int T = (int)blockDim.x, tid = (int)threadIdx.x;
    const int P = d * h + h + h * c + c;
    const int w1o = 0, b1o = d * h, w2o = b1o + h, b2o = w2o + h * c;
    const int states = kind == DL_OPTIM_ADAM ? 2 : kind == DL_OPTIM_MOMENTUM ? 1 : 0;

    float *xtr = pool;
    int32_t *ytr = (int32_t *)(xtr + n_train * d);
    float *xva = (float *)(ytr + n_train);
    int32_t *yva = (int32_t *)(xva + n_val * d);
    float *p = (float *)(yva + n_val);
    float *g = p + P;
    float *sm = g + P;                     /* momentum or Adam's first moment */
    float *sv = sm + (states > 0 ? P : 0); /* Adam's second moment */
    float *hid = sv + (states > 1 ? P : 0);
    float *dhid = hid + batch * h;
    float *logits = dhid + batch * h;
    float *dlogits = logits + batch * c;
    const float *w1 = p + w1o, *b1 = p + b1o, *w2 = p + w2o, *b2 = p + b2o;

    for (int b = blockIdx.x; b < models; b += gridDim.x) {
        const size_t pb = (size_t)b * P;
        for (int i = tid; i < n_train * d; i += T) xtr[i] = x_train[(size_t)b * n_train * d + i];
        for (int i = tid; i < n_train; i += T) ytr[i] = y_train[(size_t)b * n_train + i];
        for (int i = tid; i < n_val * d; i += T) xva[i] = x_val[(size_t)b * n_val * d + i];
        for (int i = tid; i < n_val; i += T) yva[i] = y_val[(size_t)b * n_val + i];
        for (int i = tid; i < P; i += T) {
            p[i] = params[pb + i];
            if (states > 0) sm[i] = opt_m[pb + i];
            if (states > 1) sv[i] = opt_v[pb + i];
        }
        __syncthreads();

        int step = first_step;
        for (int e = 0; e < epochs; e++) {
            for (int r0 = 0; r0 < n_train; r0 += batch) {
                const int R = imin(batch, n_train - r0);
                const float *x = xtr + r0 * d;
                mlp_forward(x, R, d, h, c, w1, b1, w2, b2, hid, logits);
                for (int r = tid; r < R; r += T) {
                    int ok;
                    (void)dl_softmax_xent_row(logits + r * c, c, ytr[r0 + r], dlogits + r * c,
                                              1.0f / (float)R, &ok);
                }
                __syncthreads();
                for (int it = tid; it < R * h; it += T) {
                    const int r = it / h, u = it % h;
                    float s = 0.0f;
                    for (int j = 0; j < c; j++) s += dlogits[r * c + j] * w2[u * c + j];
                    dhid[it] = dl_relu_grad(hid[it], s);
                }
                for (int it = tid; it < h * c; it += T) {
                    const int u = it / c, j = it % c;
                    float s = 0.0f;
                    for (int r = 0; r < R; r++) s += hid[r * h + u] * dlogits[r * c + j];
                    g[w2o + it] = s;
                }
                for (int j = tid; j < c; j += T) {
                    double s = 0.0; /* dl_col_sum's double accumulation */
                    for (int r = 0; r < R; r++) s += dlogits[r * c + j];
                    g[b2o + j] = (float)s;
                }
                __syncthreads();
                step++;
                for (int q = tid; q < P; q += T) {
                    float grad;
                    if (q < b1o) {
                        const int i = q / h, u = q % h;
                        float s = 0.0f;
                        for (int r = 0; r < R; r++) s += x[r * d + i] * dhid[r * h + u];
                        grad = s;
                    } else if (q < w2o) {
                        const int u = q - b1o;
                        double s = 0.0;
                        for (int r = 0; r < R; r++) s += dhid[r * h + u];
                        grad = (float)s;
                    } else {
                        grad = g[q];
                    }
                    if (kind == DL_OPTIM_SGD) {
                        p[q] = dl_sgd_step(p[q], grad, lr);
                    } else if (kind == DL_OPTIM_MOMENTUM) {
                        float vel = sm[q];
                        p[q] = dl_momentum_step(p[q], grad, &vel, lr, momentum);
                        sm[q] = vel;
                    } else {
                        float mq = sm[q], vq = sv[q];
                        p[q] = dl_adam_step(p[q], grad, &mq, &vq, lr, beta1, beta2, eps, step);
                        sm[q] = mq;
                        sv[q] = vq;
                    }
                }
                __syncthreads();
            }

            /* metrics of the updated model: k = 0 train loss, 1 val loss,
             * 2 train accuracy, 3 val accuracy */
            double loss_tr = 0.0, loss_va = 0.0;
            int ok_tr = 0, ok_va = 0;
            mlp_split_metrics(xtr, ytr, n_train, batch, d, h, c, w1, b1, w2, b2, hid, logits,
                              &loss_tr, &ok_tr);
            mlp_split_metrics(xva, yva, n_val, batch, d, h, c, w1, b1, w2, b2, hid, logits,
                              &loss_va, &ok_va);
            loss_sum[0][tid] = loss_tr;
            loss_sum[1][tid] = loss_va;
            correct_sum[0][tid] = ok_tr;
            correct_sum[1][tid] = ok_va;
            __syncthreads();
            for (int half = MLP_THREADS / 2; half > 0; half >>= 1) {
                if (tid < half) {
                    loss_sum[0][tid] += loss_sum[0][tid + half];
                    loss_sum[1][tid] += loss_sum[1][tid + half];
                    correct_sum[0][tid] += correct_sum[0][tid + half];
                    correct_sum[1][tid] += correct_sum[1][tid + half];
                }
                __syncthreads();
            }
            if (tid == 0) {
                float *row = hist + (size_t)e * DL_MLP_METRICS_N * models + b;
                row[0 * (size_t)models] = (float)(loss_sum[0][0] / n_train);
                row[1 * (size_t)models] = (float)(loss_sum[1][0] / n_val);
                row[2 * (size_t)models] = (float)((double)correct_sum[0][0] / n_train);
                row[3 * (size_t)models] = (float)((double)correct_sum[1][0] / n_val);
            }
            /* The scratch is next written after the next epoch's barriers. */
        }

        for (int i = tid; i < P; i += T) {
            params[pb + i] = p[i];
            if (states > 0) opt_m[pb + i] = sm[i];
            if (states > 1) opt_v[pb + i] = sv[i];
        }
        __syncthreads(); /* the pool is reloaded for the next model */
    }
}

/* --- launchers ------------------------------------------------------------ */

/* Blocks per launch: one per model up to this, then each block loops. */
#define FUSED_MAX_GRID 65535

static unsigned fused_grid(int models)
{
    return (unsigned)(models < FUSED_MAX_GRID ? models : FUSED_MAX_GRID);
}

extern "C" cudaError_t dl_launch_fused_factorise(const dl_fused_factorise_args *a,
                                                 cudaStream_t stream)
{
    if (!a || a->m < 1 || a->n < 1 || a->k < 1 || a->models < 1 || a->epochs < 0)
        return cudaErrorInvalidValue;
    if (a->epochs == 0) return cudaSuccess;
    if (!a->a || !a->params || !a->hist) return cudaErrorInvalidValue;
    const size_t bytes = dl_fused_factorise_bytes(a->m, a->n, a->k);
    if (bytes == 0 || bytes > DL_FUSED_LIMIT_BYTES) return cudaErrorInvalidValue;
    /* The kernel's layout: A, U twice, V twice (at most twice `bytes`). */
    const int m = a->m, n = a->n, k = a->k;
    const size_t floats = (size_t)m * n + 2 * ((size_t)m + n) * k;
    if (floats > (size_t)FACT_POOL_LARGE) return cudaErrorInvalidValue; /* see above: never */
    const int wide = m > n * k ? m : n * k;
    int threads = (wide + 31) / 32 * 32;
    if (threads > FACT_MAX_THREADS) threads = FACT_MAX_THREADS;
    int slices = 1;
    if (n * k <= threads) {
        int root = 1;
        while (root * root < m) root++;
        slices = threads / (n * k);
        if (slices > root) slices = root;
    }
    typedef void (*fact_kernel)(const float *, float *, float *, int, int, int, int, int, float,
                                int);
    static const fact_kernel kernels[2][FACT_MAX_K_REGS + 1] = {
        {fused_factorise_kernel<FACT_POOL_SMALL, 0>, fused_factorise_kernel<FACT_POOL_SMALL, 1>,
         fused_factorise_kernel<FACT_POOL_SMALL, 2>, fused_factorise_kernel<FACT_POOL_SMALL, 3>,
         fused_factorise_kernel<FACT_POOL_SMALL, 4>},
        {fused_factorise_kernel<FACT_POOL_LARGE, 0>, fused_factorise_kernel<FACT_POOL_LARGE, 1>,
         fused_factorise_kernel<FACT_POOL_LARGE, 2>, fused_factorise_kernel<FACT_POOL_LARGE, 3>,
         fused_factorise_kernel<FACT_POOL_LARGE, 4>}};
    const fact_kernel kernel =
        kernels[floats <= FACT_POOL_SMALL ? 0 : 1][k <= FACT_MAX_K_REGS ? k : 0];
    const unsigned grid = fused_grid(a->models);
    kernel<<<grid, threads, 0, stream>>>(a->a, a->params, a->hist, m, n, k, a->models, a->epochs,
                                         a->lr, slices);
    return cudaGetLastError();
}

extern "C" cudaError_t dl_launch_fused_mlp(const dl_fused_mlp_args *a, cudaStream_t stream)
{
    if (!a || a->d < 1 || a->h < 1 || a->c < 2 || a->models < 1 || a->n_train < 1 || a->n_val < 1 ||
        a->batch < 1 || a->batch > a->n_train || a->epochs < 0 || a->first_step < 0)
        return cudaErrorInvalidValue;
    if (a->epochs == 0) return cudaSuccess;
    const dl_optim_kind kind = a->opt.kind;
    if (kind != DL_OPTIM_SGD && kind != DL_OPTIM_MOMENTUM && kind != DL_OPTIM_ADAM)
        return cudaErrorInvalidValue;
    if (!a->x_train || !a->y_train || !a->x_val || !a->y_val || !a->params || !a->hist ||
        (kind != DL_OPTIM_SGD && !a->m) || (kind == DL_OPTIM_ADAM && !a->v))
        return cudaErrorInvalidValue;
    const size_t bytes = dl_fused_mlp_bytes(a->d, a->h, a->c, a->n_train, a->n_val, a->batch, kind);
    if (bytes == 0 || bytes > DL_FUSED_LIMIT_BYTES) return cudaErrorInvalidValue;
    /* Adam's step numbers must stay in int (backend.c checks the same). */
    const int64_t batches = ((int64_t)a->n_train + a->batch - 1) / a->batch;
    if (a->first_step > INT32_MAX - (int64_t)a->epochs * batches) return cudaErrorInvalidValue;
    void (*kernel)(const float *, const int32_t *, const float *, const int32_t *, float *, float *,
                   float *, float *, int, int, int, int, int, int, int, int, float, float, float,
                   float, float, int, int) = bytes <= MLP_POOL_SMALL * sizeof(float)
                                                 ? fused_mlp_kernel<MLP_POOL_SMALL>
                                                 : fused_mlp_kernel<MLP_POOL_LARGE>;
    const unsigned grid = fused_grid(a->models);
    kernel<<<grid, MLP_THREADS, 0, stream>>>(
        a->x_train, a->y_train, a->x_val, a->y_val, a->params, kind == DL_OPTIM_SGD ? NULL : a->m,
        kind == DL_OPTIM_ADAM ? a->v : NULL, a->hist, a->d, a->h, a->c, a->models, a->n_train,
        a->n_val, a->batch, (int)kind, a->opt.lr, a->opt.momentum, a->opt.beta1, a->opt.beta2,
        a->opt.eps, (int)a->first_step, a->epochs);
    return cudaGetLastError();
}
