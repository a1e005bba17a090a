/* Private to host/app: the HTML page machinery (report_html_page.c) that the
 * two tasks' pages (report_html.c) are written with. */
#ifndef DLAB_HOST_APP_REPORT_HTML_PAGE_H
#define DLAB_HOST_APP_REPORT_HTML_PAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dlab/report.h"
#include "dlab/report_html.h"
#include "dlab/summary.h"

/* printf, then escaped. */
void dl_html_text(FILE *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A number for the page, or "not defined" when it is not finite. */
const char *dl_html_num(char *buf, size_t len, const char *fmt, double v);

/* An error or a singular value in the data's units: `fixed` where that reads
 * well, else scientific. */
const char *dl_html_data_num(char *buf, size_t len, const char *fixed, double v);

/* The page's head, style and title heading; and its footer and end. */
void dl_html_page_begin(FILE *f, const char *title);
void dl_html_page_end(FILE *f, const char *backend, const char *device);

/* A section heading with its id. */
void dl_html_h2(FILE *f, const char *id, const char *title);

/* One row of a two-column table: an escaped key and an escaped value. */
void dl_html_row(FILE *f, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The last rows of a page's settings table, the table's end and the
 * results' heading. */
void dl_html_settings_end(FILE *f, int models, uint64_t seed, const char *backend,
                          const char *device);

/* Figure `number` (base.svg under --out) with its caption, or a line saying
 * why it is not there. */
void dl_html_figure(FILE *f, const dl_out *o, const char *base, int number, const char *caption);

/* A table of distributions, one row per figure: dl_html_stats_begin,
 * dl_html_stats_row..., then "</tbody></table>". */
void dl_html_stats_begin(FILE *f);
void dl_html_stats_row(FILE *f, const char *what, const dl_stats *s, const char *fmt);

/* The Files section: what each file under --out holds, linked. */
void dl_html_files_section(FILE *f, const dl_out *o);

#endif
