#!/usr/bin/env bash
# Installs, builds, and runs every test suite with ctest. GPU suites report
# "skipped" on machines without a GPU (scripts/gpu-check.sh runs them on one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
