#!/usr/bin/env bash
# Train on N ranks of this machine or of a hostfile:
#   NP=4 [HOSTFILE=hosts] launch/mpirun-train.sh --data DATA.h5 --run-dir runs/x [train options]
# One rank per core is the usual layout: each rank is single-threaded.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
np=${NP:-2}
args=(--oversubscribe -np "$np" --bind-to core)
[ -n "${HOSTFILE:-}" ] && args+=(--hostfile "$HOSTFILE")
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun "${args[@]}" "${SHARDREC:-$here/build/shardrec}" train "$@"
