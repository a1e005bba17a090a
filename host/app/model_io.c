#define _POSIX_C_SOURCE 200809L
/* model.json written with the project's JSON writer and read with Jansson
 * (a well-kept JSON library: strict RFC 8259 parsing, line and column in its
 * error messages). */
#include "dlab/model_io.h"

#include "dlab/json.h"
#include "dlab/mlp.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A model this size or larger in any dimension is not one this program made. */
#define MODEL_MAX_DIM (1 << 24)

/* --- writing ------------------------------------------------------------ */

static void write_names(dl_json *j, const char *key, char *const *names, int n, const char *dflt)
{
    dl_json_arr_begin(j, key);
    for (int i = 0; i < n; i++) {
        char buf[32];
        if (names && names[i])
            dl_json_str(j, NULL, names[i]);
        else {
            snprintf(buf, sizeof buf, "%s %d", dflt, i + 1);
            dl_json_str(j, NULL, buf);
        }
    }
    dl_json_arr_end(j);
}

/* One layer {"W": rows x cols, "b": cols} from the parameter block. */
static void write_layer(dl_json *j, const float *w, const float *b, int rows, int cols)
{
    dl_json_obj_begin(j, NULL);
    dl_json_arr_begin(j, "W");
    for (int i = 0; i < rows; i++) dl_json_floats(j, NULL, w + (size_t)i * cols, (size_t)cols, 1);
    dl_json_arr_end(j);
    dl_json_floats(j, "b", b, (size_t)cols, 1);
    dl_json_obj_end(j);
}

dl_status dl_model_write(FILE *f, const void *arg)
{
    const dl_model_record *rec = arg;
    const dl_model *m = rec->model;
    const int d = m->features, h = m->hidden, c = m->classes;
    const size_t b1 = (size_t)d * h, w2 = b1 + (size_t)h, b2 = w2 + (size_t)h * c;
    dl_json j;
    dl_json_init(&j, f, true);
    dl_json_obj_begin(&j, NULL);
    dl_json_str(&j, "format", DL_MODEL_FORMAT);
    dl_json_int(&j, "version", DL_MODEL_VERSION);
    write_names(&j, "feature_names", m->feature_names, d, "column");
    dl_json_str(&j, "feature_names_from", m->named_features ? "header" : "position");
    write_names(&j, "classes", m->class_names, c, "class");
    dl_json_str(&j, "input_transform", "x' = (x - input_mean) / input_scale");
    dl_json_doubles(&j, "input_mean", m->input_mean, (size_t)d);
    dl_json_doubles(&j, "input_scale", m->input_scale, (size_t)d);
    dl_json_str(&j, "activation", "relu");
    dl_json_str(&j, "output", "softmax");
    dl_json_str(&j, "network", "h = relu(x' W1 + b1), logits = h W2 + b2");
    dl_json_arr_begin(&j, "layers");
    write_layer(&j, m->params, m->params + b1, d, h);
    write_layer(&j, m->params + w2, m->params + b2, h, c);
    dl_json_arr_end(&j);
    dl_json_obj_begin(&j, "training");
    dl_json_str(&j, "data", rec->data);
    dl_json_str(&j, "preset", rec->preset);
    dl_json_str(&j, "input_scale_is",
                rec->preset && !strcmp(rec->preset, "lab")
                    ? "the variance of each column over all rows"
                    : "the standard deviation of each column over the "
                      "training rows");
    dl_json_str(&j, "optim", rec->optim);
    dl_json_f32(&j, "lr", (float)rec->lr); /* the float32 step the model trained with */
    dl_json_int(&j, "epochs_run", rec->epochs_run);
    dl_json_int(&j, "seed", (long long)rec->seed);
    dl_json_int(&j, "train_rows", rec->train_rows);
    dl_json_int(&j, "validation_rows", rec->validation_rows);
    dl_json_num(&j, "train_accuracy", rec->train_accuracy);
    dl_json_num(&j, "val_accuracy", rec->val_accuracy);
    dl_json_obj_end(&j);
    dl_json_obj_end(&j);
    return DL_OK;
}

/* --- reading ------------------------------------------------------------ */

void dl_model_free(dl_model *m)
{
    if (!m) return;
    if (m->feature_names)
        for (int i = 0; i < m->features; i++) free(m->feature_names[i]);
    if (m->class_names)
        for (int i = 0; i < m->classes; i++) free(m->class_names[i]);
    free(m->feature_names), free(m->class_names);
    free(m->input_mean), free(m->input_scale), free(m->params);
    memset(m, 0, sizeof *m);
}

dl_mlp_model dl_model_view(const dl_model *m)
{
    return (dl_mlp_model){.features = m->features,
                          .hidden = m->hidden,
                          .classes = m->classes,
                          .input_mean = m->input_mean,
                          .input_scale = m->input_scale,
                          .params = m->params};
}

