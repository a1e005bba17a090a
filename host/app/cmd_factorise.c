/* dlab-gpu --task factorise: load or synthesise the matrix, run the task,
 * compare Û with the SVD's subspace, report in text and JSON, and with
 * --out DIR write the history, Figure 1, the factors, report.html and the
 * summary. Figures that are undefined for the data
 * (host/tasks/factorise_checks.c) are null in JSON, "undefined: why" in the
 * text and the page, and a warning says why. */
#include "dlab/cmd.h"
#include "dlab/comm.h"
#include "dlab/data.h"
#include "dlab/factorise.h"
#include "dlab/factorise_checks.h"
#include "dlab/factors_out.h"
#include "dlab/json.h"
#include "dlab/report.h"
#include "dlab/report_html.h"
#include "dlab/subspace.h"
#include "dlab/tsqr.h"
#include "dlab/summary.h"

#include <math.h>
#include <stdlib.h>

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
    dl_factorise_checks checks; /* with an SVD: which figures are defined */
    double *angles_deg;         /* rank values, NULL when not compared */
    double aligned_residual;
    char align_note[192];      /* why not compared, when there is an SVD */
    double *gaps;              /* seeds values: sse_gd - sse_svd, when there is an SVD */
    double *rel_gaps;          /* seeds values: gap / sse_svd, when defined */
    const float *column_means; /* n values subtracted from A's columns, or NULL (none) */
    char factors_note[96];     /* why the factors were not written, "" otherwise */
    dl_out *out;
} report;

static const char *preset_name(dl_factorise_preset p)
{
    return p == DL_FACTORISE_LAB ? "lab" : "careful";
}

/* Principal angles and aligned residual of Û against the SVD, when both
 * exist, are defined for the data and are small enough to check on the
 * host. */
static dl_status compare_subspaces(report *rep)
{
    const dl_factorise_result *r = rep->r;
    if (!r->have_svd) return DL_OK;
    double m = r->m, k = r->rank;
    if (!rep->checks.subspace_defined) {
        snprintf(rep->align_note, sizeof rep->align_note, "undefined: %s",
                 rep->checks.subspace_why);
        return DL_OK;
    }
    if (r->epochs_run == 0) {
        snprintf(rep->align_note, sizeof rep->align_note, "no epoch was run");
        return DL_OK;
    }
    if (r->stop.kind == DL_STOP_DIVERGED) { /* Û is what the divergence left, not an estimate */
        snprintf(rep->align_note, sizeof rep->align_note, "not compared: training diverged");
        return DL_OK;
    }
    if (m * k > ALIGN_MAX_ELEMS || m * k * k > ALIGN_MAX_WORK) {
        snprintf(rep->align_note, sizeof rep->align_note,
                 "not computed: rank %d on %d rows is too large for the host-side check", r->rank,
                 r->m);
        return DL_OK;
    }
    /* U_k S_k enters the residual only relative to its own norm, so the
     * singular values of 2^e A (those the SVD gave, in float32's range
     * whatever the data's units) give the same figure exactly. */
    float *s = malloc(sizeof(float) * (size_t)r->rank);
    rep->angles_deg = malloc(sizeof(double) * (size_t)r->rank);
    if (!s || !rep->angles_deg) {
        free(s);
        return DL_FAIL(DL_E_MEMORY, "out of host memory for %d angles", r->rank);
    }
    for (int i = 0; i < r->rank; i++) s[i] = (float)ldexp(r->singular_values[i], r->scale_log2);
    dl_status st = dl_subspace_compare(r->m, r->rank, r->u_gd, r->svd_u, r->n_sv, s,
                                       rep->angles_deg, &rep->aligned_residual);
    free(s);
    if (st == DL_OK) return DL_OK;
    free(rep->angles_deg);
    rep->angles_deg = NULL;
    if (st != DL_E_INPUT) return st;
    snprintf(rep->align_note, sizeof rep->align_note, "not computed: U_gd holds NaN or Inf");
    return DL_OK;
}

