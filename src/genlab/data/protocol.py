"""Synthetic interaction data and the evaluation protocol of Liang et al. (WWW 2018) for recommenders.

* :func:`make_interactions` draws synthetic implicit feedback with planted user groups.
* :func:`split_users` and :func:`fold_in_split`: held-out users, each of whose interactions are split into a
  part the model sees (fold-in) and a part it must rank.

Matrices are ``scipy.sparse`` CSR (float32); nothing here builds a dense users × items array.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse

from .._params import check_number
from .._validation import resolve_seed
from ..errors import InvalidInputError
from .interactions import Interactions

_ZIPF_EXPONENT = 1.0  # popularity of the r-th item of a block is proportional to 1 / (r + 1)


# --- synthetic data ---------------------------------------------------------------------------------


def make_interactions(
    n_users: int = 2000,
    n_items: int = 500,
    n_groups: int = 5,
    *,
    items_per_user: tuple[int, int] = (10, 40),
    in_group: float = 0.8,
    random_state=None,
) -> Interactions:
    """Synthetic implicit feedback with planted user groups, for tests and benchmarks.

    The model:

    * Items ``0..n_items-1`` are cut into ``n_groups`` contiguous blocks of (nearly) equal size;
      user ``u`` belongs to group ``u % n_groups``, whose block is the ``g``-th one.
    * Popularity is Zipf-like: the ``r``-th item of a block (r = 0, 1, ...) has weight ``1 / (r + 1)``,
      so every block has a few hits and a long tail.
    * Each user draws a number of distinct items uniformly from ``items_per_user`` (both ends included).
      Each draw comes, with probability ``in_group``, from the user's own block (in proportion to the
      weights inside the block), otherwise from all items (in proportion to the weights over all items,
      so each block's hits are also the globally popular items). Repeats are redrawn until the user has
      that many distinct items. About a share ``in_group`` of every user's items thus lie in their block
      (a little less when blocks are small, where popular items repeat more: 0.76 with the defaults).

    Users of the same group therefore share far more items than users of different groups, which a
    model can find without knowing the groups. Vectorised: 100k users × 20k items take a few seconds.

    Parameters
    ----------
    n_users, n_items, n_groups : int
        Matrix size and number of groups (``n_groups <= n_items``).
    items_per_user : (int, int), default (10, 40)
        Least and most items per user, ``1 <= low <= high <= n_items``.
    in_group : float in [0, 1], default 0.8
        Probability that a draw comes from the user's own block.
    random_state : None, int or numpy Generator
        Seed; the same seed gives the same matrix.

    Returns
    -------
    Interactions
        A binary float32 matrix; user ids ``0..n_users-1``, item ids ``0..n_items-1``.
    """
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_groups", n_groups)):
        check_number(name, value, low=1, what="a positive integer")
    if n_groups > n_items:
        raise InvalidInputError(f"n_groups={n_groups} is more than n_items={n_items}: every group needs at least one item.")
    low, high = (int(v) for v in items_per_user)
    if not 1 <= low <= high <= n_items:
        raise InvalidInputError(f"items_per_user={items_per_user} must satisfy 1 <= low <= high <= n_items={n_items}.")
    if not 0.0 <= in_group <= 1.0:
        raise InvalidInputError(f"in_group must be a probability in [0, 1], got {in_group}.")
    block_size = n_items // n_groups  # the smallest block
    if in_group == 1.0 and high > block_size:
        raise InvalidInputError(
            f"with in_group=1 every item comes from the user's block of {block_size} items, fewer than "
            f"items_per_user's {high}: lower items_per_user or in_group."
        )
    rng = np.random.default_rng(resolve_seed(random_state))
    sizes = np.array([len(b) for b in np.array_split(np.arange(n_items), n_groups)])
    block_of_item = np.repeat(np.arange(n_groups), sizes)
    block_start = np.cumsum(sizes) - sizes
    block_last = block_start + sizes - 1
    weight = (np.arange(n_items) - block_start[block_of_item] + 1.0) ** -_ZIPF_EXPONENT
    # Inverse-CDF sampling. Inside blocks: block g's cumulative weights are scaled to (g, g+1], so one
    # searchsorted for g + U(0, 1) samples every group's block at once.
    cumulative = np.cumsum(weight)
    block_total = np.bincount(block_of_item, weights=weight)
    before = (np.cumsum(block_total) - block_total)[block_of_item]
    cdf_block = (cumulative - before) / block_total[block_of_item] + block_of_item
    cdf_block[block_last] = np.arange(1, n_groups + 1)
    cdf_all = cumulative / cumulative[-1]
    cdf_all[-1] = 1.0
    group = np.arange(n_users) % n_groups

    def draw(users: np.ndarray) -> np.ndarray:
        """One item per entry of ``users``; the min() guards against g + u rounding up to g + 1."""
        own = rng.random(len(users)) < in_group
        u = rng.random(len(users))
        items = np.minimum(np.searchsorted(cdf_all, u, side="right"), n_items - 1)
        g = group[users[own]]
        items[own] = np.minimum(np.searchsorted(cdf_block, g + u[own], side="right"), block_last[g])
        return items

    target = rng.integers(low, high + 1, size=n_users)
    users = np.repeat(np.arange(n_users), target)
    items = draw(users)
    for attempt in range(64):
        # keep each user's first `target` distinct items, in the order they were drawn
        _, first = np.unique(users * np.int64(n_items) + items, return_index=True)
        first.sort()
        order = np.argsort(users[first], kind="stable")
        users, items = users[first][order], items[first][order]
        count = np.bincount(users, minlength=n_users)
        rank = np.arange(len(users)) - (np.cumsum(count) - count)[users]
        keep = rank < target[users]
        users, items = users[keep], items[keep]
        deficit = target - np.minimum(count, target)
        if not deficit.any():
            break
        extra = np.repeat(np.arange(n_users), deficit * min(2 ** (attempt + 1), 1024))  # oversample: repeats are likely
        users, items = np.concatenate([users, extra]), np.concatenate([items, draw(extra)])
    else:  # unreachable for valid parameters: every item has a positive probability
        raise RuntimeError("make_interactions could not draw enough distinct items; please report this.")
    matrix = sparse.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    source = (
        f"make_interactions(n_users={n_users}, n_items={n_items}, n_groups={n_groups}, "
        f"items_per_user=({low}, {high}), in_group={in_group}, random_state={random_state!r})"
    )
    return Interactions(matrix, np.arange(n_users, dtype=np.int64), np.arange(n_items, dtype=np.int64), source)


# --- the evaluation protocol of Liang et al. (2018) -------------------------------------------------


class UserSplit(NamedTuple):
    """Sorted row indices of the training, validation and test users."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


class FoldInSplit(NamedTuple):
    """A held-out user's interactions: those the model is given (fold-in) and those it must rank (heldout)."""

    fold_in: sparse.csr_matrix
    heldout: sparse.csr_matrix


def split_users(n_users: int, n_heldout: int, *, random_state) -> UserSplit:
    """Split users into train, ``n_heldout`` validation and ``n_heldout`` test users, at random.

    As in Liang et al.'s ``vae_cf`` code: a seeded permutation of the users; its last ``2 * n_heldout``
    are validation then test users, the rest train. Each array is sorted (row indices, int64).
    """
    for name, value in (("n_users", n_users), ("n_heldout", n_heldout)):
        check_number(name, value, low=0, what="a non-negative integer")
    n_train = n_users - 2 * n_heldout
    if n_train < 1:
        raise InvalidInputError(
            f"n_heldout={n_heldout} validation and as many test users leave no training users out of {n_users}; lower n_heldout."
        )
    order = np.random.default_rng(resolve_seed(random_state)).permutation(n_users)
    validation, test = order[n_train : n_train + n_heldout], order[n_train + n_heldout :]
    return UserSplit(np.sort(order[:n_train]), np.sort(validation), np.sort(test))


def fold_in_split(matrix, *, fraction: float = 0.2, random_state) -> FoldInSplit:
    """Split every row's interactions at random into fold-in and held-out parts (Liang et al., 2018).

    Parameters
    ----------
    matrix : scipy.sparse matrix, shape (n, n_items)
        The held-out users' rows. Explicit zeros are not interactions.
    fraction : float in (0, 1), default 0.2
        A row with ``m >= 2`` interactions holds out ``floor(fraction * m)`` of them, but at least 1 and at
        most ``m - 1``, so both parts are non-empty. A row with a single interaction keeps it for fold-in
        and holds out nothing (the ranking metrics then give that user NaN); an empty row stays empty.
    random_state : None, int or numpy Generator

    Returns
    -------
    FoldInSplit
        ``(fold_in, heldout)``: CSR matrices of the input's shape and dtype that are disjoint and add up to it.
    """
    if not sparse.issparse(matrix):
        raise InvalidInputError(f"matrix must be a scipy.sparse matrix, got {type(matrix).__name__}.")
    if not 0.0 < fraction < 1.0:
        raise InvalidInputError(f"fraction must be in (0, 1), got {fraction}.")
    matrix = sparse.csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    n_rows = matrix.shape[0]
    per_row = np.diff(matrix.indptr)
    # the 1e-9 keeps floor() from losing a whole item to rounding (0.29 * 100 = 28.999...)
    n_out = np.where(per_row >= 2, np.clip(np.floor(fraction * per_row + 1e-9), 1, per_row - 1), 0).astype(np.intp)
    row = np.repeat(np.arange(n_rows), per_row)
    rng = np.random.default_rng(resolve_seed(random_state))
    order = np.lexsort((rng.random(matrix.nnz), row))  # a random order inside each row
    rank = np.empty(matrix.nnz, dtype=np.intp)
    rank[order] = np.arange(matrix.nnz) - matrix.indptr[row[order]]
    out = rank < n_out[row]

    def part(mask: np.ndarray) -> sparse.csr_matrix:
        indptr = np.concatenate([[0], np.cumsum(np.bincount(row[mask], minlength=n_rows))])
        return sparse.csr_matrix((matrix.data[mask], matrix.indices[mask], indptr), shape=matrix.shape)

    return FoldInSplit(part(~out), part(out))
