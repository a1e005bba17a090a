#!/usr/bin/env bash
# The numerics cases from the field (tests/data/cases/numerics, numpy's
# values in its README) through the command line: the figures the data
# define, null and a warning for those it does not, divergence messages that
# tell an overflow of the data from a step too large, and the same relative
# figures for a matrix times 2^60 or 2^-60 as for the matrix itself. Every
# JSON report is strict JSON (no NaN or Infinity) and never has gradient
# descent below the optimum by more than rounding.
# usage: test_numerics.sh path/to/dlab-gpu path/to/cases/numerics path/to/iris.data
set -u
bin=$1
cases=$2
iris=$3
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

# fact NAME EXPECT_RC CHECK ARGS...: runs factorise with --json on the CPU and
# checks the python expression CHECK over d (the JSON object), err (stderr)
# and text (stderr without the warning lines).
fact() { run_task factorise "$@"; }
mlp() { run_task mlp "$@"; }
run_task() {
  local task=$1 name=$2 want=$3 check=$4
  shift 4
  "$bin" --task "$task" --device cpu --json --quiet "$@" >"$tmp/json" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    bad "$name: exit $rc, expected $want: $(tail -n 2 "$tmp/err")"
    return
  fi
  if python3 - "$tmp/json" "$tmp/err" "$check" <<'PY'; then ok; else bad "$name: dlab-gpu --task $task $*"; fi
import json, math, sys
def no_constants(c):
    raise ValueError(f"JSON holds {c}")
d = json.loads(open(sys.argv[1]).read(), parse_constant=no_constants)
err = open(sys.argv[2]).read()
text = "\n".join(l for l in err.splitlines() if not l.startswith("dlab-gpu: warning:"))
warnings = [l[len("dlab-gpu: warning: "):] for l in err.splitlines() if l.startswith("dlab-gpu: warning: ")]
if d.get("task") == "factorise":
    assert warnings == d["warnings"], (warnings, d["warnings"])
    if d["sse_svd"] is not None:
        # rounding alone: 4 t (sqrt(sse_svd) + t), t = max(m, n) eps ||A||_F
        t = max(d["rows"], d["cols"]) * 2.0**-23 * math.sqrt(sum(s * s for s in d["singular_values"]))
        tol = 4 * t * (math.sqrt(d["sse_svd"]) + t)
        for s in d["seeds"]:
            assert s["sse_gd"] is None or s["sse_gd"] >= d["sse_svd"] - tol, (s, d["sse_svd"], tol)
def near(x, ref, rel):
    return x is not None and abs(x - ref) <= rel * abs(ref)
assert eval("(" + sys.argv[3] + ")"), sys.argv[3]
PY
}

c=$cases

# A zero matrix: every factorisation with U V^T = 0 is optimal.
for p in careful lab; do
  fact "c10_zero $p" 0 'd["sse_svd"] == 0 and 0 <= d["sse_gd"] < 1e-6 and d["relative_gap"] is None
    and d["principal_angles_deg"] is None and d["aligned_residual"] is None
    and d["singular_values"] == [0, 0, 0] and any("matrix is zero" in w for w in d["warnings"])
    and "relative gap undefined: the matrix is zero" in text and "undefined: the matrix is zero" in text' \
    --preset $p --data "$c/c10_zero.csv"
done

# Entries near float32's largest (3e38) at rank 1: the optimum is rounding,
# and so is the gap, which is huge in the data's units: the text says so.
printf '1,2,3\n4,1e38,6\n7,8,9\n4,3e38,6\n' >"$tmp/near_max.csv"
fact "near float32 max, rank 1" 0 'd["relative_gap"] is None and d["gap"] > 1e60
    and "within float32 rounding" in text and "relative gap undefined: the optimum is at rounding level" in text' \
  --preset careful --rank 1 --data "$tmp/near_max.csv"

# Rank 1 (sigma_1 10.24695): at rank 2 the optimum is rounding and the rank-2
# subspace is any that holds the one direction; at rank 1 only the gap is.
for p in careful lab; do
  fact "c10b_rank1 rank 2 $p" 0 'near(d["singular_values"][0], 10.24695, 1e-5)
    and d["singular_values"][1] < 1e-5 and d["relative_gap"] is None
    and d["principal_angles_deg"] is None and d["aligned_residual"] is None
    and d["sse_gd"] < 1e-6 and len(d["warnings"]) == 2
    and "at rounding level" in d["warnings"][0] and "numerical rank 1" in d["warnings"][1]' \
    --preset $p --data "$c/c10b_rank1.csv" --rank 2
done
fact "c10b_rank1 rank 1" 0 'd["relative_gap"] is None and d["principal_angles_deg"][0] < 1e-3
  and d["aligned_residual"] < 1e-5 and len(d["warnings"]) == 1' --data "$c/c10b_rank1.csv" --rank 1

