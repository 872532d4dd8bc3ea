#!/usr/bin/env bash
# shardrec recommend --index (a FAISS index from export --format faiss): with a flat index the
# lists are exact recommend's (same items in the same order, the same scores up to float rounding,
# the same raw ids and formats, with and without --mask-valid and a --users list) on 1 and 3
# ranks; hnsw and ivf indexes find most of the exact top 10; an ivf export is byte-identical when
# repeated and on 1 and 3 ranks; refusals: neumf (no dot form), an index that does not match the
# item table (other dimension, other row count), a file that is not an index, --ivf-nlist above
# the number of items and --ivf-nprobe above --ivf-nlist. recommend's --nprobe and --ef-search
# override the index's stored values (--nprobe 16 over an nprobe-4 index gives the nprobe-16 index's
# lists on 1 and 3 ranks) and are refused for the other type, above nlist, and without --index.
# usage: recommend_index.sh SHARDREC WORKDIR MPIEXEC
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
# 200 users with 15 distinct items each of 400 (a few items may go unseen by prep: it keeps those seen).
awk 'BEGIN { s = 11; for (u = 1; u <= 200; u++) { delete seen; n = 0; while (n < 15) {
  s = (s * 1103515245 + 12345) % 2147483648; i = int(s / 65536) % 400; if (i in seen) continue; seen[i] = 1; n++
  printf "U%d\tI%d\t%d\t%d\n", u, i, 1 + (s % 5), 1000 * u + n } } }' > raw.tsv
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv --out d.h5 \
  --seed 2 >prep.log 2>&1 || { cat prep.log; exit 1; }
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input raw.tsv --out il.h5 \
  --seed 2 --label-threshold 3 --rating-range 1:5 >prep.log 2>&1 || { cat prep.log; exit 1; }
head -n 600 raw.tsv > small.tsv  # 40 users: fewer items than d.h5
"$bin" prep --format csv --sep tab --user-col 0 --item-col 1 --rating-col 2 --time-col 3 --input small.tsv --out s.h5 \
  --seed 2 >prep.log 2>&1 || { cat prep.log; exit 1; }
common="--dim 16 --epochs 3 --batch 64 --lr 0.05 --optimizer adam --quiet"
for spec in "mf d.h5" "gmf il.h5" "neumf il.h5 --mlp-layers 2" "mf s.h5"; do
  set -- $spec; m=$1; data=$2; shift 2; run=$m; [ $data = s.h5 ] && run=small
  "$bin" train --data $data --model $m $common "$@" --run-dir $run >train.log 2>&1 || { cat train.log; exit 1; }
done
"$bin" train --data d.h5 --model mf --dim 8 --epochs 1 --batch 64 --quiet --run-dir mf8 >train.log 2>&1 || { cat train.log; exit 1; }

same_lists() {  # exact.tsv approx.tsv: identical columns user, rank, item; scores within float rounding
  python3 - "$1" "$2" <<'PY'
import sys, csv
a = list(csv.reader(open(sys.argv[1]), delimiter="\t")); b = list(csv.reader(open(sys.argv[2]), delimiter="\t"))
assert a[0] == b[0] == ["user", "rank", "item", "score"], (a[0], b[0])
assert len(a) == len(b) and len(a) > 1, (len(a), len(b))
for x, y in zip(a[1:], b[1:]):
    assert x[:3] == y[:3], (x, y)
    assert abs(float(x[3]) - float(y[3])) <= 1e-4 * max(1.0, abs(float(x[3]))), (x, y)
PY
}
recall() {  # exact.tsv approx.tsv K: the fraction of the exact top K found in the approximate top K
  python3 - "$1" "$2" "$3" <<'PY'
import sys, csv
def lists(p, K):
    out = {}
    for u, r, i, s in list(csv.reader(open(p), delimiter="\t"))[1:]:
        if int(r) <= K: out.setdefault(u, set()).add(i)
    return out
K = int(sys.argv[3]); e, a = lists(sys.argv[1], K), lists(sys.argv[2], K)
assert sorted(e) == sorted(a), "the same users"
print("%.4f" % (sum(len(e[u] & a.get(u, set())) for u in e) / sum(len(v) for v in e.values())))
PY
}

