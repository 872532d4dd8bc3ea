#!/usr/bin/env bash
# SLURM for real, on this machine: starts munged, slurmctld and slurmd with a generated one-node
# configuration (own key, socket, ports, state and log files under WORKDIR), submits
# launch/slurm-train.sbatch with sbatch, sends the job the time-limit warning (SIGUSR1 to the
# batch shell, what --signal=B:USR1@N delivers) once training runs, and checks that the job
# checkpointed, requeued itself, resumed from the checkpoint and completed with a params.h5
# byte-identical to an uninterrupted run; and that a job of one task with 2 cpus runs one rank
# with 2 threads and the 2-rank result. Stops the daemons it started, by pid.
# NODES=2: a two-node cluster instead. Each node is a network namespace joined to this one by a
# veth pair and a bridge, with its own address, hostname (a UTS namespace, so Open MPI sees two
# hosts) and slurmd (-N); slurmctld runs here on the bridge's address. A job of --nodes=2
# --ntasks-per-node=1 then trains across both over TCP, with mpirun and with srun, and
# checkpoints, requeues and resumes to the bytes of an uninterrupted run. The namespaces and
# links are removed by name, also on failure.
# Exit 77 (ctest: skipped, with the reason printed) when SLURM is not installed or will not start.
# usage: slurm.sh SHARDREC WORKDIR MPIEXEC SOURCE_DIR [NODES]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin=$1; dir=$2; mpiexec=${3:-mpiexec}; src=${4:-$(cd "$(dirname "$0")/.." && pwd)}; nodes=${5:-1}
skip() { echo "SKIP: $*"; exit 77; }
for tool in munged slurmctld slurmd sbatch scontrol scancel; do
  command -v "$tool" >/dev/null || skip "$tool not found (install the Debian packages slurm-wlm and munge; launch/install-deps.sh does when CI=true)"
done
[ "$(id -u)" -eq 0 ] || skip "the daemons of this test run as root"
rm -rf "$dir"; mkdir -p "$dir"/{state,spool,munge}; chmod 700 "$dir" "$dir/munge"; cd "$dir"
host=$(hostname -s)
pids=()
ns="sl$$"  # this run's namespaces and links (interface names stay under 15 characters)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  if [ "$nodes" = 2 ]; then
    netns_teardown "$ns" n 2
  fi
  return 0
}
trap cleanup EXIT
if [ "$nodes" = 2 ]; then
  for tool in ip nsenter unshare; do command -v "$tool" >/dev/null || skip "$tool not found (iproute2, util-linux)"; done
  netns_wire "$ns" n 10.78.0 2 || skip "$netns_error"
  ip addr add 10.78.0.254/24 dev "${ns}b" || skip "cannot give the bridge an address"
fi

# munge with its own key and socket, so that nothing of the system's setup is used or changed.
dd if=/dev/urandom of=munge/munge.key bs=1024 count=1 status=none; chmod 400 munge/munge.key
munged -F -f --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" >munge/munged.out 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S munge/munge.sock ] && break; sleep 0.1; done
[ -S munge/munge.sock ] || { cat munge/munged.log 2>/dev/null | tail -5; skip "munged did not start"; }

# Ports from the pid, away from the default 6817/6818 of a system SLURM.
port=$(( 20000 + ($$ % 20000) ))
if [ "$nodes" = 2 ]; then
  ctl="$host(10.78.0.254)"
  # Each node reads its own copy of this file with its own TmpFS (PMIx makes its directories
  # there, by job and step: on a shared /tmp the two nodes' would collide).
  node_lines="NodeName=n1 NodeAddr=10.78.0.1 CPUs=$(nproc) State=UNKNOWN
NodeName=n2 NodeAddr=10.78.0.2 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
DebugFlags=NO_CONF_HASH"
  spool=$dir/spool/%n
else
  ctl=$host
  node_lines="NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP"
  spool=$dir/spool
fi
cat > slurm.conf <<EOF
ClusterName=shardrectest
SlurmctldHost=$ctl
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it starts again (120 s by default).
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
$node_lines
EOF
export SLURM_CONF=$dir/slurm.conf
slurmctld -D -i -f "$SLURM_CONF" >slurmctld.out 2>&1 &
pids+=($!)
if [ "$nodes" = 2 ]; then
  names=(n1 n2)
  for i in 1 2; do
    mkdir -p "$dir/spool/n$i" "$dir/tmp-n$i"
    { cat slurm.conf; echo "TmpFS=$dir/tmp-n$i"; } > "slurm-n$i.conf"
    # nsenter enters the network namespace only (ip netns exec would remount /sys, and slurmd
    # needs the host's cgroup mounts); unshare --uts gives the node its hostname.
    nsenter --net="/run/netns/${ns}n$i" unshare --uts sh -c "hostname n$i; exec slurmd -D -f $dir/slurm-n$i.conf -N n$i" \
      >"slurmd-n$i.out" 2>&1 &
    pids+=($!)
  done
else
  names=("$host")
  slurmd -D -f "$SLURM_CONF" -N "$host" >slurmd.out 2>&1 &
  pids+=($!)
