/* Ranks working together: a communicator over MPI, or a single rank.
 *
 * Task code has one path. Built with MPI (DLAB_HAVE_MPI) and started by an
 * MPI launcher (`mpirun -np P`, `srun --mpi=pmix`), there are P ranks;
 * otherwise, or when a plain `./dlab-gpu` is started by hand, there is one
 * rank and every collective is a copy (or nothing).
 *
 * When MPI is initialised. Only when the process was started by a launcher,
 * recognised by the variables launchers set (OMPI_COMM_WORLD_SIZE for Open
 * MPI, PMI_RANK/PMI_SIZE for MPICH, Intel MPI and Slurm's pmi2, PMIX_RANK for
 * PMIx and `srun --mpi=pmix`). A plain run therefore never pays for MPI's
 * start-up, never needs a network, and stays clean under valgrind. DLAB_MPI=1
 * in the environment forces initialisation (an MPI singleton), DLAB_MPI=0
 * forbids it. A process that a launcher started as one of several but that
 * cannot join them (a build without MPI, or `srun` without an MPI plugin)
 * fails at init with a message rather than run as one of P copies.
 *
 * Threads. MPI is initialised with MPI_THREAD_FUNNELED: the CPU backend's
 * OpenMP regions and group threads (dl_run_models) exist, but every dl_comm
 * call is made by the thread that called dl_comm_init, between parallel
 * regions. A library that cannot give FUNNELED is refused at init.
 *
 * Collectives. Every rank must call the same collectives in the same order
 * with the same counts (MPI's rule). They return DL_E_RUNTIME naming the MPI
 * call when MPI reports an error; since the other ranks may then be waiting
 * inside a collective, the caller's only safe reaction is dl_comm_abort().
 *
 * Determinism. For a fixed number of ranks, every sum is bit-identical from
 * run to run and on every rank: MPI_Allreduce may pick its algorithm (and so
 * its order of additions) from the message size, the process placement or
 * the network, so sums never use it. Instead the values are moved with
 * collectives that only copy (MPI_Allgather, or MPI_Alltoallv and
 * MPI_Allgatherv for long vectors, each rank then adding one slice) and
 * element i is computed everywhere as
 *     (((double)x_0[i] + x_1[i]) + x_2[i]) + ... + x_{P-1}[i]
 * in rank order, then rounded once to the element type. MAX needs no care
 * (it is exact in any order) and uses MPI_Allreduce.
 *
 * Failures. dl_comm_agree() is the clean path: at a point every rank reaches
 * (after loading its rows, after allocating, at the end of a chunk of
 * epochs) the ranks exchange their status; all of them return the worst
 * one, carrying the message of the lowest rank that had it, prefixed
 * "rank R: ", so rank 0 can print it and every rank exits with the same
 * code. dl_comm_abort() is the hard path, for a rank that fails where the
 * others may be blocked in a collective (inside an epoch): it prints its
 * message once, prefixed with its rank, and MPI_Abort stops every rank with
 * the project's exit code (1, 2 or 130; mpirun passes it on).
 *
 * Ctrl-C. Each rank's handler only sets a flag (dl_comm_catch_stop_signals).
 * At the end of every chunk of epochs, dl_comm_share_stop() takes the MAX of
 * the flags over all ranks, so either every rank stops after the same epoch
 * or none does. A launcher's signal reaches every rank (Open MPI's mpirun
 * turns Ctrl-C into SIGTERM to every rank, then SIGKILL a second later;
 * srun forwards the signals it receives), and a signal sent to any single
 * rank stops them all at the next chunk end.
 */
#ifndef DLAB_COMM_H
#define DLAB_COMM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dlab/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dl_comm dl_comm;

/* Joins the job: initialises MPI when the process was started by an MPI
 * launcher (see above), else makes a single-rank communicator. argc/argv
 * are passed to MPI_Init_thread (may be NULL). On success *out is a new
 * communicator; end it with dl_comm_finalize. Errors: DL_E_USAGE when a
 * launcher started several processes that cannot join (no MPI in this
 * build, or no MPI plugin in srun); DL_E_RUNTIME when MPI fails or lacks
 * MPI_THREAD_FUNNELED; DL_E_MEMORY. */
dl_status dl_comm_init(int *argc, char ***argv, dl_comm **out);

/* Frees the communicator and, if dl_comm_init initialised MPI, finalises it
 * (a collective: every rank calls it). NULL is ignored. */
void dl_comm_finalize(dl_comm *c);

/* The first `size` ranks of c as a communicator of their own (MPI_Comm_split),
 * for running a collective task on fewer ranks (dlab-bench's scaling rows).
 * A collective over c: on ranks < size *out is the new communicator (end it
 * with dl_comm_finalize, which leaves MPI running while c lives), on the
 * others NULL. DL_E_USAGE when size is not in 1 .. dl_comm_size(c). */
dl_status dl_comm_sub(dl_comm *c, int size, dl_comm **out);

int dl_comm_rank(const dl_comm *c);       /* 0 .. size-1 */
int dl_comm_size(const dl_comm *c);       /* number of ranks, >= 1 */
int dl_comm_local_rank(const dl_comm *c); /* rank among those on this node */
int dl_comm_local_size(const dl_comm *c); /* ranks on this node */
bool dl_comm_uses_mpi(const dl_comm *c);  /* MPI was initialised */

/* The CUDA device of this rank among `devices` on its node: local rank
 * modulo devices, so ranks of one node take distinct GPUs while there are
 * enough of them. -1 when devices < 1. */
