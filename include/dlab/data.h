/* Tabular data for the tasks: delimited text files (comma, semicolon, tab or
 * whitespace separated, RFC 4180 quoting, with or without a header row and a
 * label column) and numpy .npy arrays, read into a float32 matrix and
 * optional class labels.
 *
 * Text files follow pandas.read_csv and numpy.loadtxt where the two agree:
 * numbers are read as Python's float() reads them ("+1.4", ".5", "3.",
 * "1e-05"; spaces around a field are ignored) and hexadecimal, "inf", "nan",
 * "NA" and other words are refused with file:line: column N. A value is kept
 * as float32: one that rounds to infinity (|x| >= 2^128 - 2^103, about
 * 3.4028236e38) or a nonzero one that rounds to zero (|x| <= 2^-150, about
 * 7.0e-46) is refused the same way; a subnormal float32 (down to about
 * 1.4e-45) is accepted with its reduced precision. */
#ifndef DLAB_DATA_H
#define DLAB_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlab/status.h"

typedef enum { DL_FORMAT_TEXT = 0, DL_FORMAT_NPY } dl_format;

typedef struct {
    int rows, cols;  /* rows and numeric feature columns */
    float *x;        /* rows x cols, row-major */
    int32_t *labels; /* rows class ids, or NULL when there is no label column */
    int n_classes;
    char **class_names; /* n_classes names (the label text), in order of first appearance */
    char **col_names;   /* cols names from a header row, or NULL */
    dl_format format;
    /* One line saying what the loader assumed where it had to guess (the
     * delimiter, a header row, the role of the last column) and which option
     * overrides it; "" when nothing was guessed. The caller shows it. */
    char note[600];
} dl_dataset;

typedef enum {
    DL_DELIM_AUTO = 0,
    DL_DELIM_COMMA,
    DL_DELIM_SEMICOLON,
    DL_DELIM_TAB,
    DL_DELIM_WHITESPACE, /* runs of spaces and tabs, as numpy.loadtxt's default */
} dl_delimiter;

typedef enum { DL_HEADER_AUTO = 0, DL_HEADER_YES, DL_HEADER_NO } dl_header_mode;

/* How to read a text file; all zero (or NULL) means "detect". */
typedef struct {
    dl_delimiter delimiter;
    dl_header_mode header;
    /* NULL or "auto" (the last column when its first value is not a number),
     * "last", "none", a 1-based column number, or a header name. */
    const char *label_column;
    /* NULL (every column but the label) or the feature columns as `cut -f`
     * takes them: comma-separated 1-based numbers, ranges "2-5", "3-" and
     * "-2", and header names; kept in file order. */
    const char *columns;
} dl_load_options;

/* Loads a file: a .npy array when it starts with numpy's magic bytes,
 * otherwise delimited text. `opt` may be NULL (detect everything). Every
 * failure is DL_E_INPUT with a one-line message naming the file and, where
 * there is one, the line and column; an option that does not fit the file
 * (a label name without a header, a column out of range) is DL_E_USAGE. */
dl_status dl_dataset_load_opts(const char *path, const dl_load_options *opt, dl_dataset *out);
dl_status dl_dataset_load(const char *path, dl_dataset *out); /* opt NULL */

/* Reads part `part` of `parts` of a .npy file's rows (dl_comm_shard's
 * blocks): the header, checked against the file's size, then only those
 * rows (a Fortran-order file is read whole and the rows kept). Every
 * check of dl_dataset_load_opts holds and speaks of the file; a bad value
 * names its row in the whole file. *total_rows is the file's rows, *first
 * the block's first. *is_npy is
 * false, and nothing is read, when the file is not a .npy array. */
dl_status dl_npy_load_block(const char *path, const dl_load_options *opt, int parts, int part,
                            bool *is_npy, int *total_rows, int *first, dl_dataset *out);

/* Parses bytes already in memory; `name` is used in messages. */
dl_status dl_dataset_parse_opts(const char *text, size_t len, const char *name,
                                const dl_load_options *opt, dl_dataset *out);
dl_status dl_dataset_parse(const char *text, size_t len, const char *name, dl_dataset *out);

void dl_dataset_free(dl_dataset *d);

/* Subtracts each column's mean; returns the means in `means` if not NULL. */
void dl_dataset_center(dl_dataset *d, double *means);

/* Parse the command-line spellings: --delimiter auto|,|;|tab|space and
 * --header auto|yes|no. DL_E_USAGE naming the option on anything else. */
dl_status dl_delimiter_parse(const char *s, dl_delimiter *out);
dl_status dl_header_parse(const char *s, dl_header_mode *out);

/* Training rows of a split of `rows` rows: `count` when it is > 0, else
 * round(fraction * rows) when fraction is in (0, 1), else round(2 rows / 3)
 * (the lab's 100 of iris's 150). DL_E_USAGE when a fraction leaves no
 * training or no validation row; a count is checked by the task. */
dl_status dl_train_rows(int count, double fraction, int rows, int *train);

#endif
