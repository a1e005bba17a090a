/* dlab-bench --peer pytorch: runs bench/peer_pytorch.py, reads its JSON
 * and sets its seconds beside dlab's CPU seconds for the same work. */
#define _POSIX_C_SOURCE 200809L
#include "bench_peer.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dlab/cli.h"

#ifdef DLAB_HAVE_JANSSON
#include <jansson.h>
#endif

#ifndef DLAB_BENCH_SOURCE_DIR
#define DLAB_BENCH_SOURCE_DIR "bench"
#endif

#define PEER_SCRIPT   "peer_pytorch.py"
#define EXIT_NO_TORCH 3   /* the script's status when torch cannot be imported */
#define EXIT_NO_EXEC  127 /* as a shell says: not found */
#define EXIT_NO_RUN   126 /* found, but not a program that can run (a directory, no x bit) */

/* The project's goals against single-threaded PyTorch on the CPU. */
static const bench_peer_row row_specs[BENCH_PEER_ROWS] = {
    {.workload = "factorise-iris",
     .case_name = "factorise-iris/150x4-r2",
     .goal = "cpu-vs-pytorch-factorise-iris",
     .target = 100.0},
    {.workload = "mlp-iris",
     .case_name = "mlp-iris/150x4-h12",
     .goal = "cpu-vs-pytorch-mlp-iris",
     .target = 50.0},
    {.workload = "mlp-seeds",
     .case_name = "mlp-seeds/1000-models",
     .goal = "cpu-vs-pytorch-mlp-seeds-1000",
     .target = 50.0},
};

bool bench_peer_known(const char *name) { return !strcmp(name, "pytorch"); }

bool bench_peer_case(const char *case_name)
{
    for (int i = 0; i < BENCH_PEER_ROWS; i++)
        if (!strcmp(case_name, row_specs[i].case_name)) return true;
    return false;
}

/* --- finding and running the script ---------------------------------------- */

static bool readable(const char *path) { return access(path, R_OK) == 0; }

static bool find_script(char *out, size_t len)
{
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, len, "%s/%s", exe, PEER_SCRIPT);
            if (readable(out)) return true;
            snprintf(out, len, "%s/../share/dlab-gpu/%s", exe, PEER_SCRIPT);
            if (readable(out)) return true;
        }
    }
    snprintf(out, len, "%s/%s", DLAB_BENCH_SOURCE_DIR, PEER_SCRIPT);
    return readable(out);
}

typedef struct {
    char *out; /* stdout, NUL-terminated */
    size_t out_len;
    char err[4096]; /* the end of stderr */
    int status;     /* exit status; 128 + signal when killed */
} child_result;

/* Appends `n` bytes to the growing stdout buffer, or keeps the last part of
 * stderr. */
static bool take(child_result *c, bool is_err, size_t *err_len, const char *buf, size_t n)
{
    if (is_err) {
        const size_t cap = sizeof c->err - 1;
        if (n >= cap) buf += n - cap, n = cap;
        if (*err_len + n > cap) {
            size_t drop = *err_len + n - cap;
            memmove(c->err, c->err + drop, *err_len - drop);
            *err_len -= drop;
        }
        memcpy(c->err + *err_len, buf, n);
        *err_len += n;
        c->err[*err_len] = '\0';
        return true;
    }
    char *p = realloc(c->out, c->out_len + n + 1);
    if (!p) return false;
    c->out = p;
    memcpy(c->out + c->out_len, buf, n);
    c->out_len += n;
    c->out[c->out_len] = '\0';
    return true;
}

/* Runs argv (argv[0] looked up on PATH) with stdin closed, collecting its
 * stdout and the end of its stderr. False only when it could not be started. */
static bool run_child(char *const argv[], child_result *c)
{
    memset(c, 0, sizeof *c);
    int po[2], pe[2];
    if (pipe(po) != 0) return false;
    if (pipe(pe) != 0) {
        close(po[0]), close(po[1]);
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return false;
    }
    if (pid == 0) {
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        close(STDIN_FILENO);
        execvp(argv[0], argv);
        _exit(errno == ENOENT || errno == ENOTDIR ? EXIT_NO_EXEC : EXIT_NO_RUN);
    }
    close(po[1]), close(pe[1]);
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    size_t err_len = 0;
    bool ok = true;
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[8192];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else if (!take(c, i == 1, &err_len, buf, (size_t)n)) {
                ok = false; /* out of memory: the output is dropped, the child reaped */
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0) close(fds[i].fd);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    c->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (!ok) {
        free(c->out);
        c->out = NULL;
        c->out_len = 0;
    }
    return true;
}

