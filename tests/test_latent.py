"""Latent-space tools: the interpolation maths by hand, every tool against the estimator's own
transform / inverse_transform, and the figures (valid PNGs for images and for 2-D points)."""

import numpy as np
import pytest
from PIL import Image
from scipy.stats import norm

import genlab
from genlab import VAE, Autoencoder, InvalidInputError, plots
from genlab.latent import apply_attribute, attribute_vector, interpolate, lerp, manifold_grid, slerp, traverse, write_latent_figures

TINY = dict(hidden=(32,), epochs=2, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = genlab.datasets.load("digits")
    return X[:200].copy(), y[:200].copy()


@pytest.fixture(scope="module")
def ae(data):
    return Autoencoder(latent_dim=3, arch="mlp", **TINY).fit(data[0])


@pytest.fixture(scope="module")
def vae(data):
    return VAE(latent_dim=2, **TINY).fit(data[0])


@pytest.fixture(scope="module", params=[True, False], ids=["encoder_sees_label", "decoder_only_label"])
def cvae(request, data):
    return VAE(latent_dim=2, conditional=True, encoder_sees_label=request.param, **TINY).fit(*data)


def _label_kwargs(est, y):
    return {"y": y} if getattr(est, "conditional", False) else {}


# -- the pure maths ----------------------------------------------------------------------------
def test_lerp_by_hand_and_exact_end_points():
    np.testing.assert_allclose(lerp([0.0, 0.0], [2.0, 4.0], 3), [[0, 0], [1, 2], [2, 4]])
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(7), rng.standard_normal(7)
    for f in (lerp, slerp):
        path = f(a, b, 6)
        assert path.shape == (6, 7)
        np.testing.assert_array_equal(path[0], a)
        np.testing.assert_array_equal(path[-1], b)


def test_slerp_of_orthogonal_unit_vectors_stays_on_the_circle_at_even_angles():
    path = slerp([1.0, 0.0], [0.0, 1.0], 5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(path[2], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)  # 45° in the middle
    np.testing.assert_allclose(np.degrees(np.arctan2(path[:, 1], path[:, 0])), [0, 22.5, 45, 67.5, 90], atol=1e-9)


def test_slerp_interpolates_the_length_linearly_and_the_angle_evenly_in_any_dimension():
    np.testing.assert_allclose(np.linalg.norm(slerp([2.0, 0.0], [0.0, 4.0], 5), axis=1), [2, 2.5, 3, 3.5, 4])
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(10), 3 * rng.standard_normal(10)
    path = slerp(a, b, 7)
    unit = path / np.linalg.norm(path, axis=1, keepdims=True)
    angle_from_a = np.arccos(np.clip(unit @ (a / np.linalg.norm(a)), -1, 1))
    np.testing.assert_allclose(angle_from_a, np.linspace(0, angle_from_a[-1], 7), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linspace(np.linalg.norm(a), np.linalg.norm(b), 7))
    # on the great circle: every step lies in the plane of a and b
    basis, _ = np.linalg.qr(np.stack([a, b], axis=1))
    np.testing.assert_allclose(basis @ (basis.T @ path.T), path.T, atol=1e-9)


@pytest.mark.parametrize("z0, z1", [([1.0, 0.0], [3.0, 0.0]), ([1.0, 2.0], [-2.0, -4.0]), ([0.0, 0.0], [1.0, 1.0])],
                         ids=["parallel", "antiparallel", "zero"])
def test_slerp_falls_back_to_lerp_where_the_great_circle_is_undefined(z0, z1):
    np.testing.assert_allclose(slerp(z0, z1, 5), lerp(z0, z1, 5))


def test_interpolation_keeps_float32_and_rejects_bad_input():
    assert slerp(np.ones(3, np.float32), np.arange(3, dtype=np.float32), 4).dtype == np.float32
    assert lerp([0, 1], [1, 0], 3).dtype == np.float64
    with pytest.raises(InvalidInputError, match="n_steps"):
        lerp([0.0], [1.0], 1)
    with pytest.raises(InvalidInputError, match="same shape"):
        slerp([0.0, 1.0], [1.0], 3)
    with pytest.raises(InvalidInputError, match="finite"):
        slerp([np.nan, 1.0], [1.0, 0.0], 3)


# -- the tools against transform / inverse_transform -----------------------------------------
@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolate_decodes_the_interpolated_codes(ae, vae, data, method):
    X, _ = data
    for est in (ae, vae):
        out = interpolate(est, X[0], X[1], n_steps=6, method=method)
        assert out.shape == (6, 1, 8, 8)
        codes = est.transform(X[:2])
        path = (lerp if method == "linear" else slerp)(codes[0], codes[1], 6)
        np.testing.assert_allclose(out, est.inverse_transform(path), atol=1e-6)
        np.testing.assert_allclose(out[[0, -1]], est.reconstruct(X[:2]), atol=1e-6)
    with pytest.raises(InvalidInputError, match="method"):
        interpolate(vae, X[0], X[1], method="cubic")
    with pytest.raises(InvalidInputError, match="one sample"):
        interpolate(vae, X[:2], X[1])


def test_conditional_interpolation_needs_labels_and_switches_class_halfway(cvae, data):
    X, y = data
    with pytest.raises(InvalidInputError, match="y0"):
        interpolate(cvae, X[0], X[1])
    out = interpolate(cvae, X[0], X[1], n_steps=5, y0=y[0], y1=y[1])
    codes = cvae.transform(X[:2], y[:2])
    expected = cvae.inverse_transform(lerp(codes[0], codes[1], 5), np.array([y[0], y[0], y[1], y[1], y[1]]))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert interpolate(cvae, X[0], X[1], n_steps=3, y0=y[0]).shape == (3, 1, 8, 8)  # y1 defaults to y0


def test_traverse_equals_decoding_hand_built_codes(ae, vae, cvae, data):
    X, y = data
    values = np.array([-2.0, 0.0, 0.5, 2.0])
    for est in (ae, vae, cvae):
        labels = _label_kwargs(est, y[3])
        out = traverse(est, X[3], 1, values, **labels)
        assert out.shape == (4, 1, 8, 8)
        code = est.transform(X[3:4], *([y[3:4]] if labels else []))
        Z = np.repeat(code, 4, axis=0)
        Z[:, 1] = values
        np.testing.assert_allclose(out, est.inverse_transform(Z, *([np.full(4, y[3])] if labels else [])), atol=1e-6)
    # a VAE's default sweep is the prior's ±3σ: np.linspace(-3, 3, 9)
    code = vae.transform(X[3:4])
    Z = np.repeat(code, 9, axis=0)
    Z[:, 0] = np.linspace(-3, 3, 9)
    np.testing.assert_allclose(traverse(vae, X[3], 0), vae.inverse_transform(Z), atol=1e-6)


@pytest.mark.parametrize("dim", [-1, 3, 1.0, True])
def test_traverse_names_the_valid_range_of_dim(ae, data, dim):
    with pytest.raises(InvalidInputError, match=r"0\.\.2"):
        traverse(ae, data[0][0], dim)


def test_manifold_grid_decodes_prior_quantiles_z0_right_z1_up(vae):
    grid = manifold_grid(vae, n=4)
    assert grid.shape == (4, 4, 1, 8, 8)
    q = norm.ppf(np.linspace(0.05, 0.95, 4))
    corners = np.array([[q[0], q[-1]], [q[-1], q[-1]], [q[0], q[0]], [q[-1], q[0]]], dtype=np.float32)
    np.testing.assert_allclose(grid[[0, 0, -1, -1], [0, -1, 0, -1]], vae.inverse_transform(corners), atol=1e-6)


def test_manifold_grid_needs_a_2d_latent_space_and_a_class_for_conditional_models(ae, cvae, data):
    with pytest.raises(InvalidInputError, match="latent_dim=3"):
        manifold_grid(ae)
    with pytest.raises(InvalidInputError, match="conditional"):
        manifold_grid(cvae, n=3)
    assert manifold_grid(cvae, n=3, y=4).shape == (3, 3, 1, 8, 8)


def test_attribute_vector_is_the_difference_of_group_means_and_apply_adds_it(ae, vae, cvae, data):
    X, y = data
    has = y == 3
    for est in (ae, vae, cvae):
        labels = _label_kwargs(est, y)
        Z = est.transform(X, *([y] if labels else [])).astype(np.float64)
        vector = attribute_vector(est, X, has, **labels)
        assert vector.shape == (est.latent_dim,)
        np.testing.assert_allclose(vector, Z[has].mean(0) - Z[~has].mean(0), atol=1e-6)
        one = _label_kwargs(est, y[5])
        out = apply_attribute(est, X[5], vector, scales=(0.0, 1.0, 2.0), **one)
        assert out.shape == (3, 1, 8, 8)
        codes = Z[5] + np.array([0.0, 1.0, 2.0])[:, None] * vector
        np.testing.assert_allclose(out, est.inverse_transform(codes, *([np.full(3, y[5])] if one else [])), atol=1e-5)
    np.testing.assert_allclose(attribute_vector(vae, X, has.astype(int)), attribute_vector(vae, X, has))


def test_attribute_vector_needs_both_groups(vae, data):
    X, _ = data
    with pytest.raises(InvalidInputError, match="both groups"):
        attribute_vector(vae, X, np.zeros(len(X), bool))
    with pytest.raises(InvalidInputError, match=r"\(200,\)"):
        attribute_vector(vae, X, np.ones(3, bool))
    with pytest.raises(InvalidInputError, match="latent dimension"):
        apply_attribute(vae, X[0], np.ones(5))


def test_tools_refuse_unfitted_models(data):
    with pytest.raises(InvalidInputError, match="not fitted"):
        interpolate(VAE(), data[0][0], data[0][1])


# -- figures -------------------------------------------------------------------------------------
def _check_pngs(paths, names):
    assert sorted(p.name for p in paths) == sorted(names)
    for p in paths:
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            assert im.format == "PNG" and min(im.size) > 100


def test_write_latent_figures_for_images(ae, vae, data, tmp_path):
    X, y = data
    for est, folder in ((ae, tmp_path / "ae"), (vae, tmp_path / "vae")):
        folder.mkdir()
        paths = write_latent_figures(est, X, y, folder)
        names = ["latent_scatter.png", "interpolation.png", "traversal.png"] + (["manifold.png"] if est.latent_dim == 2 else [])
        _check_pngs(paths, names)


def test_write_latent_figures_for_a_conditional_model(cvae, data, tmp_path):
    _check_pngs(write_latent_figures(cvae, *data, tmp_path),
                ["latent_scatter.png", "interpolation.png", "traversal.png", "manifold.png"])


def test_write_latent_figures_for_2d_points(tmp_path):
    X, y = genlab.datasets.load("ring8", n_samples=200, random_state=0)
    est = VAE(latent_dim=2, likelihood="gaussian", sigma2=0.05, **TINY).fit(X)
    _check_pngs(write_latent_figures(est, X, y, tmp_path),
                ["latent_scatter.png", "interpolation.png", "traversal.png", "manifold.png"])
    (tmp_path / "unlabelled").mkdir()
    _check_pngs(write_latent_figures(est, X, None, tmp_path / "unlabelled"),
                ["latent_scatter.png", "interpolation.png", "traversal.png", "manifold.png"])


def test_conditional_figures_need_labels(cvae, data, tmp_path):
    with pytest.raises(InvalidInputError, match="labels"):
        write_latent_figures(cvae, data[0], None, tmp_path)


def test_plots_fall_back_for_vectors_and_any_code_size(tmp_path):
    rng = np.random.default_rng(0)
    paths = [
        plots.save_interpolation(tmp_path / "i.png", [rng.random((6, 5)), rng.random((6, 5))], "vectors", row_labels=["a", "b"]),
        plots.save_traversal(tmp_path / "t.png", rng.standard_normal((3, 9, 5)), "vectors"),
        plots.save_manifold(tmp_path / "m.png", rng.random((4, 4, 5)), "vectors"),
        plots.save_latent_scatter(tmp_path / "s1.png", rng.standard_normal((50, 1)), rng.integers(0, 3, 50), "k=1"),
        plots.save_latent_scatter(tmp_path / "s1i.png", rng.standard_normal((50, 1)), None, "k=1 unlabelled"),
        plots.save_latent_scatter(tmp_path / "s5.png", rng.standard_normal((50, 5)), rng.random(50), "k=5, continuous labels"),
        plots.save_interpolation(tmp_path / "rgb.png", [rng.random((4, 3, 6, 6))], "colour images"),
    ]
    _check_pngs(paths, ["i.png", "t.png", "m.png", "s1.png", "s1i.png", "s5.png", "rgb.png"])


def test_a_gan_interpolates_between_two_of_its_samples(digits):
    X = digits[0][:300]
    gan = genlab.GAN(hidden=(32,), latent_dim=6, epochs=1, random_state=0).fit(X)
    z = gan.sample_codes(2, random_state=4)
    assert z.shape == (2, 6) and np.array_equal(gan.generate(z), gan.sample(2, random_state=4))
    for method in ("linear", "spherical"):
        path = genlab.latent.interpolate_codes(gan, z[0], z[1], n_steps=5, method=method)
        assert path.shape == (5, *X.shape[1:])
        np.testing.assert_allclose(path[[0, -1]], gan.sample(2, random_state=4), atol=1e-6)
    mid = genlab.latent.interpolate_codes(gan, z[0], z[1], n_steps=3)[1]
    np.testing.assert_allclose(mid, gan.generate(((z[0] + z[1]) / 2)[None])[0], atol=1e-6)
    with pytest.raises(InvalidInputError, match="latent_dim"):
        genlab.latent.interpolate_codes(gan, z[0][:3], z[1])
    with pytest.raises(InvalidInputError, match="a GAN has no encoder"):
        genlab.latent.interpolate(gan, X[0], X[1])


def test_interpolating_codes_of_an_encoder_model_decodes_them(ae, data):
    X = data[0]
    codes = ae.transform(X[:2])
    np.testing.assert_allclose(genlab.latent.interpolate_codes(ae, codes[0], codes[1], n_steps=4),
                               genlab.latent.interpolate(ae, X[0], X[1], n_steps=4), atol=1e-6)


def test_latent_arithmetic_on_a_gans_codes(digits):
    gan = genlab.GAN(hidden=(32,), latent_dim=6, epochs=1, random_state=0).fit(digits[0][:300])
    z = gan.sample_codes(400, random_state=1)
    has = z[:, 0] > 0  # a stand-in for a classifier's verdict on gan.generate(z)
    vector = attribute_vector(gan, codes=z, has_attribute=has)
    np.testing.assert_allclose(vector, z[has].mean(axis=0) - z[~has].mean(axis=0), atol=1e-6)
    moved = apply_attribute(gan, code=z[0], vector=vector, scales=(0.0, 1.0, 2.0))
    expected = gan.generate((z[0] + np.array([0.0, 1.0, 2.0])[:, None] * vector).astype(np.float32))
    np.testing.assert_allclose(moved, expected, atol=1e-6)
    with pytest.raises(InvalidInputError, match="not both and not neither"):
        attribute_vector(gan, has_attribute=has)
    with pytest.raises(InvalidInputError, match="a GAN has no encoder"):
        attribute_vector(gan, digits[0][:10], np.arange(10) % 2)
    with pytest.raises(InvalidInputError, match=r"shape \(n, 6\)"):
        attribute_vector(gan, codes=z[:, :3], has_attribute=has)
