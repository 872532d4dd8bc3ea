#!/usr/bin/env bash
# Cost of the Mirror Gradient meta-step per epoch relative to plain training, on the same data
# and settings, measured in one run of this script (plain and mirror interleaved, REPEAT times).
#   bench/mg_overhead.sh [DATA.h5]   (default: a 2M-interaction synthetic set)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin=${SHARDREC:-$here/build/shardrec}
work=${WORK:-$here/runs/mg_overhead}
np=${NP:-1}; repeat=${REPEAT:-3}; beta=${BETA:-3}
mkdir -p "$work"
data=${1:-$work/synth.h5}
[ -f "$data" ] || "$bin" synth --out "$data" --users 50000 --items 20000 --interactions 2000000 >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(train --data "$data" --epochs 2 --eval-every 0 --final-eval false --optimizer adam --lr 0.005 --batch 4096 --quiet)
for r in $(seq "$repeat"); do
  mpirun --oversubscribe -np "$np" "$bin" "${common[@]}" --run-dir "$work/plain_$r"
  mpirun --oversubscribe -np "$np" "$bin" "${common[@]}" --strategy mirror --mg-beta "$beta" --run-dir "$work/mg_$r"
done
python3 - "$work" "$repeat" "$beta" <<'PY'
import json, sys, statistics as st
work, n, beta = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def secs(name):
    return [e["seconds"] for r in range(1, n + 1) for e in map(json.loads, open(f"{work}/{name}_{r}/metrics.jsonl"))]
p, m = secs("plain"), secs("mg")
print(f"| strategy | s/epoch (mean ± std over {len(p)} epochs) | relative |")
print("|---|---|---|")
print(f"| plain | {st.mean(p):.3f} ± {st.stdev(p):.3f} | 1.00 |")
print(f"| mirror (beta {beta}) | {st.mean(m):.3f} ± {st.stdev(m):.3f} | {st.mean(m) / st.mean(p):.2f} (a full second step on every beta-th batch would be {1 + 1 / beta:.2f}) |")
PY
