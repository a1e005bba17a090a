/* The data loader for delimited text, and what every format shares.
 *
 * The file is read whole. Fields are cut by libcsv (RFC 4180: quoted fields,
 * delimiters and line breaks inside quotes, doubled quotes), fed one physical
 * line at a time so that each field's line number is known: a field's line
 * is that of its chunk minus the line breaks inside it. The first rows are
 * held back until the layout is settled (delimiter, header row, trailing
 * empty column, label and feature columns), then every row is converted as
 * it arrives. A hostile file can at worst produce an error message.
 *
 * This file is the reading: the file read whole, libcsv's callbacks, rows
 * converted into the dataset and the entry points. The layout decisions and
 * their notes are in data_layout.c, number parsing in data_number.c. */
#include "dlab/data.h"
#include "loader.h"

#include <csv.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL_MAX_FILE (1ull << 32)

/* Quotes a field for a message: printable, bounded. */
const char *dl_show(span s, char *buf, size_t len)
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

/* --- the dataset --------------------------------------------------------- */

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

char *dl_dup_span(span s)
{
    char *c = malloc(s.n + 1);
    if (c) {
        memcpy(c, s.p, s.n);
        c[s.n] = '\0';
    }
    return c;
}

/* --- rows ---------------------------------------------------------------- */

static void row_free(row *r)
{
    free(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

static uint64_t hash_span(span s)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < s.n; i++) h = (h ^ (unsigned char)s.p[i]) * 1099511628211ull;
    return h;
}

bool dl_reader_fail(reader *r, dl_status code, const char *fmt, ...)
{
    if (r->failed) return false;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->failed = true;
    r->st = DL_FAIL(code, "%s", msg);
    return false;
}

static int find_or_add_class(reader *r, span s)
{
    dl_dataset *d = r->d;
    class_table *t = &r->classes;
    if ((size_t)d->n_classes * 2 >= t->cap) { /* grow and rehash */
        size_t cap = t->cap ? t->cap * 2 : 64;
        int32_t *slot = calloc(cap, sizeof(int32_t));
        if (!slot) return -1;
        for (int i = 0; i < d->n_classes; i++) {
            span n = {d->class_names[i], strlen(d->class_names[i])};
            size_t h = (size_t)hash_span(n) & (cap - 1);
            while (slot[h]) h = (h + 1) & (cap - 1);
            slot[h] = i + 1;
        }
        free(t->slot);
        t->slot = slot;
        t->cap = cap;
    }
    size_t h = (size_t)hash_span(s) & (t->cap - 1);
    for (; t->slot[h]; h = (h + 1) & (t->cap - 1)) {
        const char *c = d->class_names[t->slot[h] - 1];
        if (strlen(c) == s.n && !memcmp(c, s.p, s.n)) return t->slot[h] - 1;
    }
    if (d->n_classes % 64 == 0) {
        char **grown = realloc(d->class_names, sizeof(char *) * (size_t)(d->n_classes + 64));
        if (!grown) return -1;
        d->class_names = grown;
    }
    char *c = dl_dup_span(s);
    if (!c) return -1;
    d->class_names[d->n_classes] = c;
    t->slot[h] = d->n_classes + 1;
    return d->n_classes++;
}

