"""Map data from the user's units to the range a model works in, and back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._validation import row_blocks
from ..errors import InvalidInputError

ScalingMode = Literal["auto", "minmax", "center", "none"]
SCALING_MODES: tuple[str, ...] = ("auto", "minmax", "center", "none")


@dataclass(frozen=True, eq=False)
class Scaling:
    """Affine map: user value ``low`` -> ``target[0]``, ``high`` -> ``target[1]``; then, when ``mean`` is set
    (``scaling="center"``), that per-feature mean is subtracted: forward(x) = affine(x) − mean.

    ``mean`` is a read-only float32 array of one value per feature (``n_features_in_``), in the affine map's
    units; it applies to any array whose trailing dimensions hold that many features (a batch (n, c, h, w) or
    (n, d), a grid of samples). ``inverse`` undoes both steps."""

    low: float = 0.0
    high: float = 1.0
    target: tuple[float, float] = (0.0, 1.0)
    mean: np.ndarray | None = None

    def __post_init__(self):
        if self.mean is not None:  # a private read-only copy: the frozen map cannot change under its users
            mean = np.array(self.mean, dtype=np.float32).reshape(-1)
            mean.setflags(write=False)
            object.__setattr__(self, "mean", mean)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Scaling):
            return NotImplemented
        same_mean = (self.mean is None and other.mean is None) or (
            self.mean is not None and other.mean is not None and np.array_equal(self.mean, other.mean))
        return (self.low, self.high, tuple(self.target)) == (other.low, other.high, tuple(other.target)) and same_mean

    __hash__ = None  # holds an array

    @classmethod
    def fit(cls, X: np.ndarray, *, mode: ScalingMode = "auto", target: tuple[float, float] | None = None) -> Scaling:
        """Choose the map for ``X``.

        ``target`` is the range the model's output can take (None: unbounded). In ``"auto"`` mode
        uint8 data is pixel data in [0, 255] and data within [0, 1] is taken as [0, 1]; either is
        mapped onto a bounded ``target``. Other data is mapped by its global min/max only when it lies
        outside a bounded ``target``. ``"minmax"`` always maps min/max, ``"none"`` never maps.
        ``"center"`` subtracts the per-feature mean of ``X`` (uint8 pixels are first divided by 255, to
        [0, 1]; other data keeps its units); with a bounded ``target`` the centred data must lie inside
        it, or InvalidInputError says so.
        """
        if mode not in SCALING_MODES:
            raise InvalidInputError(f"scaling must be one of {', '.join(repr(m) for m in SCALING_MODES)}; got {mode!r}.")
        if mode == "center":
            return cls._centered(X, target)
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

    @classmethod
    def _centered(cls, X, target: tuple[float, float] | None) -> Scaling:
        """``scaling="center"``: pixels to [0, 1] (uint8 only), then minus the per-feature mean."""
        affine = cls(0.0, 255.0) if X.dtype == np.uint8 else cls()
        mean, lows, highs = (affine.forward(v[None]).astype(np.float64)[0] for v in _feature_stats(X))
        lo, hi = float((lows - mean).min()), float((highs - mean).max())  # the range of the centred data
        if target is not None and (lo < target[0] or hi > target[1]):
            raise InvalidInputError(
                f"scaling='center' leaves the data in [{lo:.3g}, {hi:.3g}], outside [{target[0]:g}, {target[1]:g}], the range of "
                "this model's outputs; use scaling='auto' (or 'minmax'), or a model with an unbounded output.")
        return cls(affine.low, affine.high, affine.target, mean=mean)

    @property
    def is_identity(self) -> bool:
        return self._affine_is_identity() and self.mean is None

    def _affine_is_identity(self) -> bool:
        return (self.low, self.high) == tuple(self.target)

    def _factor(self) -> float:
        return (self.target[1] - self.target[0]) / (self.high - self.low)

    def _mean_like(self, X: np.ndarray) -> np.ndarray:
        """The mean shaped as the trailing dimensions of ``X`` that hold one sample's features: samples (n, c, h, w) or
        (n, d), and grids of them such as (rows, steps, c, h, w), all broadcast."""
        size, k = 1, 0
        while size < self.mean.size and k < X.ndim:
            k += 1
            size *= X.shape[-k]
        if size != self.mean.size or k == X.ndim == 0:
            raise InvalidInputError(f"this scaling subtracts a mean over {self.mean.size} features, but the values have shape "
                                    f"{tuple(X.shape)}.")
        return self.mean.reshape(X.shape[X.ndim - k:])

    def forward(self, X: np.ndarray) -> np.ndarray:
        """User units -> model units, float32."""
        X = np.asarray(X, dtype=np.float32)
        if not self._affine_is_identity():
            X = ((X - self.low) * self._factor() + self.target[0]).astype(np.float32)
        if self.mean is not None:
            X = X - self._mean_like(X)
        return X

    def inverse(self, X: np.ndarray) -> np.ndarray:
        """Model units -> user units, float32."""
        X = np.asarray(X, dtype=np.float32)
        if self.mean is not None:
            X = X + self._mean_like(X)
        if self._affine_is_identity():
            return X
        return ((X - self.target[0]) / self._factor() + self.low).astype(np.float32)

    def display(self, X: np.ndarray) -> np.ndarray:
        """User units -> the model's range before any centring, float32: what pictures of the data can show on
        ``target`` (equals :meth:`forward` unless ``mean`` is set)."""
        return Scaling(self.low, self.high, self.target).forward(X)

    def to_dict(self) -> dict:
        d = {"low": self.low, "high": self.high, "target": list(self.target)}
        if self.mean is not None:  # float32 values written as floats read back exactly
            d["mean"] = [float(v) for v in self.mean]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        """The map :meth:`to_dict` wrote (``mean`` absent: none, as in files from before ``scaling="center"``)."""
        if not isinstance(d, dict):
            raise ValueError(f"a scaling is stored as a table of low, high, target; got {type(d).__name__}")
        mean = d.get("mean")
        if mean is not None:
            if not isinstance(mean, list) or not mean or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                 for v in mean):
                raise ValueError("the scaling's mean must be a non-empty list of numbers")
            mean = np.asarray(mean, dtype=np.float32)
            if not np.isfinite(mean).all():
                raise ValueError("the scaling's mean must be finite")
        return cls(float(d["low"]), float(d["high"]), (float(d["target"][0]), float(d["target"][1])), mean=mean)


__all__ = ["SCALING_MODES", "Scaling", "ScalingMode"]


def _min_max(X) -> tuple[float, float]:
    """Global min and max; an array-like read on demand (an image folder) is read in blocks."""
    if isinstance(X, np.ndarray):
        return float(X.min()), float(X.max())
    lo, hi = np.inf, -np.inf
    for _, block in row_blocks(X):
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return lo, hi


def _feature_stats(X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-feature mean, min and max over the rows of ``X``, each (d,) float64, read in blocks (memory-mapped files
    and image folders are never loaded whole)."""
    total, lows, highs = None, None, None
    for _, block in row_blocks(X):
        block = block.reshape(len(block), -1)  # (m, *shape) -> (m, d)
        part = block.sum(axis=0, dtype=np.float64)
        lo, hi = block.min(axis=0).astype(np.float64), block.max(axis=0).astype(np.float64)
        if total is None:
            total, lows, highs = part, lo, hi
        else:
            total, lows, highs = total + part, np.minimum(lows, lo), np.maximum(highs, hi)
    return total / len(X), lows, highs
