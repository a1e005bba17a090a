/* The data loader for delimited text, and what every format shares.
 *
 * The file is read whole. Fields are cut by libcsv (RFC 4180: quoted fields,
 * delimiters and line breaks inside quotes, doubled quotes), fed one physical
 * line at a time so that each field's line number is known: a field's line
 * is that of its chunk minus the line breaks inside it. The first rows are
 * held back until the layout is settled (delimiter, header row, trailing
 * empty column, label and feature columns), then every row is converted as
 * it arrives. A hostile file can at worst produce an error message. */
#include "dlab/data.h"
#include "loader.h"

#include <csv.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL_MAX_FILE    (1ull << 32)
#define DL_MAX_NUMBER  1024 /* longest text read as a number */
#define SAMPLE_ROWS    64   /* rows looked at before the layout is settled */
#define DELIM_LINES    20   /* lines looked at to detect the delimiter */
#define CODES_DISTINCT 20   /* at most this many distinct integers look like class codes */
#define CODES_LISTED   10   /* a note lists this many of them at most */

typedef struct {
    const char *p;
    size_t n;
} span;

static bool blank_char(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; }

static span trim(span s)
{
    while (s.n && blank_char(s.p[0])) s.p++, s.n--;
    while (s.n && blank_char(s.p[s.n - 1])) s.n--;
    return s;
}

/* Quotes a field for a message: printable, bounded. */
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
    for (int j = 0; j < n && j < NAMES_LISTED && o < len; j++)
        o += (size_t)snprintf(buf + o, len - o, "%s '%.40s'", j ? "," : "",
                              names[j] ? names[j] : "");
    if (n > NAMES_LISTED && o < len) snprintf(buf + o, len - o, ", ... (%d columns)", n);
    return buf;
}

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

static bool span_eq_ci(span s, const char *w)
{
    size_t n = strlen(w);
    if (s.n != n) return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s.p[i]) != w[i]) return false;
    return true;
}

/* --- numbers ------------------------------------------------------------- */

