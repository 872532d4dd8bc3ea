#!/usr/bin/env python3
"""Runs a grid of training strategies x seeds and reports the spread.

For every (strategy, seed) it runs `shardrec train` (under mpirun when --np > 1), then prints a
Markdown table: mean ± std of each test metric per strategy over the seeds, the paired
difference of each strategy against the first (the baseline) with a 95% confidence interval
(Student t over the seed pairs), and the mean training time per epoch relative to the baseline.

  python3 bench/grid.py --data 'runs/ml100k/data_s{seed}.h5' --config launch/configs/ml100k-recbole.ini \\
      --strategy plain= --strategy 'mg=--strategy mirror --mg-alpha2 0.2' --seeds 1,2,3 \\
      --metrics recall@20,ndcg@20 --out runs/grid_ml100k
"""
import argparse, json, os, shlex, statistics as st, subprocess, sys

# Two-sided 95% Student t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}

def t95(dof):
    keys = [k for k in sorted(T95) if k <= dof]
    return T95[keys[-1]] if keys else T95[1]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shardrec", default="build/shardrec")
    ap.add_argument("--data", required=True, help="dataset path; {seed} is replaced")
    ap.add_argument("--config", required=True)
    ap.add_argument("--strategy", action="append", required=True, help="NAME=extra train flags")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--metrics", default="recall@20,ndcg@20")
    ap.add_argument("--np", type=int, default=1)
    ap.add_argument("--extra", default="", help="flags for every run")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = [s.split("=", 1) for s in args.strategy]
    metrics = args.metrics.split(",")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    res = {}
    for name, flags in strategies:
        for s in seeds:
            run = os.path.join(args.out, f"{name}_s{s}")
            if not os.path.exists(os.path.join(run, "result.json")):
                cmd = [args.shardrec, "train", "--config", args.config, "--data", args.data.format(seed=s),
                       "--seed", str(s), "--run-dir", run, "--quiet"] + shlex.split(args.extra) + shlex.split(flags)
                if args.np > 1:
                    cmd = ["mpirun", "--oversubscribe", "-np", str(args.np)] + cmd
                print("+", " ".join(cmd), file=sys.stderr, flush=True)
                subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            r = json.load(open(os.path.join(run, "result.json")))
            ep = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
            res[name, s] = dict(test=r["test"], best=r["best_epoch"], epochs=r["epochs_run"],
                                sec=st.mean(e["seconds"] for e in ep))
    base = strategies[0][0]
    print(f"Seeds {args.seeds}; config `{args.config}`; data `{args.data}`; extra `{args.extra}`.\n")
    print("| strategy | " + " | ".join(f"{m} (mean ± std)" for m in metrics) + " | best epochs | s/epoch vs " + base + " |")
    print("|---|" + "---|" * len(metrics) + "---|---|")
    for name, flags in strategies:
        cells = []
        for m in metrics:
            v = [res[name, s]["test"][m] for s in seeds]
            cells.append(f"{st.mean(v):.4f} ± {st.stdev(v) if len(v) > 1 else 0:.4f}")
        rel = st.mean(res[name, s]["sec"] for s in seeds) / st.mean(res[base, s]["sec"] for s in seeds)
        best = ",".join(str(res[name, s]["best"]) for s in seeds)
        print(f"| {name} (`{flags or 'defaults'}`) | " + " | ".join(cells) + f" | {best} | {rel:.2f}x |")
    print(f"\nPaired difference against `{base}` (same seed = same split, init and negatives), "
          "mean and 95% CI over seeds:\n")
    print("| strategy | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for name, _ in strategies[1:]:
        cells = []
        for m in metrics:
            d = [res[name, s]["test"][m] - res[base, s]["test"][m] for s in seeds]
            half = t95(len(d) - 1) * st.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
            cells.append(f"{st.mean(d):+.4f} [{st.mean(d) - half:+.4f}, {st.mean(d) + half:+.4f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nPer run (test): " + "; ".join(
        f"{n} s{s}: " + ", ".join(f"{m} {res[n, s]['test'][m]:.4f}" for m in metrics) for n, _ in strategies for s in seeds))

if __name__ == "__main__":
    main()
