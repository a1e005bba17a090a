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
 * on stderr; need_labels refuses a .npy array (no labels). */
dl_status dl_cmd_load_data(const dl_cmd *c, const char *path, bool need_labels, dl_dataset *d);
/* The training rows --train asks for out of `rows` (see dl_train_rows). */
dl_status dl_cmd_train_rows(const dl_cmd *c, int rows, int *train);
dl_status dl_cmd_mlp(dl_cmd *c);
dl_status dl_cmd_predict(dl_cmd *c);

#endif
