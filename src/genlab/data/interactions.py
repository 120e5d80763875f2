"""Interaction data for recommenders: a sparse users × items matrix that remembers the original ids.

* :func:`load_interactions` reads a CSV/TSV of ``user,item[,rating][,timestamp]`` — MovieLens ``ratings.csv``,
  ``u.data`` and ``ratings.dat`` as they are — and binarises ratings by a threshold (Liang et al., WWW 2018).
* :mod:`genlab.data.protocol` has the synthetic data with planted user groups and the evaluation protocol.

The matrix is ``scipy.sparse`` CSR (float32) throughout; nothing here builds a dense users × items array.
"""

from __future__ import annotations

import csv
import math
import operator
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import sparse

from .._params import check_number
from ..errors import DataError, InvalidInputError
from .files import _is_number

_CHUNK_BYTES = 2**24  # text parsed at a time: Python strings only ever exist for one chunk
_HEADER_NAMES = {"user", "userid", "user_id", "uid"}  # a two-column file has no rating to sniff a header by


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field by field has no single truth value
class Interactions:
    """Who interacted with what: a users × items CSR matrix and the ids behind its rows and columns.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix of float32, shape (n_users, n_items)
        1 for an interaction (or the number of interactions, for implicit counts); absent means none.
    user_ids, item_ids : numpy.ndarray, shapes (n_users,) and (n_items,)
        The original ids: row ``i`` is user ``user_ids[i]`` and column ``j`` item ``item_ids[j]``.
        Integer ids are int64, any other ids strings.
    source : str
        Where the data came from and how it was filtered, for reports.
    """

    matrix: sparse.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    source: str

    def __post_init__(self):
        if not sparse.issparse(self.matrix) or self.matrix.format != "csr":
            raise InvalidInputError(f"Interactions.matrix must be a scipy.sparse CSR matrix, got {type(self.matrix).__name__}.")
        if self.matrix.shape != (len(self.user_ids), len(self.item_ids)):
            raise InvalidInputError(
                f"Interactions.matrix has shape {self.matrix.shape} but there are {len(self.user_ids)} user ids "
                f"and {len(self.item_ids)} item ids: they must match (users × items)."
            )

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @cached_property
    def _user_rows(self) -> dict:
        return {user_id: i for i, user_id in enumerate(self.user_ids.tolist())}

    def user_index(self, user_id) -> int:
        """The row of ``user_id`` (an original id); raises DataError for an id not in the data."""
        try:
            return self._user_rows[user_id]
        except (KeyError, TypeError):  # TypeError: an unhashable id
            example = self.user_ids[0].item() if self.n_users else None
            raise DataError(
                f"unknown user id {user_id!r}: not one of the {self.n_users} users of {self.source} (ids look like {example!r})."
            ) from None

    def subset_users(self, rows) -> Interactions:
        """The users at ``rows`` (indices or a boolean mask), in that order; the items are kept as they are."""
        rows = np.asarray(rows)
        if (rows.dtype != bool and not np.issubdtype(rows.dtype, np.integer)) or rows.ndim != 1:
            raise InvalidInputError(f"rows must be a 1-D array of row indices or a boolean mask, got {rows.dtype} {rows.shape}.")
        user_ids = self.user_ids[rows]
        return Interactions(self.matrix[rows], user_ids, self.item_ids, f"{self.source} [{len(user_ids)} of {self.n_users} users]")


# --- reading a file ---------------------------------------------------------------------------------


