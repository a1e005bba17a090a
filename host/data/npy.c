/* numpy's .npy format (numpy.lib.format, versions 1.0, 2.0 and 3.0):
 *   "\x93NUMPY", major, minor, the header length (2 bytes little-endian in
 *   1.0, 4 bytes in 2.0 and 3.0), the header: a Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (150, 4), } padded with
 *   spaces to a newline, then the array's bytes.
 * Only what a 2-D float array needs is read; every other header is refused
 * with a message saying what it holds. */
#define _FILE_OFFSET_BITS 64
#define _POSIX_C_SOURCE   200809L
#include "loader.h"
#include "dlab/comm.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the header says, once checked against the file's size. */
typedef struct {
    size_t data_at; /* bytes before the data */
    long long rows, cols;
    size_t item; /* 4 or 8 */
    bool swap, fortran;
    bool complete; /* the whole header was there and passed */
    char shape[96];
} npy_info;

bool dl_npy_magic(const char *b, size_t len) { return len >= 6 && !memcmp(b, "\x93NUMPY", 6); }

typedef struct {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool take(cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted Python string of printable ASCII without escapes (numpy writes
 * none), bounded. */
static bool take_string(cursor *c, char *out, size_t cap)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p < 0x20 || *c->p > 0x7e || n + 1 >= cap) return false;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return false;
    c->p++;
    out[n] = '\0';
    return true;
}

static bool take_word(cursor *c, const char *w)
{
    skip_space(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n)) return false;
    c->p += n;
    return true;
}

#define MAX_DIMS 32

/* A tuple of non-negative integers, as Python prints a shape: (), (n,),
 * (n, m), ... (Python 2 wrote 150L). */
static bool take_shape(cursor *c, long long *dims, int *ndim)
{
    if (!take(c, '(')) return false;
    *ndim = 0;
    for (;;) {
        skip_space(c);
        if (take(c, ')')) return true;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9' || *ndim == MAX_DIMS) return false;
        long long v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return false;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++;
        dims[(*ndim)++] = v;
        if (!take(c, ',')) return take(c, ')');
    }
}

