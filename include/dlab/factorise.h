/* Task: rank-k factorisation A ~ U V^T by full-batch gradient descent on the
 * sum of squared errors, against the optimal rank-k truncation from the SVD.
 *
 *   loss = sum((U V^T - A)^2),  E = U V^T - A,  dU = 2 E V,  dV = 2 E^T U,
 * both gradients computed before either update. With seeds > 1, `seeds`
 * independent models (seeds seed, seed+1, ...) train together, sharing A.
 *
 * Two presets (dl_factorise_preset) say how training starts:
 * - lab: the lab's protocol, in the data's own units: U, V ~ U[0,1) from the
 *   backend's Philox generator, lr 0.01.
 * - careful: for a matrix of any magnitude float32 can hold. Training runs
 *   on 2^e A, an exact power-of-two scaling that brings ||A||_F into
 *   [0.5, 1) (host/tasks/factorise_scale.c), so nothing depends on the data's
 *   units; U, V ~ N(0, s^2), small and balanced; lr = 0.1 / sigma_1 with
 *   sigma_1 from power iteration on the backend. The rules and their sources
 *   are documented in include/dlab/factorise_scale.h.
 * Whatever the preset, every figure of the result is in the data's units,
 * in double: the SVD and the final errors are computed on the scaled matrix
 * and scaled back exactly.
 */
#ifndef DLAB_FACTORISE_H
#define DLAB_FACTORISE_H

#include <stdbool.h>
#include <stdint.h>

#include "dlab/backend.h"
#include "dlab/train.h"

typedef enum {
    DL_FACTORISE_LAB = 0, /* U, V ~ U[0,1), lr 0.01, the data as given */
    DL_FACTORISE_CAREFUL, /* scaled data, small balanced N(0, s^2) start, lr from sigma_1 */
} dl_factorise_preset;

typedef struct {
    dl_factorise_preset preset;
    int rank;
    int epochs;
    float lr; /* step size in the data's units; 0: the preset's (lab 0.01, careful 0.1/sigma_1) */
    uint64_t seed;
    int seeds; /* models trained together, >= 1 */
    bool svd;  /* compute the SVD baseline */
    /* Training on the backend's fused op (dl_fused_factorise, one call per
     * chunk of epochs) rather than one op per step: AUTO when the backend has
     * it and one model fits its fast memory, never for rows spread over
     * ranks; ON refuses (DL_E_USAGE) where AUTO would not fuse. */
    dl_fused_mode fused;
    dl_loop loop; /* progress and stop hooks (the metrics and their checks are the task's) */
} dl_factorise_config;

/* The preset's configuration: rank 2, 1000 epochs, lr 0 (the preset's
 * own), seed 1, one model, with the SVD baseline, fused AUTO. */
dl_factorise_config dl_factorise_defaults(dl_factorise_preset preset);

typedef struct {
    int m, n, rank, seeds;
    int epochs_run; /* epochs every model finished */
    dl_factorise_preset preset;
    double lr;            /* the step used, in the data's units */
    double init_std;      /* careful: std of the initial entries of U and V in the data's units
                          (each factor carries the square root of the data's scale); lab: 0 */
    int scale_log2;       /* the SVD and the final errors were computed on 2^scale_log2 A;
                          the careful preset also trained there */
    double sumsq;         /* ||A||_F^2 in the data's units, accumulated in double */
    double sigma1_est;    /* sigma_1 from power iteration on the backend (data's units);
                          careful: always, lab: after a divergence; else 0 */
    double *loss_history; /* epochs_run x seeds: the SSE before each epoch's update */
    double *sse_gd;       /* seeds: the SSE of the final U, V (NaN when not finite) */
    int *epochs_trained;  /* seeds: the epochs each model ran, when a --seeds split over
                             ranks was interrupted at different epochs (sse_gd and the
                             history are then those after epochs_run); else NULL */
    bool have_svd;
    double sse_svd;       /* sum of the discarded squared singular values */
    double sse_svd_recon; /* the same, from the rank-k reconstruction */
    int n_sv;
    double *singular_values; /* n_sv = min(m, n), descending, in the data's units */
    float *svd_u;            /* m x n_sv left singular vectors (row-major) */
    float *svd_v;            /* n x rank: the leading right singular vectors (V_k, row-major) */
    /* The first model's factors (seed cfg->seed), in the data's units: the
     * matrix the task was given is approximated by u_gd v_gd^T. Whatever
     * scale training runs at (2^te A for the careful preset), they are
     * scaled back exactly, by powers of two (U by 2^-h, h = te/2 rounded
     * toward zero, V by 2^-(te-h)), before the result returns. */
    float *u_gd;          /* m x rank */
    float *v_gd;          /* n x rank */
    bool fused;           /* trained on the fused op (dl_factorise_config.fused) */
    double train_seconds; /* the gradient-descent loop alone */
    double svd_seconds;
    dl_stop stop; /* why training ended early, if it did; a divergence's message is
                     dl_factorise_explain's */
    /* After a divergence (see dl_factorise_explain), of the model that
     * diverged first: */
    int diverged_epoch;  /* 1-based epoch whose loss was first NaN or Inf */
    bool data_overflow;  /* the training matrix's sum of squares is out of float32's range */
    double stable_lr;    /* about where gradient descent from this start stops being stable */
    double suggested_lr; /* a step that suits this data, in the data's units */
} dl_factorise_result;

