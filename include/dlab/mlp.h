/* Task: a one-hidden-layer classifier, inputs -> hidden (ReLU) -> one logit
 * per class, trained on softmax cross-entropy (mean over the batch).
 *
 * Every model's parameters sit in one contiguous block of P floats,
 *   [W1 (features x hidden) | b1 (hidden) | W2 (hidden x classes) | b2 (classes)],
 * model b at params + b*P; gradients and optimiser state mirror that layout,
 * so one optimiser launch updates every tensor of every model. `models`
 * models (seeds seed, seed+1, ...) train together, each on its own shuffle
 * of the data, through strided-batched gemm.
 *
 * Each epoch runs the mini-batches in a fixed order over the shuffled
 * training split, then evaluates every model on the full training and
 * validation sets and records 4*models metrics on the device:
 *   [train_loss | val_loss | train_accuracy | val_accuracy], each `models` wide.
 * An accuracy whose split's loss is not finite is NaN in the result: the
 * outputs overflowed and their argmax names no class.
 */
#ifndef DLAB_MLP_H
#define DLAB_MLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlab/backend.h"
#include "dlab/data.h"
#include "dlab/train.h"

typedef enum {
    DL_MLP_LAB = 0, /* the lab's protocol: N(0,1) weights, (x - mean)/var over all rows, GD */
    DL_MLP_CAREFUL, /* He-normal weights, standardised by the training split, momentum */
} dl_mlp_preset;

typedef struct {
    dl_mlp_preset preset; /* initialisation and input scaling */
    int hidden;
    int epochs;
    dl_optim_kind optim;
    float lr;
    float momentum; /* DL_OPTIM_MOMENTUM */
    int batch;      /* rows per mini-batch; 0 or >= the training rows: full batch */
    int train;      /* rows used for training after shuffling; the rest validate */
    uint64_t seed;  /* shuffle and initial weights of model 0; model b uses seed + b */
    int seeds;      /* models trained together, >= 1 */
    /* Training on the backend's fused op (dl_fused_mlp, one call per chunk of
     * epochs) rather than one op per step: AUTO when the backend has it and
     * one model fits its fast memory; ON refuses (DL_E_USAGE) where AUTO
     * would not fuse. */
    dl_fused_mode fused;
    dl_loop loop; /* progress and stop hooks (the metrics and their checks are the task's) */
} dl_mlp_config;

/* Metrics per epoch, in the order they are recorded. */
typedef enum {
    DL_MLP_TRAIN_LOSS = 0,
    DL_MLP_VAL_LOSS,
    DL_MLP_TRAIN_ACCURACY,
    DL_MLP_VAL_ACCURACY,
    DL_MLP_METRICS
} dl_mlp_metric;

/* Data ready for training: per model a shuffled, scaled training and
 * validation split (host memory, row-major). */
typedef struct {
    int models, features, classes;
    int n_train, n_val;
    float *x_train;   /* models x n_train x features */
    int32_t *y_train; /* models x n_train class ids */
    float *x_val;     /* models x n_val x features */
    int32_t *y_val;   /* models x n_val */
} dl_mlp_data;

#define DL_MLP_WARNING_LEN 384

typedef struct {
    int features, hidden, classes, models;
    int n_train, n_val, batch;    /* batch: the effective mini-batch size */
    size_t n_params;              /* P, per model */
    int epochs_run;               /* epochs every model finished */
    float *history;               /* epochs_run x (DL_MLP_METRICS * models), see dl_mlp_history */
    float *train_loss, *val_loss; /* per model: after the last epoch run */
    float *train_accuracy, *val_accuracy;
    int *best_epoch;     /* per model: 1-based epoch of the highest validation
                              accuracy (earliest on ties; finite-loss epochs only) */
    float *params;       /* models x P: the final parameters */
    int *epochs_trained; /* per model: the epochs it ran, when a --seeds split over ranks
                            was interrupted at different epochs (the figures above and the
                            history are then those after epochs_run); else NULL */
    bool fused;          /* trained on the fused op (dl_mlp_config.fused) */
    double train_seconds;
    dl_stop stop;                     /* why training ended early, if it did */
    char warning[DL_MLP_WARNING_LEN]; /* one line (dl_mlp_scale_check), "" when none */
} dl_mlp_result;

/* The value of metric `k` of model `model` after epoch `epoch` (0-based). */
static inline float dl_mlp_history(const dl_mlp_result *r, int epoch, dl_mlp_metric k, int model)
{
    return r
        ->history[((size_t)epoch * DL_MLP_METRICS + (size_t)k) * (size_t)r->models + (size_t)model];
}

/* Parameters per model: features*hidden + hidden + hidden*classes + classes. */
size_t dl_mlp_param_count(int features, int hidden, int classes);

/* The preset's optimiser, learning rate and epochs, with the other fields at
 * their defaults (hidden 12, train 100, full batch, momentum 0.9, seed 1,
 * fused AUTO). */
dl_mlp_config dl_mlp_defaults(dl_mlp_preset preset);