/* The relative gap of model b, NAN when undefined or not finite. */
static double rel_gap(const report *rep, int b) { return rep->rel_gaps ? rep->rel_gaps[b] : NAN; }

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
        if (r->epochs_trained) dl_json_int(j, "epochs_trained", r->epochs_trained[b]);
        if (r->have_svd) {
            dl_json_num(j, "gap", r->sse_gd[b] - r->sse_svd);
            dl_json_num(j, "relative_gap", rel_gap(rep, b));
        }
        dl_json_obj_end(j);
    }
    dl_json_arr_end(j);
    dl_stats st;
    dl_json_obj_begin(j, "summary");
    dl_stats_compute_d(r->sse_gd, r->seeds, 1, &st);
    dl_json_stats(j, "sse_gd", &st);
    if (r->have_svd) {
        dl_stats_compute_d(rep->gaps, r->seeds, 1, &st);
        dl_json_stats(j, "gap", &st);
        if (rep->rel_gaps) {
            dl_stats_compute_d(rep->rel_gaps, r->seeds, 1, &st);
            dl_json_stats_counted(j, "relative_gap", &st, 0);
        } else {
            st = (dl_stats){
                .min = NAN, .p10 = NAN, .median = NAN, .p90 = NAN, .max = NAN, .mean = NAN};
            dl_json_stats_counted(j, "relative_gap", &st, r->seeds);
        }
    }
    dl_json_obj_end(j);
}

/* Training diverged: the factors are what the divergence left, so their
 * error (even where it is finite) and its gap to the optimum are undefined. */
static bool diverged(const dl_factorise_result *r) { return r->stop.kind == DL_STOP_DIVERGED; }

/* Model 0's final error as reported: NAN (null, "undefined") after a
 * divergence. */
static double reported_sse_gd(const dl_factorise_result *r)
{
    return diverged(r) ? NAN : r->sse_gd[0];
}

