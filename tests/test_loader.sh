#!/usr/bin/env bash
# Data files as users have them, through the command line: the field cases
# in tests/data/cases (each with the value its README gives), every loader
# option (--delimiter, --header, --label-column, --columns, --train), the
# formats (RFC 4180 quoting, line ends, byte-order marks, number forms,
# float32 range, .npy arrays written by tests/make_npy.py), the one-line
# note where the loader guesses, and exit 2 with file:line: column messages.
# usage: test_loader.sh path/to/dlab-gpu CASES_DIR IRIS_DATA MAKE_NPY_PY
set -u
bin=$1
cases=$2
iris=$3
make_npy=$4
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"
[ -d "$cases" ] || { echo "test_loader: no cases folder at $cases"; exit 1; }

# run TASK ARGS...: runs dlab-gpu on the CPU with --json; stdout in
# $tmp/json, stderr without the CPU fallback line in $tmp/err, status in rc.
run() {
  local task=$1
  shift
  local extra=()
  [ "$task" = factorise ] && extra=(--epochs 2)
  "$bin" --task "$task" --device cpu --json "${extra[@]}" "$@" >"$tmp/json" 2>"$tmp/err.all"
  rc=$?
  grep -v 'running on the CPU$' "$tmp/err.all" >"$tmp/err"
}

# json NAME CHECK TASK ARGS...: exit 0 and the python expression CHECK holds
# over d (the JSON report), err (stderr) and notes (stderr's "assumed" lines).
json() {
  local name=$1 check=$2
  shift 2
  run "$@"
  if [ "$rc" -eq 0 ] && python3 - "$tmp/json" "$tmp/err" "$check" <<'PY'; then ok; else bad "$name: dlab-gpu $* (exit $rc): $(tail -n 2 "$tmp/err")"; fi
import json, sys
d = json.load(open(sys.argv[1]))
err = open(sys.argv[2]).read()
notes = [l for l in err.splitlines() if ": assumed " in l]
c = d.get("config", {})
def sse(x): return abs(d["sse_svd"] - x) <= 2e-5 * x
def trains(): return d["status"] == "ok" and d["history"][-1]["train_loss"] < d["history"][0]["train_loss"]
ok = eval("(" + sys.argv[3] + ")")
if not ok:
    print({k: d.get(k) for k in ("rows", "cols", "sse_svd", "status")}, c, notes)
sys.exit(0 if ok else 1)
PY
}

# refuse NAME PATTERN TASK ARGS...: exit 2 and the error line matches PATTERN
# (grep -E), one line.
refuse() {
  local name=$1 pattern=$2
  shift 2
  run "$@"
  local msg
  msg=$(grep '^dlab-gpu: error:' "$tmp/err")
  if [ "$rc" -ne 2 ]; then
    bad "$name: dlab-gpu $* -> exit $rc, expected 2: $(tail -n 2 "$tmp/err")"
  elif [ "$(grep -c '^dlab-gpu: error:' "$tmp/err")" -ne 1 ] || ! grep -Eq -- "$pattern" <<<"$msg"; then
    bad "$name: message '$msg' does not match '$pattern'"
  else
    ok
  fi
}

f() { printf "$2" >"$tmp/$1"; echo "$tmp/$1"; }

SSE=15.228833 # iris, rank 2, columns centred (numpy, float64)

# --- the field cases (tests/data/cases/README.md) ---------------------------
for c in c01_bom_nohdr.csv c01b_bom_hdr.csv c02_cr_only.csv c03_trailing_comma.csv \
  c15_quoted_comma_label.csv; do
  json "$c factorise" "d['rows'] == 150 and d['cols'] == 4 and sse($SSE) and not notes" \
    factorise --data "$cases/$c"
  json "$c mlp" "c['classes'] == 3 and c['features'] == 4 and trains() and not notes" \
    mlp --data "$cases/$c"
