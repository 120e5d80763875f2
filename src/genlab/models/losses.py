"""Objective terms shared by the model families. Each returns one value per sample, in nats
(or squared units), summed over the features of a sample: (n, ...) -> (n,)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors per sample."""
    return (x_hat - x).pow(2).flatten(1).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | logits) for x in [0, 1] (binary cross-entropy), computed from logits for stability."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


RECONSTRUCTION_LOSSES = {"mse": squared_error, "bce": bernoulli_nll}
