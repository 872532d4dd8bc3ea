#!/usr/bin/env bash
# shardrec similar-items through the command line: the same lists on 1 and 3 ranks (mf cosine,
# vbpr inner product, gmf inner product), each list the true top K of the item retrieval vectors
# read back from params.h5 (vbpr: q = [e, W f + b]; gmf: w_p * q_i) without the item itself, ties by
# dense id, raw ids, an item list, and refusals (neumf: no dot-product form).
# usage: similar_items.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
awk 'BEGIN { s = 7; for (u = 1; u <= 80; u++) for (k = 0; k < 8; k++) {
  s = (s * 1103515245 + 12345) % 2147483648; printf "U%d\tI%d\t%d\t%d\n", u, 100 + (u % 4) + 4 * (s % 20), 3 + k % 3, 1000 * u + k } }' > raw.tsv
# Features of every item the interactions name.
awk -F'\t' '!seen[$2]++ { i = substr($2, 2) + 0; printf "%s,%d,%.3f\n", $2, i % 3, (i % 7) / 7 }' raw.tsv > feat.csv
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv --out d.h5 \
  --seed 2 --features kind=feat.csv >prep.log 2>&1 || { cat prep.log; exit 1; }
common="--data d.h5 --dim 8 --epochs 3 --batch 64 --lr 0.05 --optimizer adam --quiet"
"$bin" train $common --run-dir mf >train.log 2>&1 || { cat train.log; exit 1; }
"$bin" train $common --model vbpr --features kind --run-dir vb >train.log 2>&1 || { cat train.log; exit 1; }

for m in "mf cosine" "vb ip"; do
  set -- $m
  "$mpiexec" --oversubscribe -np 1 "$bin" similar-items --data d.h5 --params $1/params.h5 --k 6 --metric $2 \
    --out $1.1.tsv >/dev/null || bad "$1 on 1 rank"
  "$mpiexec" --oversubscribe -np 3 "$bin" similar-items --data d.h5 --params $1/params.h5 --k 6 --metric $2 \
    --out $1.3.tsv >/dev/null || bad "$1 on 3 ranks"
  cmp -s $1.1.tsv $1.3.tsv && ok "$1 ($2): 1 and 3 ranks byte-identical" || bad "$1 ($2): lists differ between 1 and 3 ranks"
  python3 - $1.1.tsv d.h5 $1/params.h5 $2 <<'PY' && ok "$1 ($2): header, the true top 6 of the scoring vectors, self left out, ties by id" || fails=$((fails+1))
import sys, csv, h5py, numpy as np
rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))
assert rows[0] == ["item", "rank", "similar", "score"], rows[0]
d = h5py.File(sys.argv[2], "r"); p = h5py.File(sys.argv[3], "r")
raw = [x.decode() for x in d["mapping/item_raw"][:]]; dense = {r: i for i, r in enumerate(raw)}
q = p["item/embedding"][:].astype(np.float64)
if "dense" in p:  # vbpr: q = [e, W f + b]
    f = d["features/kind"][:].astype(np.float64)
    q = np.hstack([q, f @ p["dense/W"][:].T + p["dense/b"][:]])
    assert q.shape[1] == 16 and p["user/embedding"].shape[1] == 16
if sys.argv[4] == "cosine":
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
S = q @ q.T
by = {}
for i, r, s, sc in rows[1:]: by.setdefault(i, []).append((int(r), s, float(sc)))
assert sorted(by) == sorted(raw), "every item gets a list"
for i, lst in by.items():
    a = dense[i]
    assert [r for r, _, _ in lst] == list(range(1, 7)), lst
    ids = [dense[s] for _, s, _ in lst]; sc = [x for _, _, x in lst]
    assert a not in ids, (i, lst)
    ref = np.delete(S[a], a); kth = np.sort(ref)[::-1][5]
    for j, x in zip(ids, sc):
        assert abs(S[a, j] - x) < 1e-4 * max(1, abs(x)), (i, j, S[a, j], x)
        assert S[a, j] >= kth - 1e-4 * max(1, abs(kth)), (i, lst, kth)
    for k in range(5):
        assert sc[k] > sc[k + 1] or (sc[k] == sc[k + 1] and ids[k] < ids[k + 1]), (i, lst)
