/* Applying a saved classifier and the files that carry results: the
 * forward pass of dl_mlp_predict against a float64 reference on the backend
 * under test, model.json written and read back exactly, its checks against
 * data, the .npy and CSV writers byte for byte, predictions.csv, and the
 * HTML escaping of report.html.
 * usage: test_predict --backend cpu|cuda */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "backend_arg.h"
#include "dl_test.h"
#include "dlab/mlp.h"
#include "dlab/model_io.h"
#include "dlab/npy_write.h"
#include "dlab/predict.h"
#include "dlab/predictions_out.h"
#include "dlab/report_html.h"
#include "dlab/rng.h"

static dl_backend *be;
static char scratch[256];

/* The text fn writes, as a NUL-terminated heap string of *len bytes. */
static char *capture(dl_write_fn fn, const void *ctx, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    dl_status st = fn(f, ctx);
    fclose(f);
    if (st != DL_OK) {
        free(buf);
        return NULL;
    }
    if (len) *len = n;
    return buf;
}

/* A small random model: F-H-C with N(0, 1) weights and biases. */
enum { F = 5, H = 7, C = 4, ROWS = 37 };

static void random_model(float *params, double *mean, double *scale, float *x, uint64_t seed)
{
    dl_rng r;
    dl_rng_seed(&r, seed);
    size_t P = dl_mlp_param_count(F, H, C);
    for (size_t i = 0; i < P; i++) params[i] = (float)dl_rng_normal(&r);
    for (int j = 0; j < F; j++) mean[j] = dl_rng_normal(&r), scale[j] = 0.5 + dl_rng_uniform(&r);
    for (int i = 0; i < ROWS * F; i++) x[i] = (float)(3.0 * dl_rng_normal(&r));
}

/* The same network in double: x' = (x - mean)/scale, relu, softmax. */
static void reference(const float *p, const double *mean, const double *scale, const float *x,
                      double *logits, double *prob)
{
    const size_t b1 = F * H, w2 = b1 + H, b2 = w2 + H * C;
    for (int i = 0; i < ROWS; i++) {
        double h[H], xs[F];
        for (int j = 0; j < F; j++) xs[j] = (float)((x[i * F + j] - mean[j]) * (1.0 / scale[j]));
        for (int u = 0; u < H; u++) {
            double s = p[b1 + u];
            for (int j = 0; j < F; j++) s += xs[j] * p[j * H + u];
            h[u] = s > 0 ? s : 0;
        }
        double zmax = -INFINITY, sum = 0;
        for (int k = 0; k < C; k++) {
            double s = p[b2 + k];
            for (int u = 0; u < H; u++) s += h[u] * p[w2 + u * C + k];
            logits[i * C + k] = s;
            if (s > zmax) zmax = s;
        }
        for (int k = 0; k < C; k++) sum += exp(logits[i * C + k] - zmax);
        for (int k = 0; k < C; k++) prob[i * C + k] = exp(logits[i * C + k] - zmax) / sum;
    }
}

