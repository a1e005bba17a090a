#include "dlab/json.h"

#include <math.h>
#include <stdlib.h>

void dl_json_init(dl_json *j, FILE *f, bool pretty)
{
    j->f = f;
    j->depth = 0;
    j->first[0] = true;
    j->pretty = pretty;
}

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Separator, indentation and key before a value. */
static void lead(dl_json *j, const char *key)
{
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = false;
    if (j->pretty && j->depth > 0) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
    }
    if (key) {
        put_string(j->f, key);
        fputs(j->pretty ? ": " : ":", j->f);
    }
}

static void open(dl_json *j, const char *key, char c)
{
    lead(j, key);
    fputc(c, j->f);
    if (j->depth < 31) j->depth++;
    j->first[j->depth] = true;
}

static void close_(dl_json *j, char c)
{
    bool empty = j->first[j->depth];
    if (j->depth > 0) j->depth--;
    if (j->pretty && !empty) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
    }
    fputc(c, j->f);
    if (j->depth == 0) fputc('\n', j->f);
}

void dl_json_obj_begin(dl_json *j, const char *key) { open(j, key, '{'); }
void dl_json_obj_end(dl_json *j) { close_(j, '}'); }
void dl_json_arr_begin(dl_json *j, const char *key) { open(j, key, '['); }
void dl_json_arr_end(dl_json *j) { close_(j, ']'); }

static void raw_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

void dl_json_num(dl_json *j, const char *key, double v)
{
    lead(j, key);
    raw_num(j->f, v);
}

void dl_json_f32(dl_json *j, const char *key, float v)
{
    lead(j, key);
    if (!isfinite(v)) {
        fputs("null", j->f);
        return;
    }
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    fputs(buf, j->f);
}

void dl_json_int(dl_json *j, const char *key, long long v)
{
    lead(j, key);
    fprintf(j->f, "%lld", v);
}

void dl_json_str(dl_json *j, const char *key, const char *s)
{
    lead(j, key);
    if (s)
        put_string(j->f, s);
    else
        fputs("null", j->f);
}

void dl_json_bool(dl_json *j, const char *key, bool v)
{
    lead(j, key);
    fputs(v ? "true" : "false", j->f);
}

void dl_json_null(dl_json *j, const char *key)
{
    lead(j, key);
    fputs("null", j->f);
}

/* A flat number array on one line, whatever the pretty setting. */
void dl_json_floats(dl_json *j, const char *key, const float *v, size_t n, size_t stride)
{
    lead(j, key);
    fputc('[', j->f);
    for (size_t i = 0; i < n; i++) {
        if (i) fputc(',', j->f);
        raw_num(j->f, v[i * stride]);
    }
    fputc(']', j->f);
}

void dl_json_doubles(dl_json *j, const char *key, const double *v, size_t n)
{
    lead(j, key);
    fputc('[', j->f);
    for (size_t i = 0; i < n; i++) {
        if (i) fputc(',', j->f);
        if (isfinite(v[i]))
            fprintf(j->f, "%.17g", v[i]);
        else
            fputs("null", j->f);
    }
    fputc(']', j->f);
}
