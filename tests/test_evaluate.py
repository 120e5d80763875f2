"""Evaluation (spec §7): the metrics' sanity properties, the reference classifier and its cache, and
that evaluate() ranks obviously better models above obviously worse ones. GENLAB_CACHE_DIR points
at a temporary folder for the whole module, so the user's cache is never touched."""

import json
import math
import os

import numpy as np
import pytest

import genlab
from genlab import GAN, VAE, InvalidInputError, runs
from genlab.evaluate import (
    DESCRIPTIONS,
    cache_dir,
    class_histogram,
    conditional_accuracy,
    density_coverage,
    detect_toy,
    evaluate,
    evaluate_run,
    frechet_distance,
    inception_score,
    kernel_distance,
    memorisation,
    mode_coverage,
    precision_recall,
    reference_features,
    reference_metrics,
)


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("genlab-cache")
        mp.setenv("GENLAB_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def split(digits):
    X, y = digits
    order = np.random.default_rng(0).permutation(len(X))
    train, test = order[:1437], order[1437:]
    return X[train], y[train], X[test], y[test]


@pytest.fixture(scope="module")
def features(split):
    X_train, y_train, _, _ = split
    return reference_features(X_train, y_train)


@pytest.fixture(scope="module")
def vaes(split):
    X_train, _, _, _ = split
    trained = VAE(latent_dim=8, epochs=20, random_state=0).fit(X_train)
    untrained = VAE(latent_dim=8, epochs=1, lr=0.0, random_state=0).fit(X_train)  # the initial weights
    return trained, untrained


# -- Fréchet distance ----------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero(features, split):
    f = features.features(split[2])
    assert abs(frechet_distance(f, f)) < 1e-6
    rank_deficient = np.random.default_rng(0).standard_normal((300, 40))
    rank_deficient[:, :15] = 0.0  # dead units, as ReLU features have
    assert abs(frechet_distance(rank_deficient, rank_deficient)) < 1e-6


def test_fid_train_test_is_much_smaller_than_train_noise(features, split):
    X_train, _, X_test, _ = split
    noise = np.random.default_rng(0).random(X_test.shape).astype(np.float32)
    f_train = features.features(X_train)
    assert frechet_distance(f_train, features.features(X_test)) < 0.2 * frechet_distance(f_train, features.features(noise))


def test_fid_matches_the_closed_form_for_gaussians():
    # FD between N(0, I) and N(m, s²I) in d dims is |m|² + d (1 - s)²
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((200_000, 3)), 1.0 + 2.0 * rng.standard_normal((200_000, 3))
    assert frechet_distance(a, b) == pytest.approx(3 * 1.0 + 3 * (1 - 2) ** 2, rel=0.02)


# -- KID --------------------------------------------------------------------------------------------------


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    kids, errors = [], []
    for seed in range(12):
        kid, se = kernel_distance(rng.standard_normal((300, 16)), rng.standard_normal((500, 16)), random_state=seed)
        kids.append(kid)
        errors.append(se)
        assert abs(kid) < 2 * se
    assert abs(np.mean(kids)) < 3 * np.std(kids, ddof=1) / math.sqrt(len(kids))
    shifted, se = kernel_distance(rng.standard_normal((300, 16)), rng.standard_normal((500, 16)) + 0.5)
    assert shifted > 10 * se


def test_kid_of_real_train_and_test_features_is_indistinguishable_from_zero(features, split):
    kid, se = kernel_distance(features.features(split[0][:600]), features.features(split[2]))
    assert abs(kid) < 2 * se


def test_kid_with_subsets_for_large_sets():
    rng = np.random.default_rng(1)
    kid, se = kernel_distance(rng.standard_normal((900, 4)), rng.standard_normal((700, 4)), n_subsets=10, subset_size=200)
    assert math.isfinite(se) and abs(kid) < 2 * se
    with pytest.raises(InvalidInputError, match="subset_size"):
        kernel_distance(rng.standard_normal((10, 2)), rng.standard_normal((10, 2)), subset_size=2)


# -- manifolds -------------------------------------------------------------------------------------------


def test_precision_recall_and_coverage_are_one_for_identical_sets():
    f = np.random.default_rng(0).standard_normal((400, 8))
    assert precision_recall(f, f) == (1.0, 1.0)
    assert density_coverage(f, f, k=3) == (1.0, 1.0)  # open balls: each holds its centre and k-1 neighbours


def test_density_is_about_one_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((2000, 4)), rng.standard_normal((2000, 4))
    density, coverage = density_coverage(real, fake)
    precision, recall = precision_recall(real, fake)
    assert abs(density - 1) < 0.1 and coverage > 0.85 and precision > 0.85 and recall > 0.85
    far = rng.standard_normal((500, 4)) + 10
    assert precision_recall(real, far)[0] == 0.0 and density_coverage(real, far) == (0.0, 0.0)


def test_knn_metrics_need_more_than_k_samples():
    f = np.zeros((3, 2))
    with pytest.raises(InvalidInputError, match="at least 4"):
        precision_recall(f, np.ones((10, 2)), k=3)
    with pytest.raises(InvalidInputError, match="at least 4"):
        density_coverage(f, np.ones((10, 2)), k=3)


# -- class scores, memorisation, toys ------------------------------------------------------------------------


def test_class_histogram_on_hand_built_probabilities():
    proba = np.array([[0.9, 0.05, 0.05, 0.0], [0.8, 0.1, 0.1, 0.0], [0.1, 0.7, 0.2, 0.0], [0.2, 0.2, 0.6, 0.0]])
    hist = class_histogram(proba)
    np.testing.assert_allclose(hist["histogram"], [0.5, 0.25, 0.25, 0.0])
    assert hist["entropy"] == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    assert hist["classes_covered"] == 3
    one_class = class_histogram(np.tile([[0.0, 1.0]], (5, 1)))
    assert one_class["entropy"] == 0.0 and one_class["classes_covered"] == 1
    # one stray sample out of 1000 is under 10% of a fair share: that class is not covered
    stray = np.tile([[1.0, 0.0]], (1000, 1))
    stray[0] = [0.0, 1.0]
    assert class_histogram(stray)["classes_covered"] == 1 and class_histogram(stray, min_share=0)["classes_covered"] == 2
    with pytest.raises(InvalidInputError, match="sum to 1"):
        class_histogram([[0.5, 0.6]])


def test_inception_score_and_conditional_accuracy():
    confident = np.eye(4)[np.arange(40) % 4]
    assert inception_score(confident) == pytest.approx(4.0, rel=1e-6)
    assert inception_score(np.tile([[1.0, 0.0, 0.0, 0.0]], (10, 1))) == pytest.approx(1.0)
    assert inception_score(np.full((10, 4), 0.25)) == pytest.approx(1.0)
    assert conditional_accuracy(confident, np.arange(40) % 4) == 1.0
    assert conditional_accuracy(confident, (np.arange(40) + 1) % 4) == 0.0


def test_memorisation_flags_copies_and_not_fresh_data():
    rng = np.random.default_rng(0)
    train, heldout, fresh = rng.standard_normal((500, 6)), rng.standard_normal((200, 6)), rng.standard_normal((200, 6))
    copies = memorisation(train[50:100] + 1e-3, train, heldout)
    assert copies["ratio"] < 0.01
    np.testing.assert_array_equal(copies["nearest_train"], np.arange(50, 100))
    assert copies["sample_distance"][copies["order"][0]] == copies["sample_distance"].min()
    assert 0.7 < memorisation(fresh, train, heldout)["ratio"] < 1.4


def test_mode_coverage_semantics():
    modes = genlab.datasets.toy_modes("ring8")
    centres, std = np.asarray(modes.centres), float(modes.std)
    samples = np.concatenate([centres[:5] + 0.02,  # 2.8 std away: high quality, modes 0-4
                              centres[5:6] + 0.05,  # 7 std away: nearest is mode 5 but not high quality
                              [[0.0, 0.0]]])
    result = mode_coverage(samples, centres, std)
    assert result["modes"] == 5 and result["n_modes"] == 8
    assert result["high_quality"] == pytest.approx(5 / 7)
    np.testing.assert_array_equal(result["counts"], [1, 1, 1, 1, 1, 0, 0, 0])
    assert result["median_distance"] == pytest.approx(0.02 * math.sqrt(2))
    X, _ = genlab.datasets.load("grid25", n_samples=500, random_state=0)
    assert detect_toy(X) == "grid25" and detect_toy(X * 3) is None and detect_toy(np.zeros((5, 3))) is None


# -- the reference classifier and its cache ------------------------------------------------------------------


def test_reference_classifier_on_digits(features, split):
    assert features.kind == "classifier" and features.test_accuracy >= 0.9
    assert f"{100 * features.test_accuracy:.1f}%" in features.note and "CNN" in features.note
    f = features.features(split[2])
    assert f.shape == (len(split[2]), 128) and f.dtype == np.float64
    proba = features.predict_proba(split[2])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba.argmax(axis=1) == split[3]).mean() >= 0.9


