/* The data file of a command: loaded with the --delimiter, --header,
 * --label-column and --columns options, the loader's note on what it
 * assumed shown on stderr (unless --quiet), and the training split sized
 * from the rows.
 *
 * Over several ranks (dlab/comm.h) there is one rule: no rank trains on
 * data another rank does not see the same. A file every rank reads whole is
 * checked to be the same everywhere (a checksum compared with rank 0's); a
 * matrix whose rows the ranks share is read once: a .npy array by each rank
 * for its own rows, a text file by rank 0, which sends each rank its rows. */
#include "dlab/cmd.h"
#include "dlab/comm.h"
#include "dlab/data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dl_comm *ranks_of(const dl_cmd *c)
{
    dl_comm *comm = c->be->comm;
    return comm && dl_comm_size(comm) > 1 ? comm : NULL;
}

static bool is_root(const dl_cmd *c)
{
    dl_comm *comm = ranks_of(c);
    return !comm || dl_comm_rank(comm) == 0;
}

/* Loads on this rank alone; the note is shown once, by rank 0. */
static dl_status load_here(const dl_cmd *c, const char *path, bool need_labels, dl_dataset *d)
{
    dl_status st = dl_dataset_load_opts(path, &c->opt->load, d);
    if (d->note[0] && !c->opt->quiet && is_root(c)) fprintf(stderr, "dlab-gpu: %s\n", d->note);
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

/* FNV-1a, 64 bits (Fowler, Noll and Vo), over n bytes. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t dataset_hash(const dl_dataset *d)
{
    int32_t dims[3] = {d->rows, d->cols, d->n_classes};
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, dims, sizeof dims);
    if (d->x) h = fnv1a(h, d->x, sizeof(float) * (size_t)d->rows * d->cols);
    if (d->labels) h = fnv1a(h, d->labels, sizeof(int32_t) * (size_t)d->rows);
    return h;
}

/* Every rank read the file whole: stops all of them, naming the lowest rank
 * whose copy differs, when the copies are not the same (a file that differs
 * between nodes, or changed while the ranks read it). A collective. */
static dl_status same_everywhere(dl_comm *comm, const char *path, const dl_dataset *d)
{
    uint64_t mine = dataset_hash(d), first = mine;
    DL_TRY(dl_comm_bcast(comm, &first, sizeof first, 0));
    dl_status st = DL_OK;
    if (mine != first)
        st = DL_FAIL(DL_E_INPUT,
                     "%s: this rank read other data than rank 0 (%dx%d here); every rank must "
                     "see the same file",
                     path, d->rows, d->cols);
    return dl_comm_agree(comm, st);
}

dl_status dl_cmd_load_data(const dl_cmd *c, const char *path, bool need_labels, dl_dataset *d)
{
    dl_status st = load_here(c, path, need_labels, d);
    dl_comm *comm = ranks_of(c);
    if (!comm) return st;
    if ((st = dl_comm_agree(comm, st)) == DL_OK) st = same_everywhere(comm, path, d);
    if (st != DL_OK) dl_dataset_free(d);
    return st;
}

/* Rank 0 has read the text file whole; each rank receives its rows. Rank 0
 * keeps the whole dataset (its labels name the points of the figures). */
static dl_status scatter_rows(dl_comm *comm, dl_dataset *d, int *m, float **mine, int *count)
{
    const int ranks = dl_comm_size(comm), rank = dl_comm_rank(comm);
    int32_t dims[2] = {d->rows, d->cols};
    DL_TRY(dl_comm_bcast(comm, dims, sizeof dims, 0));
    int first;
    dl_comm_shard(dims[0], ranks, rank, &first, count);
    *m = dims[0];
    size_t *sizes = rank == 0 ? malloc(sizeof(size_t) * (size_t)ranks) : NULL;
    dl_status st = DL_OK;
    if (rank == 0) {
        for (int r = 0; sizes && r < ranks; r++) {
            int f, n;
            dl_comm_shard(dims[0], ranks, r, &f, &n);
            sizes[r] = sizeof(float) * (size_t)n * dims[1];
        }
        *mine = d->x; /* rank 0's rows come first: they stay where they are */
    } else {
        d->rows = *count, d->cols = dims[1];
        d->x = *mine = malloc(sizeof(float) * ((size_t)*count * dims[1] + 1));
    }
    if ((rank == 0 && !sizes) || !*mine)
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for %d rows", *count);
    if ((st = dl_comm_agree(comm, st)) == DL_OK)
        st = dl_comm_scatter(comm, d->x, sizes, *mine, sizeof(float) * (size_t)*count * dims[1]);
    free(sizes);
    return st;
}

dl_status dl_cmd_load_rows(const dl_cmd *c, const char *path, dl_dataset *d, int *m, float **mine,
                           int *count)
{
    memset(d, 0, sizeof *d);
    *mine = NULL;
    dl_comm *comm = ranks_of(c);
    if (!comm) {
        DL_TRY(load_here(c, path, false, d));
        *m = *count = d->rows, *mine = d->x;
        return DL_OK;
    }
    bool npy = false;
    int first = 0, total = 0;
    dl_status st = dl_npy_load_block(path, &c->opt->load, dl_comm_size(comm), dl_comm_rank(comm),
                                     &npy, &total, &first, d);
    /* A file one rank sees as .npy and another as text is two files. */
    int32_t kind[2] = {npy, !npy};
    if ((st = dl_comm_agree(comm, st)) == DL_OK &&
        (st = dl_comm_allreduce_max_i32(comm, kind, 2)) == DL_OK && kind[0] && kind[1])
        st = DL_FAIL(DL_E_INPUT,
                     "%s: some ranks read a .npy array there and others text; every "
                     "rank must see the same file",
                     path);
    if (st == DL_OK && npy) {
        /* Each rank read its rows; the shape must be the same everywhere. */
        int32_t shape[2] = {total, d->cols}, first_shape[2] = {total, d->cols};
        st = dl_comm_bcast(comm, first_shape, sizeof first_shape, 0);
        if (st == DL_OK && memcmp(shape, first_shape, sizeof shape))
            st = DL_FAIL(DL_E_INPUT,
                         "%s: this rank read a %dx%d array, rank 0 a %dx%d one; every rank must "
                         "see the same file",
                         path, shape[0], shape[1], first_shape[0], first_shape[1]);
        st = dl_comm_agree(comm, st);
        *m = total, *count = d->rows, *mine = d->x;
    } else if (st == DL_OK) {
        dl_dataset_free(d);
        st = dl_comm_rank(comm) == 0 ? load_here(c, path, false, d) : DL_OK;
        if ((st = dl_comm_agree(comm, st)) == DL_OK) st = scatter_rows(comm, d, m, mine, count);
    }
    if (st != DL_OK) {
        dl_dataset_free(d);
        *mine = NULL;
    }
    return st;
}

dl_status dl_cmd_train_rows(const dl_cmd *c, int rows, int *train)
{
    return dl_train_rows(c->opt->train, c->opt->train_fraction, rows, train);
}