static void test_forward(void)
{
    float params[F * H + H + H * C + C], x[ROWS * F];
    double mean[F], scale[F], logits[ROWS * C], prob[ROWS * C];
    random_model(params, mean, scale, x, 11);
    reference(params, mean, scale, x, logits, prob);
    dl_mlp_model m = {.features = F,
                      .hidden = H,
                      .classes = C,
                      .input_mean = mean,
                      .input_scale = scale,
                      .params = params};
    dl_predictions p;
    DL_CHECK(dl_mlp_predict(be, &m, x, ROWS, &p) == DL_OK, "%s", dl_errmsg());
    if (!p.prob) return;
    double worst_z = 0, worst_p = 0;
    for (int i = 0; i < ROWS; i++) {
        double sum = 0;
        int arg = 0;
        for (int k = 0; k < C; k++) {
            double dz =
                fabs(p.logits[i * C + k] - logits[i * C + k]) / (1 + fabs(logits[i * C + k]));
            double dp = fabs(p.prob[i * C + k] - prob[i * C + k]);
            worst_z = dz > worst_z ? dz : worst_z;
            worst_p = dp > worst_p ? dp : worst_p;
            sum += p.prob[i * C + k];
            if (p.logits[i * C + k] > p.logits[i * C + arg]) arg = k;
        }
        DL_CHECK_NEAR(sum, 1.0, 1e-6, "probabilities of a row");
        DL_CHECK(p.predicted[i] == arg, "row %d: predicted %d, first largest logit %d", i,
                 p.predicted[i], arg);
    }
    DL_CHECK(worst_z < 1e-5, "logits off by %.3g (relative)", worst_z);
    DL_CHECK(worst_p < 1e-5, "probabilities off by %.3g", worst_p);
    dl_predictions_free(&p);

    /* Ties go to the lower class id, as the training's accuracy counts them:
     * with W2 = 0 every row's logits are b2. */
    size_t b2 = F * H + H + H * C;
    memset(params + F * H + H, 0, sizeof(float) * H * C);
    params[b2 + 0] = 0.5f, params[b2 + 1] = 2.0f, params[b2 + 2] = -1.0f, params[b2 + 3] = 2.0f;
    DL_CHECK(dl_mlp_predict(be, &m, x, ROWS, &p) == DL_OK, "%s", dl_errmsg());
    if (!p.prob) return;
    int ones = 0;
    for (int i = 0; i < ROWS; i++) ones += p.predicted[i] == 1;
    DL_CHECK(ones == ROWS, "%d of %d tied rows went to class 1", ones, ROWS);
    DL_CHECK_NEAR(p.prob[1], p.prob[3], 0.0, "tied probabilities");
    int counts[C * C] = {0};
    int32_t labels[ROWS];
    for (int i = 0; i < ROWS; i++) labels[i] = i % 5 == 4 ? 9 : i % C; /* 9: not a class */
    int32_t idx[3] = {0, 1, 4};
    DL_CHECK(dl_confusion_add(&p, labels, idx, 3, counts) == 2, "rows counted");
    DL_CHECK(counts[0 * C + 1] == 1 && counts[1 * C + 1] == 1, "confusion cells");
    dl_predictions_free(&p);

    /* Weights near FLT_MAX overflow the logits of the rows that reach them:
     * those rows get no class and NaN probabilities, and are counted; the
     * others keep theirs. With W2 zero but for hidden unit 0's row, a row's
     * logits overflow when relu(unit 0) * 3e38 exceeds FLT_MAX (3.4e38),
     * i.e. when unit 0 is above about 1.13. */
    params[F * H + H + 0 * C + 0] = 3e38f;
    params[F * H + H + 0 * C + 1] = -3e38f;
    double hid0[ROWS];
    int want_bad = 0, want_ok = 0;
    for (int i = 0; i < ROWS; i++) {
        double a = params[F * H + 0];
        for (int j = 0; j < F; j++) a += (x[i * F + j] - mean[j]) / scale[j] * params[j * H + 0];
        hid0[i] = a;
        want_bad += a > 1.2, want_ok += a < 1.05; /* clear of rounding either way */
    }
    DL_CHECK(dl_mlp_predict(be, &m, x, ROWS, &p) == DL_OK, "%s", dl_errmsg());
    if (!p.prob) return;
    int got_bad = 0;
    for (int i = 0; i < ROWS; i++) {
        bool finite = true;
        for (int k = 0; k < C; k++) finite = finite && isfinite(p.logits[i * C + k]);
        got_bad += !finite;
        if (hid0[i] > 1.2 || hid0[i] < 1.05)
            DL_CHECK(finite == (hid0[i] < 1.05), "row %d: hidden unit 0 is %g, logits %s", i,
                     hid0[i], finite ? "finite" : "not finite");
        if (finite)
            DL_CHECK(p.predicted[i] >= 0 && p.predicted[i] < C && isfinite(p.prob[i * C]),
                     "row %d: finite logits, class %d", i, p.predicted[i]);
        else
            DL_CHECK(p.predicted[i] == -1 && isnan(p.prob[i * C]) && isnan(p.prob[i * C + C - 1]),
                     "row %d: non-finite logits, class %d", i, p.predicted[i]);
    }
    DL_CHECK(p.non_finite == got_bad, "non_finite %d, rows with non-finite logits %d", p.non_finite,
             got_bad);
    DL_CHECK(want_bad > 0 && want_ok > 0,
             "%d rows overflow, %d do not (the test needs some of each)", want_bad, want_ok);
    /* A row without a class is left out of the confusion matrix. */
    int cm[C * C] = {0};
    for (int i = 0; i < ROWS; i++) labels[i] = i % C;
    DL_CHECK(dl_confusion_add(&p, labels, NULL, ROWS, cm) == ROWS - got_bad,
             "rows without a class counted");
    dl_predictions_free(&p);

    dl_mlp_model bad = m;
    bad.hidden = 0;
    DL_CHECK(dl_mlp_predict(be, &bad, x, ROWS, &p) == DL_E_USAGE, "hidden 0 refused");
}

/* NPY 1.0: magic, version, a little-endian header length, the dict padded
 * with spaces and ended by a line feed so that the data starts at a multiple
 * of 64 bytes, then little-endian float32 values row by row. */
