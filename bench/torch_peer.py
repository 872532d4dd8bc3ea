#!/usr/bin/env python3
"""The PyTorch peer of bench_gpu's end-to-end row: MF-BPR on the same interactions (bench_gpu --dump),
on the same GPU, with the closest PyTorch setup: nn.Embedding(sparse=True) tables and SparseAdam
(lazy Adam, as shardrec's --optimizer adam), uniform negatives drawn on the GPU (torch.randint; no
rejection of seen items, which shardrec does on the host), xavier-normal init, one shuffle per epoch.
Prints one tab-separated line per batch size, in bench_gpu's format.
Usage: torch_peer.py DUMP [--dim 64] [--batch 65536,4096] [--epochs 2] [--lr 0.001]"""
import argparse
import sys
import time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", default="65536,4096")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.001)
    a = ap.parse_args()
    with open(a.dump, "rb") as f:
        users, items, n = np.frombuffer(f.read(24), dtype=np.int64)
        u = np.frombuffer(f.read(4 * n), dtype=np.int32)
        i = np.frombuffer(f.read(4 * n), dtype=np.int32)
    dev = torch.device("cuda")
    U_all = torch.from_numpy(u.astype(np.int64)).to(dev)
    I_all = torch.from_numpy(i.astype(np.int64)).to(dev)
    for batch in [int(b) for b in a.batch.split(",")]:
        torch.manual_seed(0)
        U = torch.nn.Embedding(int(users), a.dim, sparse=True).to(dev)
        I = torch.nn.Embedding(int(items), a.dim, sparse=True).to(dev)
        torch.nn.init.xavier_normal_(U.weight)
        torch.nn.init.xavier_normal_(I.weight)
        opt = torch.optim.SparseAdam(list(U.parameters()) + list(I.parameters()), lr=a.lr)
        last = 0.0
        loss_sum = 0.0
        for epoch in range(a.epochs):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            perm = torch.randperm(int(n), device=dev)
            total = torch.zeros((), device=dev)
            for s in range(0, int(n), batch):
                idx = perm[s:s + batch]
                bu, bi = U_all[idx], I_all[idx]
                bj = torch.randint(0, int(items), bi.shape, device=dev)
                pu = U(bu)
                x = (pu * (I(bi) - I(bj))).sum(-1)
                loss = torch.nn.functional.softplus(-x).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach() * idx.numel()
            torch.cuda.synchronize()
            last = time.perf_counter() - t0
            loss_sum = float(total) / float(n)
        print(f"e2e\tpytorch {torch.__version__}\tmf-bpr\tbatch={batch}\tdim={a.dim}\tinteractions={int(n)}\t"
              f"epochs={a.epochs}\tlast_epoch_s={last:.2f}\tsamples_per_s={n / last:.0f}\tloss={loss_sum:.5f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
