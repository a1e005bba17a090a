/* Backend selection and the checked entry point of every backend op.
 *
 * Each dl_<op>() checks its arguments against the contract written at its
 * declaration in include/dlab/backend.h, returns DL_OK at once for an empty
 * op, and only then calls the backend's implementation through the table.
 * The backends therefore never see a NULL where data is needed, a negative
 * shape or a stride that makes models overlap, and do not check for them.
 */
#define _POSIX_C_SOURCE 200809L
#include "dlab/backend.h"
#include "dlab/comm.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

dl_status dl_device_parse(const char *s, dl_device *out)
{
    if (strcmp(s, "auto") == 0)
        *out = DL_DEVICE_AUTO;
    else if (strcmp(s, "cpu") == 0)
        *out = DL_DEVICE_CPU;
    else if (strcmp(s, "cuda") == 0 || strcmp(s, "gpu") == 0)
        *out = DL_DEVICE_CUDA;
    else
        return DL_FAIL(DL_E_USAGE, "--device: unknown device '%s' (expected auto, cpu or cuda)", s);
    return DL_OK;
}

dl_status dl_backend_create(dl_device dev, dl_backend **out, char *note, size_t note_len)
{
    *out = NULL;
    if (note && note_len) note[0] = '\0';
    if (dev == DL_DEVICE_CPU) return dl_backend_cpu_create(out);
    if (dev == DL_DEVICE_CUDA) return dl_backend_cuda_create(out);

    dl_status s = dl_backend_cuda_create(out);
    if (s == DL_OK) return DL_OK;
    if (note && note_len) snprintf(note, note_len, "%s; running on the CPU", dl_errmsg());
    dl_clear_error();
    return dl_backend_cpu_create(out);
}

/* backend_cuda.c: makes this rank's GPU current before the backend opens
 * it. Without the CUDA backend there is nothing to choose. */
dl_status dl_cuda_use_rank_device(const dl_comm *comm);
#ifndef DLAB_HAVE_CUDA
dl_status dl_cuda_use_rank_device(const dl_comm *comm)
{
    (void)comm;
    return DL_OK;
}
#endif

dl_status dl_backend_create_rank(dl_device dev, dl_comm *comm, dl_backend **out, char *note,
                                 size_t note_len)
{
    *out = NULL;
    if (dev != DL_DEVICE_CPU && comm) {
        dl_status st = dl_cuda_use_rank_device(comm);
        if (st != DL_OK && dev == DL_DEVICE_CUDA) return st;
        dl_clear_error(); /* --device auto: the CUDA backend's own failure says it */
    }
    return dl_backend_create(dev, out, note, note_len);
}

dl_status dl_backend_join_ranks(dl_backend *be, dl_comm *comm)
{
    be->comm = comm;
    be->sum_note[0] = '\0';
    if (!comm || dl_comm_size(comm) == 1) return DL_OK;
    /* The sums are the backend's own (MPI on the CPU, NCCL on GPUs): ranks
     * on different backends (--device auto with GPUs on some nodes only)
     * cannot sum with each other, and every rank must learn that. */
    int32_t kinds[2] = {be->join_ranks != NULL, be->join_ranks == NULL};
    DL_TRY(dl_comm_allreduce_max_i32(comm, kinds, 2));
    if (kinds[0] && kinds[1]) {
        be->allreduce_sum = NULL;
        snprintf(be->sum_note, sizeof be->sum_note,
                 "the ranks run on different backends (some on a GPU, some on the CPU); pass "
                 "--device cpu, or give every rank a GPU");
        return DL_OK;
    }
    return be->join_ranks ? be->join_ranks(be) : DL_OK;
}

void dl_backend_destroy(dl_backend *be)
{
    if (be) be->destroy(be);
}

#ifndef DLAB_HAVE_CUDA
dl_status dl_backend_cuda_create(dl_backend **out)
{
    *out = NULL;
    return DL_FAIL(DL_E_NODEVICE,
                   "this build of dlab-gpu has no CUDA backend (nvcc was not found at build time)");
}
bool dl_have_cuda_build(void) { return false; }
const char *dl_cuda_build_words(void) { return "not built"; }
#endif

