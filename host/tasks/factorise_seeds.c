/* --seeds N over several ranks: each rank trains its block of the models on
 * the whole matrix, with no traffic while training, and rank 0 gathers
 * every model's figures (see dl_factorise_split_seeds). */
#include "dlab/comm.h"
#include "dlab/factorise.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What a rank sends rank 0 ahead of its models' errors and history. */
typedef struct {
    int32_t epochs_run, stop_kind, diverged_epoch, data_overflow;
    double train_seconds, sigma1_est, stable_lr, suggested_lr;
    char message[sizeof(((dl_stop *)0)->message)];
} rank_head;

/* The rank whose stop the run reports, as one process picks it: the worst
 * kind; among divergences the earliest epoch, among interruptions the
 * fewest epochs; the lowest rank (the lowest seeds) on a tie. */
static bool reports_before(const rank_head *a, const rank_head *b)
{
    if (a->stop_kind != b->stop_kind) return a->stop_kind > b->stop_kind;
    if (a->stop_kind == DL_STOP_DIVERGED) return a->diverged_epoch < b->diverged_epoch;
    return a->epochs_run < b->epochs_run;
}

/* The gathered blocks and what rank 0 makes of them. */
typedef struct {
    dl_factorise_result *res;
    int seeds;
} merge_ctx;

/* Rank 0: the run's result from its own and the gathered blocks. */
static dl_status merge(void *ud, const char *all, const size_t *sizes, int ranks)
{
    merge_ctx *mc = ud;
    dl_factorise_result *res = mc->res;
    const int seeds = mc->seeds;
    const rank_head **heads = malloc(sizeof *heads * (size_t)ranks);
    if (!heads) return DL_FAIL(DL_E_MEMORY, "out of host memory for %d ranks", ranks);
    const char *at = all;
    int epochs = -1, chosen = 0;
    for (int r = 0; r < ranks; r++) {
        heads[r] = (const rank_head *)at;
        at += sizes[r];
        if (epochs < 0 || heads[r]->epochs_run < epochs) epochs = heads[r]->epochs_run;
        if (reports_before(heads[r], heads[chosen])) chosen = r;
    }
    double *sse = malloc(sizeof(double) * (size_t)seeds);
    double *hist = malloc(sizeof(double) * ((size_t)epochs * seeds + 1));
    if (!sse || !hist) {
        free(sse), free(hist), free(heads);
        return DL_FAIL(DL_E_MEMORY, "out of host memory for %d models' histories", seeds);
    }
    /* A signal stops each rank at its own chunk's end: the run reports the
     * epochs every rank finished and each model's error after that epoch,
     * which is its loss before the next (in its history); epochs_trained
     * says how far each model went. */
    bool uneven = false;
    for (int r = 0; r < ranks; r++) uneven = uneven || heads[r]->epochs_run != epochs;
    int *trained = uneven && heads[chosen]->stop_kind == DL_STOP_INTERRUPTED
                       ? malloc(sizeof(int) * (size_t)seeds)
                       : NULL;
    if (uneven && heads[chosen]->stop_kind == DL_STOP_INTERRUPTED && !trained) {
        free(sse), free(hist), free(heads);
        return DL_FAIL(DL_E_MEMORY, "out of host memory for %d models' epochs", seeds);
    }
    int first = 0;
    for (int r = 0; r < ranks; r++) {
        int count, first_r;
        dl_comm_shard(seeds, ranks, r, &first_r, &count);
        const double *v = (const double *)(heads[r] + 1);
        memcpy(sse + first, v, sizeof(double) * (size_t)count);
        if (trained && heads[r]->epochs_run > epochs)
            memcpy(sse + first, v + count + (size_t)epochs * count, sizeof(double) * (size_t)count);
        for (int b = 0; trained && b < count; b++) trained[first + b] = heads[r]->epochs_run;
        for (int e = 0; e < epochs; e++)
            memcpy(hist + (size_t)e * seeds + first, v + count + (size_t)e * count,
                   sizeof(double) * (size_t)count);
        if (heads[r]->train_seconds > res->train_seconds)
            res->train_seconds = heads[r]->train_seconds;
        first += count;
    }
    free(res->sse_gd), free(res->loss_history), free(res->epochs_trained);
    res->sse_gd = sse, res->loss_history = hist, res->epochs_trained = trained;
    res->seeds = seeds;
    res->epochs_run = epochs;
    const rank_head *h = heads[chosen];
    res->stop.kind = (dl_stop_kind)h->stop_kind;
    memcpy(res->stop.message, h->message, sizeof res->stop.message);
    if (h->stop_kind == DL_STOP_DIVERGED) {
        res->diverged_epoch = h->diverged_epoch;
        res->data_overflow = h->data_overflow;
        res->sigma1_est = h->sigma1_est;
        res->stable_lr = h->stable_lr;
        res->suggested_lr = h->suggested_lr;
    }
    free(heads);
    return DL_OK;
}

