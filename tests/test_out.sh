#!/usr/bin/env bash
# --out DIR end to end: the files exist and parse (CSV rows match the
# epochs, summary.json is byte-identical to --json's stdout, PNGs are
# 1000x600 with real content in the class colours, SVGs are well-formed;
# the result files themselves are checked by test_results.sh),
# the directory rules (parents created, non-empty refused without --force),
# nothing written without --out, and an interrupted run's partial files.
# usage: test_out.sh path/to/dlab-gpu path/to/test_report path/to/check_files.py
set -u
bin=$1
test_report=$2
check=$3
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"


# Okabe-Ito blue, orange and bluish green: the first three classes.
classes=0072b2,e69f00,009e73

# Built without PLplot (or without its cairo driver) no figure is drawn and
# the reports say why; every figure check then checks that absence instead.
"$bin" --task factorise --device cpu --epochs 1 --json --out "$tmp/probe" >"$tmp/probe.json" 2>/dev/null
if [ -e "$tmp/probe/figure1_projections.png" ]; then
  figures=1
else
  figures=0
  echo "note: figures are not drawn in this build"
  python3 -c 'import json,sys; n = json.load(open(sys.argv[1]))["out"]["figures_note"]; assert "not drawn" in n, n' \
    "$tmp/probe.json" && ok || bad "no figures, and the summary does not say why"
fi

check_png() { # FILE [check_files.py options]
  local out
  if [ "$figures" -eq 0 ]; then [ ! -e "$1" ] && ok || bad "$1 exists in a build without figures"; return; fi
  if out=$(python3 "$check" png "$@" --size 1000x600 2>&1); then ok; else bad "$out"; fi
}
check_svg() {
  local out
  if [ "$figures" -eq 0 ]; then [ ! -e "$1" ] && ok || bad "$1 exists in a build without figures"; return; fi
  if out=$(python3 "$check" svg "$1" 2>&1); then ok; else bad "$out"; fi
}

# 1. iris: every file, parents created, summary.json == --json's stdout
dir=$tmp/new/parent/out
if "$bin" --task factorise --device cpu --json --out "$dir" >"$tmp/stdout" 2>"$tmp/err"; then
  ok
  for f in history.csv summary.json; do
    [ -s "$dir/$f" ] && ok || bad "iris: $f missing or empty"
  done
  [ "$(ls -A "$dir" | wc -l)" -eq $((11 + 2 * figures)) ] && ok ||
    bad "iris: unexpected entries: $(ls -A "$dir" | tr '\n' ' ')"
  cmp -s "$tmp/stdout" "$dir/summary.json" && ok || bad "summary.json differs from --json's stdout"
  if python3 - "$dir" "$figures" <<'PY'
import csv, json, sys
d, figures = sys.argv[1], sys.argv[2] == "1"
s = json.load(open(f"{d}/summary.json"))
rows = list(csv.reader(open(f"{d}/history.csv")))
assert rows[0] == ["epoch", "sse"], rows[0]
assert len(rows) == 1 + s["epochs_run"] == 1001, len(rows)
assert [int(r[0]) for r in rows[1:]] == list(range(1, 1001))
assert abs(float(rows[-1][1]) - s["loss_history"][-1]) <= 1e-6 * s["loss_history"][-1]
assert s["status"] == "ok"
assert s["out"]["dir"] == d and (s["out"]["figures_note"] is None) == figures, s["out"]
pictures = ["figure1_projections.png", "figure1_projections.svg"] if figures else []
factors = ["U.npy", "U.csv", "V.npy", "V.csv", "column_means.npy", "svd_U.npy", "svd_S.npy", "svd_V.npy"]
assert s["out"]["files"] == ["history.csv"] + pictures + factors + ["report.html", "summary.json"], s["out"]["files"]
a = s["principal_angles_deg"]  # seed 1 measured: 4.2e-4 and 0.42 degrees, residual 1.7e-3
assert len(a) == 2 and 0 <= a[0] <= a[1] < 2, a
assert 0 <= s["aligned_residual"] < 1e-2, s["aligned_residual"]
PY
  then ok; else bad "iris: CSV or summary contents"; fi
  check_png "$dir/figure1_projections.png" --colors "$classes"
  check_svg "$dir/figure1_projections.svg"
  grep -q "principal angles" "$tmp/err" && ok || bad "text report lacks the principal angles"
  grep -q "output  *$dir: history.csv" "$tmp/err" && ok || bad "text report lacks the files: $(cat "$tmp/err")"
else
  bad "iris --out exited non-zero: $(cat "$tmp/err")"