done
json "c03b factorise" "d['rows'] == 150 and d['cols'] == 4 and sse($SSE)" \
  factorise --data "$cases/c03b_trailing_comma_num.csv"
json "c04 auto" "d['rows'] == 60 and d['cols'] == 8 and len(notes) == 1
  and 'runs of spaces and tabs' in notes[0] and '--delimiter' in notes[0]
  and '--label-column' in notes[0]" factorise --data "$cases/c04_seeds_tab.txt"
json "c04 label last" "d['rows'] == 60 and d['cols'] == 7 and sse(22.919796)" \
  factorise --data "$cases/c04_seeds_tab.txt" --label-column last
json "c04 mlp" "c['classes'] == 3 and c['features'] == 7 and trains()" \
  mlp --data "$cases/c04_seeds_tab.txt" --label-column last
json "c04 space" "d['cols'] == 8 and len(notes) == 1 and '--delimiter' not in notes[0]" \
  factorise --data "$cases/c04_seeds_tab.txt" --delimiter space
refuse "c04 tab" "c04_seeds_tab.txt:4: ragged row: 15 fields, expected 8 .*tabs" \
  factorise --data "$cases/c04_seeds_tab.txt" --delimiter tab
json "c05" "d['rows'] == 150 and d['cols'] == 4 and sse($SSE) and not notes" \
  factorise --data "$cases/c05_sklearn_iris.csv" --header yes --label-column last
json "c05 mlp" "c['classes'] == 3 and trains()" \
  mlp --data "$cases/c05_sklearn_iris.csv" --header yes --label-column last
json "c05 auto" "d['rows'] == 150 and d['cols'] == 5 and len(notes) == 1
  and 'header' in notes[0] and '\"setosa\"' in notes[0] and '--header' in notes[0]" \
  factorise --data "$cases/c05_sklearn_iris.csv"
for l in target 5 last; do
  json "c05b mlp $l" "c['classes'] == 3 and c['features'] == 4 and trains() and not notes" \
    mlp --data "$cases/c05b_int_labels.csv" --label-column $l
  json "c05b factorise $l" "d['rows'] == 150 and d['cols'] == 4 and sse($SSE)" \
    factorise --data "$cases/c05b_int_labels.csv" --label-column $l
done
json "c05b auto" "d['cols'] == 5 and len(notes) == 1 and 'whole numbers: 0, 1, 2)' in notes[0]" \
  factorise --data "$cases/c05b_int_labels.csv"
refuse "c05b mlp auto" "c05b_int_labels.csv: the data has no label column.*--label-column" \
  mlp --data "$cases/c05b_int_labels.csv"
refuse "c16" "c16_hex_tokens.csv:1: column 5: not a number .*hexadecimal.*\"0x00\"" \
  factorise --data "$cases/c16_hex_tokens.csv"
json "c17" "c['train'] == 40 and c['validation'] == 20 and trains()" \
  mlp --data "$cases/c17_small60.csv"
json "c20" "d['rows'] == 6 and d['cols'] == 4 and not notes" \
  factorise --data "$cases/c20_number_formats.csv"
refuse "c19" "c19_na_tokens.csv:8: column 3: not a number .*\"NA\"" \
  factorise --data "$cases/c19_na_tokens.csv"

# --- --delimiter -------------------------------------------------------------
tr ',' ';' <"$iris" >"$tmp/iris_semi.csv"
tr ',' '\t' <"$iris" >"$tmp/iris.tsv"
tr ',' ' ' <"$iris" >"$tmp/iris_space.txt"
json "iris quiet" "d['rows'] == 150 and not notes" factorise --data "$iris"
json "; auto" "d['rows'] == 150 and d['cols'] == 4 and sse($SSE) and len(notes) == 1
  and \"separated by ';'\" in notes[0]" factorise --data "$tmp/iris_semi.csv"
json "; given" "sse($SSE) and not notes" factorise --data "$tmp/iris_semi.csv" --delimiter ';'
json "tab auto" "sse($SSE) and len(notes) == 1 and 'separated by tabs' in notes[0]" \
  factorise --data "$tmp/iris.tsv"
