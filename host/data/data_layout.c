/* The layout of delimited text and the options that describe it: parsing
 * --delimiter and --header, the train split, resolving --columns, detecting
 * the delimiter, settling the layout from the first rows (header row,
 * trailing empty column, label and feature columns) and writing the notes
 * that say what was decided and which option changes it. */
#include "dlab/data.h"
#include "loader.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELIM_LINES    20 /* lines looked at to detect the delimiter */
#define CODES_DISTINCT 20 /* at most this many distinct integers look like class codes */
#define CODES_LISTED   10 /* a note lists this many of them at most */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* "0, 1, 2" for distinct sorted codes: every one when there are at most
 * CODES_LISTED, else the smallest few, "..." and how many. */
static void codes_list(const long *codes, int distinct, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    int shown = distinct <= CODES_LISTED ? distinct : CODES_LISTED - 2;
    for (int k = 0; k < shown && at < len; k++)
        at += (size_t)snprintf(buf + at, len - at, "%s%ld", k ? ", " : "", codes[k]);
    if (shown < distinct && at < len) snprintf(buf + at, len - at, ", ... (%d values)", distinct);
}

/* "; the header names: 'a', 'b', ..." (the first NAMES_LISTED), for a
 * message about a name that is not there. */
#define NAMES_LISTED 8
static const char *name_list(char *const *names, int n, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "; the header names");
    for (int j = 0; j < n && j < NAMES_LISTED && o < len; j++) {
        /* quoted as every message quotes file text: printable, bounded */
        char qb[64];
        const char *name = names[j] ? names[j] : "";
        o += (size_t)snprintf(buf + o, len - o, "%s '%s'", j ? "," : "",
                              dl_show((span){name, strlen(name)}, qb, sizeof qb));
    }
    if (n > NAMES_LISTED && o < len) snprintf(buf + o, len - o, ", ... (%d columns)", n);
    return buf;
}

/* --- options ------------------------------------------------------------- */

dl_status dl_delimiter_parse(const char *s, dl_delimiter *out)
{
    static const struct {
        const char *name;
        dl_delimiter d;
    } names[] = {{"auto", DL_DELIM_AUTO},
                 {",", DL_DELIM_COMMA},
                 {"comma", DL_DELIM_COMMA},
                 {";", DL_DELIM_SEMICOLON},
                 {"semicolon", DL_DELIM_SEMICOLON},
                 {"tab", DL_DELIM_TAB},
                 {"\t", DL_DELIM_TAB},
                 {"space", DL_DELIM_WHITESPACE},
                 {" ", DL_DELIM_WHITESPACE},
                 {"whitespace", DL_DELIM_WHITESPACE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            *out = names[i].d;
            return DL_OK;
        }
    return DL_FAIL(DL_E_USAGE,
                   "--delimiter: unknown value '%s' (expected auto, ',', ';', tab or space)", s);
}

dl_status dl_header_parse(const char *s, dl_header_mode *out)
{
    if (!strcmp(s, "auto"))
        *out = DL_HEADER_AUTO;
    else if (!strcmp(s, "yes"))
        *out = DL_HEADER_YES;
    else if (!strcmp(s, "no"))
        *out = DL_HEADER_NO;
    else
        return DL_FAIL(DL_E_USAGE, "--header: unknown value '%s' (expected auto, yes or no)", s);
    return DL_OK;
}

dl_status dl_train_rows(int count, double fraction, int rows, int *train)
{
    if (count > 0) {
        *train = count;
        return DL_OK;
    }
    if (fraction > 0.0 && fraction < 1.0) {
        double t = floor(fraction * rows + 0.5);
        if (t < 1.0)
            return DL_FAIL(DL_E_USAGE, "--train %g leaves no training rows: the data has %d rows",
                           fraction, rows);
        if (t >= rows)
            return DL_FAIL(DL_E_USAGE, "--train %g leaves no validation rows: the data has %d rows",
                           fraction, rows);
        *train = (int)t;
        return DL_OK;
    }
    *train = (int)(((long long)rows * 2 + 1) / 3); /* round(2 rows / 3) */
    return DL_OK;
}

/* Parses "N", "N-M", "N-" or "-M" (1-based); false when it is not that. */
static bool parse_range(span s, long *lo, long *hi, bool *open_hi)
{
    size_t dash = s.n;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] == '-') {
            if (dash != s.n) return false;
            dash = i;
        } else if (!isdigit((unsigned char)s.p[i]))
            return false;
    }
    if (s.n == 0 || (dash != s.n && s.n == 1) || s.n > 20) return false;
    long a = 0, b = 0;
    for (size_t i = 0; i < dash; i++) a = a > 100000000 ? a : a * 10 + (s.p[i] - '0');
    for (size_t i = dash + 1; i < s.n; i++) b = b > 100000000 ? b : b * 10 + (s.p[i] - '0');
    *open_hi = false;
    if (dash == s.n) { /* N */
        *lo = *hi = a;
    } else if (dash == 0) { /* -M */
        *lo = 1, *hi = b;
    } else if (dash == s.n - 1) { /* N- */
        *lo = a, *hi = 0, *open_hi = true;
    } else {
        *lo = a, *hi = b;
    }
    return true;
}

