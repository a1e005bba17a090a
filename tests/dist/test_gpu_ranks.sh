#!/usr/bin/env bash
# dlab-gpu --device cuda on 2 and 3 ranks, a matrix's rows spread over them
# and the sums over ranks through NCCL (on the cuda-emu build, the
# emulator's NCCL over MPI).
# usage: test_gpu_ranks.sh CASE path/to/dlab-gpu path/to/iris.data mpiexec [flags...]
#   equal    iris and a small CSV, lab and careful presets: the SSE, the SVD's
#            SSE and the loss history on 2 and 3 ranks equal one process's
#            within 1e-5 relative; the JSON names the ranks and the backend
#   reruns   2 and 3 ranks: the same figures, bit for bit, run after run
#   devices  (cuda-emu) a node of 3 GPUs seen by every rank: 3 ranks take one
#            each (local rank -> device) and share the rows; with 2 GPUs two
#            ranks would share one: the rows are refused on every rank with
#            the reason, exit 2, while a seed sweep (no sums) still runs;
#            an injected NCCL fault on one rank stops both with its reason
# Every run has a watchdog: a hang is killed and fails the case.
set -u
case_name=$1 dlab=$2 iris=$3
shift 3
launcher=("$@")
. "$(dirname "$0")/../harness.sh"
. "$(dirname "$0")/jobs.sh"
export DLAB_NO_COLOR=1

finish_run() {
  finish_job
  [ "$rc" -ne 137 ] || bad "the job hung and was killed: $*"
}

show() { sed 's/^/  | /' "$tmp/err" | head -20; }

# ranks NP ARGS...: dlab-gpu --device cuda on NP ranks (NP = 1: a plain process).
ranks() {
  local np=$1
  shift
  if [ "$np" -eq 1 ]; then
    run_job 200 "$dlab" --device cuda "$@"
  else
    run_job 200 "${launcher[@]}" -np "$np" "$dlab" --device cuda "$@"
  fi
  finish_run "$np ranks: $*"
}

# A GPU for every rank: one process must open one, and off the emulator
# (where every process has a GPU of its own) the node needs 3 of them.
run_job 200 "$dlab" --device cuda --task factorise --data "$iris" --epochs 1 --json --quiet
finish_run "a probe"
[ "$rc" -eq 0 ] || { echo "test_gpu_ranks: skipped: no CUDA GPU ($(head -1 "$tmp/err"))"; exit 77; }
emulated=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["backend"] == "cuda-emu"))' "$tmp/out")
if [ "$emulated" != 1 ]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  [ "$gpus" -ge 3 ] || { echo "test_gpu_ranks: skipped: $gpus GPU(s), 3 ranks need 3"; exit 77; }
  [ "$case_name" != devices ] || { echo "test_gpu_ranks: skipped: devices is the emulator's"; exit 77; }
fi

# A small matrix of its own (60 x 7, rank about 3 plus noise), the same
# every run.
python3 - "$tmp/small.csv" <<'PY'
import random, sys
rng = random.Random(7)
basis = [[rng.gauss(0, 1) for _ in range(7)] for _ in range(3)]
with open(sys.argv[1], "w") as f:
    for _ in range(60):
        w = [rng.gauss(0, 3 - k) for k in range(3)]
        row = [sum(w[k] * basis[k][j] for k in range(3)) + rng.gauss(0, 0.05) for j in range(7)]
        f.write(",".join(f"{x:.6f}" for x in row) + "\n")
PY

# compare ONE.json NP.json NP: NP's figures equal ONE's within 1e-5 relative.
compare() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
bad = []
def close(x, y, what):
    if x is None or y is None or not math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-9):
        bad.append(f"{what}: {x} vs {y}")
for key in ("sse_gd", "sse_svd", "sse_svd_reconstruction"):
    close(a[key], b[key], key)
if a["epochs_run"] != b["epochs_run"] or a["status"] != b["status"]:
    bad.append(f"runs differ: {a['status']} {a['epochs_run']} vs {b['status']} {b['epochs_run']}")
