"""Determinism (issue 7, item 8): on CPU, the same seed gives a byte-identical model.safetensors, whatever
the global random state; a different seed gives a different one. (test_autoencoder compares outputs;
this compares the saved bytes, for every family and the variants that draw the most noise.)"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from genlab import GAN, VAE, Autoencoder

TINY = dict(epochs=2, batch_size=32, random_state=0)
MODELS = {
    "ae-mlp": lambda seed: Autoencoder(3, hidden=(16,), **{**TINY, "random_state": seed}),
    "ae-conv": lambda seed: Autoencoder(3, arch="conv", channels=(4, 8), hidden=(16,), **{**TINY, "random_state": seed}),
    "vae-dynamic-binarisation": lambda seed: VAE(2, hidden=(16,), binarize="dynamic", n_mc=2, **{**TINY, "random_state": seed}),
    "vae-conditional": lambda seed: VAE(2, hidden=(16,), conditional=True, **{**TINY, "random_state": seed}),
    "gan": lambda seed: GAN(2, hidden=(16,), **{**TINY, "random_state": seed}),
    "gan-wasserstein-gp-conditional": lambda seed: GAN(2, hidden=(16,), loss="wasserstein", penalty="gp", d_steps=2,
                                                       conditional=True, **{**TINY, "random_state": seed}),
}


def _weights(make, seed, X, y, folder) -> bytes:
    est = make(seed)
    est.fit(X, y if getattr(est, "conditional", False) else None)
    est.save(folder)
    return (folder / "model.safetensors").read_bytes()


@pytest.mark.parametrize("name", list(MODELS))
def test_same_seed_same_bytes_different_seed_different_bytes(name, digits, tmp_path):
    X, y = digits[0][:96], digits[1][:96]
    make = MODELS[name]
    first = _weights(make, 0, X, y, tmp_path / "a")
    # the global generators must not matter: genlab draws only from its own, seeded ones
    torch.manual_seed(12345)
    np.random.seed(12345)
    random.seed(12345)
    torch.rand(7)
    again = _weights(make, 0, X, y, tmp_path / "b")
    other = _weights(make, 1, X, y, tmp_path / "c")
    assert first == again
    assert first != other
