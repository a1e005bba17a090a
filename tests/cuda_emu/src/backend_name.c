/* The CUDA backend, built on the emulator, under the name "cuda-emu", so that
 * every output (the backend line, JSON "backend", reports, benchmarks) says
 * what ran. The backend's own creator is renamed by dl_emu_host.h; this file
 * is part of the dlab library itself, beside it. */
#include "dlab/backend.h"

#include <stdio.h>
#include <string.h>

dl_status dl_emu_backend_cuda_create_inner(dl_backend **out);

/* The CUDA backend composes its device as "NAME (sm_XY, N SMs, G GiB)"; the
 * emulator's NAME, "cuda-emu: sm_90 emulated on the CPU", already says the
 * backend and the architecture, so the device reads "sm_90 emulated on the
 * CPU, N SMs, G GiB" and the backend line names each once. */
static void tidy_device(char *dev, size_t len)
{
    static const char prefix[] = "cuda-emu: ";
    const char *name = dev;
    if (!strncmp(name, prefix, sizeof prefix - 1)) name += sizeof prefix - 1;
    const char *paren = strstr(name, " (sm_");
    const char *rest = paren ? strchr(paren, ',') : NULL;
    size_t rest_len = rest ? strlen(rest) : 0;
    if (rest_len && rest[rest_len - 1] == ')') rest_len--;
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s%.*s", (int)(paren ? (size_t)(paren - name) : strlen(name)),
             name, (int)rest_len, rest ? rest : "");
    size_t n = strlen(buf) < len ? strlen(buf) : len - 1; /* buf is never longer than dev was */
    memcpy(dev, buf, n);
    dev[n] = '\0';
}

dl_status dl_backend_cuda_create(dl_backend **out)
{
    dl_status st = dl_emu_backend_cuda_create_inner(out);
    if (st == DL_OK) {
        (*out)->name = "cuda-emu";
        tidy_device((*out)->device, sizeof(*out)->device);
    }
    return st;
}

const char *dl_cuda_build_words(void)
{
    return "emulated on the CPU: the cuda-emu build runs the CUDA code without a GPU";
}
