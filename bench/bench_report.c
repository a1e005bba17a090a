/* dlab-bench output: the aligned table for people and the JSON document for
 * machines. Both report the same numbers. */
#include "bench.h"
#include "bench_peer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dlab/json.h"

static const char *backend_names[BENCH_BACKENDS] = {"cpu", "cuda"};

const char *bench_outcome_name(bench_outcome o)
{
    switch (o) {
    case BENCH_OK: return "ok";
    case BENCH_NO_GPU: return "no GPU";
    case BENCH_SKIPPED: return "skipped";
    case BENCH_FAILED: return "failed";
    default: return "not run";
    }
}

const char *bench_level_name(bench_level l)
{
    return l == BENCH_SMOKE ? "smoke" : l == BENCH_QUICK ? "quick" : "full";
}

/* --- table ------------------------------------------------------------------ */

/* The unit that shows `s` seconds with 1 to 3 digits before the point. */
static const char *time_unit(double s, double *scale)
{
    if (s >= 1.0) return *scale = 1.0, "s";
    if (s >= 1e-3) return *scale = 1e3, "ms";
    return *scale = 1e6, "us";
}

/* Width of one backend's group of columns:
 * epochs(7) median(10) min-max(15) GFLOP/s(8) GB/s(7) xfloor(7). */
#define GROUP_W 59

static void print_group(FILE *f, const bench_timing *t, const char *gpu_note)
{
    if (t->outcome != BENCH_OK) {
        char text[GROUP_W + 1];
        snprintf(text, sizeof text, "  %s", bench_outcome_name(t->outcome));
        fprintf(f, "%-*s", GROUP_W, text);
        return;
    }
    double sc;
    const char *u = time_unit(t->median_s, &sc);
    char median[24], spread[40], xfloor[16];
    snprintf(median, sizeof median, "%.3g %s", t->median_s * sc, u);
    snprintf(spread, sizeof spread, "%.3g-%.3g", t->min_s * sc, t->max_s * sc);
    if (t->floor_s > 0)
        snprintf(xfloor, sizeof xfloor, "%.1f", t->median_s / t->floor_s);
    else
        snprintf(xfloor, sizeof xfloor, "-");
    fprintf(f, "%7d %10s %15s %8.3g %7.3g %7s", t->epochs, median, spread, t->gflops, t->gbps,
            xfloor);
}

static void print_ceiling(FILE *f, const bench_run *r, int b)
{
    const bench_ceiling *c = &r->ceil[b];
    fprintf(f, "  %-6s", backend_names[b]);
    if (c->ok) {
        char gemm[48], copy[48];
        snprintf(gemm, sizeof gemm, "%.4g GFLOP/s (n=%d)", c->gemm_gflops, c->gemm_n);
        snprintf(copy, sizeof copy, "%.4g GB/s (%zu MiB)", c->copy_gbps, c->copy_bytes >> 20);
        fprintf(f, "  %-28s %s\n", gemm, copy);
    } else if (b == BENCH_CUDA && r->gpu_note[0]) {
        fprintf(f, "  no GPU\n");
    } else if (!r->want[b]) {
        fprintf(f, "  not run\n");
    } else {
        fprintf(f, "  not measured: %s\n", c->reason);
    }
}

/* The last column of a table row: the GPU's speedup, "-" without one. */
static void print_speedup(FILE *f, const bench_case *c)
{
    if (c->speedup > 0)
        fprintf(f, " | %6.3gx\n", c->speedup);
    else
        fprintf(f, " | %7s\n", "-");
}

/* Width of one backend's group in the whole-runs table: run(10) runs/s(10)
 * model-epochs/s(15). */
#define RUNS_W 37

/* The cases that time whole training runs of many models: seconds per run,
 * runs per second and model-epochs per second on each backend. */
