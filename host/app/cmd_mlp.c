/* dlab-gpu --task mlp: load the labelled data, train, apply the first
 * model to every data row, report in text and JSON (the validation
 * confusion matrix included), and with --out DIR write the history, the
 * figures, model.json, predictions.csv, report.html and the summary. */
#include "dlab/cmd.h"
#include "dlab/comm.h"
#include "dlab/data.h"
#include "dlab/json.h"
#include "dlab/mlp.h"
#include "dlab/model_io.h"
#include "dlab/predict.h"
#include "dlab/predictions_out.h"
#include "dlab/report.h"
#include "dlab/report_html.h"
#include "dlab/summary.h"

#include <math.h>
#include <stdlib.h>

static const char *optim_name(dl_optim_kind k)
{
    return k == DL_OPTIM_ADAM ? "adam" : k == DL_OPTIM_MOMENTUM ? "momentum" : "sgd";
}

/* The preset's defaults, overridden by whatever was given explicitly. */
static dl_mlp_config config_from_options(const dl_cmd *c)
{
    const dl_options *o = c->opt;
    dl_mlp_config cfg = dl_mlp_defaults(o->preset);
    cfg.hidden = o->hidden;
    cfg.batch = o->batch;
    cfg.train = o->train;
    cfg.seed = o->seed;
    cfg.seeds = o->seeds;
    cfg.momentum = o->momentum;
    cfg.fused = o->fused;
    if (o->given_epochs) cfg.epochs = o->epochs;
    if (o->given_lr) cfg.lr = o->lr;
    if (o->given_optim) cfg.optim = o->optim;
    cfg.loop = (dl_loop){.progress = c->progress, .progress_ud = c->progress_ud, .stop = c->stop};
    return cfg;
}

/* The first model (seed cfg->seed, the one the reports show) applied to
 * every data row, with the split and input transform it was trained with. */
typedef struct {
    int32_t *perm;        /* rows: training rows first, then validation rows */
    double *mean, *scale; /* features: x' = (x - mean) / scale */
    uint8_t *split;       /* rows, in data order: 0 training, 1 validation */
    dl_predictions pred;  /* every data row, in data order */
    int *confusion;       /* classes x classes validation counts, NULL when none */
    char note[160];       /* why there is no confusion matrix */
} first_model;

static void first_model_free(first_model *fm)
{
    free(fm->perm), free(fm->mean), free(fm->scale), free(fm->split), free(fm->confusion);
    dl_predictions_free(&fm->pred);
}

static dl_status apply_first_model(dl_backend *be, const dl_dataset *d, const dl_mlp_config *cfg,
                                   const dl_mlp_result *r, first_model *fm)
{
    if (!isfinite(r->train_loss[0]) || !isfinite(r->val_loss[0])) {
        snprintf(fm->note, sizeof fm->note,
                 "the first model's loss is not finite (training diverged), so its "
                 "predictions are undefined");
        return DL_OK;
    }
    for (size_t i = 0; i < r->n_params; i++)
        if (!isfinite(r->params[i])) {
            snprintf(fm->note, sizeof fm->note,
                     "the first model's weights are not finite "
                     "(training diverged)");
            return DL_OK;
        }
    const int N = d->rows, C = r->classes;
    fm->perm = malloc(sizeof(int32_t) * (size_t)N);
    fm->mean = malloc(sizeof(double) * (size_t)d->cols);
    fm->scale = malloc(sizeof(double) * (size_t)d->cols);
    fm->split = calloc((size_t)N, 1);
    int *counts = calloc((size_t)C * (size_t)C, sizeof(int));
    if (!fm->perm || !fm->mean || !fm->scale || !fm->split || !counts) {
        free(counts);
        return DL_FAIL(DL_E_MEMORY, "out of host memory applying the model to %d rows", N);
    }
    dl_status st = dl_mlp_split(d, cfg, 0, fm->perm, fm->mean, fm->scale);
    dl_mlp_model m = {.features = r->features,
                      .hidden = r->hidden,
                      .classes = C,
                      .input_mean = fm->mean,
                      .input_scale = fm->scale,
                      .params = r->params};
    if (st == DL_OK) st = dl_mlp_predict(be, &m, d->x, N, &fm->pred);
    if (st != DL_OK) {
        free(counts);
        return st;
    }
    if (fm->pred.non_finite > 0) {
        free(counts);
        snprintf(fm->note, sizeof fm->note,
                 "the first model's outputs are not finite on %d of %d rows (its weights "
                 "overflow float32)",
                 fm->pred.non_finite, N);
        return DL_OK;
    }
    for (int i = r->n_train; i < N; i++) fm->split[fm->perm[i]] = 1;
    dl_confusion_add(&fm->pred, d->labels, fm->perm + r->n_train, r->n_val, counts);
    fm->confusion = counts;
    return DL_OK;
}

