#!/usr/bin/env bash
# A hostile user of every command: malformed and wrong files, wrong options, full disks (small
# tmpfs mounts), signals, damaged and NaN parameters, empty splits, errors under mpirun. Every case
# asserts the exit code, a message naming the problem, no crash, and that nothing is left behind
# (no temporary anywhere, no output of a failed command).
# usage: hostile.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
n=0; mounts=()
cleanup() { for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done; }
trap cleanup EXIT
bad() { echo "FAIL $*"; fails=$((fails+1)); }
# expect WHAT RC MESSAGE CMD...: RC is the exit code ("nz": any error code, not a crash).
expect() {
  local what=$1 want_rc=$2 want=$3; shift 3
  n=$((n+1))
  out=$("$@" 2>&1); rc=$?
  local why=""
  if [ "$want_rc" = nz ]; then { [ $rc -ne 0 ] && [ $rc -lt 128 ]; } || why="exit $rc"
  elif [ $rc -ne "$want_rc" ]; then why="exit $rc, expected $want_rc"; fi
  grep -qF -- "$want" <<<"$out" || why="$why; message lacks '$want'"
  grep -qE "Segmentation fault|Signal: |core dumped" <<<"$out" && why="$why; crashed"
  local left; left=$(find "$dir" -name '*.tmp*' -not -path '*/keep/*' | head -3)
  [ -z "$left" ] || why="$why; left behind: $left"
  if [ -n "$why" ]; then bad "$what: $why"; echo "$out" | tail -4; else echo "ok   $what (exit $rc)"; fi
}
absent() { for f in "$@"; do [ -e "$f" ] && bad "output left behind: $f"; done; return 0; }
once() {  # the message appears exactly once in $out
  local c; c=$(grep -cF -- "$1" <<<"$out")
  [ "$c" -eq 1 ] || bad "'$1' printed $c times"
}
# small DIR SIZE: a tmpfs of SIZE at DIR (false where mounting is refused).
can_mount=1
small() {
  mkdir -p "$1"
  if mount -t tmpfs -o size="$2" tmpfs "$1" 2>/dev/null; then mounts+=("$1"); return 0; fi
  can_mount=0; return 1
}
fill() { dd if=/dev/zero of="$1/.filler" bs=4k 2>/dev/null; true; }  # takes every free block
# poke FILE DATASET ROW COL BYTES: overwrite one float of a params.h5 dataset (raw bytes, printf escapes).
poke() {
  local off dim; off=$(h5dump -p -H -d "$2" "$1" | awk '/OFFSET/ {print $2}')
  dim=$(h5dump -H -d "$2" "$1" | grep -o 'SIMPLE { ( [0-9]*, [0-9]*' | awk -F', ' '{print $2}')
  printf "$5" | dd of="$1" bs=1 seek=$((off + (($3 * dim) + $4) * 4)) conv=notrunc status=none
}

# Fixtures.
"$bin" synth --out d.h5 --users 300 --items 200 --interactions 6000 >/dev/null || exit 1
"$bin" synth --out other.h5 --users 120 --items 90 --interactions 2000 >/dev/null || exit 1
"$bin" synth --out novalid.h5 --users 300 --items 200 --interactions 6000 --valid 0 >/dev/null || exit 1
"$bin" synth --out big.h5 --users 4000 --items 1500 --interactions 160000 >/dev/null || exit 1
"$bin" train --data d.h5 --epochs 2 --dim 4 --run-dir r --quiet >/dev/null || exit 1
printf 'just text\n' > text.h5
mkdir -p keep adir

echo "== malformed and wrong files"
expect "train on a text file" nz "text.h5: not an HDF5 file" "$bin" train --data text.h5 --quiet
expect "train on params.h5 as data" nz "expected 'shardrec-dataset'" "$bin" train --data r/params.h5 --quiet
expect "eval with a dataset as params" nz "d.h5: not a shardrec parameters file" "$bin" eval --data d.h5 --params d.h5
expect "eval with missing params" nz "gone.h5: no such file" "$bin" eval --data d.h5 --params gone.h5
head -c 3000 r/params.h5 > trunc.h5
expect "eval with truncated params" nz "trunc.h5" "$bin" eval --data d.h5 --params trunc.h5
expect "export with a text file as params" nz "text.h5: not an HDF5 file" "$bin" export --data d.h5 --params text.h5 --out e1.h5
absent e1.h5
expect "landscape with a text file as params" nz "text.h5" "$bin" landscape --data d.h5 --params text.h5 --out l1.csv
absent l1.csv l1.csv.json
expect "params of another dataset (shape)" nz "the model needs" "$bin" eval --data other.h5 --params r/params.h5
expect "resume from a params file" nz "not a shardrec checkpoint" "$bin" train --data d.h5 --epochs 2 --dim 4 --run-dir r2 --resume r/params.h5 --quiet
expect "prep of a missing input" nz "nothere.tsv" "$bin" prep --format ml-udata --input nothere.tsv --out p1.h5
absent p1.h5
expect "prep of a directory" nz "adir" "$bin" prep --format ml-udata --input adir --out p2.h5
absent p2.h5
# JSON Lines: a field nested a million deep (skipped fields recurse: a limit, not a stack
# overflow), and a last record cut off.
python3 -c "print('{\"user_id\": 1, \"item_id\": 2, \"x\": ' + '[' * 1000000 + ']' * 1000000 + '}')" > deep.jsonl
expect "prep of a JSON Lines field nested 1e6 deep" nz "deep.jsonl:1: JSON syntax error: expected a value nested at most 64 deep" \
  "$bin" prep --input deep.jsonl --out p3.h5
