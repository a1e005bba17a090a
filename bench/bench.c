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
#include "bench_peer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BENCH_MIN_REPEATS 5

typedef struct {
    bench_level level;
    int repeats;
    const char *device; /* cpu | cuda | both */
    const char *filters[16];
    int n_filters;
    const char *out;
    const char *peer; /* --peer: NULL or a name bench_peer_known() accepts */
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
            "                     DIR/bench.png and .svg (time per epoch against size),\n"
            "                     each whole or not at all (an earlier bench's are replaced)\n"
            "  --peer pytorch     also time the iris factorisation, the lab MLP and 1000 lab\n"
            "                     MLPs in PyTorch (bench/peer_pytorch.py, one thread) and\n"
            "                     report PyTorch / dlab CPU time against the goals; adds\n"
            "                     those three cases to any level (skipped with a note when\n"
            "                     PyTorch is missing; interpreter: $DLAB_BENCH_PYTHON)\n"
            "  --list             list the cases of the chosen level and exit\n"
            "  --help\n"
            "\n"
            "Under an MPI launcher with P ranks (mpirun -np P dlab-bench ...): only the\n"
            "row-sharded factorisation's time per epoch on 1..P CPU ranks (GPU ranks with\n"
            "--device cuda), printed by rank 0 (--json, --out DIR: DIR/scaling.json and\n"
            "DIR/scaling.txt).\n"
            "\n"
            "Exit status: 0 every case ran or was skipped for memory (and the --peer\n"
            "comparison ran or was skipped for want of Python or PyTorch), 1 a case failed,\n"
            "the --peer script failed (crashed, or printed no valid JSON) or --device cuda\n"
            "found no GPU, 2 bad usage.\n",
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
    unsigned seen = 0;
    const char *level_given = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "--device") || !strcmp(a, "--filter") || !strcmp(a, "--out") ||
                     !strcmp(a, "--repeats") || !strcmp(a, "--peer");
        if (takes && !val) return usage_error("%s needs a value", a);
        /* Each option once, but --filter, which adds; --quick and --smoke
         * set the one level. */
        static const struct {
            const char *name;
            unsigned bit;
        } once[] = {{"--device", 1}, {"--peer", 2},  {"--out", 4},    {"--repeats", 8},
                    {"--json", 16},  {"--list", 32}, {"--quick", 64}, {"--smoke", 64}};
        for (size_t k = 0; k < sizeof once / sizeof once[0]; k++) {
            if (strcmp(a, once[k].name)) continue;
            if (seen & once[k].bit)
                return once[k].bit == 64 && strcmp(a, level_given)
                           ? usage_error("--quick and --smoke exclude each other")
                           : usage_error("%s given twice", a);
            seen |= once[k].bit;
            if (once[k].bit == 64) level_given = a;
        }
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
        } else if (!strcmp(a, "--peer")) {
            if (!bench_peer_known(val))
                return usage_error("--peer must be pytorch (got '%s')", val);
            o->peer = val, i++;
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

/* --- cases and outputs ------------------------------------------------------ */

static bool selected(const bench_options *o, const bench_spec *s, const char *name)
{
    if (s->level > o->level && !(o->peer && bench_peer_case(name))) return false;
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

static dl_status json_file(FILE *f, const void *r)
{
    bench_write_json(f, r);
    return DL_OK;
}

static dl_status table_file(FILE *f, const void *r)
{
    bench_print_table(f, r);
    return DL_OK;
}

/* Each file atomically, as dlab-gpu writes --out (a temporary file renamed
 * once whole), replacing the files of an earlier bench in DIR. */
static int write_outputs(const bench_options *o, const bench_run *r)
{
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dlab-bench: error: cannot create %s: %s\n", o->out, strerror(errno));
        return 1;
    }
    dl_out out;
    dl_out_init(&out, o->out, NULL);
    dl_status st = dl_out_write(&out, "bench.json", json_file, r);
    if (st == DL_OK) st = dl_out_write(&out, "bench.txt", table_file, r);
    int figures = 0;
    if (st == DL_OK && (st = bench_plot(r, &out, &figures)) == DL_E_RUNTIME) {
        fprintf(stderr, "dlab-bench: no figure: %s\n", dl_errmsg()); /* not built to draw */
        st = DL_OK;
    }
    if (st != DL_OK) {
        fprintf(stderr, "dlab-bench: error: %s\n", dl_errmsg());
        return 1;
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
    /* Under a launcher with several ranks: the scaling over ranks alone. */
    const char *case_option = o.peer        ? "--peer"
                              : o.n_filters ? "--filter"
                              : o.list      ? "--list"
                                            : NULL;
    if ((rc = bench_scaling(&argc, &argv, o.level, o.repeats, o.json, o.out, o.device,
                            case_option)) >= 0)
        return rc;
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
    bench_describe_machine(&r);
    const double t0 = bench_now();

    int failures = 0;
    for (int b = 0; b < BENCH_BACKENDS; b++) {
        if (!r.want[b]) continue;
        if (bench_measure_ceiling(r.be[b], b == BENCH_CUDA, o.level, o.repeats, &r.ceil[b]) !=
            DL_OK) {
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
            } else if (!bench_case_fits(&r, b, c, t)) {
                t->outcome = BENCH_SKIPPED;
                fprintf(stderr, "%sdlab-bench: %s on %s skipped: %s\n",
                        isatty(STDERR_FILENO) ? "\r\033[K" : "", c->name, r.be[b]->name, t->reason);
            } else if (bench_time_case(&r, b, c, data) != DL_OK) {
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
    bench_peer peer = {.name = o.peer};
    if (o.peer) {
        bench_peer_run(&peer, &r), r.peer = &peer;
        /* A comparison the machine cannot make (no interpreter, no torch)
         * is skipped; one whose script misbehaved is a failure of the run. */
        if (peer.failed) {
            failures++;
            fprintf(stderr, "dlab-bench: the comparison against %s failed: %s\n", peer.name,
                    peer.note);
        }
    }
    r.wall_s = bench_now() - t0;
    bench_find_crossovers(&r);
    bench_find_goals(&r);

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
