#!/usr/bin/env bash
# Progress lines and --log-level through the command line: with SHARDREC_PROGRESS_SECONDS=0 (a
# line per block) eval, recommend, similar-items, export and train's validation print lines on stderr whose counts
# increase and end at the total (100%); a quick run at the default period prints none; quiet leaves
# nothing but errors (and the results that have no file); a bad level is refused naming the option
# and the choices; debug adds each rank's part of the data; the output files are byte-identical
# at every level.
# usage: progress_log.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
# Here mpi is shardrec on 2 ranks (mpi CMD ARGS...), in place of lib.sh's mpi NP CMD...
mpi() { "$mpiexec" --oversubscribe -np 2 "$bin" "$@"; }
awk 'BEGIN { s = 7; for (u = 1; u <= 80; u++) for (k = 0; k < 8; k++) {
  s = (s * 1103515245 + 12345) % 2147483648; printf "U%d\t%d\t%d\t%d\n", u, 100 + (u % 4) + 4 * (s % 20), 3 + k % 3, 1000 * u + k } }' > raw.tsv
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv --out d.h5 \
  --seed 2 >prep.log 2>&1 || { cat prep.log; exit 1; }
mpi train --data d.h5 --dim 8 --epochs 2 --batch 64 --run-dir run --quiet >train.log 2>&1 || { cat train.log; exit 1; }
p=run/params.h5

# The progress lines of `name` in file $2: "  NAME  UNIT DONE/TOTAL (P%)  RATE UNIT/s  T left", at
# least two, counts strictly increasing, the last at TOTAL (100%), and nothing else in the file.
check_lines() {
  local name=$1 err=$2 unit=$3 total=$4
  python3 - "$name" "$err" "$unit" "$total" <<'PY'
import re, sys
name, path, unit, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
lines = open(path).read().splitlines()
pat = re.compile(r"^  %s  %s (\d+)/(\d+) \((\d+)%%\)  [0-9.]+[kM]? %s/s  \S+ left$" % (re.escape(name), unit, unit))
got = [pat.match(l) for l in lines]
assert lines and all(got), "not a progress line: %r" % [l for l, g in zip(lines, got) if not g][:1]
done = [int(g.group(1)) for g in got]
assert len(done) >= 2, "one block only: %s" % lines
assert all(b > a for a, b in zip(done, done[1:])), "counts do not increase: %s" % done
assert all(int(g.group(2)) == total for g in got), "total is not %d: %s" % (total, lines)
assert done[-1] == total and got[-1].group(3) == "100", "does not end at 100%%: %s" % lines[-1]
PY
}

export SHARDREC_PROGRESS_SECONDS=0
mpi eval --data d.h5 --params $p --score-budget 500 --out e.json >/dev/null 2>e.err \
  && check_lines "eval test" e.err users 80 && ok "eval: a line per block, counts up to 80/80 (100%)" \
  || bad "eval progress: $(head -3 e.err)"
mpi recommend --data d.h5 --params $p --score-budget 1000 --k 5 --out r.tsv >/dev/null 2>r.err \
  && check_lines recommend r.err users 80 && ok "recommend: counts up to 80/80 users" \
  || bad "recommend progress: $(head -3 r.err)"
items=$(python3 -c "import h5py; print(len(h5py.File('d.h5')['mapping/item_raw']))")
mpi similar-items --data d.h5 --params $p --score-budget 100 --k 3 --out s.tsv >/dev/null 2>s.err \
  && check_lines similar-items s.err items "$items" && ok "similar-items: counts up to $items/$items items" \
  || bad "similar-items progress: $(head -3 s.err)"
# export: one line per chunk of 65536 rows, so per table here: users then all rows.
mpi export --data d.h5 --params $p --format tsv --out x >/dev/null 2>x.err \
  && check_lines "export tsv" x.err rows $((80 + items)) && ok "export: counts up to the rows of both tables" \
  || bad "export progress: $(head -3 x.err)"
# Training's validation after each epoch has its own lines (2 epochs: two runs up to 80/80).
mpi train --data d.h5 --dim 8 --epochs 2 --batch 64 --eval-every 1 --score-budget 500 --run-dir vrun >/dev/null 2>v.err \
  && grep '^  validation  ' v.err > vv.err \
  && [ "$(grep -c ' 80/80 (100%)' vv.err)" = 2 ] && [ "$(wc -l < vv.err)" -ge 4 ] \
  && ok "train: each epoch's validation prints its progress, up to 80/80 twice" \
  || bad "validation progress: $(head -3 v.err)"
# Labeled evaluation (gmf/neumf) counts rows, 8192 a block: one block here, its line at period 0.
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv --out dl.h5 \
  --label-threshold 4 --seed 2 >prep.log 2>&1 || { cat prep.log; exit 1; }
mpi train --data dl.h5 --model gmf --dim 4 --epochs 1 --batch 64 --run-dir gmf --quiet >train.log 2>&1 \
  || { cat train.log; exit 1; }
