/* The epoch loop shared by every task.
 *
 * A task records one epoch as a graph (dl_epoch_fn) that appends
 * `per_epoch` metrics to a device-side history. This loop replays that graph
 * in chunks; between chunks it downloads the chunk's metrics once, checks
 * them for NaN/Inf, reports progress and honours a stop request. Chunks grow
 * while they are short (about 50 ms each), so the host waits on the device a
 * few times per second at most and never once per epoch.
 */
#ifndef DLAB_TRAIN_H
#define DLAB_TRAIN_H

#include <signal.h>

#include "dlab/backend.h"

typedef struct {
    int done, total;   /* epochs finished, epochs asked for */
    double elapsed;    /* seconds since the loop started */
    const float *last; /* the last finished epoch's per_epoch values */
    double scale;      /* last[i] * scale is in the data's units (0: as it is) */
} dl_progress;

typedef struct {
    int per_epoch;                /* values recorded per epoch */
    int check_first, check_count; /* which of them must stay finite */
    float lr;                     /* named in the divergence message */
    int max_chunk;                /* epochs per chunk at most (0: 256) */
    void (*progress)(void *ud, const dl_progress *p);
    void *progress_ud;
    volatile sig_atomic_t *stop; /* non-zero: stop after the current chunk */
} dl_loop;

/* Runs `epochs` replays of `g`. hist_dev holds epochs*per_epoch floats on
 * the device; hist_host receives them as they come back. On return *done is
 * the number of epochs whose history is in hist_host and *seconds the
 * training time (device timer). Returns DL_E_DIVERGED (with a message naming
 * the epoch) when a checked value is not finite, DL_E_INTERRUPTED when
 * stopped; both leave the finished epochs' results in place. */
dl_status dl_train_loop(dl_backend *be, dl_graph *g, int epochs, const float *hist_dev,
                        float *hist_host, const dl_loop *opt, int *done, double *seconds);

/* Many models on the CPU: rather than one parallel region per op (with a
 * barrier after each, which stalls whenever another process holds a core),
 * the models are cut into one contiguous group per thread and each thread
 * trains its group start to finish on a CPU backend of its own. Returns the
 * number of groups to use: 1 (do not split) unless `be` is the CPU backend,
 * there are at least two models and two threads, and no parallel region is
 * active already. */
int dl_cpu_groups(const dl_backend *be, int models);

/* Models [*first, *first + *count) of group g. */
void dl_group_range(int models, int groups, int g, int *first, int *count);

/* Trains one group: models [first, first + count) on `be`, a CPU backend
 * of the group's own thread. */
typedef dl_status (*dl_group_fn)(dl_backend *be, int g, int first, int count, void *ud);

/* Runs fn for every group, each in its own thread. Returns the worst
 * outcome (a hard failure beats divergence, which beats Ctrl-C) with that
 * group's message; firsts[g] receives each group's first model. */
dl_status dl_run_groups(int models, int groups, dl_group_fn fn, void *ud, int *firsts);

/* Sizes of the buffers a task is about to allocate, checked against the
 * backend's free memory before anything is allocated. */
dl_status dl_check_fits(dl_backend *be, size_t bytes, const char *what);

#endif
