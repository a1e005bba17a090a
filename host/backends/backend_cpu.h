/* Shared by the CPU backend's files (backend_cpu.c, backend_cpu_gemm.c,
 * backend_cpu_fused.c). */
#ifndef DLAB_BACKEND_CPU_H
#define DLAB_BACKEND_CPU_H

#include "dlab/backend.h"

/* Below this many elements a parallel region costs more than it saves. */
#define DL_CPU_PAR_MIN (1 << 20)

/* for (size_t i = 0; i < n; i++) body, in an OpenMP team only when `big`.
 * An `if` clause alone would still enter libgomp (and allocate) on every
 * call, which dominates the tiny ops of an iris epoch. */
// clang-format off
#define DL_FOR(big, i, n, ...)                                          \
    do {                                                                \
        if (big) {                                                      \
            _Pragma("omp parallel for schedule(static)")                \
            for (size_t i = 0; i < (size_t)(n); i++) { __VA_ARGS__ }    \
        } else {                                                        \
            for (size_t i = 0; i < (size_t)(n); i++) { __VA_ARGS__ }    \
        }                                                               \
    } while (0)
// clang-format on

dl_status dl_cpu_gemm(dl_backend *be, const dl_gemm_args *g);

/* Sets the fused-training members of the table (backend_cpu_fused.c). */
void dl_cpu_fused_attach(dl_backend *be);

#endif
