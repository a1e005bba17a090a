/* The CUDA backend, built on the emulator, under the name "cuda-emu", so that
 * every output (the backend line, JSON "backend", reports, benchmarks) says
 * what ran. The backend's own creator is renamed by dl_emu_host.h; this file
 * is part of the dlab library itself, beside it. */
#include "dlab/backend.h"

dl_status dl_emu_backend_cuda_create_inner(dl_backend **out);

dl_status dl_backend_cuda_create(dl_backend **out)
{
    dl_status st = dl_emu_backend_cuda_create_inner(out);
    if (st == DL_OK) (*out)->name = "cuda-emu";
    return st;
}
