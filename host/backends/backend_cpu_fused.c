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
 * the end; the factorisation's squares are first summed in float over
 * groups of up to 4 columns of a block (FACT_SQ_GROUP) and each group's
 * partial added in double. That order is fixed by the shapes alone, so a model's bits do
 * not depend on the thread count, on how many models share a call, or on
 * how the epochs are cut into calls. The MLP's softmax cross-entropy takes
 * a block's rows at once with vec_math.h's exp and log (within 1 ulp of
 * the C library's expf and logf, not the same bits).
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

/* Rows per block: one 256-bit vector of floats. */
#define DL_FUSED_LANES 8
_Static_assert(DL_FUSED_LANES == DL_VEC_LANES, "a block's column is one of vec_math.h's vectors");
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

/* acc[0], acc[1] += the lanes of x (0-3, 4-7) in double. */
#define LANES_LO(x) __builtin_shufflevector(x, x, 0, 1, 2, 3)
#define LANES_HI(x) __builtin_shufflevector(x, x, 4, 5, 6, 7)
#define ADD_D(acc, x)                                                                              \
    do {                                                                                           \
        (acc)[0] += __builtin_convertvector(LANES_LO(x), vd);                                      \
        (acc)[1] += __builtin_convertvector(LANES_HI(x), vd);                                      \
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
/* Columns per float partial of the squared error: a block's squares of
 * this many consecutive columns are summed per lane in float, and each
 * partial is added in double to the epoch's per-lane sums. Converting once
 * per group rather than once per column halves the sweep's instructions on
 * iris; a partial of at most 4 non-negative terms (each a rounded square)
 * carries a relative error of at most 4u (u = 2^-24, Higham's gamma_4 plus
 * the squares' own rounding), far inside the history's float rounding. */
#define FACT_SQ_GROUP 4

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
            vf sq = {0};
            for (int j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * k;
                /* E's row entries, as U V^T then minus A */
                vf err = {0};
                for (int r = 0; r < k; r++) err += u[r] * vj[r];
                err -= at[(size_t)j * nb + blk];
                sq += err * err;
                if (j % FACT_SQ_GROUP == FACT_SQ_GROUP - 1 || j == n - 1) {
                    ADD_D(sse, sq);
                    sq = (vf){0};
                }
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

/* Blocks per chunk of the forward sweep: enough independent blocks in a
 * row for the processor to overlap one block's chain of dependent
 * operations (features -> hidden -> logits -> softmax -> loss) with the
 * next ones', few enough that the chunk's logits stay in L1. */
#define MLP_CHUNK 16
/* Unrolls a loop over a chunk's blocks: its body is a dozen instructions. */
#define MLP_UNROLL _Pragma("GCC unroll 4")

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
    vf *xt, *xv;  /* ntb x d, nvb x d: the splits' blocks, transposed */
    vi *yt, *yv;  /* ntb, nvb: their labels (0 in the padding lanes) */
    int mb;       /* the most blocks in one batch */
    vf *hid, *dz; /* mb x h, mb x c: a batch's hidden activations, logit gradients */
    vf *dh;       /* mb x h: the gradient at the hidden layer's input */
    int cb;       /* blocks per chunk of the forward sweep (MLP_CHUNK) */
    vf *hw;       /* cb x h: a chunk's hidden activations (without a gradient) */
    vf *zs;       /* cb x c: a chunk's logits, then their gradients */
    vf *g1, *g2;  /* (d+1)*h, (h+1)*c: per-lane gradients of [W1 | b1], [W2 | b2] */
    float *grad;  /* P: the summed gradient */
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
    const size_t V = sizeof(vf), d = (size_t)w->d, h = (size_t)w->h, c = (size_t)w->c,
                 mb = (size_t)w->mb;
    size_t off = 0;
    const size_t tb = carve(&off, sizeof(mlp_block) * (size_t)(w->ntb + w->nvb)),
                 bf = carve(&off, sizeof(int) * (size_t)(w->batches + 1)),
                 xt = carve(&off, V * (size_t)w->ntb * d), xv = carve(&off, V * (size_t)w->nvb * d),
                 yt = carve(&off, sizeof(vi) * (size_t)w->ntb),
                 yv = carve(&off, sizeof(vi) * (size_t)w->nvb), hid = carve(&off, V * mb * h),
                 dz = carve(&off, V * mb * c), dh = carve(&off, V * mb * h),
                 hw = carve(&off, V * (size_t)w->cb * (h + c)), g1 = carve(&off, V * (d + 1) * h),
                 g2 = carve(&off, V * (h + 1) * c), grad = carve(&off, sizeof(float) * w->P);
    if (base) {
        w->tb = (mlp_block *)(base + tb);
        w->batch_first = (int *)(base + bf);
        w->xt = (vf *)(base + xt);
        w->xv = (vf *)(base + xv);
        w->yt = (vi *)(base + yt);
        w->yv = (vi *)(base + yv);
        w->hid = (vf *)(base + hid);
        w->dz = (vf *)(base + dz);
        w->dh = (vf *)(base + dh);
        w->hw = (vf *)(base + hw);
        w->zs = w->hw + (size_t)w->cb * h;
        w->g1 = (vf *)(base + g1);
        w->g2 = (vf *)(base + g2);
        w->grad = (float *)(base + grad);
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
    w->mb = (int)blocks_of((size_t)a->batch);
    w->cb = MLP_CHUNK;
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

/* out[i*ldo + k] = sum over blocks b < nb of A[b*lda + i] * B[b*ldb + k]
 * for i < ti, k < tk (constants where this is inlined, so that the ti x tk
 * sums stay in registers), each sum from zero in block order. */
static inline __attribute__((always_inline)) void outer_tile(vf *restrict out, size_t ldo,
                                                             const vf *restrict A, size_t lda,
                                                             const vf *restrict B, size_t ldb,
                                                             int nb, const int ti, const int tk)
{
    vf acc[4][4];
    for (int i = 0; i < ti; i++)
        for (int k = 0; k < tk; k++) acc[i][k] = (vf){0};
    for (int b = 0; b < nb; b++)
        for (int i = 0; i < ti; i++) {
            const vf a = A[(size_t)b * lda + i];
            for (int k = 0; k < tk; k++) acc[i][k] += a * B[(size_t)b * ldb + k];
        }
    for (int i = 0; i < ti; i++)
        for (int k = 0; k < tk; k++) out[(size_t)i * ldo + k] = acc[i][k];
}

/* The per-lane sums over a batch's nb blocks of the outer products of the
 * blocks' rows: out[i*m + k] = sum_b A[b*n + i] * B[b*m + k] (i < n,
 * k < m), in tiles of up to 4 x 3. */
static inline __attribute__((always_inline)) void
outer_sum(vf *restrict out, const vf *restrict A, int n, const vf *restrict B, int m, int nb)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        int k = 0;
        for (; k + 3 <= m; k += 3)
            outer_tile(out + (size_t)i * m + k, (size_t)m, A + i, (size_t)n, B + k, (size_t)m, nb,
                       4, 3);
        for (; k < m; k++)
            outer_tile(out + (size_t)i * m + k, (size_t)m, A + i, (size_t)n, B + k, (size_t)m, nb,
                       4, 1);
    }
    for (; i < n; i++) {
        int k = 0;
        for (; k + 3 <= m; k += 3)
            outer_tile(out + (size_t)i * m + k, (size_t)m, A + i, (size_t)n, B + k, (size_t)m, nb,
                       1, 3);
        for (; k < m; k++)
            outer_tile(out + (size_t)i * m + k, (size_t)m, A + i, (size_t)n, B + k, (size_t)m, nb,
                       1, 1);
    }
}

/* out[k] = sum over blocks b < nb of B[b*m + k], for k < m, each sum from
 * zero in block order, four at a time in registers. */
static inline __attribute__((always_inline)) void col_sum(vf *restrict out, const vf *restrict B,
                                                          int m, int nb)
{
    int k = 0;
    for (; k + 4 <= m; k += 4) {
        vf s[4] = {{0}, {0}, {0}, {0}};
        for (int b = 0; b < nb; b++)
            for (int t = 0; t < 4; t++) s[t] += B[(size_t)b * m + k + t];
        for (int t = 0; t < 4; t++) out[k + t] = s[t];
    }
    for (; k < m; k++) {
        vf s = {0};
        for (int b = 0; b < nb; b++) s += B[(size_t)b * m + k];
        out[k] = s;
    }
}

/* out[i] = the sum of the lanes of v[i] in lane order from zero, as
 * lane_sum_f, for i < n: eight vectors at a time transposed, so that the
 * sums run across vectors. */
static inline __attribute__((always_inline)) void lane_sums(float *restrict out,
                                                            const vf *restrict v, size_t n)
{
    const size_t full = n / 8 * 8;
    size_t i = 0;
#if DL_FUSED_LANES == 8
    for (; i < full; i += 8) {
        const vf *r = v + i;
        /* t[l] = lane l of r[0..8) */
        vf a0 = __builtin_shufflevector(r[0], r[1], 0, 8, 1, 9, 4, 12, 5, 13);
        vf a1 = __builtin_shufflevector(r[0], r[1], 2, 10, 3, 11, 6, 14, 7, 15);
        vf a2 = __builtin_shufflevector(r[2], r[3], 0, 8, 1, 9, 4, 12, 5, 13);
        vf a3 = __builtin_shufflevector(r[2], r[3], 2, 10, 3, 11, 6, 14, 7, 15);
        vf a4 = __builtin_shufflevector(r[4], r[5], 0, 8, 1, 9, 4, 12, 5, 13);
        vf a5 = __builtin_shufflevector(r[4], r[5], 2, 10, 3, 11, 6, 14, 7, 15);
        vf a6 = __builtin_shufflevector(r[6], r[7], 0, 8, 1, 9, 4, 12, 5, 13);
        vf a7 = __builtin_shufflevector(r[6], r[7], 2, 10, 3, 11, 6, 14, 7, 15);
        /* a0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], ... */
        vf b0 = __builtin_shufflevector(a0, a2, 0, 1, 8, 9, 4, 5, 12, 13);
        vf b1 = __builtin_shufflevector(a0, a2, 2, 3, 10, 11, 6, 7, 14, 15);
        vf b2 = __builtin_shufflevector(a1, a3, 0, 1, 8, 9, 4, 5, 12, 13);
        vf b3 = __builtin_shufflevector(a1, a3, 2, 3, 10, 11, 6, 7, 14, 15);
        vf b4 = __builtin_shufflevector(a4, a6, 0, 1, 8, 9, 4, 5, 12, 13);
        vf b5 = __builtin_shufflevector(a4, a6, 2, 3, 10, 11, 6, 7, 14, 15);
        vf b6 = __builtin_shufflevector(a5, a7, 0, 1, 8, 9, 4, 5, 12, 13);
        vf b7 = __builtin_shufflevector(a5, a7, 2, 3, 10, 11, 6, 7, 14, 15);
        /* b0 = lane 0 of r0..r3 | lane 4 of r0..r3, b1 = lane 1 | lane 5, ... */
        const vf t[8] = {
            __builtin_shufflevector(b0, b4, 0, 1, 2, 3, 8, 9, 10, 11),
            __builtin_shufflevector(b1, b5, 0, 1, 2, 3, 8, 9, 10, 11),
            __builtin_shufflevector(b2, b6, 0, 1, 2, 3, 8, 9, 10, 11),
            __builtin_shufflevector(b3, b7, 0, 1, 2, 3, 8, 9, 10, 11),
            __builtin_shufflevector(b0, b4, 4, 5, 6, 7, 12, 13, 14, 15),
            __builtin_shufflevector(b1, b5, 4, 5, 6, 7, 12, 13, 14, 15),
            __builtin_shufflevector(b2, b6, 4, 5, 6, 7, 12, 13, 14, 15),
            __builtin_shufflevector(b3, b7, 4, 5, 6, 7, 12, 13, 14, 15),
        };
        vf s = {0};
        for (int l = 0; l < 8; l++) s += t[l];
        memcpy(out + i, &s, sizeof s);
    }
#endif
    for (; i < n; i++) out[i] = lane_sum_f(&v[i]);
}

/* Forward, loss and (with `grad`) backward over blocks [b0, b1) of a split
 * whose blocks' labels are y: the mean loss and accuracy over `rows` rows,
 * and the gradient of the mean loss in w->grad.
 *
 * Chunk by chunk of MLP_CHUNK blocks, one step at a time over the chunk's
 * blocks (the hidden layer and logits, then the softmax, then the gradient
 * at the hidden layer), so that consecutive iterations are independent;
 * each lane's arithmetic is the same as one block at a time. With a
 * gradient, the sweep keeps the batch's hidden activations, logit
 * gradients and hidden-layer gradients, and the weight gradients' per-lane
 * sums over the blocks are taken after it, each in a register (the same
 * sums in the same order as adding each block's products as it comes). */
static inline __attribute__((always_inline)) void
mlp_pass_body(mlp_ws *restrict w, const float *restrict p, const vf *restrict x,
              const mlp_block *restrict blk, int b0, int b1, const vi *restrict y, int rows,
              const bool grad, float *loss, float *acc, const int d, const int h, const int c)
{
    const int nb = b1 - b0;
    const float *w1 = p + w->w1, *bias1 = p + w->b1, *w2 = p + w->w2, *bias2 = p + w->b2;
    const float scale = 1.0f / (float)rows;
    const vf zero = {0};
    vi lane = {0};
    for (int l = 0; l < DL_FUSED_LANES; l++) lane[l] = l;
    vd lsum[2] = {{0}, {0}};
    vi correct = {0};
    for (int c0 = b0; c0 < b1; c0 += MLP_CHUNK) {
        const int c1 = c0 + MLP_CHUNK < b1 ? c0 + MLP_CHUNK : b1;
        /* hid = relu(X W1 + b1): the sum over features in order, then the
         * bias; logits = hid W2 + b2. A unit's or a class's weights at a
         * time, for every block of the chunk, so that they stay in registers. */
        vf *restrict hc = grad ? w->hid + (size_t)(c0 - b0) * h : w->hw;
        vf *restrict zc = w->zs;
        for (int j = 0; j < h; j++) MLP_UNROLL for (int bi = c0; bi < c1; bi++)
            {
                const vf *xb = x + (size_t)bi * d;
                /* from the first product rather than from zero: the sums
                 * differ at most in the sign of a zero, which the ReLU
                 * makes +0 either way */
                vf s = xb[0] * w1[j];
                for (int q = 1; q < d; q++) s += xb[q] * w1[(size_t)q * h + j];
                s += bias1[j];
                hc[(size_t)(bi - c0) * h + j] = (vf)((vi)s & (s > zero));
            }
        for (int k = 0; k < c; k++) MLP_UNROLL for (int bi = c0; bi < c1; bi++)
            {
                const vf *hb = hc + (size_t)(bi - c0) * h;
                vf s = {0};
                for (int j = 0; j < h; j++) s += hb[j] * w2[(size_t)j * c + k];
                zc[(size_t)(bi - c0) * c + k] = s + bias2[k];
            }
        /* the loss of each block's rows at once; the padding lanes count
         * for nothing and their gradient rows are zero */
        for (int bi = c0; bi < c1; bi++) {
            vf *restrict z = w->zs + (size_t)(bi - c0) * c;
            const vi valid = lane < blk[bi].rows;
            vf lrow;
            vi ok;
            dl_softmax_xent_lanes(z, c, &y[bi], grad ? z : NULL, scale, &lrow, &ok);
            lrow = DL_VSEL(valid, lrow, zero);
            ADD_D(lsum, lrow);
            correct -= ok & valid;
            if (!grad) continue;
            vf *restrict dz = w->dz + (size_t)(bi - b0) * c;
            for (int k = 0; k < c; k++) dz[k] = DL_VSEL(valid, z[k], zero);
        }
        if (!grad) continue;
        /* dhid = (dz W2^T) masked by the ReLU, a unit at a time */
        for (int j = 0; j < h; j++) MLP_UNROLL for (int bi = c0; bi < c1; bi++)
            {
                const size_t o = (size_t)(bi - b0);
                vf s = {0};
                for (int k = 0; k < c; k++) s += w->dz[o * c + k] * w2[(size_t)j * c + k];
                w->dh[o * h + j] = (vf)((vi)s & (w->hid[o * h + j] > zero));
            }
    }
    long ncorrect = 0;
    for (int l = 0; l < DL_FUSED_LANES; l++) ncorrect += correct[l];
    *loss = (float)(lane_sum_d(lsum) / rows);
    *acc = (float)((double)ncorrect / rows);
    if (!grad) return;
    /* dW2 = hid^T dz, dW1 = X^T dhid, per lane; db2, db1 per lane in double */
    /* per lane: dW2 = hid^T dz, db2 = the sum of dz, dW1 = X^T dhid, db1 =
     * the sum of dhid; then their lanes' sums, in the parameters' layout */
    vf *restrict g1 = w->g1, *restrict g2 = w->g2;
    outer_sum(g2, w->hid, h, w->dz, c, nb);
    col_sum(g2 + (size_t)h * c, w->dz, c, nb);
    outer_sum(g1, x + (size_t)b0 * d, d, w->dh, h, nb);
    col_sum(g1 + (size_t)d * h, w->dh, h, nb);
    lane_sums(w->grad + w->w1, g1, (size_t)(d + 1) * h);
    lane_sums(w->grad + w->w2, g2, (size_t)(h + 1) * c);
}

/* mlp_pass_body with the shapes that are short loops (features, classes)
 * made constants where they are small, so that those loops unroll, and
 * the lab's 4-12-3 network's all three. */
#define PASS(grad_, d_, c_)                                                                        \
    mlp_pass_body(w, p, x, blk, b0, b1, y, rows, grad_, loss, acc, d_, w->h, c_)
#define PASS_C(grad_)                                                                              \
    do {                                                                                           \
        if (w->d == 4 && w->h == 12 && w->c == 3)                                                  \
            mlp_pass_body(w, p, x, blk, b0, b1, y, rows, grad_, loss, acc, 4, 12, 3);              \
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