absent p3.h5
printf '{"user_id": 1, "item_id": 2}\n{"user_id": 1, "item' > cut.jsonl
expect "prep of a cut JSON Lines file" nz "cut.jsonl:2: JSON syntax error" "$bin" prep --input cut.jsonl --out p4.h5
absent p4.h5
expect "missing config file" nz "nope.ini" "$bin" train --data d.h5 --config nope.ini

echo "== damaged parameters"
cp r/params.h5 dmg.h5; poke dmg.h5 /user/embedding 5 1 '\x12\x34\x56\x3f'
expect "eval of a damaged value" nz "dmg.h5: dataset /user/embedding fails its checksum" "$bin" eval --data d.h5 --params dmg.h5
expect "export of a damaged value" nz "fails its checksum" "$bin" export --data d.h5 --params dmg.h5 --out e2.h5
absent e2.h5
expect "export tsv of a damaged value" nz "fails its checksum" "$bin" export --data d.h5 --params dmg.h5 --out e3 --format tsv
absent e3.user.tsv e3.item.tsv
expect "landscape of a damaged value" nz "fails its checksum" "$bin" landscape --data d.h5 --params dmg.h5 --out l2.csv --steps 3
absent l2.csv l2.csv.json
expect "damaged value on 3 ranks" nz "fails its checksum" "$mpiexec" --oversubscribe -np 3 "$bin" eval --data d.h5 --params dmg.h5
once "fails its checksum"
cp r/params.h5 nan.h5; poke nan.h5 /item/embedding 17 2 '\x00\x00\xc0\x7f'
expect "eval of a NaN" nz "nan.h5: dataset /item/embedding row 17 holds NaN" "$bin" eval --data d.h5 --params nan.h5
expect "NaN on 2 ranks (one rank's row)" nz "row 17 holds NaN" "$mpiexec" --oversubscribe -np 2 "$bin" export --data d.h5 --params nan.h5 --out e4.h5
once "row 17 holds NaN"
absent e4.h5
cp r/params.h5 inf.h5; poke inf.h5 /user/embedding 0 0 '\x00\x00\x80\x7f'
expect "eval of an infinity" nz "/user/embedding row 0 holds an infinity" "$bin" eval --data d.h5 --params inf.h5

echo "== wrong options and targets"
expect "eval --out /dev/stdout" nz "/dev/stdout: a device or process file" "$bin" eval --data d.h5 --params r/params.h5 --out /dev/stdout
[ -L /dev/stdout ] || bad "/dev/stdout is no longer a symlink"
expect "eval --out a directory" nz "adir: is a directory" "$bin" eval --data d.h5 --params r/params.h5 --out adir
[ -d adir ] || bad "the directory was replaced"
mkfifo keep/fifo
expect "eval --out a fifo" nz "not a regular file" "$bin" eval --data d.h5 --params r/params.h5 --out keep/fifo
n=$((n+1))
if json=$("$bin" eval --data d.h5 --params r/params.h5 --out - 2>/dev/null) && python3 -c 'import json,sys; json.loads(sys.argv[1])' "$json" && [ ! -e ./- ]; then
  echo "ok   eval --out - writes only JSON to standard output"
