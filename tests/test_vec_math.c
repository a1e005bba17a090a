/* The fused CPU path's vector math (host/backends/vec_math.h) against the C
 * library and elem_math.h: dl_vexpf and dl_vlogf within their documented
 * ulp bounds of expf and logf over every exponent (a sample of the floats;
 * all of them with --exhaustive), their special values, the same bits on
 * the AVX2 target as on the baseline one, and dl_softmax_xent_lanes against
 * dl_softmax_xent_row on rows with ties, huge and infinite logits, NaN and
 * bad labels.
 *
 * usage: test_vec_math [--exhaustive]
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dl_test.h"
#include "vec_math.h"

#define L DL_VEC_LANES

/* The bounds vec_math.h documents, in ulp of the C library's result (of
 * the subnormal spacing where that result is subnormal). */
#define EXP_ULP_BOUND 1
#define LOG_ULP_BOUND 1

static bool exhaustive;

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Floats in order on a line of integers (-0 and +0 both at 0), so that the
 * distance between two finite floats is their distance in ulp. */
static int64_t ordinal(float x)
{
    uint32_t u = bits_of(x);
    return u & 0x80000000u ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

/* ulp between a and the reference r: 0 when both are the same NaN-ness,
 * infinity or value; INT64_MAX when one is NaN and the other is not or
 * one is infinite and the other not the same infinity. */
static int64_t ulp_diff(float a, float r)
{
    if (isnan(a) || isnan(r)) return isnan(a) && isnan(r) ? 0 : INT64_MAX;
    if (isinf(a) || isinf(r)) return a == r ? 0 : INT64_MAX;
    int64_t d = ordinal(a) - ordinal(r);
    return d < 0 ? -d : d;
}

typedef void (*vec_fn)(float *out, const float *in);

static void vexp_base(float *out, const float *in)
{
    dl_vf x, y;
    memcpy(&x, in, sizeof x);
    dl_vexpf(&y, &x);
    memcpy(out, &y, sizeof y);
}

static void vlog_base(float *out, const float *in)
{
    dl_vf x, y;
    memcpy(&x, in, sizeof x);
    dl_vlogf(&y, &x);
    memcpy(out, &y, sizeof y);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_AVX2_CLONE 1
/* The same code compiled for AVX2, as the fused kernels' AVX2 clones are. */
__attribute__((target("avx2"))) static void vexp_avx2(float *out, const float *in)
{
    dl_vf x, y;
    memcpy(&x, in, sizeof x);
    dl_vexpf(&y, &x);
    memcpy(out, &y, sizeof y);
}

__attribute__((target("avx2"))) static void vlog_avx2(float *out, const float *in)
{
    dl_vf x, y;
    memcpy(&x, in, sizeof x);
    dl_vlogf(&y, &x);
    memcpy(out, &y, sizeof y);
}
#endif

/* Runs f over the bit patterns [first, last] with stride `step` (always
 * including `last`), L at a time, against the C library's ref; returns the
 * largest ulp difference and where it is. */
typedef struct {
    int64_t worst;
    float at, got, want;
    long count;
} sweep_result;

static void sweep(vec_fn f, float (*ref)(float), uint32_t first, uint32_t last, uint32_t step,
                  sweep_result *res)
{
    float in[L], out[L];
    int n = 0;
    for (uint64_t u = first;; u += step) {
        if (u > last) u = last;
        in[n++] = float_of((uint32_t)u);
        if (n == L || u == last) {
            for (int l = n; l < L; l++) in[l] = in[0];
            f(out, in);
            for (int l = 0; l < n; l++) {
                float r = ref(in[l]);
                int64_t d = ulp_diff(out[l], r);
                if (d > res->worst) *res = (sweep_result){d, in[l], out[l], r, res->count};
            }
            res->count += n;
            n = 0;
        }
        if (u == last) break;
    }
}

static void check_sweep(const char *what, vec_fn f, float (*ref)(float), uint32_t first,
                        uint32_t last, int64_t bound)
{
    sweep_result r = {0};
    sweep(f, ref, first, last, exhaustive ? 1 : 101, &r);
    printf("%s: %ld arguments, at most %" PRId64 " ulp (at %a: %a, libm %a)\n", what, r.count,
           r.worst, r.at, r.got, r.want);
    DL_CHECK(r.worst <= bound, "%s: %" PRId64 " ulp at %a: %a, libm %a (bound %" PRId64 ")", what,
             r.worst, r.at, r.got, r.want, bound);
}

/* Every exponent from -110 to 95: the result's whole range, from 0 through
 * subnormals to overflow, and the arguments that clamp. */
static void test_exp_accuracy(void)
{
    check_sweep("exp, x in [-110, 0]", vexp_base, expf, bits_of(0.0f) | 0x80000000u,
                bits_of(-110.0f), EXP_ULP_BOUND);
    check_sweep("exp, x in [0, 95]", vexp_base, expf, 0, bits_of(95.0f), EXP_ULP_BOUND);
}

/* Every positive float, subnormals included. */
static void test_log_accuracy(void)
{
    check_sweep("log, x in (0, FLT_MAX]", vlog_base, logf, 1, bits_of(FLT_MAX), LOG_ULP_BOUND);
}

static float lane0(vec_fn f, float x)
{
    float in[L], out[L];
    for (int l = 0; l < L; l++) in[l] = x;
    f(out, in);
    return out[0];
}

static bool same_bits(float a, float b) { return bits_of(a) == bits_of(b); }

static void test_special_values(void)
{
    const struct {
        float x, exp_want;
    } e[] = {{-INFINITY, 0.0f},    {-1e30f, 0.0f},         {-200.0f, 0.0f},
             {-104.5f, 0.0f},      {0.0f, 1.0f},           {-0.0f, 1.0f},
             {89.0f, INFINITY},    {1e30f, INFINITY},      {INFINITY, INFINITY},
             {88.0f, expf(88.0f)}, {-87.0f, expf(-87.0f)}, {-100.0f, expf(-100.0f)}};
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        float got = lane0(vexp_base, e[i].x);
        bool ok = e[i].exp_want == 0.0f || isinf(e[i].exp_want) || e[i].exp_want == 1.0f
                      ? same_bits(got, e[i].exp_want)
                      : ulp_diff(got, e[i].exp_want) <= EXP_ULP_BOUND;
        DL_CHECK(ok, "exp(%a) = %a, expected %a", e[i].x, got, e[i].exp_want);
    }
    DL_CHECK(isnan(lane0(vexp_base, NAN)), "exp(NaN) = %a", lane0(vexp_base, NAN));
    DL_CHECK(isnan(lane0(vexp_base, -NAN)), "exp(-NaN) = %a", lane0(vexp_base, -NAN));
    /* a subnormal result, about twice the smallest positive float */
    float tiny = lane0(vexp_base, -103.2789f);
    DL_CHECK(tiny > 0.0f && tiny < FLT_MIN && ulp_diff(tiny, expf(-103.2789f)) <= EXP_ULP_BOUND,
             "exp(-103.2789) = %a, libm %a", tiny, expf(-103.2789f));

    const struct {
        float x, log_want;
    } g[] = {{1.0f, 0.0f},
             {INFINITY, INFINITY},
             {0.0f, -INFINITY},
             {-0.0f, -INFINITY},
             {FLT_MAX, logf(FLT_MAX)},
             {0x1p-149f, logf(0x1p-149f)},
             {FLT_MIN, logf(FLT_MIN)},
             {2.0f, logf(2.0f)},
             {3.0f, logf(3.0f)}};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        float got = lane0(vlog_base, g[i].x);
        bool ok = g[i].log_want == 0.0f || isinf(g[i].log_want)
                      ? same_bits(got, g[i].log_want)
                      : ulp_diff(got, g[i].log_want) <= LOG_ULP_BOUND;
        DL_CHECK(ok, "log(%a) = %a, expected %a", g[i].x, got, g[i].log_want);
    }
    const float nan_in[] = {-1.0f, -FLT_MIN, -0x1p-149f, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof nan_in / sizeof nan_in[0]; i++)
        DL_CHECK(isnan(lane0(vlog_base, nan_in[i])), "log(%a) = %a, expected NaN", nan_in[i],
                 lane0(vlog_base, nan_in[i]));
    /* lanes are independent: one lane's special value does not touch another */
    float in[L] = {NAN, 1.0f, -1.0f, 2.0f, INFINITY, 0.0f, 0x1p-149f, 10.0f}, out[L];
    vlog_base(out, in);
    for (int l = 0; l < L; l++)
        DL_CHECK(ulp_diff(out[l], logf(in[l])) <= LOG_ULP_BOUND, "mixed lanes: log(%a) = %a", in[l],
                 out[l]);
    float ein[L] = {NAN, 1.0f, -1.0f, -200.0f, INFINITY, 0.0f, -INFINITY, 100.0f};
    vexp_base(out, ein);
    for (int l = 0; l < L; l++)
        DL_CHECK(ulp_diff(out[l], expf(ein[l])) <= EXP_ULP_BOUND, "mixed lanes: exp(%a) = %a",
                 ein[l], out[l]);
}