static void print_runs(FILE *f, const bench_run *r, int w)
{
    bool any = false;
    for (int i = 0; i < r->n_cases; i++) any = any || r->cases[i].run_epochs > 0;
    if (!any) return;
    fprintf(f, "\nwhole runs: N iris models trained together, each run the lab's epochs\n");
    fprintf(f, "%-*s | %6s %6s", w, "case", "models", "epochs");
    for (int b = 0; b < BENCH_BACKENDS; b++) {
        char run[16];
        snprintf(run, sizeof run, "%s run", backend_names[b]);
        fprintf(f, " | %10s %10s %15s", run, "runs/s", "model-epochs/s");
    }
    fprintf(f, " | %7s\n", "speedup");
    for (int i = 0; i < r->n_cases; i++) {
        const bench_case *c = &r->cases[i];
        if (!c->run_epochs) continue;
        fprintf(f, "%-*s | %6d %6d", w, c->name, c->models, c->run_epochs);
        for (int b = 0; b < BENCH_BACKENDS; b++) {
            const bench_timing *t = &c->t[b];
            if (t->outcome != BENCH_OK) {
                char text[RUNS_W + 1];
                snprintf(text, sizeof text, "  %s", bench_outcome_name(t->outcome));
                fprintf(f, " | %-*s", RUNS_W, text);
                continue;
            }
            double sc, run = bench_run_seconds(t);
            const char *u = time_unit(run, &sc);
            char runs[24];
            snprintf(runs, sizeof runs, "%.3g %s", run * sc, u);
            fprintf(f, " | %10s %10.4g %15.4g", runs, bench_runs_per_s(c, t),
                    c->models / t->median_s);
        }
        print_speedup(f, c);
    }
    fprintf(f,
            "run: median seconds of one whole training run (train_seconds); runs/s: models / run;\n"
            "model-epochs/s: models x epochs / run.\n");
}

static void print_goals(FILE *f, const bench_run *r)
{
    int w = 4;
    for (int i = 0; i < BENCH_GOALS; i++) {
        int len = (int)strlen(r->goals[i].what);
        if (len > w) w = len;
    }
    fprintf(f, "\ngoals (reported, not asserted)\n  %-*s %-16s %-10s %-4s %s\n", w, "goal",
            "target", "measured", "met", "from");
    for (int i = 0; i < BENCH_GOALS; i++) {
        const bench_goal *g = &r->goals[i];
        char target[32], measured[24], from[200];
        snprintf(target, sizeof target, "%s %g %s", g->at_least ? ">=" : "<", g->target, g->unit);
        if (g->measured_ok)
            snprintf(measured, sizeof measured, "%.4g", g->measured);
        else
            snprintf(measured, sizeof measured, "-");
        if (g->measured_ok && !strcmp(g->backend, "cpu"))
            snprintf(from, sizeof from, "%s, %d OpenMP threads", g->from, r->omp_threads);
        else
            snprintf(from, sizeof from, "%s", g->from);
        int met = bench_goal_met(g);
        fprintf(f, "  %-*s %-16s %-10s %-4s %s\n", w, g->what, target, measured,
                met < 0 ? "-"
                : met   ? "yes"
                        : "no",
                from);
    }
}

