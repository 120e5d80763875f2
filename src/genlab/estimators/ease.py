"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): the strong simple baseline
a recommender is judged against (spec §6).

An item-item weight matrix B is learned by ridge regression of every item's column of X on all the other
items' columns; a user's scores are ``x · B``. With the constraint diag(B) = 0 (an item may not predict
itself) the solution has a closed form: with P = (XᵀX + λI)⁻¹,

    B = I − P · diag(P)⁻¹,   i.e.  B_ij = −P_ij / P_jj  (i ≠ j),  B_jj = 0.

Fitting is one Cholesky factorisation and inversion of an items × items matrix: memory 8·items² bytes
(float64), time ∝ items³ (about 1 s for 4 000 items on two CPU cores), whatever the number of users.

>>> from genlab.datasets import make_interactions
>>> X = make_interactions(2000, 500, random_state=0).matrix
>>> model = EASE(random_state=0).fit(X)          # λ chosen on 200 validation users
>>> model.recommend(X[:3], n=10).shape
(3, 10)
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, ClassVar

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from .._modelfile import TensorSpec
from .._params import Param, check_number, check_params
from .._validation import resolve_seed
from ..errors import InvalidInputError
from .base import DeclaredEstimator, SavedModel
from .recommend import (
    RecommenderMixin,
    check_interactions,
    default_validation_users,
    ranking_metrics,
    validation_fold_in,
    validation_split,
)

#: The λ values tried when ``l2`` is None or "auto": a log grid, ×3 steps through the range where the
#: paper's optima lie (200–1000 on ML-20M, Netflix and MSD); the optimum grows with the number of users.
L2_GRID = (1.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0)
DEFAULT_MAX_ITEMS = 25_000  # a 25 000² float64 matrix is 5 GB (MovieLens-20M has about 20 000 items)
_BLOCK = 2048  # columns of the Gram matrix (and rows of the mirrored triangle) built at a time

EASE_PARAMS: dict[str, Param] = {
    "l2": Param("float", "λ, the ridge penalty of the item weights (None or 'auto': chosen from L2_GRID by the validation "
                "users' NDCG@100)", above=0, none_ok=True, default=None),
    "validation_users": Param("int", "users held out to choose l2 by NDCG@100 (None: 10%, at most 10 000, when l2 is chosen; "
                              "else 0)", low=0, none_ok=True, default=None),
    "max_items": Param("int", "refuse to fit more items than this: fitting holds an items × items float64 matrix "
                       "(8·items² bytes)", low=1, default=DEFAULT_MAX_ITEMS),
    "verbose": Param("int", "0 silent, 1 a line per λ tried (stderr)", low=0, bool_ok=True, default=0),
    "random_state": Param("seed", "seed of the validation users and of their 80/20 split (None: fresh)", default=None),
}


def gram_bytes(n_items: int) -> int:
    """Memory of the items × items float64 matrix that fitting EASE holds."""
    return 8 * n_items * n_items


def size_problem(n_items: int, max_items: int) -> str | None:
    """Why ``n_items`` items are too many for EASE under ``max_items`` (one clause), or None if they are not."""
    if n_items <= max_items:
        return None
    size = gram_bytes(n_items)
    shown = f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"
    return f"{n_items} items need a {n_items} × {n_items} float64 matrix ({shown}), past max_items={max_items}"


def gram_matrix(X: sparse.csr_matrix, l2: float) -> np.ndarray:
    """XᵀX + λI, dense float64 (items, items), from sparse X a block of columns at a time (no dense X)."""
    n = X.shape[1]
    xt = X.T.tocsr().astype(np.float64)
    xc = X.tocsc().astype(np.float64)
    G = np.empty((n, n))
    for s in range(0, n, _BLOCK):
        G[:, s:s + _BLOCK] = (xt @ xc[:, s:s + _BLOCK]).toarray()
    G.flat[::n + 1] += l2
    return G