/* Converts one data row into the dataset. */
bool dl_add_row(reader *r, const row *w)
{
    dl_dataset *d = r->d;
    char qb[256];
    if (w->nf != r->expect && !(r->trailing && w->nf == r->expect - 1))
        return FAIL(
            DL_E_INPUT,
            "%s:%zu: ragged row: %d field%s, expected %d like the first row "
            "(fields separated by %s%s)",
            r->name, w->line, w->nf, w->nf == 1 ? "" : "s", r->expect, dl_delim_words(r->delim),
            r->delim == DL_DELIM_TAB ? "; --delimiter space takes a run of them as one" : "");
    if (r->trailing && w->nf == r->expect && !w->f[w->nf - 1].empty)
        return FAIL(DL_E_INPUT,
                    "%s:%zu: column %d: \"%s\" where the rows above end with an empty column (a "
                    "delimiter at the end of the line)",
                    r->name, w->f[w->nf - 1].line, w->nf, dl_show(fs(w, w->nf - 1), qb, sizeof qb));
    if ((size_t)d->rows == r->cap_rows) {
        size_t cap = r->cap_rows ? r->cap_rows * 2 : 256;
        if (cap > (size_t)INT32_MAX / (size_t)d->cols)
            return FAIL(DL_E_INPUT, "%s:%zu: too many rows", r->name, w->line);
        float *x = realloc(d->x, sizeof(float) * cap * (size_t)d->cols);
        if (x) d->x = x;
        int32_t *lab = r->label >= 0 ? realloc(d->labels, sizeof(int32_t) * cap) : NULL;
        if (lab) d->labels = lab;
        if (!x || (r->label >= 0 && !lab)) return OOM();
        r->cap_rows = cap;
    }
    float *out = d->x + (size_t)d->rows * d->cols;
    for (int j = 0, k = 0; j < r->ncols; j++) {
        if (!r->sel[j]) continue;
        span s = fs(w, j);
        num_result nr = dl_parse_number(s, &out[k++]);
        if (nr == NUM_OK) continue;
        if (nr == NUM_EMPTY)
            return FAIL(DL_E_INPUT, "%s:%zu: column %d: empty field", r->name, w->f[j].line, j + 1);
        /* A word in a column other than the last may be a label column
         * placed elsewhere (the label is looked for last by default). */
        char hint[96] = "";
        if (nr == NUM_BAD && j != r->ncols - 1)
            snprintf(hint, sizeof hint, "; if this column is the label, use --label-column %d",
                     j + 1);
        return FAIL(DL_E_INPUT, "%s:%zu: column %d: %s: \"%s\"%s", r->name, w->f[j].line, j + 1,
                    dl_num_message(nr), dl_show(trim(s), qb, sizeof qb), hint);
    }
    if (r->label >= 0) {
        span s = fs(w, r->label);
        if (s.n == 0)
            return FAIL(DL_E_INPUT, "%s:%zu: column %d: empty label", r->name, w->f[r->label].line,
                        r->label + 1);
        int id = find_or_add_class(r, s);
        if (id < 0) return OOM();
        d->labels[d->rows] = id;
    }
    d->rows++;
    return true;
}

/* --- libcsv callbacks ---------------------------------------------------- */

static size_t line_breaks(const char *s, size_t n)
{
    size_t b = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n' || (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))) b++;
    return b;
}

static void on_field(void *s, size_t len, void *ud)
{
    reader *r = ud;
    if (r->failed) return;
    r->quote_line = 0;
    if (!s && r->delim == DL_DELIM_WHITESPACE) return; /* a run of blanks, not a field */
    row *w = &r->cur;
    if (w->nf == r->fcap) {
        int cap = r->fcap ? r->fcap * 2 : 16;
        field *f = cap < (1 << 24) ? realloc(w->f, sizeof(field) * (size_t)cap) : NULL;
        if (!f) {
            OOM();
            return;
        }
        w->f = f;
        r->fcap = cap;
    }
    size_t off = w->nf ? w->f[w->nf - 1].off + w->f[w->nf - 1].len : 0;
    if (len > SIZE_MAX / 4 || off > SIZE_MAX / 4) {
        OOM();
        return;
    }
    if (off + len + 1 > r->bcap) {
        size_t cap = r->bcap ? r->bcap : 256;
        while (cap < off + len + 1) cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b) {
            OOM();
            return;
        }
        w->buf = b;
        r->bcap = cap;
    }
    if (len) memcpy(w->buf + off, s, len);
    size_t line = r->line - (s ? line_breaks(s, len) : 0);
    if (w->nf == 0) w->line = line;
    w->f[w->nf++] = (field){.off = off, .len = len, .line = line, .empty = len == 0};
}

