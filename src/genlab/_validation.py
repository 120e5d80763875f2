"""Input checks shared by the estimators: arrays, labels, seeds. Errors say how to fix things."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InvalidInputError, InvalidInputTypeError

# Class ids size the one-hot inputs of conditional models: an id like 10**12 (a user id, a year, a
# corrupt file) would try to build a layer that large. Labels are 0..C-1 with C at most this.
MAX_CLASSES = 10_000


def row_blocks(X, values: int = 2**22):
    """``(start, X[start:start + m])`` over ``X``'s rows, m rows holding about ``values`` numbers: a memory-mapped
    file or an array read on demand is checked, hashed or reduced without being loaded whole."""
    rows = max(1, values // max(1, math.prod(X.shape[1:])))
    for start in range(0, len(X), rows):
        yield start, np.asarray(X[start:start + rows])


def check_array(X, *, name: str = "X", expected_shape: tuple[int, ...] | None = None, owner: str = "this model") -> np.ndarray:
    """Validate samples: (n, d) vectors or (n, c, h, w) images, real numbers, finite, n >= 1.

    Returns a NumPy array, uint8 kept as uint8 (pixel data), everything else as float32; an object array of
    numbers is converted. ``expected_shape`` is the per-sample shape a fitted model (named ``owner`` in
    errors) needs. Where scikit-learn has a standard wording (complex data, empty arrays, 1-D input, a wrong
    number of features) the message uses it, so that users and sklearn's estimator checks read the same.
    """
    if hasattr(X, "toarray"):  # scipy.sparse
        raise InvalidInputError(f"{name} is a sparse matrix; this estimator needs a dense array (X.toarray()).")
    if getattr(X, "genlab_streamed", False) and expected_shape is None:  # read on demand (an image folder): kept as it is
        if X.ndim != 4 or X.dtype != np.uint8 or len(X) == 0:
            raise InvalidInputError(f"{name} streams {X.dtype} rows of shape {X.shape}; expected uint8 images (n, c, h, w).")
        return X
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise InvalidInputError(f"{name} could not be read as an array ({exc}); all rows must have the same length.") from None
    if arr.dtype == object:  # numbers held as Python objects (e.g. from pandas) are numbers all the same
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:  # an entry such as a dict: NumPy's own message ("float() argument must be a string or ...")
            raise InvalidInputTypeError(f"{name} is an object array with an entry that is not a number ({exc}); "
                                        "give a numeric array.") from None
        except ValueError:
            raise InvalidInputError(f"{name} is an object array (ragged rows or mixed types); give a numeric array of "
                                    "equal-length rows.") from None
    if np.iscomplexobj(arr):
        raise InvalidInputError(f"Complex data not supported: {name} has dtype {arr.dtype}; genlab needs real numbers "
                                "(take X.real or np.abs(X)).")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InvalidInputError(f"{name} has dtype {arr.dtype}; genlab needs real numbers (convert with X.astype('float32')).")
    if arr.ndim == 3:
        arr = arr[:, None]  # (n, h, w) -> (n, 1, h, w): one-channel images
    if arr.ndim not in (2, 4):
        hint = (" Reshape your data: X.reshape(1, -1) if it is one sample, X.reshape(-1, 1) if it has one feature."
                if arr.ndim == 1 else "")
        raise InvalidInputError(
            f"{name} has shape {arr.shape}; expected vectors (n_samples, n_features) or images "
            f"(n_samples, channels, height, width).{hint}"
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty: it has 0 sample(s) (shape={arr.shape}) while a minimum of 1 is required.")
    n_features = math.prod(arr.shape[1:])
    if n_features == 0:
        raise InvalidInputError(f"{name} is empty: it has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if expected_shape is not None and n_features != math.prod(expected_shape):
        shape = f" (samples of shape {tuple(expected_shape)})" if len(expected_shape) > 1 else ""
        raise InvalidInputError(f"{name} has {n_features} features, but {owner} is expecting {math.prod(expected_shape)} "
                                f"features as input{shape}.")
    if expected_shape is not None and tuple(arr.shape[1:]) != tuple(expected_shape):
        raise InvalidInputError(
            f"{name} has samples of shape {tuple(arr.shape[1:])}, but this model was fitted on samples of shape "
            f"{tuple(expected_shape)}."
        )
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32, copy=False)  # (a float32 memory-mapped file stays mapped)
        for start, block in row_blocks(arr):  # no n × d mask in memory
            finite = np.isfinite(block)
            if not finite.all():
                row = start + int(np.argwhere(~finite.reshape(len(finite), -1))[0, 0])
                raise InvalidInputError(f"{name} contains NaN or infinity (first in sample {row}); remove or impute those values.")
    return arr


def check_labels(y, n_samples: int, *, name: str = "y") -> np.ndarray:
    """Integer class labels 0..C-1 of length ``n_samples`` (returned as int64)."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D class labels; got shape {arr.shape}.")
    if len(arr) != n_samples:
        raise InvalidInputError(f"{name} has {len(arr)} labels but X has {n_samples} samples; give one label per sample.")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InvalidInputError(f"{name} must hold integer class labels 0..C-1; got dtype {arr.dtype}.")
    if arr.min() < 0:
        raise InvalidInputError(f"{name} has negative labels (min {arr.min()}); use 0..C-1.")
    if arr.max() >= MAX_CLASSES:
        raise InvalidInputError(
            f"{name} has class id {arr.max()}, but genlab takes class ids 0..C-1 with at most {MAX_CLASSES} classes; "
            "renumber them, e.g. y = np.unique(y, return_inverse=True)[1]."
        )
    return arr.astype(np.int64, copy=False)


def resolve_seed(random_state) -> int:
    """An int seed from ``random_state`` (None draws fresh entropy; a Generator draws from it)."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0])
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise InvalidInputError(f"random_state must be a non-negative integer, got {random_state}.")
        return int(random_state)
    raise InvalidInputError(f"random_state must be None, an int or a numpy Generator; got {random_state!r}.")
