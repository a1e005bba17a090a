/* The figures: projections (1), learning curves (2), histogram over models
 * (3) and confusion matrix (4), drawn with the stream and helpers of
 * figures_plot.c; without PLplot each reports that it cannot draw. */
#include "dlab/figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dl_fig_extension(dl_fig_format fmt) { return fmt == DL_FIG_SVG ? "svg" : "png"; }

#ifndef DLAB_HAVE_PLPLOT

dl_status dl_figure_factorise(const char *path, dl_fig_format fmt, const dl_fig_factorise *f)
{
    return DL_FAIL(DL_E_RUNTIME, "cannot draw %s: dlab-gpu was built without PLplot", path);
}

dl_status dl_figure_mlp(const char *path, dl_fig_format fmt, const dl_fig_mlp *f)
{
    return DL_FAIL(DL_E_RUNTIME, "cannot draw %s: dlab-gpu was built without PLplot", path);
}

dl_status dl_figure_histogram(const char *path, dl_fig_format fmt, const dl_fig_histogram *h)
{
    return DL_FAIL(DL_E_RUNTIME, "cannot draw %s: dlab-gpu was built without PLplot", path);
}

dl_status dl_figure_confusion(const char *path, dl_fig_format fmt, const dl_fig_confusion *c)
{
    return DL_FAIL(DL_E_RUNTIME, "cannot draw %s: dlab-gpu was built without PLplot", path);
}

#else

#include "figures_plot.h"

/* Filled glyphs of DejaVu Sans (cairo's default sans), one per class, with
 * scales that give them about the same visual weight. */
static const char *const marker[] = {"●", "▲", "■", "◆", "▼", "★", "⬟"};
static const double marker_scale[] = {1.0, 0.95, 0.85, 1.0, 0.95, 1.05, 1.0};
#define N_MARKERS   ((int)(sizeof marker / sizeof marker[0]))

/* --- figure 1: projections ---------------------------------------------- */

typedef struct {
    const char *title, *xlabel, *ylabel;
    double *x, *y; /* n points */
} scatter;

/* Draws the points of each class with its colour and marker. Many points
 * get smaller, translucent markers so that dense regions stay readable. */
static void scatter_points(const scatter *s, int n, const int *cls, int n_classes, double *bx,
                           double *by)
{
    double size = n > 300 ? sqrt(300.0 / n) : 1.0;
    if (size < 0.35) size = 0.35;
    double alpha = n > 300 ? 0.55 : 1.0;
    for (int i = 0; i < N_SERIES; i++)
        plscol0a(FIRST_SERIES + i, fig_series_rgb[i][0], fig_series_rgb[i][1], fig_series_rgb[i][2],
                 alpha);
    for (int c = 0; c < n_classes; c++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (cls[i] == c && isfinite(s->x[i]) && isfinite(s->y[i]))
                bx[k] = s->x[i], by[k] = s->y[i], k++;
        if (!k) continue;
        plcol0(FIRST_SERIES + c % N_SERIES);
        plschr(0.0, 0.8 * size * marker_scale[c % N_MARKERS]);
        plstring(k, bx, by, marker[c % N_MARKERS]);
    }
    plschr(0.0, 1.0);
    for (int i = 0; i < N_SERIES; i++)
        plscol0a(FIRST_SERIES + i, fig_series_rgb[i][0], fig_series_rgb[i][1], fig_series_rgb[i][2],
                 1.0);
}

static span scatter_span(const double *v, int n)
{
    span s = span_empty();
    for (int i = 0; i < n; i++) span_add(&s, v[i]);
    return span_padded(s, 0.06);
}

