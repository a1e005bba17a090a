/* dlab-bench --peer pytorch: the lab's workloads timed in PyTorch by
 * bench/peer_pytorch.py, beside dlab's CPU times for the same cases, with
 * the ratio (PyTorch seconds / dlab seconds) against the project's goals.
 *
 * The script is run with the first interpreter that imports torch:
 * $DLAB_BENCH_PYTHON when set (and then only it), else `python3` on PATH,
 * then /usr/bin/python3 (where Debian's python3-torch installs). It is
 * looked for next to the executable (the build directory), in
 * ../share/dlab-gpu/ from the executable's directory (an installed layout:
 * bin/dlab-bench, share/dlab-gpu/peer_pytorch.py), then in the source
 * tree's bench/. A missing interpreter, a missing torch or a build
 * without Jansson skips the comparison; a missing script, a failing script
 * or output that is not the expected JSON fails it. Either becomes one note
 * in place of the peer's figures (failed also makes dlab-bench exit 1). */
#ifndef DLAB_BENCH_PEER_H
#define DLAB_BENCH_PEER_H

#include <stdbool.h>
#include <stdio.h>

#include "bench.h"
#include "dlab/json.h"

#define BENCH_PEER_ROWS 3

/* One workload both sides ran: the same shapes, algorithm and epochs. */
typedef struct {
    const char *workload;  /* the script's name: factorise-iris, mlp-iris, mlp-seeds */
    const char *case_name; /* the dlab-bench case it is compared with */
    const char *goal;      /* the goal's name in the JSON */
    double target;         /* the goal: ratio at least this */
    bool selected;         /* the case is among those run */
    /* PyTorch's side, from the script */
    bool peer_ok;
    double peer_s; /* seconds of `epochs` epochs of `models` models */
    int epochs, models, repeats, runs_timed;
    char variant[32];
    /* dlab's CPU side: its per-epoch median x epochs */
    bool dlab_ok;
    double dlab_s;
    double ratio; /* peer_s / dlab_s; 0 without both */
    /* Other ways the script timed the same work (autograd, batched), shown
     * beside the ratio's variant, never used for the goal. */
    int n_alt;
    char alt_name[2][32];
    double alt_s[2];
    char note[200]; /* why there is no ratio */
} bench_peer_row;

typedef struct bench_peer {
    const char *name; /* "pytorch" */
    bool ran;         /* the script gave its figures */
    char note[1536];  /* why it did not: skipped or failed, and how */
    bool failed;      /* the script failed (rather than PyTorch being absent) */
    char script[1100], python[256];
    char torch_version[48], python_version[48];
    int threads, interop_threads;
    bench_peer_row rows[BENCH_PEER_ROWS];
} bench_peer;

/* True for a --peer value this build knows ("pytorch"). */
bool bench_peer_known(const char *name);
/* True for the cases --peer adds to the level (they run at every level). */
bool bench_peer_case(const char *case_name);
/* Runs the script for the selected peer cases and fills p's rows from its
 * figures and r's CPU timings. Reports problems in p->note only. */
void bench_peer_run(bench_peer *p, const bench_run *r);
/* The section of the table, and the "peer" member of the JSON. */
void bench_peer_print(FILE *f, const bench_run *r);
void bench_peer_json(dl_json *j, const bench_run *r);

#endif
