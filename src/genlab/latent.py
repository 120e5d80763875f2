"""Latent-space tools (spec §4): interpolation, traversal, the 2-D manifold grid, attribute vectors
and the figures that show them.

They work with any fitted estimator that encodes with ``transform(X[, y])`` -> (n, latent_dim) and
decodes with ``inverse_transform(Z[, y])`` -> (n, *input_shape) in the user's units: the
:class:`~genlab.Autoencoder` and the :class:`~genlab.VAE` (whose ``transform`` is the posterior
mean). Labels are passed on only to conditional models (the family registry says which: ``genlab.families.is_conditional``),
which need them.

>>> import genlab, genlab.latent as latent
>>> X, y = genlab.datasets.load("digits")
>>> vae = genlab.VAE(latent_dim=2, hidden=(32,), epochs=2, random_state=0).fit(X[:200])
>>> latent.interpolate(vae, X[0], X[1], n_steps=5, method="spherical").shape
(5, 1, 8, 8)
>>> latent.manifold_grid(vae, n=4).shape
(4, 4, 1, 8, 8)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import norm

from . import families, plots
from ._params import check_number
from .errors import InvalidInputError

__all__ = ["apply_attribute", "attribute_vector", "interpolate", "interpolate_codes", "lerp", "manifold_grid", "slerp", "traverse",
           "write_latent_figures"]

MAX_SCATTER = 2000
MAX_TRAVERSAL_DIMS = 10
TRAVERSAL_SIGMAS = np.linspace(-3.0, 3.0, 9)


# -- pure interpolation maths -------------------------------------------------------------------
def _check_endpoints(z0, z1) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """Two finite codes of the same shape (k,) as float64, and the dtype to return."""
    a, b = np.asarray(z0), np.asarray(z1)
    for name, v in (("z0", a), ("z1", b)):
        if v.ndim != 1 or v.size == 0 or not np.issubdtype(v.dtype, np.number):
            raise InvalidInputError(f"{name} must be one non-empty numeric code of shape (latent_dim,); got shape {v.shape}.")
    if a.shape != b.shape:
        raise InvalidInputError(f"z0 and z1 must have the same shape; got {a.shape} and {b.shape}.")
    out_dtype = np.result_type(a.dtype, b.dtype, np.float32)
    a, b = a.astype(np.float64), b.astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InvalidInputError("z0 and z1 must be finite.")
    return a, b, out_dtype


def _check_steps(n_steps) -> int:
    return check_number("n_steps", n_steps, low=2, what="an integer >= 2 (the two end points included)")


def lerp(z0, z1, n_steps: int = 8) -> np.ndarray:
    """Linear interpolation (1 − t)·z0 + t·z1 for ``n_steps`` values of t evenly spaced in [0, 1].

    Parameters
    ----------
    z0, z1 : array of shape (k,)
        End points (t = 0 and t = 1); they are returned exactly as the first and last rows.
    n_steps : int, >= 2

    Returns
    -------
    ndarray of shape (n_steps, k), float32 for float32 inputs, else float64.
    """
    a, b, dtype = _check_endpoints(z0, z1)
    t = np.linspace(0.0, 1.0, _check_steps(n_steps))[:, None]  # (n_steps, 1)
    out = (1.0 - t) * a + t * b
    out[0], out[-1] = a, b
    return out.astype(dtype)


def slerp(z0, z1, n_steps: int = 8) -> np.ndarray:
    """Spherical interpolation: the direction moves along the great circle from z0 to z1 at constant
    angular speed (Shoemake, 1985), while the length goes linearly from ‖z0‖ to ‖z1‖.

    z(t) = ((1 − t)‖z0‖ + t‖z1‖) · [sin((1 − t)Ω) û0 + sin(tΩ) û1] / sin Ω, with ûᵢ = zᵢ/‖zᵢ‖ and Ω
    the angle between them. Falls back to :func:`lerp` when the great circle is not defined: a zero
    vector, or (anti)parallel vectors (sin Ω < 1e-6).

    Parameters
    ----------
    z0, z1 : array of shape (k,)
        End points, returned exactly as the first and last rows.
    n_steps : int, >= 2

    Returns
    -------
    ndarray of shape (n_steps, k), float32 for float32 inputs, else float64.
    """
    a, b, dtype = _check_endpoints(z0, z1)
    n_steps = _check_steps(n_steps)
    r0, r1 = np.linalg.norm(a), np.linalg.norm(b)
    if r0 == 0.0 or r1 == 0.0:
        return lerp(a, b, n_steps).astype(dtype)
    u0, u1 = a / r0, b / r1
    omega = 2.0 * np.arctan2(np.linalg.norm(u0 - u1), np.linalg.norm(u0 + u1))  # accurate near 0 and π, unlike arccos
    if np.sin(omega) < 1e-6:
        return lerp(a, b, n_steps).astype(dtype)
    t = np.linspace(0.0, 1.0, n_steps)[:, None]  # (n_steps, 1)
    direction = (np.sin((1.0 - t) * omega) * u0 + np.sin(t * omega) * u1) / np.sin(omega)
    out = ((1.0 - t) * r0 + t * r1) * direction
    out[0], out[-1] = a, b
    return out.astype(dtype)


INTERPOLATIONS = {"linear": lerp, "spherical": slerp}


# -- talking to an estimator --------------------------------------------------------------------
def _is_conditional(est) -> bool:
    return families.is_conditional(est)


def _check_model(est, *, encoder: bool = True) -> int:
    """The estimator's latent_dim; clear errors for unfitted models and models without the needed parts."""
    name = type(est).__name__
    family = families.find(est)
    if encoder and not (family and family.has("encode") and family.has("decode")):
        raise InvalidInputError(f"{name} does not encode and decode: this latent-space tool needs a model that encodes "
                                "and decodes (an Autoencoder, a VAE or a VAE-GAN; a GAN has no encoder: start from codes, "
                                "e.g. interpolate_codes(gan, *gan.sample_codes(2))).")
    if not encoder and not (family and family.has("decode")):
        raise InvalidInputError(f"{name} does not decode codes: this latent-space tool needs a model that "
                                "decodes codes (an Autoencoder, a VAE or a GAN).")
    return len(est.code_moments()[0])  # an unfitted model says so here


