"""DCGAN generator and discriminator (Radford, Metz & Chintala, ICLR 2016).

The paper's architecture guidelines, followed here: no pooling (strided convolutions in D,
transposed convolutions in G); batch-norm in both, except G's output layer and D's input layer;
no hidden fully-connected layers except G's projection of z; ReLU in G, LeakyReLU(0.2) in D;
weights initialised from N(0, 0.02). The output non-linearity (tanh or sigmoid) and the loss are
the model's business, so G returns pre-activations and D returns logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrizations

from genlab._params import check_number
from genlab.errors import InvalidInputError

from .conv import (
    ConvDecoder,
    as_images,
    check_channels,
    check_image_shape,
    check_kernel,
    conv_blocks,
    conv_spatial_sizes,
)
from .mlp import check_widths

__all__ = ["DCGANDiscriminator", "DCGANGenerator"]


def _dcgan_init(module: nn.Module) -> None:
    """Initialise weights as in Radford et al. (2016), section 4: N(0, 0.02); batch-norm scale N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _check_labels(y: torch.Tensor, n: int, n_extra: int, owner: str, parameter: str) -> None:
    """Raise unless ``y`` is ``(n, n_extra)`` (e.g. one-hot labels) with ``n_extra > 0``."""
    if n_extra == 0:
        raise InvalidInputError(f"{owner} was built with {parameter}=0, so it takes no y.")
    if tuple(y.shape) != (n, n_extra):
        raise InvalidInputError(
            f"{owner} expects y of shape ({n}, {n_extra}) (e.g. one-hot labels), got {tuple(y.shape)}."
        )


