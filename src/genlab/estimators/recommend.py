"""Recommenders (spec §6): ``MultVAE``, ``MultDAE`` and the ``Popularity`` baseline, on a users × items
scipy.sparse matrix. Batches reach the model sparse (its first layer reads only the stored entries; the
decoder's scores are batch × items). The ranking API they share (``RecommenderMixin``) and the
validation-user helpers are also :class:`~genlab.EASE`'s (``ease.py``).

>>> from genlab.datasets import make_interactions
>>> X = make_interactions(2000, 500, random_state=0).matrix
>>> model = MultVAE(epochs=20, random_state=0).fit(X)
>>> model.recommend(X[:3], n=10).shape                # the 10 best unseen items per user
(3, 10)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import sparse
from sklearn.base import TransformerMixin

from .._params import ENGINE_DEFAULTS, Param, check_number, training_params
from .._validation import check_array, resolve_seed
from ..data.protocol import fold_in_split
from ..errors import InvalidInputError
from ..models import MultVAEConfig, MultVAEModule
from ..models.ranking import RANKING_METRICS, top_n
from ..training import SparseRows, TensorData
from .base import PREDICT_BATCH, DeclaredEstimator, GenerativeEstimator


def check_interactions(X, n_items: int | None = None, *, owner: str = "this recommender") -> sparse.csr_matrix:
    """A users × items CSR float32 matrix of non-negative finite values (dense arrays are accepted). ``owner``
    names the estimator in errors; the messages use scikit-learn's wording where it has one."""
    if sparse.issparse(X):
        if np.iscomplexobj(X):
            raise InvalidInputError(f"Complex data not supported: X has dtype {X.dtype}; interactions are real counts or 0/1.")
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise InvalidInputError(f"X has dtype {X.dtype}; interactions are numbers (counts or 0/1).")
        X = sparse.csr_matrix(X, dtype=np.float32)  # any sparse format (COO, DOK, ...) as CSR
        for count, what in ((X.shape[0], "sample(s) (users)"), (X.shape[1], "feature(s) (items)")):
            if count == 0:
                raise InvalidInputError(f"X is empty: it has 0 {what} (shape={X.shape}) while a minimum of 1 is required.")
        if not np.isfinite(X.data).all():
            raise InvalidInputError("X contains NaN or infinity; interactions are finite counts or 0/1.")
    else:
        arr = check_array(X)  # genlab's dense checks
        if arr.ndim != 2:
            raise InvalidInputError(f"X must be a users × items matrix (scipy.sparse or 2-D numeric array); got shape {np.shape(X)}.")
        X = sparse.csr_matrix(arr.astype(np.float32, copy=False))
    if n_items is not None and X.shape[1] != n_items:
        raise InvalidInputError(f"X has {X.shape[1]} features, but {owner} is expecting {n_items} features as input: one "
                                "column for each of the items it was fitted on.")
    if (X.data < 0).any():
        raise InvalidInputError(f"Negative values in data passed to {owner}: interactions are non-negative (counts or 0/1).")
    return X