/* Factorises the row-major m x n host matrix `a`. Returns DL_OK also when
 * training diverged or was interrupted: res->stop says so, and the result
 * holds everything computed up to the stop (the SVD baseline too after a
 * divergence, which leaves A as it was, but none after an interruption, so
 * that Ctrl-C ends the run promptly). A divergence's message says whether the data overflow
 * float32 or the step is too large, and suggests a step for the data
 * (dl_factorise_explain). Failures (DL_E_USAGE, DL_E_INPUT for a bad shape,
 * DL_E_MEMORY, DL_E_RUNTIME) leave it empty. */
dl_status dl_factorise(dl_backend *be, const float *a, int m, int n, const dl_factorise_config *cfg,
                       dl_factorise_result *res);

/* The same on a synthetic rank-`true_rank` matrix plus N(0, noise^2) noise,
 * drawn on the backend from `data_seed` and combined by rows in a fixed
 * order (host/tasks/factorise_synth.c), so that any block of its rows is the
 * same bits; on the CUDA backend the product is a cuBLAS gemm on the device
 * (nothing crosses the bus). Its entries are of order one, so it is not
 * rescaled (scale_log2 is 0). */
dl_status dl_factorise_synthetic(dl_backend *be, int m, int n, int true_rank, float noise,
                                 uint64_t data_seed, const dl_factorise_config *cfg,
                                 dl_factorise_result *res);

/* The same on rows spread over the ranks of be->comm (dlab/comm.h), one
 * model: this rank passes its rows of the m x n matrix, `a` holding the
 * dl_comm_shard(m, ranks, rank) block (m_local x n, row-major). A
 * collective; every rank returns the same status and the same figures.
 *
 * Each epoch computes E, dU and dV on the rank's rows and sums dV and the
 * loss over the ranks (dl_allreduce_sum); every rank applies the same V
 * update to its copy. The scale (careful) comes from ||A||^2 summed over
 * the ranks, sigma_1 from the power iteration over the rows
 * (dl_sigma1_estimate_rows), the start is the one a single process draws
 * (each rank keeps its rows of U), and the SVD baseline is TSQR
 * (dl_tsqr_svd), in float64. Rank 0 receives the rows of u_gd and svd_u;
 * on the other ranks they are NULL. The sums over ranks add in another
 * order than one process does, so results agree with one process to
 * float rounding, and are bit-identical from run to run for a fixed number
 * of ranks. With no communicator or one rank it is dl_factorise.
 * Errors as dl_factorise's, and DL_E_USAGE for fewer rows than ranks or
 * seeds > 1. */
dl_status dl_factorise_rows(dl_backend *be, const float *a, int m, int n,
                            const dl_factorise_config *cfg, dl_factorise_result *res);

/* dl_factorise_synthetic's matrix with its rows spread over the ranks of
 * be->comm, one model: each rank makes only its dl_comm_shard block of the
 * rows, the same bits one process makes (host/tasks/factorise_synth.c), and
 * trains as dl_factorise_rows does (the matrix is not rescaled). A
 * collective. With no communicator or one rank it is dl_factorise_synthetic.
 * Errors as dl_factorise_rows's. */
dl_status dl_factorise_synthetic_rows(dl_backend *be, int m, int n, int true_rank, float noise,
                                      uint64_t data_seed, const dl_factorise_config *cfg,
                                      dl_factorise_result *res);

/* `seeds` models of the whole m x n matrix `a` (every rank passes all of
 * it) split over the ranks of be->comm: rank r trains the models of its
 * dl_comm_shard(seeds, ranks, r) block, seeds seed + first, ..., with no
 * traffic while training, so each model's figures are bit for bit those
 * of one process on the same backend. Rank 0 then holds the whole result:
 * every model's final error and loss history (up to the fewest epochs any
 * rank ran), its own model 0's factors, the SVD baseline (computed there
 * alone) and the stop one process would report (the worst; the earliest
 * divergence). The other ranks hold their own block's result. A
 * collective; every rank returns the same status. With no communicator or
 * one rank it is dl_factorise. DL_E_USAGE when seeds < ranks. */
dl_status dl_factorise_split_seeds(dl_backend *be, const float *a, int m, int n,
                                   const dl_factorise_config *cfg, dl_factorise_result *res);

/* The same with dl_factorise_synthetic's matrix, which every rank makes
 * whole. */
dl_status dl_factorise_synthetic_split_seeds(dl_backend *be, int m, int n, int true_rank,
                                             float noise, uint64_t data_seed,
                                             const dl_factorise_config *cfg,
                                             dl_factorise_result *res);

dl_status dl_factorise_validate(int m, int n, const dl_factorise_config *cfg);
void dl_factorise_result_free(dl_factorise_result *r);

#endif
