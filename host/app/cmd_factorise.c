/* dlab-gpu --task factorise: load or synthesise the matrix, run the task,
 * compare Û with the SVD's subspace, report in text and JSON, and with
 * --out DIR write the history, Figure 1, the factors, report.html and the
 * summary. */
#include "dlab/cmd.h"
#include "dlab/data.h"
#include "dlab/factorise.h"
#include "dlab/factors_out.h"
#include "dlab/json.h"
#include "dlab/report.h"
#include "dlab/report_html.h"
#include "dlab/subspace.h"
#include "dlab/summary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The subspace comparison runs on the host in float64; past these sizes it
 * would cost more than the training it checks. */
#define ALIGN_MAX_ELEMS (4.0 * 1024 * 1024) /* m * rank */
#define ALIGN_MAX_WORK  1e9                 /* m * rank^2 */

typedef struct {
    const dl_cmd *c;
    const char *source;
    bool centred;
    const dl_factorise_config *cfg;
    const dl_factorise_result *r;
    double *angles_deg; /* rank values, NULL when not compared */
    double aligned_residual;
    char align_note[160];      /* why not compared, when there is an SVD */
    float *gaps;               /* seeds values: sse_gd - sse_svd, when there is an SVD */
    const float *column_means; /* n values subtracted from A's columns, or NULL (none) */
    char factors_note[96];     /* why the factors were not written, "" otherwise */
    dl_out *out;
} report;

static const char *status_name(dl_status st)
{
    return st == DL_OK ? "ok" : st == DL_E_DIVERGED ? "diverged" : "interrupted";
}

/* Principal angles and aligned residual of Û against the SVD, when both
 * exist and are small enough to check on the host. */
static dl_status compare_subspaces(report *rep)
{
    const dl_factorise_result *r = rep->r;
    if (!r->have_svd) return DL_OK;
    double m = r->m, k = r->rank;
    if (r->epochs_run == 0) {
        snprintf(rep->align_note, sizeof rep->align_note, "no epoch was run");
        return DL_OK;
    }
    if (m * k > ALIGN_MAX_ELEMS || m * k * k > ALIGN_MAX_WORK) {
        snprintf(rep->align_note, sizeof rep->align_note,
                 "not computed: rank %d on %d rows is too large for the host-side check", r->rank,
                 r->m);
        return DL_OK;
    }
    rep->angles_deg = malloc(sizeof(double) * (size_t)r->rank);
    if (!rep->angles_deg) return DL_FAIL(DL_E_MEMORY, "out of host memory for %d angles", r->rank);
    dl_status st = dl_subspace_compare(r->m, r->rank, r->u_gd, r->svd_u, r->n_sv,
                                       r->singular_values, rep->angles_deg, &rep->aligned_residual);
    if (st == DL_OK) return DL_OK;
    free(rep->angles_deg);
    rep->angles_deg = NULL;
    if (st != DL_E_INPUT) return st;
    snprintf(rep->align_note, sizeof rep->align_note, "not computed: U_gd holds NaN or Inf");
    return DL_OK;
}

/* Every model's final error (one entry without --seeds) and the
 * distribution of the gap to the SVD optimum. */
static void write_seeds(dl_json *j, const report *rep)
{
    const dl_factorise_result *r = rep->r;
    dl_json_arr_begin(j, "seeds");
    for (int b = 0; b < r->seeds; b++) {
        dl_json_obj_begin(j, NULL);
        dl_json_int(j, "seed", (long long)(rep->cfg->seed + (uint64_t)b));
        dl_json_num(j, "sse_gd", r->sse_gd[b]);
        if (r->have_svd) dl_json_num(j, "gap", r->sse_gd[b] - r->sse_svd);
        dl_json_obj_end(j);
    }
    dl_json_arr_end(j);
    dl_stats st;
    dl_json_obj_begin(j, "summary");
    dl_stats_compute(r->sse_gd, r->seeds, 1, &st);
    dl_json_stats(j, "sse_gd", &st);
    if (r->have_svd) {
        dl_stats_compute(rep->gaps, r->seeds, 1, &st);
        dl_json_stats(j, "gap", &st);
    }
    dl_json_obj_end(j);
}

