"""Saving and loading fitted estimators as data, never as code.

A model folder holds ``model.json`` (format, versions, class name, constructor parameters,
fitted values, the module's architecture) and ``model.safetensors`` (module weights under
``module/``, fitted arrays under ``fitted/``). Loading looks the class up in a fixed registry,
rebuilds the module from the parameters and checks every tensor's name, shape, dtype and
finiteness; nothing in the files is executed. Estimators without a torch module (``EASE``) keep
only ``fitted/`` arrays, whose names, shapes and dtypes the class states from its JSON values.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from . import __version__
from ._fileio import atomic_write_bytes, atomic_write_text
from .data.scaling import Scaling
from .errors import InvalidInputError, ModelFileError
from .estimators.base import GenerativeEstimator
from .training import distributed

FORMAT = "genlab-model"
FORMAT_VERSION = 2  # 2: Mult-VAE's first layer stored items × hidden (read from 1 by its module's upgrade_state)
MODEL_JSON, MODEL_WEIGHTS = "model.json", "model.safetensors"
MAX_JSON_BYTES = 64 * 2**20


def _jsonable(value):
    """Plain JSON types: tuples become lists (recursively), NumPy scalars Python numbers."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def save(estimator, path: str | Path) -> Path:
    """Save a fitted genlab estimator into folder ``path`` (``model.json`` + ``model.safetensors``); the same as
    ``estimator.save(path)``. Returns the folder; :func:`load` reads it back."""
    if not callable(getattr(estimator, "save", None)):
        raise InvalidInputError(f"{type(estimator).__name__} is not a model genlab saves (Popularity is refitted in "
                                "a moment instead).")
    return estimator.save(path)


def _header(estimator) -> dict:
    """The part of ``model.json`` every model has: format, versions, class and constructor parameters."""
    params = estimator.get_params()
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = estimator.seed_
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "genlab_version": __version__, "torch_version": torch.__version__,
            "class": type(estimator).__name__, "params": {k: _jsonable(v) for k, v in params.items()}}


def save_estimator(estimator, path: str | Path) -> Path:
    """Write the two model files into folder ``path`` (created if needed); each write is atomic. Under
    torchrun only rank 0 writes (every rank holds the same model); the others return at once."""
    path = Path(path)
    if not distributed.current().main:
        return path
    path.mkdir(parents=True, exist_ok=True)
    if not hasattr(estimator, "module_"):
        return _save_arrays_only(estimator, path)
    tensors = {f"module/{k}": v.detach().cpu().contiguous() for k, v in estimator.module_.state_dict().items()}
    for name in estimator._fitted_arrays:
        if hasattr(estimator, name):
            tensors[f"fitted/{name}"] = torch.from_numpy(np.ascontiguousarray(getattr(estimator, name)))
    meta = {
        **_header(estimator),
        "fitted": {
            "input_shape_": list(estimator.input_shape_),
            "n_features_in_": estimator.n_features_in_,
            "n_classes_": estimator.n_classes_,
            "seed_": estimator.seed_,
            "scaling_": estimator.scaling_.to_dict(),
            "history_": estimator.history_,
        },
        "module": {"class": type(estimator.module_).__name__,
                   "config": _jsonable(dataclasses.asdict(estimator.module_.config))},
        "tensors": sorted(tensors),
    }
    atomic_write_bytes(path / MODEL_WEIGHTS, safetensors_bytes(tensors))
    atomic_write_text(path / MODEL_JSON, json.dumps(meta, indent=1, default=_jsonable))
    return path


def _save_arrays_only(estimator, path: Path) -> Path:
    """A model that is its fitted arrays (EASE): JSON values from ``_fitted_values()``, arrays under ``fitted/``."""
    tensors = {f"fitted/{name}": torch.from_numpy(np.ascontiguousarray(getattr(estimator, name))) for name in estimator._fitted_arrays}
    meta = {**_header(estimator), "fitted": _jsonable(estimator._fitted_values()), "module": None, "tensors": sorted(tensors)}
    # serialised in memory first (a second copy of the arrays while it is written), as every model is
    atomic_write_bytes(path / MODEL_WEIGHTS, safetensors_bytes(tensors))
    atomic_write_text(path / MODEL_JSON, json.dumps(meta, indent=1, default=_jsonable))
    return path


def _read_meta(path: Path) -> dict:
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


