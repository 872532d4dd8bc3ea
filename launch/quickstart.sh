#!/usr/bin/env bash
# The main job on its embedded default: installs what is missing, builds, makes a synthetic
# dataset, trains MF-BPR with its tables sharded over 2 MPI ranks and prints the metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install-deps.sh
bash launch/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p runs
[ -f runs/synthetic.h5 ] || ./build/shardrec synth --config launch/configs/synth-default.ini --out runs/synthetic.h5
mpirun --oversubscribe -np "${NP:-2}" ./build/shardrec train --config launch/configs/mf-bpr-default.ini \
  --data runs/synthetic.h5 --run-dir runs/quickstart
echo "run directory: runs/quickstart (config.ini, metrics.jsonl, result.json, params.h5)"