PY
done
# Cosine and inner product differ in general (mf rows are not unit length).
"$bin" similar-items --data d.h5 --params mf/params.h5 --k 6 --metric ip --out mf.ip.tsv >/dev/null
cmp -s mf.ip.tsv mf.1.tsv && bad "--metric ip gave the cosine lists" || ok "--metric ip differs from cosine"

printf 'I103\n# a comment\nI101\n\n' > some.txt
"$bin" similar-items --data d.h5 --params mf/params.h5 --k 2 --items some.txt --format jsonl --out some.jsonl >/dev/null
[ "$(wc -l < some.jsonl)" -eq 2 ] && grep -q '^{"item": "I101", "similar": \["I' some.jsonl && ok "an item list, JSON lines" \
  || bad "item list: $(cat some.jsonl)"
printf 'I103\nnothing\n' > unknown.txt
out=$("$bin" similar-items --data d.h5 --params mf/params.h5 --items unknown.txt --out x.tsv 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "unknown.txt:2: item 'nothing' is not in the dataset" <<<"$out" && [ ! -e x.tsv ] \
  && ok "an unknown item: exit $rc, names the line, nothing written" || bad "unknown item (exit $rc): $out"
# gmf: its item retrieval vectors w_p * q_i; neumf (no dot-product form) is refused with the reason.
"$bin" prep --format ml-udata --input raw.tsv --out il.h5 --label-threshold 3 --rating-range 1:5 --seed 2 >/dev/null 2>&1 \
  && "$bin" train --data il.h5 --model gmf --dim 4 --epochs 2 --lr 0.05 --run-dir gmf --quiet >/dev/null 2>&1 \
  && "$bin" train --data il.h5 --model neumf --dim 4 --mlp-layers 2 --epochs 1 --run-dir neumf --quiet >/dev/null 2>&1 \
  || bad "gmf/neumf training"
"$mpiexec" --oversubscribe -np 1 "$bin" similar-items --data il.h5 --params gmf/params.h5 --k 4 --metric ip --out gmf.1.tsv >/dev/null \
  && "$mpiexec" --oversubscribe -np 3 "$bin" similar-items --data il.h5 --params gmf/params.h5 --k 4 --metric ip --out gmf.3.tsv >/dev/null \
  && cmp -s gmf.1.tsv gmf.3.tsv && ok "gmf (ip): 1 and 3 ranks byte-identical" || bad "gmf (ip) on 1 and 3 ranks"
python3 - gmf.1.tsv il.h5 gmf/params.h5 <<'PY' && ok "gmf (ip): the true top 4 of w_p * q_i, self left out, ties by id" || fails=$((fails+1))
import sys, csv, h5py, numpy as np
rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))
d = h5py.File(sys.argv[2], "r"); p = h5py.File(sys.argv[3], "r")
raw = [x.decode() for x in d["mapping/item_raw"][:]]; dense = {r: i for i, r in enumerate(raw)}
g = int(p.attrs["dim"]); q = p["item/embedding"][:].astype(np.float64) * p["dense/ncf"][:g].astype(np.float64)
S = q @ q.T
by = {}
for i, r, s, sc in rows[1:]: by.setdefault(i, []).append((int(r), s, float(sc)))
assert sorted(by) == sorted(raw), "every item gets a list"
for i, lst in by.items():
    a = dense[i]; ids = [dense[s] for _, s, _ in lst]; sc = [x for _, _, x in lst]
    assert [r for r, _, _ in lst] == [1, 2, 3, 4] and a not in ids, (i, lst)
    kth = np.sort(np.delete(S[a], a))[::-1][3]
    for j, x in zip(ids, sc):
        assert abs(S[a, j] - x) < 1e-5 * max(1, abs(x)) and S[a, j] >= kth - 1e-5 * max(1, abs(kth)), (i, lst, kth)
assert np.abs(S).max() > 1e-4
PY
out=$("$bin" similar-items --data il.h5 --params neumf/params.h5 --out nm.tsv 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "neumf parameters, which have no item vector whose dot product ranks items against an item (the MLP" <<<"$out" \
  && [ ! -e nm.tsv ] && ok "neumf parameters: refused with the reason (exit $rc)" || bad "neumf parameters (exit $rc): $out"
finish "all similar-items cases ok"
