#include "dlab/report_html.h"

#include "dlab/summary.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An SVG file larger than this is linked to rather than embedded. */
#define HTML_MAX_SVG (32u << 20)

/* --- text --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static int utf8_sequence(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) return *cp = c, 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* Code points HTML calls parse errors in text: controls other than tab, line
 * feed, form feed and carriage return, and the noncharacters. */
static bool html_unwelcome(uint32_t cp)
{
    if (cp < 0x20) return cp != '\t' && cp != '\n' && cp != '\f' && cp != '\r';
    if (cp >= 0x7f && cp <= 0x9f) return true;
    return (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe;
}

void dl_html_escape(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        int len = utf8_sequence(p, &cp);
        if (len == 0 || html_unwelcome(cp)) {
            fputs("\xef\xbf\xbd", f); /* U+FFFD REPLACEMENT CHARACTER */
            p += len ? len : 1;
            continue;
        }
        switch (cp) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fwrite(p, 1, (size_t)len, f);
        }
        p += len;
    }
}

/* printf, then escaped. */
static void text(FILE *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void text(FILE *f, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        dl_html_escape(f, small);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    dl_html_escape(f, big);
    free(big);
}

/* A number for the page, or "not defined" when it is not finite. */
static const char *num(char *buf, size_t len, const char *fmt, double v)
{
    if (!isfinite(v))
        snprintf(buf, len, "not defined");
    else
        snprintf(buf, len, fmt, v);
    return buf;
}

/* An error or a singular value in the data's units: `fixed` where that reads
 * well, else scientific (a matrix in units of 1e-30 has errors near 1e-59,
 * which fixed point would show as zero). */
static const char *data_num(char *buf, size_t len, const char *fixed, double v)
{
    double a = fabs(v);
    return num(buf, len, a == 0.0 || (a >= 1e-3 && a < 1e9) ? fixed : "%.7e", v);
}

/* Figures the page being written embeds, and links to (too large to embed),
 * for the footer's words: one page is written at a time. */
static int figures_embedded, figures_linked;

/* --- page structure --------------------------------------------------- */

static const char *const page_style =
    "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d1d1d;"
    "max-width:1080px;margin:2em auto;padding:0 1.2em}"
    "h1{font-size:1.65em;margin:0 0 .2em}"
    "p.lead{color:#444;margin-top:0}"
    "h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}"
    "table{border-collapse:collapse;margin:.6em 0 1em}"
    "th,td{padding:.3em .8em;text-align:left;border-bottom:1px solid #e6e6e6;vertical-align:top}"
    "th{font-weight:600}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "table.cm td,table.cm th{text-align:right;min-width:5.5em}"
    "table.cm th[scope=row]{text-align:left}"
    "figure{margin:1.2em 0}"
    "figure svg{display:block;width:100%;height:auto;border:1px solid #e6e6e6}"
    "figcaption{color:#444;font-size:.92em;margin-top:.4em}"
    "pre{background:#f6f6f6;padding:.7em;overflow-x:auto;font-size:.85em}"
    ".note{color:#8a4b00}"
    "code{font-size:.92em}"
    "footer{margin-top:3em;color:#666;font-size:.85em;border-top:1px solid #ddd;padding-top:.6em}";

static void page_begin(FILE *f, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'\">\n<title>",
          f);
    dl_html_escape(f, title);
    figures_embedded = figures_linked = 0;
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n<h1>", page_style);
    dl_html_escape(f, title);
    fputs("</h1>\n", f);
}

static void page_end(FILE *f, const char *backend, const char *device)
{
    fputs("</main>\n<footer>Written by dlab-gpu " DLAB_VERSION " on the ", f);
    dl_html_escape(f, backend);
    fputs(" backend (", f);
    dl_html_escape(f, device);
    fputs(figures_linked     ? "). This page loads nothing; figures too large to embed are "
                               "linked to the files beside it."
          : figures_embedded ? "). This page is self-contained: its figures are embedded and "
                               "it loads nothing."
                             : "). This page is self-contained: it loads nothing.",
          f);
    fputs("</footer>\n</body>\n</html>\n", f);
}

