/* The MLP task's network and its training: the forward pass, the
 * backward pass and one epoch as backend ops, then the loop that trains
 * every model. The configuration and the data preparation are in
 * mlp_data.c. */
#include "dlab/mlp.h"
#include "dlab/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Offsets of the tensors inside one model's block of parameters. */
typedef struct {
    int d, h, c;           /* features, hidden units, classes */
    size_t w1, b1, w2, b2; /* element offsets */
    size_t n;              /* P: parameters per model */
} mlp_layout;

static mlp_layout make_layout(int d, int h, int c)
{
    mlp_layout l = {.d = d, .h = h, .c = c};
    l.w1 = 0;
    l.b1 = (size_t)d * h;
    l.w2 = l.b1 + (size_t)h;
    l.b2 = l.w2 + (size_t)h * c;
    l.n = l.b2 + (size_t)c;
    return l;
}

size_t dl_mlp_param_count(int features, int hidden, int classes)
{
    return make_layout(features, hidden, classes).n;
}

/* Device buffers of one group of models. Activations are packed per model with a stride
 * of rows*width for whatever row count an op runs on, as bias_act and
 * softmax_xent expect; they are sized for the largest such count. */
typedef struct {
    mlp_layout l;
    int models, n_train, n_val, batch;
    float *params, *grads;    /* models x P */
    float *m, *v;             /* optimiser state, models x P (NULL when unused) */
    int32_t *step;            /* Adam's step counter */
    float *x_train, *x_val;   /* models x rows x features */
    int32_t *y_train, *y_val; /* models x rows */
    float *hid, *dhid;        /* models x rows x hidden */
    float *logits, *dlogits;  /* models x rows x classes */
    float *metrics;           /* DL_MLP_METRICS x models */
    float *hist;              /* epochs x DL_MLP_METRICS x models */
    int32_t *counter;
    dl_optim opt;
    bool fused; /* trained by dl_fused_mlp (mlp_run): no activations or gradients here */
} mlp_ctx;

/* --- the network, as backend ops --------------------------------------- */

/* hid = relu(X W1 + b1), logits = hid W2 + b2 for `rows` rows of every
 * model; model b reads its rows at x + b*x_stride. */
static dl_status forward(dl_backend *be, const mlp_ctx *c, const float *x, size_t x_stride,
                         int rows)
{
    const mlp_layout *l = &c->l;
    const size_t P = l->n, rh = (size_t)rows * l->h, rc = (size_t)rows * l->c;
    dl_gemm_args g1 = {.m = rows,
                       .n = l->h,
                       .k = l->d,
                       .alpha = 1.0f,
                       .a = x,
                       .lda = l->d,
                       .stride_a = x_stride,
                       .b = c->params + l->w1,
                       .ldb = l->h,
                       .stride_b = P,
                       .beta = 0.0f,
                       .c = c->hid,
                       .ldc = l->h,
                       .stride_c = rh,
                       .batch = c->models};
    DL_TRY(dl_gemm(be, &g1));
    DL_TRY(dl_bias_act(be, c->hid, c->params + l->b1, rows, l->h, c->models, P, true));
    dl_gemm_args g2 = {.m = rows,
                       .n = l->c,
                       .k = l->h,
                       .alpha = 1.0f,
                       .a = c->hid,
                       .lda = l->h,
                       .stride_a = rh,
                       .b = c->params + l->w2,
                       .ldb = l->c,
                       .stride_b = P,
                       .beta = 0.0f,
                       .c = c->logits,
                       .ldc = l->c,
                       .stride_c = rc,
                       .batch = c->models};
    DL_TRY(dl_gemm(be, &g2));
    return dl_bias_act(be, c->logits, c->params + l->b2, rows, l->c, c->models, P, false);
}

/* Softmax cross-entropy of the logits forward() left, against model b's
 * labels at y + b*y_stride: the logit gradient (softmax - onehot) / rows if
 * `grad`, and each model's loss and accuracy where loss / acc are given. */
static dl_status xent(dl_backend *be, const mlp_ctx *c, const int32_t *y, size_t y_stride, int rows,
                      bool grad, float *loss, float *acc)
{
    return dl_softmax_xent(be, c->logits, y, rows, c->l.c, c->models, y_stride,
                           grad ? c->dlogits : NULL, loss, acc);
}

/* grads = d(mean loss)/d(params) from the logit gradient xent() left and
 * the activations of the same forward() over X (model b at x + b*x_stride). */
