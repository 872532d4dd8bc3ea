#!/usr/bin/env python3
"""Draws the CSV of `shardrec landscape` as a PNG: a line for a 1-D surface, filled contours with
a colorbar for 2-D, axes labelled by the direction, and the sharpness from the CSV's OUT.json
(written beside it by the command) in each title. Several CSVs (e.g. plain and mirror runs) are
overlaid for 1-D surfaces and drawn side by side for 2-D ones.

  python3 bench/plot_landscape.py --out landscape.png plain.csv mg.csv   (needs: pip install matplotlib)
"""
import argparse, csv, json, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--title", help="the figure's title")
ap.add_argument("csv", nargs="+")
args = ap.parse_args()
try:
    rows = {p: [(float(r["a"]), float(r["b"]), float(r["loss"])) for r in csv.DictReader(open(p))] for p in args.csv}
except (OSError, KeyError, ValueError) as e:
    sys.exit(f"error: {e} (want the CSV of shardrec landscape: a,b,loss)")


def sharpness(p):
    """'sharpness 0.0123 (r = 0.1, 4 dirs)' from P.json, or '' when there is none."""
    try:
        s = json.load(open(p + ".json"))
        return (f"loss {s['base_loss']:.4g}, sharpness {s['sharpness_mean']:.3g} (max {s['sharpness_max']:.3g}; "
                f"radius {s['sharpness_radius']:g}, {s['directions']} directions)")
    except (OSError, KeyError, ValueError, TypeError):
        return ""


two_d = any(len({b for _, b, _ in v}) > 1 for v in rows.values())
if not two_d:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p, v in rows.items():
        s = sharpness(p)
        ax.plot([a for a, _, _ in v], [l for _, _, l in v], marker="o", ms=3,
                label=os.path.basename(p) + (f": {s}" if s else ""))
    ax.set_xlabel("step along direction 1 (random, filter-normalised)")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8)
else:
    fig, axes = plt.subplots(1, len(rows), figsize=(6 * len(rows), 5), squeeze=False)
    for ax, (p, v) in zip(axes[0], rows.items()):
        xs, ys = sorted({a for a, _, _ in v}), sorted({b for _, b, _ in v})
        z = {(a, b): l for a, b, l in v}
        grid = [[z[(x, y)] for x in xs] for y in ys]
        filled = ax.contourf(xs, ys, grid, levels=20, cmap="viridis")
        lines = ax.contour(xs, ys, grid, levels=10, colors="white", linewidths=0.5)
        ax.clabel(lines, fontsize=6)
        fig.colorbar(filled, ax=ax, label="training loss")
        ax.plot([0], [0], marker="+", color="red", ms=10)  # the trained parameters
        ax.set_xlabel("step along direction 1 (random, filter-normalised)")
        ax.set_ylabel("step along direction 2")
        s = sharpness(p)
        ax.set_title(os.path.basename(p) + (f"\n{s}" if s else ""), fontsize=9)
if args.title:
    fig.suptitle(args.title)
plt.tight_layout()
plt.savefig(args.out + ".tmp.png", dpi=120)
os.replace(args.out + ".tmp.png", args.out)
print("wrote", args.out)
for p in rows:
    s = sharpness(p)
    if s: print(f"  {os.path.basename(p)}: {s}")
