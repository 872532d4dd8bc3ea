#!/usr/bin/env bash
# shardrec export --format tsv|npy: the retrieval vectors reproduce the model's scores (recommend's
# scores are user . item; for gmf they and the logit from params.h5 are user . item + b_p), the
# files are the same on 1 and 3 ranks and are the ones printed, TSV has a header and the same
# values as the .npy, neumf is refused with the reason, and gmf's h5 export evaluates like params.h5.
# usage: export_vectors.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
awk 'BEGIN { s = 7; for (u = 1; u <= 80; u++) for (k = 0; k < 8; k++) {
  s = (s * 1103515245 + 12345) % 2147483648; printf "U%d\tI%d\t%d\t%d\n", u, 100 + (u % 4) + 4 * (s % 20), 1 + (s % 5), 1000 * u + k } }' > raw.tsv
awk -F'\t' '!seen[$2]++ { i = substr($2, 2) + 0; printf "%s,%d,%.3f\n", $2, i % 3, (i % 7) / 7 }' raw.tsv > feat.csv
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv --out d.h5 \
  --seed 2 --features kind=feat.csv >prep.log 2>&1 || { cat prep.log; exit 1; }
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv --out il.h5 \
  --seed 2 --label-threshold 3 --rating-range 1:5 >prep.log 2>&1 || { cat prep.log; exit 1; }
common="--dim 8 --epochs 2 --batch 64 --lr 0.05 --optimizer adam --quiet"
for spec in "mf d.h5" "vbpr d.h5 --features kind" "gmf il.h5" "neumf il.h5 --mlp-layers 2"; do
  set -- $spec; m=$1; data=$2; shift 2
  "$bin" train --data $data --model $m $common "$@" --run-dir $m >train.log 2>&1 || { cat train.log; exit 1; }
done

for m in mf vbpr gmf; do
  data=d.h5; [ $m = gmf ] && data=il.h5
  out=$("$mpiexec" --oversubscribe -np 1 "$bin" export --data $data --params $m/params.h5 --format npy --out $m.1) \
    || bad "$m: npy on 1 rank"
  "$mpiexec" --oversubscribe -np 3 "$bin" export --data $data --params $m/params.h5 --format npy --out $m.3 >/dev/null \
    || bad "$m: npy on 3 ranks"
  "$mpiexec" --oversubscribe -np 3 "$bin" export --data $data --params $m/params.h5 --format tsv --out $m.t >/dev/null \
    || bad "$m: tsv on 3 ranks"
  grep -q "^wrote $m.1.user.npy, $m.1.user_ids.npy, $m.1.item.npy and $m.1.item_ids.npy" <<<"$out" \
    && ok "$m: the four files named" || bad "$m: printed '$out'"
  same=1
  for f in user.npy user_ids.npy item.npy item_ids.npy; do cmp -s $m.1.$f $m.3.$f || same=0; done
  [ $same = 1 ] && ok "$m: npy byte-identical on 1 and 3 ranks" || bad "$m: npy differs between 1 and 3 ranks"
  "$bin" recommend --data $data --params $m/params.h5 --k 5 --out $m.rec.tsv >/dev/null || bad "$m: recommend"
  python3 - $m $data <<'PY' && ok "$m: the exported vectors reproduce the model's scores; tsv = npy, with a header" || fails=$((fails+1))
import sys, csv, h5py, numpy as np
m, data = sys.argv[1], sys.argv[2]
U, I = np.load(m + ".1.user.npy"), np.load(m + ".1.item.npy")
uid, iid = np.load(m + ".1.user_ids.npy"), np.load(m + ".1.item_ids.npy")
assert U.dtype == np.float32 and uid.dtype.kind == "U", (U.dtype, uid.dtype)
d = h5py.File(data, "r"); p = h5py.File(m + "/params.h5", "r")
assert list(uid) == [x.decode() for x in d["mapping/user_raw"][:]]
assert list(iid) == [x.decode() for x in d["mapping/item_raw"][:]]
assert U.shape[1] == I.shape[1] == {"mf": 8, "vbpr": 16, "gmf": 8}[m], (U.shape, I.shape)
for kind, A, ids in (("user", U, uid), ("item", I, iid)):
    rows = list(csv.reader(open(f"{m}.t.{kind}.tsv"), delimiter="\t"))
    assert rows[0] == [kind] + [f"v{c}" for c in range(1, A.shape[1] + 1)], rows[0]
    assert [r[0] for r in rows[1:]] == list(ids)
    assert np.array_equal(np.array([r[1:] for r in rows[1:]], dtype=np.float32), A)