/* The best epoch, 1-based; null when no epoch had finite losses (0 in the
 * result), so that no reader takes it for an epoch. */
static void json_best_epoch(dl_json *j, int best)
{
    if (best > 0)
        dl_json_int(j, "best_epoch", best);
    else
        dl_json_null(j, "best_epoch");
}

static void write_history(dl_json *j, const dl_mlp_result *r)
{
    dl_json_arr_begin(j, "history");
    for (int e = 0; e < r->epochs_run; e++) {
        dl_json_obj_begin(j, NULL);
        dl_json_int(j, "epoch", e + 1);
        dl_json_num(j, "train_loss", dl_mlp_history(r, e, DL_MLP_TRAIN_LOSS, 0));
        dl_json_num(j, "val_loss", dl_mlp_history(r, e, DL_MLP_VAL_LOSS, 0));
        dl_json_num(j, "train_accuracy", dl_mlp_history(r, e, DL_MLP_TRAIN_ACCURACY, 0));
        dl_json_num(j, "val_accuracy", dl_mlp_history(r, e, DL_MLP_VAL_ACCURACY, 0));
        dl_json_obj_end(j);
    }
    dl_json_arr_end(j);
}

/* The lab's worry: how often a run lands at 40-55 % validation accuracy. */
#define LAB_BAND_LO 0.40
#define LAB_BAND_HI 0.55

/* The runs in the lab's band among the measured ones: a model whose
 * validation accuracy is undefined (its loss is not finite, or no epoch
 * finished) is neither in the band nor out of it, so the share is over the
 * measured runs and undefined when there are none. */
typedef struct {
    int in, measured;
} lab_band;

static lab_band in_lab_band(const dl_mlp_result *r)
{
    lab_band k = {0, 0};
    for (int b = 0; b < r->models; b++) {
        const float a = r->val_accuracy[b];
        if (!isfinite(a)) continue;
        k.measured++;
        k.in += a >= LAB_BAND_LO - 1e-6 && a <= LAB_BAND_HI + 1e-6;
    }
    return k;
}

/* The final figures of every model (one entry without --seeds), and their
 * distribution. */
static void write_seeds(dl_json *j, const dl_mlp_config *cfg, const dl_mlp_result *r)
{
    dl_json_arr_begin(j, "seeds");
    for (int b = 0; b < r->models; b++) {
        dl_json_obj_begin(j, NULL);
        dl_json_int(j, "seed", (long long)(cfg->seed + (uint64_t)b));
        dl_json_num(j, "train_loss", r->train_loss[b]);
        dl_json_num(j, "val_loss", r->val_loss[b]);
        dl_json_num(j, "train_accuracy", r->train_accuracy[b]);
        dl_json_num(j, "val_accuracy", r->val_accuracy[b]);
        json_best_epoch(j, r->best_epoch[b]);
        if (r->epochs_trained) dl_json_int(j, "epochs_trained", r->epochs_trained[b]);
        dl_json_obj_end(j);
    }
    dl_json_arr_end(j);
    dl_stats st;
    dl_json_obj_begin(j, "summary");
    dl_stats_compute(r->val_accuracy, r->models, 1, &st);
    dl_json_stats(j, "val_accuracy", &st);
    dl_stats_compute(r->train_accuracy, r->models, 1, &st);
    dl_json_stats(j, "train_accuracy", &st);
    dl_stats_compute(r->val_loss, r->models, 1, &st);
    dl_json_stats(j, "val_loss", &st);
    const lab_band band = in_lab_band(r);
    if (band.measured > 0)
        dl_json_num(j, "val_accuracy_40_55", (double)band.in / band.measured);
    else
        dl_json_null(j, "val_accuracy_40_55");
    dl_json_obj_end(j);
}

