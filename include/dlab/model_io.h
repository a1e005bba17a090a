/* model.json: a trained classifier as a file that holds everything needed to
 * apply it elsewhere, and the checks that a data file fits it.
 *
 * The file is one JSON object (RFC 8259):
 *   "format": "dlab-gpu-mlp", "version": 1
 *   "feature_names": [F names]   the data columns, in order; from the
 *                                training file's header row, or "column 1",
 *                                ... when it had none ("feature_names_from":
 *                                "header" or "position")
 *   "classes": [C names]         in output order: logit j is classes[j]
 *   "input_mean", "input_scale": [F numbers], x' = (x - input_mean) / input_scale
 *                                (the lab preset's scale is the variance of
 *                                each column, the careful preset's the
 *                                standard deviation of the training split)
 *   "activation": "relu", "output": "softmax"
 *   "layers": [{"W": F rows of H, "b": H}, {"W": H rows of C, "b": C}]
 *                                h = relu(x' W1 + b1), logits = h W2 + b2
 *   "training": how the model was trained (informative only)
 * Weights are float32 values written so that they read back exactly;
 * the transform's numbers are doubles written the same way.
 */
#ifndef DLAB_MODEL_IO_H
#define DLAB_MODEL_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dlab/data.h"
#include "dlab/predict.h"

#define DL_MODEL_FORMAT  "dlab-gpu-mlp"
#define DL_MODEL_VERSION 1

typedef struct {
    int features, hidden, classes;
    char **feature_names; /* features names, or NULL: "column 1", ... */
    bool named_features;  /* feature_names came from a header row */
    char **class_names;   /* classes names */
    double *input_mean, *input_scale;
    float *params; /* dl_mlp_param_count(features, hidden, classes), layout of mlp.h */
} dl_model;

/* What model.json records about the training besides the model itself. */
typedef struct {
    const dl_model *model;
    const char *preset, *optim, *data;
    double lr;
    int epochs_run, train_rows, validation_rows;
    uint64_t seed;
    double train_accuracy, val_accuracy;
} dl_model_record;

/* Writes a dl_model_record as model.json: a dl_write_fn. */
dl_status dl_model_write(FILE *f, const void *record);

/* Reads and checks model.json. Every failure is DL_E_INPUT with one line
 * naming the file: unreadable, not JSON (with line and column), not a model
 * of this format and version, or a field missing or of the wrong shape (the
 * message names the field). On success `out` owns its arrays (dl_model_free;
 * feature_names is always set). */
dl_status dl_model_read(const char *path, dl_model *out);
void dl_model_free(dl_model *m);

/* The model as predict.h applies it (pointers into m). */
dl_mlp_model dl_model_view(const dl_model *m);

/* Checks that the data d (loaded from data_path) fits the model: the same
 * number of feature columns and, when both the model and the data name their
 * columns from a header row, the same names in the same order. With labels,
 * labels_out (d->rows) receives each row's class in the model's order;
 * a label the model does not know is an error. DL_E_INPUT with one line
 * naming both files otherwise. */
dl_status dl_model_check_data(const dl_model *m, const char *model_path, const dl_dataset *d,
                              const char *data_path, int32_t *labels_out);

#endif
