#!/usr/bin/env bash
# Installs the Debian packages dlab-gpu builds against. Safe to run again:
# packages already present are left alone and nothing is downloaded for them.
# The CUDA toolkit is a prerequisite (it is large and comes from NVIDIA);
# this script only checks for it and says where it looked.
#
# Usage: bash scripts/setup.sh [--peer]
#   --peer  also install python3-torch (Debian's PyTorch, large), which
#           `dlab-bench --peer pytorch` times the lab's workloads in; without
#           it that comparison is skipped with a note.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev
      libplplot-dev plplot-driver-cairo libjansson-dev python3 python3-numpy
      python3-html5lib valgrind clang libclang-rt-14-dev clang-format libcsv-dev
      libopenmpi-dev openmpi-bin patch)

for arg in "$@"; do
  case "$arg" in
    --peer) pkgs+=(python3-torch) ;;
    *) echo "setup: unknown option '$arg' (usage: bash scripts/setup.sh [--peer])" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages already present" >&2
fi

nvcc_path=$(command -v nvcc || true)
[ -n "$nvcc_path" ] || for d in /usr/local/cuda/bin /usr/local/cuda-*/bin /opt/cuda/bin; do
  [ -x "$d/nvcc" ] && { nvcc_path="$d/nvcc"; break; }
done
if [ -z "$nvcc_path" ]; then
  echo "setup: the CUDA toolkit (nvcc) was not found on PATH, in /usr/local/cuda*/bin or /opt/cuda/bin;" >&2
  echo "setup: install the CUDA Toolkit (12.x or 13.x) from NVIDIA, then run this again." >&2
  exit 1
fi
echo "setup: CUDA toolkit: $nvcc_path" >&2
