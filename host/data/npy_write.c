#include "dlab/npy_write.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The NPY format stores '<f4' little-endian; a big-endian host swaps bytes. */
static void put_f32_le(FILE *f, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    unsigned char b[4] = {(unsigned char)bits, (unsigned char)(bits >> 8),
                          (unsigned char)(bits >> 16), (unsigned char)(bits >> 24)};
    fwrite(b, 1, sizeof b, f);
}

static size_t row_stride(const dl_npy_array *a)
{
    return a->ndim == 2 && a->ld ? a->ld : a->ndim == 2 ? a->shape[1] : 1;
}

dl_status dl_npy_write(FILE *f, const void *arg)
{
    const dl_npy_array *a = arg;
    if (a->ndim != 1 && a->ndim != 2)
        return DL_FAIL(DL_E_USAGE, ".npy: rank %d arrays are not written (1 or 2)", a->ndim);
    char dict[160];
    int len;
    if (a->ndim == 1)
        len = snprintf(dict, sizeof dict,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", a->shape[0]);
    else
        len = snprintf(dict, sizeof dict,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                       a->shape[0], a->shape[1]);
    /* magic (6) + version (2) + header length (2) + dict + padding + '\n' */
    size_t total = 10 + (size_t)len + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t header = padded - 10;
    static const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    fwrite(magic, 1, sizeof magic, f);
    unsigned char hl[2] = {(unsigned char)(header & 0xff), (unsigned char)(header >> 8)};
    fwrite(hl, 1, 2, f);
    fwrite(dict, 1, (size_t)len, f);
    for (size_t i = (size_t)len; i + 1 < header; i++) fputc(' ', f);
    fputc('\n', f);
    size_t rows = a->shape[0], cols = a->ndim == 2 ? a->shape[1] : 1, ld = row_stride(a);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) put_f32_le(f, a->data[i * ld + j]);
    return DL_OK;
}

static void csv_value(FILE *f, float v)
{
    if (isnan(v))
        fputs("nan", f);
    else if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", f);
    else
        fprintf(f, "%.9g", (double)v);
}

dl_status dl_csv_write_matrix(FILE *f, const void *arg)
{
    const dl_csv_matrix *m = arg;
    const dl_npy_array *a = &m->array;
    if (a->ndim != 1 && a->ndim != 2)
        return DL_FAIL(DL_E_USAGE, "CSV: rank %d arrays are not written (1 or 2)", a->ndim);
    size_t rows = a->shape[0], cols = a->ndim == 2 ? a->shape[1] : 1, ld = row_stride(a);
    for (size_t j = 0; j < cols; j++) fprintf(f, "%s%s%zu", j ? "," : "", m->prefix, j + 1);
    fputc('\n', f);
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < cols; j++) {
            if (j) fputc(',', f);
            csv_value(f, a->data[i * ld + j]);
        }
        fputc('\n', f);
    }
    return DL_OK;
}