static dl_status backprop(dl_backend *be, const mlp_ctx *c, const float *x, size_t x_stride,
                          int rows)
{
    const mlp_layout *l = &c->l;
    const size_t P = l->n, rh = (size_t)rows * l->h, rc = (size_t)rows * l->c;
    /* dW2 = hid^T dlogits, db2 = column sums of dlogits */
    dl_gemm_args gw2 = {.trans_a = true,
                        .m = l->h,
                        .n = l->c,
                        .k = rows,
                        .alpha = 1.0f,
                        .a = c->hid,
                        .lda = l->h,
                        .stride_a = rh,
                        .b = c->dlogits,
                        .ldb = l->c,
                        .stride_b = rc,
                        .beta = 0.0f,
                        .c = c->grads + l->w2,
                        .ldc = l->c,
                        .stride_c = P,
                        .batch = c->models};
    DL_TRY(dl_gemm(be, &gw2));
    DL_TRY(dl_col_sum(be, c->dlogits, rows, l->c, c->models, c->grads + l->b2, P));
    /* dhid = dlogits W2^T, masked by the ReLU */
    dl_gemm_args gh = {.trans_b = true,
                       .m = rows,
                       .n = l->h,
                       .k = l->c,
                       .alpha = 1.0f,
                       .a = c->dlogits,
                       .lda = l->c,
                       .stride_a = rc,
                       .b = c->params + l->w2,
                       .ldb = l->c,
                       .stride_b = P,
                       .beta = 0.0f,
                       .c = c->dhid,
                       .ldc = l->h,
                       .stride_c = rh,
                       .batch = c->models};
    DL_TRY(dl_gemm(be, &gh));
    DL_TRY(dl_relu_bwd(be, c->dhid, c->hid, rh * (size_t)c->models));
    /* dW1 = X^T dhid, db1 = column sums of dhid */
    dl_gemm_args gw1 = {.trans_a = true,
                        .m = l->d,
                        .n = l->h,
                        .k = rows,
                        .alpha = 1.0f,
                        .a = x,
                        .lda = l->d,
                        .stride_a = x_stride,
                        .b = c->dhid,
                        .ldb = l->h,
                        .stride_b = rh,
                        .beta = 0.0f,
                        .c = c->grads + l->w1,
                        .ldc = l->h,
                        .stride_c = P,
                        .batch = c->models};
    DL_TRY(dl_gemm(be, &gw1));
    return dl_col_sum(be, c->dhid, rows, l->h, c->models, c->grads + l->b1, P);
}

/* Loss and accuracy of every model on a whole split, into c->metrics; with
 * `grad` also the logit gradient of that split's mean loss. */
static dl_status evaluate(dl_backend *be, const mlp_ctx *c, const float *x, const int32_t *y,
                          int rows, bool grad, dl_mlp_metric loss_k, dl_mlp_metric acc_k)
{
    DL_TRY(forward(be, c, x, (size_t)rows * c->l.d, rows));
    return xent(be, c, y, (size_t)rows, rows, grad, c->metrics + (size_t)loss_k * c->models,
                c->metrics + (size_t)acc_k * c->models);
}

static bool full_batch(const mlp_ctx *c) { return c->batch == c->n_train; }

/* One epoch: the mini-batches in order (the last one may be short; its ops
 * simply get its own row count), one optimiser step each, then the metrics
 * of the updated models. Every pointer is fixed by the context, so the same
 * ops are issued on every call and the epoch can be replayed as a graph.
 *
 * With a full batch, the training-set evaluation that ends an epoch runs the
 * very forward pass and logit gradient the next epoch's step needs, so it
 * computes the gradient too and the step starts straight from it (the first
 * epoch's comes from prime_full_batch()); the validation set is evaluated
 * first so that those activations are still in place. */
