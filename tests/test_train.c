/* The epoch loop and the many-model runner: a group's slice of the history
 * lands where the whole run's layout puts it, divergence and Ctrl-C are
 * recorded as stops (not failures), only group 0 reports progress, the
 * models are cut into contiguous groups that cover each model once, and the
 * groups' outcomes and failures are combined as train.h documents. */
#include <signal.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend_arg.h"
#include "dl_test.h"
#include "dlab/train.h"

static dl_backend *be;

/* --- the epoch loop -------------------------------------------------------- */

/* An epoch that records the same `n` values every time. */
typedef struct {
    float *hist, *vals;
    int n;
    int32_t *counter;
} record_ctx;

static dl_status record_epoch(dl_backend *b, void *v)
{
    record_ctx *c = v;
    return dl_record(b, c->hist, c->vals, c->n, c->counter);
}

/* Runs `epochs` epochs of group `grp` whose device metrics are vals
 * (metrics x count), into `host` (epochs x metrics x models). */
static dl_status run_loop(const dl_group *grp, int epochs, const float *vals, const dl_loop *loop,
                          float *host, dl_outcome *out)
{
    record_ctx c = {.n = loop->metrics * grp->count};
    dl_graph *g = NULL;
    dl_status st;
    if ((st = dl_alloc(be, sizeof(float) * (size_t)epochs * c.n, (void **)&c.hist)) ||
        (st = dl_alloc(be, sizeof(float) * (size_t)c.n, (void **)&c.vals)) ||
        (st = dl_alloc(be, sizeof(int32_t), (void **)&c.counter)) ||
        (st = dl_upload(be, c.vals, vals, sizeof(float) * (size_t)c.n)) ||
        (st = dl_graph_create(be, record_epoch, &c, &g)))
        goto done;
    st = dl_train_loop(be, g, epochs, c.hist, host, loop, grp, out);
done:
    if (g) dl_graph_free(be, g);
    dl_free(be, c.hist), dl_free(be, c.vals), dl_free(be, c.counter);
    return st;
}

enum { MODELS = 5, METRICS = 3, EPOCHS = 7 };

/* Metric k of model m, as the tests record it. */
static float value(int k, int m) { return (float)(100 * k + 10 * m); }

static void check_slice(int first, int count)
{
    dl_group grp = {.index = first == 0 ? 0 : 1, .first = first, .count = count, .models = MODELS};
    float vals[METRICS * MODELS], host[EPOCHS * METRICS * MODELS];
    for (int k = 0; k < METRICS; k++)
        for (int b = 0; b < count; b++) vals[k * count + b] = value(k, first + b);
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) host[i] = -1.0f;
    dl_loop loop = {.metrics = METRICS, .check_first = 0, .check_count = METRICS, .lr = 0.1f};
    dl_outcome out;
    dl_status st = run_loop(&grp, EPOCHS, vals, &loop, host, &out);
    DL_CHECK(st == DL_OK, "models %d..%d: %s", first, first + count - 1, dl_errmsg());
    DL_CHECK(out.epochs_run == EPOCHS && out.stop.kind == DL_STOP_NONE && !out.stop.message[0],
             "epochs_run %d, stop %s", out.epochs_run, dl_stop_name(out.stop.kind));
    DL_CHECK(out.seconds >= 0.0, "seconds %g", out.seconds);
    int wrong = 0;
    for (int e = 0; e < EPOCHS; e++)
        for (int k = 0; k < METRICS; k++)
            for (int m = 0; m < MODELS; m++) {
                float want = m >= first && m < first + count ? value(k, m) : -1.0f;
                wrong += host[(e * METRICS + k) * MODELS + m] != want;
            }
    DL_CHECK(wrong == 0, "models %d..%d: %d history values misplaced", first, first + count - 1,
             wrong);
}

static void test_loop_writes_the_group_slice(void)
{
    check_slice(0, MODELS); /* one group: the layouts coincide */
    check_slice(0, 2);
    check_slice(2, 2);
    check_slice(4, 1);
}

