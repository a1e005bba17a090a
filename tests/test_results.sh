#!/usr/bin/env bash
# The results a run leaves under --out and the predict task: the factors
# reproduce the run's error in numpy, a numpy forward pass from model.json
# reproduces predictions.csv, --task predict on the training file reproduces
# the run's accuracies, report.html is strict HTML5 with its figures inline,
# and bad model files or data that does not fit exit 2 with one line naming
# the file.
# usage: test_results.sh path/to/dlab-gpu path/to/check_results.py path/to/iris.data
set -u
bin=$1
check=$2
iris=$3
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

# numpy and html5lib come from Debian (python3-numpy, python3-html5lib);
# the python3 first on PATH may be another installation without them.
py=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy, html5lib' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
  echo "skipped: needs python3-numpy and python3-html5lib (scripts/setup.sh installs them)"
  exit 77
fi

run() { "$bin" --device cpu --quiet "$@"; }
res() { # NAME CHECK ARGS...: ok if check_results.py CHECK ARGS... holds
  local name=$1 out
  shift
  if out=$("$py" "$check" "$@" 2>&1); then ok; else bad "$name: $(tail -n 3 <<<"$out")"; fi
}

# Figures are drawn only with PLplot and its cairo driver; the page then
# embeds none and says why.
run --task factorise --epochs 1 --out "$tmp/probe" >/dev/null 2>&1
[ -e "$tmp/probe/figure1_projections.svg" ] && figures=1 || figures=0
svgs() { echo $(($1 * figures)); }
# Built without Jansson, --task predict cannot read model.json and says so.
predict=1
if run --task predict --model "$tmp/none.json" --data "$iris" 2>&1 | grep -q "built without Jansson"; then
  predict=0
  echo "note: built without Jansson; --task predict's checks are skipped"
fi

# --- factorise: the factors --------------------------------------------------
if run --task factorise --json --out "$tmp/f" >"$tmp/f.json" 2>"$tmp/err"; then
  for f in U.npy U.csv V.npy V.csv column_means.npy svd_U.npy svd_S.npy svd_V.npy report.html; do
    [ -s "$tmp/f/$f" ] && ok || bad "factorise: $f missing"
  done
  res "factorise: U, V, mu reproduce sse_gd" factors "$tmp/f" "$iris"
  res "factorise: report.html" html "$tmp/f/report.html" --svgs "$(svgs 1)" --text "gradient descent reaches" \
    --text "15.2288"
  "$py" -c 'import json,sys; f=json.load(open(sys.argv[1]))["out"]["files"]; assert f[-2:] == ["report.html", "summary.json"], f' \
    "$tmp/f.json" && ok || bad "factorise: report.html and summary.json are not the last files"
else
  bad "factorise --out: $(cat "$tmp/err")"
fi
if run --task factorise --no-center --epochs 300 --lr 0.001 --out "$tmp/fnc" >/dev/null 2>"$tmp/err"; then
  res "factorise --no-center: zero means, factors reproduce sse_gd" factors "$tmp/fnc" "$iris" --no-center
else
  bad "factorise --no-center: $(cat "$tmp/err")"
fi
# --seeds: the first seed's factors, on one backend or split into groups
if run --task factorise --seeds 3 --seed 5 --epochs 200 --out "$tmp/fs" >/dev/null 2>"$tmp/err"; then
  res "factorise --seeds 3: the first seed's factors" factors "$tmp/fs" "$iris" --seed-index 0
  res "factorise --seeds 3: report.html" html "$tmp/fs/report.html" --svgs "$(svgs 2)" --seeds
else
  bad "factorise --seeds 3: $(cat "$tmp/err")"
fi
if run --task factorise --no-svd --rank 1 --epochs 100 --out "$tmp/fn" >/dev/null 2>"$tmp/err"; then
  res "factorise --no-svd: factors, no svd files" factors "$tmp/fn" "$iris"
  res "factorise --no-svd: report.html" html "$tmp/fn/report.html" --svgs "$(svgs 1)"
else
  bad "factorise --no-svd: $(cat "$tmp/err")"
fi
# Data in large and small units: the careful preset trains on them scaled by
# a power of two, and the factors come back in the data's units.
cases=$(dirname "$check")/data/cases/numerics
for f in c12_huge_1e20 c12b_tiny_1e-30; do
  if run --task factorise --data "$cases/$f.csv" --out "$tmp/$f" >/dev/null 2>"$tmp/err"; then
    res "factorise $f: factors in the data's units reproduce sse_gd" factors "$tmp/$f" "$cases/$f.csv"
  else
    bad "factorise $f: $(cat "$tmp/err")"
  fi
