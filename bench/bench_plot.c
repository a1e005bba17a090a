/* dlab-bench's figure: one panel per workload family, median seconds per
 * epoch against problem size on log-log axes for both backends, min-max as
 * error bars, and the crossover marked where the GPU starts to win. Drawn
 * with PLplot's cairo driver as DIR/bench.png and DIR/bench.svg. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DLAB_HAVE_PLPLOT
#include <plplot.h>

/* cmap0 entries: background, ink, cpu, cuda, the crossover, the grid. */
enum { COL_BG = 0, COL_INK = 1, COL_CPU = 2, COL_CUDA = 3, COL_CROSS = 4, COL_GRID = 5 };

/* Marker of each backend, drawn with plstring so the legend shows the same. */
static const char *const markers[BENCH_BACKENDS] = {"●", "▲"};

/* PLplot ends the process on any error (plexit), so everything that can fail
 * is checked before it is asked: the driver exists and the file opens. */
static bool have_device(const char *name)
{
    enum { MAX_DEV = 128 };
    const char *menu[MAX_DEV], *dev[MAX_DEV];
    const char **pm = menu, **pd = dev;
    int n = MAX_DEV;
    plgDevs(&pm, &pd, &n);
    for (int i = 0; i < n; i++)
        if (dev[i] && !strcmp(dev[i], name)) return true;
    return false;
}

static void panel(const bench_run *r, const bench_crossover *x)
{
    double lx[2][64], ly[2][64], lo[2][64], hi[2][64];
    int n[2] = {0, 0};
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < r->n_cases; i++) {
        const bench_case *c = &r->cases[i];
        if (strcmp(c->spec.family, x->family)) continue;
        for (int b = 0; b < BENCH_BACKENDS; b++) {
            const bench_timing *t = &c->t[b];
            if (t->outcome != BENCH_OK || n[b] == 64) continue;
            int k = n[b]++;
            lx[b][k] = log10(c->size);
            ly[b][k] = log10(t->median_s);
            lo[b][k] = log10(t->min_s);
            hi[b][k] = log10(t->max_s);
            xmin = fmin(xmin, lx[b][k]), xmax = fmax(xmax, lx[b][k]);
            ymin = fmin(ymin, lo[b][k]), ymax = fmax(ymax, hi[b][k]);
        }
    }
    pladv(0);
    plvsta();
    if (n[0] + n[1] == 0) { /* nothing ran: an empty frame that says so */
        plwind(0.0, 1.0, 0.0, 1.0);
        plcol0(COL_INK);
        plbox("bc", 0.0, 0, "bc", 0.0, 0);
        plptex(0.5, 0.5, 1.0, 0.0, 0.5, "no timings");
        pllab("", "", x->family);
        return;
    }
    xmin = floor(xmin - 0.25), xmax = ceil(xmax + 0.25);
    ymin = floor(ymin - 0.1), ymax = ceil(ymax + 0.1);
    plwind(xmin, xmax, ymin, ymax);
    plwidth(1.0);
    plcol0(COL_GRID);
    plbox("gl", 0.0, 0, "gl", 0.0, 0);
    plcol0(COL_INK);
    plbox("bcnstl", 0.0, 0, "bcnstlv", 0.0, 0);
    char title[160];
    snprintf(title, sizeof title, "%s: time per epoch", x->family);
    pllab(x->size_unit, "seconds per epoch", title);

    const int colours[BENCH_BACKENDS] = {COL_CPU, COL_CUDA};
    for (int b = 0; b < BENCH_BACKENDS; b++) {
        if (!n[b]) continue;
        plcol0(colours[b]);
        plwidth(2.0);
        plline(n[b], lx[b], ly[b]);
        plwidth(1.0);
        plerry(n[b], lx[b], lo[b], hi[b]);
        plschr(0.0, 0.5);
        plstring(n[b], lx[b], ly[b], markers[b]);
        plschr(0.0, 0.9);
    }

    if (x->from > 0) {
        double at = log10(x->estimate > 0 ? x->estimate : x->from);
        double vx[2] = {at, at}, vy[2] = {ymin, ymax};
        char label[64];
        snprintf(label, sizeof label,
                 x->estimate > 0 ? " crossover ~%.2g" : " GPU faster from %.2g",
                 x->estimate > 0 ? x->estimate : x->from);
        plcol0(COL_CROSS);
        pllsty(2);
        plline(2, vx, vy);
        pllsty(1);
        plptex(at, ymax - 0.08 * (ymax - ymin), 1.0, 0.0, 0.0, label);
    }

    /* Legend, bottom right (the corner time-against-size curves leave
     * free): the backends that have a line, and why cuda has none. */
    PLINT opts[2], tcol[2], lcol[2], lsty[2], scol[2], snum[2];
    PLFLT lwid[2], sscale[2];
    const char *text[2], *sym[2];
    char cuda_text[64];
    int nl = 0;
    for (int b = 0; b < BENCH_BACKENDS; b++) {
        if (n[b]) {
            opts[nl] = PL_LEGEND_LINE | PL_LEGEND_SYMBOL;
            text[nl] = b == BENCH_CPU ? "cpu" : "cuda";
        } else if (b == BENCH_CUDA) {
            opts[nl] = PL_LEGEND_NONE;
            snprintf(cuda_text, sizeof cuda_text, "cuda: %s",
                     r->gpu_note[0] ? "no GPU" : "not run");
            text[nl] = cuda_text;
        } else {
            continue;
        }
        tcol[nl] = COL_INK, lcol[nl] = colours[b], lsty[nl] = 1, lwid[nl] = 2.0;
        scol[nl] = colours[b], sscale[nl] = 0.55, snum[nl] = 1;
        sym[nl] = markers[b];
        nl++;
    }
    PLFLT lw, lh;
    pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_BOTTOM | PL_POSITION_RIGHT | PL_POSITION_INSIDE, 0.02, 0.02, 0.08, COL_BG,
             COL_INK, 1, 0, 0, nl, opts, 1.0, 0.9, 1.6, 0.0, tcol, text, NULL, NULL, NULL, NULL,
             lcol, lsty, lwid, scol, sscale, snum, sym);
}

