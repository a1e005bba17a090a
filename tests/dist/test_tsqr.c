/* TSQR (host/tasks/tsqr.c) against one-process SVDs, as 1 rank or under
 * mpirun: iris, a random 1000 x 20 matrix and a wide 15 x 20 one, with the
 * rows split evenly, with a rank holding fewer rows than columns, and with
 * an empty rank 0. Also the Householder QR it falls back on.
 * usage: test_tsqr path/to/iris.data */
#include <string.h>

#include "dist_test.h"
#include "dlab/backend.h"
#include "dlab/comm.h"
#include "dlab/data.h"
#include "dlab/ref.h"
#include "dlab/tsqr.h"

static dl_comm *C;
static int R, P;
static dl_backend *be;

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1), the same on every rank for the same (seed, i). */
static double unit(uint64_t seed, size_t i)
{
    return (double)(mix(seed * 0x100000001b3ull + i) >> 11) * 0x1p-52 - 1.0;
}

/* --- one-process references ----------------------------------------------- */

typedef struct {
    int m, n, p;
    double *means, *s, *u, *vt; /* u m x p, vt p x n, signs as dl_tsqr_svd fixes them */
    float *s32;                 /* the CPU backend's float32 SVD of the float-centred matrix */
} reference;

static void reference_free(reference *f)
{
    free(f->means), free(f->s), free(f->u), free(f->vt), free(f->s32);
    memset(f, 0, sizeof *f);
}

/* The float32 singular values the factorisation's SVD baseline computes
 * today: the columns centred in float as dl_dataset_center does, then the
 * backend's svd. */
static void backend_svd(int m, int n, const float *a, const double *means, float *s)
{
    int p = m < n ? m : n;
    float *ac = malloc(sizeof(float) * (size_t)m * n), *a_d = NULL, *s_d = NULL;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) ac[i * n + j] = a[i * n + j] - (float)means[j];
    dl_status st;
    if ((st = dl_alloc(be, sizeof(float) * (size_t)m * n, (void **)&a_d)) ||
        (st = dl_alloc(be, sizeof(float) * (size_t)p, (void **)&s_d)) ||
        (st = dl_upload(be, a_d, ac, sizeof(float) * (size_t)m * n)) ||
        (st = dl_svd(be, m, n, a_d, s_d, NULL, NULL)) ||
        (st = dl_download(be, s, s_d, sizeof(float) * (size_t)p)))
        DL_CHECK(false, "backend svd: %s", dl_errmsg());
    dl_free(be, a_d), dl_free(be, s_d);
    free(ac);
}

static void make_reference(int m, int n, const float *a, reference *f)
{
    int p = m < n ? m : n;
    f->m = m, f->n = n, f->p = p;
    f->means = calloc((size_t)n, sizeof(double));
    f->s = malloc(sizeof(double) * p);
    f->u = malloc(sizeof(double) * (size_t)m * p);
    f->vt = malloc(sizeof(double) * (size_t)p * n);
    f->s32 = malloc(sizeof(float) * p);
    double *ac = malloc(sizeof(double) * (size_t)m * n);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) f->means[j] += a[i * n + j];
    for (int j = 0; j < n; j++) f->means[j] /= m;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) ac[i * n + j] = a[i * n + j] - f->means[j];
    DL_CHECK(dl_ref_svd(m, n, ac, f->s, f->u, f->vt) == DL_OK, "reference SVD: %s", dl_errmsg());
    for (int j = 0; j < p; j++) { /* the sign rule of dlab/tsqr.h */
        double *v = f->vt + (size_t)j * n;
        int big = 0;
        for (int i = 1; i < n; i++)
            if (fabs(v[i]) > fabs(v[big])) big = i;
        if (v[big] >= 0) continue;
        for (int i = 0; i < n; i++) v[i] = -v[i];
        for (int i = 0; i < m; i++) f->u[(size_t)i * p + j] = -f->u[(size_t)i * p + j];
    }
    backend_svd(m, n, a, f->means, f->s32);
    free(ac);
}

/* --- the checks ----------------------------------------------------------- */