done
if run --task factorise --synthetic 300x40 --rank 3 --lr 1e-3 --epochs 50 --out "$tmp/fsyn" >/dev/null 2>"$tmp/err"; then
  "$py" - "$tmp/fsyn" <<'PY' && ok || bad "synthetic: factor shapes"
import numpy as np, sys
d = sys.argv[1]
assert np.load(f"{d}/U.npy").shape == (300, 3) and np.load(f"{d}/V.npy").shape == (40, 3)
assert np.load(f"{d}/svd_U.npy").shape == (300, 3) and np.load(f"{d}/svd_V.npy").shape == (40, 3)
assert np.load(f"{d}/svd_S.npy").shape == (40,) and not np.load(f"{d}/column_means.npy").any()
PY
else
  bad "synthetic --out: $(cat "$tmp/err")"
fi

# A run whose factors are not finite writes none, and says so
run --task factorise --lr 1e5 --out "$tmp/fdiv" >"$tmp/err" 2>&1
rc=$?
[ "$rc" -eq 1 ] && [ ! -e "$tmp/fdiv/U.npy" ] && [ ! -e "$tmp/fdiv/column_means.npy" ] &&
  grep -q "factors  *not written: U or V holds NaN or Inf" "$tmp/err" && ok ||
  bad "diverged factorise: exit $rc, $(ls "$tmp/fdiv" | tr '\n' ' '), $(cat "$tmp/err")"
res "diverged factorise: report.html" html "$tmp/fdiv/report.html" --text "U and V: not written"
# Finite factors whose error overflowed (the lab's start at a step far too
# large) are not written either; the page says why training diverged.
run --task factorise --preset lab --lr 10 --out "$tmp/fdiv2" >"$tmp/err" 2>&1
rc=$?
[ "$rc" -eq 1 ] && [ ! -e "$tmp/fdiv2/U.npy" ] &&
  grep -q "factors  *not written: their error is NaN or Inf" "$tmp/err" && ok ||
  bad "diverged lab factorise: exit $rc, $(ls "$tmp/fdiv2" | tr '\n' ' '), $(cat "$tmp/err")"
res "diverged lab factorise: report.html" html "$tmp/fdiv2/report.html" \
  --text "the learning rate 10 is too large for this data"

# --- mlp: model, predictions, confusion matrix -------------------------------
for preset in careful lab; do
  d=$tmp/m_$preset
  if run --task mlp --preset "$preset" --json --out "$d" >"$tmp/m.json" 2>"$tmp/m.txt"; then
    for f in model.json predictions.csv report.html; do
      [ -s "$d/$f" ] && ok || bad "mlp $preset: $f missing"
    done
    [ "$figures" -eq 0 ] || [ -s "$d/figure4_confusion_matrix.png" ] && ok || bad "mlp $preset: no figure 4"
    res "mlp $preset: numpy forward pass reproduces predictions.csv" model "$d" "$iris"
    res "mlp $preset: report.html" html "$d/report.html" --svgs "$(svgs 2)" --confusion \
      --text "Iris-versicolor"
    grep -q "validation confusion matrix (rows: true class, columns: predicted)" "$tmp/m.txt" && ok ||
      bad "mlp $preset: the text report lacks the confusion matrix"
    if [ "$predict" -eq 0 ]; then
      :
    elif run --task predict --model "$d/model.json" --data "$iris" --json --out "$tmp/p_$preset" >"$tmp/p.json" 2>"$tmp/err"; then
      res "predict ($preset model) on the training file: the run's accuracies" predicted "$d" "$tmp/p.json" "$tmp/p_$preset"
    else
      bad "predict ($preset model): $(cat "$tmp/err")"
    fi
  else
    bad "mlp --preset $preset --out: $(cat "$tmp/err")"
  fi
done
# --seeds: the first model; the page shows the distribution
d=$tmp/m_seeds
if run --task mlp --seeds 3 --seed 4 --epochs 60 --json --out "$d" >/dev/null 2>"$tmp/err"; then
  res "mlp --seeds 3: model.json is the first seed's" model "$d" "$iris"
  res "mlp --seeds 3: report.html" html "$d/report.html" --svgs "$(svgs 3)" --confusion --seeds
  "$py" -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["training"]["seed"] == 4, m["training"]' \
    "$d/model.json" && ok || bad "mlp --seeds 3: model.json's seed"
  if [ "$predict" -eq 1 ]; then
    run --task predict --model "$d/model.json" --data "$iris" --json --out "$tmp/p_seeds" >"$tmp/p.json" 2>/dev/null
    res "predict (first of 3 models): the run's accuracies" predicted "$d" "$tmp/p.json" "$tmp/p_seeds"
  fi
