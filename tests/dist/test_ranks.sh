#!/usr/bin/env bash
# dlab-gpu on 2 and 3 CPU ranks: factorise with its rows spread over them,
# and --seeds split over them (factorise and mlp).
# usage: test_ranks.sh CASE path/to/dlab-gpu path/to/iris.data mpiexec [flags...]
#   equal      lab and careful on iris: the SSE, the SVD's singular values and
#              SSE, and the loss history equal one process's within 1e-5
#              relative; the run's JSON and text say how many ranks shared
#              the rows
#   reruns     2 and 3 ranks: the same figures, bit for bit, run after run
#   bad-input  a bad file, a bad row, too few rows for the ranks, a task that
#              runs alone, --fused on for rows spread over ranks: every rank
#              exits 2, rank 0 says why once
#   seeds      --seeds split over 2 and 3 ranks, factorise and mlp: every
#              model's figures, the histories and the stop are bit for bit
#              one process's (also when some or all models diverge), and the
#              text report names the ranks; mlp's share of runs at 40-55 %
#              is over the models with an accuracy, null when none has one
#   out        --out: rank 0 alone writes the files, with every row of U
#   interrupt  SIGINT, then SIGTERM, to one rank: every rank stops after the
#              same epoch and rank 0 reports the interrupted run, exit 130,
#              then 143
#   synthetic  --synthetic on 2 and 3 ranks, each making only its rows: the
#              figures equal one process's within 1e-5 relative and are bit
#              for bit the same run after run; with --seeds, bit for bit one
#              process's
#   npy        a .npy array (C and Fortran order) read by rows on 2 and 3
#              ranks: the figures equal one process's within 1e-5 relative,
#              and bit for bit those of the CSV rank 0 scatters
#   seeds-interrupt  --seeds split over 2 ranks (factorise and mlp), the
#              ranks interrupted at different epochs: the report is the epochs
#              every model finished (one process's figures for that many), with
#              each model's own count in epochs_trained
#   bad-slice  a .npy file whose fault lies in the last rank's rows (a NaN,
#              a file cut short): every rank exits 2, rank 0 prints the
#              message once; ranks of a seed sweep reading different
#              copies of a file stop the same way
# Every run has a watchdog: a hang is killed and fails the case.
set -u
case_name=$1 dlab=$2 iris=$3
shift 3
launcher=("$@")
. "$(dirname "$0")/../harness.sh"
export DLAB_NO_COLOR=1

. "$(dirname "$0")/jobs.sh"

# finish_run WHAT: finish_job, and a hang is a failure of WHAT.
finish_run() {
  finish_job
  [ "$rc" -ne 137 ] || bad "the job hung and was killed: $*"
}

show() { sed 's/^/  | /' "$tmp/err" | head -20; }

# ranks NP ARGS...: dlab-gpu on NP ranks (NP = 1: a plain process).
ranks() {
  local np=$1
  shift
  if [ "$np" -eq 1 ]; then
    run_job 120 "$dlab" "$@"
  else
    run_job 120 "${launcher[@]}" -np "$np" "$dlab" "$@"
  fi
  finish_run "$np ranks: $*"
}

# compare A.json B.json: the figures of B equal A's within 1e-5 relative.
compare() {
  python3 - "$1" "$2" <<'EOF'
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
bad = []
def close(x, y, what):
    if x is None or y is None or not math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-9):
        bad.append(f"{what}: {x} vs {y}")
for key in ("sse_gd", "sse_svd", "sse_svd_reconstruction", "lr"):
    close(a[key], b[key], key)
if a["epochs_run"] != b["epochs_run"] or a["status"] != b["status"]:
    bad.append(f"runs differ: {a['status']} {a['epochs_run']} vs {b['status']} {b['epochs_run']}")
for i, (x, y) in enumerate(zip(a["singular_values"], b["singular_values"])):
    close(x, y, f"singular value {i}")
if len(a["loss_history"]) != len(b["loss_history"]):
    bad.append("loss histories of different lengths")
