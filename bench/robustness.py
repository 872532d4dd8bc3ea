#!/usr/bin/env python3
"""Robustness curves and sharpness of trained runs, per strategy, mean ± std over seeds.

For the runs of a bench/grid.py directory (NAME_sSEED/params.h5) this evaluates the test split
under item-feature noise and information adjustment (`shardrec eval --perturb`) and computes the
sharpness number (`shardrec landscape`), then prints Markdown tables.

  python3 bench/robustness.py --grid runs/grid_vbpr --data 'runs/ml100k/vbpr_s{seed}.h5' \\
      --strategies plain,mg --seeds 1,2,3 --metric recall@20
"""
import argparse, json, os, statistics as st, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("--shardrec", default="build/shardrec")
ap.add_argument("--grid", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--strategies", default="plain,mg")
ap.add_argument("--seeds", default="1,2,3")
ap.add_argument("--metric", default="recall@20")
ap.add_argument("--noise", default="0.1,0.5,1")
ap.add_argument("--adjust", default="0.1,0.3,0.5")
ap.add_argument("--radius", default="0.25")
args = ap.parse_args()
seeds = args.seeds.split(",")
k = args.metric.split("@")[1]
res = {}
for name in args.strategies.split(","):
    for s in seeds:
        run = os.path.join(args.grid, f"{name}_s{s}")
        data = args.data.format(seed=s)
        rob = os.path.join(run, "robustness.json")
        if not os.path.exists(rob):
            subprocess.run([args.shardrec, "eval", "--data", data, "--params", f"{run}/params.h5", "--ks", k,
                            "--pointwise", "false", "--perturb", f"noise:{args.noise}", f"adjust:{args.adjust}",
                            "--out", rob], check=True, stdout=subprocess.DEVNULL)
        land = os.path.join(run, "landscape.csv")
        if not os.path.exists(land + ".json"):
            subprocess.run([args.shardrec, "landscape", "--data", data, "--params", f"{run}/params.h5", "--out", land,
                            "--dims", "1", "--steps", "21", "--sharpness-dirs", "8", "--sharpness-radius", args.radius,
                            "--batch", "2048"], check=True, stdout=subprocess.DEVNULL)
        res[name, s] = (json.load(open(rob)), json.load(open(land + ".json")))

def ms(v):
    return f"{st.mean(v):.4f} ± {st.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"

shifts = [(x["kind"], x["strength"]) for x in res[next(iter(res))][0]["shifted"]]
print(f"Test {args.metric} under shifted item features (relative drop from the clean value), "
      f"mean ± std over seeds {args.seeds}:\n")
print("| shift | " + " | ".join(args.strategies.split(",")) + " |")
print("|---|" + "---|" * len(args.strategies.split(",")))
print("| clean (value) | " + " | ".join(ms([res[n, s][0]["clean"][args.metric] for s in seeds]) for n in args.strategies.split(",")) + " |")
for i, (kind, strength) in enumerate(shifts):
    cells = []
    for n in args.strategies.split(","):
        drops = [res[n, s][0]["shifted"][i]["metrics"][args.metric] / res[n, s][0]["clean"][args.metric] - 1 for s in seeds]
        cells.append(f"{100 * st.mean(drops):+.1f}% ± {100 * st.stdev(drops) if len(drops) > 1 else 0:.1f}")
    print(f"| {kind} {strength:g} | " + " | ".join(cells) + " |")
print(f"\nSharpness (mean loss increase at radius {args.radius} over 8 filter-normalised directions) "
      "and training loss at the trained point:\n")
print("| strategy | sharpness | training loss |")
print("|---|---|---|")
for n in args.strategies.split(","):
    print(f"| {n} | {ms([res[n, s][1]['sharpness_mean'] for s in seeds])} | {ms([res[n, s][1]['base_loss'] for s in seeds])} |")
