"""The contract between a model family and the training loop.

A family's module subclasses :class:`GenerativeModule` and supplies ``objective`` (named scalar
terms for a batch, ``"loss"`` being the one minimised). It says *what* to optimise —
``optimizer_specs`` names its optimisers, their parameters and any family-specific learning rate or
betas — and *in which order*: ``train_step`` hands each loss to the loop's ``step(name, loss)``,
which does the mechanics (zero-grad, scaled backward, unscale, finiteness check, clipping, the
optimiser step). Families never back-propagate or step an optimiser themselves. ``monitor`` names
the record that may choose the best epoch; per-epoch diagnostics come from ``end_epoch``. The loop
in :mod:`genlab.training` only ever calls these methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Protocol

import torch
from torch import nn


@dataclass(frozen=True)
class SparseBatch:
    """Rows of a sparse matrix: the stored value ``values[k]`` sits at (``rows[k]``, ``cols[k]``), rows in order;
    ``shape`` (n, columns). Mult-VAE's batches: a user's few interactions among many items, never densified."""

    rows: torch.Tensor  # (nnz,) int64
    cols: torch.Tensor  # (nnz,) int64
    values: torch.Tensor  # (nnz,) float32
    offsets: torch.Tensor  # (n,) int64: where each row's entries start (CSR's indptr without its last entry)
    shape: tuple[int, int]

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def device(self) -> torch.device:
        return self.values.device

    def to(self, device) -> SparseBatch:
        return SparseBatch(self.rows.to(device), self.cols.to(device), self.values.to(device), self.offsets.to(device), self.shape)

    def with_values(self, values: torch.Tensor) -> SparseBatch:
        return SparseBatch(self.rows, self.cols, values, self.offsets, self.shape)

    def row_sums(self, values: torch.Tensor) -> torch.Tensor:
        """Σ of ``values`` (one per stored entry) over each row: (n,)."""
        return values.new_zeros(self.shape[0]).index_add_(0, self.rows, values)

    def to_dense(self) -> torch.Tensor:
        return self.values.new_zeros(self.shape).index_put_((self.rows, self.cols), self.values, accumulate=True)


class Batch(NamedTuple):
    """A mini-batch: inputs ``x`` (n, ...) in model units — or a :class:`SparseBatch` — and optional labels ``y``."""

    x: torch.Tensor | SparseBatch
    y: torch.Tensor | SparseBatch | None = None


class OptimizerSpec(NamedTuple):
    """One optimiser a family asks for: its parameters, and a learning rate or Adam betas of the
    family's own (None: the training configuration's). The loop builds the optimiser itself."""

    params: Sequence[nn.Parameter]
    lr: float | None = None
    betas: tuple[float, float] | None = None
    log_grad_norm: bool = False  # the stepper keeps the pre-clipping gradient norm in ``step.grad_norms[name]``


class Step(Protocol):
    """The loop's stepper as a family sees it: ``step(name, loss)`` updates the named optimiser(s)
    from ``loss`` and returns whether the update was taken. ``last_loss`` is the loss of the last
    update as every process saw it (its mean over the processes' shares of the batch; the loss itself
    in one process): a family that decides something from its losses (an inner loop's stopping rule)
    reads it, so that every process decides alike."""

    grad_norms: dict[str, torch.Tensor]
    last_loss: torch.Tensor

    def __call__(self, names: str | tuple[str, ...], loss: torch.Tensor) -> bool: ...


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if autocast made it bfloat16 or float16; other dtypes (float64 in gradient checks) as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def detached(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: value.detach() for name, value in terms.items()}


class GenerativeModule(nn.Module):
    """Base class: one optimiser over all parameters, one gradient step per batch."""

    #: (record key, larger is better) that may pick the best epoch and drive early stopping or the
    #: plateau schedule; the loop reads ``val_<key>`` when there is a validation split. None: no
    #: record measures progress, and ``no_monitor_reason`` says why.
    monitor: ClassVar[tuple[str, bool] | None] = ("loss", False)
    #: prefixes of record keys that form one series per coordinate (a VAE's ``kl_dim_j``): progress lines leave
    #: them out; the pages draw each group as one panel
    record_groups: ClassVar[tuple[str, ...]] = ()
    monitor_needs_validation: ClassVar[bool] = False  # the record exists only for a validation split
    no_monitor_reason: ClassVar[str] = ""

    def upgrade_state(self, state: dict[str, torch.Tensor], format_version: int) -> dict[str, torch.Tensor]:
        """Weights saved under an older model-file format version, as this version stores them (default: as
        they are). Pure tensor reshaping: nothing from the file is executed."""
        return state

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Named scalar terms for ``batch``; ``"loss"`` is minimised. ``generator`` drives any noise."""
        raise NotImplementedError

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        """The optimisers to build, by name. Default: one over every parameter."""
        return {"model": OptimizerSpec(list(self.parameters()))}

    def train_step(self, batch: Batch, step: Step, generator: torch.Generator | None = None,
                   stream: Callable[[], Batch] | None = None) -> dict[str, torch.Tensor]:
        """One update; returns the detached terms (no host sync: the loop decides when to read them).

        ``stream()`` draws further random training batches, for families with an inner loop."""
        terms = self.objective(batch, generator)
        step("model", terms["loss"])
        return detached(terms)

    @torch.no_grad()
    def eval_step(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The objective's terms without updating anything (validation)."""
        return self.objective(batch, generator)

    def end_epoch(self, data, generator: torch.Generator | None = None) -> dict[str, float]:
        """Diagnostics for the epoch's record, computed on ``data`` (validation, else training);
        a family may also update its own schedule here. Default: none."""
        return {}

    @torch.no_grad()
    def preview(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Images (n, c, h, w) in model units to show while training (TensorBoard): samples, or
        reconstructions of ``batch``. Default: none."""
        return None
