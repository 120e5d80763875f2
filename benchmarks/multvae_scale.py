"""Mult-VAE at scale (issue 6): ~100k users × 20k items of synthetic implicit feedback, the paper's
network (items → 600 → 200, mirrored) and batch (500 users). Records the time per epoch, the peak
resident memory of the process, and the ranking metrics on held-out users against popularity.
A dense users × items float32 matrix would need 8 GB; the data stays CSR and each batch is
densified on its own (batch × items), so the peak should be a small fraction of that.

    python benchmarks/multvae_scale.py                        # 100 000 × 20 000, 2 epochs
    python benchmarks/multvae_scale.py --users 20000 --items 5000 --epochs 3
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import torch

import genlab
from genlab.data.protocol import make_interactions, split_users


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--heldout", type=int, default=10_000, help="test users (the model holds out as many for validation)")
    args = ap.parse_args()

    start = time.perf_counter()
    data = make_interactions(args.users, args.items, args.groups, items_per_user=(20, 120), random_state=0)
    gen_seconds = time.perf_counter() - start
    X = data.matrix
    train_rows, _, test_rows = split_users(X.shape[0], args.heldout, random_state=0)
    train_rows = sorted(set(range(X.shape[0])) - set(test_rows))
    rss_data = peak_rss_gb()

    model = genlab.MultVAE(epochs=args.epochs, validation_users=args.heldout, random_state=0)
    start = time.perf_counter()
    model.fit(X[train_rows])
    fit_seconds = time.perf_counter() - start
    epoch_seconds = [r["time"] for r in model.history_]
    rss_fit = peak_rss_gb()
    start = time.perf_counter()
    ours = model.ranking_metrics(X[test_rows])
    eval_seconds = time.perf_counter() - start
    popular = genlab.Popularity().fit(X[train_rows]).ranking_metrics(X[test_rows])

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    fmt = lambda m: " / ".join(f"{m[k]:.3f}" for k in ("ndcg_at_100", "recall_at_20", "recall_at_50"))  # noqa: E731
    dense_gb = X.shape[0] * X.shape[1] * 4 / 2**30
    block = f"""
## Mult-VAE at scale: {X.shape[0]:,} users × {X.shape[1]:,} items (issue 6)

*Date:* {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  
*Machine:* {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, genlab {genlab.__version__}  
*Command:* `python benchmarks/multvae_scale.py --users {args.users} --items {args.items} --groups {args.groups} \\
--epochs {args.epochs} --heldout {args.heldout}`  
*Setting:* `make_interactions` with {args.groups} planted groups, 20–120 items per user ({X.nnz:,} interactions, generated in
{gen_seconds:.1f} s); `MultVAE()` defaults (600 → 200, batch 500, dropout 0.5), {len(train_rows):,} users to fit on of which
{args.heldout:,} are its validation users, {len(test_rows):,} test users.

| quantity | value |
|---|---:|
| time per epoch (median of {len(epoch_seconds)}) | {sorted(epoch_seconds)[len(epoch_seconds) // 2]:.0f} s |
| whole fit (incl. validation ranking each epoch) | {fit_seconds:.0f} s |
| ranking {len(test_rows):,} test users (3 metrics) | {eval_seconds:.0f} s |
| peak resident memory after loading the data | {rss_data:.2f} GB |
| peak resident memory after fit and evaluation | {peak_rss_gb():.2f} GB (fit alone: {rss_fit:.2f} GB) |
| the same matrix dense (never built) | {dense_gb:.1f} GB |
| NDCG@100 / Recall@20 / Recall@50, Mult-VAE | {fmt(ours)} |
| NDCG@100 / Recall@20 / Recall@50, popularity | {fmt(popular)} |
"""
    print(block)
    with open(Path(__file__).resolve().parent / "RESULTS.md", "a") as f:
        f.write(block)


if __name__ == "__main__":
    main()
