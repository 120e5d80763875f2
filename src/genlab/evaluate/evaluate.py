"""One call that measures a fitted generative model on held-out data (spec §7), and its run-directory
version that writes ``metrics.json`` with reference values from real data.

>>> from genlab.evaluate import evaluate
>>> evaluate(vae, X_test, y_test, X_train=X_train, y_train=y_train)      # doctest: +SKIP
{'reconstruction_mse': 0.018, 'elbo': -27.1, 'nll': 25.9, 'frechet_distance': 3.2, 'kid': 0.011, ...}
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import tomllib

from .. import datasets, families, runs
from .._fileio import atomic_write_text
from .._params import check_number
from .._runlock import run_lock
from .._validation import check_array, check_labels
from ..data.sources import toy_modes
from ..data.split import train_validation_split
from ..errors import InvalidInputError
from ..models.ranking import RANKING_LABELS
from ..runs.metrics import FORMAT, FORMAT_VERSION, METRICS_FILE
from .features import FeatureExtractor, reference_features
from .metrics import (
    class_histogram,
    conditional_accuracy,
    density_coverage,
    frechet_distance,
    inception_score,
    kernel_distance,
    memorisation,
    mode_coverage,
    precision_recall,
)

MIN_ROWS = 10  # held-out rows and samples: k-NN balls (k=3), covariances and the KID jackknife need a handful
K_NEIGHBOURS = 3
TOYS = ("ring8", "grid25")
GAN_HELDOUT_FRACTION = 0.2  # held out for evaluation when a run had no validation split

DESCRIPTIONS = {
    "reconstruction_mse": "mean squared error per value between held-out data and its reconstruction, in the model's units; "
                          "lower is better",
    "reconstruction_bce": "binary cross-entropy of the reconstruction per held-out sample (nats, data in [0, 1]); lower is better",
    "elbo": "evidence lower bound on log p(x) per held-out sample (nats); higher is better",
    "nll": "negative log-likelihood per held-out sample, importance-weighted estimate (IWAE; nats); lower is better",
    "bits_per_dim": "nll in bits per data dimension (nll / (D·ln 2)); lower is better",
    "frechet_distance": "Fréchet distance (FID) between samples and held-out data in the reference features; lower is better",
    "kid": "kernel distance (KID: unbiased MMD², cubic kernel) between samples and held-out data; lower is better, ~0 ideal",
    "kid_std": "standard error of kid (jackknife); kid within ~2 of these of 0 is indistinguishable from 0",
    "precision": "share of samples inside the held-out data's k-NN manifold (k=3): quality; higher is better",
    "recall": "share of held-out data inside the samples' k-NN manifold (k=3): diversity; higher is better",
    "density": "held-out k-NN balls a sample falls in, divided by k: ~1 matches the data, >1 crowds dense regions, <1 strays",
    "coverage": "share of held-out k-NN balls that contain a sample: diversity; higher is better",
    "class_entropy": "entropy of the samples' predicted-class histogram (nats; log C when balanced); higher is more diverse",
    "classes_covered": "classes the reference classifier finds among the samples (≥ 10% of a fair share); higher is better",
    "inception_score": "exp E KL(p(y|x) ‖ p(y)) from the reference classifier: confident and varied; higher is better",
    "conditional_accuracy": "share of samples the reference classifier puts in the class they were asked for; higher is better",
    "memorisation_ratio": "median distance of samples to their nearest training example / the same for held-out data: "
                          "~1 healthy, well below 1 means copies",
    "mode_coverage": "share of the toy's modes captured by a high-quality sample; higher is better",
    "modes_captured": "number of the toy's modes that are the nearest centre of a high-quality sample; higher is better",
    "high_quality": "share of samples within 3 standard deviations of a mode centre; higher is better",
    # the recommenders' (genlab recommend evaluate): each test user ranks its held-out items from the rest
    "recall_at_20": "share of a user's held-out items in its top 20, out of min(20, held-out); higher is better",
    "recall_at_50": "share of a user's held-out items in its top 50, out of min(50, held-out); higher is better",
    "ndcg_at_100": "discounted cumulative gain of the held-out items in the top 100, over the ideal ranking's; higher is better",
}

# How the pages name each metric (with its unit), grouped as the comparison page shows them. kid_std is shown
# with kid, as "KID ± std. error".
METRIC_GROUPS = {
    "Fit to held-out data": {"reconstruction_mse": "reconstruction MSE", "reconstruction_bce": "reconstruction BCE (nats)",
                             "elbo": "ELBO (nats per sample)", "nll": "NLL (nats per sample)", "bits_per_dim": "bits per dimension"},
    "Samples against held-out data": {"frechet_distance": "FID", "kid": "KID ± std. error", "precision": "precision",
                                      "recall": "recall", "density": "density", "coverage": "coverage"},
    "Classes and copies": {"classes_covered": "classes covered", "class_entropy": "class entropy (nats)",
                           "inception_score": "Inception score", "conditional_accuracy": "conditional accuracy",
                           "memorisation_ratio": "memorisation ratio"},
    "Toy modes": {"mode_coverage": "mode coverage", "modes_captured": "modes captured", "high_quality": "high-quality share"},
}
#: every metric's label, the recommenders' ranking metrics included: the one table the pages and the CLI read
METRIC_LABELS = ({key: label for group in METRIC_GROUPS.values() for key, label in group.items()} | {"kid_std": "KID std. error"}
                 | RANKING_LABELS)


def _check_model(model) -> None:
    family = families.find(model)
    if family is None or family.run != "train" or not family.has("sample"):
        raise InvalidInputError(f"evaluate() needs a fitted Autoencoder, VAE or GAN; got {type(model).__name__} "
                                "(recommenders are evaluated by `genlab recommend evaluate`).")
    model._check_fitted()


def _count(value, name: str) -> int:
    return check_number(name, value, low=MIN_ROWS, what=f"an integer, at least {MIN_ROWS}")


def _seed(random_state) -> int:
    return check_number("random_state", random_state, low=0, what="a non-negative int (evaluations are reproducible)")


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float64)  # (n, *shape) -> (n, d)


def detect_toy(X) -> str | None:
    """``"ring8"`` or ``"grid25"`` when 2-D ``X`` looks like that toy (≥ 90% of it within 3 std of its centres, all modes hit)."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        return None
    for name in TOYS:
        modes = toy_modes(name)
        found = mode_coverage(X, modes.centres, modes.std)
        if found["high_quality"] >= 0.9 and found["modes"] == found["n_modes"]:
            return name
    return None


