/* Private to host/tasks/factorise.c and host/tasks/factorise_baseline.c:
 * the state one factorisation shares between its training (factorise.c) and
 * its start, placement, measurement and SVD baselines (factorise_baseline.c).
 * Not part of the public API (include/dlab/factorise.h). */
#ifndef DLAB_FACTORISE_INTERNAL_H
#define DLAB_FACTORISE_INTERNAL_H

#include "dlab/factorise.h"
#include "dlab/comm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Device buffers of one group of models. Parameters of model b are laid out as
 * [U (m x k) | V (n x k)] at params + b*P, P = (m + n) k, and the gradients
 * mirror them, so one optimiser launch updates U and V of every model. */
typedef struct {
    int m, n, k, seeds; /* m: the rows this rank holds */
    bool ranks;         /* the rows are spread over the ranks of be->comm */
    size_t per_model;
    float *a, *e, *params, *grads, *metrics, *hist;
    int32_t *counter;
    dl_optim opt;
    bool fused; /* trained by dl_fused_factorise (fact_run) instead of the epoch graph */
} fact_ctx;

/* What the task knows of A before it reaches the device. */
typedef struct {
    const float *raw;    /* m x n as given (host), NULL for a synthetic matrix */
    const float *scaled; /* 2^e raw (host), NULL for a synthetic matrix */
    int e;               /* the SVD and the final errors use 2^e A */
    double sumsq;        /* ||A||_F^2 in the data's units; synthetic: measured on the device */
    double sigma1_t;     /* careful: sigma_1 of the training matrix, < 0 until estimated */
    int true_rank;       /* synthetic: A = L R^T + noise */
    float noise;
    uint64_t data_seed;
} fact_input;

/* The progress line shows the loss in the data's units. */
typedef struct {
    void (*fn)(void *ud, const dl_progress *p);
    void *ud;
    double scale;
} progress_units;

/* The input every group shares, the start they all take, and the result
 * each fills its slice of. */
typedef struct {
    int m, n;
    /* Row-sharded over the ranks of comm (NULL: this process holds A): this
     * rank holds rows [first_row, first_row + m_local); raw and scaled in
     * `in` are those rows. */
    dl_comm *comm;
    int first_row, m_local;
    fact_input in;
    const dl_factorise_config *cfg;
    int te;         /* the training matrix is 2^te A */
    float lr_t;     /* the step in training units */
    bool fused;     /* every group trains on dl_fused_factorise */
    double std_t;   /* careful: the initial std in training units */
    float *hist;    /* epochs x seeds: every model's loss history in training units */
    int *bad_epoch; /* seeds: the 1-based epoch whose loss was first not finite, 0: none */
    bool *bad_nan;  /* seeds: that loss was NaN (else Inf) */
    progress_units pu;
    dl_factorise_result *res;
} fact_job;

/* factorise_baseline.c; each is documented at its definition. */
dl_status fact_svd_baseline(dl_backend *be, fact_ctx *c, int e, dl_factorise_result *res);
dl_status fact_svd_baseline_rows(fact_job *j, dl_factorise_result *res);
dl_status fact_choose_start(const dl_factorise_config *cfg, const fact_input *in, int te, int m,
                            int n, float *lr_t, double *std_t, dl_factorise_result *res);
dl_status fact_draw_start(dl_backend *be, fact_ctx *c, const dl_factorise_config *cfg, int first,
                          double std_t);
dl_status fact_draw_start_rows(dl_backend *be, fact_ctx *c, const fact_job *j, double std_t);
dl_status fact_place_matrix(dl_backend *be, fact_ctx *c, const fact_input *in, int e);
dl_status fact_measure(dl_backend *be, fact_job *j, int e, bool sumsq, double *sigma1);
/* factorise_synth.c: the synthetic matrix by blocks of rows. */
typedef struct {
    int m, n, true_rank;
    float noise;
    uint64_t seed; /* L and R from stream seed, the noise from seed + 1 */
} fact_synth;
/* Receives rows [row, row + rows) of the block (relative to its first row),
 * rows x n values, row-major. */
typedef dl_status (*fact_synth_sink)(void *ud, int row, int rows, const float *v);
typedef struct {
    float *x; /* the block, count x n */
    int n;
} fact_synth_host;
/* Makes rows [first, first + count) of the synthetic matrix, in steps
 * handed to sink; the values do not depend on first and count
 * (factorise_synth.c says how). */
dl_status fact_synthetic_rows(dl_backend *be, const fact_synth *s, int first, int count,
                              fact_synth_sink sink, void *ud);

/* Refuses (DL_E_MEMORY, with the sizes; agreed over the ranks of
 * be->comm) a rank's share of a row-sharded factorisation that does not fit:
 * `host_floats` floats of host blocks (the rows as read or made, their
 * scaled copy) plus the backend's buffers for its m_local rows, checked
 * before any of them is allocated. */
dl_status fact_rows_fit(dl_backend *be, int m_local, int n, const dl_factorise_config *cfg,
                        size_t host_floats);
/* factorise.c: the row-sharded run on this rank's rows `a` of an m x n
 * matrix; `synthetic`: the matrix is the synthetic one, which is never
 * rescaled (scale_log2 0, as dl_factorise_synthetic). */
dl_status fact_rows(dl_backend *be, const float *a, int m, int n, const dl_factorise_config *cfg,
                    bool synthetic, dl_factorise_result *res);

dl_status fact_gather_rows(dl_backend *be, dl_comm *comm, float *whole, const float *dev,
                           int m_local, int m, int k);

#endif
