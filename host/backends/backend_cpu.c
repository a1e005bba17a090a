/* The CPU backend: LAPACKE for the SVD, cuRAND's host generator for random
 * fills, and plain loops (OpenMP where the work is large enough to pay for a
 * parallel region) for the custom ops; gemm is in backend_cpu_gemm.c, the
 * fused training ops in backend_cpu_fused.c. The custom ops call the same
 * per-element functions as the CUDA kernels (elem_math.h). Arguments arrive checked by the dl_<op>() entry points
 * (backend.c), so only failures of the host itself are reported here.
 */
#define _POSIX_C_SOURCE 200809L
#include "dlab/backend.h"
#include "backend_cpu.h"
#include "elem_math.h"
#include "dlab/comm.h"
#include "dlab/ref.h"
#include "dlab/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef DLAB_HAVE_LAPACKE
#include <lapacke.h>
#endif
#if defined(DLAB_HAVE_CUDA) || defined(DLAB_HAVE_CURAND)
#define DLAB_CPU_CURAND 1
#include <curand.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* Fixed chunk of a deterministic reduction: partial sums per chunk are
 * added in chunk order, whatever the thread count. */
#define DL_CPU_RED_CHUNK 16384

typedef struct {
    struct timespec t0;
#ifdef DLAB_CPU_CURAND
    curandGenerator_t gen;
    /* Where the generator stands: re-seeding or re-positioning cuRAND's host
     * generator costs about 10 ms, so a call that continues the stream (or
     * skips a few values ahead) uses it as it is. */
    bool gen_valid;
    uint64_t gen_seed, gen_pos;
#endif
} cpu_impl;

struct dl_graph {
    dl_epoch_fn fn;
    void *ctx;
};

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* --- memory ------------------------------------------------------------ */

static dl_status cpu_alloc(dl_backend *be, size_t bytes, void **out)
{
    *out = NULL;
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = rounded ? aligned_alloc(64, rounded) : NULL;
    if (!p) return DL_FAIL(DL_E_MEMORY, "out of host memory allocating %zu bytes", bytes);
    memset(p, 0, rounded);
    *out = p;
    return DL_OK;
}

static void cpu_free(dl_backend *be, void *p) { free(p); }

static dl_status cpu_copy(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes) memmove(dst, src, bytes);
    return DL_OK;
}

static dl_status cpu_fill(dl_backend *be, float *x, size_t n, float v)
{
    DL_FOR(n > DL_CPU_PAR_MIN, i, n, x[i] = v;);
    return DL_OK;
}

/* MemAvailable from /proc/meminfo: what can be allocated without swapping. */
static dl_status cpu_mem_info(dl_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    dl_host_mem_info(free_bytes, total_bytes);
    return DL_OK;
}

/* --- dense linear algebra --------------------------------------------- */

