#!/usr/bin/env bash
# shardrec recommend through the command line: the same lists on 1 and 3 ranks, no training item
# recommended, ranks and scores in order, raw ids in and out, a user list, refusals, and gmf and
# neumf lists against a brute-force reference from their parameters.
# usage: recommend.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
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
# gmf (its retrieval vectors, plus b_p) and neumf (exact scoring by its forward pass): the same
# lists on 1 and 3 ranks, and the lists of a brute-force reference computed from params.h5.
"$bin" prep --format ml-udata --input raw.tsv --out il.h5 --label-threshold 3 --rating-range 1:5 --seed 2 >/dev/null 2>&1 \
  || bad "prep of the labeled set"
"$bin" train --data il.h5 --model gmf --dim 4 --epochs 2 --lr 0.05 --run-dir gmf --quiet >/dev/null 2>&1 || bad "gmf training"
"$bin" train --data il.h5 --model neumf --dim 4 --mlp-layers 2 --epochs 2 --lr 0.05 --run-dir neumf --quiet >/dev/null 2>&1 \
  || bad "neumf training"
for m in gmf neumf; do
  for mv in "" "--mask-valid true"; do
    tag=$m${mv:+.mv}
    "$mpiexec" --oversubscribe -np 1 "$bin" recommend --data il.h5 --params $m/params.h5 --k 7 $mv --out $tag.1.tsv >/dev/null \
      || bad "$tag: recommend on 1 rank"
    "$mpiexec" --oversubscribe -np 3 "$bin" recommend --data il.h5 --params $m/params.h5 --k 7 $mv --out $tag.3.tsv >/dev/null \
      || bad "$tag: recommend on 3 ranks"
    cmp -s $tag.1.tsv $tag.3.tsv && ok "$tag: 1 and 3 ranks byte-identical" || bad "$tag: lists differ between 1 and 3 ranks"
    python3 - $tag.1.tsv il.h5 $m/params.h5 "$mv" <<'PY' && ok "$tag: the lists of a brute-force reference from params.h5 (scores, masks, ties by id)" || fails=$((fails+1))
import sys, csv, h5py, numpy as np
rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))
assert rows[0] == ["user", "rank", "item", "score"], rows[0]
d = h5py.File(sys.argv[2], "r"); p = h5py.File(sys.argv[3], "r"); mask_valid = sys.argv[4] != ""
users = [x.decode() for x in d["mapping/user_raw"][:]]; items = [x.decode() for x in d["mapping/item_raw"][:]]
model = p.attrs["model"]; model = model.decode() if isinstance(model, bytes) else model
g = int(p.attrs["dim"]); w = p["dense/ncf"][:].astype(np.float64)
P, Q = p["user/embedding"][:].astype(np.float64), p["item/embedding"][:].astype(np.float64)
if model == "gmf":
    assert P.shape[1] == g and len(w) == g + 1, (P.shape, len(w))
    S = (P * w[:g]) @ Q.T + w[g]
else:  # neumf: w_p . [p_u * q_i, MLP([a_u, c_i])] + b_p, the MLP layers first in the dense vector
    L = int(p.attrs["mlp_layers"]); m = P.shape[1] - g; assert m == g * 2 ** (L - 1), (m, g, L)
    nu, ni = len(P), len(Q)
    x = np.concatenate([np.repeat(P[:, None, g:], ni, 1), np.repeat(Q[None, :, g:], nu, 0)], axis=2)
    off, width = 0, 2 * m
    for _ in range(L):
        W = w[off:off + width * (width // 2)].reshape(width // 2, width); off += width * (width // 2)
        b = w[off:off + width // 2]; off += width // 2
        x = np.maximum(x @ W.T + b, 0); width //= 2
    wp = w[off:off + g + width]; bp = w[off + g + width]; assert off + g + width + 1 == len(w)
    S = np.einsum("uk,ik,k->ui", P[:, :g], Q[:, :g], wp[:g]) + x @ wp[g:] + bp
masked = [set() for _ in users]
for split in ["train"] + (["valid"] if mask_valid else []):
    ptr, it = d[split + "/indptr"][:], d[split + "/item"][:]
    for u in range(len(users)): masked[u] |= set(it[ptr[u]:ptr[u + 1]].tolist())
by = {}
for u, r, i, s in rows[1:]: by.setdefault(u, []).append((int(r), i, float(s)))
assert sorted(by) == sorted(users), "every user gets a list"
dense_item = {x: k for k, x in enumerate(items)}
exact = 0
for uu, lst in by.items():
    u = users.index(uu)
    cand = [i for i in range(len(items)) if i not in masked[u]]
    ref = sorted(cand, key=lambda i: (-S[u, i], i))[:7]
    got = [dense_item[i] for _, i, _ in lst]
    assert [r for r, _, _ in lst] == list(range(1, len(ref) + 1)), (uu, lst)
    assert not (set(got) & masked[u]), (uu, lst)
    for (_, i, s), j in zip(lst, got):
        assert abs(S[u, j] - s) <= 1e-5 * max(1, abs(s)), (uu, i, S[u, j], s)
    sc = [s for _, _, s in lst]
    assert all(sc[k] > sc[k + 1] or (sc[k] == sc[k + 1] and got[k] < got[k + 1]) for k in range(len(sc) - 1)), (uu, lst)
    if got == ref: exact += 1
    else:  # only a near tie (float32 against float64) may order two items differently
        kth = S[u, ref[-1]]
        assert all(S[u, j] >= kth - 1e-5 for j in got), (uu, got, ref)
assert exact >= 0.95 * len(users), (exact, len(users))
assert np.abs(S).max() > 1e-3  # not a zero model
PY
  done
done
cmp -s neumf.1.tsv neumf.mv.1.tsv && bad "neumf: --mask-valid changed nothing" || ok "neumf: --mask-valid changes the lists"
# Threads: the same lists and metrics for 1, 2 and 3 threads a rank, on 1 and 2 ranks. 90k items
# at dim 8 are 12 tiles of item rows (split by tiles) and d.h5's few items one tile (split by users);
# 203 users leave a last group of three.
"$bin" synth --out big.h5 --users 203 --items 90000 --interactions 8000 --min-per-user 5 --seed 3 >/dev/null \
  || bad "synth"
"$bin" train --data big.h5 --dim 8 --epochs 1 --batch 256 --lr 0.05 --final-eval false --run-dir bigrun --quiet \
  >train.log 2>&1 || { cat train.log; bad "train big"; }
for spec in "big.h5 bigrun" "d.h5 run"; do
  set -- $spec
  for np in 1 2; do
    for t in 1 2 3; do
      mpi $np "$bin" recommend --data $1 --params $2/params.h5 --k 7 --threads $t --out $2.t$t.n$np.tsv >/dev/null \
        || bad "$1: recommend --threads $t on $np ranks"
      mpi $np "$bin" eval --data $1 --params $2/params.h5 --ks 5,20 --threads $t --out $2.t$t.n$np.json >/dev/null \
        || bad "$1: eval --threads $t on $np ranks"
    done
  done
  same=1
  for f in $2.t2.n1 $2.t3.n1 $2.t1.n2 $2.t2.n2 $2.t3.n2; do
    cmp -s $2.t1.n1.tsv $f.tsv && cmp -s $2.t1.n1.json $f.json || same=0
  done
  [ $same = 1 ] && [ -s $2.t1.n1.tsv ] && ok "$1: recommend and eval byte-identical for 1, 2, 3 threads on 1 and 2 ranks" \
    || bad "$1: lists or metrics depend on --threads"
done
finish "all recommend cases ok"
