/* Order statistics and the text histogram used for --seeds N reports. */
#include <string.h>

#include "dl_test.h"
#include "dlab/summary.h"

static void test_stats(void)
{
    float v[11] = {10, 0, 9, 1, 8, 2, 7, 3, 6, 4, 5}; /* 0..10 shuffled */
    dl_stats s;
    dl_stats_compute(v, 11, 1, &s);
    DL_CHECK(s.n == 11 && s.non_finite == 0, "n %d", s.n);
    DL_CHECK_NEAR(s.min, 0, 0, "min");
    DL_CHECK_NEAR(s.max, 10, 0, "max");
    DL_CHECK_NEAR(s.median, 5, 1e-12, "median");
    DL_CHECK_NEAR(s.p10, 1, 1e-12, "p10");
    DL_CHECK_NEAR(s.p90, 9, 1e-12, "p90");
    DL_CHECK_NEAR(s.mean, 5, 1e-12, "mean");
    float w[4] = {1, NAN, 3, INFINITY}; /* diverged models are counted apart */
    dl_stats_compute(w, 4, 1, &s);
    DL_CHECK(s.n == 2 && s.non_finite == 2, "n %d non-finite %d", s.n, s.non_finite);
    DL_CHECK_NEAR(s.median, 2, 1e-12, "median of 1 and 3");
    float strided[6] = {1, -1, 2, -1, 4, -1};
    dl_stats_compute(strided, 3, 2, &s);
    DL_CHECK_NEAR(s.max, 4, 0, "strided max");
    DL_CHECK_NEAR(s.p10, 1.2, 1e-6, "interpolated p10");
}

static void test_histogram(void)
{
    float v[7] = {0.05f, 0.15f, 0.15f, 0.95f, 1.5f, -3.0f, NAN};
    FILE *f = tmpfile();
    dl_print_histogram(f, v, 7, 1, 0.0, 1.0, 10, "%.1f");
    rewind(f);
    char line[256];
    int lines = 0, counts[10] = {0};
    while (fgets(line, sizeof line, f)) {
        char *bar = strrchr(line, '|');
        if (lines < 10 && bar) counts[lines] = atoi(bar + 1);
        lines++;
    }
    fclose(f);
    DL_CHECK(lines == 10, "%d lines", lines); /* both end bins hold values: nothing trimmed */
    DL_CHECK(counts[0] == 2 && counts[1] == 2 && counts[9] == 2, "bins %d %d %d (clamped ends)",
             counts[0], counts[1], counts[9]);
}

static void test_histogram_trims_empty_ends(void)
{
    float v[3] = {0.42f, 0.47f, 0.61f};
    FILE *f = tmpfile();
    dl_print_histogram(f, v, 3, 1, 0.0, 1.0, 20, "%.2f");
    rewind(f);
    char line[256], first[256] = "";
    int lines = 0;
    while (fgets(line, sizeof line, f))
        if (lines++ == 0) snprintf(first, sizeof first, "%s", line);
    fclose(f);
    DL_CHECK(lines == 5, "%d lines, expected bins 0.40 to 0.65", lines);
    DL_CHECK(strstr(first, "0.40 - 0.45") != NULL, "first line: %s", first);
}

/* Decade bins span the data's own decades (no clamping at 1e-7 or 1e2),
 * values <= 0 get their own row, and doubles beyond float32 keep their
 * values in the statistics. */
static void test_decade_histogram(void)
{
    const double v[7] = {-3.6e-6, 0.0, 6.6e-58, 6.7e-58, 2.0e-55, 9.6e54, NAN};
    int lo, hi;
    DL_CHECK(dl_decade_span(v, 7, &lo, &hi) == 4 && lo == -58 && hi == 55, "span %d..%d", lo, hi);
    FILE *f = tmpfile();
    dl_print_decade_histogram(f, v, 7, "at or below the optimum (rounding)");
    rewind(f);
    char line[256], first[256] = "", second[256] = "", last[256] = "";
    int lines = 0, total = 0;
    while (fgets(line, sizeof line, f)) {
        if (lines == 0) snprintf(first, sizeof first, "%s", line);
        if (lines == 1) snprintf(second, sizeof second, "%s", line);
        snprintf(last, sizeof last, "%s", line);
        char *bar = strrchr(line, '|');
        if (bar) total += atoi(bar + 1);
        lines++;
    }
    fclose(f);
    /* 113 decades in at most 12 rows of 10: -58..-48, ..., 52..62 */
    DL_CHECK(lines == 13 && total == 6, "%d lines, %d counted", lines, total);
    DL_CHECK(strstr(first, "at or below the optimum (rounding)") && strstr(first, "| 2"),
             "first line: %s", first);
    DL_CHECK(strstr(second, "1e-58 - 1e-48") && strstr(second, "| 3"), "second line: %s", second);
    DL_CHECK(strstr(last, "1e+52 - 1e+62") && strstr(last, "| 1"), "last line: %s", last);

    const double one[1] = {4.0e-7};
    f = tmpfile();
    dl_print_decade_histogram(f, one, 1, "below");
    rewind(f);
    lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    DL_CHECK(lines == 1 && strstr(line, "1e-7 - 1e-6"), "%d lines: %s", lines, line);

    dl_stats st;
    const double big[3] = {9.6e54, 9.7e54, 9.8e54};
    dl_stats_compute_d(big, 3, 1, &st);
    DL_CHECK(st.n == 3 && st.non_finite == 0 && st.median == 9.7e54, "n %d, median %g", st.n,
             st.median);
}

static void test_json(void)
{
    FILE *f = tmpfile();
    dl_json j;
    dl_json_init(&j, f, false);
    float v[3] = {0.5f, 1.0f, 0.75f};
    dl_stats s;
    dl_stats_compute(v, 3, 1, &s);
    dl_json_obj_begin(&j, NULL);
    dl_json_stats(&j, "val_accuracy", &s);
    dl_json_obj_end(&j);
    rewind(f);
    char buf[512] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    DL_CHECK(got > 0 && strstr(buf, "{\"val_accuracy\":{\"n\":3,") == buf, "json: %s", buf);
    DL_CHECK(strstr(buf, "\"median\":0.75") != NULL, "json: %s", buf);
}

int main(void)
{
    DL_RUN(test_stats);
    DL_RUN(test_histogram);
    DL_RUN(test_histogram_trims_empty_ends);
    DL_RUN(test_decade_histogram);
    DL_RUN(test_json);
    return dl_test_summary("test_summary");
}