static void test_loop_records_divergence_as_a_stop(void)
{
    dl_group grp = {.index = 1, .first = 1, .count = 2, .models = 3};
    float vals[2 * 2] = {1.0f, 2.0f, NAN, 4.0f}; /* metric 1 of model 1 is NaN */
    float host[EPOCHS * 2 * 3];
    dl_loop loop = {.metrics = 2, .check_first = 0, .check_count = 1, .lr = 0.5f};
    dl_outcome out;
    dl_status st = run_loop(&grp, EPOCHS, vals, &loop, host, &out);
    DL_CHECK(st == DL_OK && out.stop.kind == DL_STOP_NONE && out.epochs_run == EPOCHS,
             "an unchecked NaN stopped training: %s, %s", dl_status_name(st), out.stop.message);

    vals[1] = INFINITY; /* metric 0 of model 2: checked */
    st = run_loop(&grp, EPOCHS, vals, &loop, host, &out);
    DL_CHECK(st == DL_OK, "a divergence returned %s (%s)", dl_status_name(st), dl_errmsg());
    DL_CHECK(out.stop.kind == DL_STOP_DIVERGED, "stop %s", dl_stop_name(out.stop.kind));
    DL_CHECK(out.epochs_run == 1, "diverged at the first epoch, reported %d", out.epochs_run);
    DL_CHECK(strstr(out.stop.message, "Inf at epoch 1 of 7") &&
                 strstr(out.stop.message, "--lr, now 0.5"),
             "message: %s", out.stop.message);
}

/* --- loops driven by a run hook (the fused ops) ----------------------------- */

/* A run hook whose one model's metric after epoch e is e + 1, NaN from
 * epoch `bad` (0-based) on; it logs the chunks it is asked for. */
typedef struct {
    float *hist; /* device: epochs x 1 x 1 */
    int bad;
    int calls, firsts[64], sizes[64];
} hook_ctx;

static dl_status hook_run(dl_backend *b, void *v, int first, int n)
{
    hook_ctx *c = v;
    if (c->calls < 64) c->firsts[c->calls] = first, c->sizes[c->calls] = n;
    c->calls++;
    float rows[64];
    if (n > 64) return DL_FAIL(DL_E_RUNTIME, "hook_run: a chunk of %d epochs (64 at most)", n);
    for (int i = 0; i < n; i++) rows[i] = first + i >= c->bad ? NAN : (float)(first + i + 1);
    return dl_upload(b, c->hist + first, rows, sizeof(float) * (size_t)n);
}

static dl_status run_hook_loop(hook_ctx *c, int epochs, dl_loop *loop, float *host, dl_outcome *out)
{
    dl_group grp = {.index = 0, .first = 0, .count = 1, .models = 1};
    loop->metrics = 1, loop->check_first = 0, loop->check_count = 1, loop->lr = 0.25f;
    loop->run = hook_run, loop->run_ctx = c;
    dl_status st = dl_alloc(be, sizeof(float) * (size_t)epochs, (void **)&c->hist);
    if (st == DL_OK) st = dl_train_loop(be, NULL, epochs, c->hist, host, loop, &grp, out);
    dl_free(be, c->hist);
    return st;
}

/* The hook is called for consecutive chunks that cover the run, starting
 * with first_chunk and never past max_chunk; a divergence inside a chunk
 * stops the run at the chunk's end, naming the first non-finite epoch. */
static void test_loop_with_a_run_hook(void)
{
    enum { E = 20 };
    float host[E];
    hook_ctx c = {.bad = E};
    dl_loop loop = {.first_chunk = 3, .max_chunk = 5};
    dl_outcome out;
    dl_status st = run_hook_loop(&c, E, &loop, host, &out);
    DL_CHECK(st == DL_OK && out.epochs_run == E && out.stop.kind == DL_STOP_NONE,
             "hook loop: %s, %d epochs, stop %s", dl_errmsg(), out.epochs_run,
             dl_stop_name(out.stop.kind));
    int next = 0, wrong = 0;
    for (int i = 0; i < c.calls && i < 64; i++) {
        wrong += c.firsts[i] != next || c.sizes[i] < 1 || c.sizes[i] > 5;
        next = c.firsts[i] + c.sizes[i];
    }
    DL_CHECK(c.calls >= 4 && c.sizes[0] == 3 && next == E && !wrong,
             "%d calls, the first of %d epochs, covering %d of %d (%d out of order or too long)",
             c.calls, c.sizes[0], next, E, wrong);
    for (int e = 0; e < E; e++) wrong += host[e] != (float)(e + 1);
    DL_CHECK(!wrong, "%d history rows misplaced", wrong);

    hook_ctx d = {.bad = 4}; /* epoch 5 is the first NaN, inside the one chunk */
    dl_loop whole = {.first_chunk = E};
    st = run_hook_loop(&d, E, &whole, host, &out);
    DL_CHECK(st == DL_OK && d.calls == 1 && out.stop.kind == DL_STOP_DIVERGED &&
                 out.epochs_run == E,
             "diverged inside one chunk: %d calls, stop %s, %d epochs", d.calls,
             dl_stop_name(out.stop.kind), out.epochs_run);
    DL_CHECK(strstr(out.stop.message, "NaN at epoch 5 of 20"), "message: %s", out.stop.message);
}

