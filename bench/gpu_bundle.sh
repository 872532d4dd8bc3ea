#!/usr/bin/env bash
# Packs what a GPU machine without package access needs to run the GPU suite (bench/gpu_suite.sh):
# the CUDA-enabled binaries of BUILD, the non-system shared libraries they link (OpenMPI, parallel
# HDF5, Boost, CUDA runtime; NCCL and cuBLAS are taken from the GPU image's PyTorch instead: 800+ MB), and the
# OpenMPI runtime tree (components, orterun/orted) so that the shardrec command itself can run there.
# Usage: bench/gpu_bundle.sh [BUILD] [OUT_DIR]   (defaults: build .gpu; .gpu is git-ignored)
set -euo pipefail
build=${1:-build}
out=${2:-.gpu}
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib" "$out/ompi"
bins=("$build/shardrec" "$build/tests/test_device" "$build/bench/bench_gpu")
for b in "${bins[@]}"; do
  [[ -x $b ]] || { echo "gpu_bundle: $b is missing; build with the CUDA backend first (bash launch/build.sh -DSHARDREC_CUDA=ON)" >&2; exit 1; }
  cp "$b" "$out/bin/"
done
# glibc, libstdc++ and libgcc come from the target's own (newer) system; NCCL and cuBLAS (600 MB)
# from its PyTorch.
skip='/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64|libnccl|libcublas|libcublasLt)\.so'
plugins=$(find /usr/lib/x86_64-linux-gnu/openmpi -name '*.so*')
for f in "${bins[@]}" $plugins; do ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'; done | sort -u |
  grep -Ev "$skip" | while read -r lib; do cp -L "$lib" "$out/lib/"; done
# The OpenMPI tree, to be unpacked at its own absolute paths on the target (its components are
# found there).
tar -C / -cf "$out/ompi/openmpi.tar" usr/lib/x86_64-linux-gnu/openmpi usr/share/openmpi etc/openmpi \
  usr/bin/orterun usr/bin/orted
tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
rm -rf "$out"
mkdir -p "$out"
mv "$out.tar.gz" "$out/bundle.tar.gz"
du -sh "$out/bundle.tar.gz"
