"""EASE as the baseline of `genlab recommend` (issue 16, item 6): Mult-VAE against popularity and EASE on a
MovieLens-format ratings file, through the real command line, over several seeds of the user split.

The ratings are synthetic but shaped like MovieLens' ``ratings.csv`` (userId,movieId,rating,timestamp):

* taste: every user belongs to one of ``--groups`` taste groups and every item to one of the same number of
  genres; user and item factors (dimension 16) are their group's centre plus individual noise, so users of a
  group like that genre's items, and individuals differ;
* popularity skew: item log-popularity falls off as Zipf (exponent 1) over a random order of the items;
* activity skew: the number of ratings per user is log-normal (median 45, at least 20, at most 600 or the
  item count);
* which items a user rates: drawn without replacement with probability ∝ exp(log-popularity + affinity),
  (Gumbel top-k), so popular items and items of the user's taste are rated most;
* the rating: 3.5 + user bias + item quality + 0.7 · affinity (standardised over the rated items) + noise,
  rounded to half stars in 0.5–5 (a little under half are above 3.5, as on MovieLens).

For each seed, `genlab recommend fit --seed S` splits the users (10% validation, 10% test), fits Mult-VAE,
evaluates it and fits the EASE baseline (λ chosen on the validation users); the numbers are read back from
the run's metrics.json.

    python benchmarks/recommend_ease.py                          # 5000 users × 2500 items, seeds 0 and 1
    python benchmarks/recommend_ease.py --seeds 0 1 2 --epochs 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import genlab

FACTORS = 16
METRICS = ("ndcg_at_100", "recall_at_20", "recall_at_50")


def make_ratings(n_users: int, n_items: int, n_groups: int, seed: int) -> np.ndarray:
    """(user id, item id, rating, timestamp) rows, float64, shaped like MovieLens' ratings (see the module docstring)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (n_groups, FACTORS))
    users = centres[rng.integers(n_groups, size=n_users)] + rng.normal(0.0, 0.9, (n_users, FACTORS))
    items = centres[rng.integers(n_groups, size=n_items)] + rng.normal(0.0, 0.7, (n_items, FACTORS))
    affinity = users @ items.T / np.sqrt(FACTORS)  # (n_users, n_items), about unit variance per entry
    log_popularity = -np.log1p(rng.permutation(n_items))  # Zipf(1) over a random order of the items
    n_rated = np.clip(np.round(rng.lognormal(np.log(45.0), 0.9, n_users)), 20, min(600, n_items)).astype(int)
    gumbel = -np.log(-np.log(rng.random((n_users, n_items))))
    order = np.argsort(-(log_popularity + affinity + gumbel), axis=1)  # Gumbel top-k: sampling without replacement
    rows = []
    user_bias, item_quality = rng.normal(0.0, 0.4, n_users), rng.normal(0.0, 0.4, n_items)
    rated = np.concatenate([affinity[u, order[u, :n_rated[u]]] for u in range(n_users)])
    centre, scale = rated.mean(), rated.std()  # rated items are liked more than average: standardise among them
    for u in range(n_users):
        chosen = order[u, :n_rated[u]]
        liking = (affinity[u, chosen] - centre) / scale
        stars = 3.5 + user_bias[u] + item_quality[chosen] + 0.7 * liking + rng.normal(0.0, 0.6, len(chosen))
        stars = np.clip(np.round(stars * 2) / 2, 0.5, 5.0)
        start = 9.6e8 + rng.integers(0, 3e8)
        stamps = start + np.sort(rng.integers(0, 5e7, len(chosen)))
        rows.append(np.column_stack([np.full(len(chosen), u + 1), chosen + 1, stars, stamps]))
    return np.concatenate(rows)


