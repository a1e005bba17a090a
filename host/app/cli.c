#include "dlab/cli.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DLAB_DATA_DIR
#define DLAB_DATA_DIR "data"
#endif

const char *dl_default_data_path(void) { return DLAB_DATA_DIR "/iris.data"; }

void dl_cli_usage(FILE *f)
{
    fprintf(
        f, "Usage: dlab-gpu --task factorise|mlp [options]\n"
           "       dlab-gpu --task predict --model FILE --data FILE [options]\n"
           "\n"
           "Runs the experiments of a deep-learning lab on the GPU (or the CPU):\n"
           "  factorise  rank-k factorisation by gradient descent vs. the optimal SVD truncation\n"
           "  mlp        a one-hidden-layer classifier (ReLU, softmax cross-entropy)\n"
           "  predict    apply a classifier saved by mlp --out (model.json) to a data file\n"
           "\n"
           "Data:\n"
           "  --data PATH        delimited text (CSV, TSV, whitespace; RFC 4180 quotes) with\n"
           "                     numeric columns and an optional label column, or a numpy\n"
           "                     .npy 2-D float array (default: the bundled UCI iris data)\n"
           "  --delimiter D      auto (default), ',', ';', tab, or space (runs of blanks)\n"
           "  --header H         auto (default), yes or no: the first row holds column names\n"
           "  --label-column L   auto (default: the last column if its values are text),\n"
           "                     last, none, a column number N (from 1) or a header name\n"
           "  --columns LIST     feature columns as cut -f takes them: 2,4-6,8- or header\n"
           "                     names (default: every column but the label)\n"
           "                     Where auto guesses, one line on stderr says what it assumed.\n"
           "  --synthetic MxN    factorise a random low-rank-plus-noise MxN matrix made on the "
           "device\n"
           "  --no-center        factorise: do not subtract the column means\n"
           "\n"
           "Training:\n"
           "  --preset P         lab (the lab's protocol) or careful (default): see Presets\n"
           "  --epochs N         epochs of full-batch training (factorise 1000, mlp 100 lab / 300 "
           "careful)\n"
           "  --lr X             learning rate, for factorise in the data's units (Presets);\n"
           "                     1.2e-38 to 3.4e38 (float32's normal range)\n"
           "  --seed S           seed for initial values and shuffles (default 1)\n"
           "  --seeds N          train N independent models (seeds S..S+N-1) together\n"
           "  --rank K           factorise: rank of U and V (default 2)\n"
           "  --no-svd           factorise: skip the SVD baseline\n"
           "  --hidden H         mlp: hidden units (default 12)\n"
           "  --optim O          mlp: sgd, momentum or adam (careful default: momentum)\n"
           "  --momentum M       mlp: momentum coefficient in [0, 1) (default 0.9); only\n"
           "                     for the momentum optimiser\n"
           "  --batch B          mlp: mini-batch size (default, or B above the training\n"
           "                     rows: the whole training split)\n"
           "  --train N|F        mlp: training rows after shuffling, a count N or a fraction\n"
           "                     F in (0, 1) (default 2/3 of the rows: 100 of iris's 150)\n"
           "  --fused F          auto (default), on or off: train a model that fits the\n"
           "                     device's fast memory in one fused pass per epoch (CPU) or\n"
           "                     one kernel (GPU) rather than one op per step; on refuses\n"
           "                     (exit 2) where it cannot; results agree to rounding\n"
           "\n"
           "Prediction:\n"
           "  --model FILE       predict: a model.json from mlp --out; the rows come from\n"
           "                     --data, read with the options under Data\n"
           "\n"
           "Running and output:\n"
           "  --device D         auto (default: the GPU if one answers), cpu or cuda\n"
           "  --json             print one JSON object on stdout (the text report goes to stderr)\n"
           "  --out DIR          write the results into DIR: summary.json and, for\n"
           "                     factorise and mlp, report.html, history.csv, figures;\n"
           "                     factorise also U and V (.npy, .csv), column_means.npy,\n"
           "                     svd_U/S/V.npy; mlp model.json, predictions.csv;\n"
           "                     predict predictions.csv\n"
           "  --force            allow --out to write into a non-empty directory: the files\n"
           "                     an earlier run left there under the names above are\n"
           "                     removed first; other files are left alone\n"
           "  --quiet            no progress line\n"
           "  --help, --version\n"
           "Each option may be given once.\n"
           "\n");
    fputs("Presets (explicit options override them):\n"
          "  factorise lab      U, V ~ U[0,1), lr 0.01, trained in the data's own units\n"
          "  factorise careful  trained on the data scaled by an exact power of two, small\n"
          "                     balanced start U, V ~ N(0, s^2), lr 0.1/sigma_1 (sigma_1 by\n"
          "                     power iteration): needs no tuning for any magnitude\n"
          "  mlp lab            N(0,1) weights, inputs (x - mean)/var, sgd, lr 0.01, 100 epochs\n"
          "  mlp careful        He weights, standardised inputs, momentum 0.9, lr 0.05, 300\n"
          "                     epochs\n"
          "factorise figures the data leave undefined (the relative gap when the optimum is\n"
          "at rounding level, the angles when the rank exceeds the numerical rank) are null\n"
          "in JSON; \"warnings\" says why, and warns of tied singular values.\n"
          "\n"
          "Exit status: 0 success, 1 runtime failure (device, memory, divergence),\n"
          "2 bad usage or bad input, 130 interrupted by Ctrl-C (SIGINT), 143 stopped by\n"
          "SIGTERM (results so far are kept; a second signal exits at once).\n",
          f);
}

