/* A very small test harness: named checks that record failures and keep
 * going, a summary line ctest shows, and exit 77 (ctest's "skipped") for
 * suites whose backend is not available here.
 *
 *   DL_CHECK(cond, fmt, ...)        fails the current test when cond is false
 *   DL_CHECK_NEAR(x, ref, tol, what) |x - ref| <= tol
 *   DL_RUN(test_fn)                  runs one test and counts it
 *   return dl_test_summary("suite");
 */
#ifndef DL_TEST_H
#define DL_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DL_SKIP 77

static int dl_t_failed_checks, dl_t_tests, dl_t_failed_tests;
static const char *dl_t_current;

#define DL_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            dl_t_failed_checks++;                                                                  \
            fprintf(stderr, "FAIL %s (%s:%d): ", dl_t_current, __FILE__, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define DL_CHECK_NEAR(x, ref, tol, what)                                                           \
    do {                                                                                           \
        double dl_x_ = (double)(x), dl_r_ = (double)(ref), dl_tol_ = (double)(tol);                \
        DL_CHECK(fabs(dl_x_ - dl_r_) <= dl_tol_ && !isnan(dl_x_),                                  \
                 "%s = %.9g, expected %.9g (tolerance %.3g)", what, dl_x_, dl_r_, dl_tol_);        \
    } while (0)

#define DL_RUN(fn)                                                                                 \
    do {                                                                                           \
        int dl_before_ = dl_t_failed_checks;                                                       \
        dl_t_current = #fn;                                                                        \
        fn();                                                                                      \
        dl_t_tests++;                                                                              \
        if (dl_t_failed_checks != dl_before_) dl_t_failed_tests++;                                 \
        fprintf(stderr, "%s %s\n", dl_t_failed_checks == dl_before_ ? "ok  " : "FAIL", #fn);       \
    } while (0)

static inline int dl_test_summary(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, dl_t_tests - dl_t_failed_tests, dl_t_failed_tests);
    return dl_t_failed_tests ? 1 : 0;
}

/* Relative error ||x - ref|| / ||ref|| in double (absolute when ref is 0). */
static inline double dl_rel_err(const float *x, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
        if (isnan(x[i])) return INFINITY;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

#endif
