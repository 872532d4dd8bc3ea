#!/usr/bin/env bash
# Checkpoints through the command line, with real MPI ranks:
#  - SIGUSR1 mid-training on 2 ranks: a checkpoint, exit 75; --resume auto on 3 ranks ends with a
#    params.h5 byte-identical to an uninterrupted run's, and metrics.jsonl with one line per epoch;
#  - a corrupted checkpoint and an incompatible config: clear errors, the checkpoint untouched;
#  - an unwritable run directory and a full disk: reported before training starts;
#  - SIGKILL in the middle of a checkpoint write: resume continues from the newest whole one;
#  - NeuMF with the inverse dual loss and Inverse Gradient: SIGUSR1 on 2 ranks, exit 75, --resume
#    auto on 3 ranks: params.h5 byte-identical to an uninterrupted run's.
# usage: checkpoint.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
"$bin" synth --out data.h5 --users 5000 --items 2000 --interactions 200000 >/dev/null || exit 1
args=(--data data.h5 --epochs 4 --batch 1024 --dim 16 --eval-every 1 --patience 3 --final-eval false)

"$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --run-dir ref --quiet >ref.log 2>&1 || { cat ref.log; exit 1; }

# 1. SIGUSR1 to mpirun (which forwards it to the ranks) once epoch 1 is logged.
"$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --run-dir run --checkpoint-every 50 >run1.log 2>&1 &
job=$!
for _ in $(seq 300); do grep -q "epoch 1/" run1.log && break; sleep 0.1; done
kill -USR1 "$job"
wait "$job"; rc=$?
if [ $rc -eq 75 ] && grep -q "stopped by SIGUSR1" run1.log && ls run/checkpoints/ckpt-*.h5 >/dev/null 2>&1; then
  ok "SIGUSR1: exit 75, $(grep -o 'checkpoint [^ ]* written' run1.log)"
else
  bad "SIGUSR1 did not checkpoint and exit 75 (exit $rc)"; tail -5 run1.log
fi
[ -f run/params.h5 ] && bad "an interrupted run wrote params.h5"
"$mpiexec" --oversubscribe -np 3 "$bin" train "${args[@]}" --run-dir run --checkpoint-every 50 --resume auto >run2.log 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "resumed from" run2.log && cmp -s ref/params.h5 run/params.h5; then
  ok "resumed on 3 ranks: params.h5 byte-identical to the uninterrupted 2-rank run ($(grep -o 'resumed from .*' run2.log))"
else
  bad "resume (exit $rc) differs from the uninterrupted run"; tail -5 run2.log
fi
[ "$(wc -l < run/metrics.jsonl)" -eq "$(wc -l < ref/metrics.jsonl)" ] && ok "metrics.jsonl: one line per epoch" \
  || bad "metrics.jsonl has $(wc -l < run/metrics.jsonl) lines, expected $(wc -l < ref/metrics.jsonl)"
n=$(ls run/checkpoints/ckpt-*.h5 | wc -l)
[ "$n" -le 3 ] && ok "kept $n checkpoints (--keep-checkpoints 3)" || bad "$n checkpoints kept, expected at most 3"

