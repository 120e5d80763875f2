"""The lecture's worked examples 68.1, 68.3 and 68.6 (lecture 002, SPEC §10), one command each, through genlab's public API.

* **68.1** — VAE with a 2-D latent: encoder 784-512-512-(2+2), decoder 2-512-512-784, ReLU hidden layers, tanh
  decoder output, Gaussian likelihood with σ² = 1, pixels in [0, 1] centred on the training mean, B = 1, weight decay
  on the weights only. Figures: six training digits beside their reconstructions, the codes of every training digit
  coloured by label, 12 decoded prior samples.
* **68.3** — the same network as a conditional VAE (one-hot label into encoder and decoder); samples of the digit 3.
* **68.6** — MLP GAN: z of size 2, generator 2-256-512-1024-784 (ReLU, tanh output), discriminator 784-1024-512-256-2
  (ReLU, two-class softmax), Adam 2e-4 with β = (0.5, 0.999), B = 128, K_d = K_g = 1, data in [−1, 1]. Figure: 256
  samples, each image stretched from its own minimum to its maximum. Mode collapse is measured by the classes that
  1000 samples cover, for the text's setting and for each remedy the lecture lists (a smaller step, small Gaussian
  noise on D's inputs, soft real labels 0.9).

Translating the text's constants into genlab's units. The lecture's VAE cost (68.37) is ‖h − ĥ‖² + Σ(μ² + e^a − a)
plus ρ‖W‖²: twice genlab's per-sample negative ELBO at σ² = 1 (‖x − x̂‖²/2 + KL) plus ρ‖W‖². Its stochastic-gradient
step μ on that cost is therefore genlab's ``lr = 2μ = 2e-4`` with ``weight_decay = ρ = 1e-4`` (genlab adds λ·w to the
gradient): the same iterates, including the (1 − 2μρ) shrinkage of (68.79). The GAN's generator cost (68.123) has
genlab's scale, so ρ‖W‖² is ``weight_decay = 2ρ = 2e-4``; Adam does not care about the cost's overall scale.

The text trains 200 passes over 60 000 digits (12 million B = 1 steps for the VAE); on 2 CPU cores we train on the
4000 mnist-5k training digits for a few passes (``--epochs``), so what we show is what that budget reaches. With the
text's plain SGD the VAE does not leave the mean image in such a budget (``--vae-optimizer sgd`` shows it); the default
here is Adam at the same step (the optimiser the text itself uses for its GAN). Everything else is the text's.

    python benchmarks/seed_examples.py 68.1                  # or 68.3, 68.6, all
    python benchmarks/seed_examples.py 68.6 --epochs 100 --gan-seeds 0 1 2 --write /tmp/ex68_6.md
    python benchmarks/seed_examples.py 68.1 --vae-optimizer sgd --epochs 10 --no-figures   # the text's optimiser
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

import genlab
from genlab import plots
from genlab.evaluate import class_histogram, reference_features

FIGURES = Path(__file__).resolve().parent / "figures"
EXAMPLES = ("68.1", "68.3", "68.6")
DEFAULT_EPOCHS = {"68.1": 20, "68.3": 20, "68.6": 50}  # passes over the training digits on a 2-core CPU budget


def vae_options(optimizer: str) -> dict:
    """The lecture's VAE of Ex 68.1 as genlab.VAE parameters (see the module docstring for lr and weight_decay)."""
    return dict(hidden=(512, 512), activation="relu", likelihood="gaussian", variance="fixed", sigma2=1.0,
                output_activation="tanh", scaling="center", optimizer=optimizer, lr=2e-4, weight_decay=1e-4,
                weight_decay_on="weights", batch_size=1, validation_fraction=0.0)


def gan_options() -> dict:
    """The lecture's GAN of Ex 68.6 as genlab.GAN parameters: the generator's update is the text's 'fake data
    pretending to be real' (the non-saturating loss); no weight averaging (ema=0), as in the text."""
    return dict(hidden_g=(256, 512, 1024), hidden_d=(1024, 512, 256), activation_g="relu", activation_d="relu",
                d_head="softmax", output="tanh", loss="nonsaturating", prior="normal", optimizer="adam", lr=2e-4,
                betas=(0.5, 0.999), weight_decay=2e-4, weight_decay_on="weights", batch_size=128, d_steps=1, g_steps=1,
                ema=0.0, validation_fraction=0.0)