dl_status dl_columns_resolve(const char *list, int ncols, char *const *names, int label, bool *sel)
{
    for (int j = 0; j < ncols; j++) sel[j] = false;
    const char *p = list;
    int picked = 0;
    for (;;) {
        const char *e = strchr(p, ',');
        span item = trim((span){p, e ? (size_t)(e - p) : strlen(p)});
        char qb[64];
        if (item.n == 0) return DL_FAIL(DL_E_USAGE, "--columns: empty item in '%s'", list);
        long lo, hi;
        bool open_hi;
        int named = -1;
        if (parse_range(item, &lo, &hi, &open_hi)) {
            if (open_hi) hi = ncols;
            if (lo < 1 || hi < 1)
                return DL_FAIL(DL_E_USAGE, "--columns: columns are numbered from 1 (got '%s')",
                               dl_show(item, qb, sizeof qb));
            if (lo > hi)
                return DL_FAIL(DL_E_USAGE, "--columns: '%s' is an empty range",
                               dl_show(item, qb, sizeof qb));
            long far = open_hi ? lo : hi;
            if (far > ncols)
                return DL_FAIL(DL_E_USAGE, "--columns: column %ld is out of range: the file has %d",
                               far, ncols);
            for (long j = lo; j <= hi; j++) {
                if (j - 1 == label && open_hi) continue; /* "3-" stops short of the label */
                if (j - 1 == label)
                    return DL_FAIL(DL_E_USAGE,
                                   "--columns selects column %ld, which is the label column (see "
                                   "--label-column)",
                                   j);
                sel[j - 1] = true, picked++;
            }
        } else {
            for (int j = 0; names && j < ncols && named < 0; j++)
                if (names[j] && strlen(names[j]) == item.n && !memcmp(names[j], item.p, item.n))
                    named = j;
            if (named < 0 && !names)
                return DL_FAIL(DL_E_USAGE,
                               "--columns: '%s' is not a column number, and the file has no "
                               "header row to name columns (see --header)",
                               dl_show(item, qb, sizeof qb));
            if (named < 0) {
                char nb[512];
                return DL_FAIL(DL_E_USAGE, "--columns: the header has no column named '%s'%s",
                               dl_show(item, qb, sizeof qb),
                               name_list(names, ncols, nb, sizeof nb));
            }
            if (named == label)
                return DL_FAIL(DL_E_USAGE,
                               "--columns selects column %d, which is the label column (see "
                               "--label-column)",
                               named + 1);
            sel[named] = true, picked++;
        }
        if (!e) break;
        p = e + 1;
    }
    return picked ? DL_OK : DL_FAIL(DL_E_USAGE, "--columns: no column selected");
}

/* --- delimiter detection ------------------------------------------------- */

const char *dl_delim_words(dl_delimiter d)
{
    switch (d) {
    case DL_DELIM_SEMICOLON: return "';'";
    case DL_DELIM_TAB: return "tabs";
    case DL_DELIM_WHITESPACE: return "runs of spaces and tabs";
    default: return "','";
    }
}

/* Looks at the first lines, outside quotes: a delimiter found the same
 * number of times on every line wins (comma, then semicolon, then tab);
 * tabs in varying numbers, or only spaces between values, mean runs of
 * whitespace, as numpy.loadtxt splits by default. Comma and semicolon both
 * fitting is a file with decimal commas: semicolon. */