static dl_status mlp_epoch(dl_backend *be, void *vctx)
{
    mlp_ctx *c = vctx;
    const bool full = full_batch(c);
    const size_t x_stride = (size_t)c->n_train * c->l.d, n_all = c->l.n * (size_t)c->models;
    for (int r0 = 0; r0 < c->n_train; r0 += c->batch) {
        int rows = c->n_train - r0 < c->batch ? c->n_train - r0 : c->batch;
        const float *x = c->x_train + (size_t)r0 * c->l.d;
        if (!full) {
            DL_TRY(forward(be, c, x, x_stride, rows));
            DL_TRY(xent(be, c, c->y_train + r0, (size_t)c->n_train, rows, true, NULL, NULL));
        }
        DL_TRY(backprop(be, c, x, x_stride, rows));
        DL_TRY(dl_optim_step(be, &c->opt, c->params, c->grads, c->m, c->v, n_all, c->step));
    }
    DL_TRY(
        evaluate(be, c, c->x_val, c->y_val, c->n_val, false, DL_MLP_VAL_LOSS, DL_MLP_VAL_ACCURACY));
    DL_TRY(evaluate(be, c, c->x_train, c->y_train, c->n_train, full, DL_MLP_TRAIN_LOSS,
                    DL_MLP_TRAIN_ACCURACY));
    return dl_record(be, c->hist, c->metrics, DL_MLP_METRICS * c->models, c->counter);
}

/* The first full-batch epoch's activations and logit gradient, issued once
 * before the epoch graph. */
static dl_status prime_full_batch(dl_backend *be, const mlp_ctx *c)
{
    if (!full_batch(c)) return DL_OK;
    DL_TRY(forward(be, c, c->x_train, (size_t)c->n_train * c->l.d, c->n_train));
    return xent(be, c, c->y_train, (size_t)c->n_train, c->n_train, true, NULL, NULL);
}

/* --- device buffers ------------------------------------------------------ */

typedef struct {
    void **ptr;
    size_t bytes;
} dev_buf;

#define MLP_MAX_BUFS 18

/* Every device buffer of a run with its size; a size of zero means unused. */
static int ctx_buffers(mlp_ctx *c, int epochs, dev_buf *out)
{
    const size_t S = (size_t)c->models, P = c->l.n, D = (size_t)c->l.d, F = sizeof(float),
                 I = sizeof(int32_t);
    const size_t rows = (size_t)(c->n_train > c->n_val ? c->n_train : c->n_val);
    const bool has_m = c->opt.kind != DL_OPTIM_SGD, adam = c->opt.kind == DL_OPTIM_ADAM;
    /* the fused op keeps its gradients and activations to itself */
    const size_t G = c->fused ? 0 : 1;
    int n = 0;
    out[n++] = (dev_buf){(void **)&c->params, F * S * P};
    out[n++] = (dev_buf){(void **)&c->grads, G * F * S * P};
    out[n++] = (dev_buf){(void **)&c->m, has_m ? F * S * P : 0};
    out[n++] = (dev_buf){(void **)&c->v, adam ? F * S * P : 0};
    out[n++] = (dev_buf){(void **)&c->step, adam ? G * I : 0};
    out[n++] = (dev_buf){(void **)&c->x_train, F * S * (size_t)c->n_train * D};
    out[n++] = (dev_buf){(void **)&c->y_train, I * S * (size_t)c->n_train};
    out[n++] = (dev_buf){(void **)&c->x_val, F * S * (size_t)c->n_val * D};
    out[n++] = (dev_buf){(void **)&c->y_val, I * S * (size_t)c->n_val};
    out[n++] = (dev_buf){(void **)&c->hid, G * F * S * rows * (size_t)c->l.h};
    out[n++] = (dev_buf){(void **)&c->dhid, G * F * S * rows * (size_t)c->l.h};
    out[n++] = (dev_buf){(void **)&c->logits, G * F * S * rows * (size_t)c->l.c};
    out[n++] = (dev_buf){(void **)&c->dlogits, G * F * S * rows * (size_t)c->l.c};
    out[n++] = (dev_buf){(void **)&c->metrics, G * F * S * DL_MLP_METRICS};
    out[n++] = (dev_buf){(void **)&c->hist, F * S * DL_MLP_METRICS * (size_t)epochs};
    out[n++] = (dev_buf){(void **)&c->counter, epochs > 0 ? G * I : 0};
    return n;
}

static size_t ctx_bytes(mlp_ctx *c, int epochs)
{
    dev_buf bufs[MLP_MAX_BUFS];
    int n = ctx_buffers(c, epochs, bufs);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += bufs[i].bytes;
    return total;
}

static void ctx_free(dl_backend *be, mlp_ctx *c)
{
    dev_buf bufs[MLP_MAX_BUFS];
    int n = ctx_buffers(c, 0, bufs);
    for (int i = 0; i < n; i++) {
        dl_free(be, *bufs[i].ptr);
        *bufs[i].ptr = NULL;
    }
}

