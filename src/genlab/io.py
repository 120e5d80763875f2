"""``genlab.save`` and ``genlab.load``: fitted estimators as data, never as code.

A model folder holds ``model.json`` and ``model.safetensors`` (the format: :mod:`genlab._modelfile`). Loading
reads the class name from ``model.json`` and looks it up in the family registry (:mod:`genlab.families`) — a
name no family has is refused, nothing is imported or executed — then the class rebuilds itself from the file
through its persistence hooks, every tensor checked first.
"""

from __future__ import annotations

from pathlib import Path

from . import _modelfile, families
from .errors import InvalidInputError, ModelFileError
from .estimators.base import SavedModel


def save(estimator, path: str | Path) -> Path:
    """Save a fitted genlab estimator into folder ``path`` (``model.json`` + ``model.safetensors``); the same as
    ``estimator.save(path)``. Returns the folder; :func:`load` reads it back."""
    if not isinstance(estimator, SavedModel):
        raise InvalidInputError(f"{type(estimator).__name__} is not a model genlab saves (Popularity is refitted in "
                                "a moment instead).")
    return estimator.save(path)


def load(path: str | Path):
    """Load an estimator saved by ``save()`` or ``genlab train``: same class, same outputs."""
    path = Path(path)
    meta = _modelfile.read_meta(path)
    name = meta.get("class")
    family = families.by_class_name(name) if isinstance(name, str) else None
    if family is None or not issubclass(family.estimator, SavedModel):
        saved = ", ".join(f.estimator.__name__ for f in families.FAMILIES.values() if issubclass(f.estimator, SavedModel))
        raise ModelFileError(f"{path / _modelfile.MODEL_JSON} names class {name!r}, which is not a genlab estimator ({saved}).")
    return _modelfile.read(family.estimator, path, meta)