dl_delimiter dl_detect_delimiter(const char *t, size_t len, bool *guessed, bool *comma_fits)
{
    enum { COMMA, SEMI, TAB, N };
    long first[N] = {-1, -1, -1};
    bool consistent[N] = {true, true, true}, everywhere[N] = {true, true, true};
    bool tab_runs = false, spaced = true, none_anywhere = true;
    int lines = 0;
    bool in_quote = false;
    size_t pos = 0;
    while (pos < len && lines < DELIM_LINES) {
        long count[N] = {0, 0, 0};
        bool content = false, space_between = false, after_space = false;
        size_t i = pos;
        for (; i < len; i++) {
            char c = t[i];
            if (!in_quote && (c == '\n' || c == '\r')) break;
            if (c == '"') in_quote = !in_quote;
            if (in_quote) {
                content = true;
                continue;
            }
            if (c == ',') count[COMMA]++;
            if (c == ';') count[SEMI]++;
            if (c == '\t') {
                count[TAB]++;
                if (i > pos && (t[i - 1] == '\t' || t[i - 1] == ' ')) tab_runs = true;
            }
            if (c == ' ' || c == '\t') {
                after_space = content;
            } else {
                if (after_space) space_between = true;
                after_space = false;
                content = true;
            }
        }
        pos = i < len && t[i] == '\r' && i + 1 < len && t[i + 1] == '\n' ? i + 2 : i + 1;
        if (!content) continue;
        lines++;
        for (int k = 0; k < N; k++) {
            if (count[k] == 0) everywhere[k] = false;
            if (count[k]) none_anywhere = false;
            if (first[k] < 0) first[k] = count[k];
            if (count[k] == 0 || count[k] != first[k]) consistent[k] = false;
        }
        spaced &= space_between;
    }
    *guessed = true;
    if (lines == 0) {
        *guessed = false;
        return DL_DELIM_COMMA;
    }
    *comma_fits = consistent[COMMA];
    if (consistent[SEMI]) return DL_DELIM_SEMICOLON;
    if (consistent[COMMA]) {
        *guessed = false;
        return DL_DELIM_COMMA;
    }
    if (consistent[TAB] && !tab_runs) return DL_DELIM_TAB;
    if (everywhere[TAB] || (spaced && !everywhere[COMMA] && !everywhere[SEMI]))
        return DL_DELIM_WHITESPACE;
    if (everywhere[SEMI] && !everywhere[COMMA]) return DL_DELIM_SEMICOLON;
    *guessed = !none_anywhere && !everywhere[COMMA];
    return DL_DELIM_COMMA;
}

/* --- the layout ---------------------------------------------------------- */

typedef struct {
    char text[320];
    char opts[64];
} note_buf;

static void note_add(note_buf *nb, const char *option, const char *fmt, ...)
{
    size_t n = strlen(nb->text);
    if (n + 3 >= sizeof nb->text) return;
    if (n) n += (size_t)snprintf(nb->text + n, sizeof nb->text - n, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nb->text + n, sizeof nb->text - n, fmt, ap);
    va_end(ap);
    if (!strstr(nb->opts, option)) {
        size_t m = strlen(nb->opts);
        snprintf(nb->opts + m, sizeof nb->opts - m, "%s%s", m ? ", " : "", option);
    }
}

/* Is the first row a header? Yes when it is all words (no number in it),
 * when a word in it stands above a column of numbers, or when it is the
 * column numbers 0..n-1 (what pandas writes for an unnamed frame) above
 * values that are not all whole numbers. The last two are guesses and are noted. */
static bool detect_header(reader *r, note_buf *nb)
{
    const row *h = &r->sample[0];
    bool any_number = false, any_word = false;
    for (int j = 0; j < h->nf; j++) {
        if (h->f[j].empty) continue;
        if (dl_number_like(fs(h, j)))
            any_number = true;
        else
            any_word = true;
    }
    if (!any_number) return any_word;
    char qb[64];
    for (int j = 0; j < h->nf; j++) {
        if (h->f[j].empty || dl_number_like(fs(h, j))) continue;
        int numbers = 0, others = 0;
        for (int i = 1; i < r->n_sample; i++) {
            const row *w = &r->sample[i];
            if (j >= w->nf || w->f[j].empty) continue;
            if (dl_number_like(fs(w, j)))
                numbers++;
            else
                others++;
        }
        if (numbers && !others) {
            note_add(nb, "--header",
                     "the first row is a header (its column %d, \"%s\", is text above numbers)",
                     j + 1, dl_show(fs(h, j), qb, sizeof qb));
            return true;
        }
    }
    if (h->nf >= 3 && r->n_sample >= 2) {
        long v;
        bool seq = true, fractions_below = false;
        for (int j = 0; seq && j < h->nf; j++) seq = dl_integer_text(fs(h, j), &v) && v == j;
        for (int i = 1; seq && i < r->n_sample; i++)
            for (int j = 0; j < r->sample[i].nf; j++)
                fractions_below |= !dl_integer_text(fs(&r->sample[i], j), &v);
        if (seq && fractions_below) {
            note_add(nb, "--header", "the first row (0 to %d) is a header of column numbers",
                     h->nf - 1);
            return true;
        }
    }
    return false;
}

