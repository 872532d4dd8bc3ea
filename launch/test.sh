#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit, MPI with 1-4 ranks,
# end to end). This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install-deps.sh
# The CUDA backend is compiled (and its cases skipped without a GPU) wherever the toolkit is,
# so that CI catches a CUDA build break on a machine without a GPU.
cuda=()
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then cuda=(-DSHARDREC_CUDA=ON); fi
bash launch/build.sh "${cuda[@]}"
# mpiexec as root (containers, CI) needs these; harmless otherwise.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd build
ctest --output-on-failure -j"${JOBS:-$(nproc)}" --timeout 600
