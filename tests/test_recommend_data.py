"""Contracts of the recommender data and metrics: interaction files, synthetic groups, splits, Recall/NDCG."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

import genlab.datasets as ds
from genlab.data import interactions as inter
from genlab.data.interactions import Interactions, load_interactions
from genlab.data.protocol import fold_in_split, make_interactions, split_users
from genlab.errors import DataError, InvalidInputError
from genlab.evaluate import ndcg_at_k, recall_at_k, top_n


def log2(x):
    return math.log2(x)


# --- ranking metrics, by hand ------------------------------------------------------------------------

# six items; the scores rank them [3, 0, 1, 2, 4, 5] for every user
SCORES = np.tile([0.8, 0.7, 0.5, 0.9, 0.3, 0.1], (3, 1))
# user 0 holds out {1, 3}; user 1 holds out {0, 1, 2, 4}; user 2 holds out nothing
HELDOUT = sparse.csr_matrix(np.array([[0, 1, 0, 1, 0, 0], [1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=np.float32))


def test_recall_by_hand_uses_min_k_heldout():
    # k=3, top-3 = [3, 0, 1]
    # user 0: hits 3 and 1 -> 2 / min(3, 2) = 1 (the plain |heldout| denominator would also give 1)
    # user 1: hits 0 and 1 -> 2 / min(3, 4) = 2/3 (not 2/4: min(k, |heldout|) normalisation)
    # user 2: no held-out items -> NaN
    np.testing.assert_allclose(recall_at_k(SCORES, HELDOUT, 3), [1.0, 2 / 3, np.nan])
    # k=1, top-1 = [3]: user 0 hits -> 1 / min(1, 2) = 1; user 1 misses -> 0
    np.testing.assert_allclose(recall_at_k(SCORES, HELDOUT, 1), [1.0, 0.0, np.nan])
    # k=2, top-2 = [3, 0]: user 0 -> 1 / min(2, 2) = 1/2; user 1 -> 1 / min(2, 4) = 1/2
    np.testing.assert_allclose(recall_at_k(SCORES, HELDOUT, 2), [0.5, 0.5, np.nan])


def test_ndcg_by_hand():
    # user 0, k=3: hits at ranks 1 and 3 -> DCG = 1/log2(2) + 1/log2(4); |heldout| = 2 -> IDCG = 1/log2(2) + 1/log2(3)
    user0 = (1 / log2(2) + 1 / log2(4)) / (1 / log2(2) + 1 / log2(3))
    # user 1, k=3: hits at ranks 2 and 3 -> DCG = 1/log2(3) + 1/log2(4); min(3, 4) = 3 -> IDCG = 1/log2(2) + 1/log2(3) + 1/log2(4)
    user1 = (1 / log2(3) + 1 / log2(4)) / (1 / log2(2) + 1 / log2(3) + 1 / log2(4))
    np.testing.assert_allclose(ndcg_at_k(SCORES, HELDOUT, 3), [user0, user1, np.nan])
    assert user0 == pytest.approx(0.91972, abs=1e-5) and user1 == pytest.approx(0.53072, abs=1e-5)
    # k=2, top-2 = [3, 0]: user 0 hit at rank 1 -> 1 / (1/log2(2) + 1/log2(3)); user 1 hit at rank 2 -> (1/log2(3)) / (1 + 1/log2(3))
    np.testing.assert_allclose(
        ndcg_at_k(SCORES, HELDOUT, 2), [1 / (1 + 1 / log2(3)), (1 / log2(3)) / (1 + 1 / log2(3)), np.nan]
    )
    # k larger than the number of items: the whole ranking; perfect lists give 1
    perfect = sparse.csr_matrix(np.array([[0, 0, 0, 1, 0, 0]]))
    assert ndcg_at_k(SCORES[:1], perfect, 10)[0] == pytest.approx(1.0)


def test_fold_in_items_at_minus_inf_are_never_counted():
    scores = SCORES[:1].copy()
    scores[0, 3] = -np.inf  # item 3 was folded in: ranking becomes [0, 1, 2, 4, 5, 3]
    heldout = sparse.csr_matrix(np.array([[0, 1, 0, 0, 0, 0]]))
    # k=2, top-2 = [0, 1]: hit at rank 2 -> recall 1 / min(2, 1) = 1, NDCG (1/log2(3)) / (1/log2(2))
    assert recall_at_k(scores, heldout, 2)[0] == pytest.approx(1.0)
    assert ndcg_at_k(scores, heldout, 2)[0] == pytest.approx(1 / log2(3))


def _reference_ndcg_recall(x_pred, heldout, k):
    """Liang et al.'s vae_cf NDCG_binary_at_k_batch and Recall_at_k_batch, transcribed (dense, no ties)."""
    n = x_pred.shape[0]
    idx_topk_part = np.argpartition(-x_pred, k, axis=1)
    topk_part = x_pred[np.arange(n)[:, None], idx_topk_part[:, :k]]
    idx_part = np.argsort(-topk_part, axis=1)
    idx_topk = idx_topk_part[np.arange(n)[:, None], idx_part]
    tp = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (heldout[np.arange(n)[:, None], idx_topk].toarray() * tp).sum(axis=1)
    idcg = np.array([tp[: min(m, k)].sum() for m in heldout.getnnz(axis=1)])
    x_pred_binary = np.zeros_like(x_pred, dtype=bool)
    x_pred_binary[np.arange(n)[:, None], idx_topk_part[:, :k]] = True
    x_true_binary = (heldout > 0).toarray()
    recall = (x_true_binary & x_pred_binary).sum(axis=1) / np.minimum(k, x_true_binary.sum(axis=1))
    return dcg / idcg, recall


