"""Mult-VAE's sparse first layer (issue 13, item 3): one training epoch at 20,000 users × 20,000 items
(~0.5M interactions, ``make_interactions``; the paper's 600 → 200 network, batch 500, dropout 0.5, Adam),
genlab against hand-written loops of the same model:

* ``genlab``       — ``MultVAE(epochs=1, validation_users=0)``; the epoch's time from its history;
* ``hand-bag``     — a hand-written loop whose first layer is ``embedding_bag`` over an items × 600 weight
                     (the same kernel genlab uses: the fastest sparse loop we know how to write);
* ``hand-sparsemm``— a hand-written loop that multiplies the sparse batch with ``torch.sparse.mm`` into an
                     ``nn.Linear`` weight (the obvious sparse loop, the reference of the issue);
* ``hand-dense``   — a hand-written loop that densifies each batch (what genlab did before).

Each measurement runs in a fresh process, interleaved (A B C D A B C D ...); the median per variant is
reported, as a ratio to genlab. Data generation is outside the timed part.

    python benchmarks/multvae_sparse.py               # 3 rounds
    python benchmarks/multvae_sparse.py --rounds 5 --users 20000 --items 20000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

VARIANTS = ("genlab", "hand-bag", "hand-sparsemm", "hand-dense")


def _data(users: int, items: int):
    from genlab.data.protocol import make_interactions

    return make_interactions(users, items, 50, items_per_user=(10, 40), random_state=0).matrix


def _hand_epoch(X, variant: str) -> float:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    n_items, hidden, latent, batch, p = X.shape[1], 600, 200, 500, 0.5
    if variant == "hand-bag":
        first_w = nn.Parameter(torch.empty(n_items, hidden).uniform_(-n_items ** -0.5, n_items ** -0.5))
    else:
        first_w = nn.Parameter(torch.empty(hidden, n_items).uniform_(-n_items ** -0.5, n_items ** -0.5))
    first_b = nn.Parameter(torch.zeros(hidden))
    rest = nn.Linear(hidden, 2 * latent)
    decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_items))
    params = [first_w, first_b, *rest.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    X = X.tocsr().astype(np.float32)
    order = np.random.default_rng(0).permutation(X.shape[0])
    start = time.perf_counter()
    for s in range(0, X.shape[0], batch):
        part = X[order[s:s + batch]]
        rows = torch.from_numpy(np.repeat(np.arange(part.shape[0]), np.diff(part.indptr)))
        cols = torch.from_numpy(part.indices.astype(np.int64))
        values = torch.from_numpy(part.data)
        norms = torch.zeros(part.shape[0]).index_add_(0, rows, values.square()).sqrt().clamp(min=1e-12)
        kept = values / norms[rows] * (torch.rand(len(values)) >= p) / (1 - p)
        if variant == "hand-dense":
            dense = torch.zeros(part.shape).index_put_((rows, cols), kept, accumulate=True)
            h = dense @ first_w.t() + first_b
        elif variant == "hand-bag":
            offsets = torch.from_numpy(part.indptr[:-1].astype(np.int64))
            h = F.embedding_bag(cols, first_w, offsets, mode="sum", per_sample_weights=kept) + first_b
        else:
            coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), kept, part.shape)
            h = torch.sparse.mm(coo, first_w.t()) + first_b
        mu, logvar = rest(torch.tanh(h)).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        log_p = torch.log_softmax(decoder(z), dim=1)
        nll = -torch.zeros(part.shape[0]).index_add_(0, rows, log_p[rows, cols] * values)
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=1)
        loss = (nll + 0.2 * kl).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def _one(variant: str, users: int, items: int) -> None:
    X = _data(users, items)
    if variant == "genlab":
        import genlab

        model = genlab.MultVAE(epochs=1, validation_users=0, random_state=0).fit(X)
        seconds = model.history_[0]["time"]
    else:
        seconds = _hand_epoch(X, variant)
    print(json.dumps({"variant": variant, "seconds": seconds, "nnz": int(X.nnz)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return _one(args.one, args.users, args.items)
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    nnz = 0
    for r in range(args.rounds):
        for variant in args.variants:  # interleaved, each in a fresh process
            out = subprocess.run([sys.executable, __file__, "--one", variant, "--users", str(args.users), "--items",
                                  str(args.items)], capture_output=True, text=True, check=True)
            doc = json.loads(out.stdout.strip().splitlines()[-1])
            times[variant].append(doc["seconds"])
            nnz = doc["nnz"]
            print(f"round {r + 1}: {variant:14s} {doc['seconds']:.2f} s", flush=True)
    ref = statistics.median(times["genlab"]) if "genlab" in times else None
    print(f"\n{args.users} users × {args.items} items, {nnz} interactions; one epoch, median of {args.rounds} fresh processes")
    for variant, ts in times.items():
        med = statistics.median(ts)
        ratio = f"  {med / ref:.2f}× genlab's time" if ref else ""
        print(f"  {variant:14s} {med:7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ts)}){ratio}")


if __name__ == "__main__":
    main()
