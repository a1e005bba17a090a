/* Private to host/dist: the communicator's fields, shared by comm.c (init,
 * sums, gathers, agreement, signals) and comm_share.c (scatter,
 * sub-communicators, the sleeping barrier). */
#ifndef DLAB_HOST_DIST_COMM_INTERNAL_H
#define DLAB_HOST_DIST_COMM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "dlab/comm.h"

#ifdef DLAB_HAVE_MPI
#include <mpi.h>
#endif

struct dl_comm {
    int rank, size, local_rank, local_size;
    bool mpi; /* collectives go through MPI */
#ifdef DLAB_HAVE_MPI
    MPI_Comm world;       /* a duplicate of MPI_COMM_WORLD: our traffic never meets anyone else's */
    void *scratch;        /* the sums' working space, kept between calls so that a */
    size_t scratch_bytes; /* sum of a size seen before allocates nothing */
#endif
};

#ifdef DLAB_HAVE_MPI
/* comm.c: DL_E_RUNTIME naming the MPI call, its rank and MPI's message. */
dl_status dl_comm_mpi_fail(const dl_comm *c, int rc, const char *call);
/* comm.c: c takes `comm` (errors returned, not fatal), which
 * dl_comm_finalize frees; MPI stays initialised while c lives. */
void dl_comm_mpi_adopt(dl_comm *c, MPI_Comm comm);
#endif

#endif
