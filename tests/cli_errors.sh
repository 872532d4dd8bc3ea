#!/usr/bin/env bash
# Bad input through the command line: a clear message naming the file/line/field, a non-zero
# exit, and no output left behind.
# usage: cli_errors.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
# expect_error "what" "expected message part" command...
expect_error() {
  local what=$1 want=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then echo "FAIL $what: exit 0"; fails=$((fails+1)); return; fi
  if ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $what: message lacks '$want':"; echo "$out" | head -5; fails=$((fails+1)); return
  fi
  echo "ok   $what (exit $rc): $(grep -m1 error <<<"$out")"
}
no_file() { if [ -e "$1" ] || ls "$1".tmp* >/dev/null 2>&1; then echo "FAIL output left: $1"; fails=$((fails+1)); fi; }

printf '1\t10\t5\t100\n2\t11\t4\t101\n3\t12\n' > short.tsv
expect_error "malformed line" "short.tsv:3" "$bin" prep --format ml-udata --input short.tsv --out o1.h5
no_file o1.h5
printf '1\t10\t5\t100\nx\t11\tfive\t101\n' > nonnum.tsv
expect_error "non-numeric rating" "nonnum.tsv:2" "$bin" prep --format ml-udata --input nonnum.tsv --out o2.h5
no_file o2.h5
: > empty.tsv
expect_error "empty file" "empty.tsv" "$bin" prep --format ml-udata --input empty.tsv --out o3.h5
no_file o3.h5
printf 'user_id:token\trating:float\n1\t3\n' > nocol.inter
expect_error "missing column" "item_id" "$bin" prep --format recbole --input nocol.inter --out o4.h5
no_file o4.h5
printf 'u,i\n1,2\n' > noratings.csv
expect_error "threshold without ratings" "rating" "$bin" prep --format csv --header true --input noratings.csv --out o5.h5 --threshold 3
no_file o5.h5
# A feature row for an item the dataset does not have: an error naming the line, or skipped.
printf '1\t10\t5\t100\n2\t11\t4\t101\n' > two.tsv
printf '10,1.0\n11,2.0\n99,3.0\n' > feats.csv
expect_error "feature row of an unknown item" "feats.csv:3: raw item id '99'" "$bin" prep --format ml-udata --input two.tsv --out o7.h5 --features f=feats.csv
no_file o7.h5
if ! "$bin" prep --format ml-udata --input two.tsv --out o8.h5 --features f=feats.csv --features-unknown skip 2>skip.err >/dev/null \
   || ! grep -q "skipped 1 rows" skip.err; then echo "FAIL --features-unknown skip"; fails=$((fails+1)); else echo "ok   --features-unknown skip"; fi
expect_error "unknown format" "format" "$bin" prep --format parquet --input short.tsv --out o6.h5
expect_error "bad option value" "dim" "$bin" train --data x.h5 --dim abc
expect_error "unknown option" "unrecognised" "$bin" train --data x.h5 --dimension 3
printf 'dim = 8\nlearning_rate = 3\n' > bad.ini
expect_error "unknown config key" "learning_rate" "$bin" train --data x.h5 --config bad.ini
expect_error "bad value in range" "--negatives" "$bin" train --data x.h5 --negatives 0
expect_error "missing dataset" "nope.h5: no such file" "$bin" train --data nope.h5 --quiet
printf 'not hdf5\n' > fake.h5
expect_error "not an HDF5 file" "fake.h5: not an HDF5 file" "$bin" train --data fake.h5 --quiet