/* Allocates every buffer (zeroed), after checking they fit. */
static dl_status ctx_alloc(dl_backend *be, mlp_ctx *c, int epochs)
{
    DL_TRY(dl_check_fits(be, ctx_bytes(c, epochs), "this MLP"));
    dev_buf bufs[MLP_MAX_BUFS];
    int n = ctx_buffers(c, epochs, bufs);
    for (int i = 0; i < n; i++) {
        *bufs[i].ptr = NULL;
        if (bufs[i].bytes == 0) continue;
        dl_status st = dl_alloc(be, bufs[i].bytes, bufs[i].ptr);
        if (st != DL_OK) {
            ctx_free(be, c);
            return st;
        }
    }
    return DL_OK;
}

/* The splits of models [first, first + c->models) of `data`. */
static dl_status upload_data(dl_backend *be, mlp_ctx *c, const dl_mlp_data *data, int first)
{
    const size_t S = (size_t)c->models, D = (size_t)c->l.d;
    const size_t ntr = S * (size_t)c->n_train, nva = S * (size_t)c->n_val;
    const size_t tr0 = (size_t)first * c->n_train, va0 = (size_t)first * c->n_val;
    DL_TRY(dl_upload(be, c->x_train, data->x_train + tr0 * D, sizeof(float) * ntr * D));
    DL_TRY(dl_upload(be, c->y_train, data->y_train + tr0, sizeof(int32_t) * ntr));
    DL_TRY(dl_upload(be, c->x_val, data->x_val + va0 * D, sizeof(float) * nva * D));
    return dl_upload(be, c->y_val, data->y_val + va0, sizeof(int32_t) * nva);
}

/* The preset's initial weights from the backend's generator (so both
 * backends start from the same numbers), biases zero (buffers come zeroed):
 * N(0, 1) for the lab, He-normal N(0, 2/fan_in) otherwise. Model b draws
 * at seed + b's place in the shared initial-value stream (dl_init_offset),
 * W1's numbers first, then W2's at the next multiple of four. */
static dl_status init_params(dl_backend *be, const mlp_ctx *c, dl_mlp_preset preset, uint64_t seed)
{
    const mlp_layout *l = &c->l;
    const bool lab = preset == DL_MLP_LAB;
    const float std1 = lab ? 1.0f : sqrtf(2.0f / (float)l->d);
    const float std2 = lab ? 1.0f : sqrtf(2.0f / (float)l->h);
    const uint64_t w2_offset = ((uint64_t)l->d * (uint64_t)l->h + 3) / 4 * 4;
    const uint64_t per_model = w2_offset + (uint64_t)l->h * (uint64_t)l->c;
    for (int b = 0; b < c->models; b++) {
        float *p = c->params + (size_t)b * l->n;
        uint64_t at = dl_init_offset(seed + (uint64_t)b, per_model);
        DL_TRY(dl_rand_normal(be, p + l->w1, (size_t)l->d * l->h, 0.0f, std1, DL_INIT_KEY, at));
        DL_TRY(dl_rand_normal(be, p + l->w2, (size_t)l->h * l->c, 0.0f, std2, DL_INIT_KEY,
                              at + w2_offset));
    }
    return DL_OK;
}

/* --- training ------------------------------------------------------------ */

void dl_mlp_result_free(dl_mlp_result *r)
{
    if (!r) return;
    free(r->history);
    free(r->train_loss), free(r->val_loss), free(r->train_accuracy), free(r->val_accuracy);
    free(r->best_epoch);
    free(r->params), free(r->epochs_trained);
    memset(r, 0, sizeof *r);
}

static dl_status result_alloc(dl_mlp_result *r, int epochs)
{
    const size_t S = (size_t)r->models;
    r->history = malloc(sizeof(float) * (size_t)epochs * DL_MLP_METRICS * S);
    r->train_loss = malloc(sizeof(float) * S);
    r->val_loss = malloc(sizeof(float) * S);
    r->train_accuracy = malloc(sizeof(float) * S);
    r->val_accuracy = malloc(sizeof(float) * S);
    r->best_epoch = malloc(sizeof(int) * S);
    r->params = malloc(sizeof(float) * S * r->n_params);
    if (!r->history || !r->train_loss || !r->val_loss || !r->train_accuracy || !r->val_accuracy ||
        !r->best_epoch || !r->params) {
        double need = sizeof(float) * ((double)epochs * DL_MLP_METRICS * S + 4.0 * S +
                                       (double)S * r->n_params) +
                      sizeof(int) * (double)S;
        size_t avail = 0, total = 0;
        dl_host_mem_info(&avail, &total);
        return DL_FAIL(DL_E_MEMORY,
                       "out of host memory for the history of %d epochs of %zu models: "
                       "needs %.2f GiB, but only %.2f GiB of %.2f GiB is free",
                       epochs, S, need / 1073741824.0, avail / 1073741824.0, total / 1073741824.0);
    }
    return DL_OK;
}

