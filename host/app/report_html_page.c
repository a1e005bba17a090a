/* The HTML page machinery behind report.html: escaping text from data and
 * options, numbers as the page shows them, the page's head, style and footer,
 * headings and two-column tables, figures embedded from the SVG files under
 * --out (ids prefixed per figure, or linked when too large), tables of
 * distributions over seeds, and the section listing the files written. The
 * two tasks' pages themselves are in report_html.c; what they share of this
 * is declared in report_html_page.h.
 */
#include "report_html_page.h"

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
void dl_html_text(FILE *f, const char *fmt, ...)
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
const char *dl_html_num(char *buf, size_t len, const char *fmt, double v)
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
const char *dl_html_data_num(char *buf, size_t len, const char *fixed, double v)
{
    double a = fabs(v);
    return dl_html_num(buf, len, a == 0.0 || (a >= 1e-3 && a < 1e9) ? fixed : "%.7e", v);
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

void dl_html_page_begin(FILE *f, const char *title)
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

void dl_html_page_end(FILE *f, const char *backend, const char *device)
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

void dl_html_h2(FILE *f, const char *id, const char *title)
{
    fprintf(f, "<h2 id=\"%s\">", id);
    dl_html_escape(f, title);
    fputs("</h2>\n", f);
}

/* One row of a two-column table: an escaped key and an escaped value. */
void dl_html_row(FILE *f, const char *key, const char *fmt, ...)
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
void dl_html_settings_end(FILE *f, int models, uint64_t seed, const char *backend,
                          const char *device)
{
    if (models > 1)
        dl_html_row(f, "models", "%d (seeds %llu to %llu); the figures show the first", models,
                    (unsigned long long)seed, (unsigned long long)(seed + models - 1));
    dl_html_row(f, "backend", "%s (%s)", backend, device);
    fputs("</tbody>\n</table>\n", f);
    dl_html_h2(f, "results", "Results");
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
void dl_html_figure(FILE *f, const dl_out *o, const char *base, int number, const char *caption)
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
void dl_html_stats_begin(FILE *f)
{
    fputs("<table>\n<thead><tr><th scope=\"col\"></th><th scope=\"col\">models</th>"
          "<th scope=\"col\">min</th><th scope=\"col\">10th percentile</th>"
          "<th scope=\"col\">median</th><th scope=\"col\">90th percentile</th>"
          "<th scope=\"col\">max</th><th scope=\"col\">not finite</th></tr></thead>\n<tbody>\n",
          f);
}

void dl_html_stats_row(FILE *f, const char *what, const dl_stats *s, const char *fmt)
{
    char b[64];
    fputs("<tr><th scope=\"row\">", f);
    dl_html_escape(f, what);
    fprintf(f, "</th><td class=\"n\">%d</td>", s->n);
    const double v[5] = {s->min, s->p10, s->median, s->p90, s->max};
    for (int i = 0; i < 5; i++) {
        fputs("<td class=\"n\">", f);
        dl_html_escape(f, dl_html_num(b, sizeof b, fmt, v[i]));
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

void dl_html_files_section(FILE *f, const dl_out *o)
{
    dl_html_h2(f, "files", "Files");
    fputs("<p>Written beside this page in <code>", f);
    dl_html_escape(f, o->dir);
    fputs("</code>:</p>\n<table>\n<tbody>\n", f);
    for (int i = 0; i < o->n_files; i++) file_row(f, o->files[i], true, file_about(o->files[i]));
    file_row(f, "report.html", false, "this page");
    file_row(f, "summary.json", true, "every number of the run, as --json prints it");
    fputs("</tbody>\n</table>\n", f);
}