# Wider than tall: numpy's sigma = 4.508746 2.990321 2.573415 1.346721 ~0,
# SSE_2 8.436120. Rank 4 fits exactly (the gap has no scale, the rank-4
# subspace is unique); rank 5 exceeds the numerical rank 4.
sv='[4.508746, 2.990321, 2.573415, 1.346721]'
fact "c08_wide_5x12 rank 2" 0 "all(near(a, b, 2e-6) for a, b in zip(d['singular_values'], $sv))
  and d['singular_values'][4] < 1e-5 and near(d['sse_svd'], 8.436120, 1e-6)
  and abs(d['relative_gap']) < 1e-5 and max(d['principal_angles_deg']) < 0.01 and d['warnings'] == []" \
  --data "$c/c08_wide_5x12.csv"
fact "c08_wide_5x12 rank 4" 0 'd["relative_gap"] is None and d["sse_gd"] < 1e-8
  and max(d["principal_angles_deg"]) < 0.01 and d["aligned_residual"] < 1e-5 and len(d["warnings"]) == 1' \
  --data "$c/c08_wide_5x12.csv" --rank 4
fact "c08_wide_5x12 rank 5" 0 'd["relative_gap"] is None and d["sse_svd"] == 0
  and d["principal_angles_deg"] is None and d["aligned_residual"] is None and len(d["warnings"]) == 2' \
  --data "$c/c08_wide_5x12.csv" --rank 5

# sigma = 3 2 2 1: gradient descent reaches 5.0 and the rank-2 subspace is
# one of many, which the report says.
for p in careful lab; do
  fact "c11_tied_sv $p" 0 'near(d["sse_gd"], 5.0, 1e-5) and near(d["sse_svd"], 5.0, 1e-6)
    and d["principal_angles_deg"] is not None and len(d["warnings"]) == 1
    and "sigma_2 = 2 and sigma_3 = 2 are equal within rounding" in d["warnings"][0]
    and "not unique" in d["warnings"][0]' --preset $p --data "$c/c11_tied_sv.csv"
done

# A constant matrix is zero once centred: said so, not "the matrix is zero".
printf '1,2,3\n1,2,3\n1,2,3\n1,2,3\n' >"$tmp/constant.csv"
fact "constant" 0 'd["relative_gap"] is None and d["principal_angles_deg"] is None
  and any(w.startswith("the matrix is zero after centring (every column is constant)") for w in d["warnings"])
  and "undefined: the matrix is zero after centring (every column is constant)" in text' \
  --rank 1 --data "$tmp/constant.csv"
# iris x 1e20 (SSE_2 1.5228833e41, sigma_1 2.508986e21): the careful preset
# factorises it like iris; the lab's overflows, and says so, with the SVD
# baseline all the same (it does not depend on training) and the figures
# that depend on the diverged factors undefined.
fact "c12_huge careful" 0 'd["status"] == "ok" and near(d["sse_svd"], 1.5228833e41, 1e-6)
  and near(d["singular_values"][0], 2.508986e21, 1e-6) and abs(d["relative_gap"]) < 1e-5
  and max(d["principal_angles_deg"]) < 0.01 and d["scale_log2"] == -72 and d["warnings"] == []' \
  --data "$c/c12_huge_1e20.csv"
fact "c12_huge lab" 1 'd["status"] == "diverged" and near(d["sse_svd"], 1.5228833e41, 1e-6)
  and d["sse_gd"] is None and "gap" in d and d["gap"] is None and d["relative_gap"] is None
  and d["principal_angles_deg"] is None
  and d["stop_message"].startswith("training diverged: the loss became Inf at epoch 1 of 1000")
  and "dlab-gpu: training diverged: the loss became Inf at epoch 1 of 1000: the data overflow float32" in err
  and "6.81e+42, exceeds float32" in err and "although every entry fits" in err
  and "no learning rate helps" in err and "a step for this data is lr 3.99e-23" in err
  and "too large" not in err' --preset lab --data "$c/c12_huge_1e20.csv"

# iris x 1e-30 (SSE_2 1.5228833e-59): the squares would flush to zero in
# float32; never an SSE below the optimum (the bound is checked for every run).
fact "c12b_tiny careful" 0 'near(d["sse_svd"], 1.5228833e-59, 1e-6) and abs(d["relative_gap"]) < 1e-5
  and near(d["singular_values"][0], 2.508986e-29, 1e-6) and d["sse_gd"] > 0
  and "gradient descent SSE 1.52288" in text' --data "$c/c12b_tiny_1e-30.csv"