json "tab given" "sse($SSE) and not notes" factorise --data "$tmp/iris.tsv" --delimiter tab
json "space auto" "sse($SSE) and len(notes) == 1" factorise --data "$tmp/iris_space.txt"
json "space given" "sse($SSE) and not notes" factorise --data "$tmp/iris_space.txt" --delimiter space
json ", given" "sse($SSE) and not notes" factorise --data "$iris" --delimiter ,
refuse "; on a comma file" "iris.data:1: column 1: not a number" \
  factorise --data "$iris" --delimiter ';' --header no
refuse "--delimiter bogus" "--delimiter: unknown value 'pipe'" factorise --delimiter pipe
run factorise --data "$tmp/iris_semi.csv" --quiet
check "--quiet hides the note" test "$rc" -eq 0 -a "$(grep -c ': assumed ' "$tmp/err")" -eq 0

# --- --header ----------------------------------------------------------------
{ echo "0,1,2,3"; cut -d, -f1-4 "$iris"; } >"$tmp/pandas_numbered.csv"
json "numbered header" "d['rows'] == 150 and sse($SSE) and len(notes) == 1
  and 'column numbers' in notes[0] and '--header' in notes[0]" \
  factorise --data "$tmp/pandas_numbered.csv"
json "numbered header no" "d['rows'] == 151 and not notes" \
  factorise --data "$tmp/pandas_numbered.csv" --header no
json "header yes on iris" "d['rows'] == 149" factorise --data "$iris" --header yes
refuse "header no on names" "c01b_bom_hdr.csv:1: column 1: not a number: \"sepal_length\"" \
  factorise --data "$cases/c01b_bom_hdr.csv" --header no
refuse "--header maybe" "--header: unknown value 'maybe'" factorise --header maybe

# --- --label-column ------------------------------------------------------------
refuse "label none" "iris.data:1: column 5: not a number: \"Iris-setosa\"" \
  factorise --data "$iris" --label-column none
json "label name" "c['classes'] == 3 and c['features'] == 4" \
  mlp --data "$cases/c01b_bom_hdr.csv" --label-column species --epochs 5
json "label number" "c['classes'] == 3" mlp --data "$iris" --label-column 5 --epochs 5
refuse "label 0" "--label-column: column 0 is out of range" factorise --data "$iris" --label-column 0
refuse "label 6" "--label-column: column 6 is out of range: .* has 5 columns" \
  factorise --data "$iris" --label-column 6
refuse "label name, no header" "--label-column: 'species' is a name, but .*iris.data has no header row" \
  factorise --data "$iris" --label-column species
refuse "label unknown name" "--label-column: the header of .* has no column named 'kind'; the header names 'sepal_length', 'sepal_width', 'petal_length', 'petal_width', 'species'$" \
  factorise --data "$cases/c01b_bom_hdr.csv" --label-column kind
refuse "label empty" "--label-column: empty value" factorise --label-column ''

# --- --columns ----------------------------------------------------------------
{
  echo ",sepal_length,sepal_width,petal_length,petal_width,species"
  awk 'NF { print NR - 1 "," $0 }' "$iris"
} >"$tmp/pandas_index.csv"
json "index column kept" "d['rows'] == 150 and d['cols'] == 5" factorise --data "$tmp/pandas_index.csv"
json "columns 2-5" "d['cols'] == 4 and sse($SSE)" factorise --data "$tmp/pandas_index.csv" --columns 2-5
json "columns 2-" "d['cols'] == 4 and sse($SSE)" factorise --data "$tmp/pandas_index.csv" --columns 2-
json "columns names" "d['cols'] == 4 and sse($SSE)" factorise --data "$tmp/pandas_index.csv" \
  --columns petal_width,sepal_length,sepal_width,petal_length
json "columns mlp" "c['features'] == 2 and c['classes'] == 3" \
  mlp --data "$iris" --columns 3-4 --epochs 5