/* --- argument checks ------------------------------------------------------ */

/* A broken contract: "dl_<op>: <what is wrong>", DL_E_RUNTIME. `op` and the
 * format must be string literals. */
#define BAD(op, ...) DL_FAIL(DL_E_RUNTIME, "dl_" op ": " __VA_ARGS__)

#define NEED(cond, op, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) return BAD(op, __VA_ARGS__);                                                  \
    } while (0)

/* The backend exists and implements `op`. */
#define NEED_OP(op)                                                                                \
    do {                                                                                           \
        if (!be) return BAD(#op, "NULL backend");                                                  \
        if (!be->op) return BAD(#op, "the %s backend does not implement " #op, be->name);          \
    } while (0)

/* The most elements (floats or int32s) one buffer can hold and still be
 * addressed with ptrdiff_t arithmetic. */
#define MAX_ELEMS ((size_t)PTRDIFF_MAX / sizeof(float))

/* Products and sums that saturate at SIZE_MAX, which is above MAX_ELEMS, so
 * an overflow shows up as "does not fit". */
static size_t mul_sat(size_t a, size_t b) { return a && b > SIZE_MAX / a ? SIZE_MAX : a * b; }
static size_t add_sat(size_t a, size_t b) { return b > SIZE_MAX - a ? SIZE_MAX : a + b; }

/* Elements one row-major rows x cols matrix with row stride ld spans. */
static size_t extent(int rows, int cols, int ld)
{
    if (rows <= 0 || cols <= 0) return 0;
    return add_sat(mul_sat((size_t)rows - 1, (size_t)ld), (size_t)cols);
}

/* Whether `batch` blocks of `one` elements, `stride` apart, fit MAX_ELEMS. */
static bool layout_fits(int batch, size_t stride, size_t one)
{
    return add_sat(mul_sat((size_t)batch - 1, stride), one) <= MAX_ELEMS;
}

/* Parameters of one d-h-c network (dlab/mlp.h's layout), saturating. */
static size_t dl_mlp_param_count_checked(int d, int h, int c)
{
    return add_sat(mul_sat(add_sat((size_t)d, 1), (size_t)h),
                   mul_sat(add_sat((size_t)h, 1), (size_t)c));
}

/* Whether [p, p + bytes) and [q, q + bytes) share a byte. */
static bool overlap(const void *p, const void *q, size_t bytes)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
    return (a > b ? a - b : b - a) < bytes;
}

/* --- memory ---------------------------------------------------------------- */

dl_status dl_alloc(dl_backend *be, size_t bytes, void **out)
{
    NEED_OP(alloc);
    NEED(out, "alloc", "NULL result pointer (out)");
    *out = NULL;
    if (bytes == 0) return DL_OK;
    return be->alloc(be, bytes, out);
}

void dl_free(dl_backend *be, void *p)
{
    if (be && be->free && p) be->free(be, p);
}

dl_status dl_upload(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    NEED_OP(upload);
    if (bytes == 0) return DL_OK;
    NEED(dst && src, "upload", "NULL pointer (dst=%p, src=%p) for %zu bytes", dst, src, bytes);
    return be->upload(be, dst, src, bytes);
}

dl_status dl_download(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    NEED_OP(download);
    if (bytes == 0) return DL_OK;
    NEED(dst && src, "download", "NULL pointer (dst=%p, src=%p) for %zu bytes", dst, src, bytes);
    return be->download(be, dst, src, bytes);
}

dl_status dl_copy(dl_backend *be, void *dst, const void *src, size_t bytes)
{
    NEED_OP(copy);
    if (bytes == 0) return DL_OK;
    NEED(dst && src, "copy", "NULL pointer (dst=%p, src=%p) for %zu bytes", dst, src, bytes);
    NEED(!overlap(dst, src, bytes), "copy", "source and destination overlap (%zu bytes, %p -> %p)",
         bytes, src, dst);
    return be->copy(be, dst, src, bytes);
}

dl_status dl_fill(dl_backend *be, float *x, size_t n, float value)
{
    NEED_OP(fill);
    if (n == 0) return DL_OK;
    NEED(x, "fill", "NULL buffer for %zu floats", n);
    NEED(n <= MAX_ELEMS, "fill", "n=%zu floats do not fit the address space", n);
    return be->fill(be, x, n, value);
}

void dl_host_mem_info(size_t *available_bytes, size_t *total_bytes)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t total = (pages > 0 && page > 0) ? (size_t)pages * (size_t)page : 0, avail = total;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                avail = (size_t)kb * 1024;
                break;
            }
        fclose(f);
    }
    if (available_bytes) *available_bytes = avail;
    if (total_bytes) *total_bytes = total;
}

