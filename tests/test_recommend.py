"""Mult-VAE / Mult-DAE / popularity (spec §6): they learn planted structure, rank only unseen items,
anneal β, keep the epoch with the best validation NDCG@100, and round-trip through save/load."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy import sparse

import genlab
from genlab import InvalidInputError, MultDAE, MultVAE, Popularity
from genlab.data.protocol import fold_in_split
from genlab.evaluate import ndcg_at_k
from genlab.models.base import Batch, SparseBatch
from genlab.models.multvae import MultVAEConfig, MultVAEModule
from genlab.training import SparseRows

FAST = dict(hidden=(64,), latent_dim=16, epochs=20, batch_size=100, random_state=0)


@pytest.fixture(scope="module")
def fitted(planted):
    return MultVAE(**FAST).fit(planted[0])


def test_sparse_rows_serve_batches_without_densifying():
    m = sparse.random(50, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    rows = SparseRows(m)
    batch = rows[torch.tensor([3, 1, 3])]
    assert isinstance(batch, SparseBatch) and len(batch) == 3 and batch.values.numel() == m[[3, 1, 3]].nnz
    np.testing.assert_array_equal(batch.to_dense().numpy(), m.toarray()[[3, 1, 3]])
    np.testing.assert_array_equal(rows[5:9].to_dense().numpy(), m.toarray()[5:9])
    assert len(rows) == 50 and rows.to("cpu")[0:1].shape == (1, 30)


@pytest.mark.parametrize("variational", [True, False])
def test_the_sparse_first_layer_computes_what_the_dense_one_does(variational):
    """Issue 13 item 3: normalisation, dropout and the first layer on the stored values only — same loss, same
    gradients and same scores as the dense row (no dropout, so that both draw the same noise)."""
    m = sparse.random(40, 300, density=0.05, format="csr", random_state=1, dtype=np.float32)
    m.data[:] = np.random.default_rng(0).integers(1, 4, m.nnz)  # counts, not only ones
    module = MultVAEModule(MultVAEConfig(n_items=300, hidden=(32,), latent_dim=8, dropout=0.0, variational=variational))
    sparse_batch, dense = SparseRows(m)[torch.arange(40)], torch.from_numpy(m.toarray())
    losses, grads = [], []
    for x in (sparse_batch, dense):
        module.zero_grad()
        loss = module.objective(Batch(x), torch.Generator().manual_seed(0))["loss"]
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in module.parameters()])
    torch.testing.assert_close(losses[0], losses[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    module.eval()
    torch.testing.assert_close(module.scores(sparse_batch), module.scores(dense))
    assert module.encoder.layers[0].weight.shape == (300, 32)  # items × hidden: a sparse row picks whole rows of it


def test_a_model_saved_before_the_sparse_layer_still_loads(fitted, planted, tmp_path):
    """Format 1 stored the first layer hidden × items (nn.Linear's layout); loading transposes it."""
    fitted.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    (tmp_path / "m" / "model.json").write_text(json.dumps({**meta, "format_version": 1}))
    tensors = load_file(tmp_path / "m" / "model.safetensors")
    key = "module/encoder.layers.0.weight"
    save_file({**tensors, key: tensors[key].t().contiguous()}, tmp_path / "m" / "model.safetensors")
    old = genlab.load(tmp_path / "m")
    np.testing.assert_allclose(old.item_scores(planted[1]), fitted.item_scores(planted[1]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_learns_planted_groups_far_better_than_popularity(cls, planted, fitted):
    train, test = planted
    model = fitted if cls is MultVAE else cls(**FAST).fit(train)
    ours = model.ranking_metrics(test)
    popular = Popularity().fit(train).ranking_metrics(test)
    assert ours["ndcg_at_100"] > 1.5 * popular["ndcg_at_100"]
    assert ours["recall_at_20"] > 1.5 * popular["recall_at_20"]
    assert model.score(test) == pytest.approx(ours["ndcg_at_100"])


def test_recommendations_are_unseen_distinct_and_best_first(fitted, planted):
    test = planted[1][:20]
    recs = fitted.recommend(test, n=10)
    assert recs.shape == (20, 10)
    scores = fitted.item_scores(test)
    for row, items in enumerate(recs):
        seen = set(test[row].indices)
        assert len(set(items)) == 10 and not seen & set(items)
        assert np.all(np.diff(scores[row, items]) <= 0)  # best first
        unseen = np.setdiff1d(np.arange(test.shape[1]), list(seen))
        assert scores[row, items[-1]] >= np.sort(scores[row, unseen])[-10]  # no unseen item beats the 10th


def test_beta_is_annealed_to_the_cap_and_the_dae_has_no_kl(fitted, planted):
    betas = [r["beta"] for r in fitted.history_]
    assert betas[0] < 0.05 and betas[-1] == pytest.approx(0.2) and np.all(np.diff(betas) >= 0)
    assert 0.08 < betas[7] < 0.1  # epoch 8 of 20 ends 8/20 / 0.8 = half way to the cap (its mean trails slightly)
    dae = MultDAE(**{**FAST, "epochs": 2}).fit(planted[0])
    assert all(r["kl"] == 0 and r["beta"] == 0 for r in dae.history_)


def test_the_epoch_with_the_best_validation_ndcg_is_kept(fitted, planted):
    val_ndcg = [r["val_ndcg_at_100"] for r in fitted.history_]
    assert fitted.best_epoch_ == int(np.argmax(val_ndcg)) + 1
    # recompute on the same validation users: the kept weights score exactly the recorded best
    assert len(fitted.validation_rows_) == planted[0].shape[0] // 10
    fold_in, heldout = fold_in_split(planted[0][fitted.validation_rows_], fraction=0.2, random_state=fitted.seed_)
    scores = fitted.item_scores(fold_in).astype(np.float64)
    scores[fold_in.nonzero()] = -np.inf
    assert np.nanmean(ndcg_at_k(scores, heldout, 100)) == pytest.approx(max(val_ndcg), abs=1e-5)


def test_save_load_round_trip(fitted, planted, tmp_path):
    fitted.save(tmp_path / "m")
    same = genlab.load(tmp_path / "m")
    assert type(same) is MultVAE
    np.testing.assert_array_equal(same.item_scores(planted[1][:5]), fitted.item_scores(planted[1][:5]))
    np.testing.assert_array_equal(same.transform(planted[1][:5]), fitted.transform(planted[1][:5]))


def test_bad_input_is_one_clear_error(fitted, planted):
    with pytest.raises(InvalidInputError, match="non-negative"):
        MultVAE(**FAST).fit(sparse.csr_matrix(-np.ones((10, 5))))
    with pytest.raises(InvalidInputError, match="items"):
        fitted.recommend(sparse.csr_matrix((3, 7)))
    with pytest.raises(InvalidInputError, match="positive integer"):
        fitted.recommend(planted[1][:2], n=0)
    with pytest.raises(InvalidInputError, match="not fitted"):
        MultVAE().recommend(planted[1][:2])
    with pytest.raises(InvalidInputError, match="leaves no user"):
        MultVAE(validation_users=10, **{k: v for k, v in FAST.items()}).fit(planted[1][:10])
    with pytest.raises(InvalidInputError, match="dropout"):
        MultVAE(dropout=1.0).fit(planted[1])


def test_validation_users_without_held_out_items_are_not_ranked(planted):
    X = planted[0].tolil()
    for row in range(0, X.shape[0], 3):  # a third of the users keep a single interaction: nothing to hold out
        X.rows[row], X.data[row] = X.rows[row][:1], X.data[row][:1]
    X = X.tocsr()
    model = MultVAE(**{**FAST, "epochs": 3, "validation_users": 300}).fit(X)  # two evaluation batches (256 + 44)
    fold_in, heldout = fold_in_split(X[model.validation_rows_], fraction=0.2, random_state=model.seed_)
    ranked = np.diff(heldout.indptr) > 0
    assert 0 < ranked.sum() < len(ranked)
    scores = model.item_scores(fold_in[ranked]).astype(np.float64)
    scores[fold_in[ranked].nonzero()] = -np.inf
    expected = float(np.mean(ndcg_at_k(scores, heldout[ranked], 100)))  # the mean over the users that can be ranked
    assert model.history_[model.best_epoch_ - 1]["val_ndcg_at_100"] == pytest.approx(expected, abs=1e-5)


def test_popularity_is_a_scikit_learn_estimator(planted):
    from sklearn.base import clone

    train, test = planted
    fitted = Popularity().fit(train)
    copy = clone(fitted)  # parameters only, no fitted state
    assert copy.get_params() == {} and not hasattr(copy, "item_counts_")
    assert (copy.fit(train).recommend(test[:5], n=10) == fitted.recommend(test[:5], n=10)).all()
