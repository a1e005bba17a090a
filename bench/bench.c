/* dlab-bench: the lab's training work on the CPU and the GPU, timed the
 * same way on both.
 *
 * For every case and backend: warm-up runs (not counted) that also pick
 * how many epochs one run trains, then at least five timed runs; each run
 * is the task's own entry point (dl_factorise*, dl_mlp_run) and its timing
 * is the task's train_seconds (CUDA events around the epoch loop on the
 * GPU, the monotonic clock on the CPU). Per epoch: the median, min and max
 * over the runs, the achieved GFLOP/s and GB/s from the analytic cost of an
 * epoch, and that cost's floor on the machine's own ceilings (a large SGEMM
 * and a large copy measured here through the same backend). Then the GPU's
 * speedup and, per workload family, the size from which the GPU wins.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include "dlab/summary.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dlab/train.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef DLAB_HAVE_CBLAS
/* OpenBLAS's own queries (CMake links OpenBLAS when DLAB_HAVE_CBLAS is set);
 * declared here rather than through cblas.h, which not every CBLAS ships
 * with them. */
int openblas_get_num_threads(void);
char *openblas_get_config(void);
#endif

#define BENCH_MIN_REPEATS 5
#define BENCH_MIN_EPOCHS  3
#define BENCH_MAX_EPOCHS  20000

typedef struct {
    bench_level level;
    int repeats;
    const char *device; /* cpu | cuda | both */
    const char *filters[16];
    int n_filters;
    const char *out;
    bool json, list, help;
} bench_options;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: dlab-bench [options]\n"
            "\n"
            "Times the lab's training work (the factorisation and MLP tasks, on iris and on\n"
            "synthetic data of growing size) on the CPU and GPU backends through the same\n"
            "code the dlab-gpu CLI runs, against the machine's measured SGEMM and copy\n"
            "ceilings, and reports the GPU's speedup and where it starts to win; for many\n"
            "iris models trained together (--seeds N), whole training runs per second and\n"
            "the project's speed goals.\n"
            "\n"
            "  (default)          every size: 1e3 to 1e8 matrix elements, 1e3 to 1e6 samples,\n"
            "                     1 to 10000 iris models trained together (minutes on a CPU)\n"
            "  --quick            fewer sizes and shorter runs (under a minute on 2 CPU cores)\n"
            "  --smoke            the smallest cases only (a few seconds; for tests)\n"
            "  --device D         cpu, cuda or both (default both: the GPU where one answers)\n"
            "  --filter SUBSTR    run the cases whose name contains SUBSTR (repeatable; e.g.\n"
            "                     factorise, iris, r32, mlp-h1024, mlp-seeds/10000)\n"
            "  --repeats N        timed runs per case and backend (at least %d, default %d)\n"
            "  --json             one JSON object on stdout (the table goes to stderr)\n"
            "  --out DIR          also write DIR/bench.json, DIR/bench.txt and the figure\n"
            "                     DIR/bench.png and .svg (time per epoch against size)\n"
            "  --list             list the cases of the chosen level and exit\n"
            "  --help\n"
            "\n"
            "Exit status: 0 every case ran or was skipped for memory, 1 a case failed or\n"
            "--device cuda found no GPU, 2 bad usage.\n",
            BENCH_MIN_REPEATS, BENCH_MIN_REPEATS);
}