for e in (0, len(a["loss_history"]) // 2, len(a["loss_history"]) - 1):
    close(a["loss_history"][e], b["loss_history"][e], f"loss at epoch {e + 1}")
# The angles of U_gd to the SVD's subspace: float32 rounding of either
# side moves the smallest by up to about 1e-5 degrees.
for i, (x, y) in enumerate(zip(a["principal_angles_deg"], b["principal_angles_deg"])):
    if not math.isclose(x, y, rel_tol=1e-3, abs_tol=1e-4):
        bad.append(f"principal angle {i}: {x} vs {y} degrees")
if b.get("ranks") != int(sys.argv[2].split(".")[-2]):
    bad.append(f"ranks: {b.get('ranks')}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
}

# figures FILE: the JSON without its timings, the machine and the count of ranks.
figures() {
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
skip = ("device", "ranks")
print(json.dumps({k: v for k, v in d.items() if "seconds" not in k and k not in skip},
                 sort_keys=True))' "$1"
}

# band_share OUT.json ERR.txt: mlp's share of runs at 40-55 % is over the
# models with a validation accuracy (null when none has one), and the text
# says over how many.
band_share() {
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()
acc = [s["val_accuracy"] for s in d["seeds"]]
measured = [a for a in acc if a is not None]
share = d["summary"]["val_accuracy_40_55"]
assert d["summary"]["val_accuracy"]["n"] == len(measured), d["summary"]
if not measured:
    assert share is None, share
    assert "runs at 40-55 %       not measured: every run diverged\n" in text, text
else:
    k = sum(0.4 - 1e-6 <= a <= 0.55 + 1e-6 for a in measured)
    assert share == k / len(measured), (share, k, measured)
    if len(measured) < len(acc):
        line = f"{k} of {len(measured)} runs with an accuracy"
        assert line in text and f"the other {len(acc) - len(measured)} diverged" in text, text
PY
}

# make_npy IRIS DIR: iris as float32 .npy in C and Fortran order, and two
# damaged copies whose fault lies in the last rows (written with struct by
# the format's specification, numpy.lib.format).
make_npy() {
  python3 - "$1" "$2" <<'PY'
import struct, sys
rows = [[float(v) for v in l.split(",")[:4]] for l in open(sys.argv[1]) if l.strip()]
def npy(fortran, vals):
    d = "{'descr': '<f4', 'fortran_order': %s, 'shape': (%d, 4), }" % (fortran, len(rows))
    d += " " * (-(10 + len(d) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode() + struct.pack(
        "<%df" % len(vals), *vals)
flat = [v for r in rows for v in r]
out = sys.argv[2]
open(out + "/iris_c.npy", "wb").write(npy(False, flat))
open(out + "/iris_f.npy", "wb").write(npy(True, [r[j] for j in range(4) for r in rows]))
nan = list(flat)
nan[148 * 4 + 2] = float("nan")
open(out + "/nan_last.npy", "wb").write(npy(False, nan))
open(out + "/cut_last.npy", "wb").write(npy(False, flat)[:-20])
PY
}

case "$case_name" in
equal)
  for preset in lab careful; do
    ranks 1 --task factorise --data "$iris" --preset "$preset" --json --quiet
    [ "$rc" -eq 0 ] && cp "$tmp/out" "$tmp/$preset.1.json" || { bad "one process: exit $rc"; show; }
    for np in 2 3; do
      ranks "$np" --task factorise --data "$iris" --preset "$preset" --json --quiet
      [ "$rc" -eq 0 ] || { bad "$preset on $np ranks: exit $rc"; show; continue; }
      cp "$tmp/out" "$tmp/$preset.$np.json"
      check "$preset on $np ranks equals one process" compare "$tmp/$preset.1.json" \
        "$tmp/$preset.$np.json"
      # with --json the text report is on stderr
      check "$preset on $np ranks: the text names the ranks" \
        grep -qx "  MPI ranks            $np  (the rows shared over them)" "$tmp/err"
    done
  done
  ;;
reruns)
  for np in 2 3; do
    for run in 1 2; do
      ranks "$np" --task factorise --data "$iris" --preset careful --rank 3 --json --quiet
      [ "$rc" -eq 0 ] || { bad "$np ranks: exit $rc"; show; }
      figures "$tmp/out" >"$tmp/fig.$np.$run"
    done
    [ -s "$tmp/fig.$np.1" ] && cmp -s "$tmp/fig.$np.1" "$tmp/fig.$np.2" && ok \
      || bad "$np ranks: the figures differ between runs"
  done
  ;;
seeds)
  for args in "--task factorise --preset lab --seeds 7" \
    "--task factorise --preset careful --seeds 5 --rank 3" \
    "--task factorise --preset lab --seeds 4 --lr 0.3" "--task mlp --preset lab --seeds 5" \
    "--task mlp --optim adam --batch 16 --seeds 4 --epochs 60" \
    "--task mlp --preset lab --seeds 3 --lr 1e30"; do
    ranks 1 --data "$iris" $args --json --quiet
    figures "$tmp/out" >"$tmp/one" || { bad "$args: one process: exit $rc"; show; }
    if grep -q "MPI ranks" "$tmp/err"; then bad "$args: one process names MPI ranks"; else ok; fi
    [[ $args == *mlp* ]] && check "$args: the share at 40-55 % is over the measured runs" \
      band_share "$tmp/out" "$tmp/err"
    for np in 2 3; do
      ranks "$np" --data "$iris" $args --json --quiet
      figures "$tmp/out" >"$tmp/split" || { bad "$args: $np ranks: exit $rc"; show; }
      cmp -s "$tmp/one" "$tmp/split" && ok \
        || bad "$args on $np ranks: the figures differ from one process's"
      check "$args on $np ranks: the text names the ranks" \
        grep -qx "  MPI ranks            $np  (the seeds split over them)" "$tmp/err"
    done
  done
  # some models diverge (one process: a split reports the first model's
  # figures at the epoch of the first divergence, but its weights are those
  # its rank trained on to)
  ranks 1 --data "$iris" --task mlp --preset lab --seeds 4 --lr 20 --json --quiet
  check "some models diverge: the share at 40-55 % is over the measured runs" \
    band_share "$tmp/out" "$tmp/err"
  ;;
