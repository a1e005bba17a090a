/* The CPU backend's fused training ops (dl_fused_factorise, dl_fused_mlp in
 * dlab/backend.h): whole models trained for many epochs in one call, one
 * sweep per epoch over data that stays in the core's cache.
 *
 * Both vectorise across rows: a "block" is DL_FUSED_LANES consecutive rows
 * of one mini-batch (or of A), stored transposed so that one vector holds
 * one column of the block, and the short last block of a batch is padded
 * with zero rows whose contributions are exactly zero. Within a row every
 * sum runs in the general path's order (products over the inner dimension
 * in index order, starting from zero, the bias added after), so the
 * activations and residuals are the general path's bits; what differs is
 * the order of the sums over rows: a gradient's sum over a batch's rows
 * and the squared error's sum are accumulated per lane (lane l holding
 * rows l, l + L, l + 2L, ... of the batch) and the lanes added in order at
 * the end. That order is fixed by the shapes alone, so a model's bits do
 * not depend on the thread count, on how many models share a call, or on
 * how the epochs are cut into calls.
 *
 * No floating-point contraction (ISO C17 leaves it off) and no reassociation:
 * the AVX2 clone of a kernel (picked at load time where the CPU has AVX2)
 * gives the same bits as the baseline x86-64 one.
 */
#define _POSIX_C_SOURCE 200809L
#include "dlab/backend.h"
#include "backend_cpu.h"
#include "elem_math.h"
#include "vec_math.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Rows per block: one 256-bit vector of floats (vec_math.h). */
#define DL_FUSED_LANES DL_VEC_LANES
typedef dl_vf vf;
typedef dl_vi vi;
/* Double accumulators come as pairs of four lanes (lanes 0-3, 4-7): an
 * eight-double vector is wider than AVX2's registers and compilers spill it. */
typedef double vd __attribute__((vector_size(4 * sizeof(double))));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DL_FUSED_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DL_FUSED_CLONES
#endif

/* --- the working-set limit ------------------------------------------------- */

/* Default when the cache size cannot be read: a common per-core L2. */
#define DL_FUSED_DEFAULT_L2 (256 * 1024)

/* The per-core L2 cache in bytes: sysconf(_SC_LEVEL2_CACHE_SIZE) where the
 * C library knows it, else /sys/devices/system/cpu/cpu0/cache/index2/size
 * (Linux), else DL_FUSED_DEFAULT_L2. */
static size_t l2_bytes(void)
{
#ifdef _SC_LEVEL2_CACHE_SIZE
    long s = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (s > 0) return (size_t)s;
#endif
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index2/size", "r");
    if (f) {
        unsigned long v = 0;
        char unit = 0;
        int got = fscanf(f, "%lu%c", &v, &unit);
        fclose(f);
        if (got >= 1 && v > 0) {
            if (got == 2 && (unit == 'K' || unit == 'k')) v *= 1024;
            if (got == 2 && (unit == 'M' || unit == 'm')) v *= 1024 * 1024;
            return (size_t)v;
        }
    }
    return DL_FUSED_DEFAULT_L2;
}

/* Half of the per-core L2: the model's working set (dl_fused_*_bytes) plus
 * the transposed copy of its data and the per-lane gradient accumulators
 * this file keeps, with room left for the stack and a sibling hyperthread.
 * Past that the sweep streams from L3 and the general path's BLAS calls are
 * as fast. Read once; the cache does not change while the process runs. */
static size_t cpu_fused_limit(dl_backend *be)
{
    (void)be;
    static size_t limit; /* benign race: every thread computes the same value */
    if (!limit) limit = l2_bytes() / 2;
    return limit;
}

/* --- helpers ------------------------------------------------------------------- */

static inline size_t blocks_of(size_t rows) { return (rows + DL_FUSED_LANES - 1) / DL_FUSED_LANES; }

/* The sum of a vector's lanes, in lane order (by pointer: a 32-byte vector
 * passed by value changes the calling convention between x86-64 targets). */
