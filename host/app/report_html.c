#include "dlab/report_html.h"

#include "report_html_page.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The settings row saying how training ran (dl_fused_mode). */
static const char *path_words(bool fused)
{
    return fused ? "fused: one pass per epoch over cache- or shared-memory-resident data"
                 : "general: one op per step (on the GPU, the epoch replayed as a CUDA graph)";
}

static const char *stop_words(dl_stop_kind stop)
{
    return stop == DL_STOP_DIVERGED      ? "Training diverged"
           : stop == DL_STOP_INTERRUPTED ? "Training was interrupted"
                                         : NULL;
}

/* --- factorise ----------------------------------------------------------- */

dl_status dl_html_write_factorise(FILE *f, const void *arg)
{
    const dl_html_factorise *pg = arg;
    const dl_factorise_result *r = pg->r;
    const dl_factorise_config *cfg = pg->cfg;
    char b1[64], b2[64], b3[64], b4[64];
    dl_html_page_begin(f, "Matrix factorisation: gradient descent against the SVD");
    fputs("<p class=\"lead\">", f);
    dl_html_text(f,
                 "The %d×%d matrix %s%s is factorised as U Vᵀ at rank %d by full-batch gradient "
                 "descent on the sum of squared errors, %s",
                 r->m, r->n, pg->source, pg->centred ? " (columns centred)" : "", cfg->rank,
                 r->have_svd
                     ? "and compared with the optimal truncation of the same rank from the SVD."
                     : "without the SVD baseline.");
    fputs("</p>\n", f);
    if (stop_words(r->stop.kind)) {
        fputs("<p class=\"note\">", f);
        dl_html_text(f, "%s after %d of %d epoch%s; the figures below are those of the epochs run.",
                     stop_words(r->stop.kind), r->epochs_run, cfg->epochs, dl_plural(cfg->epochs));
        if (r->stop.kind == DL_STOP_DIVERGED && r->stop.message[0]) {
            static const char lead[] = "training diverged: ";
            const char *why = r->stop.message;
            if (!strncmp(why, lead, sizeof lead - 1)) why += sizeof lead - 1;
            fputs(" Why: ", f);
            dl_html_escape(f, why);
            fputs(".", f);
        }
        fputs("</p>\n", f);
    }

    dl_html_h2(f, "configuration", "Configuration");
    fputs("<table>\n<tbody>\n", f);
    dl_html_row(f, "data", "%s", pg->source);
    dl_html_row(f, "matrix", "%d rows × %d columns%s", r->m, r->n,
                pg->centred ? ", each column centred on its mean" : "");
    dl_html_row(f, "rank", "%d", cfg->rank);
    dl_html_row(f, "epochs", "%d (run: %d)", cfg->epochs, r->epochs_run);
    bool careful = cfg->preset == DL_FACTORISE_CAREFUL;
    dl_html_row(f, "preset", "%s",
                careful ? "careful (for a matrix of any magnitude)"
                        : "lab (the lab's protocol, in the data's own units)");
    dl_html_row(f, "learning rate", "%.4g (in the data's units)", r->lr);
    if (careful) {
        dl_html_row(f, "initial values", "U, V ~ N(0, %.3g²) from seed %llu", r->init_std,
                    (unsigned long long)cfg->seed);
        dl_html_row(f, "σ₁ (power iteration)", "%.6g; the step is 0.1 / σ₁", r->sigma1_est);
        if (r->scale_log2)
            dl_html_row(f, "units",
                        "trained on the data times 2^%d (exact), reported in the data's units",
                        r->scale_log2);
    } else {
        dl_html_row(f, "initial values", "U, V ~ U[0, 1) from seed %llu",
                    (unsigned long long)cfg->seed);
    }
    dl_html_row(f, "training path", "%s", path_words(r->fused));
    dl_html_settings_end(f, r->seeds, cfg->seed, pg->backend, pg->device);
    /* After a divergence the factors are what it left: no error to report. */
    bool diverged = r->stop.kind == DL_STOP_DIVERGED;
    double gap = r->have_svd && !diverged ? r->sse_gd[0] - r->sse_svd : NAN;
    fputs("<p>", f);
    if (diverged) {
        dl_html_text(f, "Training diverged at epoch %d, so gradient descent's error is undefined.",
                     r->diverged_epoch);
        if (r->have_svd)
            dl_html_text(f, " The optimal rank-%d truncation gives %s.", cfg->rank,
                         dl_html_data_num(b2, sizeof b2, "%.6f", r->sse_svd));
    } else if (r->have_svd)
        dl_html_text(
            f,
            "After %d epoch%s gradient descent reaches a sum of squared errors of %s; the "
            "optimal rank-%d truncation gives %s, so gradient descent ends %s above the optimum "
            "(%s relative).",
            r->epochs_run, dl_plural(r->epochs_run),
            dl_html_data_num(b1, sizeof b1, "%.6f", r->sse_gd[0]), cfg->rank,
            dl_html_data_num(b2, sizeof b2, "%.6f", r->sse_svd),
            dl_html_num(b3, sizeof b3, "%.3e", gap),
            pg->rel_gaps ? dl_html_num(b4, sizeof b4, "%.2e", pg->rel_gaps[0]) : "not defined");
    else
        dl_html_text(f, "After %d epoch%s gradient descent reaches a sum of squared errors of %s.",
                     r->epochs_run, dl_plural(r->epochs_run),
                     dl_html_data_num(b1, sizeof b1, "%.6f", r->sse_gd[0]));
    if (pg->angles_deg)
        dl_html_text(
            f,
            " The subspace it spans is within %s degrees of the SVD's (largest principal angle).",
            dl_html_num(b2, sizeof b2, "%.3g", pg->angles_deg[r->rank - 1]));
    fputs("</p>\n<table>\n<tbody>\n", f);
    if (diverged)
        dl_html_row(f, "gradient-descent SSE", "undefined: training diverged at epoch %d",
                    r->diverged_epoch);
    else
        dl_html_row(f, "gradient-descent SSE", "%s%s",
                    dl_html_data_num(b1, sizeof b1, "%.6f", r->sse_gd[0]),
                    r->epochs_run < cfg->epochs ? " (stopped early)" : "");
    if (r->have_svd) {
        char key[48];
        snprintf(key, sizeof key, "SVD rank-%d SSE (the optimum)", cfg->rank);
        dl_html_row(f, key, "%s (from the rank-k reconstruction: %s)",
                    dl_html_data_num(b1, sizeof b1, "%.6f", r->sse_svd),
                    dl_html_data_num(b2, sizeof b2, "%.6f", r->sse_svd_recon));
        if (diverged)
            dl_html_row(f, "gap", "undefined: training diverged");
        else
            dl_html_row(f, "gap", "%s", dl_html_num(b1, sizeof b1, "%.3e", gap));
        if (diverged)
            dl_html_row(f, "relative gap", "undefined: training diverged");
        else if (pg->rel_gaps)
            dl_html_row(f, "relative gap", "%s",
                        dl_html_num(b1, sizeof b1, "%.2e", pg->rel_gaps[0]));
        else
            dl_html_row(f, "relative gap", "undefined: %s",
                        pg->gap_why ? pg->gap_why : "no optimum");
        char sv[512] = "";
        int shown = r->n_sv < 12 ? r->n_sv : 12;
        for (int i = 0; i < shown; i++)
            snprintf(sv + strlen(sv), sizeof sv - strlen(sv), "%s%s", i ? ", " : "",
                     dl_html_data_num(b1, sizeof b1, "%.4f", r->singular_values[i]));
        dl_html_row(f, "singular values", "%s%s", sv, r->n_sv > shown ? ", …" : "");
        if (pg->angles_deg) {
            char an[512] = "";
            int na = r->rank < 12 ? r->rank : 12;
            for (int i = 0; i < na; i++)
                snprintf(an + strlen(an), sizeof an - strlen(an), "%s%.3g", i ? ", " : "",
                         pg->angles_deg[i]);
            dl_html_row(f, "principal angles to the SVD subspace", "%s%s degrees", an,
                        r->rank > na ? ", …" : "");
            dl_html_row(f, "aligned residual", "%s (min over M of |U M − Uₖ Sₖ| / |Uₖ Sₖ|)",
                        dl_html_num(b1, sizeof b1, "%.3e", pg->aligned_residual));
        } else if (pg->align_note && pg->align_note[0]) {
            dl_html_row(f, "subspace against the SVD", "%s", pg->align_note);
        }
    }
    dl_html_row(f, "training time", "%.3f ms (%d epoch%s, %.2f µs per epoch)",
                r->train_seconds * 1e3, r->epochs_run, dl_plural(r->epochs_run),
                r->epochs_run ? r->train_seconds * 1e6 / r->epochs_run : 0.0);
    if (r->have_svd) dl_html_row(f, "SVD time", "%.3f ms", r->svd_seconds * 1e3);
    fputs("</tbody>\n</table>\n", f);

    if (pg->factors_note && pg->factors_note[0]) {
        fputs("<p class=\"note\">U and V: ", f);
        dl_html_escape(f, pg->factors_note);
        fputs(".</p>\n", f);
    }
    if (pg->n_warnings > 0) {
        fputs("<p class=\"note\">Warnings:</p>\n<ul>\n", f);
        for (int i = 0; i < pg->n_warnings; i++) {
            fputs("<li>", f);
            dl_html_escape(f, pg->warnings[i]);
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }

    dl_html_h2(f, "figures", "Figures");
    dl_html_figure(f, pg->out, "figure1_projections", 1,
                   r->have_svd && r->stop.kind == DL_STOP_DIVERGED
                       ? "The rows of the data on the first two principal axes by the SVD (U·S). "
                         "Gradient descent's Û is not drawn: training diverged."
                   : r->have_svd
                       ? "The rows of the data on the first two principal axes by the SVD (U·S, "
                         "left) beside the same rows through gradient descent's Û (right). Û "
                         "equals Uₖ Sₖ only up to an invertible map, so at convergence the "
                         "right panel is a linear image of the left one."
                       : "The rows of the data through gradient descent's Û.");

    if (r->seeds > 1) {
        dl_html_h2(f, "seeds", "Distribution over seeds");
        dl_stats st;
        fputs("<p>", f);
        dl_html_text(f, "%d models trained together from seeds %llu to %llu.", r->seeds,
                     (unsigned long long)cfg->seed, (unsigned long long)(cfg->seed + r->seeds - 1));
        fputs("</p>\n", f);
        dl_html_stats_begin(f);
        dl_stats_compute_d(r->sse_gd, r->seeds, 1, &st);
        dl_html_stats_row(f, "final SSE", &st, "%.6g");
        if (pg->gaps) {
            dl_stats_compute_d(pg->gaps, r->seeds, 1, &st);
            dl_html_stats_row(f, "gap to the optimum", &st, "%.3g");
        }
        fputs("</tbody>\n</table>\n", f);
        if (pg->gaps) {
            /* As in the text report: the scale-free relative gap by decade. */
            fputs(pg->rel_gaps ? "<p>The relative gap (gap / SVD optimum, the same in any "
                                 "units) by order of magnitude:</p>\n<pre>"
                               : "<p>The gap by order of magnitude:</p>\n<pre>",
                  f);
            dl_print_decade_histogram(f, pg->rel_gaps ? pg->rel_gaps : pg->gaps, r->seeds,
                                      "at or below the optimum (rounding)");
            fputs("</pre>\n", f);
            dl_html_figure(
                f, pg->out, "figure3_seeds_histogram", 3,
                "The relative gap between each model's final SSE and the SVD optimum (the "
                "gap itself where that is undefined), on a logarithmic axis over the "
                "decades the data span.");
        }
    }
    dl_html_files_section(f, pg->out);
    dl_html_page_end(f, pg->backend, pg->device);
    return DL_OK;
}

/* --- mlp ------------------------------------------------------------------ */

static const char *optim_words(const dl_mlp_config *cfg, char *buf, size_t len)
{
    if (cfg->optim == DL_OPTIM_MOMENTUM)
        snprintf(buf, len, "gradient descent with momentum %g", (double)cfg->momentum);
    else
        snprintf(buf, len, "%s", cfg->optim == DL_OPTIM_ADAM ? "Adam" : "plain gradient descent");
    return buf;
}

/* The confusion matrix as a table, each cell shaded by its share of the row. */
static void confusion_table(FILE *f, const int *counts, int c, char *const *names)
{
    fputs("<table class=\"cm\">\n<thead><tr><th scope=\"col\">true \\ predicted</th>", f);
    for (int q = 0; q < c; q++) {
        fputs("<th scope=\"col\">", f);
        dl_html_escape(f, names[q]);
        fputs("</th>", f);
    }
    fputs("<th scope=\"col\">rows</th><th scope=\"col\">recall</th></tr></thead>\n<tbody>\n", f);
    for (int t = 0; t < c; t++) {
        long total = 0;
        for (int q = 0; q < c; q++) total += counts[(size_t)t * c + q];
        fputs("<tr><th scope=\"row\">", f);
        dl_html_escape(f, names[t]);
        fputs("</th>", f);
        for (int q = 0; q < c; q++) {
            int n = counts[(size_t)t * c + q];
            double frac = total ? (double)n / total : 0.0;
            /* white to Okabe-Ito blue (0, 114, 178), as in figure 4 */
            int r = (int)lround(255 - frac * 255), g = (int)lround(255 - frac * 141),
                b = (int)lround(255 - frac * 77);
            fprintf(f, "<td style=\"background:#%02x%02x%02x;color:%s\">%d</td>", r, g, b,
                    frac > 0.5 ? "#fff" : "#1d1d1d", n);
        }
        if (total)
            fprintf(f, "<td>%ld</td><td>%.3f</td></tr>\n", total,
                    (double)counts[(size_t)t * c + t] / total);
        else
            fputs("<td>0</td><td>not defined</td></tr>\n", f);
    }
    fputs("</tbody>\n</table>\n", f);
}

dl_status dl_html_write_mlp(FILE *f, const void *arg)
{
    const dl_html_mlp *pg = arg;
    const dl_mlp_result *r = pg->r;
    const dl_mlp_config *cfg = pg->cfg;
    const bool lab = cfg->preset == DL_MLP_LAB;
    char b1[64], b3[64], ow[96];
    dl_html_page_begin(f, "Classifier: a one-hidden-layer MLP");
    fputs("<p class=\"lead\">", f);
    dl_html_text(
        f,
        "A %d-%d-%d network (ReLU hidden layer, softmax output, cross-entropy loss) is trained "
        "on %s with the %s preset: %d training and %d validation rows after a shuffle.",
        r->features, r->hidden, r->classes, pg->source, lab ? "lab" : "careful", r->n_train,
        r->n_val);
    fputs("</p>\n", f);
    if (stop_words(r->stop.kind)) {
        fputs("<p class=\"note\">", f);
        dl_html_text(f, "%s after %d of %d epoch%s; the figures below are those of the epochs run.",
                     stop_words(r->stop.kind), r->epochs_run, cfg->epochs, dl_plural(cfg->epochs));
        fputs("</p>\n", f);
    }

    dl_html_h2(f, "configuration", "Configuration");
    fputs("<table>\n<tbody>\n", f);
    dl_html_row(f, "data", "%s", pg->source);
    dl_html_row(f, "network", "%d input%s, %d hidden unit%s (ReLU), %d classes (softmax)",
                r->features, dl_plural(r->features), r->hidden, dl_plural(r->hidden), r->classes);
    dl_html_row(f, "classes", "%d", r->classes);
    dl_html_row(
        f, "preset", "%s",
        lab ? "lab: N(0, 1) weights, zero biases, inputs (x − mean) / variance over all rows"
            : "careful: He-normal weights, inputs standardised by the training rows' mean and "
              "deviation");
    dl_html_row(f, "optimiser", "%s, learning rate %g", optim_words(cfg, ow, sizeof ow),
                (double)cfg->lr);
    dl_html_row(f, "epochs", "%d (run: %d)", cfg->epochs, r->epochs_run);
    dl_html_row(f, "mini-batch", "%d rows%s", r->batch,
                r->batch == r->n_train ? " (full batch)" : "");
    dl_html_row(f, "split", "%d training rows, %d validation rows", r->n_train, r->n_val);
    dl_html_row(f, "seed", "%llu (shuffle and initial weights)", (unsigned long long)cfg->seed);
    dl_html_row(f, "training path", "%s", path_words(r->fused));
    dl_html_settings_end(f, r->models, cfg->seed, pg->backend, pg->device);
    fputs("<p>", f);
    if (isfinite(r->val_accuracy[0]) && isfinite(r->train_accuracy[0]))
        dl_html_text(
            f,
            "After %d epoch%s the model classifies %.1f %% of the validation rows correctly "
            "(%ld of %d) and %.1f %% of the training rows (%ld of %d).",
            r->epochs_run, dl_plural(r->epochs_run), 100.0 * r->val_accuracy[0],
            lround(r->val_accuracy[0] * r->n_val), r->n_val, 100.0 * r->train_accuracy[0],
            lround(r->train_accuracy[0] * r->n_train), r->n_train);
    else if (r->epochs_run > 0)
        dl_html_text(f,
                     "After %d epoch%s the model's loss is not finite (training diverged), so its "
                     "accuracy is undefined.",
                     r->epochs_run, dl_plural(r->epochs_run));
    else
        dl_html_text(f, "No epoch finished with a measured accuracy.");
    if (r->best_epoch[0] > 0)
        dl_html_text(
            f, " Its best validation accuracy, %s %%, came at epoch %d.",
            dl_html_num(b3, sizeof b3, "%.1f",
                        100.0 * dl_mlp_history(r, r->best_epoch[0] - 1, DL_MLP_VAL_ACCURACY, 0)),
            r->best_epoch[0]);
    fputs("</p>\n<table>\n<thead><tr><th scope=\"col\"></th><th scope=\"col\">loss</th>"
          "<th scope=\"col\">accuracy</th></tr></thead>\n<tbody>\n",
          f);
    const char *split_name[2] = {"training", "validation"};
    const float split_loss[2] = {r->train_loss[0], r->val_loss[0]};
    const float split_acc[2] = {r->train_accuracy[0], r->val_accuracy[0]};
    for (int i = 0; i < 2; i++) {
        fprintf(f, "<tr><th scope=\"row\">%s</th><td class=\"n\">", split_name[i]);
        /* A huge finite loss in fixed point would be a wall of digits. */
        dl_html_escape(f, dl_html_num(b1, sizeof b1, fabsf(split_loss[i]) < 1e6f ? "%.6f" : "%.6g",
                                      split_loss[i]));
        fputs("</td><td class=\"n\">", f);
        dl_html_escape(f, dl_html_num(b1, sizeof b1, "%.4f", split_acc[i]));
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody>\n</table>\n<table>\n<tbody>\n", f);
    dl_html_row(f, "training time", "%.3f ms (%d epoch%s, %.2f µs per epoch)",
                r->train_seconds * 1e3, r->epochs_run, dl_plural(r->epochs_run),
                r->epochs_run ? r->train_seconds * 1e6 / r->epochs_run : 0.0);
    fputs("</tbody>\n</table>\n", f);

    dl_html_h2(f, "figures", "Learning curves");
    dl_html_figure(
        f, pg->out, "figure2_learning_curves", 2,
        "Loss (left) and accuracy (right) per epoch on the training rows (solid) and the "
        "validation rows (dashed).");

    dl_html_h2(f, "confusion", "Confusion matrix");
    if (pg->confusion) {
        fputs("<p>", f);
        dl_html_text(f,
                     "The %d validation rows by true class (rows) and predicted class (columns); a "
                     "cell's shade is its share of its row, so the diagonal reads as each class's "
                     "recall.",
                     r->n_val);
        fputs("</p>\n", f);
        confusion_table(f, pg->confusion, r->classes, pg->class_names);
        dl_html_figure(
            f, pg->out, "figure4_confusion_matrix", 4,
            "The validation confusion matrix: true class by row, predicted class by column.");
    } else {
        fputs("<p class=\"note\">", f);
        dl_html_text(f, "No confusion matrix, model.json or predictions.csv: %s.",
                     pg->confusion_note ? pg->confusion_note : "no predictions");
        fputs("</p>\n", f);
    }

    if (r->models > 1) {
        dl_html_h2(f, "seeds", "Distribution over seeds");
        fputs("<p>", f);
        dl_html_text(f,
                     "%d models trained together from seeds %llu to %llu, each on its own "
                     "shuffle and initial weights; ",
                     r->models, (unsigned long long)cfg->seed,
                     (unsigned long long)(cfg->seed + r->models - 1));
        /* The share in the band is over the models that have an accuracy. */
        if (pg->measured == 0)
            dl_html_text(f,
                         "none has a validation accuracy (%s), so how many end between %.0f %% "
                         "and %.0f %% is not measured.",
                         r->epochs_run == 0 ? "no epoch finished" : "every one diverged",
                         100 * pg->band_lo, 100 * pg->band_hi);
        else if (pg->measured < r->models)
            dl_html_text(f,
                         "of the %d with a validation accuracy (the other %d diverged), %d "
                         "(%.1f %%) end with one between %.0f %% and %.0f %%.",
                         pg->measured, r->models - pg->measured, pg->in_band,
                         100.0 * pg->in_band / pg->measured, 100 * pg->band_lo, 100 * pg->band_hi);
        else
            dl_html_text(f,
                         "%d of them (%.1f %%) end with a validation accuracy between %.0f %% "
                         "and %.0f %%.",
                         pg->in_band, 100.0 * pg->in_band / r->models, 100 * pg->band_lo,
                         100 * pg->band_hi);
        fputs("</p>\n", f);
        dl_stats st;
        dl_html_stats_begin(f);
        dl_stats_compute(r->val_accuracy, r->models, 1, &st);
        dl_html_stats_row(f, "validation accuracy", &st, "%.3f");
        dl_stats_compute(r->train_accuracy, r->models, 1, &st);
        dl_html_stats_row(f, "training accuracy", &st, "%.3f");
        dl_stats_compute(r->val_loss, r->models, 1, &st);
        dl_html_stats_row(f, "validation loss", &st, "%.4f");
        fputs("</tbody>\n</table>\n", f);
        fputs("<pre>", f);
        dl_print_histogram(f, r->val_accuracy, r->models, 1, 0.0, 1.0, 20, "%.2f");
        fputs("</pre>\n", f);
        dl_html_figure(f, pg->out, "figure3_seeds_histogram", 3,
                       "The final validation accuracy over the models; the lab's 40–55 % band is "
                       "shaded.");
    }
    dl_html_files_section(f, pg->out);
    dl_html_page_end(f, pg->backend, pg->device);
    return DL_OK;
}
