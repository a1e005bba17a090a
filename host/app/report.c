#define _POSIX_C_SOURCE 200809L
#include "dlab/report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

void dl_out_init(dl_out *o, const char *dir, const char *const *writes)
{
    memset(o, 0, sizeof *o);
    o->dir = dir;
    o->writes = writes;
}

/* --- the directory ------------------------------------------------------ */

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* mkdir -p: each missing component in turn. */
static dl_status make_dirs(const char *dir, size_t *created)
{
    size_t len = strlen(dir);
    char *path = malloc(len + 1);
    if (!path) return DL_FAIL(DL_E_MEMORY, "--out: out of memory");
    memcpy(path, dir, len + 1);
    dl_status st = DL_OK;
    for (size_t i = 1; i <= len && st == DL_OK; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        if (path[i - 1] == '/') continue; /* "a//b" */
        char saved = path[i];
        path[i] = '\0';
        const bool made = mkdir(path, 0777) == 0;
        if (!made && errno != EEXIST)
            st = DL_FAIL(DL_E_IO, "--out %s: cannot create %s: %s", dir, path, strerror(errno));
        else if (made && !*created)
            *created = i;
        else if (!is_dir(path))
            st = DL_FAIL(DL_E_USAGE, "--out %s: %s exists and is not a directory", dir, path);
        path[i] = saved;
    }
    free(path);
    return st;
}

/* rmdir of path, then of each parent down to the component that ends at
 * `created` (deepest first, skipping trailing and doubled slashes); stops
 * at the first that is not empty. Cuts path in place; async-signal-safe. */
static void remove_made_dirs(char *path, size_t created)
{
    const size_t len = strlen(path);
    for (size_t end = len; end >= created && end > 0; end--) {
        if (end < len && path[end] != '/') continue;
        if (path[end - 1] == '/') continue;
        path[end] = '\0';
        if (rmdir(path) != 0) break;
    }
}

/* The directories dl_out_prepare made, for a handler of a second stop
 * signal while nothing has been written into them yet (made_set). */
static char made_path[4096];
static size_t made_from;
static volatile sig_atomic_t made_set;

static dl_status count_entries(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return DL_FAIL(DL_E_IO, "--out %s: cannot read the directory: %s", dir, strerror(errno));
    *n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) (*n)++;
    closedir(d);
    return DL_OK;
}

/* The names each task writes under --out (dl_out_init's `writes`). */
const char *const dl_out_names_factorise[] = {"history.csv",
                                              "report.html",
                                              "summary.json",
                                              "figure1_projections.png",
                                              "figure1_projections.svg",
                                              "figure3_seeds_histogram.png",
                                              "figure3_seeds_histogram.svg",
                                              "U.npy",
                                              "U.csv",
                                              "V.npy",
                                              "V.csv",
                                              "column_means.npy",
                                              "svd_U.npy",
                                              "svd_S.npy",
                                              "svd_V.npy",
                                              NULL};
const char *const dl_out_names_mlp[] = {"model.json",
                                        "predictions.csv",
                                        "history.csv",
                                        "report.html",
                                        "summary.json",
                                        "figure2_learning_curves.png",
                                        "figure2_learning_curves.svg",
                                        "figure3_seeds_histogram.png",
                                        "figure3_seeds_histogram.svg",
                                        "figure4_confusion_matrix.png",
                                        "figure4_confusion_matrix.svg",
                                        NULL};
const char *const dl_out_names_predict[] = {"predictions.csv", "summary.json", NULL};

bool dl_out_known_name(const char *name)
{
    const char *const *lists[] = {dl_out_names_factorise, dl_out_names_mlp, dl_out_names_predict};
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
        for (const char *const *n = lists[l]; *n; n++)
            if (!strcmp(name, *n)) return true;
    return false;
}