#define BAD(...) DL_FAIL(DL_E_INPUT, __VA_ARGS__)

#ifndef DLAB_HAVE_JANSSON

dl_status dl_model_read(const char *path, dl_model *out)
{
    memset(out, 0, sizeof *out);
    return DL_FAIL_PLAIN(
        DL_E_RUNTIME, "cannot read %s: dlab-gpu was built without Jansson (Debian: libjansson-dev)",
        path);
}

#else

#include <ctype.h>
#include <jansson.h>
#include <sys/stat.h>

/* An array of at least one and at most MODEL_MAX_DIM entries. */
static dl_status get_array(const char *path, json_t *obj, const char *key, const char *where,
                           json_t **out, size_t *n)
{
    json_t *a = json_object_get(obj, key);
    if (!a) return BAD("%s: %s\"%s\" is missing", path, where, key);
    if (!json_is_array(a)) return BAD("%s: %s\"%s\" is not an array", path, where, key);
    *n = json_array_size(a);
    if (*n == 0) return BAD("%s: %s\"%s\" is empty", path, where, key);
    if (*n >= MODEL_MAX_DIM) return BAD("%s: %s\"%s\" is too long (%zu)", path, where, key, *n);
    *out = a;
    return DL_OK;
}

static dl_status get_names(const char *path, json_t *root, const char *key, char ***out, int *n)
{
    json_t *a;
    size_t len;
    DL_TRY(get_array(path, root, key, "", &a, &len));
    char **names = calloc(len, sizeof(char *));
    if (!names) return DL_FAIL(DL_E_MEMORY, "%s: out of memory", path);
    *out = names, *n = (int)len;
    for (size_t i = 0; i < len; i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s)) return BAD("%s: \"%s\"[%zu] is not a string", path, key, i);
        names[i] = strdup(json_string_value(s));
        if (!names[i]) return DL_FAIL(DL_E_MEMORY, "%s: out of memory", path);
    }
    return DL_OK;
}

/* A finite number; with as_float also within float32's range. */
static dl_status get_number(const char *path, json_t *v, bool as_float, const char *what, size_t i,
                            double *out)
{
    if (!json_is_number(v)) return BAD("%s: %s[%zu] is not a number", path, what, i);
    double x = json_number_value(v);
    if (!isfinite(x) || (as_float && fabs(x) > FLT_MAX))
        return BAD("%s: %s[%zu] is out of range", path, what, i);
    *out = x;
    return DL_OK;
}

static dl_status get_doubles(const char *path, json_t *root, const char *key, int n, double **out)
{
    json_t *a;
    size_t len;
    DL_TRY(get_array(path, root, key, "", &a, &len));
    if ((int)len != n) return BAD("%s: \"%s\" has %zu values for %d features", path, key, len, n);
    *out = malloc(sizeof(double) * len);
    if (!*out) return DL_FAIL(DL_E_MEMORY, "%s: out of memory", path);
    char what[64];
    snprintf(what, sizeof what, "\"%s\"", key);
    for (size_t i = 0; i < len; i++)
        DL_TRY(get_number(path, json_array_get(a, i), false, what, i, &(*out)[i]));
    return DL_OK;
}

/* Floats of a flat array of exactly n values into dst. */
static dl_status get_floats(const char *path, json_t *a, size_t n, const char *what, float *dst)
{
    if (!json_is_array(a)) return BAD("%s: %s is not an array", path, what);
    if (json_array_size(a) != n)
        return BAD("%s: %s has %zu values, expected %zu", path, what, json_array_size(a), n);
    for (size_t i = 0; i < n; i++) {
        double v = 0.0;
        DL_TRY(get_number(path, json_array_get(a, i), true, what, i, &v));
        dst[i] = (float)v;
    }
    return DL_OK;
}

/* The shape of layer l's W: rows x cols, cols found from its first row. */
static dl_status layer_shape(const char *path, json_t *layers, int l, size_t *rows, size_t *cols)
{
    json_t *layer = json_array_get(layers, (size_t)l);
    if (!json_is_object(layer)) return BAD("%s: \"layers\"[%d] is not an object", path, l);
    char where[32];
    snprintf(where, sizeof where, "\"layers\"[%d].", l);
    json_t *w;
    DL_TRY(get_array(path, layer, "W", where, &w, rows));
    json_t *first = json_array_get(w, 0);
    if (!json_is_array(first) || json_array_size(first) == 0)
        return BAD("%s: \"layers\"[%d].\"W\"[0] is not a non-empty array of numbers", path, l);
    *cols = json_array_size(first);
    if (*cols >= MODEL_MAX_DIM) return BAD("%s: \"layers\"[%d].\"W\" is too wide", path, l);
    return DL_OK;
}

