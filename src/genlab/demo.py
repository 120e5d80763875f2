"""``genlab demo`` (``make demo``): the demo models on the built-in digits, evaluated, with one comparison page.

Each demo model is there to show what its family can do, so its settings are chosen for that (README, "The demo"):

* ``vae-2d`` and ``cvae`` use a Gaussian likelihood with a small fixed variance (σ² = 0.02). digits are 17 grey
  levels, not black-and-white pixels; under the default Bernoulli likelihood the reconstruction of 64 grey pixels
  weighs little against the KL term, the decoder explains the writing style as pixel noise and the code collapses
  (2 of 8 latent dimensions used, every sample of a class the same image: recall 0.00 against 0.94 for real
  digits). With σ² = 0.02 all 8 dimensions carry information and the conditional VAE's recall is about 0.6
  (seeds 0–2: 0.58–0.62), at least half the real-data reference, as ``tests/test_health.py`` checks.
* They train for 4× the base epochs (120 by default): a few seconds each on 2 CPU cores.
* The GAN is conditional and trains 5× the base epochs: a GAN needs more updates than an autoencoder.
"""

from __future__ import annotations

from pathlib import Path

from . import families
from .evaluate import evaluate_run
from .report import write_comparison
from .runs import RunSettings, run_directory, train_run

DEMO_DATA = "digits"
GREY_LEVELS = {"likelihood": "gaussian", "sigma2": 0.02}  # see the module docstring


def demo_runs(epochs: int = 30) -> dict[str, RunSettings]:
    """The demo's runs by name: conv and linear (PCA) autoencoders, a 2-D VAE, a conditional VAE, a conditional GAN."""
    return {
        "ae-conv": RunSettings("ae", DEMO_DATA, {"arch": "conv", "latent_dim": 10, "epochs": epochs, "random_state": 0}),
        "ae-linear": RunSettings("ae", DEMO_DATA, {"arch": "linear", "latent_dim": 10, "random_state": 0}),
        "vae-2d": RunSettings("vae", DEMO_DATA, {"latent_dim": 2, **GREY_LEVELS, "epochs": 4 * epochs, "random_state": 0}),
        "cvae": RunSettings("vae", DEMO_DATA, {"latent_dim": 8, "conditional": True, **GREY_LEVELS, "epochs": 4 * epochs,
                                               "random_state": 0}),
        "gan": RunSettings("gan", DEMO_DATA, {"conditional": True, "epochs": 5 * epochs, "random_state": 0}),
    }


def run_demo(out: str | Path, *, epochs: int = 30, overwrite: bool = False, say=print) -> Path:
    """Train, evaluate and report every demo run under ``out``; returns the comparison page (``out/index.html``)."""
    runs = demo_runs(epochs)
    with run_directory(out, overwrite=overwrite) as root:
        for name, settings in runs.items():
            say(f"demo: training {name} on {DEMO_DATA}")
            est = train_run(settings, Path(root) / name, verbose=1)
            headline = families.get(settings.model).headline_numbers(est.history_[-1])  # the family's final numbers
            summary = ", ".join(f"{k} {v:.4g}" for k, v in headline.items())
            say(f"demo: {name} {summary} -> {Path(out) / name}")
        for name in runs:  # metrics against held-out digits
            say(f"demo: evaluating {name}")
            evaluate_run(Path(root) / name)
        write_comparison([Path(root) / name for name in runs], Path(root) / "index.html")  # and each run's own page
    return Path(out) / "index.html"