static void on_row(int c, void *ud)
{
    (void)c;
    reader *r = ud;
    if (r->failed) return;
    row *w = &r->cur;
    if (w->nf == 0) return; /* a line of blanks in whitespace mode */
    if (r->settled) {
        dl_add_row(r, w);
    } else {
        row *k = &r->sample[r->n_sample++];
        *k = *w; /* the sample keeps the buffers; the next row gets new ones */
        r->cur = (row){0};
        r->fcap = 0, r->bcap = 0;
        if (r->n_sample == SAMPLE_ROWS) dl_settle(r);
    }
    r->cur.nf = 0;
}

/* Parses one physical line (its line break included). */
static void feed(reader *r, const char *p, size_t n)
{
    const char *src = p;
    if (r->delim == DL_DELIM_WHITESPACE) { /* libcsv takes one delimiter: tabs become spaces */
        if (n > r->scratch_cap) {
            char *s = realloc(r->scratch, n);
            if (!s) {
                OOM();
                return;
            }
            r->scratch = s;
            r->scratch_cap = n;
        }
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            if (c == '"') r->in_quote = !r->in_quote;
            if (!r->in_quote && (c == '\t' || c == '\v' || c == '\f')) c = ' ';
            r->scratch[i] = c;
        }
        src = r->scratch;
    }
    size_t done = csv_parse(&r->p, src, n, on_field, on_row, r);
    if (r->failed) return;
    if (done < n) {
        if (csv_error(&r->p) == CSV_EPARSE)
            FAIL(DL_E_INPUT,
                 "%s:%zu: column %d: misplaced quote: a field holding a quote must be quoted "
                 "whole, with the quote doubled (RFC 4180)",
                 r->name, r->line, r->cur.nf + 1);
        else
            OOM();
        return;
    }
    if (r->p.quoted && !r->quote_line) r->quote_line = r->line;
}

static dl_status parse_text(const char *text, size_t len, const char *name,
                            const dl_load_options *opt, dl_dataset *out)
{
    /* Comment lines at the top (the first non-blank character '#', as
     * numpy.loadtxt's default comments='#') are skipped, and blank lines
     * among them, so that a commented preamble is never taken for a header;
     * line numbers still count them. */
    size_t skipped = 0, lines_skipped = 0;
    bool comment_seen = false;
    while (skipped < len) {
        size_t e = skipped, i = skipped;
        while (i < len && blank_char(text[i])) i++;
        if (i < len && text[i] != '#' && text[i] != '\n' && text[i] != '\r') break;
        comment_seen = comment_seen || (i < len && text[i] == '#');
        while (e < len && text[e] != '\n' && text[e] != '\r') e++;
        if (e < len) e += text[e] == '\r' && e + 1 < len && text[e + 1] == '\n' ? 2 : 1;
        skipped = e, lines_skipped++;
    }
    if (!comment_seen) skipped = 0, lines_skipped = 0; /* blank lines alone: as before */
    if (comment_seen && skipped == len)
        return DL_FAIL(DL_E_INPUT, "%s: no data rows (only comment lines starting with '#')", name);
    text += skipped, len -= skipped;
    reader *r = calloc(1, sizeof *r);
    if (!r) return DL_FAIL(DL_E_INPUT, "%s: out of memory reading the file", name);
    r->line = lines_skipped;
    r->name = name;
    r->d = out;
    r->opt = opt;
    r->delim = opt->delimiter;
    if (r->delim == DL_DELIM_AUTO)
        r->delim = dl_detect_delimiter(text, len, &r->delim_guessed, &r->comma_fits);
    unsigned char flags = CSV_STRICT | CSV_STRICT_FINI;
    if (r->delim == DL_DELIM_WHITESPACE) flags |= CSV_EMPTY_IS_NULL;
    if (csv_init(&r->p, flags) != 0) {
        free(r);
        return DL_FAIL(DL_E_INPUT, "%s: out of memory reading the file", name);
    }
    /* libcsv grows a field's buffer by this much at a time (linearly). */
    csv_set_blk_size(&r->p, 1 << 16);
    csv_set_delim(&r->p, r->delim == DL_DELIM_SEMICOLON    ? ';'
                         : r->delim == DL_DELIM_TAB        ? '\t'
                         : r->delim == DL_DELIM_WHITESPACE ? ' '
                                                           : ',');
    size_t pos = 0;
    while (pos < len && !r->failed) {
        size_t e = pos;
        while (e < len && text[e] != '\n' && text[e] != '\r') e++;
        if (e < len) e += text[e] == '\r' && e + 1 < len && text[e + 1] == '\n' ? 2 : 1;
        r->line++;
        feed(r, text + pos, e - pos);
        pos = e;
    }
    if (!r->failed && csv_fini(&r->p, on_field, on_row, r) != 0 && !r->failed)
        FAIL(DL_E_INPUT,
             "%s:%zu: column %d: a quoted field is not closed: its opening quote has no closing "
             "quote before the end of the file",
             name, r->quote_line ? r->quote_line : r->line, r->cur.nf + 1);
    if (!r->failed && !r->settled) {
        if (r->n_sample == 0)
            FAIL(DL_E_INPUT, "%s: %s", name,
                 len == 0 ? "the file is empty" : "no data rows (only blank lines)");
        else
            dl_settle(r);
    }
    if (!r->failed && out->rows < 2)
        FAIL(DL_E_INPUT, "%s: needs at least 2 data rows, found %d", name, out->rows);
    if (!r->failed && r->codes_noted) dl_relist_codes(out);
    dl_status st = r->failed ? r->st : DL_OK;
    csv_free(&r->p);
    row_free(&r->cur);
    for (int i = 0; i < r->n_sample; i++) row_free(&r->sample[i]);
    free(r->scratch);
    free(r->sel);
    free(r->classes.slot);
    free(r);
    if (st != DL_OK) { /* keep the note: it may explain the failure */
        char note[sizeof out->note];
        memcpy(note, out->note, sizeof note);
        dl_dataset_free(out);
        memcpy(out->note, note, sizeof note);
    }
    return st;
}