bad-input)
  printf '1,2,3\n4,5,6\n7,8,9\n1,2,3\n4,5,x\n7,8,9\n' >"$tmp/bad-row.csv"
  printf '1,2\n3,4\n' >"$tmp/two.csv"
  # "file:line" leads the loader's message; rank 0 prints it once.
  expect() { # NAME PATTERN
    [ "$rc" -eq 2 ] && [ "$(grep -c "$2" "$tmp/err")" -eq 1 ] && ok \
      || { bad "$1: exit $rc, expected 2 and one line matching '$2'"; show; }
  }
  ranks 3 --task factorise --data "$tmp/bad-row.csv" --quiet
  expect "a bad row" "bad-row.csv:5: column 3: not a number"
  ranks 2 --task factorise --data "$tmp/missing.csv" --quiet
  expect "a missing file" "missing.csv: cannot open"
  ranks 3 --task factorise --data "$tmp/two.csv" --rank 1 --quiet
  expect "fewer rows than ranks" "2 rows, fewer than the 3 ranks"
  ranks 2 --task mlp --data "$iris" --quiet
  expect "one mlp on two ranks" "mlp trains one model, which is not split over ranks: run it as one process (without the launcher), or train --seeds N with N >= 2"
  ranks 2 --task predict --model "$tmp/none.json" --data "$iris" --quiet
  expect "predict on several ranks" "predict runs in one process"
  # a share too large for memory: refused with the sizes before any row is made
  ranks 2 --task factorise --device cpu --synthetic 200000x2000000 --quiet
  [ "$rc" -eq 1 ] && [ "$(grep -c "share of the factorisation needs .* GiB of cpu memory, but only" "$tmp/err")" -eq 1 ] && ok \
    || { bad "a share too large: exit $rc, expected 1 and one line with the sizes"; show; }
  ranks 3 --task factorise --data "$iris" --seeds 2 --quiet
  expect "fewer seeds than ranks" "seeds 2 is fewer than the 3 ranks"
  # rows spread over ranks sum dV over them inside the epoch: never fused
  ranks 2 --task factorise --data "$iris" --fused on --quiet
  expect "--fused on, rows over ranks" "fused on: rows spread over 2 ranks train on the general path"
  ;;
