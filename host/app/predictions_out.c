#include "dlab/predictions_out.h"

#include <math.h>
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

void dl_print_confusion(FILE *f, const char *title, const int *counts, int classes,
                        char *const *class_names)
{
    enum { NAME = 15 };
    fprintf(f, "  %s (rows: true class, columns: predicted)\n", title);
    fprintf(f, "    %-*s", NAME, "");
    for (int q = 0; q < classes; q++) fprintf(f, "  %*.*s", NAME, NAME, class_names[q]);
    fputc('\n', f);
    for (int t = 0; t < classes; t++) {
        fprintf(f, "    %-*.*s", NAME, NAME, class_names[t]);
        for (int q = 0; q < classes; q++)
            fprintf(f, "  %*d", NAME, counts[(size_t)t * classes + q]);
        fputc('\n', f);
    }
}