/* One line on stderr and exit status 2. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int
usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dlab-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return 2;
}

/* Returns -1 on success, else the exit status. */
static int parse_options(int argc, char **argv, bench_options *o)
{
    *o = (bench_options){.level = BENCH_FULL, .repeats = BENCH_MIN_REPEATS, .device = "both"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "--device") || !strcmp(a, "--filter") || !strcmp(a, "--out") ||
                     !strcmp(a, "--repeats");
        if (takes && !val) return usage_error("%s needs a value", a);
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = true;
        } else if (!strcmp(a, "--quick")) {
            o->level = BENCH_QUICK;
        } else if (!strcmp(a, "--smoke")) {
            o->level = BENCH_SMOKE;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--list")) {
            o->list = true;
        } else if (!strcmp(a, "--device")) {
            if (strcmp(val, "cpu") && strcmp(val, "cuda") && strcmp(val, "both"))
                return usage_error("--device must be cpu, cuda or both (got '%s')", val);
            o->device = val, i++;
        } else if (!strcmp(a, "--filter")) {
            if (!*val) return usage_error("--filter needs a non-empty substring");
            if (o->n_filters == (int)(sizeof o->filters / sizeof o->filters[0]))
                return usage_error("too many --filter options (at most 16)");
            o->filters[o->n_filters++] = val, i++;
        } else if (!strcmp(a, "--out")) {
            if (!*val) return usage_error("--out needs a directory");
            o->out = val, i++;
        } else if (!strcmp(a, "--repeats")) {
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            if (*val < '0' || *val > '9' || *end || errno == ERANGE || v < BENCH_MIN_REPEATS ||
                v > 1000)
                return usage_error("--repeats must be an integer from 5 to 1000 (got '%s')", val);
            o->repeats = (int)v, i++;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    return -1;
}

/* --- the machine ----------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void describe_machine(bench_run *r)
{
    if (gethostname(r->host, sizeof r->host) != 0) snprintf(r->host, sizeof r->host, "unknown");
    r->host[sizeof r->host - 1] = '\0';
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(r->started, sizeof r->started, "%Y-%m-%d %H:%M:%S", &tm);
    r->omp_threads = 1;
#ifdef _OPENMP
    r->omp_threads = omp_get_max_threads();
#endif
#ifdef DLAB_HAVE_CBLAS
    r->blas_threads = openblas_get_num_threads();
    const char *cfg = openblas_get_config();
    snprintf(r->blas_config, sizeof r->blas_config, "%s", cfg ? cfg : "");
    size_t len = strlen(r->blas_config);
    while (len && r->blas_config[len - 1] == ' ') r->blas_config[--len] = '\0';
#endif
    /* The variables that change how the CPU side threads and waits. */
    static const char *vars[] = {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                 "OPENBLAS_NUM_THREADS", "OMP_PROC_BIND"};
    size_t used = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || used >= sizeof r->env) continue;
        int k =
            snprintf(r->env + used, sizeof r->env - used, "%s%s=%s", used ? " " : "", vars[i], v);
        if (k > 0) used += (size_t)k;
    }
    dl_backend *cpu = r->be[BENCH_CPU];
    snprintf(r->cpu_desc, sizeof r->cpu_desc, "%s", cpu->device);
    (void)cpu->mem_info(cpu, &r->host_free, &r->host_total);
    dl_backend *gpu = r->be[BENCH_CUDA];
    if (gpu) {
        snprintf(r->gpu_desc, sizeof r->gpu_desc, "%s", gpu->device);
        if (gpu->mem_info(gpu, &r->gpu_free, &r->gpu_total) != DL_OK) dl_clear_error();
    }
}

/* What a backend can give: free memory less a tenth for library workspaces
 * and the rest of the process (the margin dl_check_fits keeps). */
static size_t usable_bytes(dl_backend *be)
{
    size_t free_b = 0, total_b = 0;
    if (be->mem_info(be, &free_b, &total_b) != DL_OK) {
        dl_clear_error();
        return 0;
    }
    return free_b - free_b / 10;
}

/* --- ceilings ------------------------------------------------------------- */

/* Calls op `inner` times between the backend's timer marks; returns seconds. */
typedef dl_status (*bench_op)(dl_backend *be, void *ctx);

static dl_status time_op(dl_backend *be, bench_op op, void *ctx, int inner, double *seconds)
{
    DL_TRY(be->timer_start(be));
    for (int i = 0; i < inner; i++) {
        dl_status st = op(be, ctx);
        if (st != DL_OK) {
            double ignored;
            (void)be->timer_stop(be, &ignored);
            return st;
        }
    }
    return be->timer_stop(be, seconds);
}