static void factorise_legend(const dl_fig_factorise *f)
{
    int n = f->n_classes;
    PLINT *opts = malloc(sizeof(PLINT) * (size_t)n), *colors = malloc(sizeof(PLINT) * (size_t)n);
    PLINT *styles = malloc(sizeof(PLINT) * (size_t)n);
    PLFLT *scales = malloc(sizeof(PLFLT) * (size_t)n);
    const char **text = malloc(sizeof(char *) * (size_t)n);
    const char **syms = malloc(sizeof(char *) * (size_t)n);
    char(*names)[64] = malloc(sizeof *names * (size_t)n);
    if (opts && colors && styles && scales && text && syms && names) {
        for (int c = 0; c < n; c++) {
            char raw[64];
            if (f->class_names)
                snprintf(raw, sizeof raw, "%s", f->class_names[c]);
            else
                snprintf(raw, sizeof raw, "class %d", c + 1);
            fig_escape_text(raw, names[c], sizeof names[c]);
            opts[c] = PL_LEGEND_SYMBOL;
            colors[c] = FIRST_SERIES + c % N_SERIES;
            styles[c] = 1;
            scales[c] = 0.8 * marker_scale[c % N_MARKERS];
            text[c] = names[c];
            syms[c] = marker[c % N_MARKERS];
        }
        fig_legend_bottom(n, opts, text, colors, styles, syms, scales);
    }
    free(opts), free(colors), free(styles), free(scales), free(text), free(syms), free(names);
}

dl_status dl_figure_factorise(const char *path, dl_fig_format fmt, const dl_fig_factorise *f)
{
    if (f->m < 1 || f->rank < 1 || (!f->u_gd && !f->svd_u))
        return DL_FAIL(DL_E_USAGE, "figure 1: nothing to draw (%d rows, rank %d)", f->m, f->rank);
    /* An even subsample of the rows when there are very many. */
    int step = (f->m + DL_FIG_MAX_POINTS - 1) / DL_FIG_MAX_POINTS, n = (f->m + step - 1) / step;
    bool two = f->rank >= 2;
    int panels = (f->svd_u ? 1 : 0) + (f->u_gd ? 1 : 0);
    double *buf = malloc(sizeof(double) * (size_t)n * 6);
    int *cls = malloc(sizeof(int) * (size_t)n);
    if (!buf || !cls) {
        free(buf), free(cls);
        return DL_FAIL(DL_E_MEMORY, "figure 1: out of host memory for %d points", n);
    }
    scatter sc[2] = {
        {.x = buf, .y = buf + n},
        {.x = buf + 2 * (size_t)n, .y = buf + 3 * (size_t)n},
    };
    double *bx = buf + 4 * (size_t)n, *by = buf + 5 * (size_t)n;
    scatter *svd = f->svd_u ? &sc[0] : NULL;
    scatter *gd = !f->u_gd ? NULL : svd ? &sc[1] : &sc[0];
    int n_classes = f->labels && f->n_classes > 0 ? f->n_classes : 1;
    for (int p = 0; p < n; p++) {
        int i = p * step;
        cls[p] = f->labels ? f->labels[i] : 0;
        if (gd) {
            const float *g = f->u_gd + (size_t)i * f->rank;
            gd->x[p] = two ? g[0] : i + 1;
            gd->y[p] = two ? g[1] : g[0];
        }
        if (svd) {
            const float *u = f->svd_u + (size_t)i * f->ld_u;
            svd->x[p] = two ? (double)u[0] * f->s[0] : i + 1;
            svd->y[p] = two ? (double)u[1] * f->s[1] : (double)u[0] * f->s[0];
        }
    }
    if (svd) {
        svd->title = two ? "SVD: principal axes 1 and 2 (U·S)" : "SVD: principal axis 1 (U·S)";
        svd->xlabel = two ? "axis 1  (column 1 of U·S)" : "row";
        svd->ylabel = two ? "axis 2  (column 2 of U·S)" : "axis 1  (U·S)";
    }
    if (gd) {
        if (svd)
            gd->title = two ? "Gradient descent: columns 1 and 2 of Û" : "Gradient descent: Û";
        else
            gd->title = two ? "Gradient descent: columns 1 and 2 of Û  (no SVD baseline)"
                            : "Gradient descent: Û  (no SVD baseline)";
        gd->xlabel = two ? "column 1 of Û" : "row";
        gd->ylabel = two ? "column 2 of Û" : "Û  (rank 1)";
    }

    dl_status st = fig_begin(path, fmt);
    if (st == DL_OK) {
        bool legend = f->labels && f->n_classes > 0;
        double y0 = legend ? 0.24 : 0.13;
        box boxes2[2] = {{0.08, 0.475, y0, 0.91}, {0.575, 0.97, y0, 0.91}};
        box boxes1[1] = {{0.1, 0.95, y0, 0.91}};
        for (int p = 0; p < panels; p++) {
            fig_axes(panels == 2 ? boxes2[p] : boxes1[0], scatter_span(sc[p].x, n), 0.0,
                     scatter_span(sc[p].y, n), sc[p].xlabel, sc[p].ylabel, sc[p].title);
            scatter_points(&sc[p], n, cls, n_classes, bx, by);
        }
        if (legend) factorise_legend(f);
        if (!gd && f->gd_note) { /* say why the Û panel is missing */
            char note[160];
            fig_escape_text(f->gd_note, note, sizeof note);
            plvpor(0.0, 1.0, 0.0, 1.0);
            plschr(0.0, 0.7);
            plcol0(INK);
            plmtex("b", -1.2, 0.01, 0.0, note);
        }
        if (step > 1) { /* say so when not every row is drawn */
            char note[96];
            snprintf(note, sizeof note, "every %d%s row of %d drawn", step,
                     step % 10 == 1 && step % 100 != 11   ? "st"
                     : step % 10 == 2 && step % 100 != 12 ? "nd"
                     : step % 10 == 3 && step % 100 != 13 ? "rd"
                                                          : "th",
                     f->m);
            plvpor(0.0, 1.0, 0.0, 1.0);
            plschr(0.0, 0.7);
            plcol0(INK);
            plmtex("b", -1.2, 0.99, 1.0, note);
        }
        st = fig_end(path);
    }
    free(buf), free(cls);
    return st;
}