static void shape_text(const long long *dims, int ndim, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", dims[i]);
    if (o < cap) snprintf(buf + o, cap - o, "%s)", ndim == 1 ? "," : "");
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static bool host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reads and checks the header at b (len bytes there, at least the whole
 * header when the file is well formed) of a file of file_len bytes. */
static dl_status npy_header(const unsigned char *b, size_t len, size_t file_len, const char *name,
                            const dl_load_options *opt, npy_info *info)
{
    if (opt->delimiter != DL_DELIM_AUTO)
        return DL_FAIL(DL_E_USAGE, "--delimiter describes text files; %s is a .npy array", name);
    if (opt->header != DL_HEADER_AUTO)
        return DL_FAIL(DL_E_USAGE, "--header describes text files; %s is a .npy array", name);
    if (opt->label_column && strcmp(opt->label_column, "auto") && strcmp(opt->label_column, "none"))
        return DL_FAIL(DL_E_USAGE, "--label-column: %s is a .npy array, which has no label column",
                       name);
    if (file_len < 10)
        return DL_FAIL(DL_E_INPUT, "%s: truncated .npy file (%zu bytes)", name, file_len);
    int major = b[6], minor = b[7];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (file_len < 12)
            return DL_FAIL(DL_E_INPUT, "%s: truncated .npy file (%zu bytes)", name, file_len);
        hlen = le32(b + 8);
        start = 12;
    } else {
        return DL_FAIL(DL_E_INPUT, "%s: .npy format version %d.%d is not read (1.0, 2.0, 3.0 are)",
                       name, major, minor);
    }
    if (hlen > file_len - start)
        return DL_FAIL(DL_E_INPUT,
                       "%s: truncated .npy file: the header says %zu bytes, %zu follow it", name,
                       hlen, file_len - start);
    info->data_at = start + hlen;
    if (len < info->data_at) return DL_OK; /* the caller reads the rest and asks again */

    cursor c = {(const char *)b + start, (const char *)b + start + hlen};
    char descr[64] = "", key[32];
    int fortran = -1, ndim = -1;
    long long dims[MAX_DIMS];
    bool ok = take(&c, '{');
    while (ok && !take(&c, '}')) {
        ok = take_string(&c, key, sizeof key) && take(&c, ':');
        if (!ok) break;
        if (!strcmp(key, "descr")) {
            skip_space(&c);
            if (c.p < c.end && *c.p == '[')
                return DL_FAIL(DL_E_INPUT,
                               "%s: a .npy array of records (a structured dtype) is not read; "
                               "save a 2-D float32 or float64 array",
                               name);
            ok = take_string(&c, descr, sizeof descr);
        } else if (!strcmp(key, "fortran_order")) {
            fortran = take_word(&c, "True") ? 1 : take_word(&c, "False") ? 0 : -1;
            ok = fortran >= 0;
        } else if (!strcmp(key, "shape")) {
            ok = take_shape(&c, dims, &ndim);
        } else {
            return DL_FAIL(DL_E_INPUT, "%s: .npy header has an unknown key '%s'", name, key);
        }
        if (ok && !take(&c, ',')) ok = take(&c, '}') ? (c.p--, true) : false;
    }
    if (!ok)
        return DL_FAIL(DL_E_INPUT, "%s: damaged .npy header (not the dict numpy writes)", name);
    if (!descr[0] || fortran < 0 || ndim < 0)
        return DL_FAIL(DL_E_INPUT, "%s: .npy header lacks '%s'", name,
                       !descr[0]     ? "descr"
                       : fortran < 0 ? "fortran_order"
                                     : "shape");

    size_t item = 0;
    bool swap = false;
    if ((descr[0] == '<' || descr[0] == '>' || descr[0] == '=') && descr[1] == 'f' &&
        (!strcmp(descr + 2, "4") || !strcmp(descr + 2, "8"))) {
        item = descr[2] == '4' ? 4 : 8;
        bool little = descr[0] == '<' || (descr[0] == '=' && host_little_endian());
        swap = little != host_little_endian();
    } else {
        return DL_FAIL(DL_E_INPUT,
                       "%s: .npy dtype '%s' is not read: float32 ('<f4') and float64 ('<f8') are "
                       "(convert with a.astype(numpy.float32))",
                       name, descr);
    }
    char st[96];
    shape_text(dims, ndim, st, sizeof st);
    if (ndim != 2)
        return DL_FAIL(DL_E_INPUT,
                       "%s: .npy array of shape %s has %d dimension%s; a 2-D array (rows, "
                       "columns) is needed",
                       name, st, ndim, ndim == 1 ? "" : "s");
    long long rows = dims[0], cols = dims[1];
    if (cols < 1) return DL_FAIL(DL_E_INPUT, "%s: .npy array of shape %s has no columns", name, st);
    if (rows < 2)
        return DL_FAIL(DL_E_INPUT, "%s: needs at least 2 data rows, found %lld", name, rows);
    if (rows > INT32_MAX / cols)
        return DL_FAIL(DL_E_INPUT, "%s: .npy array of shape %s is too large", name, st);
    size_t count = (size_t)rows * (size_t)cols, have = file_len - start - hlen;
    if (have / item < count)
        return DL_FAIL(DL_E_INPUT,
                       "%s: truncated .npy file: shape %s of float%d needs %zu bytes of data, "
                       "%zu are there",
                       name, st, (int)item * 8, count * item, have);
    if (have > count * item)
        return DL_FAIL(DL_E_INPUT,
                       "%s: .npy file has %zu byte%s after the data (shape %s of float%d needs "
                       "%zu bytes; a damaged file, or several arrays in one?)",
                       name, have - count * item, have - count * item == 1 ? "" : "s", st,
                       (int)item * 8, count * item);
    info->rows = rows, info->cols = cols;
    info->item = item, info->swap = swap, info->fortran = fortran == 1;
    snprintf(info->shape, sizeof info->shape, "%s", st);
    info->complete = true;
    return DL_OK;
}

/* Converts rows [r0, r0 + nr) into out; `data` is the file's data (C order:
 * from row r0 on; Fortran order: all of it, with r0 == 0). */
static dl_status npy_convert(const unsigned char *data, const npy_info *info, long long r0,
                             long long nr, const char *name, const dl_load_options *opt,
                             dl_dataset *out)
{
    const long long rows = info->rows, cols = info->cols;
    const size_t item = info->item;
    const bool fortran = info->fortran, swap = info->swap;
    const char *st = info->shape;
    int ncols = (int)cols;
    bool *sel = malloc((size_t)ncols * sizeof(bool));
    if (!sel) return DL_FAIL(DL_E_INPUT, "%s: out of memory reading the file", name);
    if (opt->columns) {
        dl_status cs = dl_columns_resolve(opt->columns, ncols, NULL, -1, sel);
        if (cs != DL_OK) {
            free(sel);
            return cs;
        }
    } else {
        for (int j = 0; j < ncols; j++) sel[j] = true;
    }
    int kept = 0;
    for (int j = 0; j < ncols; j++) kept += sel[j];
    out->x = malloc(sizeof(float) * ((size_t)nr * (size_t)kept + 1));
    if (!out->x) {
        free(sel);
        return DL_FAIL(DL_E_INPUT, "%s: out of memory for a %s array", name, st);
    }
    for (long long i = r0; i < r0 + nr; i++) {
        for (int j = 0, k = 0; j < ncols; j++) {
            if (!sel[j]) continue;
            size_t at =
                fortran ? (size_t)j * (size_t)rows + (size_t)i : (size_t)(i - r0) * cols + j;
            unsigned char e[8];
            memcpy(e, data + at * item, item);
            if (swap)
                for (size_t a = 0, z = item - 1; a < z; a++, z--) {
                    unsigned char t = e[a];
                    e[a] = e[z];
                    e[z] = t;
                }
            double v;
            if (item == 4) {
                float f;
                memcpy(&f, e, 4);
                v = f;
            } else {
                memcpy(&v, e, 8);
            }
            float *dst = &out->x[(size_t)(i - r0) * kept + k++];
            dl_f32_result r = dl_f32_from_double(v, dst);
            if (r != DL_F32_OK) {
                free(sel);
                free(out->x);
                out->x = NULL;
                return DL_FAIL(DL_E_INPUT, "%s: row %lld, column %d: %s: %.9g", name, i + 1, j + 1,
                               r == DL_F32_NONFINITE   ? "NaN and Inf are not allowed"
                               : r == DL_F32_TOO_LARGE ? "number out of float range (float32 "
                                                         "holds magnitudes up to 3.4e38)"
                                                       : "number out of float range (it is "
                                                         "nonzero but rounds to 0 in float32)",
                               v);
            }
        }
    }
    free(sel);
    out->rows = (int)nr;
    out->cols = kept;
    out->format = DL_FORMAT_NPY;
    return DL_OK;
}

