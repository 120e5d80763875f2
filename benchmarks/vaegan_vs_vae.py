"""VAE-GAN against the plain VAE on mnist-5k (issue 15 item 6): does measuring the reconstruction in a
discriminator's features, plus the GAN loss, give sharper and more realistic samples than the pixel likelihood?

Both models use the same encoder and decoder (``arch``, ``latent_dim``, ``channels``/``hidden``: genlab's VAE
networks) on the 4000 mnist-5k training digits; the VAE-GAN adds a DCGAN (conv) or MLP discriminator. Three
runs per seed:

* ``VAE, same epochs``    — the VAE with the VAE-GAN's number of epochs;
* ``VAE, same CPU time``  — the VAE with as many epochs as fit in the VAE-GAN's CPU time (``--vae-epochs``);
* ``VAE-GAN``             — ``genlab.VAEGAN`` with its defaults.

Measured on 1000 samples against the 1000 held-out test digits: FID and KID in the features of genlab's own
reference CNN (trained on the training digits, cached; nothing is downloaded), and sharpness — the mean
finite-difference gradient magnitude |∇x| per pixel of the samples, divided by the same for real test digits
(1 = as sharp as real digits; blur gives < 1). Also the test reconstruction MSE per pixel. Medians over seeds.

    python benchmarks/vaegan_vs_vae.py --epochs 8 --vae-epochs 36 --seeds 0 1 2 --write /tmp/vaegan_results.md
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import genlab
from genlab import plots
from genlab.evaluate import frechet_distance, kernel_distance, reference_features

FIGURES = Path(__file__).resolve().parent / "figures"


def sharpness(images: np.ndarray) -> float:
    """Mean |∇x| over pixels: forward differences along height and width, (n, c, h, w) -> a number."""
    gy = np.diff(images, axis=2)[:, :, :, :-1]  # (n, c, h-1, w-1): the same interior for both directions
    gx = np.diff(images, axis=3)[:, :, :-1, :]
    return float(np.sqrt(gx**2 + gy**2).mean())


def measure(model, X_test, features, seed: int, seconds: float) -> dict[str, float]:
    S = np.clip(model.sample(1000, random_state=seed), 0.0, 1.0)
    f_real, f_fake = features.features(X_test), features.features(S)
    kid, _ = kernel_distance(f_fake, f_real, random_state=seed)
    return {"fid": frechet_distance(f_real, f_fake), "kid": kid, "sharpness": sharpness(S) / sharpness(X_test),
            "rec_mse": float(((model.reconstruct(X_test) - X_test) ** 2).mean()), "seconds": seconds}


def fit(make, seed: int, X) -> tuple[object, float]:
    """The fitted model and the CPU seconds its fit took (this process's, all threads: the machine may be shared)."""
    start = time.process_time()
    model = make(seed).fit(X)
    return model, time.process_time() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=("conv", "mlp"), default="conv")
    ap.add_argument("--latent-dim", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=8, help="VAE-GAN epochs (and the 'same epochs' VAE's)")
    ap.add_argument("--vae-epochs", type=int, default=36, help="epochs of the 'same CPU time' VAE (0: leave that run out)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU seconds are compute, not spinning)")
    ap.add_argument("--no-figures", action="store_true", help="do not (over)write the sample grids")
    ap.add_argument("--write", type=Path, default=None, help="write the markdown section to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    X, y = genlab.datasets.load("mnist-5k", split="train")
    X_test, _ = genlab.datasets.load("mnist-5k", split="test")
    begin = time.process_time()
    features = reference_features(X, y)
    common = dict(arch=args.arch, batch_size=args.batch_size, validation_fraction=0.0)
    runs = {
        "VAE, same epochs": lambda s: genlab.VAE(args.latent_dim, epochs=args.epochs, random_state=s, **common),
        "VAE, same CPU time": lambda s: genlab.VAE(args.latent_dim, epochs=args.vae_epochs, random_state=s, **common),
        "VAE-GAN": lambda s: genlab.VAEGAN(args.latent_dim, epochs=args.epochs, random_state=s, **common),
    }
    if args.vae_epochs == 0:
        del runs["VAE, same CPU time"]
    results = {name: [] for name in runs}
    for seed in args.seeds:
        for name, make in runs.items():
            model, seconds = fit(make, seed, X)
            results[name].append(measure(model, X_test, features, seed, seconds))
            print(seed, name, {k: round(v, 4) for k, v in results[name][-1].items()}, flush=True)
            if not args.no_figures and seed == args.seeds[0] and name != "VAE, same epochs":
                file = FIGURES / ("vaegan_samples.png" if name == "VAE-GAN" else "vae_samples.png")
                FIGURES.mkdir(exist_ok=True)
                plots.save_samples(file, np.clip(model.sample(64, random_state=seed), 0, 1),
                                   title=f"{name} ({model.epochs} epochs), mnist-5k, seed {seed}")
    real_sharp = sharpness(X_test)
    total = time.process_time() - begin

    def med(name, key):
        return statistics.median(r[key] for r in results[name])

    rows = "\n".join(f"| {name} | {med(name, 'fid'):.2f} | {med(name, 'kid'):.3f} | {med(name, 'sharpness'):.2f} | "
                     f"{med(name, 'rec_mse'):.4f} | {med(name, 'seconds'):.0f} s |" for name in runs)
    per_seed = "; ".join(f"{name}: " + ", ".join(f"{r['fid']:.2f}" for r in results[name]) for name in runs)
    seeds = " ".join(map(str, args.seeds))
    block = f"""
## VAE-GAN against the VAE on mnist-5k (issue 15 item 6)

*Date:* 2026-12-03  
*Machine:* 2-core CPU, no GPU ({args.threads} torch threads, torch {torch.__version__}; shared with other jobs: times are CPU s)  
*Command:* `python benchmarks/vaegan_vs_vae.py --arch {args.arch} --epochs {args.epochs} --vae-epochs {args.vae_epochs} --seeds {seeds}`  
*Setting:* mnist-5k, 4000 training digits, {args.arch} encoder/decoder as `genlab.VAE` builds them, latent_dim={args.latent_dim},
batch {args.batch_size}, no validation split; VAE-GAN with its defaults (discriminator, γ, feature layer, Adam β₁ = 0.5) for
{args.epochs} epochs; the VAE (Bernoulli likelihood) for {args.epochs} epochs and for {args.vae_epochs} epochs (about the
VAE-GAN's CPU time). 1000 samples per model (the decoder's mean) against the 1000 test digits. FID/KID in genlab's
reference-CNN features (test accuracy {features.test_accuracy:.3f}); sharpness = mean |∇x| of samples / of real test digits
(real: {real_sharp:.4f} per pixel). Medians over seeds {seeds}; the whole benchmark took {total / 60:.1f} CPU minutes. Grids:
`benchmarks/figures/vaegan_samples.png`, `benchmarks/figures/vae_samples.png` (seed {args.seeds[0]}, the same-CPU-time VAE).

| model | FID ↓ | KID ↓ | sharpness (real = 1) | test reconstruction MSE | train CPU time |
|---|---:|---:|---:|---:|---:|
{rows}

FID per seed — {per_seed}.
"""
    print(block)
    if args.write is not None:
        args.write.write_text(block)


if __name__ == "__main__":
    main()
