/* The workloads of dlab-bench: the case list, what one epoch costs, the
 * memory a case needs, and one training run through the task's public API
 * (the same code path as the CLI, never a private copy of its loop). */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlab/cli.h"
#include "dlab/data.h"
#include "dlab/factorise.h"
#include "dlab/mlp.h"
#include "dlab/rng.h"

#define FACTORISE(fam, lvl, rows, cols, k)                                                         \
    {                                                                                              \
        .kind = BENCH_FACTORISE, .family = fam, .level = lvl, .m = rows, .n = cols, .rank = k      \
    }
#define FACTORISE_IRIS(lvl) /* the lab's settings: 150 x 4 centred, rank 2, lr 0.01 */             \
    {                                                                                              \
        .kind = BENCH_FACTORISE, .family = "factorise-iris", .iris = true, .level = lvl, .m = 150, \
        .n = 4, .rank = 2                                                                          \
    }
#define MLP(fam, lvl, rows, width)                                                                 \
    {                                                                                              \
        .kind = BENCH_MLP, .family = fam, .level = lvl, .samples = rows, .hidden = width           \
    }
#define MLP_IRIS(lvl) /* the lab's protocol: 4-12-3, 100 training rows */                          \
    {                                                                                              \
        .kind = BENCH_MLP, .family = "mlp-iris", .iris = true, .level = lvl, .samples = 150,       \
        .hidden = 12                                                                               \
    }
/* `count` models trained together (--seeds), each a whole run of the lab's
 * settings: the factorisation's 1000 epochs, the MLP's lab preset (100). */
#define FACTORISE_SEEDS(lvl, count)                                                                \
    {                                                                                              \
        .kind = BENCH_FACTORISE, .family = "factorise-seeds", .iris = true, .level = lvl,          \
        .m = 150, .n = 4, .rank = 2, .models = count                                               \
    }
#define MLP_SEEDS(lvl, count)                                                                      \
    {                                                                                              \
        .kind = BENCH_MLP, .family = "mlp-seeds", .iris = true, .level = lvl, .samples = 150,      \
        .hidden = 12, .models = count                                                              \
    }

#define FACTORISE_LAB_EPOCHS 1000

/* Synthetic factorisations are m = 10 n matrices (the shape of the GPU
 * check's 20000 x 2000) from 1e3 to 1e8 elements, in three rank families so
 * that each family's crossover is read at one rank. */