class RecommenderMixin:
    """Ranking API shared by every recommender: it needs ``item_scores(X)`` and ``n_features_in_``."""

    def recommend(self, X, n: int = 10) -> np.ndarray:
        """The ``n`` best item indices per row of ``X``, excluding the row's own items (best first;
        −1 pads a row with fewer than ``n`` unseen items)."""
        n = check_number("n", n, low=1, what="a positive integer")
        X = check_interactions(X, self._n_items(), owner=type(self).__name__)
        return np.concatenate([top_n(self.item_scores(X[s:s + PREDICT_BATCH]), int(n), X[s:s + PREDICT_BATCH])
                               for s in range(0, X.shape[0], PREDICT_BATCH)])

    def ranking_metrics(self, X, *, fraction: float = 0.2, random_state=0) -> dict[str, float]:
        """Liang et al.'s protocol on held-out users ``X``: rank from a random 80% of each user's
        interactions (``1 - fraction``), score against the other 20%. Mean Recall@20, Recall@50, NDCG@100."""
        X = check_interactions(X, self._n_items(), owner=type(self).__name__)
        fold_in, heldout = fold_in_split(X, fraction=fraction, random_state=resolve_seed(random_state))
        return ranking_metrics(self.item_scores, fold_in, heldout)

    def score(self, X, y=None) -> float:
        """Mean NDCG@100 under :meth:`ranking_metrics` (higher is better)."""
        return self.ranking_metrics(X)["ndcg_at_100"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # users × items matrices are sparse: batches reach the model sparse
        tags.input_tags.positive_only = True  # interactions are counts or 0/1; negative values are refused
        return tags

    def _n_items(self) -> int:
        if not hasattr(self, "n_features_in_"):
            raise InvalidInputError(f"This {type(self).__name__} is not fitted yet; call fit(X) first.")
        return self.n_features_in_


def default_validation_users(n_users: int) -> int:
    """The recommenders' default number of validation users: 10% of the users, at most 10 000."""
    return min(n_users // 10, 10_000)


def validation_split(n_users: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows), both sorted: ``n_val`` rows drawn with ``seed``. Every recommender
    that holds out validation users draws them here, so equal seeds hold out equal users."""
    if not n_val:
        return np.arange(n_users), np.arange(0)
    if n_users - n_val < 1:
        raise InvalidInputError(f"validation_users={n_val} leaves no user to train on ({n_users} users).")
    perm = np.random.default_rng(seed).permutation(n_users)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def validation_fold_in(X_val: sparse.csr_matrix, seed: int) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(fold-in, held-out) rows of the validation users that can be ranked: 80% of each one's items given, 20% to find."""
    if X_val.shape[1] < 2:
        raise InvalidInputError(f"validation users are ranked on items held out of their own, which needs at least 2 items, but X "
                                f"has n_features={X_val.shape[1]}; pass validation_users=0.")
    fold_in, heldout = fold_in_split(X_val, fraction=0.2, random_state=seed)
    ranked = np.diff(heldout.indptr) > 0  # a user with nothing held out has no ranking metric: not a validation row
    if not ranked.any():
        raise InvalidInputError("no validation user has two or more interactions to split into fold-in and held-out "
                                "items; pass validation_users=0 or more data.")
    return fold_in[ranked], heldout[ranked]


def ranking_metrics(item_scores, fold_in: sparse.csr_matrix, heldout: sparse.csr_matrix) -> dict[str, float]:
    """Mean of each ranking metric over users with held-out items; fold-in items are never ranked."""
    per_user = {name: [] for name in RANKING_METRICS}
    for s in range(0, fold_in.shape[0], PREDICT_BATCH):
        x = fold_in[s:s + PREDICT_BATCH]
        scores = np.asarray(item_scores(x), dtype=np.float64)
        scores[x.nonzero()] = -np.inf
        for name, (metric, k) in RANKING_METRICS.items():
            per_user[name].append(metric(scores, heldout[s:s + PREDICT_BATCH], k))
    return {name: float(np.nanmean(np.concatenate(v))) for name, v in per_user.items()}


class Popularity(RecommenderMixin, DeclaredEstimator):
    """Baseline: recommends the items most users interacted with, the same list for everyone. A scikit-learn
    estimator without parameters (``clone``, ``get_params``)."""

    def fit(self, X, y=None):
        """Count each item's users in ``X``, users × items (scipy.sparse or a 2-D array). Returns ``self``."""
        X = check_interactions(X, owner=type(self).__name__)
        self.n_features_in_ = X.shape[1]
        self.item_counts_ = np.asarray((X > 0).sum(axis=0)).ravel().astype(np.float64)
        return self

    def item_scores(self, X) -> np.ndarray:
        X = check_interactions(X, self._n_items(), owner=type(self).__name__)
        return np.broadcast_to(self.item_counts_, (X.shape[0], self.n_features_in_)).copy()


MULTVAE_PARAMS: dict[str, Param] = {
    "hidden": Param("ints", "encoder hidden widths (the decoder mirrors them)", default=(600,)),
    "latent_dim": Param("int", "size of the user code z", low=1, default=200),
    "dropout": Param("float", "dropout on the L2-normalised input rows", low=0, high=1, default=0.5),
    "beta_cap": Param("float", "the KL weight β rises linearly from 0 to this cap (VAE only)", low=0, default=0.2),
    "anneal_steps": Param("int", "updates over which β reaches the cap (None: 80% of the training updates)", low=1, none_ok=True,
                          default=None),
    "validation_users": Param("int", "users held out to choose the epoch by NDCG@100 (None: 10%, at most 10 000; 0: none)",
                              low=0, none_ok=True, default=None),
    **training_params(only=("epochs", "batch_size", "lr", "weight_decay", "device", "verbose", "random_state", *ENGINE_DEFAULTS),
                      epochs=100, batch_size=500),
}


class MultVAE(TransformerMixin, RecommenderMixin, GenerativeEstimator):
    """Variational autoencoder for collaborative filtering (Liang et al. 2018; spec §6).

    Parameters
    ----------
    hidden, latent_dim : tanh MLP items → 600 → 200 by default, mirrored in the decoder.
    dropout : float
        Dropout on the L2-normalised input row (0.5).
    beta_cap, anneal_steps
        β = cap · min(1, step / anneal_steps); by default the cap is reached after 80% of the updates.
    validation_users : int or None
        Users held out of training; each epoch they are ranked from 80% of their items and the epoch
        with the best NDCG@100 is kept (the paper's model selection).
    epochs, batch_size, lr, weight_decay, device, verbose, random_state
        Adam; the paper's batch of 500 users.
    optimizer, momentum, weight_decay_on, lr_schedule, warmup_steps, lr_decay, lr_step_epochs, lr_patience, grad_clip,
    precision, tensorboard
        The training options every estimator shares (README, "Training options"); the plateau schedule
        follows the validation NDCG@100.

    Attributes
    ----------
    module_, history_ (per epoch: loss, nll, kl, beta; val_ndcg_at_100, val_recall_at_20/50),
    best_epoch_, n_features_in_, seed_, validation_rows_ (rows of the fitted X held out for model selection)
    """

    _params = MULTVAE_PARAMS
    _scaled = False  # counts go in as they are
    _positional = ("hidden", "latent_dim")
    _variational = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # user codes come out of float32 networks
        return tags

    def _make_module(self, p, input_shape, n_classes):
        return MultVAEModule(MultVAEConfig(n_items=int(input_shape[0]), hidden=tuple(p.hidden), latent_dim=p.latent_dim,
                                           dropout=float(p.dropout), variational=self._variational,
                                           beta_cap=float(p.beta_cap)))

    def fit(self, X, y=None, *, run_dir=None, resume=False):
        """Fit to ``X``, users × items (scipy.sparse; counts or 0/1). Returns ``self``."""
        return super().fit(X, y, run_dir=run_dir, resume=resume)

    def _prepare_data(self, X, y) -> tuple[TensorData, TensorData | None]:
        """Sparse rows, never densified; the validation users (their fold-in and held-out items) choose the epoch."""
        X = check_interactions(X, owner=type(self).__name__)
        self.n_features_in_ = X.shape[1]
        self.input_shape_, self.n_classes_ = (self.n_features_in_,), None
        n_val = default_validation_users(X.shape[0]) if self.validation_users is None else self.validation_users
        train_rows, val_rows = validation_split(X.shape[0], n_val, self.seed_)
        self.validation_rows_ = val_rows
        val_data = TensorData(*map(SparseRows, validation_fold_in(X[val_rows], self.seed_))) if n_val else None
        return TensorData(SparseRows(X[train_rows])), val_data

    def _fit_module(self, module, train_data, val_data, run_dir, resume, config=None) -> list[dict]:
        steps_per_epoch = max(1, math.ceil(len(train_data.x) / self.batch_size))
        module.anneal_steps.fill_(self.anneal_steps or max(1, int(0.8 * self.epochs * steps_per_epoch)))
        # the epoch with the best validation NDCG@100 is kept; a checkpoint of a 20k-item model is large, so runs keep the last
        config = self._train_config(keep_best=val_data is not None, checkpoint_every=self.epochs)
        return super()._fit_module(module, train_data, val_data, run_dir, resume, config)

    def item_scores(self, X) -> np.ndarray:
        """Unnormalised item scores (decoder logits) for each user row: rows × items, dense."""
        return self._apply_rows(lambda module, rows: module.scores(rows), X)

    def transform(self, X) -> np.ndarray:
        """User codes: the posterior mean μ (the DAE's code), (rows, latent_dim)."""
        return self._apply_rows(lambda module, rows: module.encode(rows)[0], X)

    @torch.no_grad()
    def _apply_rows(self, fn, X) -> np.ndarray:
        """``fn(module, rows)`` on the rows of sparse ``X``, a sparse batch at a time on the model's device."""
        self._check_fitted()
        X = check_interactions(X, self.n_features_in_, owner=type(self).__name__)
        self.module_.eval()
        rows = SparseRows(X, self._device())
        return np.concatenate([fn(self.module_, rows[s:s + PREDICT_BATCH]).cpu().numpy() for s in range(0, len(rows), PREDICT_BATCH)])


class MultDAE(MultVAE):
    """Denoising autoencoder with the multinomial likelihood (Liang et al. 2018's Mult-DAE): the
    same network, input dropout and protocol as :class:`MultVAE`, a deterministic code and no KL.
    The paper regularises it with weight decay; ``weight_decay`` defaults to 0 like the VAE's."""

    _variational = False