# A valid dataset for the errors that need one.
"$bin" synth --out good.h5 --users 50 --items 30 --interactions 600 >/dev/null
expect_error "unwritable run dir" "run directory /proc/forbidden" "$bin" train --data good.h5 --run-dir /proc/forbidden/run --quiet
"$bin" train --data good.h5 --epochs 1 --dim 4 --run-dir run --quiet >/dev/null || { echo "FAIL training"; fails=$((fails+1)); }
echo 12345 > run/.lock
expect_error "run directory in use" "in use by another training (pid 12345)" "$bin" train --data good.h5 --epochs 1 --dim 4 --run-dir run --quiet
rm run/.lock
expect_error "params given as dataset" "expected 'shardrec-dataset'" "$bin" eval --data run/params.h5 --params run/params.h5
expect_error "dataset given as params" "not a shardrec parameters file" "$bin" eval --data good.h5 --params good.h5
expect_error "error on all ranks under mpirun" "nope.h5" "$mpiexec" --oversubscribe -np 2 "$bin" train --data nope.h5 --quiet
# Labeled data (Inverse Learning): a rating outside the range, a threshold without ratings, and a
# pointwise model on a dataset without labels; gmf refuses checkpoints; --device cuda without a
# visible GPU (or in a build without CUDA) is refused naming the option.
printf '1\t10\t5\n2\t11\t9\n' > rated.tsv
expect_error "rating out of range" "rated.tsv: data row 2: field rating: 9 is outside the rating range [1, 5]" "$bin" prep --sep tab --rating-col 2 --input rated.tsv --out o9.h5 --label-threshold 2 --rating-range 1:5
no_file o9.h5
printf '1,10\n2,11\n' > unrated.csv
expect_error "label threshold without ratings" "unrated.csv: field rating: a label threshold" "$bin" prep --input unrated.csv --out o10.h5 --label-threshold 2
no_file o10.h5
expect_error "gmf on unlabeled data" "has no ratings" "$bin" train --data good.h5 --model gmf --epochs 1 --quiet
expect_error "ig needs idl" "--loss idl" "$bin" train --data good.h5 --model gmf --strategy ig --quiet
expect_error "gmf resume without a run directory" "option --resume: needs --run-dir" "$bin" train --data good.h5 --model gmf --resume latest --quiet
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect_error "gmf on a machine without a GPU" "option --device cuda" "$bin" train --data good.h5 --model gmf --device cuda --quiet
fi
# Option names match exactly: a typo gets a suggestion, a prefix is refused, and so is a stray
# argument; --help prints defaults as they would be written.
expect_error "option typo" "did you mean --negatives?" "$bin" train --data good.h5 --negatvies 2
expect_error "option prefix" "unrecognised option '--negat'" "$bin" train --data good.h5 --negat 2
expect_error "stray argument" "unexpected argument 'extra'" "$bin" train --data good.h5 extra
expect_error "config typo" "did you mean patience?" "$bin" train --data good.h5 --config <(printf 'patiense = 3\n')
expect_error "another trainer's name for an option" "unrecognised option '--learning-rate'; did you mean --lr?" \
  "$bin" train --data good.h5 --learning-rate 0.1
expect_error "another trainer's name in a config" "did you mean batch?" "$bin" train --data good.h5 \
  --config <(printf 'batch_size = 64\n')
out=$("$bin" recommend --data good.h5 --params x.h5 --learning-rate 0.1 2>&1)
if grep -qF "unrecognised option '--learning-rate'" <<<"$out" && ! grep -qF -- "--lr?" <<<"$out"; then
  echo "ok   recommend has no --lr, so no synonym is offered: $out"
else
  echo "FAIL synonym offered where the command lacks the option: $out"; fails=$((fails+1))
fi
expect_error "value out of range in a config file" "config file" "$bin" train --data good.h5 --config <(printf 'lr = -1\n')
help=$("$bin" train --help)
if grep -q -- "--lr arg (=0.001) " <<<"$help" && grep -q -- "--keep-best arg (=true)" <<<"$help"; then
  echo "ok   --help prints defaults as written"
else echo "FAIL --help defaults:"; grep -E -- "--lr|--keep-best" <<<"$help"; fails=$((fails+1)); fi
# config.ini reads back: a run from a config, then a run from its config.ini, write the same config.ini.
printf 'dim = 4\nlr = 0.003\noptimizer = adagrad\nks = 5,10\nkeep-best = no\nepochs = 1\n' > run.ini
"$bin" train --data good.h5 --config run.ini --run-dir rt1 --quiet --final-eval false >/dev/null \
  && "$bin" train --config rt1/config.ini --run-dir rt2 --quiet --final-eval false >/dev/null \
  && grep -qx "lr = 0.003" rt1/config.ini && cmp -s rt1/config.ini rt2/config.ini \
  && echo "ok   config.ini reads back to the same config.ini" \
  || { echo "FAIL config.ini round trip"; diff rt1/config.ini rt2/config.ini; fails=$((fails+1)); }
expect_error "unknown command" "unknown command" "$bin" frobnicate

# Two datasets of the same shape whose raw user ids differ: parameters, exports and checkpoints of
# one are refused with the other (the dataset fingerprint), not relabelled silently.
awk 'BEGIN { for (u = 1; u <= 40; u++) for (k = 0; k < 6; k++) printf "%d\t%d\t5\t%d\n", u, 1 + (u * 7 + k * 3) % 25, 100 * u + k }' > fa.tsv
awk -F'\t' '{ printf "%d\t%s\t%s\t%s\n", $1 + 500, $2, $3, $4 }' fa.tsv > fb.tsv
"$bin" prep --format ml-udata --input fa.tsv --out fa.h5 --seed 1 >/dev/null && "$bin" prep --format ml-udata --input fb.tsv --out fb.h5 --seed 1 >/dev/null \
  && "$bin" train --data fa.h5 --epochs 2 --dim 4 --batch 32 --run-dir fa_run --checkpoint-every 3 --quiet >/dev/null \
  || { echo "FAIL fingerprint fixtures"; fails=$((fails+1)); }