dl_status dl_mem_info(dl_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    NEED_OP(mem_info);
    size_t f = 0, t = 0;
    DL_TRY(be->mem_info(be, &f, &t));
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return DL_OK;
}

/* --- dense linear algebra ---------------------------------------------- */

/* One stored operand of a gemm: its name, shape and leading dimension. */
static dl_status gemm_operand(char name, bool trans, int rows, int cols, int ld, bool needed,
                              const float *p, int batch, size_t stride)
{
    /* The stored matrix is rows x cols, or cols x rows when transposed. */
    int stored_rows = trans ? cols : rows, stored_cols = trans ? rows : cols;
    int need_ld = stored_cols > 1 ? stored_cols : 1;
    NEED(ld >= need_ld, "gemm",
         "ld%c=%d is less than %d, the row length of the stored %c (%dx%d%s)", name + 'a' - 'A', ld,
         need_ld, name, stored_rows, stored_cols, trans ? ", transposed" : "");
    if (!needed) return DL_OK;
    NEED(p, "gemm", "NULL matrix %c", name);
    size_t one = extent(stored_rows, stored_cols, ld);
    NEED(layout_fits(batch, stride, one), "gemm",
         "%c's layout (%d model%s of %zu elements, stride %zu) does not fit the address space",
         name, batch, batch == 1 ? "" : "s", one, stride);
    return DL_OK;
}

dl_status dl_gemm(dl_backend *be, const dl_gemm_args *g)
{
    NEED_OP(gemm);
    NEED(g, "gemm", "NULL argument block");
    NEED(g->m >= 0 && g->n >= 0 && g->k >= 0, "gemm", "negative shape m=%d n=%d k=%d", g->m, g->n,
         g->k);
    NEED(g->batch >= 1, "gemm", "batch=%d (at least 1 model)", g->batch);
    const bool empty = g->m == 0 || g->n == 0, reads = !empty && g->k > 0;
    DL_TRY(gemm_operand('A', g->trans_a, g->m, g->k, g->lda, reads, g->a, g->batch, g->stride_a));
    DL_TRY(gemm_operand('B', g->trans_b, g->k, g->n, g->ldb, reads, g->b, g->batch, g->stride_b));
    DL_TRY(gemm_operand('C', false, g->m, g->n, g->ldc, !empty, g->c, g->batch, g->stride_c));
    if (empty) return DL_OK;
    size_t c_one = extent(g->m, g->n, g->ldc);
    NEED(g->batch == 1 || g->stride_c >= c_one, "gemm",
         "stride_c=%zu is less than the %zu elements one C spans (m=%d, n=%d, ldc=%d): the %d "
         "models would write over each other",
         g->stride_c, c_one, g->m, g->n, g->ldc, g->batch);
    return be->gemm(be, g);
}

dl_status dl_matmul(dl_backend *be, bool ta, bool tb, int m, int n, int k, float alpha,
                    const float *a, const float *b, float beta, float *c)
{
    dl_gemm_args g = {
        .trans_a = ta,
        .trans_b = tb,
        .m = m,
        .n = n,
        .k = k,
        .alpha = alpha,
        .a = a,
        .lda = ta ? m : k,
        .b = b,
        .ldb = tb ? k : n,
        .beta = beta,
        .c = c,
        .ldc = n,
        .batch = 1,
    };
    return dl_gemm(be, &g);
}

