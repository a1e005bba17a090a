/* --out DIR: the files of a run, each written whole or not at all.
 *
 * Every file goes to a temporary name in DIR (".NAME.tmp-XXXXXX"), is
 * flushed and fsync'ed, then renamed over NAME, and DIR is fsync'ed: a run
 * stopped at any point leaves either the previous file or the new one, never
 * a part of one. A dl_out records what was written so that the reports can
 * list it.
 */
#ifndef DLAB_REPORT_H
#define DLAB_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dlab/figures.h"
#include "dlab/json.h"
#include "dlab/status.h"

#define DL_OUT_MAX_FILES 32

typedef struct {
    const char *dir; /* NULL: no --out, nothing is written */
    int n_files;
    char files[DL_OUT_MAX_FILES][64]; /* names written, in order */
    char figures_note[256];           /* why figures were not drawn, "" otherwise */
    size_t created; /* dir[0..created) is the first directory dl_out_prepare made; 0: none */
    int n_keep;
    struct {
        uint64_t dev, ino;
        char option[16];
    } keep[4]; /* this run's input files (dl_out_keep): --force never removes them */
    const char *const *writes; /* the names this task writes, NULL-terminated (dl_out_init) */
} dl_out;

/* Writes the whole content of one file to f. Output errors need not be
 * reported: the caller checks the stream. */
typedef dl_status (*dl_write_fn)(FILE *f, const void *ctx);

/* `writes`: every name the task may write under dir, NULL-terminated; a
 * run whose input has one of them there is refused (dl_out_prepare). */
void dl_out_init(dl_out *o, const char *dir, const char *const *writes);

/* Makes o->dir ready: creates it and its missing parents. A directory that
 * already holds entries is refused unless `force` (DL_E_USAGE, one line), as
 * is a path that exists and is not a directory. With `force` the files an
 * earlier run left there under any name dlab-gpu writes (dl_out_known_name),
 * and their temporary files, are removed first, so that no stale result
 * sits beside the new ones; other files are left alone. DL_E_RUNTIME when
 * it cannot be created, written to or cleared. Does nothing without a
 * directory. */
dl_status dl_out_prepare(dl_out *o, bool force);

/* Marks `path`, the input given by `option` (--data, --model), as one that
 * dl_out_prepare's --force must leave in place even under a name a task
 * writes (a model.json read by --task predict --out into its own folder),
 * and that no result may be written over: dl_out_prepare refuses a run
 * whose input is dir/NAME for a NAME in `writes` (DL_E_USAGE). Up to 4
 * paths; a path that does not exist is ignored. Call before
 * dl_out_prepare. */
void dl_out_keep(dl_out *o, const char *option, const char *path);

/* After a run that failed before writing anything: removes the directories
 * dl_out_prepare created (empty ones only, deepest first), so a refused or
 * failed run leaves no trace. Does nothing once a file was written, or when
 * the directory existed before. */
void dl_out_discard(dl_out *o);

/* Whether `name` is one of the file names any task writes under --out: a
 * task that writes a new name must add it to the list, or --force will not
 * clear it. */
bool dl_out_known_name(const char *name);

/* The names --task factorise, mlp and predict write under --out,
 * NULL-terminated; dl_out_known_name knows every one of them. */
extern const char *const dl_out_names_factorise[];
extern const char *const dl_out_names_mlp[];
extern const char *const dl_out_names_predict[];

/* For a handler of a second SIGINT, which exits at once: removes the
 * temporary file being written at that moment, if any, and the directories
 * dl_out_prepare made while none of its files is written yet. True when a
 * temporary file was removed. Async-signal-safe (reads static buffers,
 * calls unlink and rmdir). */
bool dl_out_abandon(void);

/* DIR/name written atomically by fn. DL_E_RUNTIME (naming the file) when
 * anything fails; the temporary file is then removed. */
dl_status dl_out_write(dl_out *o, const char *name, dl_write_fn fn, const void *ctx);

/* A figure drawn by path: the drawing library opens and closes the file. */
typedef dl_status (*dl_draw_fn)(const char *path, dl_fig_format fmt, const void *fig);

/* DIR/name drawn by draw into a temporary file, checked to be whole (a PNG
 * ends with its IEND chunk, an SVG with its closing tag: a drawing library
 * does not report a full disk) and renamed, as dl_out_write. DL_E_IO naming
 * the file when it cannot be written or was cut short. */
dl_status dl_out_render(dl_out *o, const char *name, dl_fig_format fmt, dl_draw_fn draw,
                        const void *fig);

/* summary.json, written by fn like dl_out_write, but listed in o->files
 * before fn runs: the summary it writes names itself among the files, just
 * as the same summary printed afterwards does. */
dl_status dl_out_summary(dl_out *o, dl_write_fn fn, const void *ctx);

/* The figures as base.png and base.svg, each atomically. When figures
 * cannot be drawn here (no PLplot, no cairo device) nothing is written,
 * o->figures_note says why and the call succeeds. */
dl_status dl_out_figure_factorise(dl_out *o, const char *base, const dl_fig_factorise *f);
dl_status dl_out_figure_mlp(dl_out *o, const char *base, const dl_fig_mlp *f);
dl_status dl_out_figure_histogram(dl_out *o, const char *base, const dl_fig_histogram *h);
dl_status dl_out_figure_confusion(dl_out *o, const char *base, const dl_fig_confusion *c);

/* Whether DIR/name was written by this run (it is in o->files). */
bool dl_out_has(const dl_out *o, const char *name);

/* Per-epoch metrics as CSV: a header row "epoch,NAME1,NAME2,..." then one
 * row per epoch, numbers in %.9g, non-finite values as nan, inf, -inf. With
 * several models every metric gets one column per model, NAME_seedS, grouped
 * by model. */
typedef struct {
    int epochs; /* rows; row e is epoch e + 1 */
    int metrics;
    const char *const *names; /* metric names */
    int models;               /* >= 1 */
    uint64_t first_seed;      /* model b is seed first_seed + b */
    const float *values;      /* metric c of model b after epoch e at
                                    values[e*epoch_stride + c*metric_stride + b*model_stride] */
    const double *values_d;   /* the same in double, used instead of values when not NULL */
    size_t epoch_stride, metric_stride, model_stride;
} dl_csv_history;

dl_status dl_csv_write_history(FILE *f, const void *history); /* a dl_write_fn */

/* The "out" member of a JSON summary: null without --out, else
 * {"dir": ..., "files": [...], "figures_note": null or why not drawn}. */
void dl_out_json(dl_json *j, const dl_out *o);

/* One or two lines for the text report (nothing without --out). */
void dl_out_text(FILE *f, const dl_out *o);

#endif
