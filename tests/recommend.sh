#!/usr/bin/env bash
# shardrec recommend through the command line: the same lists on 1 and 3 ranks, no training item
# recommended, ranks and scores in order, raw ids in and out, a user list, and refusals.
# usage: recommend.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
bin=$1; dir=$2; mpiexec=${3:-mpiexec}
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir" || exit 1
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fails=$((fails+1)); }
awk 'BEGIN { s = 7; for (u = 1; u <= 80; u++) for (k = 0; k < 8; k++) {
  s = (s * 1103515245 + 12345) % 2147483648; printf "U%d\t%d\t%d\t%d\n", u, 100 + (u % 4) + 4 * (s % 20), 3 + k % 3, 1000 * u + k } }' > raw.tsv
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv --out d.h5 --seed 2 >prep.log 2>&1 \
  || { cat prep.log; exit 1; }
"$mpiexec" --oversubscribe -np 2 "$bin" train --data d.h5 --dim 8 --epochs 3 --batch 64 --lr 0.05 --optimizer adam --run-dir run --quiet >train.log 2>&1 \
  || { cat train.log; exit 1; }
"$mpiexec" --oversubscribe -np 1 "$bin" recommend --data d.h5 --params run/params.h5 --k 5 --out r1.tsv >/dev/null || bad "recommend on 1 rank"
"$mpiexec" --oversubscribe -np 3 "$bin" recommend --data d.h5 --params run/params.h5 --k 5 --out r3.tsv >/dev/null || bad "recommend on 3 ranks"
cmp -s r1.tsv r3.tsv && ok "1 and 3 ranks: byte-identical lists" || bad "lists differ between 1 and 3 ranks"
python3 - r1.tsv d.h5 <<'PY' && ok "header, 5 per user, ranks 1..5, scores descending, no training item, raw ids" || fails=$((fails+1))
import sys, csv, h5py
rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))
assert rows[0] == ["user", "rank", "item", "score"], rows[0]
f = h5py.File(sys.argv[2], "r")
users = [x.decode() for x in f["mapping/user_raw"][:]]; items = [x.decode() for x in f["mapping/item_raw"][:]]
ptr, it = f["train/indptr"][:], f["train/item"][:]
train = {users[u]: {items[i] for i in it[ptr[u]:ptr[u + 1]]} for u in range(len(users))}
by = {}
for u, r, i, s in rows[1:]: by.setdefault(u, []).append((int(r), i, float(s)))
assert sorted(by) == sorted(users), "every user gets a list"
for u, lst in by.items():
    assert [r for r, _, _ in lst] == [1, 2, 3, 4, 5], lst
    sc = [s for _, _, s in lst]; assert sc == sorted(sc, reverse=True), lst
    assert not ({i for _, i, _ in lst} & train[u]), (u, lst)
    assert all(i in items for _, i, _ in lst)
    assert u.startswith("U")
PY
printf 'U3\n# a comment\nU1\n\n' > some.txt
"$bin" recommend --data d.h5 --params run/params.h5 --k 2 --users some.txt --format jsonl --out some.jsonl >/dev/null
[ "$(wc -l < some.jsonl)" -eq 2 ] && grep -q '^{"user": "U1", "items": \["' some.jsonl && ok "a user list, JSON lines" || bad "user list: $(cat some.jsonl)"
printf 'U3\nnobody\n' > unknown.txt
out=$("$bin" recommend --data d.h5 --params run/params.h5 --users unknown.txt --out x.tsv 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "unknown.txt:2: user 'nobody' is not in the dataset" <<<"$out" && [ ! -e x.tsv ] \
  && ok "an unknown user: exit $rc, names the line, nothing written" || bad "unknown user (exit $rc): $out"
"$bin" prep --format ml-udata --input raw.tsv --out il.h5 --label-threshold 3 --rating-range 1:5 --seed 2 >/dev/null 2>&1 \
  && "$bin" train --data il.h5 --model gmf --dim 4 --epochs 1 --run-dir gmf --quiet >/dev/null 2>&1
out=$("$bin" recommend --data il.h5 --params gmf/params.h5 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "full ranking by a dot product is for mf and vbpr" <<<"$out" && ok "gmf parameters: refused (exit $rc)" \
  || bad "gmf parameters (exit $rc): $out"
[ $fails -eq 0 ] && echo "all recommend cases ok"
exit $fails