static dl_status write_json(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    const dl_factorise_result *r = rep->r;
    const dl_factorise_config *cfg = rep->cfg;
    dl_json j;
    dl_json_init(&j, f, false);
    dl_json_obj_begin(&j, NULL);
    dl_json_str(&j, "task", "factorise");
    dl_json_str(&j, "status", status_name(r->stop));
    dl_json_str(&j, "data", rep->source);
    dl_json_int(&j, "rows", r->m);
    dl_json_int(&j, "cols", r->n);
    dl_json_bool(&j, "centered", rep->centred);
    dl_json_int(&j, "rank", cfg->rank);
    dl_json_int(&j, "epochs", cfg->epochs);
    dl_json_int(&j, "epochs_run", r->epochs_run);
    dl_json_num(&j, "lr", cfg->lr);
    dl_json_int(&j, "seed", (long long)cfg->seed);
    dl_json_str(&j, "backend", rep->c->be->name);
    dl_json_str(&j, "device", rep->c->be->device);
    dl_json_num(&j, "sse_gd", r->sse_gd[0]);
    if (r->have_svd) {
        dl_json_num(&j, "sse_svd", r->sse_svd);
        dl_json_num(&j, "sse_svd_reconstruction", r->sse_svd_recon);
        dl_json_num(&j, "gap", r->sse_gd[0] - r->sse_svd);
        dl_json_floats(&j, "singular_values", r->singular_values, (size_t)r->n_sv, 1);
        dl_json_num(&j, "svd_seconds", r->svd_seconds);
    } else {
        dl_json_null(&j, "sse_svd");
        dl_json_null(&j, "singular_values");
    }
    if (rep->angles_deg) {
        dl_json_arr_begin(&j, "principal_angles_deg");
        for (int i = 0; i < r->rank; i++) dl_json_num(&j, NULL, rep->angles_deg[i]);
        dl_json_arr_end(&j);
        dl_json_num(&j, "aligned_residual", rep->aligned_residual);
    } else {
        dl_json_null(&j, "principal_angles_deg");
        dl_json_null(&j, "aligned_residual");
    }
    dl_json_num(&j, "train_seconds", r->train_seconds);
    dl_json_floats(&j, "loss_history", r->loss_history, (size_t)r->epochs_run, (size_t)r->seeds);
    write_seeds(&j, rep);
    dl_out_json(&j, rep->out);
    dl_json_obj_end(&j);
    return DL_OK;
}

/* With --seeds N > 1: the gap to the optimum over the models, binned by
 * its order of magnitude (1e-6 and below in the first bin). */
static void write_seed_spread(FILE *f, const report *rep)
{
    const dl_factorise_result *r = rep->r;
    dl_stats st;
    if (!r->have_svd) {
        dl_stats_compute(r->sse_gd, r->seeds, 1, &st);
        dl_print_stats(f, "final SSE", &st, "%.6g");
        return;
    }
    dl_stats_compute(rep->gaps, r->seeds, 1, &st);
    dl_print_stats(f, "gap to the SVD optimum", &st, "%.3g");
    float *lg = malloc(sizeof(float) * (size_t)r->seeds);
    if (!lg) return;
    for (int b = 0; b < r->seeds; b++)
        lg[b] =
            rep->gaps[b] > 0 ? log10f(rep->gaps[b]) : (rep->gaps[b] == rep->gaps[b] ? -7.0f : NAN);
    fprintf(f, "  gap (log10 bins):\n");
    dl_print_histogram(f, lg, r->seeds, 1, -7.0, 2.0, 9, "1e%+.0f");
    free(lg);
}

