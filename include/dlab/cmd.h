/* The dlab-gpu commands: each runs one task from parsed options and reports. */
#ifndef DLAB_CMD_H
#define DLAB_CMD_H

#include <signal.h>
#include <stdio.h>

#include "dlab/backend.h"
#include "dlab/cli.h"
#include "dlab/data.h"
#include "dlab/train.h"

typedef struct {
    dl_backend *be;
    const dl_options *opt;
    FILE *text;                  /* the human report: stdout, or stderr with --json */
    volatile sig_atomic_t *stop; /* set by SIGINT */
    void (*progress)(void *ud, const dl_progress *p);
    void *progress_ud;
} dl_cmd;

dl_status dl_cmd_factorise(dl_cmd *c);
/* Loads PATH with the command's loader options and shows the loader's note
 * on stderr; need_labels refuses a .npy array (no labels). Over several
 * ranks every rank reads it whole, a collective: all of them return the
 * same status, and they stop with a message when one rank's copy differs
 * from rank 0's. */
dl_status dl_cmd_load_data(const dl_cmd *c, const char *path, bool need_labels, dl_dataset *d);
/* Loads a matrix whose rows the ranks share (dl_comm_shard's blocks): *m is
 * its rows, *mine this rank's *count rows (row-major, d->cols columns)
 * inside d. A .npy array: each rank reads only its rows. Text: rank 0 reads
 * and parses the file (its errors are reported once, with file:line), then
 * sends every rank its rows (MPI_Scatterv); rank 0 keeps the whole dataset
 * in d, the others only their rows. A collective; every rank returns the
 * same status. With one rank it is dl_cmd_load_data. */
dl_status dl_cmd_load_rows(const dl_cmd *c, const char *path, dl_dataset *d, int *m, float **mine,
                           int *count);
/* The training rows --train asks for out of `rows` (see dl_train_rows). */
dl_status dl_cmd_train_rows(const dl_cmd *c, int rows, int *train);
dl_status dl_cmd_mlp(dl_cmd *c);
dl_status dl_cmd_predict(dl_cmd *c);

#endif