fi
for name in "${names[@]}"; do
  state=""
  for _ in $(seq 100); do
    state=$(scontrol show node "$name" 2>/dev/null | grep -o 'State=[A-Z+_]*' | head -1)
    [[ $state == State=IDLE* ]] && break; sleep 0.3
  done
  if [[ $state != State=IDLE* ]]; then
    tail -5 slurmctld.log slurmd-*.log 2>/dev/null
    skip "slurmctld/slurmd did not bring node $name up (state '${state:-none}')"
  fi
done
echo "ok   munged, slurmctld and slurmd up (pids ${pids[*]}), node(s) ${names[*]} idle"

fails=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin" synth --out data.h5 --users 4000 --items 1500 --interactions 160000 >/dev/null || exit 1
args=(--data "$dir/data.h5" --epochs 4 --batch 1024 --dim 16 --eval-every 1 --patience 3 --final-eval false)
"$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --run-dir ref --quiet >ref.log 2>&1 || { cat ref.log; exit 1; }
if [ "$nodes" = 2 ]; then
  # One task a node; Open MPI over TCP on the nodes' subnet only (sbatch --export=ALL passes
  # these on), and ranks that yield when idle (two "hosts" share this machine's cores).
  res=(--nodes=2 --ntasks-per-node=1)
  export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=10.78.0.0/24 OMPI_MCA_oob_tcp_if_include=10.78.0.0/24 \
    OMPI_MCA_mpi_yield_when_idle=1
  got=$(srun -N2 --ntasks-per-node=1 hostname 2>&1 | sort | tr '\n' ' ')
  [ "$got" = "n1 n2 " ] && ok "srun -N2 hostname: $got" || bad "srun -N2 hostname: $got"
else
  res=(--ntasks=2)
fi

# One job per launcher: checkpoint on the warning signal, requeue, resume, complete. The mpirun
# job is submitted with sbatch directly, the srun job through launch/slurm-submit.sh.
job() {
  local launcher=$1 run=$dir/run-$1 id log jstate="" restarts
  if [ "$launcher" = mpirun ]; then
    id=$(sbatch --parsable -J "shardrec-$launcher" -o "$dir/job-%j.log" "${res[@]}" --time=10 \
           --export=ALL,SHARDREC="$bin",SHARDREC_LAUNCHER="$launcher" \
           "$src/launch/slurm-train.sbatch" "${args[@]}" --run-dir "$run" --checkpoint-every 40) \
      || { tail -5 slurmctld.log; echo "FAIL: sbatch"; fails=$((fails+1)); return; }
    log=$dir/job-$id.log
  else
    cat > job.conf <<EOF
job-name = shardrec-srun
$([ "$nodes" = 2 ] && printf 'nodes = 2\nntasks-per-node = 1' || echo "ntasks = 2")
time = 10
launcher = srun
srun-mpi = pmix
signal-before = 60
log-dir = $dir/logs
shardrec = $bin
train-args = ${args[*]} --run-dir $run --checkpoint-every 40
EOF
    id=$(bash "$src/launch/slurm-submit.sh" job.conf | grep -o '[0-9]*$') \
      || { tail -5 slurmctld.log; echo "FAIL: slurm-submit.sh"; fails=$((fails+1)); return; }
    local want_res="^#SBATCH --ntasks=2$"; [ "$nodes" = 2 ] && want_res="^#SBATCH --nodes=2$"
    grep -q "^#SBATCH --signal=B:USR1@60$" logs/shardrec-srun.sbatch && grep -q "$want_res" logs/shardrec-srun.sbatch \
      && echo "ok   slurm-submit.sh filled the template (logs/shardrec-srun.sbatch)" \
      || { echo "FAIL: slurm-submit.sh did not fill the template"; fails=$((fails+1)); }
    log=$dir/logs/shardrec-srun-$id.log
  fi
  echo "ok   $launcher: submitted job $id"
  for _ in $(seq 600); do grep -q "epoch 1/" "$log" 2>/dev/null && break; sleep 0.1; done
  if ! grep -q "epoch 1/" "$log" 2>/dev/null; then
    echo "FAIL: job $id did not start training"; tail "$log" 2>/dev/null; tail -5 slurmctld.log; fails=$((fails+1))
    scancel "$id"; return
  fi
  # What --signal=B:USR1@N sends before the time limit.
  scancel --signal=USR1 --batch "$id"
  for _ in $(seq 900); do
    jstate=$(scontrol show job "$id" 2>/dev/null | grep -o 'JobState=[A-Z_]*')
    [ "$jstate" = JobState=COMPLETED ] || [ "$jstate" = JobState=FAILED ] || [ "$jstate" = JobState=CANCELLED ] && break
    sleep 0.2
  done
  restarts=$(scontrol show job "$id" | grep -o 'Restarts=[0-9]*')
  if [ "$jstate" = JobState=COMPLETED ] && [ "$restarts" = Restarts=1 ]; then
    echo "ok   $launcher: job $id completed after one requeue ($restarts)"
  else
    echo "FAIL: job $id ended as '${jstate:-?}' with ${restarts:-?} (expected COMPLETED, Restarts=1)"; fails=$((fails+1))
    scancel "$id" 2>/dev/null
  fi
  local want
  local where="run 2 on"; [ "$nodes" = 2 ] && where="run 2 on n\\[1-2\\] (2 tasks"
  for want in "SIGUSR1: time limit near" "stopped by SIGUSR1" "requeueing job $id" "$where" "resumed from $run/checkpoints/ckpt-"; do
    grep -q "$want" "$log" && echo "ok   $launcher: log: $(grep -m1 -o "$want.*" "$log" | cut -c1-110)" \
      || { echo "FAIL: the job log lacks '$want'"; fails=$((fails+1)); }
  done
  if cmp -s ref/params.h5 "$run/params.h5"; then
    echo "ok   $launcher: params.h5 of the requeued job is byte-identical to an uninterrupted run's"
  else
    echo "FAIL: params.h5 of job $id differs from the uninterrupted run's"; fails=$((fails+1)); tail -30 "$log"
  fi
}
job mpirun ""
if srun --mpi=list 2>&1 | grep -q pmix; then
  job srun
