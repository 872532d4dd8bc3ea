#!/usr/bin/env python3
"""Training throughput of shardrec's MF-BPR against the `implicit` library's BPR, same data.

Makes (or reuses) a synthetic dataset with `shardrec synth`, trains MF-BPR with plain SGD and
with lazy Adam on 1 and 2 MPI ranks (one thread each), and implicit's CPU BPR with the same
factors on the same training interactions with 1 and 2 threads, interleaved over --rounds rounds
(A B A B ...) so that a disturbance of the machine hits every system alike. Prints Markdown
tables (median samples/s and ratios; peak memory per rank against its share of tables +
optimizer state + data) for docs/benchmarks.md. Installs implicit with pip when it is missing.

usage: python3 bench/compare_implicit.py [--users N --items N --interactions N --epochs E --rounds R]
"""
import argparse, json, os, platform, statistics, subprocess, sys, time

def sh(cmd, env=None):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shardrec", default="build/shardrec")
    ap.add_argument("--work", default="runs/bench")
    ap.add_argument("--users", type=int, default=200000)
    ap.add_argument("--items", type=int, default=50000)
    ap.add_argument("--interactions", type=int, default=12500000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=0.05, help="implicit's per-sample rate; shardrec's batch-mean loss gets lr x batch")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--optimizers", default="sgd,adam")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    try:
        import implicit  # noqa: F401
    except ImportError:
        sh([sys.executable, "-m", "pip", "install", "--quiet", "implicit", "h5py", "scipy"])
    os.makedirs(args.work, exist_ok=True)
    data = os.path.join(args.work, f"synth_{args.users}_{args.items}_{args.interactions}.h5")
    if not os.path.exists(data):
        sh([args.shardrec, "synth", "--out", data, "--users", str(args.users), "--items", str(args.items),
            "--interactions", str(args.interactions), "--seed", "1"])
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    import h5py, numpy as np, scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    import implicit
    with h5py.File(data, "r") as f:
        indptr = f["train/indptr"][:]
        item = f["train/item"][:]
        nu, ni = int(f.attrs["num_users"]), int(f.attrs["num_items"])
    ui = sp.csr_matrix((np.ones(len(item), dtype=np.float32), item, indptr), shape=(nu, ni))
    ranks = [int(x) for x in args.ranks.split(",")]
    runs = {}  # name -> dict(threads, rates [per round], loss, mem)

    def shardrec_run(opt, r):
        run = os.path.join(args.work, f"shardrec_{opt}_np{r}")
        # implicit's per-sample rate for SGD (shardrec's loss is the batch mean: lr x batch);
        # Adam normalises the step, so it takes its usual rate.
        lr = args.lr * args.batch if opt == "sgd" else 0.01
        sh(["mpirun", "--oversubscribe", "--bind-to", "core", "-np", str(r), args.shardrec, "train",
            "--data", data, "--run-dir", run, "--optimizer", opt, "--lr", str(lr), "--dim", str(args.dim),
            "--batch", str(args.batch), "--epochs", str(args.epochs), "--eval-every", "0",
            "--final-eval", "false", "--quiet"], env=env)
        epochs = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
        res = json.load(open(os.path.join(run, "result.json")))
        name = f"shardrec MF-BPR, {'SGD' if opt == 'sgd' else 'lazy Adam'}, {r} rank(s) x 1 thread"
        e = runs.setdefault(name, dict(threads=r, rates=[], loss=None, mem=None, kind="shardrec", opt=opt))
        e["rates"].append(max(x["samples_per_s"] for x in epochs))  # best epoch of the run
        e["loss"], e["mem"] = epochs[-1]["loss"], res["memory"]

    def implicit_run(t):
        model = BayesianPersonalizedRanking(factors=args.dim, learning_rate=args.lr, regularization=0.0,
                                            iterations=args.epochs, num_threads=t, random_state=1)
        t0 = time.perf_counter()
        model.fit(ui, show_progress=False)
        secs = time.perf_counter() - t0
        name = f"implicit {implicit.__version__} BPR (SGD), {t} thread(s)"
        e = runs.setdefault(name, dict(threads=t, rates=[], loss=None, mem=None, kind="implicit", opt="sgd"))
        e["rates"].append(ui.nnz * args.epochs / secs)

    for rnd in range(args.rounds):
        for r in ranks:
            for opt in args.optimizers.split(","):
                shardrec_run(opt, r)
            implicit_run(r)
    rows = [dict(name=k, rate=statistics.median(v["rates"]), **v) for k, v in runs.items()]
    by = {(r["kind"], r["opt"], r["threads"]): r["rate"] for r in rows}
    print(f"\nData: `shardrec synth` {args.users} users, {args.items} items, {ui.nnz} training "
          f"interactions; dim {args.dim}, {args.epochs} epoch(s), batch {args.batch}, lr {args.lr}; "
          f"medians of {args.rounds} interleaved rounds.")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d')}.\n")
    print("| run | median samples/s | rounds | vs implicit SGD, same threads |")
    print("|---|---:|---|---:|")
    for r in rows:
        ref = by.get(("implicit", "sgd", r["threads"]))
        ratio = f"{r['rate'] / ref:.2f}x" if ref and r["kind"] != "implicit" else ""
        each = ", ".join(f"{x / 1e6:.2f}M" for x in r["rates"])
        print(f"| {r['name']} | {r['rate']:,.0f} | {each} | {ratio} |")
    for opt in args.optimizers.split(","):
        if ("shardrec", opt, 1) in by and ("shardrec", opt, 2) in by:
            print(f"\nshardrec {opt} scaling, 2 ranks / 1 rank: {by[('shardrec', opt, 2)] / by[('shardrec', opt, 1)]:.2f}x")
    print("\nPeak memory per rank (MiB) against its share (tables + optimizer state + data slices):\n")
    print("| ranks | rank | peak RSS | tables | optimizer | data | bound 1.5 x share + 200 | within |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        for m in r["mem"] or []:
            share = m["tables_mib"] + m["optimizer_mib"] + m["data_mib"]
            bound = 1.5 * share + 200
            print(f"| {r['threads']} | {m['rank']} | {m['peak_rss_mib']:.0f} | {m['tables_mib']:.0f} | "
                  f"{m['optimizer_mib']:.0f} | {m['data_mib']:.0f} | {bound:.0f} | "
                  f"{'yes' if m['peak_rss_mib'] <= bound else 'NO'} |")

if __name__ == "__main__":
    main()