def load(name: str):
    """(X, y, X_test, y_test): mnist-5k's standard 4000/1000 split, else a stratified seeded 80/20 split."""
    if name == "mnist-5k":
        return (*genlab.datasets.load(name, split="train"), *genlab.datasets.load(name, split="test"))
    X, y = genlab.datasets.load(name)
    if y is None:
        raise SystemExit(f"{name} has no labels: the examples colour codes by label and count classes.")
    X, X_test, y, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    return X, y, X_test, y_test


def fit(model, X, y=None):
    """The fitted model and the CPU seconds its fit took (this process, all threads: the machine may be shared)."""
    start = time.process_time()
    model.fit(X) if y is None else model.fit(X, y)
    return model, time.process_time() - start


def per_image_stretch(images: np.ndarray) -> np.ndarray:
    """Each image mapped from its own minimum (black) to its maximum (white), as the lecture draws Fig. 68.20."""
    lo = images.min(axis=(1, 2, 3), keepdims=True)
    hi = images.max(axis=(1, 2, 3), keepdims=True)
    return (images - lo) / np.maximum(hi - lo, 1e-12)


def beside(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Six digits in the lecture's layout (Fig. 68.8): per row two originals, then their two reconstructions."""
    rows = [np.concatenate([originals[i:i + 2], reconstructions[i:i + 2]]) for i in range(0, len(originals), 2)]
    return np.concatenate(rows)  # (3 * 4, c, h, w), shown 4 to a row


def diversity(samples: np.ndarray, real: np.ndarray) -> float:
    """Mean pairwise pixel distance of the samples over that of real digits (1: as varied as real data; 0: one image)."""
    def mean_distance(x):
        flat = x.reshape(len(x), -1).astype(np.float64)  # (n, c, h, w) -> (n, c*h*w)
        sq = (flat**2).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0.0)
        return float(np.sqrt(d2).sum() / (len(x) * (len(x) - 1)))
    return mean_distance(samples) / mean_distance(real)


# -- Ex 68.1 and 68.3 -------------------------------------------------------------------------------------------


def run_vae(example: str, args, data, classifier) -> dict:
    X, y, X_test, y_test = data
    conditional = example == "68.3"
    vae = genlab.VAE(2, conditional=conditional, epochs=args.epochs or DEFAULT_EPOCHS[example], random_state=args.seed,
                     **vae_options(args.vae_optimizer))
    vae, seconds = fit(vae, X, y if conditional else None)
    labels = (y, y_test) if conditional else (None, None)
    Z, Z_test = vae.transform(X, labels[0]), vae.transform(X_test, labels[1])
    last = vae.history_[-1]
    out = {"epochs": vae.epochs, "seconds": seconds, "train_elbo": last["elbo"], "train_rec": last["reconstruction"],
           "train_kl": last["kl"], "test_elbo": float(vae.elbo(X_test, labels[1]).mean()),
           "active_units": vae.active_units(X, labels[0]),
           "knn": KNeighborsClassifier(n_neighbors=5).fit(Z, y).score(Z_test, y_test),
           "test_mse": float(((vae.reconstruct(X_test, labels[1]) - X_test) ** 2).mean()),
           "elbo_curve": [r["elbo"] for r in vae.history_]}
    rng = np.random.default_rng(args.seed)
    if conditional:
        threes = np.clip(vae.sample(1000, y=3, random_state=args.seed), 0, 1)
        out["share_3"] = float((classifier.predict_proba(threes).argmax(1) == 3).mean())
        asked = np.repeat(np.arange(10), 100)
        every = np.clip(vae.sample(1000, y=asked, random_state=args.seed + 1), 0, 1)
        out["conditional_accuracy"] = float((classifier.predict_proba(every).argmax(1) == asked).mean())
        if not args.no_figures:
            plots.save_samples(FIGURES / "ex68_3_samples_3.png", threes[:12], n_cols=6,
                               title=f"Ex 68.3: conditional VAE, y = 3\n({vae.epochs} passes)")
        return out
    samples = np.clip(vae.sample(1000, random_state=args.seed), 0, 1)
    hist = class_histogram(classifier.predict_proba(samples))
    out.update(sample_classes=hist["classes_covered"], sample_counts=np.round(hist["histogram"] * 1000).astype(int).tolist())
    if not args.no_figures:
        six = rng.choice(len(X), 6, replace=False)
        rec = np.clip(vae.reconstruct(X[six]), 0, 1)
        plots.save_samples(FIGURES / "ex68_1_reconstructions.png", beside(X[six], rec), n_cols=4,
                           title="Ex 68.1\noriginals | reconstructions")
        plots.save_latent_scatter(FIGURES / "ex68_1_codes.png", Z, y,
                                  title=f"Ex 68.1: posterior means of the {len(X)} training digits ({vae.epochs} passes)")
        plots.save_samples(FIGURES / "ex68_1_samples.png", samples[:12], n_cols=6,
                           title=f"Ex 68.1: decoded z ~ N(0, I)\n({vae.epochs} passes)")
    return out


