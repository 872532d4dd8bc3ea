#!/usr/bin/env bash
# The whole GPU validation in one go, on a machine with a GPU and no package access: unpacks the
# bundle made by bench/gpu_bundle.sh, runs the CUDA test suite, the GPU benchmarks with the PyTorch
# peer, the shardrec command on the GPU (MF and NeuMF with IDL + Inverse Gradient: 1 rank, and 2
# ranks sharing the GPU; compared with the CPU backend), the pointwise epoch time against 16 CPU
# ranks, NCCL's answer to two ranks on one GPU, a GPU run stopped by SIGUSR1 and resumed (compared
# byte for byte with an uninterrupted one), and compute-sanitizer over the kernel tests.
# Everything it prints goes to OUT_DIR too.  Usage: bench/gpu_suite.sh BUNDLE.tar.gz OUT_DIR
set -uo pipefail
bundle=$1
out=$2
mkdir -p "$out"
work=/tmp/shardrec-gpu
rm -rf "$work" && mkdir -p "$work"
tar -C "$work" -xzf "$bundle"
B=$work/.gpu
# NCCL and cuBLAS from the image's PyTorch (the bundle leaves them out).
find_lib() {
  python3 - "$1" <<'PY'
import glob, site, sys
for d in site.getsitepackages():
    hits = sorted(glob.glob(d + "/nvidia/**/" + sys.argv[1], recursive=True))
    if hits:
        print(hits[0].rsplit("/", 1)[0]); break
PY
}
nccl_dir=$(find_lib 'libnccl.so*')
blas_dir=$(find_lib 'libcublas.so.13')
export LD_LIBRARY_PATH=$B/lib:${nccl_dir}:${blas_dir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
# labeled_log SEED USERS GROUPS SPAN ITEMS: a u.data-style log (user, item, rating, time) from an
# LCG; 80% of a user's rows come from its group's SPAN items and rate 3-5, the rest rate 1-3.
labeled_log() {
  awk -v s="$1" -v users="$2" -v groups="$3" -v span="$4" -v items="$5" 'BEGIN {
    for (u = 1; u <= users; u++) {
      n = 8 + u % 23; g = u % groups;
      for (k = 0; k < n; k++) {
        s = (s * 1103515245 + 12345) % 2147483648; r = s / 2147483648;
        s = (s * 1103515245 + 12345) % 2147483648; q = s / 2147483648;
        if (r < 0.8) item = 1 + g + groups * int(q * span); else item = 1 + int(q * items);
        rating = (r < 0.8) ? 3 + (u + k) % 3 : 1 + (u + k) % 3;
        printf "%d\t%d\t%d\t%d\n", u, item, rating, 880000000 + k;
      } } }'
}
# sigusr1_resume NAME TRAIN_ARGS...: an uninterrupted GPU run; the same run sent SIGUSR1 once its
# first periodic checkpoint exists (its stdout is block-buffered in a file, so no log line can
# tell), which must exit 75 with a checkpoint; then --resume auto on 2 ranks sharing the GPU, whose
# params.h5 must be byte-identical to the uninterrupted run's.
sigusr1_resume() {
  local name=$1; shift
  local r=$d/ck_$name
  $S train "$@" --quiet --run-dir ${r}_ref > /dev/null && echo "$name: uninterrupted cuda run ok"
  $S train "$@" --run-dir $r > $r.log1 2>&1 &
  local job=$! rc
  for _ in $(seq 1500); do ls $r/checkpoints/ckpt-*.h5 >/dev/null 2>&1 && break; sleep 0.02; done
  kill -USR1 $job
  wait $job; rc=$?
  if [ $rc -eq 75 ] && grep -q "stopped by SIGUSR1" $r.log1 && [ ! -f $r/params.h5 ]; then
    echo "$name SIGUSR1: exit 75, $(grep -o 'checkpoint [^ ]* written' $r.log1)"
    mpirun -np 2 --oversubscribe $S train "$@" --gpu-comm host --run-dir $r --resume auto > $r.log2 2>&1; rc=$?
    grep -o "resumed from .*" $r.log2
    if [ $rc -eq 0 ] && cmp ${r}_ref/params.h5 $r/params.h5; then
      echo "$name checkpoint ok: resumed on 2 ranks, params.h5 byte-identical to the uninterrupted cuda run"
    else
      echo "$name CHECKPOINT FAIL: resume exit $rc, or params.h5 differs from the uninterrupted run"; tail -5 $r.log2
    fi
  elif [ $rc -eq 0 ]; then
    echo "$name CHECKPOINT INCONCLUSIVE: the run finished before SIGUSR1 arrived (raise --epochs)"
  else
    echo "$name CHECKPOINT FAIL: SIGUSR1 gave exit $rc, not 75 with a checkpoint"; tail -5 $r.log1
  fi
}
# compare_with_cpu PREFIX METRICS: runs PREFIXcpu, PREFIXgpu1 and PREFIXgpu2 under $d: the largest
# parameter difference cuda - cpu per tensor, and the test metrics (and IG decisions) of each run.
compare_with_cpu() {
  python3 - "$d" "$1" "$2" <<'PY'
import sys, json, h5py, numpy as np
d, pre, metrics = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
def tables(run):
    with h5py.File(f"{d}/{run}/params.h5", "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
        return out
c, g = tables(pre + "cpu"), tables(pre + "gpu1")
for k in sorted(c):
    print(f"{pre}max |cuda - cpu| {k}: {np.max(np.abs(c[k].astype(np.float64) - g[k])):.3g}")
for run in (pre + "cpu", pre + "gpu1", pre + "gpu2"):
    r = json.load(open(f"{d}/{run}/result.json"))
    print(run, "test", {k: round(v, 5) for k, v in r["test"].items() if k in metrics}, "ig", r.get("ig", "-"))
PY
}
{
  step machine
  nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "nccl from: ${nccl_dir:-not found}"; echo "cublas from: ${blas_dir:-not found}"; date -u

  step "CUDA test suite (test_device: CPU and CUDA cases, kernels vs CPU)"
  "$B/bin/test_device" --gtest_color=no 2>&1 | grep -v '^\[ *\(RUN\|OK\) ' ; echo "test_device exit: ${PIPESTATUS[0]}"

  step "benchmarks: copy ceiling, lookup + fused update, end-to-end MF-BPR"
  "$B/bin/bench_gpu" --dump "$work/inter.bin" 2>&1 | tee "$out/bench_gpu.tsv"
  step "PyTorch peer on the same interactions"
  PYTHONUNBUFFERED=1 python3 bench/torch_peer.py "$work/inter.bin" 2>&1 | tee -a "$out/bench_gpu.tsv"

  step "the shardrec command on the GPU"
  tar -C / -xf "$B/ompi/openmpi.tar"   # OpenMPI at its own paths (this machine has none)
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_ess_singleton_isolated=1
  export OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 OMPI_MCA_osc=^ucx
  S=$B/bin/shardrec
  d=$work/cli && mkdir -p $d
  $S synth --out $d/syn.h5 --users 3000 --items 800 --interactions 60000 --seed 3 &&
  common="--data $d/syn.h5 --epochs 3 --dim 32 --batch 1024 --lr 0.01 --optimizer adam_dense --quiet --ks 10,20"
  $S train $common --device cpu --run-dir $d/cpu && echo "cpu run ok"
  $S train $common --device cuda --run-dir $d/gpu1 && echo "cuda 1-rank run ok"
  mpirun -np 2 --oversubscribe $S train $common --device cuda --gpu-comm host --run-dir $d/gpu2 && echo "cuda 2-rank run ok"
  cmp $d/gpu1/params.h5 $d/gpu2/params.h5 && echo "params.h5: cuda 1 rank == cuda 2 ranks (byte-identical)"
  $S eval --data $d/syn.h5 --params $d/gpu1/params.h5 --split test > $d/eval_cpu.txt &&
  mpirun -np 2 --oversubscribe $S eval --data $d/syn.h5 --params $d/gpu1/params.h5 --split test --eval-device cuda > $d/eval_cuda.txt &&
  cmp $d/eval_cpu.txt $d/eval_cuda.txt && echo "eval --eval-device cuda (2 ranks) == eval on the CPU (identical output)"
  compare_with_cpu "" recall@20,ndcg@20,auc
  echo "--- NCCL with two ranks on one GPU (expected to be refused by NCCL with a clear error):"
  timeout 120 mpirun -np 2 --oversubscribe $S train $common --device cuda --gpu-comm nccl --run-dir $d/nccl2 2>&1 | grep -i -E "error|nccl" | grep -v pmix | head -6

  step "pointwise models (NeuMF, IDL + Inverse Gradient) through the shardrec command"
  labeled_log 12345 3000 7 200 1400 > $d/raw.tsv
  $S prep --format ml-udata --input $d/raw.tsv --out $d/il.h5 --label-threshold 2 --rating-range 1:5 \
    --ratios 0.6,0.2,0.2 --seed 7 | tail -1
  il="--data $d/il.h5 --model neumf --dim 16 --mlp-layers 3 --loss idl --strategy ig --ig-sample-lr 0.01 --epochs 2 --batch 256 --lr 0.01 --quiet --ks 5 --valid-metric logloss"
  $S train $il --device cpu --run-dir $d/il_cpu && echo "neumf ig cpu run ok"
  $S train $il --device cuda --run-dir $d/il_gpu1 && echo "neumf ig cuda 1-rank run ok"
  mpirun -np 2 --oversubscribe $S train $il --device cuda --gpu-comm host --run-dir $d/il_gpu2 && echo "neumf ig cuda 2-rank run ok"
  cmp $d/il_gpu1/params.h5 $d/il_gpu2/params.h5 && echo "neumf ig params.h5: cuda 1 rank == cuda 2 ranks (byte-identical)"
  compare_with_cpu il_ auc,gauc,logloss
  echo "--- pointwise training time: NeuMF dim 32 (MLP 256-128-64-32), IDL with 4 draws per labeled row, batch 4096"
  labeled_log 777 40000 11 500 5500 > $d/raw_big.tsv
  $S prep --format ml-udata --input $d/raw_big.tsv --out $d/il_big.h5 --label-threshold 2 --rating-range 1:5 \
    --ratios 0.6,0.2,0.2 --seed 7 | head -1
  for strat in plain ig; do
    pw="--data $d/il_big.h5 --model neumf --dim 32 --mlp-layers 3 --loss idl --strategy $strat --il-unlabeled 4 --batch 4096 --lr 0.001 --eval-every 0 --final-eval false --quiet --ks 5 --valid-metric logloss"
    mpirun -np 16 --oversubscribe $S train $pw --epochs 1 --device cpu --run-dir $d/pw_cpu16_$strat > /dev/null 2>&1
    $S train $pw --epochs 3 --device cuda --run-dir $d/pw_cuda_$strat > /dev/null 2>&1
    python3 - "$d" "$strat" <<'PY'
import sys, json, h5py
d, strat = sys.argv[1], sys.argv[2]
with h5py.File(f"{d}/il_big.h5", "r") as f:
    rows = f["train/item"].shape[0]
for run, label in ((f"pw_cpu16_{strat}", "cpu 16 ranks"), (f"pw_cuda_{strat}", "cuda 1 rank")):
    try:
        e = [json.loads(l) for l in open(f"{d}/{run}/metrics.jsonl")]
    except OSError:
        print(f"pointwise {strat} {label}: no run"); continue
    secs = e[-1]["seconds"]
    extra = f" ({rows / secs:,.0f} labeled rows/s)" if rows else ""
    print(f"pointwise neumf idl {strat} {label}: last epoch {secs:.3f}s{extra}, loss {e[-1]['loss']:.5f}")
PY
  done

  step "checkpoints on the GPU: SIGUSR1 mid-run, exit 75, --resume on 2 ranks == an uninterrupted GPU run"
  # Larger data sets (hundreds of steps per epoch or more, no validation), so that the run is still
  # going when the signal comes after its first periodic checkpoint.
  $S synth --out $d/big.h5 --users 100000 --items 5000 --interactions 2000000 --seed 5 | tail -1
  sigusr1_resume mf --data $d/big.h5 --epochs 3 --dim 32 --batch 512 --lr 0.01 --optimizer adam --ks 10,20 \
    --eval-every 0 --final-eval false --device cuda --checkpoint-every 100
  sigusr1_resume neumf --data $d/il_big.h5 --model neumf --dim 32 --mlp-layers 3 --loss idl --strategy ig \
    --il-unlabeled 4 --batch 2048 --lr 0.001 --epochs 3 --eval-every 0 --final-eval false --ks 5 \
    --valid-metric logloss --device cuda --checkpoint-every 20

  step "compute-sanitizer memcheck over the kernel tests"
  if command -v compute-sanitizer >/dev/null; then
    timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 "$B/bin/test_device" \
      --gtest_filter='Optimizers/DeviceTable.*:DeviceKernels.*:Devices/BackendTraining.*cuda_adam_dense_bpr_mirror:Devices/PointwiseBackends.*cuda_neumf_ig:Devices/VbprBackends.*cuda_mirror' 2>&1 |
      grep -E "Failure|Expected|Which is|max diff|ERROR SUMMARY|PASSED|FAILED" | head -40
    echo "compute-sanitizer exit: ${PIPESTATUS[0]}"
  fi
  step done
} 2>&1 | tee "$out/gpu_suite.log"