def load_interactions(
    path: str | os.PathLike,
    *,
    threshold: float = 3.5,
    implicit: bool = False,
    min_interactions: int = 5,
    sep: str | None = None,
) -> Interactions:
    """Read a ``user,item[,rating][,timestamp]`` table into a binary (or count) users × items matrix.

    MovieLens files load as they are: ``ratings.csv`` (ml-latest / ml-20m: header, commas), ``u.data``
    (ml-100k: tabs, no header) and ``ratings.dat`` (ml-1m: ``::``).

    Parameters
    ----------
    path : str or path-like
        The file. The separator is sniffed from its first line (``::``, tab, comma, semicolon, else
        whitespace) unless ``sep`` is given. The first row is a header when its third field (the rating)
        is not a number; in a two-column file, when it reads ``user``/``userId``/``user_id``/``uid`` or has
        text where the second row has numbers. A fourth column (timestamp) is ignored. One row per line;
        double quotes are understood for one-character separators.
    threshold : float, default 3.5
        With a rating column, a rating **above** ``threshold`` is an interaction (value 1) and the others
        are dropped, as in Liang et al.'s (2018) code, which keeps ratings > 3.5 — 4 stars and up on
        MovieLens' half-star scale. To keep ratings equal to X as well, pass a value just below X
        (``threshold=3.49`` keeps 3.5 and up).
    implicit : bool, default False
        Count rows instead: every row is one interaction whatever its rating (the column is not read),
        and repeated (user, item) rows add up. Without a rating column and ``implicit=False``, every row
        is an interaction and a repeated pair is still 1.
    min_interactions : int, default 5
        Users with fewer distinct items than this (after binarising) are dropped; then items that no
        remaining user has are dropped.
    sep : str, optional
        The separator, to override sniffing (e.g. ``","``, ``"\\t"``, ``"::"``).

    Returns
    -------
    Interactions
        Users and items sorted by id (numerically when every id is an integer, which then stay int64).

    Raises
    ------
    DataError
        A missing or unreadable file, a malformed row (its line number), or nothing left after filtering.
    """
    path = Path(path)
    if not math.isfinite(threshold):
        raise InvalidInputError(f"threshold must be a finite number, got {threshold}.")
    min_interactions = check_number("min_interactions", min_interactions, low=1, what="an integer >= 1 (1 keeps every user)")
    if sep is not None and (not isinstance(sep, str) or sep == ""):
        raise InvalidInputError(f"sep must be a non-empty string such as ',', '\\t' or '::', got {sep!r}.")
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file: give a CSV/TSV of user,item[,rating][,timestamp] rows.")
    try:
        table = _read_table(path, sep, read_ratings=not implicit)
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err}); save it as UTF-8.") from err
    users, items, user_ids, item_ids, ratings = table
    n_rows = len(users)
    if ratings is not None:
        keep = ratings > threshold
        if not keep.any():
            raise DataError(
                f"no rating in {path} is above threshold={threshold} (they range from {ratings.min():g} to {ratings.max():g}): "
                "lower threshold, or pass implicit=True to count every row."
            )
        users, items = users[keep], items[keep]
    matrix = sparse.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, items)), shape=(len(user_ids), len(item_ids))
    )  # COO -> CSR sums repeated (user, item) pairs: the implicit counts
    matrix.sum_duplicates()
    if not implicit:
        matrix.data[:] = 1.0
    per_user = np.diff(matrix.indptr)
    kept_users = per_user >= min_interactions
    if not kept_users.any():
        raise DataError(
            f"no user in {path} has min_interactions={min_interactions} interactions (the most any user has is "
            f"{per_user.max()}{'' if implicit or ratings is None else f' with rating > {threshold}'}): lower min_interactions."
        )
    matrix, user_ids = matrix[kept_users], user_ids[kept_users]
    matrix, item_ids = _drop_empty_items(matrix, item_ids)
    what = "interaction counts" if implicit else (f"ratings > {threshold:g} as 1" if ratings is not None else "rows as 1")
    source = f"{path} ({n_rows} rows; {what}; users with >= {min_interactions} items)"
    return Interactions(matrix, user_ids, item_ids, source)


def _drop_empty_items(matrix: sparse.csr_matrix, item_ids: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Remove the columns no row has, renumbering the rest (an O(nnz) relabelling, order kept)."""
    used = np.bincount(matrix.indices, minlength=matrix.shape[1]) > 0
    new_column = np.cumsum(used) - 1
    kept = sparse.csr_matrix((matrix.data, new_column[matrix.indices], matrix.indptr), shape=(matrix.shape[0], int(used.sum())))
    return kept, item_ids[used]


def _sniff(line: str) -> str:
    """The separator of a first line: '::', tab, comma or semicolon, else ' ' (any run of whitespace)."""
    return next((s for s in ("::", "\t", ",", ";") if s in line), " ")


def _fields(line: str, sep: str) -> list[str]:
    """One line's fields ([] for a blank line): quotes understood for one-character separators."""
    if not sep.strip(" "):
        return line.split()
    if len(sep) == 1:
        fields = next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])
    else:
        fields = line.split(sep)
    fields = [field.strip() for field in fields]
    return [] if fields == [""] else fields


def _split_chunk(path: Path, lines: list[str], start: int, sep: str, width: int | None):
    """Line numbers and columns of a chunk's non-blank lines (one row per line), checking every row has ``width`` fields.

    ``width=None`` takes the first row's width. Returns ``(numbers, columns, width)``; columns is None for a blank chunk.
    """
    numbers = np.arange(start, start + len(lines))
    text = "".join(lines)
    if sep.strip(" ") and '"' not in text and " " not in text:
        # fast path for plain files such as MovieLens': C-level splitting of the whole chunk at once
        widths = np.fromiter(map(operator.methodcaller("count", sep), lines), dtype=np.intp, count=len(lines)) + 1
        blank = np.zeros(len(lines), dtype=bool)
        for i in np.flatnonzero(widths == 1):
            blank[i] = not lines[i].strip()
        if blank.any():
            lines = [line for line, is_blank in zip(lines, blank) if not is_blank]
            numbers, widths, text = numbers[~blank], widths[~blank], "".join(lines)
        rows = None
    else:
        rows = [_fields(line, sep) for line in lines]
        widths = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
        numbers, widths, rows = numbers[widths > 0], widths[widths > 0], [row for row in rows if row]
    if not len(numbers):
        return numbers, None, width
    width = int(widths[0]) if width is None else width
    bad = np.flatnonzero(widths != width)
    if bad.size:
        i = bad[0]
        raise DataError(
            f"{path}, line {numbers[i]}: {widths[i]} fields, but the rows before have {width}; every row needs the same "
            "user,item[,rating][,timestamp] fields (look for a missing or extra separator)."
        )
    if rows is not None:
        return numbers, [list(column) for column in zip(*rows)], width
    # row after row (a trailing "" when the text ends in a newline); "\r" alone also ends a line
    flat = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", sep).split(sep)
    n = len(numbers) * width
    return numbers, [flat[j:n:width] for j in range(width)], width