static dl_status cpu_svd(dl_backend *be, int m, int n, const float *a, float *s, float *u,
                         float *vt)
{
    int p = m < n ? m : n;
#ifdef DLAB_HAVE_LAPACKE
    float *work = malloc(sizeof(float) * (size_t)m * n);
    float *uu = malloc(sizeof(float) * (size_t)m * p);
    float *vv = malloc(sizeof(float) * (size_t)p * n);
    float *superb = malloc(sizeof(float) * (size_t)(p > 1 ? p : 2));
    dl_status st = DL_OK;
    if (!work || !uu || !vv || !superb) {
        st = DL_FAIL(DL_E_MEMORY, "svd: out of host memory for a %dx%d matrix", m, n);
    } else {
        memcpy(work, a, sizeof(float) * (size_t)m * n);
        lapack_int info =
            LAPACKE_sgesvd(LAPACK_ROW_MAJOR, 'S', 'S', m, n, work, n, s, uu, p, vv, n, superb);
        if (info != 0)
            st = DL_FAIL(DL_E_RUNTIME, "LAPACKE_sgesvd failed: info=%d", (int)info);
        else {
            if (u) memcpy(u, uu, sizeof(float) * (size_t)m * p);
            if (vt) memcpy(vt, vv, sizeof(float) * (size_t)p * n);
        }
    }
    free(work), free(uu), free(vv), free(superb);
    return st;
#else
    size_t mn = (size_t)m * n;
    double *ad = malloc(sizeof(double) * mn), *sd = malloc(sizeof(double) * (size_t)p);
    double *ud = u ? malloc(sizeof(double) * (size_t)m * p) : NULL;
    double *vd = vt ? malloc(sizeof(double) * (size_t)p * n) : NULL;
    dl_status st = DL_OK;
    if (!ad || !sd || (u && !ud) || (vt && !vd)) {
        st = DL_FAIL(DL_E_MEMORY, "svd: out of host memory for a %dx%d matrix", m, n);
    } else {
        for (size_t i = 0; i < mn; i++) ad[i] = a[i];
        st = dl_ref_svd(m, n, ad, sd, ud, vd);
        if (st == DL_OK) {
            for (int i = 0; i < p; i++) s[i] = (float)sd[i];
            if (u)
                for (size_t i = 0; i < (size_t)m * p; i++) u[i] = (float)ud[i];
            if (vt)
                for (size_t i = 0; i < (size_t)p * n; i++) vt[i] = (float)vd[i];
        }
    }
    free(ad), free(sd), free(ud), free(vd);
    return st;
#endif
}

/* --- random numbers ---------------------------------------------------- */

