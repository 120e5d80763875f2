"""Convolution + pooling encoder and its unpooling mirror (spec §2: "convolution + pooling" to a bottleneck).

The encoder repeats a block ``conv 3x3 -> act -> conv 3x3 -> act -> pool 2x2`` (the lectures'
conv-conv-pool pattern: the convolutions keep the size, the pooling halves it), one block per
``channels`` entry, then fully-connected layers to the code. The decoder walks the blocks backwards,
``unpool 2x2 -> conv 3x3 -> act -> conv 3x3 [-> act]``, each unpooling paired with the pooling at the
same depth:

* ``pooling="max"``: each max-pooling records where its windows' maxima were, and the paired
  :class:`~genlab.nets.MaxUnpool` puts the decoder's values back at exactly those positions (zeros
  elsewhere). Those positions exist only while one input goes through the encoder and straight into
  the decoder (a reconstruction: :meth:`PoolingConvEncoder.forward_with_indices` hands them over). A
  code decoded on its own (``indices=None``: decoding given codes, sampling) has none; there each
  max-unpooling is replaced by nearest-neighbour upsampling (each value copied to its window). A
  decoder trained only with positions decodes that badly — the positions carry 2 bits per pooled
  value past the code, and it comes to rely on them — so the autoencoder trains both paths
  (:class:`~genlab.models.AutoencoderModule`).
* ``pooling="avg"``: average pooling, mirrored by nearest-neighbour upsampling: the window's mean copied
  back to the window, which is the closest (least-squares) window-constant image. Nothing is recorded,
  so reconstructing and decoding a code are the same computation.

Odd sizes: pooling runs with ``ceil_mode``, so an odd side keeps its last row or column as a partial
window (7 -> 4: the max, or the mean, of the pixels that exist) and unpooling crops back (4 -> 8 -> 7).
Any image that is at least 2x2 before every pooling works, and the decoder returns exactly its shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import nn

from genlab.errors import InvalidInputError

from .conv import as_images, check_channels, check_image_shape
from .mlp import MLP, make_activation
from .unpool import MaxUnpool, NearestUnpool

__all__ = ["POOLING", "PooledCode", "PoolingConvEncoder", "UnpoolingConvDecoder", "pooled_sizes"]

POOLING = ("max", "avg")
POOL_SIZE = 2  # every pooling is 2x2 with stride 2
KERNEL_SIZE = 3  # every convolution is 3x3, stride 1, padding 1: it keeps the size


class PooledCode(NamedTuple):
    """An encoder's code ``z`` (n, out_features) and, for max-pooling, each block's recorded argmax positions
    (``indices[i]`` of shape (n, C_i, h_i, w_i), shallowest block first); None for average pooling."""

    z: torch.Tensor
    indices: tuple[torch.Tensor, ...] | None


def check_pooling(pooling: str) -> str:
    """Return ``pooling`` after checking it is one of :data:`POOLING`."""
    if pooling not in POOLING:
        raise InvalidInputError(f"pooling must be one of {', '.join(map(repr, POOLING))}; got {pooling!r}.")
    return pooling


def pooled_sizes(input_size: tuple[int, int], n_blocks: int) -> list[tuple[int, int]]:
    """Spatial sizes ``[(h, w), (h1, w1), ..., (hL, wL)]`` through ``n_blocks`` 2x2 poolings (odd sides round up).

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) if the image is too small: some pooling would see less than 2x2.
    """
    sizes = [tuple(input_size)]
    for block in range(n_blocks):
        h, w = sizes[-1]
        if h < POOL_SIZE or w < POOL_SIZE:
            raise InvalidInputError(
                f"A {input_size[0]}x{input_size[1]} image is too small for {n_blocks} pooling blocks: after {block} of "
                f"them it is {h}x{w}, and a {POOL_SIZE}x{POOL_SIZE} pooling needs at least that. Give fewer `channels` "
                f"entries (at most {block}) or larger images."
            )
        sizes.append((math.ceil(h / POOL_SIZE), math.ceil(w / POOL_SIZE)))
    return sizes


def _two_convs(c_in: int, c_mid: int, c_out: int, activation: str, *, last_activation: bool = True) -> nn.Sequential:
    """``conv 3x3 -> act -> conv 3x3 [-> act]``, both keeping the spatial size."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_mid, KERNEL_SIZE, padding=KERNEL_SIZE // 2),
        make_activation(activation),
        nn.Conv2d(c_mid, c_out, KERNEL_SIZE, padding=KERNEL_SIZE // 2),
    ]
    if last_activation:
        layers.append(make_activation(activation))
    return nn.Sequential(*layers)