/* Chunk sizes for a fused run: they start as the general path's (first_chunk
 * untouched); a cheap epoch may grow to long chunks, an expensive one stops
 * at the general path's 256; what the caller set is kept. */
static void test_fused_chunks_and_modes(void)
{
    dl_loop cheap = {0}, dear = {0}, set = {.first_chunk = 7, .max_chunk = 9};
    dl_loop_fused_chunks(&cheap, 7.2e3); /* an iris factorisation epoch */
    dl_loop_fused_chunks(&dear, 1e9);
    dl_loop_fused_chunks(&set, 7.2e3);
    DL_CHECK(cheap.first_chunk == 0 && cheap.max_chunk >= 10000, "cheap epochs: first %d, max %d",
             cheap.first_chunk, cheap.max_chunk);
    DL_CHECK(dear.first_chunk == 0 && dear.max_chunk == 256, "dear epochs: first %d, max %d",
             dear.first_chunk, dear.max_chunk);
    DL_CHECK(set.first_chunk == 7 && set.max_chunk == 9, "caller's chunks replaced: %d, %d",
             set.first_chunk, set.max_chunk);
    const char *words[] = {"auto", "off", "on"};
    const dl_fused_mode modes[] = {DL_FUSED_AUTO, DL_FUSED_OFF, DL_FUSED_ON};
    for (int i = 0; i < 3; i++) {
        dl_fused_mode m = DL_FUSED_ON + 1;
        DL_CHECK(dl_fused_mode_parse(words[i], "--fused", &m) == DL_OK && m == modes[i],
                 "'%s' parsed as %d", words[i], (int)m);
    }
    dl_fused_mode m;
    DL_CHECK(dl_fused_mode_parse("ON", "--fused", &m) == DL_E_USAGE &&
                 !strcmp(dl_errmsg(), "--fused must be auto, on or off (got 'ON')"),
             "bad value: %s", dl_errmsg());
}

typedef struct {
    int calls, done, total;
    float first_value;
} progress_log;

static void log_progress(void *ud, const dl_progress *p)
{
    progress_log *l = ud;
    l->calls++;
    l->done = p->done, l->total = p->total;
    l->first_value = p->last[0];
}

static void test_loop_interrupt_and_progress(void)
{
    float vals[2] = {3.0f, 5.0f}, host[EPOCHS * 2];
    volatile sig_atomic_t stop = 1;
    for (int index = 0; index < 2; index++) {
        progress_log log = {0};
        dl_group grp = {.index = index, .first = index, .count = 1, .models = 2};
        dl_loop loop = {.metrics = 1,
                        .check_count = 1,
                        .lr = 0.1f,
                        .progress = log_progress,
                        .progress_ud = &log,
                        .stop = &stop};
        dl_outcome out;
        dl_status st = run_loop(&grp, EPOCHS, &vals[index], &loop, host, &out);
        DL_CHECK(st == DL_OK, "an interruption returned %s", dl_status_name(st));
        DL_CHECK(out.stop.kind == DL_STOP_INTERRUPTED && out.epochs_run == 1,
                 "group %d: stop %s after %d epochs", index, dl_stop_name(out.stop.kind),
                 out.epochs_run);
        DL_CHECK(!strcmp(out.stop.message, "interrupted after epoch 1 of 7"), "message: %s",
                 out.stop.message);
        if (index == 0)
            DL_CHECK(log.calls == 1 && log.done == 1 && log.total == EPOCHS &&
                         log.first_value == 3.0f,
                     "group 0's progress: %d calls, %d/%d, value %g", log.calls, log.done,
                     log.total, (double)log.first_value);
        else
            DL_CHECK(log.calls == 0, "group %d reported progress %d times", index, log.calls);
    }
}

/* --- the runner ------------------------------------------------------------ */

enum { RUN_MODELS = 10, MAX_GROUPS = 64 };