/* Layer l's W (rows x cols, every row checked) and b (cols) into w and b. */
static dl_status get_layer(const char *path, json_t *layers, int l, size_t rows, size_t cols,
                           float *w, float *b)
{
    json_t *layer = json_array_get(layers, (size_t)l), *wa = json_object_get(layer, "W");
    char what[64];
    for (size_t i = 0; i < rows; i++) {
        snprintf(what, sizeof what, "\"layers\"[%d].\"W\"[%zu]", l, i);
        DL_TRY(get_floats(path, json_array_get(wa, i), cols, what, w + i * cols));
    }
    json_t *ba = json_object_get(layer, "b");
    snprintf(what, sizeof what, "\"layers\"[%d].\"b\"", l);
    if (!ba) return BAD("%s: %s is missing", path, what);
    return get_floats(path, ba, cols, what, b);
}

static dl_status read_model(const char *path, json_t *root, dl_model *m)
{
    if (!json_is_object(root))
        return BAD("%s: not a dlab-gpu model file (the JSON is not an object)", path);
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), DL_MODEL_FORMAT) != 0)
        return BAD("%s: not a dlab-gpu model file (\"format\" is %s%s%s, expected \"%s\")", path,
                   json_is_string(fmt) ? "\"" : "",
                   json_is_string(fmt) ? json_string_value(fmt)
                   : fmt               ? "not a string"
                                       : "missing",
                   json_is_string(fmt) ? "\"" : "", DL_MODEL_FORMAT);
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver)) return BAD("%s: \"version\" is missing or not an integer", path);
    if (json_integer_value(ver) != DL_MODEL_VERSION)
        return BAD("%s: model version %lld is not supported (this dlab-gpu reads version %d)", path,
                   (long long)json_integer_value(ver), DL_MODEL_VERSION);
    DL_TRY(get_names(path, root, "feature_names", &m->feature_names, &m->features));
    DL_TRY(get_names(path, root, "classes", &m->class_names, &m->classes));
    if (m->classes < 2)
        return BAD("%s: \"classes\" names %d class; a classifier needs at least 2", path,
                   m->classes);
    /* A prediction is reported by its class name: an empty or repeated
     * name would make two outputs indistinguishable. */
    for (int k = 0; k < m->classes; k++) {
        if (!m->class_names[k][0]) return BAD("%s: \"classes\"[%d] is an empty name", path, k);
        for (int q = 0; q < k; q++)
            if (!strcmp(m->class_names[q], m->class_names[k]))
                return BAD("%s: \"classes\"[%d] and \"classes\"[%d] are both \"%s\"; class "
                           "names must be distinct",
                           path, q, k, m->class_names[k]);
    }
    json_t *from = json_object_get(root, "feature_names_from");
    m->named_features = json_is_string(from) && !strcmp(json_string_value(from), "header");
    DL_TRY(get_doubles(path, root, "input_mean", m->features, &m->input_mean));
    DL_TRY(get_doubles(path, root, "input_scale", m->features, &m->input_scale));
    for (int i = 0; i < m->features; i++)
        if (!(m->input_scale[i] > 0.0))
            return BAD("%s: \"input_scale\"[%d] is %g; scales must be positive", path, i,
                       m->input_scale[i]);
    json_t *act = json_object_get(root, "activation");
    if (!json_is_string(act)) return BAD("%s: \"activation\" is missing or not a string", path);
    if (strcmp(json_string_value(act), "relu") != 0)
        return BAD("%s: activation \"%s\" is not supported (relu only)", path,
                   json_string_value(act));
    json_t *output = json_object_get(root, "output");
    if (!json_is_string(output))
        return BAD("%s: \"output\" is missing or not a string (softmax only)", path);
    if (strcmp(json_string_value(output), "softmax") != 0)
        return BAD("%s: output \"%s\" is not supported (softmax only)", path,
                   json_string_value(output));
    json_t *layers;
    size_t n_layers;
    DL_TRY(get_array(path, root, "layers", "", &layers, &n_layers));
    if (n_layers != 2)
        return BAD("%s: \"layers\" has %zu layers; this model has exactly 2 (one hidden layer)",
                   path, n_layers);
    size_t r1, h, r2, c;
    DL_TRY(layer_shape(path, layers, 0, &r1, &h));
    DL_TRY(layer_shape(path, layers, 1, &r2, &c));
    if (r1 != (size_t)m->features)
        return BAD("%s: \"layers\"[0].\"W\" has %zu rows for %d features", path, r1, m->features);
    if (r2 != h)
        return BAD("%s: \"layers\"[1].\"W\" has %zu rows, but layer 0 has %zu outputs", path, r2,
                   h);
    if (c != (size_t)m->classes)
        return BAD("%s: \"layers\"[1].\"W\" has %zu columns for %d classes", path, c, m->classes);
    m->hidden = (int)h;
    size_t P = dl_mlp_param_count(m->features, m->hidden, m->classes);
    m->params = malloc(sizeof(float) * P);
    if (!m->params) return DL_FAIL(DL_E_MEMORY, "%s: out of memory for %zu weights", path, P);
    const size_t b1 = (size_t)m->features * h, w2 = b1 + h, b2 = w2 + h * c;
    DL_TRY(get_layer(path, layers, 0, r1, h, m->params, m->params + b1));
    return get_layer(path, layers, 1, h, c, m->params + w2, m->params + b2);
}