def write_csv(rows: np.ndarray, path: Path) -> None:
    with open(path, "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        f.writelines(f"{int(u)},{int(i)},{r:.1f},{int(t)}\n" for u, i, r, t in rows)


def fit_and_evaluate(ratings: Path, out: Path, seed: int, epochs: int) -> tuple[dict, float]:
    """`genlab recommend fit` in a fresh process; (metrics.json, wall seconds)."""
    cmd = [sys.executable, "-m", "genlab", "recommend", "fit", "--ratings", str(ratings), "--out", str(out),
           "--seed", str(seed), "--epochs", str(epochs), "--quiet"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    print(done.stdout, end="")
    return json.loads((out / "metrics.json").read_text()), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--items", type=int, default=2500)
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=60, help="Mult-VAE epochs (the epoch with the best validation NDCG@100 is kept)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the user split (and of the models)")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print the block, do not append it to RESULTS.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="genlab-ease-") as tmp:
        ratings = Path(tmp) / "ratings.csv"
        rows = make_ratings(args.users, args.items, args.groups, args.data_seed)
        write_csv(rows, ratings)
        kept = rows[:, 2] > 3.5
        print(f"{len(rows):,} ratings ({kept.mean():.0%} above 3.5) of {len(np.unique(rows[:, 1])):,} items by {args.users:,} users",
              flush=True)
        results = {}
        for seed in args.seeds:
            results[seed] = fit_and_evaluate(ratings, Path(tmp) / f"run{seed}", seed, args.epochs)
        config = (Path(tmp) / f"run{args.seeds[0]}" / "config.toml").read_text()
    split = next(line for line in config.splitlines() if line.startswith("items ="))

    def row(name: str, key: str) -> str:
        cells = []
        for metric in METRICS:
            values = np.array([results[s][0][key][metric] for s in args.seeds])
            cells.append(" / ".join(f"{v:.3f}" for v in values) + f" (mean {values.mean():.3f})")
        return f"| {name} | " + " | ".join(cells) + " |"

    fits = [results[s][0]["ease_fit"] for s in args.seeds]
    per_l2 = [np.median([r["seconds"] for r in f["validation"]]) for f in fits]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    block = f"""
## EASE as the recommender baseline (issue 16, item 6)

*Date:* 2026-12-02 ({time.strftime("%H:%M UTC", time.gmtime())})  
*Machine:* 2-core CPU ({cpu}, {os.cpu_count()} logical CPUs), torch {torch.__version__}, genlab {genlab.__version__}  
*Command:* `python benchmarks/recommend_ease.py --users {args.users} --items {args.items} --groups {args.groups} \\
--epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}`, which runs
`genlab recommend fit --ratings ratings.csv --seed S --epochs {args.epochs} --quiet` once per seed  
*Data:* synthetic MovieLens-format ratings.csv (the script's docstring: {args.groups} taste groups and genres, Zipf item
popularity, log-normal activity, half stars 0.5–5): {len(rows):,} ratings, {kept.mean():.0%} above 3.5; after the 3.5
threshold and the 5-interaction filter the run has {split.split("=")[1].strip()} items. Each seed splits the users anew
(10% validation, 10% test); the test users' items are split 80/20 with seed 0.

Test metrics, one value per seed (seeds {', '.join(map(str, args.seeds))}):

| recommender | NDCG@100 | Recall@20 | Recall@50 |
|---|---|---|---|
{row("popularity", "popularity")}
{row(f"Mult-VAE (600 → 200, {args.epochs} epochs, best validation epoch)", "model")}
{row("EASE (λ chosen on the validation users)", "ease")}

EASE's λ: {', '.join(f"{f['l2']:g}" for f in fits)}; its fit (λ grid of {len(fits[0]['validation'])} values on the training users,
each scored on the validation users, then the chosen one again): {', '.join(f"{f['fit_seconds']:.1f} s" for f in fits)}, a median
{', '.join(f"{t:.2f}" for t in per_l2)} s per λ. Whole `recommend fit` runs (Mult-VAE training, evaluation, EASE):
{', '.join(f"{results[s][1]:.0f} s" for s in args.seeds)}.
"""
    print(block)
    if not args.no_write:
        with open(Path(__file__).resolve().parent / "RESULTS.md", "a") as f:
            f.write(block)


if __name__ == "__main__":
    main()
