/* Numbers in delimited text: a field read as Python's float() reads it, the
 * reasons a field is not a number (for the message), whether a field looks
 * like a number or a whole number (for the layout decisions), and a double
 * rounded to float32, which the .npy reader shares. */
#include "dlab/data.h"
#include "loader.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DL_MAX_NUMBER 1024 /* longest text read as a number */

static bool span_eq_ci(span s, const char *w)
{
    size_t n = strlen(w);
    if (s.n != n) return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s.p[i]) != w[i]) return false;
    return true;
}

/* --- numbers ------------------------------------------------------------- */

dl_f32_result dl_f32_from_double(double v, float *out)
{
    if (isnan(v) || isinf(v)) return DL_F32_NONFINITE;
    double a = fabs(v);
    /* Halfway between FLT_MAX and 2^128 rounds (to even) up to infinity. */
    if (a >= 0x1.ffffffp127) return DL_F32_TOO_LARGE;
    /* Half the smallest subnormal, 2^-149, rounds (to even) down to zero. */
    if (a != 0.0 && a <= 0x1p-150) return DL_F32_TOO_SMALL;
    *out = (float)v;
    return DL_F32_OK;
}

/* Why a word is not a number, for the message. */
static num_result classify_word(span s)
{
    span u = s;
    if (u.n && (u.p[0] == '+' || u.p[0] == '-')) u.p++, u.n--;
    if (u.n >= 2 && u.p[0] == '0' && (u.p[1] == 'x' || u.p[1] == 'X')) return NUM_HEX;
    if (span_eq_ci(u, "inf") || span_eq_ci(u, "infinity") || span_eq_ci(u, "nan"))
        return NUM_NONFINITE;
    static const char *const missing[] = {"na", "n/a", "nan", "null", "none", "?", "-", "#n/a"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        if (span_eq_ci(s, missing[i])) return NUM_MISSING;
    size_t i = 0, comma = 0, digits = 0;
    for (; i < s.n; i++) {
        if (isdigit((unsigned char)s.p[i]))
            digits++;
        else if (s.p[i] == ',')
            comma++;
        else if (!(i == 0 && (s.p[i] == '-' || s.p[i] == '+')))
            break;
    }
    if (i == s.n && comma == 1 && digits >= 2 && s.p[s.n - 1] != ',') return NUM_COMMA;
    return NUM_BAD;
}

/* Reads a decimal number as Python's float() does, without the words
 * (inf, nan) and underscores it also takes, then rounds it to float32. */
num_result dl_parse_number(span s, float *out)
{
    s = trim(s);
    if (s.n == 0) return NUM_EMPTY;
    size_t i = 0;
    bool digits = false, nonzero = false;
    if (s.p[i] == '+' || s.p[i] == '-') i++;
    for (; i < s.n && isdigit((unsigned char)s.p[i]); i++) digits = true, nonzero |= s.p[i] != '0';
    if (i < s.n && s.p[i] == '.')
        for (i++; i < s.n && isdigit((unsigned char)s.p[i]); i++)
            digits = true, nonzero |= s.p[i] != '0';
    if (digits && i < s.n && (s.p[i] == 'e' || s.p[i] == 'E')) {
        size_t j = i + 1;
        if (j < s.n && (s.p[j] == '+' || s.p[j] == '-')) j++;
        if (j < s.n && isdigit((unsigned char)s.p[j])) {
            while (j < s.n && isdigit((unsigned char)s.p[j])) j++;
            i = j;
        }
    }
    if (!digits || i != s.n) return classify_word(s);
    if (s.n > DL_MAX_NUMBER) return NUM_BAD;
    char buf[DL_MAX_NUMBER + 1];
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    double v = strtod(buf, NULL);
    if (isinf(v)) return NUM_RANGE; /* finite text beyond double's range */
    if (v == 0.0 && nonzero) return NUM_TINY;
    switch (dl_f32_from_double(v, out)) {
    case DL_F32_OK: return NUM_OK;
    case DL_F32_TOO_SMALL: return NUM_TINY;
    default: return NUM_RANGE;
    }
}

/* Would a person read this field as a number (or a missing one)? Used to
 * tell a header row from data. */
bool dl_number_like(span s)
{
    float f;
    num_result r = dl_parse_number(s, &f);
    return r != NUM_BAD;
}

/* A whole number written without a point or exponent, within int range. */
bool dl_integer_text(span s, long *v)
{
    s = trim(s);
    size_t i = s.n && (s.p[0] == '-' || s.p[0] == '+') ? 1 : 0;
    if (i == s.n || s.n - i > 9) return false;
    long x = 0;
    for (; i < s.n; i++) {
        if (!isdigit((unsigned char)s.p[i])) return false;
        x = x * 10 + (s.p[i] - '0');
    }
    *v = s.p[0] == '-' ? -x : x;
    return true;
}

const char *dl_num_message(num_result nr)
{
    switch (nr) {
    case NUM_EMPTY: return "empty field";
    case NUM_HEX: return "not a number (hexadecimal is not read, as by numpy.loadtxt)";
    case NUM_NONFINITE: return "NaN and Inf are not allowed";
    case NUM_MISSING: return "not a number (a missing value? every value must be given)";
    case NUM_COMMA: return "not a number (a decimal comma? numbers need a decimal point)";
    case NUM_RANGE: return "number out of float range (float32 holds magnitudes up to 3.4e38)";
    case NUM_TINY:
        return "number out of float range (it is nonzero but rounds to 0 in float32, "
               "whose smallest magnitude is 1.4e-45)";
    default: return "not a number";
    }
}
