/* The communicator (host/dist/comm.c), run as 1 rank or under mpirun.
 *
 *   test_comm                  the collectives against sequential references
 *   test_comm --checksum       prints a digest of a fixed set of sums (rank 0),
 *                              for comparing reruns
 *   test_comm --abort-on R     rank R fails where the others wait in a barrier
 *   test_comm --agree-fail R   rank R fails; the ranks agree and exit together
 *   test_comm --loop DIR       chunks of work until a stop signal (the pid of
 *                              every rank is written to DIR/rank<R>.pid)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist_test.h"

static dl_comm *C;
static int R, P;

/* A reproducible value of rank r at index i: random sign and mantissa,
 * exponent in [-20, 20), so that different orders of addition round
 * differently and a sum in the wrong order shows in the bits. */
static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double value(int r, size_t i)
{
    uint64_t h = mix(((uint64_t)r << 40) ^ i);
    double mant = 1.0 + (double)(h >> 11) * 0x1p-53;
    int e = (int)((h >> 3) % 40) - 20;
    return (h & 1 ? -1.0 : 1.0) * ldexp(mant, e);
}

/* The sums the communicator promises, written out plainly: double, rank
 * order, one rounding. `reverse` adds in the opposite order instead. */
static float ref_sum_f32(size_t i)
{
    double acc = (float)value(0, i);
    for (int k = 1; k < P; k++) acc += (float)value(k, i);
    return (float)acc;
}

static double ref_sum_f64(size_t i, bool reverse)
{
    double acc = value(reverse ? P - 1 : 0, i);
    for (int k = 1; k < P; k++) acc += value(reverse ? P - 1 - k : k, i);
    return acc;
}

static void check_sum_f32(size_t n)
{
    float *x = malloc(sizeof(float) * (n + 1)), *again = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; i < n; i++) x[i] = again[i] = (float)value(R, i);
    DL_CHECK(dl_comm_allreduce_sum_f32(C, x, n) == DL_OK, "f32 sum of %zu: %s", n, dl_errmsg());
    /* Added in double, a few floats give the same float in almost any order
     * (the f64 sums below carry the test of the order); what this checks is
     * the double accumulation and the single rounding. */
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float ref = ref_sum_f32(i);
        if (memcmp(&x[i], &ref, sizeof ref) != 0 && wrong++ < 3)
            fprintf(stderr, "  f32 n=%zu i=%zu: %.9g, expected %.9g\n", n, i, x[i], ref);
    }
    DL_CHECK(wrong == 0, "f32 sum of %zu values: %zu differ from the rank-order sum", n, wrong);
    DL_CHECK(dl_comm_allreduce_sum_f32(C, again, n) == DL_OK, "second f32 sum");
    DL_CHECK(memcmp(x, again, sizeof(float) * n) == 0, "f32 sum of %zu: a rerun differs", n);
    free(x), free(again);
}

static void check_sum_f64(size_t n)
{
    double *x = malloc(sizeof(double) * (n + 1));
    for (size_t i = 0; i < n; i++) x[i] = value(R, i);
    DL_CHECK(dl_comm_allreduce_sum_f64(C, x, n) == DL_OK, "f64 sum of %zu: %s", n, dl_errmsg());
    size_t wrong = 0, order_matters = 0;
    for (size_t i = 0; i < n; i++) {
        double ref = ref_sum_f64(i, false), rev = ref_sum_f64(i, true);
        if (memcmp(&x[i], &ref, sizeof ref) != 0 && wrong++ < 3)
            fprintf(stderr, "  f64 n=%zu i=%zu: %.17g, expected %.17g\n", n, i, x[i], ref);
        order_matters += memcmp(&rev, &ref, sizeof ref) != 0;
    }
    DL_CHECK(wrong == 0, "f64 sum of %zu values: %zu differ from the rank-order sum", n, wrong);
    /* With three ranks or more the data must tell orders apart, or the
     * comparison above would prove nothing. */
    if (P >= 3 && n >= 1000)
        DL_CHECK(order_matters > 0, "f64 test data of %zu values is insensitive to order", n);
    free(x);
}

/* Short vectors (every rank gathers all), long ones (each rank adds a
 * slice), lengths not divisible by P, shorter than P, empty, and one longer
 * than a pass of the sliced sum (1 << 20 values). */
static void test_sums(void)
{
    const size_t lengths[] = {0, 1, 2, 7, 1000, 40000, 100003};
    for (size_t t = 0; t < sizeof lengths / sizeof *lengths; t++) {
        check_sum_f32(lengths[t]);
        check_sum_f64(lengths[t]);
    }
    check_sum_f32((size_t)5 << 19); /* 2.5 passes */
}