static void write_json(FILE *f, const dl_cmd *c, const char *source, const dl_mlp_config *cfg,
                       const dl_mlp_result *r, const dl_dataset *d, const first_model *fm,
                       const dl_out *out)
{
    dl_json j;
    dl_json_init(&j, f, false);
    dl_json_obj_begin(&j, NULL);
    dl_json_str(&j, "task", "mlp");
    dl_json_str(&j, "status", dl_stop_name(r->stop.kind));
    dl_json_str(&j, "stop_message", r->stop.message);
    dl_json_str(&j, "data", source);
    if (c->be->comm && dl_comm_size(c->be->comm) > 1)
        dl_json_int(&j, "ranks", dl_comm_size(c->be->comm));
    dl_json_str(&j, "backend", c->be->name);
    dl_json_str(&j, "device", c->be->device);
    dl_json_num(&j, "train_loss", r->train_loss[0]);
    dl_json_num(&j, "val_loss", r->val_loss[0]);
    dl_json_num(&j, "train_accuracy", r->train_accuracy[0]);
    dl_json_num(&j, "val_accuracy", r->val_accuracy[0]);
    json_best_epoch(&j, r->best_epoch[0]);
    dl_json_int(&j, "epochs_run", r->epochs_run);
    dl_json_num(&j, "train_seconds", r->train_seconds);
    dl_json_bool(&j, "fused", r->fused);
    dl_json_str(&j, "fused_mode", dl_fused_mode_name(cfg->fused));
    dl_json_obj_begin(&j, "config");
    dl_json_int(&j, "hidden", r->hidden);
    dl_json_int(&j, "epochs", cfg->epochs);
    dl_json_f32(&j, "lr", cfg->lr);
    dl_json_str(&j, "optim", optim_name(cfg->optim));
    /* Only the momentum optimiser has a coefficient. */
    if (cfg->optim == DL_OPTIM_MOMENTUM)
        dl_json_f32(&j, "momentum", cfg->momentum);
    else
        dl_json_null(&j, "momentum");
    dl_json_int(&j, "batch", r->batch);
    dl_json_int(&j, "train", r->n_train);
    dl_json_int(&j, "validation", r->n_val);
    dl_json_int(&j, "seed", (long long)cfg->seed);
    dl_json_int(&j, "seeds", r->models);
    dl_json_str(&j, "preset", cfg->preset == DL_MLP_LAB ? "lab" : "careful");
    dl_json_int(&j, "classes", r->classes);
    dl_json_int(&j, "features", r->features);
    dl_json_obj_end(&j);
    dl_json_arr_begin(&j, "class_names");
    for (int k = 0; k < r->classes; k++) dl_json_str(&j, NULL, d->class_names[k]);
    dl_json_arr_end(&j);
    /* the first model's, on the validation rows: [true class][predicted class] */
    dl_json_confusion(&j, "confusion_matrix", fm->confusion, r->classes);
    write_history(&j, r);
    write_seeds(&j, cfg, r);
    dl_json_arr_begin(&j, "warnings");
    if (r->warning[0]) dl_json_str(&j, NULL, r->warning);
    dl_json_arr_end(&j);
    dl_out_json(&j, out);
    dl_json_obj_end(&j);
}

/* The same summary as a dl_write_fn: for stdout and for DIR/summary.json. */
typedef struct {
    const dl_cmd *c;
    const char *source;
    const dl_mlp_config *cfg;
    const dl_mlp_result *r;
    const dl_dataset *d;
    const first_model *fm;
    const dl_out *out;
} json_args;

static dl_status json_writer(FILE *f, const void *ctx)
{
    const json_args *a = ctx;
    write_json(f, a->c, a->source, a->cfg, a->r, a->d, a->fm, a->out);
    return DL_OK;
}

/* model.json, predictions.csv and Figure 4: the first model and what it
 * predicts, when it has finite weights. */
