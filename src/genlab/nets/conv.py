"""Convolutional encoder and its transposed mirror, the decoder, for images of any size.

All spatial arithmetic lives in :func:`conv_output_size` (the one convolution size formula) and
:func:`transposed_output_padding`; the decoder (and the DCGAN generator built from it) walks the
encoder's sizes backwards, so ``decoder(encoder(x))`` has exactly ``x``'s shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from genlab.errors import InvalidInputError

from .mlp import MLP, check_widths, make_activation

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "conv_blocks",
    "conv_output_size",
    "conv_padding",
    "conv_spatial_sizes",
    "transposed_output_padding",
]


def conv_padding(kernel_size: int) -> int:
    """Return the padding every convolution here uses: ``(k - 1) // 2``.

    With stride 2 it halves the size: ``k=4 -> floor(h/2)``, ``k=3`` or ``k=5 -> ceil(h/2)``.
    """
    return (kernel_size - 1) // 2


def conv_output_size(size: int, *, kernel_size: int, stride: int, padding: int) -> int:
    """Output length of a convolution along one axis (no dilation), as ``nn.Conv2d`` computes it."""
    return (size + 2 * padding - kernel_size) // stride + 1


def conv_spatial_sizes(
    input_size: tuple[int, int], n_layers: int, *, kernel_size: int, stride: int
) -> list[tuple[int, int]]:
    """Spatial sizes ``[(h, w), (h1, w1), ..., (hL, wL)]`` through ``n_layers`` strided convolutions.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) if the image is too small: some layer would output no pixels.
    """
    padding = conv_padding(kernel_size)
    sizes = [tuple(input_size)]
    for layer in range(n_layers):
        h, w = (
            conv_output_size(s, kernel_size=kernel_size, stride=stride, padding=padding)
            for s in sizes[-1]
        )
        if h < 1 or w < 1:
            raise InvalidInputError(
                f"A {input_size[0]}x{input_size[1]} image is too small for {n_layers} convolutions "
                f"with kernel_size={kernel_size}, stride={stride}: after {layer} of them it is "
                f"{sizes[-1][0]}x{sizes[-1][1]} and the next would leave no pixels. Give fewer "
                f"`channels` entries (at most {layer}), a smaller kernel_size, or larger images."
            )
        sizes.append((h, w))
    return sizes


def transposed_output_padding(in_size: int, out_size: int, *, kernel_size: int, stride: int) -> int:
    """``output_padding`` that makes a ``ConvTranspose2d`` map ``in_size`` to exactly ``out_size``.

    It exists (is in ``[0, stride)``) whenever ``in_size == conv_output_size(out_size, ...)``:
    a strided convolution drops the ``(out_size + 2p - k) % stride`` trailing positions, and the
    transposed convolution has to put them back.
    """
    padding = conv_padding(kernel_size)
    if conv_output_size(out_size, kernel_size=kernel_size, stride=stride, padding=padding) != in_size:
        raise InvalidInputError(
            f"No transposed convolution (kernel_size={kernel_size}, stride={stride}) maps size "
            f"{in_size} to {out_size}."
        )
    return (out_size + 2 * padding - kernel_size) % stride


def check_image_shape(name: str, shape: Sequence[int]) -> tuple[int, int, int]:
    """Return ``shape`` as ``(c, h, w)`` after checking it is three positive ints."""
    shape = check_widths(name, shape)
    if len(shape) != 3:
        raise InvalidInputError(f"{name} must be (channels, height, width), got {shape!r}.")
    return shape


def check_kernel(kernel_size: int, stride: int) -> tuple[int, int]:
    """Return ``(kernel_size, stride)`` after checking both are positive ints."""
    return check_widths("kernel_size and stride", (kernel_size, stride))


def check_channels(channels: Sequence[int]) -> tuple[int, ...]:
    """Return ``channels`` as a tuple after checking it is a non-empty sequence of positive ints."""
    channels = check_widths("channels", channels)
    if not channels:
        raise InvalidInputError("channels must have at least one entry (one per convolution).")
    return channels


def conv_blocks(
    in_channels: int,
    channels: Sequence[int],
    *,
    kernel_size: int,
    stride: int,
    activation: str,
    batch_norm: Sequence[bool],
) -> nn.Sequential:
    """``Conv2d -> [BatchNorm2d] -> activation`` per ``channels`` entry, one ``batch_norm`` flag each."""
    layers: list[nn.Module] = []
    for c_in, c_out, norm in zip((in_channels, *channels[:-1]), channels, batch_norm, strict=True):
        layers.append(
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=conv_padding(kernel_size), bias=not norm)
        )
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def as_images(x: torch.Tensor, shape: tuple[int, int, int], owner: str) -> torch.Tensor:
    """Check ``x`` is ``(n, *shape)``, or ``(n, prod(shape))`` which is reshaped to it."""
    if x.dim() == 2 and x.shape[1] == math.prod(shape):
        return x.view(-1, *shape)  # (n, c*h*w) -> (n, c, h, w)
    if tuple(x.shape[1:]) != shape:
        raise InvalidInputError(
            f"{owner} expects images of shape (n, {', '.join(map(str, shape))}), got {tuple(x.shape)}."
        )
    return x


class ConvEncoder(nn.Module):
    """Strided convolutions down to a small feature map, then fully-connected layers.

    ``Conv2d(kernel_size, stride, padding=(kernel_size-1)//2) -> [BatchNorm2d] -> activation`` per
    entry of ``channels`` (with the defaults each halves the size: 28 -> 14 -> 7), flatten, then an
    :class:`MLP` with widths ``hidden`` to ``out_features``. Works for any image size large enough
    for the number of convolutions.

    Parameters
    ----------
    input_shape : (int, int, int)
        ``(channels, height, width)`` of one image.
    out_features : int
        Output width (e.g. the latent dimension, or twice it for a mean and a log-variance).
    channels : sequence of int, default=(32, 64)
        Output channels of each convolution; its length is the number of convolutions.
    kernel_size : int, default=4
    stride : int, default=2
    hidden : sequence of int, default=()
        Widths of fully-connected layers between the flattened features and the output.
    activation : str, default="relu"
        Name in :data:`~genlab.nets.ACTIVATIONS`, after every convolution and hidden layer.
    batch_norm : bool, default=False
        ``BatchNorm2d`` after each convolution and ``BatchNorm1d`` after each hidden layer.

    Attributes
    ----------
    feature_shape : (int, int, int)
        ``(C, H, W)`` of the last convolution's output.
    spatial_sizes : list of (int, int)
        ``(h, w)`` from the input to the last convolution's output (``len(channels) + 1`` entries).

    Shape
    -----
    input ``(n, *input_shape)`` (or flattened, ``(n, c*h*w)``); output ``(n, out_features)``.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) if the image is too small for ``len(channels)`` convolutions.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        out_features: int,
        *,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 4,
        stride: int = 2,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.input_shape = check_image_shape("input_shape", input_shape)
        channels = check_channels(channels)
        kernel_size, stride = check_kernel(kernel_size, stride)
        in_channels, height, width = self.input_shape
        self.spatial_sizes = conv_spatial_sizes(
            (height, width), len(channels), kernel_size=kernel_size, stride=stride
        )
        self.feature_shape = (channels[-1], *self.spatial_sizes[-1])
        self.convs = conv_blocks(
            in_channels, channels, kernel_size=kernel_size, stride=stride,
            activation=activation, batch_norm=[batch_norm] * len(channels),
        )
        self.head = MLP(
            math.prod(self.feature_shape), hidden, out_features, activation=activation, batch_norm=batch_norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(n, c, h, w)`` to ``(n, out_features)``."""
        features = self.convs(as_images(x, self.input_shape, "ConvEncoder"))  # (n, C, H, W)
        return self.head(features)  # flattened by the MLP: (n, C, H, W) -> (n, C*H*W) -> (n, out)


class ConvDecoder(nn.Module):
    """Transposed mirror of :class:`ConvEncoder`: up from a small feature map to ``output_shape``.

    :class:`MLP` with widths ``hidden`` from ``in_features`` to ``C0*h0*w0``, reshape to
    ``(C0, h0, w0)``, ``[BatchNorm2d] -> activation``, then per entry of ``channels``
    ``ConvTranspose2d -> [BatchNorm2d] -> activation``, the last one going to the output channels
    with neither (it returns logits / raw values). ``(h0, w0)`` and each layer's
    ``output_padding`` come from the sizes a :class:`ConvEncoder` with the same kernel, stride and
    number of layers would produce on ``output_shape``, so any image size is reproduced exactly.

    Parameters
    ----------
    in_features : int
        Input width (e.g. the latent dimension, plus the number of classes when conditional).
    output_shape : (int, int, int)
        ``(channels, height, width)`` of one output image.
    channels : sequence of int, default=(64, 32)
        Channels of the projected map and of each intermediate layer; its length is the number of
        transposed convolutions. Reversing an encoder's ``channels`` gives its mirror.
    kernel_size : int, default=4
    stride : int, default=2
    hidden : sequence of int, default=()
        Widths of fully-connected layers before the projection.
    activation : str, default="relu"
        Name in :data:`~genlab.nets.ACTIVATIONS`, after every layer except the last.
    batch_norm : bool, default=False
        Batch-norm after every layer except the last.

    Attributes
    ----------
    feature_shape : (int, int, int)
        ``(C0, h0, w0)``, the shape the input is projected to.
    spatial_sizes : list of (int, int)
        ``(h, w)`` from the projected map to the output (the encoder's, reversed).

    Shape
    -----
    input ``(n, in_features)``; output ``(n, *output_shape)``.
    """

    def __init__(
        self,
        in_features: int,
        output_shape: tuple[int, int, int],
        *,
        channels: Sequence[int] = (64, 32),
        kernel_size: int = 4,
        stride: int = 2,
        hidden: Sequence[int] = (),
        activation: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.output_shape = check_image_shape("output_shape", output_shape)
        channels = check_channels(channels)
        kernel_size, stride = check_kernel(kernel_size, stride)
        out_channels, height, width = self.output_shape
        encoder_sizes = conv_spatial_sizes((height, width), len(channels), kernel_size=kernel_size, stride=stride)
        self.spatial_sizes = encoder_sizes[::-1]
        self.feature_shape = (channels[0], *self.spatial_sizes[0])
        self.project = MLP(
            in_features, hidden, math.prod(self.feature_shape), activation=activation, batch_norm=batch_norm
        )

        layers: list[nn.Module] = [nn.BatchNorm2d(channels[0])] if batch_norm else []
        layers.append(make_activation(activation))
        targets = (*channels[1:], out_channels)
        for layer, (c_in, c_out) in enumerate(zip(channels, targets, strict=True)):
            last = layer == len(channels) - 1
            (h_in, w_in), (h_out, w_out) = self.spatial_sizes[layer], self.spatial_sizes[layer + 1]
            output_padding = (
                transposed_output_padding(h_in, h_out, kernel_size=kernel_size, stride=stride),
                transposed_output_padding(w_in, w_out, kernel_size=kernel_size, stride=stride),
            )
            layers.append(
                nn.ConvTranspose2d(
                    c_in, c_out, kernel_size, stride=stride, padding=conv_padding(kernel_size),
                    output_padding=output_padding, bias=last or not batch_norm,
                )
            )
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(make_activation(activation))
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map ``(n, in_features)`` to ``(n, *output_shape)`` (no output activation)."""
        x = self.project(z)  # (n, in_features) -> (n, C0*h0*w0)
        x = x.view(-1, *self.feature_shape)  # -> (n, C0, h0, w0)
        return self.convs(x)  # -> (n, c, h, w) = (n, *output_shape)
