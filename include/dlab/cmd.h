/* The dlab-gpu commands: each runs one task from parsed options and reports. */
#ifndef DLAB_CMD_H
#define DLAB_CMD_H

#include <signal.h>
#include <stdio.h>

#include "dlab/backend.h"
#include "dlab/cli.h"
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
dl_status dl_cmd_mlp(dl_cmd *c);
dl_status dl_cmd_predict(dl_cmd *c);

#endif
