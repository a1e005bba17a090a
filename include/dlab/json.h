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
/* A setting the user gave as a decimal and the run holds as float32 (a
 * learning rate, a momentum): the fewest significant digits (1 to 9,
 * FLT_DECIMAL_DIG in C17 5.2.4.2.2) that read back as that float, so --lr
 * 0.05 is echoed "0.05", not "0.0500000007". Measured figures keep
 * dl_json_num's 9 digits, which a double parser reads to within 1e-9
 * relative of the float. null when not finite. */
void dl_json_f32(dl_json *j, const char *key, float v);
void dl_json_int(dl_json *j, const char *key, long long v);
void dl_json_str(dl_json *j, const char *key, const char *s);
void dl_json_bool(dl_json *j, const char *key, bool v);
void dl_json_null(dl_json *j, const char *key);
void dl_json_floats(dl_json *j, const char *key, const float *v, size_t n, size_t stride);
/* Like dl_json_floats for doubles, each in %.17g so that it reads back as the
 * same double. */
void dl_json_doubles(dl_json *j, const char *key, const double *v, size_t n);

#endif