dl_f32_result dl_f32_from_double(double v, float *out)
{
    if (isnan(v) || isinf(v)) return DL_F32_NONFINITE;
    double a = fabs(v);
    /* Halfway between FLT_MAX and 2^128 rounds (to even) up to infinity. */
    if (a >= 0x1.ffffffp127) return DL_F32_TOO_LARGE;
    /* Half the smallest subnormal, 2^-149, rounds (to even) down to zero. */
    if (a != 0.0 && a <= 0x1p-150) return DL_F32_TOO_SMALL;
    *out = (float)v;
    return DL_F32_OK;
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

/* Why a word is not a number, for the message. */
static num_result classify_word(span s)
{
    span u = s;
    if (u.n && (u.p[0] == '+' || u.p[0] == '-')) u.p++, u.n--;
    if (u.n >= 2 && u.p[0] == '0' && (u.p[1] == 'x' || u.p[1] == 'X')) return NUM_HEX;
    if (span_eq_ci(u, "inf") || span_eq_ci(u, "infinity") || span_eq_ci(u, "nan"))
        return NUM_NONFINITE;
    static const char *const missing[] = {"na", "n/a", "nan", "null", "none", "?", "-", "#n/a"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        if (span_eq_ci(s, missing[i])) return NUM_MISSING;
    size_t i = 0, comma = 0, digits = 0;
    for (; i < s.n; i++) {
        if (isdigit((unsigned char)s.p[i]))
            digits++;
        else if (s.p[i] == ',')
            comma++;
        else if (!(i == 0 && (s.p[i] == '-' || s.p[i] == '+')))
            break;
    }
    if (i == s.n && comma == 1 && digits >= 2 && s.p[s.n - 1] != ',') return NUM_COMMA;
    return NUM_BAD;
}

/* Reads a decimal number as Python's float() does, without the words
 * (inf, nan) and underscores it also takes, then rounds it to float32. */
static num_result parse_number(span s, float *out)
{
    s = trim(s);
    if (s.n == 0) return NUM_EMPTY;
    size_t i = 0;
    bool digits = false, nonzero = false;
    if (s.p[i] == '+' || s.p[i] == '-') i++;
    for (; i < s.n && isdigit((unsigned char)s.p[i]); i++) digits = true, nonzero |= s.p[i] != '0';
    if (i < s.n && s.p[i] == '.')
        for (i++; i < s.n && isdigit((unsigned char)s.p[i]); i++)
            digits = true, nonzero |= s.p[i] != '0';
    if (digits && i < s.n && (s.p[i] == 'e' || s.p[i] == 'E')) {
        size_t j = i + 1;
        if (j < s.n && (s.p[j] == '+' || s.p[j] == '-')) j++;
        if (j < s.n && isdigit((unsigned char)s.p[j])) {
            while (j < s.n && isdigit((unsigned char)s.p[j])) j++;
            i = j;
        }
    }
    if (!digits || i != s.n) return classify_word(s);
    if (s.n > DL_MAX_NUMBER) return NUM_BAD;
    char buf[DL_MAX_NUMBER + 1];
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    double v = strtod(buf, NULL);
    if (isinf(v)) return NUM_RANGE; /* finite text beyond double's range */
    if (v == 0.0 && nonzero) return NUM_TINY;
    switch (dl_f32_from_double(v, out)) {
    case DL_F32_OK: return NUM_OK;
    case DL_F32_TOO_SMALL: return NUM_TINY;
    default: return NUM_RANGE;
    }
}

/* Would a person read this field as a number (or a missing one)? Used to
 * tell a header row from data. */
static bool number_like(span s)
{
    float f;
    num_result r = parse_number(s, &f);
    return r != NUM_BAD;
}

/* A whole number written without a point or exponent, within int range. */
static bool integer_text(span s, long *v)
{
    s = trim(s);
    size_t i = s.n && (s.p[0] == '-' || s.p[0] == '+') ? 1 : 0;
    if (i == s.n || s.n - i > 9) return false;
    long x = 0;
    for (; i < s.n; i++) {
        if (!isdigit((unsigned char)s.p[i])) return false;
        x = x * 10 + (s.p[i] - '0');
    }
    *v = s.p[0] == '-' ? -x : x;
    return true;
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
                               show(item, qb, sizeof qb));
            if (lo > hi)
                return DL_FAIL(DL_E_USAGE, "--columns: '%s' is an empty range",
                               show(item, qb, sizeof qb));
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
                               show(item, qb, sizeof qb));
            if (named < 0) {
                char nb[512];
                return DL_FAIL(DL_E_USAGE, "--columns: the header has no column named '%s'%s",
                               show(item, qb, sizeof qb), name_list(names, ncols, nb, sizeof nb));
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

static char *dup_span(span s)
{
    char *c = malloc(s.n + 1);
    if (c) {
        memcpy(c, s.p, s.n);
        c[s.n] = '\0';
    }
    return c;
}

/* --- delimiter detection ------------------------------------------------- */

static const char *delim_words(dl_delimiter d)
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
static dl_delimiter detect_delimiter(const char *t, size_t len, bool *guessed, bool *comma_fits)
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

/* --- rows ---------------------------------------------------------------- */

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

static span fs(const row *r, int j) { return (span){r->buf + r->f[j].off, r->f[j].len}; }

static void row_free(row *r)
{
    free(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* A class-name table: open addressing on FNV-1a, so a label column with
 * many distinct values stays linear. */
typedef struct {
    int32_t *slot; /* class id + 1, 0 empty */
    size_t cap;
} class_table;

static uint64_t hash_span(span s)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < s.n; i++) h = (h ^ (unsigned char)s.p[i]) * 1099511628211ull;
    return h;
}

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
static bool reader_fail(reader *r, dl_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static bool reader_fail(reader *r, dl_status code, const char *fmt, ...)
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
#define FAIL(code, ...) reader_fail(r, code, __VA_ARGS__)
#define OOM()           reader_fail(r, DL_E_INPUT, "%s: out of memory reading the file", r->name)

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
    char *c = dup_span(s);
    if (!c) return -1;
    d->class_names[d->n_classes] = c;
    t->slot[h] = d->n_classes + 1;
    return d->n_classes++;
}

static const char *num_message(num_result nr)
{
    switch (nr) {
    case NUM_EMPTY: return "empty field";
    case NUM_HEX: return "not a number (hexadecimal is not read, as by numpy.loadtxt)";
    case NUM_NONFINITE: return "NaN and Inf are not allowed";
    case NUM_MISSING: return "not a number (a missing value? every value must be given)";
    case NUM_COMMA: return "not a number (a decimal comma? numbers need a decimal point)";
    case NUM_RANGE: return "number out of float range (float32 holds magnitudes up to 3.4e38)";
    case NUM_TINY:
        return "number out of float range (it is nonzero but rounds to 0 in float32, "
               "whose smallest magnitude is 1.4e-45)";
    default: return "not a number";
    }
}

/* Converts one data row into the dataset. */
static bool add_row(reader *r, const row *w)
{
    dl_dataset *d = r->d;
    char qb[256];
    if (w->nf != r->expect && !(r->trailing && w->nf == r->expect - 1))
        return FAIL(
            DL_E_INPUT,
            "%s:%zu: ragged row: %d field%s, expected %d like the first row "
            "(fields separated by %s%s)",
            r->name, w->line, w->nf, w->nf == 1 ? "" : "s", r->expect, delim_words(r->delim),
            r->delim == DL_DELIM_TAB ? "; --delimiter space takes a run of them as one" : "");
    if (r->trailing && w->nf == r->expect && !w->f[w->nf - 1].empty)
        return FAIL(DL_E_INPUT,
                    "%s:%zu: column %d: \"%s\" where the rows above end with an empty column (a "
                    "delimiter at the end of the line)",
                    r->name, w->f[w->nf - 1].line, w->nf, show(fs(w, w->nf - 1), qb, sizeof qb));
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
        num_result nr = parse_number(s, &out[k++]);
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
                    num_message(nr), show(trim(s), qb, sizeof qb), hint);
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
        if (number_like(fs(h, j)))
            any_number = true;
        else
            any_word = true;
    }
    if (!any_number) return any_word;
    char qb[64];
    for (int j = 0; j < h->nf; j++) {
        if (h->f[j].empty || number_like(fs(h, j))) continue;
        int numbers = 0, others = 0;
        for (int i = 1; i < r->n_sample; i++) {
            const row *w = &r->sample[i];
            if (j >= w->nf || w->f[j].empty) continue;
            if (number_like(fs(w, j)))
                numbers++;
            else
                others++;
        }
        if (numbers && !others) {
            note_add(nb, "--header",
                     "the first row is a header (its column %d, \"%s\", is text above numbers)",
                     j + 1, show(fs(h, j), qb, sizeof qb));
            return true;
        }
    }
    if (h->nf >= 3 && r->n_sample >= 2) {
        long v;
        bool seq = true, fractions_below = false;
        for (int j = 0; seq && j < h->nf; j++) seq = integer_text(fs(h, j), &v) && v == j;
        for (int i = 1; seq && i < r->n_sample; i++)
            for (int j = 0; j < r->sample[i].nf; j++)
                fractions_below |= !integer_text(fs(&r->sample[i], j), &v);
        if (seq && fractions_below) {
            note_add(nb, "--header", "the first row (0 to %d) is a header of column numbers",
                     h->nf - 1);
            return true;
        }
    }
    return false;
}