def test_reference_classifier_is_cached_and_never_pickled(features, split, module_cache):
    assert cache_dir() == module_cache
    weights = features.path.with_suffix(".safetensors")
    mtime = os.stat(weights).st_mtime_ns
    again = reference_features(split[0], split[1])
    assert again.cached and os.stat(weights).st_mtime_ns == mtime
    np.testing.assert_array_equal(again.features(split[2][:20]), features.features(split[2][:20]))
    assert {p.suffix for p in (module_cache / "reference").rglob("*") if p.is_file()} <= {".json", ".safetensors"}


def test_a_corrupt_cache_entry_is_retrained(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE_DIR", str(tmp_path))
    X, y = digits[0][:300], digits[1][:300]
    first = reference_features(X, y, random_state=1)
    weights = first.path.with_suffix(".safetensors")
    weights.write_bytes(b"\x80\x04 not safetensors")
    with pytest.warns(RuntimeWarning, match="retraining"):
        second = reference_features(X, y, random_state=1)
    assert not second.cached and second.test_accuracy == first.test_accuracy
    assert reference_features(X, y, random_state=1).cached  # the retrained entry is good again
    first.path.write_text("{ truncated")
    with pytest.warns(RuntimeWarning, match="retraining"):
        assert not reference_features(X, y, random_state=1).cached


def test_unlabelled_data_falls_back_to_an_autoencoder(digits):
    X = digits[0][:200]
    fe = reference_features(X)
    assert fe.kind == "autoencoder" and fe.test_accuracy is None and "no labels" in fe.note
    assert not hasattr(fe, "predict_proba")
    assert fe.features(X).shape == (200, 32)
    assert reference_features(X).cached


def test_short_vectors_are_their_own_features():
    X, y = genlab.datasets.load("ring8", n_samples=100, random_state=0)
    fe = reference_features(X, y)
    assert fe.kind == "raw"
    np.testing.assert_array_equal(fe.features(X), X.astype(np.float64))


def test_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GENLAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "genlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "genlab"


# -- evaluate(): models ranked as they should be ----------------------------------------------------------


def test_evaluate_ranks_trained_above_untrained_above_nothing_and_real_data_first(vaes, features, split):
    X_train, y_train, X_test, y_test = split
    trained, untrained = (evaluate(m, X_test, X_train=X_train, y_train=y_train, n_samples=400, n_importance=20,
                                   features=features) for m in vaes)
    for key in ("reconstruction_mse", "reconstruction_bce", "elbo", "nll", "bits_per_dim", "frechet_distance", "kid",
                "precision", "recall", "density", "coverage", "class_entropy", "classes_covered", "inception_score",
                "memorisation_ratio"):
        assert key in trained and key in DESCRIPTIONS
    assert "conditional_accuracy" not in trained and "mode_coverage" not in trained
    assert trained["frechet_distance"] < untrained["frechet_distance"]
    assert trained["nll"] < untrained["nll"] and trained["elbo"] > untrained["elbo"]
    assert trained["reconstruction_mse"] < untrained["reconstruction_mse"]
    assert trained["nll"] <= -trained["elbo"] + 1.0  # IWAE is the tighter bound
    real = reference_metrics(X_test, X_train=X_train, n_samples=400, features=features)
    assert real["frechet_distance"] < 0.2 * trained["frechet_distance"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8 and real["classes_covered"] == 10


def test_conditional_accuracy_is_high_for_a_trained_conditional_model(split, features):
    X_train, y_train, X_test, y_test = split
    cvae = VAE(latent_dim=8, conditional=True, epochs=20, random_state=0).fit(X_train, y_train)
    metrics = evaluate(cvae, X_test, y_test, X_train=X_train, y_train=y_train, n_samples=300, n_importance=10, features=features)
    assert metrics["conditional_accuracy"] > 0.8 and metrics["classes_covered"] == 10
    with pytest.raises(InvalidInputError, match="conditional"):
        evaluate(cvae, X_test, features=features)


def test_evaluate_rejects_what_it_cannot_measure(vaes, split):
    X_test = split[2]
    with pytest.raises(InvalidInputError, match="VAE is not fitted yet"):
        evaluate(VAE(), X_test)
    with pytest.raises(InvalidInputError, match="fitted Autoencoder, VAE or GAN"):
        evaluate(genlab.MultVAE(), X_test)
    with pytest.raises(InvalidInputError, match="at least 10"):
        evaluate(vaes[0], X_test[:5])
    with pytest.raises(InvalidInputError, match="toy"):
        evaluate(vaes[0], X_test, toy="ring8")


def test_toy_metrics_on_ring8():
    X, _ = genlab.datasets.load("ring8", n_samples=1200, random_state=0)
    gan = GAN(epochs=2, random_state=0).fit(X[:1000])
    metrics = evaluate(gan, X[1000:], X_train=X[:1000], n_samples=300)
    assert {"mode_coverage", "modes_captured", "high_quality", "frechet_distance", "precision"} <= set(metrics)
    assert "class_entropy" not in metrics  # raw 2-D features: no classifier
    real = reference_metrics(X[1000:], X_train=X[:1000], n_samples=300, features=reference_features(X[:1000]))
    assert real["mode_coverage"] == 1.0 and real["high_quality"] > 0.95


# -- evaluate_run and metrics.json -------------------------------------------------------------------------------


def test_evaluate_run_writes_metrics_json(tmp_path):
    run_dir = tmp_path / "vae"
    runs.train_run(runs.RunSettings("vae", "digits", {"epochs": 2, "latent_dim": 2, "n_importance": 20, "random_state": 0}),
                   run_dir, verbose=0)
    doc = evaluate_run(run_dir, n_samples=300)
    on_disk = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert on_disk == doc
    assert list(doc)[:5] == ["format", "version", "model", "data", "n_heldout"]
    assert doc["format"] == "genlab-metrics" and doc["version"] == 1 and doc["model"] == "VAE" and doc["data"] == "digits"
    assert doc["n_heldout"] == 180  # the run's own validation split: ceil(0.1 × 1797)
    assert doc["feature_extractor"]["kind"] == "classifier" and doc["feature_extractor"]["test_accuracy"] >= 0.9
    assert {"elbo", "nll", "frechet_distance", "kid", "precision"} <= set(doc["metrics"])
    assert set(doc["descriptions"]) == set(doc["metrics"]) and set(doc["reference"]) <= set(doc["metrics"])
    assert "nll" not in doc["reference"]  # likelihoods have no real-data reference
    assert doc["reference"]["frechet_distance"] < doc["metrics"]["frechet_distance"]


def test_evaluate_run_holds_out_20_percent_without_a_validation_split(tmp_path):
    data = tmp_path / "data.npz"
    X, y = genlab.datasets.load("digits")
    np.savez(data, X=X[:400], y=y[:400])
    run_dir = tmp_path / "gan"
    runs.train_run(runs.RunSettings("gan", str(data), {"epochs": 1, "conditional": True, "random_state": 3}), run_dir, verbose=0)
    doc = evaluate_run(run_dir, n_samples=200)
    assert doc["n_heldout"] == 80 and "trained on these rows" in doc["heldout"]
    assert "conditional_accuracy" in doc["metrics"] and "conditional_accuracy" in doc["reference"]
    assert "elbo" not in doc["metrics"]
    np.savez(data, X=X[:400][::-1], y=y[:400][::-1])  # the data changed: the split cannot be rebuilt
    with pytest.raises(InvalidInputError, match="changed"):
        evaluate_run(run_dir)
    assert evaluate_run(run_dir, data=(X[:400], y[:400]), n_samples=200)["metrics"] == doc["metrics"]
