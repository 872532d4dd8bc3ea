#!/usr/bin/env bash
# Three "hosts" on one machine: network namespaces joined by veth pairs and a bridge, each with
# its own hostname (so Open MPI sees three nodes and talks TCP, not shared memory), ranks launched
# by mpirun through a launch agent that enters the namespace. Checks:
#  1. training on 3 hosts writes params.h5 byte-identical to one rank;
#  2. a rank killed on a remote host ends the job in bounded time, naming the rank;
#  3. a link taken down mid-run (checkpointing often, so the cut may land in a parallel HDF5
#     write) ends the job in bounded time with exit 124 and a message naming what waited; the
#     last whole checkpoint then resumes on 1 rank to the params of an uninterrupted run.
# Needs root and iproute2 (CI has both); exits 77 (skipped) where namespaces cannot be made.
# Removes every namespace and link it made, by name, also on failure.
# usage: multihost.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
p="sr$$"  # names of this run's namespaces and links (interface names stay under 15 characters)
setup "$1" "$2" "${3:-mpirun}"

cleanup() { netns_teardown "$p" h 3; }
trap cleanup EXIT
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
  echo "skipped: needs root, iproute2 and unshare"; exit 77
fi
netns_wire "$p" h 10.77.0 3 || { echo "skipped: $netns_error"; exit 77; }
for i in 1 2 3; do
  # mpirun's own teardown over a dead link waits for TCP to give up on unacknowledged data
  # (about 15 minutes by default); these test hosts give up after about 6 s.
  ip netns exec "${p}h$i" sysctl -qw net.ipv4.tcp_retries2=4 2>/dev/null || true
done

# The launch agent: "run on host hN" = enter its namespace with hostname hN.
cat > agent.sh <<AGENT
#!/bin/sh
host=\$1; shift
exec ip netns exec "${p}\$host" unshare --uts sh -c "hostname \$host; \$*"
AGENT
chmod +x agent.sh
printf "h1 slots=1\nh2 slots=1\nh3 slots=1\n" > hosts
# mpirun on h1, TCP on the test subnet only; ranks yield when idle (3 hosts on 2 cores), and the
# daemons' connections probe a silent peer after 3 s, so that mpirun notices a dead link.
cluster() {
  ip netns exec "${p}h1" unshare --uts sh -c "hostname h1; exec $mpiexec --allow-run-as-root --hostfile $dir/hosts \
    --mca plm_rsh_agent $dir/agent.sh --mca plm_rsh_no_tree_spawn 1 --mca btl tcp,self \
    --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 --mca mpi_yield_when_idle 1 \
    --mca oob_tcp_keepalive_time 3 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 3 -np 3 $*"
}
"$bin" synth --out "$dir/d.h5" --users 3000 --items 800 --interactions 120000 --seed 2 >/dev/null || exit 1
train="train --data $dir/d.h5 --dim 16 --batch 512 --eval-every 0 --final-eval false --quiet"
# The job and its ranks end within `limit` seconds after `start`; sets rc and took.
wait_bounded() {
  local job=$1 limit=$2 start=$3
  for _ in $(seq $((limit * 10))); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$job" 2>/dev/null; then
    kill -9 "$job"; rc=hang
  else
    wait "$job"; rc=$?
  fi
  took=$(( $(date +%s) - start ))
}

# 1. Three hosts against one rank.
"$bin" $train --epochs 2 --run-dir "$dir/one" >/dev/null 2>&1 || { echo "FAIL: one-rank run"; exit 1; }
if ! timeout 120 bash -c "$(declare -f cluster); p=$p dir=$dir mpiexec=$mpiexec; cluster $bin $train --epochs 2 --run-dir $dir/three" \
     > three.log 2>&1; then
  echo "FAIL: training on 3 hosts:"; tail -5 three.log; exit 1
fi
if cmp -s one/params.h5 three/params.h5; then
  echo "ok   3 hosts over TCP: params.h5 byte-identical to 1 rank"
else
  echo "FAIL: params.h5 differs between 3 hosts and 1 rank"; fails=$((fails+1))
fi

# 2. A rank killed on host h3.
(cluster "$bin" $train --epochs 500 > killed.log 2>&1) &
job=$!
for _ in $(seq 300); do grep -q "epoch 1/" killed.log && break; sleep 0.1; done
victim=$(ip netns pids "${p}h3" | while read -r q; do [ "$(cat /proc/$q/comm 2>/dev/null)" = shardrec ] && echo $q; done | head -1)
if [ -z "$victim" ]; then echo "FAIL: no rank on h3"; fails=$((fails+1)); kill -9 $job; else
  start=$(date +%s); kill -9 "$victim"; wait_bounded $job 60 $start
  if [ "$rc" = hang ] || [ "$rc" = 0 ] || ! grep -qE "process rank 2|rank 2 " killed.log; then
    echo "FAIL: killed remote rank: exit $rc after ${took}s"; tail -5 killed.log; fails=$((fails+1))
  else
    echo "ok   remote rank killed: job ended in ${took}s (exit $rc), $(grep -m1 -oE 'process rank 2[^(]*' killed.log)"
  fi
fi
ip netns pids "${p}h2" | xargs -r kill -9; ip netns pids "${p}h3" | xargs -r kill -9

# 3. The link of h3 goes down mid-run; then a resume from the last whole checkpoint.
ckpt="--epochs 30 --run-dir $dir/cut --checkpoint-every 20 --keep-checkpoints 1000"
(cluster "$bin" $train $ckpt --comm-timeout 5 > cut.log 2>&1) &
job=$!
for _ in $(seq 300); do [ -n "$(ls cut/checkpoints 2>/dev/null)" ] && break; sleep 0.05; done
start=$(date +%s); ip link set "${p}v3" down; wait_bounded $job 60 $start
msg=$(grep -m1 "did not complete within 5 s" cut.log)
if [ "$rc" != 124 ] || [ -z "$msg" ]; then
  echo "FAIL: link down: exit $rc after ${took}s"; grep -v "^epoch" cut.log | tail -5; fails=$((fails+1))
else
  echo "ok   link down: job ended in ${took}s (exit 124): ${msg:0:150}"
fi
for i in 1 2 3; do ip netns pids "${p}h$i" | xargs -r kill -9; done
ip link set "${p}v3" up
whole_before=$(ls cut/checkpoints | grep -c 'h5$')
# On h1, where rank 0 ran: a run-directory lock left by a process that ended at once (the
# watchdog's exit inside a parallel HDF5 write) is taken over there, as after a SIGKILL.
ip netns exec "${p}h1" unshare --uts sh -c "hostname h1; exec $bin $train $ckpt --resume auto" > resumed.log 2>&1 ||
  { echo "FAIL: resume:"; tail -3 resumed.log; fails=$((fails+1)); }
"$bin" $train --epochs 30 --run-dir "$dir/whole" >/dev/null 2>&1
if cmp -s cut/params.h5 whole/params.h5; then
  echo "ok   resumed on 1 rank from the newest of the $whole_before whole checkpoints the cut left: params.h5 byte-identical to an uninterrupted run"
else
  echo "FAIL: the resumed run's params differ from an uninterrupted run"; fails=$((fails+1))
fi
finish "all multi-host cases ok"