static inline float lane_sum_f(const vf *x)
{
    float s = 0.0f;
    for (int l = 0; l < DL_FUSED_LANES; l++) s += (*x)[l];
    return s;
}

/* acc[0], acc[1] += the lanes of x (0-3, 4-7) in double; the square of
 * a float is exact in double. */
#define LANES_LO(x) __builtin_shufflevector(x, x, 0, 1, 2, 3)
#define LANES_HI(x) __builtin_shufflevector(x, x, 4, 5, 6, 7)
#define ADD_D(acc, x)                                                                              \
    do {                                                                                           \
        (acc)[0] += __builtin_convertvector(LANES_LO(x), vd);                                      \
        (acc)[1] += __builtin_convertvector(LANES_HI(x), vd);                                      \
    } while (0)
#define ADD_SQUARE_D(acc, x)                                                                       \
    do {                                                                                           \
        vd lo_ = __builtin_convertvector(LANES_LO(x), vd);                                         \
        vd hi_ = __builtin_convertvector(LANES_HI(x), vd);                                         \
        (acc)[0] += lo_ * lo_;                                                                     \
        (acc)[1] += hi_ * hi_;                                                                     \
    } while (0)

/* The sum of the eight lanes of a pair, in lane order. */
static inline double lane_sum_d(const vd *pair)
{
    double s = 0.0;
    for (int l = 0; l < 4; l++) s += pair[0][l];
    for (int l = 0; l < 4; l++) s += pair[1][l];
    return s;
}

/* Runs body(i) for i < n models: in an OpenMP team when there are several
 * and no parallel region is active (dl_run_models already gives each of its
 * threads a group of models), else in order on this thread. Each model's
 * arithmetic is its own, so the split does not change any bits. */
