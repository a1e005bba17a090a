#!/usr/bin/env python3
"""Checks dlab-bench end to end (the ctest `bench_quick_cpu`).

Usage: check_bench.py DLAB_BENCH [bench options...]
       check_bench.py --script-check IRIS_DATA

Runs DLAB_BENCH with the options given (ctest passes --quick --device cpu
--json), then checks its JSON: every case of that level is there (compared
with `--list`), each backend that ran has positive, ordered timings from at
least five runs, the sizes agree with each other and the rates with the
timings. The many-model cases (`-seeds`, N iris models per run) run the
lab's whole training runs, cost N times one model, and their runs per
second agree with their training times; the speed goals are reported with
the case they were read from, and `met` agrees with measured and target.
Then the usage errors: a bad option exits 2 with one line, and
--device cuda either runs or exits 1 saying there is no GPU. Speed is not
judged here (met may be false): that is what the benchmark reports.

With --peer pytorch among the options (the ctest `bench_peer_cpu`), the
peer section is checked too: where PyTorch imports (the interpreters
dlab-bench tries, in its order), every row has positive PyTorch and dlab
seconds, dlab's being the case's median x the epochs, the ratio their
quotient and `met` the ratio against the goal; where it does not, one skip
note and no figures. Then the peer's failure paths: torch hidden by a
module that fails to import (a skip note), an interpreter that prints no
JSON or fails (a failure note), each with exit status 0; an unknown --peer
(exit 2); and an installed layout (bin/dlab-bench, share/dlab-gpu/
peer_pytorch.py), whose script is the one found.

--script-check runs bench/peer_pytorch.py --check (the ctest
`peer_pytorch_check`): its hand-written loops against autograd and the
batched loop from the same starts; exit 77 (skipped) when no interpreter
imports torch.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def run(exe, args, timeout=600, env=None):
    full = None if env is None else dict(os.environ, **env)
    return subprocess.run([exe] + args, capture_output=True, text=True, timeout=timeout, env=full)


def level_flag(args):
    flags = [f for f in ("--smoke", "--quick") if f in args][:1]
    if "--peer" in args:
        flags += ["--peer", args[args.index("--peer") + 1]]
    return flags


def check_timing(name, backend, t):
    where = f"{name} on {backend}"
    if not check(t.get("status") == "ok", f"{where}: status {t.get('status')!r} ({t.get('reason')})"):
        return False
    check(t["repeats"] >= 5, f"{where}: {t['repeats']} timed runs, need at least 5")
    check(t["epochs"] >= 1, f"{where}: {t['epochs']} epochs")
    check(0 < t["min_s"] <= t["median_s"] <= t["max_s"],
          f"{where}: timings not positive and ordered: {t['min_s']}, {t['median_s']}, {t['max_s']}")
    check(t["gflops"] > 0 and t["gbps"] > 0, f"{where}: non-positive rates")
    check(t["final_loss"] is not None and math.isfinite(t["final_loss"]),
          f"{where}: final loss {t['final_loss']}")
    if t.get("floor_s") is not None:
        check(t["floor_s"] > 0 and close(t["of_floor"], t["median_s"] / t["floor_s"], 1e-4),
              f"{where}: floor {t['floor_s']} and of_floor {t['of_floor']} disagree")
    return True


# The lab's epochs per whole run in the many-model families (--seeds N).
RUN_EPOCHS = {"mlp": 100, "factorise": 1000}


def check_models(c):
    """A many-model case: N iris models per run, each run the lab's whole run."""
    name, models = c["name"], c["models"]
    check(c["data"] == "iris", f"{name}: many-model cases train on iris")
    check(c["size"] == models, f"{name}: size {c['size']} != models {models}")
    check(name == f"{c['family']}/{models}-models", f"{name}: name does not say {models}-models")
    check(c["run_epochs"] == RUN_EPOCHS.get(c["workload"]),
          f"{name}: run_epochs {c['run_epochs']}, the lab's are {RUN_EPOCHS.get(c['workload'])}")


