/* The data loader. It reads the whole file, then walks it line by line with
 * explicit bounds (the text is not NUL-terminated), so a hostile file can at
 * worst produce an error message. */
#include "dlab/data.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL_MAX_FIELD 256 /* longest field quoted back in a message */
#define DL_MAX_FILE  (1ull << 32)

typedef struct {
    const char *p;
    size_t n;
} span;

static span trim(span s)
{
    while (s.n && isspace((unsigned char)s.p[0])) s.p++, s.n--;
    while (s.n && isspace((unsigned char)s.p[s.n - 1])) s.n--;
    if (s.n >= 2 && s.p[0] == '"' && s.p[s.n - 1] == '"') s.p++, s.n -= 2;
    return s;
}

/* Quotes a field for a message: printable, bounded. */
static const char *show(span s, char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < s.n && o + 5 < len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (i == 40) {
            o += (size_t)snprintf(buf + o, len - o, "...");
            break;
        }
        if (isprint(c))
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
    }
    buf[o] = '\0';
    return buf;
}

typedef enum { NUM_OK, NUM_EMPTY, NUM_BAD, NUM_NONFINITE, NUM_RANGE } num_result;

static num_result parse_number(span s, float *out)
{
    if (s.n == 0) return NUM_EMPTY;
    char buf[DL_MAX_FIELD + 1];
    if (s.n > DL_MAX_FIELD) return NUM_BAD;
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end != '\0') return NUM_BAD;
    if (isnan(v) || isinf(v)) {
        /* strtod says ERANGE+HUGE_VAL for "1e999": that is a range error. */
        return errno == ERANGE ? NUM_RANGE : NUM_NONFINITE;
    }
    if (fabs(v) > FLT_MAX) return NUM_RANGE;
    *out = (float)v;
    return NUM_OK;
}

static bool looks_numeric(span s)
{
    float f;
    num_result r = parse_number(trim(s), &f);
    return r == NUM_OK || r == NUM_NONFINITE || r == NUM_RANGE;
}

/* Splits one line into fields at commas. Returns the count (capped at cap
 * stored, but the full count is returned). */
static int split(span line, span *fields, int cap)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= line.n; i++) {
        if (i == line.n || line.p[i] == ',') {
            if (n < cap) fields[n] = trim((span){line.p + start, i - start});
            n++;
            start = i + 1;
        }
    }
    return n;
}

static bool blank(span line)
{
    for (size_t i = 0; i < line.n; i++)
        if (!isspace((unsigned char)line.p[i])) return false;
    return true;
}

static char *dup_span(span s)
{
    char *c = malloc(s.n + 1);
    if (c) {
        memcpy(c, s.p, s.n);
        c[s.n] = '\0';
    }
    return c;
}