/* Singular vector j is unique (up to the fixed sign) when its value is
 * clearly non-zero and apart from its neighbours. */
static bool unique_vector(const reference *f, int j)
{
    double tol = 1e-6 * f->s[0];
    return f->s[j] > tol && (j == 0 || f->s[j - 1] - f->s[j] > tol) &&
           (j == f->p - 1 || f->s[j] - f->s[j + 1] > tol);
}

static void check_case(const char *name, const float *a, const reference *f, const int *counts)
{
    const int m = f->m, n = f->n, p = f->p;
    int first = 0;
    for (int r = 0; r < R; r++) first += counts[r];
    const int rows = counts[R];
    dl_tsqr_result res, again;
    dl_status st = dl_tsqr_svd(C, a + (size_t)first * n, rows, n, true, true, &res);
    DL_CHECK(st == DL_OK, "%s: %s", name, dl_errmsg());
    if (st != DL_OK) return;
    DL_CHECK(res.m == m && res.n == n && res.p == p && res.m_local == rows,
             "%s: shape %dx%d p=%d local %d", name, res.m, res.n, res.p, res.m_local);

    double worst_s = 0, worst_s32 = 0, worst_v = 0, worst_u = 0, worst_rec = 0, worst_mean = 0;
    for (int j = 0; j < n; j++)
        worst_mean = fmax(worst_mean, fabs(res.means[j] - f->means[j]) / (fabs(f->means[j]) + 1));
    for (int j = 0; j < p; j++) {
        worst_s = fmax(worst_s, fabs(res.s[j] - f->s[j]) / f->s[0]);
        if (f->s[j] > 1e-3 * f->s[0])
            worst_s32 = fmax(worst_s32, fabs(res.s[j] - f->s32[j]) / f->s32[j]);
        if (!unique_vector(f, j)) continue;
        for (int i = 0; i < n; i++)
            worst_v = fmax(worst_v, fabs(res.vt[(size_t)j * n + i] - f->vt[(size_t)j * n + i]));
        for (int i = 0; i < rows; i++)
            worst_u =
                fmax(worst_u, fabs(res.u[(size_t)i * p + j] - f->u[(size_t)(first + i) * p + j]));
    }
    /* This rank's centred rows are U_r S V^T, null directions included. */
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < n; c++) {
            double rec = 0;
            for (int j = 0; j < p; j++)
                rec += res.u[(size_t)i * p + j] * res.s[j] * res.vt[(size_t)j * n + c];
            double want = a[(size_t)(first + i) * n + c] - f->means[c];
            worst_rec = fmax(worst_rec, fabs(rec - want) / f->s[0]);
        }
    /* U's columns are orthonormal over all ranks: sum_r U_r^T U_r = I. */
    double *gram = calloc((size_t)p * p, sizeof(double));
    for (int i = 0; i < rows; i++)
        for (int x = 0; x < p; x++)
            for (int y = 0; y < p; y++)
                gram[x * p + y] += res.u[(size_t)i * p + x] * res.u[(size_t)i * p + y];
    DL_CHECK(dl_comm_allreduce_sum_f64(C, gram, (size_t)p * p) == DL_OK, "gram sum");
    double worst_gram = 0;
    for (int x = 0; x < p; x++)
        for (int y = 0; y < p; y++)
            if (unique_vector(f, x) && unique_vector(f, y))
                worst_gram = fmax(worst_gram, fabs(gram[x * p + y] - (x == y)));
    free(gram);

    DL_CHECK(worst_s <= 1e-12, "%s: singular values off the float64 SVD by %.3g (of s_max)", name,
             worst_s);
    DL_CHECK(worst_s32 <= 1e-5, "%s: singular values off the float32 one-process SVD by %.3g", name,
             worst_s32);
    DL_CHECK(worst_mean <= 1e-14, "%s: column means off by %.3g", name, worst_mean);
    DL_CHECK(worst_v <= 1e-9, "%s: V off by %.3g", name, worst_v);
    DL_CHECK(worst_u <= 1e-9, "%s: this rank's U off by %.3g", name, worst_u);
    DL_CHECK(worst_rec <= 1e-12, "%s: U S V^T off this rank's rows by %.3g (of s_max)", name,
             worst_rec);
    DL_CHECK(worst_gram <= 1e-12, "%s: U^T U off the identity by %.3g", name, worst_gram);

    /* A rerun gives the same bits. */
    st = dl_tsqr_svd(C, a + (size_t)first * n, rows, n, true, true, &again);
    DL_CHECK(st == DL_OK && memcmp(again.s, res.s, sizeof(double) * p) == 0 &&
                 memcmp(again.vt, res.vt, sizeof(double) * (size_t)p * n) == 0 &&
                 (rows == 0 || memcmp(again.u, res.u, sizeof(double) * (size_t)rows * p) == 0),
             "%s: a rerun differs", name);
    dl_tsqr_result_free(&again);
    dl_tsqr_result_free(&res);
}

