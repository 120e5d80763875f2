"""GAN mode coverage on the 2-D toys (issue 4, spec §1.4 and §5).

Every objective is trained with the GAN's DEFAULT settings; only ``epochs`` and ``batch_size`` are set
here, and they are printed. For each (data set, objective): 10 000 training points drawn from the toy,
2 500 samples drawn from the trained generator, and

* high quality: the share of samples within 3 standard deviations of some centre (ring8: 0.03,
  grid25: 0.15);
* modes captured: centres that are the nearest centre of at least one high-quality sample;
* samples per mode: how the high-quality samples split over the centres (full counts for ring8,
  min / max for grid25); a perfect generator puts 2500/8 ≈ 312 (ring8) or 100 (grid25) on each;
* wall time of ``fit``.

A scatter plot of the samples over the true centres is written to benchmarks/figures/ per run.

    python benchmarks/gan_toys.py                       # both toys, all four objectives (≈ 10 min, 2 CPUs)
    python benchmarks/gan_toys.py --datasets ring8 --losses nonsaturating wasserstein --seed 1
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import genlab  # noqa: E402
from genlab.evaluate import mode_coverage  # noqa: E402

LOSSES = ("minimax", "nonsaturating", "wasserstein", "hinge")
DATASETS = ("ring8", "grid25")
FIGURES = Path(__file__).resolve().parent / "figures"


def scatter(path: Path, samples: np.ndarray, centres: np.ndarray, std: float, title: str) -> None:
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(*samples.T, s=2, alpha=0.4, color="tab:blue", label="samples", rasterized=True)
    ax.scatter(*centres.T, s=60, facecolors="none", edgecolors="tab:red", linewidths=1.0, label="centres (3σ not to scale)")
    lim = np.abs(centres).max() * 1.35
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_one(name: str, loss: str, epochs: int, batch_size: int, seed: int, n_train: int, n_samples: int) -> dict:
    X, _ = genlab.datasets.load(name, n_samples=n_train, random_state=seed)
    modes = genlab.datasets.toy_modes(name)
    gan = genlab.GAN(loss=loss, epochs=epochs, batch_size=batch_size, random_state=seed)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gan.fit(X)
    seconds = time.perf_counter() - start
    samples = gan.sample(n_samples, random_state=seed + 1)
    result = mode_coverage(samples, np.asarray(modes.centres), float(modes.std))
    result.update(dataset=name, loss=loss, seconds=seconds, epochs=epochs, batch_size=batch_size,
                  d_steps=gan.module_.config.d_steps, warnings=[str(w.message)[:60] for w in caught])
    FIGURES.mkdir(exist_ok=True)
    title = (f"{name}, {loss}: {result['modes']}/{result['n_modes']} modes, "
             f"{100 * result['high_quality']:.0f}% high quality")
    scatter(FIGURES / f"gan_{name}_{loss}.png", samples, np.asarray(modes.centres), float(modes.std), title)
    return result


def histogram(r: dict) -> str:
    c = r["counts"]
    if len(c) <= 8:
        return " ".join(str(int(v)) for v in c)
    return f"min {int(c.min())} / max {int(c.max())} ({int((c >= 0.5 * c.sum() / len(c)).sum())} modes ≥ ½ fair share)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    ap.add_argument("--epochs", type=int, default=None, help="passes over the 10 000 points (default: per data set, below)")
    ap.add_argument("--batch-size", type=int, default=None, help=f"default: {DEFAULT_BATCH}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--n-samples", type=int, default=2_500)
    args = ap.parse_args()

    default_epochs = {"ring8": DEFAULT_EPOCHS_RING8, "grid25": DEFAULT_EPOCHS_GRID25}
    batch_size = args.batch_size or DEFAULT_BATCH
    rows = []
    for name in args.datasets:
        for loss in args.losses:
            r = run_one(name, loss, args.epochs or default_epochs[name], batch_size, args.seed, args.n_train, args.n_samples)
            rows.append(r)
            print(f"{name:7s} {loss:14s} modes {r['modes']:2d}/{r['n_modes']}  high quality {100 * r['high_quality']:5.1f}%  "
                  f"per mode [{histogram(r)}]  {r['seconds']:.0f} s", flush=True)

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    command = "python benchmarks/gan_toys.py" + "".join(
        f" --{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if v is not None)
    print(f"\n*Date:* {time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())}  ")
    print(f"*Machine:* {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, genlab {genlab.__version__}  ")
    print(f"*Command:* `{command}`  ")
    print(f"*Code:* genlab at {commit} (plus uncommitted changes, if any)  \n")
    print("| data | objective | epochs × batch (k_d) | modes captured | high quality | high-quality samples per mode | fit time |")
    print("|---|---|---|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['loss']} | {r['epochs']} × {r['batch_size']} ({r['d_steps']}) | "
              f"{r['modes']}/{r['n_modes']} | {100 * r['high_quality']:.1f}% | {histogram(r)} | {r['seconds']:.0f} s |")


DEFAULT_EPOCHS_RING8 = 80
DEFAULT_EPOCHS_GRID25 = 80
DEFAULT_BATCH = 100  # PacGAN's toy batch

if __name__ == "__main__":
    main()