/* A warm-up call and one that sizes the timings, then `repeats` timings of
 * as many calls as fill about `target` seconds; the best time per call (a
 * ceiling is what the machine can do, so noise only ever makes it slower). */
static dl_status best_time(dl_backend *be, bench_op op, void *ctx, int repeats, double target,
                           double *best)
{
    double t;
    DL_TRY(time_op(be, op, ctx, 1, &t));
    DL_TRY(time_op(be, op, ctx, 1, &t));
    int inner = t > 0 && t < target ? (int)(target / t) : 1;
    if (inner > 1000) inner = 1000;
    *best = INFINITY;
    for (int r = 0; r < repeats; r++) {
        DL_TRY(time_op(be, op, ctx, inner, &t));
        if (t / inner < *best) *best = t / inner;
    }
    return DL_OK;
}

typedef struct {
    int n;
    float *a, *b, *c;
    void *src, *dst;
    size_t bytes;
} ceiling_ctx;

static dl_status op_gemm(dl_backend *be, void *vctx)
{
    ceiling_ctx *c = vctx;
    return dl_matmul(be, false, false, c->n, c->n, c->n, 1.0f, c->a, c->b, 0.0f, c->c);
}

static dl_status op_copy(dl_backend *be, void *vctx)
{
    ceiling_ctx *c = vctx;
    return be->copy(be, c->dst, c->src, c->bytes);
}

static dl_status measure_ceiling(dl_backend *be, bool gpu, bench_level level, int repeats,
                                 bench_ceiling *out)
{
    memset(out, 0, sizeof *out);
    /* Large enough to reach the plateau, small enough for --quick: on a
     * GPU 8192^3 is ~1.1 TFLOP (tens of ms); on a few CPU cores 2048^3 is
     * ~17 GFLOP (a fraction of a second). */
    int n = gpu ? 8192 : level == BENCH_FULL ? 2048 : 1536;
    size_t copy_bytes = gpu                   ? (size_t)1 << 30
                        : level == BENCH_FULL ? (size_t)256 << 20
                                              : (size_t)128 << 20;
    size_t usable = usable_bytes(be);
    while (n > 256 && 3 * sizeof(float) * (size_t)n * n > usable) n /= 2;
    while (copy_bytes > ((size_t)16 << 20) && 2 * copy_bytes > usable) copy_bytes /= 2;
    if (3 * sizeof(float) * (size_t)n * n > usable || 2 * copy_bytes > usable)
        return DL_FAIL(DL_E_MEMORY, "%s has too little free memory to measure its ceilings",
                       be->name);

    ceiling_ctx c = {.n = n, .bytes = copy_bytes};
    const size_t nn = (size_t)n * n;
    double target = gpu ? 0.05 : level == BENCH_FULL ? 0.3 : 0.1, t;
    dl_status st;
    if ((st = be->alloc(be, sizeof(float) * nn, (void **)&c.a)) ||
        (st = be->alloc(be, sizeof(float) * nn, (void **)&c.b)) ||
        (st = be->alloc(be, sizeof(float) * nn, (void **)&c.c)) ||
        (st = be->rand_uniform(be, c.a, nn, 7, 0)) || (st = be->rand_uniform(be, c.b, nn, 8, 0)) ||
        (st = best_time(be, op_gemm, &c, repeats, target, &t)))
        goto done;
    out->gemm_n = n;
    out->gemm_gflops = 2.0 * n * (double)n * n / t * 1e-9;
    be->free(be, c.a), be->free(be, c.b), be->free(be, c.c);
    c.a = c.b = c.c = NULL;

    if ((st = be->alloc(be, copy_bytes, &c.src)) || (st = be->alloc(be, copy_bytes, &c.dst)) ||
        (st = be->fill(be, c.src, copy_bytes / sizeof(float), 1.0f)) ||
        (st = best_time(be, op_copy, &c, repeats, target, &t)))
        goto done;
    out->copy_bytes = copy_bytes;
    out->copy_gbps = 2.0 * (double)copy_bytes / t * 1e-9; /* read + write */
    out->ok = true;
done:
    be->free(be, c.a), be->free(be, c.b), be->free(be, c.c);
    be->free(be, c.src), be->free(be, c.dst);
    return st;
}