static dl_status write_model_files(dl_out *out, const json_args *a)
{
    const dl_mlp_result *r = a->r;
    const first_model *fm = a->fm;
    if (!fm->confusion) return DL_OK;
    const dl_dataset *d = a->d;
    dl_model model = {.features = r->features,
                      .hidden = r->hidden,
                      .classes = r->classes,
                      .feature_names = d->col_names,
                      .named_features = d->col_names != NULL,
                      .class_names = d->class_names,
                      .input_mean = fm->mean,
                      .input_scale = fm->scale,
                      .params = r->params};
    dl_model_record rec = {.model = &model,
                           .preset = a->cfg->preset == DL_MLP_LAB ? "lab" : "careful",
                           .optim = optim_name(a->cfg->optim),
                           .data = a->source,
                           .lr = a->cfg->lr,
                           .epochs_run = r->epochs_run,
                           .train_rows = r->n_train,
                           .validation_rows = r->n_val,
                           .seed = a->cfg->seed,
                           .train_accuracy = r->train_accuracy[0],
                           .val_accuracy = r->val_accuracy[0]};
    DL_TRY(dl_out_write(out, "model.json", dl_model_write, &rec));
    dl_predictions_csv csv = {
        .p = &fm->pred, .class_names = d->class_names, .labels = d->labels, .split = fm->split};
    DL_TRY(dl_out_write(out, "predictions.csv", dl_predictions_csv_write, &csv));
    char title[128];
    snprintf(title, sizeof title, "Validation confusion matrix (%d rows, accuracy %.3f)", r->n_val,
             (double)r->val_accuracy[0]);
    dl_fig_confusion fig = {.classes = r->classes,
                            .counts = fm->confusion,
                            .class_names = d->class_names,
                            .title = title};
    return dl_out_figure_confusion(out, "figure4_confusion_matrix", &fig);
}

/* --out DIR: the per-epoch metrics, Figure 2 (the first model), then the
 * summary. The history is laid out as dl_mlp_history() reads it. */
static dl_status write_files(dl_out *out, const json_args *a)
{
    const dl_mlp_result *r = a->r;
    const size_t models = (size_t)r->models;
    static const char *const names[DL_MLP_METRICS] = {"train_loss", "val_loss", "train_accuracy",
                                                      "val_accuracy"};
    dl_csv_history h = {.epochs = r->epochs_run,
                        .metrics = DL_MLP_METRICS,
                        .names = names,
                        .models = r->models,
                        .first_seed = a->cfg->seed,
                        .values = r->history,
                        .epoch_stride = DL_MLP_METRICS * models,
                        .metric_stride = models,
                        .model_stride = 1};
    DL_TRY(dl_out_write(out, "history.csv", dl_csv_write_history, &h));
    if (r->epochs_run > 0) {
        dl_fig_mlp fig = {.epochs = r->epochs_run,
                          .stride = DL_MLP_METRICS * models,
                          .train_loss = r->history + DL_MLP_TRAIN_LOSS * models,
                          .val_loss = r->history + DL_MLP_VAL_LOSS * models,
                          .train_acc = r->history + DL_MLP_TRAIN_ACCURACY * models,
                          .val_acc = r->history + DL_MLP_VAL_ACCURACY * models};
        DL_TRY(dl_out_figure_mlp(out, "figure2_learning_curves", &fig));
    }
    if (r->models > 1) {
        /* Accuracy takes the values k / n_val: with few validation rows,
         * one bar per possible value, centred on it. */
        double half = r->n_val <= 100 ? 0.5 / r->n_val : 0.0;
        int bins = r->n_val <= 100 ? r->n_val + 1 : 50;
        dl_fig_histogram hist = {.values = r->val_accuracy,
                                 .n = r->models,
                                 .lo = -half,
                                 .hi = 1.0 + half,
                                 .bins = bins,
                                 .band_lo = LAB_BAND_LO,
                                 .band_hi = LAB_BAND_HI,
                                 .xlabel = "final validation accuracy (shaded: 40-55 %)",
                                 .title = "Validation accuracy over seeds"};
        DL_TRY(dl_out_figure_histogram(out, "figure3_seeds_histogram", &hist));
    }
    DL_TRY(write_model_files(out, a));
    const lab_band band = in_lab_band(r);
    dl_html_mlp page = {.source = a->source,
                        .cfg = a->cfg,
                        .r = r,
                        .backend = a->c->be->name,
                        .device = a->c->be->device,
                        .class_names = a->d->class_names,
                        .confusion = a->fm->confusion,
                        .confusion_note = a->fm->note,
                        .band_lo = LAB_BAND_LO,
                        .band_hi = LAB_BAND_HI,
                        .in_band = band.in,
                        .measured = band.measured,
                        .out = out};
    DL_TRY(dl_out_write(out, "report.html", dl_html_write_mlp, &page));
    return dl_out_summary(out, json_writer, a);
}