else
  bad "mlp --seeds 3 --out: $(cat "$tmp/err")"
fi

# A diverged model is neither saved nor applied: no model.json, no
# predictions, a null confusion matrix, and the reports say why
run --task mlp --preset lab --lr 5000 --json --out "$tmp/mdiv" >"$tmp/mdiv.json" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] && [ ! -e "$tmp/mdiv/model.json" ] && [ ! -e "$tmp/mdiv/predictions.csv" ] &&
  "$py" -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["status"] == "diverged" and s["confusion_matrix"] is None, s' \
    "$tmp/mdiv.json" && grep -q "confusion matrix  *none: the first model's loss is not finite" "$tmp/err" &&
  ok || bad "diverged mlp: exit $rc, $(ls "$tmp/mdiv" | tr '\n' ' '), $(cat "$tmp/err")"
res "diverged mlp: report.html" html "$tmp/mdiv/report.html" --text "No confusion matrix"

# A model whose loss is not finite has no accuracy: not in the text, the
# JSON, the statistics or the page; no confusion matrix, figure 4,
# model.json or predictions.csv, and the reports say why.
run --task mlp --lr 1e30 --json --out "$tmp/mundef" >"$tmp/mundef.json" 2>"$tmp/err"
rc=$?
[ "$rc" -eq 1 ] && ok || bad "NaN-loss mlp: exit $rc"
for f in model.json predictions.csv figure4_confusion_matrix.png figure4_confusion_matrix.svg; do
  [ ! -e "$tmp/mundef/$f" ] && ok || bad "NaN-loss mlp: $f written"
done
res "NaN-loss mlp: accuracies null, no confusion matrix (stdout)" undefined "$tmp/mundef.json"
res "NaN-loss mlp: accuracies null, no confusion matrix (summary.json)" undefined "$tmp/mundef/summary.json"
grep -Eq "^  training  +loss not finite  accuracy undefined: " "$tmp/err" &&
  grep -Eq "^  validation  +loss not finite  accuracy undefined: " "$tmp/err" &&
  grep -Eq "^  model.json, predictions.csv  not written: the first model's loss is not finite" "$tmp/err" &&
  ! grep -Eq "nan|accuracy [0-9]|true class" "$tmp/err" && ok ||
  bad "NaN-loss mlp: text report: $(cat "$tmp/err")"
res "NaN-loss mlp: report.html states no accuracy" html "$tmp/mundef/report.html" --svgs "$(svgs 1)" \
  --text "accuracy is undefined" --text "No confusion matrix, model.json or predictions.csv" \
  --absent "classifies" --absent "% of the validation rows"
# Over seeds, the seeds whose loss is NaN are left out of the accuracy
# statistics and counted; the finite ones stay.
run --task mlp --lr 20 --seeds 20 --json >"$tmp/mseeds.json" 2>"$tmp/err"
res "--seeds 20 with NaN-loss seeds: their accuracies are undefined" undefined "$tmp/mseeds.json"
run --task mlp --lr 100 --seeds 20 --json >"$tmp/mseeds100.json" 2>"$tmp/err"
res "--seeds 20, every seed NaN: no accuracy statistics" undefined "$tmp/mseeds100.json"
grep -q "validation accuracy undefined: all 20 models diverged" "$tmp/err" && ! grep -q "nan" "$tmp/err" &&
  ok || bad "--seeds 20, every seed NaN: text: $(cat "$tmp/err")"
# A huge finite loss reads in %g, not as a wall of digits.
run --task mlp --lr 100 --epochs 4 --json >"$tmp/mbig.json" 2>"$tmp/err"
"$py" -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["train_loss"] > 1e6, s["train_loss"]' \
  "$tmp/mbig.json" && grep -Eq "^  training  +loss [0-9.]+e\+[0-9]+  accuracy [0-9.]+" "$tmp/err" &&
  ok || bad "huge finite loss: $(grep -E "^  (training|validation) " "$tmp/err")"

# A header row names the features; the model keeps them and predict
# checks them. Class names with markup are escaped in the page; the one
# with quotes is written as RFC 4180 has it (quoted whole, quotes doubled).
{
  echo "sepal length,sepal width,petal length,petal width,species"
  sed -e 's/Iris-setosa/"<b>set\&""osa""<\/b>"/' "$iris"
} >"$tmp/named.csv"
d=$tmp/m_named
if run --task mlp --data "$tmp/named.csv" --epochs 40 --json --out "$d" >/dev/null 2>"$tmp/err"; then
  res "mlp with a header: model and predictions" model "$d" "$tmp/named.csv"
  res "mlp with a header: the page escapes class names" html "$d/report.html" --confusion \
    --text '<b>set&"osa"</b>'