class PoolBlock(nn.Module):
    """One encoder block: two 3x3 convolutions to ``c_out`` channels, then 2x2 max- or average pooling."""

    def __init__(self, c_in: int, c_out: int, pooling: str, activation: str) -> None:
        super().__init__()
        self.convs = _two_convs(c_in, c_out, c_out, activation)
        self.pool = (nn.MaxPool2d(POOL_SIZE, ceil_mode=True, return_indices=True) if pooling == "max"
                     else nn.AvgPool2d(POOL_SIZE, ceil_mode=True))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(n, c_in, h, w) -> pooled (n, c_out, ceil(h/2), ceil(w/2)) and the argmax positions (max-pooling) or None."""
        x = self.convs(x)
        if isinstance(self.pool, nn.MaxPool2d):
            return self.pool(x)
        return self.pool(x), None


class UnpoolBlock(nn.Module):
    """One decoder block: 2x2 unpooling to ``output_size``, then two 3x3 convolutions to ``c_out`` channels (``last``:
    no activation at the end). The unpooling is max-unpooling at the given positions, or nearest-neighbour
    upsampling (average pooling's mirror, and max-unpooling's stand-in when no positions are given)."""

    def __init__(self, c_in: int, c_out: int, pooling: str, activation: str, *, output_size: tuple[int, int],
                 last: bool) -> None:
        super().__init__()
        self.output_size = tuple(output_size)
        self.unpool = MaxUnpool(POOL_SIZE) if pooling == "max" else NearestUnpool(POOL_SIZE)
        if pooling == "max":
            self.upsample = NearestUnpool(POOL_SIZE)  # used when a code comes without recorded positions
        self.convs = _two_convs(c_in, c_in, c_out, activation, last_activation=not last)

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        """(n, c_in, h, w) -> (n, c_out, *output_size); ``indices``: the paired max-pooling's positions, or None."""
        h, w = self.output_size
        if isinstance(self.unpool, MaxUnpool) and indices is not None:
            x = self.unpool(x, indices, output_size=self.output_size)
        else:
            upsample = self.upsample if isinstance(self.unpool, MaxUnpool) else self.unpool
            x = upsample(x)[:, :, :h, :w]  # (n, c, 2h', 2w') -> (n, c, h, w): an odd side drops its padded row/column
        return self.convs(x)


