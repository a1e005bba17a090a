/* --out's machinery (host/app/report.c) and the figures (host/app/figures.c):
 * directory preparation, atomic writes, the CSV history, and PNG/SVG files
 * of the right size and kind (or, built without PLplot, a clear refusal).
 * usage: test_report [DIR]   with DIR, the figures are left there for a
 * closer look (tests/test_out.sh decodes their pixels). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dl_test.h"
#include "dlab/figures.h"
#include "dlab/report.h"

static char scratch[256];

static void path_of(char *out, size_t len, const char *rel)
{
    snprintf(out, len, "%s/%s", scratch, rel);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void touch(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

static void test_prepare(void)
{
    char dir[512], file[512];
    dl_out o;
    path_of(dir, sizeof dir, "a/b/c");
    dl_out_init(&o, dir, NULL);
    DL_CHECK(dl_out_prepare(&o, false) == DL_OK, "missing parents: %s", dl_errmsg());
    DL_CHECK(entries(dir) == 0, "%s was not created empty", dir);
    DL_CHECK(dl_out_prepare(&o, false) == DL_OK, "an existing empty directory: %s", dl_errmsg());

    path_of(file, sizeof file, "a/b/c/old.txt");
    touch(file, "old");
    dl_clear_error();
    DL_CHECK(dl_out_prepare(&o, false) == DL_E_USAGE, "a non-empty directory was accepted");
    DL_CHECK(strstr(dl_errmsg(), "not empty") && strstr(dl_errmsg(), "--force") &&
                 !strchr(dl_errmsg(), '\n'),
             "message: '%s'", dl_errmsg());
    DL_CHECK(dl_out_prepare(&o, true) == DL_OK, "--force: %s", dl_errmsg());

    dl_out_init(&o, file, NULL); /* a file, not a directory */
    DL_CHECK(dl_out_prepare(&o, true) == DL_E_USAGE, "a plain file accepted as --out");
    char below[600];
    snprintf(below, sizeof below, "%s/sub", file); /* a file as a parent */
    dl_out_init(&o, below, NULL);
    DL_CHECK(dl_out_prepare(&o, true) == DL_E_USAGE, "a path below a plain file accepted");

    dl_out_init(&o, NULL, NULL);
    DL_CHECK(dl_out_prepare(&o, false) == DL_OK, "no --out must be a no-op");

    if (geteuid() != 0) { /* root writes anywhere */
        char ro[512];
        path_of(ro, sizeof ro, "readonly");
        mkdir(ro, 0555);
        dl_out_init(&o, ro, NULL);
        DL_CHECK(dl_out_prepare(&o, false) == DL_E_RUNTIME, "a read-only directory accepted");
    }
}

static dl_status write_hello(FILE *f, const void *ctx)
{
    fprintf(f, "hello %s\n", (const char *)ctx);
    return DL_OK;
}

static dl_status write_then_fail(FILE *f, const void *ctx)
{
    fputs("half a fi", f);
    return DL_FAIL(DL_E_RUNTIME, "writer failed on purpose");
}

/* Sees what the summary would list: summary.json must already be there. */
static dl_status write_listing(FILE *f, const void *ctx)
{
    const dl_out *o = ctx;
    for (int i = 0; i < o->n_files; i++) fprintf(f, "%s\n", o->files[i]);
    return DL_OK;
}