/* What each group saw, and what it answers. */
typedef struct {
    int calls;
    dl_group seen[MAX_GROUPS];
    const dl_backend *seen_be[MAX_GROUPS];
    int covered[RUN_MODELS];
    dl_status fail[MAX_GROUPS]; /* group g fails with this, when not DL_OK */
    dl_stop_kind stop[MAX_GROUPS];
} runner_log;

static dl_status fake_group(dl_backend *b, const dl_group *g, void *ud, dl_outcome *out)
{
    runner_log *l = ud;
    if (g->index < 0 || g->index >= MAX_GROUPS) return DL_FAIL(DL_E_RUNTIME, "group %d", g->index);
    l->seen[g->index] = *g;
    l->seen_be[g->index] = b;
    for (int i = 0; i < g->count; i++) l->covered[g->first + i]++; /* the group's slice only */
    if (l->fail[g->index] != DL_OK) return DL_FAIL(l->fail[g->index], "group %d failed", g->index);
    out->epochs_run = 100 - g->index;
    out->seconds = 1.0 + g->index;
    out->stop.kind = l->stop[g->index];
    if (out->stop.kind != DL_STOP_NONE)
        snprintf(out->stop.message, sizeof out->stop.message, "group %d stopped", g->index);
    return DL_OK;
}

/* Groups the runner should make for RUN_MODELS models on `be`. */
static int expected_groups(void)
{
#ifdef _OPENMP
    if (be->model_groups) {
        int t = omp_get_max_threads();
        return t < RUN_MODELS ? t : RUN_MODELS;
    }
#endif
    return 1;
}

static int count_groups(const runner_log *l)
{
    int n = 0;
    for (int g = 0; g < MAX_GROUPS; g++) n += l->seen[g].count > 0;
    return n;
}

static void test_runner_cuts_contiguous_groups(void)
{
    runner_log l = {0};
    dl_outcome out;
    dl_status st = dl_run_models(be, RUN_MODELS, fake_group, &l, &out);
    DL_CHECK(st == DL_OK, "runner: %s", dl_errmsg());
    int groups = count_groups(&l), want = expected_groups();
    DL_CHECK(groups == want, "%d groups, expected %d", groups, want);
    int next = 0;
    for (int g = 0; g < groups; g++) {
        const dl_group *s = &l.seen[g];
        DL_CHECK(s->index == g && s->first == next && s->models == RUN_MODELS,
                 "group %d: index %d, first %d (expected %d), models %d", g, s->index, s->first,
                 next, s->models);
        int base = RUN_MODELS / groups, extra = RUN_MODELS % groups;
        DL_CHECK(s->count == base + (g < extra), "group %d has %d models", g, s->count);
        DL_CHECK((groups == 1) == (l.seen_be[g] == be), "group %d of %d ran on %s backend", g,
                 groups, l.seen_be[g] == be ? "the caller's" : "its own");
        next += s->count;
    }
    for (int m = 0; m < RUN_MODELS; m++)
        DL_CHECK(l.covered[m] == 1, "model %d trained %d times", m, l.covered[m]);
    DL_CHECK(out.epochs_run == 100 - (groups - 1) && out.seconds == groups &&
                 out.stop.kind == DL_STOP_NONE,
             "combined: %d epochs, %g s, stop %s", out.epochs_run, out.seconds,
             dl_stop_name(out.stop.kind));
}

static void test_runner_combines_stops(void)
{
    runner_log l = {0};
    int groups = expected_groups();
    /* The last group is interrupted, the others from group 1 on diverge:
     * the run diverged, with the message of the diverged group that ran
     * fewest epochs (group g runs 100 - g: the last diverged one, group 2
     * when there are four), so the message names the epochs every model
     * finished. */
    for (int g = 1; g < groups; g++) l.stop[g] = DL_STOP_DIVERGED;
    l.stop[groups - 1] = DL_STOP_INTERRUPTED;
    dl_outcome out;
    dl_status st = dl_run_models(be, RUN_MODELS, fake_group, &l, &out);
    DL_CHECK(st == DL_OK, "stops made the runner fail: %s", dl_errmsg());
    /* One group (a backend without model_groups): it is the interrupted one. */
    dl_stop_kind want = groups <= 2 ? DL_STOP_INTERRUPTED : DL_STOP_DIVERGED;
    DL_CHECK(out.stop.kind == want, "stop %s, expected %s", dl_stop_name(out.stop.kind),
             dl_stop_name(want));
    char msg[32];
    snprintf(msg, sizeof msg, "group %d stopped", groups <= 2 ? groups - 1 : groups - 2);
    DL_CHECK(!strcmp(out.stop.message, msg), "message '%s', expected '%s'", out.stop.message, msg);
}

