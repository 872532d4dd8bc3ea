#!/usr/bin/env bash
# recommend --index on a large item table: seconds and recall@10/@20 of hnsw and ivf against exact
# recommend, MF on synthetic data (docs/benchmarks.md, "FAISS indexes on a large item table").
# usage: bash bench/faiss_large.sh SHARDREC WORKDIR
#   ITEMS (1000000), USERS (100000), ROWS (10000000), QUERIES (users asked, 10000), EPOCHS (5)
set -euo pipefail
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
bin=$(realpath "$1"); mkdir -p "$2"; cd "$2"
items=${ITEMS:-1000000} users=${USERS:-100000} rows=${ROWS:-10000000} queries=${QUERIES:-10000}
[ -e data.h5 ] || "$bin" synth --out data.h5 --users "$users" --items "$items" --interactions "$rows" --seed 1
# no final evaluation: full ranking over a million items for every user would be most of the time
[ -e mf/params.h5 ] || "$bin" train --data data.h5 --model mf --epochs "${EPOCHS:-5}" --eval-every 0 --dim 64 \
  --batch 8192 --optimizer adam --lr 0.005 --l2 1e-5 --final-eval false --seed 1 --threads 2 --run-dir mf --quiet
# synth's raw user ids are the numbers 0..USERS-1; ask every (USERS/QUERIES)-th
python3 -c "import sys; u, q = int(sys.argv[1]), int(sys.argv[2]); print('\n'.join(str(i) for i in range(0, u, max(1, u // q))[:q]))" \
  "$users" "$queries" > users.txt
t() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
echo "exact: $(t "$bin" recommend --data data.h5 --params mf/params.h5 --users users.txt --k 20 --out exact.tsv) s"
files=()
# One index of each kind; the search-time parameter is recommend's --ef-search / --nprobe.
[ -e hnsw.item.faiss ] || echo "export hnsw m 32 ef_construction 40: $(t "$bin" export --data data.h5 \
  --params mf/params.h5 --format faiss --index-type hnsw --hnsw-m 32 --hnsw-ef-construction 40 --out hnsw) s"
for ef in 32 64 128 256; do
  echo "hnsw ef_search $ef: $(t "$bin" recommend --data data.h5 --params mf/params.h5 --users users.txt --k 20 \
    --index hnsw.item.faiss --ef-search $ef --out hnsw_ef$ef.tsv) s"
  files+=(hnsw_ef$ef.tsv)
done
[ -e ivf.item.faiss ] || echo "export ivf nlist 1024: $(t "$bin" export --data data.h5 --params mf/params.h5 \
  --format faiss --index-type ivf --ivf-nlist 1024 --out ivf) s"
for np in 8 32 128; do
  echo "ivf nlist 1024 nprobe $np: $(t "$bin" recommend --data data.h5 --params mf/params.h5 --users users.txt \
    --k 20 --index ivf.item.faiss --nprobe $np --out ivf_np$np.tsv) s"
  files+=(ivf_np$np.tsv)
done
# the fixed cost every recommend pays (data, params, writing), with one user asked
head -1 users.txt > one.txt
echo "one user, exact: $(t "$bin" recommend --data data.h5 --params mf/params.h5 --users one.txt --k 20 --out one.tsv) s"
echo "one user, hnsw ef_search 64: $(t "$bin" recommend --data data.h5 --params mf/params.h5 --users one.txt --k 20 \
  --index hnsw.item.faiss --ef-search 64 --out one.tsv) s"
python3 "$here/faiss_recall.py" exact.tsv "${files[@]}" --ks 10,20
