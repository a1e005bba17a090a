/* The synthetic matrix A = L R^T + noise, addressable by rows: rows
 * [first, first + count) of the m x n matrix come out the same bits whether
 * one process makes all m rows or P ranks make one block each.
 *
 * Where each value comes from (Philox streams of the backend, dl_rand_normal):
 * - L (m x r) and R (n x r), entries ~ N(0, r^-1/2) so that the entries of
 *   L R^T are ~ N(0, 1): positions [0, m r) and [m r, (m + n) r) of stream
 *   `seed`, row-major; row i of L is positions [i r, (i + 1) r).
 * - the noise (m x n) ~ N(0, noise^2): positions [0, m n) of stream seed + 1;
 *   row i is [i n, (i + 1) n).
 * - each entry is computed in one fixed order, whatever the block:
 *       acc = 0; acc = fma(L[i][t], R[j][t], acc) for t = 0 .. r-1;
 *       A[i][j] = noise[i][j] + acc
 *   (float32, each step rounded once). A gemm's order may change with the
 *   block's size (OpenBLAS takes another kernel for small matrices), so the
 *   product is not left to one. This order is the one OpenBLAS's FMA kernels
 *   give a matrix of ordinary size, so such matrices keep the bits they had
 *   when a gemm made them.
 *
 * A block of the streams is drawn from an even position (normals come in
 * pairs, made from two consecutive uniforms); a generator whose normals are
 * not addressed by position (the splitmix fallback of a build without
 * cuRAND) is detected once and then drawn from the start of the stream. */
#include "factorise_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Noise values drawn and combined per step: bounds the temporaries. */
#define SYNTH_CHUNK ((size_t)1 << 20)

/* Does a draw at an even position give the values a draw from position 0
 * gives there? True of cuRAND's Philox on both backends. */
static dl_status addressed_by_position(dl_backend *be, bool *yes)
{
    float *d = NULL, a[6], b[2];
    DL_TRY(dl_alloc(be, sizeof a, (void **)&d));
    dl_status st = dl_rand_normal(be, d, 6, 0.0f, 1.0f, 0x5ca1ab1eULL, 0);
    if (!st) st = dl_download(be, a, d, sizeof a);
    if (!st) st = dl_rand_normal(be, d, 2, 0.0f, 1.0f, 0x5ca1ab1eULL, 4);
    if (!st) st = dl_download(be, b, d, sizeof b);
    dl_free(be, d);
    *yes = st == DL_OK && !memcmp(a + 4, b, sizeof b);
    return st;
}

/* host[0 .. n) = positions [pos, pos + n) of stream `seed`, N(0, std^2),
 * through the device buffer tmp (room for n + 1 values; `whole` when the
 * generator must start at position 0: room for pos + n). */
static dl_status normals_at(dl_backend *be, float *tmp, float *host, size_t n, float std,
                            uint64_t seed, uint64_t pos, bool by_position)
{
    if (n == 0) return DL_OK;
    uint64_t from = by_position ? pos & ~(uint64_t)1 : 0;
    size_t skip = (size_t)(pos - from);
    DL_TRY(dl_rand_normal(be, tmp, n + skip, 0.0f, std, seed, from));
    return dl_download(be, host, tmp + skip, sizeof(float) * n);
}