out)
  ranks 1 --task factorise --data "$iris" --preset careful --quiet --out "$tmp/one"
  ranks 3 --task factorise --data "$iris" --preset careful --quiet --out "$tmp/three"
  [ "$rc" -eq 0 ] || { bad "3 ranks with --out: exit $rc"; show; }
  for f in summary.json history.csv U.csv V.csv svd_U.npy report.html; do
    [ -s "$tmp/three/$f" ] && ok || bad "3 ranks: $f was not written"
  done
  # U.csv holds every row, in the order one process writes them.
  [ "$(wc -l <"$tmp/three/U.csv")" = "$(wc -l <"$tmp/one/U.csv")" ] && ok \
    || bad "U.csv: $(wc -l <"$tmp/three/U.csv") lines, one process $(wc -l <"$tmp/one/U.csv")"
  python3 - "$tmp/one/U.csv" "$tmp/three/U.csv" <<'EOF' && ok || bad "U differs from one process's"
import csv, sys
a, b = ([[float(x) for x in r] for r in list(csv.reader(open(p)))[1:]] for p in sys.argv[1:])
worst = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
scale = max(abs(x) for r in a for x in r)
sys.exit(0 if len(a) == len(b) == 150 and worst <= 1e-3 * scale else 1)
EOF
  ;;
interrupt)
  # A signal to one rank stops both; they exit as that rank would.
  for sig in INT TERM; do
    run_job 90 "${launcher[@]}" -np 2 "$dlab" --task factorise --data "$iris" --epochs 100000000 \
      --json --quiet
    for _ in $(seq 50); do
      # the launcher's children: the ranks (Open MPI starts them itself on one node)
      pids=($(cat /proc/"$job"/task/*/children 2>/dev/null))
      [ "${#pids[@]}" -eq 2 ] && break
      sleep 0.2
    done
    sleep 1.5
    kill -"$sig" "${pids[1]}" 2>/dev/null || bad "no rank to interrupt"
    finish_run "interrupt ($sig)"
    want=$([ "$sig" = INT ] && echo 130 || echo 143)
    [ "$rc" -eq "$want" ] && ok || { bad "SIG$sig to rank 1: exit $rc, expected $want"; show; }
    # every rank stopped: the message names none of them
    grep -q "^dlab-gpu: interrupted after epoch [0-9]* of 100000000$" "$tmp/err" && ok \
      || { bad "SIG$sig to rank 1: the stop message"; show; }
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["status"] == "interrupted" and 0 < d["epochs_run"] < d["epochs"]
         and len(d["loss_history"]) == d["epochs_run"] else 1)' "$tmp/out" && ok \
      || { bad "rank 0 did not report the run SIG$sig interrupted"; show; }
  done
  ;;
seeds-interrupt)
  # Rank 1 is interrupted first, rank 0 a second later: they stop at
  # different epochs. The report is the run every model finished: its
  # figures equal one process trained for exactly that many epochs, and
  # epochs_trained says how far each model went.
  # interrupt_split NAME BEFORE BETWEEN ARGS...: ARGS on 2 ranks; once both
  # catch SIGINT and BEFORE seconds more, rank 1 is interrupted, rank 0
  # BETWEEN seconds later; expects exit 130, keeps the report in
  # $tmp/NAME.json and its epochs_run in $n.
  # SigCgt: the signals a process catches, SIGINT (2) in bit 1
  catches_int() { (($(printf '%d' "0x$(awk '/^SigCgt/ {print $2}' /proc/"$1"/status)") & 2)); }
  interrupt_split() {
    local name=$1 before=$2 between=$3
    shift 3
    run_job 90 "${launcher[@]}" -np 2 "$dlab" "$@"
    pids=()
    for _ in $(seq 100); do
      pids=($(cat /proc/"$job"/task/*/children 2>/dev/null))
      [ "${#pids[@]}" -eq 2 ] && break
      sleep 0.1
    done
    for _ in $(seq 200); do
      [ "${#pids[@]}" -eq 2 ] && catches_int "${pids[0]}" 2>/dev/null \
        && catches_int "${pids[1]}" 2>/dev/null && break
      sleep 0.05
    done
    sleep "$before"
    kill -INT "${pids[1]}" 2>/dev/null || bad "$name: no rank 1 to interrupt"
    sleep "$between"
    kill -INT "${pids[0]}" 2>/dev/null || bad "$name: no rank 0 to interrupt"
    finish_run "$name"
    [ "$rc" -eq 130 ] && ok || { bad "$name: exit $rc, expected 130"; show; }
    cp "$tmp/out" "$tmp/$name.json"
    n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epochs_run"])' \
      "$tmp/$name.json" 2>/dev/null)
  }
  args=(--task factorise --data "$iris" --preset careful --seeds 4 --json --quiet)
  # time to reach training on loaded machines
  interrupt_split split 3 1.5 "${args[@]}" --epochs 100000000
  if [ -n "$n" ] && [ "$n" -gt 0 ]; then
    ranks 1 "${args[@]}" --epochs "$n"
    check "an interrupted seed split reports what one process trains in its epochs" \
      python3 - "$tmp/split.json" "$tmp/out" <<'PY'
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
n = a["epochs_run"]
assert a["status"] == "interrupted" and len(a["loss_history"]) == n, a["status"]
trained = [s["epochs_trained"] for s in a["seeds"]]
assert min(trained) == n and max(trained) > n, trained  # rank 0 went on after rank 1
for x, y in zip(a["seeds"], b["seeds"]):
    assert math.isclose(x["sse_gd"], y["sse_gd"], rel_tol=1e-7), (x, y)
