"""GAN: objectives from logits, the optimal discriminator and JS divergence on known 1-D densities,
the Lipschitz constraints, k_d/k_g alternation, conditional and semi-supervised variants."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm

import genlab
from genlab import GAN, InvalidInputError
from genlab.models import Batch, GANConfig, GANModule
from genlab.models.losses import GAN_LOSSES, gradient_penalty
from genlab.training import TensorData, TrainConfig, make_stepper, train

FAST = dict(epochs=2, batch_size=64, random_state=0)


class Shift(torch.nn.Module):
    """A fixed generator x = z + shift (a frozen parameter so the optimiser has something to hold)."""

    def __init__(self, shift):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.tensor(float(shift)), requires_grad=False)

    def forward(self, z):
        return z + self.shift


def _train_discriminator(shift, seed=0):
    """Train only D (g_steps = 0) against p_G = N(shift, 1); p_data = N(0, 1)."""
    torch.manual_seed(seed)
    module = GANModule(GANConfig(input_shape=(1,), latent_dim=1, hidden=(32, 32), loss="minimax", g_steps=0, ema=0.0,
                                 lr_d=2e-3, lr_g=0.0))
    module.generator = Shift(shift)
    x = torch.randn(8192, 1, generator=torch.Generator().manual_seed(seed))
    train(module, TensorData(x), None, TrainConfig(epochs=25, batch_size=256), seed=seed)
    return module.eval()


def _true_js(shift):
    grid = np.linspace(-12, 12, 200001)
    p, q = norm.pdf(grid), norm.pdf(grid, loc=shift)
    m = 0.5 * (p + q)
    kl = lambda a: np.trapezoid(np.where(a > 0, a * np.log(a / m), 0.0), grid)  # noqa: E731
    return 0.5 * kl(p) + 0.5 * kl(q)


@pytest.fixture(scope="module")
def shifted_d():
    return _train_discriminator(shift=1.0)


def test_trained_discriminator_approaches_the_optimal_one(shifted_d):
    x = torch.linspace(-1.5, 2.5, 41).reshape(-1, 1)
    with torch.no_grad():
        d = torch.sigmoid(shifted_d.real_fake_logit(x)).squeeze().numpy()
    p, q = norm.pdf(x.squeeze().numpy()), norm.pdf(x.squeeze().numpy(), loc=1.0)
    np.testing.assert_allclose(d, p / (p + q), atol=0.05)


def test_js_estimate_approaches_the_true_js_divergence(shifted_d):
    x = torch.randn(20000, 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        js = float(shifted_d.objective(Batch(x), torch.Generator().manual_seed(2))["js_estimate"])
    assert js == pytest.approx(_true_js(1.0), abs=0.02)


def test_value_is_minus_log_4_when_generator_matches_data():
    module = _train_discriminator(shift=0.0)
    x = torch.randn(20000, 1, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        terms = module.objective(Batch(x), torch.Generator().manual_seed(2))
    value = 2 * float(terms["js_estimate"]) - math.log(4)
    assert value == pytest.approx(-math.log(4), abs=0.02)
    assert float(terms["d_real"]) == pytest.approx(0.5, abs=0.05)


def test_losses_equal_their_probability_forms_and_stay_finite():
    d_real, d_fake = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([-0.5, 0.7, 1.5])
    D_r, D_f = torch.sigmoid(d_real), torch.sigmoid(d_fake)
    d_minimax, g_minimax = GAN_LOSSES["minimax"]
    _, g_nonsat = GAN_LOSSES["nonsaturating"]
    torch.testing.assert_close(d_minimax(d_real, d_fake), -(torch.log(D_r).mean() + torch.log(1 - D_f).mean()))
    torch.testing.assert_close(g_minimax(d_fake), torch.log(1 - D_f).mean())
    torch.testing.assert_close(g_nonsat(d_fake), -torch.log(D_f).mean())
    torch.testing.assert_close(d_minimax(d_real, d_fake, 0.9),
                               -(0.9 * torch.log(D_r) + 0.1 * torch.log(1 - D_r)).mean() - torch.log(1 - D_f).mean())
    d_hinge, g_critic = GAN_LOSSES["hinge"]
    torch.testing.assert_close(d_hinge(d_real, d_fake), torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean())
    d_w, _ = GAN_LOSSES["wasserstein"]
    torch.testing.assert_close(d_w(d_real, d_fake), d_fake.mean() - d_real.mean())
    extreme = torch.tensor([100.0, -100.0])
    for d_loss, g_loss in GAN_LOSSES.values():
        assert torch.isfinite(d_loss(extreme, -extreme)) and torch.isfinite(g_loss(extreme))


def test_gradient_penalty_of_a_linear_critic():
    w = torch.tensor([3.0, 4.0])  # |grad| = 5 everywhere
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    gp = gradient_penalty(lambda x: x @ w, real, fake, torch.Generator().manual_seed(0), weight=10.0)
    assert float(gp) == pytest.approx(10.0 * (5.0 - 1.0) ** 2)


def test_gradient_penalty_gradcheck():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    real = torch.randn(5, 3, dtype=torch.float64)
    fake = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    f = lambda v: gradient_penalty(lambda x: critic(x).squeeze(1), real, v, torch.Generator().manual_seed(1))  # noqa: E731
    assert torch.autograd.gradcheck(f, (fake,))


def test_alternation_counts_and_weight_clipping():
    x, _ = genlab.datasets.load("ring8", n_samples=512)
    gan = GAN(loss="wasserstein", penalty="clip", clip_value=0.02, d_steps=3, g_steps=2, epochs=1, batch_size=64,
              random_state=0).fit(x)
    steps = gan.history_[-1]["step"]
    assert steps == 8
    assert set(gan.module_.optimizer_specs()) == {"discriminator", "generator"}
    assert max(float(p.detach().abs().max()) for p in gan.module_.discriminator.parameters()) <= 0.02 + 1e-7


def test_k_d_and_k_g_updates_per_step():
    module = GANModule(GANConfig(input_shape=(2,), hidden=(8,), d_steps=3, g_steps=2))
    step = make_stepper(module, TrainConfig(lr=0.0))
    opts = step.optimizers
    x = torch.randn(64, 2)
    module.train_step(Batch(x[:32]), step, None, lambda: Batch(x[32:]))
    d_state = opts["discriminator"].state[next(iter(module.discriminator.parameters()))]
    g_state = opts["generator"].state[next(iter(module.generator.parameters()))]
    assert float(d_state["step"]) == 3 and float(g_state["step"]) == 2


def test_eval_mode_generates_from_the_weight_average():
    torch.manual_seed(0)
    module = GANModule(GANConfig(input_shape=(2,), hidden=(8,), ema=0.9, lr_g=1e-2, lr_d=1e-2))
    step = make_stepper(module)
    expected = [p.detach().clone() for p in module.generator.parameters()]
    for t in range(1, 31):  # the recurrence by hand: after update t, d_t = min(0.9, (1 + t) / (10 + t))
        module.train_step(Batch(torch.randn(16, 2)), step)
        d = min(0.9, (1 + t) / (10 + t))
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, module.generator.parameters())]
    for e, avg in zip(expected, module.generator_ema.parameters()):
        torch.testing.assert_close(avg, e)
    z = torch.randn(5, module.config.latent_dim)
    assert not torch.allclose(module.train().generate(z), module.eval().generate(z))
    torch.testing.assert_close(module.eval().generate(z), module.generator_ema(z))  # linear output
    plain = GANModule(GANConfig(input_shape=(2,), hidden=(8,), ema=0.0)).eval()
    assert plain.generator_ema is None
    torch.testing.assert_close(plain.generate(z), plain.generator(z))


@pytest.mark.parametrize("params", [dict(loss="minimax"), dict(loss="nonsaturating"), dict(loss="wasserstein"),
                                    dict(loss="hinge"), dict(spectral_norm=True, label_smoothing=0.9, instance_noise=0.1),
                                    dict(prior="uniform"), dict(arch="conv")])
def test_every_variant_trains_and_samples(params, digits):
    X = digits[0][:256]
    gan = GAN(**{**FAST, **params}).fit(X)
    S = gan.sample(6, random_state=0)
    assert S.shape == (6, 1, 8, 8) and np.isfinite(S).all()
    assert -1e-5 <= S.min() and S.max() <= 1 + 1e-5  # tanh output mapped back to the data's [0, 1]
    np.testing.assert_array_equal(S, gan.sample(6, random_state=0))
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"} <= set(gan.history_[-1])


def test_methods_exist_only_where_they_mean_something(digits):
    assert not hasattr(GAN(), "transform") and not hasattr(GAN(), "predict")
    assert hasattr(GAN(loss="nonsaturating"), "density_ratio") and not hasattr(GAN(loss="hinge"), "density_ratio")
    gan = GAN(**FAST).fit(digits[0][:128])
    D = gan.discriminate(digits[0][:10])
    np.testing.assert_allclose(gan.density_ratio(digits[0][:10]), D / (1 - D), rtol=1e-6)


@pytest.mark.parametrize("arch", ["mlp", "conv"])  # conv: the label enters D as broadcast channels
def test_conditional_gan(digits, arch):
    X, y = digits[0][:256], digits[1][:256]
    gan = GAN(conditional=True, arch=arch, **FAST).fit(X, y)
    assert not np.allclose(gan.sample(4, y=3, random_state=0), gan.sample(4, y=5, random_state=0))
    assert gan.sample(20, random_state=0).shape == (20, 1, 8, 8)
    with pytest.raises(InvalidInputError, match="labels"):
        GAN(conditional=True).fit(X)
    with pytest.raises(InvalidInputError, match="out of range"):
        gan.sample(2, y=10)


def test_semi_supervised_gan(digits):
    X, y = digits[0][:300], digits[1][:300]
    partial = np.where(np.arange(len(y)) % 10 == 0, y, -1)
    gan = GAN(semi_supervised=True, **FAST).fit(X, partial)
    proba = gan.predict_proba(X[:7])
    assert proba.shape == (7, 10) and np.allclose(proba.sum(1), 1)
    assert gan.predict(X[:7]).shape == (7,) and 0 <= gan.score(X, y) <= 1
    with pytest.raises(InvalidInputError, match="labelled"):
        GAN(semi_supervised=True).fit(X, np.full(len(y), -1))


def test_save_load_round_trip(digits, tmp_path):
    gan = GAN(conditional=True, **FAST).fit(digits[0][:128], digits[1][:128])
    gan.save(tmp_path)
    same = genlab.load(tmp_path)
    assert type(same) is GAN
    np.testing.assert_array_equal(same.sample(5, y=2, random_state=3), gan.sample(5, y=2, random_state=3))


def test_a_diverging_run_warns_and_a_healthy_one_does_not():
    x, _ = genlab.datasets.load("ring8", n_samples=2000, random_state=0)
    with pytest.warns(RuntimeWarning, match="diverged"):  # G frozen, D free: D's loss → 0 while G's climbs
        gan = GAN(lr_g=0.0, lr_d=1e-2, epochs=6, batch_size=100, random_state=0).fit(x)
    assert gan.history_[-1]["d_loss"] < 0.05 and gan.history_[-1]["g_loss"] > gan.history_[-3]["g_loss"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GAN(epochs=6, batch_size=100, random_state=0).fit(x)


def test_a_gradient_penalty_critic_validates_under_no_grad(digits):
    """The validation pass runs without autograd; the penalty still needs the critic's input gradient."""
    X = digits[0][:200]
    est = GAN(hidden=(32,), loss="wasserstein", penalty="gp", epochs=1, batch_size=50, validation_fraction=0.25,
              random_state=0).fit(X)
    assert est.history_[-1]["val_gradient_penalty"] > 0