static void test_maxima(void)
{
    enum { N = 1001 };
    int32_t xi[N];
    double xd[N];
    for (int i = 0; i < N; i++) {
        xi[i] = (int32_t)(mix((uint64_t)R * N + i) % 2001) - 1000;
        xd[i] = value(R, (size_t)i);
    }
    DL_CHECK(dl_comm_allreduce_max_i32(C, xi, N) == DL_OK, "max i32: %s", dl_errmsg());
    DL_CHECK(dl_comm_allreduce_max_f64(C, xd, N) == DL_OK, "max f64: %s", dl_errmsg());
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int32_t mi = INT32_MIN;
        double md = -INFINITY;
        for (int r = 0; r < P; r++) {
            int32_t v = (int32_t)(mix((uint64_t)r * N + i) % 2001) - 1000;
            if (v > mi) mi = v;
            if (value(r, (size_t)i) > md) md = value(r, (size_t)i);
        }
        bad += xi[i] != mi || xd[i] != md;
    }
    DL_CHECK(bad == 0, "%d of %d maxima wrong", bad, N);
}

static unsigned char pattern(int r, size_t i)
{
    return (unsigned char)(mix((uint64_t)r * 7919 + i) & 0xff);
}

static void test_bcast(void)
{
    enum { N = 4099 };
    unsigned char buf[N];
    for (int root = 0; root < P; root++) {
        for (size_t i = 0; i < N; i++) buf[i] = R == root ? pattern(root, i) : 0xee;
        DL_CHECK(dl_comm_bcast(C, buf, N, root) == DL_OK, "bcast from %d: %s", root, dl_errmsg());
        int bad = 0;
        for (size_t i = 0; i < N; i++) bad += buf[i] != pattern(root, i);
        DL_CHECK(bad == 0, "bcast from %d: %d bytes wrong", root, bad);
    }
    DL_CHECK(dl_comm_bcast(C, buf, 0, 0) == DL_OK, "empty bcast");
    DL_CHECK(dl_comm_bcast(C, buf, 1, P) == DL_E_USAGE, "bcast from a rank that does not exist");
}

/* Rank r sends 37 r + 1 bytes, except rank 1, which sends none. */
static size_t block_size(int r) { return r == 1 ? 0 : (size_t)r * 37 + 1; }

static void test_gather(void)
{
    unsigned char block[1024];
    for (size_t i = 0; i < block_size(R); i++) block[i] = pattern(R + 100, i);
    void *all = (void *)block;
    size_t *sizes = calloc((size_t)P, sizeof *sizes);
    DL_CHECK(dl_comm_gather(C, block, block_size(R), &all, sizes) == DL_OK, "gather: %s",
             dl_errmsg());
    if (R != 0) {
        DL_CHECK(all == NULL, "rank %d received a gather buffer", R);
    } else if (all) {
        const unsigned char *at = all;
        int bad = 0;
        for (int r = 0; r < P; r++) {
            bad += sizes[r] != block_size(r);
            for (size_t i = 0; i < block_size(r); i++) bad += *at++ != pattern(r + 100, i);
        }
        DL_CHECK(bad == 0, "gather: %d sizes or bytes wrong", bad);
    } else {
        DL_CHECK(false, "rank 0 received no gather buffer");
    }
    free(all), free(sizes);
}

static void test_topology(void)
{
    DL_CHECK(R >= 0 && R < P, "rank %d of %d", R, P);
    DL_CHECK(dl_comm_uses_mpi(C) || P == 1, "%d ranks without MPI", P);
    double ranks = R;
    DL_CHECK(dl_comm_allreduce_sum_f64(C, &ranks, 1) == DL_OK, "rank sum");
    DL_CHECK(ranks == (double)P * (P - 1) / 2, "ranks add up to %g, not %g", ranks,
             (double)P * (P - 1) / 2);
    /* The suite runs on one machine: every rank is local. */
    DL_CHECK(dl_comm_local_size(C) == P && dl_comm_local_rank(C) == R,
             "local rank %d of %d on one node, rank %d of %d", dl_comm_local_rank(C),
             dl_comm_local_size(C), R, P);
    DL_CHECK(dl_comm_device(C, 2) == R % 2, "device of rank %d among 2: %d", R,
             dl_comm_device(C, 2));
    DL_CHECK(dl_comm_device(C, 0) == -1, "a device among none");
    DL_CHECK(dl_comm_barrier(C) == DL_OK, "barrier: %s", dl_errmsg());
}

