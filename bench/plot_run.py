#!/usr/bin/env python3
"""Turns a run directory's metrics.jsonl into one PNG titled with the run's name: training loss,
the early-stopping metric (config.ini's valid-metric) with the best epoch and the early stop
marked, the other validation metrics, and throughput per epoch.

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
ap.add_argument("--title", help="the figure's title (default: the run directory's name)")
args = ap.parse_args()
path = os.path.join(args.run_dir, "metrics.jsonl")
try:
    epochs = [json.loads(l) for l in open(path) if l.strip()]
except (OSError, json.JSONDecodeError) as e:
    sys.exit(f"error: {path}: {e}")
if not epochs:
    sys.exit(f"error: {path}: no epochs logged")


def read_config(run_dir):
    """config.ini's key = value lines (empty when the run has none)."""
    conf = {}
    try:
        for line in open(os.path.join(run_dir, "config.ini")):
            if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
                k, v = line.split("=", 1)
                conf[k.strip()] = v.strip()
    except OSError:
        pass
    return conf


conf = read_config(args.run_dir)
try:
    result = json.load(open(os.path.join(args.run_dir, "result.json")))
except (OSError, json.JSONDecodeError):
    result = {}  # a run still going, or stopped before the end: best epoch from the log
out = args.out or os.path.join(args.run_dir, "progress.png")
name = args.title or os.path.basename(os.path.abspath(args.run_dir))
val = [e for e in epochs if e.get("valid")]
stop_metric = conf.get("valid-metric", "ndcg@10")
lower_better = stop_metric == "logloss"  # as the trainer decides (every other metric: higher)
have_stop = any(stop_metric in e["valid"] for e in val)
best = result.get("best_epoch")
if best is None and have_stop:
    pick = min if lower_better else max
    best = pick((e for e in val if e["valid"].get(stop_metric) is not None),
                key=lambda e: (e["valid"][stop_metric], -e["epoch"]) if not lower_better
                else (e["valid"][stop_metric], e["epoch"]))["epoch"]
stopped = result.get("stopped_early", False)
last = epochs[-1]["epoch"]
names = args.metrics.split(",") if args.metrics else sorted(
    k for k in (val[0]["valid"] if val else {}) if k.startswith(("recall@", "ndcg@")) and k != stop_metric)


def marks(ax):
    """The best epoch and the early stop, on every panel against epochs."""
    if best is not None:
        ax.axvline(best, color="tab:green", ls="--", lw=1, label=f"best epoch {best}")
    if stopped:
        ax.axvline(last, color="tab:red", ls=":", lw=1.2, label=f"early stop (epoch {last})")


fig, ax = plt.subplots(1, 4, figsize=(19, 4))
ax[0].plot([e["epoch"] for e in epochs], [e["loss"] for e in epochs], marker=".")
ax[0].set_title("training loss"); ax[0].set_xlabel("epoch"); ax[0].set_ylabel("loss")
marks(ax[0])
if have_stop:
    pts = [(e["epoch"], e["valid"][stop_metric]) for e in val if e["valid"].get(stop_metric) is not None]
    ax[1].plot([p for p, _ in pts], [v for _, v in pts], marker=".", color="black")
    for ep, v in pts:
        if ep == best:
            ax[1].plot([ep], [v], marker="*", ms=14, color="tab:green", ls="none")
    ax[1].set_title(f"early-stopping metric: {stop_metric} ({'lower' if lower_better else 'higher'} is better)")
else:
    ax[1].text(0.5, 0.5, f"no validation of {stop_metric} logged", ha="center", va="center", transform=ax[1].transAxes)
    ax[1].set_title(f"early-stopping metric: {stop_metric}")
ax[1].set_xlabel("epoch"); ax[1].set_ylabel(stop_metric)
marks(ax[1]); ax[1].legend(fontsize=8)
for n in names:
    ax[2].plot([e["epoch"] for e in val], [e["valid"].get(n) for e in val], marker=".", label=n)
ax[2].set_title("other validation metrics"); ax[2].set_xlabel("epoch")
marks(ax[2])
if names or best is not None: ax[2].legend(fontsize=8)
ax[3].plot([e["epoch"] for e in epochs], [e["samples_per_s"] / 1e3 for e in epochs], marker=".")
ax[3].set_title("throughput"); ax[3].set_xlabel("epoch"); ax[3].set_ylabel("k samples/s")
model = conf.get("model") or result.get("model")
fig.suptitle(name + (f" ({model})" if model else ""))
plt.tight_layout()
plt.savefig(out + ".tmp.png", dpi=110)
os.replace(out + ".tmp.png", out)
print(f"wrote {out}: {name}, early-stopping metric {stop_metric}, best epoch {best}"
      + (f", early stop at epoch {last}" if stopped else ""))
