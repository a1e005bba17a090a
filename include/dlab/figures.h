/* The figures of the reports, drawn with PLplot's cairo devices.
 *
 * Each function draws one figure into one file (PNG or SVG, the same
 * picture, DL_FIG_WIDTH x DL_FIG_HEIGHT pixels or points, white background).
 * Colours are the Okabe-Ito palette, which stays distinct for the common
 * forms of colour blindness and in greyscale print; classes also differ by
 * marker shape, curves by line style.
 *
 * Built without PLplot (DLAB_HAVE_PLPLOT undefined) every function returns
 * DL_E_RUNTIME with a message saying so; dl_figures_available() tells the
 * caller beforehand, with the reason, so a report can say figures were not
 * drawn and carry on.
 */
#ifndef DLAB_FIGURES_H
#define DLAB_FIGURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlab/status.h"

#define DL_FIG_WIDTH  1000
#define DL_FIG_HEIGHT 600
/* Scatter panels draw at most this many rows (an even subsample beyond). */
#define DL_FIG_MAX_POINTS 20000

typedef enum { DL_FIG_PNG = 0, DL_FIG_SVG } dl_fig_format;

const char *dl_fig_extension(dl_fig_format fmt); /* "png" or "svg" */

/* True when figures can be drawn here: PLplot built in and its pngcairo and
 * svgcairo devices present at run time. Otherwise false, with the reason in
 * why (why_len bytes). */
bool dl_figures_available(char *why, size_t why_len);

/* Figure 1 of the factorise task: the rows of the data projected onto the
 * first two principal axes by the SVD (U S, columns 1 and 2) beside the same
 * rows through gradient descent's Û (columns 1 and 2). Û equals U_k S_k only
 * up to an invertible map, so the right panel is a linear image of the left
 * one (rotated, sheared, scaled) when training has converged.
 *
 * With rank 1 each panel plots its single column against the row number.
 * Without an SVD (svd_u NULL) the Û panel is drawn alone; without Û (u_gd
 * NULL: training diverged, or its factors are not finite) the SVD panel is
 * drawn alone with gd_note under it. One of the two must be given. With
 * labels the points are coloured and shaped by class, with a legend. */
typedef struct {
    int m;              /* rows */
    int rank;           /* columns of u_gd */
    const float *u_gd;  /* m x rank, packed, or NULL */
    const float *svd_u; /* m x ld_u left singular vectors, or NULL */
    int ld_u;
    const double *s;       /* singular values (with svd_u) */
    const int32_t *labels; /* m class ids in [0, n_classes), or NULL */
    int n_classes;
    char *const *class_names; /* n_classes names, or NULL: "class 1", ... */
    const char *gd_note;      /* without u_gd: why Û is not drawn, or NULL */
} dl_fig_factorise;

dl_status dl_figure_factorise(const char *path, dl_fig_format fmt, const dl_fig_factorise *f);

/* Figure 2 of the mlp task: training and validation loss per epoch in the
 * left panel, training and validation accuracy per epoch in the right one.
 * Values that are not finite (a diverged run) break the curves. */
typedef struct {
    int epochs;
    const float *train_loss, *val_loss; /* epoch e (0-based) at [e * stride] */
    const float *train_acc, *val_acc;
    size_t stride; /* elements between epochs; 0 means 1 */
} dl_fig_mlp;

dl_status dl_figure_mlp(const char *path, dl_fig_format fmt, const dl_fig_mlp *f);

/* The distribution of one final figure over many models (--seeds N): a
 * histogram of `bins` equal bins over [lo, hi] (values outside are counted
 * in the end bins; non-finite ones are left out and counted in the title).
 * With log10_x the values are positive quantities binned by their decimal
 * logarithm (lo and hi are then exponents) and the axis reads in powers of
 * ten. An optional band [band_lo, band_hi] (NaN: none) is shaded, e.g. the
 * lab's 40-55 % validation accuracy. */
typedef struct {
    const float *values;
    const double *values_d; /* the same in double, used instead of values when not NULL */
    int n;
    size_t stride; /* elements between values; 0 means 1 */
    double lo, hi;
    int bins;
    bool log10_x;
    double band_lo, band_hi;
    const char *xlabel, *title;
    /* With log10_x: values <= 0 have no logarithm; they are left out and
     * drawn as a grey bar left of the axis and counted in the title as
     * "grey: N <below_label>" (NULL: "at or below 0"). */
    const char *below_label;
} dl_fig_histogram;

dl_status dl_figure_histogram(const char *path, dl_fig_format fmt, const dl_fig_histogram *h);

/* Figure 4 of the mlp task: a confusion matrix, one cell per (true class,
 * predicted class) holding its count, true classes as rows from the top,
 * predicted classes as columns. A cell is shaded by the fraction of its
 * true class's rows it holds (white for none, dark blue for all), so the
 * diagonal reads as per-class recall. Counts are printed in the cells up to
 * 20 classes. */
typedef struct {
    int classes;
    const int *counts;        /* classes x classes, row = true class */
    char *const *class_names; /* classes names, or NULL: "class 1", ... */
    const char *title;
} dl_fig_confusion;

dl_status dl_figure_confusion(const char *path, dl_fig_format fmt, const dl_fig_confusion *c);

#endif