static void test_runner_reports_the_first_failure(void)
{
    runner_log l = {0};
    int groups = expected_groups();
    int first_bad = groups > 1 ? 1 : 0;
    l.fail[first_bad] = DL_E_MEMORY;
    if (first_bad + 1 < groups) l.fail[first_bad + 1] = DL_E_RUNTIME;
    l.stop[0] = DL_STOP_DIVERGED; /* a failure outranks any stop */
    dl_outcome out;
    dl_clear_error();
    dl_status st = dl_run_models(be, RUN_MODELS, fake_group, &l, &out);
    char msg[64];
    snprintf(msg, sizeof msg, "group %d failed", first_bad);
    DL_CHECK(st == DL_E_MEMORY && !strcmp(dl_errmsg(), msg), "%s '%s', expected memory '%s'",
             dl_status_name(st), dl_errmsg(), msg);
}

static void test_runner_without_the_capability(void)
{
    const bool saved = be->model_groups;
    be->model_groups = false;
    runner_log l = {0};
    dl_outcome out;
    dl_status st = dl_run_models(be, RUN_MODELS, fake_group, &l, &out);
    be->model_groups = saved;
    DL_CHECK(st == DL_OK && count_groups(&l) == 1 && l.seen[0].count == RUN_MODELS &&
                 l.seen_be[0] == be,
             "without model_groups: %d groups", count_groups(&l));

    runner_log one = {0};
    st = dl_run_models(be, 1, fake_group, &one, &out);
    DL_CHECK(st == DL_OK && count_groups(&one) == 1 && one.seen_be[0] == be, "one model: %d groups",
             count_groups(&one));
}

/* --- stops at the process level -------------------------------------------- */

static void test_stop_statuses(void)
{
    dl_stop none = {.kind = DL_STOP_NONE};
    DL_CHECK(dl_stop_status(&none) == DL_OK, "no stop is not ok");
    dl_stop in = {.kind = DL_STOP_INTERRUPTED, .message = "interrupted after epoch 3 of 9"};
    dl_status st = dl_stop_status(&in);
    DL_CHECK(st == DL_E_INTERRUPTED && dl_exit_code(st) == 130 && dl_status_is_stop(st) &&
                 !strcmp(dl_errmsg(), in.message),
             "interrupted: %s exit %d '%s'", dl_status_name(st), dl_exit_code(st), dl_errmsg());
    dl_stop div = {.kind = DL_STOP_DIVERGED, .message = "training diverged: ..."};
    st = dl_stop_status(&div);
    DL_CHECK(st == DL_E_DIVERGED && dl_exit_code(st) == 1 && dl_status_is_stop(st) &&
                 !strcmp(dl_errmsg(), div.message),
             "diverged: %s exit %d '%s'", dl_status_name(st), dl_exit_code(st), dl_errmsg());
    DL_CHECK(!dl_status_is_stop(DL_OK) && !dl_status_is_stop(DL_E_RUNTIME) &&
                 !dl_status_is_stop(DL_E_MEMORY),
             "a failure counted as a stop");
    DL_CHECK(!strcmp(dl_stop_name(DL_STOP_NONE), "ok") &&
                 !strcmp(dl_stop_name(DL_STOP_INTERRUPTED), "interrupted") &&
                 !strcmp(dl_stop_name(DL_STOP_DIVERGED), "diverged"),
             "stop names");
}

int main(int argc, char **argv)
{
    be = dl_test_backend(argc, argv);
#ifdef _OPENMP
    /* Four groups whatever the machine: the cut of 10 models has a
     * remainder, and two groups can stop alike between others. */
    omp_set_num_threads(4);
#endif
    DL_RUN(test_loop_writes_the_group_slice);
    DL_RUN(test_loop_records_divergence_as_a_stop);
    DL_RUN(test_loop_interrupt_and_progress);
    DL_RUN(test_loop_with_a_run_hook);
    DL_RUN(test_fused_chunks_and_modes);
    DL_RUN(test_runner_cuts_contiguous_groups);
    DL_RUN(test_runner_combines_stops);
    DL_RUN(test_runner_reports_the_first_failure);
    DL_RUN(test_runner_without_the_capability);
    DL_RUN(test_stop_statuses);
    dl_backend_destroy(be);
    return dl_test_summary("test_train");
}