def _one_sample(est, x, name: str) -> np.ndarray:
    """One input as a batch of one: (*input_shape) or (1, *input_shape) -> (1, *input_shape)."""
    shape = tuple(est.input_shape_)
    x = np.asarray(x)
    if x.shape == shape:
        x = x[None]
    if x.shape != (1, *shape):
        raise InvalidInputError(f"{name} must be one sample of shape {shape} (or {(1, *shape)}); got shape {x.shape}.")
    return x


def _one_label(est, y, name: str) -> int | None:
    """The class label of one sample for a conditional model (None for other models, which ignore y)."""
    if not _is_conditional(est):
        return None
    if y is None:
        raise InvalidInputError(f"this {type(est).__name__} is conditional: pass the class label {name}= "
                                "(it is used to decode, and to encode when the encoder sees the label).")
    arr = np.asarray(y).reshape(-1)
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.number) or not float(arr[0]).is_integer():
        raise InvalidInputError(f"{name} must be one integer class label; got {y!r}.")
    return int(arr[0])


def _labels(label: int | None, n: int) -> np.ndarray | None:
    return None if label is None else np.full(n, label, dtype=np.int64)


def _encode(est, X: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    return est.transform(X, y) if _is_conditional(est) else est.transform(X)


def _decode(est, Z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """Codes -> data, user units: a decoder (Autoencoder, VAE) or a generator (GAN)."""
    Z = np.asarray(Z, dtype=np.float32)
    decode = est.inverse_transform if families.has(est, "encode") else est.generate  # a decoder, or a generator
    return decode(Z, y) if _is_conditional(est) else decode(Z)


# -- the tools ------------------------------------------------------------------------------------
def interpolate(est, x0, x1, n_steps: int = 8, method: str = "linear", y0=None, y1=None) -> np.ndarray:
    """Decode the path between the codes of two inputs.

    Parameters
    ----------
    est : fitted Autoencoder or VAE
    x0, x1 : array of shape input_shape (or (1, *input_shape))
        The end points, in user units. Their codes are ``est.transform`` (the posterior mean for a VAE).
    n_steps : int, >= 2
    method : {"linear", "spherical"}
        :func:`lerp` or :func:`slerp` between the two codes.
    y0, y1 : int, optional
        Class labels, for conditional models only (``y1`` defaults to ``y0``). The decoder gets ``y0``
        for the first half of the path and ``y1`` for the second.

    Returns
    -------
    ndarray of shape (n_steps, *input_shape), user units; rows 0 and -1 are the reconstructions of x0 and x1.
    """
    _check_model(est)
    if method not in INTERPOLATIONS:
        raise InvalidInputError(f"method must be one of {sorted(INTERPOLATIONS)}, got {method!r}.")
    n_steps = _check_steps(n_steps)
    x = np.concatenate([_one_sample(est, x0, "x0"), _one_sample(est, x1, "x1")])  # (2, *input_shape)
    l0 = _one_label(est, y0, "y0")
    l1 = l0 if y1 is None else _one_label(est, y1, "y1")
    codes = _encode(est, x, None if l0 is None else np.array([l0, l1]))
    path = INTERPOLATIONS[method](codes[0], codes[1], n_steps)
    labels = None if l0 is None else np.where(np.linspace(0.0, 1.0, n_steps) < 0.5, l0, l1)
    return _decode(est, path, labels)


def interpolate_codes(est, z0, z1, n_steps: int = 8, method: str = "linear", y0=None, y1=None) -> np.ndarray:
    """Decode the path between two codes: for a GAN (``z0, z1 = gan.sample_codes(2)``: between two of its
    samples) as for an Autoencoder or a VAE.

    Parameters
    ----------
    est : fitted Autoencoder, VAE or GAN
    z0, z1 : array of shape (latent_dim,)
    n_steps : int, >= 2
    method : {"linear", "spherical"}
        :func:`lerp`, or :func:`slerp` (which keeps a Gaussian code's norm typical along the way).
    y0, y1 : int, optional
        Class labels for conditional models (``y1`` defaults to ``y0``), as in :func:`interpolate`.

    Returns
    -------
    ndarray of shape (n_steps, *input_shape), user units; rows 0 and -1 decode z0 and z1.
    """
    k = _check_model(est, encoder=False)
    if method not in INTERPOLATIONS:
        raise InvalidInputError(f"method must be one of {sorted(INTERPOLATIONS)}, got {method!r}.")
    z0, z1 = (np.asarray(z, dtype=np.float64).reshape(-1) for z in (z0, z1))
    if z0.shape != (k,) or z1.shape != (k,):
        raise InvalidInputError(f"z0 and z1 must be codes of length {k} (this model's latent_dim); got {z0.shape} and {z1.shape}.")
    l0 = _one_label(est, y0, "y0")
    l1 = l0 if y1 is None else _one_label(est, y1, "y1")
    path = INTERPOLATIONS[method](z0, z1, _check_steps(n_steps))
    labels = None if l0 is None else np.where(np.linspace(0.0, 1.0, len(path)) < 0.5, l0, l1)
    return _decode(est, path, labels)


def traverse(est, x, dim: int, values=None, y=None, *, steps: int = 9) -> np.ndarray:
    """Set one coordinate of x's code to each of ``values`` and decode.

    Parameters
    ----------
    est : fitted Autoencoder or VAE
    x : array of shape input_shape (or (1, *input_shape))
    dim : int
        The latent coordinate, 0 <= dim < latent_dim.
    values : array of shape (m,), optional
        Values of z[dim], in code units. Default: ±3 standard deviations of the code distribution in
        ``steps`` steps, i.e. ``np.linspace(-3, 3, steps)`` for a VAE (prior N(0, I)); for an Autoencoder,
        the mean ± 3 standard deviations of its fitted code distribution along ``dim``.
    y : int, optional
        The class label of x, for conditional models only.
    steps : int, default 9
        How many values the default sweep takes (ignored when ``values`` is given).

    Returns
    -------
    ndarray of shape (m, *input_shape), user units.
    """
    k = _check_model(est)
    dim = check_number("dim", dim, low=0, high=k, what=f"an integer in 0..{k - 1} (this model has latent_dim={k})")
    if values is None:
        mean, std = est.code_moments()
        values = mean[dim] + std[dim] * np.linspace(-3.0, 3.0, _check_steps(steps))
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise InvalidInputError(f"values must be a non-empty 1-D array of finite numbers; got shape {values.shape}.")
    label = _one_label(est, y, "y")
    code = _encode(est, _one_sample(est, x, "x"), _labels(label, 1))  # (1, k)
    Z = np.repeat(code, len(values), axis=0)
    Z[:, dim] = values
    return _decode(est, Z, _labels(label, len(values)))


def manifold_grid(est, n: int = 15, y=None) -> np.ndarray:
    """Decode an n × n grid of codes over the prior's quantiles: the "manifold" picture of a 2-D latent
    space (Kingma & Welling, 2014, fig. 4).

    The coordinates are z = Φ⁻¹(u) for u in linspace(0.05, 0.95, n), Φ the standard normal CDF, so
    equal steps hold equal prior mass. For an Autoencoder (no prior) they are mean + std · Φ⁻¹(u) of
    its fitted code distribution, per axis.

    Parameters
    ----------
    est : fitted model with latent_dim == 2
    n : int, >= 2
    y : int, optional
        The class to decode, for conditional models only.

    Returns
    -------
    ndarray of shape (n, n, *input_shape), user units. ``grid[i, j]`` decodes
    z = (q[j], q[n − 1 − i]) with q the increasing quantiles: z₀ grows to the right and z₁ upwards, as in a plot.
    """
    k = _check_model(est, encoder=False)
    if k != 2:
        raise InvalidInputError(f"the manifold grid needs a 2-D latent space; this {type(est).__name__} has latent_dim={k}. "
                                "Use traverse() for one coordinate at a time.")
    n = check_number("n", n, low=2)
    mean, std = est.code_moments()
    q = norm.ppf(np.linspace(0.05, 0.95, n))  # (n,), increasing
    z0, z1 = np.meshgrid(mean[0] + std[0] * q, mean[1] + std[1] * q[::-1])  # each (n, n): [i, j] -> (q[j], q[n-1-i])
    Z = np.stack([z0.ravel(), z1.ravel()], axis=1)  # (n*n, 2), row-major over (i, j)
    out = _decode(est, Z, _labels(_one_label(est, y, "y"), n * n))
    return out.reshape(n, n, *out.shape[1:])


def attribute_vector(est, X=None, has_attribute=None, y=None, *, codes=None) -> np.ndarray:
    """Mean code of the examples with an attribute minus the mean code of those without.

    Parameters
    ----------
    est : fitted Autoencoder, VAE, or (with ``codes``) GAN
    X : array of shape (n, *input_shape)
        The examples, encoded by ``est``; or give their ``codes`` instead.
    has_attribute : bool array of shape (n,)
        Which examples have the attribute (0/1 integers are accepted); both groups must be non-empty.
    y : array of shape (n,), optional
        Class labels, for conditional models whose encoder sees the label.
    codes : array of shape (n, latent_dim), optional
        The examples' codes, for a model without an encoder: a GAN's ``sample_codes(n)``, flagged by
        what its samples show (e.g. a classifier's verdict on ``generate(codes)``).

    Returns
    -------
    ndarray of shape (latent_dim,), float64.
    """
    if (X is None) == (codes is None):
        raise InvalidInputError("give the examples X (to encode) or their codes=, not both and not neither.")
    k = _check_model(est, encoder=codes is None)
    Z = None if codes is None else _check_codes(codes, k, "codes")
    n = len(X) if Z is None else len(Z)
    mask = np.asarray(has_attribute)
    if mask.shape != (n,):
        raise InvalidInputError(f"has_attribute must have shape ({n},), one flag per example; got {mask.shape}.")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.number) or not np.isin(mask, (0, 1)).all():
            raise InvalidInputError("has_attribute must be booleans (or 0/1): True for the examples with the attribute.")
        mask = mask.astype(bool)
    n_with = int(mask.sum())
    if n_with == 0 or n_with == n:
        raise InvalidInputError(f"both groups need at least one example: {n_with} have the attribute, {n - n_with} do not.")
    Z = _encode(est, X, y).astype(np.float64) if Z is None else Z
    return Z[mask].mean(axis=0) - Z[~mask].mean(axis=0)


def _check_codes(codes, k: int, name: str) -> np.ndarray:
    Z = np.asarray(codes, dtype=np.float64)
    Z = Z[None] if Z.ndim == 1 else Z
    if Z.ndim != 2 or Z.shape[1] != k or len(Z) == 0 or not np.isfinite(Z).all():
        raise InvalidInputError(f"{name} must be finite codes of shape (n, {k}) (this model's latent_dim); got shape "
                                f"{np.shape(codes)}.")
    return Z


def apply_attribute(est, x=None, vector=None, scales=(0.0, 0.5, 1.0, 1.5, 2.0), y=None, *, code=None) -> np.ndarray:
    """Add ``scale · vector`` to x's code for each scale and decode.

    Parameters
    ----------
    est : fitted Autoencoder, VAE, or (with ``code``) GAN
    x : array of shape input_shape (or (1, *input_shape))
        The example, encoded by ``est``; or give its ``code`` instead.
    vector : array of shape (latent_dim,)
        Typically from :func:`attribute_vector`.
    scales : sequence of m floats
    y : int, optional
        The class label of x, for conditional models only.
    code : array of shape (latent_dim,), optional
        The code to move, for a model without an encoder (a GAN's ``sample_codes(1)[0]``).

    Returns
    -------
    ndarray of shape (m, *input_shape), user units; scale 0 is x's reconstruction (or ``code`` decoded).
    """
    if (x is None) == (code is None):
        raise InvalidInputError("give the example x (to encode) or its code=, not both and not neither.")
    k = _check_model(est, encoder=code is None)
    if vector is None:
        raise InvalidInputError("give the attribute vector (e.g. from attribute_vector).")
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape != (k,) or not np.isfinite(vector).all():
        raise InvalidInputError(f"vector must be {k} finite numbers (one per latent dimension); got shape {vector.shape}.")
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim != 1 or scales.size == 0 or not np.isfinite(scales).all():
        raise InvalidInputError(f"scales must be a non-empty 1-D sequence of finite numbers; got shape {scales.shape}.")
    label = _one_label(est, y, "y")
    if code is None:
        code = _encode(est, _one_sample(est, x, "x"), _labels(label, 1)).astype(np.float64)  # (1, k)
    else:
        code = _check_codes(code, k, "code")[:1] if np.ndim(code) == 1 else _check_codes(code, k, "code")
        if len(code) != 1:
            raise InvalidInputError(f"code must be one code of length {k}; got shape {np.shape(code)}.")
    return _decode(est, code + scales[:, None] * vector, _labels(label, len(scales)))


# -- figures for a run directory ------------------------------------------------------------------
def write_generator_interpolation(est, X, run_dir, *, n_pairs: int = 4, n_steps: int = 10) -> Path:
    """``interpolation.png`` for a model with a generator and no encoder (a GAN): paths between the codes of
    ``n_pairs`` pairs of its own samples (fixed seed), linear and spherical; a conditional GAN keeps one
    class per row (0, 1, ...). ``X`` (user units) sets the display range."""
    k = _check_model(est, encoder=False)
    conditional = _is_conditional(est)
    z = est.sample_codes(2 * n_pairs, random_state=0).reshape(n_pairs, 2, k)
    to_model = est.scaling_.display
    rows, row_labels = [], []
    for p in range(n_pairs):
        labels = dict(y0=p % est.n_classes_) if conditional else {}
        for method in ("linear", "spherical"):
            rows.append(to_model(interpolate_codes(est, z[p, 0], z[p, 1], n_steps, method, **labels)))
            row_labels.append(f"{p + 1} {method}")
    shown = to_model(np.asarray(X[:256]))
    background = shown if shown.ndim == 2 and shown.shape[1] == 2 else None
    return plots.save_interpolation(Path(run_dir) / "interpolation.png", rows, row_labels=row_labels,
                                    value_range=plots.display_range(shown), background=background,
                                    title=f"{type(est).__name__}: interpolation between the codes of two samples"
                                          + (f" (pair p: class p - 1, of 0..{est.n_classes_ - 1})" if conditional else ""))


def _pairs(y: np.ndarray | None, n: int, n_pairs: int, same_class: bool, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Index pairs to interpolate between: different classes (or the same class for conditional models)."""
    classes = [] if y is None else [c for c in np.unique(y) if (y == c).sum() >= (2 if same_class else 1)]
    if not classes or (not same_class and len(classes) < 2):
        order = rng.permutation(n)
        return [(int(order[2 * p % n]), int(order[(2 * p + 1) % n])) for p in range(n_pairs)]
    pairs = []
    for p in range(n_pairs):
        if same_class:
            i, j = rng.choice(np.flatnonzero(y == classes[p % len(classes)]), size=2, replace=False)
        else:
            a, b = classes[(2 * p) % len(classes)], classes[(2 * p + 1) % len(classes)]
            a, b = (a, b) if a != b else (a, classes[(2 * p + 2) % len(classes)])
            i, j = rng.choice(np.flatnonzero(y == a)), rng.choice(np.flatnonzero(y == b))
        pairs.append((int(i), int(j)))
    return pairs


def write_latent_figures(est, X, y, run_dir, *, n_pairs: int = 4, n_steps: int = 10) -> list[Path]:
    """Write the latent-space figures of a fitted model into ``run_dir``; returns the paths written.

    * ``latent_scatter.png``: codes of up to 2000 samples of X, coloured by ``y`` when given
      (2-D codes as they are, more dimensions by their first two principal components);
    * ``interpolation.png``: ``n_pairs`` pairs of examples (from different classes; from the same
      class for conditional models), a linear and a spherical row each;
    * ``traversal.png``: each latent coordinate (the 10 with the largest code variance if there are
      more) swept over ±3 standard deviations of the code distribution, from the code of one typical example;
    * ``manifold.png``: the decoded grid over the prior's quantiles, when latent_dim == 2.

    Parameters
    ----------
    est : fitted Autoencoder or VAE
    X : array of shape (n, *input_shape), user units
    y : array of shape (n,) or None
        Labels; required for conditional models.
    run_dir : path of an existing folder
    """
    k = _check_model(est)
    run_dir = Path(run_dir)
    name = type(est).__name__
    X = X if getattr(X, "genlab_streamed", False) else np.asarray(X)  # rows read on demand: only the picked ones are read
    conditional = _is_conditional(est)
    if conditional and y is None:
        raise InvalidInputError(f"this {name} is conditional: its latent figures need the labels y of X.")
    y = None if y is None else np.asarray(y)
    rng = np.random.default_rng(0)  # which examples are shown; fixed so that figures of two runs compare
    pick = np.linspace(0, len(X) - 1, min(MAX_SCATTER, len(X))).astype(int)  # spread out: files are often sorted by class
    X, y = X[pick], None if y is None else y[pick]
    to_model = est.scaling_.display  # figures show model units (before any centring), as runs.write_figures does
    shown = to_model(X)
    value_range = plots.display_range(shown)
    background = shown if shown.ndim == 2 and shown.shape[1] == 2 else None  # 2-D data: draw paths over the data
    Z = _encode(est, X, y if conditional else None)  # (n, k)
    written = [plots.save_latent_scatter(run_dir / "latent_scatter.png", Z, y,
                                         title=f"{name}: codes of {len(X)} samples" + (" by label" if y is not None else ""))]

    rows, row_labels = [], []
    for p, (i, j) in enumerate(_pairs(y, len(X), n_pairs, conditional, rng)):
        labels = dict(y0=y[i], y1=y[j]) if conditional else {}
        for method in ("linear", "spherical"):
            rows.append(to_model(interpolate(est, X[i], X[j], n_steps, method, **labels)))
            row_labels.append(f"{p + 1} {method}")
    written.append(plots.save_interpolation(run_dir / "interpolation.png", rows, row_labels=row_labels, value_range=value_range,
                                            background=background, title=f"{name}: interpolation between codes"))

    mean, std = est.code_moments()
    centre = int(np.argmin((((Z - mean) / std) ** 2).sum(axis=1)))  # the example whose code is most typical
    dims = np.sort(np.argsort(-Z.var(axis=0), kind="stable")[:MAX_TRAVERSAL_DIMS])
    label = dict(y=y[centre]) if conditional else {}
    grid = np.stack([to_model(traverse(est, X[centre], int(d), **label)) for d in dims])  # (n_dims, 9, *input_shape)
    written.append(plots.save_traversal(
        run_dir / "traversal.png", grid, row_labels=[f"z{d}" for d in dims], value_range=value_range, background=background,
        column_labels=[f"{s:+g}σ" if s else "0" for s in TRAVERSAL_SIGMAS],
        title=f"{name}: traversal of each latent coordinate" + (f" (class {y[centre]})" if conditional else "")))

    if k == 2:
        cls = dict(y=y[centre]) if conditional else {}
        written.append(plots.save_manifold(
            run_dir / "manifold.png", to_model(manifold_grid(est, 15, **cls)), value_range=value_range, background=background,
            title=f"{name}: decoded prior quantiles" + (f" (class {y[centre]})" if conditional else "")))
    return written