dl_status dl_svd(dl_backend *be, int m, int n, const float *a, float *s, float *u, float *vt)
{
    NEED_OP(svd);
    NEED(m >= 0 && n >= 0, "svd", "negative shape %dx%d", m, n);
    if (m == 0 || n == 0) return DL_OK;
    NEED(a, "svd", "NULL input matrix");
    NEED(s, "svd", "NULL singular value buffer (s)");
    NEED(mul_sat((size_t)m, (size_t)n) <= MAX_ELEMS, "svd",
         "a %dx%d matrix does not fit the address space", m, n);
    return be->svd(be, m, n, a, s, u, vt);
}

/* --- random numbers ------------------------------------------------------- */

dl_status dl_rand_uniform(dl_backend *be, float *x, size_t n, uint64_t seed, uint64_t offset)
{
    NEED_OP(rand_uniform);
    if (n == 0) return DL_OK;
    NEED(x, "rand_uniform", "NULL buffer for %zu floats", n);
    NEED(n <= MAX_ELEMS, "rand_uniform", "n=%zu floats do not fit the address space", n);
    return be->rand_uniform(be, x, n, seed, offset);
}

dl_status dl_rand_normal(dl_backend *be, float *x, size_t n, float mean, float stddev,
                         uint64_t seed, uint64_t offset)
{
    NEED_OP(rand_normal);
    NEED(isfinite(mean), "rand_normal", "mean=%g is not finite", (double)mean);
    NEED(isfinite(stddev) && stddev >= 0.0f, "rand_normal", "stddev=%g (must be finite and >= 0)",
         (double)stddev);
    if (n == 0) return DL_OK;
    NEED(x, "rand_normal", "NULL buffer for %zu floats", n);
    NEED(n < MAX_ELEMS, "rand_normal", "n=%zu floats do not fit the address space", n);
    return be->rand_normal(be, x, n, mean, stddev, seed, offset);
}

/* --- custom ops --------------------------------------------------------------- */

dl_status dl_residual_sse(dl_backend *be, float *e, const float *a, size_t n, int batch,
                          size_t a_stride, float *sse)
{
    NEED_OP(residual_sse);
    NEED(batch >= 1, "residual_sse", "batch=%d (at least 1 model)", batch);
    NEED(e && a && sse, "residual_sse", "NULL pointer (e=%p, a=%p, sse=%p)", (void *)e,
         (const void *)a, (void *)sse);
    NEED(mul_sat(n, (size_t)batch) <= MAX_ELEMS, "residual_sse",
         "%d models of %zu elements do not fit the address space", batch, n);
    NEED(layout_fits(batch, a_stride, n), "residual_sse",
         "A's layout (%d models of %zu elements, stride %zu) does not fit the address space", batch,
         n, a_stride);
    return be->residual_sse(be, e, a, n, batch, a_stride, sse);
}

/* The optimiser's settings, as documented at dl_optim; `op` names the
 * entry point in the message ("optim_step", "fused_mlp"). */
#define OPT_BAD(...) DL_FAIL(DL_E_RUNTIME, __VA_ARGS__)
static dl_status optim_settings(const dl_optim *o, const char *op)
{
    if (!(isfinite(o->lr) && o->lr > 0.0f))
        return OPT_BAD("dl_%s: lr=%g (must be positive and finite)", op, (double)o->lr);
    switch (o->kind) {
    case DL_OPTIM_SGD: return DL_OK;
    case DL_OPTIM_MOMENTUM:
        if (!(o->momentum >= 0.0f && o->momentum < 1.0f))
            return OPT_BAD("dl_%s: momentum=%g (must be in [0, 1))", op, (double)o->momentum);
        return DL_OK;
    case DL_OPTIM_ADAM:
        if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f))
            return OPT_BAD("dl_%s: beta1=%g (must be in [0, 1))", op, (double)o->beta1);
        if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f))
            return OPT_BAD("dl_%s: beta2=%g (must be in [0, 1))", op, (double)o->beta2);
        if (!(isfinite(o->eps) && o->eps > 0.0f))
            return OPT_BAD("dl_%s: eps=%g (must be positive and finite)", op, (double)o->eps);
        return DL_OK;
    }
    return OPT_BAD("dl_%s: unknown optimiser kind %d", op, (int)o->kind);
}