/* The matrix every rank trains its models on: a data matrix, or the
 * synthetic one each rank makes whole. */
typedef struct {
    const float *a; /* NULL: synthetic */
    int m, n, true_rank;
    float noise;
    uint64_t data_seed;
} source;

static dl_status run(dl_backend *be, const source *s, const dl_factorise_config *cfg,
                     dl_factorise_result *res)
{
    if (s->a) return dl_factorise(be, s->a, s->m, s->n, cfg, res);
    return dl_factorise_synthetic(be, s->m, s->n, s->true_rank, s->noise, s->data_seed, cfg, res);
}

static dl_status split_seeds(dl_backend *be, const source *src, const dl_factorise_config *cfg,
                             dl_factorise_result *res)
{
    memset(res, 0, sizeof *res);
    dl_comm *comm = be->comm;
    if (!comm || dl_comm_size(comm) == 1) return run(be, src, cfg, res);
    const int ranks = dl_comm_size(comm), rank = dl_comm_rank(comm);
    DL_TRY(dl_factorise_validate(src->m, src->n, cfg));
    if (cfg->seeds < ranks)
        return DL_FAIL(DL_E_USAGE,
                       "--seeds %d is fewer than the %d ranks sharing the models: give --seeds "
                       "%d or more, or start at most %d ranks (one model, without --seeds, "
                       "shares its rows over the ranks)",
                       cfg->seeds, ranks, ranks, cfg->seeds);
    int first, count;
    dl_comm_shard(cfg->seeds, ranks, rank, &first, &count);
    dl_factorise_config mine = *cfg;
    mine.seed = cfg->seed + (uint64_t)first;
    mine.seeds = count;
    mine.svd = cfg->svd && rank == 0; /* rank 0 reports it */
    dl_status st = dl_comm_agree(comm, run(be, src, &mine, res));
    if (st != DL_OK) {
        dl_factorise_result_free(res);
        return st;
    }

    /* [head | sse_gd (count) | loss history (epochs_run x count)] */
    const size_t cells = (size_t)count * (1 + (size_t)res->epochs_run);
    const size_t bytes = sizeof(rank_head) + sizeof(double) * cells;
    char *block = calloc(1, bytes);
    if (block) {
        rank_head *h = (rank_head *)block;
        *h = (rank_head){.epochs_run = res->epochs_run,
                         .stop_kind = (int32_t)res->stop.kind,
                         .diverged_epoch = res->diverged_epoch,
                         .data_overflow = res->data_overflow,
                         .train_seconds = res->train_seconds,
                         .sigma1_est = res->sigma1_est,
                         .stable_lr = res->stable_lr,
                         .suggested_lr = res->suggested_lr};
        memcpy(h->message, res->stop.message, sizeof h->message);
        double *v = (double *)(h + 1);
        memcpy(v, res->sse_gd, sizeof(double) * (size_t)count);
        memcpy(v + count, res->loss_history, sizeof(double) * (size_t)count * res->epochs_run);
    }
    st = block ? DL_OK : DL_FAIL(DL_E_MEMORY, "out of host memory for %d models", count);
    merge_ctx mc = {res, cfg->seeds};
    st = dl_comm_gather_merge(comm, st, block, bytes, merge, &mc);
    free(block);
    if (st != DL_OK) dl_factorise_result_free(res);
    return st;
}

dl_status dl_factorise_split_seeds(dl_backend *be, const float *a, int m, int n,
                                   const dl_factorise_config *cfg, dl_factorise_result *res)
{
    source s = {.a = a, .m = m, .n = n};
    return split_seeds(be, &s, cfg, res);
}

dl_status dl_factorise_synthetic_split_seeds(dl_backend *be, int m, int n, int true_rank,
                                             float noise, uint64_t data_seed,
                                             const dl_factorise_config *cfg,
                                             dl_factorise_result *res)
{
    source s = {.m = m, .n = n, .true_rank = true_rank, .noise = noise, .data_seed = data_seed};
    return split_seeds(be, &s, cfg, res);
}
