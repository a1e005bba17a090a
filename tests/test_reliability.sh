#!/usr/bin/env bash
# Faults and interruptions: a problem too large for memory is refused before
# anything is allocated; an allocation that fails mid-way exits 1 cleanly;
# Ctrl-C stops training, keeps and reports what was done, exits 130 (SIGTERM
# the same with 143); a second one exits at once without a partial file.
# usage: test_reliability.sh path/to/dlab-gpu
set -u
bin=$1
source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"

# Too large: refused up front with the size needed and what is free.
"$bin" --task factorise --synthetic 1000000x1000000 --device cpu >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -Eq "needs [0-9.]+ GiB of cpu memory, but only [0-9.]+ GiB of [0-9.]+ GiB is free" "$tmp/err"; then ok
else bad "huge problem: exit $rc, $(cat "$tmp/err")"; fi

# An allocation failing during the run (address space capped below what the
# run needs, above what the program needs to start): exit 1, one line.
# AddressSanitizer reserves terabytes of shadow memory and cannot start
# under such a cap, so the sanitizer build skips this case.
if [ -n "${ASAN_OPTIONS:-}" ]; then
  echo "skipped under AddressSanitizer: the allocation-failure case"
else
(ulimit -v $((3000 * 1024)); exec "$bin" --task factorise --synthetic 20000x20000 --rank 2 --no-svd \
  --device cpu --epochs 1) >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -q "out of host memory allocating" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ]; then ok
else bad "allocation failure: exit $rc, $(cat "$tmp/err")"; fi
fi

# stop_run SIG: a long factorisation stopped by SIG after 1.5 s; $rc is its
# status, $tmp/json its report and $tmp/err its messages.
stop_run() {
  "$bin" --task factorise --synthetic 1000x300 --rank 8 --lr 1e-6 --epochs 100000000 --no-svd \
    --device cpu --json >"$tmp/json" 2>"$tmp/err" &
  local pid=$!
  sleep 1.5
  kill "-$1" "$pid"
  wait "$pid"
  rc=$?
}

# Ctrl-C: stops at the end of the current chunk of epochs, reports what was
# done (status "interrupted"), exits 130.
stop_run INT
if [ $rc -eq 130 ] && python3 - "$tmp/json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "interrupted", d["status"]
assert 0 < d["epochs_run"] < d["epochs"], d["epochs_run"]
assert len(d["loss_history"]) == d["epochs_run"]
assert d["sse_gd"] is not None and d["sse_gd"] > 0
PY
then ok; else bad "SIGINT: exit $rc, $(tail -n 2 "$tmp/err")"; fi
grep -Eq "interrupted after epoch [0-9]+ of 100000000" "$tmp/err" && ok || bad "SIGINT message: $(cat "$tmp/err")"

# A second Ctrl-C leaves at once, also with 130.
"$bin" --task factorise --synthetic 1000x300 --rank 8 --lr 1e-6 --epochs 100000000 --no-svd \
  --device cpu >/dev/null 2>&1 &
pid=$!
sleep 1
kill -INT $pid
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] && ok || bad "double SIGINT: exit $rc"

# Two stop signals at once during training (two of a kind could merge into
# one): the run leaves at once saying so, and no file was being written;
# the --out directory it made for results that never came is gone.
"$bin" --task factorise --synthetic 1000x300 --rank 8 --lr 1e-6 --epochs 100000000 --no-svd \
  --device cpu --out "$tmp/never/made" >/dev/null 2>"$tmp/err" &
pid=$!
sleep 1
kill -TERM $pid
kill -INT $pid
wait $pid
rc=$?
{ [ $rc -eq 130 ] || [ $rc -eq 143 ]; } && [ "$(cat "$tmp/err")" = "dlab-gpu: stopped at once" ] &&
  [ ! -e "$tmp/never" ] && ok \
  || bad "two signals during training: exit $rc, '$(cat "$tmp/err")', $(ls -d "$tmp"/never* 2>&1)"

# SIGTERM (a scheduler, timeout) stops like the first Ctrl-C, with 143.
stop_run TERM
if [ $rc -eq 143 ] && python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); assert d["status"] == "interrupted" and 0 < d["epochs_run"] < d["epochs"], d' "$tmp/json"
then ok; else bad "SIGTERM: exit $rc, $(tail -n 2 "$tmp/err")"; fi

# A second Ctrl-C while the files are written: exit 130 at once, saying so,
# and the temporary file it was writing is gone, so that nothing hidden is
# left in DIR. The second signal is sent as soon as a temporary file shows.
if python3 - "$bin" "$tmp/w2" <<'PY'
import os, signal, subprocess, sys, time
bin, d = sys.argv[1], sys.argv[2]
p = subprocess.Popen([bin, "--task", "factorise", "--device", "cpu", "--synthetic", "200x50",
                      "--seeds", "32", "--lr", "1e-4", "--epochs", "500000", "--out", d],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
time.sleep(1.5)
p.send_signal(signal.SIGINT)
seen = None
while seen is None and p.poll() is None:
    try:
        seen = next((n for n in os.listdir(d) if ".tmp-" in n), None)
    except FileNotFoundError:
        pass
assert seen, "no temporary file was seen before the run ended"
p.send_signal(signal.SIGINT)
_, err = p.communicate(timeout=60)
assert p.returncode == 130, (p.returncode, err)
assert b"stopped at once" in err, err
# When no result was complete yet, the directory the run made went with
# the file being written: it is never left empty.
left = [n for n in os.listdir(d) if ".tmp-" in n] if os.path.isdir(d) else []
assert not left, (seen, left)
assert not os.path.isdir(d) or os.listdir(d), "an empty directory was left"
PY
then ok; else bad "second SIGINT while writing"; fi

# A history too large for the host's memory: the size needed and what is free.
if [ -n "${ASAN_OPTIONS:-}" ]; then
  echo "skipped under AddressSanitizer: the host-memory case"
else
"$bin" --task mlp --seeds 100000 --epochs 100000000 --device cpu >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && grep -Eq "history of 100000000 epochs.*needs [0-9.]+ GiB, but only [0-9.]+ GiB of [0-9.]+ GiB is free" "$tmp/err"; then ok
else bad "mlp history too large: exit $rc, $(cat "$tmp/err")"; fi
fi

finish test_reliability
