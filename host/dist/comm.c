/* The communicator: MPI when the process was started by an MPI launcher,
 * a single rank otherwise. The policy (when MPI starts, threads,
 * deterministic sums, failures, Ctrl-C) is described in dlab/comm.h. */
#define _POSIX_C_SOURCE 200809L
#include "dlab/comm.h"
#include "comm_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DLAB_HAVE_MPI
#include <mpi.h>
#endif

/* Below this many values in all (P * n), a sum gathers every rank's vector
 * on every rank (one collective); above it, each rank adds one slice
 * (two collectives, each rank moving about 2n values whatever P is). */
#define DL_COMM_GATHER_ALL_MAX 65536
/* Values per pass of the sliced sum: bounds its scratch memory (P slices of
 * a pass) and keeps MPI's int counts far from overflow. */
#define DL_COMM_PASS ((size_t)1 << 20)
/* Bytes per MPI_Bcast call (MPI counts are int). */
#define DL_COMM_BCAST_CHUNK ((size_t)1 << 30)

/* --- the launcher's view of the job -------------------------------------- */

/* A non-negative integer from the environment, or -1 when unset or bad. */
static long env_count(const char *name)
{
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end == '\0' && v >= 0 ? v : -1;
}

/* Processes the launcher started, as it told us (-1: no launcher seen).
 * Open MPI sets OMPI_COMM_WORLD_SIZE; MPICH's Hydra, Intel MPI and Slurm's
 * pmi2 set PMI_SIZE; PMIx launchers set PMIX_RANK only. */
static long launcher_size(void)
{
    long n = env_count("OMPI_COMM_WORLD_SIZE");
    if (n < 0) n = env_count("PMI_SIZE");
    if (n < 0 && env_count("PMIX_RANK") >= 0) n = 0; /* a launcher, size unknown */
    return n;
}

/* srun started this process as one of several tasks but gave it no way to
 * reach the others (no PMI/PMIx: srun without --mpi). */
static long srun_tasks_without_mpi(void)
{
    long tasks = env_count("SLURM_STEP_NUM_TASKS");
    if (tasks > 1 && env_count("SLURM_PROCID") >= 0 && getenv("SLURM_LAUNCH_NODE_IPADDR") &&
        launcher_size() < 0)
        return tasks;
    return 0;
}

static void single_rank(dl_comm *c)
{
    c->rank = 0, c->size = 1, c->local_rank = 0, c->local_size = 1;
    c->mpi = false;
}

#ifdef DLAB_HAVE_MPI
static bool mpi_initialised_here; /* dl_comm_init called MPI_Init_thread */
static int mpi_users;             /* live communicators on MPI */