def _has_header(columns: list[list[str]]) -> bool:
    first = [column[0] for column in columns]
    if len(first) >= 3:  # a rating column: header iff the first "rating" is not a number
        return not _is_number(first[2])
    if first[0].strip().lower() in _HEADER_NAMES:
        return True
    second = [column[1] for column in columns] if len(columns[0]) > 1 else []
    return any(not _is_number(a) and _is_number(b) for a, b in zip(first, second))


def _read_table(path: Path, sep: str | None, *, read_ratings: bool):
    """Codes (users, items), their sorted ids, and the ratings (None without a rating column or when not read)."""
    user_chunks, item_chunks, rating_chunks = [], [], []
    width, next_line = None, 1
    with open(path, encoding="utf-8-sig", newline="") as f:
        while lines := f.readlines(_CHUNK_BYTES):
            if sep is None:
                sep = _sniff(next((line for line in lines if line.strip()), ""))
            numbers, columns, chunk_width = _split_chunk(path, lines, next_line, sep, width)
            next_line += len(lines)
            if columns is None:
                continue
            if width is None:  # the first row: header or data?
                width = chunk_width
                if not 2 <= width <= 4:
                    raise DataError(
                        f"{path}, line {numbers[0]}: {width} fields separated by {sep!r}; expected user,item[,rating][,timestamp] "
                        "(2 to 4 fields): pass sep= if the separator was misread."
                    )
                if _has_header(columns):
                    numbers, columns = numbers[1:], [column[1:] for column in columns]
                    if not len(numbers):
                        continue
            user_chunks.append(_encode(path, "user", columns[0], numbers))
            item_chunks.append(_encode(path, "item", columns[1], numbers))
            if width >= 3 and read_ratings:
                rating_chunks.append(_parse_ratings(path, columns[2], numbers))
    if width is None:
        raise DataError(f"{path} is empty: expected rows of user,item[,rating][,timestamp].")
    if not user_chunks:
        raise DataError(f"{path} has a header row but no data rows.")
    users, user_ids = _merge_codes(user_chunks)
    items, item_ids = _merge_codes(item_chunks)
    ratings = np.concatenate(rating_chunks) if rating_chunks else None
    return users, items, user_ids, item_ids, ratings


def _encode(path: Path, what: str, values: list[str], lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One chunk's column as (sorted distinct strings, code of each row)."""
    strings = np.array(values, dtype=str)
    empty = np.flatnonzero(strings == "")
    if empty.size:
        raise DataError(f"{path}, line {lines[empty[0]]}: the {what} id is empty; every row needs a user and an item.")
    distinct, codes = np.unique(strings, return_inverse=True)
    return distinct, codes.astype(np.int32 if len(distinct) < 2**31 else np.int64)


def _merge_codes(chunks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Codes into one sorted id array for all chunks; the ids become int64 when every one is an integer."""
    ids = np.unique(np.concatenate([distinct for distinct, _ in chunks]))
    codes = np.concatenate([np.searchsorted(ids, distinct)[chunk_codes] for distinct, chunk_codes in chunks])
    try:
        as_int = ids.astype(np.int64)
    except (ValueError, OverflowError):
        return codes, ids
    if len(np.unique(as_int)) < len(ids):  # '7' and '07' are two ids: keep them as strings
        return codes, ids
    order = np.argsort(as_int, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[codes], as_int[order]


def _parse_ratings(path: Path, values: list[str], lines: np.ndarray) -> np.ndarray:
    try:
        ratings = np.array(values, dtype=np.float64)
    except ValueError:  # parse one by one, to name the first offending line
        ratings = np.empty(len(values))
        for i, text in enumerate(values):
            try:
                ratings[i] = float(text)
            except ValueError:
                raise DataError(
                    f"{path}, line {lines[i]}: the rating {text!r} is not a number (a third column must be the rating; "
                    "pass implicit=True to ignore it)."
                ) from None
    bad = np.flatnonzero(~np.isfinite(ratings))
    if bad.size:
        raise DataError(f"{path}, line {lines[bad[0]]}: the rating {values[bad[0]]!r} is not finite; fix or drop the row.")
    return ratings
