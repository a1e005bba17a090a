#!/usr/bin/env bash
# The CUDA backend without a GPU: configures, builds and tests the cuda-emu
# preset (the CUDA host code and kernels/ run on the CPU through the
# emulator in tests/cuda_emu; docs/CUDA_EMU.md), then the same under
# AddressSanitizer + UndefinedBehaviorSanitizer (cuda-emu-asan). Each ctest
# runs the tests labelled cuda-emu: the _cuda suites, the emulator's checks
# and, in the plain build, the mutation tests.
# usage: scripts/cuda-emu.sh [plain|asan]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
case ${1:-both} in
plain) presets=(cuda-emu) ;;
asan) presets=(cuda-emu-asan) ;;
both) presets=(cuda-emu cuda-emu-asan) ;;
*) echo "usage: $0 [plain|asan]" >&2; exit 2 ;;
esac
for preset in "${presets[@]}"; do
  start=$SECONDS
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j"$jobs"
  ctest --preset "$preset" -j"$jobs"
  echo "cuda-emu: $preset built and tested in $((SECONDS - start))s"
done