fact "c12b_tiny lab" 0 'd["sse_gd"] > d["sse_svd"] > 0 and d["stop_message"] == ""
  and any("cannot make progress" in w and "careful preset" in w for w in d["warnings"])' \
  --preset lab --data "$c/c12b_tiny_1e-30.csv"
fact "c12b_tiny lab no-svd" 0 'd["sse_svd"] is None and d["sse_svd_reconstruction"] is None
  and d["svd_seconds"] is None and any("cannot make progress" in w for w in d["warnings"])' \
  --preset lab --no-svd --data "$c/c12b_tiny_1e-30.csv"
fact "iris lab no warning" 0 'd["warnings"] == [] and d["stop_message"] == ""' --preset lab --data "$iris"
# Gaps far outside float32's range (iris x 1e-30: ~6.6e-58 each) keep their
# values in the --seeds summary, and the histogram bins the relative gap.
fact "c12b_tiny lab seeds" 0 '(lambda g: g["n"] == 3 and g["non_finite"] == 0
  and g["min"] == min(s["gap"] for s in d["seeds"]) and g["max"] == max(s["gap"] for s in d["seeds"])
  and 1e-58 < g["min"] <= g["median"] <= g["max"] < 1e-56)(d["summary"]["gap"])
  and "gap to the SVD optimum over 3 models:  min 6.6e-58" in text
  and "relative gap by decade (gap / SVD optimum, the same in any units):" in text
  and "1e+1 - 1e+2" in text' --preset lab --seeds 3 --data "$c/c12b_tiny_1e-30.csv"

# A value beyond float32: refused where it is.
"$bin" --task factorise --device cpu --data "$c/c12d_over_1e39.csv" >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -eq 2 ] && grep -q "c12d_over_1e39.csv:1: column 1: number out of float range" "$tmp/err" && ok ||
  bad "c12d_over_1e39: exit $rc, $(cat "$tmp/err")"

# iris plus a near-constant feature: factorise trains with either preset; the
# A diverged run (iris, lab, lr 10): the text says the error is undefined
# rather than printing nan, JSON has every key with null, the SVD baseline
# is computed and shown in report.html, and Figure 1 has no Û panel.
d=$tmp/diverged
"$bin" --task factorise --device cpu --quiet --preset lab --lr 10 --json --out "$d" >"$tmp/json" 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && python3 - "$tmp/json" "$tmp/err" "$d" <<'PY'
import json, re, sys
d, err, out = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), sys.argv[3]
assert d["status"] == "diverged" and d["sse_gd"] is None, d["sse_gd"]
for k in ["gap", "relative_gap", "principal_angles_deg", "aligned_residual"]:
    assert k in d and d[k] is None, (k, d.get(k))
assert d["sse_svd"] is not None and d["sse_svd"] > 0 and len(d["singular_values"]) == 4, d["sse_svd"]
assert re.search(r"gradient descent SSE undefined: training diverged at epoch [0-9]+", err), err
assert "nan" not in err.replace("NaN", ""), err
assert "SVD rank-2 SSE" in err and "gap                  undefined: training diverged" in err, err
html = open(f"{out}/report.html").read()
assert "SVD rank-2 SSE" in html and ("not drawn: training diverged" in html or "built without PLplot" in html), "report.html"
PY
then ok; else bad "diverged run: exit $rc, $(tail -n 3 "$tmp/err")"; fi

# The text's histogram of the gaps over seeds says what it bins (the
# relative gap, by decade, the same in any units), as the page does.
"$bin" --task factorise --device cpu --quiet --seeds 3 --epochs 50 >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && grep -q "relative gap by decade (gap / SVD optimum, the same in any units)" "$tmp/out"; then ok
else bad "seeds histogram note: exit $rc, $(grep gap "$tmp/out")"; fi

# MLP's lab scaling (x - mean)/var blows the feature up and diverges cleanly,
# the careful preset trains.
for p in careful lab; do
  fact "c13 factorise $p" 0 'd["status"] == "ok" and abs(d["relative_gap"]) < 1e-3' \
    --preset $p --data "$c/c13_tiny_var_feature.csv"
done
mlp "c13 mlp lab" 1 'd["status"] == "diverged" and "training diverged: the loss became" in err' \
  --preset lab --data "$c/c13_tiny_var_feature.csv"
mlp "c13 mlp lab warns" 1 'any("inputs of about 1.29e+03" in w and "careful preset" in w for w in d["warnings"])
  and "dlab-gpu: warning: the lab preset divides each feature by its variance" in err
  and d["stop_message"].startswith("training diverged")' --preset lab --data "$c/c13_tiny_var_feature.csv"
