#!/usr/bin/env bash
# Failures under MPI end the job in bounded time with a message naming what failed:
#  - a rank killed with SIGKILL mid-training: mpirun ends the others and names the rank;
#  - a rank that stops answering (SIGSTOP: a hung process or a host gone quiet): the others give
#    up after --comm-timeout with exit 124, naming the collective and the step;
#  - a diverging run (NaN/Inf loss): every rank stops with the epoch, step and rank named.
# usage: failures.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
"$bin" synth --out "$dir/failures-data.h5" --users 20000 --items 5000 --interactions 800000 >/dev/null || exit 1

# 1. Kill one of 3 ranks after training has started; the job must end within 60 s.
"$mpiexec" --oversubscribe -np 3 "$bin" train --data "$dir/failures-data.h5" --epochs 50 --eval-every 0 --final-eval false \
  --optimizer sgd --lr 100 > killed.log 2>&1 &
job=$!
for _ in $(seq 100); do grep -q "epoch 1/" killed.log && break; sleep 0.2; done
victim=$(pgrep -f "$bin train --data $dir/failures-data.h5" | tail -n 1)
[ -n "$victim" ] || { echo "FAIL: no rank to kill"; exit 1; }
start=$(date +%s)
kill -9 "$victim"
for _ in $(seq 600); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$job" 2>/dev/null; then
  echo "FAIL: the job still runs 60 s after a rank was killed"; kill -9 "$job"; pkill -9 -f "$bin train --data $dir/failures-data.h5"; fails=$((fails+1))
else
  wait "$job"; rc=$?
  took=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then echo "FAIL: exit 0 after a rank was killed"; fails=$((fails+1)); fi
  if ! grep -qE "rank [0-9]+ .*(exited|killed|signal)|process rank [0-9]+" killed.log; then
    echo "FAIL: the message does not name the failed rank:"; tail -5 killed.log; fails=$((fails+1))
  else
    echo "ok   killed rank: job ended in ${took}s (exit $rc): $(grep -m1 -E 'process rank' killed.log)"
  fi
fi

# 2. Freeze one of 3 ranks: it neither fails nor exits, so only the timeout ends the job.
"$mpiexec" --oversubscribe -np 3 "$bin" train --data "$dir/failures-data.h5" --epochs 50 --eval-every 0 --final-eval false \
  --optimizer sgd --lr 100 --comm-timeout 3 > frozen.log 2>&1 &
job=$!
for _ in $(seq 100); do grep -q "epoch 1/" frozen.log && break; sleep 0.2; done
victim=$(pgrep -f "$bin train --data $dir/failures-data.h5" | tail -n 1)
[ -n "$victim" ] || { echo "FAIL: no rank to freeze"; exit 1; }
start=$(date +%s)
kill -STOP "$victim"
for _ in $(seq 600); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$job" 2>/dev/null; then
  echo "FAIL: the job still runs 60 s after a rank froze"; kill -9 "$job"; pkill -9 -f "$bin train --data $dir/failures-data.h5"
  fails=$((fails+1))
else
  wait "$job"; rc=$?
  took=$(( $(date +%s) - start ))
  msg=$(grep -m1 "did not complete within 3 s" frozen.log)
  if [ $rc -ne 124 ] || ! grep -qE "MPI [A-Za-z]+ did not complete within 3 s on rank [0-9] of 3 \(epoch [0-9]+, step [0-9]+\)" <<<"$msg"; then
    echo "FAIL: a frozen rank gave exit $rc and:"; tail -5 frozen.log; fails=$((fails+1))
  else
    echo "ok   frozen rank: job ended in ${took}s (exit $rc): $msg"
  fi
fi
kill -9 "$victim" 2>/dev/null

# 3. A learning rate that makes the loss overflow.
out=$("$mpiexec" --oversubscribe -np 2 "$bin" train --data "$dir/failures-data.h5" --epochs 3 --eval-every 0 --final-eval false \
  --optimizer sgd --lr 1e30 --quiet 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "training diverged" <<<"$out" && grep -qE "epoch [0-9]+ step [0-9]+ on rank [0-9]+" <<<"$out"; then
  echo "ok   divergence (exit $rc): $(grep -m1 'training diverged' <<<"$out")"
else
  echo "FAIL: divergence not reported (exit $rc):"; echo "$out" | tail -5; fails=$((fails+1))
fi
finish "all failure cases ok"