/* The accuracy of a split whose loss is not finite is undefined: its
 * outputs overflowed, and the argmax of non-finite logits names no class.
 * Such epochs' accuracies become NaN, so that every report shows them as
 * undefined and no statistic counts them. */
static void undefine_accuracies(dl_mlp_result *r)
{
    static const dl_mlp_metric pair[2][2] = {{DL_MLP_TRAIN_LOSS, DL_MLP_TRAIN_ACCURACY},
                                             {DL_MLP_VAL_LOSS, DL_MLP_VAL_ACCURACY}};
    const size_t S = (size_t)r->models;
    for (int e = 0; e < r->epochs_run; e++)
        for (int s = 0; s < 2; s++)
            for (size_t b = 0; b < S; b++) {
                const float *row = r->history + (size_t)e * DL_MLP_METRICS * S;
                if (!isfinite(row[(size_t)pair[s][0] * S + b]))
                    r->history[((size_t)e * DL_MLP_METRICS + (size_t)pair[s][1]) * S + b] = NAN;
            }
}

void dl_mlp_summarise(dl_mlp_result *r)
{
    undefine_accuracies(r);
    for (int b = 0; b < r->models; b++) {
        int last = r->epochs_run - 1;
        r->train_loss[b] = last >= 0 ? dl_mlp_history(r, last, DL_MLP_TRAIN_LOSS, b) : NAN;
        r->val_loss[b] = last >= 0 ? dl_mlp_history(r, last, DL_MLP_VAL_LOSS, b) : NAN;
        r->train_accuracy[b] = last >= 0 ? dl_mlp_history(r, last, DL_MLP_TRAIN_ACCURACY, b) : NAN;
        r->val_accuracy[b] = last >= 0 ? dl_mlp_history(r, last, DL_MLP_VAL_ACCURACY, b) : NAN;
        int best = 0;
        float best_acc = -1.0f;
        for (int e = 0; e < r->epochs_run; e++) {
            if (!isfinite(dl_mlp_history(r, e, DL_MLP_TRAIN_LOSS, b)) ||
                !isfinite(dl_mlp_history(r, e, DL_MLP_VAL_LOSS, b)))
                continue;
            float acc = dl_mlp_history(r, e, DL_MLP_VAL_ACCURACY, b);
            if (acc > best_acc) best_acc = acc, best = e + 1;
        }
        r->best_epoch[b] = best;
    }
}

/* The data every group shares and the result each fills its slice of. */
typedef struct {
    const dl_mlp_data *data;
    const dl_mlp_config *cfg;
    const float *init; /* NULL: the preset's initialisation */
    dl_mlp_result *res;
} mlp_job;

/* Mini-batches per epoch. */
static int batches_of(const mlp_ctx *c) { return (c->n_train + c->batch - 1) / c->batch; }

/* Epochs [first, first + n) of every model of the group in one fused call
 * (the loop's run hook), into the same rows of the device history as the
 * epoch graph's dl_record; Adam's steps continue from the epochs before. */
static dl_status mlp_run(dl_backend *be, void *vctx, int first, int n)
{
    const mlp_ctx *c = vctx;
    dl_fused_mlp_args a = {.d = c->l.d,
                           .h = c->l.h,
                           .c = c->l.c,
                           .models = c->models,
                           .n_train = c->n_train,
                           .n_val = c->n_val,
                           .batch = c->batch,
                           .x_train = c->x_train,
                           .y_train = c->y_train,
                           .x_val = c->x_val,
                           .y_val = c->y_val,
                           .params = c->params,
                           .opt = c->opt,
                           .m = c->m,
                           .v = c->v,
                           .first_step = (int64_t)first * batches_of(c),
                           .epochs = n,
                           .hist = c->hist + (size_t)first * DL_MLP_METRICS * c->models};
    return dl_fused_mlp(be, &a);
}