/* --- strict value parsers: the whole argument must be consumed ---------- */

/* strtol and friends skip leading blanks; a value should not have any. */
static bool starts_clean(const char *s) { return *s && !isspace((unsigned char)*s); }

static dl_status parse_int(const char *opt, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!starts_clean(s) || end == s || *end != '\0' || errno == ERANGE)
        return DL_FAIL(DL_E_USAGE, "%s: expected an integer, got '%s'", opt, s);
    if (v < lo || v > hi)
        return DL_FAIL(DL_E_USAGE, "%s: %ld is out of range (%ld to %ld)", opt, v, lo, hi);
    *out = (int)v;
    return DL_OK;
}

static dl_status parse_float(const char *opt, const char *s, double lo, double hi, bool lo_open,
                             float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!starts_clean(s) || end == s || *end != '\0' || isnan(v))
        return DL_FAIL(DL_E_USAGE, "%s: expected a number, got '%s'", opt, s);
    if (!isfinite(v) || errno == ERANGE || v < lo || v > hi || (lo_open && v == lo))
        return DL_FAIL(DL_E_USAGE, "%s: %s is out of range (%s%g to %g)", opt, s,
                       lo_open ? "above " : "", lo, hi);
    *out = (float)v;
    return DL_OK;
}

/* --lr: a positive step that float32 holds as a normal number, since the
 * training runs in float32 (C17 5.2.4.2.2: FLT_MIN, FLT_MAX); a value that
 * would round to 0 or a subnormal is refused rather than silently replaced. */
static dl_status parse_lr(const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!starts_clean(s) || end == s || *end != '\0' || isnan(v))
        return DL_FAIL(DL_E_USAGE, "--lr: expected a number, got '%s'", s);
    bool underflow = errno == ERANGE && fabs(v) < 1.0 && !signbit(v);
    if (!underflow && (!(v > 0.0) || isinf(v)))
        return DL_FAIL(DL_E_USAGE, "--lr: %s is out of range (above 0 to %.2g)", s, FLT_MAX);
    if (v < FLT_MIN)
        return DL_FAIL(DL_E_USAGE, "--lr %s is below float32's smallest positive value (%.2g)", s,
                       FLT_MIN);
    if (v > FLT_MAX)
        return DL_FAIL(DL_E_USAGE, "--lr %s is above float32's largest value (%.2g)", s, FLT_MAX);
    *out = (float)v;
    return DL_OK;
}

static dl_status parse_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-')
        return DL_FAIL(DL_E_USAGE, "%s: expected a non-negative integer, got '%s'", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (!starts_clean(s) || end == s || *end != '\0' || errno == ERANGE)
        return DL_FAIL(DL_E_USAGE, "%s: expected a non-negative integer, got '%s'", opt, s);
    *out = v;
    return DL_OK;
}

static dl_status parse_shape(const char *opt, const char *s, int *m, int *n)
{
    char *x = strchr(s, 'x');
    if (!x)
        return DL_FAIL(DL_E_USAGE, "%s: expected ROWSxCOLS such as 20000x2000, got '%s'", opt, s);
    char rows[32];
    size_t len = (size_t)(x - s);
    if (len == 0 || len >= sizeof rows)
        return DL_FAIL(DL_E_USAGE, "%s: expected ROWSxCOLS such as 20000x2000, got '%s'", opt, s);
    memcpy(rows, s, len);
    rows[len] = '\0';
    DL_TRY(parse_int(opt, rows, 2, 100000000, m));
    DL_TRY(parse_int(opt, x + 1, 1, 100000000, n));
    return DL_OK;
}

