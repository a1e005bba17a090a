/* The epoch loop and the many-model runner shared by every task.
 *
 * A task records one epoch as a graph (dl_epoch_fn) that appends `metrics`
 * values per model to a device-side history. dl_train_loop replays that
 * graph in chunks; between chunks it downloads the chunk's metrics once,
 * checks them for NaN/Inf, reports progress and honours a stop request.
 * Chunks grow while they are short (about 50 ms each), so the host waits on
 * the device a few times per second at most and never once per epoch.
 *
 * dl_run_models trains N models as one or more groups of consecutive
 * models. Each group fills its own slice of result arrays the task allocated
 * for all N, so nothing is merged afterwards.
 *
 * Divergence and a stop request end training early but are not failures:
 * they are recorded in a dl_stop, and the functions return DL_OK with the
 * epochs finished so far in place.
 */
#ifndef DLAB_TRAIN_H
#define DLAB_TRAIN_H

#include <signal.h>
#include <stdbool.h>

#include "dlab/backend.h"

/* Why training ended before its last epoch. Ordered: when groups stop for
 * different reasons, the larger kind is the run's. */
typedef enum {
    DL_STOP_NONE = 0,    /* every epoch ran */
    DL_STOP_INTERRUPTED, /* a stop was requested (Ctrl-C) */
    DL_STOP_DIVERGED,    /* a checked metric became NaN or Inf */
} dl_stop_kind;

typedef struct {
    dl_stop_kind kind;
    char message[1024]; /* one line for people ("" for DL_STOP_NONE), e.g. "training
                          diverged: the loss became NaN at epoch 12 of 1000; try ..." */
} dl_stop;

/* How training ended: for one group of models, or combined over groups. */
typedef struct {
    int epochs_run; /* epochs whose history is in place (every model's, when combined) */
    double seconds; /* training time on the backend's timer (the slowest group's) */
    dl_stop stop;   /* the worst stop of any group, with that group's message */
} dl_outcome;

/* "ok", "interrupted" or "diverged": the `status` field of the JSON report. */
const char *dl_stop_name(dl_stop_kind kind);

/* What a command returns for a stop, so that the process exits as the
 * README says: DL_OK for DL_STOP_NONE; DL_E_INTERRUPTED (exit 130) or
 * DL_E_DIVERGED (exit 1) with the stop's message recorded (dl_errmsg). */
dl_status dl_stop_status(const dl_stop *stop);

/* True for the two statuses dl_stop_status returns for a stop: an outcome
 * of training, reported without "error:". */
bool dl_status_is_stop(dl_status st);

/* Models [first, first + count) of a run of `models` models. */
typedef struct {
    int index;        /* 0 .. groups-1; group 0 holds model 0 and reports progress */
    int first, count; /* the group's models */
    int models;       /* models in the whole run */
} dl_group;

typedef struct {
    int done, total; /* epochs finished, epochs asked for */
    double elapsed;  /* seconds since the loop started */
    /* The last finished epoch's row of the host history, metrics x models
     * (metric k of model b at last[k * models + b]); group 0's models are
     * in place, so last[0] is the first metric of model 0. */
    const float *last;
    double scale; /* last[i] * scale is in the data's units (0: as it is) */
} dl_progress;

typedef struct {
    int metrics;                  /* values recorded per model and epoch */
    int check_first, check_count; /* metrics [first, first + count) must stay finite */
    float lr;                     /* named in the divergence message */
    int max_chunk;                /* epochs per chunk at most (0: 256) */
    void (*progress)(void *ud, const dl_progress *p);
    void *progress_ud;
    volatile sig_atomic_t *stop; /* non-zero: stop after the current chunk */
    /* Ranks that train the same models together (rows of one matrix), or
     * NULL. With several, every chunk end takes the MAX over the ranks of
     * the stop flag and of the chunk's time, so all of them run the same
     * chunks and stop after the same epoch; a backend failure on any rank
     * stops them all (dl_comm_abort). The checked metrics must be the same
     * on every rank (summed over the ranks inside the epoch). */
    struct dl_comm *comm;
    /* A task training on a fused op (dl_fused_factorise, dl_fused_mlp)
     * sets `run`: the loop then calls run(be, run_ctx, first, n) for each
     * chunk, epochs [first, first + n), instead of replaying a graph (the
     * graph argument is then NULL). run must write those epochs' rows of the
     * device history. */
    dl_status (*run)(dl_backend *be, void *run_ctx, int first_epoch, int epochs);
    void *run_ctx;
    int first_chunk; /* epochs in the first chunk (0: 1); chunks then double as before */
} dl_loop;

