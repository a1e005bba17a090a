/* Task: rank-k factorisation A ~ U V^T by full-batch gradient descent on the
 * sum of squared errors, against the optimal rank-k truncation from the SVD.
 *
 *   loss = sum((U V^T - A)^2),  E = U V^T - A,  dU = 2 E V,  dV = 2 E^T U,
 * both gradients computed before either update. U, V ~ U[0,1) from the
 * backend's Philox generator. With seeds > 1, `seeds` independent models
 * (seeds seed, seed+1, ...) train together, sharing A.
 */
#ifndef DLAB_FACTORISE_H
#define DLAB_FACTORISE_H

#include <stdbool.h>
#include <stdint.h>

#include "dlab/backend.h"
#include "dlab/train.h"

typedef struct {
    int rank;
    int epochs;
    float lr;
    uint64_t seed;
    int seeds;    /* models trained together, >= 1 */
    bool svd;     /* compute the SVD baseline */
    dl_loop loop; /* progress and stop hooks (per_epoch etc. are set by the task) */
} dl_factorise_config;

typedef struct {
    int m, n, rank, seeds;
    int epochs_run;
    float *loss_history; /* epochs_run x seeds: the SSE before each epoch's update */
    float *sse_gd;       /* seeds: the SSE of the final U, V */
    bool have_svd;
    double sse_svd;       /* sum of the discarded squared singular values */
    double sse_svd_recon; /* the same, from the rank-k reconstruction */
    int n_sv;
    float *singular_values; /* n_sv = min(m, n), descending */
    float *svd_u;           /* m x n_sv left singular vectors (row-major) */
    float *svd_v;           /* n x rank: the leading right singular vectors (V_k, row-major) */
    /* The first model's factors (seed cfg->seed), in the data's units: the
     * matrix the task was given is approximated by u_gd v_gd^T. Whatever
     * scale training runs at, these are reported unscaled. */
    float *u_gd;          /* m x rank */
    float *v_gd;          /* n x rank */
    double train_seconds; /* the gradient-descent loop alone */
    double svd_seconds;
    dl_status stop; /* DL_OK, DL_E_DIVERGED or DL_E_INTERRUPTED */
} dl_factorise_result;

/* Factorises the row-major m x n host matrix `a`. On DL_E_DIVERGED and
 * DL_E_INTERRUPTED the result still holds everything computed up to the
 * stop (res->stop says which); other failures leave it empty. */
dl_status dl_factorise(dl_backend *be, const float *a, int m, int n, const dl_factorise_config *cfg,
                       dl_factorise_result *res);

/* The same on a synthetic rank-`true_rank` matrix plus N(0, noise^2) noise,
 * generated on the backend from `data_seed` (nothing crosses the bus). */
dl_status dl_factorise_synthetic(dl_backend *be, int m, int n, int true_rank, float noise,
                                 uint64_t data_seed, const dl_factorise_config *cfg,
                                 dl_factorise_result *res);

dl_status dl_factorise_validate(int m, int n, const dl_factorise_config *cfg);
void dl_factorise_result_free(dl_factorise_result *r);

#endif
