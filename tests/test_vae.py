"""VAE: the maths against closed forms and hand derivations, likelihood bounds, variants, collapse tools."""

import math

import numpy as np
import pytest
import torch

import genlab
from genlab import VAE, InvalidInputError
from genlab.models import Batch, VAEConfig, VAEModule
from genlab.models.losses import gaussian_kl, gaussian_nll, log_normal, log_standard_normal
from genlab.training import make_stepper

FAST = dict(epochs=3, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    return VAE(latent_dim=4, epochs=30, random_state=0).fit(X[:600]), X[600:800]


def test_closed_form_kl_equals_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 3, 5, generator=g)
    mc = (log_normal(z, mu, logvar) - log_standard_normal(z)).mean(dim=0)
    np.testing.assert_allclose(gaussian_kl(mu, logvar).sum(dim=1), mc, rtol=0.02, atol=0.02)


def test_fixed_variance_gaussian_is_scaled_squared_error():
    x, mean = torch.rand(4, 6), torch.rand(4, 6)
    sigma2 = 0.1
    expected = ((x - mean) ** 2).sum(1) / (2 * sigma2) + 0.5 * 6 * math.log(2 * math.pi * sigma2)
    np.testing.assert_allclose(gaussian_nll(x, mean, torch.tensor(math.log(sigma2))), expected, rtol=1e-5)


def test_iwae_k1_is_the_elbo_in_expectation_and_tightens_with_k(fitted):
    vae, X = fitted
    elbo = vae.elbo(X, n_mc=50).mean()
    k1 = np.mean([vae.score_samples(X, n_importance=1, random_state=s).mean() for s in range(30)])
    assert k1 == pytest.approx(elbo, abs=0.15)
    k10, k100 = (vae.score_samples(X, n_importance=k, random_state=0).mean() for k in (10, 100))
    assert elbo < k10 < k100 + 1e-6
    assert k100 - k10 < k10 - elbo + 1.0  # diminishing returns, still non-decreasing on average


def test_autograd_matches_hand_derived_sensitivities_at_the_encoder_output():
    """Spec §4: reconstruction term -> μ rows get W·δ, log-variance rows ½·ε·e^{a/2}·W·δ;
    KL term (½-KL scaling) -> μ rows get μ, log-variance rows ½(e^a − 1)."""
    torch.manual_seed(0)
    module = VAEModule(VAEConfig(input_shape=(6,), latent_dim=3, hidden=(5,), likelihood="bernoulli")).double()
    x = torch.rand(1, 6, dtype=torch.float64)
    post = module.encode(x)
    mu, a = post.mu.detach().requires_grad_(), post.logvar.detach().requires_grad_()
    eps = torch.randn(1, 3, dtype=torch.float64)
    z = mu + torch.exp(0.5 * a) * eps
    first = module.decoder.layers[0]  # z -> first hidden pre-activation
    pre = first(z)
    pre.retain_grad()
    rest = torch.nn.Sequential(*list(module.decoder.layers)[1:])
    rec = -module.log_likelihood(x, rest(pre), None).sum()
    kl = gaussian_kl(mu, a).sum()
    (rec + kl).backward()
    delta, W = pre.grad, first.weight  # δ: sensitivity at the decoder's first layer; W: its weights (h, k)
    W_delta = delta @ W
    expected_mu = W_delta + mu.detach()
    expected_a = 0.5 * eps * torch.exp(0.5 * a.detach()) * W_delta + 0.5 * (torch.exp(a.detach()) - 1)
    torch.testing.assert_close(mu.grad, expected_mu)
    torch.testing.assert_close(a.grad, expected_a)


def test_reported_terms_are_consistent(fitted):
    vae, _ = fitted
    last = vae.history_[-1]
    assert last["elbo"] == pytest.approx(-(last["reconstruction"] + last["kl"]), rel=1e-5)
    assert last["loss"] == pytest.approx(last["reconstruction"] + last["kl"], rel=1e-5)  # beta = 1
    assert {"active_units", "mutual_information", "kl_dim_0", "kl_dim_3"} <= set(last)


