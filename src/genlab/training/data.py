"""The data the loop trains on: whole tensors or sparse rows densified a batch at a time, and the
epoch's batch bounds."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class SparseRows:
    """Rows of a scipy CSR matrix that become dense tensors one batch at a time, so memory grows with
    batch × columns, never rows × columns. Indexed like a tensor: ``rows[idx]``, ``rows[a:b]``, ``len``."""

    def __init__(self, matrix, device: torch.device | str = "cpu"):
        self.matrix = matrix.tocsr().astype(np.float32)
        self.device = torch.device(device)
        self.shape = self.matrix.shape

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        return torch.from_numpy(self.matrix[idx].toarray()).to(self.device)

    def to(self, device) -> SparseRows:
        return SparseRows(self.matrix, device)


class TensorData(NamedTuple):
    """A data set in model units: x (n, ...) and y (n, ...) or None, as tensors (the whole set) or
    :class:`SparseRows` (densified a batch at a time)."""

    x: torch.Tensor | SparseRows
    y: torch.Tensor | SparseRows | None = None


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch bounds; a trailing batch of one sample is dropped (batch-norm cannot train on it)."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
    return bounds