dl_status dl_optim_step(dl_backend *be, const dl_optim *opt, float *p, const float *g, float *m,
                        float *v, size_t n, int32_t *t)
{
    NEED_OP(optim_step);
    NEED(opt, "optim_step", "NULL optimiser");
    DL_TRY(optim_settings(opt, "optim_step"));
    const bool adam = opt->kind == DL_OPTIM_ADAM;
    NEED(!adam || t, "optim_step", "adam needs its device step counter (t)");
    if (n == 0 && !adam) return DL_OK;
    NEED(n <= MAX_ELEMS, "optim_step", "n=%zu parameters do not fit the address space", n);
    if (n > 0) {
        NEED(p && g, "optim_step", "NULL parameter or gradient pointer (p=%p, g=%p)", (void *)p,
             (const void *)g);
        NEED(opt->kind == DL_OPTIM_SGD || m, "optim_step", "%s needs its first-moment buffer (m)",
             adam ? "adam" : "momentum");
        NEED(!adam || v, "optim_step", "adam needs its second-moment buffer (v)");
    }
    return be->optim_step(be, opt, p, g, m, v, n, t);
}

dl_status dl_bias_act(dl_backend *be, float *y, const float *bias, int rows, int cols, int batch,
                      size_t bias_stride, bool relu)
{
    NEED_OP(bias_act);
    NEED(rows >= 0 && cols >= 0, "bias_act", "negative shape rows=%d cols=%d", rows, cols);
    NEED(batch >= 1, "bias_act", "batch=%d (at least 1 model)", batch);
    size_t per = (size_t)rows * (size_t)cols;
    if (per == 0) return DL_OK;
    NEED(y && bias, "bias_act", "NULL pointer (y=%p, bias=%p)", (void *)y, (const void *)bias);
    NEED(mul_sat(per, (size_t)batch) <= MAX_ELEMS, "bias_act",
         "%d models of %dx%d do not fit the address space", batch, rows, cols);
    NEED(layout_fits(batch, bias_stride, (size_t)cols), "bias_act",
         "the bias layout (%d models of %d, stride %zu) does not fit the address space", batch,
         cols, bias_stride);
    return be->bias_act(be, y, bias, rows, cols, batch, bias_stride, relu);
}

dl_status dl_relu_bwd(dl_backend *be, float *dh, const float *h, size_t n)
{
    NEED_OP(relu_bwd);
    if (n == 0) return DL_OK;
    NEED(dh && h, "relu_bwd", "NULL pointer (dh=%p, h=%p)", (void *)dh, (const void *)h);
    NEED(n <= MAX_ELEMS, "relu_bwd", "n=%zu floats do not fit the address space", n);
    return be->relu_bwd(be, dh, h, n);
}

dl_status dl_softmax_xent(dl_backend *be, const float *logits, const int32_t *labels, int rows,
                          int classes, int batch, size_t label_stride, float *dlogits, float *loss,
                          float *acc)
{
    NEED_OP(softmax_xent);
    NEED(rows >= 1 && classes >= 1, "softmax_xent",
         "shape rows=%d classes=%d (each must be at least 1)", rows, classes);
    NEED(batch >= 1, "softmax_xent", "batch=%d (at least 1 model)", batch);
    NEED(logits && labels, "softmax_xent", "NULL pointer (logits=%p, labels=%p)",
         (const void *)logits, (const void *)labels);
    size_t total = mul_sat(mul_sat((size_t)rows, (size_t)classes), (size_t)batch);
    NEED(total <= MAX_ELEMS, "softmax_xent", "%d models of %dx%d do not fit the address space",
         batch, rows, classes);
    NEED(layout_fits(batch, label_stride, (size_t)rows), "softmax_xent",
         "the label layout (%d models of %d, stride %zu) does not fit the address space", batch,
         rows, label_stride);
    NEED(!dlogits || !overlap(dlogits, logits, total * sizeof(float)), "softmax_xent",
         "dlogits overlaps logits");
    return be->softmax_xent(be, logits, labels, rows, classes, batch, label_stride, dlogits, loss,
                            acc);
}

