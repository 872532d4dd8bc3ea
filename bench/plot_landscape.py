#!/usr/bin/env python3
"""Draws the CSV of `shardrec landscape` as a PNG: a line for a 1-D surface, contours for 2-D.
Several CSVs (e.g. plain and mirror runs) are overlaid for 1-D surfaces.

  python3 bench/plot_landscape.py --out landscape.png plain.csv mg.csv   (needs: pip install matplotlib)
"""
import argparse, csv, os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("csv", nargs="+")
args = ap.parse_args()
rows = {p: [(float(r["a"]), float(r["b"]), float(r["loss"])) for r in csv.DictReader(open(p))] for p in args.csv}
two_d = any(len({b for _, b, _ in v}) > 1 for v in rows.values())
if not two_d:
    for p, v in rows.items():
        plt.plot([a for a, _, _ in v], [l for _, _, l in v], marker="o", ms=3, label=os.path.basename(p))
    plt.xlabel("distance along a random filter-normalised direction")
    plt.ylabel("training loss")
    plt.legend()
else:
    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 4), squeeze=False)
    for ax, (p, v) in zip(axes[0], rows.items()):
        xs, ys = sorted({a for a, _, _ in v}), sorted({b for _, b, _ in v})
        z = [[next(l for a, b, l in v if a == x and b == y) for x in xs] for y in ys]
        cs = ax.contour(xs, ys, z, levels=20)
        ax.clabel(cs, fontsize=6)
        ax.set_title(os.path.basename(p))
plt.tight_layout()
plt.savefig(args.out, dpi=120)
print("wrote", args.out)