else
  bad "mlp with a header: $(cat "$tmp/err")"
fi

# --- predict: exit 2 with one line naming the file ----------------------------
model=$tmp/m_careful/model.json
expect2() { # PATTERN ARGS...: exit 2, the one error line matches PATTERN
  local pattern=$1 rc
  shift
  run "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" -ne 2 ]; then
    bad "predict $* -> exit $rc, expected 2: $(cat "$tmp/err")"
  elif [ "$(grep -c . "$tmp/err")" -ne 1 ] || ! grep -Eq -- "^dlab-gpu: error: $pattern" "$tmp/err"; then
    bad "predict $* -> message '$(cat "$tmp/err")' does not match '$pattern'"
  else
    ok
  fi
}
# bad_model NAME PATTERN: predicting with the model file $tmp/NAME.json exits 2
# with the message "$tmp/NAME.json" followed by PATTERN.
bad_model() { expect2 "$tmp/$1.json$2" --task predict --model "$tmp/$1.json" --data "$iris"; }
if [ "$predict" -eq 1 ]; then
  printf 'not json at all\n' >"$tmp/text.json"
  : >"$tmp/empty.json"
  printf '[1, 2]\n' >"$tmp/array.json"
  sed 's/"version": 1/"version": 7/' "$model" >"$tmp/v7.json"
  "$py" - "$model" "$tmp" <<'PY'
import json, sys
m, d = json.load(open(sys.argv[1])), sys.argv[2]
def put(name, edit):
    x = json.loads(json.dumps(m))
    edit(x)
    json.dump(x, open(f"{d}/{name}.json", "w"))
put("short_row", lambda x: x["layers"][0]["W"][2].pop())
put("scale0", lambda x: x["input_scale"].__setitem__(1, 0))
put("tanh", lambda x: x.__setitem__("activation", "tanh"))
put("nolayers", lambda x: x.pop("layers"))
put("three_layers", lambda x: x["layers"].append(x["layers"][1]))
put("b_string", lambda x: x["layers"][1]["b"].__setitem__(0, "big"))
put("no_output", lambda x: x.pop("output"))
put("null_output", lambda x: x.__setitem__("output", None))
put("sigmoid", lambda x: x.__setitem__("output", "sigmoid"))
put("dup_classes", lambda x: x.__setitem__("classes", ["A", "A", "B"]))
put("empty_class", lambda x: x.__setitem__("classes", ["", "b", "c"]))
def overflow(x):  # every hidden unit's weight to class 0 near FLT_MAX
    for row in x["layers"][1]["W"]:
        row[0] = 3e38
put("overflow", overflow)
put("header", lambda x: (x.__setitem__("feature_names", ["sepal length", "sepal width", "petal length", "petal size"]),
                         x.__setitem__("feature_names_from", "header")))
