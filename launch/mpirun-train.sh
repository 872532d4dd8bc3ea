#!/usr/bin/env bash
# Train on N ranks of this machine or of a hostfile:
#   NP=4 [THREADS=T] [HOSTFILE=hosts] launch/mpirun-train.sh --data DATA.h5 --run-dir runs/x [train options]
# One rank per core is the default layout. THREADS=T gives each rank T cores of its own (mpirun
# --map-by slot:PE=T) and T threads (train --threads T; do not pass --threads too): one rank per
# node with all its cores is the layout that moves the fewest bytes, with the same results.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
np=${NP:-2}
threads=${THREADS:-1}
args=(--oversubscribe -np "$np" --bind-to core)
[ "$threads" -gt 1 ] && args+=(--map-by "slot:PE=$threads")
# Across hosts: the daemons probe a silent peer after 30 s (Open MPI's default is 300 s, then 9
# probes 20 s apart), so that mpirun notices a dead host or link and ends the job; the ranks'
# own limit is train --comm-timeout (docs/operations.md, "Failures").
[ -n "${HOSTFILE:-}" ] && args+=(--hostfile "$HOSTFILE" --mca oob_tcp_keepalive_time 30 --mca oob_tcp_keepalive_intvl 5
                                 --mca oob_tcp_keepalive_probes 3)
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
extra=()
[ "$threads" -gt 1 ] && extra=(--threads "$threads")
exec mpirun "${args[@]}" "${SHARDREC:-$here/build/shardrec}" train "${extra[@]}" "$@"