static void test_atomic_write(void)
{
    char dir[512], file[600];
    path_of(dir, sizeof dir, "atomic");
    dl_out o;
    dl_out_init(&o, dir, NULL);
    DL_CHECK(dl_out_prepare(&o, false) == DL_OK, "%s", dl_errmsg());
    DL_CHECK(dl_out_write(&o, "a.txt", write_hello, "world") == DL_OK, "%s", dl_errmsg());
    snprintf(file, sizeof file, "%s/a.txt", dir);
    const char *got = slurp(file);
    DL_CHECK(got && !strcmp(got, "hello world\n"), "a.txt holds '%s'", got ? got : "(missing)");
    struct stat sb;
    DL_CHECK(stat(file, &sb) == 0 && (sb.st_mode & 0044) != 0, "a.txt is not readable by others");

    /* A failing writer leaves the old file as it was, and no temporary. */
    DL_CHECK(dl_out_write(&o, "a.txt", write_then_fail, NULL) == DL_E_RUNTIME,
             "failure not passed on");
    got = slurp(file);
    DL_CHECK(got && !strcmp(got, "hello world\n"), "a.txt changed to '%s'",
             got ? got : "(missing)");
    DL_CHECK(dl_out_write(&o, "b.txt", write_then_fail, NULL) == DL_E_RUNTIME,
             "failure not passed on");
    snprintf(file, sizeof file, "%s/b.txt", dir);
    DL_CHECK(!exists(file), "b.txt exists after its writer failed");
    DL_CHECK(entries(dir) == 1, "%d entries in %s, expected a.txt alone", entries(dir), dir);
    DL_CHECK(o.n_files == 1 && !strcmp(o.files[0], "a.txt"), "files listed: %d", o.n_files);

    DL_CHECK(dl_out_summary(&o, write_listing, &o) == DL_OK, "%s", dl_errmsg());
    snprintf(file, sizeof file, "%s/summary.json", dir);
    got = slurp(file);
    DL_CHECK(got && !strcmp(got, "a.txt\nsummary.json\n"), "summary saw '%s'",
             got ? got : "(missing)");
}

static void test_csv(void)
{
    char dir[512], file[600];
    path_of(dir, sizeof dir, "csv");
    dl_out o;
    dl_out_init(&o, dir, NULL);
    DL_CHECK(dl_out_prepare(&o, false) == DL_OK, "%s", dl_errmsg());

    const float sse[3] = {10.5f, 2.25f, NAN};
    static const char *const one[] = {"sse"};
    dl_csv_history h = {.epochs = 3,
                        .metrics = 1,
                        .names = one,
                        .models = 1,
                        .first_seed = 1,
                        .values = sse,
                        .epoch_stride = 1};
    DL_CHECK(dl_out_write(&o, "one.csv", dl_csv_write_history, &h) == DL_OK, "%s", dl_errmsg());
    snprintf(file, sizeof file, "%s/one.csv", dir);
    const char *got = slurp(file);
    DL_CHECK(got && !strcmp(got, "epoch,sse\n1,10.5\n2,2.25\n3,nan\n"), "one.csv: '%s'",
             got ? got : "");

    /* Two metrics of two models, laid out as the mlp task records them:
     * per epoch [m0 of models | m1 of models]. */
    const float v[2 * 4] = {1, 2, 0.5f, 0.25f, /* epoch 1 */ 3, INFINITY, 0.75f, -INFINITY};
    static const char *const two[] = {"loss", "acc"};
    dl_csv_history g = {.epochs = 2,
                        .metrics = 2,
                        .names = two,
                        .models = 2,
                        .first_seed = 5,
                        .values = v,
                        .epoch_stride = 4,
                        .metric_stride = 2,
                        .model_stride = 1};
    DL_CHECK(dl_out_write(&o, "two.csv", dl_csv_write_history, &g) == DL_OK, "%s", dl_errmsg());
    snprintf(file, sizeof file, "%s/two.csv", dir);
    got = slurp(file);
    DL_CHECK(got && !strcmp(got, "epoch,loss_seed5,acc_seed5,loss_seed6,acc_seed6\n"
                                 "1,1,0.5,2,0.25\n2,3,0.75,inf,-inf\n"),
             "two.csv: '%s'", got ? got : "");
}

/* --- figures ------------------------------------------------------------- */

static bool png_ok(const char *path, long *size)
{
    unsigned char h[24];
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    *size = file_size(path);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 24 || memcmp(h, sig, 8) || memcmp(h + 12, "IHDR", 4)) return false;
    uint32_t w = (uint32_t)h[16] << 24 | h[17] << 16 | h[18] << 8 | h[19];
    uint32_t ht = (uint32_t)h[20] << 24 | h[21] << 16 | h[22] << 8 | h[23];
    return w == DL_FIG_WIDTH && ht == DL_FIG_HEIGHT;
}

/* An SVG document: the root element opens near the start and closes at
 * the end (tests/test_out.sh parses the whole file as XML). */