static const bench_spec specs[] = {
    FACTORISE_IRIS(BENCH_SMOKE),

    FACTORISE("factorise-r2", BENCH_SMOKE, 100, 10, 2),
    FACTORISE("factorise-r2", BENCH_FULL, 320, 32, 2),
    FACTORISE("factorise-r2", BENCH_QUICK, 1000, 100, 2),
    FACTORISE("factorise-r2", BENCH_QUICK, 3200, 320, 2),
    FACTORISE("factorise-r2", BENCH_FULL, 10000, 1000, 2),
    FACTORISE("factorise-r2", BENCH_FULL, 32000, 3200, 2),

    FACTORISE("factorise-r32", BENCH_FULL, 320, 32, 32),
    FACTORISE("factorise-r32", BENCH_SMOKE, 1000, 100, 32),
    FACTORISE("factorise-r32", BENCH_QUICK, 3200, 320, 32),
    FACTORISE("factorise-r32", BENCH_FULL, 10000, 1000, 32),
    FACTORISE("factorise-r32", BENCH_QUICK, 20000, 2000, 32),
    FACTORISE("factorise-r32", BENCH_FULL, 32000, 3200, 32),

    FACTORISE("factorise-r64", BENCH_FULL, 1000, 100, 64),
    FACTORISE("factorise-r64", BENCH_FULL, 3200, 320, 64),
    FACTORISE("factorise-r64", BENCH_FULL, 10000, 1000, 64),
    FACTORISE("factorise-r64", BENCH_FULL, 32000, 3200, 64),

    /* The MLP: iris with the lab's protocol, then Gaussian clusters
     * (MLP_FEATURES features, MLP_CLASSES classes) from 1e3 to 1e6 samples in
     * three hidden-width families, full-batch as the lab trains. */
    MLP_IRIS(BENCH_SMOKE),

    MLP("mlp-h12", BENCH_SMOKE, 1000, 12),
    MLP("mlp-h12", BENCH_QUICK, 10000, 12),
    MLP("mlp-h12", BENCH_FULL, 100000, 12),
    MLP("mlp-h12", BENCH_FULL, 1000000, 12),

    MLP("mlp-h128", BENCH_FULL, 1000, 128),
    MLP("mlp-h128", BENCH_FULL, 10000, 128),
    MLP("mlp-h128", BENCH_FULL, 100000, 128),
    MLP("mlp-h128", BENCH_FULL, 1000000, 128),

    MLP("mlp-h1024", BENCH_QUICK, 1000, 1024),
    MLP("mlp-h1024", BENCH_QUICK, 10000, 1024),
    MLP("mlp-h1024", BENCH_FULL, 100000, 1024),
    MLP("mlp-h1024", BENCH_FULL, 1000000, 1024),

    /* Many models at once: the same iris work, N independent models per run
     * (batched launches on the GPU, a group of models per thread on the
     * CPU). The x axis is N; a run is one whole training run of each. 1000
     * models are full-level: five runs of 1-2 s each on 2 CPU cores would
     * take the quick level's test past its time. */
    MLP_SEEDS(BENCH_SMOKE, 1),
    MLP_SEEDS(BENCH_SMOKE, 10),
    MLP_SEEDS(BENCH_QUICK, 100),
    MLP_SEEDS(BENCH_FULL, 1000),
    MLP_SEEDS(BENCH_FULL, 10000),

    FACTORISE_SEEDS(BENCH_SMOKE, 1),
    FACTORISE_SEEDS(BENCH_SMOKE, 10),
    FACTORISE_SEEDS(BENCH_QUICK, 100),
    FACTORISE_SEEDS(BENCH_FULL, 1000),
    FACTORISE_SEEDS(BENCH_FULL, 10000),
};

#define MLP_FEATURES  16
#define MLP_CLASSES   4
#define IRIS_ROWS     150
#define IRIS_FEATURES 4
#define IRIS_CLASSES  3

const bench_spec *bench_specs(int *count)
{
    *count = (int)(sizeof specs / sizeof specs[0]);
    return specs;
}

/* --- factorisation --------------------------------------------------------- */

/* One epoch (host/tasks/factorise.c, one model): E = U V^T (2mnk), E -= A with
 * the squared-error sum (3mn), dU = 2 E V and dV = 2 E^T U (2mnk each), the
 * SGD step over (m + n) k parameters (2 per parameter). Minimum bytes: each
 * op reads its inputs and writes its outputs once,
 *   gemm U V^T: U, V, E;  residual_sse: E, A, E;  gemm E V: E, V, dU;
 *   gemm E^T U: E, U, dV;  SGD: p, g, p
 * = 6 mn + 6 (m + n) k floats. */
static void factorise_cost(int m, int n, int k, double *flops, double *bytes)
{
    double mn = (double)m * n, p = ((double)m + n) * k;
    *flops = 6.0 * mn * k + 3.0 * mn + 2.0 * p;
    *bytes = sizeof(float) * (6.0 * mn + 6.0 * p);
}

/* The step that stays stable from U, V ~ U[0,1): the curvature along the
 * all-ones direction of U^T U or V^T V is about max(m, n) k / 4, so
 * lr = 1 / (max(m, n) k) keeps lr * curvature near 1/2. Checked on the CPU
 * backend for every shape of the list: thousands of epochs up to 1e6
 * elements, hundreds at 1e7 and more, the loss falling throughout. */
static float factorise_lr(int m, int n, int k)
{
    return (float)(1.0 / ((double)(m > n ? m : n) * k));
}

/* --- the MLP --------------------------------------------------------------- */