# -- Ex 68.6 ------------------------------------------------------------------------------------------------------


def gan_variants(epochs: int, n_train: int) -> dict[str, dict]:
    """The text's setting and the lecture's three remedies, each alone."""
    steps = epochs * -(-n_train // 128)
    return {
        "text's setting": {},
        "smaller step (lr 5e-5)": dict(lr=5e-5),
        "instance noise σ=0.1": dict(instance_noise=0.1, noise_anneal_steps=steps),  # decays to 0 over the whole run
        "soft real labels 0.9": dict(label_smoothing=0.9),
    }


def run_gan(args, data, classifier) -> dict:
    X, y, X_test, _ = data
    epochs = args.epochs or DEFAULT_EPOCHS["68.6"]
    rows = []
    for name, extra in gan_variants(epochs, len(X)).items():
        for seed in args.gan_seeds:
            gan, seconds = fit(genlab.GAN(2, epochs=epochs, random_state=seed, **{**gan_options(), **extra}), X)
            S = gan.sample(1000, random_state=seed)
            hist = class_histogram(classifier.predict_proba(np.clip(S, 0, 1)))
            last = gan.history_[-1]
            rows.append({"variant": name, "seed": seed, "seconds": seconds, "classes": hist["classes_covered"],
                         "entropy": hist["entropy"], "counts": np.round(hist["histogram"] * 1000).astype(int).tolist(),
                         "diversity": diversity(S, X_test), "d_real": last["d_real"], "d_fake": last["d_fake"]})
            print(rows[-1], flush=True)
            if not args.no_figures and seed == args.gan_seeds[0]:
                suffix = "" if not extra else "_" + name.split(" ")[0].replace("'s", "")
                plots.save_samples(FIGURES / f"ex68_6_samples{suffix}.png", per_image_stretch(S[:256]), n_cols=16,
                                   title=f"Ex 68.6: {name}, {epochs} passes, seed {seed} (each image stretched min→max)")
    return {"epochs": epochs, "rows": rows}


# -- report -------------------------------------------------------------------------------------------------------


def vae_block(example: str, r: dict, args) -> str:
    text_opt = "SGD" if args.vae_optimizer == "sgd" else "**Adam** (text: SGD)"
    head = ("### Ex 68.1 — VAE, 2-D latent" if example == "68.1" else "### Ex 68.3 — conditional VAE (label into encoder and decoder)")
    curve = " → ".join(f"{v:.1f}" for v in r["elbo_curve"][:: max(1, len(r["elbo_curve"]) // 5)])
    lines = [head, "",
             f"Setting: {args.n_features}-512-512-(2+2) / 2-512-512-{args.n_features}, ReLU, tanh output, Gaussian σ² = 1, "
             "centred [0, 1] pixels, "
             f"{text_opt}, lr 2e-4 (= the text's μ = 1e-4 on its doubled cost), weight decay 1e-4 on weights only, B = 1, "
             f"**{r['epochs']} passes** over {args.n_train} digits (text: 200 over 60 000). Fit: {r['seconds']:.0f} CPU s.", "",
             "| measure | value |", "|---|---:|",
             f"| training ELBO, last pass (nats per digit, all constants) | {r['train_elbo']:.2f} |",
             f"| — its reconstruction term / KL | {r['train_rec']:.2f} / {r['train_kl']:.2f} |",
             f"| held-out ELBO (nats per digit) | {r['test_elbo']:.2f} |",
             f"| active latent units (of 2) | {r['active_units']} |",
             f"| 5-NN accuracy on the 2-D codes (train codes → test codes) | {r['knn']:.3f} |",
             f"| test reconstruction MSE per pixel | {r['test_mse']:.4f} |"]
    if example == "68.1":
        lines.append(f"| classes covered by 1000 prior samples (reference CNN) | {r['sample_classes']}/10 — "
                     f"{' '.join(map(str, r['sample_counts']))} |")
    else:
        lines.append(f"| samples asked for 3 that the reference CNN calls 3 (1000) | {100 * r['share_3']:.1f}% |")
        lines.append(f"| samples that the CNN assigns to the requested class (100 per class) | "
                     f"{100 * r['conditional_accuracy']:.1f}% |")
    lines += ["", f"Training ELBO per pass: {curve} (first → last, every ~{max(1, len(r['elbo_curve']) // 5)}th pass).", ""]
    return "\n".join(lines)


def gan_block(r: dict, args) -> str:
    lines = ["### Ex 68.6 — MLP GAN on digits: mode collapse and the lecture's remedies", "",
             f"Setting: z ∈ ℝ², G 2-256-512-1024-{args.n_features} (ReLU, tanh), D {args.n_features}-1024-512-256-2 (ReLU, two-class "
             "softmax), "
             "non-saturating generator loss, Adam lr 2e-4, β = (0.5, 0.999), ε = 1e-8 (torch's default), weight decay 2e-4 "
             f"on weights (= the text's ρ = 1e-4), B = 128, K_d = K_g = 1, no EMA, **{r['epochs']} passes** over {args.n_train} "
             "digits (text: 200 over 60 000). 1000 samples per run classified by genlab's reference CNN; a class is covered "
             "with ≥ 10 samples. Diversity = mean pairwise pixel distance of the samples / that of the real test digits.", "",
             "| setting | seed | classes covered | samples per class 0–9 | entropy (max 2.30) | diversity | D(x) / D(G(z)) last pass "
             "| CPU s |", "|---|---:|---:|---|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['variant']} | {row['seed']} | {row['classes']}/10 | {' '.join(map(str, row['counts']))} | "
                     f"{row['entropy']:.2f} | {row['diversity']:.2f} | {row['d_real']:.2f} / {row['d_fake']:.2f} | "
                     f"{row['seconds']:.0f} |")
    lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("example", choices=(*EXAMPLES, "all"))
    ap.add_argument("--epochs", type=int, default=None, help=f"passes over the data (default per example: {DEFAULT_EPOCHS})")
    ap.add_argument("--data", default="mnist-5k", help="a labelled image data set genlab.datasets can load")
    ap.add_argument("--seed", type=int, default=0, help="seed of the VAEs and of the figures' random picks")
    ap.add_argument("--gan-seeds", type=int, nargs="+", default=[0], help="seeds of each GAN setting")
    ap.add_argument("--vae-optimizer", choices=("adam", "sgd"), default="adam", help="sgd is the text's (too slow here)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: B = 1 steps do not gain from more)")
    ap.add_argument("--no-figures", action="store_true", help="do not (over)write the figures")
    ap.add_argument("--write", type=Path, default=None, help="write the markdown section to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load(args.data)
    args.n_train, args.n_features = len(data[0]), int(np.prod(data[0].shape[1:]))
    FIGURES.mkdir(exist_ok=True)
    begin = time.process_time()
    classifier = reference_features(data[0], data[1])  # genlab's own CNN on the real training digits (cached)
    blocks = []
    for example in EXAMPLES if args.example == "all" else (args.example,):
        if example == "68.6":
            blocks.append(gan_block(run_gan(args, data, classifier), args))
        else:
            blocks.append(vae_block(example, run_vae(example, args, data, classifier), args))
        print(blocks[-1], flush=True)
    command = " ".join(["python benchmarks/seed_examples.py", args.example]
                       + ([f"--epochs {args.epochs}"] if args.epochs else []) + ([f"--data {args.data}"] * (args.data != "mnist-5k"))
                       + ([f"--vae-optimizer {args.vae_optimizer}"] * (args.vae_optimizer != "adam"))
                       + (["--gan-seeds " + " ".join(map(str, args.gan_seeds))] if args.gan_seeds != [0] else []))
    header = (f"*Command:* `{command}` ({args.threads} torch thread{'s' * (args.threads > 1)}, torch {torch.__version__}; "
              f"{(time.process_time() - begin) / 60:.1f} CPU minutes). Reference classifier: genlab's CNN trained on the "
              f"{args.n_train} training digits, test accuracy {classifier.test_accuracy:.3f}.\n")
    text = header + "\n" + "\n".join(blocks)
    if args.write is not None:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
