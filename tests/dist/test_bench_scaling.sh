#!/usr/bin/env bash
# dlab-bench under the launcher with 2 ranks: the scaling rows of the
# row-sharded factorisation, one per count of ranks, in --json and in --out
# (scaling.json, scaling.txt), from rank 0 alone. Times are only checked to
# be measured (positive, finite); speed is never judged. Every row trains
# the same matrix, so the final SSE agrees within 1e-5 relative.
# usage: test_bench_scaling.sh path/to/dlab-bench mpiexec [flags...]
# DL_SCALING_DEVICE=cuda: the rows on GPU ranks (the cuda-emu build's
# emulated GPUs, MPI standing in for NCCL), whose backend the JSON names.
set -u
bench=$1
shift
launcher=("$@")
. "$(dirname "$0")/../harness.sh"
. "$(dirname "$0")/jobs.sh"

device=${DL_SCALING_DEVICE:-cpu}
run_job 240 "${launcher[@]}" -np 2 "$bench" --smoke --device "$device" --json --out "$tmp/dir"
finish_job
[ "$rc" -eq 0 ] && ok || { bad "exit $rc"; sed 's/^/  | /' "$tmp/err" | head -20; }
cp "$tmp/out" "$tmp/stdout.json"
check "--json: the scaling rows" python3 - "$tmp/stdout.json" "$device" <<'PY'
import json, math, sys
d = json.load(open(sys.argv[1]))
assert d["bench"] == "scaling" and d["task"] == "factorise" and d["ranks"] == 2, d
assert d["device"].startswith("cuda" if sys.argv[2] == "cuda" else "cpu "), d["device"]
rows = d["rows"]
assert [r["ranks"] for r in rows] == [1, 2], rows
for r in rows:
    for k in ("median_s_per_epoch", "min_s_per_epoch", "max_s_per_epoch"):
        assert isinstance(r[k], float) and math.isfinite(r[k]) and r[k] > 0, (k, r)
    assert r["min_s_per_epoch"] <= r["median_s_per_epoch"] <= r["max_s_per_epoch"], r
    assert math.isclose(r["speedup"], rows[0]["median_s_per_epoch"] / r["median_s_per_epoch"],
                        rel_tol=1e-6), r
    assert math.isclose(r["sse_gd"], rows[0]["sse_gd"], rel_tol=1e-5), (r, rows[0])
PY
check "--out: scaling.json is the document printed" cmp -s <(python3 -m json.tool "$tmp/stdout.json") \
  <(python3 -m json.tool "$tmp/dir/scaling.json")
[ "$(grep -c '^ *[12] ' "$tmp/dir/scaling.txt")" -eq 2 ] && ok \
  || { bad "scaling.txt: not one line per count of ranks"; cat "$tmp/dir/scaling.txt"; }
# rank 0 alone prints: one table on stderr (--json), one document on stdout
[ "$(grep -c 'dlab-bench scaling' "$tmp/err")" -eq 1 ] && ok || bad "the table is not printed once"
# options that pick one-process cases are refused under the launcher, not ignored
run_job 120 "${launcher[@]}" -np 2 "$bench" --smoke --device "$device" --filter iris
finish_job
[ "$rc" -eq 2 ] && [ "$(grep -c 'dlab-bench: --filter chooses' "$tmp/err")" -eq 1 ] && ok \
  || { bad "--filter under the launcher: exit $rc"; sed 's/^/  | /' "$tmp/err" | head -5; }
finish "test_bench_scaling"