static size_t npy_data_offset(const char *dict) { return (10 + strlen(dict) + 1 + 63) / 64 * 64; }

static void check_header(const char *b, size_t len, const char *dict, size_t values)
{
    size_t off = npy_data_offset(dict);
    DL_CHECK(len == off + 4 * values, "file of %zu bytes, expected %zu", len, off + 4 * values);
    DL_CHECK(!memcmp(b, "\x93NUMPY\x01\x00", 8), "magic and version");
    size_t hl = (unsigned char)b[8] | (unsigned char)b[9] << 8;
    DL_CHECK(10 + hl == off && b[off - 1] == '\n', "header of %zu bytes", hl);
    DL_CHECK(!strncmp(b + 10, dict, strlen(dict)), "dict '%.*s'", (int)strlen(dict), b + 10);
    for (size_t i = 10 + strlen(dict); i + 1 < off; i++) DL_CHECK(b[i] == ' ', "padding at %zu", i);
}

static void test_npy(void)
{
    const float v[3 * 4] = {1, 2, 99, 99, -0.5f, 1e-3f, 99, 99, 3e30f, -7, 99, 99};
    dl_npy_array a = {.data = v, .ndim = 2, .shape = {3, 2}, .ld = 4};
    size_t len;
    char *b = capture(dl_npy_write, &a, &len);
    DL_CHECK(b != NULL, "2-D file");
    if (!b) return;
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
    check_header(b, len, dict, 6);
    const float want[6] = {1, 2, -0.5f, 1e-3f, 3e30f, -7};
    size_t off = npy_data_offset(dict);
    for (int i = 0; i < 6 && len >= off + 24; i++) {
        uint32_t bits = 0, ref;
        for (int k = 0; k < 4; k++) bits |= (uint32_t)(unsigned char)b[off + 4 * i + k] << (8 * k);
        memcpy(&ref, &want[i], 4);
        DL_CHECK(bits == ref, "value %d: %08x, expected %08x", i, bits, ref);
    }
    free(b);
    float three[3] = {1, 2, 3};
    dl_npy_array one = {.data = three, .ndim = 1, .shape = {3}};
    b = capture(dl_npy_write, &one, &len);
    if (b) check_header(b, len, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 3);
    free(b);
    /* a shape whose dict passes the 64-byte mark pads to the next multiple */
    dl_npy_array wide = {.data = three, .ndim = 2, .shape = {0, 12345678901234567ull}};
    b = capture(dl_npy_write, &wide, &len);
    if (b)
        check_header(b, len,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 12345678901234567), }",
                     0);
    free(b);
    dl_npy_array rank3 = {.data = three, .ndim = 3, .shape = {1, 1}};
    DL_CHECK(dl_npy_write(stdout, &rank3) == DL_E_USAGE, "rank 3 refused");

    dl_csv_matrix m = {.array = a, .prefix = "u"};
    b = capture(dl_csv_write_matrix, &m, NULL);
    DL_CHECK(b && !strcmp(b, "u1,u2\n1,2\n-0.5,0.00100000005\n2.99999989e+30,-7\n"), "CSV '%s'",
             b ? b : "");
    free(b);
}

static void test_predictions_csv(void)
{
    int32_t pred[2] = {1, -1}, labels[2] = {0, -1}; /* -1: non-finite outputs, no class */
    float prob[4] = {0.25f, 0.75f, NAN, NAN};
    dl_predictions p = {.rows = 2, .classes = 2, .predicted = pred, .prob = prob};
    char *names[2] = {"plain", "has,comma \"q\""};
    uint8_t split[2] = {0, 1};
    dl_predictions_csv c = {.p = &p, .class_names = names, .labels = labels, .split = split};
    char *b = capture(dl_predictions_csv_write, &c, NULL);
    DL_CHECK(b && !strcmp(b, "row,split,label,predicted,p_plain,\"p_has,comma \"\"q\"\"\"\n"
                             "1,train,plain,\"has,comma \"\"q\"\"\",0.25,0.75\n"
                             "2,validation,,,nan,nan\n"),
             "predictions.csv '%s'", b ? b : "");
    free(b);
}

static void test_escape(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"<b>&'\"</b>", "&lt;b&gt;&amp;&#39;&quot;&lt;/b&gt;"},
        {"caf\xc3\xa9 \xe2\x80\x94 ok", "caf\xc3\xa9 \xe2\x80\x94 ok"},
        {"bad \xff byte", "bad \xef\xbf\xbd byte"},
        {"ctrl\x01\x7f", "ctrl\xef\xbf\xbd\xef\xbf\xbd"},
        {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"},
        {"cut \xe2\x80", "cut \xef\xbf\xbd\xef\xbf\xbd"},
        {"tab\tand\nline", "tab\tand\nline"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *buf = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&buf, &n);
        dl_html_escape(f, cases[i].in);
        fclose(f);
        DL_CHECK(!strcmp(buf, cases[i].out), "escape case %zu: '%s'", i, buf);
        free(buf);
    }
}

