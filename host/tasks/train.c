#define _POSIX_C_SOURCE 200809L
#include "dlab/train.h"
#include "dlab/comm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* --- stops ----------------------------------------------------------------- */

const char *dl_stop_name(dl_stop_kind kind)
{
    switch (kind) {
    case DL_STOP_NONE: return "ok";
    case DL_STOP_INTERRUPTED: return "interrupted";
    case DL_STOP_DIVERGED: return "diverged";
    }
    return "unknown";
}

dl_status dl_stop_status(const dl_stop *stop)
{
    switch (stop->kind) {
    case DL_STOP_NONE: return DL_OK;
    case DL_STOP_INTERRUPTED: return DL_FAIL(DL_E_INTERRUPTED, "%s", stop->message);
    case DL_STOP_DIVERGED: return DL_FAIL(DL_E_DIVERGED, "%s", stop->message);
    }
    return DL_FAIL(DL_E_RUNTIME, "unknown stop %d", (int)stop->kind);
}

bool dl_status_is_stop(dl_status st) { return st == DL_E_INTERRUPTED || st == DL_E_DIVERGED; }

/* --- the epoch loop -------------------------------------------------------- */

static double wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Copies epochs [from, from + n) of the group's device history into its
 * slice of the host history: in one piece when the group is the whole run
 * (the layouts then coincide), else one metric's run of models at a time. */
static dl_status fetch_rows(dl_backend *be, float *host, const float *dev, int from, int n,
                            const dl_loop *o, const dl_group *grp)
{
    const size_t count = (size_t)grp->count, models = (size_t)grp->models;
    if (grp->count == grp->models) {
        size_t off = (size_t)from * o->metrics * count;
        return dl_download(be, host + off, dev + off,
                           sizeof(float) * (size_t)n * o->metrics * count);
    }
    for (size_t r = (size_t)from * o->metrics; r < ((size_t)from + n) * o->metrics; r++)
        DL_TRY(dl_download(be, host + r * models + (size_t)grp->first, dev + r * count,
                           sizeof(float) * count));
    return DL_OK;
}

/* Records a divergence in `stop` when a checked metric of one of the
 * group's models is not finite in epochs [from, from + n). */
static void check_finite(const float *host, int from, int n, int total, const dl_loop *o,
                         const dl_group *grp, dl_stop *stop)
{
    for (int e = from; e < from + n; e++)
        for (int k = o->check_first; k < o->check_first + o->check_count; k++) {
            const float *v = host + ((size_t)e * o->metrics + k) * grp->models + grp->first;
            for (int b = 0; b < grp->count; b++)
                if (!isfinite(v[b])) {
                    stop->kind = DL_STOP_DIVERGED;
                    snprintf(stop->message, sizeof stop->message,
                             "training diverged: the loss became %s at epoch %d of %d; "
                             "try a smaller learning rate (--lr, now %g)",
                             isnan(v[b]) ? "NaN" : "Inf", e + 1, total, (double)o->lr);
                    return;
                }
        }
}

dl_status dl_train_loop(dl_backend *be, dl_graph *g, int epochs, const float *hist_dev,
                        float *hist_host, const dl_loop *o, const dl_group *grp, dl_outcome *out)
{
    memset(out, 0, sizeof *out);
    const size_t host_row = (size_t)o->metrics * grp->models;
    int max_chunk = o->max_chunk > 0 ? o->max_chunk : 256;
    int chunk = o->first_chunk > 0 ? o->first_chunk : 1;
    if (chunk > max_chunk) max_chunk = chunk;
    const int ranks = o->comm ? dl_comm_size(o->comm) : 1;
    double t0 = wall();
    DL_TRY(dl_timer_start(be));
    dl_status st = DL_OK;
    while (out->epochs_run < epochs) {
        const int done = out->epochs_run;
        int n = epochs - done < chunk ? epochs - done : chunk;
        double c0 = wall();
        st = o->run ? o->run(be, o->run_ctx, done, n) : dl_graph_run(be, g, n);
        if (st != DL_OK || (st = fetch_rows(be, hist_host, hist_dev, done, n, o, grp)) != DL_OK) {
            if (ranks > 1) dl_comm_abort(o->comm, st); /* the others wait inside an epoch */
            break;
        }
        check_finite(hist_host, done, n, epochs, o, grp, &out->stop);
        out->epochs_run += n;
        if (out->stop.kind != DL_STOP_NONE) break;
        if (o->progress && grp->index == 0) {
            dl_progress p = {out->epochs_run, epochs, wall() - t0,
                             hist_host + (size_t)(out->epochs_run - 1) * host_row, 1.0};
            o->progress(o->progress_ud, &p);
        }
        bool stop = o->stop && *o->stop; /* read once: the ranks act on what they agreed */
        double took = wall() - c0;
        if (ranks > 1 && ((st = dl_comm_share_stop(o->comm, stop, &stop)) != DL_OK ||
                          (st = dl_comm_allreduce_max_f64(o->comm, &took, 1)) != DL_OK))
            dl_comm_abort(o->comm, st);
        if (stop) {
            out->stop.kind = DL_STOP_INTERRUPTED;
            snprintf(out->stop.message, sizeof out->stop.message,
                     "interrupted after epoch %d of %d", out->epochs_run, epochs);
            break;
        }
        if (took < 0.05 && chunk < max_chunk) chunk = chunk * 2 < max_chunk ? chunk * 2 : max_chunk;
    }
    dl_status ts = dl_timer_stop(be, &out->seconds);
    return st != DL_OK ? st : ts;
}

