#include "dlab/factors_out.h"

#include "dlab/npy_write.h"

#include <math.h>
#include <stdlib.h>

static dl_status write_pair(dl_out *o, const char *base, const char *prefix, const float *v,
                            int rows, int cols)
{
    char name[64];
    dl_npy_array a = {.data = v, .ndim = 2, .shape = {(size_t)rows, (size_t)cols}};
    snprintf(name, sizeof name, "%s.npy", base);
    DL_TRY(dl_out_write(o, name, dl_npy_write, &a));
    dl_csv_matrix m = {.array = a, .prefix = prefix};
    snprintf(name, sizeof name, "%s.csv", base);
    return dl_out_write(o, name, dl_csv_write_matrix, &m);
}

static bool all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return false;
    return true;
}

dl_status dl_out_factors(dl_out *o, const dl_factorise_result *r, const float *column_means,
                         char *note, size_t note_len)
{
    const int m = r->m, n = r->n, k = r->rank;
    note[0] = '\0';
    if (!all_finite(r->u_gd, (size_t)m * k) || !all_finite(r->v_gd, (size_t)n * k)) {
        snprintf(note, note_len, "not written: U or V holds NaN or Inf (training diverged)");
        return DL_OK;
    }
    /* Finite factors whose product overflows would not approximate A. */
    if (!isfinite(r->sse_gd[0])) {
        snprintf(note, note_len, "not written: their error is NaN or Inf (training diverged)");
        return DL_OK;
    }
    DL_TRY(write_pair(o, "U", "u", r->u_gd, m, k));
    DL_TRY(write_pair(o, "V", "v", r->v_gd, n, k));
    float *zeros = NULL;
    if (!column_means) {
        zeros = calloc((size_t)n, sizeof(float));
        if (!zeros) return DL_FAIL(DL_E_MEMORY, "out of host memory for %d column means", n);
    }
    dl_npy_array mu = {
        .data = column_means ? column_means : zeros, .ndim = 1, .shape = {(size_t)n}};
    dl_status st = dl_out_write(o, "column_means.npy", dl_npy_write, &mu);
    free(zeros);
    DL_TRY(st);
    if (!r->have_svd) return DL_OK;
    dl_npy_array su = {
        .data = r->svd_u, .ndim = 2, .shape = {(size_t)m, (size_t)k}, .ld = (size_t)r->n_sv};
    DL_TRY(dl_out_write(o, "svd_U.npy", dl_npy_write, &su));
    /* The singular values are in the data's units, in double; as float32 they
     * are exact (each is a float32 singular value times a power of two). */
    float *s = malloc(sizeof(float) * (size_t)r->n_sv);
    if (!s) return DL_FAIL(DL_E_MEMORY, "out of host memory for %d singular values", r->n_sv);
    for (int i = 0; i < r->n_sv; i++) s[i] = (float)r->singular_values[i];
    dl_npy_array ss = {.data = s, .ndim = 1, .shape = {(size_t)r->n_sv}};
    st = dl_out_write(o, "svd_S.npy", dl_npy_write, &ss);
    free(s);
    DL_TRY(st);
    dl_npy_array sv = {.data = r->svd_v, .ndim = 2, .shape = {(size_t)n, (size_t)k}};
    return dl_out_write(o, "svd_V.npy", dl_npy_write, &sv);
}
