#!/usr/bin/env bash
# Golden results: a matrix of small trainings (MF, VBPR, LightGCN, XSimGCL, FREEDOM, GMF, NeuMF; every optimizer; plain,
# Mirror Gradient and Inverse Gradient; 1 and 3 ranks) whose trained tables and test metrics must
# hash to the values in tests/golden.txt, recorded before the engine refactor (LightGCN's and
# XSimGCL's and FREEDOM's when each landed, with the vectorised propagation; dim 72 runs its 64- and 8-wide blocks). A refactor that
# must not change results keeps them; a change that moves the bits on purpose re-records them
# (GOLDEN_RECORD=1) in the same commit and says why.
# usage: golden.sh SHARDREC WORKDIR MPIEXEC GOLDEN_FILE
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup "$@"
golden=$4

# A u.data-style log with planted groups (an LCG, so the bytes never depend on awk's rand()),
# and item features for VBPR.
awk 'BEGIN { s = 4242;
  for (u = 1; u <= 300; u++) {
    n = 6 + u % 11; g = u % 4;
    for (k = 0; k < n; k++) {
      s = (s * 1103515245 + 12345) % 2147483648; r = s / 2147483648;
      s = (s * 1103515245 + 12345) % 2147483648; q = s / 2147483648;
      if (r < 0.75) item = 1 + g + 4 * int(q * 40); else item = 1 + int(q * 160);
      printf "%d\t%d\t%d\t%d\n", 500 + u, item, 1 + (u * 7 + k) % 5, 880000000 + u * 100 + k;
    } } }' > raw.tsv
awk 'BEGIN { for (i = 1; i <= 160; i++) printf "%d,%d,%d,%.3f\n", i, (i % 4 == 0), (i % 4 == 1), (i % 9) / 9 }' > feat.csv
"$bin" prep --format ml-udata --input raw.tsv --out d.h5 --threshold 2 --user-core 3 --seed 3 \
  --features kind=feat.csv >/dev/null 2>prep.err || { cat prep.err; exit 1; }
"$bin" prep --format ml-udata --input raw.tsv --out il.h5 --label-threshold 2 --rating-range 1:5 \
  --ratios 0.7,0.15,0.15 --seed 3 >/dev/null 2>il.err || { cat il.err; exit 1; }

# name | arguments (besides the common ones)
mf="--data d.h5 --dim 8 --epochs 3 --batch 128 --negatives 2 --ks 5,10 --patience 2"
gcn="--data d.h5 --model lightgcn --dim 72 --epochs 3 --batch 128 --ks 5,10 --patience 2 --l2 0.001"
xs="--data d.h5 --model xsimgcl --dim 72 --epochs 3 --batch 128 --ks 5,10 --patience 2 --l2 0.001"
fr="--data d.h5 --model freedom --features kind --dim 72 --epochs 3 --batch 128 --ks 5,10 --patience 2 --l2 0.001"
pw="--data il.h5 --dim 4 --mlp-layers 2 --epochs 2 --batch 64 --ks 5 --valid-metric auc"
cases=(
  "mf-sgd-bpr|$mf --optimizer sgd --lr 0.1"
  "mf-sgd-bce-l2|$mf --optimizer sgd --loss bce --l2 0.001 --lr 0.1"
  "mf-adagrad|$mf --optimizer adagrad --lr 0.1 --item-sharding range"
  "mf-adam|$mf --optimizer adam --lr 0.02"
  "mf-adam-dense|$mf --optimizer adam_dense --lr 0.02 --item-sharding table:0"
  "mf-adam-mirror|$mf --optimizer adam --lr 0.02 --strategy mirror --mg-alpha1 1 --mg-alpha2 0.3 --mg-beta 2"
  "mf-sgd-mirror-bce|$mf --optimizer sgd --lr 0.1 --loss bce --strategy mirror --mg-beta 1"
  "vbpr-adam|$mf --model vbpr --features kind --optimizer adam --lr 0.02"
  "vbpr-adagrad-mirror|$mf --model vbpr --features kind --optimizer adagrad --lr 0.1 --strategy mirror --mg-beta 2"
  "lightgcn-adam-dense|$gcn --optimizer adam_dense --lr 0.02 --graph-layers 3"
  "lightgcn-sgd-mirror|$gcn --optimizer sgd --lr 0.1 --graph-layers 2 --strategy mirror --mg-beta 2"
  "xsimgcl-adam|$xs --optimizer adam --lr 0.02 --graph-layers 3 --cl-layer 2"
  "xsimgcl-sgd-mirror|$xs --optimizer sgd --lr 0.1 --graph-layers 2 --strategy mirror --mg-beta 2 --cl-eps 0.1"
  "freedom-adam-mirror|$fr --optimizer adam --lr 0.02 --graph-layers 2 --freedom-feature-weight 0.01 --strategy mirror --mg-beta 2"
  "gmf-bce|$pw --model gmf --loss bce --lr 0.01"
  "gmf-idl-ig|$pw --model gmf --loss idl --lr 0.01 --strategy ig --ig-sample-lr 0.01"
  "neumf-bce-neg-sgd|$pw --model neumf --loss bce-neg --optimizer sgd --lr 0.05"
  "neumf-idl|$pw --model neumf --loss idl --lr 0.01"
  "neumf-idl-ig|$pw --model neumf --loss idl --lr 0.01 --strategy ig --ig-sample-lr 0.01"
  "neumf-idl-ig-reference|$pw --model neumf --loss idl --lr 0.01 --strategy ig --ig-sample-lr 0.01 --il-reference"
)