/* Whether a task trains on the backend's fused ops (backend.h):
 * AUTO when the backend has them and one model's working set fits its fast
 * memory (dl_fused_fits) and the rows are not spread over ranks; ON the
 * same, refusing with DL_E_USAGE and the reason when it cannot; OFF never
 * (the general path: one op per step, replayed as a graph). */
typedef enum { DL_FUSED_AUTO = 0, DL_FUSED_OFF, DL_FUSED_ON } dl_fused_mode;

/* "auto", "off" or "on" into *out; DL_E_USAGE with a one-line message
 * naming `option` for anything else. */
dl_status dl_fused_mode_parse(const char *s, const char *option, dl_fused_mode *out);

/* "auto", "off" or "on": the option's spelling, as dl_fused_mode_parse reads it. */
const char *dl_fused_mode_name(dl_fused_mode m);

/* Chunk sizes for a loop driven by a fused op (opt->run) whose epoch costs
 * about `flops_per_epoch` floating-point operations over the group's
 * models. The chunks start as the general path's do (1, 2, 4, ... epochs,
 * first_chunk left as it is), so that a divergence ends training after the
 * same epochs on either path, with the parameters of that epoch; they may
 * then grow to about 100 ms of work at a conservative 1 GFLOP/s (max_chunk,
 * at least the general path's 256), so that a tiny model's run takes about
 * log2(epochs) calls while a stop request and the progress line are still
 * answered within about a tenth of a second (the loop only doubles a chunk
 * that took under 50 ms). A max_chunk the caller set is kept. */
void dl_loop_fused_chunks(dl_loop *loop, double flops_per_epoch);

/* Runs `epochs` replays of `g` (or calls of opt->run) for the models of
 * group `grp`.
 *
 * hist_dev (device) receives epochs x metrics x grp->count floats: metric k
 * of the group's model b after epoch e at (e * metrics + k) * count + b.
 * hist_host (host) is the history of the whole run, epochs x metrics x
 * grp->models floats in the same order; the loop writes the group's slice,
 * models [first, first + count) of each metric, as the chunks come back.
 *
 * *out receives the epochs whose history is in place, the training time
 * (device timer) and the stop: DL_STOP_DIVERGED, with a message naming the
 * epoch, when a checked metric is not finite; DL_STOP_INTERRUPTED when
 * *opt->stop was set. Only group 0 calls opt->progress. Returns DL_OK in
 * all those cases; any other status is a failure of a backend call. */
dl_status dl_train_loop(dl_backend *be, dl_graph *g, int epochs, const float *hist_dev,
                        float *hist_host, const dl_loop *opt, const dl_group *grp, dl_outcome *out);

/* Trains one group of models on `be` and records how its training ended in
 * *out (dl_train_loop's outcome; left zeroed when the group fails before
 * training). `be` is the caller's backend, or one of the group's own. */
typedef dl_status (*dl_group_fn)(dl_backend *be, const dl_group *g, void *ud, dl_outcome *out);

/* Trains `models` models by calling fn once per group.
 *
 * With be->model_groups (the CPU backend), at least two models and two
 * OpenMP threads, and no parallel region already active, the models are cut
 * into one group of consecutive models per thread (sizes differing by one
 * at most, the larger first); each thread trains its group start to finish
 * on a CPU backend of its own, rather than every op opening a parallel
 * region with a barrier after it (which stalls whenever another process
 * holds a core). Otherwise one group holds every model and fn runs on `be`.
 *
 * *out combines the groups: epochs_run is the smallest group's (the
 * epochs every model has finished), seconds the largest, and stop the
 * largest kind with the message of the group that stopped so after the
 * fewest epochs (the first such group on a tie), so that a stop's message
 * names the epochs every model finished.
 * Returns DL_OK when every group did (stops included); otherwise the
 * failure of the first group that failed, with its message. */
dl_status dl_run_models(dl_backend *be, int models, dl_group_fn fn, void *ud, dl_outcome *out);

/* Sizes of the buffers a task is about to allocate, checked against the
 * backend's free memory before anything is allocated. */
dl_status dl_check_fits(dl_backend *be, size_t bytes, const char *what);

#endif