static dl_status draw(const char *path, dl_fig_format fmt, const void *run)
{
    const bench_run *r = run;
    const char *device = fmt == DL_FIG_SVG ? "svgcairo" : "pngcairo";
    int panels = r->n_cross, cols = panels > 1 ? 2 : 1, rows = (panels + cols - 1) / cols;
    char geometry[32];
    snprintf(geometry, sizeof geometry, "%dx%d", 700 * cols, 480 * rows);
    plsdev(device);
    plsfnam(path);
    plsetopt("geometry", geometry);
    plscol0(COL_BG, 255, 255, 255);
    plscol0(COL_INK, 0, 0, 0);
    plscol0(COL_CPU, 31, 119, 180);
    plscol0(COL_CUDA, 214, 39, 40);
    plscol0(COL_CROSS, 90, 90, 90);
    plscol0(COL_GRID, 215, 215, 215);
    plssub(cols, rows);
    plinit();
    plschr(0.0, 0.9);
    for (int i = 0; i < panels; i++) panel(r, &r->cross[i]);
    plend();
    return DL_OK;
}

dl_status bench_plot(const bench_run *r, dl_out *out, int *figures)
{
    *figures = 0;
    if (r->n_cross == 0) return DL_OK; /* no family with more than one size */
    const char *devices[2] = {"pngcairo", "svgcairo"};
    const dl_fig_format formats[2] = {DL_FIG_PNG, DL_FIG_SVG};
    for (int i = 0; i < 2; i++) {
        if (!have_device(devices[i]))
            return DL_FAIL(DL_E_RUNTIME, "PLplot has no %s device (install plplot-driver-cairo)",
                           devices[i]);
        char name[32];
        snprintf(name, sizeof name, "bench.%s", dl_fig_extension(formats[i]));
        DL_TRY(dl_out_render(out, name, formats[i], draw, r));
        ++*figures;
    }
    return DL_OK;
}

#else

dl_status bench_plot(const bench_run *r, dl_out *out, int *figures)
{
    (void)r, (void)out;
    *figures = 0;
    return DL_FAIL(DL_E_RUNTIME, "this build has no PLplot (install libplplot-dev and rebuild)");
}

#endif