json "columns -2" "d['cols'] == 2" factorise --data "$iris" --columns -2
json "columns 1,3" "d['cols'] == 2" factorise --data "$iris" --columns 1,3
refuse "columns 9" "--columns: column 9 is out of range: the file has 5" \
  factorise --data "$iris" --columns 1-9
refuse "columns label" "--columns selects column 5, which is the label column" \
  factorise --data "$iris" --columns 1-5
refuse "columns label name" "--columns selects column 5, which is the label column" \
  factorise --data "$cases/c01b_bom_hdr.csv" --columns 1,species
json "columns open range" "c['features'] == 3 and c['classes'] == 3" mlp --data "$iris" --columns 2- --epochs 5
json "columns numeric last" "d['cols'] == 2" factorise --data "$cases/c05b_int_labels.csv" --columns 4-
json "columns without the codes" "d['cols'] == 4 and sse($SSE) and not notes" \
  factorise --data "$cases/c05b_int_labels.csv" --columns 1-4
refuse "columns name, no header" "--columns: 'petal' is not a column number, and the file has no header row" \
  factorise --data "$iris" --columns petal
refuse "columns unknown name" "--columns: the header has no column named 'petal'; the header names 'sepal_length', 'sepal_width'" \
  factorise --data "$cases/c01b_bom_hdr.csv" --columns petal
refuse "columns 3-1" "--columns: '3-1' is an empty range" factorise --data "$iris" --columns 3-1
refuse "columns 1,,2" "--columns: empty item in '1,,2'" factorise --data "$iris" --columns 1,,2
refuse "columns synthetic" "--columns describes a --data file, not --synthetic" \
  factorise --synthetic 20x5 --columns 1-2

# --- --train ---------------------------------------------------------------------
json "train default" "c['train'] == 100 and c['validation'] == 50" mlp --epochs 5
json "train 0.8" "c['train'] == 120 and c['validation'] == 30" mlp --train 0.8 --epochs 5
head -n 100 "$iris" >"$tmp/iris100.csv"
json "train 0.29 of 100" "c['train'] == 29" mlp --data "$tmp/iris100.csv" --train 0.29 --epochs 5
json "train 90" "c['train'] == 90 and c['validation'] == 60" mlp --train 90 --epochs 5
refuse "train 1.0" "--train: 1.0 is out of range \(a row count, or a fraction above 0 and below 1\)" \
  mlp --train 1.0
refuse "train 0.001" "--train 0.001 leaves no training rows: the data has 150 rows" mlp --train 0.001
refuse "train 0.999" "--train 0.999 leaves no validation rows: the data has 150 rows" mlp --train 0.999
refuse "train 60 of 60" "--train 60 leaves no validation rows: the data has 60 rows" \
  mlp --data "$cases/c17_small60.csv" --train 60
refuse "train x" "--train: expected a row count or a fraction in \\(0, 1\\), got '0.5x'" mlp --train 0.5x
refuse "train for factorise" "--train applies to --task mlp, not factorise" factorise --train 0.5

# --- formats ---------------------------------------------------------------------
json "quoting" "c['classes'] == 2 and c['features'] == 2" mlp --train 2 --epochs 3 --data \
  "$(f quoted.csv 'x,"y",label\n"1.5",2,"a, ""first"""\n3,"4e0","b\nsecond"\n5,6,"a, ""first"""\n')"
json "line ends" "d['rows'] == 4 and d['cols'] == 2" factorise --rank 1 --data \
  "$(f ends.csv '1,2\r\n3,4\r5,6\n7,8')"
json "numbers" "d['rows'] == 3 and d['cols'] == 4" factorise --data \
  "$(f numbers.csv '+1.4,.5,3.,1e-05\n-2, 1E0 ,"7",1e-40\n0,0e999,-0,5\n')"
refuse "misplaced quote" "misquote.csv:2: column 3: misplaced quote" factorise --data \
  "$(f misquote.csv '1,2,3\n4,5,6"\n')"
