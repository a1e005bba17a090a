/* Private to host/data: what the text reader (data.c, data_layout.c,
 * data_number.c) and the .npy reader (npy.c) share. */
#ifndef DLAB_HOST_DATA_LOADER_H
#define DLAB_HOST_DATA_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <csv.h>

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

/* --- delimited text: shared between data.c, data_layout.c and data_number.c */

#define SAMPLE_ROWS 64 /* rows looked at before the layout is settled */

typedef struct {
    const char *p;
    size_t n;
} span;

static inline bool blank_char(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

static inline span trim(span s)
{
    while (s.n && blank_char(s.p[0])) s.p++, s.n--;
    while (s.n && blank_char(s.p[s.n - 1])) s.n--;
    return s;
}

typedef enum {
    NUM_OK,
    NUM_EMPTY,
    NUM_BAD,
    NUM_HEX,       /* 0x1A: strtod reads it, Python's float() and numpy do not */
    NUM_NONFINITE, /* inf, nan */
    NUM_MISSING,   /* NA, ?, null: a missing-value marker */
    NUM_COMMA,     /* 5,1: a decimal comma */
    NUM_RANGE,     /* rounds to infinity in float32 */
    NUM_TINY,      /* nonzero, rounds to zero in float32 */
} num_result;

typedef struct {
    size_t off, len; /* into the row's bytes */
    size_t line;     /* where the field starts */
    bool empty;      /* no characters (quoted "" included) */
} field;

typedef struct {
    size_t line; /* of the first field */
    int nf;
    field *f;
    char *buf;
} row;

static inline span fs(const row *r, int j) { return (span){r->buf + r->f[j].off, r->f[j].len}; }

/* A class-name table: open addressing on FNV-1a, so a label column with
 * many distinct values stays linear. */
typedef struct {
    int32_t *slot; /* class id + 1, 0 empty */
    size_t cap;
} class_table;

typedef struct {
    const char *name;
    dl_dataset *d;
    const dl_load_options *opt;
    struct csv_parser p;
    dl_delimiter delim;
    bool delim_guessed, comma_fits;
    bool in_quote; /* whitespace mode's own quote tracking, to spare tabs in quotes */
    char *scratch; /* whitespace mode: the chunk with tabs made spaces */
    size_t scratch_cap;
    size_t line;       /* line of the chunk being parsed */
    size_t quote_line; /* where a quoted field still open began */
    row cur;           /* the row being collected */
    int fcap;
    size_t bcap;
    bool failed;
    dl_status st;
    /* the first rows, until the layout is settled */
    row sample[SAMPLE_ROWS];
    int n_sample;
    bool settled;
    /* the layout */
    bool header;
    int header_nf;
    int expect;    /* fields in a data row, a trailing empty one included */
    bool trailing; /* every row ends with a delimiter */
    int ncols;     /* columns without the trailing empty one */
    int label;     /* column index, or -1 */
    bool *sel;     /* ncols: feature columns */
    size_t cap_rows;
    class_table classes;
    bool codes_noted; /* the note lists the last column's whole numbers (then a feature) */
} reader;

/* Records the first failure; always false, for `return FAIL(...)`. */
bool dl_reader_fail(reader *r, dl_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#define FAIL(code, ...) dl_reader_fail(r, code, __VA_ARGS__)
#define OOM()           dl_reader_fail(r, DL_E_INPUT, "%s: out of memory reading the file", r->name)

/* data.c */
const char *dl_show(span s, char *buf, size_t len);
char *dl_dup_span(span s);
bool dl_add_row(reader *r, const row *w);

/* data_number.c */
num_result dl_parse_number(span s, float *out);
bool dl_number_like(span s);
bool dl_integer_text(span s, long *v);
const char *dl_num_message(num_result nr);

/* data_layout.c */
const char *dl_delim_words(dl_delimiter d);
dl_delimiter dl_detect_delimiter(const char *t, size_t len, bool *guessed, bool *comma_fits);
bool dl_settle(reader *r);
void dl_relist_codes(dl_dataset *d);

/* Does the buffer start with numpy's magic string "\x93NUMPY"? */
bool dl_npy_magic(const char *b, size_t len);

/* Reads a .npy array (format 1.0, 2.0 or 3.0; '<f4', '>f4', '<f8' or '>f8';
 * C or Fortran order; 2-D) into `out` (no labels). `opt` may select columns
 * by number; options that describe text files are refused. */
dl_status dl_npy_parse(const unsigned char *b, size_t len, const char *name,
                       const dl_load_options *opt, dl_dataset *out);

/* Reads part `part` of `parts` of a .npy file's rows (dl_comm_shard's
 * blocks): the header, checked against the file's size, then only those
 * rows (a Fortran-order file is read whole and the rows kept). *is_npy is
 * false, and nothing is read, when the file is not a .npy array. */
dl_status dl_npy_load_block(const char *path, const dl_load_options *opt, int parts, int part,
                            bool *is_npy, int *total_rows, int *first, dl_dataset *out);

#endif