static void write_text(FILE *f, const report *rep)
{
    const dl_factorise_result *r = rep->r;
    const dl_factorise_config *cfg = rep->cfg;
    fprintf(f, "factorise %s: %dx%d%s, rank %d, %d epochs, lr %g, seed %llu\n", rep->source, r->m,
            r->n, rep->centred ? " (columns centred)" : "", cfg->rank, cfg->epochs, (double)cfg->lr,
            (unsigned long long)cfg->seed);
    fprintf(f, "  backend              %s (%s)\n", rep->c->be->name, rep->c->be->device);
    fprintf(f, "  gradient descent SSE %.6f%s\n", (double)r->sse_gd[0],
            r->epochs_run < cfg->epochs ? "  (stopped early)" : "");
    if (r->have_svd) {
        double gap = r->sse_gd[0] - r->sse_svd;
        fprintf(f, "  SVD rank-%d SSE       %.6f  (reconstruction: %.6f)\n", cfg->rank, r->sse_svd,
                r->sse_svd_recon);
        fprintf(f, "  gap                  %.3e  (%.2e relative)\n", gap,
                r->sse_svd > 0 ? gap / r->sse_svd : 0.0);
        fprintf(f, "  singular values     ");
        int shown = r->n_sv < 8 ? r->n_sv : 8;
        for (int i = 0; i < shown; i++) fprintf(f, " %.4f", (double)r->singular_values[i]);
        fprintf(f, "%s\n", r->n_sv > shown ? " ..." : "");
        /* U_gd against the top-k left singular vectors U_k */
        if (rep->angles_deg) {
            fprintf(f, "  subspace vs SVD      principal angles");
            int na = r->rank < 8 ? r->rank : 8;
            for (int i = 0; i < na; i++) fprintf(f, " %.3g", rep->angles_deg[i]);
            fprintf(f, "%s degrees\n", r->rank > na ? " ..." : "");
            fprintf(f,
                    "  aligned residual     %.3e  (min over M of |U_gd M - U_k S_k| / |U_k S_k|)\n",
                    rep->aligned_residual);
        } else {
            fprintf(f, "  subspace vs SVD      %s\n", rep->align_note);
        }
    }
    fprintf(f, "  training time        %.3f ms  (%d epochs, %.2f us/epoch)\n",
            r->train_seconds * 1e3, r->epochs_run,
            r->epochs_run ? r->train_seconds * 1e6 / r->epochs_run : 0.0);
    if (r->have_svd) fprintf(f, "  SVD time             %.3f ms\n", r->svd_seconds * 1e3);
    if (r->seeds > 1) write_seed_spread(f, rep);
    dl_out_text(f, rep->out);
    if (rep->factors_note[0]) fprintf(f, "  factors              %s\n", rep->factors_note);
}

/* --out DIR: the loss history, Figures 1 and 3, the factors, report.html,
 * then the summary. */
static dl_status write_files(report *rep, const dl_dataset *d)
{
    const dl_factorise_result *r = rep->r;
    static const char *const sse[] = {"sse"};
    dl_csv_history h = {.epochs = r->epochs_run,
                        .metrics = 1,
                        .names = sse,
                        .models = r->seeds,
                        .first_seed = rep->cfg->seed,
                        .values = r->loss_history,
                        .epoch_stride = (size_t)r->seeds,
                        .metric_stride = 0,
                        .model_stride = 1};
    DL_TRY(dl_out_write(rep->out, "history.csv", dl_csv_write_history, &h));
    if (r->epochs_run > 0) {
        dl_fig_factorise fig = {.m = r->m,
                                .rank = r->rank,
                                .u_gd = r->u_gd,
                                .svd_u = r->have_svd ? r->svd_u : NULL,
                                .ld_u = r->n_sv,
                                .s = r->singular_values,
                                .labels = d->labels,
                                .n_classes = d->n_classes,
                                .class_names = d->class_names};
        DL_TRY(dl_out_figure_factorise(rep->out, "figure1_projections", &fig));
    }
    if (r->seeds > 1 && rep->gaps) {
        dl_fig_histogram hist = {
            .values = rep->gaps,
            .n = r->seeds,
            .lo = -7.0,
            .hi = 2.0,
            .bins = 27,
            .log10_x = true,
            .band_lo = NAN,
            .band_hi = NAN,
            .xlabel = "SSE minus the SVD optimum "
                      "(1e-7 and below, rounding under zero included, in the first bar)",
            .title = "Gap to the optimum over seeds"};
        DL_TRY(dl_out_figure_histogram(rep->out, "figure3_seeds_histogram", &hist));
    }
    /* The factors are in the data's units whatever scale training ran at
     * (dl_factorise_result), so U V^T approximates A - 1 mu^T as given. */
    DL_TRY(dl_out_factors(rep->out, r, rep->column_means, rep->factors_note,
                          sizeof rep->factors_note));
    dl_html_factorise page = {.source = rep->source,
                              .centred = rep->centred,
                              .cfg = rep->cfg,
                              .r = r,
                              .backend = rep->c->be->name,
                              .device = rep->c->be->device,
                              .angles_deg = rep->angles_deg,
                              .aligned_residual = rep->aligned_residual,
                              .align_note = rep->align_note,
                              .gaps = rep->gaps,
                              .factors_note = rep->factors_note,
                              .out = rep->out};
    DL_TRY(dl_out_write(rep->out, "report.html", dl_html_write_factorise, &page));
    return dl_out_summary(rep->out, write_json, rep);
}