expect_error "eval with another dataset" "trained on the dataset with fingerprint" "$bin" eval --data fb.h5 --params fa_run/params.h5
expect_error "export with another dataset" "but fb.h5 has fingerprint" "$bin" export --data fb.h5 --params fa_run/params.h5 --out fx.h5
no_file fx.h5
ck=$(ls fa_run/checkpoints/ckpt-*.h5 | tail -n 1)
expect_error "resume on another dataset" "written for another dataset: fingerprint" "$bin" train --data fb.h5 --epochs 2 --dim 4 --batch 32 --run-dir fb_run --resume "$ck" --quiet
"$bin" eval --data fa.h5 --params fa_run/params.h5 >/dev/null && echo "ok   eval with its own dataset" || { echo "FAIL eval with its own dataset"; fails=$((fails+1)); }

# Cutoffs print in numeric order; config.ini names the dataset absolutely; notices for a run
# that keeps nothing and for --device auto without a GPU.
order=$("$bin" eval --data fa.h5 --params fa_run/params.h5 --ks 5,10,50,100 --split test | grep -o 'hit@[0-9]*' | tr '\n' ' ')
[ "$order" = "hit@5 hit@10 hit@50 hit@100 " ] && echo "ok   cutoffs in numeric order" || { echo "FAIL cutoff order: $order"; fails=$((fails+1)); }
grep -qx "data = $PWD/fa.h5" fa_run/config.ini && echo "ok   config.ini: data = $PWD/fa.h5" || { echo "FAIL config.ini data path: $(grep '^data' fa_run/config.ini)"; fails=$((fails+1)); }
note=$("$bin" train --data fa.h5 --epochs 1 --dim 4 --final-eval false 2>&1 >/dev/null)
grep -q "no --run-dir: the trained parameters are not saved" <<<"$note" && echo "ok   no --run-dir: a notice" || { echo "FAIL no --run-dir notice: $note"; fails=$((fails+1)); }
# Progress lines inside an epoch: as often as asked (every step here), with the step count of
# the epoch; none with --progress-every 0.
prog=$("$bin" train --data fa.h5 --epochs 1 --dim 4 --batch 16 --final-eval false --progress-every 0.000001 2>/dev/null)
steps=$(grep -cE "^  epoch 1/1  step [0-9]+/[0-9]+  .* samples/s  .* left in the epoch$" <<<"$prog")
total=$(grep -m1 -oE "step [0-9]+/[0-9]+" <<<"$prog" | cut -d/ -f2)
none=$("$bin" train --data fa.h5 --epochs 1 --dim 4 --batch 16 --final-eval false --progress-every 0 2>/dev/null | grep -c "  step ")
[ -n "$total" ] && [ "$steps" -eq $((total - 1)) ] && [ "$none" -eq 0 ] && echo "ok   progress lines: $steps of $total steps, none with 0" \
  || { echo "FAIL progress lines: $steps of '$total', $none with 0"; fails=$((fails+1)); }
# plan --json: one object that says what it planned for and agrees with the table.
plan=$("$bin" plan --data fa.h5 --world 3 --dim 8 --batch 64 --json)
table=$("$bin" plan --data fa.h5 --world 3 --dim 8 --batch 64)
if python3 -c "
import json, sys
d = json.loads(sys.argv[1])
assert d['world'] == 3 and d['dim'] == 8 and d['batch'] == 64 and d['fits'] is True, d
assert d['memory_per_rank']['total'] > d['memory_per_rank']['tables'] > 0 and d['collectives'], d
assert 'steps per epoch %d' % d['steps_per_epoch'] in sys.argv[2] or str(d['steps_per_epoch']) in sys.argv[2]
" "$plan" "$table"; then echo "ok   plan --json"; else echo "FAIL plan --json: $plan"; fails=$((fails+1)); fi
if [ ! -e /dev/nvidia0 ]; then
  note=$("$bin" train --data fa.h5 --epochs 1 --dim 4 --device auto --final-eval false 2>&1 >/dev/null)
  grep -q "device auto: no GPU is visible, training on the CPU" <<<"$note" && echo "ok   --device auto on a CPU machine: a notice" \
    || { echo "FAIL --device auto notice: $note"; fails=$((fails+1)); }
fi
expect_error "a mistyped command gets a suggestion" "unknown command 'trian'; did you mean 'train'?" "$bin" trian
ver=$("$bin" --version)
if grep -qE '^shardrec [0-9.]+ \(commit ([0-9a-f]+(-dirty)?|unknown), [A-Za-z]+; CUDA backend: (built for sm .*|not built); FAISS: (yes|no)\)$' <<<"$ver"; then
  echo "ok   --version: $ver"
else
  echo "FAIL --version: '$ver'"; fails=$((fails+1))
fi
if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all error cases ok"