else bad "eval --out -: standard output is not the JSON alone, or a file '-' was written"; fi
expect "export --out -" nz "option --out: export writes files" "$bin" export --data d.h5 --params r/params.h5 --out -
expect "landscape --out -" nz "option --out: landscape writes two files" "$bin" landscape --data d.h5 --params r/params.h5 --out -
expect "export into a missing directory" nz "cannot create a file next to it" "$bin" export --data d.h5 --params r/params.h5 --out nodir/e.h5
expect "export --format csv" 2 "format" "$bin" export --data d.h5 --params r/params.h5 --out e5 --format csv
expect "eval --split train" 2 "split" "$bin" eval --data d.h5 --params r/params.h5 --split train
expect "train --checkpoint-every 5x" nz "option --checkpoint-every: '5x'" "$bin" train --data d.h5 --run-dir r3 --checkpoint-every 5x
expect "train --resume latest without checkpoints" nz "option --resume: no checkpoint in" "$bin" train --data d.h5 --epochs 1 --dim 4 --run-dir r4 --resume latest --quiet
absent r4/params.h5 r4/.lock
expect "synth --valid 0.6 --test 0.6" nz "valid + test must be below 1" "$bin" synth --out s1.h5 --valid 0.6 --test 0.6
absent s1.h5
expect "train --run-dir under a file" nz "run directory text.h5/run" "$bin" train --data d.h5 --run-dir text.h5/run --quiet

echo "== errors print once under mpirun"
expect "missing dataset on 3 ranks" nz "error: nope.h5: no such file" "$mpiexec" --oversubscribe -np 3 "$bin" train --data nope.h5 --quiet
once "nope.h5: no such file"
expect "wrong params on 2 ranks" nz "not a shardrec parameters file" "$mpiexec" --oversubscribe -np 2 "$bin" eval --data d.h5 --params d.h5
once "not a shardrec parameters file"

echo "== empty splits"
expect "train on an empty validation split" 0 "has no validation rows: per-epoch validation and early stopping are off" \
  "$bin" train --data novalid.h5 --epochs 3 --dim 4 --patience 1 --run-dir nv --quiet
once "has no validation rows"
grep -q '"epochs_run": 3' nv/result.json || bad "empty validation: training did not run all epochs"
expect "eval of an empty split" 0 "valid: no rows" "$bin" eval --data novalid.h5 --params nv/params.h5 --split valid
grep -q nan <<<"$out" && bad "eval of an empty split prints nan"

echo "== full disks"
if small m1 64k; then
  expect "synth on a full disk" 1 "m1/s.h5" "$bin" synth --out m1/s.h5 --users 5000 --items 2000 --interactions 200000
  absent m1/s.h5
  printf '1\t10\t5\t100\n2\t11\t4\t101\n' > tiny.tsv
  for k in $(seq 4000); do printf '%d\t%d\t5\t%d\n' $((k % 900)) $((k % 700)) $k; done > many.tsv
  expect "prep on a full disk" nz "m1/p.h5" "$bin" prep --format ml-udata --input many.tsv --out m1/p.h5
  absent m1/p.h5
  [ -z "$(ls -A m1)" ] || bad "files left on the full disk: $(ls -A m1)"
fi
if small m2 8k; then
  expect "export h5 on a full disk" 1 "m2/e.h5" "$bin" export --data d.h5 --params r/params.h5 --out m2/e.h5
  absent m2/e.h5
  expect "export tsv on a full disk" 1 "m2/e" "$bin" export --data d.h5 --params r/params.h5 --out m2/e --format tsv
  absent m2/e.user.tsv m2/e.item.tsv
  expect "export on a full disk, 2 ranks" 1 "m2/e.h5" "$mpiexec" --oversubscribe -np 2 "$bin" export --data d.h5 --params r/params.h5 --out m2/e.h5
  once "error: "
  expect "landscape on a full disk" nz "m2/l.csv" "$bin" landscape --data d.h5 --params r/params.h5 --out m2/l.csv --steps 200
  absent m2/l.csv m2/l.csv.json
  fill m2
  expect "eval --out on a full disk" 1 "m2/ev.json: write failed" "$bin" eval --data d.h5 --params r/params.h5 --out m2/ev.json
  absent m2/ev.json
  expect "train: config.ini on a full disk" 1 "m2/run" "$bin" train --data d.h5 --epochs 1 --dim 4 --run-dir m2/run --quiet
  absent m2/run/config.ini m2/run/.lock
fi
if small m3 2m; then
  # The disk fills during training: the next metrics.jsonl line fails loudly, none is half written.
  "$bin" train --data big.h5 --epochs 30 --batch 512 --dim 8 --eval-every 1 --run-dir m3/run > m3.log 2>&1 &
  job=$!
  for _ in $(seq 300); do grep -q "epoch 1/" m3.log && break; sleep 0.1; done
  fill m3
  wait $job; rc=$?; n=$((n+1))
  if [ $rc -eq 1 ] && grep -q "m3/run/metrics.jsonl: cannot append" m3.log \
     && python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' m3/run/metrics.jsonl \
     && [ -z "$(find m3 -name '*.tmp*')" ] && [ ! -e m3/run/params.h5 ] && [ ! -e m3/run/.lock ]; then
    echo "ok   disk full during training: metrics.jsonl append fails with a message (exit $rc)"
  else bad "disk full during training (exit $rc):"; tail -3 m3.log; fi