/* The checks that do not need the data: a known preset and optimiser,
 * positive hidden units, epochs, learning rate and seeds, momentum in
 * [0, 1), batch >= 0 (DL_E_USAGE). */
dl_status dl_mlp_check_config(const dl_mlp_config *cfg);

/* Checks the configuration against the data: a label column with at least
 * two classes (DL_E_INPUT), positive sizes, epochs and learning rate, and a
 * split that leaves both training and validation rows (DL_E_USAGE). */
dl_status dl_mlp_validate(const dl_dataset *d, const dl_mlp_config *cfg);

/* Shuffles and splits `d` once per model (dl_rng seeded with seed + b) and
 * scales the features as the preset says. Host only. */
dl_status dl_mlp_prepare(const dl_dataset *d, const dl_mlp_config *cfg, dl_mlp_data *out);
void dl_mlp_data_free(dl_mlp_data *data);

/* The lab preset scales inputs as (x - mean) / variance, which leaves a
 * feature of standard deviation sigma with a spread of 1 / sigma rather
 * than 1: in units where sigma is far from 1 the inputs all but vanish
 * (iris x 1e20: about 1e-20, below anything the N(0, 1) weights and lr 0.01
 * can act on within the epochs) or blow up (a near-constant feature). When a
 * feature's scaled spread lies outside [DL_MLP_SPREAD_MIN, DL_MLP_SPREAD_MAX]
 * writes a one-line warning naming the one furthest out into buf and returns
 * true; otherwise (and for the careful preset, which standardises) buf = "". */
#define DL_MLP_SPREAD_MIN 1e-3
#define DL_MLP_SPREAD_MAX 1e3
bool dl_mlp_scale_check(const dl_dataset *d, const dl_mlp_config *cfg, char *buf, size_t len);

/* What dl_mlp_prepare does for model `model` (0-based; seed cfg->seed +
 * model), told rather than done: perm (d->rows entries) receives the data
 * rows in shuffled order, the first cfg->train of them the training split
 * and the rest the validation split, in the order training sees them; mean
 * and scale (d->cols each) receive the input transform x' = (x - mean) /
 * scale, scale being the standard deviation of the training split (careful)
 * or the variance of all rows (lab), 1 for a constant column. Training
 * computes x' as (float)((x - mean) * (1.0 / scale)) in double, which a
 * caller repeats to get the very inputs training saw. Fails as
 * dl_mlp_validate does, or DL_E_USAGE for a model out of range. */
dl_status dl_mlp_split(const dl_dataset *d, const dl_mlp_config *cfg, int model, int32_t *perm,
                       double *mean, double *scale);

/* Trains data->models models. `init` (host, models x P) gives the initial
 * parameters; NULL draws them with the preset's initialisation from the
 * backend's generator (seed + b per model). Returns DL_OK also when
 * training diverged or was interrupted: res->stop says so and the result
 * keeps the finished epochs. Failures leave it empty. */
dl_status dl_mlp_train(dl_backend *be, const dl_mlp_data *data, const dl_mlp_config *cfg,
                       const float *init, dl_mlp_result *res);

/* dl_mlp_validate + dl_mlp_prepare + dl_mlp_train with the preset's init. */
dl_status dl_mlp_run(dl_backend *be, const dl_dataset *d, const dl_mlp_config *cfg,
                     dl_mlp_result *res);

/* dl_mlp_run with the cfg->seeds models split over the ranks of be->comm
 * (dlab/comm.h): rank r trains the models of its dl_comm_shard(seeds,
 * ranks, r) block, seeds seed + first, ..., with no traffic while training,
 * so each model's figures are bit for bit those of one process on the same
 * backend. Rank 0 then holds the whole result (every model's figures,
 * parameters and history up to the fewest epochs any rank ran; the worst
 * stop, the fewest epochs among equals); the other ranks hold their own
 * block's. Every rank passes the whole dataset. A collective; every rank
 * returns the same status. With no communicator or one rank it is
 * dl_mlp_run. DL_E_USAGE when seeds < ranks. */
dl_status dl_mlp_split_seeds(dl_backend *be, const dl_dataset *d, const dl_mlp_config *cfg,
                             dl_mlp_result *res);

void dl_mlp_result_free(dl_mlp_result *r);

/* Derives a result's final figures from its history: the losses and
 * accuracies of epoch epochs_run (accuracies undefined, NaN, where that
 * split's loss is not finite) and each model's best validation epoch among
 * the epochs whose losses are finite (1-based, earliest on ties, 0 when
 * none). */
void dl_mlp_summarise(dl_mlp_result *r);

/* One forward and backward pass of `models` models on the same op sequence
 * training uses. Host arrays: x models x rows x features, labels models x
 * rows, params models x P; out: grad models x P (d mean loss / d params) and,
 * if not NULL, loss[models]. */
dl_status dl_mlp_gradient(dl_backend *be, int models, int rows, int features, int hidden,
                          int classes, const float *x, const int32_t *labels, const float *params,
                          float *grad, float *loss);

#endif
