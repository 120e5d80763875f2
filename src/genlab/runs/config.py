"""A model run's configuration: ``config.toml`` read and written, settings split into run keys and the family's
parameters (checked against the family registry), and the data fingerprint that ``--resume`` compares."""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomli_w
import tomllib
import torch

from .. import __version__, datasets, families
from .._fileio import atomic_write_text
from .._validation import row_blocks
from ..errors import InvalidInputError

RUN_KEYS = ("model", "data", "out", "label_column")  # settings that are not estimator parameters
INFO_TABLES = ("versions", "data_info", "automatic")  # written for people, ignored when read back


@dataclass(frozen=True)
class RunSettings:
    """A model run's settings: the family's key, the data source, the estimator's parameters."""

    model: str
    data: str
    params: dict
    label_column: str | int | None = None

    def load_data(self):
        """The run's data as (X, y) (y None without labels)."""
        return datasets.load(self.data, label_column=self.label_column)


def data_fingerprint(X: np.ndarray, y: np.ndarray | None) -> str:
    h = hashlib.sha256()
    h.update(str((X.shape, str(X.dtype))).encode())
    for _, block in row_blocks(X):  # a memory-mapped file is never copied whole
        h.update(np.ascontiguousarray(block).tobytes())
    if y is not None:
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def read_config(path: str | Path) -> dict:
    """Read a TOML config: top-level keys and a ``[params]`` table, kebab- or snake-case."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"config file {path} does not exist.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"config file {path} is not valid TOML: {exc}.") from None
    params = raw.pop("params", {})
    if not isinstance(params, dict):
        raise InvalidInputError(f"config file {path}: [params] must be a table.")
    for table in INFO_TABLES:
        raw.pop(table, None)
    merged = {k.replace("-", "_"): v for k, v in {**raw, **params}.items()}
    if "seed" in merged:
        merged["random_state"] = merged.pop("seed")
    return merged


def command_settings(model: str, given: dict, config: str | Path | None = None) -> tuple[RunSettings, str]:
    """The settings of ``genlab train MODEL``: the TOML ``config`` (if any), then the command line's options ``given``
    (their words as typed: "none" for None), which win. Returns the checked settings and the run directory to create."""
    settings = read_config(config) if config else {}
    settings["model"] = model
    params = families.get(model, run="train").estimator._params
    settings.update({k: (params[k].from_cli(v) if k in params else v) for k, v in given.items()})
    out = settings.pop("out", None)
    if not out:
        raise InvalidInputError("give the run directory to create with --out RUN_DIR")
    return split_settings(settings, source=str(config) if config else "command line"), str(out)


def split_settings(settings: dict, *, source: str) -> RunSettings:
    """Check that every key is known for the chosen model family; separate run keys from parameters."""
    model = settings.get("model")
    table = families.get(model, run="train", source=f"{source}: model").estimator._params
    unknown = sorted(set(settings) - set(table) - set(RUN_KEYS))
    if unknown:
        raise InvalidInputError(f"{source}: unknown option(s) {', '.join(unknown)} for model {model!r}.")
    if not settings.get("data"):
        raise InvalidInputError(f"{source}: no data source; give --data (a built-in name like 'digits', or a file/folder).")
    params = {k: v for k, v in settings.items() if k in table}
    return RunSettings(model, str(settings["data"]), params, settings.get("label_column"))


def config_document(run: RunSettings, est, X: np.ndarray, y: np.ndarray | None) -> dict:
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in est.get_params().items() if v is not None}
    doc = {"model": run.model, "data": run.data}
    if run.label_column is not None:
        doc["label_column"] = run.label_column
    doc["seed"] = params.pop("random_state")
    doc["params"] = params
    doc["data_info"] = {"n_samples": len(X), "sample_shape": list(X.shape[1:]), "labels": y is not None,
                        "sha256": data_fingerprint(X, y)}
    doc["versions"] = {"genlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
                       "python": platform.python_version()}
    return doc


def record_automatic(est, path: Path) -> None:
    """Add ``[automatic]`` to config.toml: what each parameter left at None (= chosen by genlab) became,
    e.g. a GAN's learning rates and latent size. For people; reading the file back ignores it."""
    config = est.module_.config
    chosen = {k: getattr(config, k) for k, v in est.get_params().items() if v is None and getattr(config, k, None) is not None}
    if not chosen:
        return
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    doc["automatic"] = {k: list(v) if isinstance(v, tuple) else v for k, v in chosen.items()}
    atomic_write_text(path, header() + tomli_w.dumps(doc))


def header() -> str:
    return f"# genlab {__version__} run configuration; `genlab train --config` accepts this file.\n"


