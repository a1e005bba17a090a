/* Shared by the multi-rank suites: the closing verdict of a suite that runs
 * on every rank of a job. */
#ifndef DLAB_DIST_TEST_H
#define DLAB_DIST_TEST_H

#include <stdint.h>
#include <stdio.h>

#include "dl_test.h"
#include "dlab/comm.h"

/* Every rank prints its own summary line ("NAME (rank R of P): ..."); the
 * ranks' verdicts are shared, so one rank's failure fails the whole job.
 * Returns the suite's exit status. */
static inline int dl_t_ranks_summary(dl_comm *c, const char *name)
{
    int32_t failed = dl_t_failed_tests;
    dl_comm_allreduce_max_i32(c, &failed, 1);
    char suite[64];
    snprintf(suite, sizeof suite, "%s (rank %d of %d)", name, dl_comm_rank(c), dl_comm_size(c));
    int rc = dl_test_summary(suite);
    return rc ? rc : failed ? 1 : 0;
}

#endif