/* The last non-empty line of s, without its newline, into buf. */
static void last_line(const char *s, char *buf, size_t len)
{
    size_t end = strlen(s);
    while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r' || s[end - 1] == ' ')) end--;
    size_t start = end;
    while (start > 0 && s[start - 1] != '\n') start--;
    size_t n = end - start < len - 1 ? end - start : len - 1;
    memcpy(buf, s + start, n);
    buf[n] = '\0';
}

/* --- reading the script's figures ---------------------------------------- */

#ifdef DLAB_HAVE_JANSSON
static bool positive_number(json_t *v, double *out)
{
    if (!json_is_number(v)) return false;
    *out = json_number_value(v);
    return *out > 0.0 && *out < 1e300;
}

/* False with p->note set when the document is not the script's. */
static bool parse_output(bench_peer *p, const char *text)
{
    json_error_t e;
    json_t *doc = json_loads(text, 0, &e);
    if (!doc) {
        snprintf(p->note, sizeof p->note, "its output is not JSON (line %d, column %d: %s)", e.line,
                 e.column, e.text);
        return false;
    }
    bool ok = json_is_object(doc);
    json_t *w = ok ? json_object_get(doc, "workloads") : NULL;
    if (!json_is_object(w)) {
        snprintf(p->note, sizeof p->note, "its JSON has no \"workloads\" object");
        json_decref(doc);
        return false;
    }
    const char *s = json_string_value(json_object_get(doc, "torch_version"));
    snprintf(p->torch_version, sizeof p->torch_version, "%s", s ? s : "?");
    s = json_string_value(json_object_get(doc, "python"));
    snprintf(p->python_version, sizeof p->python_version, "%s", s ? s : "?");
    p->threads = (int)json_integer_value(json_object_get(doc, "threads"));
    p->interop_threads = (int)json_integer_value(json_object_get(doc, "interop_threads"));
    for (int i = 0; i < BENCH_PEER_ROWS; i++) {
        bench_peer_row *row = &p->rows[i];
        if (!row->selected) continue;
        json_t *o = json_object_get(w, row->workload);
        double secs = 0.0;
        if (!json_is_object(o) || !positive_number(json_object_get(o, "seconds"), &secs)) {
            snprintf(row->note, sizeof row->note, "the script gave no positive seconds for %s",
                     row->workload);
            continue;
        }
        row->peer_ok = true;
        row->peer_s = secs;
        row->epochs = (int)json_integer_value(json_object_get(o, "epochs"));
        row->models = (int)json_integer_value(json_object_get(o, "models"));
        row->repeats = (int)json_integer_value(json_object_get(o, "repeats"));
        row->runs_timed = (int)json_integer_value(json_object_get(o, "runs_timed"));
        s = json_string_value(json_object_get(o, "variant"));
        snprintf(row->variant, sizeof row->variant, "%s", s ? s : "?");
        const char *key;
        json_t *alt;
        json_object_foreach(json_object_get(o, "variants"), key, alt)
        {
            double t;
            if (row->n_alt == 2 || !positive_number(json_object_get(alt, "seconds"), &t)) continue;
            snprintf(row->alt_name[row->n_alt], sizeof row->alt_name[0], "%s", key);
            row->alt_s[row->n_alt++] = t;
        }
    }
    json_decref(doc);
    return true;
}
#else
/* Not reached: bench_peer_run skips the comparison before running the
 * script in a build that cannot read its output. */
static bool parse_output(bench_peer *p, const char *text)
{
    (void)text;
    snprintf(p->note, sizeof p->note, "built without Jansson");
    return false;
}
#endif

/* --- the run ----------------------------------------------------------- */

