"""Autoencoders (spec §3): encoder Φ: X→Z, decoder Ψ: Z→X, minimising Σᵢ D(xᵢ, Ψ(Φ(xᵢ))).

``arch="linear"`` is PCA in disguise: with squared error its optimum spans the top-k principal
subspace, and :func:`pca_closed_form` gives that optimum directly. ``arch="conv"`` with ``pooling``
is the pooling autoencoder (conv-conv-pool blocks, mirrored by unpooling; :mod:`genlab.nets.conv_pool`):
with max-pooling a reconstruction un-pools at the positions its own encoding recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from ..errors import InvalidInputError
from ..nets import MLP, ConvDecoder, ConvEncoder, PoolingConvEncoder, UnpoolingConvDecoder, make_activation
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
    # None: the loss's own output (linear for mse, sigmoid for bce); "sigmoid" with mse: the lectures' 8-3-8 units
    output_activation: Literal["sigmoid"] | None = None
    # None: strided convolutions (the only conv autoencoder before this field existed, so old files mean None)
    pooling: Literal["max", "avg"] | None = None


class AutoencoderModule(GenerativeModule):
    """Encoder and decoder as plain modules; ``decode`` returns the output in data space
    (sigmoid applied for ``loss="bce"`` or ``output_activation="sigmoid"``), ``decode_raw`` the pre-activation.

    ``reconstruct`` is Ψ(Φ(x)) with everything the encoder passes on: with max-pooling (``pooling="max"``)
    the decoder un-pools at the positions the encoder's poolings recorded for that same ``x``. ``decode``
    of a code alone has no positions and upsamples by copying instead (:mod:`genlab.nets.conv_pool`).
    Because the positions carry information past the code, a decoder trained only on reconstructions
    decodes bare codes badly (on digits worse than the mean image); so with max-pooling the objective is
    the mean of both reconstruction losses, ``reconstruction`` (with positions) and
    ``reconstruction_code_only`` (without), and both are recorded.
    """

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        shape, k = tuple(config.input_shape), config.latent_dim
        n_features = math.prod(shape)
        if config.pooling is not None and config.arch != "conv":
            raise InvalidInputError(f"pooling={config.pooling!r} pools convolutional feature maps, so it needs arch='conv'; "
                                    f"got arch={config.arch!r}.")
        if config.pooling is not None:
            self.encoder = PoolingConvEncoder(shape, k, channels=config.channels, pooling=config.pooling, hidden=config.hidden,
                                              activation=config.activation)
            self.decoder = UnpoolingConvDecoder(
                k, shape, channels=tuple(reversed(config.channels)), pooling=config.pooling, hidden=tuple(reversed(config.hidden)),
                activation=config.activation,
            )
        elif config.arch == "conv":
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
        self._loss = RECONSTRUCTION_LOSSES[config.loss]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, *input_shape) -> codes (n, latent_dim)."""
        return self.code_activation(self.encoder(x))

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n, latent_dim) -> pre-activation outputs (n, *input_shape)."""
        return self.decoder(z).reshape(len(z), *self.config.input_shape)  # (n, d) -> (n, c, h, w) for images

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n, latent_dim) -> outputs in data space (n, *input_shape)."""
        return self._output(self.decode_raw(z))

    def reconstruct_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Ψ(Φ(x)) before the output activation: (n, *input_shape) -> (n, *input_shape)."""
        return self._decoded(x).reshape(len(x), *self.config.input_shape)  # (n, d) -> (n, c, h, w) for images

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Ψ(Φ(x)) in data space: (n, *input_shape) -> (n, *input_shape)."""
        return self._output(self.reconstruct_raw(x))

    def _output(self, raw: torch.Tensor) -> torch.Tensor:
        sigmoid = self.config.loss == "bce" or self.config.output_activation == "sigmoid"
        return torch.sigmoid(raw) if sigmoid else raw

    def reconstruction_loss(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-element loss of pre-activation outputs: bce takes them as logits; the squared error compares the
        outputs in data space (through the sigmoid when ``output_activation="sigmoid"``)."""
        return self._loss(raw if self.config.loss == "bce" else self._output(raw), target)

    def _decoded(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's output for inputs x (flat rows for an MLP); a max-pooling decoder gets the encoder's positions."""
        if self.config.pooling is None:
            return self.decoder(self.encode(x))
        code = self.encoder.forward_with_indices(x)
        return self.decoder(self.code_activation(code.z), code.indices)

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.config.pooling == "max":
            return self._two_path_objective(batch.x)
        raw = full_precision(self._decoded(batch.x))  # bce takes logits, mse the values; float32 under autocast
        # an MLP decoder returns flat rows: compare with flat inputs rather than reshaping (cheaper backward)
        target = batch.x if raw.shape == batch.x.shape else batch.x.flatten(1)
        return {"loss": self.reconstruction_loss(raw, target).mean()}

    def _two_path_objective(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Max-pooling: decode each code with the recorded positions and without, and minimise the mean of both losses
        (the second trains what ``decode`` does with a code alone; its gradient also reaches the encoder)."""
        code = self.encoder.forward_with_indices(x)
        z = self.code_activation(code.z)
        unpooled = self.reconstruction_loss(full_precision(self.decoder(z, code.indices)), x).mean()
        code_only = self.reconstruction_loss(full_precision(self.decoder(z)), x).mean()
        return {"loss": 0.5 * (unpooled + code_only), "reconstruction": unpooled, "reconstruction_code_only": code_only}

    @torch.no_grad()
    def preview(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The batch's first images over their reconstructions (an autoencoder samples only after fit)."""
        if len(self.config.input_shape) != 3:
            return None
        x = batch.x[:16]
        return torch.cat([x, self.reconstruct(x)])


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