static dl_status mpi_fail(const dl_comm *c, int rc, const char *call)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", rc);
    return DL_FAIL(DL_E_RUNTIME, "%s failed on rank %d: %s", call, c ? c->rank : -1, s);
}
#define MPI_TRY(c, call)                                                                           \
    do {                                                                                           \
        int mpi_rc_ = (call);                                                                      \
        if (mpi_rc_ != MPI_SUCCESS) return mpi_fail((c), mpi_rc_, #call);                          \
    } while (0)

dl_status dl_comm_mpi_fail(const dl_comm *c, int rc, const char *call)
{
    return mpi_fail(c, rc, call);
}

void dl_comm_mpi_adopt(dl_comm *c, MPI_Comm comm)
{
    c->world = comm;
    c->mpi = true;
    mpi_users++;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
}

static dl_status mpi_join(dl_comm *c, int *argc, char ***argv)
{
    int inited = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&inited);
    if (!inited) {
        MPI_TRY(NULL, MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
        mpi_initialised_here = true;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_FUNNELED)
        return DL_FAIL(DL_E_RUNTIME,
                       "the MPI library gives no MPI_THREAD_FUNNELED support, which the CPU "
                       "backend's threads need");
    MPI_TRY(NULL, MPI_Comm_dup(MPI_COMM_WORLD, &c->world));
    c->mpi = true;
    mpi_users++;
    MPI_Comm_set_errhandler(c->world, MPI_ERRORS_RETURN);
    MPI_TRY(c, MPI_Comm_rank(c->world, &c->rank));
    MPI_TRY(c, MPI_Comm_size(c->world, &c->size));
    MPI_Comm node;
    MPI_TRY(c, MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    MPI_Comm_rank(node, &c->local_rank);
    MPI_Comm_size(node, &c->local_size);
    MPI_Comm_free(&node);
    long claimed = launcher_size();
    if (claimed > 0 && claimed != c->size)
        return DL_FAIL(DL_E_USAGE,
                       "started as one of %ld processes, but MPI sees %d: the launcher does not "
                       "match the MPI library dlab-gpu was built with",
                       claimed, c->size);
    return DL_OK;
}
#endif

dl_status dl_comm_init(int *argc, char ***argv, dl_comm **out)
{
    *out = NULL;
    dl_comm *c = calloc(1, sizeof *c);
    if (!c) return DL_FAIL(DL_E_MEMORY, "out of host memory for the communicator");
    single_rank(c);
    long tasks = srun_tasks_without_mpi();
    const char *force = getenv("DLAB_MPI");
    bool want = launcher_size() >= 0 || (force && strcmp(force, "1") == 0);
    if (force && strcmp(force, "0") == 0) want = false, tasks = 0;
    if (tasks > 1) {
        free(c);
        return DL_FAIL(DL_E_USAGE,
                       "srun started %ld tasks without an MPI plugin, so they cannot work "
                       "together: use srun --mpi=pmix (see srun --mpi=list)",
                       tasks);
    }
#ifdef DLAB_HAVE_MPI
    if (want) {
        dl_status st = mpi_join(c, argc, argv);
        if (st != DL_OK) {
            dl_comm_finalize(c);
            return st;
        }
    }
#else
    (void)argc, (void)argv;
    long n = launcher_size();
    if (want && n > 1) {
        free(c);
        return DL_FAIL(DL_E_USAGE,
                       "started by an MPI launcher as one of %ld processes, but this dlab-gpu "
                       "was built without MPI: rebuild with MPI (libopenmpi-dev) or run it alone",
                       n);
    }
#endif
    *out = c;
    return DL_OK;
}

void dl_comm_finalize(dl_comm *c)
{
    if (!c) return;
#ifdef DLAB_HAVE_MPI
    if (c->mpi) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) {
            MPI_Comm_free(&c->world);
            free(c->scratch);
            if (--mpi_users == 0 && mpi_initialised_here) {
                MPI_Finalize();
                mpi_initialised_here = false;
            }
        }
    } else if (mpi_initialised_here && mpi_users == 0) {
        /* mpi_join failed after MPI_Init_thread but before the dup. */
        MPI_Finalize();
        mpi_initialised_here = false;
    }
#endif
    free(c);
}

int dl_comm_rank(const dl_comm *c) { return c->rank; }
int dl_comm_size(const dl_comm *c) { return c->size; }
int dl_comm_local_rank(const dl_comm *c) { return c->local_rank; }
int dl_comm_local_size(const dl_comm *c) { return c->local_size; }
bool dl_comm_uses_mpi(const dl_comm *c) { return c->mpi; }

int dl_comm_device(const dl_comm *c, int devices)
{
    return devices < 1 ? -1 : c->local_rank % devices;
}

void dl_comm_shard(int m, int size, int rank, int *first, int *count)
{
    int base = m / size, extra = m % size;
    *first = rank * base + (rank < extra ? rank : extra);
    *count = base + (rank < extra ? 1 : 0);
}

/* --- sums in rank order -------------------------------------------------- */

#ifdef DLAB_HAVE_MPI
/* out[i] = parts[0][i] + parts[1][i] + ... + parts[ranks-1][i], added in
 * rank order in double and rounded once; part r starts at parts + r*stride. */
static void add_in_rank_order_f32(const float *parts, size_t stride, int ranks, size_t n,
                                  float *out)
{
    for (size_t i = 0; i < n; i++) {
        double acc = parts[i];
        for (int r = 1; r < ranks; r++) acc += parts[(size_t)r * stride + i];
        out[i] = (float)acc;
    }
}

static void add_in_rank_order_f64(const double *parts, size_t stride, int ranks, size_t n,
                                  double *out)
{
    for (size_t i = 0; i < n; i++) {
        double acc = parts[i];
        for (int r = 1; r < ranks; r++) acc += parts[(size_t)r * stride + i];
        out[i] = acc;
    }
}

static void add_in_rank_order(bool f32, const void *parts, size_t stride, int ranks, size_t n,
                              void *out)
{
    if (f32)
        add_in_rank_order_f32(parts, stride, ranks, n, out);
    else
        add_in_rank_order_f64(parts, stride, ranks, n, out);
}

