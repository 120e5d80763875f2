"""EASE (Steck, WWW 2019; spec §6): the closed form against independent references, λ chosen on validation users,
a clear win over popularity on planted groups, scikit-learn conventions, save/load, and the memory cap."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy import sparse
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import genlab
from genlab import EASE, InvalidInputError, ModelFileError, MultVAE, Popularity
from genlab.data.protocol import fold_in_split
from genlab.estimators import ease as ease_module
from genlab.evaluate import ndcg_at_k, recall_at_k


@pytest.fixture(scope="module")
def fitted(planted):
    return EASE(random_state=0).fit(planted[0])


def _counts(n_users=120, n_items=23, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.poisson(0.3, size=(n_users, n_items)).astype(np.float32)  # counts, not only 0/1
    return sparse.csr_matrix(X)


@pytest.mark.parametrize("block", [2048, 5])  # one block, and the blocked Gram matrix and mirror across five-item blocks
def test_closed_form_equals_dense_references(block, monkeypatch):
    monkeypatch.setattr(ease_module, "_BLOCK", block)
    X = _counts()
    lam = 7.5
    B = EASE(lam).fit(X).weights_
    x = X.toarray().astype(np.float64)
    P = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    np.testing.assert_allclose(B, np.eye(len(P)) - P / np.diag(P), rtol=0, atol=1e-12)  # B = I − P·diag(P)⁻¹
    assert np.all(np.diag(B) == 0.0) and B.dtype == np.float64 and B.flags.c_contiguous
    # independently: column j is the ridge regression of item j on the other items (what the zero diagonal means)
    for j in (0, 11, x.shape[1] - 1):
        others = np.delete(np.arange(x.shape[1]), j)
        a = x[:, others]
        b = np.linalg.solve(a.T @ a + lam * np.eye(len(others)), a.T @ x[:, j])
        np.testing.assert_allclose(B[others, j], b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(EASE(lam).fit(X).item_scores(X[:7]), x[:7] @ B, atol=1e-12)


def test_l2_is_the_grid_value_with_the_best_direct_validation_ndcg(planted, fitted):
    X = planted[0]
    rng = np.random.default_rng(fitted.seed_)  # the held-out users, drawn again by hand
    val_rows = np.sort(rng.permutation(X.shape[0])[:X.shape[0] // 10])
    np.testing.assert_array_equal(fitted.validation_rows_, val_rows)
    train = X[np.setdiff1d(np.arange(X.shape[0]), val_rows)].toarray().astype(np.float64)
    fold_in, heldout = fold_in_split(X[val_rows], fraction=0.2, random_state=fitted.seed_)
    ranked = np.diff(heldout.indptr) > 0
    fold_in, heldout = fold_in[ranked], heldout[ranked]
    direct = {}
    for lam in ease_module.L2_GRID:
        P = np.linalg.inv(train.T @ train + lam * np.eye(train.shape[1]))
        B = np.eye(len(P)) - P / np.diag(P)
        scores = fold_in.toarray() @ B
        scores[fold_in.nonzero()] = -np.inf
        direct[lam] = (np.mean(ndcg_at_k(scores, heldout, 100)), np.mean(recall_at_k(scores, heldout, 20)), B)
    recorded = {r["l2"]: r for r in fitted.validation_scores_}
    assert list(recorded) == list(ease_module.L2_GRID)
    for lam, (ndcg, recall, _) in direct.items():
        assert recorded[lam]["ndcg_at_100"] == pytest.approx(ndcg, abs=1e-9)
        assert recorded[lam]["recall_at_20"] == pytest.approx(recall, abs=1e-9)
    best = max(direct, key=lambda lam: direct[lam][0])
    assert best not in (ease_module.L2_GRID[0], ease_module.L2_GRID[-1])  # an interior optimum: the choice means something
    assert best != max(direct, key=lambda lam: direct[lam][1])  # here Recall@20 would pick another λ: NDCG@100 decides
    assert fitted.l2_ == best
    np.testing.assert_allclose(fitted.weights_, direct[best][2], atol=1e-9)  # the kept weights: training users, chosen λ


def test_validation_users_are_the_ones_multvae_holds_out_with_the_same_seed(planted):
    X = planted[0][:300]
    vae = MultVAE(hidden=(8,), latent_dim=4, epochs=1, batch_size=300, validation_users=30, random_state=5).fit(X)
    np.testing.assert_array_equal(EASE(validation_users=30, random_state=5).fit(X).validation_rows_, vae.validation_rows_)


def test_beats_popularity_clearly_on_planted_groups(planted, fitted):
    train, test = planted
    ours, popular = fitted.ranking_metrics(test), Popularity().fit(train).ranking_metrics(test)
    assert ours["ndcg_at_100"] > 1.5 * popular["ndcg_at_100"]
    assert ours["recall_at_20"] > 1.5 * popular["recall_at_20"]
    assert fitted.score(test) == pytest.approx(ours["ndcg_at_100"])
    recs = fitted.recommend(test[:10], n=5)
    assert recs.shape == (10, 5) and not any(set(r) & set(test[i].indices) for i, r in enumerate(recs))


def test_scikit_learn_conventions():
    model = EASE(3.0, validation_users=4, max_items=50, random_state=1)
    twin = clone(model)
    assert twin is not model and twin.get_params() == model.get_params() == {
        "l2": 3.0, "validation_users": 4, "max_items": 50, "verbose": 0, "random_state": 1}
    assert twin.set_params(l2=9.0).l2 == 9.0 and not hasattr(twin, "weights_")
    X = _counts(200, 15)
    search = GridSearchCV(EASE(validation_users=0), {"l2": [1.0, 100.0]}, cv=2).fit(X)  # score: NDCG@100
    assert search.best_params_["l2"] in (1.0, 100.0) and isinstance(search.best_estimator_, EASE)


def test_save_load_round_trip_and_tampered_files(fitted, planted, tmp_path):
    folder = genlab.save(fitted, tmp_path / "m")
    same = genlab.load(folder)
    assert type(same) is EASE and same.get_params() == fitted.get_params() and same.l2_ == fitted.l2_
    test = planted[1][:20]
    np.testing.assert_array_equal(same.item_scores(test), fitted.item_scores(test))
    np.testing.assert_array_equal(same.recommend(test, n=10), fitted.recommend(test, n=10))
    np.testing.assert_array_equal(same.validation_rows_, fitted.validation_rows_)
    assert same.validation_scores_ == json.loads(json.dumps(fitted.validation_scores_))
    with pytest.raises(InvalidInputError, match="Popularity"):
        genlab.save(Popularity().fit(planted[0]), tmp_path / "p")

    tensors = load_file(str(folder / "model.safetensors"))
    meta = json.loads((folder / "model.json").read_text())
    for name, bad in [("nan", {"fitted/weights_": torch.full_like(tensors["fitted/weights_"], float("nan"))}),
                      ("zero diagonal", {"fitted/weights_": tensors["fitted/weights_"] + torch.eye(500, dtype=torch.float64)}),
                      ("shape", {"fitted/weights_": tensors["fitted/weights_"][:, :499].contiguous()}),
                      ("float64", {"fitted/weights_": tensors["fitted/weights_"].float()}),
                      ("bfloat16", {"fitted/weights_": tensors["fitted/weights_"].bfloat16()})]:
        bad_folder = tmp_path / name.replace(" ", "_")
        bad_folder.mkdir()
        (bad_folder / "model.json").write_text(json.dumps(meta))
        save_file({**tensors, **bad}, str(bad_folder / "model.safetensors"))
        with pytest.raises(ModelFileError, match={"nan": "NaN", "zero diagonal": "zero diagonal", "shape": "expected",
                                                  "float64": "float64", "bfloat16": "bfloat16"}[name]):
            genlab.load(bad_folder)
    meta["fitted"]["l2_"] = -1
    (bad_folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="valid EASE"):
        genlab.load(bad_folder)


def test_past_the_memory_cap_fit_refuses_in_one_line():
    X = sparse.random(50, 120, density=0.1, format="csr", random_state=0, dtype=np.float32)
    with pytest.raises(InvalidInputError) as info:
        EASE(0.5, max_items=100).fit(X)
    message = str(info.value)
    assert "\n" not in message and "120 items" in message and "max_items=100" in message
    assert "0.1 MiB" in message and "max_items=120" in message and "--max-items 120" in message  # 8 · 120² bytes; how to raise it
    EASE(0.5, max_items=120).fit(X)  # at the cap: fits


@pytest.mark.parametrize("params, words", [({"l2": 0}, "l2 must be"), ({"l2": -1.0}, "l2 must be"), ({"l2": float("inf")}, "l2 must be"),
                                           ({"l2": "big"}, "l2 must be"), ({"l2": True}, "l2 must be"),
                                           ({"max_items": 0}, "max_items"), ({"validation_users": -1}, "validation_users"),
                                           ({"validation_users": 0}, "validation users")])
def test_bad_parameters_are_one_clear_error(params, words):
    with pytest.raises(InvalidInputError, match=words):
        EASE(**params).fit(_counts())


def test_auto_is_none_and_a_given_l2_scores_its_validation_users():
    X = _counts(200, 15)
    assert EASE("auto", random_state=0).fit(X).l2_ == EASE(None, random_state=0).fit(X).l2_
    given = EASE(30.0, validation_users=20, random_state=0).fit(X)
    assert [r["l2"] for r in given.validation_scores_] == [30.0] and len(given.validation_rows_) == 20
    plain = EASE(30.0).fit(X)  # a given λ and no validation_users: every user is fitted
    assert plain.validation_scores_ == [] and len(plain.validation_rows_) == 0
    with pytest.raises(InvalidInputError, match="not fitted"):
        EASE().recommend(X)