class PoolingConvEncoder(nn.Module):
    """Blocks of two 3x3 convolutions and a 2x2 pooling, then fully-connected layers to ``out_features``.

    Parameters
    ----------
    input_shape : (int, int, int)
        ``(channels, height, width)`` of one image.
    out_features : int
        Output width (the code size).
    channels : sequence of int, default=(32, 64)
        Output channels of each block; its length is the number of poolings (each halves the size,
        rounding up: 28 -> 14 -> 7, 8 -> 4 -> 2).
    pooling : {"max", "avg"}, default="max"
    hidden : sequence of int, default=()
        Widths of fully-connected layers between the flattened features and the output.
    activation : str, default="relu"
        Name in :data:`~genlab.nets.ACTIVATIONS`, after every convolution and hidden layer.

    Attributes
    ----------
    blocks : nn.ModuleList of PoolBlock
        Shallowest first; ``blocks[i].pool`` is the i-th pooling.
    feature_shape : (int, int, int)
        ``(C, H, W)`` of the last block's output.
    spatial_sizes : list of (int, int)
        ``(h, w)`` from the input to the last block's output (``len(channels) + 1`` entries).

    Shape
    -----
    input ``(n, *input_shape)`` (or flattened, ``(n, c*h*w)``); output ``(n, out_features)``.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) if the image is too small for ``len(channels)`` poolings, or ``pooling`` is unknown.
    """

    def __init__(self, input_shape: tuple[int, int, int], out_features: int, *, channels: Sequence[int] = (32, 64),
                 pooling: Literal["max", "avg"] = "max", hidden: Sequence[int] = (), activation: str = "relu") -> None:
        super().__init__()
        self.input_shape = check_image_shape("input_shape", input_shape)
        channels = check_channels(channels)
        self.pooling = check_pooling(pooling)
        in_channels, height, width = self.input_shape
        self.spatial_sizes = pooled_sizes((height, width), len(channels))
        self.feature_shape = (channels[-1], *self.spatial_sizes[-1])
        self.blocks = nn.ModuleList(
            PoolBlock(c_in, c_out, pooling, activation) for c_in, c_out in zip((in_channels, *channels[:-1]), channels, strict=True))
        self.head = MLP(math.prod(self.feature_shape), hidden, out_features, activation=activation)

    def forward_with_indices(self, x: torch.Tensor) -> PooledCode:
        """Map images ``(n, c, h, w)`` to their codes and (max-pooling) every block's recorded argmax positions."""
        x = as_images(x, self.input_shape, type(self).__name__)
        recorded = []
        for block in self.blocks:
            x, indices = block(x)  # (n, C_i, h_i, w_i), the same shape of int64 positions or None
            recorded.append(indices)
        z = self.head(x)  # flattened by the MLP: (n, C, H, W) -> (n, C*H*W) -> (n, out)
        return PooledCode(z, tuple(recorded) if self.pooling == "max" else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(n, c, h, w)`` to ``(n, out_features)``."""
        return self.forward_with_indices(x).z


class UnpoolingConvDecoder(nn.Module):
    """Mirror of :class:`PoolingConvEncoder`: project the code to a small map, then unpool-conv-conv blocks up to
    ``output_shape``.

    :class:`MLP` with widths ``hidden`` from ``in_features`` to ``C0*h0*w0``, reshape to ``(C0, h0, w0)``,
    activation, then one :class:`UnpoolBlock` per entry of ``channels``, the last going to the output channels
    with no activation (it returns logits / raw values). The sizes are the ones a :class:`PoolingConvEncoder` with
    as many blocks produces on ``output_shape``, reversed, so the output has exactly that shape.

    Parameters
    ----------
    in_features : int
        Input width (the code size).
    output_shape : (int, int, int)
        ``(channels, height, width)`` of one output image.
    channels : sequence of int, default=(64, 32)
        Channels of the projected map and of each block's input; reversing an encoder's ``channels`` gives its
        mirror (and then each max-unpooling gets indices of the shape it needs).
    pooling : {"max", "avg"}, default="max"
        The paired encoder's pooling: max-unpooling (at given positions; nearest-neighbour upsampling without
        them) or nearest-neighbour upsampling.
    hidden : sequence of int, default=()
        Widths of fully-connected layers before the projection.
    activation : str, default="relu"

    Attributes
    ----------
    blocks : nn.ModuleList of UnpoolBlock
        Deepest first: ``blocks[j]`` is paired with the encoder's ``blocks[-1 - j]``.
    feature_shape, spatial_sizes
        As for :class:`PoolingConvEncoder`, from the projected map to the output.

    Shape
    -----
    input ``(n, in_features)``, and for max-pooling optionally the encoder's ``indices``
    (:attr:`PooledCode.indices`); output ``(n, *output_shape)``.
    """

    def __init__(self, in_features: int, output_shape: tuple[int, int, int], *, channels: Sequence[int] = (64, 32),
                 pooling: Literal["max", "avg"] = "max", hidden: Sequence[int] = (), activation: str = "relu") -> None:
        super().__init__()
        self.output_shape = check_image_shape("output_shape", output_shape)
        channels = check_channels(channels)
        self.pooling = check_pooling(pooling)
        out_channels, height, width = self.output_shape
        self.spatial_sizes = pooled_sizes((height, width), len(channels))[::-1]
        self.feature_shape = (channels[0], *self.spatial_sizes[0])
        self.project = MLP(in_features, hidden, math.prod(self.feature_shape), activation=activation)
        self.activation = make_activation(activation)
        targets = (*channels[1:], out_channels)
        self.blocks = nn.ModuleList(
            UnpoolBlock(c_in, c_out, pooling, activation, output_size=self.spatial_sizes[j + 1], last=j == len(channels) - 1)
            for j, (c_in, c_out) in enumerate(zip(channels, targets, strict=True)))

    def forward(self, z: torch.Tensor, indices: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Map ``(n, in_features)`` to ``(n, *output_shape)``; ``indices`` (max-pooling only): the positions the
        paired encoder recorded, shallowest first, as :meth:`PoolingConvEncoder.forward_with_indices` returns them."""
        if indices is not None and (self.pooling != "max" or len(indices) != len(self.blocks)):
            raise InvalidInputError(
                f"indices are the positions of a max-pooling encoder's {len(self.blocks)} blocks; this decoder "
                f"(pooling={self.pooling!r}) got {len(indices)}.")
        x = self.project(z).view(-1, *self.feature_shape)  # (n, in_features) -> (n, C0, h0, w0)
        x = self.activation(x)
        paired = [None] * len(self.blocks) if indices is None else list(indices)[::-1]  # deepest pooling first
        for block, recorded in zip(self.blocks, paired, strict=True):
            x = block(x, recorded)
        return x  # (n, *output_shape)