const char *dl_fused_mode_name(dl_fused_mode m)
{
    return m == DL_FUSED_ON ? "on" : m == DL_FUSED_OFF ? "off" : "auto";
}

dl_status dl_fused_mode_parse(const char *s, const char *option, dl_fused_mode *out)
{
    if (!strcmp(s, "auto"))
        *out = DL_FUSED_AUTO;
    else if (!strcmp(s, "off"))
        *out = DL_FUSED_OFF;
    else if (!strcmp(s, "on"))
        *out = DL_FUSED_ON;
    else
        return DL_FAIL(DL_E_USAGE, "%s must be auto, on or off (got '%s')", option, s);
    return DL_OK;
}

/* The loop's budget: 1 GFLOP/s is slower than any core runs these sweeps,
 * so the real chunks are shorter than the target below. */
#define FUSED_FLOPS_PER_S 1e9
#define FUSED_MAX_S       0.1

void dl_loop_fused_chunks(dl_loop *loop, double flops_per_epoch)
{
    const double w = flops_per_epoch > 1.0 ? flops_per_epoch : 1.0;
    const double most = FUSED_MAX_S * FUSED_FLOPS_PER_S / w;
    if (loop->max_chunk <= 0)
        loop->max_chunk = most < 256.0 ? 256 : most > 1e9 ? 1000000000 : (int)most;
}

dl_status dl_check_fits(dl_backend *be, size_t bytes, const char *what)
{
    size_t free_b = 0, total_b = 0;
    DL_TRY(dl_mem_info(be, &free_b, &total_b));
    /* Leave a margin for library workspaces and the rest of the process. */
    size_t usable = free_b - free_b / 10;
    if (bytes > usable)
        return DL_FAIL(
            DL_E_MEMORY, "%s needs %.2f GiB of %s memory, but only %.2f GiB of %.2f GiB is free",
            what, bytes / 1073741824.0, be->name, free_b / 1073741824.0, total_b / 1073741824.0);
    return DL_OK;
}

/* --- the many-model runner ------------------------------------------------- */

/* Groups to cut `models` models into: one per thread on a backend that
 * asks for it, else 1. */
static int group_count(const dl_backend *be, int models)
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

static dl_group group_of(int models, int groups, int index)
{
    int base = models / groups, extra = models % groups;
    return (dl_group){.index = index,
                      .first = index * base + (index < extra ? index : extra),
                      .count = base + (index < extra ? 1 : 0),
                      .models = models};
}

/* Folds group g's outcome into the run's (g in increasing order). */
static void combine(dl_outcome *run, const dl_outcome *g, bool first)
{
    if (first) {
        *run = *g;
        return;
    }
    /* The worst stop; among equal ones the group that finished fewest
     * epochs, whose message ("interrupted after epoch N") then names the
     * epochs every model finished. */
    if (g->stop.kind > run->stop.kind ||
        (g->stop.kind == run->stop.kind && g->epochs_run < run->epochs_run))
        run->stop = g->stop;
    if (g->epochs_run < run->epochs_run) run->epochs_run = g->epochs_run;
    if (g->seconds > run->seconds) run->seconds = g->seconds;
}

dl_status dl_run_models(dl_backend *be, int models, dl_group_fn fn, void *ud, dl_outcome *out)
{
    memset(out, 0, sizeof *out);
    int groups = group_count(be, models);
    if (groups == 1) {
        dl_group all = group_of(models, 1, 0);
        return fn(be, &all, ud, out);
    }
    dl_outcome *outs = calloc((size_t)groups, sizeof *outs);
    dl_status *sts = calloc((size_t)groups, sizeof *sts);
    char(*msgs)[1024] = calloc((size_t)groups, sizeof *msgs); /* dl_errmsg is per thread */
    if (!outs || !sts || !msgs) {
        free(outs), free(sts), free(msgs);
        return DL_FAIL(DL_E_MEMORY, "out of host memory splitting %d models", models);
    }
#pragma omp parallel for num_threads(groups) schedule(static, 1)
    for (int g = 0; g < groups; g++) {
        dl_group grp = group_of(models, groups, g);
        dl_backend *cpu = NULL;
        sts[g] = dl_backend_cpu_create(&cpu);
        if (sts[g] == DL_OK) sts[g] = fn(cpu, &grp, ud, &outs[g]);
        if (sts[g] != DL_OK) snprintf(msgs[g], sizeof msgs[g], "%s", dl_errmsg());
        dl_backend_destroy(cpu);
    }
    dl_status st = DL_OK;
    for (int g = 0; g < groups && st == DL_OK; g++)
        if (sts[g] != DL_OK) st = DL_FAIL(sts[g], "%s", msgs[g]);
    for (int g = 0; g < groups; g++) combine(out, &outs[g], g == 0);
    free(outs), free(sts), free(msgs);
    return st;
}