dl_status dl_npy_parse(const unsigned char *b, size_t len, const char *name,
                       const dl_load_options *opt, dl_dataset *out)
{
    memset(out, 0, sizeof *out);
    npy_info info = {0};
    DL_TRY(npy_header(b, len, len, name, opt, &info));
    return npy_convert(b + info.data_at, &info, 0, info.rows, name, opt, out);
}

/* Reads n bytes at offset `at` of f; false on a short read. */
static bool read_at(FILE *f, long long at, void *buf, size_t n)
{
    return fseeko(f, (off_t)at, SEEK_SET) == 0 && fread(buf, 1, n, f) == n;
}

dl_status dl_npy_load_block(const char *path, const dl_load_options *opt, int parts, int part,
                            bool *is_npy, int *total_rows, int *first, dl_dataset *out)
{
    memset(out, 0, sizeof *out);
    *is_npy = false;
    FILE *f = fopen(path, "rb");
    if (!f) return DL_FAIL(DL_E_INPUT, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[12];
    size_t got = fread(head, 1, sizeof head, f);
    long long size = -1;
    if (fseeko(f, 0, SEEK_END) == 0) size = (long long)ftello(f);
    if (!dl_npy_magic((const char *)head, got)) {
        fclose(f);
        return DL_OK;
    }
    *is_npy = true;
    if (size < 0) {
        fclose(f);
        return DL_FAIL(DL_E_INPUT, "%s: cannot read: %s", path, strerror(errno));
    }
    npy_info info = {0};
    dl_status st = npy_header(head, got, (size_t)size, path, opt, &info);
    unsigned char *hb = NULL;
    if (st == DL_OK && !info.complete) { /* the header's text is past the first bytes */
        hb = malloc(info.data_at);
        if (!hb)
            st = DL_FAIL(DL_E_INPUT, "%s: out of memory reading the file", path);
        else if (!read_at(f, 0, hb, info.data_at))
            st = DL_FAIL(DL_E_INPUT, "%s: cannot read the .npy header", path);
        else
            st = npy_header(hb, info.data_at, (size_t)size, path, opt, &info);
    }
    free(hb);
    if (st == DL_OK && info.fortran) {
        /* Column-major: a block of rows is spread over the whole file, so
         * the file is read whole and this part's rows kept. */
        fclose(f);
        DL_TRY(dl_dataset_load_opts(path, opt, out));
        dl_comm_shard(out->rows, parts, part, first, &out->rows);
        *total_rows = (int)info.rows;
        memmove(out->x, out->x + (size_t)*first * out->cols,
                sizeof(float) * (size_t)out->rows * out->cols);
        return DL_OK;
    }
    int count = 0;
    unsigned char *data = NULL;
    if (st == DL_OK) {
        dl_comm_shard((int)info.rows, parts, part, first, &count);
        const size_t row_bytes = (size_t)info.cols * info.item, bytes = (size_t)count * row_bytes;
        data = malloc(bytes ? bytes : 1);
        if (!data)
            st = DL_FAIL(DL_E_INPUT, "%s: out of memory for %d rows of a %s array", path, count,
                         info.shape);
        else if (bytes &&
                 !read_at(f, (long long)info.data_at + (long long)*first * (long long)row_bytes,
                          data, bytes))
            st = DL_FAIL(DL_E_INPUT,
                         "%s: truncated .npy file: rows %d to %d of shape %s could not be read "
                         "(%s)",
                         path, *first + 1, *first + count, info.shape,
                         ferror(f) ? strerror(errno) : "the file ended; did it change?");
    }
    fclose(f);
    if (st == DL_OK) st = npy_convert(data, &info, *first, count, path, opt, out);
    free(data);
    if (st == DL_OK) *total_rows = (int)info.rows;
    return st;
}
