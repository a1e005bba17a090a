/* --seeds N over several ranks for the MLP: each rank trains its block of
 * the models with no traffic while training, and rank 0 gathers every
 * model's figures (see dl_mlp_split_seeds). */
#include "dlab/comm.h"
#include "dlab/mlp.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What a rank sends rank 0 ahead of its models' figures. */
typedef struct {
    int32_t epochs_run, stop_kind;
    double train_seconds;
    char message[sizeof(((dl_stop *)0)->message)];
} rank_head;

/* Floats a block of `count` models carries after its head: four final
 * figures and best_epoch (int32) per model, the parameters, the history. */
static size_t block_cells(const dl_mlp_result *r, int count, int epochs)
{
    return (size_t)count * (5 + r->n_params + (size_t)epochs * DL_MLP_METRICS);
}

/* The gathered blocks and what rank 0 makes of them. */
typedef struct {
    dl_mlp_result *res;
    int seeds;
} merge_ctx;

/* Rank 0: the run's result from the gathered blocks (its own included). */
static dl_status merge(void *ud, const char *all, const size_t *sizes, int ranks)
{
    merge_ctx *mc = ud;
    dl_mlp_result *res = mc->res;
    const int seeds = mc->seeds;
    const size_t S = (size_t)seeds, P = res->n_params;
    int epochs = -1, chosen = 0;
    bool uneven = false; /* ranks stopped at different epochs (a signal) */
    const char *at = all;
    for (int r = 0; r < ranks; r++) {
        const rank_head *h = (const rank_head *)at, *c = (const rank_head *)all;
        for (int q = 0; q < chosen; q++) c = (const rank_head *)((const char *)c + sizes[q]);
        if (epochs >= 0 && h->epochs_run != epochs) uneven = true;
        if (epochs < 0 || h->epochs_run < epochs) epochs = h->epochs_run;
        /* the worst stop; among equals the fewest epochs, then the lowest rank */
        if (h->stop_kind > c->stop_kind ||
            (h->stop_kind == c->stop_kind && h->epochs_run < c->epochs_run))
            chosen = r;
        at += sizes[r];
    }
    /* A signal stops each rank at its own chunk's end: the run reports the
     * epochs every rank finished, and epochs_trained how far each model
     * went. (Ranks stopped by a divergence report what one process would:
     * every model at the epoch of the first divergence.) */
    const rank_head *worst = (const rank_head *)all;
    for (int q = 0; q < chosen; q++) worst = (const rank_head *)((const char *)worst + sizes[q]);
    const bool count_epochs = uneven && worst->stop_kind == DL_STOP_INTERRUPTED;
    dl_mlp_result m = *res;
    m.models = seeds;
    m.epochs_run = epochs;
    m.epochs_trained = count_epochs ? malloc(sizeof(int) * S) : NULL;
    m.history = malloc(sizeof(float) * ((size_t)epochs * DL_MLP_METRICS * S + 1));
    m.train_loss = malloc(sizeof(float) * S), m.val_loss = malloc(sizeof(float) * S);
    m.train_accuracy = malloc(sizeof(float) * S), m.val_accuracy = malloc(sizeof(float) * S);
    m.best_epoch = malloc(sizeof(int) * S);
    m.params = malloc(sizeof(float) * S * P);
    if (!m.history || !m.train_loss || !m.val_loss || !m.train_accuracy || !m.val_accuracy ||
        !m.best_epoch || !m.params || (count_epochs && !m.epochs_trained)) {
        dl_mlp_result_free(&m);
        return DL_FAIL(DL_E_MEMORY, "out of host memory for %d models' figures", seeds);
    }
    at = all;
    for (int r = 0; r < ranks; r++) {
        int first, count;
        dl_comm_shard(seeds, ranks, r, &first, &count);
        const rank_head *h = (const rank_head *)at;
        const float *v = (const float *)(h + 1);
        const size_t c = (size_t)count;
        memcpy(m.train_loss + first, v, sizeof(float) * c);
        memcpy(m.val_loss + first, v + c, sizeof(float) * c);
        memcpy(m.train_accuracy + first, v + 2 * c, sizeof(float) * c);
        memcpy(m.val_accuracy + first, v + 3 * c, sizeof(float) * c);
        const int32_t *best = (const int32_t *)(v + 4 * c);
        for (size_t b = 0; b < c; b++) m.best_epoch[first + b] = best[b];
        for (size_t b = 0; count_epochs && b < c; b++) m.epochs_trained[first + b] = h->epochs_run;
        memcpy(m.params + (size_t)first * P, v + 5 * c, sizeof(float) * c * P);
        const float *hist = v + 5 * c + c * P;
        for (size_t row = 0; row < (size_t)epochs * DL_MLP_METRICS; row++)
            memcpy(m.history + row * S + first, hist + row * c, sizeof(float) * c);
        if (h->train_seconds > m.train_seconds) m.train_seconds = h->train_seconds;
        if (r == chosen) {
            m.stop.kind = (dl_stop_kind)h->stop_kind;
            memcpy(m.stop.message, h->message, sizeof m.stop.message);
        }
        at += sizes[r];
    }
    /* The figures of the epoch every rank finished. */
    if (uneven) dl_mlp_summarise(&m);
    /* m took res's sizes; res's own arrays go. */
    dl_mlp_result old = *res;
    *res = m;
    dl_mlp_result_free(&old);
    return DL_OK;
}