/* With --seeds N > 1: the spread of the final validation accuracy. */
static void write_seed_spread(FILE *f, const dl_mlp_result *r, int epochs)
{
    dl_stats st;
    dl_stats_compute(r->val_accuracy, r->models, 1, &st);
    dl_print_stats(f, "validation accuracy", &st, "%.3f");
    /* The sweep stops as one: a model's divergence (or a stop request) ends
     * every model's training at that chunk, so these are not the figures
     * of full runs. */
    if (r->epochs_run < epochs && r->epochs_run > 0)
        fprintf(f, "  (every model stopped after epoch %d of %d, when training stopped: %s)\n",
                r->epochs_run, epochs,
                r->stop.kind == DL_STOP_DIVERGED ? "a model diverged" : "interrupted");
    const lab_band band = in_lab_band(r);
    fprintf(f, "  runs at %.0f-%.0f %%       ", 100 * LAB_BAND_LO, 100 * LAB_BAND_HI);
    if (band.measured == 0)
        fprintf(f, "not measured: %s\n",
                r->epochs_run == 0 ? "no epoch finished" : "every run diverged");
    else if (band.measured < r->models)
        fprintf(f, "%d of %d runs with an accuracy (%.1f %%); the other %d diverged\n", band.in,
                band.measured, 100.0 * band.in / band.measured, r->models - band.measured);
    else
        fprintf(f, "%d of %d (%.1f %%)\n", band.in, r->models, 100.0 * band.in / r->models);
    dl_print_histogram(f, r->val_accuracy, r->models, 1, 0.0, 1.0, 20, "%.2f");
}

/* A split's final loss and accuracy; a loss that is not finite leaves the
 * accuracy undefined (its NaN), and a huge finite loss reads in %g. */
static void write_split(FILE *f, const char *name, float loss, float acc, const char *tail)
{
    fprintf(f, "  %s           loss ", name);
    if (isfinite(loss) && fabsf(loss) < 1e6f)
        fprintf(f, "%.6f", (double)loss);
    else if (isfinite(loss))
        fprintf(f, "%g", (double)loss);
    else
        fprintf(f, "not finite");
    if (isfinite(acc))
        fprintf(f, "  accuracy %.4f%s\n", (double)acc, tail);
    else
        fprintf(f, "  accuracy undefined: %s%s\n",
                isfinite(loss) ? "no epoch finished" : "the loss is not finite (diverged)", tail);
}

static void write_text(FILE *f, const dl_cmd *c, const char *source, const dl_mlp_config *cfg,
                       const dl_mlp_result *r, const dl_dataset *d, const first_model *fm,
                       const dl_out *out)
{
    fprintf(f, "mlp %s: %d feature%s, %d classes, %d training / %d validation row%s\n", source,
            r->features, dl_plural(r->features), r->classes, r->n_train, r->n_val,
            dl_plural(r->n_val));
    fprintf(f, "  model                %d-%d-%d, %s preset, %s", r->features, r->hidden, r->classes,
            cfg->preset == DL_MLP_LAB ? "lab" : "careful", optim_name(cfg->optim));
    if (cfg->optim == DL_OPTIM_MOMENTUM) fprintf(f, " %g", (double)cfg->momentum);
    fprintf(f, ", lr %g, %d epoch%s, batch %d%s, seed %llu\n", (double)cfg->lr, cfg->epochs,
            dl_plural(cfg->epochs), r->batch, r->batch == r->n_train ? " (full)" : "",
            (unsigned long long)cfg->seed);
    fprintf(f, "  backend              %s (%s)\n", c->be->name, c->be->device);
    const int ranks = c->be->comm ? dl_comm_size(c->be->comm) : 1;
    if (ranks > 1) fprintf(f, "  MPI ranks            %d  (the seeds split over them)\n", ranks);
    write_split(f, "training  ", r->train_loss[0], r->train_accuracy[0],
                r->epochs_run < cfg->epochs ? "  (stopped early)" : "");
    write_split(f, "validation", r->val_loss[0], r->val_accuracy[0], "");
    if (r->best_epoch[0] > 0)
        fprintf(f, "  best validation      accuracy %.4f at epoch %d\n",
                (double)dl_mlp_history(r, r->best_epoch[0] - 1, DL_MLP_VAL_ACCURACY, 0),
                r->best_epoch[0]);
    if (fm->confusion)
        dl_print_confusion(f, "validation confusion matrix", fm->confusion, r->classes,
                           d->class_names);
    else {
        fprintf(f, "  confusion matrix     none: %s\n", fm->note);
        if (out->dir) fprintf(f, "  model.json, predictions.csv  not written: %s\n", fm->note);
    }
    if (r->models > 1) write_seed_spread(f, r, cfg->epochs);
    fprintf(f, "  training time        %.3f ms  (%d epoch%s, %.2f us/epoch, %s path)\n",
            r->train_seconds * 1e3, r->epochs_run, dl_plural(r->epochs_run),
            r->epochs_run ? r->train_seconds * 1e6 / r->epochs_run : 0.0,
            r->fused ? "fused" : "general");
}

