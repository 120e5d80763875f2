"""Run directories (spec §1.3): one folder per training run, created only when the run can
start, never left half-written, and never replacing an existing run unless the new one succeeds.

    RUN_DIR/config.toml        every hyper-parameter, the data source and fingerprint, seed, versions
    RUN_DIR/model.json         architecture + fitted values      } genlab.load(RUN_DIR)
    RUN_DIR/model.safetensors  weights                           }
    RUN_DIR/checkpoints/       resumable training state (genlab train --resume RUN_DIR)
    RUN_DIR/metrics.jsonl      one JSON object per epoch
    RUN_DIR/*.png              reconstructions, samples, training curves

Under torchrun (or ``genlab train --nproc N``) every process validates the settings and loads the data;
rank 0 alone creates, locks and writes the run directory, and shares its outcome (the folder, or the
reason it refused) with the others, which train beside it and wait for it at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomli_w
import tomllib
import torch

from . import __version__, datasets, latent, plots
from ._fileio import atomic_write_bytes, atomic_write_text
from ._runlock import run_lock
from ._validation import row_blocks
from .errors import DataChangedError, InvalidInputError
from .estimators import GAN, VAE, Autoencoder, GenerativeEstimator
from .io import load as load_model
from .training import distributed, resolve_device

FAMILIES: dict[str, type[GenerativeEstimator]] = {"ae": Autoencoder, "vae": VAE, "gan": GAN}
RUN_KEYS = ("model", "data", "out", "label_column")  # settings that are not estimator parameters
INFO_TABLES = ("versions", "data_info", "automatic")  # written for people, ignored when read back


@dataclass(frozen=True)
class RunSettings:
    model: str
    data: str
    params: dict
    label_column: str | int | None = None


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


def split_settings(settings: dict, *, source: str) -> RunSettings:
    """Check that every key is known for the chosen model family; separate run keys from parameters."""
    model = settings.get("model")
    if model not in FAMILIES:
        raise InvalidInputError(f"{source}: model must be one of {', '.join(FAMILIES)}; got {model!r}.")
    table = FAMILIES[model]._params
    unknown = sorted(set(settings) - set(table) - set(RUN_KEYS))
    if unknown:
        raise InvalidInputError(f"{source}: unknown option(s) {', '.join(unknown)} for model {model!r}.")
    if not settings.get("data"):
        raise InvalidInputError(f"{source}: no data source; give --data (a built-in name like 'digits', or a file/folder).")
    params = {k: v for k, v in settings.items() if k in table}
    return RunSettings(model, str(settings["data"]), params, settings.get("label_column"))


def _config_document(run: RunSettings, est: GenerativeEstimator, X: np.ndarray, y: np.ndarray | None) -> dict:
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


@contextlib.contextmanager
def run_directory(out: str | Path, *, overwrite: bool, resumable: bool = True):
    """Yield the folder to write a new run into; on failure leave nothing (or the old run) behind.

    A new ``out`` is removed again if the run fails before its first checkpoint (after one, it
    stays so that ``--resume`` can continue; ``resumable=False``, for runs no command can resume,
    always removes it). With ``overwrite`` the new run is built in a hidden sibling folder and
    replaces ``out`` only when it succeeded.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise InvalidInputError(f"{out} already exists; choose another --out, or pass --overwrite "
                                "(the old run is replaced only if the new one succeeds).")
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} exists and is not a directory; choose another --out.")
    staging = out.parent / f".{out.name}.partial-{os.getpid()}" if out.exists() else out
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create run directory {staging}: {exc.strerror}.") from None
    try:
        yield staging
    except BaseException as exc:
        mid_run = not isinstance(exc, InvalidInputError) or isinstance(exc, DataChangedError)  # bad input is refused before training
        keep = resumable and staging == out and (out / "checkpoints" / "manifest.json").exists() and mid_run
        if keep:
            exc.add_note(f"the run's checkpoints are kept: continue it with `genlab train --resume {out}`")
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if staging != out:
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)


def _load_data(run: RunSettings):
    return datasets.load(run.data, label_column=run.label_column)


