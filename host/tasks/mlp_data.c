/* The MLP task's configuration and data preparation, on the host: the
 * presets' defaults, the checks of a configuration against the data, and
 * one shuffled, scaled training/validation split per model. The network
 * and its training are in mlp.c. */
#include "dlab/mlp.h"
#include "dlab/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- configuration ------------------------------------------------------- */

dl_mlp_config dl_mlp_defaults(dl_mlp_preset preset)
{
    dl_mlp_config cfg = {.preset = preset,
                         .hidden = 12,
                         .momentum = 0.9f,
                         .batch = 0,
                         .train = 100,
                         .seed = 1,
                         .seeds = 1,
                         .fused = DL_FUSED_AUTO};
    if (preset == DL_MLP_LAB) {
        cfg.optim = DL_OPTIM_SGD;
        cfg.lr = 0.01f;
        cfg.epochs = 100;
    } else {
        cfg.optim = DL_OPTIM_MOMENTUM;
        cfg.lr = 0.05f;
        cfg.epochs = 300;
    }
    return cfg;
}

dl_status dl_mlp_check_config(const dl_mlp_config *cfg)
{
    if (cfg->preset != DL_MLP_LAB && cfg->preset != DL_MLP_CAREFUL)
        return DL_FAIL(DL_E_USAGE, "unknown MLP preset %d", (int)cfg->preset);
    if (cfg->optim != DL_OPTIM_SGD && cfg->optim != DL_OPTIM_MOMENTUM &&
        cfg->optim != DL_OPTIM_ADAM)
        return DL_FAIL(DL_E_USAGE, "unknown optimiser %d", (int)cfg->optim);
    if (cfg->hidden < 1)
        return DL_FAIL(DL_E_USAGE, "--hidden must be at least 1 (got %d)", cfg->hidden);
    if (cfg->epochs < 1)
        return DL_FAIL(DL_E_USAGE, "--epochs must be at least 1 (got %d)", cfg->epochs);
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return DL_FAIL(DL_E_USAGE, "--lr must be a positive finite number (got %g)",
                       (double)cfg->lr);
    if (!(cfg->momentum >= 0.0f && cfg->momentum < 1.0f))
        return DL_FAIL(DL_E_USAGE, "--momentum must be in [0, 1) (got %g)", (double)cfg->momentum);
    if (cfg->batch < 0)
        return DL_FAIL(DL_E_USAGE, "--batch must be at least 1 (got %d)", cfg->batch);
    if (cfg->seeds < 1)
        return DL_FAIL(DL_E_USAGE, "--seeds must be at least 1 (got %d)", cfg->seeds);
    return DL_OK;
}

dl_status dl_mlp_validate(const dl_dataset *d, const dl_mlp_config *cfg)
{
    if (!d->labels)
        return DL_FAIL(DL_E_INPUT, "the data has no label column; --task mlp needs a class "
                                   "label: a text last column, or --label-column N|NAME|last "
                                   "for integer class codes");
    if (d->n_classes < 2)
        return DL_FAIL(DL_E_INPUT,
                       "every row has the same label ('%s'); --task mlp needs at "
                       "least two classes",
                       d->class_names ? d->class_names[0] : "?");
    if (d->cols < 1) return DL_FAIL(DL_E_INPUT, "the data has no feature columns");
    DL_TRY(dl_mlp_check_config(cfg));
    if (cfg->train < 1)
        return DL_FAIL(DL_E_USAGE, "--train %d leaves no training rows (need at least 1)",
                       cfg->train);
    if (cfg->train >= d->rows)
        return DL_FAIL(DL_E_USAGE,
                       "--train %d leaves no validation rows: the data has %d rows "
                       "(use at most %d)",
                       cfg->train, d->rows, d->rows - 1);
    return DL_OK;
}

/* --- data preparation (host) ------------------------------------------- */

/* Per-column statistics of the rows idx[0..n): the population mean, and
 * the divisor the inputs are scaled by, the standard deviation (by_std) or
 * the variance (the lab's choice). A constant column keeps divisor 1. */
static void column_stats(const dl_dataset *d, const int32_t *idx, int n, bool by_std, double *mean,
                         double *divisor)
{
    for (int j = 0; j < d->cols; j++) {
        double mu = 0.0, var = 0.0;
        for (int i = 0; i < n; i++) mu += d->x[(size_t)idx[i] * d->cols + j];
        mu /= n;
        for (int i = 0; i < n; i++) {
            double dx = d->x[(size_t)idx[i] * d->cols + j] - mu;
            var += dx * dx;
        }
        var /= n;
        mean[j] = mu;
        divisor[j] = var > 0.0 ? (by_std ? sqrt(var) : var) : 1.0;
    }
}

/* Per-column shift and scale: x' = (x - shift) * scale, scale = 1/divisor. */
static void column_scaling(const dl_dataset *d, const int32_t *idx, int n, bool by_std,
                           double *shift, double *scale)
{
    column_stats(d, idx, n, by_std, shift, scale);
    for (int j = 0; j < d->cols; j++) scale[j] = 1.0 / scale[j];
}