# 2. A corrupted checkpoint: bytes overwritten in the middle of the file.
ck=$(ls run/checkpoints/ckpt-*.h5 | tail -n 1)
mkdir -p bad/checkpoints; cp "$ck" bad/checkpoints/; bck=bad/checkpoints/$(basename "$ck")
size=$(stat -c %s "$bck")
printf 'garbage-garbage-garbage' | dd of="$bck" bs=1 seek=$((size / 2)) conv=notrunc status=none
sum=$(md5sum < "$bck")
out=$("$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --run-dir bad --resume latest 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "checkpoint $bck" <<<"$out" && grep -qE "corrupted|truncated" <<<"$out" && [ "$(md5sum < "$bck")" = "$sum" ]; then
  ok "corrupted checkpoint (exit $rc): $(grep -m1 -o "checkpoint $bck.*" <<<"$out" | cut -c1-160)"
else
  bad "corrupted checkpoint not reported or modified (exit $rc)"; echo "$out" | tail -3
fi

# 3. An incompatible config.
sum=$(md5sum < "$ck"); conf=$(md5sum < run/config.ini)
out=$("$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --negatives 2 --run-dir run --resume "$ck" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "incompatible configuration: negatives = 1 there, 2 here" <<<"$out" && [ "$(md5sum < "$ck")" = "$sum" ] \
   && [ "$(md5sum < run/config.ini)" = "$conf" ]; then
  ok "incompatible config (exit $rc)"
else
  bad "incompatible config not reported (exit $rc)"; echo "$out" | tail -3
fi

# 4. An unwritable run directory (a path under a regular file: root ignores permissions).
touch plainfile
out=$("$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --run-dir plainfile/run 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "run directory plainfile/run" <<<"$out" && ! grep -q "epoch 1/" <<<"$out"; then
  ok "unwritable run directory, before training (exit $rc): $(grep -m1 -o 'run directory.*' <<<"$out")"
else
  bad "unwritable run directory not reported before training (exit $rc)"; echo "$out" | tail -3
fi

# 5. A full disk: a 1 MiB tmpfs cannot hold the checkpoints (needs root and mount rights).
mkdir -p small
if mount -t tmpfs -o size=1m tmpfs small 2>/dev/null; then
  out=$("$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --run-dir small/run --checkpoint-every 10 2>&1); rc=$?
  umount small
  if [ $rc -ne 0 ] && grep -q "MiB free, training needs about" <<<"$out" && ! grep -q "epoch 1/" <<<"$out"; then
    ok "full disk, before training (exit $rc): $(grep -m1 -o 'run directory.*' <<<"$out" | cut -c1-160)"
  else
    bad "full disk not reported before training (exit $rc)"; echo "$out" | tail -3
  fi
  # A read-only file system: the directory exists, files cannot be made in it.
  mkdir -p small/run
  mount -t tmpfs -o ro,size=1m tmpfs small/run
  out=$("$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --run-dir small/run 2>&1); rc=$?
  umount small/run
  if [ $rc -ne 0 ] && grep -q "run directory small/run: files cannot be written there" <<<"$out" && ! grep -q "epoch 1/" <<<"$out"; then
    ok "read-only run directory, before training (exit $rc): $(grep -m1 -o "run directory.*" <<<"$out")"
  else
    bad "read-only run directory not reported before training (exit $rc)"; echo "$out" | tail -3
  fi
else
  echo "SKIP full disk and read-only run directory: cannot mount a small tmpfs here (not root, or no mount rights)"
fi

# 6. SIGKILL in the middle of writing a checkpoint (a node lost, an OOM kill): checkpoints go to
# "<name>.tmp-XXXXXX" and are renamed when complete, so the directory keeps only whole checkpoints (the
# half-written temporary is never listed), and --resume auto continues from the newest whole one to
# the same params.h5 as the uninterrupted run.
"$mpiexec" --oversubscribe -np 2 "$bin" train "${args[@]}" --run-dir killed --checkpoint-every 1 >kill1.log 2>&1 &
job=$!
for _ in $(seq 600); do [ "$(ls killed/checkpoints/ckpt-*.h5 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05; done
# Wait for a write in progress, then kill the ranks at once (mpirun cannot forward SIGKILL).
for _ in $(seq 2000); do ls killed/checkpoints/*.tmp-* >/dev/null 2>&1 && break; done
pkill -9 -f "run-dir killed --checkpoint-every 1"
wait "$job" 2>/dev/null
# The resume must not wait for the killed ranks to be reaped: its lock check treats a zombie as gone.
if ls killed/checkpoints/*.tmp-* >/dev/null 2>&1; then mid="killed mid-write: $(basename killed/checkpoints/*.tmp-*) left behind"
else mid="killed between writes this time"; fi
if [ -f killed/params.h5 ]; then bad "a killed run wrote params.h5"; fi
"$mpiexec" --oversubscribe -np 3 "$bin" train "${args[@]}" --run-dir killed --checkpoint-every 50 --resume auto >kill2.log 2>&1; rc=$?
from=$(grep -o "resumed from [^:]*" kill2.log)
if [ $rc -eq 0 ] && [ -n "$from" ] && [[ "$from" != *.tmp* ]] && cmp -s ref/params.h5 killed/params.h5; then
  ok "SIGKILL during checkpointing ($mid): $from, params.h5 byte-identical to the uninterrupted run"
else
  bad "resume after SIGKILL (exit $rc, $mid, ${from:-no resume}) differs from the uninterrupted run"; tail -5 kill2.log
fi

# 7. The pointwise trainer: NeuMF, IDL + Inverse Gradient, on labeled rows (rating > 2). Keep-best
# off, so that params.h5 holds the last epoch's parameters (those the resume trained).
awk 'BEGIN { s = 12345;
  for (u = 1; u <= 3000; u++) {
    n = 8 + u % 13; g = u % 5;
    for (k = 0; k < n; k++) {
      s = (s * 1103515245 + 12345) % 2147483648; r = s / 2147483648;
      s = (s * 1103515245 + 12345) % 2147483648; q = s / 2147483648;
      if (r < 0.8) item = 1 + g + 5 * int(q * 100); else item = 1 + int(q * 500);
      printf "%d\t%d\t%d\t%d\n", 1000 + u, item, 1 + (u + k) % 5, 880000000 + u * 100 + k;
    } } }' > il.tsv
"$bin" prep --format ml-udata --input il.tsv --out il.h5 --label-threshold 2 --rating-range 1:5 \
  --ratios 0.8,0.1,0.1 --seed 7 >/dev/null || exit 1
il=(--data il.h5 --model neumf --dim 8 --mlp-layers 2 --loss idl --strategy ig --ig-sample-lr 0.01 --epochs 4
    --batch 32 --lr 0.01 --valid-metric auc --ks 5 --keep-best false --final-eval false)
"$mpiexec" --oversubscribe -np 2 "$bin" train "${il[@]}" --run-dir ilref --quiet >ilref.log 2>&1 || { cat ilref.log; exit 1; }
"$mpiexec" --oversubscribe -np 2 "$bin" train "${il[@]}" --run-dir ilrun >il1.log 2>&1 &
job=$!
for _ in $(seq 300); do grep -q "epoch 1/" il1.log && break; sleep 0.05; done
kill -USR1 "$job"
wait "$job"; rc=$?
if [ $rc -eq 75 ] && grep -q "stopped by SIGUSR1" il1.log && [ ! -f ilrun/params.h5 ]; then
  ok "neumf ig, SIGUSR1: exit 75, $(grep -o 'checkpoint [^ ]* written' il1.log)"
else
  bad "neumf ig: SIGUSR1 did not checkpoint and exit 75 (exit $rc)"; tail -5 il1.log
fi
"$mpiexec" --oversubscribe -np 3 "$bin" train "${il[@]}" --run-dir ilrun --resume auto >il2.log 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "resumed from" il2.log && cmp -s ilref/params.h5 ilrun/params.h5 \
   && [ "$(wc -l < ilrun/metrics.jsonl)" -eq 4 ]; then
  ok "neumf ig resumed on 3 ranks: params.h5 byte-identical to the uninterrupted 2-rank run ($(grep -o 'resumed from .*' il2.log))"
else
  bad "neumf ig resume (exit $rc) differs from the uninterrupted run"; tail -5 il2.log
fi

finish "all checkpoint cases ok"