for m in mf gmf; do
  data=d.h5; [ $m = gmf ] && data=il.h5
  "$bin" export --data $data --params $m/params.h5 --format faiss --out $m.flat >/dev/null || bad "$m: export flat"
  for mv in false true; do
    "$bin" recommend --data $data --params $m/params.h5 --k 10 --mask-valid $mv --out $m.exact.$mv.tsv >/dev/null \
      || bad "$m: exact recommend"
    for np in 1 3; do
      mpi $np "$bin" recommend --data $data --params $m/params.h5 --k 10 --mask-valid $mv --index $m.flat.item.faiss \
        --out $m.flat.$mv.$np.tsv >/dev/null || bad "$m: recommend --index on $np ranks"
    done
    same_lists $m.exact.$mv.tsv $m.flat.$mv.1.tsv && ok "$m, --mask-valid $mv: --index flat gives exact recommend's lists" \
      || bad "$m --mask-valid $mv: flat index lists differ from exact"
    cmp -s $m.flat.$mv.1.tsv $m.flat.$mv.3.tsv && ok "$m, --mask-valid $mv: --index lists byte-identical on 1 and 3 ranks" \
      || bad "$m --mask-valid $mv: --index lists differ between 1 and 3 ranks"
  done
  # --mask-valid changes the lists (the check above would not see a --mask-valid that did nothing).
  cmp -s $m.flat.false.1.tsv $m.flat.true.1.tsv && bad "$m: --mask-valid made no difference" || ok "$m: --mask-valid true masks more"
done
# A user list and jsonl, as exact recommend writes them.
printf 'U7\n# c\nU150\n' > some.txt
"$bin" recommend --data d.h5 --params mf/params.h5 --k 4 --users some.txt --format jsonl --out some.exact.jsonl >/dev/null
"$bin" recommend --data d.h5 --params mf/params.h5 --k 4 --users some.txt --format jsonl --index mf.flat.item.faiss \
  --out some.index.jsonl >/dev/null || bad "--users with --index"
python3 - <<'PY' && ok "--users list, jsonl: the same users, items and scores" || fails=$((fails+1))
import json
a = [json.loads(l) for l in open("some.exact.jsonl")]; b = [json.loads(l) for l in open("some.index.jsonl")]
# Lists come in dense-id order (exact recommend's), not the file's.
assert [x["user"] for x in a] == [x["user"] for x in b] and sorted(x["user"] for x in a) == ["U150", "U7"], (a, b)
for x, y in zip(a, b):
    assert x["items"] == y["items"] and len(x["items"]) == 4, (x, y)
    assert all(abs(s - t) <= 1e-4 * max(1, abs(s)) for s, t in zip(x["scores"], y["scores"])), (x, y)
PY

# Approximate indexes: recall of the exact top 10 (exact lists with --mask-valid false above).
"$bin" export --data d.h5 --params mf/params.h5 --format faiss --index-type hnsw --hnsw-m 16 --hnsw-ef-search 64 \
  --out mf.hnsw >/dev/null || bad "export hnsw"
mpi 1 "$bin" export --data d.h5 --params mf/params.h5 --format faiss --index-type ivf --ivf-nlist 16 --ivf-nprobe 4 \
  --out mf.ivf1 >/dev/null || bad "export ivf on 1 rank"
mpi 3 "$bin" export --data d.h5 --params mf/params.h5 --format faiss --index-type ivf --ivf-nlist 16 --ivf-nprobe 4 \
  --out mf.ivf3 >/dev/null || bad "export ivf on 3 ranks"
"$bin" export --data d.h5 --params mf/params.h5 --format faiss --index-type ivf --ivf-nlist 16 --ivf-nprobe 4 \
  --out mf.ivf1b >/dev/null || bad "export ivf again"
cmp -s mf.ivf1.item.faiss mf.ivf1b.item.faiss && cmp -s mf.ivf1.item.faiss mf.ivf3.item.faiss \
  && ok "ivf export byte-identical when repeated and on 1 and 3 ranks" || bad "ivf exports differ"