for e in (0, n - 1):  # model 0's
    assert math.isclose(a["loss_history"][e], b["loss_history"][e], rel_tol=1e-7), e
PY
  else
    bad "no epoch count in the interrupted run's report"
    show
  fi
  # mlp: rank 1 is interrupted as soon as both ranks catch SIGINT (it still
  # finishes its first chunk of epochs), rank 0 a second later.
  margs=(--task mlp --data "$iris" --seeds 4 --batch 4 --json --quiet)
  interrupt_split mlp-split 0 1 "${margs[@]}" --epochs 1000000
  if [ -n "$n" ] && [ "$n" -gt 0 ]; then
    ranks 1 "${margs[@]}" --epochs "$n"
    check "an interrupted mlp seed split reports what one process trains in its epochs" \
      python3 - "$tmp/mlp-split.json" "$tmp/out" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
n = a["epochs_run"]
assert a["status"] == "interrupted" and len(a["history"]) == n, a["status"]
trained = [s.pop("epochs_trained") for s in a["seeds"]]
# rank 0 trains seeds 1-2 and went on after rank 1 (seeds 3-4) stopped
assert trained[2:] == [n, n] and min(trained[:2]) > n, (n, trained)
assert all("epochs_trained" not in s for s in b["seeds"]), b["seeds"]
assert a["seeds"] == b["seeds"] and a["history"] == b["history"], (a["seeds"], b["seeds"])
assert a["summary"] == b["summary"], (a["summary"], b["summary"])
PY
  else
    bad "mlp: no epoch count in the interrupted run's report"
    show
  fi
  ;;
synthetic)
  syn=(--task factorise --synthetic 301x37 --rank 4 --epochs 150 --json --quiet)
  for preset in careful lab; do
    ranks 1 "${syn[@]}" --preset "$preset" --lr 0.001
    [ "$rc" -eq 0 ] && cp "$tmp/out" "$tmp/syn-$preset.1.json" || { bad "one process: exit $rc"; show; }
    for np in 2 3; do
      for run in 1 2; do
        ranks "$np" "${syn[@]}" --preset "$preset" --lr 0.001
        [ "$rc" -eq 0 ] || { bad "$preset on $np ranks: exit $rc"; show; continue; }
        cp "$tmp/out" "$tmp/syn-$preset.$np.json"
        figures "$tmp/out" >"$tmp/syn-fig.$np.$run"
      done
      check "synthetic $preset on $np ranks equals one process" compare \
        "$tmp/syn-$preset.1.json" "$tmp/syn-$preset.$np.json"
      cmp -s "$tmp/syn-fig.$np.1" "$tmp/syn-fig.$np.2" && ok \
        || bad "synthetic $preset on $np ranks: the figures differ between runs"
    done
  done
  ranks 1 "${syn[@]}" --seeds 5
  figures "$tmp/out" >"$tmp/one" || { bad "synthetic seeds: one process: exit $rc"; show; }
  for np in 2 3; do
    ranks "$np" "${syn[@]}" --seeds 5
    figures "$tmp/out" >"$tmp/split" || { bad "synthetic seeds on $np ranks: exit $rc"; show; }
    cmp -s "$tmp/one" "$tmp/split" && ok \
      || bad "synthetic --seeds 5 on $np ranks: the figures differ from one process's"
  done
  ;;
