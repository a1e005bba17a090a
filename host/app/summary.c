#include "dlab/summary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int dl_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(const double *sorted, int n, double q)
{
    double pos = q * (n - 1);
    int lo = (int)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

/* Either v (float) or vd (double) is given. */
static void stats_compute(const float *v, const double *vd, int n, int stride, dl_stats *out)
{
    *out = (dl_stats){.min = NAN, .p10 = NAN, .median = NAN, .p90 = NAN, .max = NAN, .mean = NAN};
    double *s = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!s) return;
    int k = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double x = vd ? vd[(size_t)i * stride] : v[(size_t)i * stride];
        if (isfinite(x))
            s[k++] = x, sum += x;
        else
            out->non_finite++;
    }
    out->n = k;
    if (k > 0) {
        qsort(s, (size_t)k, sizeof(double), dl_cmp_double);
        out->min = s[0];
        out->max = s[k - 1];
        out->p10 = quantile(s, k, 0.10);
        out->median = quantile(s, k, 0.50);
        out->p90 = quantile(s, k, 0.90);
        out->mean = sum / k;
    }
    free(s);
}

void dl_stats_compute(const float *v, int n, int stride, dl_stats *out)
{
    stats_compute(v, NULL, n, stride, out);
}

void dl_stats_compute_d(const double *v, int n, int stride, dl_stats *out)
{
    stats_compute(NULL, v, n, stride, out);
}

void dl_print_histogram(FILE *f, const float *v, int n, int stride, double lo, double hi, int bins,
                        const char *fmt)
{
    enum { WIDTH = 40 };
    if (bins < 1 || !(hi > lo)) return;
    int *count = calloc((size_t)bins, sizeof(int));
    if (!count) return;
    int most = 0;
    for (int i = 0; i < n; i++) {
        double x = v[(size_t)i * stride];
        if (!isfinite(x)) continue;
        int b = (int)floor((x - lo) / (hi - lo) * bins);
        b = b < 0 ? 0 : b >= bins ? bins - 1 : b;
        if (++count[b] > most) most = count[b];
    }
    if (most == 0) { /* no finite value: nothing to draw */
        free(count);
        return;
    }
    /* Empty bins before the first and after the last count say nothing. */
    int first = 0, last = bins - 1;
    while (first < last && count[first] == 0) first++;
    while (last > first && count[last] == 0) last--;
    for (int b = first; b <= last; b++) {
        char left[32], right[32];
        snprintf(left, sizeof left, fmt, lo + (hi - lo) * b / bins);
        snprintf(right, sizeof right, fmt, lo + (hi - lo) * (b + 1) / bins);
        int bar = most ? (count[b] * WIDTH + most - 1) / most : 0;
        fprintf(f, "  %8s - %-8s |%-*.*s| %d\n", left, right, WIDTH, bar,
                "########################################", count[b]);
    }
    free(count);
}

/* The one writer behind both forms; "undefined" only when `counted`. */
static void json_stats(dl_json *j, const char *key, const dl_stats *s, bool counted, int undefined)
{
    dl_json_obj_begin(j, key);
    dl_json_int(j, "n", s->n);
    dl_json_int(j, "non_finite", s->non_finite);
    if (counted) dl_json_int(j, "undefined", undefined);
    dl_json_num(j, "min", s->min);
    dl_json_num(j, "p10", s->p10);
    dl_json_num(j, "median", s->median);
    dl_json_num(j, "p90", s->p90);
    dl_json_num(j, "max", s->max);
    dl_json_num(j, "mean", s->mean);
    dl_json_obj_end(j);
}

void dl_json_stats(dl_json *j, const char *key, const dl_stats *s)
{
    json_stats(j, key, s, false, 0);
}

void dl_json_stats_counted(dl_json *j, const char *key, const dl_stats *s, int undefined)
{
    json_stats(j, key, s, true, undefined);
}

void dl_print_stats(FILE *f, const char *label, const dl_stats *s, const char *fmt)
{
    const char *names[5] = {"min", "p10", "median", "p90", "max"};
    double vals[5] = {s->min, s->p10, s->median, s->p90, s->max};
    if (s->n == 0) {
        /* No finite value: there is no distribution to print. */
        fprintf(f, "  %s undefined: all %d model%s diverged\n", label, s->non_finite,
                s->non_finite == 1 ? "" : "s");
        return;
    }
    fprintf(f, "  %s over %d model%s:", label, s->n, s->n == 1 ? "" : "s");
    for (int i = 0; i < 5; i++) {
        fprintf(f, "  %s ", names[i]);
        fprintf(f, fmt, vals[i]);
    }
    if (s->non_finite) fprintf(f, "  (%d diverged)", s->non_finite);
    fputc('\n', f);
}

int dl_decade_span(const double *v, int n, int *lo, int *hi)
{
    int k = 0;
    *lo = 0, *hi = 1;
    for (int i = 0; i < n; i++) {
        if (!(v[i] > 0.0) || !isfinite(v[i])) continue;
        int d = (int)floor(log10(v[i]));
        if (k == 0 || d < *lo) *lo = d;
        if (k == 0 || d + 1 > *hi) *hi = d + 1;
        k++;
    }
    return k;
}

void dl_print_decade_histogram(FILE *f, const double *v, int n, const char *below_label)
{
    enum { WIDTH = 40, MAX_ROWS = 12 };
    int lo, hi;
    int positive = dl_decade_span(v, n, &lo, &hi);
    int width = (hi - lo + MAX_ROWS - 1) / MAX_ROWS; /* decades per row */
    int rows = positive ? (hi - lo + width - 1) / width : 0;
    int count[MAX_ROWS] = {0}, below = 0, most = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        if (!(v[i] > 0.0)) {
            below++;
            continue;
        }
        int r = ((int)floor(log10(v[i])) - lo) / width;
        count[r < rows ? r : rows - 1]++;
    }
    for (int r = 0; r < rows; r++) most = count[r] > most ? count[r] : most;
    most = below > most ? below : most;
    int label_w = below && (int)strlen(below_label) > 19 ? (int)strlen(below_label) : 19;
    if (below) {
        int bar = (below * WIDTH + most - 1) / most;
        fprintf(f, "  %-*s |%-*.*s| %d\n", label_w, below_label, WIDTH, bar,
                "########################################", below);
    }
    for (int r = 0; r < rows; r++) {
        char left[16], right[16], range[40];
        snprintf(left, sizeof left, "1e%+d", lo + r * width);
        snprintf(right, sizeof right, "1e%+d", lo + (r + 1) * width);
        snprintf(range, sizeof range, "%s - %s", left, right);
        int bar = most ? (count[r] * WIDTH + most - 1) / most : 0;
        fprintf(f, "  %-*s |%-*.*s| %d\n", label_w, range, WIDTH, bar,
                "########################################", count[r]);
    }
}
