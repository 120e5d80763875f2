"""Unpooling layers: a decoder's counterparts of pooling.

Each takes ``(n, c, h, w)`` to ``(n, c, h*k, w*k)`` with non-overlapping ``k x k`` windows:

* :class:`NearestUnpool` copies each value to its whole window;
* :class:`BedOfNailsUnpool` puts each value in its window's top-left corner, zeros elsewhere;
* :class:`AverageUnpool` spreads ``value / k**2`` over the window: the window sums are the input
  (sum-pooling the output gives it back), and it is the adjoint of average pooling;
* :class:`MaxUnpool` puts each value where the paired max-pooling found its maximum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import InvalidInputError

from .mlp import check_widths

__all__ = ["AverageUnpool", "BedOfNailsUnpool", "MaxUnpool", "NearestUnpool"]


class _Unpool(nn.Module):
    """Shared constructor: a ``k x k`` window with stride ``k``."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        (self.kernel_size,) = check_widths("kernel_size", (kernel_size,))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise InvalidInputError(
                f"{type(self).__name__} expects (n, c, h, w), got shape {tuple(x.shape)}."
            )


class NearestUnpool(_Unpool):
    """Nearest-neighbour unpooling: each value is copied to its whole ``k x k`` window.

    Parameters
    ----------
    kernel_size : int
        Window side ``k`` (also the stride).

    Shape
    -----
    input ``(n, c, h, w)``; output ``(n, c, h*k, w*k)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        k = self.kernel_size
        return x.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)  # (n, c, h, w) -> (n, c, hk, wk)


class BedOfNailsUnpool(_Unpool):
    """Bed-of-nails unpooling: each value in its window's top-left corner, zeros elsewhere.

    Parameters
    ----------
    kernel_size : int
        Window side ``k`` (also the stride).

    Shape
    -----
    input ``(n, c, h, w)``; output ``(n, c, h*k, w*k)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        k = self.kernel_size
        n, c, h, w = x.shape
        out = x.new_zeros(n, c, h * k, w * k)
        out[:, :, ::k, ::k] = x
        return out


class AverageUnpool(_Unpool):
    """Average unpooling: ``value / k**2`` spread evenly over each ``k x k`` window.

    Each window sums to the input value, so sum-pooling the output (``k**2 * avg_pool``) returns
    the input; and this layer is the adjoint of average pooling:
    ``<avg_pool(x), y> == <x, AverageUnpool(y)>``.

    Parameters
    ----------
    kernel_size : int
        Window side ``k`` (also the stride).

    Shape
    -----
    input ``(n, c, h, w)``; output ``(n, c, h*k, w*k)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        k = self.kernel_size
        return x.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3) / (k * k)


class MaxUnpool(_Unpool):
    """Max unpooling: each value goes back to the position its paired max-pooling recorded.

    Pair it with ``nn.MaxPool2d(k, return_indices=True)`` (or
    ``F.max_pool2d(x, k, return_indices=True)``) and pass the recorded ``indices``; all other
    positions are zero. Built on :func:`torch.nn.functional.max_unpool2d`.

    Parameters
    ----------
    kernel_size : int
        Window side ``k`` of the paired pooling (also the stride).

    Shape
    -----
    input ``(n, c, h, w)`` and ``indices`` of the same shape; output ``(n, c, h*k, w*k)``, or
    ``output_size`` when given — pass the pooled input's size when it was not a multiple of ``k``.
    """

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, output_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        self._check(x)
        if indices.shape != x.shape:
            raise InvalidInputError(
                f"indices must have the shape of the input {tuple(x.shape)}, got {tuple(indices.shape)}."
            )
        k = self.kernel_size
        if output_size is not None:
            output_size = tuple(output_size)[-2:]
        return F.max_unpool2d(x, indices, kernel_size=k, stride=k, output_size=output_size)