refuse "open quote" "open.csv:2: column 3: a quoted field is not closed" factorise --data \
  "$(f open.csv '1,2,3\n4,5,"6\n7,8,9\n')"
refuse "multi-line field line" "lines.csv:4: column 1: not a number: \"x\"" factorise --data \
  "$(f lines.csv '1,"a\nb"\n2,c\nx,d\n')" --label-column 2
refuse "CR-only line" "cr.csv:3: column 2: empty field" factorise --data "$(f cr.csv '1,2\r3,4\r5,\r')"
refuse "UTF-16" "u16.csv: UTF-16 text" factorise --data "$(f u16.csv '\377\376\061\000,\000\062\000')"
refuse "hex" "hex.csv:2: column 1: not a number .*hexadecimal" factorise --data "$(f hex.csv '1,2\n0x1A,3\n')"
refuse "inf" "inf.csv:1: column 2: NaN and Inf are not allowed: \"-Infinity\"" factorise --data \
  "$(f inf.csv '1,-Infinity\n2,3\n')"
refuse "nan" "nan.csv:2: column 2: NaN and Inf are not allowed" factorise --data "$(f nan.csv '1,2\n3,nan\n')"
refuse "missing" "miss.csv:2: column 1: not a number .*missing value.*\"\?\"" factorise --data \
  "$(f miss.csv '1,2\n?,3\n')"
refuse "word in a middle column" "mid.csv:1: column 2: not a number: \"red\"; if this column is the label, use --label-column 2$" \
  factorise --data "$(f mid.csv '1,red,3\n4,blue,6\n7,red,9\n')"
refuse "word in the last column, label none" "none.csv:1: column 3: not a number: \"a\"$" \
  factorise --data "$(f none.csv '1,2,a\n3,4,b\n')" --label-column none
# Comment lines at the top are skipped (as numpy.loadtxt does), blank ones
# among them too; line numbers still count them.
json "comment lines" "d['rows'] == 3 and d['cols'] == 3" factorise --rank 1 --data \
  "$(f comments.csv '# exported 2024, by hand\n  # x,y,z in cm\n\nx,y,z\n1,2,3\n4,5,7\n2,1,1\n')"
refuse "comment lines, line numbers" "commented.csv:4: column 2: not a number: \"q\"" factorise --data \
  "$(f commented.csv '# c\nx,y,z\n1,2,3\n4,q,7\n2,1,1\n')"
refuse "only comments" "onlyc.csv: no data rows \\(only comment lines starting with '#'\\)" \
  factorise --data "$(f onlyc.csv '# a\n# b\n')"
json "class codes listed" "len(notes) == 1 and 'whole numbers: 0, 1, 2, 3, 4, 5, 6, 7, ... (12 values)' in notes[0]" \
  factorise --rank 1 --data "$(f codes.csv "$(for i in $(seq 0 23); do printf '%d,%d,%d\\n' $((i * 7 % 5)) $((i * 3 % 11)) $((i % 12)); done)")"
refuse "underscore" "under.csv:2: column 1: not a number: \"1_000\"" factorise --data \
  "$(f under.csv '1,2\n1_000,2\n3,4\n')"
refuse "rounds to 0" "tiny.csv:2: column 2: number out of float range .*rounds to 0.*\"4e-50\"" \
  factorise --data "$(f tiny.csv '1,2\n3,4e-50\n')"
refuse "rounds to inf" "huge.csv:1: column 1: number out of float range .*\"1e39\"" \
  factorise --data "$(f huge.csv '1e39,2\n3,4\n')"
refuse "decimal comma" "dec.csv:1: column 1: not a number .*decimal comma.*\"5,1\"" \
  factorise --data "$(f dec.csv '5,1;3,5\n4,9;3,0\n')"
