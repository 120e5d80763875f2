"""The contract between a model family and the training loop.

A family's module subclasses :class:`GenerativeModule` and supplies ``objective`` (named scalar
terms for a batch, ``"loss"`` being the one minimised and monitored). Families with more than one
optimiser or an inner loop (GAN, aggressive VAE) override ``configure_optimizers`` and
``train_step``; per-epoch diagnostics come from ``end_epoch``. The loop in
:mod:`genlab.training` only ever calls these methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn


class Batch(NamedTuple):
    """A mini-batch: inputs ``x`` (n, ...) in model units and optional labels ``y`` (n,)."""

    x: torch.Tensor
    y: torch.Tensor | None = None


class GenerativeModule(nn.Module):
    """Base class: one Adam optimiser over all parameters, one gradient step per batch."""

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Named scalar terms for ``batch``; ``"loss"`` is minimised. ``generator`` drives any noise."""
        raise NotImplementedError

    def configure_optimizers(self, lr: float, weight_decay: float) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)}

    def train_step(
        self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer], generator: torch.Generator | None = None,
        stream: Callable[[], Batch] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One update; returns the detached terms (no host sync: the loop decides when to read them).

        ``stream()`` draws further random training batches, for families with an inner loop."""
        (optimizer,) = optimizers.values()
        terms = self.objective(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        return {name: value.detach() for name, value in terms.items()}

    @torch.no_grad()
    def eval_step(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The objective's terms without updating anything (validation)."""
        return self.objective(batch, generator)

    def end_epoch(self, data, generator: torch.Generator | None = None) -> dict[str, float]:
        """Diagnostics for the epoch's record, computed on ``data`` (validation, else training);
        a family may also update its own schedule here. Default: none."""
        return {}
