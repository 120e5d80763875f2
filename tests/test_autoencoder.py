"""Contracts of genlab.Autoencoder: PCA equivalence, the 8-3-8 code, the sklearn API, inputs."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import genlab
from genlab import Autoencoder, InvalidInputError
from genlab.training import make_stepper

FAST = dict(epochs=2, batch_size=64, random_state=0)


def test_closed_form_linear_autoencoder_is_pca(digits):
    X, _ = digits
    flat = X.reshape(len(X), -1)
    ae = Autoencoder(10, arch="linear", validation_fraction=0).fit(X)
    pca = PCA(10).fit(flat)
    # components agree up to sign, explained variance exactly
    cos = np.abs(np.sum(ae.components_ * pca.components_, axis=1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    np.testing.assert_allclose(ae.explained_variance_, pca.explained_variance_, rtol=1e-5)
    # the codes are decorrelated with covariance diag(lambda)
    codes = ae.transform(X)
    np.testing.assert_allclose(np.cov(codes.T), np.diag(pca.explained_variance_), atol=1e-4)
    np.testing.assert_allclose(np.abs(codes), np.abs(pca.transform(flat)), atol=1e-4)
    np.testing.assert_allclose(ae.reconstruct(X).reshape(len(X), -1), pca.inverse_transform(pca.transform(flat)), atol=1e-5)


def test_gradient_linear_autoencoder_reaches_pca_error(digits):
    X, _ = digits
    flat = X.reshape(len(X), -1)
    pca = PCA(10).fit(flat)
    pca_error = ((pca.inverse_transform(pca.transform(flat)) - flat) ** 2).sum(1).mean()
    ae = Autoencoder(10, arch="linear", solver="gradient", epochs=200, lr=0.01, batch_size=128,
                     validation_fraction=0, random_state=0).fit(X)
    error = ((ae.reconstruct(X) - X) ** 2).reshape(len(X), -1).sum(1).mean()
    assert not hasattr(ae, "components_")
    assert pca_error <= error <= 1.01 * pca_error


def test_8_3_8_encoder_learns_a_3_bit_code():
    X, _ = genlab.datasets.load("onehot8")
    ae = Autoencoder(3, hidden=(), code_activation="sigmoid", loss="bce", validation_fraction=0, batch_size=8,
                     lr=0.05, epochs=2000, random_state=0).fit(X)
    assert (ae.reconstruct(X).argmax(axis=1) == np.arange(8)).all()
    bits = np.round(ae.transform(X)).astype(int)
    assert len({tuple(b) for b in bits}) == 8  # every input gets its own 3-bit code


@pytest.mark.parametrize("arch", ["mlp", "conv", "linear"])
def test_shapes_round_trip(arch, tiny_images):
    X, _ = tiny_images
    ae = Autoencoder(4, arch=arch, **FAST).fit(X)
    Z = ae.transform(X)
    assert Z.shape == (len(X), 4) and Z.dtype == np.float32
    assert ae.inverse_transform(Z).shape == X.shape
    assert ae.reconstruct(X).shape == X.shape
    assert ae.sample(5, random_state=0).shape == (5, *X.shape[1:])
    np.testing.assert_allclose(Autoencoder(4, arch=arch, **FAST).fit_transform(X), Z, rtol=1e-5, atol=1e-6)
    assert [k for k in vars(ae) if k.endswith("_") and not k.startswith("_")]  # fitted state ends in _


def test_vectors_keep_their_shape(digits):
    X = digits[0][:300].reshape(300, -1)
    ae = Autoencoder(4, **FAST).fit(X)
    assert ae.reconstruct(X).shape == (300, 64) and ae.n_features_in_ == 64


def test_same_seed_same_model_different_seed_different(tiny_images):
    X, _ = tiny_images
    a, b, c = (Autoencoder(4, **{**FAST, "random_state": s}).fit(X) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert not np.allclose(a.transform(X), c.transform(X))


def test_fit_leaves_global_rng_alone(tiny_images):
    X, _ = tiny_images
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    Autoencoder(4, **FAST).fit(X)
    assert torch.equal(torch_state, torch.get_rng_state())
    np.testing.assert_array_equal(np_state, np.random.get_state()[1])


def test_uint8_pixels_come_back_in_pixel_units(tiny_images):
    X = np.round(tiny_images[0] * 255).astype(np.uint8)
    ae = Autoencoder(8, **FAST).fit(X)
    assert (ae.scaling_.low, ae.scaling_.high) == (0.0, 255.0)
    assert ae.reconstruct(X).max() > 2.0  # in 0..255 units, not [0, 1]
    np.testing.assert_allclose(ae.transform(X), ae.transform(X.astype(np.float32)), atol=1e-5)


def test_bce_scales_out_of_range_data_and_undoes_it():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 2.0, size=(300, 6)).astype(np.float32)
    ae = Autoencoder(3, loss="bce", epochs=30, lr=1e-2, random_state=0).fit(X)
    assert ae.scaling_.low == pytest.approx(X.min()) and ae.scaling_.high == pytest.approx(X.max())
    R = ae.reconstruct(X)
    assert X.min() - 1e-4 <= R.min() and R.max() <= X.max() + 1e-4
    assert abs(R.mean() - X.mean()) < 0.5


def test_sklearn_clone_params_pipeline_and_grid_search(tiny_images):
    X, y = tiny_images
    ae = Autoencoder(4, **FAST)
    assert clone(ae).get_params() == ae.get_params()
    assert ae.set_params(latent_dim=6).latent_dim == 6
    flat = X.reshape(len(X), -1)
    pipe = Pipeline([("ae", Autoencoder(8, **FAST)), ("clf", LogisticRegression(max_iter=200))]).fit(flat, y)
    assert pipe.score(flat, y) > 0.3
    grid = GridSearchCV(Autoencoder(arch="linear"), {"latent_dim": [2, 8]}, cv=2).fit(flat)
    assert grid.best_params_ == {"latent_dim": 8}  # a bigger principal subspace reconstructs held-out data better
    assert grid.best_estimator_.transform(flat).shape == (len(flat), 8)


def test_train_step_changes_weights_and_eval_step_does_not(tiny_images):
    X, _ = tiny_images
    module = Autoencoder(4, **FAST).fit(X).module_
    batch = genlab.models.Batch(torch.from_numpy(X[:32]))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    module.eval_step(batch)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    module.train_step(batch, make_stepper(module))
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


@pytest.mark.parametrize("bad, match", [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
    (np.ones(10), "one sample"),
    (np.empty((0, 4)), "empty"),
    (np.array([["a", "b"]]), "dtype"),
    (np.array([[1, 2], [3]], dtype=object), "object"),
])
def test_bad_inputs_are_rejected_clearly(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        Autoencoder(2, **FAST).fit(bad)


def test_bad_parameters_and_misuse(tiny_images):
    X, _ = tiny_images
    with pytest.raises(InvalidInputError, match="latent_dim"):
        Autoencoder(0).fit(X)
    with pytest.raises(InvalidInputError, match="arch"):
        Autoencoder(2, arch="rnn").fit(X)
    with pytest.raises(InvalidInputError, match="images"):
        Autoencoder(2, arch="conv", **FAST).fit(X.reshape(len(X), -1))
    with pytest.raises(InvalidInputError, match="not fitted"):
        Autoencoder(2).transform(X)
    ae = Autoencoder(2, **FAST).fit(X)
    with pytest.raises(InvalidInputError, match="fitted on samples of shape"):
        ae.transform(X.reshape(len(X), -1))
    with pytest.raises(InvalidInputError, match="n_samples"):
        ae.sample(0)


def test_read_only_memory_mapped_input(tiny_images, tmp_path):
    import warnings

    np.save(tmp_path / "x.npy", tiny_images[0])
    X, _ = genlab.datasets.load(tmp_path / "x.npy")
    assert isinstance(X, np.memmap) and not X.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable arrays; genlab must not trigger it
        ae = Autoencoder(4, **FAST).fit(X)
        assert ae.reconstruct(X).shape == X.shape
