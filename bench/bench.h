/* dlab-bench: the same training work timed on the CPU and GPU backends.
 *
 * bench.c          options, case selection, backends, the run, the outputs
 * bench_machine.c  the machine's description and ceilings (SGEMM, copy)
 * bench_time.c     one case on one backend: memory check, warm-up, timed runs
 * bench_analysis.c crossovers per workload family, the speed goals
 * bench_work.c    the workloads: which cases exist, what one epoch costs
 *                 (flops and minimum bytes, counted analytically), how much
 *                 memory a case needs, and one timed run through the task's
 *                 public API (dl_factorise*, dl_mlp_run)
 * bench_report.c  the aligned table and the JSON document
 * bench_plot.c    the PLplot figure per workload family
 * bench_peer.c    --peer pytorch: the lab's workloads timed in PyTorch
 *                 (bench/peer_pytorch.py) beside dlab's CPU times
 * bench_scaling.c under an MPI launcher with several ranks: the row-sharded
 *                 factorisation's time per epoch on 1..P ranks
 */
#ifndef DLAB_BENCH_H
#define DLAB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dlab/backend.h"
#include "dlab/report.h"

enum { BENCH_CPU = 0, BENCH_CUDA = 1, BENCH_BACKENDS = 2 };

/* How much runs: smoke < quick < full. A case is part of every level from
 * its own upwards. */
typedef enum { BENCH_SMOKE = 0, BENCH_QUICK = 1, BENCH_FULL = 2 } bench_level;

typedef enum { BENCH_FACTORISE = 0, BENCH_MLP } bench_kind;

/* One workload at one size, as listed in bench_work.c. */
typedef struct {
    bench_kind kind;
    const char *family;  /* e.g. "factorise-r32"; crossovers are per family */
    bool iris;           /* the lab's iris data and settings */
    bench_level level;   /* the smallest level that runs it */
    int m, n, rank;      /* factorise: m x n, rank (synthetic true rank = rank) */
    int samples, hidden; /* mlp: rows of data, hidden width */
    int models;          /* 0: one model, epochs per run picked by the warm-up;
                              N >= 1: N models trained together (--seeds N),
                              each run one whole training run of the lab's */
} bench_spec;

typedef enum {
    BENCH_NOT_RUN = 0, /* this backend was not asked for (--device) */
    BENCH_NO_GPU,      /* asked for both, no GPU answered */
    BENCH_SKIPPED,     /* does not fit in memory */
    BENCH_FAILED,      /* the task returned an error (reason says which) */
    BENCH_OK,
} bench_outcome;

/* The timings of one case on one backend. Seconds are per epoch. */
typedef struct {
    bench_outcome outcome;
    char reason[256];
    int epochs;  /* epochs per timed run */
    int repeats; /* timed runs */
    double median_s, min_s, max_s;
    double gflops, gbps; /* achieved, at the median */
    double floor_s;      /* flops / sgemm ceiling + bytes / copy ceiling */
    double final_loss;   /* the training loss after the last timed run */
} bench_timing;

typedef struct {
    bench_spec spec;
    char name[96];         /* family/size, what --filter matches */
    char size_label[48];   /* "20000x2000 r32", "100000 x16 h1024", "1000 models" */
    double size;           /* the x axis: elements of A, samples, or models */
    const char *size_unit; /* "elements", "samples" or "models" */
    int models;            /* trained together in each run: spec.models, at least 1 */
    int run_epochs;        /* epochs of every run when spec.models > 0: the lab's
                              (100 for the MLP, 1000 for the factorisation), so a
                              run is a whole training run; 0: the warm-up picks */
    /* The work as the task runs it. */
    int features, classes, n_train, batch; /* mlp */
    float lr;
    uint64_t seed, data_seed;
    double flops, bytes; /* per epoch */
    bench_timing t[BENCH_BACKENDS];
    double speedup; /* cpu median / cuda median; 0 when not both ok */
} bench_case;

/* One whole run of a case with fixed run epochs: seconds (median) and whole
 * training runs per second (models / seconds). */
static inline double bench_run_seconds(const bench_timing *t) { return t->median_s * t->epochs; }
static inline double bench_runs_per_s(const bench_case *c, const bench_timing *t)
{
    return c->models / bench_run_seconds(t);
}

/* A speed goal of the project, read from one case's timings; reported next
 * to the measured numbers, never asserted. */
typedef struct {
    const char *name;    /* e.g. "cpu-mlp-iris-runs-per-s" */
    const char *what;    /* one line for people */
    const char *backend; /* "cpu" or "cuda" */
    const char *unit;    /* of measured and target */
    bool at_least;       /* met when measured >= target; else when measured < target */
    double target;
    bool measured_ok; /* false: no case measured it (met is then unknown) */
    double measured;
    char from[160]; /* the case it was read from, or why it was not measured */
} bench_goal;

#define BENCH_GOALS 2

/* 1 met, 0 not met, -1 not measured. */
static inline int bench_goal_met(const bench_goal *g)
{
    if (!g->measured_ok) return -1;
    return g->at_least ? g->measured >= g->target : g->measured < g->target;
}