/* Row counts per rank: even; two rows on rank 0 (fewer than the columns)
 * and the rest even; rank 0 empty, three rows on rank 1, the rest even. */
static void split(const char *how, int m, int *counts)
{
    int lead = 0, from = 0;
    if (strcmp(how, "thin") == 0) counts[0] = 2, lead = 2, from = 1;
    if (strcmp(how, "empty") == 0) {
        counts[0] = 0, from = 1;
        if (P > 2) counts[1] = 3, lead = 3, from = 2;
    }
    for (int r = from; r < P; r++) {
        int first;
        dl_comm_shard(m - lead, P - from, r - from, &first, &counts[r]);
    }
}

static void check_matrix(const char *name, int m, int n, const float *a)
{
    reference f;
    make_reference(m, n, a, &f);
    const char *splits[] = {"even", "thin", "empty"};
    int *counts = calloc((size_t)P, sizeof(int));
    for (int t = 0; t < (P > 1 ? 3 : 1); t++) {
        char label[96];
        snprintf(label, sizeof label, "%s, %s split", name, splits[t]);
        split(splits[t], m, counts);
        check_case(label, a, &f, counts);
    }
    free(counts);
    reference_free(&f);
}

static const char *iris_path;

static void test_iris(void)
{
    dl_dataset d;
    DL_CHECK(dl_dataset_load(iris_path, &d) == DL_OK, "load %s: %s", iris_path, dl_errmsg());
    check_matrix("iris", d.rows, d.cols, d.x);
    /* The published values (DESIGN.md), as an anchor for the references. */
    reference f;
    make_reference(d.rows, d.cols, d.x, &f);
    const double known[] = {25.0899, 6.0079, 3.4205, 1.8785};
    for (int j = 0; j < 4; j++) DL_CHECK_NEAR(f.s[j], known[j], 1e-4, "iris singular value");
    reference_free(&f);
    dl_dataset_free(&d);
}

static void test_random(void)
{
    enum { M = 1000, N = 20 };
    float *a = malloc(sizeof(float) * M * N);
    /* Columns of different scales and a common offset, so centring matters. */
    for (size_t i = 0; i < (size_t)M * N; i++) a[i] = (float)(unit(1, i) * (1 + i % N) + 3.0);
    check_matrix("random 1000x20", M, N, a);
    free(a);
}

static void test_wide(void)
{
    enum { M = 15, N = 20 }; /* every rank has fewer rows than columns */
    float *a = malloc(sizeof(float) * M * N);
    for (size_t i = 0; i < (size_t)M * N; i++) a[i] = (float)unit(2, i);
    check_matrix("wide 15x20", M, N, a);
    free(a);
}

static void test_bad_calls(void)
{
    dl_tsqr_result res;
    float one[4] = {1, 2, 3, 4};
    dl_status st = dl_tsqr_svd(C, one, 0, 4, true, false, &res);
    DL_CHECK(st == DL_E_INPUT, "no rows anywhere: %s", dl_status_name(st));
    /* One rank disagrees on the columns: every rank is told, none hangs. */
    if (P > 1) {
        st = dl_tsqr_svd(C, one, 1, R == P - 1 ? 3 : 4, false, false, &res);
        DL_CHECK(st == DL_E_USAGE, "columns disagree: %s '%s'", dl_status_name(st), dl_errmsg());
    }
}