/* ".NAME.tmp-XXXXXX" for a known NAME: what make_temp creates. */
static bool known_temp(const char *entry)
{
    if (entry[0] != '.') return false;
    const char *tail = strstr(entry, ".tmp-");
    for (const char *t; tail && (t = strstr(tail + 1, ".tmp-"));) tail = t;
    if (!tail || strlen(tail) != 5 + 6) return false;
    char name[64];
    size_t len = (size_t)(tail - entry - 1);
    if (len == 0 || len >= sizeof name) return false;
    memcpy(name, entry + 1, len);
    name[len] = '\0';
    return dl_out_known_name(name);
}

void dl_out_keep(dl_out *o, const char *option, const char *path)
{
    struct stat sb;
    if (!path || o->n_keep == (int)(sizeof o->keep / sizeof o->keep[0]) || stat(path, &sb) != 0)
        return;
    o->keep[o->n_keep].dev = (uint64_t)sb.st_dev;
    o->keep[o->n_keep].ino = (uint64_t)sb.st_ino;
    snprintf(o->keep[o->n_keep++].option, sizeof o->keep[0].option, "%s", option);
}

/* The option of the kept input that sb is, or NULL. */
static const char *kept(const dl_out *o, const struct stat *sb)
{
    for (int i = 0; i < o->n_keep; i++)
        if (o->keep[i].dev == (uint64_t)sb->st_dev && o->keep[i].ino == (uint64_t)sb->st_ino)
            return o->keep[i].option;
    return NULL;
}

/* A result would be renamed over this run's own input: refused before
 * anything is trained or written. */
static dl_status check_inputs(const dl_out *o)
{
    for (const char *const *w = o->writes; w && *w && o->n_keep > 0; w++) {
        size_t len = strlen(o->dir) + strlen(*w) + 2;
        char *path = malloc(len);
        if (!path) return DL_FAIL(DL_E_MEMORY, "--out: out of memory");
        snprintf(path, len, "%s/%s", o->dir, *w);
        struct stat sb;
        const char *option = stat(path, &sb) == 0 ? kept(o, &sb) : NULL;
        dl_status st = option ? DL_FAIL(DL_E_USAGE,
                                        "--out %s: %s, this run's %s, would be overwritten by "
                                        "its %s; write the results to another directory",
                                        o->dir, path, option, *w)
                              : DL_OK;
        free(path);
        DL_TRY(st);
    }
    return DL_OK;
}

/* --force: removes the files of an earlier run (known names and their
 * temporary files) but this run's inputs; directories and unknown names are
 * left alone. */
static dl_status remove_known(const dl_out *o)
{
    const char *dir = o->dir;
    DIR *d = opendir(dir);
    if (!d)
        return DL_FAIL(DL_E_IO, "--out %s: cannot read the directory: %s", dir, strerror(errno));
    dl_status st = DL_OK;
    for (struct dirent *e; st == DL_OK && (e = readdir(d));) {
        if (!dl_out_known_name(e->d_name) && !known_temp(e->d_name)) continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) {
            st = DL_FAIL(DL_E_MEMORY, "--out: out of memory");
            break;
        }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && !S_ISDIR(sb.st_mode) && !kept(o, &sb) && unlink(path) != 0 &&
            errno != ENOENT)
            st = DL_FAIL(DL_E_IO, "--out %s --force: cannot remove %s: %s", dir, e->d_name,
                         strerror(errno));
        free(path);
    }
    closedir(d);
    return st;
}

dl_status dl_out_prepare(dl_out *o, bool force)
{
    if (!o->dir) return DL_OK;
    if (!o->dir[0]) return DL_FAIL(DL_E_USAGE, "--out: empty directory name");
    DL_TRY(check_inputs(o));
    DL_TRY(make_dirs(o->dir, &o->created));
    int n = 0;
    DL_TRY(count_entries(o->dir, &n));
    if (n > 0 && !force)
        return DL_FAIL(DL_E_USAGE,
                       "--out %s: the directory is not empty (%d entr%s); "
                       "add --force to write into it",
                       o->dir, n, n == 1 ? "y" : "ies");
    if (access(o->dir, W_OK | X_OK) != 0)
        return DL_FAIL(DL_E_IO, "--out %s: cannot write into it: %s", o->dir, strerror(errno));
    if (n > 0) DL_TRY(remove_known(o));
    made_set = 0;
    if (o->created && strlen(o->dir) < sizeof made_path) {
        memcpy(made_path, o->dir, strlen(o->dir) + 1);
        made_from = o->created;
        made_set = 1;
    }
    return DL_OK;
}

