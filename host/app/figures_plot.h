/* Private to figures.c and figures_plot.c: the colours, the PLplot stream
 * (fig_begin/fig_end) and the drawing helpers that the figures share. Only
 * for builds with PLplot (DLAB_HAVE_PLPLOT). */
#ifndef DLAB_APP_FIGURES_PLOT_H
#define DLAB_APP_FIGURES_PLOT_H

#ifdef DLAB_HAVE_PLPLOT

#include "dlab/figures.h"

#include <math.h>
#include <stddef.h>
#include <plplot.h>

/* cmap0 entries: 0 is the background. */
enum { BG = 0, INK = 1, GRID = 2, FIRST_SERIES = 3, N_SERIES = 7 };

/* Okabe & Ito (2008); see figures_plot.c. */
extern const unsigned char fig_series_rgb[N_SERIES][3];

/* Sets up a stream for one figure at path; fig_end closes it and returns
 * what PLplot complained of (see figures_plot.c). */
dl_status fig_begin(const char *path, dl_fig_format fmt);
dl_status fig_end(const char *path);

/* --- axes ------------------------------------------------------------- */

typedef struct {
    double lo, hi;
} span;

static inline void span_add(span *s, double v)
{
    if (!isfinite(v)) return;
    if (v < s->lo) s->lo = v;
    if (v > s->hi) s->hi = v;
}

static inline span span_empty(void) { return (span){INFINITY, -INFINITY}; }

/* Room around the data; a flat or empty span gets a sensible width. */
static inline span span_padded(span s, double frac)
{
    if (!(s.lo <= s.hi)) return (span){0.0, 1.0};
    double w = s.hi - s.lo;
    if (w <= 0.0) {
        double d = fabs(s.lo) > 0 ? 0.1 * fabs(s.lo) : 1.0;
        return (span){s.lo - d, s.hi + d};
    }
    return (span){s.lo - frac * w, s.hi + frac * w};
}

typedef struct {
    double x0, x1, y0, y1; /* viewport, normalised page coordinates */
} box;

void fig_escape_text(const char *in, char *out, size_t len);
void fig_axes(box b, span x, double xtick, span y, const char *xlabel, const char *ylabel,
              const char *title);
void fig_legend_bottom(int n, const PLINT *opts, const char *const *text, const PLINT *colors,
                       const PLINT *styles, const char *const *symbols, const PLFLT *sym_scales);

#endif /* DLAB_HAVE_PLPLOT */

#endif
