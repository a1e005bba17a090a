/* dlab-bench: one case on one backend. Warm-up runs (not counted) that also
 * pick how many epochs one run trains, then the timed runs; each run is the
 * task's own entry point and its time the task's train_seconds. */
#include "bench.h"
#include "dlab/summary.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define BENCH_MIN_EPOCHS 3
#define BENCH_MAX_EPOCHS 20000

bool bench_case_fits(bench_run *r, int which, const bench_case *c, bench_timing *t)
{
    size_t dev = 0, host = 0;
    bench_case_memory(c, c->run_epochs ? c->run_epochs : BENCH_MAX_EPOCHS, &dev, &host);
    dl_backend *be = r->be[which];
    size_t usable = bench_usable_bytes(be);
    if (which == BENCH_CPU) {
        if (dev + host <= usable) return true;
        snprintf(t->reason, sizeof t->reason, "needs %.2f GiB of host memory, %.2f GiB usable",
                 (dev + host) / 1073741824.0, usable / 1073741824.0);
        return false;
    }
    size_t host_usable = bench_usable_bytes(r->be[BENCH_CPU]);
    if (dev <= usable && host <= host_usable) return true;
    if (dev > usable)
        snprintf(t->reason, sizeof t->reason, "needs %.2f GiB of GPU memory, %.2f GiB usable",
                 dev / 1073741824.0, usable / 1073741824.0);
    else
        snprintf(t->reason, sizeof t->reason, "needs %.2f GiB of host memory, %.2f GiB usable",
                 host / 1073741824.0, host_usable / 1073741824.0);
    return false;
}

static double run_target(bench_level level)
{
    return level == BENCH_FULL ? 0.25 : level == BENCH_QUICK ? 0.05 : 0.02;
}

static void progress(const bench_case *c, const char *backend, const char *what)
{
    if (!isatty(STDERR_FILENO)) return;
    fprintf(stderr, "\r\033[K%s on %s: %s", c->name, backend, what);
    fflush(stderr);
}

dl_status bench_time_case(bench_run *r, int which, bench_case *c, void *data)
{
    dl_backend *be = r->be[which];
    bench_timing *t = &c->t[which];
    const double target = run_target(r->level);
    double seconds = 0.0, loss = 0.0;
    int done = 0;

    /* Warm-up: the first run pays for lazy initialisation (cuBLAS handles,
     * graph instantiation, page faults); the runs also measure how many
     * epochs fill the target time. None of them is counted. A case with
     * fixed run epochs (whole training runs of many models) has one short
     * warm-up: every run allocates, captures and faults in its buffers
     * afresh, so a longer one would warm nothing more. */
    progress(c, be->name, "warm-up");
    int epochs = BENCH_MIN_EPOCHS;
    DL_TRY(bench_case_run(be, c, data, epochs, &seconds, &done, &loss));
    if (c->run_epochs) epochs = c->run_epochs;
    for (int i = 0; i < 4 && !c->run_epochs && seconds < 0.5 * target && epochs < BENCH_MAX_EPOCHS;
         i++) {
        double per = seconds > 0 ? seconds / done : 0.0;
        double want = per > 0 ? 1.2 * target / per : 4.0 * epochs;
        if (want > 16.0 * epochs) want = 16.0 * epochs;
        epochs = want > BENCH_MAX_EPOCHS ? BENCH_MAX_EPOCHS : (int)want;
        DL_TRY(bench_case_run(be, c, data, epochs, &seconds, &done, &loss));
    }

    double *per_epoch = malloc(sizeof(double) * (size_t)r->repeats);
    if (!per_epoch) return DL_FAIL(DL_E_MEMORY, "out of host memory");
    dl_status st = DL_OK;
    for (int i = 0; i < r->repeats && st == DL_OK; i++) {
        char what[32];
        snprintf(what, sizeof what, "run %d/%d", i + 1, r->repeats);
        progress(c, be->name, what);
        st = bench_case_run(be, c, data, epochs, &seconds, &done, &loss);
        if (st == DL_OK && (done != epochs || !(seconds > 0.0)))
            st = DL_FAIL(DL_E_RUNTIME, "a run trained %d of %d epochs in %g s", done, epochs,
                         seconds);
        if (st == DL_OK) per_epoch[i] = seconds / done;
    }
    if (st == DL_OK) {
        qsort(per_epoch, (size_t)r->repeats, sizeof(double), dl_cmp_double);
        int n = r->repeats;
        t->median_s = n % 2 ? per_epoch[n / 2] : 0.5 * (per_epoch[n / 2 - 1] + per_epoch[n / 2]);
        t->min_s = per_epoch[0];
        t->max_s = per_epoch[n - 1];
        t->epochs = epochs;
        t->repeats = n;
        t->final_loss = loss;
        t->gflops = c->flops / t->median_s * 1e-9;
        t->gbps = c->bytes / t->median_s * 1e-9;
        const bench_ceiling *ce = &r->ceil[which];
        t->floor_s =
            ce->ok ? c->flops / (ce->gemm_gflops * 1e9) + c->bytes / (ce->copy_gbps * 1e9) : 0.0;
        t->outcome = BENCH_OK;
    }
    free(per_epoch);
    return st;
}
