#!/usr/bin/env bash
# bench/plot_run.py and bench/plot_landscape.py on a tiny run (matplotlib's Agg backend): PNGs are
# written, the run plot marks the best epoch and the early stop that result.json records, and the
# landscape plot shows the sharpness that OUT.json holds. Skipped (exit 77) without matplotlib.
# usage: plots.sh SHARDREC WORKDIR SOURCE_DIR
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
src=$3
python3 -c 'import matplotlib' 2>/dev/null || { echo "matplotlib not installed: plots not checked"; exit 77; }
setup "$1" "$2"
png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
"$bin" synth --users 200 --items 100 --interactions 3000 --out d.h5 >/dev/null 2>&1 || { echo "synth failed"; exit 1; }
# A high learning rate and patience 1: the metric stops improving and the run stops early.
"$bin" train --data d.h5 --dim 8 --epochs 30 --batch 64 --lr 0.5 --optimizer adam --patience 1 \
  --valid-metric recall@10 --run-dir tiny --quiet >train.log 2>&1 || { cat train.log; exit 1; }
read -r best stopped last < <(python3 -c '
import json; r = json.load(open("tiny/result.json")); print(r["best_epoch"], str(r["stopped_early"]).lower(), r["epochs_run"])')
[ "$stopped" = true ] || bad "the tiny run was meant to stop early (result.json: stopped_early $stopped)"
out=$(python3 "$src/bench/plot_run.py" tiny --out run.png 2>&1); rc=$?
want="wrote run.png: tiny, early-stopping metric recall@10, best epoch $best, early stop at epoch $last"
[ $rc -eq 0 ] && [ "$out" = "$want" ] && png run.png && ok "plot_run: $out" || bad "plot_run (exit $rc): '$out', want '$want'"
"$bin" landscape --data d.h5 --params tiny/params.h5 --out l2.csv --dims 2 --steps 5 --sharpness-dirs 2 >/dev/null 2>&1 \
  && "$bin" landscape --data d.h5 --params tiny/params.h5 --out l1.csv --dims 1 --steps 7 --sharpness-dirs 2 >/dev/null 2>&1 \
  || bad "landscape"
mean=$(python3 -c 'import json, sys; print(format(json.load(open(sys.argv[1]))["sharpness_mean"], ".3g"))' l2.csv.json)
for d in 1 2; do
  out=$(python3 "$src/bench/plot_landscape.py" --out l$d.png l$d.csv 2>&1); rc=$?
  [ $rc -eq 0 ] && png l$d.png && grep -q "l$d.csv: loss .*, sharpness " <<<"$out" && ok "plot_landscape ${d}-D: $(tail -1 <<<"$out")" \
    || bad "plot_landscape ${d}-D (exit $rc): $out"
done
grep -q "sharpness $mean " <<<"$(python3 "$src/bench/plot_landscape.py" --out l2b.png l2.csv)" \
  && ok "the 2-D title's sharpness is OUT.json's ($mean)" || bad "sharpness $mean not shown"
out=$(python3 "$src/bench/plot_run.py" nowhere 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "nowhere/metrics.jsonl" <<<"$out" && ok "a missing run: exit $rc, names the file" || bad "missing run: $out"
finish "all plot cases ok"