def test_metrics_agree_with_the_paper_code_on_random_data():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((40, 60))
    heldout = sparse.random(40, 60, density=0.1, format="csr", random_state=1)
    heldout.data[:] = 1.0
    heldout = heldout[heldout.getnnz(axis=1) > 0]
    scores = scores[: heldout.shape[0]]
    for k in (5, 20):
        ndcg, recall = _reference_ndcg_recall(scores, heldout, k)
        np.testing.assert_allclose(ndcg_at_k(scores, heldout, k), ndcg)
        np.testing.assert_allclose(recall_at_k(scores, heldout, k), recall)


# --- top_n ------------------------------------------------------------------------------------------


def test_top_n_excludes_seen_items_and_breaks_ties_by_index():
    scores = np.array([[1.0, 2.0, 2.0, 2.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    before = scores.copy()
    np.testing.assert_array_equal(top_n(scores, 2, None), [[1, 2], [0, 1]])  # tie 1/2/3 -> lowest indices
    seen = sparse.csr_matrix(np.array([[0, 1, 0, 0, 0], [1, 0, 1, 0, 0]]))
    np.testing.assert_array_equal(top_n(scores, 3, seen), [[2, 3, 0], [1, 3, 4]])
    np.testing.assert_array_equal(scores, before)  # the caller's scores are untouched


def test_top_n_pads_with_minus_one_and_never_returns_an_excluded_item():
    scores = np.array([[-np.inf, 1.0, 2.0]])
    exclude = sparse.csr_matrix(np.array([[0, 1, 1]]))
    # item 0 is scored -inf but not excluded, so it still ranks above the excluded items
    np.testing.assert_array_equal(top_n(scores, 2, exclude), [[0, -1]])
    with pytest.raises(InvalidInputError, match="n=4"):
        top_n(scores, 4)
    with pytest.raises(InvalidInputError, match="NaN"):
        top_n(np.array([[np.nan, 1.0]]), 1)


def test_top_n_ties_match_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float32)  # many ties
    full = np.lexsort((np.broadcast_to(np.arange(30), scores.shape), -scores), axis=1)
    for n in (1, 7, 30):
        np.testing.assert_array_equal(top_n(scores, n), full[:, :n])


# --- loading files ----------------------------------------------------------------------------------


ML_LATEST = """userId,movieId,rating,timestamp
1,10,4.0,964982703
1,20,3.5,964981247
1,30,3.0,964982224
1,40,5.0,964983815
2,10,0.5,847434962
2,20,4.5,1106635946
2,50,4.0,1510577970
3,30,5.0,1305696483
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_loads_movielens_ratings_csv_as_is(tmp_path, newline):
    path = tmp_path / "ratings.csv"
    path.write_bytes(ML_LATEST.replace("\n", newline).encode())
    data = load_interactions(path, min_interactions=2)
    # ratings > 3.5 kept (Liang et al.'s filter): user 1 -> {10, 40} (20 at exactly 3.5 is not), user 2 -> {20, 50},
    # user 3 -> {30} (dropped: 1 < 2); item 30 then has no kept user (user 1 rated it 3.0) and is dropped
    assert data.user_ids.dtype == np.int64 and data.item_ids.dtype == np.int64
    np.testing.assert_array_equal(data.user_ids, [1, 2])
    np.testing.assert_array_equal(data.item_ids, [10, 20, 40, 50])
    np.testing.assert_array_equal(data.matrix.toarray(), [[1, 0, 1, 0], [0, 1, 0, 1]])
    assert data.matrix.dtype == np.float32 and sparse.isspmatrix_csr(data.matrix)
    assert (data.n_users, data.n_items) == (2, 4) and "ratings.csv" in data.source


def test_threshold_binarises(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(ML_LATEST)
    strict = load_interactions(path, threshold=4.5, min_interactions=1)
    rows, cols = strict.matrix.nonzero()
    # ratings > 4.5: (1, 40, 5.0), (3, 30, 5.0); 4.5 itself is not above
    assert set(zip(strict.user_ids[rows].tolist(), strict.item_ids[cols].tolist())) == {(1, 40), (3, 30)}
    inclusive = load_interactions(path, threshold=4.49, min_interactions=1)  # how to keep 4.5 too
    rows, cols = inclusive.matrix.nonzero()
    assert set(zip(inclusive.user_ids[rows].tolist(), inclusive.item_ids[cols].tolist())) == {(1, 40), (2, 20), (3, 30)}
    assert load_interactions(path, threshold=0.0, min_interactions=1).matrix.nnz == 8


U_DATA = (  # ml-100k: user item rating timestamp, tab-separated, no header
    "196\t242\t3\t881250949\n196\t302\t4\t891717742\n186\t302\t5\t891717742\n"
    "196\t377\t5\t878887116\n186\t346\t1\t884182806\n186\t474\t4\t884182806\n"
)


def test_loads_u_data_tab_without_header(tmp_path):
    path = tmp_path / "u.data"
    path.write_text(U_DATA)
    data = load_interactions(path, min_interactions=1)
    # rating > 3.5: 186 -> {302, 474}, 196 -> {302, 377}; items 242 (3) and 346 (1) disappear
    np.testing.assert_array_equal(data.user_ids, [186, 196])
    np.testing.assert_array_equal(data.item_ids, [302, 377, 474])
    np.testing.assert_array_equal(data.matrix.toarray(), [[1, 0, 1], [1, 1, 0]])


def test_loads_ml_1m_ratings_dat(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    data = load_interactions(path, min_interactions=1)
    np.testing.assert_array_equal(data.user_ids, [1, 2])
    np.testing.assert_array_equal(data.item_ids, [1193])


def test_string_ids_two_columns_and_implicit_counts(tmp_path):
    with_header = tmp_path / "clicks.csv"
    with_header.write_text("user,item\nalice,book-a\nalice,book-b\nbob,book-a\n\nalice,book-a\n")
    data = load_interactions(with_header, min_interactions=1)
    assert data.user_ids.tolist() == ["alice", "bob"] and data.item_ids.tolist() == ["book-a", "book-b"]
    np.testing.assert_array_equal(data.matrix.toarray(), [[1, 1], [1, 0]])  # the repeated pair is still 1
    counts = load_interactions(with_header, min_interactions=1, implicit=True)
    np.testing.assert_array_equal(counts.matrix.toarray(), [[2, 1], [1, 0]])  # repeats add up
    assert data.user_index("bob") == 1
    no_header = tmp_path / "clicks.tsv"
    no_header.write_text("u1\ti1\nu1\ti2\nu2\ti1\n")
    assert load_interactions(no_header, min_interactions=1).matrix.nnz == 3  # 'u1,i1' is data, not a header


def test_implicit_ignores_ratings_and_counts_rows(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("1,10,1.0,1\n1,10,5.0,2\n1,20,2.0,3\n")
    data = load_interactions(path, implicit=True, min_interactions=1)
    np.testing.assert_array_equal(data.matrix.toarray(), [[2, 1]])  # low ratings count too


def test_quoted_string_ids_and_mixed_id_types(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('user,item,rating\n"Smith, J",tt0111161,5\n"Smith, J",tt0068646,4\n7,tt0111161,4\n')
    data = load_interactions(path, min_interactions=1)
    assert data.user_ids.tolist() == ["7", "Smith, J"]  # one non-integer id makes all of them strings
    assert data.item_ids.tolist() == ["tt0068646", "tt0111161"]


def test_min_interactions_drops_users_then_items(tmp_path):
    path = tmp_path / "u.data"
    path.write_text(U_DATA + "999\t555\t5\t1\n")
    data = load_interactions(path, min_interactions=2)
    assert 999 not in data.user_ids and 555 not in data.item_ids
    with pytest.raises(DataError, match=r"min_interactions=3 .*the most any user has is 2"):
        load_interactions(path, min_interactions=3)


def test_many_chunks_give_the_same_result(tmp_path, monkeypatch):
    data = make_interactions(300, 80, 4, random_state=0)
    rows, cols = data.matrix.nonzero()
    path = tmp_path / "big.csv"
    path.write_text("".join(f"u{r},{c},5\n" for r, c in zip(rows, cols)))
    whole = load_interactions(path)
    monkeypatch.setattr(inter, "_CHUNK_BYTES", 100)  # about ten rows per chunk
    chunked = load_interactions(path)
    np.testing.assert_array_equal(whole.item_ids, chunked.item_ids)
    np.testing.assert_array_equal(whole.user_ids, chunked.user_ids)
    assert (whole.matrix != chunked.matrix).nnz == 0 and whole.matrix.nnz == data.matrix.nnz
    lines = path.read_text().splitlines()
    lines[500] = "u1,2,five"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 501"):
        load_interactions(path)


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,4.0,1\n1,30,4.0\n", 4, "3 fields"),
        ("userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,great,1\n", 3, "'great' is not a number"),
        ("1\t10\t4\t1\n1\t20\t4\t1\n\n1\t30\tnan\t1\n", 4, "not finite"),
        ("1,10,4\n,20,4\n", 2, "user id is empty"),
        ("1,2,3,4,5\n", 1, "5 fields"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, text, line, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        load_interactions(path, min_interactions=1)
    message = str(info.value)
    assert f"line {line}" in message and "bad.csv" in message and "\n" not in message


def test_empty_results_say_which_filter(tmp_path):
    path = tmp_path / "low.csv"
    path.write_text("1,10,1.0\n1,20,2.0\n")
    with pytest.raises(DataError, match=r"threshold=3.5 .*from 1 to 2"):
        load_interactions(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    with pytest.raises(DataError, match="is empty"):
        load_interactions(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError, match="no data rows"):
        load_interactions(header_only)
    with pytest.raises(DataError, match="does not exist"):
        load_interactions(tmp_path / "missing.csv")


# --- the Interactions container --------------------------------------------------------------------


def test_interactions_user_index_and_subset():
    data = make_interactions(20, 30, 2, items_per_user=(3, 5), random_state=0)
    assert data.user_index(7) == 7 and data.user_index(np.int64(3)) == 3
    with pytest.raises(DataError, match="unknown user id 99"):
        data.user_index(99)
    with pytest.raises(DataError, match="unknown user id '7'"):
        data.user_index("7")
    part = data.subset_users([5, 2])
    np.testing.assert_array_equal(part.user_ids, [5, 2])
    assert (part.matrix != data.matrix[[5, 2]]).nnz == 0 and part.n_items == 30 and part.user_index(2) == 1
    with pytest.raises(InvalidInputError, match="must match"):
        Interactions(data.matrix, data.user_ids[:3], data.item_ids, "bad")
    assert ds.make_interactions is make_interactions and ds.load_interactions is load_interactions and ds.Interactions is Interactions


# --- synthetic data ---------------------------------------------------------------------------------


def test_make_interactions_is_seeded_and_well_formed():
    a = make_interactions(300, 100, 4, items_per_user=(5, 15), random_state=3)
    b = make_interactions(300, 100, 4, items_per_user=(5, 15), random_state=3)
    c = make_interactions(300, 100, 4, items_per_user=(5, 15), random_state=4)
    assert (a.matrix != b.matrix).nnz == 0 and (a.matrix != c.matrix).nnz > 0
    per_user = a.matrix.getnnz(axis=1)
    assert per_user.min() >= 5 and per_user.max() <= 15 and set(a.matrix.data) == {1.0}
    np.testing.assert_array_equal(a.user_ids, np.arange(300))
    np.testing.assert_array_equal(a.item_ids, np.arange(100))


def _group_overlap(data, n_groups):
    """Mean number of shared items for pairs of users in the same group and in different groups."""
    co = (data.matrix @ data.matrix.T).toarray()  # (n_users, n_users) shared-item counts
    group = np.arange(data.n_users) % n_groups
    same = group[:, None] == group[None, :]
    off_diagonal = ~np.eye(data.n_users, dtype=bool)
    return co[same & off_diagonal].mean(), co[~same].mean()


def test_make_interactions_plants_user_groups():
    data = make_interactions(400, 200, 4, random_state=0)
    same, different = _group_overlap(data, 4)
    assert same > 2.5 * different  # about 10.8 vs 3.5 shared items: the hits of every block are popular everywhere
    rows, cols = data.matrix.nonzero()
    in_block = np.mean(cols // 50 == rows % 4)  # blocks of 200 / 4 = 50 items; user u is in group u % 4
    assert 0.7 < in_block < 0.9
    flat = make_interactions(400, 200, 4, in_group=0.0, random_state=0)  # no groups: overlap the same everywhere
    same, different = _group_overlap(flat, 4)
    assert same == pytest.approx(different, rel=0.15)


def test_make_interactions_rejects_impossible_settings():
    with pytest.raises(InvalidInputError, match="items_per_user"):
        make_interactions(10, 20, 2, items_per_user=(5, 30))
    with pytest.raises(InvalidInputError, match="in_group=1"):
        make_interactions(10, 20, 4, items_per_user=(3, 8), in_group=1.0)


# --- the evaluation protocol ----------------------------------------------------------------------


def test_split_users_partitions_and_is_seeded():
    train, validation, test = split_users(100, 15, random_state=0)
    assert (len(train), len(validation), len(test)) == (70, 15, 15)
    assert np.array_equal(np.sort(np.concatenate([train, validation, test])), np.arange(100))
    assert all(np.all(np.diff(part) > 0) for part in (train, validation, test))
    again = split_users(100, 15, random_state=0)
    assert all(np.array_equal(x, y) for x, y in zip(again, (train, validation, test)))
    with pytest.raises(InvalidInputError, match="no training users"):
        split_users(10, 5, random_state=0)


def test_fold_in_split_partitions_every_row():
    data = make_interactions(50, 60, 3, items_per_user=(2, 30), random_state=0).matrix.tolil()
    data[0, :] = 0
    data[0, 5] = 1  # a user with a single interaction
    data[1, :] = 0  # and one with none
    matrix = data.tocsr()
    matrix.eliminate_zeros()
    fold_in, heldout = fold_in_split(matrix, fraction=0.2, random_state=0)
    assert fold_in.shape == heldout.shape == matrix.shape
    assert (fold_in + heldout != matrix).nnz == 0  # together they are the original
    assert fold_in.multiply(heldout).nnz == 0  # and they share nothing
    n = matrix.getnnz(axis=1)
    expected = np.where(n >= 2, np.clip(np.floor(0.2 * n + 1e-9), 1, n - 1), 0)
    np.testing.assert_array_equal(heldout.getnnz(axis=1), expected)
    assert heldout.getnnz(axis=1)[:2].tolist() == [0, 0] and fold_in[0, 5] == 1
    again = fold_in_split(matrix, fraction=0.2, random_state=0)
    assert (again.heldout != heldout).nnz == 0