/* The AVX2 code gives the baseline code's bits (no contraction, no
 * target-dependent step). */
static void test_targets_agree(void)
{
#ifdef HAVE_AVX2_CLONE
    if (!__builtin_cpu_supports("avx2")) {
        printf("no AVX2 here: the targets' agreement is not checked\n");
        return;
    }
    float in[L], a[L], b[L];
    long differ = 0;
    for (uint64_t u = 0; u < 0x100000000u; u += 4099 * L) {
        for (int l = 0; l < L; l++) in[l] = float_of((uint32_t)(u + (uint64_t)l * 4099));
        vexp_base(a, in), vexp_avx2(b, in);
        differ += memcmp(a, b, sizeof a) != 0;
        vlog_base(a, in), vlog_avx2(b, in);
        differ += memcmp(a, b, sizeof a) != 0;
    }
    DL_CHECK(differ == 0, "%ld vectors differ between the baseline and the AVX2 code", differ);
#else
    printf("not x86-64 GCC: the targets' agreement is not checked\n");
#endif
}

/* --- softmax cross-entropy ------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t next_u32(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Uniform in (-1, 1). */
static float uniform(void) { return (float)((double)next_u32() / 2147483648.0 - 1.0); }

#define MAXC 8

/* Fills row l of a block (c logits, its label) by kind. */
static void make_row(int kind, int c, float *z, int32_t *label)
{
    static const float scales[] = {1.0f, 10.0f, 100.0f, 1e4f, 1e30f};
    float s = scales[next_u32() % 5];
    for (int j = 0; j < c; j++) z[j] = uniform() * s;
    *label = (int32_t)(next_u32() % (uint32_t)c);
    switch (kind) {
    case 0: break; /* random */
    case 1:        /* a tie for the maximum: the first index wins */
        z[c - 1] = z[0] = fabsf(z[0]) + 1.0f;
        break;
    case 2: /* all equal */
        for (int j = 1; j < c; j++) z[j] = z[0];
        break;
    case 3: /* logits near the float range's ends: z - max overflows to -Inf */
        for (int j = 0; j < c; j++) z[j] = (next_u32() & 1 ? 3e38f : -3e38f) * (1.0f - 0.1f * j);
        break;
    case 4: /* bad labels */
        *label = (int32_t[]){-1, c, INT32_MIN, INT32_MAX, c + 5}[next_u32() % 5];
        break;
    case 5: /* an infinite logit */
        z[next_u32() % (uint32_t)c] = next_u32() & 1 ? INFINITY : -INFINITY;
        break;
    case 6: /* a NaN logit */ z[next_u32() % (uint32_t)c] = NAN; break;
    case 7: /* the label far below the maximum: a large loss */
        z[*label] = -fabsf(z[*label]) - 50.0f * s;
        break;
    }
}

