#!/usr/bin/env bash
# Training seconds per epoch of the Inverse Learning strategies relative to the BCE baseline, on
# the same data and settings, measured in one run of this script (strategies interleaved,
# REPEAT rounds, EPOCHS epochs each, no validation).
#   bench/il_overhead.sh DATA.h5       (a labeled dataset, e.g. one made by bench/repro_il.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin=${SHARDREC:-$here/build/shardrec}
data=${1:?labeled dataset (.h5)}
work=${WORK:-$here/runs/il_overhead}
np=${NP:-1}; repeat=${REPEAT:-2}; epochs=${EPOCHS:-2}; models=${MODELS:-gmf neumf}
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for r in $(seq "$repeat"); do
  for m in $models; do
    for st in bce idl ig; do
      case $st in bce) a="--loss bce" ;; idl) a="--loss idl" ;; ig) a="--loss idl --strategy ig" ;; esac
      rm -rf "$work/${m}_${st}_$r"
      mpirun --oversubscribe -np "$np" "$bin" train --data "$data" --model "$m" $a --dim 32 --batch 1024 \
        --epochs "$epochs" --eval-every 0 --final-eval false --quiet --run-dir "$work/${m}_${st}_$r" >/dev/null
    done
  done
done
python3 - "$work" "$repeat" "$models" <<'PY'
import json, sys, statistics as st
work, n, models = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
print(f"| model | training | s/epoch (mean ± std over {n} rounds) | relative to BCE |")
print("|---|---|---|---|")
for m in models:
    def secs(s):
        return [e["seconds"] for r in range(1, n + 1) for e in map(json.loads, open(f"{work}/{m}_{s}_{r}/metrics.jsonl"))]
    base = st.mean(secs("bce"))
    for s, name in [("bce", "BCE (labeled rows)"), ("idl", "+ IDL (plus one draw per row)"), ("ig", "+ IDL + IG (meta-step on 10%)")]:
        v = secs(s)
        print(f"| {m} | {name} | {st.mean(v):.2f} ± {st.stdev(v):.2f} | {st.mean(v) / base:.2f}x |")
PY
