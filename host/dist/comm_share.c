/* Sharing work among the ranks, beyond comm.c's sums and gathers: rank 0's
 * blocks scattered to every rank, a communicator of the first ranks, and a
 * barrier that sleeps while it waits. Their contracts are in dlab/comm.h. */
#define _POSIX_C_SOURCE 200809L
#include "comm_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

dl_status dl_comm_scatter(dl_comm *c, const void *all, const size_t *sizes, void *mine,
                          size_t bytes)
{
    if (!c->mpi || c->size == 1) {
        if (bytes && mine != all) memmove(mine, all, bytes);
        return DL_OK;
    }
#ifdef DLAB_HAVE_MPI
    const int P = c->size;
    int *counts = NULL;
    dl_status st = DL_OK;
    if (c->rank == 0) {
        size_t total = 0;
        for (int r = 0; r < P; r++) total += sizes[r];
        counts = malloc(sizeof(int) * 2 * (size_t)P);
        if (!counts)
            st = DL_FAIL(DL_E_MEMORY, "out of host memory scattering");
        else if (total > INT_MAX)
            st = DL_FAIL(DL_E_MEMORY,
                         "a scatter of %zu bytes from rank 0 is over MPI's 2 GiB limit", total);
        for (int r = 0, at = 0; st == DL_OK && r < P; r++)
            counts[r] = (int)sizes[r], counts[P + r] = at, at += counts[r];
    }
    if ((st = dl_comm_agree(c, st)) == DL_OK) {
        /* Rank 0's own block may stay where it is (mine == all). */
        void *recv = c->rank == 0 && mine == all ? MPI_IN_PLACE : mine;
        int rc = MPI_Scatterv(all, counts, counts ? counts + P : NULL, MPI_BYTE, recv, (int)bytes,
                              MPI_BYTE, 0, c->world);
        if (rc != MPI_SUCCESS) st = dl_comm_mpi_fail(c, rc, "MPI_Scatterv");
    }
    free(counts);
    return st;
#else
    (void)sizes;
    return DL_OK;
#endif
}

dl_status dl_comm_sub(dl_comm *c, int size, dl_comm **out)
{
    *out = NULL;
    if (size < 1 || size > c->size)
        return DL_FAIL(DL_E_USAGE, "a sub-communicator of %d ranks out of %d", size, c->size);
    dl_comm *s = NULL;
    if (c->rank < size) {
        s = calloc(1, sizeof *s);
        if (!s) return DL_FAIL(DL_E_MEMORY, "out of host memory for a communicator");
        *s = (dl_comm){.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
    }
#ifdef DLAB_HAVE_MPI
    if (c->mpi) {
        MPI_Comm sub = MPI_COMM_NULL;
        int rc = MPI_Comm_split(c->world, c->rank < size ? 0 : MPI_UNDEFINED, c->rank, &sub);
        if (rc != MPI_SUCCESS) {
            free(s);
            return dl_comm_mpi_fail(c, rc, "MPI_Comm_split");
        }
        if (s) {
            dl_comm_mpi_adopt(s, sub);
            s->rank = c->rank, s->size = size;
            /* The first ranks of a node stay the first of it. */
            s->local_rank = c->local_rank;
            s->local_size = c->local_size < size ? c->local_size : size;
        }
    }
#endif
    *out = s;
    return DL_OK;
}

dl_status dl_comm_barrier_idle(dl_comm *c)
{
#ifdef DLAB_HAVE_MPI
    if (c->mpi && c->size > 1) {
        MPI_Request req;
        int rc = MPI_Ibarrier(c->world, &req);
        if (rc != MPI_SUCCESS) return dl_comm_mpi_fail(c, rc, "MPI_Ibarrier");
        for (int done = 0;;) {
            rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) return dl_comm_mpi_fail(c, rc, "MPI_Test");
            if (done) break;
            struct timespec ms = {0, 1000000}; /* leave the core to the ranks still working */
            nanosleep(&ms, NULL);
        }
    }
#endif
    (void)c;
    return DL_OK;
}
