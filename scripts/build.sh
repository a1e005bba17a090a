#!/usr/bin/env bash
# Installs the build's Debian packages (scripts/setup.sh), then configures and
# builds into build/ (Release; CUDA kernels for sm_90 unless
# CMAKE_CUDA_ARCHITECTURES says otherwise). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
