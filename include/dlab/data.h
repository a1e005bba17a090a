/* Tabular data: UCI-style files (numeric columns and an optional trailing
 * label column, no header) and plain numeric CSV with an optional header row. */
#ifndef DLAB_DATA_H
#define DLAB_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "dlab/status.h"

typedef struct {
    int rows, cols;  /* numeric feature columns */
    float *x;        /* rows x cols, row-major */
    int32_t *labels; /* rows class ids, or NULL when there is no label column */
    int n_classes;
    char **class_names; /* n_classes names, in order of first appearance */
    char **col_names;   /* cols names from a header row, or NULL */
} dl_dataset;

/* Loads a file. Every failure is DL_E_INPUT with a one-line message naming
 * the file and, where there is one, the line and column. */
dl_status dl_dataset_load(const char *path, dl_dataset *out);

/* Parses text already in memory; `name` is used in messages. */
dl_status dl_dataset_parse(const char *text, size_t len, const char *name, dl_dataset *out);

void dl_dataset_free(dl_dataset *d);

/* Subtracts each column's mean; returns the means in `means` if not NULL. */
void dl_dataset_center(dl_dataset *d, double *means);

#endif
