#!/usr/bin/env bash
# --seeds N: N models in one run report the same per-seed figures as N
# single runs, plus their distribution (JSON `seeds` and `summary`, a text
# histogram, and with --out a histogram figure).
# usage: test_seeds.sh path/to/dlab-gpu
set -u
bin=$1
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

run() { "$bin" "$@" --device cpu --quiet; }

# mlp: 6 models together against 6 single runs, seeds 40..45
run --task mlp --preset lab --seed 40 --seeds 6 --json >"$tmp/many.json" 2>"$tmp/many.txt"
for s in 40 41 42 43 44 45; do run --task mlp --preset lab --seed $s --json >"$tmp/one_$s.json" 2>/dev/null; done
check "mlp: per-seed figures equal single runs; summary complete" python3 - "$tmp" <<'PY'
import json, sys, os
d = sys.argv[1]
many = json.load(open(os.path.join(d, "many.json")))
seeds = many["seeds"]
assert [s["seed"] for s in seeds] == list(range(40, 46)), seeds
for s in seeds:
    one = json.load(open(os.path.join(d, f"one_{s['seed']}.json")))
    for k in ("val_accuracy", "train_accuracy", "val_loss", "train_loss", "best_epoch"):
        assert s[k] == one[k], (s["seed"], k, s[k], one[k])
acc = sorted(s["val_accuracy"] for s in seeds)
summ = many["summary"]["val_accuracy"]
assert set(summ) >= {"min", "p10", "median", "p90", "max"}, summ
assert summ["min"] == acc[0] and summ["max"] == acc[-1]
assert abs(summ["median"] - (acc[2] + acc[3]) / 2) < 1e-6
assert summ["min"] <= summ["p10"] <= summ["median"] <= summ["p90"] <= summ["max"]
assert 0 <= many["summary"]["val_accuracy_40_55"] <= 1
PY
check "mlp: text report shows the distribution" grep -q "validation accuracy over 6 models" "$tmp/many.txt"
check "mlp: text report counts the lab's 40-55 % runs" grep -Eq "runs at 40-55 % +[0-9]+ of 6" "$tmp/many.txt"

# factorise: 5 models together against 5 single runs, seeds 7..11
run --task factorise --seed 7 --seeds 5 --epochs 300 --json >"$tmp/fmany.json" 2>"$tmp/fmany.txt"
for s in 7 8 9 10 11; do run --task factorise --seed $s --epochs 300 --json >"$tmp/fone_$s.json" 2>/dev/null; done
check "factorise: per-seed errors equal single runs; gap summary" python3 - "$tmp" <<'PY'
import json, sys, os
d = sys.argv[1]
many = json.load(open(os.path.join(d, "fmany.json")))
seeds = many["seeds"]
assert [s["seed"] for s in seeds] == list(range(7, 12))
for s in seeds:
    one = json.load(open(os.path.join(d, f"fone_{s['seed']}.json")))
    assert s["sse_gd"] == one["sse_gd"], (s, one["sse_gd"])
    assert abs(s["gap"] - (one["sse_gd"] - one["sse_svd"])) < 1e-6
gap = many["summary"]["gap"]
assert gap["n"] == 5 and gap["min"] <= gap["median"] <= gap["max"]
assert len(many["loss_history"]) == 300  # the first seed's; all seeds: --out history.csv
PY
check "factorise: text report shows the gap distribution" grep -q "gap to the SVD optimum over 5 models" "$tmp/fmany.txt"

# --out: the histogram figure, PNG and SVG; a build without PLplot draws
# none and its summary says why.
run --task mlp --preset lab --seeds 30 --json --out "$tmp/out" >"$tmp/out.json" 2>/dev/null
if [ -e "$tmp/out/figure3_seeds_histogram.png" ]; then
  check "--out: histogram figure files" python3 - "$tmp/out" <<'PY'
import sys, os, struct, xml.etree.ElementTree as ET
d = sys.argv[1]
png = open(os.path.join(d, "figure3_seeds_histogram.png"), "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR", "not a PNG"
w, h = struct.unpack(">II", png[16:24])
assert (w, h) == (1000, 600), (w, h)
assert len(png) > 5000, len(png)
ET.parse(os.path.join(d, "figure3_seeds_histogram.svg"))
PY
else
  echo "note: figures are not drawn in this build"
  check "--out without figures: the summary says why, no SVG either" python3 - "$tmp" <<'PY'
import json, os, sys
d = sys.argv[1]
note = json.load(open(os.path.join(d, "out.json")))["out"]["figures_note"]
assert "not drawn" in note, note
assert not os.path.exists(os.path.join(d, "out", "figure3_seeds_histogram.svg"))
assert os.path.exists(os.path.join(d, "out", "history.csv"))
PY
fi

# A sweep stops as one: when a model diverges, every model stops at that
# chunk's end, and the text says the figures are those of that epoch.
"$bin" --task mlp --seeds 20 --lr 20 --device cpu --json >"$tmp/div.json" 2>"$tmp/div.txt"
rc=$?
n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epochs_run"])' "$tmp/div.json" 2>/dev/null)
[ "$rc" -eq 1 ] && [ -n "$n" ] && [ "$n" -lt 300 ] &&
  grep -q "^  (every model stopped after epoch $n of 300, when training stopped: a model diverged)$" "$tmp/div.txt" &&
  ok || bad "a sweep with a diverging model: exit $rc, epochs_run '$n', $(grep 'stopped' "$tmp/div.txt")"

finish test_seeds
