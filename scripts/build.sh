#!/usr/bin/env bash
# Installs the build's Debian packages (scripts/setup.sh), then configures and
# builds into build/ (Release; CUDA kernels for sm_90 unless
# CMAKE_CUDA_ARCHITECTURES says otherwise). With CI set in the environment
# (CI runs `CI=true bash .ci/run`) warnings are errors. Extra arguments go to
# cmake and win over these.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
werror=OFF
[ -n "${CI:-}" ] && werror=ON
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDLAB_WERROR="$werror" "$@" >/dev/null
cmake --build build -j"$(nproc)"