def test_shapes_sample_and_diagnostics(fitted):
    vae, X = fitted
    assert vae.transform(X).shape == (len(X), 4)
    assert vae.reconstruct(X).shape == X.shape
    S = vae.sample(7, random_state=0)
    assert S.shape == (7, *X.shape[1:]) and 0 <= S.min() and S.max() <= 1
    np.testing.assert_array_equal(S, vae.sample(7, random_state=0))
    kl = vae.kl_per_dim(X)
    assert kl.shape == (4,) and (kl >= 0).all()
    assert 0 <= vae.active_units(X) <= 4
    assert vae.mutual_information(X) > 0.5  # a trained VAE on digits, not collapsed


def test_heavy_beta_collapses_the_posterior(digits):
    X = digits[0][:400]
    collapsed = VAE(latent_dim=4, hidden=(64,), beta=50.0, epochs=10, random_state=0).fit(X)
    assert collapsed.active_units(X) == 0
    assert collapsed.kl_per_dim(X).sum() < 0.05
    assert abs(collapsed.mutual_information(X)) < 0.1  # an estimate: unbiased-ish noise around 0


def test_free_bits_and_warmup_change_the_objective(digits):
    X = torch.from_numpy(digits[0][:64])
    module = VAEModule(VAEConfig(input_shape=(1, 8, 8), latent_dim=4, hidden=(32,), free_bits=0.5, kl_warmup_steps=10))
    terms = module.objective(Batch(X), torch.Generator().manual_seed(0))
    assert float(terms["beta"]) == 0.0  # step 0 of the warm-up
    module.steps.fill_(5)
    with torch.no_grad():
        terms = module.objective(Batch(X), torch.Generator().manual_seed(0))
    # an untrained encoder has tiny KL: free bits count it as 4 dims x 0.5 nats, at beta 0.5
    assert float(terms["loss"]) == pytest.approx(float(terms["reconstruction"]) + 0.5 * 4 * 0.5, rel=1e-5)


def test_warmup_ramps_beta_in_history(digits):
    vae = VAE(latent_dim=2, hidden=(32,), kl_warmup=20, **FAST).fit(digits[0][:640])
    betas = [r["beta"] for r in vae.history_]
    assert betas[0] < betas[1] < betas[2] <= 1.0


def test_aggressive_training_updates_only_the_encoder_in_its_inner_loop(digits):
    X = torch.from_numpy(digits[0][:128])
    module = VAEModule(VAEConfig(input_shape=(1, 8, 8), latent_dim=2, hidden=(16,), aggressive=True))
    step = make_stepper(module)
    decoder_before = [p.clone() for p in module._decoder_parameters()]
    encoder_before = [p.clone() for p in module.encoder.parameters()]
    module._aggressive_encoder_updates(Batch(X[:64]), step, None, lambda: Batch(X[64:]))
    assert all(torch.equal(a, b) for a, b in zip(decoder_before, module._decoder_parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, module.encoder.parameters()))


def test_aggressive_training_runs_and_switches_itself_off(digits):
    vae = VAE(latent_dim=2, hidden=(32,), training="aggressive", epochs=4, batch_size=64, random_state=0).fit(digits[0][:256])
    flags = [r["aggressive"] for r in vae.history_]
    assert flags[0] == 1.0 and flags == sorted(flags, reverse=True)
    assert np.isfinite(vae.elbo(digits[0][:100])).all()


@pytest.mark.parametrize("params", [
    dict(likelihood="gaussian", sigma2=0.1), dict(likelihood="gaussian", variance="pixel"),
    dict(likelihood="gaussian", variance="sample"), dict(arch="conv"), dict(n_mc=3), dict(binarize="fixed"),
    dict(binarize="dynamic"), dict(beta=4.0), dict(beta=0.0),
])
def test_variants_train_and_give_finite_likelihoods(params, digits):
    X = digits[0][:256]
    vae = VAE(latent_dim=3, hidden=(32,), **{**FAST, **params}).fit(X)
    assert np.isfinite(vae.score_samples(X[:20], n_importance=20)).all()
    assert vae.history_[-1]["loss"] < vae.history_[0]["loss"]


