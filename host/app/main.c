/* dlab-gpu: parse options, pick a backend, run the task, map the outcome to
 * an exit status (0 ok, 1 runtime failure, 2 bad usage or input, 130
 * interrupted by SIGINT, 143 by SIGTERM). Started by an MPI launcher as
 * several ranks (dlab/comm.h), the ranks share a factorisation's rows, or
 * split --seeds; every rank reaches the same exit status and rank 0 alone
 * prints. */
#define _POSIX_C_SOURCE 200809L
#include "dlab/cmd.h"
#include "dlab/comm.h"
#include "dlab/report.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* 0, or the signal that asked the run to stop: SIGINT (Ctrl-C) or SIGTERM
 * (a scheduler, timeout(1)), which both stop training after the current
 * chunk and keep what was done. */
static volatile sig_atomic_t stop_requested;

/* 128 + the signal, as a shell reports a process the signal ended. */
static int stop_exit_code(int sig) { return sig == SIGTERM ? 143 : 130; }

/* Whether this process speaks (rank 0, or the only one), and whether a
 * progress line is on screen: read by the handler below. */
static volatile sig_atomic_t speaks = 1, progress_drawn;

static void say(const char *msg)
{
    ssize_t w = write(STDERR_FILENO, msg, strlen(msg));
    (void)w;
}

/* The thread that runs the tasks and writes --out. */
static pthread_t main_thread;

static void on_stop_signal(int sig)
{
    /* A signal to the process reaches any thread that does not block it:
     * while the main thread blocks stop signals around creating a temporary
     * file, another (OpenMP's, MPI's) would take it and exit between the
     * file's creation and its recording, leaving it behind. Such a thread
     * hands the signal to the main thread, which takes it once the file is
     * recorded (pthread_kill is async-signal-safe: POSIX.1-2008, signal-
     * safety(7)). */
    if (!pthread_equal(pthread_self(), main_thread)) {
        pthread_kill(main_thread, sig);
        return;
    }
    if (stop_requested) { /* the second one: leave at once, without a partial file */
        const bool removed = dl_out_abandon();
        if (speaks) {
            if (progress_drawn) say("\n");
            say(removed ? "dlab-gpu: stopped at once; the file being written was removed\n"
                        : "dlab-gpu: stopped at once\n");
        }
        _exit(stop_exit_code(sig));
    }
    stop_requested = sig;
}

typedef struct {
    bool active; /* stderr is a terminal and --quiet was not given */
    int width;   /* columns the line occupies on screen, 0 when none */
} progress_state;

static int terminal_columns(void)
{
    struct winsize w;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
    return 80;
}

static void format_duration(char *buf, size_t len, double s)
{
    if (s < 10.0)
        snprintf(buf, len, "%.1f s", s);
    else if (s < 60.0)
        snprintf(buf, len, "%.0f s", s);
    else if (s < 3600.0)
        snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

/* One line on stderr, redrawn in place once a run has lasted a second:
 * epoch i/N, the current loss, epochs per second and the time left. It is
 * cut to the terminal's width (a wrapped line could not be redrawn) and
 * overwritten with spaces rather than escape sequences, so any terminal
 * shows it right. Called with p == NULL (or the last epoch) to clear it
 * before a report. */
static void show_progress(void *ud, const dl_progress *p)
{
    progress_state *ps = ud;
    if (!p || p->done == p->total) {
        if (ps->width) fprintf(stderr, "\r%*s\r", ps->width, "");
        fflush(stderr);
        ps->width = 0;
        progress_drawn = 0;
        return;
    }
    if (!ps->active || p->elapsed < 1.0) return;
    double rate = p->done / p->elapsed;
    char left[32], line[192];
    format_duration(left, sizeof left, rate > 0 ? (p->total - p->done) / rate : 0.0);
    int n =
        snprintf(line, sizeof line,
                 rate >= 100 ? "epoch %d/%d  loss %.6g  %.0f epochs/s  %s left"
                             : "epoch %d/%d  loss %.6g  %.3g epochs/s  %s left",
                 p->done, p->total, p->last[0] * (p->scale != 0.0 ? p->scale : 1.0), rate, left);
    int cols = terminal_columns() - 1; /* writing the last column wraps on some terminals */
    if (n > cols) n = cols > 0 ? cols : 0;
    if (n >= (int)sizeof line) n = (int)sizeof line - 1;
    line[n] = '\0';
    fprintf(stderr, "\r%s%*s", line, ps->width > n ? ps->width - n : 0, "");
    fflush(stderr);
    progress_drawn = 1;
    if (n > ps->width) ps->width = n;
}

static int fail(dl_status st)
{
    const char *msg = dl_errmsg();
    if (st == DL_E_RUNTIME && dl_errwhere()[0])
        fprintf(stderr, "dlab-gpu: error: %s [%s]\n", msg, dl_errwhere());
    else if (dl_status_is_stop(st))
        fprintf(stderr, "dlab-gpu: %s\n", msg);
    else
        fprintf(stderr, "dlab-gpu: error: %s\n", msg);
    return dl_exit_code(st);
}

/* Every rank ends here with the same status; rank 0 says why. */
static int finish(dl_comm *comm, dl_status st)
{
    int ranks = comm ? dl_comm_size(comm) : 1;
    if (ranks > 1) st = dl_comm_agree(comm, st);
    /* A signal to one rank stops them all: each exits as that rank would
     * (SIGTERM's 143 over SIGINT's 130, whose number is lower). */
    int32_t sig = stop_requested;
    if (st == DL_E_INTERRUPTED && ranks > 1 && dl_comm_allreduce_max_i32(comm, &sig, 1) != DL_OK)
        sig = stop_requested;
    int code = st == DL_OK ? 0 : st == DL_E_INTERRUPTED ? stop_exit_code(sig) : dl_exit_code(st);
    const int rank = ranks > 1 ? dl_comm_rank(comm) : 0;
    if (st != DL_OK && rank == 0) fail(st);
    dl_comm_finalize(comm);
    /* A launcher (mpirun) ends the job when a rank exits non-zero, killing
     * the ranks still running with SIGTERM, and then reports the first
     * rank's status it saw. Rank 0 reports the failure: the others leave a
     * moment after it, so that the job ends with its status (2, 130...)
     * rather than with a signal sent to it while it exits. */
    if (code != 0 && rank != 0) {
        struct timespec pause = {.tv_sec = 1};
        nanosleep(&pause, NULL);
    }
    return code;
}

/* FNV-1a (64-bit) of the bytes of s up to `stop` (or its end), and of
 * the terminating zero that separates arguments. */
static uint64_t fnv1a(uint64_t h, const char *s, char stop)
{
    for (const unsigned char *p = (const unsigned char *)s;; p++) {
        h = (h ^ (*p == (unsigned char)stop ? 0u : *p)) * 1099511628211ull;
        if (!*p || *p == (unsigned char)stop) break;
    }
    return h;
}

/* Every rank must run the same command: ranks started with different
 * options (an MPMD launch, `mpirun A : B`) would wait for each other in
 * different collectives forever. Compares a hash of this rank's arguments
 * with rank 0's; a rank that differs stops them all with its message. The
 * paths of files (--data, --out, --model) are left out: nodes may hold
 * the same data at different paths, and the data's content is compared
 * once read (dl_cmd_load_data). */
static dl_status same_options(dl_comm *comm, int argc, char **argv)
{
    static const char *const paths[] = {"--data", "--out", "--model"};
    uint64_t h = 1469598103934665603ull, root;
    for (int i = 1; i < argc; i++) {
        bool path = false;
        for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
            size_t len = strlen(paths[k]);
            if (!strncmp(argv[i], paths[k], len) && (argv[i][len] == '=' || !argv[i][len]))
                path = true, i += argv[i][len] == '=' ? 0 : 1;
            if (path) {
                h = fnv1a(h, paths[k], '\0');
                break;
            }
        }
        if (!path) h = fnv1a(h, argv[i], '\0');
    }
    root = h;
    dl_status st = dl_comm_bcast(comm, &root, sizeof root, 0);
    if (st == DL_OK && root != h)
        st = DL_FAIL(DL_E_USAGE,
                     "this rank was started with other options than rank 0; every rank must "
                     "run the same command (file paths may differ)");
    return dl_comm_agree(comm, st);
}

