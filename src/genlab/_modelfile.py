"""The model-file format: a folder with ``model.json`` and ``model.safetensors``, written and read as data, never as
code. It knows no estimator; an estimator takes part through four hooks (``estimators/base.py`` has the shared
ones, EASE its own):

    _saved_state()                  -> (fitted JSON values, module description or None, tensors by name)
    _restore_state(fitted, module, version) -> what the tensors must be: name -> (shape with None for "any", dtype)
    _upgrade_tensors(tensors, version)      -> tensors as this format version stores them (default: as they are)
    _restore_tensors(tensors)               -> sets the arrays / builds the module; ValueError if they cannot be its

``model.json`` holds the format name and version, genlab's and torch's versions, the class name (looked up in the
family registry by :func:`genlab.load`, never imported), the constructor parameters, the fitted values and the
module description; ``model.safetensors`` the tensors (``module/…`` weights, ``fitted/…`` arrays). Reading checks
the JSON's size, format and version, then every tensor's name, shape, dtype and finiteness against what the
estimator says it must be, before anything is built at full size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from . import __version__
from ._fileio import atomic_write_bytes, atomic_write_text
from .errors import ModelFileError

FORMAT = "genlab-model"
FORMAT_VERSION = 2  # 2: Mult-VAE's first layer stored items × hidden (read from 1 by its module's upgrade_state)
MODEL_JSON, MODEL_WEIGHTS = "model.json", "model.safetensors"
MAX_JSON_BYTES = 64 * 2**20

#: what a stored tensor must be: its shape (a None size: any; None for the whole shape: any) and dtype name ("float32";
#: None: any), and whether the file must hold it
TensorSpec = tuple[tuple[int | None, ...] | None, str | None] | tuple[tuple[int | None, ...] | None, str | None, bool]


def jsonable(value):
    """Plain JSON types: tuples become lists (recursively), NumPy scalars Python numbers."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def as_tensor(array) -> torch.Tensor:
    """A fitted array as a contiguous CPU tensor for the file."""
    return torch.from_numpy(np.ascontiguousarray(array)) if not torch.is_tensor(array) else array.detach().cpu().contiguous()


def write(estimator, path: str | Path) -> Path:
    """Write ``estimator`` (fitted) into folder ``path`` (created if needed); each file is written atomically."""
    path = Path(path)
    fitted, module, tensors = estimator._saved_state()
    params = estimator.get_params()
    if not isinstance(params.get("random_state"), (int, type(None))):  # a Generator: the seed it was fitted with
        params["random_state"] = estimator.seed_
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "genlab_version": __version__, "torch_version": torch.__version__,
            "class": type(estimator).__name__, "params": jsonable(params), "fitted": jsonable(fitted), "module": module,
            "tensors": sorted(tensors)}
    path.mkdir(parents=True, exist_ok=True)
    # serialised in memory first (a second copy of the arrays while it is written)
    atomic_write_bytes(path / MODEL_WEIGHTS, safetensors_bytes({k: as_tensor(v) for k, v in tensors.items()}))
    atomic_write_text(path / MODEL_JSON, json.dumps(meta, indent=1, default=jsonable))
    return path


def read_meta(path: str | Path) -> dict:
    """``model.json`` of folder ``path``, checked to be a genlab model description this version reads."""
    path = Path(path)
    file = path / MODEL_JSON
    if not path.exists():
        raise ModelFileError(f"{path} does not exist; give a run directory or a folder written by save().")
    if not file.is_file():
        raise ModelFileError(f"{path} holds no {MODEL_JSON}; is it a genlab run directory that finished training?")
    if file.stat().st_size > MAX_JSON_BYTES:
        raise ModelFileError(f"{file} is larger than {MAX_JSON_BYTES // 2**20} MiB; not a genlab model description.")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{file} is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{file} is not a genlab model description (no \"format\": \"{FORMAT}\").")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{file} has format version {version!r}; this genlab {__version__} reads up to {FORMAT_VERSION}. "
                             "Upgrade genlab.")
    return meta


def read(cls, path: str | Path, meta: dict):
    """Rebuild an estimator of class ``cls`` from folder ``path`` whose ``model.json`` is ``meta``."""
    path = Path(path)
    name = cls.__name__
    try:
        estimator = cls(**meta["params"])
        estimator._validated_params()
        for key, value in estimator.get_params().items():  # JSON lists back to the tuples the parameters hold
            if isinstance(value, list):
                setattr(estimator, key, tuple(value))
        expected = estimator._restore_state(meta["fitted"], meta.get("module"), meta["format_version"])
    # ValueError (InvalidInputError among them), OverflowError: int() of text or inf; RuntimeError: sizes torch refuses
    except (KeyError, TypeError, IndexError, ValueError, OverflowError, RuntimeError) as exc:
        raise ModelFileError(f"{path / MODEL_JSON} does not describe a valid {name} ({type(exc).__name__}: {exc}).") from None
    tensors = estimator._upgrade_tensors(_read_tensors(path / MODEL_WEIGHTS), meta["format_version"])
    check_tensors(tensors, expected, path / MODEL_WEIGHTS)
    try:
        estimator._restore_tensors(tensors)
    except ValueError as exc:
        raise ModelFileError(f"{path / MODEL_WEIGHTS} does not hold a valid {name}: {exc}.") from None
    return estimator


def check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, TensorSpec], file: Path) -> None:
    """The one validator of stored tensors: the expected names (the required ones all there, no others), each of its
    shape and dtype, all finite."""
    required = {k for k, s in expected.items() if len(s) < 3 or s[2]}
    missing, extra = sorted(required - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{file} does not match the model: missing {missing[:3]}, unexpected {extra[:3]}.")
    for key in tensors:
        shape, dtype = expected[key][:2]
        got = tensors[key]
        got_dtype = str(got.dtype).removeprefix("torch.")  # compared before any .numpy(), which has no bfloat16
        wrong_shape = shape is not None and (got.ndim != len(shape) or any(w not in (None, h) for w, h in zip(shape, got.shape)))
        if (dtype is not None and got_dtype != dtype) or wrong_shape:
            raise ModelFileError(f"{file}: tensor {key} has shape {tuple(got.shape)} {got_dtype}, "
                                 f"expected {tuple('any' if s is None else s for s in shape or ())} {dtype}.")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ModelFileError(f"{file}: tensor {key} contains NaN or infinity.")


def spec(tensor: torch.Tensor | np.ndarray) -> TensorSpec:
    """The (shape, dtype) a stored tensor must have to replace ``tensor``."""
    return tuple(int(s) for s in tensor.shape), str(tensor.dtype).removeprefix("torch.")


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise ModelFileError(f"{file} is missing; the model folder is incomplete.")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{file} is not a readable safetensors file ({exc}).") from None


__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_JSON", "MODEL_WEIGHTS", "check_tensors", "jsonable", "read", "read_meta", "spec",
           "write"]