def _finish(est: GenerativeEstimator, X: np.ndarray, y: np.ndarray | None, run_dir: Path) -> None:
    est.save(run_dir)
    write_figures(est, X, y, run_dir)
    _record_automatic(est, run_dir / "config.toml")


def _record_automatic(est: GenerativeEstimator, path: Path) -> None:
    """Add ``[automatic]`` to config.toml: what each parameter left at None (= chosen by genlab) became,
    e.g. a GAN's learning rates and latent size. For people; reading the file back ignores it."""
    config = est.module_.config
    chosen = {k: getattr(config, k) for k, v in est.get_params().items() if v is None and getattr(config, k, None) is not None}
    if not chosen:
        return
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    doc["automatic"] = {k: list(v) if isinstance(v, tuple) else v for k, v in chosen.items()}
    atomic_write_text(path, _header() + tomli_w.dumps(doc))


def train_run(run: RunSettings, out: str | Path, *, overwrite: bool = False, verbose: int = 1) -> GenerativeEstimator:
    """Validate everything, then create ``out`` and train into it."""
    cls = FAMILIES[run.model]
    params = {"verbose": verbose, **run.params}
    cls(**params)._validated_params()
    group = distributed.setup(resolve_device(params.get("device", "auto")))
    if params.get("random_state") is None:  # drawn once, by rank 0, for every process
        params["random_state"] = group.from_main(lambda: int(np.random.SeedSequence().generate_state(1)[0] % 2**31))
    est = cls(**params)
    X, y = _load_data(run)
    with contextlib.ExitStack() as stack:
        def open_run_dir() -> str:
            if overwrite and Path(out).is_dir():  # nobody may be writing the run this one replaces
                stack.enter_context(run_lock(out, "genlab train --overwrite"))
            run_dir = stack.enter_context(run_directory(out, overwrite=overwrite))
            stack.enter_context(run_lock(run_dir, "genlab train"))
            atomic_write_text(run_dir / "config.toml", _header() + tomli_w.dumps(_config_document(run, est, X, y)))
            return str(run_dir)

        run_dir = Path(group.from_main(open_run_dir))
        est.fit(X, y, run_dir=run_dir)
        if group.main:
            _finish(est, X, y, run_dir)
    group.barrier()  # the others return once rank 0 has written everything
    return est