int main(int argc, char **argv)
{
    dl_comm *comm = NULL;
    dl_status st = dl_comm_init(&argc, &argv, &comm);
    if (st != DL_OK) return fail(st);
    const int ranks = dl_comm_size(comm);
    dl_options opt;
    st = dl_cli_parse(argc, argv, &opt);
    if (st != DL_OK) return finish(comm, st);
    const bool root = dl_comm_rank(comm) == 0;
    if (opt.help || opt.version) {
        if (root && opt.help) dl_cli_usage(stdout);
        if (root && opt.version)
            printf("dlab-gpu %s (CUDA backend %s)\n", DLAB_VERSION, dl_cuda_build_words());
        return finish(comm, DL_OK);
    }
    if (ranks > 1 && (st = same_options(comm, argc, argv)) != DL_OK) return finish(comm, st);
    if (ranks > 1 && opt.task == DL_TASK_PREDICT)
        return finish(comm, DL_FAIL(DL_E_USAGE,
                                    "--task predict runs in one process, not on %d ranks", ranks));
    if (!root) opt.quiet = true, speaks = 0;

    char note[512];
    dl_backend *be = NULL;
    st = dl_backend_create_rank(opt.device, comm, &be, note, sizeof note);
    if (ranks > 1) st = dl_comm_agree(comm, st);
    if (st == DL_OK) st = dl_backend_join_ranks(be, comm); /* every rank, or none */
    if (ranks > 1) st = dl_comm_agree(comm, st);
    if (st != DL_OK) {
        dl_backend_destroy(be);
        return finish(comm, st);
    }
    if (note[0] && !opt.quiet) fprintf(stderr, "dlab-gpu: %s\n", note);

    /* SIGTERM too: schedulers send it, and a launcher turns Ctrl-C into
     * SIGTERM to every rank. On several ranks the flag is shared at chunk
     * ends (dl_comm_share_stop), so every rank stops after the same one. */
    main_thread = pthread_self();
    dl_comm_on_stop_signals(on_stop_signal);

    progress_state ps = {.active = !opt.quiet && isatty(STDERR_FILENO)};
    dl_cmd cmd = {.be = be,
                  .opt = &opt,
                  .text = opt.json ? stderr : stdout,
                  .stop = &stop_requested,
                  .progress = show_progress,
                  .progress_ud = &ps};
    st = opt.task == DL_TASK_MLP       ? dl_cmd_mlp(&cmd)
         : opt.task == DL_TASK_PREDICT ? dl_cmd_predict(&cmd)
                                       : dl_cmd_factorise(&cmd);
    show_progress(&ps, NULL);
    dl_backend_destroy(be);
    return finish(comm, st);
}
