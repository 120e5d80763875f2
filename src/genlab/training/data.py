"""The data the loop trains on: whole tensors or sparse rows served a batch at a time, and the epoch's
batch bounds."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..models.base import SparseBatch


class SparseRows:
    """Rows of a scipy CSR matrix, served a batch at a time as a :class:`SparseBatch` (never densified), so
    memory grows with the batch's stored values, never rows × columns. Indexed like a tensor: ``rows[idx]``,
    ``rows[a:b]``, ``len``."""

    def __init__(self, matrix, device: torch.device | str = "cpu"):
        self.matrix = matrix.tocsr().astype(np.float32)
        self.matrix.sum_duplicates()  # one stored value per (row, column): row norms are taken over the stored values
        self.device = torch.device(device)
        self.shape = self.matrix.shape

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def __getitem__(self, idx) -> SparseBatch:
        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        part = self.matrix[idx]
        rows = np.repeat(np.arange(part.shape[0], dtype=np.int64), np.diff(part.indptr))
        return SparseBatch(torch.from_numpy(rows), torch.from_numpy(part.indices.astype(np.int64)), torch.from_numpy(part.data),
                           torch.from_numpy(part.indptr[:-1].astype(np.int64)), part.shape).to(self.device)

    def to(self, device) -> SparseRows:
        return SparseRows(self.matrix, device)


class TensorData(NamedTuple):
    """A data set in model units: x (n, ...) and y (n, ...) or None, as tensors (the whole set) or
    :class:`SparseRows` (served a batch at a time as a sparse batch)."""

    x: torch.Tensor | SparseRows
    y: torch.Tensor | SparseRows | None = None


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch bounds; a trailing batch of one sample is dropped (batch-norm cannot train on it)."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
    return bounds