S = U.astype(np.float64) @ I.astype(np.float64).T
if m == "gmf":  # logit = w_p . (p_u * q_i) + b_p from the stored parameters
    w = p["dense/ncf"][:].astype(np.float64)
    P, Q = p["user/embedding"][:].astype(np.float64), p["item/embedding"][:].astype(np.float64)
    logit = (P * w[:8]) @ Q.T + w[8]
    assert np.allclose(S + w[8], logit, rtol=1e-5, atol=1e-6), abs(S + w[8] - logit).max()
    assert np.abs(S).max() > 1e-4  # not a zero model
# recommend's scores are the model's (gmf: the logit, user . item + b_p)
b = w[8] if m == "gmf" else 0.0
if True:
    u = {x: k for k, x in enumerate(uid)}; i = {x: k for k, x in enumerate(iid)}
    n = 0
    for user, rank, item, score in list(csv.reader(open(m + ".rec.tsv"), delimiter="\t"))[1:]:
        s = S[u[user], i[item]] + b
        assert abs(s - float(score)) <= 1e-5 * max(1, abs(s)), (user, item, s, score); n += 1
    assert n == 5 * len(uid), n
PY
done
out=$("$bin" export --data il.h5 --params neumf/params.h5 --format npy --out nm 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "neumf parameters, which have no dot-product form" <<<"$out" && [ ! -e nm.user.npy ] \
  && ok "neumf npy: refused with the reason (exit $rc)" || bad "neumf npy (exit $rc): $out"
# gmf/neumf h5 exports keep the dense vector and the model's attributes: they evaluate as params.h5.
for m in gmf neumf; do
  "$bin" export --data il.h5 --params $m/params.h5 --out $m.h5 >/dev/null \
    && "$bin" eval --data il.h5 --params $m/params.h5 --out $m.a.json >/dev/null 2>&1 \
    && "$bin" eval --data il.h5 --params $m.h5 --out $m.b.json >/dev/null 2>&1 \
    && cmp -s $m.a.json $m.b.json && ok "$m h5 export evaluates as params.h5" || bad "$m h5 export"
done
# --format faiss: the npy files plus the item vectors in a FAISS index (tests/test_faiss.cc reads
# such indexes back with FAISS); a flat index stores the vectors as they are, so its tail is the
# npy export's item matrix, and it is byte-identical on 1 and 3 ranks.
if "$bin" --version | grep -q "FAISS: yes"; then
  out=$("$mpiexec" --oversubscribe -np 3 "$bin" export --data d.h5 --params vbpr/params.h5 --format faiss --out vf3) \
    && "$bin" export --data d.h5 --params vbpr/params.h5 --format faiss --out vf1 >/dev/null \
    && grep -q "^wrote vf3.user.npy, vf3.user_ids.npy, vf3.item.faiss and vf3.item_ids.npy" <<<"$out" \
    && cmp -s vf1.item.faiss vf3.item.faiss && cmp -s vf3.user.npy vbpr.1.user.npy && cmp -s vf3.item_ids.npy vbpr.1.item_ids.npy \
    && python3 -c '
import sys, numpy as np
I = np.load("vbpr.1.item.npy"); b = open("vf3.item.faiss", "rb").read()
assert b[:4] == b"IxFI" and b.endswith(I.tobytes()), "not a flat inner-product index of the item vectors"' \
    && ok "vbpr faiss (flat): files named, the item vectors, the same on 1 and 3 ranks" || bad "vbpr faiss: $out"
  "$bin" export --data d.h5 --params vbpr/params.h5 --format faiss --index-type hnsw --hnsw-m 8 --out vh >/dev/null \
    && [ "$(head -c 4 vh.item.faiss)" = IHNf ] && ok "faiss hnsw index written" || bad "faiss hnsw"
else
  out=$("$bin" export --data d.h5 --params vbpr/params.h5 --format faiss --out vf 2>&1); rc=$?
  [ $rc -ne 0 ] && grep -q "built without FAISS (Debian: libfaiss-dev" <<<"$out" && ok "faiss: refused, names the package" \
    || bad "faiss without FAISS (exit $rc): $out"
fi
finish "all export cases ok"
