#!/usr/bin/env python3
"""Two builds of shardrec, A and B, trained on the same synthetic set, interleaved (A B A B ...) in
every round, so that both see the same machine: median samples/s per layout and the ratio B / A.

    python3 bench/compare_builds.py --a /tmp/base/build/shardrec --b build/shardrec --rounds 3

Layouts: "RxT" = R ranks x T threads each (mpirun --bind-to core for one thread a rank, none
otherwise). The set is written once with B's `synth`. Run it on a quiet machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def sh(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="the baseline shardrec binary")
    ap.add_argument("--b", required=True, help="the candidate shardrec binary")
    ap.add_argument("--work", default="runs/compare_builds")
    ap.add_argument("--users", type=int, default=200000)
    ap.add_argument("--items", type=int, default=50000)
    ap.add_argument("--interactions", type=int, default=12500000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--layouts", default="1x1,1x2,2x1")
    ap.add_argument("--optimizers", default="sgd,adam")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data = os.path.join(args.work, f"synth_{args.users}_{args.items}_{args.interactions}.h5")
    if not os.path.exists(data):
        sh([args.b, "synth", "--out", data, "--users", str(args.users), "--items", str(args.items),
            "--interactions", str(args.interactions), "--seed", "1"])
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    rates = {}  # (opt, layout, "a"/"b") -> [samples/s per round]
    loss = {}

    def run(which, binary, opt, layout):
        r, t = (int(x) for x in layout.split("x"))
        d = os.path.join(args.work, f"{which}_{opt}_{layout}")
        lr = 0.05 * args.batch if opt == "sgd" else 0.01  # SGD on the batch-mean loss: implicit's 0.05 x batch
        sh(["mpirun", "--oversubscribe", "--bind-to", "core" if t == 1 else "none", "-np", str(r), binary, "train",
            "--data", data, "--run-dir", d, "--optimizer", opt, "--lr", str(lr), "--dim", str(args.dim),
            "--batch", str(args.batch), "--epochs", "1", "--eval-every", "0", "--final-eval", "false",
            "--threads", str(t), "--quiet"], env=env)
        epoch = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))][-1]
        rates.setdefault((opt, layout, which), []).append(epoch["samples_per_s"])
        loss[(opt, layout, which)] = epoch["loss"]

    for _ in range(args.rounds):
        for layout in args.layouts.split(","):
            for opt in args.optimizers.split(","):
                run("a", args.a, opt, layout)
                run("b", args.b, opt, layout)
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; {args.users} users x {args.items} items, "
          f"dim {args.dim}, batch {args.batch}, one epoch; medians of {args.rounds} interleaved rounds\n")
    print("| run | A samples/s | B samples/s | B / A | A rounds | B rounds | same loss |")
    print("|---|---:|---:|---:|---|---|---|")
    for layout in args.layouts.split(","):
        for opt in args.optimizers.split(","):
            a, b = rates[(opt, layout, "a")], rates[(opt, layout, "b")]
            ma, mb = statistics.median(a), statistics.median(b)
            r, t = layout.split("x")
            name = f"{'SGD' if opt == 'sgd' else 'lazy Adam'}, {r} rank(s) x {t} thread(s)"
            same = "yes" if loss[(opt, layout, "a")] == loss[(opt, layout, "b")] else "no"
            print(f"| {name} | {ma:,.0f} | {mb:,.0f} | {mb / ma:.2f}x | "
                  f"{', '.join(f'{x / 1e6:.2f}M' for x in a)} | {', '.join(f'{x / 1e6:.2f}M' for x in b)} | {same} |")


if __name__ == "__main__":
    main()