/* The dlab CPU side of each row, and the ratio where both sides ran. */
static void compare(bench_peer *p, const bench_run *r)
{
    for (int i = 0; i < BENCH_PEER_ROWS; i++) {
        bench_peer_row *row = &p->rows[i];
        if (!row->selected) {
            snprintf(row->note, sizeof row->note, "case not selected (--filter)");
            continue;
        }
        for (int k = 0; k < r->n_cases; k++) {
            const bench_case *c = &r->cases[k];
            if (strcmp(c->name, row->case_name)) continue;
            const bench_timing *t = &c->t[BENCH_CPU];
            if (t->outcome != BENCH_OK) {
                if (!row->note[0])
                    snprintf(row->note, sizeof row->note, "dlab on cpu: %s",
                             bench_outcome_name(t->outcome));
            } else if (row->peer_ok) {
                if (row->epochs < 1 || row->models != c->models) {
                    snprintf(row->note, sizeof row->note,
                             "the script ran %d epochs of %d models; the case trains %d models",
                             row->epochs, row->models, c->models);
                    row->peer_ok = false;
                    continue;
                }
                row->dlab_ok = true;
                row->dlab_s = t->median_s * row->epochs;
                row->ratio = row->peer_s / row->dlab_s;
            }
        }
        if (!row->peer_ok && !row->note[0] && p->note[0])
            snprintf(row->note, sizeof row->note, "no PyTorch figure");
    }
}

/* How many of the 1000 separate PyTorch runs are timed, per level: the
 * rest are the same run on another shuffle, so their time is scaled. */
static int runs_timed(bench_level level)
{
    return level == BENCH_FULL ? 1000 : level == BENCH_QUICK ? 100 : 20;
}

void bench_peer_run(bench_peer *p, const bench_run *r)
{
    const char *name = p->name;
    memset(p, 0, sizeof *p);
    p->name = name;
    char only[128] = "";
    for (int i = 0; i < BENCH_PEER_ROWS; i++) {
        p->rows[i] = row_specs[i];
        for (int k = 0; k < r->n_cases; k++)
            p->rows[i].selected =
                p->rows[i].selected || !strcmp(r->cases[k].name, row_specs[i].case_name);
        if (p->rows[i].selected)
            snprintf(only + strlen(only), sizeof only - strlen(only), "%s%s", only[0] ? "," : "",
                     row_specs[i].workload);
    }
    if (!only[0]) {
        snprintf(p->note, sizeof p->note, "no case of the comparison was selected");
        compare(p, r);
        return;
    }
#ifndef DLAB_HAVE_JANSSON
    /* Like a missing PyTorch, a missing part of the build skips the
     * comparison, before minutes of timing whose output nothing would read. */
    snprintf(p->note, sizeof p->note,
             "dlab-bench was built without Jansson (Debian: libjansson-dev), which reads the "
             "script's JSON");
    compare(p, r);
    return;
#endif
    if (!find_script(p->script, sizeof p->script)) {
        snprintf(p->note, sizeof p->note,
                 "%s not found next to dlab-bench, in ../share/dlab-gpu or in %s", PEER_SCRIPT,
                 DLAB_BENCH_SOURCE_DIR);
        p->failed = true;
        compare(p, r);
        return;
    }
    const char *env = getenv("DLAB_BENCH_PYTHON");
    const char *pythons[2] = {env && *env ? env : "python3",
                              env && *env ? NULL : "/usr/bin/python3"};
    char repeats[16], timed[16];
    snprintf(repeats, sizeof repeats, "%d", r->repeats);
    snprintf(timed, sizeof timed, "%d", runs_timed(r->level));
    const char *data = dl_default_data_path();
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr, "\r\033[Kpeer: PyTorch (%s)", only);
        fflush(stderr);
    }
    for (int i = 0; i < 2 && pythons[i]; i++) {
        char *argv[] = {(char *)pythons[i],
                        p->script,
                        "--data",
                        (char *)data,
                        "--repeats",
                        repeats,
                        "--runs-timed",
                        timed,
                        "--only",
                        only,
                        r->level == BENCH_SMOKE ? "--no-variants" : NULL,
                        NULL};
        child_result c;
        snprintf(p->python, sizeof p->python, "%s", pythons[i]);
        if (!run_child(argv, &c)) {
            snprintf(p->note, sizeof p->note, "cannot start %s: %s", pythons[i], strerror(errno));
            p->failed = true;
            break;
        }
        char line[400];
        last_line(c.err, line, sizeof line);
        if (c.status == EXIT_NO_EXEC && !c.out_len) {
            if (i == 0) /* the fallback's absence would hide why the first was passed over */
                snprintf(p->note, sizeof p->note, "%s not found (set DLAB_BENCH_PYTHON)",
                         pythons[i]);
            p->failed = false;
        } else if (c.status == EXIT_NO_RUN && !c.out_len) {
            snprintf(p->note, sizeof p->note,
                     "%s cannot be run (a directory, or not executable); set DLAB_BENCH_PYTHON "
                     "to a Python 3 interpreter",
                     pythons[i]);
            p->failed = false; /* as for one not found: the comparison is skipped */
            break;
        } else if (c.status == EXIT_NO_TORCH) {
            snprintf(p->note, sizeof p->note,
                     "PyTorch not installed for %s (Debian: python3-torch; bash scripts/setup.sh "
                     "--peer)",
                     pythons[i]);
            p->failed = false;
        } else if (c.status != 0) {
            snprintf(p->note, sizeof p->note, "%s %s exited with status %d%s%s", pythons[i],
                     p->script, c.status, line[0] ? ": " : "", line);
            p->failed = true;
        } else if (!c.out) {
            snprintf(p->note, sizeof p->note, "%s %s printed nothing", pythons[i], p->script);
            p->failed = true;
        } else {
            p->failed = !(p->ran = parse_output(p, c.out));
        }
        free(c.out);
        if (p->ran) p->note[0] = '\0'; /* an earlier interpreter's lack of torch is no news */
        if (p->ran || p->failed) break;
    }
    if (isatty(STDERR_FILENO)) fputs("\r\033[K", stderr);
    compare(p, r);
}

