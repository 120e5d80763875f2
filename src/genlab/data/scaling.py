"""Map data from the user's units to the range a model works in, and back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._validation import row_blocks
from ..errors import InvalidInputError

ScalingMode = Literal["auto", "minmax", "none"]


@dataclass(frozen=True)
class Scaling:
    """Affine map: user value ``low`` -> ``target[0]``, ``high`` -> ``target[1]``."""

    low: float = 0.0
    high: float = 1.0
    target: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def fit(cls, X: np.ndarray, *, mode: ScalingMode = "auto", target: tuple[float, float] | None = None) -> Scaling:
        """Choose the map for ``X``.

        ``target`` is the range the model's output can take (None: unbounded). In ``"auto"`` mode
        uint8 data is pixel data in [0, 255] and data within [0, 1] is taken as [0, 1]; either is
        mapped onto a bounded ``target``. Other data is mapped by its global min/max only when it lies
        outside a bounded ``target``. ``"minmax"`` always maps min/max, ``"none"`` never maps.
        """
        if mode not in ("auto", "minmax", "none"):
            raise InvalidInputError(f"scaling must be 'auto', 'minmax' or 'none', got {mode!r}.")
        tgt = (0.0, 1.0) if target is None else (float(target[0]), float(target[1]))
        if mode == "none":
            return cls(tgt[0], tgt[1], tgt)
        if X.dtype == np.uint8 and mode == "auto":
            return cls(0.0, 255.0, tgt)
        lo, hi = _min_max(X)
        if mode == "auto":
            if target is None:
                return cls(tgt[0], tgt[1], tgt)
            if lo >= 0.0 and hi <= 1.0:  # [0, 1] data (pixels) fills the model's range, e.g. [−1, 1] for tanh
                return cls(0.0, 1.0, tgt)
            if lo >= tgt[0] and hi <= tgt[1]:
                return cls(tgt[0], tgt[1], tgt)
        if hi <= lo:  # constant data: any width works, keep values finite
            hi = lo + 1.0
        return cls(lo, hi, tgt)

    @property
    def is_identity(self) -> bool:
        return (self.low, self.high) == tuple(self.target)

    def _factor(self) -> float:
        return (self.target[1] - self.target[0]) / (self.high - self.low)

    def forward(self, X: np.ndarray) -> np.ndarray:
        """User units -> model units, float32."""
        X = np.asarray(X, dtype=np.float32)
        if self.is_identity:
            return X
        return ((X - self.low) * self._factor() + self.target[0]).astype(np.float32)

    def inverse(self, X: np.ndarray) -> np.ndarray:
        """Model units -> user units, float32."""
        X = np.asarray(X, dtype=np.float32)
        if self.is_identity:
            return X
        return ((X - self.target[0]) / self._factor() + self.low).astype(np.float32)

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "target": list(self.target)}

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        return cls(float(d["low"]), float(d["high"]), (float(d["target"][0]), float(d["target"][1])))


__all__ = ["Scaling", "ScalingMode"]


def _min_max(X) -> tuple[float, float]:
    """Global min and max; an array-like read on demand (an image folder) is read in blocks."""
    if isinstance(X, np.ndarray):
        return float(X.min()), float(X.max())
    lo, hi = np.inf, -np.inf
    for _, block in row_blocks(X):
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return lo, hi
