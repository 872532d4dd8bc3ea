#!/usr/bin/env bash
# Reproduces RecBole's BPR quick-start protocol on ml-100k over several seeds and prints
# mean +- std of the test metrics (docs/results.md). The data are not part of the project:
#   bench/repro_ml100k.sh /path/to/ml-100k.inter [seeds...]
# Each seed draws its own 8:1:1 split (prep --seed) and its own init/negatives (train --seed).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
inter=${1:?path to ml-100k.inter}; shift
seeds=("${@:-1 2 3}"); [ $# -eq 0 ] && seeds=(1 2 3)
bin=${SHARDREC:-$here/build/shardrec}
np=${NP:-1}
out=${OUT:-$here/runs/ml100k}
extra=${EXTRA:-}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for s in "${seeds[@]}"; do
  "$bin" prep --format recbole --input "$inter" --out "$out/data_s$s.h5" --split ratio --ratios 0.8,0.1,0.1 --seed "$s" >/dev/null
  mpirun --oversubscribe -np "$np" "$bin" train --config "$here/launch/configs/ml100k-recbole.ini" \
    --data "$out/data_s$s.h5" --seed "$s" --run-dir "$out/run_s$s" --quiet $extra >/dev/null
  echo "seed $s: $(python3 -c "import json;r=json.load(open('$out/run_s$s/result.json'));print('best epoch',r['best_epoch'],'test recall@10 %.4f ndcg@10 %.4f'%(r['test']['recall@10'],r['test']['ndcg@10']))")"
done
python3 - "$out" "${seeds[@]}" <<'PY'
import json, sys, statistics as st
out, seeds = sys.argv[1], sys.argv[2:]
res = [json.load(open(f"{out}/run_s{s}/result.json")) for s in seeds]
print(f"\n| metric (test) | mean ± std over seeds {', '.join(seeds)} | per seed |")
print("|---|---|---|")
for m in ["recall@10", "ndcg@10", "mrr@10", "hit@10", "precision@10", "recall@20", "ndcg@20"]:
    v = [r["test"][m] for r in res]
    sd = f"{st.stdev(v):.4f}" if len(v) > 1 else "- (one seed)"
    print(f"| {m} | {st.mean(v):.4f} ± {sd} | {', '.join(f'{x:.4f}' for x in v)} |")
print(f"| best epoch | | {', '.join(str(r['best_epoch']) for r in res)} |")
PY
