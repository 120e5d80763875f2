"""Top-N ranking: Recall@k and NDCG@k per user as in Liang et al. (WWW 2018), and top-N item lists.
Pure NumPy maths shared by Mult-VAE's validation (``models/multvae.py``) and the front door
(``genlab.evaluate`` re-exports it; the recommenders rank with it).

``scores`` is a dense ``(n_users, n_items)`` array for a batch of users (higher is better);
``heldout`` and ``exclude`` are scipy.sparse matrices of the same shape. Ties in the scores are
broken by the lower item index, so every result is deterministic.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .._params import check_number
from ..errors import InvalidInputError


def recall_at_k(scores, heldout, k: int) -> np.ndarray:
    """Recall@k of each user: ``|top-k ∩ heldout| / min(k, |heldout|)``.

    The ``min(k, |heldout|)`` denominator (Liang et al., 2018, not the plain ``|heldout|``) makes 1 reachable
    for every user.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n, n_items)
        Item scores for each user. The caller sets the items the user was given (the fold-in items)
        to ``-inf``, so that they are never counted among the top k.
    heldout : scipy.sparse matrix, shape (n, n_items)
        The held-out items to find; any stored positive value is a relevant item.
    k : int
        Length of the ranked list.

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        In [0, 1]; NaN for users with no held-out item (average with ``np.nanmean``).
    """
    scores, heldout, k = _check(scores, heldout, k)
    hits, n_relevant = _hits(scores, heldout, k)
    recall = np.full(len(scores), np.nan)
    has = n_relevant > 0
    recall[has] = hits[has].sum(axis=1) / np.minimum(k, n_relevant[has])
    return recall


def ndcg_at_k(scores, heldout, k: int) -> np.ndarray:
    """NDCG@k of each user, with binary relevance: DCG@k / IDCG@k.

    ``DCG@k = Σ_{i=1..k} rel_i / log2(i + 1)`` over the ranks ``i`` of the top k, and
    ``IDCG@k = Σ_{i=1..min(k, |heldout|)} 1 / log2(i + 1)``, the DCG of a perfect list (Liang et al., 2018).
    Parameters as in :func:`recall_at_k` (fold-in items set to ``-inf`` by the caller).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        In [0, 1]; NaN for users with no held-out item (average with ``np.nanmean``).
    """
    scores, heldout, k = _check(scores, heldout, k)
    hits, n_relevant = _hits(scores, heldout, k)
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))  # rank i = 1, 2, ... -> 1 / log2(i + 1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])  # ideal[m]: DCG of m hits at the top
    ndcg = np.full(len(scores), np.nan)
    has = n_relevant > 0
    ndcg[has] = (hits[has] * discount).sum(axis=1) / ideal[np.minimum(hits.shape[1], n_relevant[has])]
    return ndcg


def top_n(scores, n: int, exclude=None) -> np.ndarray:
    """The ``n`` best items of each row, best first, never one of the row's ``exclude`` items.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_rows, n_items)
        Item scores (higher is better); not modified. Ties go to the lower item index.
    n : int
        Items per row, ``1 <= n <= n_items``.
    exclude : scipy.sparse matrix, shape (n_rows, n_items), optional
        Items not to recommend, typically those the user already has (any stored non-zero entry).

    Returns
    -------
    numpy.ndarray of int64, shape (n_rows, n)
        Column indices. A row with fewer than ``n`` items left after exclusion ends in ``-1``s, which are
        not items: check for them before looking up ids.
    """
    scores = _check_scores(scores)
    n = _check_k(n, "n")
    if n > scores.shape[1]:
        raise InvalidInputError(f"n={n} is more than the {scores.shape[1]} items there are to rank.")
    if exclude is None:
        return _top_k(scores, n)
    exclude = _check_sparse(exclude, scores.shape, "exclude")
    scores = scores.astype(np.float64) if scores.dtype.kind != "f" else scores.copy()
    # excluded items must rank below everything, even items the caller scored -inf
    scores[scores == -np.inf] = np.finfo(scores.dtype).min
    rows, columns = exclude.nonzero()
    scores[rows, columns] = -np.inf
    top = _top_k(scores, n)
    top[_member(exclude, top)] = -1
    return top


# --- helpers ----------------------------------------------------------------------------------------


def _check_k(k, name: str = "k") -> int:
    return check_number(name, k, low=1, what="a positive integer")


def _check_scores(scores) -> np.ndarray:
    if sparse.issparse(scores):
        raise InvalidInputError("scores must be a dense array (n_users, n_items), not a sparse matrix; score a batch of users at a time.")
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.dtype.kind not in "biuf":
        raise InvalidInputError(f"scores must be a 2-D numeric array (n_users, n_items), got {scores.dtype} of shape {scores.shape}.")
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        raise InvalidInputError(f"scores contain NaN (first in row {int(np.argwhere(np.isnan(scores))[0, 0])}): they cannot be ranked.")
    return scores


def _check_sparse(matrix, shape: tuple[int, int], name: str) -> sparse.csr_matrix:
    if not sparse.issparse(matrix):
        raise InvalidInputError(f"{name} must be a scipy.sparse matrix, got {type(matrix).__name__}.")
    if matrix.shape != shape:
        raise InvalidInputError(f"{name} has shape {matrix.shape} but scores have shape {shape}: one row per user, one column per item.")
    matrix = sparse.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def _check(scores, heldout, k) -> tuple[np.ndarray, sparse.csr_matrix, int]:
    scores = _check_scores(scores)
    heldout = _check_sparse(heldout, scores.shape, "heldout")
    heldout.data = (heldout.data > 0).astype(np.float32)
    heldout.eliminate_zeros()
    return scores, heldout, _check_k(k)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first, ties to the lower index: (n, n_items) -> (n, k)."""
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if k == n_items:
        chosen = np.broadcast_to(np.arange(n_items), scores.shape).copy()
    else:
        chosen = np.argpartition(scores, n_items - k, axis=1)[:, n_items - k :]  # the k largest, unordered
    values = np.take_along_axis(scores, chosen, axis=1)
    if k < n_items:
        # argpartition picks arbitrarily among scores tied with the k-th: where it left some out, choose
        # all scores above the k-th and then the lowest-indexed ties
        kth = values.min(axis=1, keepdims=True)
        tied = np.flatnonzero((scores == kth).sum(axis=1) > (values == kth).sum(axis=1))
        if tied.size:
            sub, sub_kth = scores[tied], kth[tied]
            above, equal = sub > sub_kth, sub == sub_kth
            needed = k - above.sum(axis=1, keepdims=True)
            selected = above | (equal & (np.cumsum(equal, axis=1) <= needed))
            chosen[tied] = np.nonzero(selected)[1].reshape(len(tied), k)
            values[tied] = np.take_along_axis(sub, chosen[tied], axis=1)
    order = np.lexsort((chosen, -values.astype(np.float64)), axis=1)  # by score descending, then index
    return np.take_along_axis(chosen, order, axis=1).astype(np.int64)