#ifdef DLAB_CPU_CURAND
static const char *curand_name(curandStatus_t s)
{
    switch (s) {
    case CURAND_STATUS_SUCCESS: return "CURAND_STATUS_SUCCESS";
    case CURAND_STATUS_ALLOCATION_FAILED: return "CURAND_STATUS_ALLOCATION_FAILED";
    case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "CURAND_STATUS_LENGTH_NOT_MULTIPLE";
    case CURAND_STATUS_NOT_INITIALIZED: return "CURAND_STATUS_NOT_INITIALIZED";
    default: return "curand error";
    }
}
#define CURAND_TRY(call)                                                                           \
    do {                                                                                           \
        curandStatus_t cs_ = (call);                                                               \
        if (cs_ != CURAND_STATUS_SUCCESS)                                                          \
            return DL_FAIL(DL_E_RUNTIME, "%s failed: %s", #call, curand_name(cs_));                \
    } while (0)

/* Values a skip-ahead may draw and discard rather than re-position. */
#define DL_CPU_RNG_MAX_SKIP 64

/* Puts the generator at (seed, offset). Drawing n values moves it by
 * exactly n (checked by test_ops), so the position is tracked here. */
static dl_status cpu_rand_prepare(cpu_impl *im, uint64_t seed, uint64_t offset)
{
    if (im->gen_valid && im->gen_seed == seed && offset >= im->gen_pos &&
        offset - im->gen_pos <= DL_CPU_RNG_MAX_SKIP) {
        float skip[DL_CPU_RNG_MAX_SKIP];
        if (offset > im->gen_pos) {
            im->gen_valid = false;
            CURAND_TRY(curandGenerateUniform(im->gen, skip, (size_t)(offset - im->gen_pos)));
        }
        im->gen_valid = true;
        im->gen_pos = offset;
        return DL_OK;
    }
    im->gen_valid = false;
    CURAND_TRY(curandSetPseudoRandomGeneratorSeed(im->gen, seed));
    CURAND_TRY(curandSetGeneratorOffset(im->gen, offset));
    im->gen_valid = true;
    im->gen_seed = seed;
    im->gen_pos = offset;
    return DL_OK;
}
#endif

static dl_status cpu_rand_uniform(dl_backend *be, float *x, size_t n, uint64_t seed,
                                  uint64_t offset)
{
#ifdef DLAB_CPU_CURAND
    cpu_impl *im = be->impl;
    DL_TRY(cpu_rand_prepare(im, seed, offset));
    im->gen_valid = false;
    CURAND_TRY(curandGenerateUniform(im->gen, x, n));
    im->gen_valid = true;
    im->gen_pos += n;
#else
    dl_rng r;
    dl_rng_seed(&r, seed);
    for (uint64_t i = 0; i < offset; i++) dl_rng_next(&r);
    for (size_t i = 0; i < n; i++) x[i] = (float)dl_rng_uniform(&r);
#endif
    return DL_OK;
}

static dl_status cpu_rand_normal(dl_backend *be, float *x, size_t n, float mean, float stddev,
                                 uint64_t seed, uint64_t offset)
{
#ifdef DLAB_CPU_CURAND
    cpu_impl *im = be->impl;
    DL_TRY(cpu_rand_prepare(im, seed, offset));
    /* cuRAND draws normals in pairs: round up, then keep the first n. */
    size_t even = (n + 1) & ~(size_t)1;
    float *tmp = even == n ? x : malloc(sizeof(float) * even);
    if (!tmp) return DL_FAIL(DL_E_MEMORY, "rand_normal: out of host memory");
    curandStatus_t cs = curandGenerateNormal(im->gen, tmp, even, mean, stddev);
    if (tmp != x) {
        memcpy(x, tmp, sizeof(float) * n);
        free(tmp);
    }
    if (cs != CURAND_STATUS_SUCCESS) {
        im->gen_valid = false;
        return DL_FAIL(DL_E_RUNTIME, "curandGenerateNormal failed: %s", curand_name(cs));
    }
    im->gen_pos += even;
#else
    dl_rng r;
    dl_rng_seed(&r, seed);
    for (uint64_t i = 0; i < offset; i++) dl_rng_next(&r);
    for (size_t i = 0; i < n; i++) x[i] = mean + stddev * (float)dl_rng_normal(&r);
#endif
    return DL_OK;
}

/* --- custom ops ---------------------------------------------------------- */

/* E -= A over n elements and the sum of the squared residuals, in double.
 * The range is cut into at most DL_CPU_RED_PARTS fixed chunks whose partial
 * sums are added in chunk order: the result does not depend on the thread
 * count, and no memory is allocated (this runs inside the epoch loop). */
#define DL_CPU_RED_PARTS 256
static double residual_sse_one(float *e, const float *a, size_t n)
{
    size_t chunk = (n + DL_CPU_RED_PARTS - 1) / DL_CPU_RED_PARTS;
    if (chunk < DL_CPU_RED_CHUNK) chunk = DL_CPU_RED_CHUNK;
    size_t parts = (n + chunk - 1) / chunk;
    double part[DL_CPU_RED_PARTS];
    DL_FOR(
        parts > 1 && n > DL_CPU_PAR_MIN, c, parts, size_t lo = c * chunk,
        hi = lo + chunk < n ? lo + chunk : n;
        double acc = 0.0; for (size_t i = lo; i < hi; i++) {
            float r = e[i] - a[i];
            e[i] = r;
            acc += (double)r * r;
        } part[c] = acc;);
    double total = 0.0;
    for (size_t c = 0; c < parts; c++) total += part[c];
    return total;
}

static dl_status cpu_residual_sse(dl_backend *be, float *e, const float *a, size_t n, int batch,
                                  size_t a_stride, float *sse)
{
    if (batch == 1) {
        sse[0] = (float)residual_sse_one(e, a, n);
        return DL_OK;
    }
    /* Many models: one model per thread; the inner sum keeps the same chunk
     * order as a single-model run (nested regions run serially), so a model
     * trained in a batch matches the same model trained alone bit for bit. */
    DL_FOR((size_t)batch * n > DL_CPU_PAR_MIN, b, batch,
           sse[b] = (float)residual_sse_one(e + b * n, a + b * a_stride, n););
    return DL_OK;
}

static dl_status cpu_optim_step(dl_backend *be, const dl_optim *o, float *p, const float *g,
                                float *m, float *v, size_t n, int32_t *t)
{
    const float lr = o->lr;
    switch (o->kind) {
    case DL_OPTIM_SGD: DL_FOR(n > DL_CPU_PAR_MIN, i, n, p[i] = dl_sgd_step(p[i], g[i], lr);); break;
    case DL_OPTIM_MOMENTUM:
        DL_FOR(n > DL_CPU_PAR_MIN, i, n,
               p[i] = dl_momentum_step(p[i], g[i], &m[i], lr, o->momentum););
        break;
    case DL_OPTIM_ADAM: {
        int step = ++*t;
        DL_FOR(n > DL_CPU_PAR_MIN, i, n,
               p[i] =
                   dl_adam_step(p[i], g[i], &m[i], &v[i], lr, o->beta1, o->beta2, o->eps, step););
        break;
    }
    }
    return DL_OK;
}

static dl_status cpu_bias_act(dl_backend *be, float *y, const float *bias, int rows, int cols,
                              int batch, size_t bias_stride, bool relu)
{
    size_t per = (size_t)rows * cols;
    DL_FOR(per * batch > DL_CPU_PAR_MIN, br, (size_t)batch * rows, size_t b = br / (size_t)rows;
           float *yr = y + br * cols; const float *bb = bias + b * bias_stride;
           if (relu) for (int c = 0; c < cols; c++) yr[c] = dl_relu(yr[c] + bb[c]);
           else for (int c = 0; c < cols; c++) yr[c] += bb[c];);
    return DL_OK;
}

static dl_status cpu_relu_bwd(dl_backend *be, float *dh, const float *h, size_t n)
{
    DL_FOR(n > DL_CPU_PAR_MIN, i, n, dh[i] = dl_relu_grad(h[i], dh[i]););
    return DL_OK;
}

static dl_status cpu_softmax_xent(dl_backend *be, const float *logits, const int32_t *labels,
                                  int rows, int classes, int batch, size_t label_stride,
                                  float *dlogits, float *loss, float *acc)
{
    size_t per = (size_t)rows * classes;
    float scale = 1.0f / (float)rows;
    DL_FOR(
        per * batch > DL_CPU_PAR_MIN && batch > 1, b, batch, double lsum = 0.0; long correct = 0;
        for (int r = 0; r < rows; r++) {
            size_t off = b * per + (size_t)r * classes;
            int ok;
            lsum += dl_softmax_xent_row(logits + off, classes, labels[b * label_stride + r],
                                        dlogits ? dlogits + off : NULL, scale, &ok);
            correct += ok;
        } if (loss) loss[b] = (float)(lsum / rows);
        if (acc) acc[b] = (float)((double)correct / rows););
    return DL_OK;
}

static dl_status cpu_col_sum(dl_backend *be, const float *g, int rows, int cols, int batch,
                             float *out, size_t out_stride)
{
    size_t per = (size_t)rows * cols;
    DL_FOR(
        per * batch > DL_CPU_PAR_MIN && batch > 1, b, batch, double accs[64];
        for (int c0 = 0; c0 < cols; c0 += 64) {
            int w = cols - c0 < 64 ? cols - c0 : 64;
            for (int c = 0; c < w; c++) accs[c] = 0.0;
            for (int r = 0; r < rows; r++) {
                const float *gr = g + b * per + (size_t)r * cols + c0;
                for (int c = 0; c < w; c++) accs[c] += gr[c];
            }
            for (int c = 0; c < w; c++) out[b * out_stride + c0 + c] = (float)accs[c];
        });
    return DL_OK;
}

/* Host memory: the communicator sums it in place (MPI on this thread). */
static dl_status cpu_allreduce_sum(dl_backend *be, float *x, size_t n)
{
    return dl_comm_allreduce_sum_f32(be->comm, x, n);
}

static dl_status cpu_record(dl_backend *be, float *hist, const float *vals, int n, int32_t *counter)
{
    if (n > 0) memcpy(hist + (size_t)*counter * n, vals, sizeof(float) * (size_t)n);
    ++*counter;
    return DL_OK;
}

/* --- sync, timing, graphs --------------------------------------------- */

static dl_status cpu_sync(dl_backend *be) { return DL_OK; }

static dl_status cpu_timer_start(dl_backend *be)
{
    cpu_impl *im = be->impl;
    clock_gettime(CLOCK_MONOTONIC, &im->t0);
    return DL_OK;
}

static dl_status cpu_timer_stop(dl_backend *be, double *seconds)
{
    cpu_impl *im = be->impl;
    *seconds = now_seconds() - ((double)im->t0.tv_sec + 1e-9 * (double)im->t0.tv_nsec);
    return DL_OK;
}

static dl_status cpu_graph_create(dl_backend *be, dl_epoch_fn fn, void *ctx, dl_graph **out)
{
    *out = malloc(sizeof **out);
    if (!*out) return DL_FAIL(DL_E_MEMORY, "graph_create: out of host memory");
    (*out)->fn = fn;
    (*out)->ctx = ctx;
    return DL_OK;
}

static dl_status cpu_graph_run(dl_backend *be, dl_graph *g, int times)
{
    for (int i = 0; i < times; i++) DL_TRY(g->fn(be, g->ctx));
    return DL_OK;
}

static void cpu_graph_free(dl_backend *be, dl_graph *g) { free(g); }

static void cpu_destroy(dl_backend *be)
{
    if (!be) return;
    cpu_impl *im = be->impl;
#ifdef DLAB_CPU_CURAND
    if (im && im->gen) curandDestroyGenerator(im->gen);
#endif
    free(im);
    free(be);
}

static void describe_cpu(char *out, size_t len)
{
    char model[128] = "CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    snprintf(out, len, "%s, %d thread%s", model, threads, threads == 1 ? "" : "s");
}

/* The fused sweep keeps V and its gradient (n x k each) in registers and
 * L1; past about 512 values of V they spill, and OpenBLAS's blocked gemm on
 * the general path wins. Measured on iris-like shapes with one thread
 * (`--synthetic MxN --rank K --epochs 300 --fused on|off`, train_seconds):
 * 400x60 rank 5 fused 2.3x faster, 1000x50 rank 4 2x faster, 200x100
 * rank 8 and 300x100 rank 8 even, 500x100 rank 8 15% slower. */
static bool cpu_fused_factorise_pays(dl_backend *be, int m, int n, int k)
{
    (void)be, (void)m;
    return (size_t)n * (size_t)k <= 512;
}

dl_status dl_backend_cpu_create(dl_backend **out)
{
    *out = NULL;
    dl_backend *be = calloc(1, sizeof *be);
    cpu_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be), free(im);
        return DL_FAIL(DL_E_MEMORY, "out of host memory creating the CPU backend");
    }