/* A word from a fixed list, as its index in the list. */
static dl_status parse_choice(const char *opt, const char *s, const char *const *choices, int *out)
{
    for (int i = 0; choices[i]; i++)
        if (strcmp(s, choices[i]) == 0) {
            *out = i;
            return DL_OK;
        }
    char list[128] = "";
    for (int i = 0; choices[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 choices[i]);
    return DL_FAIL(DL_E_USAGE, "%s: unknown value '%s' (expected %s)", opt, s, list);
}

/* --train: a row count, or a fraction of the rows when written with a point
 * or an exponent. */
static dl_status parse_train(const char *opt, const char *s, int *count, double *fraction)
{
    if (!strpbrk(s, ".eE")) {
        char *end;
        errno = 0;
        (void)strtol(s, &end, 10);
        if (!starts_clean(s) || end == s || *end != '\0' || errno == ERANGE)
            return DL_FAIL(DL_E_USAGE, "%s: expected a row count or a fraction in (0, 1), got '%s'",
                           opt, s);
        *fraction = 0.0;
        return parse_int(opt, s, 1, INT_MAX, count);
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!starts_clean(s) || end == s || *end != '\0' || isnan(v))
        return DL_FAIL(DL_E_USAGE, "%s: expected a row count or a fraction in (0, 1), got '%s'",
                       opt, s);
    if (!(v > 0.0 && v < 1.0))
        return DL_FAIL(DL_E_USAGE,
                       "%s: %s is out of range (a row count, or a fraction above 0 and below 1)",
                       opt, s);
    *count = 0;
    *fraction = v;
    return DL_OK;
}

/* Options that belong to one task only; naming one with the other task is
 * a mistake worth reporting rather than ignoring. */
typedef enum {
    FOR_FACTORISE = 1,
    FOR_MLP = 2,
    FOR_PREDICT = 4,
    FOR_TRAINING = FOR_FACTORISE | FOR_MLP,
    FOR_ALL = FOR_TRAINING | FOR_PREDICT
} scope;

typedef struct {
    const char *name;
    bool takes_value;
    scope for_task;
} opt_spec;

static const opt_spec specs[] = {
    {"--task", true, FOR_ALL},
    {"--data", true, FOR_ALL},
    {"--synthetic", true, FOR_FACTORISE},
    {"--rank", true, FOR_FACTORISE},
    {"--epochs", true, FOR_TRAINING},
    {"--lr", true, FOR_TRAINING},
    {"--seed", true, FOR_TRAINING},
    {"--seeds", true, FOR_TRAINING},
    {"--no-center", false, FOR_FACTORISE},
    {"--no-svd", false, FOR_FACTORISE},
    {"--device", true, FOR_ALL},
    {"--json", false, FOR_ALL},
    {"--out", true, FOR_ALL},
    {"--force", false, FOR_ALL},
    {"--quiet", false, FOR_ALL},
    {"--hidden", true, FOR_MLP},
    {"--optim", true, FOR_MLP},
    {"--momentum", true, FOR_MLP},
    {"--batch", true, FOR_MLP},
    {"--train", true, FOR_MLP},
    {"--preset", true, FOR_TRAINING},
    {"--fused", true, FOR_TRAINING},
    {"--delimiter", true, FOR_ALL},
    {"--header", true, FOR_ALL},
    {"--label-column", true, FOR_ALL},
    {"--columns", true, FOR_ALL},
    {"--model", true, FOR_PREDICT},
    {"--help", false, FOR_ALL},
    {"-h", false, FOR_ALL},
    {"--version", false, FOR_ALL},
};

static const opt_spec *find_spec(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (strlen(specs[i].name) == len && strncmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

static dl_status apply(dl_options *o, const char *name, const char *v)
{
    /* Each list of words, and the values they stand for in the same order. */
    static const char *const tasks[] = {"factorise", "factorize", "mlp", "predict", NULL};
    static const dl_task task_of[] = {DL_TASK_FACTORISE, DL_TASK_FACTORISE, DL_TASK_MLP,
                                      DL_TASK_PREDICT};
    static const char *const optims[] = {"sgd", "momentum", "adam", NULL};
    static const dl_optim_kind optim_of[] = {DL_OPTIM_SGD, DL_OPTIM_MOMENTUM, DL_OPTIM_ADAM};
    static const char *const presets[] = {"lab", "careful", NULL};
    static const dl_mlp_preset preset_of[] = {DL_MLP_LAB, DL_MLP_CAREFUL};
    int pick;
    if (!strcmp(name, "--task")) {
        DL_TRY(parse_choice(name, v, tasks, &pick));
        o->task = task_of[pick];
    } else if (!strcmp(name, "--data")) {
        if (!*v) return DL_FAIL(DL_E_USAGE, "--data: empty path");
        o->data = v;
    } else if (!strcmp(name, "--model")) {
        if (!*v) return DL_FAIL(DL_E_USAGE, "--model: empty path");
        o->model = v;
    } else if (!strcmp(name, "--synthetic"))
        DL_TRY(parse_shape(name, v, &o->synth_m, &o->synth_n));
    else if (!strcmp(name, "--rank"))
        DL_TRY(parse_int(name, v, 1, 1000000, &o->rank));
    else if (!strcmp(name, "--epochs")) {
        DL_TRY(parse_int(name, v, 1, 100000000, &o->epochs));
        o->given_epochs = true;
    } else if (!strcmp(name, "--lr")) {
        /* In the data's units: a matrix in units of 1e-30 wants a step near 1e27. */
        DL_TRY(parse_lr(v, &o->lr));
        o->given_lr = true;
    } else if (!strcmp(name, "--seed"))
        DL_TRY(parse_u64(name, v, &o->seed));
    else if (!strcmp(name, "--seeds"))
        DL_TRY(parse_int(name, v, 1, 1000000, &o->seeds));
    else if (!strcmp(name, "--device"))
        DL_TRY(dl_device_parse(v, &o->device));
    else if (!strcmp(name, "--fused"))
        DL_TRY(dl_fused_mode_parse(v, name, &o->fused));
    else if (!strcmp(name, "--out")) {
        if (!*v) return DL_FAIL(DL_E_USAGE, "--out: empty directory name");
        o->out = v;
    } else if (!strcmp(name, "--hidden"))
        DL_TRY(parse_int(name, v, 1, 1000000, &o->hidden));
    else if (!strcmp(name, "--optim")) {
        DL_TRY(parse_choice(name, v, optims, &pick));
        o->optim = optim_of[pick];
        o->given_optim = true;
    } else if (!strcmp(name, "--momentum")) {
        DL_TRY(parse_float(name, v, 0.0, 0.999999, false, &o->momentum));
        o->given_momentum = true;
    } else if (!strcmp(name, "--batch"))
        DL_TRY(parse_int(name, v, 1, INT_MAX, &o->batch));
    else if (!strcmp(name, "--train"))
        DL_TRY(parse_train(name, v, &o->train, &o->train_fraction));
    else if (!strcmp(name, "--preset")) {
        DL_TRY(parse_choice(name, v, presets, &pick));
        o->preset = preset_of[pick];
    } else if (!strcmp(name, "--delimiter"))
        DL_TRY(dl_delimiter_parse(v, &o->load.delimiter));
    else if (!strcmp(name, "--header"))
        DL_TRY(dl_header_parse(v, &o->load.header));
    else if (!strcmp(name, "--label-column")) {
        if (!*v) return DL_FAIL(DL_E_USAGE, "--label-column: empty value");
        o->load.label_column = v;
    } else if (!strcmp(name, "--columns")) {
        if (!*v) return DL_FAIL(DL_E_USAGE, "--columns: empty list");
        o->load.columns = v;
    } else if (!strcmp(name, "--no-center"))
        o->center = false;
    else if (!strcmp(name, "--no-svd"))
        o->svd = false;
    else if (!strcmp(name, "--json"))
        o->json = true;
    else if (!strcmp(name, "--force"))
        o->force = true;
    else if (!strcmp(name, "--quiet"))
        o->quiet = true;
    else if (!strcmp(name, "--help") || !strcmp(name, "-h"))
        o->help = true;
    else if (!strcmp(name, "--version"))
        o->version = true;
    return DL_OK;
}

/* An option named with a task it does not belong to is a mistake worth
 * reporting rather than ignoring. */
static dl_status check_scopes(dl_task task, const opt_spec *const *seen, size_t n)
{
    static const char *const task_name[] = {"", "factorise", "mlp", "predict"};
    const int bit = task == DL_TASK_FACTORISE ? FOR_FACTORISE
                    : task == DL_TASK_MLP     ? FOR_MLP
                                              : FOR_PREDICT;
    for (size_t k = 0; k < n; k++) {
        int scope_bits = (int)seen[k]->for_task;
        if (scope_bits & bit) continue;
        if (scope_bits == FOR_FACTORISE || scope_bits == FOR_MLP || scope_bits == FOR_PREDICT)
            return DL_FAIL(DL_E_USAGE, "%s applies to --task %s, not %s", seen[k]->name,
                           task_name[scope_bits == FOR_FACTORISE ? 1
                                     : scope_bits == FOR_MLP     ? 2
                                                                 : 3],
                           task_name[task]);
        return DL_FAIL(DL_E_USAGE, "%s does not apply to --task %s", seen[k]->name,
                       task_name[task]);
    }
    return DL_OK;
}

dl_status dl_cli_parse(int argc, char **argv, dl_options *o)
{
    *o = (dl_options){.rank = 2,
                      .epochs = 0,
                      .seeds = 1,
                      .hidden = 12,
                      .batch = 0,
                      .train = 0,
                      .lr = 0.0f,
                      .momentum = 0.9f,
                      .seed = 1,
                      .center = true,
                      .svd = true,
                      .optim = DL_OPTIM_SGD,
                      .preset = DL_MLP_CAREFUL,
                      .device = DL_DEVICE_AUTO,
                      .fused = DL_FUSED_AUTO};
    const opt_spec *seen[sizeof specs / sizeof specs[0]]; /* options given, in order */
    size_t n_seen = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "-", 1) != 0 || !strcmp(arg, "-"))
            return DL_FAIL(DL_E_USAGE,
                           "unexpected argument '%s' (options start with --; see --help)", arg);
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const opt_spec *sp = find_spec(arg, len);
        if (!sp) return DL_FAIL(DL_E_USAGE, "unknown option '%.*s' (see --help)", (int)len, arg);
        const char *val = NULL;
        if (sp->takes_value) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return DL_FAIL(DL_E_USAGE, "%s needs a value", sp->name);
        } else if (eq) {
            return DL_FAIL(DL_E_USAGE, "%s takes no value", sp->name);
        }
        /* A repeated option would silently take its last value; say so instead. */
        for (size_t k = 0; k < n_seen; k++)
            if (seen[k] == sp) return DL_FAIL(DL_E_USAGE, "%s given twice", sp->name);
        DL_TRY(apply(o, sp->name, val));
        if (o->help || o->version) return DL_OK;
        seen[n_seen++] = sp;
    }
    if (o->task == DL_TASK_NONE)
        return DL_FAIL(DL_E_USAGE, "missing --task (factorise, mlp or predict); see --help");
    DL_TRY(check_scopes(o->task, seen, n_seen));
    if (o->task == DL_TASK_PREDICT && !o->model)
        return DL_FAIL(DL_E_USAGE,
                       "--task predict needs --model FILE (a model.json from mlp --out)");
    if (o->task == DL_TASK_PREDICT && !o->data)
        return DL_FAIL(DL_E_USAGE, "--task predict needs --data FILE (the rows to classify)");
    if (o->data && o->synth_m)
        return DL_FAIL(DL_E_USAGE, "--data and --synthetic cannot be used together");
    if (o->synth_m) {
        const char *file_opt = o->load.delimiter      ? "--delimiter"
                               : o->load.header       ? "--header"
                               : o->load.label_column ? "--label-column"
                               : o->load.columns      ? "--columns"
                                                      : NULL;
        if (file_opt)
            return DL_FAIL(DL_E_USAGE, "%s describes a --data file, not --synthetic", file_opt);
    }
    if (o->force && !o->out) return DL_FAIL(DL_E_USAGE, "--force only makes sense with --out DIR");
    if (o->given_momentum) {
        /* A coefficient the optimiser never reads would be recorded as if used. */
        const dl_optim_kind k = o->given_optim ? o->optim : dl_mlp_defaults(o->preset).optim;
        const char *name = k == DL_OPTIM_ADAM ? "adam" : "sgd";
        if (k != DL_OPTIM_MOMENTUM && o->given_optim)
            return DL_FAIL(DL_E_USAGE, "--momentum applies to --optim momentum only, not %s", name);
        if (k != DL_OPTIM_MOMENTUM)
            return DL_FAIL(DL_E_USAGE,
                           "--momentum applies to --optim momentum only (--preset %s trains with "
                           "%s; add --optim momentum)",
                           o->preset == DL_MLP_LAB ? "lab" : "careful", name);
    }
    return DL_OK;
}
