/* Fuzz target for the data loader: any bytes must give either a dataset
 * whose shape is consistent or DL_E_INPUT with a one-line message, never a
 * crash, a leak or undefined behaviour. Built with libFuzzer by
 * scripts/fuzz.sh; tests/fuzz_replay.c runs the kept corpus in ctest. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlab/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dl_dataset d;
    dl_status st = dl_dataset_parse((const char *)data, size, "fuzz.csv", &d);
    if (st == DL_OK) {
        if (d.rows < 2 || d.cols < 1 || !d.x) abort();
        if (d.labels) {
            if (d.n_classes < 1) abort();
            for (int r = 0; r < d.rows; r++)
                if (d.labels[r] < 0 || d.labels[r] >= d.n_classes) abort();
        }
        volatile float sink = 0; /* every value must be readable and finite */
        for (size_t i = 0; i < (size_t)d.rows * d.cols; i++) {
            if (!isfinite(d.x[i])) abort();
            sink += d.x[i];
        }
        (void)sink;
        dl_dataset_free(&d);
    } else {
        const char *msg = dl_errmsg();
        if (st != DL_E_INPUT || !msg[0] || strchr(msg, '\n')) abort();
    }
    return 0;
}