[ "$(head -c 4 mf.ivf1.item.faiss)" = IwFl ] && ok "ivf: an IndexIVFFlat" || bad "ivf: not an IndexIVFFlat ($(head -c 4 mf.ivf1.item.faiss))"
"$bin" export --data d.h5 --params mf/params.h5 --format faiss --index-type ivf --ivf-nlist 16 --ivf-nprobe 16 \
  --out mf.ivfall >/dev/null || bad "export ivf nprobe = nlist"
for idx in hnsw:0.9 ivf1:0.7 ivfall:1.0; do
  name=${idx%%:*}; want=${idx#*:}
  for np in 1 3; do
    mpi $np "$bin" recommend --data d.h5 --params mf/params.h5 --k 10 --index mf.$name.item.faiss --out mf.$name.$np.tsv \
      >/dev/null || bad "recommend --index $name on $np ranks"
  done
  cmp -s mf.$name.1.tsv mf.$name.3.tsv && ok "$name: lists byte-identical on 1 and 3 ranks" || bad "$name: lists differ by ranks"
  r=$(recall mf.exact.false.tsv mf.$name.1.tsv 10) || bad "$name: recall"
  python3 -c "import sys; sys.exit(not float('$r') >= $want)" && ok "$name: recall@10 $r >= $want" \
    || bad "$name: recall@10 $r < $want"
done
# Search parameters at query time: --nprobe 16 over the nprobe-4 index is the index stored with 16.
for np in 1 3; do
  mpi $np "$bin" recommend --data d.h5 --params mf/params.h5 --k 10 --index mf.ivf1.item.faiss --nprobe 16 \
    --out mf.ivf1.np16.$np.tsv >/dev/null || bad "recommend --nprobe 16 on $np ranks"
  cmp -s mf.ivf1.np16.$np.tsv mf.ivfall.1.tsv && ok "--nprobe 16 on $np ranks: the lists of the index stored with 16" \
    || bad "--nprobe 16 on $np ranks differs from the index stored with nprobe 16"
done
"$bin" recommend --data d.h5 --params mf/params.h5 --k 10 --index mf.ivfall.item.faiss --nprobe 1 --out mf.ivf.np1.tsv \
  >/dev/null || bad "recommend --nprobe 1"
cmp -s mf.ivf.np1.tsv mf.ivfall.1.tsv && bad "--nprobe 1 gave nprobe 16's lists" || ok "--nprobe 1 changes the lists"
"$bin" export --data d.h5 --params mf/params.h5 --format faiss --index-type hnsw --hnsw-m 16 --hnsw-ef-search 1 \
  --out mf.hnsw1 >/dev/null || bad "export hnsw ef 1"
"$bin" recommend --data d.h5 --params mf/params.h5 --k 10 --index mf.hnsw1.item.faiss --out mf.hnsw1.tsv >/dev/null \
  || bad "recommend hnsw ef 1"
"$bin" recommend --data d.h5 --params mf/params.h5 --k 10 --index mf.hnsw1.item.faiss --ef-search 1000 \
  --out mf.hnsw1000.tsv >/dev/null || bad "recommend --ef-search 1000"
r1=$(recall mf.exact.false.tsv mf.hnsw1.tsv 10); r1000=$(recall mf.exact.false.tsv mf.hnsw1000.tsv 10)
python3 -c "import sys; sys.exit(not (float('$r1000') >= 0.99 and float('$r1000') > float('$r1')))" \
  && ok "--ef-search 1000 over an index stored with 1: recall@10 $r1 -> $r1000" \
  || bad "--ef-search 1000: recall@10 $r1 -> $r1000"
python3 - <<'PY' && ok "ivf nprobe 4: ranks 1..n, scores descending, no training item" || fails=$((fails+1))
import csv, h5py
rows = list(csv.reader(open("mf.ivf1.1.tsv"), delimiter="\t"))
f = h5py.File("d.h5", "r")
users = [x.decode() for x in f["mapping/user_raw"][:]]; items = [x.decode() for x in f["mapping/item_raw"][:]]
ptr, it = f["train/indptr"][:], f["train/item"][:]
train = {users[u]: {items[i] for i in it[ptr[u]:ptr[u + 1]]} for u in range(len(users))}
by = {}
for u, r, i, s in rows[1:]: by.setdefault(u, []).append((int(r), i, float(s)))
for u, lst in by.items():
    assert [r for r, _, _ in lst] == list(range(1, len(lst) + 1)), lst
    sc = [s for _, _, s in lst]; assert sc == sorted(sc, reverse=True), lst
    assert not ({i for _, i, _ in lst} & train[u]), (u, lst)
PY

# Refusals.
expect_error() {  # what pattern... -- command: fails, and its message has every pattern
  local what=$1; shift; local pats=(); while [ "$1" != -- ]; do pats+=("$1"); shift; done; shift
  local out; out=$("$@" 2>&1) && { bad "$what: accepted"; return; }
  for p in "${pats[@]}"; do grep -qF -- "$p" <<<"$out" || { bad "$what: '$p' not in: $out"; return; }; done
  ok "$what: refused, naming ${pats[*]}"
}
expect_error "neumf --index" neumf --index "no dot-product form" -- \
  "$bin" recommend --data il.h5 --params neumf/params.h5 --index mf.flat.item.faiss
"$bin" export --data d.h5 --params mf8/params.h5 --format faiss --out mf8 >/dev/null || bad "export mf8"
expect_error "index of another dimension" mf8.item.faiss " 8" " 16" -- \
  "$bin" recommend --data d.h5 --params mf/params.h5 --index mf8.item.faiss
"$bin" export --data s.h5 --params small/params.h5 --format faiss --out small >/dev/null || bad "export small"
nsmall=$(python3 -c 'import h5py; print(len(h5py.File("s.h5")["mapping/item_raw"]))')
nitems=$(python3 -c 'import h5py; print(len(h5py.File("d.h5")["mapping/item_raw"]))')
expect_error "index of another row count" small.item.faiss "$nsmall" "$nitems" -- \
  mpi 2 "$bin" recommend --data d.h5 --params mf/params.h5 --index small.item.faiss
echo "not an index" > junk.faiss
expect_error "not an index" junk.faiss -- "$bin" recommend --data d.h5 --params mf/params.h5 --index junk.faiss
expect_error "absent index" absent.faiss -- "$bin" recommend --data d.h5 --params mf/params.h5 --index absent.faiss
expect_error "ivf nlist above the items" --ivf-nlist "$nitems" -- \
  "$bin" export --data d.h5 --params mf/params.h5 --format faiss --index-type ivf --ivf-nlist $((nitems + 1)) --out big
[ ! -e big.item.faiss ] && ok "nothing written for the refused nlist" || bad "big.item.faiss written"
expect_error "ivf nprobe above nlist" --ivf-nprobe --ivf-nlist -- \
  "$bin" export --data d.h5 --params mf/params.h5 --format faiss --index-type ivf --ivf-nlist 4 --ivf-nprobe 5 --out p
expect_error "--ef-search on an ivf index" --ef-search mf.ivf1.item.faiss ivf hnsw -- \
  "$bin" recommend --data d.h5 --params mf/params.h5 --index mf.ivf1.item.faiss --ef-search 10
expect_error "--nprobe on an hnsw index" --nprobe mf.hnsw.item.faiss hnsw ivf -- \
  "$bin" recommend --data d.h5 --params mf/params.h5 --index mf.hnsw.item.faiss --nprobe 2
expect_error "--nprobe above the lists" "--nprobe 17" 16 mf.ivf1.item.faiss -- \
  mpi 2 "$bin" recommend --data d.h5 --params mf/params.h5 --index mf.ivf1.item.faiss --nprobe 17
expect_error "--nprobe without --index" --nprobe --index -- \
  "$bin" recommend --data d.h5 --params mf/params.h5 --nprobe 4
finish "all recommend --index cases ok"
