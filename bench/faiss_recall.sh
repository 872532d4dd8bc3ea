#!/usr/bin/env bash
# recall@10/@20 of recommend --index (hnsw, ivf at a few ef/nprobe values) against exact recommend,
# MF-BPR on ml-1m-m1 (docs/benchmarks.md, "FAISS indexes: recall against exact recommend").
# usage: bash bench/faiss_recall.sh SHARDREC DATA_DIR WORKDIR    (DATA_DIR: ../shared/data/ml-1m-m1)
set -euo pipefail
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
bin=$(realpath "$1"); data=$(realpath "$2"); mkdir -p "$3"; cd "$3"
[ -e ml1m_m1.h5 ] || "$bin" prep --format adjacency --split presplit --presplit train,test \
  --input "$data/train.txt" "$data/test.txt" --out ml1m_m1.h5
[ -e mf/params.h5 ] || "$bin" train --data ml1m_m1.h5 --model mf --epochs ${EPOCHS:-20} --eval-every 0 --dim 64 \
  --batch 2048 --lr 0.001 --l2 1e-4 --ks 20 --seed 1 --run-dir mf --quiet
t() { local s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
echo "exact: $(t "$bin" recommend --data ml1m_m1.h5 --params mf/params.h5 --k 20 --out exact.tsv) s"
files=()
for ef in 16 32 64 128; do
  "$bin" export --data ml1m_m1.h5 --params mf/params.h5 --format faiss --index-type hnsw --hnsw-m 32 \
    --hnsw-ef-construction 40 --hnsw-ef-search $ef --out hnsw_ef$ef >/dev/null
  echo "hnsw m 32 ef_search $ef: $(t "$bin" recommend --data ml1m_m1.h5 --params mf/params.h5 --k 20 \
    --index hnsw_ef$ef.item.faiss --out hnsw_ef$ef.tsv) s"
  files+=(hnsw_ef$ef.tsv)
done
for np in 1 4 8 16; do
  "$bin" export --data ml1m_m1.h5 --params mf/params.h5 --format faiss --index-type ivf --ivf-nlist 64 \
    --ivf-nprobe $np --out ivf_np$np >/dev/null
  echo "ivf nlist 64 nprobe $np: $(t "$bin" recommend --data ml1m_m1.h5 --params mf/params.h5 --k 20 \
    --index ivf_np$np.item.faiss --out ivf_np$np.tsv) s"
  files+=(ivf_np$np.tsv)
done
"$bin" export --data ml1m_m1.h5 --params mf/params.h5 --format faiss --out flat >/dev/null
"$bin" recommend --data ml1m_m1.h5 --params mf/params.h5 --k 20 --index flat.item.faiss --out flat.tsv
files+=(flat.tsv)
python3 "$here/faiss_recall.py" exact.tsv "${files[@]}" --ks 10,20
