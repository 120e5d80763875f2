"""Autoencoders (spec §3): encoder Φ: X→Z, decoder Ψ: Z→X, minimising Σᵢ D(xᵢ, Ψ(Φ(xᵢ))).

``arch="linear"`` is PCA in disguise: with squared error its optimum spans the top-k principal
subspace, and :func:`pca_closed_form` gives that optimum directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from ..nets import MLP, ConvDecoder, ConvEncoder, make_activation
from .base import Batch, GenerativeModule, full_precision
from .losses import RECONSTRUCTION_LOSSES


@dataclass(frozen=True)
class AutoencoderConfig:
    input_shape: tuple[int, ...]
    latent_dim: int
    arch: Literal["mlp", "conv", "linear"] = "mlp"
    hidden: tuple[int, ...] = (256, 128)
    channels: tuple[int, ...] = (32, 64)
    activation: str = "relu"
    code_activation: str | None = None
    loss: Literal["mse", "bce"] = "mse"


class AutoencoderModule(GenerativeModule):
    """Encoder and decoder as plain modules; ``decode`` returns the output in data space
    (sigmoid applied for ``loss="bce"``), ``decode_raw`` the pre-activation."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        shape, k = tuple(config.input_shape), config.latent_dim
        n_features = math.prod(shape)
        if config.arch == "conv":
            self.encoder = ConvEncoder(shape, k, channels=config.channels, hidden=config.hidden, activation=config.activation)
            self.decoder = ConvDecoder(
                k, shape, channels=tuple(reversed(config.channels)), hidden=tuple(reversed(config.hidden)),
                activation=config.activation,
            )
        else:
            hidden = () if config.arch == "linear" else config.hidden
            self.encoder = MLP(n_features, hidden, k, activation=config.activation)
            self.decoder = MLP(k, tuple(reversed(hidden)), n_features, activation=config.activation)
        self.code_activation = make_activation(config.code_activation or "identity")
        self.reconstruction_loss = RECONSTRUCTION_LOSSES[config.loss]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, *input_shape) -> codes (n, latent_dim)."""
        return self.code_activation(self.encoder(x))

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n, latent_dim) -> pre-activation outputs (n, *input_shape)."""
        return self.decoder(z).reshape(len(z), *self.config.input_shape)  # (n, d) -> (n, c, h, w) for images

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raw = self.decode_raw(z)
        return torch.sigmoid(raw) if self.config.loss == "bce" else raw

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        raw = full_precision(self.decoder(self.encode(batch.x)))  # bce takes logits, mse the values; float32 under autocast
        # an MLP decoder returns flat rows: compare with flat inputs rather than reshaping (cheaper backward)
        target = batch.x if raw.shape == batch.x.shape else batch.x.flatten(1)
        return {"loss": self.reconstruction_loss(raw, target).mean()}

    @torch.no_grad()
    def preview(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The batch's first images over their reconstructions (an autoencoder samples only after fit)."""
        if len(self.config.input_shape) != 3:
            return None
        x = batch.x[:16]
        return torch.cat([x, self.decode(self.encode(x))])


class PCASolution(NamedTuple):
    mean: torch.Tensor  # (d,)
    components: torch.Tensor  # (k, d), orthonormal rows, sign as scikit-learn's svd_flip
    explained_variance: torch.Tensor  # (k,), eigenvalues of the covariance (ddof=1)


def pca_closed_form(x: torch.Tensor, k: int) -> PCASolution:
    """Top-``k`` principal subspace of ``x`` (n, d), computed in float64 by SVD of the centred data."""
    x64 = x.reshape(len(x), -1).double()  # (n, c, h, w) -> (n, d)
    if k > min(x64.shape):
        raise ValueError(f"latent_dim={k} exceeds min(n_samples, n_features)={min(x64.shape)} for the closed-form linear autoencoder.")
    mean = x64.mean(dim=0)
    _, s, vt = torch.linalg.svd(x64 - mean, full_matrices=False)
    vt = vt[:k]
    # deterministic signs: the largest-magnitude entry of each component is positive (as sklearn.utils.extmath.svd_flip)
    signs = torch.sign(vt.gather(1, vt.abs().argmax(dim=1, keepdim=True)))
    vt = vt * signs
    return PCASolution(mean, vt, s[:k].pow(2) / max(len(x64) - 1, 1))


@torch.no_grad()
def set_linear_autoencoder(module: AutoencoderModule, solution: PCASolution) -> None:
    """Put the PCA optimum into a linear autoencoder: h = Vᵀ(x − μ), x̂ = μ + V h."""
    (enc,) = [m for m in module.encoder.modules() if isinstance(m, nn.Linear)]
    (dec,) = [m for m in module.decoder.modules() if isinstance(m, nn.Linear)]
    v = solution.components.to(enc.weight.dtype)  # (k, d)
    mean = solution.mean.to(enc.weight.dtype)
    enc.weight.copy_(v)
    enc.bias.copy_(-(v @ mean))
    dec.weight.copy_(v.T)
    dec.bias.copy_(mean)
