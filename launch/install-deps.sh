#!/usr/bin/env bash
# Installs what shardrec needs to build and test, from Debian packages (and h5py/numpy from
# PyPI for the interop test). Installs only what is missing; safe to run again.
set -euo pipefail
pkgs=(build-essential cmake openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
      libboost-program-options-dev libgtest-dev libgmock-dev libbenchmark-dev python3 python3-pip
      zlib1g-dev libzstd-dev   # prep reads .gz / .zst logs (optional: the build works without)
      libfaiss-dev)            # export --format faiss (optional: the build works without)
# CI also runs the SLURM test (tests/slurm.sh), which starts its own munged/slurmctld/slurmd.
[ "${CI:-}" = "true" ] && pkgs+=(slurm-wlm munge)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Python is used around the product (interop test, benchmarks, plots) and by the python/ package
# (h5py, numpy, scipy: its readers hand splits over as scipy CSR matrices).
if ! python3 -c 'import h5py, numpy, scipy' 2>/dev/null; then
  python3 -m pip install -q h5py numpy scipy 2>/dev/null || python3 -m pip install -q --break-system-packages h5py numpy scipy
fi
# matplotlib draws bench/plot_*.py (tests/plots.sh checks them, and skips without it): optional.
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  python3 -m pip install -q matplotlib 2>/dev/null || python3 -m pip install -q --break-system-packages matplotlib \
    || echo "install-deps: matplotlib not installed (only the plots need it)" >&2
fi