/* --- one case on one backend ------------------------------------------------ */

/* Checks the case's memory on this backend (and on the host for the GPU)
 * before anything is allocated; fills t->reason and returns false when it
 * does not fit. */
static bool case_fits(bench_run *r, int which, const bench_case *c, bench_timing *t)
{
    size_t dev = 0, host = 0;
    bench_case_memory(c, c->run_epochs ? c->run_epochs : BENCH_MAX_EPOCHS, &dev, &host);
    dl_backend *be = r->be[which];
    size_t usable = usable_bytes(be);
    if (which == BENCH_CPU) {
        if (dev + host <= usable) return true;
        snprintf(t->reason, sizeof t->reason, "needs %.2f GiB of host memory, %.2f GiB usable",
                 (dev + host) / 1073741824.0, usable / 1073741824.0);
        return false;
    }
    size_t host_usable = usable_bytes(r->be[BENCH_CPU]);
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

static dl_status time_case(bench_run *r, int which, bench_case *c, void *data)
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

static void find_crossovers(bench_run *r)
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

/* The speed goals of issue 7, read from the many-model iris MLP cases: on
 * the CPU the best whole-run throughput over the N measured, on the GPU the
 * training time of one run of 10000 models. */
#define GOAL_GPU_MODELS 10000

static void find_goals(bench_run *r)
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

/* --- main ------------------------------------------------------------------ */

static bool selected(const bench_options *o, const bench_spec *s, const char *name)
{
    if (s->level > o->level) return false;
    if (o->n_filters == 0) return true;
    for (int i = 0; i < o->n_filters; i++)
        if (strstr(name, o->filters[i])) return true;
    return false;
}

static int select_cases(const bench_options *o, bench_run *r)
{
    int count;
    const bench_spec *specs = bench_specs(&count);
    r->cases = calloc((size_t)count, sizeof *r->cases);
    if (!r->cases) {
        fprintf(stderr, "dlab-bench: error: out of host memory\n");
        return 1;
    }
    for (int i = 0; i < count; i++) {
        bench_case c;
        bench_case_init(&c, &specs[i]);
        if (selected(o, &specs[i], c.name)) r->cases[r->n_cases++] = c;
    }
    if (r->n_cases == 0) {
        fprintf(stderr, "dlab-bench: no %s case matches the --filter given (see --list)\n",
                bench_level_name(o->level));
        return 2;
    }
    return -1;
}

static int write_outputs(const bench_options *o, const bench_run *r)
{
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dlab-bench: error: cannot create %s: %s\n", o->out, strerror(errno));
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/bench.json", o->out);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "dlab-bench: error: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    bench_write_json(f, r);
    bool bad = fclose(f) != 0;
    snprintf(path, sizeof path, "%s/bench.txt", o->out);
    f = fopen(path, "w");
    if (f) {
        bench_print_table(f, r);
        bad = fclose(f) != 0 || bad;
    }
    if (!f || bad) {
        fprintf(stderr, "dlab-bench: error: cannot write into %s\n", o->out);
        return 1;
    }
    int figures = 0;
    if (bench_plot(r, o->out, &figures) != DL_OK) {
        fprintf(stderr, "dlab-bench: no figure: %s\n", dl_errmsg());
        dl_clear_error();
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    if (o.help) {
        usage(stdout);
        return 0;
    }
    bench_run r = {.level = o.level, .repeats = o.repeats};
    if ((rc = select_cases(&o, &r)) >= 0) {
        free(r.cases);
        return rc;
    }
    if (o.list) {
        for (int i = 0; i < r.n_cases; i++) printf("%s\n", r.cases[i].name);
        free(r.cases);
        return 0;
    }

    r.want[BENCH_CPU] = strcmp(o.device, "cuda") != 0;
    r.want[BENCH_CUDA] = strcmp(o.device, "cpu") != 0;
    /* The CPU backend is created in every mode: it also reports host memory. */
    if (dl_backend_cpu_create(&r.be[BENCH_CPU]) != DL_OK) {
        fprintf(stderr, "dlab-bench: error: cannot start the CPU backend: %s\n", dl_errmsg());
        free(r.cases);
        return 1;
    }
    if (r.want[BENCH_CUDA] && dl_backend_cuda_create(&r.be[BENCH_CUDA]) != DL_OK) {
        if (!strcmp(o.device, "cuda")) {
            fprintf(stderr, "dlab-bench: error: --device cuda: no usable GPU (%s)\n", dl_errmsg());
            dl_backend_destroy(r.be[BENCH_CPU]);
            free(r.cases);
            return 1;
        }
        snprintf(r.gpu_note, sizeof r.gpu_note, "%s", dl_errmsg());
        dl_clear_error();
        r.want[BENCH_CUDA] = false;
    }
    describe_machine(&r);
    const double t0 = now_seconds();

    int failures = 0;
    for (int b = 0; b < BENCH_BACKENDS; b++) {
        if (!r.want[b]) continue;
        if (measure_ceiling(r.be[b], b == BENCH_CUDA, o.level, o.repeats, &r.ceil[b]) != DL_OK) {
            snprintf(r.ceil[b].reason, sizeof r.ceil[b].reason, "%s", dl_errmsg());
            fprintf(stderr, "dlab-bench: %s ceilings not measured: %s\n", r.be[b]->name,
                    dl_errmsg());
            dl_clear_error();
        }
    }
    for (int i = 0; i < r.n_cases; i++) {
        bench_case *c = &r.cases[i];
        void *data = NULL;
        dl_status prep = bench_case_prepare(c, &data);
        for (int b = 0; b < BENCH_BACKENDS; b++) {
            bench_timing *t = &c->t[b];
            if (!r.want[b]) {
                t->outcome = b == BENCH_CUDA && r.gpu_note[0] ? BENCH_NO_GPU : BENCH_NOT_RUN;
                continue;
            }
            if (prep != DL_OK) {
                t->outcome = BENCH_FAILED;
                snprintf(t->reason, sizeof t->reason, "%s", dl_errmsg());
            } else if (!case_fits(&r, b, c, t)) {
                t->outcome = BENCH_SKIPPED;
                fprintf(stderr, "%sdlab-bench: %s on %s skipped: %s\n",
                        isatty(STDERR_FILENO) ? "\r\033[K" : "", c->name, r.be[b]->name, t->reason);
            } else if (time_case(&r, b, c, data) != DL_OK) {
                t->outcome = BENCH_FAILED;
                snprintf(t->reason, sizeof t->reason, "%s", dl_errmsg());
                dl_clear_error();
            }
            if (t->outcome == BENCH_FAILED) {
                failures++;
                fprintf(stderr, "%sdlab-bench: %s on %s failed: %s\n",
                        isatty(STDERR_FILENO) ? "\r\033[K" : "", c->name, r.be[b]->name, t->reason);
            }
        }
        bench_case_release(c, data);
        if (c->t[BENCH_CPU].outcome == BENCH_OK && c->t[BENCH_CUDA].outcome == BENCH_OK)
            c->speedup = c->t[BENCH_CPU].median_s / c->t[BENCH_CUDA].median_s;
    }
    if (isatty(STDERR_FILENO)) fputs("\r\033[K", stderr);
    r.wall_s = now_seconds() - t0;
    find_crossovers(&r);
    find_goals(&r);

    bench_print_table(o.json ? stderr : stdout, &r);
    if (o.json) bench_write_json(stdout, &r);
    fflush(stdout);
    if (o.out && write_outputs(&o, &r) != 0) failures++;

    free(r.cross);
    free(r.cases);
    dl_backend_destroy(r.be[BENCH_CUDA]);
    dl_backend_destroy(r.be[BENCH_CPU]);
    return failures ? 1 : 0;
}