def _member(matrix: sparse.csr_matrix, columns: np.ndarray) -> np.ndarray:
    """Whether ``matrix[i, columns[i, j]]`` is stored, without densifying: (n, k) bool."""
    n_rows, n_items = matrix.shape
    matrix.sort_indices()
    keys = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(matrix.indptr)) * n_items + matrix.indices
    queries = np.arange(n_rows, dtype=np.int64)[:, None] * n_items + columns
    if keys.size == 0:
        return np.zeros(columns.shape, dtype=bool)
    position = np.minimum(np.searchsorted(keys, queries), keys.size - 1)
    return (keys[position] == queries) & (columns >= 0)


def _hits(scores: np.ndarray, heldout: sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Relevance (0/1 float) of each user's top-k items in rank order, and the number of held-out items."""
    top = _top_k(scores, k)
    return _member(heldout, top).astype(np.float64), np.diff(heldout.indptr)


# the metrics Liang et al. report: name -> (per-user function, cut-off k)
SELECTION_METRIC = "ndcg_at_100"  # what chooses a recommender's epoch or λ on the validation users (Liang et al.'s choice)
RANKING_METRICS = {"recall_at_20": (recall_at_k, 20), "recall_at_50": (recall_at_k, 50), "ndcg_at_100": (ndcg_at_k, 100)}
#: how pages, tables and the CLI name them (the one label table; validation records prefix the keys with "val_")
RANKING_LABELS = {name: f"{'Recall' if fn is recall_at_k else 'NDCG'}@{k}" for name, (fn, k) in RANKING_METRICS.items()}