def ease_weights(X: sparse.csr_matrix, l2: float) -> np.ndarray:
    """EASE's item-item weights B for users × items ``X`` and penalty ``l2``: (items, items) float64, zero diagonal.

    One items² buffer does it all: the Gram matrix is factorised, inverted and scaled in place.
    """
    G = gram_matrix(X, l2)
    # G is symmetric, so its C-ordered memory read in Fortran order (G.T) is G itself and LAPACK works in place:
    # Cholesky G = UᵀU (potrf), then P = G⁻¹ from U (potri); both write the upper triangle of G.T = the lower of G
    factor, info = lapack.dpotrf(G.T, lower=0, overwrite_a=1, clean=0)
    if info == 0:
        factor, info = lapack.dpotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise InvalidInputError(f"XᵀX + {l2:g}·I is not numerically positive definite (LAPACK info {info}); use a larger l2.")
    P = G
    _mirror_lower(P)
    # Steck (2019), eq. 8: B = I − P·diag(P)⁻¹, i.e. column j of P divided by −P_jj, then a zero diagonal
    P /= -np.diag(P).copy()
    P.flat[::P.shape[0] + 1] = 0.0
    return P


def _mirror_lower(P: np.ndarray) -> None:
    """Copy the lower triangle of square ``P`` onto its upper one, in place, a block of rows at a time."""
    n = P.shape[0]
    for s in range(0, n, _BLOCK):
        e = min(s + _BLOCK, n)
        P[s:e, e:] = P[e:, s:e].T
        diagonal_block = P[s:e, s:e]
        upper = np.triu_indices(e - s, 1)
        diagonal_block[upper] = diagonal_block.T[upper]