/* --- reports ------------------------------------------------------------- */

/* The unit that shows `s` seconds with 1 to 3 digits before the point. */
static const char *time_unit(double s, double *scale)
{
    if (s >= 1.0) return *scale = 1.0, "s";
    if (s >= 1e-3) return *scale = 1e3, "ms";
    return *scale = 1e6, "us";
}

static const char *met_word(const bench_peer_row *row)
{
    return row->ratio > 0 ? (row->ratio >= row->target ? "yes" : "no") : "-";
}

void bench_peer_print(FILE *f, const bench_run *r)
{
    const bench_peer *p = r->peer;
    if (!p) return;
    if (!p->ran) {
        fprintf(f, "\nagainst PyTorch: %s: %s\n", p->failed ? "failed" : "skipped", p->note);
        return;
    }
    fprintf(f,
            "\nagainst PyTorch %s (python %s, %d thread, %d interop thread; %s)\n"
            "  %-24s %6s %6s %11s %11s %9s %7s %4s\n",
            p->torch_version, p->python_version, p->threads, p->interop_threads, p->script, "case",
            "epochs", "models", "pytorch", "dlab cpu", "ratio", "goal", "met");
    for (int i = 0; i < BENCH_PEER_ROWS; i++) {
        const bench_peer_row *row = &p->rows[i];
        char ps[24] = "-", ds[24] = "-", ratio[24] = "-", goal[16];
        double sc;
        if (row->peer_ok) {
            const char *u = time_unit(row->peer_s, &sc);
            snprintf(ps, sizeof ps, "%.3g %s", row->peer_s * sc, u);
        }
        if (row->dlab_ok) {
            const char *u = time_unit(row->dlab_s, &sc);
            snprintf(ds, sizeof ds, "%.3g %s", row->dlab_s * sc, u);
        }
        if (row->ratio > 0) snprintf(ratio, sizeof ratio, "%.3gx", row->ratio);
        snprintf(goal, sizeof goal, ">=%gx", row->target);
        char epochs[16] = "-", models[16] = "-";
        if (row->peer_ok) {
            snprintf(epochs, sizeof epochs, "%d", row->epochs);
            snprintf(models, sizeof models, "%d", row->models);
        }
        fprintf(f, "  %-24s %6s %6s %11s %11s %9s %7s %4s%s%s\n", row->case_name, epochs, models,
                ps, ds, ratio, goal, met_word(row), row->note[0] ? "  " : "", row->note);
        for (int k = 0; k < row->n_alt; k++) {
            const char *u = time_unit(row->alt_s[k], &sc);
            snprintf(ps, sizeof ps, "%.3g %s", row->alt_s[k] * sc, u);
            ratio[0] = '\0';
            if (row->dlab_ok) snprintf(ratio, sizeof ratio, "%.3gx", row->alt_s[k] / row->dlab_s);
            fprintf(f, "    %-22s %13s %11s %11s %9s\n", row->alt_name[k], "", ps, "", ratio);
        }
    }
    fprintf(f,
            "pytorch: best of %d runs after a warm-up, the training loop only (%s);\n"
            "dlab cpu: the case's median seconds per epoch x the epochs (%d OpenMP threads);\n"
            "ratio: pytorch / dlab cpu, the goal's measure, PyTorch with hand-written gradients;\n"
            "mlp-seeds: 1000 separate PyTorch runs, %d of them timed%s.\n"
            "Indented: other PyTorch variants of the same work, for reference (autograd:\n"
            "loss.backward(); batched: the 1000 models as one torch.bmm batch).\n",
            r->repeats, "bench/peer_pytorch.py", r->omp_threads, runs_timed(r->level),
            runs_timed(r->level) < 1000 ? ", their time scaled to 1000" : "");
}