void dl_out_discard(dl_out *o)
{
    made_set = 0;
    if (!o->dir || !o->created || o->n_files > 0) return;
    size_t len = strlen(o->dir);
    char *path = malloc(len + 1);
    if (!path) return;
    memcpy(path, o->dir, len + 1);
    remove_made_dirs(path, o->created);
    free(path);
    o->created = 0;
}

/* --- atomic files -------------------------------------------------------- */

static void note_file(dl_out *o, const char *name)
{
    made_set = 0; /* the directory holds a result now: it stays */
    if (o->n_files < DL_OUT_MAX_FILES)
        snprintf(o->files[o->n_files++], sizeof o->files[0], "%s", name);
}

/* The temporary file being written, for dl_out_abandon_temp: the path is
 * complete before pending_set is raised and pending_set is lowered before
 * the path changes, so a handler never reads a half-written one. */
static char pending_path[4096];
static volatile sig_atomic_t pending_set;

bool dl_out_abandon(void)
{
    bool removed = pending_set && unlink(pending_path) == 0;
    if (made_set) remove_made_dirs(made_path, made_from);
    return removed;
}

static void pending_begin(const char *tmp)
{
    pending_set = 0;
    size_t len = strlen(tmp);
    if (len >= sizeof pending_path) return; /* too long to keep: left behind if killed */
    memcpy(pending_path, tmp, len + 1);
    pending_set = 1;
}

static void pending_end(void) { pending_set = 0; }

/* A fresh temporary file DIR/.name.tmp-XXXXXX; its path in tmp (heap). */
static dl_status make_temp(const dl_out *o, const char *name, char **tmp, int *fd)
{
    size_t len = strlen(o->dir) + strlen(name) + 16;
    *tmp = malloc(len);
    if (!*tmp) return DL_FAIL(DL_E_MEMORY, "--out: out of memory");
    snprintf(*tmp, len, "%s/.%s.tmp-XXXXXX", o->dir, name);
    pending_end();
    /* No stop signal between creating the file and recording its name, or
     * a second Ctrl-C there would leave it behind. */
    sigset_t stop, saved;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &saved);
    *fd = mkstemp(*tmp);
    if (*fd >= 0) pending_begin(*tmp);
    sigprocmask(SIG_SETMASK, &saved, NULL);
    if (*fd < 0) {
        dl_status st = DL_FAIL(DL_E_IO, "cannot create a file in %s: %s", o->dir, strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return st;
    }
    /* mkstemp makes the file private; give it the mode a plain fopen would. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(*fd, 0666 & ~mask);
    return DL_OK;
}

/* Renames tmp over DIR/name and makes the rename itself durable. */
static dl_status commit(dl_out *o, const char *tmp, const char *name)
{
    size_t len = strlen(o->dir) + strlen(name) + 2;
    char *final = malloc(len);
    if (!final) return DL_FAIL(DL_E_MEMORY, "--out: out of memory");
    snprintf(final, len, "%s/%s", o->dir, name);
    dl_status st = DL_OK;
    if (rename(tmp, final) != 0)
        st = DL_FAIL(DL_E_IO, "cannot write %s: rename failed: %s", final, strerror(errno));
    free(final);
    if (st != DL_OK) return st;
    int dfd = open(o->dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd); /* not every file system syncs directories; the rename stands either way */
        close(dfd);
    }
    return DL_OK;
}