dl_status dl_mlp_split_seeds(dl_backend *be, const dl_dataset *d, const dl_mlp_config *cfg,
                             dl_mlp_result *res)
{
    memset(res, 0, sizeof *res);
    dl_comm *comm = be->comm;
    if (!comm || dl_comm_size(comm) == 1) return dl_mlp_run(be, d, cfg, res);
    const int ranks = dl_comm_size(comm), rank = dl_comm_rank(comm);
    DL_TRY(dl_mlp_check_config(cfg));
    /* One network is not split over ranks (its data are small): ranks
     * share models, so there must be one per rank at least. */
    if (cfg->seeds == 1)
        return DL_FAIL(DL_E_USAGE,
                       "--task mlp trains one model, which is not split over ranks: run it as "
                       "one process (without the launcher), or train --seeds N with N >= %d "
                       "models over these %d ranks",
                       ranks, ranks);
    if (cfg->seeds < ranks)
        return DL_FAIL(DL_E_USAGE,
                       "--seeds %d is fewer than the %d ranks sharing the models: give --seeds "
                       "%d or more, or start at most %d ranks",
                       cfg->seeds, ranks, ranks, cfg->seeds);
    int first, count;
    dl_comm_shard(cfg->seeds, ranks, rank, &first, &count);
    dl_mlp_config mine = *cfg;
    mine.seed = cfg->seed + (uint64_t)first;
    mine.seeds = count;
    dl_status st = dl_comm_agree(comm, dl_mlp_run(be, d, &mine, res));
    if (st != DL_OK) {
        dl_mlp_result_free(res);
        return st;
    }

    const size_t c = (size_t)count, E = (size_t)res->epochs_run;
    const size_t bytes = sizeof(rank_head) + sizeof(float) * block_cells(res, count, (int)E);
    char *block = calloc(1, bytes);
    if (block) {
        rank_head *h = (rank_head *)block;
        *h = (rank_head){.epochs_run = res->epochs_run,
                         .stop_kind = (int32_t)res->stop.kind,
                         .train_seconds = res->train_seconds};
        memcpy(h->message, res->stop.message, sizeof h->message);
        float *v = (float *)(h + 1);
        memcpy(v, res->train_loss, sizeof(float) * c);
        memcpy(v + c, res->val_loss, sizeof(float) * c);
        memcpy(v + 2 * c, res->train_accuracy, sizeof(float) * c);
        memcpy(v + 3 * c, res->val_accuracy, sizeof(float) * c);
        int32_t *best = (int32_t *)(v + 4 * c);
        for (size_t b = 0; b < c; b++) best[b] = res->best_epoch[b];
        memcpy(v + 5 * c, res->params, sizeof(float) * c * res->n_params);
        memcpy(v + 5 * c + c * res->n_params, res->history, sizeof(float) * E * DL_MLP_METRICS * c);
    }
    st = block ? DL_OK : DL_FAIL(DL_E_MEMORY, "out of host memory for %d models", count);
    merge_ctx mc = {res, cfg->seeds};
    st = dl_comm_gather_merge(comm, st, block, bytes, merge, &mc);
    free(block);
    if (st != DL_OK) dl_mlp_result_free(res);
    return st;
}