bool dl_settle(reader *r)
{
    dl_dataset *d = r->d;
    const dl_load_options *o = r->opt;
    note_buf nb = {{0}, {0}};
    char qb[64];
    if (r->delim_guessed)
        note_add(&nb, "--delimiter", "fields separated by %s%s", dl_delim_words(r->delim),
                 r->delim == DL_DELIM_SEMICOLON && r->comma_fits ? " (',' fits too)" : "");

    r->header =
        o->header == DL_HEADER_YES || (o->header == DL_HEADER_AUTO && detect_header(r, &nb));
    int first = r->header ? 1 : 0;
    if (first >= r->n_sample) return FAIL(DL_E_INPUT, "%s: no data rows (only a header)", r->name);
    const row *h = r->header ? &r->sample[0] : NULL, *d0 = &r->sample[first];

    /* A delimiter closing every row makes an empty last column: not data. */
    int nf0 = d0->nf;
    r->trailing = r->delim != DL_DELIM_WHITESPACE && nf0 >= 2;
    for (int i = first; r->trailing && i < r->n_sample; i++)
        if (r->sample[i].nf == nf0 && !r->sample[i].f[nf0 - 1].empty) r->trailing = false;
    if (h && h->nf == nf0 && !h->f[nf0 - 1].empty) r->trailing = false; /* a named column */
    r->expect = nf0;
    r->ncols = nf0 - (r->trailing ? 1 : 0);
    if (h) {
        r->header_nf = h->nf;
        bool fits =
            h->nf == nf0 || h->nf == r->ncols || (h->nf == nf0 + 1 && h->f[h->nf - 1].empty);
        if (!fits)
            return FAIL(DL_E_INPUT, "%s:%zu: %d fields, but the header row has %d", r->name,
                        d0->line, nf0, h->nf);
    }
    char **names = NULL;
    if (h) {
        names = calloc((size_t)r->ncols, sizeof(char *));
        if (!names) return OOM();
        for (int j = 0; j < r->ncols && j < h->nf; j++) names[j] = dl_dup_span(fs(h, j));
    }

    /* The label column. Whole numbers with few distinct values in the last
     * column look like class codes: said when they end up as a feature. */
    char codes_note[192] = "";
    const char *lc = o->label_column && strcmp(o->label_column, "auto") ? o->label_column : NULL;
    r->label = -1;
    bool ok = true;
    long n;
    int last = r->ncols - 1;
    if (!lc) {
        span v = fs(d0, last);
        if (r->ncols >= 2 && v.n && !dl_number_like(v)) r->label = last;
        long code;
        int distinct = 0, seen = 0;
        long codes[CODES_DISTINCT];
        bool all_int = r->label < 0 && r->ncols >= 2;
        for (int i = first; all_int && i < r->n_sample; i++) {
            if (r->sample[i].nf <= last || !dl_integer_text(fs(&r->sample[i], last), &code)) {
                all_int = false;
                break;
            }
            seen++;
            int k = 0;
            while (k < distinct && codes[k] != code) k++;
            if (k == distinct) {
                if (distinct == CODES_DISTINCT)
                    all_int = false;
                else
                    codes[distinct++] = code;
            }
        }
        if (all_int && distinct >= 2 && distinct * 2 <= seen) {
            /* Every value when there are few, else the smallest few. */
            qsort(codes, (size_t)distinct, sizeof codes[0], cmp_long);
            char list[96];
            codes_list(codes, distinct, list, sizeof list);
            snprintf(codes_note, sizeof codes_note,
                     "the last column (whole numbers: %s) is a feature, not class labels", list);
        }
    } else if (!strcmp(lc, "none")) {
        r->label = -1;
    } else if (!strcmp(lc, "last")) {
        if (r->ncols < 2)
            ok = FAIL(DL_E_USAGE, "--label-column last: %s has a single column", r->name);
        r->label = last;
    } else if (parse_range((span){lc, strlen(lc)}, &n, &n, &(bool){false}) && !strchr(lc, '-')) {
        if (n < 1 || n > r->ncols)
            ok = FAIL(DL_E_USAGE, "--label-column: column %ld is out of range: %s has %d columns",
                      n, r->name, r->ncols);
        r->label = (int)n - 1;
    } else if (!names) {
        ok = FAIL(DL_E_USAGE,
                  "--label-column: '%s' is a name, but %s has no header row (see --header)",
                  dl_show((span){lc, strlen(lc)}, qb, sizeof qb), r->name);
    } else {
        for (int j = 0; j < r->ncols && r->label < 0; j++)
            if (names[j] && !strcmp(names[j], lc)) r->label = j;
        char listed[512];
        if (r->label < 0)
            ok = FAIL(DL_E_USAGE, "--label-column: the header of %s has no column named '%s'%s",
                      r->name, dl_show((span){lc, strlen(lc)}, qb, sizeof qb),
                      name_list(names, r->ncols, listed, sizeof listed));
    }

    /* The feature columns. */
    if (ok) r->sel = calloc((size_t)r->ncols, sizeof(bool));
    if (ok && !r->sel) ok = OOM();
    if (ok && o->columns) {
        dl_status cs = dl_columns_resolve(o->columns, r->ncols, names, r->label, r->sel);
        if (cs != DL_OK) r->failed = true, r->st = cs, ok = false;
    } else if (ok) {
        for (int j = 0; j < r->ncols; j++) r->sel[j] = j != r->label;
    }
    int cols = 0;
    for (int j = 0; ok && j < r->ncols; j++) cols += r->sel[j];
    if (ok && cols == 0)
        ok = FAIL(DL_E_INPUT, "%s: no feature columns (the only column is the label)", r->name);
    if (ok && codes_note[0] && r->sel[last]) {
        note_add(&nb, "--label-column", "%s", codes_note);
        r->codes_noted = true; /* its list is redone from every row once read */
    }
    if (!ok) {
        if (names)
            for (int j = 0; j < r->ncols; j++) free(names[j]);
        free(names);
        return false;
    }
    d->cols = cols;
    if (names) { /* keep the feature columns' names */
        d->col_names = calloc((size_t)cols, sizeof(char *));
        for (int j = 0, k = 0; d->col_names && j < r->ncols; j++)
            if (r->sel[j]) d->col_names[k++] = names[j], names[j] = NULL;
        for (int j = 0; j < r->ncols; j++) free(names[j]);
        free(names);
        if (!d->col_names) return OOM();
    }
    if (nb.text[0])
        snprintf(d->note, sizeof d->note, "%.160s: assumed %s (to choose, use %s)", r->name,
                 nb.text, nb.opts);
    r->settled = true;
    for (int i = first; i < r->n_sample; i++)
        if (!dl_add_row(r, &r->sample[i])) return false;
    return true;
}