def load(path: str | Path):
    """Load an estimator saved by ``save()`` or ``genlab train``: same class, same outputs."""
    from .estimators import ESTIMATORS

    path = Path(path)
    meta = _read_meta(path)
    name = meta.get("class")
    cls = ESTIMATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelFileError(f"{path / MODEL_JSON} names class {name!r}, which is not a genlab estimator "
                             f"({', '.join(ESTIMATORS)}).")
    if not issubclass(cls, GenerativeEstimator):
        return _load_arrays_only(path, cls, meta)
    try:
        fitted = meta["fitted"]
        estimator = cls(**meta["params"])
        estimator._validated_params()
        for key, value in estimator.get_params().items():  # JSON lists back to the tuples the table expects
            if isinstance(value, list):
                setattr(estimator, key, tuple(value))
        estimator.input_shape_ = tuple(int(s) for s in fitted["input_shape_"])
        estimator.n_features_in_ = int(fitted["n_features_in_"])
        estimator.n_classes_ = None if fitted["n_classes_"] is None else int(fitted["n_classes_"])
        estimator.seed_ = int(fitted["seed_"])
        estimator.scaling_ = Scaling.from_dict(fitted["scaling_"])
        estimator.history_ = list(fitted["history_"])
        # shapes only, nothing allocated: an edited size (latent_dim=10**9) must not build before it is checked
        with torch.device("meta"):
            skeleton = estimator._build_module(estimator.input_shape_, estimator.n_classes_)
    # ValueError (InvalidInputError among them), OverflowError: int() of text or inf; RuntimeError: sizes torch refuses
    except (KeyError, TypeError, IndexError, ValueError, OverflowError, RuntimeError) as exc:
        raise ModelFileError(f"{path / MODEL_JSON} does not describe a valid {name} ({type(exc).__name__}: {exc}).") from None
    stored = meta.get("module")
    if not isinstance(stored, dict) or _jsonable(dataclasses.asdict(skeleton.config)) != stored.get("config"):
        raise ModelFileError(f"{path / MODEL_JSON}: the stored architecture does not match what its parameters build "
                             "(file edited, or written by an incompatible genlab).")
    tensors = _read_tensors(path / MODEL_WEIGHTS)
    module_state = skeleton.upgrade_state({k[len("module/"):]: v for k, v in tensors.items() if k.startswith("module/")},
                                          meta["format_version"])
    tensors = {**{k: v for k, v in tensors.items() if not k.startswith("module/")}, **{f"module/{k}": v for k, v in module_state.items()}}
    expected = {f"module/{k}": v for k, v in skeleton.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(k for k in set(tensors) - set(expected) if not k.startswith("fitted/"))
    if missing or extra:
        raise ModelFileError(f"{path / MODEL_WEIGHTS} does not match the model: missing {missing[:3]}, unexpected {extra[:3]}.")
    for key, ref in expected.items():
        got = tensors[key]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise ModelFileError(f"{path / MODEL_WEIGHTS}: tensor {key} has shape {tuple(got.shape)} {got.dtype}, "
                                 f"expected {tuple(ref.shape)} {ref.dtype}.")
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"{path / MODEL_WEIGHTS}: tensor {key} contains NaN or infinity.")
    module = estimator._build_module(estimator.input_shape_, estimator.n_classes_)  # as large as the file: now safe
    module.load_state_dict({k[len("module/"):]: v for k, v in tensors.items() if k.startswith("module/")})
    from .training import resolve_device

    estimator.module_ = module.to(resolve_device(estimator.device)).eval()
    for attr in cls._fitted_arrays:
        if f"fitted/{attr}" in tensors:
            setattr(estimator, attr, tensors[f"fitted/{attr}"].numpy())
    return estimator


def _load_arrays_only(path: Path, cls, meta: dict):
    """Rebuild a model that is its fitted arrays: the class states, from the JSON values, which arrays it needs."""
    name = cls.__name__
    try:
        estimator = cls(**meta["params"])
        estimator._validated_params()
        expected = estimator._restore_fitted(meta["fitted"])
    except (KeyError, TypeError, IndexError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"{path / MODEL_JSON} does not describe a valid {name} ({type(exc).__name__}: {exc}).") from None
    tensors = _read_tensors(path / MODEL_WEIGHTS)
    wanted = {f"fitted/{k}" for k in expected}
    if set(tensors) != wanted:
        raise ModelFileError(f"{path / MODEL_WEIGHTS} does not match the model: missing {sorted(wanted - set(tensors))[:3]}, "
                             f"unexpected {sorted(set(tensors) - wanted)[:3]}.")
    for attr, (shape, dtype) in expected.items():
        got = tensors[f"fitted/{attr}"]
        got_dtype = str(got.dtype).removeprefix("torch.")  # compared before .numpy(), which has no bfloat16
        if got_dtype != dtype or got.ndim != len(shape) or any(want not in (None, have) for want, have in zip(shape, got.shape)):
            raise ModelFileError(f"{path / MODEL_WEIGHTS}: tensor fitted/{attr} has shape {tuple(got.shape)} {got_dtype}, "
                                 f"expected {tuple('any' if s is None else s for s in shape)} {dtype}.")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ModelFileError(f"{path / MODEL_WEIGHTS}: tensor fitted/{attr} contains NaN or infinity.")
        setattr(estimator, attr, got.numpy())
    try:
        estimator._check_restored()
    except ValueError as exc:
        raise ModelFileError(f"{path / MODEL_WEIGHTS} does not hold a valid {name}: {exc}.") from None
    return estimator


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise ModelFileError(f"{file} is missing; the model folder is incomplete.")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{file} is not a readable safetensors file ({exc}).") from None