/* Makes the scratch space at least `bytes` long. Every rank asks for the
 * same sizes in the same order (the sizes depend only on the vector length
 * and P), so every rank grows it at the same call and the agreement on a
 * failed allocation costs nothing when no growth is needed. */
static dl_status reserve_scratch(dl_comm *c, size_t bytes)
{
    if (bytes <= c->scratch_bytes) return DL_OK;
    void *p = realloc(c->scratch, bytes);
    dl_status st = DL_OK;
    if (p)
        c->scratch = p, c->scratch_bytes = bytes;
    else
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for %zu bytes of sum space", bytes);
    return dl_comm_agree(c, st);
}

/* The deterministic sum over MPI; see dlab/comm.h for the order. */
static dl_status sum_mpi(dl_comm *c, void *x, size_t n, bool f32)
{
    const int P = c->size;
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    const MPI_Datatype t = f32 ? MPI_FLOAT : MPI_DOUBLE;
    if ((size_t)P * n <= DL_COMM_GATHER_ALL_MAX) {
        DL_TRY(reserve_scratch(c, es * (size_t)P * n));
        MPI_TRY(c, MPI_Allgather(x, (int)n, t, c->scratch, (int)n, t, c->world));
        add_in_rank_order(f32, c->scratch, n, P, n, x);
        return DL_OK;
    }
    /* Long vectors, pass by pass: rank q adds slice q of the pass (the
     * slices of dl_comm_shard), then every rank collects every slice. */
    const size_t pass_max = n < DL_COMM_PASS ? n : DL_COMM_PASS;
    const size_t parts_bytes = es * (pass_max + (size_t)P);
    DL_TRY(reserve_scratch(c, parts_bytes + sizeof(int) * 4 * (size_t)P));
    void *parts = c->scratch;
    int *counts = (int *)((char *)c->scratch + parts_bytes);
    int *displs = counts + P, *rcounts = counts + 2 * P, *rdispls = counts + 3 * P;
    for (size_t done = 0; done < n; done += pass_max) {
        int len = (int)(n - done < pass_max ? n - done : pass_max);
        char *pass = (char *)x + es * done;
        for (int q = 0; q < P; q++) dl_comm_shard(len, P, q, &displs[q], &counts[q]);
        int mine = counts[c->rank];
        for (int q = 0; q < P; q++) rcounts[q] = mine, rdispls[q] = q * mine;
        MPI_TRY(c, MPI_Alltoallv(pass, counts, displs, t, parts, rcounts, rdispls, t, c->world));
        add_in_rank_order(f32, parts, (size_t)mine, P, (size_t)mine,
                          pass + es * (size_t)displs[c->rank]);
        MPI_TRY(c, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, pass, counts, displs, t,
                                  c->world));
    }
    return DL_OK;
}
#endif

dl_status dl_comm_allreduce_sum_f32(dl_comm *c, float *x, size_t n)
{
#ifdef DLAB_HAVE_MPI
    if (c->mpi && c->size > 1 && n > 0) return sum_mpi(c, x, n, true);
#endif
    (void)c, (void)x, (void)n;
    return DL_OK;
}

dl_status dl_comm_allreduce_sum_f64(dl_comm *c, double *x, size_t n)
{
#ifdef DLAB_HAVE_MPI
    if (c->mpi && c->size > 1 && n > 0) return sum_mpi(c, x, n, false);
#endif
    (void)c, (void)x, (void)n;
    return DL_OK;
}

#ifdef DLAB_HAVE_MPI
static dl_status max_mpi(dl_comm *c, void *x, size_t n, MPI_Datatype t, size_t es)
{
    for (size_t done = 0; done < n; done += DL_COMM_PASS) {
        int len = (int)(n - done < DL_COMM_PASS ? n - done : DL_COMM_PASS);
        MPI_TRY(c, MPI_Allreduce(MPI_IN_PLACE, (char *)x + es * done, len, t, MPI_MAX, c->world));
    }
    return DL_OK;
}
#endif

dl_status dl_comm_allreduce_max_i32(dl_comm *c, int32_t *x, size_t n)
{
#ifdef DLAB_HAVE_MPI
    if (c->mpi && c->size > 1) return max_mpi(c, x, n, MPI_INT32_T, sizeof *x);
#endif
    (void)c, (void)x, (void)n;
    return DL_OK;
}

dl_status dl_comm_allreduce_max_f64(dl_comm *c, double *x, size_t n)
{
#ifdef DLAB_HAVE_MPI
    if (c->mpi && c->size > 1) return max_mpi(c, x, n, MPI_DOUBLE, sizeof *x);
#endif
    (void)c, (void)x, (void)n;
    return DL_OK;
}