for i, (x, y) in enumerate(zip(a["singular_values"], b["singular_values"])):
    close(x, y, f"singular value {i}")
h, g = a["loss_history"], b["loss_history"]
if len(h) != len(g):
    bad.append("loss histories of different lengths")
else:
    for e in (0, len(h) // 2, len(h) - 1):
        close(h[e], g[e], f"loss at epoch {e + 1}")
if b.get("ranks") != int(sys.argv[3]):
    bad.append(f"ranks: {b.get('ranks')}")
if not str(b.get("backend", "")).startswith("cuda"):
    bad.append(f"backend: {b.get('backend')}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
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

case "$case_name" in
equal)
  for data in "$iris" "$tmp/small.csv"; do
    for preset in lab careful; do
      name="$(basename "$data") $preset"
      ranks 1 --task factorise --data "$data" --preset "$preset" --rank 2 --epochs 300 --json --quiet
      [ "$rc" -eq 0 ] && cp "$tmp/out" "$tmp/one.json" || { bad "$name, one process: exit $rc"; show; continue; }
      for np in 2 3; do
        ranks "$np" --task factorise --data "$data" --preset "$preset" --rank 2 --epochs 300 --json --quiet
        [ "$rc" -eq 0 ] || { bad "$name on $np ranks: exit $rc"; show; continue; }
        cp "$tmp/out" "$tmp/np.json"
        check "$name on $np ranks equals one process" compare "$tmp/one.json" "$tmp/np.json" "$np"
      done
    done
  done
  ;;
reruns)
  for data in "$iris" "$tmp/small.csv"; do
    for np in 2 3; do
      for run in 1 2; do
        ranks "$np" --task factorise --data "$data" --preset careful --rank 3 --epochs 300 --json --quiet
        [ "$rc" -eq 0 ] || { bad "$np ranks: exit $rc"; show; }
        figures "$tmp/out" >"$tmp/fig.$np.$run"
      done
      [ -s "$tmp/fig.$np.1" ] && cmp -s "$tmp/fig.$np.1" "$tmp/fig.$np.2" && ok \
        || bad "$(basename "$data") on $np ranks: the figures differ between runs"
    done
  done
  ;;
devices)
  DLAB_CUDA_EMU_DEVICES=3 ranks 3 --task factorise --data "$iris" --json --quiet
  [ "$rc" -eq 0 ] && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["ranks"] == 3 and d["device"].endswith("device 0") else 1)' "$tmp/out" && ok \
    || { bad "3 ranks on a node of 3 GPUs: exit $rc"; show; }
  DLAB_CUDA_EMU_DEVICES=2 ranks 3 --task factorise --data "$iris" --quiet
  [ "$rc" -eq 2 ] && [ "$(grep -c "ranks 0 and 2 share the GPU" "$tmp/err")" -eq 1 ] && ok \
    || { bad "3 ranks on 2 GPUs: exit $rc, expected 2 and the shared GPU named once"; show; }
  DLAB_CUDA_EMU_DEVICES=2 ranks 3 --task factorise --data "$iris" --seeds 3 --json --quiet
  [ "$rc" -eq 0 ] && ok || { bad "a seed sweep on 3 ranks sharing 2 GPUs: exit $rc"; show; }
  # NCCL on rank 1 reports a dead peer: the rank's polling wait aborts its
  # communicator and every rank stops with its message, exit 1, no hang.
  DLAB_CUDA_EMU_NCCL_FAULT=1 ranks 2 --task factorise --data "$iris" --quiet
  [ "$rc" -eq 1 ] && grep -q "rank 1: error: NCCL reported an asynchronous error on rank 1" "$tmp/err" \
    && ok || { bad "an NCCL fault on rank 1: exit $rc, expected 1 and NCCL's reason"; show; }
  ;;
*)
  bad "unknown case $case_name"
  ;;
esac
finish "test_gpu_ranks $case_name"
