/* report.html: one self-contained HTML5 page per run, written under --out
 * beside the other files. It reads like the lab's report: what was run, the
 * headline numbers, the figures inline (the SVG files' content embedded, so
 * the page needs neither the network nor the files beside it), the
 * distribution over seeds with --seeds, and the confusion matrix for mlp.
 * All text from data and options is escaped; a Content-Security-Policy
 * forbids the page any fetch.
 */
#ifndef DLAB_REPORT_HTML_H
#define DLAB_REPORT_HTML_H

#include <stdbool.h>
#include <stdio.h>

#include "dlab/factorise.h"
#include "dlab/factorise_checks.h"
#include "dlab/mlp.h"
#include "dlab/report.h"

/* HTML-escapes s onto f: & < > " ' as references; bytes that are not valid
 * UTF-8, and control characters other than tab and line breaks, become
 * U+FFFD. */
void dl_html_escape(FILE *f, const char *s);

/* The factorise task's page. */
typedef struct {
    const char *source; /* the data file or "synthetic MxN" */
    bool centred;
    const dl_factorise_config *cfg;
    const dl_factorise_result *r;
    const char *backend, *device;
    const double *angles_deg; /* r->rank principal angles, or NULL */
    double aligned_residual;
    const char *align_note; /* why there are no angles */
    const double *gaps;     /* r->seeds gaps to the SVD optimum, or NULL */
    const double *rel_gaps; /* r->seeds relative gaps, or NULL when undefined for the data */
    const char *gap_why;    /* why the relative gap is undefined */
    const char (*warnings)[DL_CHECKS_LINE]; /* n_warnings one-line warnings */
    int n_warnings;
    const char *factors_note; /* why U and V were not written, or NULL/"" */
    const dl_out *out;        /* the files written so far (figures included) */
} dl_html_factorise;

dl_status dl_html_write_factorise(FILE *f, const void *page); /* a dl_write_fn */

/* The mlp task's page. */
typedef struct {
    const char *source;
    const dl_mlp_config *cfg;
    const dl_mlp_result *r;
    const char *backend, *device;
    char *const *class_names;   /* r->classes names */
    const int *confusion;       /* r->classes^2 validation counts, or NULL */
    const char *confusion_note; /* why there is no confusion matrix */
    double band_lo, band_hi;    /* the lab's worrying validation band */
    int in_band;                /* models whose validation accuracy is in it */
    int measured;               /* models with a validation accuracy (finite loss) */
    const dl_out *out;
} dl_html_mlp;

dl_status dl_html_write_mlp(FILE *f, const void *page); /* a dl_write_fn */

#endif