def check_runs(c, b, t):
    """Whole-run rates agree with the per-epoch median and the fixed epochs."""
    where = f"{c['name']} on {b}"
    check(close(t["model_epochs_per_s"], c["models"] / t["median_s"], 1e-4),
          f"{where}: model_epochs_per_s does not match models / median")
    if c["run_epochs"] is None:
        check("runs_per_s" not in t, f"{where}: runs_per_s without fixed run epochs")
        return
    check(t["epochs"] == c["run_epochs"], f"{where}: ran {t['epochs']} epochs, not {c['run_epochs']}")
    check(close(t["run_s"], t["median_s"] * t["epochs"], 1e-4), f"{where}: run_s != median x epochs")
    check(close(t["runs_per_s"], c["models"] / t["run_s"], 1e-4), f"{where}: runs_per_s != models / run_s")


def check_case(c, ran):
    name = c["name"]
    check(c["flops_per_epoch"] > 0 and c["bytes_per_epoch"] > 0, f"{name}: non-positive cost")
    check(c["lr"] > 0, f"{name}: learning rate {c['lr']}")
    check(name.startswith(c["family"] + "/"), f"{name}: not in family {c['family']}")
    check(isinstance(c["models"], int) and c["models"] >= 1, f"{name}: models {c['models']}")
    many = c["size_unit"] == "models"
    if many:
        check_models(c)
    else:
        check(c["models"] == 1 and c["run_epochs"] is None, f"{name}: one model, epochs from the warm-up")
    if c["workload"] == "factorise":
        m, n, k = c["m"], c["n"], c["rank"]
        check(c["elements"] == m * n, f"{name}: elements != m*n")
        check(many or c["size"] == m * n, f"{name}: size != m*n")
        check(1 <= k <= min(m, n), f"{name}: rank {k} for {m}x{n}")
        check(many or f"{m}x{n}-r{k}" in name, f"{name}: name does not say {m}x{n}-r{k}")
        check(c["flops_per_epoch"] >= 6 * m * n * k * c["models"], f"{name}: fewer flops than three gemms")
        check(c["bytes_per_epoch"] >= 4 * 6 * m * n * c["models"], f"{name}: fewer bytes than the mn buffers")
    elif c["workload"] == "mlp":
        s, h = c["samples"], c["hidden"]
        check(many or c["size"] == s, f"{name}: size {c['size']} != samples {s}")
        check(0 < c["train"] < s, f"{name}: train {c['train']} of {s} samples")
        check(c["features"] >= 1 and c["classes"] >= 2 and h >= 1, f"{name}: bad shape")
        check(1 <= c["batch"] <= c["train"], f"{name}: batch {c['batch']}")
        check(many or f"h{h}" in name, f"{name}: name does not say h{h}")
    else:
        check(False, f"{name}: unknown workload {c['workload']!r}")
    for b in ("cpu", "cuda"):
        t = c[b]
        if b in ran:
            if check_timing(name, b, t):
                check(close(t["gflops"], c["flops_per_epoch"] / t["median_s"] * 1e-9, 1e-4),
                      f"{name} on {b}: GFLOP/s does not match flops / median")
                check(close(t["gbps"], c["bytes_per_epoch"] / t["median_s"] * 1e-9, 1e-4),
                      f"{name} on {b}: GB/s does not match bytes / median")
                check_runs(c, b, t)
        else:
            check(t["status"] in ("not run", "no GPU"), f"{name} on {b}: status {t['status']!r}")
    if "cpu" in ran and "cuda" in ran and c["cpu"]["status"] == "ok" == c["cuda"]["status"]:
        check(close(c["speedup"], c["cpu"]["median_s"] / c["cuda"]["median_s"], 1e-4),
              f"{name}: speedup {c['speedup']} != cpu/cuda medians")
    else:
        check(c["speedup"] is None, f"{name}: speedup without both backends")