dl_status dl_col_sum(dl_backend *be, const float *g, int rows, int cols, int batch, float *out,
                     size_t out_stride)
{
    NEED_OP(col_sum);
    NEED(rows >= 0 && cols >= 0, "col_sum", "negative shape rows=%d cols=%d", rows, cols);
    NEED(batch >= 1, "col_sum", "batch=%d (at least 1 model)", batch);
    if (cols == 0) return DL_OK;
    NEED(out && (rows == 0 || g), "col_sum", "NULL pointer (g=%p, out=%p)", (const void *)g,
         (void *)out);
    NEED(mul_sat(mul_sat((size_t)rows, (size_t)cols), (size_t)batch) <= MAX_ELEMS, "col_sum",
         "%d models of %dx%d do not fit the address space", batch, rows, cols);
    NEED(batch == 1 || out_stride >= (size_t)cols, "col_sum",
         "out_stride=%zu is less than cols=%d: the %d models would write over each other",
         out_stride, cols, batch);
    NEED(layout_fits(batch, out_stride, (size_t)cols), "col_sum",
         "the output layout (%d models of %d, stride %zu) does not fit the address space", batch,
         cols, out_stride);
    return be->col_sum(be, g, rows, cols, batch, out, out_stride);
}

dl_status dl_record(dl_backend *be, float *hist, const float *vals, int n, int32_t *counter)
{
    NEED_OP(record);
    NEED(n >= 0, "record", "negative count n=%d", n);
    NEED(counter, "record", "NULL counter");
    NEED(n == 0 || (hist && vals), "record", "NULL pointer (hist=%p, vals=%p)", (void *)hist,
         (const void *)vals);
    return be->record(be, hist, vals, n, counter);
}

dl_status dl_allreduce_sum(dl_backend *be, float *x, size_t n)
{
    if (!be) return BAD("allreduce_sum", "NULL backend");
    if (!be->comm || dl_comm_size(be->comm) == 1 || n == 0) return DL_OK;
    if (!be->allreduce_sum)
        return DL_FAIL(DL_E_USAGE, "the %s backend cannot sum over %d ranks%s%s", be->name,
                       dl_comm_size(be->comm), be->sum_note[0] ? ": " : "", be->sum_note);
    NEED(x, "allreduce_sum", "NULL pointer");
    NEED(n <= MAX_ELEMS, "allreduce_sum", "n=%zu does not fit the address space", n);
    return be->allreduce_sum(be, x, n);
}

/* --- fused training --------------------------------------------------------- */

size_t dl_fused_factorise_bytes(int m, int n, int k)
{
    if (m < 1 || n < 1 || k < 1) return 0;
    /* A, U, V, the epoch's dV and one row of E */
    size_t floats = add_sat(mul_sat((size_t)m, (size_t)n),
                            mul_sat(add_sat((size_t)m, 2 * (size_t)n), (size_t)k));
    return mul_sat(add_sat(floats, (size_t)n), sizeof(float));
}

size_t dl_fused_mlp_bytes(int d, int h, int c, int n_train, int n_val, int batch, dl_optim_kind o)
{
    if (d < 1 || h < 1 || c < 1 || n_train < 1 || n_val < 1 || batch < 1) return 0;
    const size_t P = dl_mlp_param_count_checked(d, h, c);
    const size_t state = o == DL_OPTIM_ADAM ? 2 : o == DL_OPTIM_MOMENTUM ? 1 : 0;
    /* both splits with their labels, parameters, gradients and optimiser
     * state, and one mini-batch's activations and their gradients */
    size_t floats = mul_sat(add_sat((size_t)n_train, (size_t)n_val), add_sat((size_t)d, 1));
    floats = add_sat(floats, mul_sat(P, 2 + state));
    floats = add_sat(floats, mul_sat(2 * (size_t)batch, add_sat((size_t)h, (size_t)c)));
    return mul_sat(floats, sizeof(float));
}