else
  echo "SKIP srun launcher: this SLURM has no pmix plugin for OpenMPI ranks"
fi
[ "$nodes" = 2 ] && finish "all two-node slurm cases ok"
# One rank with the node's cores (--ntasks=1 --cpus-per-task=2): the script gives it as many
# threads, and the result is the 2-rank run's.
threaded() {
  local launcher=$1 run=$dir/run-threads-$1 id jstate="" env="ALL,SHARDREC=$bin,SHARDREC_LAUNCHER=$1${2:+,SHARDREC_SRUN_MPI=$2}"
  id=$(sbatch --parsable -J "shardrec-threads-$launcher" -o "$dir/job-%j.log" --ntasks=1 --cpus-per-task=2 --time=10 \
         --export="$env" \
         "$src/launch/slurm-train.sbatch" "${args[@]}" --run-dir "$run") \
    || { tail -5 slurmctld.log; bad "sbatch (threads, $launcher)"; return; }
  for _ in $(seq 900); do
    jstate=$(scontrol show job "$id" 2>/dev/null | grep -o 'JobState=[A-Z_]*')
    case $jstate in JobState=COMPLETED|JobState=FAILED|JobState=CANCELLED) break ;; esac
    sleep 0.2
  done
  if [ "$jstate" = JobState=COMPLETED ] && grep -q "on 1 rank(s) x 2 thread(s)" "$dir/job-$id.log" && cmp -s ref/params.h5 "$run/params.h5"; then
    ok "$launcher: 1 task x 2 cpus ran 1 rank x 2 threads, params.h5 byte-identical to 2 ranks'"
  else
    bad "threads job $id ($launcher) ended as '${jstate:-?}'"; grep -m1 "^data " "$dir/job-$id.log"; tail -5 "$dir/job-$id.log"
  fi
}
threaded mpirun
if srun --mpi=list 2>&1 | grep -q pmix; then threaded srun pmix; fi
# Opt-in (a few minutes): a job that runs into real 1-minute time limits. SLURM sends SIGUSR1
# 30 s before each (give or take its scheduling resolution); every run checkpoints and requeues
# until training is done.
if [ "${SHARDREC_SLURM_TIME_LIMIT:-}" = 1 ]; then
  long=(--data "$dir/data.h5" --epochs 40 --batch 1024 --dim 16 --eval-every 0 --final-eval false)
  "$mpiexec" --oversubscribe -np 2 "$bin" train "${long[@]}" --run-dir ref-long --quiet >ref-long.log 2>&1 || { cat ref-long.log; exit 1; }
  id=$(sbatch --parsable -J shardrec-limit -o "$dir/job-%j.log" --ntasks=2 --time=1 --signal=B:USR1@30 \
         --export=ALL,SHARDREC="$bin",SHARDREC_LAUNCHER=mpirun \
         "$src/launch/slurm-train.sbatch" "${long[@]}" --run-dir "$dir/run-limit")
  jstate=""
  for _ in $(seq 3000); do
    jstate=$(scontrol show job "$id" 2>/dev/null | grep -o 'JobState=[A-Z_]*')
    case $jstate in JobState=COMPLETED|JobState=FAILED|JobState=CANCELLED|JobState=TIMEOUT) break ;; esac
    sleep 0.2
  done
  restarts=$(scontrol show job "$id" | grep -o 'Restarts=[0-9]*')
  if [ "$jstate" = JobState=COMPLETED ] && [ "${restarts#Restarts=}" -ge 1 ] && cmp -s ref-long/params.h5 run-limit/params.h5; then
    echo "ok   time limit: job $id completed after ${restarts#Restarts=} requeues at real 1-minute limits, params.h5 byte-identical"
  else
    echo "FAIL: time-limit job $id ended as '${jstate:-?}' with ${restarts:-?}"; fails=$((fails+1)); tail -20 "$dir/job-$id.log"
  fi
fi
finish "all slurm cases ok"