def check_many(cases):
    """N models cost N times one: the many-model cases against the single-model
    iris case of the same workload, when that ran too."""
    single = {c["workload"]: c for c in cases if c["data"] == "iris" and c["size_unit"] != "models"}
    for c in cases:
        one = single.get(c["workload"])
        if c["size_unit"] != "models" or one is None:
            continue
        for key in ("flops_per_epoch", "bytes_per_epoch"):
            check(close(c[key], c["models"] * one[key], 1e-9),
                  f"{c['name']}: {key} {c[key]} != {c['models']} x {one['name']}'s {one[key]}")


GOALS = {"cpu-mlp-iris-runs-per-s": ("cpu", ">=", 1000.0),
         "cuda-mlp-iris-10000x100-seconds": ("cuda", "<", 1.0)}


def check_goals(doc, ran):
    """The speed goals are reported with what they were read from; whether
    they are met is the benchmark's report, not a test."""
    goals = {g["name"]: g for g in doc["goals"]}
    check(set(goals) == set(GOALS), f"goals {sorted(goals)} != {sorted(GOALS)}")
    mlp_many = [c for c in doc["cases"] if c["family"] == "mlp-seeds"]
    for name, (backend, cmp, target) in GOALS.items():
        g = goals.get(name)
        if g is None:
            continue
        check((g["backend"], g["comparison"], g["target"]) == (backend, cmp, target),
              f"goal {name}: {g['backend']} {g['comparison']} {g['target']}")
        if g["measured"] is None:
            check(g["met"] is None and g["case"] is None and bool(g.get("reason")),
                  f"goal {name}: not measured, yet met {g['met']} / case {g['case']}")
        else:
            met = g["measured"] >= target if cmp == ">=" else g["measured"] < target
            check(g["met"] is met, f"goal {name}: met {g['met']} for {g['measured']} {cmp} {target}")
        # What it should have been read from.
        ok = [c for c in mlp_many if c[backend]["status"] == "ok"]
        if backend == "cpu":
            want = max((c["cpu"]["runs_per_s"] for c in ok), default=None)
        else:
            want = next((c["cuda"]["run_s"] for c in ok if c["models"] == 10000), None)
        check(want is None and g["measured"] is None or
              want is not None and g["measured"] is not None and close(g["measured"], want, 1e-6),
              f"goal {name}: measured {g['measured']}, the cases say {want}")
    if "cpu" in ran and mlp_many:
        check(goals.get("cpu-mlp-iris-runs-per-s", {}).get("measured") is not None,
              "the CPU goal is not measured though mlp-seeds ran on the CPU")


# The comparison --peer pytorch makes: case, workload, goal, epochs, models.
PEER_ROWS = [("factorise-iris/150x4-r2", "factorise-iris", 100.0, 1000, 1),
             ("mlp-iris/150x4-h12", "mlp-iris", 50.0, 100, 1),
             ("mlp-seeds/1000-models", "mlp-seeds", 50.0, 100, 1000)]


def torch_python():
    """The first interpreter dlab-bench tries that imports torch, or None."""
    env = os.environ.get("DLAB_BENCH_PYTHON")
    for py in [env] if env else ["python3", "/usr/bin/python3"]:
        try:
            if subprocess.run([py, "-c", "import torch"], capture_output=True, timeout=120).returncode == 0:
                return py
        except OSError:
            pass
    return None


def torch_importable():
    return torch_python() is not None


def script_check(data):
    py = torch_python()
    if py is None:
        print("check_bench: skipped: no interpreter imports torch (bash scripts/setup.sh --peer)")
        return 77
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_pytorch.py")
    p = subprocess.run([py, script, "--data", data, "--check"], capture_output=True, text=True,
                       timeout=600)
    print(p.stdout + p.stderr)
    return 0 if p.returncode == 0 and json.loads(p.stdout)["check"] == "ok" else 1


# Set by ctest for a build without Jansson (tests/CMakeLists.txt).
NO_JANSSON = os.environ.get("DL_BENCH_NO_JANSSON") == "1"