static bool svg_ok(const char *path)
{
    long n = file_size(path);
    FILE *f = fopen(path, "rb");
    if (!f || n < 64) {
        if (f) fclose(f);
        return false;
    }
    char head[512], tail[64];
    size_t h = fread(head, 1, sizeof head - 1, f);
    head[h] = '\0';
    fseek(f, n - (long)sizeof tail + 1, SEEK_SET);
    size_t t = fread(tail, 1, sizeof tail - 1, f);
    tail[t] = '\0';
    fclose(f);
    return strstr(head, "<svg") && strstr(tail, "</svg>");
}

static void check_pair(const char *dir, const char *base)
{
    char png[600], svg[600];
    snprintf(png, sizeof png, "%s/%s.png", dir, base);
    snprintf(svg, sizeof svg, "%s/%s.svg", dir, base);
    long size = 0;
    DL_CHECK(png_ok(png, &size), "%s: not a %dx%d PNG", png, DL_FIG_WIDTH, DL_FIG_HEIGHT);
    /* A blank 1000x600 page compresses to a few kB; axes, text and points
     * take far more. */
    DL_CHECK(size > 15000, "%s: only %ld bytes", png, size);
    DL_CHECK(svg_ok(svg), "%s: not an SVG file", svg);
}

/* Three made-up classes in two clusters; Û a sheared copy of U S. */
static void draw_factorise(const char *dir, dl_out *o)
{
    enum { M = 90, P = 3 };
    float u[M * P], g[M * 2];
    double s[P] = {12, 4, 1};
    int32_t labels[M];
    char *names[3] = {"alpha", "beta #2", "gamma"};
    for (int i = 0; i < M; i++) {
        int c = i % 3;
        double t = i * 0.7;
        u[i * P] = (float)((c - 1) * 0.1 + 0.02 * sin(t));
        u[i * P + 1] = (float)(0.08 * cos(1.3 * t) + (c == 2) * 0.05);
        u[i * P + 2] = 0.01f;
        g[i * 2] = u[i * P] * 3 + u[i * P + 1];
        g[i * 2 + 1] = u[i * P + 1] * 2 - u[i * P];
        labels[i] = c;
    }
    dl_fig_factorise f = {.m = M,
                          .rank = 2,
                          .u_gd = g,
                          .svd_u = u,
                          .ld_u = P,
                          .s = s,
                          .labels = labels,
                          .n_classes = 3,
                          .class_names = names};
    DL_CHECK(dl_out_figure_factorise(o, "figure1_projections", &f) == DL_OK, "%s", dl_errmsg());
    check_pair(dir, "figure1_projections");
    /* Rank 1, no labels, no SVD: one panel against the row number. */
    dl_fig_factorise f1 = {.m = M, .rank = 1, .u_gd = g};
    DL_CHECK(dl_out_figure_factorise(o, "figure1_rank1", &f1) == DL_OK, "%s", dl_errmsg());
    check_pair(dir, "figure1_rank1");
}

/* Curves shaped like a training run, with a diverged tail in the second. */
static void draw_mlp(const char *dir, dl_out *o)
{
    enum { E = 120 };
    float h[E * 4];
    for (int e = 0; e < E; e++) {
        double t = e / 25.0;
        h[e * 4 + 0] = (float)(0.05 + 1.05 * exp(-t));
        h[e * 4 + 1] = (float)(0.12 + 1.0 * exp(-0.9 * t) + 0.02 * sin(e * 0.9));
        h[e * 4 + 2] = (float)(1.0 - 0.65 * exp(-1.2 * t));
        h[e * 4 + 3] = (float)(0.96 - 0.6 * exp(-1.1 * t) + 0.015 * cos(e * 1.7));
    }
    dl_fig_mlp f = {.epochs = E,
                    .train_loss = h,
                    .val_loss = h + 1,
                    .train_acc = h + 2,
                    .val_acc = h + 3,
                    .stride = 4};
    DL_CHECK(dl_out_figure_mlp(o, "figure2_learning_curves", &f) == DL_OK, "%s", dl_errmsg());
    check_pair(dir, "figure2_learning_curves");
    for (int e = 80; e < E; e++) h[e * 4 + 0] = h[e * 4 + 1] = NAN;
    f.epochs = E;
    DL_CHECK(dl_out_figure_mlp(o, "figure2_diverged", &f) == DL_OK, "%s", dl_errmsg());
    check_pair(dir, "figure2_diverged");
    dl_fig_mlp one = {.epochs = 1,
                      .train_loss = h,
                      .val_loss = h + 1,
                      .train_acc = h + 2,
                      .val_acc = h + 3,
                      .stride = 4};
    DL_CHECK(dl_out_figure_mlp(o, "figure2_one_epoch", &one) == DL_OK, "%s", dl_errmsg());
    check_pair(dir, "figure2_one_epoch");
}