def _likelihood_metrics(model, X: np.ndarray, labels: dict, n_importance: int | None, seed: int) -> dict[str, float]:
    """Reconstruction error (autoencoders, VAEs) and ELBO / IWAE log-likelihood (VAEs) on held-out X."""
    out: dict[str, float] = {}
    if families.has(model, "reconstruct"):
        x = _flat(model.scaling_.forward(X))
        recon = _flat(model.scaling_.forward(model.reconstruct(X, **labels)))
        out["reconstruction_mse"] = float(np.mean((x - recon) ** 2))
        if x.min() >= 0.0 and x.max() <= 1.0:
            p = np.clip(recon, 1e-6, 1.0 - 1e-6)
            out["reconstruction_bce"] = float(-(x * np.log(p) + (1.0 - x) * np.log1p(-p)).sum(axis=1).mean())
    if families.has(model, "likelihood"):
        out["elbo"] = float(model.elbo(X, **labels, random_state=seed).mean())
        nll = -float(model.score_samples(X, **labels, n_importance=n_importance, random_state=seed).mean())
        out["nll"] = nll
        out["bits_per_dim"] = nll / (model.n_features_in_ * math.log(2.0))
    return out


def sample_metrics(samples, X, features: FeatureExtractor, *, requested=None, X_train=None, toy: str | None = None,
                   random_state: int = 0) -> dict[str, float]:
    """Metrics of ``samples`` against held-out real ``X`` (both in the data's units): toy mode coverage,
    FID, KID, precision/recall, density/coverage in ``features``; class metrics when ``features`` is a
    classifier (conditional accuracy when ``requested`` classes are given); memorisation (in the
    data's own space) when ``X_train`` is given."""
    S = np.asarray(samples)
    if not np.isfinite(S).all():
        raise InvalidInputError("the model's samples contain NaN or infinity: the model has diverged; retrain it.")
    out: dict[str, float] = {}
    if toy is not None:
        modes = toy_modes(toy)
        found = mode_coverage(_flat(S), modes.centres, modes.std)
        out.update(mode_coverage=found["modes"] / found["n_modes"], modes_captured=float(found["modes"]),
                   high_quality=found["high_quality"])
    f_real, f_fake = features.features(X), features.features(S)
    out["frechet_distance"] = frechet_distance(f_real, f_fake)
    out["kid"], out["kid_std"] = kernel_distance(f_fake, f_real, random_state=random_state)
    out["precision"], out["recall"] = precision_recall(f_real, f_fake, k=K_NEIGHBOURS)
    out["density"], out["coverage"] = density_coverage(f_real, f_fake, k=K_NEIGHBOURS)
    if features.kind == "classifier":
        proba = features.predict_proba(S)
        hist = class_histogram(proba)
        out.update(class_entropy=hist["entropy"], classes_covered=float(hist["classes_covered"]),
                   inception_score=inception_score(proba))
        if requested is not None:
            out["conditional_accuracy"] = conditional_accuracy(proba, requested)
    if X_train is not None:
        out["memorisation_ratio"] = memorisation(_flat(S), _flat(np.asarray(X_train)), _flat(X))["ratio"]
    return out


