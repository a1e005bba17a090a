/* Fuzz target for the data loader: any bytes must give either a dataset
 * whose shape is consistent or a DL_E_INPUT / DL_E_USAGE failure with a
 * one-line message, never a crash, a leak or undefined behaviour. Each
 * input is read twice: with every choice left to detection, and with
 * delimiter, header, label-column and columns options picked from the
 * input's last bytes, so the explicit paths are fuzzed too. Text and .npy
 * arrays (recognised by their magic bytes) go through the same entry
 * point. Built with libFuzzer by scripts/fuzz.sh; tests/fuzz_replay.c runs
 * the kept corpus in ctest. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dlab/data.h"

static void check(const uint8_t *data, size_t size, const dl_load_options *opt)
{
    dl_dataset d;
    dl_status st = dl_dataset_parse_opts((const char *)data, size, "fuzz.csv", opt, &d);
    if (memchr(d.note, '\n', sizeof d.note) || !memchr(d.note, '\0', sizeof d.note)) abort();
    if (st == DL_OK) {
        if (d.rows < 2 || d.cols < 1 || !d.x) abort();
        if (d.labels) {
            if (d.n_classes < 1) abort();
            for (int r = 0; r < d.rows; r++)
                if (d.labels[r] < 0 || d.labels[r] >= d.n_classes) abort();
        }
        if (d.col_names)
            for (int c = 0; c < d.cols; c++)
                if (d.col_names[c] && strlen(d.col_names[c]) > size) abort();
        volatile float sink = 0; /* every value must be readable and finite */
        for (size_t i = 0; i < (size_t)d.rows * d.cols; i++) {
            if (!isfinite(d.x[i])) abort();
            sink += d.x[i];
        }
        (void)sink;
        dl_dataset_free(&d);
    } else {
        const char *msg = dl_errmsg();
        if ((st != DL_E_INPUT && st != DL_E_USAGE) || !msg[0] || strchr(msg, '\n')) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size, NULL);
    if (size < 2) return 0;
    static const char *const labels[] = {NULL, "last", "none", "2", "b", "0", "99"};
    static const char *const columns[] = {NULL, "1", "2-3", "1,3-", "-2", "a,b", "3-1", "1,,2"};
    unsigned a = data[size - 1], b = data[size - 2];
    dl_load_options opt = {
        .delimiter = (dl_delimiter)(a % 5),
        .header = (dl_header_mode)(a / 5 % 3),
        .label_column = labels[b % 7],
        .columns = columns[b / 7 % 8],
    };
    check(data, size, &opt);
    return 0;
}