bool dl_fused_fits(dl_backend *be, size_t bytes)
{
    if (!be || !be->fused_limit || !be->fused_factorise || !be->fused_mlp || bytes == 0)
        return false;
    return bytes <= be->fused_limit(be);
}

bool dl_fused_factorise_pays(dl_backend *be, int m, int n, int k)
{
    if (!dl_fused_fits(be, dl_fused_factorise_bytes(m, n, k))) return false;
    return !be->fused_factorise_pays || be->fused_factorise_pays(be, m, n, k);
}

dl_status dl_fused_factorise(dl_backend *be, const dl_fused_factorise_args *a)
{
    NEED_OP(fused_factorise);
    NEED(a, "fused_factorise", "NULL arguments");
    NEED(a->m >= 1 && a->n >= 1 && a->k >= 1, "fused_factorise", "shape m=%d n=%d k=%d (each >= 1)",
         a->m, a->n, a->k);
    NEED(a->models >= 1, "fused_factorise", "models=%d (at least 1)", a->models);
    NEED(isfinite(a->lr) && a->lr > 0.0f, "fused_factorise", "lr=%g (must be positive and finite)",
         (double)a->lr);
    NEED(a->epochs >= 0, "fused_factorise", "negative epoch count %d", a->epochs);
    if (a->epochs == 0) return DL_OK;
    NEED(a->a && a->params && a->hist, "fused_factorise", "NULL pointer (a=%p, params=%p, hist=%p)",
         (const void *)a->a, (void *)a->params, (void *)a->hist);
    const size_t per = mul_sat(add_sat((size_t)a->m, (size_t)a->n), (size_t)a->k);
    NEED(mul_sat((size_t)a->m, (size_t)a->n) <= MAX_ELEMS &&
             mul_sat(per, (size_t)a->models) <= MAX_ELEMS &&
             mul_sat((size_t)a->epochs, (size_t)a->models) <= MAX_ELEMS,
         "fused_factorise",
         "%d models of a %dx%d rank-%d factorisation over %d epochs do not fit "
         "the address space",
         a->models, a->m, a->n, a->k, a->epochs);
    const size_t bytes = dl_fused_factorise_bytes(a->m, a->n, a->k);
    NEED(dl_fused_fits(be, bytes), "fused_factorise",
         "a %dx%d rank-%d model needs %zu bytes of fast memory; the %s backend's limit is %zu",
         a->m, a->n, a->k, bytes, be->name, be->fused_limit ? be->fused_limit(be) : (size_t)0);
    return be->fused_factorise(be, a);
}