def resume_run(run_dir: str | Path, *, overrides: dict | None = None) -> GenerativeEstimator:
    """Continue ``run_dir`` from its newest checkpoint with its saved configuration.

    Only ``epochs`` (to train longer), ``verbose`` and ``device`` may be overridden.
    """
    run_dir = Path(run_dir)
    _refuse_recommendation_run(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise InvalidInputError(f"{run_dir} is not a genlab run directory (no config.toml).")
    settings = read_config(run_dir / "config.toml")
    run = split_settings(settings, source=str(run_dir / "config.toml"))
    allowed = {"epochs", "verbose", "device"}
    bad = sorted(set(overrides or {}) - allowed)
    if bad:
        raise InvalidInputError(f"--resume continues the saved configuration; only {', '.join(sorted(allowed))} can be changed "
                                f"(not {', '.join(bad)}).")
    est = FAMILIES[run.model](**{"verbose": 1, **run.params, **(overrides or {})})
    est._validated_params()
    X, y = _load_data(run)
    doc = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    if doc.get("data_info", {}).get("sha256") != data_fingerprint(X, y):
        raise InvalidInputError(f"the data at {run.data!r} changed since {run_dir} started; resuming would not continue "
                                "the same run. Restore the data or start a new run.")
    group = distributed.setup(resolve_device(est.device))
    with contextlib.ExitStack() as stack:
        group.from_main(lambda: stack.enter_context(run_lock(run_dir, "genlab train --resume")))
        est.fit(X, y, run_dir=run_dir, resume=True)
        if group.main:
            _finish(est, X, y, run_dir)
            doc["params"]["epochs"] = est.epochs
            atomic_write_text(run_dir / "config.toml", _header() + tomli_w.dumps(doc))
    group.barrier()
    return est


def _header() -> str:
    return f"# genlab {__version__} run configuration; `genlab train --config` accepts this file.\n"


def label_kwargs(est: GenerativeEstimator, y) -> dict:
    """``{"y": y}`` for models that take labels (conditional ones), else ``{}``."""
    if not getattr(est, "conditional", False):
        return {}
    if y is None:
        raise InvalidInputError(f"this {type(est).__name__} is conditional: the data source must have labels "
                                "(or give --label for sampling).")
    return {"y": y}


def write_figures(est: GenerativeEstimator, X: np.ndarray, y: np.ndarray | None, run_dir: Path) -> list[Path]:
    """Reconstructions, samples (one row per class for conditional models) and training curves as PNGs."""
    written = []
    name = type(est).__name__
    pick = np.linspace(0, len(X) - 1, min(32, len(X))).astype(int)  # spread out: files are often sorted by class
    show = X[pick]
    labels = label_kwargs(est, None if y is None else y[pick])
    to_model = est.scaling_.forward
    if hasattr(est, "reconstruct"):
        written.append(plots.save_reconstructions(run_dir / "reconstructions.png", to_model(show),
                                                  to_model(est.reconstruct(show, **labels)),
                                                  title=f"{name}: originals and reconstructions"))
    if hasattr(est, "sample"):
        if labels:  # a row per class: classes cycle 0..C-1, so n_classes columns of 8 samples, transposed
            n_classes = est.n_classes_
            samples = est.sample(8 * n_classes, random_state=0).reshape(8, n_classes, *est.input_shape_)
            samples, n_cols = samples.transpose(1, 0, *range(2, samples.ndim)).reshape(-1, *est.input_shape_), 8
        else:  # 2-D points are drawn as a scatter: enough of them to show the density
            samples, n_cols = est.sample(1000 if est.input_shape_ == (2,) else 64, random_state=0), 16
        written.append(plots.save_samples(run_dir / "samples.png", to_model(samples), n_cols=n_cols,
                                          title=f"{name}: samples" + (" (one row per class)" if labels else ""),
                                          value_range=plots.display_range(to_model(show))))
    if hasattr(est, "transform"):  # interpolation, traversal, code scatter, 2-D manifold
        written += latent.write_latent_figures(est, X, y, run_dir)
    elif hasattr(est, "generate"):  # a GAN: interpolation between the codes of its own samples
        written.append(latent.write_generator_interpolation(est, X, run_dir))
    curves = plots.save_training_curves(run_dir / "training_curves.png", est.history_, title=f"{name}: training")
    if curves is not None:
        written.append(curves)
    return written


def _refuse_recommendation_run(run_dir: Path) -> None:
    if (run_dir / "interactions.npz").is_file():
        raise InvalidInputError(f"{run_dir} is a recommendation run; the `genlab recommend` commands work on it "
                                "(predict, evaluate).")


def open_run(run_dir: str | Path) -> GenerativeEstimator:
    """The fitted model of a run directory (or any folder written by ``save``)."""
    _refuse_recommendation_run(Path(run_dir))
    return load_model(run_dir)


def write_array(path: str | Path, array: np.ndarray, *, overwrite: bool = False) -> Path:
    """Save an output array as .npy, .npz (key ``X``) or .csv (one flattened sample per row), atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidInputError(f"{path} already exists; choose another --out or pass --overwrite.")
    if not path.parent.is_dir():
        raise InvalidInputError(f"the folder {path.parent} does not exist; create it first.")
    suffix = path.suffix.lower()
    buf = io.BytesIO()
    if suffix == ".npy":
        np.save(buf, array)
    elif suffix == ".npz":
        np.savez(buf, X=array)
    elif suffix == ".csv":
        np.savetxt(buf, array.reshape(len(array), -1), delimiter=",", fmt="%.7g")
    else:
        raise InvalidInputError(f"cannot write {path.name}: use a .npy, .npz or .csv file name.")
    atomic_write_bytes(path, buf.getvalue())
    return path