/* --- figure 2: learning curves ------------------------------------------ */

/* The finite runs of y (epoch e at y[e*stride]) as polylines; a run of one
 * epoch is drawn as a dot so that it stays visible. */
static void curve(int epochs, const float *y, size_t stride, double *bx, double *by, bool dots)
{
    int k = 0;
    for (int e = 0; e <= epochs; e++) {
        double v = e < epochs ? y[(size_t)e * stride] : NAN;
        if (isfinite(v)) {
            bx[k] = e + 1, by[k] = v, k++;
            continue;
        }
        if (k > 1) plline(k, bx, by);
        if (k == 1 || (dots && k > 0)) plstring(k, bx, by, "●");
        k = 0;
    }
}

static span curves_span(int epochs, const float *a, const float *b, size_t stride)
{
    span s = span_empty();
    for (int e = 0; e < epochs; e++)
        span_add(&s, a[(size_t)e * stride]), span_add(&s, b[(size_t)e * stride]);
    return s;
}

dl_status dl_figure_mlp(const char *path, dl_fig_format fmt, const dl_fig_mlp *f)
{
    if (f->epochs < 1) return DL_FAIL(DL_E_USAGE, "figure 2: no epochs to draw");
    size_t stride = f->stride ? f->stride : 1;
    double *bx = malloc(sizeof(double) * (size_t)f->epochs);
    double *by = malloc(sizeof(double) * (size_t)f->epochs);
    if (!bx || !by) {
        free(bx), free(by);
        return DL_FAIL(DL_E_MEMORY, "figure 2: out of host memory for %d epochs", f->epochs);
    }
    span ex = f->epochs > 1 ? (span){1.0, f->epochs} : (span){0.5, 1.5};
    span loss = curves_span(f->epochs, f->train_loss, f->val_loss, stride);
    if (loss.lo <= loss.hi && loss.lo >= 0.0) loss.lo = 0.0; /* losses are read against zero */
    loss = span_padded(loss, 0.04);
    span acc = curves_span(f->epochs, f->train_acc, f->val_acc, stride);
    acc = (span){acc.lo <= acc.hi && acc.lo < 0.0 ? acc.lo : 0.0, acc.hi > 1.0 ? acc.hi : 1.0};
    acc = span_padded(acc, 0.03);
    bool dots = f->epochs <= 40;
    const PLINT style_train = 1, style_val = 3; /* solid, long dashes */

    dl_status st = fig_begin(path, fmt);
    if (st == DL_OK) {
        box b[2] = {{0.08, 0.475, 0.22, 0.91}, {0.575, 0.97, 0.22, 0.91}};
        const float *series[2][2] = {{f->train_loss, f->val_loss}, {f->train_acc, f->val_acc}};
        const char *title[2] = {"Loss per epoch", "Accuracy per epoch"};
        const char *ylabel[2] = {"cross-entropy loss (mean over rows)",
                                 "accuracy (fraction of rows)"};
        for (int p = 0; p < 2; p++) {
            fig_axes(b[p], ex, f->epochs < 8 ? 1.0 : 0.0, p == 0 ? loss : acc, "epoch", ylabel[p],
                     title[p]);
            plwidth(2.0);
            for (int s = 0; s < 2; s++) {
                plcol0(FIRST_SERIES + s);
                pllsty(s == 0 ? style_train : style_val);
                plschr(0.0, 0.5);
                curve(f->epochs, series[p][s], stride, bx, by, dots);
            }
            pllsty(1);
            plwidth(1.0);
            plschr(0.0, 1.0);
        }
        PLINT opts[2] = {PL_LEGEND_LINE | (dots ? PL_LEGEND_SYMBOL : 0),
                         PL_LEGEND_LINE | (dots ? PL_LEGEND_SYMBOL : 0)};
        const char *text[2] = {"training", "validation"};
        PLINT colors[2] = {FIRST_SERIES, FIRST_SERIES + 1}, styles[2] = {style_train, style_val};
        const char *syms[2] = {"●", "●"};
        PLFLT scales[2] = {0.5, 0.5};
        fig_legend_bottom(2, opts, text, colors, styles, syms, scales);
        st = fig_end(path);
    }
    free(bx), free(by);
    return st;
}

