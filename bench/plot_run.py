#!/usr/bin/env python3
"""Turns a run directory's metrics.jsonl into one PNG: training loss, validation metrics and
throughput per epoch.

  python3 bench/plot_run.py runs/quickstart [--out runs/quickstart/progress.png]   (pip install matplotlib)
"""
import argparse, json, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("--out")
ap.add_argument("--metrics", default="", help="comma list of validation metrics (default: all recall/ndcg)")
args = ap.parse_args()
path = os.path.join(args.run_dir, "metrics.jsonl")
try:
    epochs = [json.loads(l) for l in open(path) if l.strip()]
except (OSError, json.JSONDecodeError) as e:
    sys.exit(f"error: {path}: {e}")
if not epochs:
    sys.exit(f"error: {path}: no epochs logged")
out = args.out or os.path.join(args.run_dir, "progress.png")
val = [e for e in epochs if "valid" in e]
names = args.metrics.split(",") if args.metrics else sorted(
    k for k in (val[0]["valid"] if val else {}) if k.startswith(("recall@", "ndcg@")))
fig, ax = plt.subplots(1, 3, figsize=(15, 4))
ax[0].plot([e["epoch"] for e in epochs], [e["loss"] for e in epochs], marker=".")
ax[0].set_title("training loss"); ax[0].set_xlabel("epoch")
for n in names:
    ax[1].plot([e["epoch"] for e in val], [e["valid"][n] for e in val], marker=".", label=n)
ax[1].set_title("validation"); ax[1].set_xlabel("epoch")
if names: ax[1].legend()
ax[2].plot([e["epoch"] for e in epochs], [e["samples_per_s"] / 1e3 for e in epochs], marker=".")
ax[2].set_title("throughput (k samples/s)"); ax[2].set_xlabel("epoch")
plt.tight_layout()
plt.savefig(out + ".tmp.png", dpi=110)
os.replace(out + ".tmp.png", out)
print("wrote", out)
