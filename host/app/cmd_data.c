/* The data file of a command: loaded with the --delimiter, --header,
 * --label-column and --columns options, the loader's note on what it
 * assumed shown on stderr (unless --quiet), and the training split sized
 * from the rows. */
#include "dlab/cmd.h"
#include "dlab/data.h"

#include <stdio.h>

dl_status dl_cmd_load_data(const dl_cmd *c, const char *path, bool need_labels, dl_dataset *d)
{
    dl_status st = dl_dataset_load_opts(path, &c->opt->load, d);
    if (d->note[0] && !c->opt->quiet) fprintf(stderr, "dlab-gpu: %s\n", d->note);
    if (st != DL_OK) return st;
    if (need_labels && d->format == DL_FORMAT_NPY) {
        dl_dataset_free(d);
        return DL_FAIL(DL_E_INPUT,
                       "%s is a .npy array, which holds no class labels; --task mlp needs a text "
                       "file with a label column",
                       path);
    }
    return DL_OK;
}

dl_status dl_cmd_train_rows(const dl_cmd *c, int rows, int *train)
{
    return dl_train_rows(c->opt->train, c->opt->train_fraction, rows, train);
}