/* --- histogram over models ----------------------------------------------- */

dl_status dl_figure_histogram(const char *path, dl_fig_format fmt, const dl_fig_histogram *h)
{
    if (h->n < 1 || h->bins < 1 || !(h->hi > h->lo))
        return DL_FAIL(DL_E_USAGE, "histogram: nothing to draw (%d values, %d bins)", h->n,
                       h->bins);
    size_t stride = h->stride ? h->stride : 1;
    int *count = calloc((size_t)h->bins, sizeof(int));
    if (!count) return DL_FAIL(DL_E_MEMORY, "histogram: out of host memory");
    int most = 0, left_out = 0, below = 0;
    for (int i = 0; i < h->n; i++) {
        double v = h->values_d ? h->values_d[(size_t)i * stride] : h->values[(size_t)i * stride];
        if (!isfinite(v)) {
            left_out++;
            continue;
        }
        if (h->log10_x) {
            if (!(v > 0)) {
                below++;
                continue;
            }
            v = log10(v);
        }
        int b = (int)floor((v - h->lo) / (h->hi - h->lo) * h->bins);
        b = b < 0 ? 0 : b >= h->bins ? h->bins - 1 : b;
        if (++count[b] > most) most = count[b];
    }
    char title[256], below_note[160] = "";
    if (below)
        snprintf(below_note, sizeof below_note, "; grey: %d %s", below,
                 h->below_label ? h->below_label : "at or below 0");
    if (left_out)
        snprintf(title, sizeof title, "%s (%d of %d not finite, left out%s)", h->title, left_out,
                 h->n, below_note);
    else
        snprintf(title, sizeof title, "%s (%d model%s%s)", h->title, h->n, h->n == 1 ? "" : "s",
                 below_note);

    dl_status st = fig_begin(path, fmt);
    if (st == DL_OK) {
        /* Values at or below 0 (log10_x) get a grey bar one bin wide left
         * of the axis's first decade: they have no place on it. */
        double bin_w = (h->hi - h->lo) / h->bins;
        int top = below > most ? below : most;
        span x = {below ? h->lo - bin_w : h->lo, h->hi}, y = {0.0, top > 0 ? top * 1.08 : 1.0};
        plvpor(0.09, 0.96, 0.14, 0.9);
        plwind(x.lo, x.hi, y.lo, y.hi);
        if (h->band_lo == h->band_lo && h->band_hi == h->band_hi) { /* not NaN */
            PLFLT bx[4] = {h->band_lo, h->band_hi, h->band_hi, h->band_lo};
            PLFLT by[4] = {y.lo, y.lo, y.hi, y.hi};
            plcol0(GRID);
            plfill(4, bx, by);
        }
        plschr(0.0, 0.8);
        plcol0(GRID);
        plbox("", 0.0, 0, "g", 0.0, 0);
        for (int b = 0; b < h->bins; b++) {
            if (!count[b]) continue;
            double x0 = h->lo + (h->hi - h->lo) * b / h->bins,
                   x1 = h->lo + (h->hi - h->lo) * (b + 1) / h->bins;
            PLFLT bx[4] = {x0, x1, x1, x0}, by[4] = {0, 0, count[b], count[b]};
            plcol0(FIRST_SERIES);
            plfill(4, bx, by);
            plcol0(INK);
            PLFLT ox[5] = {x0, x0, x1, x1, x0}, oy[5] = {0, count[b], count[b], 0, 0};
            plline(5, ox, oy);
        }
        if (below) {
            PLFLT bx[4] = {x.lo, h->lo, h->lo, x.lo}, by[4] = {0, 0, below, below};
            plcol0(GRID);
            plfill(4, bx, by);
            plcol0(INK);
            PLFLT ox[5] = {x.lo, x.lo, h->lo, h->lo, x.lo}, oy[5] = {0, below, below, 0, 0};
            plline(5, ox, oy);
        }
        plcol0(INK);
        plbox(h->log10_x ? "bcnstl" : "bcnst", 0.0, 0, "bcnstv", 0.0, 0);
        plschr(0.0, 0.85);
        plmtex("b", 3.2, 0.5, 0.5, h->xlabel);
        plmtex("l", 4.6, 0.5, 0.5, "models");
        plschr(0.0, 0.95);
        plmtex("t", 1.0, 0.5, 0.5, title);
        plschr(0.0, 1.0);
        st = fig_end(path);
    }
    free(count);
    return st;
}