void bench_peer_json(dl_json *j, const bench_run *r)
{
    const bench_peer *p = r->peer;
    if (!p) {
        dl_json_null(j, "peer");
        return;
    }
    dl_json_obj_begin(j, "peer");
    dl_json_str(j, "name", p->name);
    dl_json_str(j, "status", p->ran ? "ok" : p->failed ? "failed" : "skipped");
    if (p->note[0]) dl_json_str(j, "note", p->note);
    if (p->script[0]) dl_json_str(j, "script", p->script);
    if (p->python[0]) dl_json_str(j, "python", p->python);
    if (p->ran) {
        dl_json_str(j, "torch_version", p->torch_version);
        dl_json_str(j, "python_version", p->python_version);
        dl_json_int(j, "threads", p->threads);
        dl_json_int(j, "interop_threads", p->interop_threads);
        dl_json_int(j, "runs_timed", runs_timed(r->level));
    }
    dl_json_arr_begin(j, "rows");
    for (int i = 0; i < BENCH_PEER_ROWS; i++) {
        const bench_peer_row *row = &p->rows[i];
        dl_json_obj_begin(j, NULL);
        dl_json_str(j, "case", row->case_name);
        dl_json_str(j, "workload", row->workload);
        dl_json_str(j, "goal", row->goal);
        dl_json_num(j, "target", row->target);
        dl_json_bool(j, "selected", row->selected);
        if (row->peer_ok) {
            dl_json_num(j, "pytorch_s", row->peer_s);
            dl_json_int(j, "epochs", row->epochs);
            dl_json_int(j, "models", row->models);
            dl_json_int(j, "repeats", row->repeats);
            dl_json_str(j, "variant", row->variant);
            if (row->runs_timed > 0) dl_json_int(j, "runs_timed", row->runs_timed);
            dl_json_obj_begin(j, "variants");
            for (int k = 0; k < row->n_alt; k++) {
                dl_json_obj_begin(j, row->alt_name[k]);
                dl_json_num(j, "pytorch_s", row->alt_s[k]);
                if (row->dlab_ok)
                    dl_json_num(j, "ratio", row->alt_s[k] / row->dlab_s);
                else
                    dl_json_null(j, "ratio");
                dl_json_obj_end(j);
            }
            dl_json_obj_end(j);
        } else {
            dl_json_null(j, "pytorch_s");
        }
        if (row->dlab_ok)
            dl_json_num(j, "dlab_cpu_s", row->dlab_s);
        else
            dl_json_null(j, "dlab_cpu_s");
        if (row->ratio > 0) {
            dl_json_num(j, "ratio", row->ratio);
            dl_json_bool(j, "met", row->ratio >= row->target);
        } else {
            dl_json_null(j, "ratio");
            dl_json_null(j, "met");
        }
        if (row->note[0]) dl_json_str(j, "note", row->note);
        dl_json_obj_end(j);
    }
    dl_json_arr_end(j);
    dl_json_obj_end(j);
}
