/* Distributions over many models (--seeds N): order statistics, a text
 * histogram, and their JSON form. */
#ifndef DLAB_SUMMARY_H
#define DLAB_SUMMARY_H

#include <stdio.h>

#include "dlab/json.h"

typedef struct {
    int n;          /* finite values counted */
    int non_finite; /* NaN/Inf values left out (diverged models) */
    double min, p10, median, p90, max, mean;
} dl_stats;

/* "" for one, "s" otherwise: "1 epoch", "2 epochs". */
static inline const char *dl_plural(long long n) { return n == 1 ? "" : "s"; }

/* qsort comparator: ascending doubles. */
int dl_cmp_double(const void *a, const void *b);

/* Order statistics of v[0..n) (stride apart); percentiles by linear
 * interpolation between closest ranks. */
void dl_stats_compute(const float *v, int n, int stride, dl_stats *out);
/* The same over doubles (figures in the data's units may be beyond float). */
void dl_stats_compute_d(const double *v, int n, int stride, dl_stats *out);

/* A horizontal text histogram of `bins` equal bins over [lo, hi] (values
 * outside are clamped into the end bins), one line per bin from the first
 * non-empty bin to the last:
 *   "  0.90 - 0.93 |#########            |  41"
 * `fmt` formats the bin edges (e.g. "%.2f"). Non-finite values are left
 * out; with none finite nothing is printed. */
void dl_print_histogram(FILE *f, const float *v, int n, int stride, double lo, double hi, int bins,
                        const char *fmt);

/* The decades that the positive finite values of v[0..n) span: 10^lo is at
 * or below the smallest, 10^hi above the largest (lo < hi). Returns how many
 * values are positive and finite; with none, lo = 0 and hi = 1. */
int dl_decade_span(const double *v, int n, int *lo, int *hi);

/* A text histogram of v[0..n) by order of magnitude, one line per decade
 * (several decades a line past 12) over the decades the data span, so that
 * no value is clamped into an end bin; values <= 0 get their own first line
 * labelled `below_label` (e.g. rounding under an optimum), non-finite ones
 * are left out:
 *   "  1e-7 - 1e-6         |#########            |  41" */
void dl_print_decade_histogram(FILE *f, const double *v, int n, const char *below_label);

/* "key": {"n":..,"min":..,"p10":..,"median":..,"p90":..,"max":..,"mean":..} */
void dl_json_stats(dl_json *j, const char *key, const dl_stats *s);
/* The same with "undefined": the count of values left out before `s` was
 * computed because the data gives them no meaning (e.g. a relative gap when
 * the optimum is 0), placed after "non_finite". */
void dl_json_stats_counted(dl_json *j, const char *key, const dl_stats *s, int undefined);

/* "  min 0.72  p10 0.88  median 0.96  p90 0.98  max 1.00" with `fmt` per value;
 * with no finite value, one line saying the statistic is undefined. */
void dl_print_stats(FILE *f, const char *label, const dl_stats *s, const char *fmt);

#endif