static void h2(FILE *f, const char *id, const char *title)
{
    fprintf(f, "<h2 id=\"%s\">", id);
    dl_html_escape(f, title);
    fputs("</h2>\n", f);
}

/* One row of a two-column table: an escaped key and an escaped value. */
static void row(FILE *f, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void row(FILE *f, const char *key, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fputs("<tr><th scope=\"row\">", f);
    dl_html_escape(f, key);
    fputs("</th><td>", f);
    dl_html_escape(f, buf);
    fputs("</td></tr>\n", f);
}

/* The last rows of a page's settings table (the models trained, seeds
 * seed to seed + models - 1, and where), the table's end and the results'
 * heading. */
static void settings_end(FILE *f, int models, uint64_t seed, const char *backend,
                         const char *device)
{
    if (models > 1)
        row(f, "models", "%d (seeds %llu to %llu); the figures show the first", models,
            (unsigned long long)seed, (unsigned long long)(seed + models - 1));
    row(f, "backend", "%s (%s)", backend, device);
    fputs("</tbody>\n</table>\n", f);
    h2(f, "results", "Results");
}

/* --- figures ------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > 0 && (unsigned long)size <= HTML_MAX_SVG && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)size + 1))) {
            *len = fread(buf, 1, (size_t)size, f);
            buf[*len] = '\0';
        }
    }
    fclose(f);
    return buf;
}

/* The SVG document from its <svg> element on, every id given the prefix
 * "figN-" (and every reference to one), since the figures of one page
 * would otherwise share ids (cairo names its glyphs glyph0-1, ... in each
 * file). The XML declaration before <svg> has no place in HTML. */
static bool embed_svg(FILE *f, const char *svg, int number, const char *label)
{
    const char *p = strstr(svg, "<svg");
    if (!p) return false;
    char prefix[16];
    snprintf(prefix, sizeof prefix, "fig%d-", number);
    fputs("<svg role=\"img\" aria-label=\"", f);
    dl_html_escape(f, label);
    fputc('"', f);
    p += 4;
    static const char *const refs[] = {" id=\"", "href=\"#", "url(#"};
    while (*p) {
        bool hit = false;
        for (size_t k = 0; k < sizeof refs / sizeof refs[0] && !hit; k++) {
            size_t n = strlen(refs[k]);
            if (strncmp(p, refs[k], n) == 0) {
                fwrite(p, 1, n, f);
                fputs(prefix, f);
                p += n;
                hit = true;
            }
        }
        if (!hit) fputc(*p++, f);
    }
    fputc('\n', f);
    return true;
}

/* Figure `number` (base.svg under --out) with its caption, or a line saying
 * why it is not there. */
static void figure(FILE *f, const dl_out *o, const char *base, int number, const char *caption)
{
    char name[80];
    snprintf(name, sizeof name, "%s.svg", base);
    if (!dl_out_has(o, name)) {
        fprintf(f, "<p class=\"note\">Figure %d is not drawn", number);
        if (o->figures_note[0]) {
            /* the note may itself begin by saying so */
            static const char said[] = "not drawn: ";
            const char *why = o->figures_note;
            if (!strncmp(why, said, sizeof said - 1)) why += sizeof said - 1;
            fputs(": ", f);
            dl_html_escape(f, why);
        }
        fputs(".</p>\n", f);
        return;
    }
    size_t plen = strlen(o->dir) + strlen(name) + 2, len = 0;
    char *path = malloc(plen), *svg = NULL;
    if (path) {
        snprintf(path, plen, "%s/%s", o->dir, name);
        svg = read_file(path, &len);
    }
    fprintf(f, "<figure id=\"figure%d\">\n", number);
    if (svg && embed_svg(f, svg, number, caption)) {
        figures_embedded++;
    } else {
        figures_linked++;
        fputs("<p class=\"note\">The figure could not be embedded; it is in <a href=\"", f);
        dl_html_escape(f, name);
        fputs("\">", f);
        dl_html_escape(f, name);
        fputs("</a>.</p>\n", f);
    }
    fprintf(f, "<figcaption><strong>Figure %d.</strong> ", number);
    dl_html_escape(f, caption);
    fputs("</figcaption>\n</figure>\n", f);
    free(svg), free(path);
}

/* --- shared sections ----------------------------------------------------- */

/* A table of distributions, one row per figure: stats_begin, stats_row...,
 * then "</tbody></table>". */
static void stats_begin(FILE *f)
{
    fputs("<table>\n<thead><tr><th scope=\"col\"></th><th scope=\"col\">models</th>"
          "<th scope=\"col\">min</th><th scope=\"col\">10th percentile</th>"
          "<th scope=\"col\">median</th><th scope=\"col\">90th percentile</th>"
          "<th scope=\"col\">max</th><th scope=\"col\">not finite</th></tr></thead>\n<tbody>\n",
          f);
}

static void stats_row(FILE *f, const char *what, const dl_stats *s, const char *fmt)
{
    char b[64];
    fputs("<tr><th scope=\"row\">", f);
    dl_html_escape(f, what);
    fprintf(f, "</th><td class=\"n\">%d</td>", s->n);
    const double v[5] = {s->min, s->p10, s->median, s->p90, s->max};
    for (int i = 0; i < 5; i++) {
        fputs("<td class=\"n\">", f);
        dl_html_escape(f, num(b, sizeof b, fmt, v[i]));
        fputs("</td>", f);
    }
    fprintf(f, "<td class=\"n\">%d</td></tr>\n", s->non_finite);
}

/* What each file under --out holds, for the page's list of them. */
static const char *file_about(const char *name)
{
    static const char *const about[][2] = {
        {"history.csv", "the metrics of every epoch, one column per metric and seed"},
        {"U.npy", "gradient descent's U, m × k float32 (NumPy)"},
        {"U.csv", "the same U as CSV"},
        {"V.npy", "gradient descent's V, n × k float32: A − 1·μᵀ ≈ U Vᵀ"},
        {"V.csv", "the same V as CSV"},
        {"column_means.npy", "μ, the column means subtracted before training"},
        {"svd_U.npy", "the SVD's leading left singular vectors, m × k"},
        {"svd_S.npy", "every singular value, descending"},
        {"svd_V.npy", "the SVD's leading right singular vectors, n × k"},
        {"model.json", "the trained model: input transform, weights, classes"},
        {"predictions.csv", "every data row's split, label, prediction and class probabilities"},
        {"figure1_projections.png", "Figure 1 as PNG"},
        {"figure1_projections.svg", "Figure 1 as SVG"},
        {"figure2_learning_curves.png", "Figure 2 as PNG"},
        {"figure2_learning_curves.svg", "Figure 2 as SVG"},
        {"figure3_seeds_histogram.png", "Figure 3 as PNG"},
        {"figure3_seeds_histogram.svg", "Figure 3 as SVG"},
        {"figure4_confusion_matrix.png", "Figure 4 as PNG"},
        {"figure4_confusion_matrix.svg", "Figure 4 as SVG"},
    };
    for (size_t i = 0; i < sizeof about / sizeof about[0]; i++)
        if (strcmp(about[i][0], name) == 0) return about[i][1];
    return "";
}

static void file_row(FILE *f, const char *name, bool link, const char *about)
{
    fputs("<tr><td>", f);
    if (link) {
        fputs("<a href=\"", f);
        dl_html_escape(f, name);
        fputs("\">", f);
    }
    fputs("<code>", f);
    dl_html_escape(f, name);
    fputs(link ? "</code></a></td><td>" : "</code></td><td>", f);
    dl_html_escape(f, about);
    fputs("</td></tr>\n", f);
}

static void files_section(FILE *f, const dl_out *o)
{
    h2(f, "files", "Files");
    fputs("<p>Written beside this page in <code>", f);
    dl_html_escape(f, o->dir);
    fputs("</code>:</p>\n<table>\n<tbody>\n", f);
    for (int i = 0; i < o->n_files; i++) file_row(f, o->files[i], true, file_about(o->files[i]));
    file_row(f, "report.html", false, "this page");
    file_row(f, "summary.json", true, "every number of the run, as --json prints it");
    fputs("</tbody>\n</table>\n", f);
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
    page_begin(f, "Matrix factorisation: gradient descent against the SVD");
    fputs("<p class=\"lead\">", f);
    text(f,
         "The %d×%d matrix %s%s is factorised as U Vᵀ at rank %d by full-batch gradient "
         "descent on the sum of squared errors, %s",
         r->m, r->n, pg->source, pg->centred ? " (columns centred)" : "", cfg->rank,
         r->have_svd ? "and compared with the optimal truncation of the same rank from the SVD."
                     : "without the SVD baseline.");
    fputs("</p>\n", f);
    if (stop_words(r->stop.kind)) {
        fputs("<p class=\"note\">", f);
        text(f, "%s after %d of %d epoch%s; the figures below are those of the epochs run.",
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

    h2(f, "configuration", "Configuration");
    fputs("<table>\n<tbody>\n", f);
    row(f, "data", "%s", pg->source);
    row(f, "matrix", "%d rows × %d columns%s", r->m, r->n,
        pg->centred ? ", each column centred on its mean" : "");
    row(f, "rank", "%d", cfg->rank);
    row(f, "epochs", "%d (run: %d)", cfg->epochs, r->epochs_run);
    bool careful = cfg->preset == DL_FACTORISE_CAREFUL;
    row(f, "preset", "%s",
        careful ? "careful (for a matrix of any magnitude)"
                : "lab (the lab's protocol, in the data's own units)");
    row(f, "learning rate", "%.4g (in the data's units)", r->lr);
    if (careful) {
        row(f, "initial values", "U, V ~ N(0, %.3g²) from seed %llu", r->init_std,
            (unsigned long long)cfg->seed);
        row(f, "σ₁ (power iteration)", "%.6g; the step is 0.1 / σ₁", r->sigma1_est);
        if (r->scale_log2)
            row(f, "units", "trained on the data times 2^%d (exact), reported in the data's units",
                r->scale_log2);
    } else {
        row(f, "initial values", "U, V ~ U[0, 1) from seed %llu", (unsigned long long)cfg->seed);
    }
    settings_end(f, r->seeds, cfg->seed, pg->backend, pg->device);
    /* After a divergence the factors are what it left: no error to report. */
    bool diverged = r->stop.kind == DL_STOP_DIVERGED;
    double gap = r->have_svd && !diverged ? r->sse_gd[0] - r->sse_svd : NAN;
    fputs("<p>", f);
    if (diverged) {
        text(f, "Training diverged at epoch %d, so gradient descent's error is undefined.",
             r->diverged_epoch);
        if (r->have_svd)
            text(f, " The optimal rank-%d truncation gives %s.", cfg->rank,
                 data_num(b2, sizeof b2, "%.6f", r->sse_svd));
    } else if (r->have_svd)
        text(f,
             "After %d epoch%s gradient descent reaches a sum of squared errors of %s; the "
             "optimal rank-%d truncation gives %s, so gradient descent ends %s above the optimum "
             "(%s relative).",
             r->epochs_run, dl_plural(r->epochs_run), data_num(b1, sizeof b1, "%.6f", r->sse_gd[0]),
             cfg->rank, data_num(b2, sizeof b2, "%.6f", r->sse_svd),
             num(b3, sizeof b3, "%.3e", gap),
             pg->rel_gaps ? num(b4, sizeof b4, "%.2e", pg->rel_gaps[0]) : "not defined");
    else
        text(f, "After %d epoch%s gradient descent reaches a sum of squared errors of %s.",
             r->epochs_run, dl_plural(r->epochs_run),
             data_num(b1, sizeof b1, "%.6f", r->sse_gd[0]));
    if (pg->angles_deg)
        text(f,
             " The subspace it spans is within %s degrees of the SVD's (largest principal angle).",
             num(b2, sizeof b2, "%.3g", pg->angles_deg[r->rank - 1]));
    fputs("</p>\n<table>\n<tbody>\n", f);
    if (diverged)
        row(f, "gradient-descent SSE", "undefined: training diverged at epoch %d",
            r->diverged_epoch);
    else
        row(f, "gradient-descent SSE", "%s%s", data_num(b1, sizeof b1, "%.6f", r->sse_gd[0]),
            r->epochs_run < cfg->epochs ? " (stopped early)" : "");
    if (r->have_svd) {
        char key[48];
        snprintf(key, sizeof key, "SVD rank-%d SSE (the optimum)", cfg->rank);
        row(f, key, "%s (from the rank-k reconstruction: %s)",
            data_num(b1, sizeof b1, "%.6f", r->sse_svd),
            data_num(b2, sizeof b2, "%.6f", r->sse_svd_recon));
        if (diverged)
            row(f, "gap", "undefined: training diverged");
        else
            row(f, "gap", "%s", num(b1, sizeof b1, "%.3e", gap));
        if (diverged)
            row(f, "relative gap", "undefined: training diverged");
        else if (pg->rel_gaps)
            row(f, "relative gap", "%s", num(b1, sizeof b1, "%.2e", pg->rel_gaps[0]));
        else
            row(f, "relative gap", "undefined: %s", pg->gap_why ? pg->gap_why : "no optimum");
        char sv[512] = "";
        int shown = r->n_sv < 12 ? r->n_sv : 12;
        for (int i = 0; i < shown; i++)
            snprintf(sv + strlen(sv), sizeof sv - strlen(sv), "%s%s", i ? ", " : "",
                     data_num(b1, sizeof b1, "%.4f", r->singular_values[i]));
        row(f, "singular values", "%s%s", sv, r->n_sv > shown ? ", …" : "");
        if (pg->angles_deg) {
            char an[512] = "";
            int na = r->rank < 12 ? r->rank : 12;
            for (int i = 0; i < na; i++)
                snprintf(an + strlen(an), sizeof an - strlen(an), "%s%.3g", i ? ", " : "",
                         pg->angles_deg[i]);
            row(f, "principal angles to the SVD subspace", "%s%s degrees", an,
                r->rank > na ? ", …" : "");
            row(f, "aligned residual", "%s (min over M of |U M − Uₖ Sₖ| / |Uₖ Sₖ|)",
                num(b1, sizeof b1, "%.3e", pg->aligned_residual));
        } else if (pg->align_note && pg->align_note[0]) {
            row(f, "subspace against the SVD", "%s", pg->align_note);
        }
    }
    row(f, "training time", "%.3f ms (%d epoch%s, %.2f µs per epoch)", r->train_seconds * 1e3,
        r->epochs_run, dl_plural(r->epochs_run),
        r->epochs_run ? r->train_seconds * 1e6 / r->epochs_run : 0.0);
    if (r->have_svd) row(f, "SVD time", "%.3f ms", r->svd_seconds * 1e3);
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

    h2(f, "figures", "Figures");
    figure(f, pg->out, "figure1_projections", 1,
           r->have_svd && r->stop.kind == DL_STOP_DIVERGED
               ? "The rows of the data on the first two principal axes by the SVD (U·S). "
                 "Gradient descent's Û is not drawn: training diverged."
           : r->have_svd ? "The rows of the data on the first two principal axes by the SVD (U·S, "
                           "left) beside the same rows through gradient descent's Û (right). Û "
                           "equals Uₖ Sₖ only up to an invertible map, so at convergence the "
                           "right panel is a linear image of the left one."
                         : "The rows of the data through gradient descent's Û.");

    if (r->seeds > 1) {
        h2(f, "seeds", "Distribution over seeds");
        dl_stats st;
        fputs("<p>", f);
        text(f, "%d models trained together from seeds %llu to %llu.", r->seeds,
             (unsigned long long)cfg->seed, (unsigned long long)(cfg->seed + r->seeds - 1));
        fputs("</p>\n", f);
        stats_begin(f);
        dl_stats_compute_d(r->sse_gd, r->seeds, 1, &st);
        stats_row(f, "final SSE", &st, "%.6g");
        if (pg->gaps) {
            dl_stats_compute_d(pg->gaps, r->seeds, 1, &st);
            stats_row(f, "gap to the optimum", &st, "%.3g");
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
            figure(f, pg->out, "figure3_seeds_histogram", 3,
                   "The relative gap between each model's final SSE and the SVD optimum (the "
                   "gap itself where that is undefined), on a logarithmic axis over the "
                   "decades the data span.");
        }
    }
    files_section(f, pg->out);
    page_end(f, pg->backend, pg->device);
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
    page_begin(f, "Classifier: a one-hidden-layer MLP");
    fputs("<p class=\"lead\">", f);
    text(f,
         "A %d-%d-%d network (ReLU hidden layer, softmax output, cross-entropy loss) is trained "
         "on %s with the %s preset: %d training and %d validation rows after a shuffle.",
         r->features, r->hidden, r->classes, pg->source, lab ? "lab" : "careful", r->n_train,
         r->n_val);
    fputs("</p>\n", f);
    if (stop_words(r->stop.kind)) {
        fputs("<p class=\"note\">", f);
        text(f, "%s after %d of %d epoch%s; the figures below are those of the epochs run.",
             stop_words(r->stop.kind), r->epochs_run, cfg->epochs, dl_plural(cfg->epochs));
        fputs("</p>\n", f);
    }

    h2(f, "configuration", "Configuration");
    fputs("<table>\n<tbody>\n", f);
    row(f, "data", "%s", pg->source);
    row(f, "network", "%d input%s, %d hidden unit%s (ReLU), %d classes (softmax)", r->features,
        dl_plural(r->features), r->hidden, dl_plural(r->hidden), r->classes);
    row(f, "classes", "%d", r->classes);
    row(f, "preset", "%s",
        lab ? "lab: N(0, 1) weights, zero biases, inputs (x − mean) / variance over all rows"
            : "careful: He-normal weights, inputs standardised by the training rows' mean and "
              "deviation");
    row(f, "optimiser", "%s, learning rate %g", optim_words(cfg, ow, sizeof ow), (double)cfg->lr);
    row(f, "epochs", "%d (run: %d)", cfg->epochs, r->epochs_run);
    row(f, "mini-batch", "%d rows%s", r->batch, r->batch == r->n_train ? " (full batch)" : "");
    row(f, "split", "%d training rows, %d validation rows", r->n_train, r->n_val);
    row(f, "seed", "%llu (shuffle and initial weights)", (unsigned long long)cfg->seed);
    settings_end(f, r->models, cfg->seed, pg->backend, pg->device);
    fputs("<p>", f);
    if (isfinite(r->val_accuracy[0]) && isfinite(r->train_accuracy[0]))
        text(f,
             "After %d epoch%s the model classifies %.1f %% of the validation rows correctly "
             "(%ld of %d) and %.1f %% of the training rows (%ld of %d).",
             r->epochs_run, dl_plural(r->epochs_run), 100.0 * r->val_accuracy[0],
             lround(r->val_accuracy[0] * r->n_val), r->n_val, 100.0 * r->train_accuracy[0],
             lround(r->train_accuracy[0] * r->n_train), r->n_train);
    else if (r->epochs_run > 0)
        text(f,
             "After %d epoch%s the model's loss is not finite (training diverged), so its "
             "accuracy is undefined.",
             r->epochs_run, dl_plural(r->epochs_run));
    else
        text(f, "No epoch finished with a measured accuracy.");
    if (r->best_epoch[0] > 0)
        text(f, " Its best validation accuracy, %s %%, came at epoch %d.",
             num(b3, sizeof b3, "%.1f",
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
        dl_html_escape(
            f, num(b1, sizeof b1, fabsf(split_loss[i]) < 1e6f ? "%.6f" : "%.6g", split_loss[i]));
        fputs("</td><td class=\"n\">", f);
        dl_html_escape(f, num(b1, sizeof b1, "%.4f", split_acc[i]));
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody>\n</table>\n<table>\n<tbody>\n", f);
    row(f, "training time", "%.3f ms (%d epoch%s, %.2f µs per epoch)", r->train_seconds * 1e3,
        r->epochs_run, dl_plural(r->epochs_run),
        r->epochs_run ? r->train_seconds * 1e6 / r->epochs_run : 0.0);
    fputs("</tbody>\n</table>\n", f);

    h2(f, "figures", "Learning curves");
    figure(f, pg->out, "figure2_learning_curves", 2,
           "Loss (left) and accuracy (right) per epoch on the training rows (solid) and the "
           "validation rows (dashed).");

    h2(f, "confusion", "Confusion matrix");
    if (pg->confusion) {
        fputs("<p>", f);
        text(f,
             "The %d validation rows by true class (rows) and predicted class (columns); a "
             "cell's shade is its share of its row, so the diagonal reads as each class's "
             "recall.",
             r->n_val);
        fputs("</p>\n", f);
        confusion_table(f, pg->confusion, r->classes, pg->class_names);
        figure(f, pg->out, "figure4_confusion_matrix", 4,
               "The validation confusion matrix: true class by row, predicted class by column.");
    } else {
        fputs("<p class=\"note\">", f);
        text(f, "No confusion matrix, model.json or predictions.csv: %s.",
             pg->confusion_note ? pg->confusion_note : "no predictions");
        fputs("</p>\n", f);
    }

    if (r->models > 1) {
        h2(f, "seeds", "Distribution over seeds");
        fputs("<p>", f);
        text(f,
             "%d models trained together from seeds %llu to %llu, each on its own shuffle and "
             "initial weights; %d of them (%.1f %%) end with a validation accuracy between "
             "%.0f %% and %.0f %%.",
             r->models, (unsigned long long)cfg->seed,
             (unsigned long long)(cfg->seed + r->models - 1), pg->in_band,
             100.0 * pg->in_band / r->models, 100 * pg->band_lo, 100 * pg->band_hi);
        fputs("</p>\n", f);
        dl_stats st;
        stats_begin(f);
        dl_stats_compute(r->val_accuracy, r->models, 1, &st);
        stats_row(f, "validation accuracy", &st, "%.3f");
        dl_stats_compute(r->train_accuracy, r->models, 1, &st);
        stats_row(f, "training accuracy", &st, "%.3f");
        dl_stats_compute(r->val_loss, r->models, 1, &st);
        stats_row(f, "validation loss", &st, "%.4f");
        fputs("</tbody>\n</table>\n", f);
        fputs("<pre>", f);
        dl_print_histogram(f, r->val_accuracy, r->models, 1, 0.0, 1.0, 20, "%.2f");
        fputs("</pre>\n", f);
        figure(f, pg->out, "figure3_seeds_histogram", 3,
               "The final validation accuracy over the models; the lab's 40–55 % band is "
               "shaded.");
    }
    files_section(f, pg->out);
    page_end(f, pg->backend, pg->device);
    return DL_OK;
}
