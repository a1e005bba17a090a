#include "dlab/predictions_out.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A CSV field, quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

dl_status dl_predictions_csv_write(FILE *f, const void *arg)
{
    const dl_predictions_csv *c = arg;
    const dl_predictions *p = c->p;
    fputs(c->split ? "row,split,label,predicted" : "row,label,predicted", f);
    for (int k = 0; k < p->classes; k++) {
        char name[320];
        snprintf(name, sizeof name, "p_%s", c->class_names[k]);
        fputc(',', f);
        csv_field(f, name);
    }
    fputc('\n', f);
    for (int i = 0; i < p->rows; i++) {
        fprintf(f, "%d,", i + 1);
        if (c->split) fputs(c->split[i] ? "validation," : "train,", f);
        int y = c->labels ? c->labels[i] : -1;
        if (y >= 0 && y < p->classes) csv_field(f, c->class_names[y]);
        fputc(',', f);
        if (p->predicted[i] >= 0 && p->predicted[i] < p->classes)
            csv_field(f, c->class_names[p->predicted[i]]);
        for (int k = 0; k < p->classes; k++) {
            float v = p->prob[(size_t)i * p->classes + k];
            if (isfinite(v))
                fprintf(f, ",%.9g", (double)v);
            else
                fputs(",nan", f);
        }
        fputc('\n', f);
    }
    return DL_OK;
}

void dl_json_confusion(dl_json *j, const char *key, const int *counts, int classes)
{
    if (!counts) {
        dl_json_null(j, key);
        return;
    }
    dl_json_arr_begin(j, key);
    for (int t = 0; t < classes; t++) {
        dl_json_arr_begin(j, NULL);
        for (int q = 0; q < classes; q++) dl_json_int(j, NULL, counts[(size_t)t * classes + q]);
        dl_json_arr_end(j);
    }
    dl_json_arr_end(j);
}

/* Characters (UTF-8 code points) in s. */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

/* s in a field of `width` characters: cut to width - 1 and an ellipsis when
 * longer (at a character boundary), padded with spaces on the left (right
 * aligned) or the right. */
static void put_field(FILE *f, const char *s, int width, bool right)
{
    int w = text_width(s);
    if (w > width) {
        int keep = width - 1, n = 0;
        const char *p = s;
        for (; *p; p++) {
            if (((unsigned char)*p & 0xC0) != 0x80 && n++ == keep) break;
        }
        fprintf(f, "%.*s\xe2\x80\xa6", (int)(p - s), s); /* exactly `width` characters */
        return;
    }
    if (right)
        fprintf(f, "%*s%s", width - w, "", s);
    else
        fprintf(f, "%s%*s", s, width - w, "");
}

void dl_print_confusion(FILE *f, const char *title, const int *counts, int classes,
                        char *const *class_names)
{
    /* Columns as wide as the longest name (at most NAME_MAX characters, a
     * longer one cut with an ellipsis) or the largest count. */
    enum { NAME_MAX = 40 };
    int width = 1;
    for (int q = 0; q < classes; q++) {
        int w = text_width(class_names[q]);
        width = w > width ? w : width;
    }
    width = width > NAME_MAX ? NAME_MAX : width;
    for (size_t i = 0; i < (size_t)classes * classes; i++) {
        char digits[16];
        int w = snprintf(digits, sizeof digits, "%d", counts[i]);
        width = w > width ? w : width;
    }
    fprintf(f, "  %s (rows: true class, columns: predicted)\n", title);
    fprintf(f, "    %*s", width, "");
    for (int q = 0; q < classes; q++) {
        fputs("  ", f);
        put_field(f, class_names[q], width, true);
    }
    fputc('\n', f);
    for (int t = 0; t < classes; t++) {
        fputs("    ", f);
        put_field(f, class_names[t], width, false);
        for (int q = 0; q < classes; q++)
            fprintf(f, "  %*d", width, counts[(size_t)t * classes + q]);
        fputc('\n', f);
    }
}