/* One epoch as host/tasks/mlp.c runs it, per row of R rows (d features, h hidden,
 * c classes, P parameters):
 *   forward  X W1, bias+ReLU, H W2, bias          2dh + 2h + 2hc + c flops
 *   xent     softmax, log, argmax, gradient       ~5 per logit
 *   backward dW2 = H^T G, db2, dH = G W2^T, ReLU mask, dW1 = X^T dH, db1
 *                                                 4hc + 2dh + 2h + c flops
 * and an optimiser step per batch (SGD 2, momentum 4 flops per parameter).
 * Minimum bytes per row, in floats (a label counts as one): forward reads X
 * and writes H, reads and writes H for the bias, reads H and writes the
 * logits, reads and writes them for the bias: d + 4h + 3c (+ P weights per
 * pass); xent c + 1 (+ c with the gradient); backward d + 7h + 3c (+ P + hc
 * for the weights it reads and writes); the step 3P (SGD) or 5P (momentum).
 *
 * Each batch runs forward, xent with gradient, backward and a step; then the
 * validation and training sets are evaluated (forward and xent). With a
 * full batch the training evaluation also leaves the logit gradient that
 * the next epoch's step starts from, so its forward is not run twice. */
static void mlp_cost(int d, int h, int c, int n_train, int n_val, int batch, bool momentum,
                     double *flops, double *bytes)
{
    const double P = (double)dl_mlp_param_count(d, h, c);
    const double fwd = 2.0 * d * h + 2.0 * h + 2.0 * h * c + c, xent = 5.0 * c;
    const double bwd = 4.0 * h * c + 2.0 * d * h + 2.0 * h + c;
    const double step_f = (momentum ? 4.0 : 2.0) * P, step_b = (momentum ? 5.0 : 3.0) * P;
    const double fwd_b = d + 4.0 * h + 3.0 * c, bwd_b = d + 7.0 * h + 3.0 * c;
    const int batches = (n_train + batch - 1) / batch;
    const bool full = batch >= n_train;
    double f = (double)n_train * bwd + batches * step_f + ((double)n_train + n_val) * (fwd + xent);
    double b = (double)n_train * bwd_b + batches * (P + h * (double)c + step_b) /* backward, step */
               + ((double)n_train + n_val) * (fwd_b + c + 1.0) + 2.0 * P        /* evaluations */
               + (double)n_train * c;                                           /* their gradient */
    if (!full) {
        f += (double)n_train * (fwd + xent);
        b += (double)n_train * (fwd_b + 2.0 * c + 1.0) + batches * P;
        b -= (double)n_train * c; /* the evaluations then leave no gradient */
    }
    *flops = f;
    *bytes = sizeof(float) * b;
}

/* Gaussian clusters: a centre per class drawn from N(0, 2^2) in every
 * feature, each sample its class centre plus N(0, 1) noise; classes drawn
 * uniformly. Overlapping enough that training has something to do. */
static dl_status make_clusters(int samples, int features, int classes, uint64_t seed, dl_dataset *d)
{
    memset(d, 0, sizeof *d);
    double *centre = malloc(sizeof(double) * (size_t)classes * features);
    d->x = malloc(sizeof(float) * (size_t)samples * features);
    d->labels = malloc(sizeof(int32_t) * (size_t)samples);
    if (!centre || !d->x || !d->labels) {
        free(centre);
        dl_dataset_free(d);
        return DL_FAIL(DL_E_MEMORY, "out of host memory for %d synthetic samples", samples);
    }
    dl_rng rng;
    dl_rng_seed(&rng, seed);
    for (int i = 0; i < classes * features; i++) centre[i] = 2.0 * dl_rng_normal(&rng);
    for (int i = 0; i < samples; i++) {
        int y = (int)dl_rng_below(&rng, (uint64_t)classes);
        d->labels[i] = y;
        for (int j = 0; j < features; j++)
            d->x[(size_t)i * features + j] =
                (float)(centre[(size_t)y * features + j] + dl_rng_normal(&rng));
    }
    free(centre);
    d->rows = samples;
    d->cols = features;
    d->n_classes = classes;
    return DL_OK;
}

/* The configuration a case trains with: the lab's protocol on iris (N(0,1)
 * weights, SGD, lr 0.01, 100 training rows), the careful one on clusters
 * (He init, standardised inputs, momentum 0.9, lr 0.05, 80% training). */
