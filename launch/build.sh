#!/usr/bin/env bash
# Configures and builds shardrec into ./build (Release). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
# The CUDA backend builds when nvcc is found and a GPU is visible (SHARDREC_CUDA=AUTO), or with
# -DSHARDREC_CUDA=ON; the toolkit's usual place may be missing from a non-login shell's PATH.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$jobs"