/* Figure 4: three classes (one with no rows), then twelve long names. */
static void draw_confusion(const char *dir, dl_out *o)
{
    char *names[12] = {"setosa",    "versicolor #2",
                       "virginica", "a rather long class name",
                       "e",         "f",
                       "g",         "h",
                       "i",         "j",
                       "k",         "l"};
    const int three[9] = {14, 0, 0, 0, 16, 1, 0, 0, 0};
    dl_fig_confusion c = {.classes = 3, .counts = three, .class_names = names, .title = "three"};
    DL_CHECK(dl_out_figure_confusion(o, "figure4_confusion_matrix", &c) == DL_OK, "%s",
             dl_errmsg());
    check_pair(dir, "figure4_confusion_matrix");
    int many[144];
    for (int t = 0; t < 12; t++)
        for (int q = 0; q < 12; q++) many[t * 12 + q] = t == q ? 20 + t : (t + q) % 3;
    dl_fig_confusion m = {.classes = 12, .counts = many, .class_names = names, .title = "twelve"};
    DL_CHECK(dl_out_figure_confusion(o, "figure4_twelve", &m) == DL_OK, "%s", dl_errmsg());
    check_pair(dir, "figure4_twelve");
    dl_fig_confusion none = {.classes = 0, .counts = three};
    DL_CHECK(dl_figure_confusion("x.png", DL_FIG_PNG, &none) == DL_E_USAGE, "no classes drawn");
}

static const char *keep_dir;

static void test_figures(void)
{
    char dir[512];
    if (keep_dir)
        snprintf(dir, sizeof dir, "%s", keep_dir);
    else
        path_of(dir, sizeof dir, "figures");
    dl_out o;
    dl_out_init(&o, dir, NULL);
    DL_CHECK(dl_out_prepare(&o, true) == DL_OK, "%s", dl_errmsg());
    char why[256];
    bool available = dl_figures_available(why, sizeof why);
#ifdef DLAB_HAVE_PLPLOT
    DL_CHECK(available, "built with PLplot, yet: %s", why);
#else
    DL_CHECK(!available && strstr(why, "without PLplot"), "no PLplot: '%s'", why);
    dl_fig_mlp none = {0};
    DL_CHECK(dl_figure_mlp("x.png", DL_FIG_PNG, &none) == DL_E_RUNTIME, "figure without PLplot");
    DL_CHECK(strstr(dl_errmsg(), "without PLplot"), "message: '%s'", dl_errmsg());
#endif
    if (!available) {
        float v = 1;
        dl_fig_mlp f = {
            .epochs = 1, .train_loss = &v, .val_loss = &v, .train_acc = &v, .val_acc = &v};
        DL_CHECK(dl_out_figure_mlp(&o, "fig", &f) == DL_OK,
                 "unavailable figures must not fail the run");
        DL_CHECK(o.n_files == 0 && o.figures_note[0], "note '%s', %d files", o.figures_note,
                 o.n_files);
        return;
    }
    draw_factorise(dir, &o);
    draw_mlp(dir, &o);
    draw_confusion(dir, &o);
    DL_CHECK(o.n_files == 14 && !o.figures_note[0], "%d files, note '%s'", o.n_files,
             o.figures_note);
    /* Only the finished files: no temporaries left behind. */
    DL_CHECK(entries(dir) == 14, "%d entries in %s, expected 14", entries(dir), dir);
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            remove_tree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

int main(int argc, char **argv)
{
    keep_dir = argc > 1 ? argv[1] : NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/dlab_report_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        return 1;
    }
    DL_RUN(test_prepare);
    DL_RUN(test_atomic_write);
    DL_RUN(test_csv);
    DL_RUN(test_figures);
    remove_tree(scratch);
    return dl_test_summary("test_report");
}