/* --- figure 4: confusion matrix ------------------------------------------ */

/* Class names longer than this are cut (at a character boundary) with an
 * ellipsis, so that the labels leave room for the grid. */
#define CM_NAME_MAX 24

/* The height of a line of text at scale 1 and the font's em, in pixels of
 * the page, as the cairo devices draw DejaVu Sans. */
#define CHAR_PX     16.7
#define EM_PX       21.0

/* The width of s in ems, from DejaVu Sans's advance widths by kind of
 * character (within a few per cent for names; a character outside ASCII
 * counts as an average one). */
static double text_em(const char *s)
{
    double w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c & 0xc0) == 0x80) continue; /* inside a multi-byte character */
        if (strchr("il.,:;'|!", c))
            w += 0.28;
        else if (strchr("jtfrI()[] -\"", c))
            w += 0.40;
        else if (strchr("mwMW%@&<>=+~#", c))
            w += 0.85;
        else if (c >= 'A' && c <= 'Z')
            w += 0.70;
        else if (c >= '0' && c <= '9')
            w += 0.64;
        else
            w += 0.58;
    }
    return w;
}

static void short_name(const char *in, char *out, size_t len)
{
    char cut[4 * CM_NAME_MAX + 8];
    size_t n = strlen(in);
    if (n <= CM_NAME_MAX) {
        fig_escape_text(in, out, len);
        return;
    }
    n = CM_NAME_MAX;
    while (n > 0 && ((unsigned char)in[n] & 0xc0) == 0x80) n--; /* not inside a character */
    snprintf(cut, sizeof cut, "%.*s…", (int)n, in);
    fig_escape_text(cut, out, len);
}

