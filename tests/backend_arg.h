/* Shared by the suites that run once per backend: parses --backend and
 * creates it, or exits 77 when the CUDA backend has no GPU here. */
#ifndef DL_BACKEND_ARG_H
#define DL_BACKEND_ARG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlab/backend.h"
#include "dl_test.h"

static dl_backend *dl_test_backend(int argc, char **argv)
{
    const char *name = "cpu";
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--backend")) name = argv[i + 1];
    dl_device dev;
    if (dl_device_parse(name, &dev) != DL_OK || dev == DL_DEVICE_AUTO) {
        fprintf(stderr, "usage: %s --backend cpu|cuda\n", argv[0]);
        exit(2);
    }
    dl_backend *be = NULL;
    dl_status st = dl_backend_create(dev, &be, NULL, 0);
    if (st == DL_E_NODEVICE) {
        printf("skipped: %s\n", dl_errmsg());
        exit(DL_SKIP);
    }
    if (st != DL_OK) {
        fprintf(stderr, "cannot create the %s backend: %s\n", name, dl_errmsg());
        exit(1);
    }
    fprintf(stderr, "backend: %s (%s)\n", be->name, be->device);
    return be;
}

#endif