class EASE(SavedModel, RecommenderMixin, DeclaredEstimator):
    """Embarrassingly shallow autoencoder (Steck, WWW 2019): closed-form item-item ridge regression with a
    zero diagonal, users × items sparse input (counts or 0/1, used as given). Scores are ``x · B``.

    Parameters
    ----------
    l2 : float > 0, None or "auto"
        λ, the ridge penalty. None or "auto" (the default): each value of :data:`L2_GRID` is fitted on the
        users other than the validation users, the validation users are ranked from a random 80% of their
        items, and the λ with the best NDCG@100 on their other 20% is kept (the first, if several tie).
    validation_users : int or None
        Users held out of the fit, drawn with ``random_state`` by the same helper as :class:`MultVAE`'s (equal
        seeds hold out equal users). None: 10% of the users, at most 10 000, when λ is chosen, and 0 for a
        given λ. With a given λ and validation users, they are held out and scored at that λ alone.
    max_items : int
        Fitting holds one items × items float64 matrix (8·items² bytes: 5 GB at the default 25 000 items)
        and takes time ∝ items³; past this many items ``fit`` refuses with :class:`~genlab.InvalidInputError`.
    verbose : int
        1: one line per λ tried on stderr.
    random_state : None, int or numpy Generator
        Seeds the validation users and their 80/20 split.

    Notes
    -----
    The weights kept are fitted on the users other than the validation users, at the chosen λ: as with
    MultVAE, validation users choose the model and are never trained on, so in a ``genlab recommend`` run every
    recommender learns from exactly the training users. For a final model on every user, fit again with
    ``l2=model.l2_``. Choosing λ costs one fit per grid value, plus the kept one again (unless it was the last
    tried); each fit rebuilds the Gram matrix from the sparse input rather than keeping a second items² copy.

    Attributes
    ----------
    weights_ : ndarray (n_items, n_items) float64
        B, with a zero diagonal.
    l2_ : float
        The λ of ``weights_``.
    validation_scores_ : list of dict
        One per λ scored on the validation users, in the order tried: ``l2``, ``ndcg_at_100``, ``recall_at_20``,
        ``recall_at_50``, ``seconds`` (to fit and score that λ). Empty without validation users.
    validation_rows_ : ndarray of int
        Rows of the fitted X held out as validation users.
    n_features_in_, seed_
    """

    _params: ClassVar[dict[str, Param]] = EASE_PARAMS
    _positional = ("l2",)
    _fitted_arrays: ClassVar[tuple[str, ...]] = ("weights_", "validation_rows_")

    def _validated_params(self) -> dict[str, Any]:
        """The parameters checked against :data:`EASE_PARAMS`; ``l2`` is None (choose it) or a finite float > 0."""
        params = self.get_params()
        l2 = params.pop("l2")
        if isinstance(l2, str) and l2 == "auto":
            l2 = None
        l2 = check_number("l2", l2, kind="float", above=0, high=math.inf, none_ok=True, what="a finite number > 0, None or 'auto'")
        params = {**check_params(params, self._params), "l2": l2}
        if l2 is None and params["validation_users"] == 0:
            raise InvalidInputError("l2=None chooses λ on the validation users, and validation_users=0 holds out none (CLI: "
                                    "--heldout-users 0): give l2 a number (--l2) or hold out users.")
        return params

    def fit(self, X, y=None):
        """Fit to ``X``, users × items (scipy.sparse or a 2-D array; counts or 0/1). Returns ``self``."""
        params = self._validated_params()
        X = check_interactions(X, owner=type(self).__name__)
        problem = size_problem(X.shape[1], params["max_items"])
        if problem:
            raise InvalidInputError(f"EASE: {problem}; pass max_items={X.shape[1]} (CLI: --max-items {X.shape[1]}) "
                                    "if the machine has the memory.")
        seed = resolve_seed(params["random_state"])
        choose = params["l2"] is None
        n_val = params["validation_users"]
        if n_val is None:
            n_val = default_validation_users(X.shape[0]) if choose else 0
        if choose and not n_val:
            raise InvalidInputError(f"l2=None chooses λ on validation users, but there are none (validation_users="
                                    f"{params['validation_users']} with n_samples={X.shape[0]} users): give l2 a number or hold out users.")
        train_rows, val_rows = validation_split(X.shape[0], n_val, seed)
        train = X[train_rows]
        path, weights, last = [], None, None
        if n_val:
            fold_in, heldout = validation_fold_in(X[val_rows], seed)
            for l2 in L2_GRID if choose else (params["l2"],):
                start = time.perf_counter()
                weights = None  # the previous λ's weights go before the next are built: one items² matrix at a time
                weights, last = ease_weights(train, l2), l2
                scores = ranking_metrics(lambda x, w=weights: x @ w, fold_in, heldout)
                path.append({"l2": l2, **scores, "seconds": time.perf_counter() - start})
                if params["verbose"]:
                    print(f"EASE l2={l2:g}: validation NDCG@100 {scores['ndcg_at_100']:.4f}, Recall@20 "
                          f"{scores['recall_at_20']:.4f} ({path[-1]['seconds']:.1f} s)", file=sys.stderr)
        # the first best, as np.argmax: a tie keeps the smaller λ
        l2 = float(max(path, key=lambda r: r["ndcg_at_100"])["l2"]) if choose else params["l2"]
        if last != l2:
            weights = None
            weights = ease_weights(train, l2)
        # fitted state is set only once all of it exists: a failed fit leaves no half-fitted model
        self.weights_, self.l2_, self.validation_scores_, self.validation_rows_ = weights, l2, path, val_rows
        self.n_features_in_, self.seed_ = X.shape[1], seed
        return self

    def item_scores(self, X) -> np.ndarray:
        """Scores ``x · B`` of every item for each user row: rows × items, dense float64 (higher is better)."""
        X = check_interactions(X, self._n_items(), owner=type(self).__name__)
        return np.asarray(X @ self.weights_)

    def _check_fitted(self) -> None:
        self._n_items()

    # -- persistence hooks (genlab._modelfile): no torch module, the fitted arrays are the model ----------------
    def _saved_state(self):
        fitted = {"n_features_in_": self.n_features_in_, "seed_": self.seed_, "l2_": self.l2_,
                  "validation_scores_": self.validation_scores_}
        return fitted, None, {f"fitted/{name}": getattr(self, name) for name in self._fitted_arrays}

    def _restore_state(self, values: dict[str, Any], module, version: int) -> dict[str, TensorSpec]:
        """Set the JSON part of the fitted state; returns the arrays to expect."""
        n = int(values["n_features_in_"])
        l2 = float(values["l2_"])
        if n < 1 or not math.isfinite(l2) or l2 <= 0:
            raise ValueError(f"n_features_in_={n}, l2_={l2}")
        scores = [dict(r) for r in values["validation_scores_"]]
        if not all(set(r) >= {"l2", "ndcg_at_100"} for r in scores):
            raise ValueError("validation_scores_ entries need l2 and ndcg_at_100")
        self.n_features_in_, self.seed_, self.l2_, self.validation_scores_ = n, int(values["seed_"]), l2, scores
        return {"fitted/weights_": ((n, n), "float64"), "fitted/validation_rows_": ((None,), "int64")}

    def _restore_tensors(self, tensors) -> None:
        """Set the arrays; ValueError if they cannot be this model's."""
        self.weights_, self.validation_rows_ = (tensors[f"fitted/{name}"].numpy() for name in self._fitted_arrays)
        if np.diagonal(self.weights_).any():
            raise ValueError("weights_ must have a zero diagonal (an item never predicts itself)")
        rows = self.validation_rows_
        if len(rows) and (rows.min() < 0 or np.any(np.diff(rows) <= 0)):
            raise ValueError("validation_rows_ must be sorted distinct row numbers")
