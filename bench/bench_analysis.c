/* dlab-bench: what the timings say. Per workload family, the size from
 * which the GPU wins; and the project's speed goals, read from the cases
 * that measure them (reported, never asserted). */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- crossovers ------------------------------------------------------------ */

static void find_crossover(const bench_run *r, const char *family, bench_crossover *x)
{
    memset(x, 0, sizeof *x);
    x->family = family;
    double size[64], speedup[64];
    int n = 0;
    for (int i = 0; i < r->n_cases && n < 64; i++) {
        const bench_case *c = &r->cases[i];
        if (strcmp(c->spec.family, family)) continue;
        x->size_unit = c->size_unit;
        if (c->speedup > 0) size[n] = c->size, speedup[n] = c->speedup, n++;
    }
    x->points = n;
    for (int i = 1; i < n; i++) /* ascending size (insertion sort: a handful of points) */
        for (int k = i; k > 0 && size[k - 1] > size[k]; k--) {
            double ts = size[k], tv = speedup[k];
            size[k] = size[k - 1], speedup[k] = speedup[k - 1];
            size[k - 1] = ts, speedup[k - 1] = tv;
        }
    if (n == 0) {
        snprintf(x->note, sizeof x->note, "%s",
                 r->gpu_note[0]         ? "no GPU"
                 : !r->want[BENCH_CUDA] ? "cuda not run"
                 : !r->want[BENCH_CPU]  ? "cpu not run"
                                        : "no size ran on both backends");
        return;
    }
    /* The GPU "wins from" the smallest size from which it is faster at
     * every larger size measured too. */
    int j = n;
    while (j > 0 && speedup[j - 1] > 1.0) j--;
    if (j == n) {
        snprintf(x->note, sizeof x->note,
                 "CPU as fast or faster at every size measured (up to %.3g %s)", size[n - 1],
                 x->size_unit);
    } else if (j == 0) {
        x->from = size[0];
        snprintf(x->note, sizeof x->note, "GPU faster at every size measured (from %.3g %s)",
                 size[0], x->size_unit);
    } else {
        x->from = size[j];
        x->below = size[j - 1];
        double l0 = log(size[j - 1]), l1 = log(size[j]);
        double s0 = log(speedup[j - 1]), s1 = log(speedup[j]);
        x->estimate = s1 != s0 ? exp(l0 + (0.0 - s0) * (l1 - l0) / (s1 - s0)) : size[j];
        snprintf(x->note, sizeof x->note,
                 "GPU faster from %.3g %s (CPU at %.3g); speedup 1 near %.3g", x->from,
                 x->size_unit, x->below, x->estimate);
    }
}

void bench_find_crossovers(bench_run *r)
{
    r->cross = calloc((size_t)r->n_cases + 1, sizeof *r->cross);
    if (!r->cross) return;
    for (int i = 0; i < r->n_cases; i++) {
        const char *fam = r->cases[i].spec.family;
        bool seen = false;
        int members = 0;
        for (int k = 0; k < r->n_cross; k++) seen = seen || !strcmp(r->cross[k].family, fam);
        for (int k = 0; k < r->n_cases; k++) members += !strcmp(r->cases[k].spec.family, fam);
        if (!seen && members > 1) find_crossover(r, fam, &r->cross[r->n_cross++]);
    }
}

/* --- goals ------------------------------------------------------------------ */

/* The project's speed goals, read from the many-model iris MLP cases: on
 * the CPU the best whole-run throughput over the N measured, on the GPU the
 * training time of one run of 10000 models. */
#define GOAL_GPU_MODELS 10000

void bench_find_goals(bench_run *r)
{
    bench_goal *cpu = &r->goals[0], *gpu = &r->goals[1];
    *cpu = (bench_goal){.name = "cpu-mlp-iris-runs-per-s",
                        .backend = "cpu",
                        .unit = "runs/s",
                        .what = "CPU: iris MLP runs/s (lab preset, 100 epochs; 2 cores)",
                        .at_least = true,
                        .target = 1000.0};
    *gpu = (bench_goal){.name = "cuda-mlp-iris-10000x100-seconds",
                        .backend = "cuda",
                        .unit = "s",
                        .what = "GPU: 10000 iris MLPs x 100 epochs, training s (H200)",
                        .at_least = false,
                        .target = 1.0};
    const char *gpu_case = NULL;
    for (int i = 0; i < r->n_cases; i++) {
        const bench_case *c = &r->cases[i];
        if (c->spec.kind != BENCH_MLP || !c->spec.iris || c->spec.models < 1) continue;
        const bench_timing *t = &c->t[BENCH_CPU];
        if (t->outcome == BENCH_OK &&
            (!cpu->measured_ok || bench_runs_per_s(c, t) > cpu->measured)) {
            cpu->measured = bench_runs_per_s(c, t);
            cpu->measured_ok = true;
            snprintf(cpu->from, sizeof cpu->from, "%s", c->name);
        }
        if (c->models != GOAL_GPU_MODELS) continue;
        gpu_case = c->name;
        t = &c->t[BENCH_CUDA];
        if (t->outcome == BENCH_OK) {
            gpu->measured = bench_run_seconds(t);
            gpu->measured_ok = true;
            snprintf(gpu->from, sizeof gpu->from, "%s", c->name);
        } else {
            snprintf(gpu->from, sizeof gpu->from, "%s on cuda: %s", c->name,
                     bench_outcome_name(t->outcome));
        }
    }
    if (!cpu->measured_ok)
        snprintf(cpu->from, sizeof cpu->from, "no mlp-seeds case ran on the CPU");
    if (!gpu_case)
        snprintf(gpu->from, sizeof gpu->from, "mlp-seeds/%d-models not selected (full level)",
                 GOAL_GPU_MODELS);
}