void bench_print_table(FILE *f, const bench_run *r)
{
    fprintf(f, "dlab-bench %s, %s: %d timed runs per case and backend after warm-up; %.1f s\n",
            DLAB_VERSION, bench_level_name(r->level), r->repeats, r->wall_s);
    fprintf(f, "host    %s, %s\n", r->host, r->started);
    fprintf(f, "cpu     %s; OpenMP %d threads", r->cpu_desc, r->omp_threads);
    if (r->blas_threads > 0)
        fprintf(f, "; OpenBLAS %d threads (%s)", r->blas_threads, r->blas_config);
    fputc('\n', f);
    fprintf(f, "env     %s\n",
            r->env[0] ? r->env : "no OMP_*, GOMP_* or OPENBLAS_* threading variables set");
    if (r->gpu_note[0])
        fprintf(f, "gpu     no GPU (%s)\n", r->gpu_note);
    else if (r->gpu_desc[0])
        fprintf(f, "gpu     %s\n", r->gpu_desc);
    else
        fprintf(f, "gpu     not used (--device cpu)\n");
    fprintf(f, "memory  host %.1f of %.1f GiB free", r->host_free / 1073741824.0,
            r->host_total / 1073741824.0);
    if (r->gpu_total)
        fprintf(f, "; gpu %.1f of %.1f GiB free", r->gpu_free / 1073741824.0,
                r->gpu_total / 1073741824.0);
    fprintf(f,
            "\n\nceilings (best of %d)  SGEMM through be->gemm      copy through be->copy (read + "
            "write)\n",
            r->repeats);
    for (int b = 0; b < BENCH_BACKENDS; b++) print_ceiling(f, r, b);

    int w = 4;
    for (int i = 0; i < r->n_cases; i++) {
        int len = (int)strlen(r->cases[i].name);
        if (len > w) w = len;
    }
    fputc('\n', f);
    for (int b = 0; b < BENCH_BACKENDS; b++) {
        char title[GROUP_W + 1];
        snprintf(title, sizeof title, " %s ", backend_names[b]);
        int dashes = GROUP_W - (int)strlen(title), left = dashes / 2;
        fprintf(f, "%*s | ", b == 0 ? w : 0, "");
        for (int i = 0; i < left; i++) fputc('-', f);
        fputs(title, f);
        for (int i = 0; i < dashes - left; i++) fputc('-', f);
    }
    fprintf(f, " |\n%-*s", w, "case");
    for (int b = 0; b < BENCH_BACKENDS; b++)
        fprintf(f, " | %7s %10s %15s %8s %7s %7s", "epochs", "median", "min-max", "GFLOP/s", "GB/s",
                "xfloor");
    fprintf(f, " | %7s\n", "speedup");
    for (int i = 0; i < r->n_cases; i++) {
        const bench_case *c = &r->cases[i];
        fprintf(f, "%-*s", w, c->name);
        for (int b = 0; b < BENCH_BACKENDS; b++) {
            fputs(" | ", f);
            print_group(f, &c->t[b], r->gpu_note);
        }
        print_speedup(f, c);
    }
    fprintf(f,
            "\nmedian, min-max: seconds per epoch over the timed runs (the task's train_seconds / "
            "epochs);\n"
            "GFLOP/s, GB/s: one epoch's analytic flops and minimum bytes over the median;\n"
            "xfloor: median / (flops / SGEMM ceiling + bytes / copy ceiling) on the same backend;\n"
            "speedup: cpu median / cuda median.\n");

    print_runs(f, r, w);
    if (r->n_cross) {
        fprintf(f, "\ncrossover (where the GPU starts to win)\n");
        for (int i = 0; i < r->n_cross; i++)
            fprintf(f, "  %-*s %s\n", w, r->cross[i].family, r->cross[i].note);
    }
    print_goals(f, r);
    bench_peer_print(f, r);
    bool header = false;
    for (int i = 0; i < r->n_cases; i++)
        for (int b = 0; b < BENCH_BACKENDS; b++) {
            const bench_timing *t = &r->cases[i].t[b];
            if (t->outcome != BENCH_SKIPPED && t->outcome != BENCH_FAILED) continue;
            if (!header) fprintf(f, "\nnotes\n"), header = true;
            fprintf(f, "  %s on %s %s: %s\n", r->cases[i].name, backend_names[b],
                    bench_outcome_name(t->outcome), t->reason);
        }
}

/* --- JSON ------------------------------------------------------------------- */

static void json_timing(dl_json *j, const char *key, const bench_case *c, const bench_timing *t,
                        const char *gpu_note)
{
    dl_json_obj_begin(j, key);
    dl_json_str(j, "status", bench_outcome_name(t->outcome));
    if (t->outcome != BENCH_OK) {
        if (t->outcome == BENCH_NO_GPU)
            dl_json_str(j, "reason", gpu_note);
        else if (t->reason[0])
            dl_json_str(j, "reason", t->reason);
        dl_json_obj_end(j);
        return;
    }
    dl_json_int(j, "epochs", t->epochs);
    dl_json_int(j, "repeats", t->repeats);
    dl_json_num(j, "median_s", t->median_s);
    dl_json_num(j, "min_s", t->min_s);
    dl_json_num(j, "max_s", t->max_s);
    dl_json_num(j, "gflops", t->gflops);
    dl_json_num(j, "gbps", t->gbps);
    if (t->floor_s > 0) {
        dl_json_num(j, "floor_s", t->floor_s);
        dl_json_num(j, "of_floor", t->median_s / t->floor_s);
    } else {
        dl_json_null(j, "floor_s");
        dl_json_null(j, "of_floor");
    }
    dl_json_num(j, "final_loss", t->final_loss);
    dl_json_num(j, "model_epochs_per_s", c->models / t->median_s);
    if (c->run_epochs) {
        dl_json_num(j, "run_s", bench_run_seconds(t));
        dl_json_num(j, "runs_per_s", bench_runs_per_s(c, t));
    }
    dl_json_obj_end(j);
}

