"""Sample-quality metrics as pure functions of arrays (spec §7).

Features are ``(n, d)`` arrays (e.g. :meth:`FeatureExtractor.features`), class probabilities
``(n, C)`` arrays whose rows sum to 1. Linear algebra is SciPy's, neighbour searches scikit-learn's.

>>> from genlab.evaluate import frechet_distance, precision_recall
>>> frechet_distance(real, real)                    # doctest: +SKIP
0.0
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg
from sklearn.neighbors import NearestNeighbors

from .._params import check_number
from ..errors import InvalidInputError

EPS = 1e-12


def _features(f, name: str, *, min_rows: int = 2) -> np.ndarray:
    arr = np.asarray(f, dtype=np.float64)
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D array of features (n, d); got shape {arr.shape}.")
    if len(arr) < min_rows:
        raise InvalidInputError(f"{name} has {len(arr)} rows; this metric needs at least {min_rows}.")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} contains NaN or infinity.")
    return arr


def _pair(f1, f2, *, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    a, b = _features(f1, "f1", min_rows=min_rows), _features(f2, "f2", min_rows=min_rows)
    if a.shape[1] != b.shape[1]:
        raise InvalidInputError(f"the two feature sets have {a.shape[1]} and {b.shape[1]} columns; they must match.")
    return a, b


# -- distances between distributions ----------------------------------------------------------------


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a covariance matrix (negative round-off eigenvalues set to 0)."""
    eigvals, eigvecs = linalg.eigh(cov)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def frechet_distance(f1, f2) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID; Heusel et al. 2017).

    ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½). Lower is better; 0 for identical sets.

    Parameters
    ----------
    f1, f2 : array (n1, d), (n2, d), n1, n2 >= 2

    Returns
    -------
    float (≥ 0)
    """
    a, b = _pair(f1, f2)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    cov1, cov2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # tr (Σ₁^½ Σ₂ Σ₁^½)^½ is the sum of the singular values of Σ₁^½ Σ₂^½ (its Gram matrix is Σ₁^½ Σ₂ Σ₁^½).
    # Singular values carry an absolute error of ~ε‖Σ‖, where the eigenvalues of Σ₁^½ Σ₂ Σ₁^½ would pass
    # their round-off through a square root (1e-7 each at rank-deficient covariances): FID(A, A) is ~1e-12, not 1e-4.
    trace_sqrt = linalg.svdvals(_psd_sqrt(cov1) @ _psd_sqrt(cov2)).sum()
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def _polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # k(x, y) = (xᵀy / d + 1)³, Bińkowski et al. (2018), section 4
    k = a @ b.T
    k /= a.shape[1]
    k += 1.0
    return k * k * k  # ** 3 takes the slow general pow path


def _block_sums(k: np.ndarray, row_starts: np.ndarray, col_starts: np.ndarray) -> np.ndarray:
    """Sums of ``k`` over (row block, column block) pairs of contiguous blocks: (B, B)."""
    return np.add.reduceat(np.add.reduceat(k, row_starts, axis=0), col_starts, axis=1)


def _mmd2_jackknife(x: np.ndarray, y: np.ndarray, n_blocks: int = 20) -> tuple[float, float]:
    """Unbiased MMD² between ``x`` and ``y`` (rows in random order) and the delete-a-block jackknife
    variance of that estimate, with contiguous blocks of rows."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    np.fill_diagonal(kxx, 0.0)
    np.fill_diagonal(kyy, 0.0)
    # U-statistic: within-set sums over i ≠ j, cross-set sum over all pairs (Gretton et al. 2012, eq. 3)
    mmd2 = kxx.sum() / (m * (m - 1)) + kyy.sum() / (n * (n - 1)) - 2.0 * kxy.sum() / (m * n)
    n_blocks = min(n_blocks, m // 2, n // 2)
    if n_blocks < 2:
        return float(mmd2), float("nan")
    x_starts, y_starts = np.linspace(0, m, n_blocks + 1).astype(int)[:-1], np.linspace(0, n, n_blocks + 1).astype(int)[:-1]
    sxx, syy, sxy = _block_sums(kxx, x_starts, x_starts), _block_sums(kyy, y_starts, y_starts), _block_sums(kxy, x_starts, y_starts)

    def without(s: np.ndarray) -> np.ndarray:  # total minus the rows and columns of block b
        return s.sum() - s.sum(axis=1) - s.sum(axis=0) + np.diag(s)

    mb, nb = m - np.diff(x_starts, append=m), n - np.diff(y_starts, append=n)
    leave_out = without(sxx) / (mb * (mb - 1)) + without(syy) / (nb * (nb - 1)) - 2.0 * without(sxy) / (mb * nb)
    # the jackknife variance is conservative (Efron & Stein 1981), also where MMD² is a degenerate U-statistic
    variance = (n_blocks - 1) / n_blocks * np.sum((leave_out - leave_out.mean()) ** 2)
    return float(mmd2), float(variance)


def kernel_distance(f1, f2, *, n_subsets: int = 100, subset_size: int = 1000, random_state=0) -> tuple[float, float]:
    """Kernel Inception Distance (KID; Bińkowski et al. 2018): unbiased MMD² with the cubic kernel
    k(x, y) = (xᵀy/d + 1)³, and its standard error.

    When both sets have at most ``subset_size`` rows, the estimate uses all of them. Larger sets
    are compared on ``n_subsets`` random subsets of ``subset_size`` rows of each (the published
    protocol, which bounds the cost) and the estimates averaged.

    The standard error is a delete-a-block jackknife (20 blocks) of the estimate; with subsets, the
    subsets' jackknife variances are averaged and divided by the number of disjoint subsets the data
    holds (at least 1, at most ``n_subsets``) — overlapping subsets are not independent, so
    dividing by ``n_subsets`` would understate it.

    Returns
    -------
    (kid, std_error) : (float, float)
        KID can be slightly negative (it is unbiased); lower is better; ~0 for one distribution.
    """
    a, b = _pair(f1, f2, min_rows=4)
    n_subsets = check_number("n_subsets", n_subsets, low=1, what="a positive integer")
    subset_size = check_number("subset_size", subset_size, low=4)
    rng = np.random.default_rng(random_state)
    if len(a) <= subset_size and len(b) <= subset_size:
        kid, variance = _mmd2_jackknife(a[rng.permutation(len(a))], b[rng.permutation(len(b))])
        return kid, math.sqrt(variance)
    m, n = min(subset_size, len(a)), min(subset_size, len(b))
    results = [_mmd2_jackknife(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), n, replace=False)])
               for _ in range(n_subsets)]
    estimates, variances = np.array(results).T
    n_disjoint = max(1, min(n_subsets, len(a) // m, len(b) // n))
    return float(estimates.mean()), float(math.sqrt(variances.mean() / n_disjoint))


# -- manifolds: precision / recall, density / coverage ---------------------------------------------------


# k-NN ball membership compares a distance with a radius, and for identical sets the k-th neighbour sits
# exactly on its ball's boundary: radii and memberships must come from one exact distance computation.
# A ball tree computes sqrt(Σ (a − b)²) the same way for every query; brute force's |a|² − 2a·b + |b|²
# rounds differently with the batch shapes and would move boundary points in and out.
QUERY_CHUNK = 512


def _tree(f: np.ndarray, n_neighbors: int = 1) -> NearestNeighbors:
    return NearestNeighbors(n_neighbors=n_neighbors, algorithm="ball_tree").fit(f)


def _knn_radii(f: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row."""
    dist, _ = _tree(f, k + 1).kneighbors(f)
    return dist[:, k]  # column 0 is the row itself


def _ball_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, *, strict: bool) -> np.ndarray:
    """For each point, how many balls B(centre_i, radius_i) contain it (open balls if ``strict``): (n_points,)."""
    tree = _tree(centres)
    reach = radii.max() * (1 + 1e-9) + 1e-300  # a candidate superset; the exact test is below
    counts = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), QUERY_CHUNK):
        dists, idxs = tree.radius_neighbors(points[start:start + QUERY_CHUNK], radius=reach)
        inside = np.less if strict else np.less_equal
        counts[start:start + len(dists)] = [np.count_nonzero(inside(d, radii[i])) for d, i in zip(dists, idxs, strict=True)]
    return counts


def _check_k(k, *sets: tuple[str, np.ndarray]) -> int:
    k = check_number("k", k, low=1, what="a positive integer")
    for name, f in sets:
        if len(f) <= k:
            raise InvalidInputError(f"{name} has {len(f)} rows; k-nearest-neighbour balls with k={k} need at least {k + 1}.")
    return int(k)


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    The real manifold is the union of balls around each real sample reaching its k-th nearest real
    neighbour. Precision: share of fake samples inside it (quality). Recall: share of real samples
    inside the fake manifold built the same way (diversity). Both in [0, 1], higher is better; both 1
    for identical sets. Balls are closed (≤), as in the paper. Each set needs more than ``k`` rows.
    """
    r, f = _pair(real, fake)
    k = _check_k(k, ("real", r), ("fake", f))
    precision = float((_ball_counts(f, r, _knn_radii(r, k), strict=False) > 0).mean())
    recall = float((_ball_counts(r, f, _knn_radii(f, k), strict=False) > 0).mean())
    return precision, recall


def density_coverage(real, fake, k: int = 3) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) with the real k-nearest-neighbour balls.

    Density: mean number of real balls containing a fake sample, divided by k — about 1 when the
    fake samples follow the real distribution, above 1 when they crowd into dense regions (it is not
    bounded by 1). Coverage: share of real balls that contain at least one fake sample, in [0, 1].
    Balls are open, as in the authors' code, so a ball holds its centre and k−1 neighbours: identical
    sets give density 1 and coverage 1.
    """
    r, f = _pair(real, fake)
    k = _check_k(k, ("real", r))
    radii = _knn_radii(r, k)
    density = float(_ball_counts(f, r, radii, strict=True).sum() / (k * len(f)))
    nearest_fake, _ = _tree(f).kneighbors(r)
    coverage = float((nearest_fake[:, 0] < radii).mean())
    return density, coverage


# -- class-based scores ---------------------------------------------------------------------------------


def _proba(proba, name: str = "proba") -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise InvalidInputError(f"{name} must be class probabilities (n, C) with C >= 2; got shape {p.shape}.")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise InvalidInputError(f"{name} must hold probabilities: non-negative rows that sum to 1.")
    return p


def class_histogram(proba, *, min_share: float = 0.1) -> dict:
    """How the samples spread over the classes the reference classifier predicts.

    Parameters
    ----------
    proba : array (n, C)
    min_share : float, default 0.1
        A class counts as covered when at least ``min_share`` of its fair share (n/C) of the samples
        is predicted as it — a stray misclassified sample does not cover a class.

    Returns
    -------
    dict with ``histogram`` (C,) share of samples per predicted class, ``entropy`` of that histogram
    in nats (log C when uniform; higher is more diverse) and ``classes_covered`` (int).
    """
    p = _proba(proba)
    n, n_classes = p.shape
    counts = np.bincount(p.argmax(axis=1), minlength=n_classes)
    hist = counts / n
    nonzero = hist[hist > 0]
    entropy = abs(float(-(nonzero * np.log(nonzero)).sum()))  # abs: one class gives -0.0
    covered = int((counts >= min_share * n / n_classes).sum() if min_share > 0 else (counts > 0).sum())
    return {"histogram": hist, "entropy": entropy, "classes_covered": covered}


def inception_score(proba) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) (Salimans et al. 2016) from the reference classifier, over all rows.

    Between 1 and C; higher means confident predictions spread over many classes.
    """
    p = _proba(proba)
    marginal = p.mean(axis=0)
    kl = (p * (np.log(p + EPS) - np.log(marginal + EPS)[None, :])).sum(axis=1)
    return float(np.exp(kl.mean()))


def conditional_accuracy(proba, requested) -> float:
    """Share of samples the reference classifier assigns to the class they were generated for."""
    p = _proba(proba)
    req = np.asarray(requested)
    if req.shape != (len(p),):
        raise InvalidInputError(f"requested must hold one class per sample ({len(p)}); got shape {req.shape}.")
    return float((p.argmax(axis=1) == req).mean())


# -- memorisation and toy modes ---------------------------------------------------------------------------


def memorisation(samples, train, heldout) -> dict:
    """Are samples closer to the training data than new real data is?

    Parameters
    ----------
    samples, train, heldout : arrays (n, d) (flattened pixels or features), the same d

    Returns
    -------
    dict with ``sample_distance`` (n_samples,) distance of each sample to its nearest training example,
    ``nearest_train`` (n_samples,) that example's index in ``train``, ``heldout_distance`` (n_heldout,),
    ``order`` sample indices from the closest to its training neighbour (for a nearest-neighbour
    picture), ``sample_median``, ``heldout_median`` and ``ratio`` = sample_median / heldout_median.
    A ratio near 1 (or above) is healthy; well below 1 means samples sit on training examples (copies).
    NaN when the held-out median is 0 (held-out rows duplicate training rows).
    """
    s, t = _pair(samples, train, min_rows=1)
    h, _ = _pair(heldout, train, min_rows=1)
    nn_train = NearestNeighbors(n_neighbors=1).fit(t)
    sample_distance, nearest = nn_train.kneighbors(s)
    heldout_distance, _ = nn_train.kneighbors(h)
    sample_median, heldout_median = float(np.median(sample_distance)), float(np.median(heldout_distance))
    return {"sample_distance": sample_distance[:, 0], "nearest_train": nearest[:, 0], "heldout_distance": heldout_distance[:, 0],
            "order": np.argsort(sample_distance[:, 0], kind="stable"), "sample_median": sample_median,
            "heldout_median": heldout_median, "ratio": sample_median / heldout_median if heldout_median > 0 else float("nan")}


def mode_coverage(samples, centres, std: float, n_std: float = 3.0) -> dict:
    """Spec §1.4: a sample is high quality within ``n_std`` standard deviations of some centre; a mode
    is captured when it is the nearest centre of at least one high-quality sample.

    Returns
    -------
    dict with ``modes`` (captured, int), ``n_modes``, ``high_quality`` (share of samples),
    ``counts`` (high-quality samples per mode) and ``median_distance`` (to the nearest centre).
    """
    samples, centres = np.asarray(samples, dtype=np.float64), np.asarray(centres, dtype=np.float64)
    dist = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)  # (n, m)
    nearest, closest = dist.argmin(axis=1), dist.min(axis=1)
    good = closest <= n_std * std
    counts = np.bincount(nearest[good], minlength=len(centres))  # high-quality samples per mode
    return {"modes": int((counts > 0).sum()), "n_modes": len(centres), "high_quality": float(good.mean()),
            "counts": counts, "median_distance": float(np.median(closest))}


__all__ = ["class_histogram", "conditional_accuracy", "density_coverage", "frechet_distance", "inception_score",
           "kernel_distance", "memorisation", "mode_coverage", "precision_recall"]
