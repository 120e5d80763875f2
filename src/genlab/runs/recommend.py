"""Recommendation runs (spec §6): the work behind ``genlab recommend fit | evaluate | predict``.

    RUN/config.toml         ratings file and its SHA-256, how it was read, the model, every parameter, the split
    RUN/interactions.npz    the users × items CSR matrix (data, indices, indptr, shape), user_ids, item_ids and the
                            split's train_rows, validation_rows, test_rows; loads with np.load(allow_pickle=False)
    RUN/model/              model.json + model.safetensors: genlab.load(RUN / "model")
    RUN/metrics.jsonl       Mult-VAE/DAE: one JSON object per epoch (loss, nll, kl, beta; validation NDCG@100,
                            Recall@20/50); EASE: one per λ tried (l2, validation ndcg_at_100, recall_at_20/50, seconds)
    RUN/training_curves.png Mult-VAE/DAE only (EASE has no epochs; its page tabulates the λ path instead)
    RUN/metrics.json        test Recall@20/50 and NDCG@100 of the model, the popularity baseline and the EASE baseline
                            (evaluate)
    RUN/report.html         one self-contained page (genlab.report.recommend), written by the fit and evaluate commands

The split (Liang et al., WWW 2018): :func:`split_users` draws N validation and N test users (N: 10% of the
users, at most 10 000). Fitting never sees the test users. The model is fitted on all other users with
``validation_users=N``, so it holds out N of them itself (drawn with its seed; their rows are recorded as
``validation_rows``) to choose the model by validation NDCG@100 — Mult-VAE its epoch, EASE its λ — and never
trains on them; the rest are the training users.

The baselines of :func:`evaluate_run` learn from the same training users: popularity from their item counts,
EASE (when the model is not EASE itself) as ``EASE(validation_users=N, random_state=seed)`` on the model's users,
which holds out exactly the run's validation users (one shared helper draws them) to choose λ. EASE fits an
items × items matrix: past ``max_items`` (25 000 by default; ``ease_max_items``) its column is left empty with
the reason, and the evaluation goes on. metrics.json files written before EASE was a baseline (no ``"ease"``
entry) still load and render.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import platform
import re
import shutil
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tomli_w
import tomllib
import torch
from scipy import sparse

from .. import __version__, families, plots
from .._fileio import atomic_text_writer, atomic_write_bytes, atomic_write_text
from .._params import check_number
from .._runlock import run_lock
from ..data.interactions import load_interactions
from ..data.protocol import split_users
from ..errors import InvalidInputError, ModelFileError
from ..estimators import EASE, MultVAE, Popularity
from ..estimators.base import PREDICT_BATCH
from ..estimators.ease import DEFAULT_MAX_ITEMS, size_problem
from ..io import load as load_model
from ..models.ranking import RANKING_LABELS, SELECTION_METRIC, top_n
from ..training import distributed, resolve_device
from .directory import INTERACTIONS, require_kind, run_directory

CURVES = "training_curves.png"  # Mult-VAE/DAE's validation ranking curves
SET_BY_RUN = ("validation_users", "verbose")  # decided by --heldout-users and --quiet, not given as parameters
MAX_HELDOUT = 10_000
SPLIT_NOTE = ("test users are never seen in fitting; the model is fitted on the other users and holds out "
              "validation_users of them itself (its seed) to choose by NDCG@100 (Mult-VAE its epoch, EASE its λ); "
              "the rest are the training users (also the baselines')")


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
            overwrite: bool = False, verbose: int = 1) -> tuple[MultVAE | EASE, RunData]:
    """Read a ``user,item[,rating][,timestamp]`` table, split its users, fit the model and write run directory ``out``.

    Parameters
    ----------
    ratings : str or path-like
        The table; ``threshold``, ``implicit``, ``min_interactions`` and ``sep`` are passed to
        :func:`genlab.data.interactions.load_interactions`.
    out : str or path-like
        The run directory to create. An existing one is replaced only with ``overwrite``, and only on success;
        on any failure nothing is left behind.
    model : {"multvae", "multdae", "ease"}
    params : dict, optional
        Constructor parameters of the model, except ``validation_users`` and ``verbose``. ``random_state`` also
        seeds the user split (None draws a seed, which is recorded). EASE's: ``l2`` (None: chosen on the
        validation users), ``max_items``.
    heldout_users : int, optional
        Validation users and as many test users (None: :func:`default_heldout_users`; 0: no model selection and
        nothing to evaluate on).
    verbose : int
        0 silent, 1 progress.

    Returns
    -------
    (estimator, RunData)
    """
    family = families.get(model, run="recommend")
    params = dict(params or {})
    fixed = sorted(set(params) & set(SET_BY_RUN))
    if fixed:
        raise InvalidInputError(f"{', '.join(fixed)} is set by the run (--heldout-users, --quiet), not as a model parameter.")
    if family.closed_form and distributed.env_world_size() > 1:
        raise InvalidInputError(f"{family.short} is one closed-form solve with no training loop to share out: fit it in one "
                                "process (leave out --nproc / torchrun).")
    group = distributed.SINGLE if family.closed_form else distributed.setup(resolve_device(params.get("device", "auto")))
    if params.get("random_state") is None:  # drawn once, by rank 0, for every process
        params["random_state"] = group.from_main(lambda: int(np.random.SeedSequence().generate_state(1)[0] % 2**31))
    seed = params["random_state"]
    check_number("random_state", seed, low=0, what="a non-negative integer (it is recorded with the run)")
    known = family.estimator().get_params()
    foreign = sorted(set(params) - set(known))
    if foreign:
        raise InvalidInputError(f"{', '.join(foreign)} is not a parameter of model {model!r} (its parameters: "
                                f"{', '.join(k for k in sorted(known) if k not in SET_BY_RUN)}).")
    est = family.estimator(**params, verbose=verbose)
    if heldout_users == 0:  # set before the check: a model that chooses something on validation users needs some
        est.set_params(validation_users=0)
    est._validated_params()
    with contextlib.ExitStack() as stack:  # under torchrun rank 0 creates and writes the run; the others train beside it
        run_dir = Path(group.from_main(lambda: str(stack.enter_context(run_directory(out, overwrite=overwrite, resumable=False)))))
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
        if group.main:
            atomic_write_text(run_dir / "config.toml", f"# genlab {__version__} recommendation run (genlab recommend fit)\n"
                              + tomli_w.dumps(doc))
        if family.closed_form:  # no epochs: metrics.jsonl holds its validation_scores_, one record per choice tried (EASE: λ)
            est.fit(data.matrix[fitted_rows])
            atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in est.validation_scores_))
        else:
            est.fit(data.matrix[fitted_rows], run_dir=run_dir)
        validation_rows = fitted_rows[est.validation_rows_]
        run = RunData(data.matrix, data.user_ids, data.item_ids, np.setdiff1d(fitted_rows, validation_rows), validation_rows,
                      split.test)
        if not group.main:
            return est, run
        write_interactions(run_dir / INTERACTIONS, run)
        est.save(run_dir / "model")
        if not family.closed_form:
            # the loop's resumable checkpoints: no command resumes a recommendation run, and model/ holds the kept weights
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            plots.save_ranking_curves(run_dir / CURVES, est.history_, title=f"{type(est).__name__}: training",
                                      best_epoch=est.best_epoch_ if n_heldout else None)
    return est, run


def fit_summary(est) -> str:
    """How a fitted recommender was chosen on its validation users, in a few words: the λ of a closed-form fit (EASE)
    or the epoch the loop kept."""
    key = SELECTION_METRIC
    if families.of(est).closed_form:
        best = max(est.validation_scores_, key=lambda r: r[key]) if est.validation_scores_ else None
        if best is None:
            return f"l2 {est.l2_:g}"
        chosen = "chosen" if len(est.validation_scores_) > 1 else "given"
        return f"l2 {est.l2_:g} ({chosen}), validation {RANKING_LABELS[key]} {best[key]:.4f}"
    best = est.history_[est.best_epoch_ - 1] if est.history_ and est.best_epoch_ else {}
    return (f"kept epoch {est.best_epoch_}, validation {RANKING_LABELS[key]} {best[f'val_{key}']:.4f}" if f"val_{key}" in best
            else f"{len(est.history_)} epochs")


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
    path = require_kind(run_dir, "recommend", "create one with `genlab recommend fit`") / INTERACTIONS
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


def _open_model(run_dir: str | Path, run: RunData) -> MultVAE | EASE:
    est = load_model(Path(run_dir) / "model")
    if est.n_features_in_ != run.matrix.shape[1]:
        raise ModelFileError(f"{run_dir}: the model ranks {est.n_features_in_} items but interactions.npz has "
                             f"{run.matrix.shape[1]}; the run directory was mixed up.")
    return est


# --- evaluate -------------------------------------------------------------------------------------


def evaluate_run(run_dir: str | Path, *, fraction: float = 0.2, random_state: int = 0, ease_max_items: int = DEFAULT_MAX_ITEMS,
                 ease_l2: float | None = None) -> dict:
    """Liang et al.'s protocol on the run's test users, for the model and the popularity and EASE baselines.

    Each test user's items are split at random (``random_state``) into a ``1 - fraction`` part the recommender
    is given and a ``fraction`` part it must rank; every recommender sees the same split. EASE is fitted on the
    training users with λ chosen on the run's validation users (``ease_l2``: a given λ instead), unless the model
    is EASE; past ``ease_max_items`` items it is skipped and ``ease_fit["skipped"]`` says why. Writes
    ``metrics.json``: ``{"model": {...}, "popularity": {...}, "ease": {...} or null, "ease_fit": {...},
    "n_test_users": n, "model_class": ..., "fraction": ..., "seed": ...}`` (the page is the caller's: report.write_report).
    """
    with run_lock(run_dir, "genlab recommend evaluate"):  # it writes metrics.json and the page: one writer per run
        return _evaluate_run(run_dir, fraction, random_state, ease_max_items, ease_l2)


def _evaluate_run(run_dir, fraction: float, random_state: int, ease_max_items: int, ease_l2: float | None) -> dict:
    run = read_run(run_dir)
    if not len(run.test_rows):
        raise InvalidInputError(f"{run_dir} has no test users (it was fitted with --heldout-users 0); "
                                "fit again with held-out users to evaluate.")
    est = _open_model(run_dir, run)
    test = run.matrix[run.test_rows]

    def rank(recommender) -> dict[str, float | None]:  # NaN (no user had held-out items) is not JSON
        scores = recommender.ranking_metrics(test, fraction=fraction, random_state=random_state)
        return {k: v if math.isfinite(v) else None for k, v in scores.items()}

    result = {"model": rank(est), "popularity": rank(Popularity().fit(run.matrix[run.train_rows]))}
    if not isinstance(est, EASE):  # the model is the EASE baseline itself: no second fit
        ease, result["ease_fit"] = _ease_baseline(run_dir, run, max_items=ease_max_items, l2=ease_l2)
        result["ease"] = None if ease is None else rank(ease)
    result.update({"n_test_users": len(run.test_rows), "model_class": type(est).__name__, "fraction": fraction,
                   "seed": random_state})
    atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(result, indent=1) + "\n")
    return result


def _ease_baseline(run_dir: str | Path, run: RunData, *, max_items: int, l2: float | None) -> tuple[EASE | None, dict]:
    """EASE fitted on the run's training users, λ chosen on its validation users; or None and why not."""
    problem = size_problem(run.matrix.shape[1], max_items)
    if problem:
        return None, {"skipped": f"{problem}; to include it: genlab recommend evaluate {run_dir} --ease-max-items "
                                 f"{run.matrix.shape[1]}"}
    seed = tomllib.loads((Path(run_dir) / "config.toml").read_text(encoding="utf-8"))["seed"]
    fitted_rows = np.union1d(run.train_rows, run.validation_rows)  # the users the model was fitted on, in their order
    ease = EASE(l2, validation_users=len(run.validation_rows), max_items=max_items, random_state=int(seed))
    start = time.perf_counter()
    ease.fit(run.matrix[fitted_rows])
    seconds = time.perf_counter() - start
    if not np.array_equal(fitted_rows[ease.validation_rows_], run.validation_rows):
        raise ModelFileError(f"{run_dir}: the validation users in interactions.npz are not those the seed in config.toml "
                             "draws; the run directory was edited or mixed up.")
    return ease, {"l2": ease.l2_, "l2_chosen": l2 is None, "validation_users": len(run.validation_rows),
                  "fit_seconds": round(seconds, 3), "validation": ease.validation_scores_}


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


def _top_items(est: MultVAE | EASE, x: sparse.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Item columns (rows × n, best first, −1 where a user has fewer than n unseen items) and their scores."""
    scores = est.item_scores(x)
    top = top_n(scores, n, x)
    return top, np.take_along_axis(scores, np.maximum(top, 0), axis=1)


def predict_user(run_dir: str | Path, user_id, n: int = 10) -> list[tuple[int, object, float]]:
    """``(rank, item id, score)`` of the user's ``n`` best items they do not have yet, best first.

    ``user_id`` is an original id (text is matched as an integer when the ids are integers). The score is
    Mult-VAE's decoder logit (a softmax over all items gives the multinomial probabilities) or EASE's ``x · B``;
    higher is better.
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
