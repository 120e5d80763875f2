"""GANs on images (issue 4): a DCGAN on mnist-5k and an MLP GAN on digits with each objective, default settings.

Reported: the class histogram of 1000 samples under scikit-learn's LogisticRegression trained on
the real training images (the reference classifier of the evaluation issue replaces it later), its
entropy and the number of classes with ≥ 2% of samples, and the classifier's confidence on samples
vs. on real test images. Sample grids are written to benchmarks/figures/.

    python benchmarks/gan_images.py --epochs-mnist 20 --epochs-digits 100
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

import genlab
from genlab import plots

FIGURES = Path(__file__).resolve().parent / "figures"


def evaluate(name, gan, X_train, y_train, X_test, y_test, seconds):
    clf = LogisticRegression(max_iter=2000).fit(X_train.reshape(len(X_train), -1), y_train)
    S = gan.sample(1000, random_state=0)
    proba = clf.predict_proba(S.reshape(len(S), -1))
    counts = np.bincount(proba.argmax(1), minlength=10)
    share = counts / counts.sum()
    entropy = float(-(share[share > 0] * np.log(share[share > 0])).sum())
    FIGURES.mkdir(exist_ok=True)
    plots.save_samples(FIGURES / f"gan_{name}.png", gan.scaling_.forward(S[:64]), title=f"GAN samples: {name}")
    real_conf = float(clf.predict_proba(X_test.reshape(len(X_test), -1)).max(1).mean())
    return (name, counts.tolist(), entropy, int((share >= 0.02).sum()), float(proba.max(1).mean()), real_conf,
            clf.score(X_test.reshape(len(X_test), -1), y_test), seconds)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs-mnist", type=int, default=20)
    ap.add_argument("--epochs-digits", type=int, default=100)
    args = ap.parse_args()
    rows = []
    X, y = genlab.datasets.load("mnist-5k", split="train")
    Xt, yt = genlab.datasets.load("mnist-5k", split="test")
    start = time.perf_counter()
    gan = genlab.GAN(arch="conv", epochs=args.epochs_mnist, random_state=0).fit(X)
    rows.append(evaluate("mnist-5k DCGAN", gan, X, y, Xt, yt, time.perf_counter() - start))
    print(rows[-1], flush=True)
    D, dy = genlab.datasets.load("digits")
    for loss in ("nonsaturating", "minimax", "wasserstein", "hinge"):
        start = time.perf_counter()
        gan = genlab.GAN(loss=loss, epochs=args.epochs_digits, random_state=0).fit(D[:1500])
        name = "digits MLP GAN" + ("" if loss == "nonsaturating" else f" ({loss})")
        rows.append(evaluate(name, gan, D[:1500], dy[:1500], D[1500:], dy[1500:], time.perf_counter() - start))
        print(rows[-1], flush=True)
    start = time.perf_counter()
    cgan = genlab.GAN(conditional=True, epochs=args.epochs_digits, random_state=0).fit(D[:1500], dy[:1500])
    cond_seconds = time.perf_counter() - start
    clf = LogisticRegression(max_iter=2000).fit(D[:1500].reshape(1500, -1), dy[:1500])
    asked = np.repeat(np.arange(10), 100)
    S = cgan.sample(1000, y=asked, random_state=0)
    cond_acc = float((clf.predict(S.reshape(1000, -1)) == asked).mean())
    grid = cgan.sample(80, y=np.repeat(np.arange(10), 8), random_state=1)
    plots.save_samples(FIGURES / "gan_digits conditional.png", cgan.scaling_.forward(grid), n_cols=8,
                       title="conditional GAN on digits: row c asks for digit c")
    print("conditional accuracy", cond_acc, flush=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    table = "\n".join(f"| {n} | {' '.join(map(str, c))} | {e:.2f} (max 2.30) | {k}/10 | {cs:.2f} / {cr:.2f} | {acc:.3f} | {s:.0f} s |"
                      for n, c, e, k, cs, cr, acc, s in rows)
    block = f"""
## GANs on images: class coverage of samples (issue 4)

*Date:* {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  
*Machine:* {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}  
*Command:* `python benchmarks/gan_images.py --epochs-mnist {args.epochs_mnist} --epochs-digits {args.epochs_digits}`  
*Setting:* default `GAN` settings; `arch="conv"` (DCGAN) on the 4000 mnist-5k training digits, `arch="mlp"` (each objective) on digits rows
0–1499. 1000 samples classified by a LogisticRegression fitted on the same real training images. Grids:
`benchmarks/figures/gan_mnist-5k DCGAN.png`, `benchmarks/figures/gan_digits MLP GAN.png`.

| model | samples per class 0–9 | entropy (nats) | classes ≥ 2% | classifier confidence samples / real | classifier test acc. | train time |
|---|---|---:|---:|---:|---:|---:|
{table}

Conditional GAN (`GAN(conditional=True)`, MLP, same {args.epochs_digits} epochs on digits rows 0–1499, {cond_seconds:.0f} s): 100 samples
asked for each digit; the classifier agrees with the requested digit on **{100 * cond_acc:.1f}%** of them (grid:
`benchmarks/figures/gan_digits conditional.png`, row c asks for digit c).
"""
    print(block)
    with open(Path(__file__).resolve().parent / "RESULTS.md", "a") as f:
        f.write(block)


if __name__ == "__main__":
    main()
