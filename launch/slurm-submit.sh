#!/usr/bin/env bash
# Fills launch/slurm-train.sbatch from a job file and submits it with sbatch:
#   launch/slurm-submit.sh JOB.conf [--dry-run]      (example: launch/configs/slurm-example.conf)
# JOB.conf holds "key = value" lines ('#' starts a comment):
#   job-name, nodes, ntasks-per-node, ntasks, time, partition, signal-before (seconds before the
#   time limit at which the ranks checkpoint and the job requeues), log-dir (one log per job:
#   LOG_DIR/NAME-JOBID.log, appended to across requeues), launcher (srun or mpirun), srun-mpi
#   (srun's --mpi plugin, e.g. pmix), shardrec (the binary), train-config (a shardrec --config
#   file), train-args (further shardrec train options; --run-dir is required).
# The filled script is written to LOG_DIR/NAME.sbatch; --dry-run stops there and prints its path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
die() { echo "slurm-submit: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: slurm-submit.sh JOB.conf [--dry-run]"
conf=$1; dry=${2:-}
[ -r "$conf" ] || die "$conf: cannot be read"
declare -A v=([job-name]=shardrec [time]=04:00:00 [signal-before]=300 [log-dir]=logs [launcher]=srun)
n=0
while IFS= read -r line || [ -n "$line" ]; do
  n=$((n + 1))
  line=${line%%#*}
  [[ $line =~ ^[[:space:]]*$ ]] && continue
  [[ $line =~ ^[[:space:]]*([a-z-]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])?[[:space:]]*$ ]] \
    || die "$conf:$n: expected 'key = value'"
  key=${BASH_REMATCH[1]}; val=${BASH_REMATCH[2]:-}
  case $key in
    job-name|nodes|ntasks-per-node|ntasks|time|partition|signal-before|log-dir|launcher|srun-mpi|shardrec|train-config|train-args) v[$key]=$val ;;
    *) die "$conf:$n: unknown key '$key'" ;;
  esac
done < "$conf"
[[ ${v[signal-before]} =~ ^[0-9]+$ ]] || die "$conf: signal-before must be a number of seconds"
[[ ${v[launcher]} == srun || ${v[launcher]} == mpirun ]] || die "$conf: launcher must be srun or mpirun"
[[ ${v[job-name]} =~ ^[A-Za-z0-9._-]+$ ]] || die "$conf: job-name may hold letters, digits, '.', '_' and '-' only"
[[ " ${v[train-args]:-} " == *" --run-dir "* ]] || die "$conf: train-args needs --run-dir (checkpoints live there)"
[[ " ${v[train-args]:-} " == *" --resume "* ]] && die "$conf: no --resume in train-args (the job adds --resume auto)"
# Paths are relative to the directory sbatch is run from, as sbatch's own are.
[ -z "${v[train-config]:-}" ] || [ -r "${v[train-config]}" ] || die "$conf: train-config ${v[train-config]}: cannot be read (paths are relative to $PWD)"
mkdir -p "${v[log-dir]}"
log_dir=$(cd "${v[log-dir]}" && pwd)
out=$log_dir/${v[job-name]}.sbatch
{
  # The template with this job's #SBATCH values, and its environment settings up front.
  while IFS= read -r line; do
    case $line in
      "#SBATCH --job-name="*) echo "#SBATCH --job-name=${v[job-name]}" ;;
      "#SBATCH --output="*) echo "#SBATCH --output=$log_dir/%x-%j.log" ;;
      "#SBATCH --time="*)
        echo "#SBATCH --time=${v[time]}"
        [ -n "${v[nodes]:-}" ] && echo "#SBATCH --nodes=${v[nodes]}"
        [ -n "${v[ntasks-per-node]:-}" ] && echo "#SBATCH --ntasks-per-node=${v[ntasks-per-node]}"
        [ -n "${v[ntasks]:-}" ] && echo "#SBATCH --ntasks=${v[ntasks]}"
        [ -n "${v[partition]:-}" ] && echo "#SBATCH --partition=${v[partition]}"
        ;;
      "#SBATCH --signal="*) echo "#SBATCH --signal=B:USR1@${v[signal-before]}" ;;
      "set -uo pipefail")
        echo "$line"
        echo "# Filled by launch/slurm-submit.sh from $(cd "$(dirname "$conf")" && pwd)/$(basename "$conf")"
        echo "export SHARDREC_LAUNCHER=\${SHARDREC_LAUNCHER:-${v[launcher]}}"
        [ -n "${v[srun-mpi]:-}" ] && echo "export SHARDREC_SRUN_MPI=\${SHARDREC_SRUN_MPI:-${v[srun-mpi]}}"
        [ -n "${v[shardrec]:-}" ] && echo "export SHARDREC=\${SHARDREC:-$(realpath -m "${v[shardrec]}")}"
        ;;
      *) echo "$line" ;;
    esac
  done < "$here/slurm-train.sbatch"
} > "$out.tmp"
mv "$out.tmp" "$out"
chmod +x "$out"
args=()
[ -n "${v[train-config]:-}" ] && args+=(--config "$(realpath "${v[train-config]}")")
read -r -a extra <<< "${v[train-args]:-}"
args+=("${extra[@]}")
if [ "$dry" = "--dry-run" ]; then
  echo "$out"
  echo "sbatch $out ${args[*]}" >&2
  exit 0
fi
sbatch "$out" "${args[@]}"