/* Q^T Q = I, Q R = A and R upper trapezoidal, for LAPACK's QR and for the
 * fallback; both follow dgeqrf's sign convention, so for a matrix of full
 * rank their R agree (past a dependent column, R's rows are rounding noise
 * whose signs nothing fixes). */
static void check_qr(int m, int n, const double *a, bool full_rank)
{
    int k = m < n ? m : n;
    double *r1 = malloc(sizeof(double) * k * n), *q1 = malloc(sizeof(double) * m * k);
    double *r2 = malloc(sizeof(double) * k * n), *q2 = malloc(sizeof(double) * m * k);
    DL_CHECK(dl_ref_qr(m, n, a, r1, q1) == DL_OK && dl_qr(m, n, a, r2, q2) == DL_OK, "qr %dx%d", m,
             n);
    double scale = 0;
    for (int i = 0; i < m * n; i++) scale = fmax(scale, fabs(a[i]));
    const double *rs[2] = {r1, r2}, *qs[2] = {q1, q2};
    for (int t = 0; t < 2; t++) {
        const double *r = rs[t], *q = qs[t];
        double orth = 0, recon = 0, lower = 0;
        for (int x = 0; x < k; x++)
            for (int y = 0; y < k; y++) {
                double g = 0;
                for (int i = 0; i < m; i++) g += q[i * k + x] * q[i * k + y];
                orth = fmax(orth, fabs(g - (x == y)));
            }
        for (int i = 0; i < m; i++)
            for (int c = 0; c < n; c++) {
                double s = 0;
                for (int j = 0; j < k; j++) s += q[i * k + j] * r[j * n + c];
                recon = fmax(recon, fabs(s - a[i * n + c]));
            }
        for (int i = 0; i < k; i++)
            for (int c = 0; c < i; c++) lower = fmax(lower, fabs(r[i * n + c]));
        DL_CHECK(orth <= 1e-13 && recon <= 1e-13 * (scale + 1) && lower == 0,
                 "%s QR %dx%d: |Q^T Q - I| %.3g, |QR - A| %.3g, below R's diagonal %.3g",
                 t ? "dl_qr" : "dl_ref_qr", m, n, orth, recon, lower);
    }
    double diff = 0;
    for (int i = 0; i < k * n; i++) diff = fmax(diff, fabs(r1[i] - r2[i]));
    if (full_rank)
        DL_CHECK(diff <= 1e-12 * (scale + 1), "QR %dx%d: the two R differ by %.3g", m, n, diff);
    free(r1), free(q1), free(r2), free(q2);
}

static void test_qr(void)
{
    const int shapes[][2] = {{1, 1}, {5, 3}, {3, 5}, {20, 20}, {57, 9}, {2, 7}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int m = shapes[t][0], n = shapes[t][1];
        double *a = malloc(sizeof(double) * m * n);
        for (int i = 0; i < m * n; i++) a[i] = unit(3 + t, (size_t)i);
        check_qr(m, n, a, true);
        /* A zero column and a repeated one: reflectors that are the identity. */
        for (int i = 0; i < m; i++) {
            a[i * n] = 0;
            if (n > 2) a[i * n + 2] = a[i * n + 1];
        }
        check_qr(m, n, a, false);
        free(a);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_tsqr path/to/iris.data\n");
        return 2;
    }
    iris_path = argv[1];
    char note[256];
    if (dl_comm_init(&argc, &argv, &C) != DL_OK ||
        dl_backend_create(DL_DEVICE_CPU, &be, note, sizeof note) != DL_OK) {
        fprintf(stderr, "test_tsqr: %s\n", dl_errmsg());
        return 1;
    }
    R = dl_comm_rank(C), P = dl_comm_size(C);
    DL_RUN(test_qr);
    DL_RUN(test_iris);
    DL_RUN(test_random);
    DL_RUN(test_wide);
    DL_RUN(test_bad_calls);
    int rc = dl_t_ranks_summary(C, "test_tsqr");
    dl_backend_destroy(be);
    dl_comm_finalize(C);
    return rc;
}
