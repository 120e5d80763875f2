"""Recommendation runs (spec §6): the work behind ``genlab recommend fit | evaluate | predict``.

    RUN/config.toml         ratings file and its SHA-256, how it was read, the model, every parameter, the split
    RUN/interactions.npz    the users × items CSR matrix (data, indices, indptr, shape), user_ids, item_ids and the
                            split's train_rows, validation_rows, test_rows; loads with np.load(allow_pickle=False)
    RUN/model/              model.json + model.safetensors: genlab.load(RUN / "model")
    RUN/metrics.jsonl       one JSON object per epoch: loss, nll, kl, beta; validation NDCG@100, Recall@20/50
    RUN/training_curves.png
    RUN/metrics.json        test Recall@20/50 and NDCG@100 of the model and of the popularity baseline (evaluate)
    RUN/report.html         one self-contained page, rewritten by fit and by evaluate

The split (Liang et al., WWW 2018): :func:`split_users` draws N validation and N test users (N: 10% of the
users, at most 10 000). Fitting never sees the test users. The model is fitted on all other users with
``validation_users=N``, so it holds out N of them itself (drawn with its seed; their rows are recorded as
``validation_rows``) and keeps the epoch with the best validation NDCG@100; the rest are the training users,
whose item counts also make the popularity baseline.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import platform
import re
import shutil
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tomli_w
import tomllib
import torch
from scipy import sparse

from . import __version__, plots
from ._fileio import atomic_text_writer, atomic_write_bytes, atomic_write_text
from .data.interactions import load_interactions
from .data.protocol import split_users
from .errors import InvalidInputError, ModelFileError
from .estimators import MultDAE, MultVAE, Popularity
from .estimators.base import PREDICT_BATCH
from .io import load as load_model
from .models.ranking import top_n
from .report import html as pagestyle
from .runs import run_directory

MODELS: dict[str, type[MultVAE]] = {"multvae": MultVAE, "multdae": MultDAE}
SET_BY_RUN = ("validation_users", "verbose")  # decided by --heldout-users and --quiet, not given as parameters
MAX_HELDOUT = 10_000
METRIC_LABELS = {"recall_at_20": "Recall@20", "recall_at_50": "Recall@50", "ndcg_at_100": "NDCG@100"}
CURVES = "training_curves.png"
SPLIT_NOTE = ("test users are never seen in fitting; the model is fitted on the other users and holds out "
              "validation_users of them itself (its seed) to keep the epoch with the best NDCG@100; "
              "the rest are the training users (also the popularity baseline's)")


class RunData(NamedTuple):
    """A recommendation run's interactions: the matrix, the original ids, and the user split (row indices)."""

    matrix: sparse.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    train_rows: np.ndarray
    validation_rows: np.ndarray
    test_rows: np.ndarray