static void json_case(dl_json *j, const bench_case *c, const char *gpu_note)
{
    const bench_spec *s = &c->spec;
    dl_json_obj_begin(j, NULL);
    dl_json_str(j, "name", c->name);
    dl_json_str(j, "family", s->family);
    dl_json_str(j, "workload", s->kind == BENCH_FACTORISE ? "factorise" : "mlp");
    dl_json_str(j, "data", s->iris ? "iris" : "synthetic");
    dl_json_num(j, "size", c->size);
    dl_json_str(j, "size_unit", c->size_unit);
    if (s->kind == BENCH_FACTORISE) {
        dl_json_int(j, "m", s->m);
        dl_json_int(j, "n", s->n);
        dl_json_int(j, "rank", s->rank);
        dl_json_int(j, "elements", (long long)s->m * s->n);
    } else {
        dl_json_int(j, "samples", s->samples);
        dl_json_int(j, "features", c->features);
        dl_json_int(j, "classes", c->classes);
        dl_json_int(j, "hidden", s->hidden);
        dl_json_int(j, "train", c->n_train);
        dl_json_int(j, "batch", c->batch);
    }
    dl_json_int(j, "models", c->models);
    if (c->run_epochs)
        dl_json_int(j, "run_epochs", c->run_epochs);
    else
        dl_json_null(j, "run_epochs");
    dl_json_num(j, "lr", c->lr);
    dl_json_int(j, "seed", (long long)c->seed);
    if (!s->iris) dl_json_int(j, "data_seed", (long long)c->data_seed);
    dl_json_num(j, "flops_per_epoch", c->flops);
    dl_json_num(j, "bytes_per_epoch", c->bytes);
    for (int b = 0; b < BENCH_BACKENDS; b++)
        json_timing(j, backend_names[b], c, &c->t[b], gpu_note);
    if (c->speedup > 0)
        dl_json_num(j, "speedup", c->speedup);
    else
        dl_json_null(j, "speedup");
    dl_json_obj_end(j);
}

