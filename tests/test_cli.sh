#!/usr/bin/env bash
# The command line: exit codes and one-line messages for bad usage and bad
# input, and the --json report's contents on iris.
# usage: test_cli.sh path/to/dlab-gpu path/to/iris.data
set -u
bin=$1
iris=$2
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

# expect CODE PATTERN -- ARGS...: exit status CODE, stderr's last line matches
# PATTERN (grep -E), stderr's error is one line.
expect() {
  local code=$1 pattern=$2
  shift 3
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local msg
  msg=$(grep -v 'running on the CPU$' "$tmp/err" | grep '^dlab-gpu' | tail -n 1)
  if [ "$rc" -ne "$code" ]; then
    echo "FAIL: dlab-gpu $* -> exit $rc, expected $code; stderr: $(tail -n 3 "$tmp/err")"
    fail=$((fail + 1))
  elif ! grep -Eq -- "$pattern" <<<"$msg"; then
    echo "FAIL: dlab-gpu $* -> message '$msg' does not match '$pattern'"
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

f() { printf "$2" >"$tmp/$1"; echo "$tmp/$1"; }

# bad_csv FILE CONTENT MESSAGE: factorising FILE, which holds CONTENT (printf
# escapes), exits 2 with the message "FILE" followed by MESSAGE.
bad_csv() { expect 2 "$1$3" -- --task factorise --data "$(f "$1" "$2")"; }

# usage
expect 2 "missing --task" --
expect 2 "unknown option '--bogus'" -- --task factorise --bogus
expect 2 "--task: unknown value 'svm'" -- --task svm
expect 2 "--epochs needs a value" -- --task factorise --epochs
expect 2 "--epochs: 0 is out of range" -- --task factorise --epochs 0
expect 2 "--epochs: -5 is out of range" -- --task factorise --epochs -5
expect 2 "--epochs: expected an integer, got '2x'" -- --task factorise --epochs 2x
expect 2 "--epochs: expected an integer" -- --task factorise --epochs=
expect 2 "--lr: 0 is out of range" -- --task factorise --lr 0
expect 2 "--lr: -0.1 is out of range" -- --task factorise --lr -0.1
expect 2 "--lr: expected a number, got 'nan'" -- --task factorise --lr nan
expect 2 "--lr: inf is out of range" -- --task factorise --lr inf
expect 2 "--lr: expected a number, got 'fast'" -- --task factorise --lr fast
expect 2 "--rank: 0 is out of range" -- --task factorise --rank 0
expect 2 "--rank 5 is out of range for a 150x4 matrix" -- --task factorise --rank 5 --device cpu
expect 2 "--seed: expected a non-negative integer" -- --task factorise --seed -1
expect 2 "--device: unknown device 'tpu'" -- --task factorise --device tpu
expect 2 "--data and --synthetic cannot be used together" -- --task factorise --data "$iris" --synthetic 10x10
expect 2 "--synthetic: expected ROWSxCOLS" -- --task factorise --synthetic 100
expect 2 "--hidden applies to --task mlp" -- --task factorise --hidden 4
expect 2 "--no-center takes no value" -- --task factorise --no-center=1
expect 2 "unexpected argument 'extra'" -- --task factorise extra
expect 0 "" -- --help
expect 0 "" -- --version
# an option given twice would silently take its last value
expect 2 "^dlab-gpu: error: --task given twice$" -- --task mlp --task factorise
expect 2 "^dlab-gpu: error: --model given twice$" -- --task predict --model a --model b --data x
expect 2 "^dlab-gpu: error: --epochs given twice$" -- --task factorise --epochs 5 --epochs=5
expect 2 "^dlab-gpu: error: --json given twice$" -- --task factorise --json --json

# every option with an invalid value names the option
expect 2 "--epochs: 99999999999 is out of range" -- --task factorise --epochs 99999999999
expect 2 "--epochs: expected an integer, got '1e3'" -- --task factorise --epochs 1e3
expect 2 "--lr: 1e400 is out of range" -- --task factorise --lr 1e400
expect 2 "--lr: expected a number, got '0.1x'" -- --task factorise --lr 0.1x
expect 2 "--lr 1e-50 is below float32's smallest positive value \\(1.2e-38\\)" -- --task factorise --lr 1e-50
expect 2 "--lr 1e-50 is below float32's smallest positive value \\(1.2e-38\\)" -- --task mlp --lr 1e-50
expect 2 "--lr 1e39 is above float32's largest value \\(3.4e\\+38\\)" -- --task mlp --lr 1e39
expect 2 "--rank: expected an integer, got ' 2'" -- --task factorise --rank " 2"
expect 2 "--rank: 9999999 is out of range" -- --task factorise --rank 9999999
expect 2 "--seed: expected a non-negative integer, got '99999999999999999999999'" -- --task factorise --seed 99999999999999999999999
expect 2 "--seeds: 0 is out of range" -- --task factorise --seeds 0
expect 2 "--seeds: expected an integer, got 'many'" -- --task factorise --seeds many
expect 2 "--synthetic: 0 is out of range" -- --task factorise --synthetic 0x10
expect 2 "--synthetic: expected an integer, got '10y'" -- --task factorise --synthetic 10x10y
expect 2 "--device needs a value" -- --task factorise --device
expect 2 "--data needs a value" -- --task factorise --data
expect 2 "--data: empty path" -- --task factorise --data ""
expect 2 "--out needs a value" -- --task factorise --out
expect 2 "--force only makes sense with --out" -- --task factorise --force
expect 2 "--json takes no value" -- --task factorise --json=yes

# bad input files
expect 2 "nope.csv: cannot open" -- --task factorise --data "$tmp/nope.csv"
bad_csv empty.csv '' ": the file is empty"
bad_csv bin.csv '1,2\0\1\2' ":1: binary data"
bad_csv ragged.csv '1,2\n3,4\n5\n' ":3: ragged row"
bad_csv word.csv '1,2\nx1,4\n' ":2: column 1: not a number"
bad_csv hole.csv '1,2\n3,\n' ":2: column 2: empty field"
bad_csv nan.csv '1,2\nNaN,4\n' ":2: column 1: NaN and Inf"
bad_csv inf.csv '1,-inf\n3,4\n' ":1: column 2: NaN and Inf"
bad_csv big.csv '1,2\n3,4e40\n' ":2: column 2: number out of float range"
bad_csv one.csv '1,2,3\n' ": needs at least 2 data rows, found 1"
expect 2 "--rank 2 is out of range for a 3x1 matrix" -- --task factorise --data "$(f col.csv '1\n2\n3\n')"
expect 2 "is a directory|cannot read" -- --task factorise --data "$tmp"

expect 2 "--preset: unknown value 'fast'" -- --task factorise --preset fast

# runtime failures: a step too large for the data names the limit and suggests one
expect 1 "diverged: the loss became (NaN|Inf) at epoch [0-9]+ of 1000: the learning rate 10 is too large for this data .*sigma_1 = 25.09.*try a smaller learning rate such as --lr 0.004$" -- --task factorise --lr 10 --device cpu
expect 1 "diverged: the loss became (NaN|Inf) at epoch [0-9]+ of 1000: the learning rate 10 is too large .*stable only below about 0.0113; try a smaller learning rate such as --lr 0.01 \(just under that limit; smaller steps are stable but need more epochs\), or the careful preset" -- --task factorise --preset lab --lr 10 --device cpu
if ! "$bin" --task factorise --device cuda --epochs 1 >/dev/null 2>"$tmp/err"; then
  expect 1 "no usable CUDA GPU|no CUDA backend" -- --task factorise --device cuda --epochs 1
fi

# the JSON report on iris: stdout is one JSON object with the lab's numbers
if "$bin" --task factorise --preset lab --device cpu --json >"$tmp/json" 2>"$tmp/err"; then
  if python3 - "$tmp/json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
need = ["sse_gd", "sse_svd", "singular_values", "rank", "epochs", "lr", "seed", "backend",
        "train_seconds", "loss_history", "preset", "relative_gap", "warnings"]
missing = [k for k in need if k not in d]
assert not missing, f"missing keys {missing}"
assert abs(d["sse_svd"] - 15.22883) < 1e-4, d["sse_svd"]
assert 0 <= d["sse_gd"] - d["sse_svd"] + 1e-3 < 1e-2, d["sse_gd"]  # seed 1: gap 1.6e-3
assert d["sse_gd"] >= d["sse_svd"] - 1e-3
sv = [25.0899, 6.0079, 3.4205, 1.8785]
assert all(abs(a - b) < 1e-4 for a, b in zip(d["singular_values"], sv)), d["singular_values"]
assert d["rank"] == 2 and d["epochs"] == 1000 and d["seed"] == 1 and d["backend"] == "cpu"
assert len(d["loss_history"]) == 1000 and d["loss_history"][0] > d["loss_history"][-1]
assert 0 < d["train_seconds"] < 10
assert d["preset"] == "lab" and abs(d["lr"] - 0.01) < 1e-9 and d["init_std"] is None
assert d["warnings"] == [] and d["scale_log2"] == -5  # ||A||_F = 26.1: 2^-5 A is in [0.5, 1)
# 9 significant digits of each SSE leave about 1e-8 of their difference
assert abs(d["relative_gap"] - (d["sse_gd"] - d["sse_svd"]) / d["sse_svd"]) < 1e-7
PY
  then ok; else bad "--json report"; fi
  grep -q "gradient descent SSE" "$tmp/err" && ok || bad "text report not on stderr with --json"
else
  echo "FAIL: dlab-gpu --task factorise --json exited non-zero: $(cat "$tmp/err")"
  fail=$((fail + 1))
fi

# the default (careful) preset on iris: the step and the start come from sigma_1,
# and every start of the first few reaches the optimum to float32 rounding
if "$bin" --task factorise --device cpu --json --seeds 8 >"$tmp/json" 2>"$tmp/err" &&
  python3 - "$tmp/json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["preset"] == "careful" and d["status"] == "ok" and d["epochs"] == 1000
assert abs(d["sigma1_estimate"] - 25.0899) < 1e-3, d["sigma1_estimate"]
assert abs(d["lr"] * d["sigma1_estimate"] - 0.1) < 1e-6, d["lr"]
assert 0 < d["init_std"] < 0.05, d["init_std"]
assert abs(d["sse_svd"] - 15.22883) < 1e-4 and d["warnings"] == []
assert all(abs(s["relative_gap"]) < 1e-5 for s in d["seeds"]), d["seeds"]
assert d["summary"]["relative_gap"]["n"] == 8 and d["summary"]["relative_gap"]["undefined"] == 0
PY
then ok; else bad "careful preset --json: $(tail -n 2 "$tmp/err")"; fi
"$bin" --task factorise --device cpu --epochs 5 >"$tmp/out" 2>&1
grep -q "careful preset, lr 0.003986" "$tmp/out" && grep -q "sigma_1 ~ 25.0899" "$tmp/out" && ok ||
  bad "careful text report: $(cat "$tmp/out")"
"$bin" --help >"$tmp/out"
grep -q "factorise lab      U, V ~ U\[0,1), lr 0.01" "$tmp/out" && grep -q "factorise careful" "$tmp/out" && ok ||
  bad "--help does not show the factorise presets"

# --task mlp: refusals, divergence and the JSON report
expect 2 "--hidden: 0 is out of range" -- --task mlp --hidden 0
expect 2 "--preset: unknown value 'fast'" -- --task mlp --preset fast
expect 2 "--optim: unknown value 'rmsprop'" -- --task mlp --optim rmsprop
# A momentum coefficient the chosen optimiser never reads is refused, not recorded.
expect 2 "^dlab-gpu: error: --momentum applies to --optim momentum only, not sgd$" -- --task mlp --optim sgd --momentum 0.5
expect 2 "^dlab-gpu: error: --momentum applies to --optim momentum only, not adam$" -- --task mlp --momentum 0.5 --optim adam
expect 2 "--momentum applies to --optim momentum only \(--preset lab trains with sgd" -- --task mlp --preset lab --momentum 0.5
expect 2 "--rank applies to --task factorise, not mlp" -- --task mlp --rank 2
expect 2 "--train: expected a row count or a fraction in \\(0, 1\\), got '50%'" -- --task mlp --train 50% --device cpu
expect 2 "--train: expected a row count or a fraction in \\(0, 1\\), got 'half'" -- --task mlp --train half --device cpu
expect 2 "--train 150 leaves no validation rows: the data has 150 rows" -- --task mlp --train 150 --device cpu
expect 2 "nolabel.csv: the data has no label column" -- --task mlp --train 2 --device cpu --data "$(f nolabel.csv '1,2\n3,4\n5,6\n')"
expect 2 "oneclass.csv: every row has the same label \('a'\)" -- --task mlp --train 2 --device cpu --data "$(f oneclass.csv '1,2,a\n3,4,a\n5,6,a\n')"
expect 1 "diverged: the loss became (NaN|Inf) at epoch [0-9]+ of 100; try a smaller learning rate" -- --task mlp --preset lab --lr 1e6 --device cpu

# mlp_json NAME CHECK ARGS...: runs with --json and checks stdout's object with
# the python expression CHECK over d (the object) and rc (the exit status).
mlp_json() {
  local name=$1 check=$2
  shift 2
  "$bin" --task mlp --device cpu --json "$@" >"$tmp/json" 2>"$tmp/err"
  local rc=$?
  if python3 - "$tmp/json" "$rc" "$check" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rc = int(sys.argv[2])
need = ["status", "val_accuracy", "train_accuracy", "val_loss", "train_loss", "best_epoch",
        "backend", "device", "train_seconds", "config", "history"]
missing = [k for k in need if k not in d]
assert not missing, f"missing keys {missing}"
cfg_need = ["hidden", "epochs", "lr", "optim", "momentum", "batch", "train", "seed", "preset",
            "classes", "features"]
missing = [k for k in cfg_need if k not in d["config"]]
assert not missing, f"missing config keys {missing}"
h = d["history"]
assert [e["epoch"] for e in h] == list(range(1, len(h) + 1))
assert all(set(e) == {"epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"} for e in h)
if d["status"] == "ok":
    assert rc == 0 and len(h) == d["config"]["epochs"], (rc, len(h))
    assert d["val_accuracy"] == h[-1]["val_accuracy"] and d["train_loss"] == h[-1]["train_loss"]
    best = max(e["val_accuracy"] for e in h)
    assert d["best_epoch"] == next(e["epoch"] for e in h if e["val_accuracy"] == best)
assert eval("(" + sys.argv[3] + ")"), sys.argv[3]
PY
  then ok; else bad "mlp --json ($name): $* ; stderr: $(tail -n 2 "$tmp/err")"; fi
}
mlp_json lab-defaults 'd["status"] == "ok" and d["config"]["preset"] == "lab" and d["config"]["epochs"] == 100
  and abs(d["config"]["lr"] - 0.01) < 1e-6 and d["config"]["optim"] == "sgd" and d["config"]["hidden"] == 12
  and d["config"]["batch"] == 100 and d["config"]["train"] == 100 and d["config"]["classes"] == 3
  and d["config"]["features"] == 4 and d["backend"] == "cpu" and 0 < d["train_seconds"] < 10
  and d["config"]["momentum"] is None' --preset lab
mlp_json careful-defaults 'd["status"] == "ok" and d["config"]["preset"] == "careful" and d["config"]["epochs"] == 300
  and d["config"]["optim"] == "momentum" and abs(d["config"]["momentum"] - 0.9) < 1e-6
  and d["val_accuracy"] >= 0.9 and d["train_accuracy"] >= 0.95'
mlp_json overrides 'd["config"]["optim"] == "adam" and d["config"]["epochs"] == 20 and abs(d["config"]["lr"] - 0.02) < 1e-6
  and d["config"]["batch"] == 32 and d["config"]["train"] == 120 and d["config"]["hidden"] == 5 and d["config"]["seed"] == 7
  and d["config"]["momentum"] is None' \
  --optim adam --epochs 20 --lr 0.02 --batch 32 --train 120 --hidden 5 --seed 7
mlp_json momentum-given 'd["status"] == "ok" and d["config"]["optim"] == "momentum" and abs(d["config"]["momentum"] - 0.5) < 1e-6' \
  --preset lab --optim momentum --momentum 0.5 --epochs 5
# A batch above the training rows is the full batch, and the report says which ran.
mlp_json batch-over 'd["status"] == "ok" and d["config"]["batch"] == 100 and d["config"]["train"] == 100' \
  --batch 1000 --epochs 3
"$bin" --task mlp --device cpu --batch 1000 --epochs 3 >"$tmp/out" 2>"$tmp/err" &&
  grep -q ", batch 100 (full)," "$tmp/out" && ok || bad "--batch 1000: the text does not say batch 100 (full)"
mlp_json seeds 'd["status"] == "ok" and [s["seed"] for s in d["seeds"]] == [3, 4, 5]' --seeds 3 --seed 3 --epochs 10
mlp_json diverged 'd["status"] == "diverged" and rc == 1 and 1 <= len(d["history"]) <= 100' --preset lab --lr 1e6
if "$bin" --task mlp --device cpu --epochs 5 >"$tmp/out" 2>"$tmp/err" &&
   grep -q "validation           loss" "$tmp/out" && grep -q "best validation" "$tmp/out"; then
  pass=$((pass + 1))
else
  echo "FAIL: mlp text report: $(cat "$tmp/out" "$tmp/err")"; fail=$((fail + 1))
fi

# The text confusion matrix: columns as wide as the longest class name, a
# name past 40 characters cut with an ellipsis.
python3 - "$iris" "$tmp/long.csv" <<'PY'
import sys
names = {"Iris-setosa": "measurement-group-alpha", "Iris-versicolor": "b",
         "Iris-virginica": "a-class-name-that-runs-on-well-past-forty-characters"}
with open(sys.argv[2], "w") as out:
    for l in open(sys.argv[1]):
        p = l.strip().split(",")
        if len(p) == 5:
            out.write(",".join(p[:4] + [names[p[4]]]) + "\n")
PY
"$bin" --task mlp --device cpu --data "$tmp/long.csv" >"$tmp/out" 2>"$tmp/err"
if python3 - "$tmp/out" <<'PY'; then ok; else echo "FAIL: long class names: $(cat "$tmp/out")"; fail=$((fail + 1)); fi
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
i = next(k for k, l in enumerate(lines) if "confusion matrix (rows" in l)
head, rows = lines[i + 1], lines[i + 2:i + 5]
cut = "a-class-name-that-runs-on-well-past-for\u2026"
assert len(cut) == 40
assert head.split() == ["measurement-group-alpha", "b", cut], head
assert rows[0].split()[0] == "measurement-group-alpha" and rows[2].split()[0] == cut, rows
# every line of the table has the same width in characters
assert len({len(l) for l in [head] + rows}) == 1, [len(l) for l in [head] + rows]
PY

# One of something is singular in the text report.
"$bin" --task mlp --device cpu --epochs 1 --columns 1 >"$tmp/out" 2>"$tmp/err"
"$bin" --task factorise --device cpu --epochs 1 >>"$tmp/out" 2>>"$tmp/err"
if grep -q "data: 1 feature, 3 classes" "$tmp/out" && grep -q ", 1 epoch, batch" "$tmp/out" &&
  grep -q "rank 2, 1 epoch, careful" "$tmp/out" && [ "$(grep -c "(1 epoch, " "$tmp/out")" -eq 2 ] &&
  ! grep -Eq "\b1 (epochs|features|models)\b" "$tmp/out"; then ok; else
  echo "FAIL: singular for one: $(cat "$tmp/out")"; fail=$((fail + 1))
fi

# --fused: its values and refusals, and the path in the reports. The CPU
# backend has the fused ops; a model past its cache share takes the general
# path under auto and is refused under on.
expect 2 "^dlab-gpu: error: --fused must be auto, on or off \(got 'yes'\)$" -- --task factorise --fused yes
expect 2 "--fused needs a value" -- --task mlp --fused
expect 2 "--fused given twice" -- --task mlp --fused on --fused off
expect 2 "--fused does not apply to --task predict" -- --task predict --model m.json --data "$iris" --fused on
expect 2 "--fused on: a 1500x400 rank-2 model needs [0-9]+ bytes of fast memory, more than the cpu backend's [0-9]+$" -- --task factorise --device cpu --synthetic 1500x400 --fused on
expect 2 "--fused on: a 4-40000-3 model on 100 \+ 50 rows needs [0-9]+ bytes" -- --task mlp --device cpu --hidden 40000 --epochs 1 --fused on
# a refused run leaves no --out directory behind, not even its new parents
mkdir -p "$tmp/keep"
expect 2 "--fused on: a 1500x400 rank-2 model needs" -- --task factorise --device cpu --synthetic 1500x400 --fused on --out "$tmp/refused/a/b/"
expect 2 "--fused on: a 4-40000-3 model" -- --task mlp --device cpu --hidden 40000 --epochs 1 --fused on --out "$tmp/keep/new"
if [ -e "$tmp/refused" ] || [ -e "$tmp/keep/new" ] || [ ! -d "$tmp/keep" ]; then
  echo "FAIL: a refused run left its --out behind, or took a directory it did not make"
  fail=$((fail + 1))
else
  pass=$((pass + 1))
fi
mlp_json fused-on 'd["status"] == "ok" and d["fused"] is True and d["fused_mode"] == "on"' --fused on --epochs 5
mlp_json fused-off 'd["status"] == "ok" and d["fused"] is False and d["fused_mode"] == "off"' --fused off --epochs 5
mlp_json fused-auto 'd["fused"] is True and d["fused_mode"] == "auto"' --epochs 5
mlp_json fused-big 'd["fused"] is False' --hidden 40000 --epochs 1
for mode in on off; do
  "$bin" --task factorise --preset lab --device cpu --json --fused $mode >"$tmp/f_$mode.json" 2>"$tmp/f_$mode.err"
done
if python3 - "$tmp/f_on.json" "$tmp/f_off.json" <<'PY'
import json, sys
on, off = (json.load(open(p)) for p in sys.argv[1:3])
assert on["fused"] is True and off["fused"] is False
assert on["fused_mode"] == "on" and off["fused_mode"] == "off"
assert abs(on["sse_gd"] - off["sse_gd"]) <= 1e-4 * off["sse_gd"], (on["sse_gd"], off["sse_gd"])
assert on["sse_svd"] == off["sse_svd"]
PY
then ok; else bad "factorise --fused on/off --json"; fi
grep -q "us/epoch, fused path)" "$tmp/f_on.err" && grep -q "us/epoch, general path)" "$tmp/f_off.err" &&
  ok || bad "the text report does not name the path: $(grep 'training time' "$tmp"/f_*.err)"

# auto on the CPU: a factorisation whose V holds more than 512 values stays
# on the general path although it fits; 512 or fewer fuse; on still fuses it.
for case in "400x60 5 True auto" "500x100 8 False auto" "500x100 8 True on"; do
  set -- $case
  got=$("$bin" --task factorise --device cpu --synthetic "$1" --rank "$2" --epochs 2 --fused "$4" \
    --json --quiet 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["fused"])')
  [ "$got" = "$3" ] && ok || bad "factorise $1 rank $2 --fused $4: fused $got, expected $3"
done

finish test_cli