static dl_mlp_config mlp_config(const bench_case *c, int epochs)
{
    dl_mlp_config cfg = dl_mlp_defaults(c->spec.iris ? DL_MLP_LAB : DL_MLP_CAREFUL);
    cfg.hidden = c->spec.hidden;
    cfg.epochs = epochs;
    cfg.train = c->n_train;
    cfg.batch = c->batch;
    cfg.seed = c->seed;
    cfg.seeds = c->models;
    return cfg;
}

/* --- cases --------------------------------------------------------------- */

void bench_case_init(bench_case *c, const bench_spec *s)
{
    memset(c, 0, sizeof *c);
    c->spec = *s;
    c->seed = 1;
    /* What `dlab-gpu --task factorise --synthetic MxN --seed 1` uses, so the
     * CLI reproduces any synthetic factorisation case exactly. */
    c->data_seed = c->seed ^ 0x5eed;
    c->models = s->models > 0 ? s->models : 1;
    if (s->kind == BENCH_FACTORISE) {
        snprintf(c->size_label, sizeof c->size_label, "%dx%d r%d", s->m, s->n, s->rank);
        c->size = (double)s->m * s->n;
        c->size_unit = "elements";
        c->lr = s->iris ? 0.01f : factorise_lr(s->m, s->n, s->rank);
        factorise_cost(s->m, s->n, s->rank, &c->flops, &c->bytes);
    } else {
        c->features = s->iris ? IRIS_FEATURES : MLP_FEATURES;
        c->classes = s->iris ? IRIS_CLASSES : MLP_CLASSES;
        c->n_train = s->iris ? dl_mlp_defaults(DL_MLP_LAB).train : s->samples / 5 * 4;
        c->batch = c->n_train; /* full batch */
        snprintf(c->size_label, sizeof c->size_label, "%dx%d h%d", s->samples, c->features,
                 s->hidden);
        c->size = s->samples;
        c->size_unit = "samples";
        dl_mlp_config cfg = mlp_config(c, 1);
        c->lr = cfg.lr;
        mlp_cost(c->features, s->hidden, c->classes, c->n_train, s->samples - c->n_train, c->batch,
                 cfg.optim == DL_OPTIM_MOMENTUM, &c->flops, &c->bytes);
    }
    if (s->models > 0) {
        /* Independent models: N times one model's work, and each run is the
         * lab's whole training run. */
        c->flops *= c->models;
        c->bytes *= c->models;
        c->run_epochs =
            s->kind == BENCH_MLP ? dl_mlp_defaults(DL_MLP_LAB).epochs : FACTORISE_LAB_EPOCHS;
        snprintf(c->size_label, sizeof c->size_label, "%d models", c->models);
        c->size = c->models;
        c->size_unit = "models";
    }
    snprintf(c->name, sizeof c->name, "%s/%s", s->family, c->size_label);
    for (char *p = c->name; *p; p++)
        if (*p == ' ') *p = '-';
}

void bench_case_memory(const bench_case *c, int epochs, size_t *device_bytes, size_t *host_bytes)
{
    const bench_spec *s = &c->spec;
    const size_t F = sizeof(float);
    /* Many models on the CPU train in groups whose results are then merged
     * into one: the host holds the per-model results twice for a moment. */
    const size_t S = (size_t)c->models, copies = S > 1 ? 2 : 1;
    if (s->kind == BENCH_MLP) {
        /* host/tasks/mlp.c, per model: parameters, gradients and momentum; both
         * splits with labels; hidden activations and their gradient, logits
         * and theirs for the larger split; metrics and history. */
        const size_t N = (size_t)s->samples, D = (size_t)c->features, H = (size_t)s->hidden;
        const size_t C = (size_t)c->classes,
                     P = dl_mlp_param_count(c->features, s->hidden, c->classes);
        const size_t ntr = (size_t)c->n_train, rows = ntr > N - ntr ? ntr : N - ntr;
        *device_bytes = F * (S * (4 * P + N * (D + 1) + 2 * rows * (H + C) +
                                  DL_MLP_METRICS * (size_t)(epochs + 1)) +
                             1);
        /* The data; per model its shuffled and scaled copy, the history and
         * the final parameters; the permutation. */
        *host_bytes = F * (N * (D + 1) +
                           copies * S * (N * (D + 1) + DL_MLP_METRICS * (size_t)epochs + P) + N);
        return;
    }
    const size_t mn = (size_t)s->m * s->n, p = ((size_t)s->m + s->n) * s->rank;
    /* host/tasks/factorise.c: A; per model E, parameters, gradients, metric and
     * history; the counter; the synthetic matrix's factors while it is
     * generated. */
    *device_bytes = F * (mn + S * (mn + 2 * p + 1 + (size_t)epochs) + 1) + (s->iris ? 0 : F * p);
    /* The loss history and final losses, the final U and, for iris, the
     * loaded matrix. */
    *host_bytes =
        F * (copies * S * ((size_t)epochs + 1) + (size_t)s->m * s->rank + (s->iris ? mn : 0));
}

