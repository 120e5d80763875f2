"""Run directories (spec §1.3): created only when the run can start, never left half-written, never replacing an
existing run unless the new one succeeds; what kind of run a folder holds; output arrays written atomically."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import numpy as np

from .._fileio import atomic_write_bytes
from ..errors import DataChangedError, InvalidInputError
from ..training.checkpoint import list_checkpoints

INTERACTIONS = "interactions.npz"  # a recommendation run's data (runs/recommend.py); only its runs have one


def run_kind(run_dir: str | Path) -> str:
    """Which command wrote ``run_dir``: ``"train"`` (a model run) or ``"recommend"`` (a recommendation run) — the
    one place that tells them apart (a recommendation run holds its interactions)."""
    return "recommend" if (Path(run_dir) / INTERACTIONS).is_file() else "train"


def require_kind(run_dir: str | Path, kind: str, hint: str = "") -> Path:
    """``run_dir`` as a Path if it is a run of ``kind``; else a one-line error (``hint``: what to do instead)."""
    run_dir = Path(run_dir)
    if run_kind(run_dir) == kind:
        return run_dir
    if kind == "train":
        raise InvalidInputError(f"{run_dir} is a recommendation run; "
                                + (hint or "the `genlab recommend` commands work on it (predict, evaluate)") + ".")
    raise InvalidInputError(f"{run_dir} is not a recommendation run directory (no {INTERACTIONS}); "
                            + (hint or "give a run directory written by `genlab recommend fit`") + ".")


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a model run (the one ``--resume`` continues from); None if it has none."""
    folder = Path(run_dir) / "checkpoints"
    names = list_checkpoints(folder) if folder.is_dir() else []
    return folder / names[-1] if names else None


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
