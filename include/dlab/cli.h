/* Command-line options of dlab-gpu, parsed and checked. */
#ifndef DLAB_CLI_H
#define DLAB_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dlab/backend.h"
#include "dlab/mlp.h"
#include "dlab/data.h"

typedef enum { DL_TASK_NONE = 0, DL_TASK_FACTORISE, DL_TASK_MLP, DL_TASK_PREDICT } dl_task;

typedef struct {
    dl_task task;
    const char *data;     /* NULL: the bundled iris file */
    const char *model;    /* --model FILE (predict) */
    int synth_m, synth_n; /* --synthetic MxN (factorise) */
    int rank, epochs, seeds, hidden, batch, train;
    float lr, momentum;
    uint64_t seed;
    bool center, svd, json, quiet, force;
    const char *out;
    dl_optim_kind optim;  /* --optim sgd | momentum | adam, when given_optim */
    dl_mlp_preset preset; /* --preset lab | careful (default careful) */
    dl_device device;
    dl_fused_mode fused; /* --fused auto | on | off (factorise, mlp) */
    bool given_epochs, given_lr, given_optim, given_momentum; /* explicit, beats the preset */
    bool help, version;
    /* Data files: --delimiter, --header, --label-column, --columns. */
    dl_load_options load;
    /* --train F: a fraction of the rows in (0, 1); 0 when --train is a
     * count (train > 0) or not given (train 0: two thirds of the rows). */
    double train_fraction;
} dl_options;

/* Parses argv. Failures are DL_E_USAGE with a one-line message naming the
 * option. --help/--version set the flags and stop parsing. */
dl_status dl_cli_parse(int argc, char **argv, dl_options *o);
void dl_cli_usage(FILE *f);
const char *dl_default_data_path(void);

#endif