for i in $(seq 1 80); do echo "$i,$((i * i % 7)),"; done >"$tmp/trail.csv"
echo "5,6,9" >>"$tmp/trail.csv"
refuse "trailing column value" "trail.csv:81: column 3: \"9\" where the rows above end with an empty column" \
  factorise --data "$tmp/trail.csv"
refuse "empty last value" "empty3.csv:1: column 3: empty field" factorise --data \
  "$(f empty3.csv '1,2,\n3,4,\n5,6,9\n')"

# --- .npy --------------------------------------------------------------------------
if python3 "$make_npy" "$iris" "$tmp/npy" >"$tmp/npy.log" 2>&1; then
  ok
  for n in "$tmp"/npy/iris_*.npy "$tmp"/npy/numpy_*.npy; do
    [ -e "$n" ] || continue
    json "npy $(basename "$n")" "d['rows'] == 150 and d['cols'] == 4 and sse($SSE) and not notes" \
      factorise --data "$n"
  done
  json "npy columns" "d['cols'] == 2" factorise --data "$tmp/npy/iris_f4_c.npy" --columns 1,4
  refuse "npy int64" "bad_int64.npy: .npy dtype '<i8' is not read" factorise --data "$tmp/npy/bad_int64.npy"
  refuse "npy 1-D" "bad_1d.npy: .npy array of shape \(6,\) has 1 dimension" factorise --data "$tmp/npy/bad_1d.npy"
  refuse "npy 3-D" "bad_3d.npy: .npy array of shape \(2, 3, 4\) has 3 dimensions" \
    factorise --data "$tmp/npy/bad_3d.npy"
  refuse "npy truncated" "bad_truncated.npy: truncated .npy file: shape \(4, 3\) of float64 needs 96 bytes of data, 91" \
    factorise --data "$tmp/npy/bad_truncated.npy"
  refuse "npy truncated header" "bad_truncated_header.npy: truncated .npy file: the header says" \
    factorise --data "$tmp/npy/bad_truncated_header.npy"
  refuse "npy records" "bad_records.npy: a .npy array of records" factorise --data "$tmp/npy/bad_records.npy"
  refuse "npy NaN" "bad_nan.npy: row 2, column 2: NaN and Inf are not allowed" \
    factorise --data "$tmp/npy/bad_nan.npy"
  refuse "npy huge" "bad_huge.npy: row 2, column 1: number out of float range" \
    factorise --data "$tmp/npy/bad_huge.npy"
  refuse "npy extra" "bad_extra.npy: .npy file has 8 bytes after the data \\(shape \\(2, 2\\) of float32 needs 16 bytes" \
    factorise --data "$tmp/npy/bad_extra.npy"
  refuse "npy extra f8" "bad_extra_f8.npy: .npy file has 4 bytes after the data \\(shape \\(2, 2\\) of float64 needs 32 bytes" \
    factorise --data "$tmp/npy/bad_extra_f8.npy"
  refuse "npy version" "bad_version.npy: .npy format version 9.0 is not read" \
    factorise --data "$tmp/npy/bad_version.npy"
  refuse "npy mlp" "iris_f4_c.npy is a .npy array, which holds no class labels" \
    mlp --data "$tmp/npy/iris_f4_c.npy"
  refuse "npy label" "--label-column: .*iris_f4_c.npy is a .npy array, which has no label column" \
    factorise --data "$tmp/npy/iris_f4_c.npy" --label-column last
  cp "$tmp/npy/iris_f8_fortran.npy" "$tmp/npy/looks_like.csv"
  json "npy by magic, not name" "d['rows'] == 150 and sse($SSE)" factorise --data "$tmp/npy/looks_like.csv"
else
  bad "make_npy.py: $(cat "$tmp/npy.log")"
fi

# --- --help and README name every option ---------------------------------------------
"$bin" --help >"$tmp/help"
for o in "--delimiter D" "--header H" "--label-column L" "--columns LIST" "--train N|F"; do
  check "--help names ${o%% *}" grep -q -- "^  $o " "$tmp/help"
done

finish test_loader
