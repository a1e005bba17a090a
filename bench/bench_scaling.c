/* dlab-bench under an MPI launcher with P ranks: the row-sharded
 * factorisation's scaling over 1, 2, ..., P ranks.
 *
 * One synthetic matrix (the level sets its size), one model, the careful
 * preset without the SVD baseline; for each p the first p ranks form a
 * communicator of their own (dl_comm_sub) and train the matrix with its rows
 * spread over them (dl_factorise_synthetic_rows), while the other ranks
 * wait asleep (dl_comm_barrier_idle). A warm-up run, then `repeats` timed runs; the time of a run is the
 * task's train_seconds (the epoch loop, whose chunk times the ranks agree
 * on), per epoch. Rank 0 prints the table, --json and --out. The SSE column
 * shows every p trains the same matrix (it agrees to float rounding).
 *
 * Ranks on fewer cores than ranks (mpirun --oversubscribe) share them: the
 * rows then measure the exchange's overhead, not a speed-up. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include "dlab/comm.h"
#include "dlab/factorise.h"
#include "dlab/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int ranks;
    double median_s, min_s, max_s; /* per epoch */
    double sse;                    /* the final SSE of the last run */
} scaling_row;

typedef struct {
    int m, n, rank, epochs, repeats, ranks;
    char device[200]; /* the backend's name and its device line */
    scaling_row *rows;
} scaling;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A backend of `dev` on the p ranks of sub, joined to them (on GPUs:
 * each rank's own device and an NCCL communicator over sub), as
 * dlab-gpu makes its own. */
static dl_status sub_backend(dl_device dev, dl_comm *sub, dl_backend **be)
{
    dl_status st = dl_backend_create_rank(dev, sub, be, NULL, 0);
    st = dl_comm_agree(sub, st);
    if (st == DL_OK) st = dl_comm_agree(sub, dl_backend_join_ranks(*be, sub));
    if (st == DL_OK && dl_comm_size(sub) > 1 && !(*be)->allreduce_sum)
        st = DL_FAIL(DL_E_USAGE, "the %s backend cannot share a matrix's rows over %d ranks: %s",
                     (*be)->name, dl_comm_size(sub), (*be)->sum_note);
    if (st != DL_OK) {
        dl_backend_destroy(*be);
        *be = NULL;
    }
    return st;
}

/* The first p ranks' runs (the others only wait); rank 0 fills row. */
static dl_status measure(dl_comm *world, dl_device dev, const scaling *s, int p, scaling_row *row)
{
    dl_comm *sub = NULL;
    DL_TRY(dl_comm_sub(world, p, &sub));
    dl_status st = DL_OK;
    dl_backend *be = NULL;
    double *t = calloc((size_t)s->repeats, sizeof *t);
    if (!t) st = DL_FAIL(DL_E_MEMORY, "out of host memory for %d timings", s->repeats);
    if (sub && st == DL_OK) st = sub_backend(dev, sub, &be);
    if (sub && st == DL_OK) {
        dl_factorise_config cfg = dl_factorise_defaults(DL_FACTORISE_CAREFUL);
        cfg.rank = s->rank, cfg.epochs = s->epochs, cfg.svd = false;
        for (int i = -1; i < s->repeats && st == DL_OK; i++) { /* -1: the warm-up */
            dl_factorise_result r;
            st = dl_factorise_synthetic_rows(be, s->m, s->n, s->rank, 0.1f, 1 ^ 0x5eed, &cfg, &r);
            if (st != DL_OK) break;
            if (i >= 0) t[i] = r.train_seconds / (r.epochs_run > 0 ? r.epochs_run : 1);
            row->sse = r.sse_gd[0];
            dl_factorise_result_free(&r);
        }
    }
    dl_backend_destroy(be);
    if (st == DL_OK && s->repeats > 0) {
        qsort(t, (size_t)s->repeats, sizeof *t, cmp_double);
        row->ranks = p;
        row->min_s = t[0], row->max_s = t[s->repeats - 1];
        row->median_s =
            s->repeats % 2 ? t[s->repeats / 2] : 0.5 * (t[s->repeats / 2 - 1] + t[s->repeats / 2]);
    }
    free(t);
    dl_comm_finalize(sub);
    /* The ranks left out sleep until the others are done: polling, they
     * would take cores from the ranks measured. */
    dl_status idle = dl_comm_barrier_idle(world);
    return dl_comm_agree(world, st != DL_OK ? st : idle); /* the waiting ranks hear of a failure */
}

static void print_table(FILE *f, const scaling *s)
{
    fprintf(f,
            "dlab-bench scaling: factorise, rows spread over 1..%d ranks\n"
            "  synthetic %dx%d, rank %d, careful preset, %d epochs a run, median of %d runs\n"
            "  backend %s\n",
            s->ranks, s->m, s->n, s->rank, s->epochs, s->repeats, s->device);
    fprintf(f, "  %5s  %12s  %12s  %12s  %8s  %10s  %14s\n", "ranks", "ms/epoch", "min", "max",
            "speedup", "efficiency", "final SSE");
    const double t1 = s->rows[0].median_s;
    for (int p = 0; p < s->ranks; p++) {
        const scaling_row *r = &s->rows[p];
        fprintf(f, "  %5d  %12.4f  %12.4f  %12.4f  %8.2f  %10.2f  %14.6g\n", r->ranks,
                r->median_s * 1e3, r->min_s * 1e3, r->max_s * 1e3, t1 / r->median_s,
                t1 / r->median_s / r->ranks, r->sse);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && s->ranks > cores)
        fprintf(f,
                "  note: %d ranks on %ld cores share them; the rows show the exchange's "
                "overhead, not a speed-up\n",
                s->ranks, cores);
}

static void write_json(FILE *f, const scaling *s)
{
    dl_json j;
    dl_json_init(&j, f, true);
    dl_json_obj_begin(&j, NULL);
    dl_json_str(&j, "bench", "scaling");
    dl_json_str(&j, "task", "factorise");
    dl_json_str(&j, "backend", "cpu");
    dl_json_str(&j, "device", s->device);
    dl_json_int(&j, "ranks", s->ranks);
    dl_json_int(&j, "cores", sysconf(_SC_NPROCESSORS_ONLN));
    dl_json_int(&j, "m", s->m);
    dl_json_int(&j, "n", s->n);
    dl_json_int(&j, "rank", s->rank);
    dl_json_int(&j, "epochs", s->epochs);
    dl_json_int(&j, "repeats", s->repeats);
    dl_json_arr_begin(&j, "rows");
    const double t1 = s->rows[0].median_s;
    for (int p = 0; p < s->ranks; p++) {
        const scaling_row *r = &s->rows[p];
        dl_json_obj_begin(&j, NULL);
        dl_json_int(&j, "ranks", r->ranks);
        dl_json_num(&j, "median_s_per_epoch", r->median_s);
        dl_json_num(&j, "min_s_per_epoch", r->min_s);
        dl_json_num(&j, "max_s_per_epoch", r->max_s);
        dl_json_num(&j, "speedup", t1 / r->median_s);
        dl_json_num(&j, "efficiency", t1 / r->median_s / r->ranks);
        dl_json_num(&j, "sse_gd", r->sse);
        dl_json_obj_end(&j);
    }
    dl_json_arr_end(&j);
    dl_json_obj_end(&j);
    fputc('\n', f);
}

static dl_status json_file(FILE *f, const void *s)
{
    write_json(f, s);
    return DL_OK;
}

static dl_status table_file(FILE *f, const void *s)
{
    print_table(f, s);
    return DL_OK;
}

/* Each file atomically (dl_out_write), as the one-process bench writes. */
static int write_out(const char *dir, const scaling *s)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dlab-bench: error: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    dl_out out;
    dl_out_init(&out, dir, NULL);
    dl_status st = dl_out_write(&out, "scaling.json", json_file, s);
    if (st == DL_OK) st = dl_out_write(&out, "scaling.txt", table_file, s);
    if (st != DL_OK) fprintf(stderr, "dlab-bench: error: %s\n", dl_errmsg());
    return st != DL_OK;
}