fi
[ $can_mount -eq 1 ] || echo "SKIP full-disk cases: cannot mount a small tmpfs here (not root, or no mount rights)"

echo "== signals"
# sig_case NAME SIGNAL RC: training stopped by SIGNAL after epoch 1 checkpoints and exits RC.
sig_case() {
  rm -rf "sig$1"; n=$((n+1))
  "$bin" train --data big.h5 --epochs 30 --batch 512 --dim 8 --run-dir "sig$1" > "sig$1.log" 2>&1 &
  local job=$!
  for _ in $(seq 300); do grep -q "epoch 1/" "sig$1.log" && break; sleep 0.1; done
  kill -"$2" $job; wait $job; local rc=$?
  if [ $rc -eq "$3" ] && grep -q "stopped by SIG$2 at epoch" "sig$1.log" && ls "sig$1"/checkpoints/ckpt-*.h5 >/dev/null 2>&1 \
     && [ ! -e "sig$1/params.h5" ] && [ -z "$(find "sig$1" -name '*.tmp*' -o -name .lock)" ]; then
    echo "ok   SIG$2: checkpoint written, exit $rc"
  else bad "SIG$2 (exit $rc, expected $3)"; tail -3 "sig$1.log"; fi
}
sig_case term TERM 143
sig_case int INT 130
sig_case usr1 USR1 75
# A signal before training starts (while the process starts up, before the data is read) is kept.
rm -rf sigearly; n=$((n+1))
"$bin" train --data big.h5 --epochs 30 --batch 512 --dim 8 --run-dir sigearly > sigearly.log 2>&1 &
job=$!
for _ in $(seq 500); do grep -q 'SigCgt:.*[1-9a-f]' /proc/$job/status 2>/dev/null && \
  [ $(( 0x$(awk '/SigCgt/ {print $2}' /proc/$job/status) >> 14 & 1 )) -eq 1 ] && break; sleep 0.01; done
kill -TERM $job; wait $job; rc=$?
if [ $rc -eq 143 ] && grep -q "stopped by SIGTERM at epoch 1" sigearly.log && ! grep -q "epoch 1/" sigearly.log; then
  echo "ok   SIGTERM before training starts is kept: checkpoint at the first step, exit $rc"
else bad "early SIGTERM (exit $rc)"; tail -3 sigearly.log; fi
# Resume after SIGTERM continues to the end.
expect "resume after SIGTERM" 0 "resumed from sigterm/checkpoints" "$bin" train --data big.h5 --epochs 2 --batch 512 --dim 8 --run-dir sigterm --resume auto --final-eval false
# SIGTERM sent to every rank (as scancel does under srun).
rm -rf sigmpi; n=$((n+1))
"$mpiexec" --oversubscribe -np 2 "$bin" train --data big.h5 --epochs 30 --batch 512 --dim 8 --run-dir sigmpi > sigmpi.log 2>&1 &
job=$!
for _ in $(seq 300); do grep -q "epoch 1/" sigmpi.log && break; sleep 0.1; done
for p in $(pgrep -f "^$bin train .*--run-dir sigmpi"); do kill -TERM "$p" 2>/dev/null; done  # the ranks, not mpirun
wait $job; rc=$?
if grep -q "stopped by SIGTERM" sigmpi.log && ls sigmpi/checkpoints/ckpt-*.h5 >/dev/null 2>&1 && [ ! -e sigmpi/params.h5 ]; then
  echo "ok   SIGTERM to the ranks under mpirun: checkpoint written (exit $rc)"
else bad "SIGTERM under mpirun (exit $rc)"; tail -3 sigmpi.log; fi
# Without a run directory there is nowhere to checkpoint: SIGTERM ends the process as usual.
n=$((n+1))
"$bin" train --data big.h5 --epochs 30 --batch 512 --dim 8 > signodir.log 2>&1 &
job=$!
for _ in $(seq 300); do grep -q "epoch 1/" signodir.log && break; sleep 0.1; done
kill -TERM $job; wait $job; rc=$?
[ $rc -eq 143 ] && ! grep -q "stopped by" signodir.log && echo "ok   SIGTERM without a run directory ends the process (exit $rc)" \
  || bad "SIGTERM without a run directory (exit $rc)"

echo "$n cases"
finish "all hostile cases ok"
