"""Activations by name and the multi-layer perceptron."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genlab._params import Param
from genlab.errors import InvalidInputError

__all__ = ["ACTIVATIONS", "MLP", "SparseInputLinear", "make_activation"]

#: Activation factories by name; each call returns a fresh module.
#: ``"leaky_relu"`` uses negative slope 0.2 (Radford et al. 2016).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": functools.partial(nn.LeakyReLU, 0.2),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Build the activation module registered under ``name`` in :data:`ACTIVATIONS`.

    Raises
    ------
    InvalidInputError
        (a ``ValueError``) if ``name`` is not a key of :data:`ACTIVATIONS`; the message lists them.
    """
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise InvalidInputError(
            f"Unknown activation {name!r}; choose one of {', '.join(sorted(ACTIVATIONS))}."
        )
    return ACTIVATIONS[name]()


class SparseInputLinear(nn.Module):
    """A linear layer for inputs with few non-zeros among many features (Mult-VAE's item rows).

    The weight is stored features × outputs — the transpose of ``nn.Linear``'s — so that a sparse row picks
    whole rows of it: :meth:`forward_sparse` sums the rows of its stored entries, scaled by their values
    (``embedding_bag``), and its backward touches only those rows. Fed a dense batch it computes the same
    ``x @ weight + bias``. Initialised as ``nn.Linear`` (uniform in ±1/√in_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight
        return out if self.bias is None else out + self.bias

    def forward_sparse(self, cols: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Rows given as CSR parts: row r's entries are ``cols[offsets[r]:offsets[r+1]]`` with ``values`` likewise
        (``offsets`` holds each row's start; an empty row gives the bias)."""
        out = F.embedding_bag(cols, self.weight, offsets, mode="sum", per_sample_weights=values.to(self.weight.dtype))
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def check_widths(name: str, widths: Sequence[int]) -> tuple[int, ...]:
    """Return ``widths`` as a tuple of ints after checking every entry is a positive integer."""
    return Param("ints", "", what="a sequence of positive ints").check(name, widths)


class MLP(nn.Module):
    """Multi-layer perceptron with optional batch-norm, dropout and output activation.

    ``Linear -> [BatchNorm1d] -> activation -> [Dropout]`` per hidden layer, then a ``Linear`` to
    ``out_features`` and the optional output activation.

    With ``hidden=()`` it is a single ``nn.Linear`` (plus the output activation, if any): the
    linear autoencoder and the 8-3-8 network are built this way.

    Parameters
    ----------
    in_features : int
        Number of input features; inputs with more than two dimensions are flattened from
        dimension 1, so an image batch ``(n, c, h, w)`` needs ``in_features == c * h * w``.
    hidden : sequence of int
        Widths of the hidden layers, in order; may be empty.
    out_features : int
        Number of outputs.
    activation : str, default="relu"
        Name in :data:`ACTIVATIONS`, used after every hidden layer.
    batch_norm : bool, default=False
        Insert ``BatchNorm1d`` after each hidden ``Linear`` (which then has no bias).
    dropout : float, default=0.0
        Dropout probability after each hidden activation; 0 adds no ``Dropout`` layer.
    output_activation : str or None, default=None
        Name in :data:`ACTIVATIONS` applied to the output; ``None`` returns the raw ``Linear``
        output (logits).
    sparse_input : bool, default=False
        Make the first layer a :class:`SparseInputLinear` (weight stored in_features × width), so that
        :meth:`forward_sparse` takes a sparse batch without densifying it.

    Shape
    -----
    input ``(n, in_features)`` or ``(n, *dims)`` with ``prod(dims) == in_features``;
    output ``(n, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        output_activation: str | None = None,
        sparse_input: bool = False,
    ) -> None:
        super().__init__()
        in_features, out_features = check_widths("in_features and out_features", (in_features, out_features))
        widths = (in_features, *check_widths("hidden", hidden))
        make_activation(activation)  # validate the name even when there is no hidden layer
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise InvalidInputError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.in_features = in_features
        self.out_features = out_features

        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(widths):
            # a bias before batch-norm is cancelled by its mean subtraction
            linear = SparseInputLinear if sparse_input and not layers else nn.Linear
            layers.append(linear(n_in, n_out, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append((SparseInputLinear if sparse_input and not layers else nn.Linear)(widths[-1], out_features))
        if output_activation is not None:
            layers.append(make_activation(output_activation))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(n, in_features)`` (or ``(n, *dims)``) to ``(n, out_features)``."""
        if x.dim() < 2:
            raise InvalidInputError(
                f"MLP expects a batch of shape (n, {self.in_features}), got shape {tuple(x.shape)}."
            )
        x = x.flatten(1)  # (n, *dims) -> (n, prod(dims)); a no-op for (n, d)
        if x.shape[1] != self.in_features:
            raise InvalidInputError(
                f"MLP expects {self.in_features} features per sample, got {x.shape[1]} features."
            )
        return self.layers(x)

    def forward_sparse(self, cols: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """The same map for a sparse batch in CSR parts (see :meth:`SparseInputLinear.forward_sparse`); needs
        ``sparse_input=True``: the first layer reads only the stored entries."""
        first = self.layers[0]
        if not isinstance(first, SparseInputLinear):
            raise TypeError("forward_sparse needs an MLP built with sparse_input=True")
        return self.layers[1:](first.forward_sparse(cols, offsets, values))
