#!/usr/bin/env python3
"""XSimGCL written as SELFRec's code runs it, in PyTorch on the CPU, to check shardrec's XSimGCL
against on the same data: xavier-uniform init, the whole graph propagated at every mini-batch,
noise eps * sign(e) * normalize(u) on every layer in training, scoring rows the mean of layers
1..K, BPR with one uniform negative, SELFRec's L2 (reg * sum of the batch rows' norms / batch) and
lambda * InfoNCE (cosine / tau) between the final rows and layer l*'s over the batch's distinct
users and positive items. Prints test Recall@K / NDCG@K (full ranking, training items masked)
after the epochs asked for.

usage: xsimgcl_peer.py DATA.h5 --epochs 1,5,10 [--lambda 0.2 --eps 0.2 --layers 3 --cl-layer 1
       --tau 0.15 --dim 64 --batch 2048 --lr 1e-3 --reg 1e-4 --threads 2 --seed 1 --k 20]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from shardrec.files import read_dataset  # noqa: E402
from lightgcn_peer import normalized_adjacency  # noqa: E402  (this folder is on the path)


def metrics(user_emb, item_emb, train, test, k):
    """Recall@k and NDCG@k over users with test items, training items masked."""
    scores = user_emb @ item_emb.T
    scores[train.nonzero()] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    top = top[rows, np.argsort(-scores[rows, top], axis=1)]
    test = test.tocsr()
    rec, ndcg, n = 0.0, 0.0, 0
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for u in range(scores.shape[0]):
        t = test.indices[test.indptr[u]:test.indptr[u + 1]]
        if len(t) == 0:
            continue
        hit = np.isin(top[u], t)
        rec += hit.sum() / len(t)
        ndcg += (hit * disc).sum() / disc[:min(len(t), k)].sum()
        n += 1
    return rec / n, ndcg / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", default="1,5,10")
    ap.add_argument("--lambda", dest="lam", type=float, default=0.2)
    ap.add_argument("--eps", type=float, default=0.2)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--cl-layer", type=int, default=1)
    ap.add_argument("--tau", type=float, default=0.15)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--reg", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--k", type=int, default=20)
    a = ap.parse_args()
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    d = read_dataset(a.data)
    R = d.train.tocoo()
    U, I = R.shape
    A = normalized_adjacency(R)
    ue = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(U, a.dim)))
    ie = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(I, a.dim)))
    opt = torch.optim.Adam([ue, ie], lr=a.lr)

    def encode(perturbed):
        x = torch.cat([ue, ie], 0)
        layers, cl = [], x
        for k in range(a.layers):
            x = torch.sparse.mm(A, x)
            if perturbed:
                x = x + torch.sign(x) * F.normalize(torch.rand_like(x), dim=-1) * a.eps
            layers.append(x)
            if k == a.cl_layer - 1:
                cl = x
        final = torch.stack(layers, 1).mean(1)
        return final[:U], final[U:], cl[:U], cl[U:]

    def info_nce(v1, v2):
        v1, v2 = F.normalize(v1, dim=1), F.normalize(v2, dim=1)
        return -torch.diag(F.log_softmax(v1 @ v2.T / a.tau, dim=1)).mean()

    users = torch.from_numpy(R.row.astype(np.int64))
    pos = torch.from_numpy(R.col.astype(np.int64))
    n = users.numel()
    want = sorted(int(e) for e in a.epochs.split(","))
    train_csr = d.train.tocsr()
    for epoch in range(1, want[-1] + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        total = 0.0
        for s in range(0, n, a.batch):
            idx = perm[s:s + a.batch]
            u, i = users[idx], pos[idx]
            j = torch.randint(0, I, (idx.numel(),))
            fu, fi, cu, ci = encode(True)
            eu, ei, ej = fu[u], fi[i], fi[j]
            bpr = -torch.log(1e-5 + torch.sigmoid((eu * ei).sum(1) - (eu * ej).sum(1))).mean()
            uu, iu = torch.unique(u), torch.unique(i)
            cl = a.lam * (info_nce(fu[uu], cu[uu]) + info_nce(fi[iu], ci[iu]))
            reg = a.reg * (torch.norm(eu, p=2) / eu.shape[0] + torch.norm(ei, p=2) / ei.shape[0])
            loss = bpr + reg + cl
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * idx.numel()
        secs = time.perf_counter() - t0
        if epoch in want:
            with torch.no_grad():
                fu, fi, _, _ = encode(False)
            r, g = metrics(fu.numpy(), fi.numpy(), train_csr, d.test, a.k)
            print(f"epoch {epoch} loss {total / n:.4f} recall@{a.k} {r:.4f} ndcg@{a.k} {g:.4f} ({secs:.1f} s/epoch)",
                  flush=True)


if __name__ == "__main__":
    main()
