"""The lectures' statistical theory claims over many seeds (the fast versions are tests/test_lecture_theory.py).

* **W1 by a trained critic**: data N(μ, 1) against a fixed generator G(z) = z, z ~ N(0, 1), so W1 = |μ|. Only the
  critic trains (g_steps=0). Reported: the critic's E D(x) − E D(G(z)) on 20 000 fresh pairs (common noise) as a
  ratio to |μ|, for each Lipschitz constraint genlab offers: the gradient penalty at λ = 0.1 (genlab's default for
  vectors) and λ = 10 (Gulrajani et al.'s), weight clipping, and spectral norm with no penalty. "wrong sign" counts
  critics that settled on the increasing direction when the decreasing one was right (or the reverse).
* **JS saturation**: data uniform on [a, a + 1] against a frozen generator with a tanh output (samples in (−1, 1)), so
  the supports are disjoint for every a > 1 and JS = log 2 whatever a is; the discriminator's held-out JS estimate.
* **8-3-8 autoencoder**: the 8 one-hot vectors, 3 sigmoid code units, trained 2000 steps; how many seeds reconstruct
  all 8 (arg-max) and the mean squared error, for genlab.Autoencoder(loss="mse") (linear outputs), the lectures'
  network (squared loss on sigmoid outputs: output_activation="sigmoid") and loss="bce".
* **Digits codes**: k-NN accuracy (k = 10, held-out 30%) on a 2-D VAE's codes; and attribute vectors
  (genlab.latent.attribute_vector on training digits, added to held-out digits of the other classes, judged by a
  logistic regression on real pixels) for 2-D and 8-D VAEs, against random directions of the same length.

    python benchmarks/lecture_theory.py                    # everything (~5 min on 2 CPUs when the machine is quiet)
    python benchmarks/lecture_theory.py --parts critic --seeds 5 --out results.md
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

import genlab
import genlab.latent as latent
from genlab.models import GANConfig, GANModule
from genlab.training import TensorData, TrainConfig, train

PARTS = ("critic", "js", "838", "digits")
CONSTRAINTS = {  # name -> GANConfig options of the critic
    "gradient penalty λ=0.1": dict(penalty="gp", gp_weight=0.1),
    "gradient penalty λ=10": dict(penalty="gp", gp_weight=10.0),
    "weight clipping 0.01": dict(penalty="clip", clip_value=0.01),
    "spectral norm, no penalty": dict(penalty="gp", gp_weight=0.0, spectral_norm=True),
}


class Shift(nn.Module):
    """A fixed generator G(z) = z + shift."""

    def __init__(self, shift: float):
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(shift), requires_grad=False)

    def forward(self, z):
        return z + self.shift


def critic_ratio(mu: float, seed: int, options: dict) -> float:
    torch.manual_seed(seed)
    module = GANModule(GANConfig(input_shape=(1,), latent_dim=1, hidden=(32, 32), loss="wasserstein", g_steps=0, ema=0.0,
                                 lr_d=2e-3, lr_g=0.0, **options))
    module.generator = Shift(0.0)
    x = mu + torch.randn(4096, 1, generator=torch.Generator().manual_seed(seed))
    train(module, TensorData(x), None, TrainConfig(epochs=20, batch_size=256), seed=seed)
    module.eval()
    e = torch.randn(20000, 1, generator=torch.Generator().manual_seed(100 + seed))
    with torch.no_grad():
        return float(module.logits(e + mu).mean() - module.logits(e).mean()) / abs(mu)


def part_critic(seeds: int) -> str:
    rows = []
    for name, options in CONSTRAINTS.items():
        for mu in (1.0, -3.0, 5.0):
            start = time.perf_counter()
            r = np.array([critic_ratio(mu, s, options) for s in range(seeds)])
            rows.append(f"| {name} | {mu:+g} | {r.mean():.3f} | {r.min():.3f} – {r.max():.3f} | {(r < 0).sum()}/{seeds} | "
                        f"{(time.perf_counter() - start) / seeds:.1f} |")
            print(rows[-1], flush=True)
    return ("| critic constraint | μ | mean estimate / W1 | min – max | wrong sign | s per fit |\n|---|---:|---:|---:|---:|---:|\n"
            + "\n".join(rows))


def part_js(seeds: int) -> str:
    rows = []
    for low in (1.5, 3.0, 30.0):
        js = []
        for s in range(seeds):
            X = np.random.default_rng(s).uniform(low, low + 1, size=(2048, 1)).astype(np.float32)
            gan = genlab.GAN(latent_dim=1, loss="minimax", hidden=(32, 32), output="tanh", scaling="none", g_steps=0, epochs=40,
                             batch_size=128, validation_fraction=0.25, random_state=s).fit(X)
            js.append(gan.history_[-1]["val_js_estimate"])
        js = np.array(js)
        rows.append(f"| [{low:g}, {low + 1:g}] | {js.mean():.4f} | {js.min():.4f} – {js.max():.4f} |")
        print(rows[-1], flush=True)
    return (f"log 2 = {math.log(2):.4f}.\n\n| data support (fakes in (−1, 1)) | mean JS estimate | min – max |\n|---|---:|---:|\n"
            + "\n".join(rows))


def fit_838(kind: str, seed: int, X: np.ndarray) -> tuple[bool, float]:
    tiled = np.tile(X, (16, 1))
    loss = "bce" if "bce" in kind else "mse"
    output = "sigmoid" if "output_activation" in kind else None
    ae = genlab.Autoencoder(3, hidden=(), code_activation="sigmoid", loss=loss, output_activation=output, validation_fraction=0,
                            batch_size=8, lr=0.05, epochs=125, random_state=seed).fit(tiled)
    recon = ae.reconstruct(X)
    return bool((recon.argmax(axis=1) == np.arange(8)).all()), float(((recon - X) ** 2).sum(axis=1).mean())


def part_838(seeds: int) -> str:
    X, _ = genlab.datasets.load("onehot8")
    rows = []
    for kind in ("Autoencoder(loss=\"mse\"): linear outputs",
                 "Autoencoder(loss=\"mse\", output_activation=\"sigmoid\"): the lectures' net",
                 "Autoencoder(loss=\"bce\"): sigmoid outputs"):
        results = [fit_838(kind, s, X) for s in range(seeds)]
        ok, mse = sum(r[0] for r in results), np.mean([r[1] for r in results])
        rows.append(f"| {kind} | {ok}/{seeds} | {mse:.4f} |")
        print(rows[-1], flush=True)
    return ("The rank-3 PCA error of the one-hot vectors, the least any linear decoder can reach, is 0.5.\n\n"
            "| 8-3-8 network | seeds with all 8 arg-max right | mean squared error per sample |\n|---|---:|---:|\n"
            + "\n".join(rows))


def moved_share(vae, clf, X, vector, digit: int, scale: float = 2.0) -> float:
    """Share of X, its codes moved by scale·vector and decoded, that ``clf`` calls ``digit`` (apply_attribute, batched)."""
    moved = vae.inverse_transform(vae.transform(X) + scale * vector)
    return float((clf.predict(moved.reshape(len(moved), -1)) == digit).mean())


def part_digits(seeds: int) -> str:
    X, y = genlab.datasets.load("digits")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = LogisticRegression(max_iter=2000).fit(Xtr.reshape(len(Xtr), -1), ytr)
    knn, attribute = {2: [], 8: []}, {2: [], 8: []}
    for k in (2, 8):
        for s in range(seeds):
            vae = genlab.VAE(k, hidden=(128,), epochs=20, batch_size=64, lr=2e-3, validation_fraction=0, random_state=s).fit(Xtr)
            codes_tr, codes_te = vae.transform(Xtr), vae.transform(Xte)
            knn[k].append(KNeighborsClassifier(10).fit(codes_tr, ytr).score(codes_te, yte))
            rng = np.random.default_rng(s)
            for digit in range(10):
                v = latent.attribute_vector(vae, Xtr, ytr == digit)
                others = Xte[yte != digit]
                random = rng.standard_normal((5, k))
                random *= np.linalg.norm(v) / np.linalg.norm(random, axis=1, keepdims=True)
                attribute[k].append((digit, moved_share(vae, clf, others, v, digit),
                                     np.mean([moved_share(vae, clf, others, r, digit) for r in random])))
        print(k, np.round(knn[k], 3), flush=True)
    lines = [f"k-NN (k = 10) held-out accuracy on the codes, seeds 0–{seeds - 1} (chance 0.10): "
             f"2-D VAE {np.mean(knn[2]):.3f} ({min(knn[2]):.3f} – {max(knn[2]):.3f}); "
             f"8-D VAE {np.mean(knn[8]):.3f} ({min(knn[8]):.3f} – {max(knn[8]):.3f}).",
             "",
             "Attribute vector added at scale 2 to held-out digits of the other classes: share classified as the digit "
             "(mean over seeds; min over seeds in brackets), against 5 random directions of the same length (mean).",
             "",
             "| digit | 2-D VAE | 2-D random | 8-D VAE | 8-D random |", "|---:|---:|---:|---:|---:|"]
    for digit in range(10):
        cells = []
        for k in (2, 8):
            a = np.array([(s, r) for d, s, r in attribute[k] if d == digit])
            cells.append(f"{a[:, 0].mean():.2f} ({a[:, 0].min():.2f}) | {a[:, 1].mean():.2f}")
        lines.append(f"| {digit} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--seeds", type=int, default=10, help="seeds per setting (the digits part uses at most 5)")
    ap.add_argument("--out", help="also append the markdown block to this file")
    args = ap.parse_args()
    sections = {"critic": ("W1 by a trained critic", lambda: part_critic(args.seeds)),
                "js": ("JS saturation on disjoint supports", lambda: part_js(min(args.seeds, 5))),
                "838": ("8-3-8 autoencoder", lambda: part_838(2 * args.seeds)),
                "digits": ("Digits codes: k-NN and attribute vectors", lambda: part_digits(min(args.seeds, 5)))}
    start = time.perf_counter()
    body = [f"### {sections[p][0]}\n\n{sections[p][1]()}" for p in args.parts]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    block = f"""
## The lectures' theory claims (benchmarks/lecture_theory.py)

*Date:* {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  
*Machine:* {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}  
*Command:* `python benchmarks/lecture_theory.py --parts {' '.join(args.parts)} --seeds {args.seeds}` \
({time.perf_counter() - start:.0f} s)

""" + "\n\n".join(body) + "\n"
    print(block)
    if args.out:
        with open(args.out, "a") as f:
            f.write(block)


if __name__ == "__main__":
    main()
