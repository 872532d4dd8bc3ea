#!/usr/bin/env python3
"""LightGCN epoch time: shardrec against a PyTorch implementation on the same CPU, same data.

The PyTorch side follows the reference code (gusye1234/LightGCN-PyTorch): the normalised
(users + items) adjacency as a torch.sparse CSR matrix, the whole graph propagated at every
mini-batch (torch.sparse.mm, K layers, mean of layers 0..K), BPR with one uniform negative (no
rejection of seen items: cheaper than shardrec's sampler), L2 1e-4 on the batch's layer-0 rows,
dense Adam. Both sides time one epoch after setup (shardrec's first epoch includes building its
graph, about 1% of it). Rounds are interleaved (A B A B ...); medians are printed.

usage: lightgcn_peer.py DATA.h5 --shardrec build/shardrec [--rounds 3] [--dim 64] [--layers 3]
                        [--batch 2048] [--threads 1,2] [--ranks 2]
torch: pip install torch (the CPU is enough); the script says so and stops when it is missing.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from shardrec.files import read_dataset  # noqa: E402


def normalized_adjacency(R):
    """D^-1/2 [[0, R], [R^T, 0]] D^-1/2 over users then items, as a torch sparse CSR matrix."""
    import torch

    U, I = R.shape
    rows = np.concatenate([R.row, R.col + U])
    cols = np.concatenate([R.col + U, R.row])
    deg = np.bincount(rows, minlength=U + I).astype(np.float64)
    dinv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1)), 0.0)
    vals = (dinv[rows] * dinv[cols]).astype(np.float32)
    return torch.sparse_coo_tensor(np.vstack([rows, cols]), vals, (U + I, U + I)).coalesce().to_sparse_csr()


def torch_epoch(data, dim, layers, batch, threads, seed):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    R = read_dataset(data).train.tocoo()
    U, I = R.shape
    A = normalized_adjacency(R)
    emb = torch.nn.Parameter(torch.randn(U + I, dim) * 0.1)
    opt = torch.optim.Adam([emb], lr=1e-3)
    users = torch.from_numpy(R.row.astype(np.int64))
    pos = torch.from_numpy(R.col.astype(np.int64))
    n = users.numel()
    t0 = time.perf_counter()
    perm = torch.randperm(n)
    for s in range(0, n, batch):
        idx = perm[s:s + batch]
        u, i = users[idx], pos[idx]
        j = torch.randint(0, I, (idx.numel(),))
        x, acc = emb, emb
        for _ in range(layers):
            x = torch.sparse.mm(A, x)
            acc = acc + x
        final = acc / (layers + 1)
        eu, ei, ej = final[u], final[U + i], final[U + j]
        loss = torch.nn.functional.softplus((eu * ej).sum(1) - (eu * ei).sum(1)).mean()
        reg = 0.5 * (emb[u].pow(2).sum() + emb[U + i].pow(2).sum() + emb[U + j].pow(2).sum()) / idx.numel()
        opt.zero_grad()
        (loss + 1e-4 * reg).backward()
        opt.step()
    return time.perf_counter() - t0


def shardrec_epoch(binary, data, dim, layers, batch, threads, ranks):
    cmd = [binary, "train", "--data", data, "--model", "lightgcn", "--graph-layers", str(layers), "--dim", str(dim),
           "--batch", str(batch), "--l2", "1e-4", "--epochs", "1", "--eval-every", "0", "--final-eval", "false",
           "--threads", str(threads)]
    if ranks > 1:
        cmd = ["mpirun", "--oversubscribe", "-np", str(ranks)] + cmd
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    m = re.search(r"([0-9.]+)s per epoch", out)
    if not m:
        sys.exit("no epoch time in shardrec's output:\n" + out)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--shardrec", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--ranks", type=int, default=2)
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("torch is not installed (pip install torch): no peer to compare with")
    runs = {}
    for r in range(a.rounds):
        for t in [int(x) for x in a.threads.split(",")]:
            runs.setdefault(f"shardrec 1 rank x {t} thread(s)", []).append(
                shardrec_epoch(a.shardrec, a.data, a.dim, a.layers, a.batch, t, 1))
            runs.setdefault(f"torch {t} thread(s)", []).append(torch_epoch(a.data, a.dim, a.layers, a.batch, t, r))
        if a.ranks > 1:
            runs.setdefault(f"shardrec {a.ranks} ranks x 1 thread", []).append(
                shardrec_epoch(a.shardrec, a.data, a.dim, a.layers, a.batch, 1, a.ranks))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in runs.items()), flush=True)
    print(f"\nmedian seconds per epoch over {a.rounds} interleaved rounds (dim {a.dim}, K {a.layers}, batch {a.batch}):")
    for k, v in runs.items():
        print(f"  {k:32s} {statistics.median(v):8.2f}")


if __name__ == "__main__":
    main()