typedef struct {
    bool ok;
    char reason[160];
    int gemm_n;         /* square SGEMM of this size */
    double gemm_gflops; /* best of the repeats */
    size_t copy_bytes;  /* buffer size of the device copy */
    double copy_gbps;   /* (read + write) bytes per second, best of the repeats */
} bench_ceiling;

typedef struct {
    const char *family;
    const char *size_unit;
    int points; /* sizes where both backends ran */
    /* GPU faster from `from` upwards (every larger size too). `estimate` is
     * where the speedup crosses 1, interpolated in log-log between the last
     * size the CPU won and `from`; 0 when there is no bracket. */
    double from, below, estimate;
    char note[200];
} bench_crossover;

typedef struct {
    bench_level level;
    int repeats;
    bool want[BENCH_BACKENDS];
    dl_backend *be[BENCH_BACKENDS];
    char gpu_note[256]; /* why there is no GPU column, when there is none */
    /* machine */
    char host[128];
    char cpu_desc[160], gpu_desc[160];
    int omp_threads, blas_threads; /* blas_threads 0: unknown */
    char blas_config[160];
    char env[256]; /* the threading variables set in the environment */
    size_t host_total, host_free, gpu_total, gpu_free;
    char started[32];
    double wall_s;
    bench_ceiling ceil[BENCH_BACKENDS];
    bench_case *cases;
    int n_cases;
    bench_crossover *cross;
    int n_cross;
    bench_goal goals[BENCH_GOALS];
    struct bench_peer *peer; /* --peer: bench_peer.h; NULL without */
} bench_run;

/* bench_work.c */
const bench_spec *bench_specs(int *count);
/* Fills the case's name, sizes, settings and per-epoch costs. */
void bench_case_init(bench_case *c, const bench_spec *s);
/* Bytes a run of `epochs` epochs allocates on the backend, and on the host
 * besides (the CPU backend's buffers are host memory too: the caller adds). */
void bench_case_memory(const bench_case *c, int epochs, size_t *device_bytes, size_t *host_bytes);
/* Host data the case needs before its runs (the MLP's samples); freed by
 * bench_case_release. */
dl_status bench_case_prepare(bench_case *c, void **data);
void bench_case_release(bench_case *c, void *data);
/* One training run of `epochs` epochs through the task's public API.
 * *seconds is the task's own train_seconds (CUDA events on the GPU, the
 * monotonic clock on the CPU), *epochs_run what it ran, *loss the final
 * training loss. */
dl_status bench_case_run(dl_backend *be, const bench_case *c, void *data, int epochs,
                         double *seconds, int *epochs_run, double *loss);

/* bench_machine.c */
double bench_now(void); /* monotonic seconds */

/* Joins the MPI job when a launcher started dlab-bench (dlab/comm.h). With
 * several ranks: measures and reports the scaling rows (bench_scaling.c)
 * and returns the exit status; as a single process: returns -1 and the
 * bench runs as usual. case_option (NULL: none) names an option that picks
 * one-process cases (--peer, --filter, --list): with several ranks it is
 * refused (exit 2) rather than ignored. */
int bench_scaling(int *argc, char ***argv, bench_level level, int repeats, bool json,
                  const char *out, const char *device, const char *case_option);
/* Host, threads, BLAS configuration, threading variables and memory. */
void bench_describe_machine(bench_run *r);
/* What a backend can give: free memory less a tenth for library workspaces
 * and the rest of the process (the margin dl_check_fits keeps); 0 when it
 * cannot say. */
size_t bench_usable_bytes(dl_backend *be);
/* The best SGEMM GFLOP/s and copy GB/s through `be`, at sizes that fit. */
dl_status bench_measure_ceiling(dl_backend *be, bool gpu, bench_level level, int repeats,
                                bench_ceiling *out);

/* bench_time.c */
/* Checks the case's memory on backend `which` (and on the host for the
 * GPU) before anything is allocated; fills t->reason and returns false when
 * it does not fit. */
bool bench_case_fits(bench_run *r, int which, const bench_case *c, bench_timing *t);
/* Warm-up, then r->repeats timed runs of the case on backend `which`;
 * fills c->t[which] (outcome BENCH_OK) or returns the failure. */
dl_status bench_time_case(bench_run *r, int which, bench_case *c, void *data);

/* bench_analysis.c */
void bench_find_crossovers(bench_run *r); /* r->cross, one per family of 2+ sizes */
void bench_find_goals(bench_run *r);      /* r->goals */

/* bench_report.c */
const char *bench_outcome_name(bench_outcome o);
const char *bench_level_name(bench_level l);
void bench_print_table(FILE *f, const bench_run *r);
void bench_write_json(FILE *f, const bench_run *r);

/* bench_plot.c: one figure, a panel per family with more than one size,
 * both backends, as DIR/bench.png and DIR/bench.svg, each atomically
 * (dl_out_render); *figures counts the files written. DL_E_RUNTIME when
 * PLplot or its cairo devices are missing, DL_E_IO when a file cannot be
 * written. */
dl_status bench_plot(const bench_run *r, dl_out *out, int *figures);

#endif