def check_peer(doc, selected_all):
    p = doc.get("peer")
    if not check(isinstance(p, dict), f"--peer pytorch: no peer object ({p!r})"):
        return
    check(p["name"] == "pytorch", f"peer name {p['name']!r}")
    cases = {c["name"]: c for c in doc["cases"]}
    rows = {r["case"]: r for r in p["rows"]}
    check(set(rows) == {r[0] for r in PEER_ROWS}, f"peer rows {sorted(rows)}")
    if selected_all:
        for name, *_ in PEER_ROWS:
            check(name in cases, f"--peer did not add {name} to the level")
    if NO_JANSSON:  # a build without Jansson (the minimal preset) skips, says so and times nothing
        check(p["status"] == "skipped" and "built without Jansson" in (p.get("note") or ""),
              f"without Jansson: peer status {p['status']!r}, note {p.get('note')!r}")
        check(all(r["pytorch_s"] is None and r["ratio"] is None for r in p["rows"]),
              "without Jansson: PyTorch figures")
        return
    if torch_importable():
        if not check(p["status"] == "ok", f"PyTorch imports, yet peer status {p['status']!r}: {p.get('note')}"):
            return
        check(p["threads"] == 1 and p["interop_threads"] == 1,
              f"PyTorch ran with {p['threads']} / {p['interop_threads']} threads")
        check(bool(p["torch_version"]) and os.path.isfile(p["script"]), f"peer version or script: {p}")
        for name, workload, target, epochs, models in PEER_ROWS:
            r = rows.get(name)
            if r is None or not r["selected"]:
                continue
            where = f"peer row {name}"
            check(r["workload"] == workload and r["target"] == target,
                  f"{where}: {r['workload']} against {r['target']}")
            check(r["epochs"] == epochs and r["models"] == models,
                  f"{where}: {r['epochs']} epochs of {r['models']} models")
            check(r["pytorch_s"] is not None and r["pytorch_s"] > 0, f"{where}: pytorch_s {r['pytorch_s']}")
            c = cases[name]
            if c["cpu"]["status"] != "ok":
                check(r["ratio"] is None, f"{where}: a ratio without dlab's CPU time")
                continue
            want = c["cpu"]["median_s"] * epochs
            if check(r["dlab_cpu_s"] is not None and close(r["dlab_cpu_s"], want, 1e-4),
                     f"{where}: dlab_cpu_s {r['dlab_cpu_s']}, the case's median x {epochs} is {want}"):
                check(close(r["ratio"], r["pytorch_s"] / r["dlab_cpu_s"], 1e-4),
                      f"{where}: ratio {r['ratio']} != pytorch_s / dlab_cpu_s")
                check(r["met"] is (r["ratio"] >= target), f"{where}: met {r['met']} for ratio {r['ratio']}")
                for v, alt in r["variants"].items():
                    check(alt["pytorch_s"] > 0 and close(alt["ratio"], alt["pytorch_s"] / r["dlab_cpu_s"], 1e-4),
                          f"{where}: variant {v}: {alt}")
    else:
        check(p["status"] == "skipped" and "PyTorch not installed" in p.get("note", ""),
              f"no PyTorch, yet peer status {p['status']!r}: {p.get('note')}")
        for r in p["rows"]:
            check(r["pytorch_s"] is None and r["ratio"] is None and r["met"] is None,
                  f"peer row {r['case']}: figures without PyTorch")


def peer_one(exe, env, where, status=0):
    """dlab-bench --peer pytorch on the iris factorisation alone: exit
    `status` (0 for a comparison made or skipped, 1 for a failed one), the
    whole JSON document on stdout all the same, and its peer object."""
    p = run(exe, ["--smoke", "--device", "cpu", "--peer", "pytorch", "--filter", "factorise-iris",
                  "--json"], env=env)
    if not check(p.returncode == status,
                 f"{where}: exit {p.returncode}, not {status}: {p.stderr[-500:]}"):
        return None
    try:
        doc = json.loads(p.stdout)
    except ValueError as e:
        check(False, f"{where}: stdout is not one JSON object ({e}): {p.stdout[-500:]!r}")
        return None
    check([c["name"] for c in doc["cases"]] == ["factorise-iris/150x4-r2"]
          and doc["cases"][0]["cpu"]["status"] == "ok", f"{where}: the case did not run alone")
    check((doc["peer"]["status"] == "failed") == (status == 1),
          f"{where}: exit {status} with peer status {doc['peer']['status']!r}")
    # A failed comparison says so once on stderr too (the table is there with --json).
    check(("comparison against pytorch failed" in p.stderr) == (status == 1),
          f"{where}: stderr {p.stderr[-500:]!r}")
    return doc["peer"]