PY
  bad_model missing ": cannot open"
  bad_model text ":1:[0-9]+: not a dlab-gpu model file: invalid JSON"
  printf '\x00\x01\xff\xfe{' >"$tmp/binary.json"
  bad_model binary ":1:[0-9]+: not a dlab-gpu model file: invalid JSON: [[:print:]]*$"
  expect2 "$tmp/m_careful: is a directory, not a model file" --task predict --model "$tmp/m_careful" --data "$iris"
  bad_model empty ".*not a dlab-gpu model file: invalid JSON"
  bad_model array ": not a dlab-gpu model file \(the JSON is not an object\)"
  bad_model m_careful/summary ": not a dlab-gpu model file \(\"format\" is missing"
  bad_model v7 ": model version 7 is not supported"
  bad_model short_row ": \"layers\"\[0\].\"W\"\[2\] has 11 values, expected 12"
  bad_model scale0 ": \"input_scale\"\[1\] is 0; scales must be positive"
  bad_model tanh ": activation \"tanh\" is not supported"
  bad_model nolayers ": \"layers\" is missing"
  bad_model three_layers ": \"layers\" has 3 layers"
  bad_model b_string ": \"layers\"\[1\].\"b\"\[0\] is not a number"
  bad_model no_output ": \"output\" is missing or not a string"
  bad_model null_output ": \"output\" is missing or not a string"
  bad_model sigmoid ": output \"sigmoid\" is not supported \(softmax only\)"
  bad_model dup_classes ": \"classes\"\[0\] and \"classes\"\[1\] are both \"A\""
  bad_model empty_class ": \"classes\"\[0\] is an empty name"
  # Outputs that overflow float32 name no class: exit 1, one line, no files
  run --task predict --model "$tmp/overflow.json" --data "$iris" --json --out "$tmp/pover" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 1 ] && [ "$(grep -c . "$tmp/err")" -eq 1 ] &&
    grep -Eq "^dlab-gpu: error: $tmp/overflow.json: [1-9][0-9]* of 150 rows of $iris have non-finite outputs: the model's weights overflow float32; nothing was predicted$" "$tmp/err" &&
    [ ! -e "$tmp/pover/predictions.csv" ] && [ ! -e "$tmp/pover/summary.json" ] && ! grep -q "nan" "$tmp/out" &&
    ok || bad "predict with overflowing weights: exit $rc, $(cat "$tmp/err") $(ls "$tmp/pover" 2>&1)"
  # A model trained on some columns of a headed file, applied to the whole
  # file: the message says how to select them.
  { echo "sl,sw,pl,pw,species"; cat "$iris"; } >"$tmp/hdr.csv"
  if run --task mlp --data "$tmp/hdr.csv" --columns sl,pl --epochs 20 --out "$tmp/m_cols" >/dev/null 2>"$tmp/err"; then
    expect2 "$tmp/hdr.csv: 4 feature columns, but the model $tmp/m_cols/model.json takes 2 \(sl, pl\); select them with --columns sl,pl$" \
      --task predict --model "$tmp/m_cols/model.json" --data "$tmp/hdr.csv"
    run --task predict --model "$tmp/m_cols/model.json" --data "$tmp/hdr.csv" --columns sl,pl >/dev/null 2>"$tmp/err" &&
      ok || bad "predict --columns sl,pl: $(cat "$tmp/err")"
  else
    bad "mlp --columns sl,pl: $(cat "$tmp/err")"
  fi
  cut -d, -f1-3,5 "$iris" >"$tmp/three.csv"
  expect2 "$tmp/three.csv: 3 feature columns, but the model $model takes 4" --task predict --model "$model" --data "$tmp/three.csv"
  expect2 "$tmp/named.csv: the header names the features sepal length, sepal width, petal length, petal width, but the model $tmp/header.json takes" \
    --task predict --model "$tmp/header.json" --data "$tmp/named.csv"
  expect2 "$tmp/named.csv: label \"<b>set&\"osa\"</b>\" is not one of the classes of the model $model" \
    --task predict --model "$model" --data "$tmp/named.csv"
  expect2 "--task predict needs --model FILE" --task predict --data "$iris"
  expect2 "--task predict needs --data FILE" --task predict --model "$model"
  expect2 "--epochs does not apply to --task predict" --task predict --model "$model" --data "$iris" --epochs 5
  expect2 "--model applies to --task predict, not mlp" --task mlp --model "$model"
  # the named model on its own file and on the unlabelled, unnamed columns
  if run --task predict --model "$tmp/m_named/model.json" --data "$tmp/named.csv" --json >"$tmp/pn.json" 2>"$tmp/err"; then
    "$py" -c 'import json,sys; p=json.load(open(sys.argv[1])); assert p["labelled"] and p["rows"] == 150 and p["correct"] > 100, p' \
      "$tmp/pn.json" && ok || bad "predict on named.csv: $(cat "$tmp/pn.json")"
  else
    bad "predict on named.csv: $(cat "$tmp/err")"
  fi
  cut -d, -f1-4 "$iris" >"$tmp/unlabelled.csv"
  if run --task predict --model "$model" --data "$tmp/unlabelled.csv" --json --out "$tmp/pu" >"$tmp/pu.json" 2>"$tmp/err"; then
    "$py" - "$tmp/pu.json" "$tmp/pu/predictions.csv" "$tmp/p_careful/predictions.csv" <<'PY' && ok || bad "predict on unlabelled rows"
import csv, json, sys
p = json.load(open(sys.argv[1]))
assert p["labelled"] is False and p["accuracy"] is None and p["correct"] is None and p["confusion_matrix"] is None, p
assert sum(p["predicted_counts"]) == p["rows"] == 150, p
a, b = list(csv.reader(open(sys.argv[2]))), list(csv.reader(open(sys.argv[3])))
assert all(r[1] == "" for r in a[1:]), "labels in an unlabelled file"
assert [r[:1] + r[2:] for r in a] == [r[:1] + r[2:] for r in b], "predictions differ"
PY
    grep -q "accuracy  *not measured: the data has no label column" "$tmp/err" && ok || bad "unlabelled: text report"
  else
    bad "predict on unlabelled rows: $(cat "$tmp/err")"
  fi
fi

finish test_results