/* out[j] = noise[j] + sum_t l[t] rt[t][j] in the fixed order above, for one
 * row; rt is R transposed (r x n) so that the inner loop runs along the row
 * and vectorises. fmaf keeps one rounding per step with or without FMA
 * instructions; where the compiler can dispatch on them, the loop uses them. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("fma", "default")))
#endif
static void
combine_row(float *restrict out, const float *restrict noise, const float *restrict l,
            const float *restrict rt, int n, int r)
{
    for (int j = 0; j < n; j++) out[j] = 0.0f;
    for (int t = 0; t < r; t++) {
        const float lt = l[t], *row = rt + (size_t)t * n;
        for (int j = 0; j < n; j++) out[j] = fmaf(lt, row[j], out[j]);
    }
    for (int j = 0; j < n; j++) out[j] = noise[j] + out[j];
}

dl_status fact_synthetic_rows(dl_backend *be, const fact_synth *s, int first, int count,
                              fact_synth_sink sink, void *ud)
{
    const int m = s->m, n = s->n, r = s->true_rank;
    const float std_lr = 1.0f / sqrtf(sqrtf((float)r));
    bool by_position;
    DL_TRY(addressed_by_position(be, &by_position));
    /* Rows per step: SYNTH_CHUNK values, an even number of them so that the
     * noise stream continues from one step to the next. */
    size_t rows_step = SYNTH_CHUNK / (size_t)n;
    if (rows_step < 2) rows_step = 2;
    rows_step &= ~(size_t)1;
    if (rows_step > (size_t)count) rows_step = (size_t)count;
    const size_t lr_need = ((size_t)count + n) * r, noise_need = rows_step * n;
    const size_t tmp_n =
        by_position ? (lr_need > noise_need ? lr_need : noise_need) + 1
                    : ((size_t)m * n > ((size_t)m + n) * r ? (size_t)m * n : ((size_t)m + n) * r);
    float *tmp = NULL, *l = malloc(sizeof(float) * ((size_t)count * r + 1));
    float *rr = malloc(sizeof(float) * ((size_t)n * r + 1));
    float *rt = malloc(sizeof(float) * ((size_t)n * r + 1));
    float *noise = malloc(sizeof(float) * (noise_need + 1));
    float *out = malloc(sizeof(float) * (noise_need + 1));
    dl_status st =
        l && rr && rt && noise && out
            ? dl_alloc(be, sizeof(float) * tmp_n, (void **)&tmp)
            : DL_FAIL(DL_E_MEMORY, "out of host memory for a synthetic %dx%d matrix", m, n);
    if (!st)
        st = normals_at(be, tmp, l, (size_t)count * r, std_lr, s->seed, (uint64_t)first * r,
                        by_position);
    if (!st)
        st = normals_at(be, tmp, rr, (size_t)n * r, std_lr, s->seed, (uint64_t)m * r, by_position);
    for (int j = 0; !st && j < n; j++)
        for (int t = 0; t < r; t++) rt[(size_t)t * n + j] = rr[(size_t)j * r + t];
    for (int i0 = 0; !st && i0 < count; i0 += (int)rows_step) {
        const int rows = count - i0 < (int)rows_step ? count - i0 : (int)rows_step;
        st = normals_at(be, tmp, noise, (size_t)rows * n, s->noise, s->seed + 1,
                        (uint64_t)(first + i0) * n, by_position);
        for (int i = 0; !st && i < rows; i++)
            combine_row(out + (size_t)i * n, noise + (size_t)i * n, l + (size_t)(i0 + i) * r, rt, n,
                        r);
        if (!st) st = sink(ud, i0, rows, out);
    }
    dl_free(be, tmp);
    free(l), free(rr), free(rt), free(noise), free(out);
    return st;
}

/* A sink that copies the rows into one host block. */
static dl_status to_host(void *ud, int row, int rows, const float *v)
{
    const fact_synth_host *h = ud;
    memcpy(h->x + (size_t)row * h->n, v, sizeof(float) * (size_t)rows * h->n);
    return DL_OK;
}

dl_status dl_factorise_synthetic_rows(dl_backend *be, int m, int n, int true_rank, float noise,
                                      uint64_t data_seed, const dl_factorise_config *cfg,
                                      dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    dl_comm *comm = be->comm;
    if (!comm || dl_comm_size(comm) == 1)
        return dl_factorise_synthetic(be, m, n, true_rank, noise, data_seed, cfg, res);
    if (true_rank < 1) return DL_FAIL(DL_E_USAGE, "synthetic rank must be at least 1");
    DL_TRY(dl_factorise_validate(m, n, cfg));
    const int ranks = dl_comm_size(comm);
    if (m < ranks)
        return DL_FAIL(DL_E_USAGE, "the matrix has %d rows, fewer than the %d ranks sharing them",
                       m, ranks);
    int first, count;
    dl_comm_shard(m, ranks, dl_comm_rank(comm), &first, &count);
    /* the rows made here and their scaled copy, before either exists */
    DL_TRY(fact_rows_fit(be, count, n, cfg, 2 * (size_t)count * n));
    fact_synth s = {.m = m, .n = n, .true_rank = true_rank, .noise = noise, .seed = data_seed};
    fact_synth_host h = {.x = malloc(sizeof(float) * ((size_t)count * n + 1)), .n = n};
    dl_status st = h.x ? fact_synthetic_rows(be, &s, first, count, to_host, &h)
                       : DL_FAIL(DL_E_MEMORY, "out of host memory for %d rows", count);
    st = dl_comm_agree(comm, st);
    if (st == DL_OK) st = fact_rows(be, h.x, m, n, cfg, true, res);
    free(h.x);
    return st;
}
