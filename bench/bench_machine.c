/* dlab-bench: the machine it runs on (host, threads, BLAS, memory) and its
 * ceilings, a large SGEMM and a large copy timed through each backend. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void bench_describe_machine(bench_run *r)
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
    (void)dl_mem_info(cpu, &r->host_free, &r->host_total);
    dl_backend *gpu = r->be[BENCH_CUDA];
    if (gpu) {
        snprintf(r->gpu_desc, sizeof r->gpu_desc, "%s", gpu->device);
        if (dl_mem_info(gpu, &r->gpu_free, &r->gpu_total) != DL_OK) dl_clear_error();
    }
}

size_t bench_usable_bytes(dl_backend *be)
{
    size_t free_b = 0, total_b = 0;
    if (dl_mem_info(be, &free_b, &total_b) != DL_OK) {
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
    DL_TRY(dl_timer_start(be));
    for (int i = 0; i < inner; i++) {
        dl_status st = op(be, ctx);
        if (st != DL_OK) {
            double ignored;
            (void)dl_timer_stop(be, &ignored);
            return st;
        }
    }
    return dl_timer_stop(be, seconds);
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
    return dl_copy(be, c->dst, c->src, c->bytes);
}

dl_status bench_measure_ceiling(dl_backend *be, bool gpu, bench_level level, int repeats,
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
    size_t usable = bench_usable_bytes(be);
    while (n > 256 && 3 * sizeof(float) * (size_t)n * n > usable) n /= 2;
    while (copy_bytes > ((size_t)16 << 20) && 2 * copy_bytes > usable) copy_bytes /= 2;
    if (3 * sizeof(float) * (size_t)n * n > usable || 2 * copy_bytes > usable)
        return DL_FAIL(DL_E_MEMORY, "%s has too little free memory to measure its ceilings",
                       be->name);

    ceiling_ctx c = {.n = n, .bytes = copy_bytes};
    const size_t nn = (size_t)n * n;
    double target = gpu ? 0.05 : level == BENCH_FULL ? 0.3 : 0.1, t;
    dl_status st;
    if ((st = dl_alloc(be, sizeof(float) * nn, (void **)&c.a)) ||
        (st = dl_alloc(be, sizeof(float) * nn, (void **)&c.b)) ||
        (st = dl_alloc(be, sizeof(float) * nn, (void **)&c.c)) ||
        (st = dl_rand_uniform(be, c.a, nn, 7, 0)) || (st = dl_rand_uniform(be, c.b, nn, 8, 0)) ||
        (st = best_time(be, op_gemm, &c, repeats, target, &t)))
        goto done;
    out->gemm_n = n;
    out->gemm_gflops = 2.0 * n * (double)n * n / t * 1e-9;
    dl_free(be, c.a), dl_free(be, c.b), dl_free(be, c.c);
    c.a = c.b = c.c = NULL;

    if ((st = dl_alloc(be, copy_bytes, &c.src)) || (st = dl_alloc(be, copy_bytes, &c.dst)) ||
        (st = dl_fill(be, c.src, copy_bytes / sizeof(float), 1.0f)) ||
        (st = best_time(be, op_copy, &c, repeats, target, &t)))
        goto done;
    out->copy_bytes = copy_bytes;
    out->copy_gbps = 2.0 * (double)copy_bytes / t * 1e-9; /* read + write */
    out->ok = true;
done:
    dl_free(be, c.a), dl_free(be, c.b), dl_free(be, c.c);
    dl_free(be, c.src), dl_free(be, c.dst);
    return st;
}