static dl_status write_atomic(dl_out *o, const char *name, dl_write_fn fn, const void *ctx)
{
    char *tmp;
    int fd;
    DL_TRY(make_temp(o, name, &tmp, &fd));
    dl_status st = DL_OK;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        st = DL_FAIL(DL_E_IO, "cannot write %s/%s: %s", o->dir, name, strerror(errno));
        close(fd);
    } else {
        st = fn(f, ctx);
        int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
        int err = errno;
        if (fclose(f) != 0 && !bad) bad = 1, err = errno;
        if (st == DL_OK && bad)
            st = DL_FAIL(DL_E_IO, "cannot write %s/%s: %s", o->dir, name, strerror(err));
    }
    if (st == DL_OK) st = commit(o, tmp, name);
    if (st != DL_OK) unlink(tmp);
    pending_end();
    free(tmp);
    return st;
}

dl_status dl_out_write(dl_out *o, const char *name, dl_write_fn fn, const void *ctx)
{
    DL_TRY(write_atomic(o, name, fn, ctx));
    note_file(o, name);
    return DL_OK;
}

dl_status dl_out_summary(dl_out *o, dl_write_fn fn, const void *ctx)
{
    int before = o->n_files;
    note_file(o, "summary.json");
    dl_status st = write_atomic(o, "summary.json", fn, ctx);
    if (st != DL_OK) o->n_files = before;
    return st;
}

/* Whether the file the drawing library wrote ends as a whole one does: a
 * PNG with its IEND chunk (the PNG specification, section 11.2.5: length 0,
 * type "IEND", CRC ae426082), an SVG with its closing tag. The library
 * writes through its own buffers and does not report a full disk, which
 * leaves the file cut short. */
static bool figure_complete(int fd, dl_fig_format fmt, off_t size)
{
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    unsigned char tail[64];
    const off_t want = size < (off_t)sizeof tail ? size : (off_t)sizeof tail;
    if (want < (off_t)sizeof iend || pread(fd, tail, (size_t)want, size - want) != want)
        return false;
    if (fmt == DL_FIG_PNG) return memcmp(tail + want - sizeof iend, iend, sizeof iend) == 0;
    off_t end = want;
    while (end > 0 && (tail[end - 1] == '\n' || tail[end - 1] == ' ' || tail[end - 1] == '\r'))
        end--;
    return end >= 6 && memcmp(tail + end - 6, "</svg>", 6) == 0;
}

dl_status dl_out_render(dl_out *o, const char *name, dl_fig_format fmt, dl_draw_fn draw,
                        const void *fig)
{
    char *tmp;
    int fd;
    DL_TRY(make_temp(o, name, &tmp, &fd));
    close(fd);
    dl_status st = draw(tmp, fmt, fig);
    if (st == DL_OK) { /* the drawing library closed the file; make it durable */
        struct stat sb = {0};
        int rfd = open(tmp, O_RDONLY);
        if (rfd < 0 || fstat(rfd, &sb) != 0 || fsync(rfd) != 0)
            st = DL_FAIL(DL_E_IO, "cannot write %s/%s: %s", o->dir, name, strerror(errno));
        else if (!figure_complete(rfd, fmt, sb.st_size)) {
            struct statvfs fs;
            char free_note[96] = "";
            if (fstatvfs(rfd, &fs) == 0)
                snprintf(free_note, sizeof free_note, " %llu bytes are free on it",
                         (unsigned long long)fs.f_bavail * fs.f_frsize);
            st = DL_FAIL(DL_E_IO,
                         "cannot write %s/%s: the drawing stopped after %lld bytes, cut short "
                         "(is the disk full?%s)",
                         o->dir, name, (long long)sb.st_size, free_note);
        }
        if (rfd >= 0) close(rfd);
    }
    if (st == DL_OK) st = commit(o, tmp, name);
    if (st != DL_OK)
        unlink(tmp);
    else
        note_file(o, name);
    pending_end();
    free(tmp);
    return st;
}

static dl_status figure_pair(dl_out *o, const char *base, dl_draw_fn draw, const void *fig)
{
    if (!dl_figures_available(o->figures_note, sizeof o->figures_note)) return DL_OK;
    static const dl_fig_format formats[] = {DL_FIG_PNG, DL_FIG_SVG};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%s", base, dl_fig_extension(formats[i]));
        DL_TRY(dl_out_render(o, name, formats[i], draw, fig));
    }
    return DL_OK;
}

