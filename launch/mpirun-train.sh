#!/usr/bin/env bash
# Train on N ranks of this machine or of a hostfile:
#   NP=4 [HOSTFILE=hosts] launch/mpirun-train.sh --data DATA.h5 --run-dir runs/x [train options]
# One rank per core is the usual layout; fewer ranks with train --threads T each (the same
# results) use the cores too, and --bind-to none then lets a rank's threads spread.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
np=${NP:-2}
args=(--oversubscribe -np "$np" --bind-to core)
# Across hosts: the daemons probe a silent peer after 30 s (Open MPI's default is 300 s, then 9
# probes 20 s apart), so that mpirun notices a dead host or link and ends the job; the ranks'
# own limit is train --comm-timeout (docs/operations.md, "Failures").
[ -n "${HOSTFILE:-}" ] && args+=(--hostfile "$HOSTFILE" --mca oob_tcp_keepalive_time 30 --mca oob_tcp_keepalive_intvl 5
                                 --mca oob_tcp_keepalive_probes 3)
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun "${args[@]}" "${SHARDREC:-$here/build/shardrec}" train "$@"