/* --- entry points -------------------------------------------------------- */

dl_status dl_dataset_parse_opts(const char *text, size_t len, const char *name,
                                const dl_load_options *opt, dl_dataset *out)
{
    memset(out, 0, sizeof *out);
    static const dl_load_options detect = {0};
    if (!opt) opt = &detect;
    if (dl_npy_magic(text, len))
        return dl_npy_parse((const unsigned char *)text, len, name, opt, out);
    if (len >= 2 && ((unsigned char)text[0] == 0xff && (unsigned char)text[1] == 0xfe))
        return DL_FAIL(DL_E_INPUT,
                       "%s: UTF-16 text (its byte-order mark says so); save it as UTF-8", name);
    if (len >= 2 && ((unsigned char)text[0] == 0xfe && (unsigned char)text[1] == 0xff))
        return DL_FAIL(DL_E_INPUT,
                       "%s: UTF-16 text (its byte-order mark says so); save it as UTF-8", name);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        size_t line = 1;
        for (const char *c = text; c < nul; c++)
            line += *c == '\n' || (*c == '\r' && (c + 1 == nul || c[1] != '\n'));
        return DL_FAIL(DL_E_INPUT,
                       "%s:%zu: binary data (a NUL byte); expected a text file or a .npy array",
                       name, line);
    }
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) { /* UTF-8 byte-order mark (Excel) */
        text += 3;
        len -= 3;
        if (len == 0) return DL_FAIL(DL_E_INPUT, "%s: the file is empty", name);
    }
    if (opt->label_column && !*opt->label_column)
        return DL_FAIL(DL_E_USAGE, "--label-column: empty value");
    if (opt->columns && !*opt->columns) return DL_FAIL(DL_E_USAGE, "--columns: empty list");
    return parse_text(text, len, name, opt, out);
}

dl_status dl_dataset_parse(const char *text, size_t len, const char *name, dl_dataset *out)
{
    return dl_dataset_parse_opts(text, len, name, NULL, out);
}

dl_status dl_dataset_load_opts(const char *path, const dl_load_options *opt, dl_dataset *out)
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
    if (st == DL_OK) st = dl_dataset_parse_opts(buf, len, path, opt, out);
    free(buf);
    return st;
}

dl_status dl_dataset_load(const char *path, dl_dataset *out)
{
    return dl_dataset_load_opts(path, NULL, out);
}