fi

# 2. without --out nothing is written (the current directory stays empty)
mkdir "$tmp/cwd"
(cd "$tmp/cwd" && "$bin" --task factorise --device cpu --epochs 50 --json >/dev/null 2>&1)
[ -z "$(ls -A "$tmp/cwd")" ] && ok || bad "files written without --out: $(ls -A "$tmp/cwd")"
"$bin" --task factorise --device cpu --epochs 50 --json 2>/dev/null |
  python3 -c 'import json,sys; assert json.load(sys.stdin)["out"] is None' && ok || bad '"out" is not null without --out'

# 3. a non-empty directory: refused (exit 2, one line, untouched), then --force
mkdir -p "$tmp/full" && echo keep >"$tmp/full/notes.txt"
"$bin" --task factorise --device cpu --epochs 50 --out "$tmp/full" >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] && ok || bad "non-empty --out: exit $rc, expected 2"
[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^dlab-gpu: error: --out .*not empty.*--force" "$tmp/err" &&
  ok || bad "non-empty --out message: $(cat "$tmp/err")"
[ "$(ls -A "$tmp/full")" = notes.txt ] && ok || bad "refused directory was written to"
if "$bin" --task factorise --device cpu --epochs 50 --out "$tmp/full" --force >/dev/null 2>"$tmp/err"; then
  [ -s "$tmp/full/summary.json" ] && [ "$(cat "$tmp/full/notes.txt")" = keep ] && ok ||
    bad "--force: files missing or notes.txt changed"
else
  bad "--force: exit non-zero: $(cat "$tmp/err")"
fi
touch "$tmp/plain"
"$bin" --task factorise --device cpu --epochs 50 --out "$tmp/plain" >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" -eq 2 ] && grep -q "not a directory" "$tmp/err" && ok || bad "--out on a file: exit $rc, $(cat "$tmp/err")"

# 4. several models: one CSV column per seed; rank 1 and --no-svd figures
if "$bin" --task factorise --device cpu --epochs 20 --seeds 3 --seed 7 --out "$tmp/seeds" >/dev/null 2>"$tmp/err"; then
  [ "$(head -n 1 "$tmp/seeds/history.csv")" = "epoch,sse_seed7,sse_seed8,sse_seed9" ] && ok ||
    bad "--seeds header: $(head -n 1 "$tmp/seeds/history.csv")"
  [ "$(wc -l <"$tmp/seeds/history.csv")" -eq 21 ] && ok || bad "--seeds: row count"
else
  bad "--seeds 3 --out: $(cat "$tmp/err")"
fi
for extra in "--rank 1" "--no-svd"; do
  d=$tmp/fig${extra// /}
  # shellcheck disable=SC2086
  if "$bin" --task factorise --device cpu --epochs 200 $extra --out "$d" >/dev/null 2>"$tmp/err"; then
    check_png "$d/figure1_projections.png" --colors "$classes"
    check_svg "$d/figure1_projections.svg"
  else
    bad "$extra --out: $(cat "$tmp/err")"
  fi
done
# A synthetic matrix has no labels: one colour, no legend.
if "$bin" --task factorise --device cpu --synthetic 300x40 --rank 3 --lr 1e-3 --epochs 100 --out "$tmp/syn" >/dev/null 2>"$tmp/err"; then
  check_png "$tmp/syn/figure1_projections.png" --colors 0072b2
else
  bad "synthetic --out: $(cat "$tmp/err")"
fi

# 5. SIGINT: exit 130, and what was done so far is written, marked interrupted;
# the SVD baseline is skipped (said in the text, null in JSON) so that the
# run ends without computing it
if python3 - "$bin" "$tmp/int" "$figures" <<'PY'
import csv, json, os, signal, subprocess, sys, time
bin, d, figures = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
p = subprocess.Popen([bin, "--task", "factorise", "--device", "cpu", "--synthetic", "400x100",
                      "--rank", "4", "--lr", "1e-4", "--epochs", "2000000", "--json", "--out", d],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
time.sleep(1.5)
p.send_signal(signal.SIGINT)
out, err = p.communicate(timeout=120)
assert p.returncode == 130, (p.returncode, err)
s = json.load(open(f"{d}/summary.json"))
assert open(f"{d}/summary.json", "rb").read() == out, "summary.json differs from stdout"
assert s["status"] == "interrupted" and 0 < s["epochs_run"] < 2000000, (s["status"], s["epochs_run"])
rows = list(csv.reader(open(f"{d}/history.csv")))
assert len(rows) == 1 + s["epochs_run"], (len(rows), s["epochs_run"])
names = sorted(os.listdir(d))
pictures = ["figure1_projections.png", "figure1_projections.svg"] if figures else []
factors = ["U.csv", "U.npy", "V.csv", "V.npy", "column_means.npy"]
assert names == sorted(pictures + factors + ["history.csv", "report.html", "summary.json"]), names
for k in ["sse_svd", "sse_svd_reconstruction", "gap", "relative_gap", "singular_values", "svd_seconds"]:
    assert k in s and s[k] is None, (k, s.get(k))
text = err.decode()
assert "SVD baseline" in text and "not computed: interrupted" in text, text
PY
then ok; else bad "interrupted run's files"; fi

# 6. the mlp task: history with four metrics, summary, Figure 2
dir=$tmp/mlp
if "$bin" --task mlp --device cpu --json --out "$dir" >"$tmp/stdout" 2>"$tmp/err"; then
  ok
  cmp -s "$tmp/stdout" "$dir/summary.json" && ok || bad "mlp: summary.json differs from --json's stdout"
  if python3 - "$dir" <<'PY'
import csv, json, sys
d = sys.argv[1]
s = json.load(open(f"{d}/summary.json"))
rows = list(csv.reader(open(f"{d}/history.csv")))
assert rows[0] == ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"], rows[0]
assert len(rows) == 1 + s["epochs_run"] and s["epochs_run"] == s["config"]["epochs"], len(rows)
last, h = rows[-1], s["history"][-1]
for i, k in enumerate(["train_loss", "val_loss", "train_accuracy", "val_accuracy"]):
    assert abs(float(last[1 + i]) - h[k]) <= 1e-6 * max(1.0, abs(h[k])), (k, last, h)
assert s["out"]["files"][0] == "history.csv" and s["out"]["files"][-1] == "summary.json"
PY
  then ok; else bad "mlp: CSV or summary contents"; fi
  check_png "$dir/figure2_learning_curves.png" --colors 0072b2,e69f00
  check_svg "$dir/figure2_learning_curves.svg"
  check_png "$dir/figure4_confusion_matrix.png" --colors 0072b2
  check_svg "$dir/figure4_confusion_matrix.svg"
else
  bad "mlp --out exited non-zero: $(cat "$tmp/err")"
fi
if "$bin" --task mlp --device cpu --epochs 10 --seeds 2 --out "$tmp/mlp2" >/dev/null 2>"$tmp/err"; then
  [ "$(head -n 1 "$tmp/mlp2/history.csv")" = "epoch,train_loss_seed1,val_loss_seed1,train_accuracy_seed1,val_accuracy_seed1,train_loss_seed2,val_loss_seed2,train_accuracy_seed2,val_accuracy_seed2" ] &&
    ok || bad "mlp --seeds 2 header: $(head -n 1 "$tmp/mlp2/history.csv")"
else
  bad "mlp --seeds 2 --out: $(cat "$tmp/err")"
fi
# --force over an earlier run: the files of every name dlab-gpu writes (and
# their temporary files) go, whatever task wrote them; other files stay.
dir=$tmp/again
if "$bin" --task mlp --device cpu --epochs 5 --out "$dir" >/dev/null 2>"$tmp/err"; then
  echo keep >"$dir/notes.txt"
  echo partial >"$dir/.history.csv.tmp-AbC123"
  mkdir "$dir/figure1_projections.png.d"
  if "$bin" --task factorise --device cpu --epochs 5 --out "$dir" --force >/dev/null 2>"$tmp/err" &&
    python3 - "$dir" "$figures" <<'PY'
import os, sys
d, figures = sys.argv[1], sys.argv[2] == "1"
names = sorted(os.listdir(d))
pictures = ["figure1_projections.png", "figure1_projections.svg"] if figures else []
want = pictures + ["U.csv", "U.npy", "V.csv", "V.npy", "column_means.npy", "svd_S.npy", "svd_U.npy",
                   "svd_V.npy", "history.csv", "report.html", "summary.json", "notes.txt",
                   "figure1_projections.png.d"]
assert names == sorted(want), names
assert open(f"{d}/notes.txt").read() == "keep\n"
PY
  then ok; else bad "--force over an mlp run: $(ls -A "$dir" | tr '\n' ' ') $(cat "$tmp/err")"; fi
else
  bad "mlp --out $dir: $(cat "$tmp/err")"
fi

# --force never removes this run's inputs: predictions written beside their
# model keep model.json (byte for byte), while the training run's other
# files go as above.
dir=$tmp/beside iris=$(dirname "$0")/../data/iris.data
if "$bin" --task mlp --device cpu --epochs 5 --out "$dir" >/dev/null 2>"$tmp/err"; then
  cp "$dir/model.json" "$tmp/model.before"
  if "$bin" --task predict --device cpu --model "$dir/model.json" --data "$iris" --out "$dir" \
    --force >/dev/null 2>"$tmp/err" && cmp -s "$dir/model.json" "$tmp/model.before" &&
    [ -s "$dir/predictions.csv" ] && [ ! -e "$dir/report.html" ]; then
    ok
  elif grep -q "built without Jansson" "$tmp/err"; then
    echo "skipped: predict beside its model (this build reads no model.json)"
  else
    bad "predict --out beside its model --force: $(ls -A "$dir" | tr '\n' ' ') $(cat "$tmp/err")"
  fi
else
  bad "mlp --out $dir: $(cat "$tmp/err")"
fi

# A result is never written over this run's own input: refused before
# training (exit 2), the input untouched.
dir=$tmp/selfin
if "$bin" --task factorise --device cpu --epochs 5 --out "$dir" >/dev/null 2>"$tmp/err"; then
  cp "$dir/U.csv" "$tmp/U.before"
  "$bin" --task factorise --device cpu --epochs 5 --data "$dir/U.csv" --out "$dir" --force \
    >/dev/null 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 2 ] && grep -q "^dlab-gpu: error: --out $dir: $dir/U.csv, this run's --data, would be overwritten by its U.csv; write the results to another directory$" "$tmp/err" &&
    cmp -s "$dir/U.csv" "$tmp/U.before" && ok \
    || bad "--data inside --out under an output's name: exit $rc, $(cat "$tmp/err")"
else
  bad "factorise --out $dir: $(cat "$tmp/err")"
fi

# A full disk cuts a figure short, which the drawing library does not
# report: the file is refused, not kept under its name (where a small
# file system can be mounted: root in a container).
mkdir -p "$tmp/tiny"
if [ "$figures" = 1 ] && mount -t tmpfs -o size=40k tmpfs "$tmp/tiny" 2>/dev/null; then
  "$bin" --task factorise --device cpu --epochs 5 --out "$tmp/tiny/o" --quiet >/dev/null 2>"$tmp/err"
  rc=$?
  if [ "$rc" -eq 1 ] && grep -q "figure1_projections.png: the drawing stopped after [0-9]* bytes, cut short (is the disk full?" "$tmp/err" &&
    [ ! -e "$tmp/tiny/o/figure1_projections.png" ]; then
    ok
  else
    bad "a figure on a full disk: exit $rc, $(ls -A "$tmp/tiny/o" | tr '\n' ' ') $(cat "$tmp/err")"
  fi
  # With no room for even the first file, the folder it made goes too.
  rm -rf "$tmp/tiny/o"
  head -c 100000 /dev/zero >"$tmp/tiny/filler" 2>/dev/null
  "$bin" --task mlp --device cpu --epochs 5 --out "$tmp/tiny/p/q" --quiet >/dev/null 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 1 ] && grep -q "No space left on device" "$tmp/err" && [ ! -e "$tmp/tiny/p" ] && ok \
    || bad "no room for any file: exit $rc, $(ls -A "$tmp/tiny" | tr '\n' ' ') $(cat "$tmp/err")"
  umount "$tmp/tiny"
fi

mkdir -p "$tmp/mlpfull" && touch "$tmp/mlpfull/x"
"$bin" --task mlp --device cpu --epochs 5 --out "$tmp/mlpfull" >/dev/null 2>&1
rc=$?
[ "$rc" -eq 2 ] && ok || bad "mlp, non-empty --out: exit $rc, expected 2"

# 7. the figures' library (both tasks' figures, drawn by test_report)
if "$test_report" "$tmp/lib" >/dev/null 2>"$tmp/err"; then
  ok
  [ "$figures" -eq 1 ] || rm -rf "$tmp/lib"
  check_png "$tmp/lib/figure2_learning_curves.png" --colors 0072b2,e69f00
  check_svg "$tmp/lib/figure2_learning_curves.svg"
  check_png "$tmp/lib/figure1_projections.png" --colors "$classes"
  check_png "$tmp/lib/figure4_confusion_matrix.png" --colors 0072b2
  check_png "$tmp/lib/figure4_twelve.png"
  check_svg "$tmp/lib/figure4_twelve.svg"
else
  bad "test_report $tmp/lib: $(tail -n 5 "$tmp/err")"
fi

finish test_out