dl_status dl_figure_confusion(const char *path, dl_fig_format fmt, const dl_fig_confusion *c)
{
    const int C = c->classes;
    if (C < 1 || !c->counts)
        return DL_FAIL(DL_E_USAGE, "figure 4: nothing to draw (%d classes)", C);
    char(*names)[128] = malloc(sizeof *names * (size_t)C);
    if (!names) return DL_FAIL(DL_E_MEMORY, "figure 4: out of host memory for %d classes", C);
    const double text = C <= 5 ? 0.9 : C <= 10 ? 0.7 : C <= 20 ? 0.5 : 0.4;
    double label_px = 0; /* the widest name as drawn */
    for (int k = 0; k < C; k++) {
        char raw[96], shown[4 * CM_NAME_MAX + 8];
        if (c->class_names)
            snprintf(raw, sizeof raw, "%s", c->class_names[k]);
        else
            snprintf(raw, sizeof raw, "class %d", k + 1);
        short_name(raw, names[k], sizeof names[k]);
        snprintf(shown, sizeof shown, "%.*s", CM_NAME_MAX, raw);
        double px = text_em(shown) * EM_PX * text + (strlen(raw) > CM_NAME_MAX ? EM_PX * text : 0);
        if (px > label_px) label_px = px;
    }
    dl_status st = fig_begin(path, fmt);
    if (st == DL_OK) {
        /* Column labels across when they fit their columns, else up the page;
         * under them "predicted class". The grid is square, as tall as what
         * is left below the title, centred in what the row labels leave. */
        const double y1 = 0.88;
        double below_px = 2.4 * CHAR_PX * text + 2.2 * CHAR_PX;
        double y0 = below_px / DL_FIG_HEIGHT + 0.02;
        bool vertical = label_px > 0.95 * (y1 - y0) * DL_FIG_HEIGHT / C;
        if (vertical) {
            below_px = 0.8 * CHAR_PX * text + label_px + 2.2 * CHAR_PX;
            y0 = below_px / DL_FIG_HEIGHT + 0.02;
        }
        const double side = (y1 - y0) * DL_FIG_HEIGHT / DL_FIG_WIDTH;
        const double left = (label_px + 4.0 * CHAR_PX) / DL_FIG_WIDTH;
        const double x0 = left + (1.0 - left - side) / 2, x1 = x0 + side;
        /* cmap1: white to Okabe-Ito blue */
        PLFLT pos[2] = {0.0, 1.0}, r[2] = {1.0, fig_series_rgb[0][0] / 255.0},
              g[2] = {1.0, fig_series_rgb[0][1] / 255.0},
              b[2] = {1.0, fig_series_rgb[0][2] / 255.0};
        plscmap1n(256);
        plscmap1l(1, 2, pos, r, g, b, NULL);
        plvpor(x0, x1, y0, y1);
        plwind(0.0, C, 0.0, C);
        for (int t = 0; t < C; t++) {
            long total = 0;
            for (int q = 0; q < C; q++) total += c->counts[(size_t)t * C + q];
            for (int q = 0; q < C; q++) {
                int n = c->counts[(size_t)t * C + q];
                double frac = total > 0 ? (double)n / total : 0.0;
                double top = C - t, bottom = C - t - 1;
                PLFLT bx[4] = {q, q + 1, q + 1, q}, by[4] = {bottom, bottom, top, top};
                plcol1(frac);
                plfill(4, bx, by);
                if (C <= 20) {
                    char num[16];
                    snprintf(num, sizeof num, "%d", n);
                    plcol0(frac > 0.5 ? BG : INK);
                    plschr(0.0, text * 1.2);
                    plptex(q + 0.5, bottom + 0.5, 1.0, 0.0, 0.5, num);
                }
            }
        }
        plcol0(INK);
        plwidth(1.0);
        for (int k = 0; k <= C; k++) { /* cell borders */
            PLFLT lx[2] = {k, k}, ly[2] = {0, C}, hx[2] = {0, C}, hy[2] = {k, k};
            plline(2, lx, ly);
            plline(2, hx, hy);
        }
        plschr(0.0, text);
        for (int k = 0; k < C; k++) {
            double at = (k + 0.5) / C;
            plmtex("lv", 0.8, 1.0 - at, 1.0, names[k]);
            plmtex(vertical ? "bv" : "b", vertical ? 0.8 : 1.4, at, vertical ? 1.0 : 0.5, names[k]);
        }
        /* plmtex's displacement counts heights of the current characters */
        const double axis_scale = 0.85, axis_px = CHAR_PX * axis_scale;
        plschr(0.0, axis_scale);
        plmtex("l", (label_px + 0.8 * CHAR_PX * text) / axis_px + 1.8, 0.5, 0.5, "true class");
        plmtex("b", (below_px - 2.2 * CHAR_PX) / axis_px + 1.3, 0.5, 0.5, "predicted class");
        plschr(0.0, 0.95);
        plmtex("t", 1.2, 0.5, 0.5, c->title ? c->title : "Confusion matrix");
        plschr(0.0, 1.0);
        st = fig_end(path);
    }
    free(names);
    return st;
}

#endif