#ifdef DLAB_CPU_CURAND
    curandStatus_t cs = curandCreateGeneratorHost(&im->gen, CURAND_RNG_PSEUDO_PHILOX4_32_10);
    if (cs != CURAND_STATUS_SUCCESS) {
        free(be), free(im);
        return DL_FAIL(DL_E_RUNTIME, "curandCreateGeneratorHost failed: %s", curand_name(cs));
    }
#endif
    be->name = "cpu";
    be->model_groups = true;
    be->host_memory = true;
    be->impl = im;
    describe_cpu(be->device, sizeof be->device);
    be->destroy = cpu_destroy;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_copy;
    be->download = cpu_copy;
    be->copy = cpu_copy;
    be->fill = cpu_fill;
    be->mem_info = cpu_mem_info;
    be->gemm = dl_cpu_gemm;
    be->svd = cpu_svd;
    be->rand_uniform = cpu_rand_uniform;
    be->rand_normal = cpu_rand_normal;
    be->residual_sse = cpu_residual_sse;
    be->optim_step = cpu_optim_step;
    be->bias_act = cpu_bias_act;
    be->relu_bwd = cpu_relu_bwd;
    be->softmax_xent = cpu_softmax_xent;
    be->col_sum = cpu_col_sum;
    be->record = cpu_record;
    be->allreduce_sum = cpu_allreduce_sum;
    be->sync = cpu_sync;
    be->timer_start = cpu_timer_start;
    be->timer_stop = cpu_timer_stop;
    be->graph_create = cpu_graph_create;
    be->graph_run = cpu_graph_run;
    be->graph_free = cpu_graph_free;
    dl_cpu_fused_attach(be);
    be->fused_factorise_pays = cpu_fused_factorise_pays;
    *out = be;
    return DL_OK;
}
