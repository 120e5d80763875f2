"""The data the loop trains on: whole tensors, sparse rows served a batch at a time, or rows of an array
that stays on disk (a memory-mapped file) read and converted a batch at a time; and the epoch's batch
bounds."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from ..errors import DataChangedError
from ..models.base import SparseBatch


def _mapping(array) -> np.memmap | mmap.mmap | None:
    """The memory map an array is a view of (following ``.base``), or None for an array in memory."""
    while array is not None and not isinstance(array, (np.memmap, mmap.mmap)):
        array = getattr(array, "base", None)
    return array


def backing_file(array) -> tuple[str, int] | None:
    """(path, size in bytes) of the file a memory-mapped array lives in; None in memory, or for a map
    np.memmap did not make (no name to watch)."""
    mapped = _mapping(array)
    name = getattr(mapped, "filename", None) if isinstance(mapped, np.memmap) else None
    return (name, os.stat(name).st_size) if name else None


def is_file_backed(array) -> bool:
    """Whether ``array`` lives on disk: a view of a memory-mapped file (np.load(..., mmap_mode="r"), np.memmap)
    or an array-like that reads its rows on demand (``genlab_streamed``, e.g. a large image folder)."""
    return bool(getattr(array, "genlab_streamed", False)) or _mapping(array) is not None


class ArrayRows:
    """Rows of an array that stays where it is — typically a memory-mapped file larger than memory — served
    a batch at a time: the batch's rows are read (in file order, then put back in the batch's order),
    ``transform`` maps them to float32 model units, and only that batch is ever held in memory. Indexed
    like a tensor (``rows[idx]`` with a tensor of positions, ``rows[a:b]``, ``len``); ``rows`` selects
    and orders the array's rows (a training or validation split) without copying anything.

    Each read checks that the file still has the size it had when training started: a file that is
    rewritten or truncated under a running job is an error, not a crash or silent garbage."""

    def __init__(self, array, transform: Callable[[np.ndarray], np.ndarray], rows: np.ndarray | None = None,
                 device: torch.device | str = "cpu"):
        self.array, self.transform = array, transform
        self.rows = np.arange(len(array), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        self.device = torch.device(device)
        self.shape = (len(self.rows), *array.shape[1:])
        self.file = backing_file(array)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, torch.Tensor):
            idx = idx.cpu().numpy()
        chosen = self.rows[idx]
        if self.file is not None:
            self._check_file()
        order = np.argsort(chosen, kind="stable")
        block = np.empty((len(chosen), *self.array.shape[1:]), dtype=self.array.dtype)
        block[order] = self.array[chosen[order]]  # sequential reads of the file, then the batch's own order
        return torch.from_numpy(np.ascontiguousarray(self.transform(block), dtype=np.float32)).to(self.device)

    def _check_file(self) -> None:
        path, size = self.file
        try:
            now = os.stat(path).st_size
        except OSError as exc:
            raise DataChangedError(f"the data file {path} went away during training ({exc.strerror}); restore it and resume "
                                    "the run.") from None
        if now != size:
            raise DataChangedError(f"the data file {path} changed size during training ({size} bytes, now {now}); a file "
                                    "being trained on must not be rewritten. Restore it (the run keeps its checkpoints) and resume.")

    def to(self, device) -> ArrayRows:
        moved = ArrayRows.__new__(ArrayRows)
        moved.__dict__.update(self.__dict__, device=torch.device(device))
        return moved


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
    """A data set in model units: x (n, ...) and y (n, ...) or None, as tensors (the whole set),
    :class:`SparseRows` (served a batch at a time as a sparse batch) or :class:`ArrayRows` (read from
    disk a batch at a time)."""

    x: torch.Tensor | SparseRows | ArrayRows
    y: torch.Tensor | SparseRows | None = None


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch bounds; a trailing batch of one sample is dropped (batch-norm cannot train on it)."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
    return bounds