/* Floating-point operations of one epoch of one model, roughly: a forward
 * pass over every row and, over the training rows, the backward pass (about
 * twice the forward) and the evaluation's second forward; the softmax's
 * exponentials counted as ten each. */
static double epoch_flops(const mlp_ctx *c)
{
    const double fwd = 2.0 * ((double)c->l.d * c->l.h + (double)c->l.h * c->l.c) + 10.0 * c->l.c;
    return fwd * (4.0 * c->n_train + c->n_val);
}

/* Trains the group's models from their initial values on the epoch graph
 * (or the fused op); the loop writes the group's slice of the history, and
 * the final parameters go to the group's slice of res->params. */
static dl_status train_loop(dl_backend *be, mlp_ctx *c, const mlp_job *j, const dl_group *grp,
                            dl_outcome *out)
{
    dl_graph *graph = NULL;
    dl_loop loop = j->cfg->loop;
    if (c->fused) {
        loop.run = mlp_run, loop.run_ctx = c;
        dl_loop_fused_chunks(&loop, epoch_flops(c) * c->models);
    } else {
        loop.run = NULL, loop.run_ctx = NULL;
        DL_TRY(prime_full_batch(be, c));
        DL_TRY(dl_graph_create(be, mlp_epoch, c, &graph));
    }
    loop.metrics = DL_MLP_METRICS;
    loop.check_first = DL_MLP_TRAIN_LOSS;
    loop.check_count = 2; /* the training and validation losses */
    loop.lr = j->cfg->lr;
    dl_status st =
        dl_train_loop(be, graph, j->cfg->epochs, c->hist, j->res->history, &loop, grp, out);
    dl_graph_free(be, graph);
    DL_TRY(st);
    return dl_download(be, j->res->params + (size_t)grp->first * c->l.n, c->params,
                       sizeof(float) * c->l.n * (size_t)c->models);
}

/* One group (dl_group_fn): models [first, first + count) with their own
 * shuffles of the data and their own initial values. */
static dl_status train_group(dl_backend *be, const dl_group *grp, void *ud, dl_outcome *out)
{
    const mlp_job *j = ud;
    const dl_mlp_config *cfg = j->cfg;
    const dl_mlp_result *res = j->res;
    mlp_ctx c = {.l = make_layout(res->features, res->hidden, res->classes),
                 .models = grp->count,
                 .n_train = res->n_train,
                 .n_val = res->n_val,
                 .batch = res->batch,
                 .opt = {.kind = cfg->optim,
                         .lr = cfg->lr,
                         .momentum = cfg->momentum,
                         .beta1 = 0.9f,
                         .beta2 = 0.999f,
                         .eps = 1e-8f},
                 .fused = res->fused};
    DL_TRY(ctx_alloc(be, &c, cfg->epochs));
    dl_status st = upload_data(be, &c, j->data, grp->first);
    if (st == DL_OK)
        st = j->init ? dl_upload(be, c.params, j->init + (size_t)grp->first * c.l.n,
                                 sizeof(float) * c.l.n * (size_t)c.models)
                     : init_params(be, &c, cfg->preset, cfg->seed + (uint64_t)grp->first);
    if (st == DL_OK) st = train_loop(be, &c, j, grp, out);
    ctx_free(be, &c);
    return st;
}

static dl_status check_data(const dl_mlp_data *data)
{
    if (data->models < 1 || data->features < 1 || data->classes < 2 || data->n_train < 1 ||
        data->n_val < 1)
        return DL_FAIL(DL_E_INPUT,
                       "MLP data needs at least 1 model, 1 feature, 2 classes, 1 "
                       "training and 1 validation row (got %d, %d, %d, %d, %d)",
                       data->models, data->features, data->classes, data->n_train, data->n_val);
    return DL_OK;
}

/* Whether the run trains on the fused op (dl_fused_mode); DL_E_USAGE with
 * the reason when ON cannot be honoured. */