static bool settle(reader *r)
{
    dl_dataset *d = r->d;
    const dl_load_options *o = r->opt;
    note_buf nb = {{0}, {0}};
    char qb[64];
    if (r->delim_guessed)
        note_add(&nb, "--delimiter", "fields separated by %s%s", delim_words(r->delim),
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
        for (int j = 0; j < r->ncols && j < h->nf; j++) names[j] = dup_span(fs(h, j));
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
        if (r->ncols >= 2 && v.n && !number_like(v)) r->label = last;
        long code;
        int distinct = 0, seen = 0;
        long codes[CODES_DISTINCT];
        bool all_int = r->label < 0 && r->ncols >= 2;
        for (int i = first; all_int && i < r->n_sample; i++) {
            if (r->sample[i].nf <= last || !integer_text(fs(&r->sample[i], last), &code)) {
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
                  show((span){lc, strlen(lc)}, qb, sizeof qb), r->name);
    } else {
        for (int j = 0; j < r->ncols && r->label < 0; j++)
            if (names[j] && !strcmp(names[j], lc)) r->label = j;
        char listed[512];
        if (r->label < 0)
            ok = FAIL(DL_E_USAGE, "--label-column: the header of %s has no column named '%s'%s",
                      r->name, show((span){lc, strlen(lc)}, qb, sizeof qb),
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
        if (!add_row(r, &r->sample[i])) return false;
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
        add_row(r, w);
    } else {
        row *k = &r->sample[r->n_sample++];
        *k = *w; /* the sample keeps the buffers; the next row gets new ones */
        r->cur = (row){0};
        r->fcap = 0, r->bcap = 0;
        if (r->n_sample == SAMPLE_ROWS) settle(r);
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

/* The note on the last column's whole numbers was written from the first
 * rows; every row is read now, so its list is redone from the column (the
 * last feature) as loaded: "whole numbers: 0, 1" becomes "0, 1, 2" when the
 * 2s come later. */
static void relist_codes(dl_dataset *d)
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
        r->delim = detect_delimiter(text, len, &r->delim_guessed, &r->comma_fits);
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
            settle(r);
    }
    if (!r->failed && out->rows < 2)
        FAIL(DL_E_INPUT, "%s: needs at least 2 data rows, found %d", name, out->rows);
    if (!r->failed && r->codes_noted) relist_codes(out);
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
