#define _POSIX_C_SOURCE 200809L
#include "dlab/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static dl_status check_finite(const float *h, int from, int count, const dl_loop *o, int total)
{
    for (int e = 0; e < count; e++) {
        const float *row = h + (size_t)e * o->per_epoch;
        for (int i = o->check_first; i < o->check_first + o->check_count; i++)
            if (!isfinite(row[i]))
                return DL_FAIL(DL_E_DIVERGED,
                               "training diverged: the loss became %s at epoch %d of %d; "
                               "try a smaller learning rate (--lr, now %g)",
                               isnan(row[i]) ? "NaN" : "Inf", from + e + 1, total, (double)o->lr);
    }
    return DL_OK;
}

dl_status dl_train_loop(dl_backend *be, dl_graph *g, int epochs, const float *hist_dev,
                        float *hist_host, const dl_loop *o, int *done, double *seconds)
{
    *done = 0;
    *seconds = 0.0;
    int max_chunk = o->max_chunk > 0 ? o->max_chunk : 256;
    int chunk = 1;
    double t0 = wall();
    DL_TRY(be->timer_start(be));
    dl_status st = DL_OK;
    while (*done < epochs) {
        int n = epochs - *done < chunk ? epochs - *done : chunk;
        double c0 = wall();
        st = be->graph_run(be, g, n);
        if (st != DL_OK) break;
        size_t off = (size_t)*done * o->per_epoch;
        st = be->download(be, hist_host + off, hist_dev + off,
                          sizeof(float) * (size_t)n * o->per_epoch);
        if (st != DL_OK) break;
        st = check_finite(hist_host + off, *done, n, o, epochs);
        *done += n;
        if (st != DL_OK) break;
        if (o->progress) {
            dl_progress p = {*done, epochs, wall() - t0,
                             hist_host + (size_t)(*done - 1) * o->per_epoch, 1.0};
            o->progress(o->progress_ud, &p);
        }
        if (o->stop && *o->stop) {
            st = DL_FAIL(DL_E_INTERRUPTED, "interrupted after epoch %d of %d", *done, epochs);
            break;
        }
        if (wall() - c0 < 0.05 && chunk < max_chunk)
            chunk = chunk * 2 < max_chunk ? chunk * 2 : max_chunk;
    }
    dl_status ts = be->timer_stop(be, seconds);
    return st != DL_OK ? st : ts;
}

dl_status dl_check_fits(dl_backend *be, size_t bytes, const char *what)
{
    size_t free_b = 0, total_b = 0;
    DL_TRY(be->mem_info(be, &free_b, &total_b));
    /* Leave a margin for library workspaces and the rest of the process. */
    size_t usable = free_b - free_b / 10;
    if (bytes > usable)
        return DL_FAIL(
            DL_E_MEMORY, "%s needs %.2f GiB of %s memory, but only %.2f GiB of %.2f GiB is free",
            what, bytes / 1073741824.0, be->name, free_b / 1073741824.0, total_b / 1073741824.0);
    return DL_OK;
}

int dl_cpu_groups(const dl_backend *be, int models)
{
#ifdef _OPENMP
    if (!be->model_groups || models < 2 || omp_in_parallel()) return 1;
    int threads = omp_get_max_threads();
    return threads < models ? threads : models;
#else
    (void)be, (void)models;
    return 1;
#endif
}

void dl_group_range(int models, int groups, int g, int *first, int *count)
{
    int base = models / groups, extra = models % groups;
    *first = g * base + (g < extra ? g : extra);
    *count = base + (g < extra ? 1 : 0);
}

/* Orders outcomes: 0 ok, 1 interrupted, 2 diverged, 3 any other failure. */
static int severity(dl_status s)
{
    return s == DL_OK ? 0 : s == DL_E_INTERRUPTED ? 1 : s == DL_E_DIVERGED ? 2 : 3;
}

dl_status dl_run_groups(int models, int groups, dl_group_fn fn, void *ud, int *firsts)
{
    dl_status *sts = calloc((size_t)groups, sizeof *sts);
    char(*msgs)[1024] = calloc((size_t)groups, sizeof *msgs);
    if (!sts || !msgs) {
        free(sts), free(msgs);
        return DL_FAIL(DL_E_MEMORY, "out of host memory splitting %d models", models);
    }
#pragma omp parallel for num_threads(groups) schedule(static, 1)
    for (int g = 0; g < groups; g++) {
        int count;
        dl_group_range(models, groups, g, &firsts[g], &count);
        dl_backend *cpu = NULL;
        sts[g] = dl_backend_cpu_create(&cpu);
        if (sts[g] == DL_OK) sts[g] = fn(cpu, g, firsts[g], count, ud);
        snprintf(msgs[g], sizeof msgs[g], "%s", dl_errmsg()); /* messages are per thread */
        dl_backend_destroy(cpu);
    }
    int worst = 0;
    for (int g = 1; g < groups; g++)
        if (severity(sts[g]) > severity(sts[worst])) worst = g;
    dl_status st = sts[worst];
    if (st != DL_OK) DL_FAIL(st, "%s", msgs[worst]);
    free(sts), free(msgs);
    return st;
}
