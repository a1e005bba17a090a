/* Backend selection and the small helpers shared by every backend user. */
#include "dlab/backend.h"

#include <stdio.h>
#include <string.h>

dl_status dl_device_parse(const char *s, dl_device *out)
{
    if (strcmp(s, "auto") == 0)
        *out = DL_DEVICE_AUTO;
    else if (strcmp(s, "cpu") == 0)
        *out = DL_DEVICE_CPU;
    else if (strcmp(s, "cuda") == 0 || strcmp(s, "gpu") == 0)
        *out = DL_DEVICE_CUDA;
    else
        return DL_FAIL(DL_E_USAGE, "--device: unknown device '%s' (expected auto, cpu or cuda)", s);
    return DL_OK;
}

dl_status dl_backend_create(dl_device dev, dl_backend **out, char *note, size_t note_len)
{
    *out = NULL;
    if (note && note_len) note[0] = '\0';
    if (dev == DL_DEVICE_CPU) return dl_backend_cpu_create(out);
    if (dev == DL_DEVICE_CUDA) return dl_backend_cuda_create(out);

    dl_status s = dl_backend_cuda_create(out);
    if (s == DL_OK) return DL_OK;
    if (note && note_len) snprintf(note, note_len, "%s; running on the CPU", dl_errmsg());
    dl_clear_error();
    return dl_backend_cpu_create(out);
}

void dl_backend_destroy(dl_backend *be)
{
    if (be) be->destroy(be);
}

dl_status dl_matmul(dl_backend *be, bool ta, bool tb, int m, int n, int k, float alpha,
                    const float *a, const float *b, float beta, float *c)
{
    dl_gemm_args g = {
        .trans_a = ta,
        .trans_b = tb,
        .m = m,
        .n = n,
        .k = k,
        .alpha = alpha,
        .a = a,
        .lda = ta ? m : k,
        .b = b,
        .ldb = tb ? k : n,
        .beta = beta,
        .c = c,
        .ldc = n,
        .batch = 1,
    };
    return be->gemm(be, &g);
}

#ifndef DLAB_HAVE_CUDA
dl_status dl_backend_cuda_create(dl_backend **out)
{
    *out = NULL;
    return DL_FAIL(DL_E_NODEVICE,
                   "this build of dlab-gpu has no CUDA backend (nvcc was not found at build time)");
}
bool dl_have_cuda_build(void) { return false; }
#endif