dl_status dl_fused_mlp(dl_backend *be, const dl_fused_mlp_args *a)
{
    NEED_OP(fused_mlp);
    NEED(a, "fused_mlp", "NULL arguments");
    NEED(a->d >= 1 && a->h >= 1 && a->c >= 2, "fused_mlp",
         "shape d=%d h=%d c=%d (features and hidden >= 1, classes >= 2)", a->d, a->h, a->c);
    NEED(a->models >= 1, "fused_mlp", "models=%d (at least 1)", a->models);
    NEED(a->n_train >= 1 && a->n_val >= 1, "fused_mlp", "rows n_train=%d n_val=%d (each >= 1)",
         a->n_train, a->n_val);
    NEED(a->batch >= 1 && a->batch <= a->n_train, "fused_mlp",
         "batch=%d (must be in [1, n_train=%d])", a->batch, a->n_train);
    DL_TRY(optim_settings(&a->opt, "fused_mlp"));
    NEED(a->first_step >= 0, "fused_mlp", "negative first_step %lld", (long long)a->first_step);
    NEED(a->epochs >= 0, "fused_mlp", "negative epoch count %d", a->epochs);
    if (a->epochs == 0) return DL_OK;
    NEED(a->x_train && a->y_train && a->x_val && a->y_val && a->params && a->hist, "fused_mlp",
         "NULL pointer (x_train=%p, y_train=%p, x_val=%p, y_val=%p, params=%p, hist=%p)",
         (const void *)a->x_train, (const void *)a->y_train, (const void *)a->x_val,
         (const void *)a->y_val, (void *)a->params, (void *)a->hist);
    NEED(a->opt.kind == DL_OPTIM_SGD || a->m, "fused_mlp", "%s needs its first-moment buffer (m)",
         a->opt.kind == DL_OPTIM_ADAM ? "adam" : "momentum");
    NEED(a->opt.kind != DL_OPTIM_ADAM || a->v, "fused_mlp",
         "adam needs its second-moment buffer (v)");
    const size_t S = (size_t)a->models, D = (size_t)a->d;
    const size_t P = dl_mlp_param_count_checked(a->d, a->h, a->c);
    const int64_t batches = ((int64_t)a->n_train + a->batch - 1) / a->batch;
    NEED(mul_sat(mul_sat(S, (size_t)a->n_train), D) <= MAX_ELEMS &&
             mul_sat(mul_sat(S, (size_t)a->n_val), D) <= MAX_ELEMS && mul_sat(S, P) <= MAX_ELEMS &&
             mul_sat(mul_sat((size_t)a->epochs, DL_MLP_METRICS_N), S) <= MAX_ELEMS,
         "fused_mlp",
         "%d models of %d-%d-%d on %d + %d rows over %d epochs do not fit the "
         "address space",
         a->models, a->d, a->h, a->c, a->n_train, a->n_val, a->epochs);
    NEED(a->first_step <= INT32_MAX - (int64_t)a->epochs * batches, "fused_mlp",
         "step %lld + %d epochs of %lld steps passes the step counter's range",
         (long long)a->first_step, a->epochs, (long long)batches);
    const size_t bytes =
        dl_fused_mlp_bytes(a->d, a->h, a->c, a->n_train, a->n_val, a->batch, a->opt.kind);
    NEED(dl_fused_fits(be, bytes), "fused_mlp",
         "a %d-%d-%d model on %d + %d rows needs %zu bytes of fast memory; the %s backend's "
         "limit is %zu",
         a->d, a->h, a->c, a->n_train, a->n_val, bytes, be->name,
         be->fused_limit ? be->fused_limit(be) : (size_t)0);
    return be->fused_mlp(be, a);
}

/* --- sync, timing, graphs ------------------------------------------------ */

dl_status dl_sync(dl_backend *be)
{
    NEED_OP(sync);
    return be->sync(be);
}

dl_status dl_timer_start(dl_backend *be)
{
    NEED_OP(timer_start);
    DL_TRY(be->timer_start(be));
    be->timer_running = true;
    return DL_OK;
}

dl_status dl_timer_stop(dl_backend *be, double *seconds)
{
    NEED_OP(timer_stop);
    NEED(be->timer_running, "timer_stop", "no timer running (dl_timer_start was not called)");
    be->timer_running = false;
    double s = 0.0;
    DL_TRY(be->timer_stop(be, &s));
    if (seconds) *seconds = s;
    return DL_OK;
}

dl_status dl_graph_create(dl_backend *be, dl_epoch_fn fn, void *ctx, dl_graph **out)
{
    NEED_OP(graph_create);
    NEED(out, "graph_create", "NULL result pointer (out)");
    *out = NULL;
    NEED(fn, "graph_create", "NULL epoch function");
    return be->graph_create(be, fn, ctx, out);
}

dl_status dl_graph_run(dl_backend *be, dl_graph *g, int times)
{
    NEED_OP(graph_run);
    NEED(g, "graph_run", "NULL graph");
    NEED(times >= 0, "graph_run", "negative repeat count %d", times);
    if (times == 0) return DL_OK;
    return be->graph_run(be, g, times);
}

void dl_graph_free(dl_backend *be, dl_graph *g)
{
    if (be && be->graph_free && g) be->graph_free(be, g);
}
