"""Seeded train/validation split."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidInputError


def train_validation_split(n_samples: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) with ``ceil(fraction * n)`` validation samples, shuffled by ``seed``.

    ``fraction == 0`` gives an empty validation set. Raises when nothing would be left to train on.
    """
    if not 0.0 <= fraction < 1.0:
        raise InvalidInputError(f"validation_fraction must be in [0, 1), got {fraction}.")
    n_val = math.ceil(fraction * n_samples) if fraction > 0 else 0
    if n_samples - n_val < 1:
        raise InvalidInputError(
            f"validation_fraction={fraction} leaves no training samples out of {n_samples}; lower it or set it to 0."
        )
    order = np.random.default_rng(seed).permutation(n_samples)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
