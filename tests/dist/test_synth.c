/* The synthetic matrix by blocks of rows (host/tasks/factorise_synth.c), as
 * 1 rank or under mpirun: blocks of any size and start, on one rank or
 * gathered from several, are bit for bit the matrix made whole, and the
 * whole matrix is the documented formula over the backend's Philox streams
 * (L and R from stream seed, the noise from seed + 1, each entry
 * noise + (fma chain over t)). Shapes with odd row lengths put blocks at
 * odd stream positions. */
#include <string.h>

#include "dist_test.h"
#include "dlab/backend.h"
#include "dlab/comm.h"
#include "tasks/factorise_internal.h"

static dl_comm *C;
static int R, P;
static dl_backend *be;

typedef struct {
    float *x;
    int n;
} host_rows;

static dl_status keep(void *ud, int row, int rows, const float *v)
{
    host_rows *h = ud;
    memcpy(h->x + (size_t)row * h->n, v, sizeof(float) * (size_t)rows * h->n);
    return DL_OK;
}

/* Rows [first, first + count) into a new buffer. */
static float *make(const fact_synth *s, int first, int count)
{
    host_rows h = {malloc(sizeof(float) * ((size_t)count * s->n + 1)), s->n};
    dl_status st = fact_synthetic_rows(be, s, first, count, keep, &h);
    DL_CHECK(st == DL_OK, "rows %d..%d of %dx%d: %s", first, first + count, s->m, s->n,
             dl_errmsg());
    return h.x;
}

/* The formula, from streams drawn whole from position 0. */
static float *formula(const fact_synth *s)
{
    const int m = s->m, n = s->n, r = s->true_rank;
    size_t lr_n = ((size_t)m + n) * r, mn = (size_t)m * n;
    float *lr = malloc(sizeof(float) * lr_n), *noise = malloc(sizeof(float) * mn);
    float *a = malloc(sizeof(float) * mn), *d = NULL;
    DL_CHECK(dl_alloc(be, sizeof(float) * (lr_n > mn ? lr_n : mn), (void **)&d) == DL_OK, "alloc");
    dl_rand_normal(be, d, lr_n, 0.0f, 1.0f / sqrtf(sqrtf((float)r)), s->seed, 0);
    dl_download(be, lr, d, sizeof(float) * lr_n);
    dl_rand_normal(be, d, mn, 0.0f, s->noise, s->seed + 1, 0);
    dl_download(be, noise, d, sizeof(float) * mn);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float acc = 0.0f;
            for (int t = 0; t < r; t++)
                acc = fmaf(lr[(size_t)i * r + t], lr[((size_t)m + j) * r + t], acc);
            a[(size_t)i * n + j] = noise[(size_t)i * n + j] + acc;
        }
    dl_free(be, d);
    free(lr), free(noise);
    return a;
}

static void test_blocks(void)
{
    const fact_synth shapes[] = {{37, 13, 3, 0.1f, 11},
                                 {301, 37, 4, 0.1f, 1 ^ 0x5eed},
                                 {5, 999, 2, 0.5f, 7},
                                 {1200, 1000, 5, 0.1f, 3}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const fact_synth *s = &shapes[k];
        const size_t row = sizeof(float) * (size_t)s->n;
        float *whole = make(s, 0, s->m);
        if (R == 0 && s->m * (size_t)s->n <= 400000) {
            float *ref = formula(s);
            DL_CHECK(!memcmp(whole, ref, row * s->m), "%dx%d r%d: not the formula's matrix", s->m,
                     s->n, s->true_rank);
            free(ref);
        }
        /* Blocks of one process at every kind of start: odd, even, the last row. */
        const int cuts[][2] = {{1, 2}, {s->m / 3, s->m / 2 + 1}, {s->m - 1, s->m}};
        for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
            int a = cuts[c][0], b = cuts[c][1];
            float *part = make(s, a, b - a);
            DL_CHECK(!memcmp(part, whole + (size_t)a * s->n, row * (size_t)(b - a)),
                     "%dx%d: rows %d..%d differ from the whole matrix's", s->m, s->n, a, b);
            free(part);
        }
        /* This rank's block, gathered: the whole matrix. */
        int first, count;
        dl_comm_shard(s->m, P, R, &first, &count);
        float *mine = make(s, first, count);
        void *all = NULL;
        DL_CHECK(dl_comm_gather(C, mine, row * (size_t)count, &all, NULL) == DL_OK, "gather: %s",
                 dl_errmsg());
        if (R == 0)
            DL_CHECK(all && !memcmp(all, whole, row * s->m),
                     "%dx%d over %d ranks: the gathered blocks differ from one process's matrix",
                     s->m, s->n, P);
        free(all), free(mine), free(whole);
    }
}

int main(int argc, char **argv)
{
    char note[256];
    if (dl_comm_init(&argc, &argv, &C) != DL_OK ||
        dl_backend_create(DL_DEVICE_CPU, &be, note, sizeof note) != DL_OK) {
        fprintf(stderr, "test_synth: %s\n", dl_errmsg());
        return 1;
    }
    R = dl_comm_rank(C), P = dl_comm_size(C);
    DL_RUN(test_blocks);
    int rc = dl_t_ranks_summary(C, "test_synth");
    dl_backend_destroy(be);
    dl_comm_finalize(C);
    return rc;
}
