/* The factorise task's results as files under --out: what a user came for.
 *
 *   U.npy, U.csv        m x k  gradient descent's U  (float32)
 *   V.npy, V.csv        n x k  gradient descent's V  (float32)
 *   column_means.npy    n      mu, the column means subtracted before
 *                              training (zeros with --no-center or a
 *                              synthetic matrix)
 *   svd_U.npy           m x k  the leading left singular vectors U_k
 *   svd_S.npy           min(m, n)  every singular value, descending
 *   svd_V.npy           n x k  the leading right singular vectors V_k
 *
 * In the data's units, A - 1 mu^T ~ U V^T, and sum((A - 1 mu^T - U V^T)^2)
 * is the run's sse_gd; U_k diag(S_k) V_k^T is the optimal rank-k
 * approximation of A - 1 mu^T. With --seeds N the factors are the first
 * model's (seed S, the one whose history the reports show). Without an SVD
 * baseline (--no-svd, or a diverged run) the svd_* files are not written;
 * when U or V holds NaN or Inf, or their error does (the first model
 * diverged), none is.
 */
#ifndef DLAB_FACTORS_OUT_H
#define DLAB_FACTORS_OUT_H

#include "dlab/factorise.h"
#include "dlab/report.h"

/* Writes the files above into o->dir (each atomically, listed in o->files).
 * column_means: r->n values, or NULL for zeros. When nothing is written,
 * note (note_len bytes) says why; otherwise it is set to "". */
dl_status dl_out_factors(dl_out *o, const dl_factorise_result *r, const float *column_means,
                         char *note, size_t note_len);

#endif