/* Copies the rows idx[0..n), scaled, and their labels. */
static void gather_rows(const dl_dataset *d, const int32_t *idx, int n, const double *shift,
                        const double *scale, float *x, int32_t *y)
{
    for (int i = 0; i < n; i++) {
        const float *src = d->x + (size_t)idx[i] * d->cols;
        for (int j = 0; j < d->cols; j++)
            x[(size_t)i * d->cols + j] = (float)((src[j] - shift[j]) * scale[j]);
        y[i] = d->labels[idx[i]];
    }
}

void dl_mlp_data_free(dl_mlp_data *data)
{
    if (!data) return;
    free(data->x_train), free(data->y_train), free(data->x_val), free(data->y_val);
    memset(data, 0, sizeof *data);
}

dl_status dl_mlp_prepare(const dl_dataset *d, const dl_mlp_config *cfg, dl_mlp_data *out)
{
    memset(out, 0, sizeof *out);
    DL_TRY(dl_mlp_validate(d, cfg));
    const int S = cfg->seeds, N = d->rows, D = d->cols, ntr = cfg->train, nva = N - ntr;
    *out = (dl_mlp_data){
        .models = S, .features = D, .classes = d->n_classes, .n_train = ntr, .n_val = nva};
    out->x_train = malloc(sizeof(float) * (size_t)S * ntr * D);
    out->y_train = malloc(sizeof(int32_t) * (size_t)S * ntr);
    out->x_val = malloc(sizeof(float) * (size_t)S * nva * D);
    out->y_val = malloc(sizeof(int32_t) * (size_t)S * nva);
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)N);
    double *shift = malloc(sizeof(double) * (size_t)D), *scale = malloc(sizeof(double) * (size_t)D);
    if (!out->x_train || !out->y_train || !out->x_val || !out->y_val || !perm || !shift || !scale) {
        free(perm), free(shift), free(scale);
        dl_mlp_data_free(out);
        return DL_FAIL(DL_E_MEMORY, "out of host memory preparing %d shuffles of %d rows", S, N);
    }
    if (cfg->preset == DL_MLP_LAB) { /* statistics of the whole data, shared by every model */
        for (int i = 0; i < N; i++) perm[i] = i;
        column_scaling(d, perm, N, false, shift, scale);
    }
    for (int b = 0; b < S; b++) {
        dl_rng rng;
        dl_rng_seed(&rng, cfg->seed + (uint64_t)b);
        dl_rng_permutation(&rng, perm, (size_t)N);
        if (cfg->preset == DL_MLP_CAREFUL) column_scaling(d, perm, ntr, true, shift, scale);
        gather_rows(d, perm, ntr, shift, scale, out->x_train + (size_t)b * ntr * D,
                    out->y_train + (size_t)b * ntr);
        gather_rows(d, perm + ntr, nva, shift, scale, out->x_val + (size_t)b * nva * D,
                    out->y_val + (size_t)b * nva);
    }
    free(perm), free(shift), free(scale);
    return DL_OK;
}

dl_status dl_mlp_split(const dl_dataset *d, const dl_mlp_config *cfg, int model, int32_t *perm,
                       double *mean, double *scale)
{
    DL_TRY(dl_mlp_validate(d, cfg));
    if (model < 0 || model >= cfg->seeds)
        return DL_FAIL(DL_E_USAGE, "model %d is not among the %d trained", model, cfg->seeds);
    const int N = d->rows;
    if (cfg->preset == DL_MLP_LAB) {
        for (int i = 0; i < N; i++) perm[i] = i;
        column_stats(d, perm, N, false, mean, scale);
    }
    dl_rng rng;
    dl_rng_seed(&rng, cfg->seed + (uint64_t)model);
    dl_rng_permutation(&rng, perm, (size_t)N);
    if (cfg->preset == DL_MLP_CAREFUL) column_stats(d, perm, cfg->train, true, mean, scale);
    return DL_OK;
}

bool dl_mlp_scale_check(const dl_dataset *d, const dl_mlp_config *cfg, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    if (cfg->preset != DL_MLP_LAB || d->rows < 1) return false;
    int worst = -1;
    double worst_spread = 1.0, worst_far = 0.0;
    for (int j = 0; j < d->cols; j++) {
        double mu = 0.0, var = 0.0;
        for (int i = 0; i < d->rows; i++) mu += d->x[(size_t)i * d->cols + j];
        mu /= d->rows;
        for (int i = 0; i < d->rows; i++) {
            double dx = d->x[(size_t)i * d->cols + j] - mu;
            var += dx * dx;
        }
        var /= d->rows;
        if (!(var > 0.0)) continue; /* a constant column is left unscaled */
        double spread = sqrt(var) / var;
        if (spread >= DL_MLP_SPREAD_MIN && spread <= DL_MLP_SPREAD_MAX) continue;
        double far = fabs(log10(spread));
        if (far > worst_far) worst = j, worst_spread = spread, worst_far = far;
    }
    if (worst < 0) return false;
    char name[64];
    if (d->col_names && d->col_names[worst])
        snprintf(name, sizeof name, "'%s'", d->col_names[worst]);
    else
        snprintf(name, sizeof name, "%d", worst + 1);
    snprintf(buf, len,
             "the lab preset divides each feature by its variance, which leaves column %s "
             "(standard deviation %.3g) with inputs of about %.3g instead of about 1, so the "
             "network %s; use the careful preset (--preset careful), which standardises",
             name, 1.0 / worst_spread, worst_spread,
             worst_spread < 1.0 ? "can hardly learn from them" : "is likely to diverge");
    return true;
}
