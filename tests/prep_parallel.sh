#!/usr/bin/env bash
# prep under mpirun (io/parallel_prep.h): the dataset file is byte-identical on 1, 2 and 3 ranks,
# with the inputs cut into small pieces (SHARDREC_PREP_PIECE_BYTES): RFC 4180 csv with quoted
# separators and line breaks, a gzip file read whole, presplit roles, k-core and a threshold; and
# a bad row that only the last rank reads is reported once, as on one rank, with its line.
# usage: prep_parallel.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
fail() { echo "FAIL $*"; fails=$((fails+1)); }
export SHARDREC_PREP_PIECE_BYTES=200

# A csv log with a header and titles that hold commas, doubled quotes and line breaks.
awk 'BEGIN { s = 7; print "user,item,title,rating,time";
  for (r = 0; r < 3000; r++) {
    s = (s * 1103515245 + 12345) % 2147483648; u = s % 150;
    s = (s * 1103515245 + 12345) % 2147483648; i = s % 400;
    t = r % 4 == 0 ? "\"A, comma\"" : r % 4 == 1 ? "\"two\nlines\"" : r % 4 == 2 ? "\"say \"\"hi\"\"\"" : "plain";
    printf "u%d,%d,%s,%d,%d\n", u, i, t, 1 + r % 5, 1000 + r } }' > log.csv
head -1 log.csv > test.csv; tail -n +2 log.csv | head -600 >> test.csv
gzip -kf test.csv
common=(--header true --user-col user --item-col item --rating-col rating --time-col time)
for np in 1 2 3; do
  "$mpiexec" --oversubscribe -np $np "$bin" prep --input log.csv "${common[@]}" --threshold 2 --user-core 3 \
    --item-core 2 --seed 4 --out ratio.h5 --progress 0 > ratio_$np.out 2>&1 || fail "ratio on $np ranks: $(cat ratio_$np.out)"
  mv ratio.h5 ratio_$np.h5 2>/dev/null
  "$mpiexec" --oversubscribe -np $np "$bin" prep --input log.csv test.csv.gz --split presplit --presplit train,test \
    "${common[@]}" --out pre.h5 --progress 0 > pre_$np.out 2>&1 || fail "presplit on $np ranks: $(cat pre_$np.out)"
  mv pre.h5 pre_$np.h5 2>/dev/null
  "$mpiexec" --oversubscribe -np $np "$bin" prep --input log.csv "${common[@]}" --split loo --out loo.h5 --json \
    --progress 0 > loo_$np.json 2>loo_$np.err || fail "loo on $np ranks: $(cat loo_$np.err)"
  mv loo.h5 loo_$np.h5 2>/dev/null
done
# A memory budget of 0.01 MiB: many pieces a rank, exchanges in rounds, buckets, rows in spill files
# (in spill/, which is empty again after the run).
mkdir -p spill
"$mpiexec" --oversubscribe -np 3 "$bin" prep --input log.csv "${common[@]}" --threshold 2 --user-core 3 --item-core 2 \
  --seed 4 --out ratio.h5 --progress 0 --memory-budget 0.01 --tmp-dir spill > budget.out 2>&1 || fail "budget: $(cat budget.out)"
cmp -s ratio_1.h5 ratio.h5 && [ -z "$(ls -A spill)" ] && echo "ok   a memory budget (rows spilled): the bytes of 1 rank, no spill file left" \
  || fail "budget differs from 1 rank or left $(ls -A spill)"
"$mpiexec" --oversubscribe -np 2 "$bin" prep --input log.csv "${common[@]}" --out nospill.h5 --progress 0 \
  --memory-budget 0.01 --tmp-dir no/such/dir > nospill.out 2>&1; rc=$?
[ "$rc" -ne 0 ] && grep -q "no/such/dir" nospill.out && [ ! -e nospill.h5 ] && echo "ok   a missing --tmp-dir: named, exit $rc, no file" \
  || fail "missing tmp dir (exit $rc): $(cat nospill.out)"
for kind in ratio pre loo; do
  for np in 2 3; do
    cmp -s ${kind}_1.h5 ${kind}_$np.h5 && echo "ok   $kind: $np ranks write the bytes of 1 rank" \
      || fail "$kind: $np ranks differ from 1 rank"
  done
done
grep -q "wrote ratio.h5: .* users" ratio_3.out && [ "$(grep -c wrote ratio_3.out)" -eq 1 ] \
  && echo "ok   the summary prints once" || fail "summary: $(cat ratio_3.out)"
python3 - <<'PY' && echo "ok   --json on 3 ranks: the fingerprint and counts of 1 rank" || fail "json"
import json
a, b = (json.load(open(f"loo_{n}.json")) for n in (1, 3))
assert b["ranks"] == 3 and a["ranks"] == 1
for k in ("users", "items", "train", "valid", "test", "rows_read", "fingerprint"):
    assert a[k] == b[k], k
PY

# A bad row only the last rank's piece holds: the same message and exit code as on one rank, once.
{ head -2500 log.csv; echo "u1,2,x,notanumber,5"; tail -n +2501 log.csv; } > bad.csv
"$bin" prep --input bad.csv "${common[@]}" --out bad.h5 > bad_1.out 2>&1; rc1=$?
"$mpiexec" --oversubscribe -np 3 "$bin" prep --input bad.csv "${common[@]}" --out bad.h5 > bad_3.out 2>&1; rc3=$?
msg=$(grep "^error:" bad_1.out)
[ "$rc1" -ne 0 ] && [ "$rc1" -eq "$rc3" ] && [ -n "$msg" ] && [ "$(grep -cF -- "$msg" bad_3.out)" -eq 1 ] \
  && [ ! -e bad.h5 ] && grep -q "bad.csv:[0-9]*:" <<<"$msg" \
  && echo "ok   a bad row read by the last rank: '$msg' once, exit $rc3, no file" \
  || fail "bad row: 1 rank (exit $rc1): $(cat bad_1.out); 3 ranks (exit $rc3): $(cat bad_3.out)"

[ "$fails" -eq 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