def evaluate(model, X, y=None, *, X_train=None, y_train=None, n_samples: int = 1000, random_state: int = 0,
             toy: str | None = None, n_importance: int | None = None, features: FeatureExtractor | None = None) -> dict[str, float]:
    """Measure a fitted Autoencoder, VAE or GAN on held-out real data.

    Parameters
    ----------
    model : fitted Autoencoder, VAE or GAN
    X : array (n, *input_shape)
        Held-out real data in the user's units (the model never trained on it), n >= 10.
    y : array (n,), optional
        Its labels; needed by conditional models (reconstruction and likelihoods take them).
    X_train, y_train : arrays, optional
        The model's training data. The reference features are trained on them (on X, y when not
        given); ``memorisation_ratio`` needs ``X_train``.
    n_samples : int, default 1000
        Samples drawn from the model (conditional models: classes 0..C-1 in turn).
    random_state : int, default 0
        Seed of the samples, the likelihood estimates and KID. The reference network has its own
        fixed seed, so every model of one data set shares one cached network.
    toy : {"ring8", "grid25"}, optional
        Adds mode coverage for 2-D toy data; None detects it from X.
    n_importance : int, optional
        Importance samples K of the VAE's ``nll`` (None: the model's ``n_importance``).
    features : FeatureExtractor, optional
        Reuse an extractor (e.g. :func:`reference_features`) instead of building one.

    Returns
    -------
    dict of metric name -> float, only the metrics that apply; see ``DESCRIPTIONS`` for each one's
    meaning and direction. Keys: ``reconstruction_mse``, ``reconstruction_bce`` (AE/VAE); ``elbo``,
    ``nll``, ``bits_per_dim`` (VAE); ``frechet_distance``, ``kid``, ``kid_std``, ``precision``,
    ``recall``, ``density``, ``coverage``; ``class_entropy``, ``classes_covered``,
    ``inception_score`` (labelled data); ``conditional_accuracy`` (conditional models);
    ``memorisation_ratio`` (with X_train); ``mode_coverage``, ``modes_captured``, ``high_quality`` (toys).
    """
    _check_model(model)
    seed, n_samples = _seed(random_state), _count(n_samples, "n_samples")
    X = check_array(X, expected_shape=model.input_shape_)
    if len(X) < MIN_ROWS:
        raise InvalidInputError(f"X has {len(X)} held-out samples; evaluate() needs at least {MIN_ROWS}.")
    y = None if y is None else check_labels(y, len(X))
    conditional = families.is_conditional(model)
    if conditional and y is None:
        raise InvalidInputError(f"this {type(model).__name__} is conditional: pass the labels of X as y.")
    X_train = None if X_train is None else check_array(X_train, name="X_train", expected_shape=model.input_shape_)
    if y_train is not None and X_train is None:
        raise InvalidInputError("y_train was given without X_train.")
    y_train = None if y_train is None else check_labels(y_train, len(X_train), name="y_train")
    toy = _check_toy(toy, X)

    metrics = _likelihood_metrics(model, X, {"y": y} if conditional else {}, n_importance, seed)
    requested = np.arange(n_samples) % model.n_classes_ if conditional else None
    samples = model.sample(n_samples, random_state=seed, **({"y": requested} if conditional else {}))
    if features is None:
        features = reference_features(X, y) if X_train is None else reference_features(X_train, y_train)
    metrics.update(sample_metrics(samples, X, features, requested=requested, X_train=X_train, toy=toy, random_state=seed))
    return metrics


def _check_toy(toy, X: np.ndarray) -> str | None:
    if toy is None:
        return detect_toy(X)
    if toy not in TOYS:
        raise InvalidInputError(f"toy must be one of {', '.join(TOYS)} (or None to detect it); got {toy!r}.")
    if X.shape[1:] != (2,):
        raise InvalidInputError(f"toy={toy!r} needs 2-D points (n, 2); X has samples of shape {X.shape[1:]}.")
    return toy


def reference_metrics(X, y=None, *, X_train, n_samples: int = 1000, random_state: int = 0, toy: str | None = None,
                      features: FeatureExtractor) -> dict[str, float]:
    """What real data scores: up to ``n_samples`` training rows stand in for a perfect model's samples and
    are measured against held-out ``X`` exactly as :func:`evaluate` measures samples. With labels,
    ``conditional_accuracy`` is the reference classifier's accuracy on (X, y); ``memorisation_ratio``
    is 1 by construction (held-out data compared with itself)."""
    seed = _seed(random_state)
    X = check_array(X)
    X_train = check_array(X_train, name="X_train", expected_shape=X.shape[1:])
    pick = np.sort(np.random.default_rng(seed).permutation(len(X_train))[:_count(n_samples, "n_samples")])
    out = sample_metrics(X_train[pick], X, features, toy=_check_toy(toy, X), random_state=seed)
    if y is not None and features.kind == "classifier":
        out["conditional_accuracy"] = conditional_accuracy(features.predict_proba(X), check_labels(y, len(X)))
    out["memorisation_ratio"] = 1.0
    return out


