/* Vector math for the CPU backend's fused ops (backend_cpu_fused.c): exp, log
 * and the softmax cross-entropy of elem_math.h, on DL_VEC_LANES floats at
 * once (GNU C vector extensions; x86-64 compiles a vector to one AVX2
 * register, or to SSE pairs on the baseline target).
 *
 * Everything here is plain IEEE single-precision arithmetic, compares and
 * bit operations on the lanes: no library call, no table, no contraction
 * (ISO C17), so a lane's result depends on its input alone, and every
 * target (baseline x86-64, AVX2, another architecture) gives the same bits.
 * They are not glibc's expf/logf, whose bits they do not match: each is
 * within a few units in the last place (ulp) of them, the bounds below as
 * measured by tests/test_vec_math.c.
 *
 * Functions take and return vectors through pointers: a vector passed by
 * value changes the calling convention between x86-64 targets. They are
 * always inlined, into code compiled for the caller's target.
 */
#ifndef DLAB_VEC_MATH_H
#define DLAB_VEC_MATH_H

#include <math.h>
#include <stdint.h>

#include "elem_math.h"

/* Lanes of a vector: rows of a block in backend_cpu_fused.c. */
#define DL_VEC_LANES 8
typedef float dl_vf __attribute__((vector_size(DL_VEC_LANES * sizeof(float))));
typedef int32_t dl_vi __attribute__((vector_size(DL_VEC_LANES * sizeof(int32_t))));
typedef uint32_t dl_vu __attribute__((vector_size(DL_VEC_LANES * sizeof(uint32_t))));

#define DL_VEC_INLINE static inline __attribute__((always_inline))

/* Lane by lane, mask ? a : b, where each lane of mask is all ones or all
 * zeros (the result of a vector comparison). C has no vector ?:; macros,
 * as a function returning a vector by value would change the ABI. The
 * mask is evaluated twice. */
#define DL_VSEL(mask, a, b)  ((dl_vf)(((dl_vi)(a) & (mask)) | ((dl_vi)(b) & ~(mask))))
#define DL_VSELI(mask, a, b) (((a) & (mask)) | ((b) & ~(mask)))

/* e^x lane by lane.
 *
 * Method (Cody and Waite's argument reduction; see J.-M. Muller, "Elementary
 * Functions: Algorithms and Implementation", 3rd ed., Birkhäuser 2016,
 * ch. 11): x is clamped to [-104, 89] (e^-104 < 2^-150 rounds to 0, e^89
 * overflows: the results outside are still exactly 0 and +Inf), then
 * x = n ln 2 + r with n the integer nearest x log2(e) (found by adding
 * 1.5 * 2^23, which leaves n in the low bits of the float) and
 * r = (x - n L1) - n L2, |r| <= about ln(2)/2, where L1 = 0x1.62e4p-1
 * holds the first 16 bits of ln 2 (so n L1 is exact for |n| <= 256 and so
 * is x - n L1, the operands being within a factor of two) and L2 the next
 * 24 (0x1.7f7d1cp-20). e^r is the degree-7 Taylor polynomial
 * 1 + r + r^2 (1/2 + r/6 + ... + r^5/5040), whose truncation error
 * |r|^8 / 8! < 6e-9 relative (a tenth of an ulp) for |r| <= 0.35, evaluated
 * by Horner's rule. The scale 2^n is applied as 2^(n - n/2) 2^(n/2),
 * two normal powers of two, so a subnormal result is rounded once.
 *
 * Error against glibc's expf: at most 1 ulp where the result is normal,
 * and at most 1 ulp of the subnormal spacing where it is not (exhaustive
 * over all floats by the test's --exhaustive run). Special values: NaN ->
 * NaN, -Inf and x < -103.98 -> +0, +Inf and x > 88.73 -> +Inf, 0 -> 1
 * exactly. */
DL_VEC_INLINE void dl_vexpf(dl_vf *out, const dl_vf *in)
{
    const dl_vf x = *in;
    const dl_vf lo = (dl_vf){0} - 104.0f, hi = (dl_vf){0} + 89.0f;
    /* a NaN fails both comparisons and stays NaN (so does every step after) */
    dl_vf xc = DL_VSEL(x < lo, lo, x);
    xc = DL_VSEL(xc > hi, hi, xc);
    const float shift = 0x1.8p23f; /* 1.5 * 2^23: the sum's low bits are round(x log2 e) */
    const dl_vf t = xc * 0x1.715476p+0f + shift;
    const dl_vf nf = t - shift;
    /* n as an integer, from t's bits (unsigned: no overflow for a NaN's bits) */
    const dl_vu n = (dl_vu)t - (dl_vu)((dl_vi){0} + 0x4b400000);
    const dl_vf r = (xc - nf * 0x1.62e4p-1f) - nf * 0x1.7f7d1cp-20f;
    dl_vf p = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    const dl_vf y = 1.0f + (r + (r * r) * p);
    /* 2^n1 2^n2 with n1 = floor(n / 2), n2 = n - n1, both in [-75, 64] */
    const dl_vu n1 = (dl_vu)((dl_vi)n >> 1), n2 = n - n1;
    const dl_vu bias = (dl_vu)((dl_vi){0} + 127);
    *out = (y * (dl_vf)((n1 + bias) << 23)) * (dl_vf)((n2 + bias) << 23);
}