#ifdef _OPENMP
#define FOR_MODELS(i, n, ...)                                                                      \
    do {                                                                                           \
        if ((n) > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {                          \
            _Pragma("omp parallel for schedule(static)") for (int i = 0; i < (n); i++)             \
            {                                                                                      \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        } else {                                                                                   \
            for (int i = 0; i < (n); i++) {                                                        \
                __VA_ARGS__                                                                        \
            }                                                                                      \
        }                                                                                          \
    } while (0)
#else
#define FOR_MODELS(i, n, ...)                                                                      \
    do {                                                                                           \
        for (int i = 0; i < (n); i++) {                                                            \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)
#endif

/* Sets a flag shared by the threads of FOR_MODELS. */
#ifdef _OPENMP
#define NOTE_FAILURE(flag) _Pragma("omp atomic write") flag = 1
#else
#define NOTE_FAILURE(flag) flag = 1
#endif

/* --- factorisation --------------------------------------------------------- */

/* Ranks up to this keep a block's U rows and dU sums in registers. */
#define FACT_K_REGS 4

/* The epochs of one model (see factorise_model), with `k` a constant where
 * the caller can make it one, so that the loops over the rank unroll. */
static inline __attribute__((always_inline)) void
factorise_epochs(int n, const int k, size_t nb, const vf *restrict at, float *restrict v, float lr,
                 int epochs, float *restrict hist, size_t hist_stride, vf *restrict ut,
                 vf *restrict dv, vf *restrict work)
{
    const size_t nk = (size_t)n * k;
    vf ubuf[FACT_K_REGS], gbuf[FACT_K_REGS];
    vf *restrict u = k <= FACT_K_REGS ? ubuf : work, *restrict gu =
                                                         k <= FACT_K_REGS ? gbuf : work + k;
    for (int e = 0; e < epochs; e++) {
        vd sse[2] = {{0}, {0}};
        for (size_t q = 0; q < nk; q++) dv[q] = (vf){0};
        for (size_t blk = 0; blk < nb; blk++) {
            for (int r = 0; r < k; r++) u[r] = ut[(size_t)r * nb + blk], gu[r] = (vf){0};
            for (int j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * k;
                /* E's row entries, as U V^T then minus A */
                vf err = {0};
                for (int r = 0; r < k; r++) err += u[r] * vj[r];
                err -= at[(size_t)j * nb + blk];
                ADD_SQUARE_D(sse, err);
                /* dU's sum over j for these rows; dV's per-lane sum over rows,
                 * both with the U the epoch started with */
                vf *dvj = dv + (size_t)j * k;
                for (int r = 0; r < k; r++) {
                    gu[r] += err * vj[r];
                    dvj[r] += err * u[r];
                }
            }
            /* U's rows are done with: their step (dl_sgd_step, dU = 2 sum) */
            for (int r = 0; r < k; r++) ut[(size_t)r * nb + blk] = u[r] - lr * (2.0f * gu[r]);
        }
        hist[(size_t)e * hist_stride] = (float)lane_sum_d(sse);
        for (size_t q = 0; q < nk; q++) v[q] = dl_sgd_step(v[q], 2.0f * lane_sum_f(&dv[q]), lr);
    }
}

/* One model for `epochs` epochs. at: A transposed into blocks, at[j * nb +
 * blk] = column j of rows blk*L .. blk*L + L - 1 (zero past row m). ut:
 * workspace for U in the same layout (k x nb), dv: n*k per-lane
 * accumulators of dV, work: 2k vectors for ranks past FACT_K_REGS. */
DL_FUSED_CLONES
static void factorise_model(int m, int n, int k, size_t nb, const vf *restrict at,
                            float *restrict params, float lr, int epochs, float *restrict hist,
                            size_t hist_stride, vf *restrict ut, vf *restrict dv, vf *restrict work)
{
    float *u = params, *v = params + (size_t)m * k;
    memset(ut, 0, sizeof(vf) * nb * (size_t)k);
    for (int i = 0; i < m; i++)
        for (int r = 0; r < k; r++)
            ut[(size_t)r * nb + i / DL_FUSED_LANES][i % DL_FUSED_LANES] = u[(size_t)i * k + r];
    switch (k) {
    case 1: factorise_epochs(n, 1, nb, at, v, lr, epochs, hist, hist_stride, ut, dv, work); break;
    case 2: factorise_epochs(n, 2, nb, at, v, lr, epochs, hist, hist_stride, ut, dv, work); break;
    case 3: factorise_epochs(n, 3, nb, at, v, lr, epochs, hist, hist_stride, ut, dv, work); break;
    case 4: factorise_epochs(n, 4, nb, at, v, lr, epochs, hist, hist_stride, ut, dv, work); break;
    default: factorise_epochs(n, k, nb, at, v, lr, epochs, hist, hist_stride, ut, dv, work);
    }
    for (int i = 0; i < m; i++)
        for (int r = 0; r < k; r++)
            u[(size_t)i * k + r] = ut[(size_t)r * nb + i / DL_FUSED_LANES][i % DL_FUSED_LANES];
}

static dl_status cpu_fused_factorise(dl_backend *be, const dl_fused_factorise_args *a)
{
    const int m = a->m, n = a->n, k = a->k, S = a->models;
    const size_t nb = blocks_of((size_t)m), P = ((size_t)m + n) * k;
    vf *at = aligned_alloc(sizeof(vf), sizeof(vf) * nb * (size_t)n);
    if (!at) return DL_FAIL(DL_E_MEMORY, "fused_factorise: out of host memory");
    memset(at, 0, sizeof(vf) * nb * (size_t)n);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            at[(size_t)j * nb + i / DL_FUSED_LANES][i % DL_FUSED_LANES] = a->a[(size_t)i * n + j];
    int failed = 0;
    const size_t ws = nb * (size_t)k + (size_t)n * k + 2 * (size_t)k;
    FOR_MODELS(
        b, S, vf *w = aligned_alloc(sizeof(vf), sizeof(vf) * ws);
        if (!w) { NOTE_FAILURE(failed); } else {
            factorise_model(m, n, k, nb, at, a->params + (size_t)b * P, a->lr, a->epochs,
                            a->hist + b, (size_t)S, w, w + nb * (size_t)k,
                            w + nb * (size_t)k + (size_t)n * k);
            free(w);
        });
    free(at);
    if (failed) return DL_FAIL(DL_E_MEMORY, "fused_factorise: out of host memory");
    return DL_OK;
}

/* --- MLP ---------------------------------------------------------------------- */

/* A block of rows of one split: where its rows start, how many are real. */
typedef struct {
    int row0, rows;
} mlp_block;

/* Everything one model needs during a call, in one allocation. */
typedef struct {
    int d, h, c;
    size_t P, w1, b1, w2, b2;
    int ntb, nvb;     /* train and validation blocks */
    mlp_block *tb;    /* ntb: the training blocks, batch by batch */
    int *batch_first; /* batches + 1: the first block of each batch */
    int batches;
    vf *xt, *xv;      /* ntb x d, nvb x d: the splits' blocks, transposed */
    vi *yt, *yv;      /* ntb, nvb: their labels (0 in the padding lanes) */
    vf *hid, *z, *dz; /* h, c, c: one block's activations */
    vf *gw1, *gw2;    /* d*h, h*c: per-lane weight gradients */
    vd *gb1, *gb2;    /* 2h, 2c: per-lane bias gradients, pairs of four lanes */
    float *grad;      /* P: the summed gradient */
} mlp_ws;

/* Splits [0, rows) into batches of `batch` rows (the last may be short),
 * each into blocks of L rows. Returns the block count; with `out` fills it. */
static int tile(int rows, int batch, mlp_block *out, int *batch_first)
{
    int nb = 0, bi = 0;
    for (int r0 = 0; r0 < rows; r0 += batch, bi++) {
        int end = r0 + batch < rows ? r0 + batch : rows;
        if (batch_first) batch_first[bi] = nb;
        for (int b0 = r0; b0 < end; b0 += DL_FUSED_LANES, nb++)
            if (out)
                out[nb] = (mlp_block){b0, end - b0 < DL_FUSED_LANES ? end - b0 : DL_FUSED_LANES};
    }
    if (batch_first) batch_first[bi] = nb;
    return nb;
}

/* The blocks of a split: its rows' features transposed into xt, their
 * labels into yt (zero rows and label 0 past the split's end). */
static void transpose_blocks(vf *xt, vi *yt, const float *x, const int32_t *y, const mlp_block *blk,
                             int nblk, int d)
{
    memset(xt, 0, sizeof(vf) * (size_t)nblk * d);
    memset(yt, 0, sizeof(vi) * (size_t)nblk);
    for (int bi = 0; bi < nblk; bi++)
        for (int l = 0; l < blk[bi].rows; l++) {
            for (int p = 0; p < d; p++)
                xt[(size_t)bi * d + p][l] = x[(size_t)(blk[bi].row0 + l) * d + p];
            yt[bi][l] = y[blk[bi].row0 + l];
        }
}

/* Places `bytes` at *off (rounded up to whole vd) and returns its offset. */
static size_t carve(size_t *off, size_t bytes)
{
    size_t at = *off;
    *off += (bytes + sizeof(vd) - 1) / sizeof(vd) * sizeof(vd);
    return at;
}

/* Lays out the workspace from `base` (NULL: only measures); returns its size. */
static size_t mlp_ws_layout(mlp_ws *w, char *base)
{
    const size_t V = sizeof(vf), D = sizeof(vd), d = (size_t)w->d, h = (size_t)w->h,
                 c = (size_t)w->c;
    size_t off = 0, o[14];
    o[0] = carve(&off, sizeof(mlp_block) * (size_t)(w->ntb + w->nvb));
    o[1] = carve(&off, sizeof(int) * (size_t)(w->batches + 1));
    o[2] = carve(&off, V * (size_t)w->ntb * d);
    o[3] = carve(&off, V * (size_t)w->nvb * d);
    o[4] = carve(&off, V * h);
    o[5] = carve(&off, V * c);
    o[6] = carve(&off, V * c);
    o[7] = carve(&off, V * d * h);
    o[8] = carve(&off, V * h * c);
    o[9] = carve(&off, 2 * D * h);
    o[10] = carve(&off, 2 * D * c);
    o[11] = carve(&off, sizeof(float) * w->P);
    o[12] = carve(&off, sizeof(vi) * (size_t)w->ntb);
    o[13] = carve(&off, sizeof(vi) * (size_t)w->nvb);
    if (base) {
        w->tb = (mlp_block *)(base + o[0]);
        w->batch_first = (int *)(base + o[1]);
        w->xt = (vf *)(base + o[2]);
        w->xv = (vf *)(base + o[3]);
        w->hid = (vf *)(base + o[4]);
        w->z = (vf *)(base + o[5]);
        w->dz = (vf *)(base + o[6]);
        w->gw1 = (vf *)(base + o[7]);
        w->gw2 = (vf *)(base + o[8]);
        w->gb1 = (vd *)(base + o[9]);
        w->gb2 = (vd *)(base + o[10]);
        w->grad = (float *)(base + o[11]);
        w->yt = (vi *)(base + o[12]);
        w->yv = (vi *)(base + o[13]);
    }
    return off;
}

/* Allocates and fills the workspace of model b; NULL when out of memory. */
static char *mlp_ws_make(const dl_fused_mlp_args *a, int b, mlp_ws *w)
{
    const int d = a->d, h = a->h, c = a->c;
    *w = (mlp_ws){.d = d, .h = h, .c = c};
    w->w1 = 0, w->b1 = (size_t)d * h, w->w2 = w->b1 + (size_t)h, w->b2 = w->w2 + (size_t)h * c;
    w->P = w->b2 + (size_t)c;
    w->batches = (a->n_train + a->batch - 1) / a->batch;
    w->ntb = tile(a->n_train, a->batch, NULL, NULL);
    w->nvb = (int)blocks_of((size_t)a->n_val);
    char *mem = aligned_alloc(sizeof(vd), mlp_ws_layout(w, NULL));
    if (!mem) return NULL;
    mlp_ws_layout(w, mem);
    tile(a->n_train, a->batch, w->tb, w->batch_first);
    mlp_block *vb = w->tb + w->ntb;
    tile(a->n_val, a->n_val, vb, NULL);
    transpose_blocks(w->xt, w->yt, a->x_train + (size_t)b * a->n_train * d,
                     a->y_train + (size_t)b * a->n_train, w->tb, w->ntb, d);
    transpose_blocks(w->xv, w->yv, a->x_val + (size_t)b * a->n_val * d,
                     a->y_val + (size_t)b * a->n_val, vb, w->nvb, d);
    return mem;
}

/* Forward, loss and (with `grad`) backward over blocks [b0, b1) of a split
 * whose blocks' labels are y: the mean loss and accuracy over `rows` rows,
 * and the gradient of the mean loss in w->grad. */
static inline __attribute__((always_inline)) void
mlp_pass_body(mlp_ws *restrict w, const float *restrict p, const vf *restrict x,
              const mlp_block *restrict blk, int b0, int b1, const vi *restrict y, int rows,
              const bool grad, float *loss, float *acc, const int d, const int c)
{
    const int h = w->h;
    const float *w1 = p + w->w1, *bias1 = p + w->b1, *w2 = p + w->w2, *bias2 = p + w->b2;
    vf *restrict hid = w->hid, *restrict z = w->z;
    vf *restrict gw1 = w->gw1, *restrict gw2 = w->gw2;
    vd *restrict gb1 = w->gb1, *restrict gb2 = w->gb2;
    if (grad) {
        for (size_t i = 0; i < (size_t)d * h; i++) gw1[i] = (vf){0};
        for (size_t i = 0; i < (size_t)h * c; i++) gw2[i] = (vf){0};
        for (int j = 0; j < 2 * h; j++) gb1[j] = (vd){0};
        for (int k = 0; k < 2 * c; k++) gb2[k] = (vd){0};
    }
    const float scale = 1.0f / (float)rows;
    const vf zero = {0};
    vi lane = {0};
    for (int l = 0; l < DL_FUSED_LANES; l++) lane[l] = l;
    vd lsum[2] = {{0}, {0}};
    vi correct = {0};
    for (int bi = b0; bi < b1; bi++) {
        const vf *xb = x + (size_t)bi * d;
        /* hid = relu(X W1 + b1): the sum over features in order, then the bias */
        for (int j = 0; j < h; j++) {
            vf s = {0};
            for (int q = 0; q < d; q++) s += xb[q] * w1[(size_t)q * h + j];
            s += bias1[j];
            hid[j] = (vf)((vi)s & (s > zero));
        }
        /* logits = hid W2 + b2 */
        for (int k = 0; k < c; k++) {
            vf s = {0};
            for (int j = 0; j < h; j++) s += hid[j] * w2[(size_t)j * c + k];
            z[k] = s + bias2[k];
        }
        /* the loss of the block's rows at once; the padding lanes count for
         * nothing and their gradient rows are zero */
        const vi valid = lane < blk[bi].rows;
        vf lrow;
        vi ok;
        dl_softmax_xent_lanes(z, c, &y[bi], grad ? z : NULL, scale, &lrow, &ok);
        lrow = DL_VSEL(valid, lrow, zero);
        ADD_D(lsum, lrow);
        correct -= ok & valid;
        if (!grad) continue;
        /* z now holds dz */
        for (int k = 0; k < c; k++) z[k] = DL_VSEL(valid, z[k], zero);
        /* dW2 += hid^T dz, db2 += dz, dhid = (dz W2^T) masked, dW1 += X^T dhid */
        for (int k = 0; k < c; k++) ADD_D(gb2 + 2 * k, z[k]);
        for (int j = 0; j < h; j++) {
            vf s = {0};
            for (int k = 0; k < c; k++) {
                gw2[(size_t)j * c + k] += hid[j] * z[k];
                s += z[k] * w2[(size_t)j * c + k];
            }
            vf dh = (vf)((vi)s & (hid[j] > zero));
            ADD_D(gb1 + 2 * j, dh);
            for (int q = 0; q < d; q++) gw1[(size_t)q * h + j] += xb[q] * dh;
        }
    }
    long ncorrect = 0;
    for (int l = 0; l < DL_FUSED_LANES; l++) ncorrect += correct[l];
    *loss = (float)(lane_sum_d(lsum) / rows);
    *acc = (float)((double)ncorrect / rows);
    if (!grad) return;
    float *g = w->grad;
    for (size_t i = 0; i < (size_t)d * h; i++) g[w->w1 + i] = lane_sum_f(&gw1[i]);
    for (int j = 0; j < h; j++) g[w->b1 + j] = (float)lane_sum_d(gb1 + 2 * j);
    for (size_t i = 0; i < (size_t)h * c; i++) g[w->w2 + i] = lane_sum_f(&gw2[i]);
    for (int k = 0; k < c; k++) g[w->b2 + k] = (float)lane_sum_d(gb2 + 2 * k);
}

/* mlp_pass_body with the shapes that are short loops (features, classes)
 * made constants where they are small, so that those loops unroll. */
#define PASS(grad_, d_, c_) mlp_pass_body(w, p, x, blk, b0, b1, y, rows, grad_, loss, acc, d_, c_)
#define PASS_C(grad_)                                                                              \
    do {                                                                                           \
        if (w->d == 4 && w->c == 3)                                                                \
            PASS(grad_, 4, 3);                                                                     \
        else if (w->c == 2)                                                                        \
            PASS(grad_, w->d, 2);                                                                  \
        else if (w->c == 3)                                                                        \
            PASS(grad_, w->d, 3);                                                                  \
        else if (w->c == 4)                                                                        \
            PASS(grad_, w->d, 4);                                                                  \
        else                                                                                       \
            PASS(grad_, w->d, w->c);                                                               \
    } while (0)

DL_FUSED_CLONES
static void mlp_pass(mlp_ws *restrict w, const float *restrict p, const vf *restrict x,
                     const mlp_block *restrict blk, int b0, int b1, const vi *restrict y, int rows,
                     bool grad, float *loss, float *acc)
{
    if (grad)
        PASS_C(true);
    else
        PASS_C(false);
}
#undef PASS_C
#undef PASS

/* One optimiser step on every parameter (dl_optim_step's formulas). */
static void mlp_step(const dl_optim *o, float *restrict p, const float *restrict g,
                     float *restrict m, float *restrict v, size_t n, int t)
{
    switch (o->kind) {
    case DL_OPTIM_SGD:
        for (size_t i = 0; i < n; i++) p[i] = dl_sgd_step(p[i], g[i], o->lr);
        break;
    case DL_OPTIM_MOMENTUM:
        for (size_t i = 0; i < n; i++)
            p[i] = dl_momentum_step(p[i], g[i], &m[i], o->lr, o->momentum);
        break;
    case DL_OPTIM_ADAM: {
        float c1, c2;
        dl_adam_corrections(o->beta1, o->beta2, t, &c1, &c2);
        for (size_t i = 0; i < n; i++)
            p[i] = dl_adam_step_corrected(p[i], g[i], &m[i], &v[i], o->lr, o->beta1, o->beta2,
                                          o->eps, c1, c2);
        break;
    }
    }
}

/* Model b for the call's epochs. Full batch: the training pass that ends
 * an epoch also yields the next step's gradient (the first one is computed
 * at the start of the call, from the same parameters, so it is the same
 * whichever call computes it; the call's last epoch leaves it to the next
 * call). */
static void mlp_model(const dl_fused_mlp_args *a, int b, mlp_ws *w)
{
    const size_t P = w->P, S = (size_t)a->models;
    float *p = a->params + (size_t)b * P;
    float *m = a->m ? a->m + (size_t)b * P : NULL, *v = a->v ? a->v + (size_t)b * P : NULL;
    const mlp_block *vb = w->tb + w->ntb;
    const bool full = w->batches == 1;
    int64_t step = a->first_step;
    float loss, acc;
    if (full && a->epochs > 0)
        mlp_pass(w, p, w->xt, w->tb, 0, w->ntb, w->yt, a->n_train, true, &loss, &acc);
    for (int e = 0; e < a->epochs; e++) {
        for (int bi = 0; bi < w->batches; bi++) {
            const int f = w->batch_first[bi], l = w->batch_first[bi + 1];
            const int rows = bi + 1 < w->batches ? a->batch : a->n_train - bi * a->batch;
            if (!full) mlp_pass(w, p, w->xt, w->tb, f, l, w->yt, rows, true, &loss, &acc);
            mlp_step(&a->opt, p, w->grad, m, v, P, (int)++step);
        }
        float *row = a->hist + (size_t)e * DL_MLP_METRICS_N * S + (size_t)b;
        mlp_pass(w, p, w->xv, vb, 0, w->nvb, w->yv, a->n_val, false, &row[1 * S], &row[3 * S]);
        mlp_pass(w, p, w->xt, w->tb, 0, w->ntb, w->yt, a->n_train, full && e + 1 < a->epochs,
                 &row[0], &row[2 * S]);
    }
}

static dl_status cpu_fused_mlp(dl_backend *be, const dl_fused_mlp_args *a)
{
    int failed = 0;
    FOR_MODELS(
        b, a->models, mlp_ws w; char *mem = mlp_ws_make(a, b, &w);
        if (!mem) { NOTE_FAILURE(failed); } else {
            mlp_model(a, b, &w);
            free(mem);
        });
    if (failed) return DL_FAIL(DL_E_MEMORY, "fused_mlp: out of host memory");
    return DL_OK;
}

void dl_cpu_fused_attach(dl_backend *be)
{
    be->fused_limit = cpu_fused_limit;
    be->fused_factorise = cpu_fused_factorise;
    be->fused_mlp = cpu_fused_mlp;
}
