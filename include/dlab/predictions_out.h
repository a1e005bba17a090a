/* Reporting a classifier's predictions: predictions.csv, and the confusion
 * matrix as JSON and as text. */
#ifndef DLAB_PREDICTIONS_OUT_H
#define DLAB_PREDICTIONS_OUT_H

#include <stdint.h>
#include <stdio.h>

#include "dlab/json.h"
#include "dlab/predict.h"

/* predictions.csv: a header row, then one line per data row in data order:
 *   row        the 1-based data row (header and blank lines not counted)
 *   split      train or validation (only when `split` is given)
 *   label      the row's class name (empty when the data has no labels)
 *   predicted  the predicted class name
 *   p_NAME     one probability per class, in the model's output order
 * Fields that need it are quoted as RFC 4180 says. */
typedef struct {
    const dl_predictions *p;
    char *const *class_names; /* p->classes names */
    const int32_t *labels;    /* p->rows class ids in the model's order, or NULL */
    const uint8_t *split;     /* p->rows: 0 train, 1 validation; NULL: no split column */
} dl_predictions_csv;

dl_status dl_predictions_csv_write(FILE *f, const void *csv); /* a dl_write_fn */

/* "key": [[...], ...]: counts (classes x classes) row by row, rows the true
 * class, columns the predicted one; null when counts is NULL. */
void dl_json_confusion(dl_json *j, const char *key, const int *counts, int classes);

/* The matrix as a text table under a title line, every column as wide as
 * the longest class name (in UTF-8 characters; at most 40, a longer name cut
 * to 39 and an ellipsis) or the largest count:
 *   validation confusion matrix (rows: true class, columns: predicted)
 *                          Iris-setosa  Iris-versicolor  ...
 *     Iris-setosa                   17                0  ... */
void dl_print_confusion(FILE *f, const char *title, const int *counts, int classes,
                        char *const *class_names);

#endif
