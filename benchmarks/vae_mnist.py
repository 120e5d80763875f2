"""W1: genlab's VAE against a minimal hand-written PyTorch loop, each run in its own fresh process.

W1 = MLP VAE 784-512-512-16, Bernoulli likelihood, dynamic binarisation (x ~ Bernoulli(grey level)
for every batch), Adam 1e-3, batch 100, mnist-5k's 4000 training digits. The plain loop sets
``torch.set_flush_denormal(True)`` at process start (before torch creates its thread pool, so every
thread inherits it) — the best a hand-written loop can do. genlab gets nothing but its own
``VAE(...).fit``. Each run is a separate ``python benchmarks/vae_mnist.py --worker ...`` process
(nothing inherited from an earlier run: thread pools, flush-to-zero flags, allocator caches),
interleaved genlab, plain, plain, genlab, ...; the ratio is the median over repeats of plain time /
genlab time (> 1: genlab faster).

Test NLL: importance-weighted (K=1000) on the 1000 held-out digits binarised once with a fixed seed,
each side with its own code (genlab's ``score_samples``; the plain loop's IWAE below), paired by seed.

    python benchmarks/vae_mnist.py --epochs 10 50 --repeats 3            # throughput
    python benchmarks/vae_mnist.py --epochs 50 --repeats 7 --nll 1000    # + test NLL
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time


def _test_digits_binarised():
    import numpy as np

    import genlab

    X, _ = genlab.datasets.load("mnist-5k", split="test")
    return (np.random.default_rng(12345).random(X.shape, dtype=np.float32) < X).astype(np.float32)


def worker_plain(epochs: int, seed: int, k: int, fused: bool = False) -> dict:
    import torch

    torch.set_flush_denormal(True)  # at process start: the thread pool created later inherits it
    import torch.nn.functional as F
    from torch import nn

    import genlab

    class PlainVAE(nn.Module):
        def __init__(self, d=784, h=512, k=16):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 2 * k))
            self.dec = nn.Sequential(nn.Linear(k, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, d))

        def loss(self, x):  # negative ELBO per sample
            mu, logvar = self.enc(x).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(1)
            return rec + 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)

        @torch.no_grad()
        def iwae(self, x, k=1000, chunk=100):
            mu, logvar = self.enc(x).chunk(2, dim=1)
            std, log_w = torch.exp(0.5 * logvar), []
            for _ in range(k // chunk):
                eps = torch.randn(chunk, *mu.shape)
                z = mu + std * eps
                logits = self.dec(z)
                log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
                log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
                log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar).sum(-1)
                log_w.append(log_px + log_pz - log_qz)
            return torch.logsumexp(torch.cat(log_w), 0) - math.log(k)

    X, _ = genlab.datasets.load("mnist-5k", split="train")
    x = torch.from_numpy(X.reshape(len(X), -1))
    start = time.perf_counter()  # from building the model, as genlab's fit does (the first Adam imports torch._dynamo: ~1 s)
    torch.manual_seed(seed)
    model = PlainVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    epoch_times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 100):
            loss = model.loss(torch.bernoulli(x[perm[i:i + 100]])).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        epoch_times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    out = {"wall": wall, "samples_per_s": len(x) * epochs / wall, "epoch_times": epoch_times}
    if k:
        xt = torch.from_numpy(_test_digits_binarised().reshape(1000, -1))
        torch.manual_seed(1000 + seed)
        out["nll"] = -float(torch.cat([model.eval().iwae(xt[i:i + 20], k) for i in range(0, len(xt), 20)]).mean())
    return out


def worker_module(epochs: int, seed: int, k: int) -> dict:
    """A minimal hand-written loop around genlab's own VAE module and objective (fused Adam, as genlab's
    stepper builds): genlab's fit minus this is the cost of the loop itself."""
    import torch

    torch.set_flush_denormal(True)
    import genlab
    from genlab.models import Batch, VAEConfig, VAEModule

    X, _ = genlab.datasets.load("mnist-5k", split="train")
    x = torch.from_numpy(X)
    start = time.perf_counter()
    torch.manual_seed(seed)
    module = VAEModule(VAEConfig(input_shape=(1, 28, 28), latent_dim=16, hidden=(512, 512), binarize="dynamic"))
    opt = torch.optim.Adam(module.parameters(), lr=1e-3, fused=True)
    noise = torch.Generator().manual_seed(seed + 1)
    epoch_times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 100):
            loss = module.objective(Batch(x[perm[i:i + 100]]), noise)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        epoch_times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {"wall": wall, "samples_per_s": len(x) * epochs / wall, "epoch_times": epoch_times}


def worker_genlab(epochs: int, seed: int, k: int, warm_pool: bool = False) -> dict:
    import torch

    if warm_pool:  # torch's thread pool exists before fit, as after any earlier torch work in the session
        x = torch.randn(512, 512)
        x @ x
    import genlab

    X, _ = genlab.datasets.load("mnist-5k", split="train")
    vae = genlab.VAE(16, hidden=(512, 512), binarize="dynamic", batch_size=100, lr=1e-3, epochs=epochs, validation_fraction=0,
                     random_state=seed)
    start = time.perf_counter()
    vae.fit(X)
    wall = time.perf_counter() - start  # the whole fit, incl. data preparation and the per-epoch collapse diagnostics
    out = {"wall": wall, "samples_per_s": len(X) * epochs / wall, "epoch_times": [r["time"] for r in vae.history_]}
    if k:
        out["nll"] = -float(vae.score_samples(_test_digits_binarised(), n_importance=k, random_state=1000 + seed).mean())
    return out