def default_heldout_users(n_users: int) -> int:
    """Validation users and as many test users: 10% of the users each, at most 10 000 (at least 1 from 10 users on)."""
    return min(n_users // 10, MAX_HELDOUT)


# --- fit ------------------------------------------------------------------------------------------


def fit_run(ratings: str | Path, out: str | Path, *, model: str = "multvae", params: dict | None = None, threshold: float = 3.5,
            implicit: bool = False, min_interactions: int = 5, sep: str | None = None, heldout_users: int | None = None,
            overwrite: bool = False, verbose: int = 1) -> tuple[MultVAE, RunData]:
    """Read a ``user,item[,rating][,timestamp]`` table, split its users, fit the model and write run directory ``out``.

    Parameters
    ----------
    ratings : str or path-like
        The table; ``threshold``, ``implicit``, ``min_interactions`` and ``sep`` are passed to
        :func:`genlab.data.interactions.load_interactions`.
    out : str or path-like
        The run directory to create. An existing one is replaced only with ``overwrite``, and only on success;
        on any failure nothing is left behind.
    model : {"multvae", "multdae"}
    params : dict, optional
        Constructor parameters of the model, except ``validation_users`` and ``verbose``. ``random_state`` also
        seeds the user split (None draws a seed, which is recorded).
    heldout_users : int, optional
        Validation users and as many test users (None: :func:`default_heldout_users`; 0: no model selection and
        nothing to evaluate on).
    verbose : int
        0 silent, 1 progress.

    Returns
    -------
    (estimator, RunData)
    """
    if model not in MODELS:
        raise InvalidInputError(f"model must be one of {', '.join(MODELS)}; got {model!r}.")
    params = dict(params or {})
    fixed = sorted(set(params) & set(SET_BY_RUN))
    if fixed:
        raise InvalidInputError(f"{', '.join(fixed)} is set by the run (--heldout-users, --quiet), not as a model parameter.")
    if params.get("random_state") is None:
        params["random_state"] = int(np.random.SeedSequence().generate_state(1)[0] % 2**31)
    seed = params["random_state"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"a run's random_state must be a non-negative integer (it is recorded); got {seed!r}.")
    est = MODELS[model](**params, verbose=verbose)
    est._validated_params()
    with run_directory(out, overwrite=overwrite, resumable=False) as run_dir:
        data = load_interactions(ratings, threshold=threshold, implicit=implicit, min_interactions=min_interactions, sep=sep)
        n_heldout = default_heldout_users(data.n_users) if heldout_users is None else heldout_users
        split = split_users(data.n_users, n_heldout, random_state=int(seed))
        fitted_rows = np.union1d(split.train, split.validation)
        est.set_params(validation_users=n_heldout)
        doc = {"model": model, "ratings": str(ratings), "threshold": float(threshold), "implicit": bool(implicit),
               "min_interactions": int(min_interactions), **({"sep": sep} if sep is not None else {}),
               "heldout_users": int(n_heldout), "seed": int(seed),
               "params": {k: list(v) if isinstance(v, tuple) else v for k, v in est.get_params().items()
                          if v is not None and k not in ("random_state", "verbose")},
               "split": {"users": data.n_users, "items": data.n_items, "interactions": int(data.matrix.nnz),
                         "train_users": len(split.train), "validation_users": len(split.validation),
                         "test_users": len(split.test), "how": SPLIT_NOTE},
               "data_info": {"sha256": file_sha256(ratings), "source": data.source},
               "versions": {"genlab": __version__, "torch": torch.__version__, "numpy": np.__version__,
                            "python": platform.python_version()}}
        atomic_write_text(run_dir / "config.toml", f"# genlab {__version__} recommendation run (genlab recommend fit)\n"
                          + tomli_w.dumps(doc))
        est.fit(data.matrix[fitted_rows], run_dir=run_dir)
        validation_rows = fitted_rows[est.validation_rows_]
        run = RunData(data.matrix, data.user_ids, data.item_ids, np.setdiff1d(fitted_rows, validation_rows), validation_rows,
                      split.test)
        write_interactions(run_dir / "interactions.npz", run)
        est.save(run_dir / "model")
        # the loop's resumable checkpoints: no command resumes a recommendation run, and model/ holds the kept weights
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        plots.save_ranking_curves(run_dir / CURVES, est.history_, title=f"{type(est).__name__}: training",
                                  best_epoch=est.best_epoch_ if n_heldout else None)
        write_report(run_dir, name=Path(out).name)
    return est, run


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            h.update(chunk)
    return h.hexdigest()


def _plain_ids(ids: np.ndarray) -> np.ndarray:
    """int64 for integer ids, fixed-width unicode otherwise: never an object array, which needs pickle to load."""
    ids = np.asarray(ids)
    return ids.astype(np.int64) if ids.dtype.kind in "iub" else ids.astype(str)


def write_interactions(path: Path, run: RunData) -> None:
    m = run.matrix
    buf = io.BytesIO()
    np.savez(buf, data=m.data, indices=m.indices, indptr=m.indptr, shape=np.asarray(m.shape, dtype=np.int64),
             user_ids=_plain_ids(run.user_ids), item_ids=_plain_ids(run.item_ids), train_rows=run.train_rows,
             validation_rows=run.validation_rows, test_rows=run.test_rows)
    atomic_write_bytes(path, buf.getvalue())


def read_run(run_dir: str | Path) -> RunData:
    """The interactions and user split of a run written by :func:`fit_run`."""
    path = Path(run_dir) / "interactions.npz"
    if not path.is_file():
        raise InvalidInputError(f"{run_dir} is not a recommendation run directory (no interactions.npz); "
                                "create one with `genlab recommend fit`.")
    try:
        with np.load(path, allow_pickle=False) as f:
            a = {k: f[k] for k in ("data", "indices", "indptr", "shape", "user_ids", "item_ids",
                                   "train_rows", "validation_rows", "test_rows")}
        matrix = sparse.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=tuple(int(s) for s in a["shape"]))
        run = RunData(matrix, a["user_ids"], a["item_ids"], a["train_rows"], a["validation_rows"], a["test_rows"])
        if matrix.shape != (len(run.user_ids), len(run.item_ids)):
            raise ValueError(f"matrix {matrix.shape} but {len(run.user_ids)} user and {len(run.item_ids)} item ids")
        for rows in run[3:]:
            if rows.dtype.kind not in "iu" or (len(rows) and not 0 <= rows.min() <= rows.max() < matrix.shape[0]):
                raise ValueError("user rows out of range")
    except (KeyError, ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path} is not a readable interactions file ({type(exc).__name__}: {exc}).") from None
    return run


def _open_model(run_dir: str | Path, run: RunData) -> MultVAE:
    est = load_model(Path(run_dir) / "model")
    if est.n_features_in_ != run.matrix.shape[1]:
        raise ModelFileError(f"{run_dir}: the model ranks {est.n_features_in_} items but interactions.npz has "
                             f"{run.matrix.shape[1]}; the run directory was mixed up.")
    return est