void bench_write_json(FILE *f, const bench_run *r)
{
    dl_json j;
    dl_json_init(&j, f, true);
    dl_json_obj_begin(&j, NULL);
    dl_json_str(&j, "tool", "dlab-bench");
    dl_json_str(&j, "version", DLAB_VERSION);
    dl_json_str(&j, "level", bench_level_name(r->level));
    dl_json_int(&j, "repeats", r->repeats);
    dl_json_str(&j, "started", r->started);
    dl_json_num(&j, "wall_seconds", r->wall_s);

    dl_json_obj_begin(&j, "machine");
    dl_json_str(&j, "host", r->host);
    dl_json_str(&j, "cpu", r->cpu_desc);
    dl_json_int(&j, "omp_threads", r->omp_threads);
    if (r->blas_threads > 0) {
        dl_json_int(&j, "openblas_threads", r->blas_threads);
        dl_json_str(&j, "openblas_config", r->blas_config);
    } else {
        dl_json_null(&j, "openblas_threads");
        dl_json_null(&j, "openblas_config");
    }
    dl_json_str(&j, "threading_env", r->env);
    dl_json_int(&j, "host_memory_total_bytes", (long long)r->host_total);
    dl_json_int(&j, "host_memory_free_bytes", (long long)r->host_free);
    if (r->gpu_desc[0]) {
        dl_json_str(&j, "gpu", r->gpu_desc);
        dl_json_int(&j, "gpu_memory_total_bytes", (long long)r->gpu_total);
        dl_json_int(&j, "gpu_memory_free_bytes", (long long)r->gpu_free);
    } else {
        dl_json_null(&j, "gpu");
        if (r->gpu_note[0]) dl_json_str(&j, "gpu_note", r->gpu_note);
    }
    dl_json_obj_end(&j);

    dl_json_arr_begin(&j, "backends");
    for (int b = 0; b < BENCH_BACKENDS; b++)
        if (r->want[b]) dl_json_str(&j, NULL, backend_names[b]);
    dl_json_arr_end(&j);

    dl_json_obj_begin(&j, "ceilings");
    for (int b = 0; b < BENCH_BACKENDS; b++) {
        const bench_ceiling *c = &r->ceil[b];
        dl_json_obj_begin(&j, backend_names[b]);
        if (c->ok) {
            dl_json_str(&j, "status", "ok");
            dl_json_int(&j, "sgemm_n", c->gemm_n);
            dl_json_num(&j, "sgemm_gflops", c->gemm_gflops);
            dl_json_int(&j, "copy_bytes", (long long)c->copy_bytes);
            dl_json_num(&j, "copy_gbps", c->copy_gbps);
        } else {
            bool nogpu = b == BENCH_CUDA && r->gpu_note[0];
            dl_json_str(&j, "status", nogpu ? "no GPU" : r->want[b] ? "failed" : "not run");
            if (nogpu)
                dl_json_str(&j, "reason", r->gpu_note);
            else if (c->reason[0])
                dl_json_str(&j, "reason", c->reason);
        }
        dl_json_obj_end(&j);
    }
    dl_json_obj_end(&j);

    dl_json_arr_begin(&j, "cases");
    for (int i = 0; i < r->n_cases; i++) json_case(&j, &r->cases[i], r->gpu_note);
    dl_json_arr_end(&j);

    dl_json_arr_begin(&j, "crossovers");
    for (int i = 0; i < r->n_cross; i++) {
        const bench_crossover *x = &r->cross[i];
        dl_json_obj_begin(&j, NULL);
        dl_json_str(&j, "family", x->family);
        dl_json_str(&j, "size_unit", x->size_unit ? x->size_unit : "");
        dl_json_int(&j, "points", x->points);
        if (x->from > 0)
            dl_json_num(&j, "gpu_faster_from", x->from);
        else
            dl_json_null(&j, "gpu_faster_from");
        if (x->below > 0)
            dl_json_num(&j, "cpu_faster_at", x->below);
        else
            dl_json_null(&j, "cpu_faster_at");
        if (x->estimate > 0)
            dl_json_num(&j, "crossover_estimate", x->estimate);
        else
            dl_json_null(&j, "crossover_estimate");
        dl_json_str(&j, "note", x->note);
        dl_json_obj_end(&j);
    }
    dl_json_arr_end(&j);

    dl_json_arr_begin(&j, "goals");
    for (int i = 0; i < BENCH_GOALS; i++) {
        const bench_goal *g = &r->goals[i];
        int met = bench_goal_met(g);
        dl_json_obj_begin(&j, NULL);
        dl_json_str(&j, "name", g->name);
        dl_json_str(&j, "what", g->what);
        dl_json_str(&j, "backend", g->backend);
        dl_json_str(&j, "unit", g->unit);
        dl_json_str(&j, "comparison", g->at_least ? ">=" : "<");
        dl_json_num(&j, "target", g->target);
        if (g->measured_ok) {
            dl_json_num(&j, "measured", g->measured);
            dl_json_bool(&j, "met", met == 1);
            dl_json_str(&j, "case", g->from);
        } else {
            dl_json_null(&j, "measured");
            dl_json_null(&j, "met");
            dl_json_null(&j, "case");
            dl_json_str(&j, "reason", g->from);
        }
        dl_json_obj_end(&j);
    }
    dl_json_arr_end(&j);
    bench_peer_json(&j, r);
    dl_json_obj_end(&j);
    fputc('\n', f);
}