int dl_comm_device(const dl_comm *c, int devices);

/* Rows [*first, *first + *count) of an m-row matrix that rank `rank` of
 * `size` holds: contiguous blocks in rank order, sizes differing by at most
 * one (the first m % size ranks hold one more). A rank may hold none. */
void dl_comm_shard(int m, int size, int rank, int *first, int *count);

/* In-place sums over all ranks of n values, bit-identical from run to run
 * for a fixed number of ranks and on every rank (the order is given above).
 * n may be 0; x may be NULL only then. */
dl_status dl_comm_allreduce_sum_f32(dl_comm *c, float *x, size_t n);
dl_status dl_comm_allreduce_sum_f64(dl_comm *c, double *x, size_t n);

/* In-place maxima over all ranks (exact, so any order gives the same). */
dl_status dl_comm_allreduce_max_i32(dl_comm *c, int32_t *x, size_t n);
dl_status dl_comm_allreduce_max_f64(dl_comm *c, double *x, size_t n);

/* Copies `bytes` bytes at buf on rank `root` to buf on every rank. */
dl_status dl_comm_bcast(dl_comm *c, void *buf, size_t bytes, int root);

/* Gathers one block of `bytes` bytes (may differ per rank, may be 0) from
 * every rank onto rank 0. On rank 0, *all receives a malloc'ed buffer (free
 * it) holding the blocks one after another in rank order, and sizes[r]
 * (an array of dl_comm_size entries, may be NULL) block r's size; on the
 * other ranks *all is set to NULL and sizes is not touched. The total must
 * stay below 2 GiB (MPI counts are int): beyond that every rank returns
 * DL_E_MEMORY. */
dl_status dl_comm_gather(dl_comm *c, const void *block, size_t bytes, void **all, size_t *sizes);

/* Collects results made on every rank onto rank 0: `local` is this rank's
 * status in making its block (DL_E_MEMORY when it could not). When every rank
 * succeeded, the blocks are gathered as dl_comm_gather does and rank 0 calls
 * merge(ud, all, sizes, ranks) on them. Every rank returns the same status:
 * the worst of the ranks' (dl_comm_agree). */
typedef dl_status (*dl_comm_merge_fn)(void *ud, const char *all, const size_t *sizes, int ranks);
dl_status dl_comm_gather_merge(dl_comm *c, dl_status local, const void *block, size_t bytes,
                               dl_comm_merge_fn merge, void *ud);

/* The reverse of dl_comm_gather: rank 0 holds in `all` the blocks for every
 * rank one after another in rank order, block r of sizes[r] bytes (`all`
 * and `sizes` are read on rank 0 only); every rank receives its own block,
 * `bytes` bytes (the size rank 0 gives it), at `mine`; on rank 0 `mine`
 * may be `all`, whose first block is rank 0's. The total must stay
 * below 2 GiB (MPI counts are int): beyond that every rank returns
 * DL_E_MEMORY. A collective. */
dl_status dl_comm_scatter(dl_comm *c, const void *all, const size_t *sizes, void *mine,
                          size_t bytes);

/* Waits until every rank has called it. */
dl_status dl_comm_barrier(dl_comm *c);

/* The same, sleeping (1 ms at a time) rather than polling while it waits,
 * so that a rank with nothing to do leaves its core to the others (MPI's
 * own waits poll; on a node with more ranks than cores they take cores from
 * the ranks that work). For waits of milliseconds or more. */
dl_status dl_comm_barrier_idle(dl_comm *c);

/* Agrees on an outcome: every rank passes its own status (with its message
 * in dl_errmsg() when not DL_OK) and every rank gets back the worst of them
 * (any failure beats divergence, which beats an interruption, which beats
 * DL_OK). When it is not DL_OK, dl_errmsg()/dl_errwhere() on every rank
 * hold the message of the lowest rank with that status, prefixed
 * "rank R: " when there are several ranks. A collective; one all-reduce
 * when every rank is fine, then a broadcast of the message. An MPI failure
 * inside it returns DL_E_RUNTIME on the ranks that see it. */
dl_status dl_comm_agree(dl_comm *c, dl_status local);

/* Stops every rank after a failure the others cannot be told of
 * collectively: prints "dlab-gpu: rank R: error: <dl_errmsg()>" (with
 * " [<dl_errwhere()>]" for runtime failures; no rank prefix with one rank)
 * on stderr once, then MPI_Abort with dl_exit_code(st), which the launcher
 * returns. Without MPI it exits with that code. Never returns. */
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void dl_comm_abort(dl_comm *c, dl_status st);

/* Sets *flag on SIGINT and SIGTERM (the signal a launcher sends every rank
 * when it is interrupted); a second one exits at once with status 130.
 * flag must outlive the run. */
void dl_comm_catch_stop_signals(volatile sig_atomic_t *flag);

/* Installs handler for SIGINT and SIGTERM (dl_comm_catch_stop_signals's, or
 * a program's own that also sets a stop flag). */
void dl_comm_on_stop_signals(void (*handler)(int));

/* The end-of-chunk stop check: *any becomes true on every rank when `local`
 * (this rank's stop flag, read once by the caller) is true on any rank. The
 * caller must act on *any, never on its live flag: a signal that lands
 * after the exchange would otherwise stop this rank alone, and the others
 * would wait for it in their next collective. Such a signal is seen at the
 * next chunk end. A collective. */
dl_status dl_comm_share_stop(dl_comm *c, bool local, bool *any);

#ifdef __cplusplus
}
#endif
#endif