static dl_status draw_factorise(const char *path, dl_fig_format fmt, const void *fig)
{
    return dl_figure_factorise(path, fmt, fig);
}

static dl_status draw_mlp(const char *path, dl_fig_format fmt, const void *fig)
{
    return dl_figure_mlp(path, fmt, fig);
}

dl_status dl_out_figure_factorise(dl_out *o, const char *base, const dl_fig_factorise *f)
{
    return figure_pair(o, base, draw_factorise, f);
}

dl_status dl_out_figure_mlp(dl_out *o, const char *base, const dl_fig_mlp *f)
{
    return figure_pair(o, base, draw_mlp, f);
}

static dl_status draw_histogram(const char *path, dl_fig_format fmt, const void *fig)
{
    return dl_figure_histogram(path, fmt, fig);
}

dl_status dl_out_figure_histogram(dl_out *o, const char *base, const dl_fig_histogram *h)
{
    return figure_pair(o, base, draw_histogram, h);
}

static dl_status draw_confusion(const char *path, dl_fig_format fmt, const void *fig)
{
    return dl_figure_confusion(path, fmt, fig);
}

dl_status dl_out_figure_confusion(dl_out *o, const char *base, const dl_fig_confusion *c)
{
    return figure_pair(o, base, draw_confusion, c);
}

bool dl_out_has(const dl_out *o, const char *name)
{
    for (int i = 0; i < o->n_files; i++)
        if (strcmp(o->files[i], name) == 0) return true;
    return false;
}

/* --- CSV ------------------------------------------------------------------ */

static void csv_number(FILE *f, double v)
{
    if (isnan(v))
        fputs("nan", f);
    else if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", f);
    else
        fprintf(f, "%.9g", v);
}

dl_status dl_csv_write_history(FILE *f, const void *history)
{
    const dl_csv_history *h = history;
    fputs("epoch", f);
    for (int b = 0; b < h->models; b++)
        for (int c = 0; c < h->metrics; c++) {
            if (h->models > 1)
                fprintf(f, ",%s_seed%llu", h->names[c],
                        (unsigned long long)(h->first_seed + (uint64_t)b));
            else
                fprintf(f, ",%s", h->names[c]);
        }
    fputc('\n', f);
    for (int e = 0; e < h->epochs; e++) {
        fprintf(f, "%d", e + 1);
        for (int b = 0; b < h->models; b++)
            for (int c = 0; c < h->metrics; c++) {
                fputc(',', f);
                size_t at = (size_t)e * h->epoch_stride + (size_t)c * h->metric_stride +
                            (size_t)b * h->model_stride;
                csv_number(f, h->values_d ? h->values_d[at] : h->values[at]);
            }
        fputc('\n', f);
    }
    return DL_OK;
}

/* --- what the reports say ------------------------------------------------ */

void dl_out_json(dl_json *j, const dl_out *o)
{
    if (!o->dir) {
        dl_json_null(j, "out");
        return;
    }
    dl_json_obj_begin(j, "out");
    dl_json_str(j, "dir", o->dir);
    dl_json_arr_begin(j, "files");
    for (int i = 0; i < o->n_files; i++) dl_json_str(j, NULL, o->files[i]);
    dl_json_arr_end(j);
    if (o->figures_note[0])
        dl_json_str(j, "figures_note", o->figures_note);
    else
        dl_json_null(j, "figures_note");
    dl_json_obj_end(j);
}

void dl_out_text(FILE *f, const dl_out *o)
{
    if (!o->dir) return;
    fprintf(f, "  output               %s:", o->dir);
    for (int i = 0; i < o->n_files; i++) fprintf(f, " %s", o->files[i]);
    fprintf(f, "%s\n", o->n_files ? "" : " nothing written");
    if (o->figures_note[0]) fprintf(f, "  figures              %s\n", o->figures_note);
}