/* The natural logarithm lane by lane.
 *
 * Method (the argument reduction and series of fdlibm's log, P. T. P. Tang,
 * "Table-driven implementation of the logarithm function in IEEE
 * floating-point arithmetic", ACM TOMS 16(4), 1990, without the table):
 * x = 2^e m with m in [sqrt(2)/2, sqrt(2)) (subnormals scaled by 2^23
 * first), f = m - 1 (exact), s = f / (2 + f), and
 *   log(1 + f) = 2 atanh(s) = f - (f^2/2 - s (f^2/2 + R)),
 *   R = 2 (s^2/3 + s^4/5 + s^6/7 + s^8/9),
 * whose first omitted term, 2 s^11 / 11 with |s| <= 0.1716, is 7e-10 of
 * log(sqrt(2)); the leading term f is exact and the rest is a correction
 * of at most f^2/2, so the rounding of s and R matters little. Then
 * log x = e L1 + (log(1 + f) + e L2) with ln 2 split as in dl_vexpf.
 *
 * Error against glibc's logf: at most 1 ulp (exhaustive over all positive
 * floats by the test's --exhaustive run). Special values: +0 and -0 ->
 * -Inf, x < 0 -> NaN, +Inf -> +Inf, NaN -> NaN, 1 -> 0 exactly. */
DL_VEC_INLINE void dl_vlogf(dl_vf *out, const dl_vf *in)
{
    const dl_vf x = *in;
    const dl_vi sub = x < 0x1p-126f;
    const dl_vf xs = DL_VSEL(sub, x * 0x1p23f, x);
    const dl_vu b = (dl_vu)xs;
    /* m in [1, 2) from the fraction bits, then halved at sqrt(2) */
    dl_vf m = (dl_vf)((b & 0x007fffffu) | 0x3f800000u);
    dl_vi e = (dl_vi)(b >> 23) - 127 - (sub & 23);
    const dl_vi big = m > 0x1.6a09e6p+0f; /* sqrt(2), rounded down */
    m = DL_VSEL(big, m * 0.5f, m);
    e -= big; /* a true lane of a comparison is -1 */
    const dl_vf f = m - 1.0f;
    const dl_vf s = f / (2.0f + f);
    const dl_vf z = s * s;
    const dl_vf R = z * (2.0f / 3.0f + z * (2.0f / 5.0f + z * (2.0f / 7.0f + z * (2.0f / 9.0f))));
    const dl_vf hfsq = 0.5f * f * f;
    const dl_vf ef = __builtin_convertvector(e, dl_vf);
    const dl_vf y = ef * 0x1.62e4p-1f - ((hfsq - (s * (hfsq + R) + ef * 0x1.7f7d1cp-20f)) - f);
    /* +Inf and NaN pass through; 0 gives -Inf, a negative number NaN */
    const dl_vf inf = (dl_vf){0} + INFINITY;
    const dl_vf fin = DL_VSEL(x < inf, y, x);
    *out = DL_VSEL(x > 0.0f, fin, DL_VSEL(x == 0.0f, -inf, (dl_vf){0} + NAN));
}

/* dl_softmax_xent_row (elem_math.h) on DL_VEC_LANES rows at once: lane l
 * of z[j] is logit j (j < c) of row l, lane l of *label its class. Per
 * lane, the same operations in the same order as the scalar function (the
 * maximum and first arg-maximum, the exponentials of z - max summed from
 * j = 0, 1 / sum, (e_j / sum - onehot) * scale), with dl_vexpf and
 * dl_vlogf in place of expf and logf, so a lane's loss and gradient are
 * within a few ulp of the scalar function's and its argmax is the same.
 * Writes the losses to *loss, all ones to the lanes of *correct whose first
 * maximal logit is the label (else zero) and, when grad is not NULL, the
 * gradient rows to grad[0..c) (it may be z). A label outside [0, c) gives
 * a NaN loss, a NaN gradient and a zero in *correct; z is never read at a
 * bad index. */
DL_VEC_INLINE void dl_softmax_xent_lanes(const dl_vf *z, int c, const dl_vi *label, dl_vf *grad,
                                         float scale, dl_vf *loss, dl_vi *correct)
{
    const dl_vi lab = *label;
    dl_vf zmax = z[0];
    dl_vi arg = {0};
    for (int j = 1; j < c; j++) {
        const dl_vi gt = z[j] > zmax;
        zmax = DL_VSEL(gt, z[j], zmax);
        arg = DL_VSELI(gt, (dl_vi){0} + j, arg);
    }
    /* z at the label (zero where the label is bad), read before grad
     * overwrites z */
    dl_vf zl = {0};
    for (int j = 0; j < c; j++) zl = DL_VSEL(lab == j, z[j], zl);
    dl_vf sum = {0};
    if (grad) {
        for (int j = 0; j < c; j++) {
            dl_vf d = z[j] - zmax;
            dl_vexpf(&grad[j], &d);
            sum += grad[j];
        }
        const dl_vf inv = 1.0f / sum;
        for (int j = 0; j < c; j++) {
            const dl_vf one = DL_VSEL(lab == j, (dl_vf){0} + 1.0f, (dl_vf){0});
            grad[j] = (grad[j] * inv - one) * scale;
        }
    } else {
        for (int j = 0; j < c; j++) {
            dl_vf d = z[j] - zmax, e;
            dl_vexpf(&e, &d);
            sum += e;
        }
    }
    const dl_vi bad = (lab < 0) | (lab >= c);
    const dl_vf nan = (dl_vf){0} + NAN;
    if (grad)
        for (int j = 0; j < c; j++) grad[j] = DL_VSEL(bad, nan, grad[j]);
    dl_vf lg;
    dl_vlogf(&lg, &sum);
    *loss = DL_VSEL(bad, nan, lg - (zl - zmax));
    *correct = arg == lab; /* arg is in [0, c): never equal to a bad label */
}

#endif