# --- evaluate -------------------------------------------------------------------------------------


def evaluate_run(run_dir: str | Path, *, fraction: float = 0.2, random_state: int = 0) -> dict:
    """Liang et al.'s protocol on the run's test users, for the model and the popularity baseline.

    Each test user's items are split at random (``random_state``) into a ``1 - fraction`` part the model
    is given and a ``fraction`` part it must rank; both recommenders see the same split. Writes
    ``metrics.json`` (``{"model": {...}, "popularity": {...}, "n_test_users": n, ...}``) and the report.
    """
    run = read_run(run_dir)
    if not len(run.test_rows):
        raise InvalidInputError(f"{run_dir} has no test users (it was fitted with --heldout-users 0); "
                                "fit again with held-out users to evaluate.")
    est = _open_model(run_dir, run)
    test = run.matrix[run.test_rows]
    result = {"model": est.ranking_metrics(test, fraction=fraction, random_state=random_state),
              "popularity": Popularity().fit(run.matrix[run.train_rows]).ranking_metrics(test, fraction=fraction,
                                                                                         random_state=random_state),
              "n_test_users": len(run.test_rows), "model_class": type(est).__name__, "fraction": fraction, "seed": random_state}
    for scores in (result["model"], result["popularity"]):  # NaN (no user had held-out items) is not JSON
        scores.update({k: v if math.isfinite(v) else None for k, v in scores.items()})
    atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(result, indent=1) + "\n")
    write_report(run_dir)
    return result


# --- predict --------------------------------------------------------------------------------------


def find_user(user_ids: np.ndarray, user_id) -> int:
    """The row of ``user_id``, given as text (a command line's) or an id; integer ids compare as integers."""
    text = str(user_id).strip()
    rows = []
    if user_ids.dtype.kind in "iu":
        if re.fullmatch(r"[+-]?\d+", text) and abs(int(text)) < 2**63:
            rows = np.flatnonzero(user_ids == int(text))
    else:
        rows = np.flatnonzero(user_ids == text)
    if not len(rows):
        example = user_ids[0].item() if len(user_ids) else None
        raise InvalidInputError(f"unknown user id {text!r}: not one of the run's {len(user_ids)} users (ids look like "
                                f"{example!r}; users with fewer than min_interactions items were dropped).")
    return int(rows[0])