/* --- moving bytes -------------------------------------------------------- */

dl_status dl_comm_bcast(dl_comm *c, void *buf, size_t bytes, int root)
{
    if (root < 0 || root >= c->size)
        return DL_FAIL(DL_E_USAGE, "broadcast from rank %d of %d", root, c->size);
#ifdef DLAB_HAVE_MPI
    if (c->mpi && c->size > 1)
        for (size_t done = 0; done < bytes; done += DL_COMM_BCAST_CHUNK) {
            size_t len = bytes - done < DL_COMM_BCAST_CHUNK ? bytes - done : DL_COMM_BCAST_CHUNK;
            MPI_TRY(c, MPI_Bcast((char *)buf + done, (int)len, MPI_BYTE, root, c->world));
        }
#endif
    (void)buf, (void)bytes;
    return DL_OK;
}

dl_status dl_comm_gather_merge(dl_comm *c, dl_status local, const void *block, size_t bytes,
                               dl_comm_merge_fn merge, void *ud)
{
    const int ranks = dl_comm_size(c);
    void *all = NULL;
    size_t *sizes = calloc((size_t)ranks, sizeof *sizes);
    dl_status st = local;
    if (!sizes) st = DL_FAIL(DL_E_MEMORY, "out of host memory for %d ranks", ranks);
    if ((st = dl_comm_agree(c, st)) == DL_OK) st = dl_comm_gather(c, block, bytes, &all, sizes);
    if (st == DL_OK && dl_comm_rank(c) == 0) st = merge(ud, all, sizes, ranks);
    free(all), free(sizes);
    return dl_comm_agree(c, st);
}

dl_status dl_comm_gather(dl_comm *c, const void *block, size_t bytes, void **all, size_t *sizes)
{
    *all = NULL;
    if (!c->mpi || c->size == 1) {
        *all = malloc(bytes ? bytes : 1);
        if (!*all) return DL_FAIL(DL_E_MEMORY, "out of host memory gathering %zu bytes", bytes);
        if (bytes) memcpy(*all, block, bytes);
        if (sizes) sizes[0] = bytes;
        return DL_OK;
    }
#ifdef DLAB_HAVE_MPI
    const int P = c->size;
    uint64_t mine = bytes, *each = malloc(sizeof(uint64_t) * (size_t)P);
    int *counts = malloc(sizeof(int) * 2 * (size_t)P);
    dl_status st = each && counts ? DL_OK : DL_FAIL(DL_E_MEMORY, "out of host memory gathering");
    if ((st = dl_comm_agree(c, st)) != DL_OK) return free(each), free(counts), st;
    int rc = MPI_Allgather(&mine, 1, MPI_UINT64_T, each, 1, MPI_UINT64_T, c->world);
    if (rc != MPI_SUCCESS) return free(each), free(counts), mpi_fail(c, rc, "MPI_Allgather");
    uint64_t total = 0;
    for (int r = 0; r < P; r++) total += each[r];
    if (total > INT_MAX) {
        free(each), free(counts);
        return DL_FAIL(DL_E_MEMORY, "a gather of %llu bytes onto rank 0 is over MPI's 2 GiB limit",
                       (unsigned long long)total);
    }
    int *displs = counts + P;
    for (int r = 0, at = 0; r < P; r++) counts[r] = (int)each[r], displs[r] = at, at += counts[r];
    void *buf = NULL;
    if (c->rank == 0) {
        buf = malloc(total ? total : 1);
        if (!buf)
            st = DL_FAIL(DL_E_MEMORY, "out of host memory gathering %llu bytes on rank 0",
                         (unsigned long long)total);
    }
    if ((st = dl_comm_agree(c, st)) == DL_OK) {
        rc = MPI_Gatherv(block, (int)bytes, MPI_BYTE, buf, counts, displs, MPI_BYTE, 0, c->world);
        if (rc != MPI_SUCCESS) st = mpi_fail(c, rc, "MPI_Gatherv");
    }
    if (st == DL_OK && c->rank == 0) {
        if (sizes)
            for (int r = 0; r < P; r++) sizes[r] = (size_t)each[r];
        *all = buf;
    } else {
        free(buf);
    }
    free(each), free(counts);
    return st;
#else
    return DL_OK;
#endif
}

