#!/usr/bin/env bash
# Inverse Learning on ML-1M (docs/results.md, "Inverse Learning"): GMF and NeuMF trained with
#   bce  BCE on the labeled rows only (the baseline)
#   idl  + Inverse Dual Loss on one unlabeled draw per labeled row
#   ig   + IDL + Inverse Gradient (the meta-step; paper semantics)
#   igref  the same with --il-reference (the reference code's optimizer quirks), when REF=1
#   neg  BCE with the unlabeled draws as negatives (usual NCF negative sampling), when listed in
#        STRATEGIES (e.g. STRATEGIES="neg" MODELS=gmf)
# for each seed (each seed draws its own 60/20/20 split, init, shuffles and draws), then prints
# mean ± std of the test metrics and the training seconds per epoch relative to the baseline.
# The data are not part of the project:
#   bench/repro_il.sh /path/to/ml-1m-il [seeds...]      (folder with ml1m.valid.rating, ml1m.test.negative)
# Hyperparameters are the reference's: dim 32 (NeuMF MLP 256-128-64-32), batch 1024, Adam lr 0.001,
# sample_lr 0.001, train_ratio 0.9, 10 epochs; the model kept is the one with the lowest validation
# log loss (as the reference keeps the lowest validation BCE).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir=${1:?folder with ml1m.valid.rating and ml1m.test.negative}; shift
seeds=("$@"); [ $# -eq 0 ] && seeds=(1 2 3)
bin=${SHARDREC:-$here/build/shardrec}
np=${NP:-1}
out=${OUT:-$here/runs/ml1m-il}
epochs=${EPOCHS:-10}
models=${MODELS:-gmf neumf}
strategies=${STRATEGIES:-bce idl ig}
[ "${REF:-0}" = 1 ] && strategies="$strategies igref"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for s in "${seeds[@]}"; do
  [ -f "$out/data_s$s.h5" ] || "$bin" prep --input "$dir/ml1m.valid.rating" "$dir/ml1m.test.negative" \
    --sep tab --rating-col 2 --rating-range 1:5 --label-threshold 2 --split ratio --ratios 0.6,0.2,0.2 \
    --seed "$s" --out "$out/data_s$s.h5" >/dev/null
done
for m in $models; do
  for s in "${seeds[@]}"; do
    for st in $strategies; do
      case $st in
        bce) a="--loss bce --strategy plain" ;;
        idl) a="--loss idl --strategy plain" ;;
        neg) a="--loss bce-neg --strategy plain" ;;
        ig) a="--loss idl --strategy ig" ;;
        igref) a="--loss idl --strategy ig --il-reference" ;;
      esac
      run="$out/${m}_${st}_s$s"
      [ -f "$run/result.json" ] && continue
      rm -rf "$run"
      mpirun --oversubscribe -np "$np" "$bin" train --data "$out/data_s$s.h5" --model "$m" $a \
        --dim 32 --batch 1024 --epochs "$epochs" --optimizer adam_dense --lr 0.001 \
        --ig-sample-lr 0.001 --ig-train-ratio 0.9 --il-unlabeled 1 \
        --valid-metric logloss --patience 0 --keep-best true --ks 10 --seed "$s" \
        --run-dir "$run" --quiet >/dev/null
      echo "$m $st seed $s: $(python3 -c "import json;r=json.load(open('$run/result.json'));t=r['test'];print('best epoch',r['best_epoch'],'auc %.4f gauc %.4f ndcg@10 %.4f mrr %.4f  %.2fs/epoch'%(t['auc'],t['gauc'],t['ndcg@10'],t['mrr'],r['seconds_per_epoch']))")"
    done
  done
done
python3 "$here/bench/summarize_il.py" "$out" "${seeds[@]}"
