"""An example family's method file, as ``genlab/models/tied.py`` would be: a linear autoencoder whose decoder is the
transpose of its encoder (tied weights). It exists to prove ARCHITECTURE.md's claim that a new family is two new
files and one registry entry; it lives only in tests/ (test_family_example.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.models.base import Batch, GenerativeModule


@dataclass(frozen=True)
class TiedConfig:
    n_features: int
    latent_dim: int


class TiedModule(GenerativeModule):
    """z = W(x − b), x̂ = Wᵀz + b; the loss is the squared reconstruction error per sample."""

    def __init__(self, config: TiedConfig):
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.randn(config.latent_dim, config.n_features) / config.n_features**0.5)
        self.bias = nn.Parameter(torch.zeros(config.n_features))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - self.bias) @ self.weight.T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.weight + self.bias

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        x = batch.x.flatten(1)
        return {"loss": ((self.decode(self.encode(x)) - x) ** 2).sum(dim=1).mean()}
