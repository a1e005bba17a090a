/* Private to host/data: what the text reader (data.c) and the .npy reader
 * (npy.c) share. */
#ifndef DLAB_HOST_DATA_LOADER_H
#define DLAB_HOST_DATA_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "dlab/data.h"

/* A double as float32, rounded to nearest. */
typedef enum {
    DL_F32_OK = 0,
    DL_F32_NONFINITE, /* NaN or an infinity */
    DL_F32_TOO_LARGE, /* rounds to infinity: |v| >= 2^128 - 2^103 */
    DL_F32_TOO_SMALL, /* nonzero, rounds to zero: |v| <= 2^-150 */
} dl_f32_result;
dl_f32_result dl_f32_from_double(double v, float *out);

/* Resolves a --columns list against `ncols` columns (header names in
 * `names`, or NULL when there is none) into sel[0..ncols). An open range
 * ("3-") stops short of the label column `label` (-1: none); naming it
 * otherwise is an error. DL_E_USAGE with a message naming --columns on an
 * empty item, an empty range, a column out of range, an unknown name or the
 * label column. */
dl_status dl_columns_resolve(const char *list, int ncols, char *const *names, int label, bool *sel);

/* Does the buffer start with numpy's magic string "\x93NUMPY"? */
bool dl_npy_magic(const char *b, size_t len);

/* Reads a .npy array (format 1.0, 2.0 or 3.0; '<f4', '>f4', '<f8' or '>f8';
 * C or Fortran order; 2-D) into `out` (no labels). `opt` may select columns
 * by number; options that describe text files are refused. */
dl_status dl_npy_parse(const unsigned char *b, size_t len, const char *name,
                       const dl_load_options *opt, dl_dataset *out);

#endif