static bool close_or_both_nan(float a, float r, float tol)
{
    if (isnan(a) || isnan(r)) return isnan(a) && isnan(r);
    if (isinf(a) || isinf(r)) return a == r;
    return fabsf(a - r) <= tol;
}

static void test_softmax_lanes(void)
{
    long rows = 0, bad = 0;
    for (int c = 2; c <= MAXC; c++)
        for (int rep = 0; rep < 400; rep++)
            for (int g = 0; g < 2; g++) {
                float zs[L][MAXC];
                int32_t lab[L];
                dl_vf z[MAXC], grad[MAXC], zcopy[MAXC], loss, loss2;
                dl_vi label, correct, correct2;
                for (int l = 0; l < L; l++) {
                    make_row(rep % 8 == 0 ? (int)(next_u32() % 8) : rep % 8, c, zs[l], &lab[l]);
                    for (int j = 0; j < c; j++) z[j][l] = zs[l][j];
                    label[l] = lab[l];
                }
                const float scale = g ? 0.01f : 1.0f;
                memcpy(zcopy, z, sizeof z);
                dl_softmax_xent_lanes(z, c, &label, grad, scale, &loss, &correct);
                /* without a gradient, and with the gradient written over z */
                dl_softmax_xent_lanes(z, c, &label, NULL, scale, &loss2, &correct2);
                dl_softmax_xent_lanes(zcopy, c, &label, zcopy, scale, &loss2, &correct2);
                for (int l = 0; l < L; l++, rows++) {
                    float gref[MAXC];
                    int ok;
                    float lref = dl_softmax_xent_row(zs[l], c, lab[l], gref, scale, &ok);
                    bool row_ok = (correct[l] != 0) == (ok != 0) && correct[l] == correct2[l] &&
                                  (correct[l] == 0 || correct[l] == -1) &&
                                  close_or_both_nan(loss[l], lref, 0x1p-21f * (1 + fabsf(lref))) &&
                                  same_bits(loss[l], loss2[l]);
                    for (int j = 0; j < c; j++)
                        row_ok = row_ok &&
                                 close_or_both_nan(grad[j][l], gref[j], 0x1p-21f * scale) &&
                                 same_bits(grad[j][l], zcopy[j][l]);
                    if (!row_ok && bad++ < 5) {
                        fprintf(stderr, "c=%d label %d:", c, lab[l]);
                        for (int j = 0; j < c; j++)
                            fprintf(stderr, " %a (grad %a, ref %a)", zs[l][j], grad[j][l], gref[j]);
                        fprintf(stderr, "; loss %a, ref %a; correct %d, ref %d\n", loss[l], lref,
                                correct[l], ok);
                    }
                }
            }
    DL_CHECK(bad == 0, "%ld of %ld rows differ from dl_softmax_xent_row", bad, rows);
}