int bench_scaling(int *argc, char ***argv, bench_level level, int repeats, bool json,
                  const char *out, const char *device, const char *case_option)
{
    dl_comm *world = NULL;
    if (dl_comm_init(argc, argv, &world) != DL_OK) {
        fprintf(stderr, "dlab-bench: error: %s\n", dl_errmsg());
        return 2;
    }
    const int P = dl_comm_size(world);
    const bool root = dl_comm_rank(world) == 0;
    if (P == 1) {
        dl_comm_finalize(world);
        return -1;
    }
    if (case_option) { /* it would be ignored: say so rather than run something else */
        if (root)
            fprintf(
                stderr,
                "dlab-bench: %s chooses among the one-process cases; under a launcher with %d "
                "ranks only the scaling rows run (run dlab-bench without the launcher for %s)\n",
                case_option, P, case_option);
        dl_comm_finalize(world);
        return 2;
    }
    /* GPU ranks with --device cuda (each its own GPU, the sums through
     * NCCL), CPU ranks otherwise. */
    const dl_device dev = !strcmp(device, "cuda") ? DL_DEVICE_CUDA : DL_DEVICE_CPU;
    /* Sizes: a few seconds (smoke), about a minute (quick) on two cores. */
    scaling s = {.repeats = repeats, .ranks = P};
    if (level == BENCH_SMOKE)
        s.m = 2400, s.n = 120, s.rank = 8, s.epochs = 40;
    else if (level == BENCH_QUICK)
        s.m = 20000, s.n = 400, s.rank = 16, s.epochs = 50;
    else
        s.m = 100000, s.n = 1000, s.rank = 32, s.epochs = 50;
    dl_backend *be = NULL; /* this rank's device, named in the table */
    dl_status st = dl_backend_create_rank(dev, world, &be, NULL, 0);
    if (st == DL_OK) snprintf(s.device, sizeof s.device, "%s %s", be->name, be->device);
    dl_backend_destroy(be);
    s.rows = calloc((size_t)P, sizeof *s.rows);
    if (st == DL_OK && !s.rows) st = DL_FAIL(DL_E_MEMORY, "out of host memory for %d rows", P);
    st = dl_comm_agree(world, st);
    for (int p = 1; p <= P && st == DL_OK; p++) {
        st = measure(world, dev, &s, p, &s.rows[p - 1]);
        if (root && st == DL_OK && isatty(STDERR_FILENO))
            fprintf(stderr, "\rdlab-bench: scaling: %d of %d ranks measured", p, P);
    }
    if (root && isatty(STDERR_FILENO)) fputs("\r\033[K", stderr);
    int rc = st == DL_OK ? 0 : 1;
    if (st != DL_OK && root) fprintf(stderr, "dlab-bench: error: %s\n", dl_errmsg());
    if (st == DL_OK && root) {
        print_table(json ? stderr : stdout, &s);
        if (json) write_json(stdout, &s);
        fflush(stdout);
        if (out) rc = write_out(out, &s);
    }
    int32_t worst = rc;
    if (dl_comm_allreduce_max_i32(world, &worst, 1) == DL_OK) rc = worst;
    free(s.rows);
    dl_comm_finalize(world);
    return rc;
}
