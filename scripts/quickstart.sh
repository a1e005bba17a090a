#!/usr/bin/env bash
# Installs, builds, and runs the main job: the iris factorisation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec ./build/dlab-gpu --task factorise "$@"
