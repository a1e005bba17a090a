#!/usr/bin/env bash
# Fuzzes the data loader with libFuzzer (clang, AddressSanitizer and
# UndefinedBehaviorSanitizer) for a bounded time, starting from the kept
# corpus in tests/fuzz/corpus. New inputs that reach new code are written to
# build-fuzz/corpus; crashing inputs to build-fuzz/ (add them to the kept
# corpus once fixed).
# usage: scripts/fuzz.sh [SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cc=$(command -v clang || command -v clang-14 || true)
[ -n "$cc" ] || { echo "fuzz: clang not found (install clang and libclang-rt-14-dev)" >&2; exit 1; }
[ -f /usr/include/csv.h ] || { echo "fuzz: libcsv not found (install libcsv-dev)" >&2; exit 1; }
mkdir -p build-fuzz/corpus
"$cc" -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Iinclude tests/fuzz_data.c host/data/data.c host/data/data_layout.c host/data/data_number.c host/data/npy.c host/dist/comm.c host/core/status.c \
  -o build-fuzz/fuzz_data -lcsv -lm
cd build-fuzz
./fuzz_data -max_total_time="$secs" -max_len=4096 -timeout=5 -print_final_stats=1 \
  corpus ../tests/fuzz/corpus 2>&1 | tee fuzz.log | grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY" || true
if grep -q "ERROR: " fuzz.log; then
  echo "fuzz: the fuzzer found a failure; see build-fuzz/fuzz.log and the crash-* file" >&2
  exit 1
fi
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' fuzz.log | grep -o '[0-9]*$' || echo 0)
echo "fuzz: ${secs}s, ${runs} executions, no failures"