static void json_doubles(dl_json *j, const char *key, const double *v, size_t n, size_t stride)
{
    dl_json_arr_begin(j, key);
    for (size_t i = 0; i < n; i++) dl_json_num(j, NULL, v[i * stride]);
    dl_json_arr_end(j);
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
    dl_json_str(&j, "status", dl_stop_name(r->stop.kind));
    dl_json_str(&j, "stop_message", r->stop.message);
    dl_json_str(&j, "preset", preset_name(cfg->preset));
    dl_json_str(&j, "data", rep->source);
    dl_json_int(&j, "rows", r->m);
    dl_json_int(&j, "cols", r->n);
    dl_json_bool(&j, "centered", rep->centred);
    dl_json_int(&j, "rank", cfg->rank);
    dl_json_int(&j, "epochs", cfg->epochs);
    dl_json_int(&j, "epochs_run", r->epochs_run);
    if ((double)(float)r->lr == r->lr) /* the --lr given, as the user wrote it */
        dl_json_f32(&j, "lr", (float)r->lr);
    else
        dl_json_num(&j, "lr", r->lr);
    if (r->init_std > 0.0)
        dl_json_num(&j, "init_std", r->init_std);
    else
        dl_json_null(&j, "init_std");
    dl_json_int(&j, "scale_log2", r->scale_log2);
    if (cfg->preset == DL_FACTORISE_CAREFUL || r->sigma1_est > 0.0) /* 0 for a zero matrix */
        dl_json_num(&j, "sigma1_estimate", r->sigma1_est);
    else
        dl_json_null(&j, "sigma1_estimate");
    dl_json_int(&j, "seed", (long long)cfg->seed);
    if (rep->c->be->comm && dl_comm_size(rep->c->be->comm) > 1)
        dl_json_int(&j, "ranks", dl_comm_size(rep->c->be->comm));
    dl_json_str(&j, "backend", rep->c->be->name);
    dl_json_str(&j, "device", rep->c->be->device);
    dl_json_bool(&j, "fused", r->fused);
    dl_json_str(&j, "fused_mode", dl_fused_mode_name(cfg->fused));
    dl_json_num(&j, "sse_gd", reported_sse_gd(r));
    if (r->have_svd) {
        dl_json_num(&j, "sse_svd", r->sse_svd);
        dl_json_num(&j, "sse_svd_reconstruction", r->sse_svd_recon);
        dl_json_num(&j, "gap", reported_sse_gd(r) - r->sse_svd);
        dl_json_num(&j, "relative_gap", diverged(r) ? NAN : rel_gap(rep, 0));
        json_doubles(&j, "singular_values", r->singular_values, (size_t)r->n_sv, 1);
        dl_json_num(&j, "svd_seconds", r->svd_seconds);
    } else {
        dl_json_null(&j, "sse_svd");
        dl_json_null(&j, "sse_svd_reconstruction");
        dl_json_null(&j, "gap");
        dl_json_null(&j, "relative_gap");
        dl_json_null(&j, "singular_values");
        dl_json_null(&j, "svd_seconds");
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
    json_doubles(&j, "loss_history", r->loss_history, (size_t)r->epochs_run, (size_t)r->seeds);
    write_seeds(&j, rep);
    dl_json_arr_begin(&j, "warnings");
    for (int i = 0; i < rep->checks.n_warnings; i++) dl_json_str(&j, NULL, rep->checks.warnings[i]);
    dl_json_arr_end(&j);
    dl_out_json(&j, rep->out);
    dl_json_obj_end(&j);
    return DL_OK;
}

/* With --seeds N > 1: the gap to the optimum over the models, the
 * relative gap where it is defined, and a histogram of the relative gap (the
 * gap where that is undefined) by decade over the decades the data span. */
static void write_seed_spread(FILE *f, const report *rep)
{
    const dl_factorise_result *r = rep->r;
    dl_stats st;
    if (!r->have_svd) {
        dl_stats_compute_d(r->sse_gd, r->seeds, 1, &st);
        dl_print_stats(f, "final SSE", &st, "%.6g");
        return;
    }
    dl_stats_compute_d(rep->gaps, r->seeds, 1, &st);
    dl_print_stats(f, "gap to the SVD optimum", &st, "%.3g");
    if (rep->rel_gaps) {
        dl_stats_compute_d(rep->rel_gaps, r->seeds, 1, &st);
        dl_print_stats(f, "relative gap", &st, "%.3g");
    } else {
        fprintf(f, "  relative gap over %d models: undefined for all %d (%s)\n", r->seeds, r->seeds,
                rep->checks.gap_why);
    }
    /* The relative gap is scale-free, so its decades read the same in any
     * units; the gap itself only where the relative one is undefined. */
    if (rep->rel_gaps)
        fprintf(f, "  relative gap by decade (gap / SVD optimum, the same in any units):\n");
    else
        fprintf(f, "  gap by decade (in the data's units):\n");
    dl_print_decade_histogram(f, rep->rel_gaps ? rep->rel_gaps : rep->gaps, r->seeds,
                              "at or below the optimum (rounding)");
}

/* An error in the data's units: fixed point where that reads well, else
 * scientific (a matrix in units of 1e-30 has errors near 1e-59). */
static void print_sse(FILE *f, double v)
{
    double a = fabs(v);
    if (!isfinite(v))
        fprintf(f, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    else if (a == 0.0 || (a >= 1e-3 && a < 1e9))
        fprintf(f, "%.6f", v);
    else
        fprintf(f, "%.7e", v);
}

static void print_sv(FILE *f, double v)
{
    double a = fabs(v);
    if (a == 0.0 || (a >= 1e-2 && a < 1e7))
        fprintf(f, " %.4f", v);
    else
        fprintf(f, " %.5e", v);
}

/* The SVD baseline was asked for but skipped: training was interrupted and
 * the user wants the run to end. */
static bool svd_skipped(const report *rep)
{
    return rep->cfg->svd && !rep->r->have_svd && rep->r->stop.kind == DL_STOP_INTERRUPTED;
}

static void write_text(FILE *f, const report *rep)
{
    const dl_factorise_result *r = rep->r;
    const dl_factorise_config *cfg = rep->cfg;
    fprintf(f, "factorise %s: %dx%d%s, rank %d, %d epoch%s, %s preset, lr %.4g, seed %llu\n",
            rep->source, r->m, r->n, rep->centred ? " (columns centred)" : "", cfg->rank,
            cfg->epochs, dl_plural(cfg->epochs), preset_name(cfg->preset), r->lr,
            (unsigned long long)cfg->seed);
    fprintf(f, "  backend              %s (%s)\n", rep->c->be->name, rep->c->be->device);
    /* The header's "rank" is the factorisation's; these are MPI's processes,
     * which share one model's rows or split the seeds. */
    const int ranks = rep->c->be->comm ? dl_comm_size(rep->c->be->comm) : 1;
    if (ranks > 1)
        fprintf(f, "  MPI ranks            %d  (%s)\n", ranks,
                r->seeds > 1 ? "the seeds split over them" : "the rows shared over them");
    if (cfg->preset == DL_FACTORISE_CAREFUL)
        fprintf(f,
                "  start                U, V ~ N(0, %.3g^2); sigma_1 ~ %.6g (power iteration)%s\n",
                r->init_std, r->sigma1_est,
                r->scale_log2 ? "; trained on the data scaled by an exact power of two" : "");
    fprintf(f, "  gradient descent SSE ");
    if (diverged(r))
        fprintf(f, "undefined: training diverged at epoch %d", r->diverged_epoch);
    else
        print_sse(f, r->sse_gd[0]);
    fprintf(f, "%s\n", r->epochs_run < cfg->epochs ? "  (stopped early)" : "");
    if (svd_skipped(rep)) fprintf(f, "  SVD baseline         not computed: interrupted\n");
    if (r->have_svd) {
        double gap = reported_sse_gd(r) - r->sse_svd;
        fprintf(f, "  SVD rank-%d SSE       ", cfg->rank);
        print_sse(f, r->sse_svd);
        fprintf(f, "  (reconstruction: ");
        print_sse(f, r->sse_svd_recon);
        fprintf(f, ")\n");
        if (!isfinite(gap))
            fprintf(f, "  gap                  undefined: %s\n",
                    diverged(r) ? "training diverged" : "the final SSE is not finite");
        else if (rep->rel_gaps)
            fprintf(f, "  gap                  %.3e  (%.2e relative)\n", gap, rel_gap(rep, 0));
        else if (fabs(gap) <= dl_factorise_below_tol(r->m, r->n, r->sumsq, r->sse_svd))
            /* no ratio to read, and the difference itself is rounding */
            fprintf(f,
                    "  gap                  %.3e  (within float32 rounding, %.2g, of these SSEs; "
                    "relative gap undefined: %s)\n",
                    gap, dl_factorise_below_tol(r->m, r->n, r->sumsq, r->sse_svd),
                    rep->checks.gap_why);
        else
            fprintf(f, "  gap                  %.3e  (relative gap undefined: %s)\n", gap,
                    rep->checks.gap_why);
        fprintf(f, "  singular values     ");
        int shown = r->n_sv < 8 ? r->n_sv : 8;
        for (int i = 0; i < shown; i++) print_sv(f, r->singular_values[i]);
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
    fprintf(f, "  training time        %.3f ms  (%d epoch%s, %.2f us/epoch, %s path)\n",
            r->train_seconds * 1e3, r->epochs_run, dl_plural(r->epochs_run),
            r->epochs_run ? r->train_seconds * 1e6 / r->epochs_run : 0.0,
            r->fused ? "fused" : "general");
    if (r->have_svd) fprintf(f, "  SVD time             %.3f ms\n", r->svd_seconds * 1e3);
    if (r->seeds > 1) write_seed_spread(f, rep);
    dl_out_text(f, rep->out);
    if (rep->factors_note[0]) fprintf(f, "  factors              %s\n", rep->factors_note);
}

/* No NaN or Inf among the n values of x. */
static bool all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
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
                        .values_d = r->loss_history,
                        .epoch_stride = (size_t)r->seeds,
                        .metric_stride = 0,
                        .model_stride = 1};
    DL_TRY(dl_out_write(rep->out, "history.csv", dl_csv_write_history, &h));
    /* Û after a divergence (or holding NaN or Inf) is no estimate of
     * anything: the SVD panel is drawn alone, with a note. */
    bool gd_ok = r->stop.kind != DL_STOP_DIVERGED && all_finite(r->u_gd, (size_t)r->m * r->rank);
    if (r->epochs_run > 0 && (gd_ok || r->have_svd)) {
        dl_fig_factorise fig = {.m = r->m,
                                .rank = r->rank,
                                .u_gd = gd_ok ? r->u_gd : NULL,
                                .gd_note = r->stop.kind == DL_STOP_DIVERGED
                                               ? "Û not drawn: training diverged"
                                               : "Û not drawn: it holds NaN or Inf",
                                .svd_u = r->have_svd ? r->svd_u : NULL,
                                .ld_u = r->n_sv,
                                .s = r->singular_values,
                                .labels = d->labels,
                                .n_classes = d->n_classes,
                                .class_names = d->class_names};
        DL_TRY(dl_out_figure_factorise(rep->out, "figure1_projections", &fig));
    }
    if (r->seeds > 1 && rep->gaps) {
        /* The same decades as the text histogram, three bars a decade. */
        const double *v = rep->rel_gaps ? rep->rel_gaps : rep->gaps;
        int lo, hi;
        dl_decade_span(v, r->seeds, &lo, &hi);
        dl_fig_histogram hist = {.values_d = v,
                                 .n = r->seeds,
                                 .lo = lo,
                                 .hi = hi,
                                 .bins = 3 * (hi - lo) < 60 ? 3 * (hi - lo) : hi - lo,
                                 .log10_x = true,
                                 .band_lo = NAN,
                                 .band_hi = NAN,
                                 .below_label = "at or below the optimum",
                                 .xlabel = rep->rel_gaps
                                               ? "relative gap: (SSE - SVD optimum) / SVD optimum, "
                                                 "the same in any units"
                                               : "SSE minus the SVD optimum, in the data's units",
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
                              .rel_gaps = rep->rel_gaps,
                              .gap_why = rep->checks.gap_why,
                              .warnings = rep->checks.warnings,
                              .n_warnings = rep->checks.n_warnings,
                              .factors_note = rep->factors_note,
                              .out = rep->out};
    DL_TRY(dl_out_write(rep->out, "report.html", dl_html_write_factorise, &page));
    return dl_out_summary(rep->out, write_json, rep);
}

/* The gaps of every model, which figures are defined, and the warnings. */
static dl_status derive(report *rep)
{
    const dl_factorise_result *r = rep->r;
    /* The spectrum's checks start the list afresh; the lab's step follows. */
    if (r->have_svd) {
        dl_factorise_check_spectrum(r->m, r->n, r->rank, r->singular_values, r->n_sv, &rep->checks);
        /* Zero only because centring took away constant columns' values. */
        bool was_nonzero = false;
        for (int j = 0; rep->column_means && j < r->n; j++)
            was_nonzero = was_nonzero || rep->column_means[j] != 0.0f;
        if (!(r->n_sv > 0 && r->singular_values[0] > 0.0) && was_nonzero)
            dl_factorise_check_zero(&rep->checks, "the matrix is zero after centring (every "
                                                  "column is constant)");
    }
    /* sigma_1 from the SVD, else the estimate, else ||A||_F >= sigma_1 (the
     * warning then errs on the side of silence). */
    double s1 = r->have_svd && r->n_sv > 0 ? r->singular_values[0]
                : r->sigma1_est > 0.0      ? r->sigma1_est
                                           : sqrt(r->sumsq);
    if (rep->cfg->preset == DL_FACTORISE_LAB && r->stop.kind == DL_STOP_NONE)
        dl_factorise_check_lab_step(r->lr, s1, r->epochs_run, &rep->checks);
    if (!r->have_svd) return DL_OK;
    dl_factorise_check_below(r->m, r->n, r->sumsq, r->sse_svd, r->sse_gd, r->seeds, &rep->checks);
    rep->gaps = malloc(sizeof(double) * (size_t)r->seeds);
    if (rep->checks.relative_gap_defined) rep->rel_gaps = malloc(sizeof(double) * (size_t)r->seeds);
    if (!rep->gaps || (rep->checks.relative_gap_defined && !rep->rel_gaps))
        return DL_FAIL(DL_E_MEMORY, "out of host memory for %d gaps", r->seeds);
    for (int b = 0; b < r->seeds; b++) {
        double gap = r->sse_gd[b] - r->sse_svd;
        rep->gaps[b] = gap;
        if (rep->rel_gaps) rep->rel_gaps[b] = gap / r->sse_svd;
    }
    return compare_subspaces(rep);
}

/* The preset's configuration, overridden by whatever was given explicitly. */
static dl_factorise_config config_from_options(const dl_cmd *c)
{
    const dl_options *o = c->opt;
    dl_factorise_config cfg =
        dl_factorise_defaults(o->preset == DL_MLP_LAB ? DL_FACTORISE_LAB : DL_FACTORISE_CAREFUL);
    cfg.rank = o->rank;
    cfg.seed = o->seed;
    cfg.seeds = o->seeds;
    cfg.svd = o->svd;
    cfg.fused = o->fused;
    if (o->given_epochs) cfg.epochs = o->epochs;
    if (o->given_lr) cfg.lr = o->lr;
    cfg.loop = (dl_loop){.progress = c->progress, .progress_ud = c->progress_ud, .stop = c->stop};
    return cfg;
}

dl_status dl_cmd_factorise(dl_cmd *c)
{
    const dl_options *o = c->opt;
    dl_factorise_config cfg = config_from_options(c);
    dl_factorise_result r;
    dl_dataset d = {0};
    dl_out out;
    dl_out_init(&out, o->out, dl_out_names_factorise);
    dl_status st;
    char source[512];
    bool centred = false;
    float *means = NULL;
    dl_comm *comm = c->be->comm;
    const int ranks = comm ? dl_comm_size(comm) : 1;
    const bool root = !comm || dl_comm_rank(comm) == 0;
    if (!root) cfg.loop.progress = NULL; /* rank 0 alone speaks */
    /* Rows are shared for one model; several split their seeds and each
     * rank trains its own on the whole matrix. */
    const bool share_rows = ranks > 1 && cfg.seeds == 1;
    if (o->synth_m) {
        snprintf(source, sizeof source, "synthetic %dx%d", o->synth_m, o->synth_n);
        st = dl_factorise_validate(o->synth_m, o->synth_n, &cfg);
        if (st == DL_OK && root) st = dl_out_prepare(&out, o->force);
        if (ranks > 1) st = dl_comm_agree(comm, st);
        if (st != DL_OK) return st;
        /* Each rank makes only its rows of the matrix one process makes. */
        st = (share_rows ? dl_factorise_synthetic_rows : dl_factorise_synthetic_split_seeds)(
            c->be, o->synth_m, o->synth_n, cfg.rank, 0.1f, o->seed ^ 0x5eed, &cfg, &r);
    } else {
        const char *path = o->data ? o->data : dl_default_data_path();
        snprintf(source, sizeof source, "%s", path);
        int m, count;
        float *rows;
        st = share_rows ? dl_cmd_load_rows(c, path, &d, &m, &rows, &count)
                        : dl_cmd_load_data(c, path, false, &d);
        if (st != DL_OK) return st;
        if (!share_rows) m = count = d.rows, rows = d.x;
        if (o->center && share_rows) {
            /* The means of every row, summed over the ranks, subtracted
             * from this rank's rows as one process subtracts them. */
            double *mu = malloc(sizeof(double) * (size_t)d.cols);
            means = malloc(sizeof(float) * (size_t)d.cols);
            st = mu && means
                     ? DL_OK
                     : DL_FAIL(DL_E_MEMORY, "out of host memory for %d column means", d.cols);
            if ((st = dl_comm_agree(comm, st)) == DL_OK)
                st = dl_tsqr_column_means(comm, rows, count, d.cols, mu, NULL);
            for (int j = 0; st == DL_OK && j < d.cols; j++) {
                means[j] = (float)mu[j];
                for (int i = 0; i < count; i++) rows[(size_t)i * d.cols + j] -= (float)mu[j];
            }
            free(mu);
        } else if (o->center) {
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
        if (st == DL_OK) st = dl_factorise_validate(m, d.cols, &cfg);
        dl_out_keep(&out, "--data", path);
        if (st == DL_OK && root) st = dl_out_prepare(&out, o->force);
        if (ranks > 1) st = dl_comm_agree(comm, st);
        if (st == DL_OK)
            st = share_rows  ? dl_factorise_rows(c->be, rows, m, d.cols, &cfg, &r)
                 : ranks > 1 ? dl_factorise_split_seeds(c->be, d.x, m, d.cols, &cfg, &r)
                             : dl_factorise(c->be, d.x, m, d.cols, &cfg, &r);
    }
    if (st != DL_OK) {
        dl_out_discard(&out); /* a refused or failed run leaves no empty --out */
        dl_dataset_free(&d);
        free(means);
        return st;
    }
    if (c->progress && root) c->progress(c->progress_ud, NULL);
    if (!root) {
        st = dl_stop_status(&r.stop);
        dl_factorise_result_free(&r);
        dl_dataset_free(&d);
        free(means);
        return st;
    }

    report rep = {.c = c,
                  .source = source,
                  .centred = centred,
                  .cfg = &cfg,
                  .r = &r,
                  .column_means = means,
                  .out = &out};
    dl_status wst = derive(&rep);
    if (wst == DL_OK && out.dir) wst = write_files(&rep, &d);
    if (wst != DL_OK) dl_out_discard(&out); /* a folder it made that holds nothing goes */
    write_text(c->text, &rep);
    if (o->json) write_json(stdout, &rep);
    fflush(stdout);
    for (int i = 0; i < rep.checks.n_warnings; i++)
        fprintf(stderr, "dlab-gpu: warning: %s\n", rep.checks.warnings[i]);
    free(rep.angles_deg);
    free(rep.gaps);
    free(rep.rel_gaps);
    free(means);
    /* A file that could not be written outranks the stop. */
    st = wst != DL_OK ? wst : dl_stop_status(&r.stop);
    dl_factorise_result_free(&r);
    dl_dataset_free(&d);
    return st;
}