# iris x 1e20: the lab's (x - mean) / variance leaves inputs near 1e-20, and
# says so; iris itself gets no warning.
python3 - "$iris" "$tmp" <<'PY'
import sys
with open(f"{sys.argv[2]}/iris_1e20_labelled.csv", "w") as out:
    for l in open(sys.argv[1]):
        if l.strip():
            p = l.strip().split(",")
            out.write(",".join(repr(float(x) * 1e20) for x in p[:4]) + "," + p[4] + "\n")
PY
mlp "iris x 1e20 mlp lab warns" 0 'len(d["warnings"]) == 1 and "can hardly learn" in d["warnings"][0]
  and "e-21 instead of about 1" in d["warnings"][0] and d["stop_message"] == ""' \
  --preset lab --data "$tmp/iris_1e20_labelled.csv"
mlp "iris x 1e20 mlp careful" 0 'd["warnings"] == [] and d["val_accuracy"] >= 0.9' \
  --data "$tmp/iris_1e20_labelled.csv"
mlp "iris mlp lab no warning" 0 'd["warnings"] == []' --preset lab --data "$iris"
mlp "c13 mlp careful" 0 'd["status"] == "ok" and d["val_accuracy"] >= 0.9' --data "$c/c13_tiny_var_feature.csv"

# --seeds with a figure undefined for the data: nulls left out, and counted.
fact "c10b seeds" 0 'd["summary"]["relative_gap"]["n"] == 0 and d["summary"]["relative_gap"]["undefined"] == 4
  and d["summary"]["relative_gap"]["median"] is None and d["summary"]["gap"]["n"] == 4
  and all(s["relative_gap"] is None for s in d["seeds"])
  and "relative gap over 4 models: undefined for all 4 (the optimum is at rounding level" in text' \
  --data "$c/c10b_rank1.csv" --rank 2 --seeds 4
# Gaps beyond float32's range (iris x 1e30: ~9.6e54 each) are finite in
# the summary; each row is in the decades the relative gaps span.
python3 - "$iris" "$tmp" <<'PY'
import sys
with open(f"{sys.argv[2]}/iris_1e30.csv", "w") as out:
    for l in open(sys.argv[1]):
        if l.strip():
            out.write(",".join(repr(float(x) * 1e30) for x in l.split(",")[:4]) + "\n")
PY
# The gap is rounding-level relative to the optimum, so its sign depends on
# the SVD (LAPACKE or the built-in Jacobi one): only its size is asserted,
# and the histogram row is its decade, or the "at or below" row.
fact "iris x 1e30 seeds" 0 'd["status"] == "ok" and d["summary"]["gap"]["n"] == 3
  and d["summary"]["gap"]["non_finite"] == 0 and 1e52 < abs(d["summary"]["gap"]["median"]) < 1e56
  and "diverged" not in text and "gap to the SVD optimum over 3 models:  min " in text
  and (lambda r: ("1e%+d - 1e%+d" % (math.floor(math.log10(r)), math.floor(math.log10(r)) + 1)) in text
       if r > 0 else "at or below the optimum (rounding)" in text)(
      d["summary"]["relative_gap"]["median"])' --seeds 3 --data "$tmp/iris_1e30.csv"
fact "iris seeds" 0 'd["summary"]["relative_gap"]["n"] == 4 and d["summary"]["relative_gap"]["undefined"] == 0
  and all(abs(s["relative_gap"]) < 1e-5 for s in d["seeds"])' --data "$iris" --seeds 4

# Iris times 2^60 and 2^-60, written exactly (the float32 values times a
# power of two): the careful preset's relative figures are those of iris, to
# the bit; figures in the data's units match to the 9 digits JSON keeps.
python3 - "$iris" "$tmp" <<'PY'
import struct, sys
rows = [l.strip().split(",") for l in open(sys.argv[1]) if l.strip()]
f32 = lambda s: struct.unpack("f", struct.pack("f", float(s)))[0]
for k in (60, -60):
    with open(f"{sys.argv[2]}/iris_2^{k}.csv", "w") as out:
        for r in rows:
            out.write(",".join(repr(f32(x) * 2.0**k) for x in r[:4]) + "\n")
PY
"$bin" --task factorise --device cpu --json --quiet --data "$iris" >"$tmp/base.json" 2>/dev/null
for k in 60 -60; do
  fact "iris times 2^$k" 0 "
  (lambda b: d['relative_gap'] == b['relative_gap'] and d['scale_log2'] == b['scale_log2'] - ($k)
   and all(near(x * 2.0**-($k), y, 1e-8) for x, y in zip(d['singular_values'], b['singular_values']))
   and d['principal_angles_deg'] == b['principal_angles_deg'] and d['aligned_residual'] == b['aligned_residual']
   and near(d['sse_gd'] * 2.0**(-2 * ($k)), b['sse_gd'], 1e-8))(json.load(open('$tmp/base.json')))" \
    --data "$tmp/iris_2^$k.csv"
done

finish test_numerics