static void test_model_file(void)
{
    float params[F * H + H + H * C + C], x[ROWS * F];
    double mean[F], scale[F];
    random_model(params, mean, scale, x, 5);
    mean[0] = 1.0 / 3.0, scale[1] = 0.1; /* doubles that need 17 digits */
    params[0] = 1.0f / 3.0f, params[1] = -3.4e38f, params[2] = 1e-40f;
    char *features[F] = {"a", "b \"quoted\"", "c", "d", "e"};
    char *classes[C] = {"one", "two", "three", "four"};
    dl_model m = {.features = F,
                  .hidden = H,
                  .classes = C,
                  .feature_names = features,
                  .named_features = true,
                  .class_names = classes,
                  .input_mean = mean,
                  .input_scale = scale,
                  .params = params};
    dl_model_record rec = {.model = &m, .preset = "careful", .optim = "sgd", .data = "d.csv"};
    char path[300];
    snprintf(path, sizeof path, "%s/model.json", scratch);
    FILE *f = fopen(path, "w");
    DL_CHECK(f && dl_model_write(f, &rec) == DL_OK, "write %s", path);
    if (f) fclose(f);
    dl_model back;
    dl_status st = dl_model_read(path, &back);
#ifndef DLAB_HAVE_JANSSON
    DL_CHECK(st == DL_E_RUNTIME && strstr(dl_errmsg(), "without Jansson"), "%s", dl_errmsg());
    return;
#endif
    DL_CHECK(st == DL_OK, "%s", dl_errmsg());
    if (st != DL_OK) return;
    DL_CHECK(back.features == F && back.hidden == H && back.classes == C && back.named_features,
             "shape %d-%d-%d", back.features, back.hidden, back.classes);
    DL_CHECK(!memcmp(back.params, params, sizeof params), "weights read back exactly");
    DL_CHECK(!memcmp(back.input_mean, mean, sizeof mean), "input_mean read back exactly");
    DL_CHECK(!memcmp(back.input_scale, scale, sizeof scale), "input_scale read back exactly");
    DL_CHECK(!strcmp(back.feature_names[1], "b \"quoted\"") &&
                 !strcmp(back.class_names[2], "three"),
             "names");

    /* data against the model: columns, header names, labels */
    int32_t lab_in[3] = {1, 0, 1}, lab_out[3];
    char *dnames[2] = {"three", "one"};
    char *cols[F] = {"a", "b \"quoted\"", "c", "d", "e"};
    dl_dataset d = {.rows = 3, .cols = F, .labels = lab_in, .n_classes = 2, .class_names = dnames};
    DL_CHECK(dl_model_check_data(&back, "m.json", &d, "d.csv", lab_out) == DL_OK, "%s",
             dl_errmsg());
    DL_CHECK(lab_out[0] == 0 && lab_out[1] == 2 && lab_out[2] == 0, "labels in the model's order");
    d.col_names = cols;
    DL_CHECK(dl_model_check_data(&back, "m.json", &d, "d.csv", lab_out) == DL_OK, "same header");
    cols[4] = "E";
    DL_CHECK(dl_model_check_data(&back, "m.json", &d, "d.csv", lab_out) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "d.csv: the header names the features"),
             "renamed column: %s", dl_errmsg());
    d.col_names = NULL;
    d.cols = F - 1;
    DL_CHECK(dl_model_check_data(&back, "m.json", &d, "d.csv", lab_out) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "d.csv: 4 feature columns, but the model m.json takes 5"),
             "columns: %s", dl_errmsg());
    d.cols = F;
    dnames[1] = "zero";
    DL_CHECK(dl_model_check_data(&back, "m.json", &d, "d.csv", lab_out) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "label \"zero\" is not one of the classes"),
             "unknown label: %s", dl_errmsg());
    dl_model_free(&back);
    unlink(path);
}

int main(int argc, char **argv)
{
    be = dl_test_backend(argc, argv);
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/dlab_predict_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        return 1;
    }
    DL_RUN(test_forward);
    DL_RUN(test_npy);
    DL_RUN(test_predictions_csv);
    DL_RUN(test_escape);
    DL_RUN(test_model_file);
    rmdir(scratch);
    dl_backend_destroy(be);
    return dl_test_summary("test_predict");
}