/* Bad data gets the file's name in front of the library's message. */
static dl_status name_the_file(dl_status st, const char *path)
{
    if (st != DL_E_INPUT) return st;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", dl_errmsg());
    return DL_FAIL(st, "%s: %s", path, msg);
}

dl_status dl_cmd_mlp(dl_cmd *c)
{
    dl_mlp_config cfg = config_from_options(c);
    const char *path = c->opt->data ? c->opt->data : dl_default_data_path();
    /* Over several ranks every rank reads the file and trains its block of
     * the seeds; rank 0 alone speaks. */
    dl_comm *comm = c->be->comm;
    const int ranks = comm ? dl_comm_size(comm) : 1;
    const bool root = !comm || dl_comm_rank(comm) == 0;
    if (!root) cfg.loop.progress = NULL;
    dl_dataset d = {0};
    dl_status st = dl_cmd_load_data(c, path, true, &d);
    if (ranks > 1) st = dl_comm_agree(comm, st);
    if (st != DL_OK) return st;
    dl_status split = dl_cmd_train_rows(c, d.rows, &cfg.train);
    if (split != DL_OK) {
        dl_dataset_free(&d);
        return split;
    }
    dl_mlp_result r;
    dl_out out;
    dl_out_init(&out, c->opt->out, dl_out_names_mlp);
    st = name_the_file(dl_mlp_validate(&d, &cfg), path);
    dl_out_keep(&out, "--data", path);
    if (st == DL_OK && root) st = dl_out_prepare(&out, c->opt->force);
    if (ranks > 1) st = dl_comm_agree(comm, st);
    if (st == DL_OK)
        st = ranks > 1 ? dl_mlp_split_seeds(c->be, &d, &cfg, &r) : dl_mlp_run(c->be, &d, &cfg, &r);
    if (st != DL_OK) {
        dl_out_discard(&out); /* a refused or failed run leaves no empty --out */
        dl_dataset_free(&d);
        return st;
    }
    if (c->progress && root) c->progress(c->progress_ud, NULL);
    if (!root) {
        st = dl_stop_status(&r.stop);
        dl_mlp_result_free(&r);
        dl_dataset_free(&d);
        return st;
    }
    first_model fm = {0};
    dl_status wst = apply_first_model(c->be, &d, &cfg, &r, &fm);
    json_args ja = {.c = c, .source = path, .cfg = &cfg, .r = &r, .d = &d, .fm = &fm, .out = &out};
    if (wst == DL_OK && out.dir) wst = write_files(&out, &ja);
    if (wst != DL_OK) dl_out_discard(&out); /* a folder it made that holds nothing goes */
    write_text(c->text, c, path, &cfg, &r, &d, &fm, &out);
    dl_out_text(c->text, &out);
    if (c->opt->json) json_writer(stdout, &ja);
    fflush(stdout);
    if (r.warning[0]) fprintf(stderr, "dlab-gpu: warning: %s\n", r.warning);
    first_model_free(&fm);
    dl_dataset_free(&d);
    /* A file that could not be written outranks the stop. */
    st = wst != DL_OK ? wst : dl_stop_status(&r.stop);
    dl_mlp_result_free(&r);
    return st;
}
