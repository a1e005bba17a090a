/* Writing NumPy .npy files: float32 arrays that numpy.load reads as they are.
 *
 * The format is NumPy's "NPY format, version 1.0" (numpy.lib.format): the
 * magic "\x93NUMPY", the version bytes 1 0, a little-endian uint16 header
 * length, then an ASCII Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (m, n), }
 * padded with spaces and ended by '\n' so that the data starts at a multiple
 * of 64 bytes, then the values in C (row-major) order, little-endian.
 */
#ifndef DLAB_NPY_WRITE_H
#define DLAB_NPY_WRITE_H

#include <stddef.h>
#include <stdio.h>

#include "dlab/status.h"

/* A float32 array to write: 1-D (shape[0] values) or 2-D (shape[0] rows of
 * shape[1] values). Row i of a 2-D array starts at data + i*ld (ld >= shape[1];
 * 0 means packed), so the leading columns of a wider matrix can be written
 * without a copy. */
typedef struct {
    const float *data;
    int ndim; /* 1 or 2 */
    size_t shape[2];
    size_t ld;
} dl_npy_array;

/* Writes `a` (a const dl_npy_array *) to f as a .npy file: a dl_write_fn.
 * DL_E_USAGE for a rank other than 1 or 2; output errors are left for the
 * caller to find on the stream. */
dl_status dl_npy_write(FILE *f, const void *a);

/* The same array as CSV: a header row "NAME1,NAME2,..." (prefix followed by
 * the 1-based column number), then one line per row, values in %.9g (which
 * reads back as the same float32), non-finite values as nan, inf, -inf. A
 * 1-D array is one column. `a->data` etc. as for dl_npy_write. */
typedef struct {
    dl_npy_array array;
    const char *prefix; /* e.g. "u" gives "u1,u2,..." */
} dl_csv_matrix;

dl_status dl_csv_write_matrix(FILE *f, const void *m); /* a dl_write_fn */

#endif
