#!/usr/bin/env python3
"""prep at scale: `shardrec prep` on a large CSV against pyarrow's CSV reader, interleaved.

Writes a CSV of --rows rows (`user,item,rating,timestamp`, a header line; users uniform, items
skewed), once per size, then runs rounds of: pyarrow.csv.read_csv with 1 thread, shardrec prep
on 1 rank, pyarrow with 2 threads, shardrec prep on 2 ranks (ratio split 0.8/0.1/0.1). Each run
is timed as a whole process, with its peak memory (per rank) from /usr/bin/time -v. pyarrow only
reads (no dedup, split or write); prep does all of it. Prints a markdown table of medians.

usage: python3 bench/prep_scale.py --shardrec build/shardrec --rows 100000000 --dir /tmp/prepbench
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time


def make_csv(path, rows, seed=1):
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    users, items = max(rows // 50, 10), max(rows // 500, 10)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        first = True
        for start in range(0, rows, 5_000_000):
            m = min(5_000_000, rows - start)
            t = pa.table({
                "user": rng.integers(0, users, m),
                "item": (items * rng.random(m) ** 3).astype(np.int64),
                "rating": rng.integers(1, 6, m),
                "timestamp": 900_000_000 + rng.integers(0, 100_000_000, m),
            })
            pcsv.write_csv(t, f, pcsv.WriteOptions(include_header=first, quoting_style="none"))
            first = False
    os.replace(tmp, path)


def timed(cmd, env=None):
    """Seconds of the whole command and the peak RSS (MiB) of each /usr/bin/time -v it ran."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")
    rss = [int(x) / 1024 for x in re.findall(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)]
    return dt, max(rss) if rss else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shardrec", default="build/shardrec")
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--dir", default="/tmp/prepbench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--memory-budget", default="0", help="passed to prep (MiB a rank; 0 = none)")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    csv = os.path.join(args.dir, f"log_{args.rows}.csv")
    if not os.path.exists(csv):
        t0 = time.perf_counter()
        make_csv(csv, args.rows)
        print(f"wrote {csv}: {os.path.getsize(csv) / 2**30:.2f} GiB in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    size = os.path.getsize(csv)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    reader = ("import sys, pyarrow, pyarrow.csv as c; pyarrow.set_cpu_count(int(sys.argv[2])); "
              "t = c.read_csv(sys.argv[1], read_options=c.ReadOptions(use_threads=int(sys.argv[2]) > 1)); "
              "print(t.num_rows)")
    runs = {}
    out = os.path.join(args.dir, "out.h5")
    for r in range(args.rounds):
        for n in [int(x) for x in args.ranks.split(",")]:
            key = f"pyarrow read_csv, {n} thread{'s' if n > 1 else ''}"
            runs.setdefault(key, []).append(timed(["/usr/bin/time", "-v", sys.executable, "-c", reader, csv, str(n)]))
            key = f"shardrec prep, {n} rank{'s' if n > 1 else ''}"
            cmd = [args.mpiexec, "--oversubscribe", "-np", str(n), "/usr/bin/time", "-v", args.shardrec, "prep",
                   "--input", csv, "--header", "true", "--rating-col", "rating", "--time-col", "timestamp",
                   "--out", out, "--progress", "0", "--memory-budget", args.memory_budget]
            runs.setdefault(key, []).append(timed(cmd, env))
            print(f"round {r + 1}: {key}: {runs[key][-1][0]:.1f} s", file=sys.stderr)
    print(f"{args.rows:,} rows, {size / 2**30:.2f} GiB CSV; medians of {args.rounds} interleaved rounds\n")
    print("| run | seconds | rows/s | peak RSS per rank (MiB) | vs pyarrow read, same threads |")
    print("|---|---:|---:|---:|---:|")
    med = {k: (statistics.median(t for t, _ in v), max(m for _, m in v)) for k, v in runs.items()}
    for k, (t, m) in med.items():
        ratio = ""
        if k.startswith("shardrec"):
            n = k.split(", ")[1].split(" ")[0]
            peer = f"pyarrow read_csv, {n} thread{'s' if n != '1' else ''}"
            ratio = f"{med[peer][0] / t:.2f}x"
        print(f"| {k} | {t:.1f} | {args.rows / t / 1e6:.2f}M | {m:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