static void test_shard(void)
{
    const int ms[] = {0, 1, 2, 5, 150, 1001};
    for (size_t t = 0; t < sizeof ms / sizeof *ms; t++)
        for (int size = 1; size <= 7; size++) {
            int next = 0, lo = ms[t], hi = 0;
            for (int r = 0; r < size; r++) {
                int first, count;
                dl_comm_shard(ms[t], size, r, &first, &count);
                DL_CHECK(first == next && count >= 0, "m=%d P=%d rank %d: rows %d+%d after %d",
                         ms[t], size, r, first, count, next);
                next = first + count;
                if (count < lo) lo = count;
                if (count > hi) hi = count;
            }
            DL_CHECK(next == ms[t] && hi - lo <= 1, "m=%d P=%d: covers %d rows, sizes %d..%d",
                     ms[t], size, next, lo, hi);
        }
}

static void test_agree(void)
{
    dl_clear_error();
    DL_CHECK(dl_comm_agree(C, DL_OK) == DL_OK, "all fine: %s", dl_errmsg());

    /* The last rank cannot read its rows; the others are fine. */
    dl_status mine = R == P - 1 ? DL_FAIL(DL_E_INPUT, "rows.csv:3:4: not a number") : DL_OK;
    dl_status got = dl_comm_agree(C, mine);
    char want[128];
    if (P > 1)
        snprintf(want, sizeof want, "rank %d: rows.csv:3:4: not a number", P - 1);
    else
        snprintf(want, sizeof want, "rows.csv:3:4: not a number");
    DL_CHECK(got == DL_E_INPUT, "one bad rank: got %s", dl_status_name(got));
    DL_CHECK(strcmp(dl_errmsg(), want) == 0, "one bad rank: message '%s', expected '%s'",
             dl_errmsg(), want);
    DL_CHECK(strncmp(dl_errwhere(), "test_comm.c:", 12) == 0, "where: '%s'", dl_errwhere());
    /* Agreeing again on the agreed status keeps one prefix. */
    got = dl_comm_agree(C, got);
    DL_CHECK(got == DL_E_INPUT && strcmp(dl_errmsg(), want) == 0, "re-agreed: %s '%s'",
             dl_status_name(got), dl_errmsg());

    /* An interruption on rank 0 loses to a failure elsewhere. */
    if (P > 1) {
        mine = R == 0       ? DL_FAIL(DL_E_INTERRUPTED, "interrupted after epoch 3 of 9")
               : R == P - 1 ? DL_FAIL(DL_E_RUNTIME, "device lost")
                            : DL_OK;
        got = dl_comm_agree(C, mine);
        snprintf(want, sizeof want, "rank %d: device lost", P - 1);
        DL_CHECK(got == DL_E_RUNTIME && strcmp(dl_errmsg(), want) == 0,
                 "interruption vs failure: %s '%s'", dl_status_name(got), dl_errmsg());
    }
    /* Equal severities: the lowest rank's message. */
    mine = DL_FAIL(R % 2 ? DL_E_MEMORY : DL_E_RUNTIME, "failure of rank %d", R);
    got = dl_comm_agree(C, mine);
    snprintf(want, sizeof want, "%sfailure of rank 0", P > 1 ? "rank 0: " : "");
    DL_CHECK(got == DL_E_RUNTIME && strcmp(dl_errmsg(), want) == 0, "ties: %s '%s'",
             dl_status_name(got), dl_errmsg());
}

static void test_share_stop(void)
{
    bool any = true;
    DL_CHECK(dl_comm_share_stop(C, false, &any) == DL_OK && !any, "no stop: any %d", (int)any);
    DL_CHECK(dl_comm_share_stop(C, R == P - 1, &any) == DL_OK && any, "stop on rank %d: any %d",
             P - 1, (int)any);
    DL_CHECK(dl_comm_share_stop(C, R == 0, &any) == DL_OK && any, "stop on rank 0: any %d",
             (int)any);
}