def run_worker(who: str, epochs: int, seed: int, k: int, warm_pool: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", who, "--epochs", str(epochs), "--seed", str(seed), "--nll", str(k)]
    cmd += ["--warm-pool"] if warm_pool else []
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nll", type=int, default=0, help="importance samples K for the test NLL (0: skip)")
    ap.add_argument("--worker", choices=("genlab", "plain", "plain-fused", "module"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warm-pool", action="store_true", help="genlab's process runs a matmul before fit (the pool exists)")
    args = ap.parse_args()
    if args.worker:
        if args.worker in ("genlab", "module"):
            out = worker_genlab(args.epochs[0], args.seed, args.nll, args.warm_pool) if args.worker == "genlab" \
                else worker_module(args.epochs[0], args.seed, args.nll)
            print(json.dumps(out))
        else:
            print(json.dumps(worker_plain(args.epochs[0], args.seed, args.nll, fused=args.worker == "plain-fused")))
        return
    # the NLL and the warm-pool case need only the independent plain loop
    refs = ("plain",) if args.nll or args.warm_pool else ("plain", "plain-fused", "module")
    rows = []
    for epochs in args.epochs:
        runs = {who: [] for who in ("genlab", *refs)}
        for r in range(args.repeats):
            order = ("genlab", *refs) if r % 2 == 0 else (*refs, "genlab")  # interleaved: A B C D, D C B A, ...
            for who in order:
                runs[who].append(run_worker(who, epochs, r, args.nll, args.warm_pool and who == "genlab"))
            print(f"{epochs} epochs, seed {r}: " + "  ".join(f"{w} {runs[w][-1]['wall']:.2f}s" for w in runs)
                  + (f"  NLL genlab {runs['genlab'][-1]['nll']:.2f} plain {runs['plain'][-1]['nll']:.2f}" if args.nll else ""),
                  flush=True)
        rows.append((epochs, runs))
    print(report(args, rows, refs))


def _mean_sd(values) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0:.2f}"


def report(args, rows, refs) -> str:
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    names = {"plain": "plain loop, default Adam", "plain-fused": "plain loop, Adam(fused=True)",
             "module": "hand loop around genlab's VAE module, fused Adam"}
    command = f"--epochs {' '.join(map(str, args.epochs))} --repeats {args.repeats} --nll {args.nll}" + (" --warm-pool" * args.warm_pool)
    pool = " and its process ran a matmul first, so torch's thread pool already exists when fit starts" if args.warm_pool else ""
    lines = [f"""
## W1 from fresh processes: genlab VAE vs plain PyTorch loops (issue 12)

*Date:* {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  
*Machine:* {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, Python {platform.python_version()}  
*Command:* `python benchmarks/vae_mnist.py {command}`  
*Work:* W1 (784-512-512-16, Bernoulli, dynamic binarisation, Adam 1e-3, batch 100, 4000 digits); every run its own
process, interleaved; every reference sets flush-to-zero at process start; genlab sets nothing before `fit`{pool}.
Ratio = reference wall / genlab wall, median over seeds (> 1: genlab faster). References: {'; '.join(names[r] for r in refs)}.
"""]
    lines.append("| epochs | genlab samples/s | " + " | ".join(f"genlab vs {names[r]}" for r in refs)
                 + " | genlab epoch time first → last 5 (s) |")
    lines.append("|---:|---:|" + "---:|" * len(refs) + "---|")
    for epochs, runs in rows:
        g = runs["genlab"]
        ratios = [statistics.median(b["wall"] / a["wall"] for a, b in zip(g, runs[r])) for r in refs]
        first = statistics.median(r["epoch_times"][0] for r in g)
        last = statistics.median(statistics.mean(r["epoch_times"][-5:]) for r in g)
        lines.append(f"| {epochs} | {statistics.median(r['samples_per_s'] for r in g):.0f} | "
                     + " | ".join(f"**{x:.3f}×**" for x in ratios) + f" | {first:.3f} → {last:.3f} |")
    if args.nll:
        lines.append("\n| epochs | test NLL genlab (nats, mean ± sd) | test NLL plain | genlab − plain, paired (± s.e.) |")
        lines.append("|---:|---:|---:|---:|")
        for epochs, runs in rows:
            g, p = [r["nll"] for r in runs["genlab"]], [r["nll"] for r in runs["plain"]]
            d = [a - b for a, b in zip(g, p)]
            se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else 0.0
            lines.append(f"| {epochs} | {_mean_sd(g)} | {_mean_sd(p)} | {statistics.mean(d):+.2f} ± {se:.2f} |")
    block = "\n".join(lines) + "\n"
    with open(__file__.rsplit("/", 1)[0] + "/RESULTS.md", "a") as f:
        f.write(block)
    return block


if __name__ == "__main__":
    main()
