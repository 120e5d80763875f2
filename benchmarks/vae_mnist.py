"""genlab's VAE against a minimal hand-written PyTorch VAE of the same architecture (issue 3).

MLP VAE 784-512-512-16, Bernoulli likelihood on mnist-5k grey levels, batch 100, Adam 1e-3;
mnist-5k's standard split (per class the first 400 rows train, the last 100 test). Both models
are trained in the same process, interleaved (genlab, hand, hand, genlab, ...). Reported: test
ELBO, importance-weighted NLL (K=1000) in nats, and training throughput. The hand-written
model's ELBO and IWAE are computed by this script's own code, not genlab's, as a cross-check.

    python benchmarks/vae_mnist.py --epochs 10 --repeats 2
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import genlab


class HandVAE(nn.Module):
    """The pytorch/examples VAE, widened to 784-512-512-16."""

    def __init__(self, d=784, h=512, k=16):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.mu, self.logvar = nn.Linear(h, k), nn.Linear(h, k)
        self.dec = nn.Sequential(nn.Linear(k, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, d))

    def encode(self, x):
        h = self.enc(x)
        return self.mu(h), self.logvar(h)

    def loss(self, x):  # negative ELBO per sample
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return rec + kl

    @torch.no_grad()
    def iwae(self, x, k=1000, chunk=100):
        mu, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        log_w = []
        for _ in range(k // chunk):
            eps = torch.randn(chunk, *mu.shape)
            z = mu + std * eps
            logits = self.dec(z)
            log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar).sum(-1)
            log_w.append(log_px + log_pz - log_qz)
        return torch.logsumexp(torch.cat(log_w), 0) - math.log(k)


def train_hand(x, epochs, seed, batch=100):
    torch.manual_seed(seed)
    model = HandVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            loss = model.loss(x[perm[i:i + batch]]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model, time.perf_counter() - start


def train_genlab(X, epochs, seed):
    vae = genlab.VAE(latent_dim=16, hidden=(512, 512), batch_size=100, lr=1e-3, epochs=epochs, validation_fraction=0,
                     random_state=seed)
    start = time.perf_counter()
    vae.fit(X)
    wall = time.perf_counter() - start
    steps = sum(r["time"] for r in vae.history_)  # per-epoch time incl. the epoch's collapse diagnostics
    return vae, wall, steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--k", type=int, default=1000)
    args = ap.parse_args()
    X, _ = genlab.datasets.load("mnist-5k", split="train")
    Xt, _ = genlab.datasets.load("mnist-5k", split="test")
    x, xt = torch.from_numpy(X.reshape(len(X), -1)), torch.from_numpy(Xt.reshape(len(Xt), -1))
    train_hand(x[:400], 1, 0)  # warm-up (oneDNN primitives)
    train_genlab(X[:400], 1, 0)
    rows, nll, elbo = [], {"genlab": [], "hand": []}, {"genlab": [], "hand": []}
    for r in range(args.repeats):
        order = ("genlab", "hand") if r % 2 == 0 else ("hand", "genlab")
        times, models = {}, {}
        for who in order:
            if who == "hand":
                models[who], times[who] = train_hand(x, args.epochs, seed=r)
            else:
                models[who], times[who], _ = train_genlab(X, args.epochs, seed=r)
        rows.append(times)
        print(f"repeat {r + 1}: genlab {times['genlab']:.2f}s  hand {times['hand']:.2f}s  ratio {times['genlab'] / times['hand']:.3f}",
              flush=True)
        # held-out likelihoods of this repeat's two models (each with its own code: a cross-check)
        vae, hand = models["genlab"], models["hand"].eval()
        torch.manual_seed(123 + r)
        elbo["genlab"].append(float(vae.elbo(Xt, n_mc=10).mean()))
        with torch.no_grad():
            elbo["hand"].append(float(-torch.stack([hand.loss(xt) for _ in range(10)]).mean()))
        nll["genlab"].append(-float(vae.score_samples(Xt, n_importance=args.k).mean()))
        nll["hand"].append(-float(torch.cat([hand.iwae(xt[i:i + 20], args.k) for i in range(0, len(xt), 20)]).mean()))
        print(f"  test NLL genlab {nll['genlab'][-1]:.2f}  hand {nll['hand'][-1]:.2f}", flush=True)
    n = len(X) * args.epochs
    thr = {w: statistics.median(n / t[w] for t in rows) for w in ("genlab", "hand")}
    ratio = statistics.median(t["hand"] / t["genlab"] for t in rows)

    def mean_sd(v):
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"

    diffs = [g - h for g, h in zip(nll["genlab"], nll["hand"])]  # paired by seed
    gap = statistics.mean(diffs)
    se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
    elbo_g, elbo_h, nll_g, nll_h = mean_sd(elbo["genlab"]), mean_sd(elbo["hand"]), mean_sd(nll["genlab"]), mean_sd(nll["hand"])

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    block = f"""
## VAE on mnist-5k against a hand-written VAE (issue 3)

*Date:* {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  
*Machine:* {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, Python {platform.python_version()}  
*Command:* `python benchmarks/vae_mnist.py --epochs {args.epochs} --repeats {args.repeats} --k {args.k}`  
*Work:* MLP VAE 784-512-512-16, Bernoulli on grey levels, batch 100, Adam 1e-3, {args.epochs} epochs on the 4000 training
digits; test = the 1000 held-out digits. Throughput = training samples / wall time of the whole fit (genlab's includes its
per-epoch collapse diagnostics); {args.repeats} interleaved repeats (seeds 0..{args.repeats - 1}), median; each repeat's
models are evaluated on the test digits.

| | genlab `VAE` | hand-written | target |
|---|---:|---:|---|
| test ELBO (nats, 10 draws; mean ± sd over seeds) | {elbo_g} | {elbo_h} | |
| test NLL, IWAE K={args.k} (nats; mean ± sd over seeds) | {nll_g} | {nll_h} | genlab − hand ≤ 0.5 nat: **{gap:+.2f} ± {se:.2f}** (s.e.) |
| training samples/s | {thr['genlab']:.0f} | {thr['hand']:.0f} | genlab ≥ 0.95×: **{ratio:.3f}×** |
"""
    print(block)
    with open(__file__.rsplit("/", 1)[0] + "/RESULTS.md", "a") as f:
        f.write(block)


if __name__ == "__main__":
    main()