static dl_status choose_path(dl_backend *be, const dl_mlp_result *r, const dl_mlp_config *cfg,
                             bool *fused)
{
    *fused = false;
    if (cfg->fused == DL_FUSED_OFF) return DL_OK;
    const size_t bytes = dl_fused_mlp_bytes(r->features, r->hidden, r->classes, r->n_train,
                                            r->n_val, r->batch, cfg->optim);
    *fused = dl_fused_fits(be, bytes);
    if (*fused || cfg->fused != DL_FUSED_ON) return DL_OK;
    if (!be->fused_mlp || !be->fused_limit)
        return DL_FAIL(DL_E_USAGE, "--fused on: the %s backend has no fused training ops",
                       be->name);
    return DL_FAIL(DL_E_USAGE,
                   "--fused on: a %d-%d-%d model on %d + %d rows needs %zu bytes of fast memory, "
                   "more than the %s backend's %zu",
                   r->features, r->hidden, r->classes, r->n_train, r->n_val, bytes, be->name,
                   be->fused_limit(be));
}

dl_status dl_mlp_train(dl_backend *be, const dl_mlp_data *data, const dl_mlp_config *cfg,
                       const float *init, dl_mlp_result *res)
{
    memset(res, 0, sizeof *res);
    DL_TRY(dl_mlp_check_config(cfg));
    DL_TRY(check_data(data));
    *res = (dl_mlp_result){
        .features = data->features,
        .hidden = cfg->hidden,
        .classes = data->classes,
        .models = data->models,
        .n_train = data->n_train,
        .n_val = data->n_val,
        .batch = cfg->batch > 0 && cfg->batch < data->n_train ? cfg->batch : data->n_train,
        .n_params = dl_mlp_param_count(data->features, cfg->hidden, data->classes)};
    mlp_job j = {.data = data, .cfg = cfg, .init = init, .res = res};
    dl_outcome out;
    dl_status st = choose_path(be, res, cfg, &res->fused);
    if (st == DL_OK) st = result_alloc(res, cfg->epochs);
    if (st == DL_OK) st = dl_run_models(be, data->models, train_group, &j, &out);
    if (st != DL_OK) {
        dl_mlp_result_free(res);
        return st;
    }
    res->epochs_run = out.epochs_run;
    res->train_seconds = out.seconds;
    res->stop = out.stop;
    dl_mlp_summarise(res);
    return DL_OK;
}

dl_status dl_mlp_run(dl_backend *be, const dl_dataset *d, const dl_mlp_config *cfg,
                     dl_mlp_result *res)
{
    memset(res, 0, sizeof *res);
    dl_mlp_data data;
    DL_TRY(dl_mlp_prepare(d, cfg, &data));
    dl_status st = dl_mlp_train(be, &data, cfg, NULL, res);
    dl_mlp_data_free(&data);
    if (st == DL_OK) dl_mlp_scale_check(d, cfg, res->warning, sizeof res->warning);
    return st;
}

/* --- gradient (for tests) ------------------------------------------------ */

dl_status dl_mlp_gradient(dl_backend *be, int models, int rows, int features, int hidden,
                          int classes, const float *x, const int32_t *labels, const float *params,
                          float *grad, float *loss)
{
    if (models < 1 || rows < 1 || features < 1 || hidden < 1 || classes < 1)
        return DL_FAIL(DL_E_USAGE,
                       "dl_mlp_gradient: invalid shape (models %d, rows %d, "
                       "features %d, hidden %d, classes %d)",
                       models, rows, features, hidden, classes);
    mlp_ctx c = {.l = make_layout(features, hidden, classes),
                 .models = models,
                 .n_train = rows,
                 .batch = rows,
                 .opt = {.kind = DL_OPTIM_SGD}};
    const size_t S = (size_t)models, P = c.l.n;
    DL_TRY(ctx_alloc(be, &c, 0));
    const size_t x_stride = (size_t)rows * features;
    dl_status st;
    if ((st = dl_upload(be, c.x_train, x, sizeof(float) * S * x_stride)) ||
        (st = dl_upload(be, c.y_train, labels, sizeof(int32_t) * S * rows)) ||
        (st = dl_upload(be, c.params, params, sizeof(float) * S * P)) ||
        (st = forward(be, &c, c.x_train, x_stride, rows)) ||
        (st = xent(be, &c, c.y_train, (size_t)rows, rows, true, c.metrics, NULL)) ||
        (st = backprop(be, &c, c.x_train, x_stride, rows)) ||
        (st = dl_download(be, grad, c.grads, sizeof(float) * S * P)))
        goto done;
    if (loss) st = dl_download(be, loss, c.metrics, sizeof(float) * S);
done:
    ctx_free(be, &c);
    return st;
}
