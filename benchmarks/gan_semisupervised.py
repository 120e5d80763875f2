"""Semi-supervised GAN (C+1-class discriminator) against the same network trained on the labelled
examples alone (issue 4, spec §5).

digits: rows 0–1199 are the training pool, of which only ``--labels-per-class`` per class keep
their label (the rest are marked −1); rows 1200–1796 are the test set. The baseline is the
discriminator's own MLP (same widths, LeakyReLU, C outputs) trained with cross-entropy on the
labelled rows only, Adam with the discriminator's learning rate and betas, as many updates; both are reported as test accuracy over
several seeds (the labelled subset is redrawn per seed).

    python benchmarks/gan_semisupervised.py --labels-per-class 10 --seeds 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import genlab
from genlab.nets import MLP


def labelled_subset(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    keep = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)])
    return np.sort(keep)


def supervised_only(X, y, hidden, epochs, seed, lr):
    torch.manual_seed(seed)
    net = MLP(X[0].size, hidden, int(y.max()) + 1, activation="leaky_relu")
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))
    x, t = torch.from_numpy(X.reshape(len(X), -1)), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    steps = max(1, epochs * 1200 // 64)  # as many updates as the GAN's discriminator makes
    for _ in range(steps):
        idx = torch.randint(len(x), (min(64, len(x)),), generator=gen)
        loss = F.cross_entropy(net(x[idx]), t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels-per-class", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    X, y = genlab.datasets.load("digits")
    X_pool, y_pool, X_test, y_test = X[:1200], y[:1200], X[1200:], y[1200:]
    rows = []
    for seed in range(args.seeds):
        keep = labelled_subset(y_pool, args.labels_per_class, np.random.default_rng(seed))
        partial = np.full(len(y_pool), -1)
        partial[keep] = y_pool[keep]
        start = time.perf_counter()
        gan = genlab.GAN(semi_supervised=True, epochs=args.epochs, random_state=seed).fit(X_pool, partial)
        gan_seconds = time.perf_counter() - start
        hidden = tuple(m.out_features for m in gan.module_.discriminator.modules() if isinstance(m, torch.nn.Linear))[:-1]
        net = supervised_only(X_pool[keep], y_pool[keep], hidden, args.epochs, seed, lr=gan.module_.config.lr_d)
        with torch.no_grad():
            base_acc = float((net(torch.from_numpy(X_test.reshape(len(X_test), -1))).argmax(1).numpy() == y_test).mean())
        rows.append((seed, gan.score(X_test, y_test), base_acc, gan_seconds))
        print(rows[-1], flush=True)
    gan_accs, base_accs = [r[1] for r in rows], [r[2] for r in rows]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    table = "\n".join(f"| {s} | {g:.3f} | {b:.3f} |" for s, g, b, _ in rows)
    block = f"""
## Semi-supervised GAN on digits with {args.labels_per_class} labels per class (issue 4)

*Date:* {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  
*Machine:* {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}  
*Command:* `python benchmarks/gan_semisupervised.py --labels-per-class {args.labels_per_class} --epochs {args.epochs} \\
--seeds {args.seeds}`  
*Setting:* train pool digits rows 0–1199 ({10 * args.labels_per_class} labelled, the rest unlabelled), test rows 1200–1796;
`GAN(semi_supervised=True)` with default settings vs its discriminator's MLP trained on the labelled rows alone.

| seed | C+1 GAN test accuracy | supervised-only test accuracy |
|---:|---:|---:|
{table}
| **mean** | **{statistics.mean(gan_accs):.3f}** | **{statistics.mean(base_accs):.3f}** |
"""
    print(block)
    with open(__file__.rsplit("/", 1)[0] + "/RESULTS.md", "a") as f:
        f.write(block)


if __name__ == "__main__":
    main()