class DCGANGenerator(nn.Module):
    """DCGAN generator: project z to a small feature map, then transposed convolutions up.

    ``Linear(latent_dim + in_features_extra -> C0*h0*w0)``, reshape, ``BatchNorm2d -> ReLU``,
    then ``ConvTranspose2d -> BatchNorm2d -> ReLU`` per remaining entry of ``channels``, and a last
    ``ConvTranspose2d`` to the image channels with no batch-norm and no activation. It is a
    :class:`~genlab.nets.ConvDecoder` with those settings, so it reaches exactly ``output_shape``
    for any image size.

    Parameters
    ----------
    latent_dim : int
        Dimension of z.
    output_shape : (int, int, int)
        ``(channels, height, width)`` of one generated image.
    channels : sequence of int, default=(128, 64)
        Channels of the projected map and of each intermediate layer; one transposed convolution
        per entry (each doubles the size with the defaults).
    in_features_extra : int, default=0
        Extra inputs concatenated to z, e.g. a one-hot label for a conditional GAN.
    kernel_size : int, default=4
    stride : int, default=2

    Attributes
    ----------
    decoder : ConvDecoder
        The network; ``decoder.feature_shape`` is the projected map's ``(C0, h0, w0)``.

    Shape
    -----
    ``z`` ``(n, latent_dim)`` and ``y`` ``(n, in_features_extra)``, or ``z`` already concatenated
    ``(n, latent_dim + in_features_extra)`` with ``y=None``; output ``(n, *output_shape)``,
    pre-activation.
    """

    def __init__(
        self,
        latent_dim: int,
        output_shape: tuple[int, int, int],
        *,
        channels: Sequence[int] = (128, 64),
        in_features_extra: int = 0,
        kernel_size: int = 4,
        stride: int = 2,
    ) -> None:
        super().__init__()
        (self.latent_dim,) = check_widths("latent_dim", (latent_dim,))
        self.in_features_extra = check_number("in_features_extra", in_features_extra, low=0, what="a non-negative int")
        self.decoder = ConvDecoder(
            self.latent_dim + self.in_features_extra, output_shape, channels=channels,
            kernel_size=kernel_size, stride=stride, hidden=(), activation="relu", batch_norm=True,
        )
        self.output_shape = self.decoder.output_shape
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``z`` (and labels ``y``) to images ``(n, *output_shape)``, pre-activation."""
        if y is not None:
            _check_labels(y, len(z), self.in_features_extra, "DCGANGenerator", "in_features_extra")
            z = torch.cat([z, y.to(z.dtype)], dim=1)  # (n, latent_dim) + (n, extra) -> (n, latent_dim + extra)
        expected = self.latent_dim + self.in_features_extra
        if z.dim() != 2 or z.shape[1] != expected:
            raise InvalidInputError(
                f"DCGANGenerator expects z of shape (n, {self.latent_dim})"
                + (f" with y (n, {self.in_features_extra}), or (n, {expected})" if self.in_features_extra else "")
                + f"; got {tuple(z.shape)}."
            )
        return self.decoder(z)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: strided convolutions with LeakyReLU(0.2), then one linear layer.

    ``Conv2d -> [BatchNorm2d] -> LeakyReLU(0.2)`` per entry of ``channels`` (batch-norm on all but
    the first), flatten, ``Linear`` to ``out_features`` logits. No pooling, no hidden
    fully-connected layer.

    Parameters
    ----------
    input_shape : (int, int, int)
        ``(channels, height, width)`` of one image, without the extra label channels.
    channels : sequence of int, default=(64, 128)
        Output channels of each strided convolution.
    out_features : int, default=1
        Number of logits: 1 for real/fake, ``C + 1`` for a semi-supervised discriminator.
    in_channels_extra : int, default=0
        Extra input channels, e.g. a one-hot label broadcast over the image (conditional GAN).
    spectral_norm : bool, default=False
        Wrap every convolution and the linear layer in
        :func:`torch.nn.utils.parametrizations.spectral_norm` (Miyato et al., 2018) and use no
        batch-norm.
    kernel_size : int, default=4
    stride : int, default=2

    Attributes
    ----------
    feature_shape : (int, int, int)
        ``(C, H, W)`` of the last convolution's output.
    spatial_sizes : list of (int, int)
        ``(h, w)`` from the input to the last convolution's output.

    Shape
    -----
    ``x`` ``(n, c, h, w)`` and ``y`` ``(n, in_channels_extra)`` (broadcast to channels here), or
    ``x`` with the extra channels already appended, ``(n, c + in_channels_extra, h, w)``, with
    ``y=None``; output ``(n, out_features)`` logits.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) if the image is too small for ``len(channels)`` convolutions.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        *,
        channels: Sequence[int] = (64, 128),
        out_features: int = 1,
        in_channels_extra: int = 0,
        spectral_norm: bool = False,
        kernel_size: int = 4,
        stride: int = 2,
    ) -> None:
        super().__init__()
        self.input_shape = check_image_shape("input_shape", input_shape)
        channels = check_channels(channels)
        kernel_size, stride = check_kernel(kernel_size, stride)
        (out_features,) = check_widths("out_features", (out_features,))
        self.in_channels_extra = check_number("in_channels_extra", in_channels_extra, low=0, what="a non-negative int")
        in_channels, height, width = self.input_shape
        self.spatial_sizes = conv_spatial_sizes((height, width), len(channels), kernel_size=kernel_size, stride=stride)
        self.feature_shape = (channels[-1], *self.spatial_sizes[-1])
        # Radford et al.: no batch-norm on D's input layer; spectral norm replaces batch-norm
        batch_norm = [False] + [not spectral_norm] * (len(channels) - 1)
        self.convs = conv_blocks(
            in_channels + self.in_channels_extra, channels, kernel_size=kernel_size, stride=stride,
            activation="leaky_relu", batch_norm=batch_norm,
        )
        self.linear = nn.Linear(math.prod(self.feature_shape), out_features)
        self.apply(_dcgan_init)
        if spectral_norm:
            for module in [*self.convs, self.linear]:
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    parametrizations.spectral_norm(module)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Map images ``(n, c, h, w)`` (and labels ``y``) to logits ``(n, out_features)``."""
        c, h, w = self.input_shape
        if y is not None:
            x = as_images(x, self.input_shape, "DCGANDiscriminator")
            _check_labels(y, len(x), self.in_channels_extra, "DCGANDiscriminator", "in_channels_extra")
            y_maps = y.to(x.dtype)[:, :, None, None].expand(-1, -1, h, w)  # (n, k) -> (n, k, h, w)
            x = torch.cat([x, y_maps], dim=1)  # -> (n, c + k, h, w)
        x = as_images(x, (c + self.in_channels_extra, h, w), "DCGANDiscriminator")
        features = self.convs(x)  # (n, C, H, W)
        return self.linear(features.flatten(1))  # (n, C, H, W) -> (n, C*H*W) -> (n, out_features)