dl_status bench_case_prepare(bench_case *c, void **data)
{
    *data = NULL;
    const bench_spec *s = &c->spec;
    if (!s->iris && s->kind == BENCH_FACTORISE) return DL_OK; /* made on the backend */
    dl_dataset *d = calloc(1, sizeof *d);
    if (!d) return DL_FAIL(DL_E_MEMORY, "out of host memory for the data");
    dl_status st = s->iris ? dl_dataset_load(dl_default_data_path(), d)
                           : make_clusters(s->samples, c->features, c->classes, c->data_seed, d);
    if (st != DL_OK) {
        free(d);
        return st;
    }
    if (s->iris &&
        (d->rows != IRIS_ROWS || d->cols != IRIS_FEATURES || d->n_classes != IRIS_CLASSES)) {
        st = DL_FAIL(DL_E_INPUT,
                     "%s has %d rows, %d features and %d classes; expected iris's "
                     "%d, %d and %d",
                     dl_default_data_path(), d->rows, d->cols, d->n_classes, IRIS_ROWS,
                     IRIS_FEATURES, IRIS_CLASSES);
        dl_dataset_free(d);
        free(d);
        return st;
    }
    if (s->kind == BENCH_FACTORISE)
        dl_dataset_center(d, NULL); /* the lab factorises centred columns */
    *data = d;
    return DL_OK;
}

void bench_case_release(bench_case *c, void *data)
{
    if (!data) return;
    dl_dataset_free(data);
    free(data);
}

static dl_status run_mlp(dl_backend *be, const bench_case *c, const dl_dataset *d, int epochs,
                         double *seconds, int *epochs_run, double *loss)
{
    dl_mlp_config cfg = mlp_config(c, epochs);
    dl_mlp_result res;
    DL_TRY(dl_mlp_run(be, d, &cfg, &res));
    *seconds = res.train_seconds;
    *epochs_run = res.epochs_run;
    *loss = res.train_loss[0];
    dl_status st = dl_stop_status(&res.stop); /* a stopped run is not timed */
    dl_mlp_result_free(&res);
    return st;
}

dl_status bench_case_run(dl_backend *be, const bench_case *c, void *data, int epochs,
                         double *seconds, int *epochs_run, double *loss)
{
    const bench_spec *s = &c->spec;
    if (s->kind == BENCH_MLP) return run_mlp(be, c, data, epochs, seconds, epochs_run, loss);
    dl_factorise_config cfg = {.rank = s->rank,
                               .epochs = epochs,
                               .lr = c->lr,
                               .seed = c->seed,
                               .seeds = c->models,
                               .svd = false};
    dl_factorise_result res;
    dl_status st;
    if (s->iris) {
        const dl_dataset *d = data;
        st = dl_factorise(be, d->x, d->rows, d->cols, &cfg, &res);
    } else {
        st = dl_factorise_synthetic(be, s->m, s->n, s->rank, 0.1f, c->data_seed, &cfg, &res);
    }
    DL_TRY(st);
    *seconds = res.train_seconds;
    *epochs_run = res.epochs_run;
    *loss = res.sse_gd[0];
    st = dl_stop_status(&res.stop); /* a stopped run is not timed */
    dl_factorise_result_free(&res);
    return st;
}