dl_status dl_cmd_factorise(dl_cmd *c)
{
    const dl_options *o = c->opt;
    dl_factorise_config cfg = {
        .rank = o->rank,
        .epochs = o->given_epochs ? o->epochs : 1000,
        .lr = o->given_lr ? o->lr : 0.01f,
        .seed = o->seed,
        .seeds = o->seeds,
        .svd = o->svd,
        .loop = {.progress = c->progress, .progress_ud = c->progress_ud, .stop = c->stop},
    };
    dl_factorise_result r;
    dl_dataset d = {0};
    dl_out out;
    dl_out_init(&out, o->out);
    dl_status st;
    char source[512];
    bool centred = false;
    float *means = NULL;
    if (o->synth_m) {
        snprintf(source, sizeof source, "synthetic %dx%d", o->synth_m, o->synth_n);
        DL_TRY(dl_factorise_validate(o->synth_m, o->synth_n, &cfg));
        DL_TRY(dl_out_prepare(&out, o->force));
        st = dl_factorise_synthetic(c->be, o->synth_m, o->synth_n, cfg.rank, 0.1f, o->seed ^ 0x5eed,
                                    &cfg, &r);
    } else {
        const char *path = o->data ? o->data : dl_default_data_path();
        snprintf(source, sizeof source, "%s", path);
        DL_TRY(dl_dataset_load(path, &d));
        st = DL_OK;
        if (o->center) {
            double *mu = malloc(sizeof(double) * (size_t)d.cols);
            means = malloc(sizeof(float) * (size_t)d.cols);
            if (!mu || !means)
                st = DL_FAIL(DL_E_MEMORY, "out of host memory for %d column means", d.cols);
            else {
                dl_dataset_center(&d, mu);
                for (int j = 0; j < d.cols; j++) means[j] = (float)mu[j]; /* as subtracted */
            }
            free(mu);
        }
        centred = o->center;
        if (st == DL_OK) st = dl_factorise_validate(d.rows, d.cols, &cfg);
        if (st == DL_OK) st = dl_out_prepare(&out, o->force);
        if (st == DL_OK) st = dl_factorise(c->be, d.x, d.rows, d.cols, &cfg, &r);
    }
    if (st != DL_OK && st != DL_E_DIVERGED && st != DL_E_INTERRUPTED) {
        dl_dataset_free(&d);
        free(means);
        return st;
    }
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", dl_errmsg());
    if (c->progress) c->progress(c->progress_ud, NULL);

    report rep = {.c = c,
                  .source = source,
                  .centred = centred,
                  .cfg = &cfg,
                  .r = &r,
                  .column_means = means,
                  .out = &out};
    dl_status wst = compare_subspaces(&rep);
    if (wst == DL_OK && r.have_svd) {
        rep.gaps = malloc(sizeof(float) * (size_t)r.seeds);
        if (!rep.gaps)
            wst = DL_FAIL(DL_E_MEMORY, "out of host memory for %d gaps", r.seeds);
        else
            for (int b = 0; b < r.seeds; b++) rep.gaps[b] = (float)(r.sse_gd[b] - r.sse_svd);
    }
    if (wst == DL_OK && out.dir) wst = write_files(&rep, &d);
    write_text(c->text, &rep);
    if (o->json) write_json(stdout, &rep);
    fflush(stdout);
    free(rep.angles_deg);
    free(rep.gaps);
    free(means);
    dl_factorise_result_free(&r);
    dl_dataset_free(&d);
    if (wst != DL_OK) return wst; /* a file that could not be written outranks the stop */
    if (st != DL_OK) DL_FAIL(st, "%s", saved);
    return st;
}
