/* A minimal streaming JSON writer: enough for reports, always valid output
 * (strings escaped, non-finite numbers written as null). */
#ifndef DLAB_JSON_H
#define DLAB_JSON_H

#include <stdbool.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    int depth;
    bool first[32]; /* per nesting level: nothing written yet */
    bool pretty;
} dl_json;

void dl_json_init(dl_json *j, FILE *f, bool pretty);
void dl_json_obj_begin(dl_json *j, const char *key); /* key NULL inside arrays / at top */
void dl_json_obj_end(dl_json *j);
void dl_json_arr_begin(dl_json *j, const char *key);
void dl_json_arr_end(dl_json *j);
void dl_json_num(dl_json *j, const char *key, double v);
void dl_json_int(dl_json *j, const char *key, long long v);
void dl_json_str(dl_json *j, const char *key, const char *s);
void dl_json_bool(dl_json *j, const char *key, bool v);
void dl_json_null(dl_json *j, const char *key);
void dl_json_floats(dl_json *j, const char *key, const float *v, size_t n, size_t stride);
/* Like dl_json_floats for doubles, each in %.17g so that it reads back as the
 * same double. */
void dl_json_doubles(dl_json *j, const char *key, const double *v, size_t n);

#endif