dl_status dl_comm_barrier(dl_comm *c)
{
#ifdef DLAB_HAVE_MPI
    if (c->mpi && c->size > 1) MPI_TRY(c, MPI_Barrier(c->world));
#endif
    (void)c;
    return DL_OK;
}

/* --- failures ------------------------------------------------------------ */

#ifdef DLAB_HAVE_MPI
/* Orders outcomes as dl_run_models does: 0 ok, 1 interrupted, 2 diverged,
 * 3 any other failure. */
static int severity(dl_status s)
{
    return s == DL_OK ? 0 : s == DL_E_INTERRUPTED ? 1 : s == DL_E_DIVERGED ? 2 : 3;
}
#endif

/* The message without a leading "rank R: " of this rank. */
static const char *unprefixed(const char *msg, int rank)
{
    char p[32];
    int len = snprintf(p, sizeof p, "rank %d: ", rank);
    return strncmp(msg, p, (size_t)len) == 0 ? msg + len : msg;
}

#ifdef DLAB_HAVE_MPI
/* Whether the message already names its rank: one that went through an
 * agreement before (agreements nest: a task agrees, then its caller). */
static bool names_a_rank(const char *msg)
{
    int at = 0;
    unsigned r;
    return sscanf(msg, "rank %u: %n", &r, &at) == 1 && at > 0;
}
#endif

dl_status dl_comm_agree(dl_comm *c, dl_status local)
{
#ifdef DLAB_HAVE_MPI
    if (!c->mpi || c->size == 1) return local;
    int in[2] = {severity(local), c->rank}, out[2];
    /* MAXLOC keeps the lowest rank among equal severities. */
    MPI_TRY(c, MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MAXLOC, c->world));
    if (out[0] == 0) return DL_OK;
    struct {
        int32_t status;
        char msg[1024];
        char where[256];
    } m;
    memset(&m, 0, sizeof m);
    if (c->rank == out[1]) {
        m.status = (int32_t)local;
        snprintf(m.msg, sizeof m.msg, "%s", dl_errmsg());
        snprintf(m.where, sizeof m.where, "%s", dl_errwhere());
    }
    MPI_TRY(c, MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, out[1], c->world));
    /* Put the winner's "file.c:123" back as the place of the failure. */
    char *colon = strrchr(m.where, ':');
    int line = colon ? atoi(colon + 1) : 0;
    if (colon) *colon = '\0';
    const char *file = m.where[0] ? m.where : NULL; /* a message without one stays so */
    /* A stop every rank shares names no rank: each was interrupted, though
     * the signal may have reached one of them. */
    if (names_a_rank(m.msg) || m.status == DL_E_INTERRUPTED)
        return dl_fail_at((dl_status)m.status, file, line, "%s", m.msg);
    return dl_fail_at((dl_status)m.status, file, line, "rank %d: %s", out[1], m.msg);
#else
    (void)c;
    return local;
#endif
}

void dl_comm_abort(dl_comm *c, dl_status st)
{
    char who[32] = "";
    int rank = c ? c->rank : 0;
    if (c && c->size > 1) snprintf(who, sizeof who, "rank %d: ", rank);
    const char *msg = unprefixed(dl_errmsg(), rank);
    if (st == DL_E_RUNTIME && dl_errwhere()[0])
        fprintf(stderr, "dlab-gpu: %serror: %s [%s]\n", who, msg, dl_errwhere());
    else if (st == DL_E_INTERRUPTED || st == DL_E_DIVERGED)
        fprintf(stderr, "dlab-gpu: %s%s\n", who, msg);
    else
        fprintf(stderr, "dlab-gpu: %serror: %s\n", who, msg);
    fflush(stderr);
    int code = dl_exit_code(st);
    if (code == 0) code = 1; /* stopping everyone is never a success */
#ifdef DLAB_HAVE_MPI
    if (c && c->mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

/* --- Ctrl-C -------------------------------------------------------------- */

static volatile sig_atomic_t *stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    if (*stop_flag) _exit(130); /* the second one: leave at once */
    *stop_flag = 1;
}

void dl_comm_on_stop_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void dl_comm_catch_stop_signals(volatile sig_atomic_t *flag)
{
    stop_flag = flag;
    dl_comm_on_stop_signals(on_stop_signal);
}

dl_status dl_comm_share_stop(dl_comm *c, bool local, bool *any)
{
    int32_t v = local ? 1 : 0;
    DL_TRY(dl_comm_allreduce_max_i32(c, &v, 1));
    *any = v != 0;
    return DL_OK;
}