npy)
  make_npy "$iris" "$tmp"
  # the figures without the file's name
  nameless() { figures "$1" | sed 's/"data": "[^"]*"//'; }
  for file in iris_c.npy iris_f.npy; do
    ranks 1 --task factorise --data "$tmp/$file" --preset careful --json --quiet
    [ "$rc" -eq 0 ] && cp "$tmp/out" "$tmp/npy.1.json" || { bad "$file, one process: exit $rc"; show; }
    for np in 2 3; do
      ranks "$np" --task factorise --data "$tmp/$file" --preset careful --json --quiet
      [ "$rc" -eq 0 ] || { bad "$file on $np ranks: exit $rc"; show; continue; }
      cp "$tmp/out" "$tmp/npy.$np.json"
      check "$file read by rows on $np ranks equals one process" compare "$tmp/npy.1.json" \
        "$tmp/npy.$np.json"
      # rank 0 scatters the CSV's rows: the same numbers, so the same bits
      ranks "$np" --task factorise --data "$iris" --preset careful --json --quiet
      [ "$rc" -eq 0 ] || { bad "CSV on $np ranks: exit $rc"; show; continue; }
      cmp -s <(nameless "$tmp/out") <(nameless "$tmp/npy.$np.json") && ok \
        || bad "$file on $np ranks: other figures than the CSV scattered by rank 0"
    done
  done
  ;;
bad-slice)
  make_npy "$iris" "$tmp"
  expect() { # NAME PATTERN
    [ "$rc" -eq 2 ] && [ "$(grep -c "$2" "$tmp/err")" -eq 1 ] && ok \
      || { bad "$1: exit $rc, expected 2 and one line matching '$2'"; show; }
  }
  # A NaN in row 149 of 150: rank 2's rows (101 to 150 in the file's
  # numbering); ranks 0 and 1 read theirs without fault.
  ranks 3 --task factorise --data "$tmp/nan_last.npy" --quiet
  expect "a NaN in the last rank's rows" "rank 2: .*nan_last.npy: row 149, column 3: NaN"
  [ "$(grep -c '^dlab-gpu' "$tmp/err")" -eq 1 ] && ok || { bad "NaN: more than one message"; show; }
  # The file ends inside the last rank's rows.
  ranks 3 --task factorise --data "$tmp/cut_last.npy" --quiet
  expect "a file cut short in the last rank's rows" "cut_last.npy: truncated .npy file"
  ranks 2 --task factorise --data "$tmp/cut_last.npy" --seeds 2 --quiet
  expect "a file cut short, read whole by every rank" "cut_last.npy: truncated .npy file"
  # Ranks that read different copies (an MPMD launch gives rank 1 another
  # file): a seed sweep stops rather than train on different data.
  sed '3s/^4\.7,/4.8,/' "$iris" >"$tmp/iris2.csv"
  cp "$iris" "$tmp/iris1.csv"
  for task in factorise mlp; do
    run_job 120 "${launcher[@]}" -np 1 "$dlab" --task $task --data "$tmp/iris1.csv" --seeds 2 \
      --quiet : -np 1 "$dlab" --task $task --data "$tmp/iris2.csv" --seeds 2 --quiet
    finish_run "differing copies"
    expect "$task: ranks reading different copies" \
      "rank 1: .*iris2.csv: this rank read other data than rank 0"
  done
  # Ranks started with other options (here --rank) would wait in different
  # collectives: refused at start by the rank that differs.
  run_job 120 "${launcher[@]}" -np 1 "$dlab" --task factorise --data "$iris" --rank 2 --quiet \
    : -np 1 "$dlab" --task factorise --data "$iris" --rank 3 --quiet
  finish_run "differing options"
  expect "ranks with other options" "rank 1: this rank was started with other options than rank 0"
  ;;
*)
  bad "unknown case $case_name"
  ;;
esac
finish "test_ranks $case_name"