def _top_items(est: MultVAE, x: sparse.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Item columns (rows × n, best first, −1 where a user has fewer than n unseen items) and their scores."""
    scores = est.item_scores(x)
    top = top_n(scores, n, x)
    return top, np.take_along_axis(scores, np.maximum(top, 0), axis=1)


def predict_user(run_dir: str | Path, user_id, n: int = 10) -> list[tuple[int, object, float]]:
    """``(rank, item id, score)`` of the user's ``n`` best items they do not have yet, best first.

    ``user_id`` is an original id (text is matched as an integer when the ids are integers). The score is
    the decoder's logit (higher is better; a softmax over all items gives the multinomial probabilities).
    Fewer than ``n`` rows come back when the user has fewer unseen items.
    """
    run = read_run(run_dir)
    row = find_user(run.user_ids, user_id)
    est = _open_model(run_dir, run)
    top, scores = _top_items(est, run.matrix[row:row + 1], n)
    return [(rank, run.item_ids[j].item(), float(s)) for rank, (j, s) in enumerate(zip(top[0], scores[0]), 1) if j >= 0]


def predict_all(run_dir: str | Path, out: str | Path, *, n: int = 10, overwrite: bool = False) -> int:
    """Write ``user,rank,item,score`` (original ids) for every user of the run to CSV ``out``; returns the rows written.

    Scored a batch of users at a time (memory: batch × items), streamed to a temporary file that replaces
    ``out`` only when complete.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise InvalidInputError(f"{out} already exists; choose another --out or pass --overwrite.")
    if not out.parent.is_dir():
        raise InvalidInputError(f"the folder {out.parent} does not exist; create it first.")
    run = read_run(run_dir)
    est = _open_model(run_dir, run)
    n_rows = 0
    with atomic_text_writer(out, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["user", "rank", "item", "score"])
        for start in range(0, run.matrix.shape[0], PREDICT_BATCH):
            top, scores = _top_items(est, run.matrix[start:start + PREDICT_BATCH], n)
            users = np.repeat(run.user_ids[start:start + len(top)], top.shape[1])
            ranks = np.tile(np.arange(1, top.shape[1] + 1), len(top))
            keep = top.ravel() >= 0  # −1 pads a user with fewer unseen items: not an item
            items = run.item_ids[top.ravel()[keep]]
            writer.writerows(zip(users[keep].tolist(), ranks[keep].tolist(), items.tolist(),
                                 (f"{s:.6g}" for s in scores.ravel()[keep].tolist())))
            n_rows += int(keep.sum())
    return n_rows


# --- report ---------------------------------------------------------------------------------------


def write_report(run_dir: str | Path, *, name: str | None = None) -> Path:
    """(Re)write ``run_dir/report.html``: configuration, test metrics against the popularity baseline (once
    evaluated) and training curves. Self-contained (see :mod:`genlab.report.html`, whose look it shares)."""
    run_dir = Path(run_dir)
    name = name or run_dir.name
    config = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    history = _read_history(run_dir / "metrics.jsonl")
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
    split = config.get("split", {})
    model_name = {"multvae": "Mult-VAE", "multdae": "Mult-DAE"}.get(config.get("model"), str(config.get("model")))
    e = html.escape
    parts = [f"<p class=lead>{e(str(config.get('ratings', '')))}: {split.get('users', '?')} users × {split.get('items', '?')} items, "
             f"{split.get('interactions', '?')} interactions. Users: {split.get('train_users', '?')} train, "
             f"{split.get('validation_users', '?')} validation, {split.get('test_users', '?')} test.</p>",
             "<h2>Test metrics</h2>"]
    if metrics is None:
        parts.append(f"<p class=note>Not evaluated yet: run <code>genlab recommend evaluate {e(name)}</code> to rank the "
                     "test users' held-out items with this model and the popularity baseline.</p>")
    else:
        parts.append(_metrics_table(metrics, model_name))
    parts.append("<h2>Training</h2>")
    ranked = [r for r in history if "val_ndcg_at_100" in r]
    if ranked:
        best = max(ranked, key=lambda r: r["val_ndcg_at_100"])  # the first maximum, as the training loop keeps it
        parts.append(f"<p>{len(history)} epochs; the model kept is epoch {best['epoch']}, with validation NDCG@100 "
                     f"{best['val_ndcg_at_100']:.4f}.</p>")
    elif history:
        parts.append(f"<p>{len(history)} epochs, no validation users: the last epoch is kept.</p>")
    curves = run_dir / CURVES
    if curves.is_file():
        parts.append(pagestyle.figure(curves.read_bytes(), "training curves: loss, nll, kl, beta and validation ranking metrics per epoch"))
    if history:
        parts.append("<p class=note>Validation loss terms are computed from the validation users' fold-in items (80%), so "
                     "they sit below the training ones; the epoch is chosen by the ranking metrics.</p>")
        parts.append(_epoch_table(history))
    parts.append("<h2>Configuration</h2>")
    parts.append(pagestyle.config_table(config))
    path = run_dir / "report.html"
    atomic_write_text(path, pagestyle.page(f"{model_name} recommender: {name}", "\n".join(parts), kind="recommendation run"))
    return path


def _read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _number(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _metrics_table(metrics: dict, model_name: str) -> str:
    fraction = metrics.get("fraction", 0.2)
    rows = []
    for key, label in METRIC_LABELS.items():
        ours, base = metrics["model"].get(key), metrics["popularity"].get(key)
        win = ours is not None and base is not None and ours > base
        rows.append(f"<tr><td>{label}</td><td class='n{' better' if win else ''}'>{_number(ours)}</td>"
                    f"<td class=n>{_number(base)}</td></tr>")
    return (f"<div class=wide><table><thead><tr><th>metric</th><th class=n>{html.escape(model_name)}</th>"
            f"<th class=n>popularity</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            f"<p class=note>Higher is better. {metrics['n_test_users']} test users: each one's items are split at random "
            f"(seed {metrics.get('seed', 0)}); the recommender is given {100 * (1 - fraction):g}% and ranks all the items it "
            f"was not given to find the other {100 * fraction:g}%, as in Liang et al. (WWW 2018). Popularity recommends the "
            "items most training users have, to everyone.</p>")


def _epoch_table(history: list[dict]) -> str:
    columns = [(k, label) for k, label in (("loss", "loss"), ("nll", "nll"), ("kl", "kl"), ("beta", "β"),
                                            ("val_ndcg_at_100", "val NDCG@100"), ("val_recall_at_20", "val Recall@20"),
                                            ("val_recall_at_50", "val Recall@50")) if k in history[0]]
    head = "".join(f"<th class=n>{html.escape(label)}</th>" for _, label in columns)
    body = "".join("<tr><td class=n>" + str(r.get("epoch", "")) + "</td>"
                   + "".join(f"<td class=n>{r[k]:.4g}</td>" for k, _ in columns) + "</tr>" for r in history)
    return (f"<details><summary>per epoch</summary><div class=wide><table><thead><tr><th class=n>epoch</th>{head}</tr>"
            f"</thead><tbody>{body}</tbody></table></div></details>")