void dl_dataset_free(dl_dataset *d)
{
    if (!d) return;
    free(d->x);
    free(d->labels);
    if (d->class_names)
        for (int i = 0; i < d->n_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    if (d->col_names)
        for (int i = 0; i < d->cols; i++) free(d->col_names[i]);
    free(d->col_names);
    memset(d, 0, sizeof *d);
}

#define BAD(...) (st = DL_FAIL(DL_E_INPUT, __VA_ARGS__), false)

typedef struct {
    const char *name;
    dl_dataset *d;
    int total_fields; /* fields per row, label included */
    bool has_label;
    size_t cap_rows;
    span *fields;
    int fields_cap;
} parser;

static int find_or_add_class(parser *ps, span s)
{
    dl_dataset *d = ps->d;
    for (int i = 0; i < d->n_classes; i++)
        if (strlen(d->class_names[i]) == s.n && memcmp(d->class_names[i], s.p, s.n) == 0) return i;
    if (d->n_classes % 8 == 0) {
        char **grown = realloc(d->class_names, sizeof(char *) * (size_t)(d->n_classes + 8));
        if (!grown) return -1;
        d->class_names = grown;
    }
    char *c = dup_span(s);
    if (!c) return -1;
    d->class_names[d->n_classes] = c;
    return d->n_classes++;
}

dl_status dl_dataset_parse(const char *text, size_t len, const char *name, dl_dataset *out)
{
    memset(out, 0, sizeof *out);
    dl_status st = DL_OK;
    parser ps = {.name = name, .d = out};
    char qb[DL_MAX_FIELD];

    for (size_t i = 0; i < len; i++)
        if (text[i] == '\0') {
            size_t line = 1;
            for (size_t j = 0; j < i; j++) line += text[j] == '\n';
            return DL_FAIL(DL_E_INPUT, "%s:%zu: binary data (a NUL byte); expected a text CSV file",
                           name, line);
        }

    size_t pos = 0, lineno = 0;
    bool header_checked = false;
    bool ok = true;
    while (ok && pos < len) {
        size_t eol = pos;
        while (eol < len && text[eol] != '\n') eol++;
        span line = {text + pos, eol - pos};
        if (line.n && line.p[line.n - 1] == '\r') line.n--;
        pos = eol + 1;
        lineno++;
        if (blank(line)) continue;

        int nf = split(line, ps.fields, ps.fields_cap);
        if (nf > ps.fields_cap) {
            span *grown = realloc(ps.fields, sizeof(span) * (size_t)nf);
            if (!grown) {
                ok = BAD("%s: out of memory reading the file", name);
                break;
            }
            ps.fields = grown;
            ps.fields_cap = nf;
            split(line, ps.fields, ps.fields_cap);
        }

        if (!header_checked) {
            header_checked = true;
            bool any_numeric = false;
            for (int f = 0; f < nf; f++) any_numeric |= looks_numeric(ps.fields[f]);
            if (!any_numeric) {        /* a header row: keep the names for reports */
                ps.total_fields = -nf; /* fixed once the first data row is seen */
                char **names = calloc((size_t)nf, sizeof(char *));
                if (!names) {
                    ok = BAD("%s: out of memory reading the file", name);
                    break;
                }
                for (int f = 0; f < nf; f++) names[f] = dup_span(ps.fields[f]);
                out->col_names = names;
                out->cols = nf; /* provisional, for dl_dataset_free */
                continue;
            }
        }

        if (ps.total_fields <= 0) { /* first data row fixes the shape */
            int header_fields = -ps.total_fields;
            ps.total_fields = nf;
            ps.has_label = nf >= 2 && !looks_numeric(ps.fields[nf - 1]) && ps.fields[nf - 1].n > 0;
            int cols = nf - (ps.has_label ? 1 : 0);
            if (header_fields && header_fields != nf) {
                ok = BAD("%s:%zu: %d fields, but the header row has %d", name, lineno, nf,
                         header_fields);
                break;
            }
            if (out->col_names && ps.has_label) { /* drop the label column's name */
                free(out->col_names[nf - 1]);
                out->col_names[nf - 1] = NULL;
            }
            out->cols = cols;
        }

        if (nf != ps.total_fields) {
            ok = BAD("%s:%zu: ragged row: %d field%s, expected %d like the first row", name, lineno,
                     nf, nf == 1 ? "" : "s", ps.total_fields);
            break;
        }
        if ((size_t)out->rows == ps.cap_rows) {
            size_t cap = ps.cap_rows ? ps.cap_rows * 2 : 256;
            if (cap > (size_t)INT32_MAX / (size_t)(out->cols > 0 ? out->cols : 1)) {
                ok = BAD("%s:%zu: too many rows", name, lineno);
                break;
            }
            float *x = realloc(out->x, sizeof(float) * cap * (size_t)out->cols);
            if (x) out->x = x;
            int32_t *lab = ps.has_label ? realloc(out->labels, sizeof(int32_t) * cap) : NULL;
            if (lab) out->labels = lab;
            if (!x || (ps.has_label && !lab)) {
                ok = BAD("%s: out of memory reading the file", name);
                break;
            }
            ps.cap_rows = cap;
        }
        float *row = out->x + (size_t)out->rows * out->cols;
        for (int f = 0; f < out->cols && ok; f++) {
            span fs = ps.fields[f];
            switch (parse_number(fs, &row[f])) {
            case NUM_OK: break;
            case NUM_EMPTY: ok = BAD("%s:%zu: column %d: empty field", name, lineno, f + 1); break;
            case NUM_BAD:
                ok = BAD("%s:%zu: column %d: not a number: \"%s\"", name, lineno, f + 1,
                         show(fs, qb, sizeof qb));
                break;
            case NUM_NONFINITE:
                ok = BAD("%s:%zu: column %d: NaN and Inf are not allowed: \"%s\"", name, lineno,
                         f + 1, show(fs, qb, sizeof qb));
                break;
            case NUM_RANGE:
                ok = BAD("%s:%zu: column %d: number out of float range: \"%s\"", name, lineno,
                         f + 1, show(fs, qb, sizeof qb));
                break;
            }
        }
        if (!ok) break;
        if (ps.has_label) {
            span ls = ps.fields[nf - 1];
            if (ls.n == 0) {
                ok = BAD("%s:%zu: column %d: empty label", name, lineno, nf);
                break;
            }
            int id = find_or_add_class(&ps, ls);
            if (id < 0) {
                ok = BAD("%s: out of memory reading the file", name);
                break;
            }
            out->labels[out->rows] = id;
        }
        out->rows++;
    }
    free(ps.fields);
    if (ok && lineno == 0) ok = BAD("%s: the file is empty", name);
    if (ok && out->rows == 0)
        ok = BAD("%s: no data rows (only %s)", name, out->col_names ? "a header" : "blank lines");
    if (ok && out->cols == 0) ok = BAD("%s: no numeric columns", name);
    if (ok && out->rows < 2) ok = BAD("%s: needs at least 2 data rows, found %d", name, out->rows);
    if (!ok) {
        dl_dataset_free(out);
        return st;
    }
    return DL_OK;
}

dl_status dl_dataset_load(const char *path, dl_dataset *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return DL_FAIL(DL_E_INPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    dl_status st = DL_OK;
    while (buf) {
        if (len == cap) {
            if (cap >= DL_MAX_FILE) {
                st = DL_FAIL(DL_E_INPUT, "%s: file larger than 4 GiB", path);
                break;
            }
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                st = DL_FAIL(DL_E_INPUT, "%s: out of memory reading the file", path);
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) st = DL_FAIL(DL_E_INPUT, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!buf) return DL_FAIL(DL_E_INPUT, "%s: out of memory reading the file", path);
    if (st == DL_OK) st = dl_dataset_parse(buf, len, path, out);
    free(buf);
    return st;
}

void dl_dataset_center(dl_dataset *d, double *means)
{
    for (int c = 0; c < d->cols; c++) {
        double mean = 0.0;
        for (int r = 0; r < d->rows; r++) mean += d->x[(size_t)r * d->cols + c];
        mean /= d->rows;
        for (int r = 0; r < d->rows; r++) d->x[(size_t)r * d->cols + c] -= (float)mean;
        if (means) means[c] = mean;
    }
}