/* The tie rule and the bad label's NaNs, spelled out on one block. */
static void test_softmax_cases(void)
{
    dl_vf z[3] = {{1, 2, 5, 0, 0, 0, 7, 7}, {2, 2, 5, 0, 0, 0, 1, 7}, {2, 1, 5, 0, 0, 1e30f, 1, 7}};
    dl_vi label = {1, 0, 0, 2, -1, 2, 0, 0}, correct;
    dl_vf grad[3], loss;
    dl_softmax_xent_lanes(z, 3, &label, grad, 1.0f, &loss, &correct);
    /* lane 0: a tie between 1 and 2 goes to 1; lane 1: to 0; lane 2: all three
     * tie, 0 wins; lane 3: all zero, 0 wins, label 2 is wrong */
    const int want[L] = {1, 1, 1, 0, 0, 1, 1, 1};
    for (int l = 0; l < L; l++)
        DL_CHECK((correct[l] != 0) == want[l], "lane %d: correct %d, expected %d", l, correct[l],
                 want[l]);
    DL_CHECK(isnan(loss[4]) && isnan(grad[0][4]) && isnan(grad[1][4]) && isnan(grad[2][4]),
             "a label of -1: loss %a, gradient %a %a %a", loss[4], grad[0][4], grad[1][4],
             grad[2][4]);
    /* lane 3: three equal logits: loss log 3, gradient 1/3, 1/3, -2/3 */
    DL_CHECK_NEAR(loss[3], log(3.0), 2e-7, "loss of three equal logits");
    DL_CHECK_NEAR(grad[2][3], -2.0 / 3.0, 2e-7, "gradient at the label");
    /* lane 5: one huge logit at the label: loss 0, gradient 0 */
    DL_CHECK(loss[5] == 0.0f && grad[2][5] == 0.0f && grad[0][5] == 0.0f,
             "a logit of 1e30 at the label: loss %a, gradient %a", loss[5], grad[2][5]);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--exhaustive")) {
            exhaustive = true;
        } else {
            fprintf(stderr, "usage: %s [--exhaustive]\n", argv[0]);
            return 2;
        }
    }
    DL_RUN(test_exp_accuracy);
    DL_RUN(test_log_accuracy);
    DL_RUN(test_special_values);
    DL_RUN(test_targets_agree);
    DL_RUN(test_softmax_lanes);
    DL_RUN(test_softmax_cases);
    return dl_test_summary("test_vec_math");
}