/* The note on the last column's whole numbers was written from the first
 * rows; every row is read now, so its list is redone from the column (the
 * last feature) as loaded: "whole numbers: 0, 1" becomes "0, 1, 2" when the
 * 2s come later. */
void dl_relist_codes(dl_dataset *d)
{
    char *at = strstr(d->note, "whole numbers: ");
    char *end = at ? strchr(at, ')') : NULL;
    if (!end) return;
    at += strlen("whole numbers: ");
    long codes[CODES_DISTINCT + 1];
    int distinct = 0;
    for (int i = 0; i < d->rows && distinct <= CODES_DISTINCT; i++) {
        long v = lrintf(d->x[(size_t)i * d->cols + d->cols - 1]);
        int k = 0;
        while (k < distinct && codes[k] != v) k++;
        if (k == distinct) codes[distinct++] = v;
    }
    qsort(codes, (size_t)distinct, sizeof codes[0], cmp_long);
    char list[96], rest[sizeof d->note];
    if (distinct > CODES_DISTINCT)
        snprintf(list, sizeof list, "%ld, %ld, ... (more than %d values)", codes[0], codes[1],
                 CODES_DISTINCT);
    else
        codes_list(codes, distinct, list, sizeof list);
    snprintf(rest, sizeof rest, "%s", end);
    snprintf(at, sizeof d->note - (size_t)(at - d->note), "%s%s", list, rest);
}
