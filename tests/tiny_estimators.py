"""One registry of tiny estimators — every family and its main variants — that the contract suite
(tests/test_contract.py) runs every check over. Each entry is fast: a few epochs, tiny widths, a fixed
random_state, verbose=0, device="cpu", on small data (digits subsets or a small synthetic users × items matrix).

A new family needs an entry here (the suite checks that every registered family has one) and, if a command
trains it, its tiny command-line options in TRAIN_CLI or RECOMMEND_CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

import genlab
from genlab import EASE, GAN, VAE, VAEGAN, Autoencoder, MultDAE, MultVAE, Popularity
from genlab.datasets import make_interactions

SEED = 0
TORCH = dict(epochs=2, batch_size=64, random_state=SEED, verbose=0, device="cpu")  # every torch estimator
N_IMAGES = 160


@dataclass(frozen=True)
class Tiny:
    """``make()`` an unfitted estimator; ``data()`` its fit data (X, y or None). ``loop``: trained by
    :func:`genlab.training.train` (False: solved in closed form, e.g. PCA), so it checkpoints and resumes."""

    id: str
    make: Callable[[], object]
    data: Callable[[], tuple[object, np.ndarray | None]]
    loop: bool = True


@cache
def _digits():
    return genlab.datasets.load("digits")


def images():
    """(160, 1, 8, 8) digits in [0, 1], no labels."""
    X, _ = _digits()
    return X[:N_IMAGES].copy(), None


def vectors():
    """The same digits as (160, 64) vectors."""
    X, _ = _digits()
    return X[:N_IMAGES].reshape(N_IMAGES, -1).copy(), None


def labelled_images():
    X, y = _digits()
    return X[:N_IMAGES].copy(), y[:N_IMAGES].copy()


def labelled_vectors():
    X, y = labelled_images()
    return X.reshape(len(X), -1), y


def partly_labelled_vectors():
    """Semi-supervised labels: every other row unlabelled (-1)."""
    X, y = labelled_vectors()
    y = y.copy()
    y[1::2] = -1
    return X, y


@cache
def _interactions():
    return make_interactions(240, 60, 4, items_per_user=(5, 15), random_state=SEED).matrix


def interactions():
    """A (240 users × 60 items) CSR matrix of planted implicit feedback."""
    return _interactions().copy(), None


_MULT = dict(hidden=(16,), latent_dim=8, batch_size=64, epochs=2, anneal_steps=6, validation_users=24, random_state=SEED,
             verbose=0, device="cpu")  # anneal_steps fixed: the default (80% of the run) depends on epochs, so no resume matches

TINY: tuple[Tiny, ...] = (
    Tiny("ae-linear", lambda: Autoencoder(4, arch="linear", **TORCH), vectors, loop=False),
    Tiny("ae-mlp", lambda: Autoencoder(4, arch="mlp", hidden=(16,), **TORCH), vectors),
    Tiny("ae-conv", lambda: Autoencoder(4, arch="conv", channels=(4, 8), loss="bce", **TORCH), images),
    Tiny("ae-conv-maxpool", lambda: Autoencoder(4, arch="conv", channels=(4, 8), pooling="max", **TORCH), images),
    Tiny("ae-conv-avgpool", lambda: Autoencoder(4, arch="conv", channels=(4, 8), pooling="avg", **TORCH), images),
    Tiny("ae-mlp-sigmoid", lambda: Autoencoder(4, hidden=(16,), output_activation="sigmoid", **TORCH), vectors),
    Tiny("vae-bernoulli", lambda: VAE(4, hidden=(16,), n_importance=8, **TORCH), vectors),
    Tiny("vae-gaussian", lambda: VAE(4, hidden=(16,), likelihood="gaussian", variance="pixel", n_importance=8, **TORCH), vectors),
    Tiny("vae-conditional", lambda: VAE(4, hidden=(16,), conditional=True, n_importance=8, **TORCH), labelled_vectors),
    Tiny("vae-aggressive", lambda: VAE(4, hidden=(16,), training="aggressive", n_importance=8, **{**TORCH, "batch_size": 96}), vectors),
    Tiny("vae-conv", lambda: VAE(4, arch="conv", channels=(4, 8), n_importance=8, **TORCH), images),
    Tiny("vae-tanh-center", lambda: VAE(4, hidden=(16,), likelihood="gaussian", output_activation="tanh", scaling="center",
                                        n_importance=8, **TORCH), vectors),
    Tiny("gan-nonsaturating", lambda: GAN(4, hidden=(16,), **TORCH), vectors),
    Tiny("gan-wgan-gp", lambda: GAN(4, hidden=(16,), loss="wasserstein", penalty="gp", d_steps=2, **TORCH), vectors),
    Tiny("gan-conditional", lambda: GAN(4, hidden=(16,), conditional=True, **TORCH), labelled_vectors),
    Tiny("gan-semi-supervised", lambda: GAN(4, hidden=(16,), semi_supervised=True, **TORCH), partly_labelled_vectors),
    Tiny("gan-dcgan", lambda: GAN(4, arch="conv", channels=(4, 8), **TORCH), images),
    Tiny("gan-softmax-two-widths", lambda: GAN(4, hidden_g=(16,), hidden_d=(12, 8), activation_d="relu", d_head="softmax", **TORCH),
         vectors),
    Tiny("vaegan", lambda: VAEGAN(4, hidden=(16,), d_hidden=(16,), **TORCH), vectors),
    Tiny("multvae", lambda: MultVAE(**_MULT), interactions),
    Tiny("multdae", lambda: MultDAE(**_MULT), interactions),
    Tiny("ease", lambda: EASE(random_state=SEED), interactions),
    Tiny("popularity", lambda: Popularity(), interactions),
)
BY_ID = {t.id: t for t in TINY}

#: tiny options of ``genlab train KEY --data digits --epochs 1 ...``, per family with run == "train"
TRAIN_CLI: dict[str, list[str]] = {
    "ae": ["--hidden", "16", "--latent-dim", "3", "--batch-size", "256", "--seed", "0", "--device", "cpu"],
    "vae": ["--hidden", "16", "--latent-dim", "3", "--batch-size", "256", "--n-importance", "4", "--seed", "0", "--device", "cpu"],
    "gan": ["--hidden", "16", "--latent-dim", "3", "--batch-size", "256", "--seed", "0", "--device", "cpu"],
    "vaegan": ["--hidden", "16", "--d-hidden", "16", "--latent-dim", "3", "--batch-size", "256", "--seed", "0", "--device", "cpu"],
}
#: tiny options of ``genlab recommend fit --model KEY ...``, per family with run == "recommend"
RECOMMEND_CLI: dict[str, list[str]] = {
    "multvae": ["--epochs", "1", "--hidden", "16", "--latent-dim", "4", "--batch-size", "64", "--seed", "0", "--device", "cpu"],
    "multdae": ["--epochs", "1", "--hidden", "16", "--latent-dim", "4", "--batch-size", "64", "--seed", "0", "--device", "cpu"],
    "ease": ["--l2", "50", "--seed", "0"],
}
