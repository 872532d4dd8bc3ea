#!/usr/bin/env python3
"""Recall of approximate recommend lists (shardrec recommend --index) against exact ones.

usage: python3 bench/faiss_recall.py EXACT.tsv APPROX.tsv [APPROX.tsv ...] [--ks 10,20]

Both are recommend's TSV output (user, rank, item, score, with a header). For each K, recall@K
is the fraction of the exact top K (pooled over users) that the approximate top K holds; users are
compared one to one (an approximate list may be shorter when the index found fewer items).
"""
import argparse
import csv
import sys


def lists(path):
    out = {}
    with open(path, newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        if next(rows) != ["user", "rank", "item", "score"]:
            sys.exit(f"{path}: not a recommend TSV (header user, rank, item, score)")
        for user, rank, item, _ in rows:
            out.setdefault(user, []).append((int(rank), item))
    return {u: [i for _, i in sorted(v)] for u, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exact")
    ap.add_argument("approx", nargs="+")
    ap.add_argument("--ks", default="10,20")
    a = ap.parse_args()
    ks = [int(k) for k in a.ks.split(",")]
    exact = lists(a.exact)
    print("file\t" + "\t".join(f"recall@{k}" for k in ks))
    for path in a.approx:
        got = lists(path)
        if sorted(got) != sorted(exact):
            sys.exit(f"{path}: not the same users as {a.exact}")
        cols = []
        for k in ks:
            want = sum(min(k, len(v)) for v in exact.values())
            if any(len(v) < k for v in exact.values()):
                print(f"note: {a.exact} has lists shorter than {k}", file=sys.stderr)
            hit = sum(len(set(exact[u][:k]) & set(got[u][:k])) for u in exact)
            cols.append(f"{hit / want:.4f}")
        print(path + "\t" + "\t".join(cols))


if __name__ == "__main__":
    main()