rows=$(python3 -c "import h5py; print(len(h5py.File('dl.h5')['test/item']))")
mpi eval --data dl.h5 --params gmf/params.h5 --ks 5 --out l.json >/dev/null 2>l.err
grep -qxE "  eval test  rows $rows/$rows \(100%\)  [0-9.]+[kM]? rows/s  \S+ left" l.err && [ "$(wc -l <l.err)" -eq 1 ] \
  && ok "labeled eval: rows $rows/$rows (100%)" || bad "labeled eval progress ($rows rows): $(head -3 l.err)"
unset SHARDREC_PROGRESS_SECONDS

# At the default period (5 s) a run this short prints no line, not even the 100% one.
mpi eval --data d.h5 --params $p --score-budget 500 --out e5.json >/dev/null 2>e5.err
[ ! -s e5.err ] && ok "default period: no progress line for a quick eval" || bad "quick eval printed: $(head -2 e5.err)"

# quiet: nothing on stderr; nothing on stdout either where a file holds the results.
for cmd in "eval --data d.h5 --params $p --out q.json" "recommend --data d.h5 --params $p --out q.tsv" \
           "similar-items --data d.h5 --params $p --out qs.tsv" "export --data d.h5 --params $p --out q.h5" \
           "train --data d.h5 --dim 8 --epochs 2 --batch 64 --run-dir qrun"; do
  SHARDREC_PROGRESS_SECONDS=0 mpi $cmd --log-level quiet >q.out 2>q.err || bad "quiet: $cmd failed: $(cat q.err)"
  [ ! -s q.err ] && [ ! -s q.out ] && ok "quiet ${cmd%% *}: no output" \
    || bad "quiet ${cmd%% *}: stdout '$(head -2 q.out)', stderr '$(head -2 q.err)'"
done
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv \
  --out dq.h5 --seed 2 --progress 0.000001 --log-level quiet >q.out 2>q.err
[ ! -s q.err ] && [ ! -s q.out ] && ok "quiet prep: no output" || bad "quiet prep: '$(cat q.out q.err | head -2)'"
# Without --out the metrics table is eval's result: printed at every level.
mpi eval --data d.h5 --params $p --log-level quiet >q.out 2>q.err
grep -q "^test (80 users):" q.out && [ ! -s q.err ] && ok "quiet eval without --out: the table, nothing else" \
  || bad "quiet eval without --out: '$(head -2 q.out)' '$(head -2 q.err)'"
# Errors still print at quiet.
mpi eval --data missing.h5 --params $p --log-level quiet >/dev/null 2>q.err
grep -q "^error: .*missing.h5" q.err && ok "quiet: errors still print" || bad "quiet error: '$(cat q.err)'"

# A bad level: exit 2, naming the option and the choices.
"$bin" recommend --data d.h5 --params $p --log-level loud >/dev/null 2>bad.err; rc=$?
[ $rc -eq 2 ] && grep -q "option --log-level: 'loud': expected quiet, error, warn, info or debug" bad.err \
  && ok "bad level refused: $(head -1 bad.err)" || bad "bad level: rc $rc, '$(cat bad.err)'"

# debug: each rank's part of the data.
mpi eval --data d.h5 --params $p --out dbg.json --log-level debug >/dev/null 2>d.err
[ "$(grep -c '^debug: rank [01] of 2: users \[' d.err)" -eq 2 ] && ok "debug: the partition of both ranks" \
  || bad "debug partition: $(head -3 d.err)"

# The outputs are the same bytes at every level.
export SHARDREC_PROGRESS_SECONDS=0
for level in quiet error warn info debug; do
  mpi eval --data d.h5 --params $p --score-budget 500 --out eval.$level.json --log-level $level >/dev/null 2>&1
  mpi recommend --data d.h5 --params $p --k 5 --out rec.$level.tsv --log-level $level >/dev/null 2>&1
  mpi similar-items --data d.h5 --params $p --k 3 --out sim.$level.tsv --log-level $level >/dev/null 2>&1
  mpi export --data d.h5 --params $p --out exp.$level.h5 --log-level $level >/dev/null 2>&1
  mpi export --data d.h5 --params $p --format tsv --out exp.$level --log-level $level >/dev/null 2>&1
  mpi export --data d.h5 --params $p --format npy --out exp.$level --log-level $level >/dev/null 2>&1
  mpi train --data d.h5 --dim 8 --epochs 2 --batch 64 --run-dir train.$level --log-level $level >/dev/null 2>&1
done
same=1
for level in error warn info debug; do
  for pair in "eval.quiet.json eval.$level.json" "rec.quiet.tsv rec.$level.tsv" "sim.quiet.tsv sim.$level.tsv" \
              "exp.quiet.h5 exp.$level.h5" "exp.quiet.user.tsv exp.$level.user.tsv" \
              "exp.quiet.item.tsv exp.$level.item.tsv" "exp.quiet.item.npy exp.$level.item.npy" \
              "exp.quiet.user_ids.npy exp.$level.user_ids.npy" "train.quiet/params.h5 train.$level/params.h5"; do
    set -- $pair
    cmp -s "$1" "$2" || { same=0; bad "$1 and $2 differ (or are missing)"; }
  done
done
[ $same -eq 1 ] && ok "eval JSON, recommend and similar-items TSV, export h5/tsv/npy, params.h5: byte-identical at every level"

[ $fails -eq 0 ] && echo "progress_log: all passed" || { echo "progress_log: $fails failed"; exit 1; }
