"""Model runs (spec §1.3): ``genlab train`` and ``--resume`` write one folder per run.

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
from pathlib import Path

import numpy as np
import tomli_w
import tomllib

from .. import families, latent, plots
from .._fileio import atomic_write_text
from .._runlock import run_lock
from ..errors import InvalidInputError
from ..estimators import GenerativeEstimator
from ..io import load as load_model
from ..training import distributed, resolve_device
from .config import RunSettings, config_document, data_fingerprint, header, read_config, record_automatic, split_settings
from .directory import require_kind, run_directory


def _finish(est: GenerativeEstimator, X: np.ndarray, y: np.ndarray | None, run_dir: Path) -> None:
    est.save(run_dir)
    write_figures(est, X, y, run_dir)
    record_automatic(est, run_dir / "config.toml")


def train_run(run: RunSettings, out: str | Path, *, overwrite: bool = False, verbose: int = 1) -> GenerativeEstimator:
    """Validate everything, then create ``out`` and train into it."""
    cls = families.get(run.model).estimator
    params = {"verbose": verbose, **run.params}
    cls(**params)._validated_params()
    group = distributed.setup(resolve_device(params.get("device", "auto")))
    if params.get("random_state") is None:  # drawn once, by rank 0, for every process
        params["random_state"] = group.from_main(lambda: int(np.random.SeedSequence().generate_state(1)[0] % 2**31))
    est = cls(**params)
    X, y = run.load_data()
    with contextlib.ExitStack() as stack:
        def open_run_dir() -> str:
            if overwrite and Path(out).is_dir():  # nobody may be writing the run this one replaces
                stack.enter_context(run_lock(out, "genlab train --overwrite"))
            run_dir = stack.enter_context(run_directory(out, overwrite=overwrite))
            stack.enter_context(run_lock(run_dir, "genlab train"))
            atomic_write_text(run_dir / "config.toml", header() + tomli_w.dumps(config_document(run, est, X, y)))
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
    require_kind(run_dir, "train")
    if not (run_dir / "config.toml").is_file():
        raise InvalidInputError(f"{run_dir} is not a genlab run directory (no config.toml).")
    settings = read_config(run_dir / "config.toml")
    run = split_settings(settings, source=str(run_dir / "config.toml"))
    allowed = {"epochs", "verbose", "device"}
    bad = sorted(set(overrides or {}) - allowed)
    if bad:
        raise InvalidInputError(f"--resume continues the saved configuration; only {', '.join(sorted(allowed))} can be changed "
                                f"(not {', '.join(bad)}).")
    est = families.get(run.model).estimator(**{"verbose": 1, **run.params, **(overrides or {})})
    est._validated_params()
    X, y = run.load_data()
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
            atomic_write_text(run_dir / "config.toml", header() + tomli_w.dumps(doc))
    group.barrier()
    return est


def label_kwargs(est: GenerativeEstimator, y) -> dict:
    """``{"y": y}`` for models that take labels (conditional ones), else ``{}``."""
    if not families.is_conditional(est):
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
    to_model = est.scaling_.display  # model units before any centring: what a picture shows
    family = families.of(est)
    if family.has("reconstruct"):
        written.append(plots.save_reconstructions(run_dir / "reconstructions.png", to_model(show),
                                                  to_model(est.reconstruct(show, **labels)),
                                                  title=f"{name}: originals and reconstructions"))
    if family.has("sample"):
        if labels:  # a row per class: classes cycle 0..C-1, so n_classes columns of 8 samples, transposed
            n_classes = est.n_classes_
            samples = est.sample(8 * n_classes, random_state=0).reshape(8, n_classes, *est.input_shape_)
            samples, n_cols = samples.transpose(1, 0, *range(2, samples.ndim)).reshape(-1, *est.input_shape_), 8
        else:  # 2-D points are drawn as a scatter: enough of them to show the density
            samples, n_cols = est.sample(1000 if est.input_shape_ == (2,) else 64, random_state=0), 16
        written.append(plots.save_samples(run_dir / "samples.png", to_model(samples), n_cols=n_cols,
                                          title=f"{name}: samples" + (" (one row per class)" if labels else ""),
                                          value_range=plots.display_range(to_model(show))))
    if family.has("encode"):  # interpolation, traversal, code scatter, 2-D manifold
        written += latent.write_latent_figures(est, X, y, run_dir)
    elif family.has("decode"):  # a generator: interpolation between the codes of its own samples
        written.append(latent.write_generator_interpolation(est, X, run_dir))
    curves = plots.save_training_curves(run_dir / "training_curves.png", est.history_, title=f"{name}: training",
                                        groups=family.grouped)
    if curves is not None:
        written.append(curves)
    return written


def open_run(run_dir: str | Path) -> GenerativeEstimator:
    """The fitted model of a run directory (or any folder written by ``save``)."""
    require_kind(run_dir, "train")
    return load_model(run_dir)