def _load_run_data(run_dir: Path, run, data):
    """(X, y, name) of the run's own data (checked against its fingerprint) or of ``data``."""
    if data is None:
        X, y = run.load_data()
        stored = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8")).get("data_info", {}).get("sha256")
        if stored is not None and stored != runs.data_fingerprint(X, y):
            raise InvalidInputError(f"the data at {run.data!r} changed since {run_dir} was trained, so its held-out split "
                                    "cannot be rebuilt; restore the data, or pass data= (--data) to evaluate on another source.")
        return X, y, run.data
    if isinstance(data, tuple):
        X, y = data
        return check_array(X), None if y is None else check_labels(y, len(X)), "arrays"
    X, y = datasets.load(str(data), label_column=run.label_column)
    return X, y, str(data)


def _jsonable(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(v) else None) for k, v in metrics.items()}  # JSON has no NaN


def evaluate_run(run_dir, *, data=None, n_samples: int = 1000, random_state: int = 0) -> dict:
    """Evaluate a genlab run directory and write ``run_dir/metrics.json`` (atomically).

    The run's data is reloaded from its ``config.toml`` (or ``data``: a source name/path, or an
    ``(X, y)`` tuple) and split as the run split it: its validation split when it had one (the model
    never trained on it); otherwise a seeded 20% is held out — the model did train on those rows,
    which ``heldout`` in the file says. Metrics come from :func:`evaluate`, reference values for
    real held-out data from :func:`reference_metrics` (likelihood metrics have no reference).

    Returns
    -------
    dict, as written: ``{"format": "genlab-metrics", "version": 1, "model", "data", "n_heldout",
    "heldout", "feature_extractor": {"kind", "test_accuracy", "note"}, "metrics", "reference",
    "descriptions"}``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise InvalidInputError(f"{run_dir} is not a genlab run directory (no config.toml).")
    with run_lock(run_dir, "genlab evaluate"):  # one writer per run: not while it trains or another evaluation runs
        return _evaluate_run(run_dir, data, n_samples, random_state)


def _evaluate_run(run_dir: Path, data, n_samples: int, random_state: int) -> dict:
    model = runs.open_run(run_dir)
    run = runs.split_settings(runs.read_config(run_dir / "config.toml"), source=str(run_dir / "config.toml"))
    X, y, data_name = _load_run_data(run_dir, run, data)
    X = check_array(X, expected_shape=model.input_shape_)
    if model.validation_fraction > 0:
        train_idx, held_idx = train_validation_split(len(X), model.validation_fraction, model.seed_)
        heldout = "the run's validation split (never trained on)"
    else:
        train_idx, held_idx = train_validation_split(len(X), GAN_HELDOUT_FRACTION, model.seed_)
        heldout = (f"a seeded {GAN_HELDOUT_FRACTION:.0%} of the data: the run had no validation split, so the model "
                   "also trained on these rows")
    X_train, X_held = X[train_idx], X[held_idx]
    y_train, y_held = (None, None) if y is None else (y[train_idx], y[held_idx])
    toy = data_name if data_name in TOYS else None
    features = reference_features(X_train, y_train)
    metrics = evaluate(model, X_held, y_held, X_train=X_train, y_train=y_train, n_samples=n_samples,
                       random_state=random_state, toy=toy, features=features)
    reference = reference_metrics(X_held, y_held if families.is_conditional(model) else None, X_train=X_train,
                                  n_samples=n_samples, random_state=random_state, toy=toy, features=features)
    reference = {k: v for k, v in reference.items() if k in metrics}
    doc = {
        "format": FORMAT, "version": FORMAT_VERSION, "model": type(model).__name__, "data": data_name,
        "n_heldout": len(held_idx), "heldout": heldout,
        "feature_extractor": {"kind": features.kind, "test_accuracy": features.test_accuracy, "note": features.note},
        "metrics": _jsonable(metrics), "reference": _jsonable(reference),
        "descriptions": {k: DESCRIPTIONS[k] for k in metrics},
    }
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return doc


__all__ = ["DESCRIPTIONS", "METRIC_GROUPS", "METRIC_LABELS",
           "detect_toy", "evaluate", "evaluate_run", "reference_metrics", "sample_metrics"]