# The hash of a run: every dataset of params.h5 (name, dtype, shape, bytes; attributes hold
# provenance, not results) and result.json's best epoch, valid and test metrics.
hash_run() {
  python3 - "$1" <<'PY'
import hashlib, json, sys, h5py
run = sys.argv[1]
h = hashlib.sha256()
with h5py.File(run + "/params.h5", "r") as f:
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in sorted(names):
        d = f[n]
        h.update(f"{n}|{d.dtype.str}|{d.shape}|".encode())
        v = d[()]
        if getattr(v, "dtype", None) is not None and v.dtype.kind == "O":  # strings: their bytes, not pointers
            h.update(b"\0".join(x if isinstance(x, bytes) else str(x).encode() for x in v.ravel()))
        else:
            h.update(v.tobytes() if hasattr(v, "tobytes") else repr(v).encode())
r = json.load(open(run + "/result.json"))
h.update(json.dumps({k: r.get(k) for k in ("best_epoch", "valid", "test")}, sort_keys=True).encode())
print(h.hexdigest()[:32])
PY
}

out=()
for c in "${cases[@]}"; do
  name=${c%%|*}; args=${c#*|}
  hashes=()
  for np in 1 3; do
    # shellcheck disable=SC2086
    if ! "$mpiexec" --oversubscribe -np $np "$bin" train $args --seed 11 --run-dir "$name-np$np" --quiet >"$name-np$np.log" 2>&1; then
      echo "FAIL $name (np $np): training failed"; tail -5 "$name-np$np.log"; fails=$((fails+1)); continue 2
    fi
    hashes+=("$(hash_run "$name-np$np")")
  done
  if [ "${hashes[0]}" != "${hashes[1]}" ]; then
    echo "FAIL $name: 1 rank ${hashes[0]} != 3 ranks ${hashes[1]}"; fails=$((fails+1)); continue
  fi
  out+=("$name ${hashes[0]}")
  want=$(awk -v n="$name" '$1 == n { print $2 }' "$golden" 2>/dev/null)
  if [ "${GOLDEN_RECORD:-0}" = 1 ]; then
    echo "recorded $name ${hashes[0]}"
  elif [ "$want" = "${hashes[0]}" ]; then
    echo "ok   $name ${hashes[0]} (1 and 3 ranks)"
  else
    echo "FAIL $name: ${hashes[0]}, golden ${want:-missing}"; fails=$((fails+1))
  fi
done
if [ "${GOLDEN_RECORD:-0}" = 1 ] && [ $fails -eq 0 ]; then
  { echo "# tests/golden.sh: case, hash of params.h5 datasets + result.json metrics (1 and 3 ranks)"
    printf '%s\n' "${out[@]}"; } > "$golden.tmp" && mv "$golden.tmp" "$golden"
  echo "wrote $golden"
fi
echo "$((${#cases[@]} - fails)) passed, $fails failed"
exit $((fails > 0))
