/* Figures with PLplot: one stream per figure, begun and ended here, so no
 * PLplot state outlives a call. PLplot ends the process on a fatal error
 * (plexit), so what could make it fail is checked before plinit: the device
 * exists and the output file can be opened. Recoverable complaints (plabort)
 * are caught and returned as a status.
 *
 * This file holds that stream machinery (device checks, fig_begin, fig_end),
 * the colours and the drawing helpers that figures.c's figures share (axes,
 * legend, text escaping); the figures themselves are in figures.c. */
#include "figures_plot.h"

#include "dlab/figures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DLAB_HAVE_PLPLOT

bool dl_figures_available(char *why, size_t why_len)
{
    if (why && why_len) snprintf(why, why_len, "not drawn: dlab-gpu was built without PLplot");
    return false;
}

#else

/* Okabe & Ito (2008), black left out for the ink and yellow put last: it is
 * the weakest against white. */
const unsigned char fig_series_rgb[N_SERIES][3] = {
    {0, 114, 178},   /* blue */
    {230, 159, 0},   /* orange */
    {0, 158, 115},   /* bluish green */
    {213, 94, 0},    /* vermillion */
    {204, 121, 167}, /* reddish purple */
    {86, 180, 233},  /* sky blue */
    {240, 228, 66},  /* yellow */
};

static char plplot_complaint[256];

static void on_plabort(PLCHAR_VECTOR msg)
{
    if (!plplot_complaint[0]) snprintf(plplot_complaint, sizeof plplot_complaint, "%s", msg);
}

static bool have_device(const char *name)
{
    const char *menu[128], *devs[128];
    const char **pm = menu, **pd = devs;
    int n = 128;
    plgFileDevs(&pm, &pd, &n);
    for (int i = 0; i < n; i++)
        if (strcmp(devs[i], name) == 0) return true;
    return false;
}

bool dl_figures_available(char *why, size_t why_len)
{
    const char *missing = !have_device("pngcairo")   ? "pngcairo"
                          : !have_device("svgcairo") ? "svgcairo"
                                                     : NULL;
    if (missing && why && why_len)
        snprintf(why, why_len,
                 "not drawn: PLplot's %s device is missing "
                 "(install its cairo driver, e.g. plplot-driver-cairo)",
                 missing);
    return missing == NULL;
}

dl_status fig_begin(const char *path, dl_fig_format fmt)
{
    const char *dev = fmt == DL_FIG_SVG ? "svgcairo" : "pngcairo";
    if (!have_device(dev))
        return DL_FAIL(DL_E_RUNTIME, "cannot draw %s: PLplot's %s device is missing", path, dev);
    FILE *probe = fopen(path, "wb");
    if (!probe) return DL_FAIL(DL_E_IO, "cannot draw %s: cannot open it for writing", path);
    fclose(probe);
    plplot_complaint[0] = '\0';
    plsabort(on_plabort);
    plsdev(dev);
    plsfnam(path);
    plspage(0.0, 0.0, DL_FIG_WIDTH, DL_FIG_HEIGHT, 0, 0);
    plscmap0n(16);
    plscol0(BG, 255, 255, 255);
    plscol0(INK, 0, 0, 0);
    plscol0(GRID, 225, 225, 225);
    for (int i = 0; i < N_SERIES; i++)
        plscol0(FIRST_SERIES + i, fig_series_rgb[i][0], fig_series_rgb[i][1], fig_series_rgb[i][2]);
    plinit();
    pladv(0);
    return DL_OK;
}

dl_status fig_end(const char *path)
{
    plend();
    if (plplot_complaint[0])
        return DL_FAIL(DL_E_RUNTIME, "drawing %s: PLplot: %s", path, plplot_complaint);
    return DL_OK;
}

/* PLplot treats '#' as the start of an escape sequence; text from data
 * (class names) has it doubled. */
void fig_escape_text(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 2 < len; p++) {
        if (*p == '#') out[o++] = '#';
        out[o++] = *p;
    }
    out[o] = '\0';
}

/* xtick: the x tick interval, 0 for PLplot's choice. */
void fig_axes(box b, span x, double xtick, span y, const char *xlabel, const char *ylabel,
              const char *title)
{
    plvpor(b.x0, b.x1, b.y0, b.y1);
    plwind(x.lo, x.hi, y.lo, y.hi);
    plschr(0.0, 0.8);
    plwidth(1.0);
    plcol0(GRID);
    plbox("g", xtick, 0, "g", 0.0, 0);
    plcol0(INK);
    plbox("bcnst", xtick, 0, "bcnstv", 0.0, 0);
    plschr(0.0, 0.85);
    plmtex("b", 3.2, 0.5, 0.5, xlabel);
    plmtex("l", 4.6, 0.5, 0.5, ylabel);
    plschr(0.0, 0.95);
    plmtex("t", 1.0, 0.5, 0.5, title);
    plschr(0.0, 1.0);
}

/* A legend of n entries in one row (more rows when there are many),
 * centred along the bottom of the page. */
void fig_legend_bottom(int n, const PLINT *opts, const char *const *text, const PLINT *colors,
                       const PLINT *styles, const char *const *symbols, const PLFLT *sym_scales)
{
    PLINT *text_colors = malloc(sizeof(PLINT) * (size_t)n);
    PLFLT *widths = malloc(sizeof(PLFLT) * (size_t)n);
    PLINT *counts = malloc(sizeof(PLINT) * (size_t)n);
    if (!text_colors || !widths || !counts) goto done;
    for (int i = 0; i < n; i++) text_colors[i] = INK, widths[i] = 2.0, counts[i] = 1;
    int per_row = n < 7 ? n : 7;
    int rows = (n + per_row - 1) / per_row;
    PLFLT w, h;
    plvpor(0.0, 1.0, 0.0, 1.0);
    plwind(0.0, 1.0, 0.0, 1.0);
    plschr(0.0, 0.85);
    pllegend(&w, &h, PL_LEGEND_ROW_MAJOR | PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_BOTTOM | PL_POSITION_INSIDE | PL_POSITION_VIEWPORT, 0.0, 0.025, 0.03, BG,
             GRID, 1, rows, per_row, n, opts, 0.6, 0.85, 2.0, 0.0, text_colors, (PLCHAR_MATRIX)text,
             NULL, NULL, NULL, NULL, colors, styles, widths, colors, sym_scales, counts,
             (PLCHAR_MATRIX)symbols);
done:
    free(text_colors), free(widths), free(counts);
}

#endif
