/* Applying a trained one-hidden-layer classifier (see mlp.h) to data rows.
 *
 * For raw rows x (features values each) the model computes
 *   x' = (x - input_mean) / input_scale           per feature, on the host
 *   h = relu(x' W1 + b1),  logits = h W2 + b2      on the backend (gemm, bias_act)
 *   p = softmax(logits)                            on the host, in double
 * and predicts the class of the first largest logit (ties go to the lower
 * class id, as the training's accuracy counts them). A row with a logit that
 * is not finite has no defined class: it is predicted -1 and counted in
 * non_finite. x' is computed as
 * (float)((x - mean) * (1.0 / scale)) in double, exactly as training scales
 * its inputs, so a model applied to its own training rows reproduces the
 * accuracies training reported.
 */
#ifndef DLAB_PREDICT_H
#define DLAB_PREDICT_H

#include <stdint.h>

#include "dlab/backend.h"

typedef struct {
    int features, hidden, classes;
    const double *input_mean;  /* features */
    const double *input_scale; /* features, each finite and > 0 */
    /* dl_mlp_param_count(features, hidden, classes) floats in the layout of
     * mlp.h: W1 (features x hidden, row-major) | b1 | W2 (hidden x classes) | b2 */
    const float *params;
} dl_mlp_model;

typedef struct {
    int rows, classes;
    int32_t *predicted; /* rows class ids; -1 for a row whose logits are not
                           all finite (the weights overflow float32 there) */
    float *prob;        /* rows x classes softmax probabilities; a row whose
                           logits are not all finite holds NaN */
    float *logits;      /* rows x classes */
    int non_finite;     /* rows whose logits are not all finite */
} dl_predictions;

/* Applies `m` to the row-major rows x cols host matrix x on `be`. Checks
 * that the shapes are positive and that the buffers fit the backend
 * (DL_E_USAGE, DL_E_MEMORY); device failures are DL_E_RUNTIME. On success
 * `out` owns its arrays (dl_predictions_free). */
dl_status dl_mlp_predict(dl_backend *be, const dl_mlp_model *m, const float *x, int rows,
                         dl_predictions *out);
void dl_predictions_free(dl_predictions *p);

/* Adds the rows idx[0..n) (all rows 0..n-1 when idx is NULL) to the
 * confusion matrix counts (classes x classes, row = true class, column =
 * predicted class, zeroed by the caller). Rows whose label is outside
 * [0, classes) are not counted. Returns how many rows were counted. */
int dl_confusion_add(const dl_predictions *p, const int32_t *labels, const int32_t *idx, int n,
                     int *counts);

#endif