dl_status dl_model_read(const char *path, dl_model *out)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return BAD("%s: is a directory, not a model file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return BAD("%s: cannot open: %s", path, strerror(errno));
    json_error_t err;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    if (!root) {
        /* the parser quotes the offending text, which may be binary */
        for (char *p = err.text; *p; p++)
            if (!isprint((unsigned char)*p)) *p = '?';
        if (err.line > 0 && err.column > 0)
            return BAD("%s:%d:%d: not a dlab-gpu model file: invalid JSON: %s", path, err.line,
                       err.column, err.text);
        if (err.line > 0)
            return BAD("%s:%d: not a dlab-gpu model file: invalid JSON: %s", path, err.line,
                       err.text);
        return BAD("%s: not a dlab-gpu model file: invalid JSON: %s", path, err.text);
    }
    dl_status st = read_model(path, root, out);
    json_decref(root);
    if (st != DL_OK) dl_model_free(out);
    return st;
}

#endif

/* --- data against the model --------------------------------------------- */

/* "a, b, c" (at most 8 names) into buf. */
static const char *list_names(char *const *names, int n, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && o + 1 < len; i++) {
        if (i == 8) {
            snprintf(buf + o, len - o, ", ...");
            break;
        }
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "",
                              names && names[i] ? names[i] : "?");
    }
    return buf;
}

/* Whether every feature name of m is a column name of d's header. */
static bool has_all_names(const dl_dataset *d, const dl_model *m)
{
    for (int i = 0; i < m->features; i++) {
        bool found = false;
        for (int k = 0; k < d->cols && !found; k++)
            found = d->col_names[k] && !strcmp(d->col_names[k], m->feature_names[i]);
        if (!found) return false;
    }
    return true;
}

dl_status dl_model_check_data(const dl_model *m, const char *model_path, const dl_dataset *d,
                              const char *data_path, int32_t *labels_out)
{
    char a[256], b[256];
    if (d->cols != m->features) {
        /* The header holds every feature the model takes: --columns picks them. */
        char hint[300] = "";
        if (m->named_features && d->col_names && has_all_names(d, m)) {
            size_t o = (size_t)snprintf(hint, sizeof hint, "; select them with --columns ");
            for (int i = 0; i < m->features && o < sizeof hint; i++)
                o += (size_t)snprintf(hint + o, sizeof hint - o, "%s%s", i ? "," : "",
                                      m->feature_names[i]);
        }
        return BAD("%s: %d feature column%s, but the model %s takes %d (%s)%s", data_path, d->cols,
                   d->cols == 1 ? "" : "s", model_path, m->features,
                   list_names(m->feature_names, m->features, a, sizeof a), hint);
    }
    if (m->named_features && d->col_names)
        for (int i = 0; i < d->cols; i++)
            if (!d->col_names[i] || strcmp(d->col_names[i], m->feature_names[i]) != 0)
                return BAD("%s: the header names the features %s, but the model %s takes %s",
                           data_path, list_names(d->col_names, d->cols, b, sizeof b), model_path,
                           list_names(m->feature_names, m->features, a, sizeof a));
    if (!d->labels || !labels_out) return DL_OK;
    int *map = malloc(sizeof(int) * (size_t)d->n_classes);
    if (!map) return DL_FAIL(DL_E_MEMORY, "%s: out of memory", data_path);
    for (int k = 0; k < d->n_classes; k++) {
        map[k] = -1;
        for (int c = 0; c < m->classes && map[k] < 0; c++)
            if (strcmp(d->class_names[k], m->class_names[c]) == 0) map[k] = c;
        if (map[k] < 0) {
            free(map);
            return BAD("%s: label \"%s\" is not one of the classes of the model %s (%s)", data_path,
                       d->class_names[k], model_path,
                       list_names(m->class_names, m->classes, a, sizeof a));
        }
    }
    for (int i = 0; i < d->rows; i++) labels_out[i] = map[d->labels[i]];
    free(map);
    return DL_OK;
}