/* A digest of the bits of a fixed set of sums, printed by rank 0. */
static int checksum(void)
{
    uint64_t h = 1469598103934665603ull;
    const size_t lengths[] = {7, 1000, 100003};
    for (size_t t = 0; t < 3; t++) {
        size_t n = lengths[t];
        float *x = malloc(sizeof(float) * n);
        double *y = malloc(sizeof(double) * n);
        for (size_t i = 0; i < n; i++) x[i] = (float)value(R, i), y[i] = value(R, i);
        if (dl_comm_allreduce_sum_f32(C, x, n) || dl_comm_allreduce_sum_f64(C, y, n))
            dl_comm_abort(C, DL_E_RUNTIME);
        const unsigned char *b = (const unsigned char *)x;
        for (size_t i = 0; i < sizeof(float) * n; i++) h = (h ^ b[i]) * 1099511628211ull;
        b = (const unsigned char *)y;
        for (size_t i = 0; i < sizeof(double) * n; i++) h = (h ^ b[i]) * 1099511628211ull;
        free(x), free(y);
    }
    if (R == 0) printf("checksum %d ranks %016llx\n", P, (unsigned long long)h);
    return 0;
}

/* Rank `who` fails while the others wait for it in a barrier: it must take
 * them all down with its message. */
static int abort_on(int who)
{
    if (R == who) {
        DL_FAIL(DL_E_INPUT, "data.csv:73:2: not a number (rows %d-%d of this rank)", 50, 99);
        dl_comm_abort(C, DL_E_INPUT);
    }
    dl_comm_barrier(C);
    fprintf(stderr, "rank %d: the barrier returned although rank %d failed\n", R, who);
    return 0;
}

/* Rank `who` fails at a point every rank reaches: the ranks agree, rank 0
 * alone prints, every rank exits with the agreed code. */
static int agree_fail(int who)
{
    dl_status st = R == who ? DL_FAIL(DL_E_INPUT, "data.csv:12:1: empty field") : DL_OK;
    st = dl_comm_agree(C, st);
    if (st != DL_OK && R == 0) fprintf(stderr, "dlab-gpu: error: %s\n", dl_errmsg());
    dl_comm_finalize(C);
    return dl_exit_code(st);
}

/* Chunks of 20 ms of "work" and a sum, then the shared stop check, until a
 * stop signal reaches any rank; all ranks must stop after the same chunk. */
static int loop(const char *dir)
{
    static volatile sig_atomic_t stop;
    dl_comm_catch_stop_signals(&stop);
    char path[4096];
    snprintf(path, sizeof path, "%s/rank%d.pid", dir, R);
    FILE *f = fopen(path, "w");
    if (!f) return fprintf(stderr, "cannot write %s\n", path), 1;
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    int32_t chunk = 0;
    for (; chunk < 3000; chunk++) {
        nanosleep(&(struct timespec){0, 20000000}, NULL);
        float work[64];
        for (int i = 0; i < 64; i++) work[i] = (float)value(R, (size_t)i);
        bool any;
        if (dl_comm_allreduce_sum_f32(C, work, 64) || dl_comm_share_stop(C, stop, &any))
            dl_comm_abort(C, DL_E_RUNTIME);
        if (any) break;
    }
    void *all = NULL;
    if (dl_comm_gather(C, &chunk, sizeof chunk, &all, NULL)) dl_comm_abort(C, DL_E_RUNTIME);
    int code = 130;
    if (R == 0) {
        const int32_t *chunks = all;
        bool same = true;
        for (int r = 0; r < P; r++) same = same && chunks[r] == chunk;
        if (chunk >= 3000)
            printf("never stopped\n"), code = 1;
        else if (same)
            printf("stopped after chunk %d on all %d ranks\n", (int)chunk, P);
        else
            printf("the ranks stopped after different chunks\n"), code = 1;
        fflush(stdout);
    }
    free(all);
    dl_comm_finalize(C);
    return code;
}

int main(int argc, char **argv)
{
    if (dl_comm_init(&argc, &argv, &C) != DL_OK) {
        fprintf(stderr, "test_comm: %s\n", dl_errmsg());
        return 1;
    }
    R = dl_comm_rank(C), P = dl_comm_size(C);
    if (argc == 2 && strcmp(argv[1], "--checksum") == 0) {
        int rc = checksum();
        dl_comm_finalize(C);
        return rc;
    }
    if (argc == 3 && strcmp(argv[1], "--abort-on") == 0) return abort_on(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "--agree-fail") == 0) return agree_fail(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "--loop") == 0) return loop(argv[2]);

    DL_RUN(test_topology);
    DL_RUN(test_shard);
    DL_RUN(test_sums);
    DL_RUN(test_maxima);
    DL_RUN(test_bcast);
    DL_RUN(test_gather);
    DL_RUN(test_agree);
    DL_RUN(test_share_stop);
    int rc = dl_t_ranks_summary(C, "test_comm");
    dl_comm_finalize(C);
    return rc;
}