def check_peer_paths(exe):
    if NO_JANSSON:  # every path ends in the same skip note, checked by check_peer
        return
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "hide", "torch")
        os.makedirs(fake)
        with open(os.path.join(fake, "__init__.py"), "w") as f:
            f.write("raise ImportError('torch hidden by check_bench.py')\n")
        p = peer_one(exe, {"PYTHONPATH": os.path.dirname(fake)}, "torch hidden")
        if p:
            check(p["status"] == "skipped" and "PyTorch not installed" in p["note"],
                  f"torch hidden: status {p['status']!r}, note {p.get('note')!r}")
            check(all(r["ratio"] is None for r in p["rows"]), "torch hidden: a ratio")
        for py, what in (("/bin/echo", "is not JSON"), ("/bin/false", "exited with status 1")):
            p = peer_one(exe, {"DLAB_BENCH_PYTHON": py}, f"DLAB_BENCH_PYTHON={py}", status=1)
            if p:
                check(p["status"] == "failed" and what in p["note"],
                      f"DLAB_BENCH_PYTHON={py}: status {p['status']!r}, note {p.get('note')!r}")
        p = peer_one(exe, {"DLAB_BENCH_PYTHON": os.path.join(tmp, "no-python")}, "no interpreter")
        if p:
            check(p["status"] == "skipped" and "not found" in p["note"], f"no interpreter: {p.get('note')!r}")
        p = peer_one(exe, {"DLAB_BENCH_PYTHON": tmp}, "a directory")
        if p:
            check(p["status"] == "skipped" and "cannot be run" in p["note"], f"a directory: {p.get('note')!r}")
        # An installed layout: the script beside the executable is not there.
        os.makedirs(os.path.join(tmp, "bin"))
        os.makedirs(os.path.join(tmp, "share", "dlab-gpu"))
        inst = os.path.join(tmp, "bin", "dlab-bench")
        shutil.copy(exe, inst)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_pytorch.py")
        shutil.copy(script, os.path.join(tmp, "share", "dlab-gpu"))
        p = peer_one(inst, None, "installed layout")
        if p:
            check(os.path.realpath(p.get("script", "")) ==
                  os.path.realpath(os.path.join(tmp, "share", "dlab-gpu", "peer_pytorch.py")),
                  f"installed layout: script {p.get('script')!r}")
    bad = run(exe, ["--peer", "tensorflow"])
    check(bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--peer" in bad.stderr,
          f"--peer tensorflow: exit {bad.returncode}, stderr {bad.stderr!r}")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "--script-check" and len(sys.argv) == 3:
        return script_check(sys.argv[2])
    exe, args = sys.argv[1], sys.argv[2:]

    p = run(exe, args)
    check(p.returncode == 0, f"dlab-bench {' '.join(args)} exited {p.returncode}: {p.stderr[-2000:]}")
    try:
        doc = json.loads(p.stdout)
    except ValueError as e:
        print(f"FAIL: stdout is not one JSON object ({e}); stderr:\n{p.stderr[-2000:]}")
        return 1
    listed = run(exe, level_flag(args) + ["--list"]).stdout.split()
    filtered = "--filter" in args

    check(doc.get("tool") == "dlab-bench", "tool is not dlab-bench")
    check(doc.get("repeats", 0) >= 5, "fewer than 5 repeats")
    m = doc["machine"]
    check(m["omp_threads"] >= 1, "omp_threads missing")
    check(m["host_memory_total_bytes"] > 0, "host memory missing")
    ran = doc["backends"]
    check(len(ran) >= 1 and set(ran) <= {"cpu", "cuda"}, f"backends {ran}")
    for b in ran:
        ce = doc["ceilings"][b]
        if check(ce["status"] == "ok", f"{b} ceilings: {ce}"):
            check(ce["sgemm_gflops"] > 0 and ce["copy_gbps"] > 0 and ce["sgemm_n"] > 0,
                  f"{b} ceilings not positive: {ce}")

    names = [c["name"] for c in doc["cases"]]
    check(len(names) == len(set(names)), "duplicate case names")
    if not filtered:
        check(names == listed, f"cases {names} differ from --list {listed}")
        for fam in ("factorise-iris", "factorise-r", "mlp-iris", "mlp-h", "mlp-seeds",
                    "factorise-seeds"):
            check(any(n.startswith(fam) for n in names), f"no {fam}* case")
    for c in doc["cases"]:
        check_case(c, ran)

    check_many(doc["cases"])
    check_goals(doc, ran)
    if "--peer" in args:
        check_peer(doc, not filtered)
        check_peer_paths(exe)
    else:
        check(doc.get("peer", 0) is None, f"peer {doc.get('peer')!r} without --peer")

    families = {c["family"] for c in doc["cases"]}
    for x in doc["crossovers"]:
        check(x["family"] in families, f"crossover for unknown family {x['family']}")
        check(bool(x["note"]), f"crossover {x['family']} without a note")
    multi = {f for f in families if sum(c["family"] == f for c in doc["cases"]) > 1}
    check({x["family"] for x in doc["crossovers"]} == multi,
          f"crossovers {[x['family'] for x in doc['crossovers']]} != families with sizes {sorted(multi)}")

    bad = run(exe, ["--no-such-option"])
    check(bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stdout == "",
          f"bad option: exit {bad.returncode}, stderr {bad.stderr!r}")
    bad = run(exe, ["--device", "tpu"])
    check(bad.returncode == 2 and "--device" in bad.stderr, f"bad --device: exit {bad.returncode}")
    bad = run(exe, ["--repeats", "3"])
    check(bad.returncode == 2 and "--repeats" in bad.stderr, f"--repeats 3: exit {bad.returncode}")
    for args, what in ((["--device", "cpu", "--device", "cuda"], "--device given twice"),
                       (["--quick", "--smoke"], "--quick and --smoke exclude each other"),
                       (["--smoke", "--quick"], "--quick and --smoke exclude each other"),
                       (["--json", "--json"], "--json given twice"),
                       (["--quick", "--quick"], "--quick given twice"),
                       (["--smoke", "--smoke"], "--smoke given twice"),
                       # A repeat after the level names the repeated option, not the level.
                       (["--smoke", "--peer", "pytorch", "--peer", "pytorch"], "--peer given twice"),
                       (["--smoke", "--json", "--json"], "--json given twice"),
                       (["--quick", "--device", "cpu", "--device", "cpu"], "--device given twice")):
        bad = run(exe, args)
        check(bad.returncode == 2 and what in bad.stderr and bad.stderr.count("\n") == 1 and
              ("exclude each other" in bad.stderr) == ("exclude each other" in what),
              f"{' '.join(args)}: exit {bad.returncode}, stderr {bad.stderr!r}")
    cuda = run(exe, ["--smoke", "--device", "cuda", "--filter", "factorise-iris", "--json"])
    if cuda.returncode == 1:
        check("no usable GPU" in cuda.stderr and cuda.stdout == "",
              f"--device cuda without a GPU: {cuda.stderr!r}")
    else:
        check(cuda.returncode == 0 and json.loads(cuda.stdout)["cases"][0]["cuda"]["status"] == "ok",
              f"--device cuda: exit {cuda.returncode}: {cuda.stderr[-500:]}")

    for f in failures:
        print("FAIL:", f)
    print(f"check_bench: {len(doc['cases'])} cases, {len(failures)} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