def test_conditional_vae_both_encoder_variants(digits):
    X, y = digits[0][:400], digits[1][:400]
    joint = VAE(latent_dim=3, hidden=(32,), conditional=True, **FAST).fit(X, y)
    assert joint.transform(X[:5], y[:5]).shape == (5, 3)
    with pytest.raises(InvalidInputError, match="labels"):
        joint.transform(X[:5])
    decoder_only = VAE(latent_dim=3, hidden=(32,), conditional=True, encoder_sees_label=False, **FAST).fit(X, y)
    assert decoder_only.transform(X[:5]).shape == (5, 3)  # encoding needs no label
    threes = joint.sample(6, y=3, random_state=0)
    fives = joint.sample(6, y=5, random_state=0)
    assert threes.shape == (6, 1, 8, 8) and not np.allclose(threes, fives)
    with pytest.raises(InvalidInputError, match="out of range"):
        joint.sample(2, y=12)
    with pytest.raises(InvalidInputError, match="fit\\(X, y\\)"):
        VAE(conditional=True).fit(X)


def test_conditional_samples_look_like_their_class(digits):
    X, y = digits
    cvae = VAE(latent_dim=8, conditional=True, epochs=40, random_state=0).fit(X, y)
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000).fit(X.reshape(len(X), -1), y)
    labels = np.repeat(np.arange(10), 20)
    S = cvae.sample(len(labels), y=labels, random_state=1)
    assert (clf.predict(S.reshape(len(S), -1)) == labels).mean() > 0.8


def test_save_load_round_trip(fitted, tmp_path):
    vae, X = fitted
    vae.save(tmp_path)
    same = genlab.load(tmp_path)
    assert type(same) is VAE
    np.testing.assert_array_equal(same.transform(X), vae.transform(X))
    np.testing.assert_array_equal(same.sample(5, random_state=2), vae.sample(5, random_state=2))
    np.testing.assert_array_equal(same.score_samples(X[:10], n_importance=10), vae.score_samples(X[:10], n_importance=10))


def test_pairwise_log_normal_matches_broadcasting():
    from genlab.models.losses import log_normal_pairwise

    g = torch.Generator().manual_seed(0)
    z, mu, logvar = torch.randn(7, 3, generator=g), torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close(log_normal_pairwise(z, mu, logvar), log_normal(z[:, None, :], mu[None], logvar[None]),
                               rtol=1e-5, atol=1e-4)


def test_sampling_from_the_likelihood_draws_binary_pixels_around_the_mean(fitted):
    vae, _ = fitted  # Bernoulli decoder; digits in [0, 1]
    means = vae.sample(4000, random_state=0)
    draws = vae.sample(4000, random_state=0, mean=False)  # the same z, then x ~ Bernoulli(mean)
    assert set(np.unique(draws)) <= {0.0, 1.0} and len(np.unique(draws)) == 2
    np.testing.assert_allclose(draws.mean(axis=0), means.mean(axis=0), atol=0.04)  # per pixel: 4000 draws, sd <= 0.008
    assert np.array_equal(draws, vae.sample(4000, random_state=0, mean=False))  # seeded
    assert not np.array_equal(draws, vae.sample(4000, random_state=1, mean=False))


def test_sampling_from_a_gaussian_likelihood_adds_its_variance(digits):
    X, _ = digits
    vae = VAE(latent_dim=4, likelihood="gaussian", sigma2=0.02, epochs=3, random_state=0).fit(X[:400])
    noise = vae.sample(3000, random_state=0, mean=False) - vae.sample(3000, random_state=0)
    scale = vae.scaling_._factor()  # model units -> user units divide by it
    assert noise.var() * scale**2 == pytest.approx(0.02, rel=0.03)
    assert abs(noise.mean()) < 0.01


@pytest.mark.parametrize("make", [lambda: genlab.Autoencoder(epochs=1, random_state=0), lambda: genlab.GAN(epochs=1, random_state=0)])
def test_models_without_a_likelihood_refuse_to_draw_from_it(digits, make):
    est = make().fit(digits[0][:200])
    with pytest.raises(InvalidInputError, match="defines no likelihood"):
        est.sample(4, mean=False)
    with pytest.raises(InvalidInputError, match="mean must be True"):
        est.sample(4, mean="no")
