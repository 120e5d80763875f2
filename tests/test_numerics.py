"""Numerics (issue 7, item 7): the objective terms stay finite at the extremes training can reach, and
their gradients are right (``gradcheck`` in float64).

The VAE and the Mult-VAE keep log-variances finite by clamping the encoder's (and a learned decoder
variance's) output to ``LOGVAR_RANGE`` = (-30, 20), where exp(±logvar) is finite in float32; the
closed-form terms in ``losses.py`` are plain math and stay finite throughout that range and well beyond it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from genlab.models.base import Batch
from genlab.models.losses import (
    GAN_LOSSES,
    LOGVAR_RANGE,
    gaussian_kl,
    gaussian_nll,
    gradient_penalty,
    log_normal,
    log_standard_normal,
)
from genlab.models.multvae import MultVAEConfig, MultVAEModule
from genlab.models.vae import Posterior, VAEConfig, VAEModule, importance_weighted_log_likelihood

# the encoder clamps to LOGVAR_RANGE; the pure functions are also finite well outside it (exp(±80) < float32 max)
LOGVARS = [-80.0, -30.0, -20.0, -1.0, 0.0, 1.0, 20.0, 30.0, 80.0]


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- closed-form terms at extreme log-variances ------------------------------------------------------


@pytest.mark.parametrize("logvar", LOGVARS)
@pytest.mark.parametrize("mu", [0.0, -1e3, 1e3])
def test_kl_and_log_densities_are_finite_and_accurate_in_float32(mu, logvar):
    m, lv = torch.full((2, 3), mu), torch.full((2, 3), logvar)
    kl32 = gaussian_kl(m, lv)
    kl64 = gaussian_kl(m.double(), lv.double())
    assert torch.isfinite(kl32).all() and (kl64 >= 0).all()
    torch.testing.assert_close(kl32.double(), kl64, rtol=1e-5, atol=1e-6)
    # a draw from the posterior itself: log q(z|x) is finite however narrow or wide q is
    eps = torch.randn(2, 3, generator=_seeded())
    z = m + torch.exp(0.5 * lv) * eps
    for value in (log_normal(z, m, lv), log_standard_normal(z), gaussian_nll(z, m, lv)):
        assert torch.isfinite(value).all()


def test_kl_gradients_are_finite_at_the_ends_of_the_clamp():
    mu = torch.tensor([[0.0, 1e3, -1e3]], requires_grad=True)
    logvar = torch.tensor([[LOGVAR_RANGE[0], LOGVAR_RANGE[1], 0.0]], requires_grad=True)
    gaussian_kl(mu, logvar).sum().backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(logvar.grad).all()


class _ConstantEncoder(nn.Module):
    """An encoder that outputs the same (mu, raw logvar) for every input, as a saturated network would."""

    def __init__(self, mu: float, raw_logvar: float, latent_dim: int):
        super().__init__()
        self.out = nn.Parameter(torch.tensor([mu] * latent_dim + [raw_logvar] * latent_dim))

    def forward(self, x):
        return self.out.expand(len(x), -1) + 0.0 * x.flatten(1).sum(dim=1, keepdim=True)  # (n, 2k), still depends on x


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("raw_logvar", [-1e4, -100.0, -30.0, 20.0, 100.0, 1e4])
def test_vae_objective_and_iwae_stay_finite_for_extreme_encoder_outputs(raw_logvar, likelihood):
    config = VAEConfig(input_shape=(6,), latent_dim=2, hidden=(8,), likelihood=likelihood,
                       variance="pixel" if likelihood == "gaussian" else "fixed")
    torch.manual_seed(0)
    module = VAEModule(config)
    module.encoder = _ConstantEncoder(50.0, raw_logvar, config.latent_dim)
    x = torch.rand(5, 6, generator=_seeded())
    post = module.encode(x)
    assert LOGVAR_RANGE[0] <= float(post.logvar.detach().min()) and float(post.logvar.detach().max()) <= LOGVAR_RANGE[1]  # clamped
    terms = module.objective(Batch(x), _seeded())
    for name in ("loss", "elbo", "reconstruction", "kl"):
        assert torch.isfinite(terms[name]), (name, terms[name])
    terms["loss"].backward()
    for name, p in module.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert torch.isfinite(importance_weighted_log_likelihood(module, x, None, 20, _seeded())).all()


@pytest.mark.parametrize("raw_logvar", [-1e4, 100.0, 1e4])
def test_multvae_objective_stays_finite_for_extreme_encoder_outputs(raw_logvar):
    # before the clamp, log-variance 100 gave an infinite KL and 1e4 a NaN loss
    module = MultVAEModule(MultVAEConfig(n_items=10, hidden=(4,), latent_dim=2))
    module.encoder = _ConstantEncoder(5.0, raw_logvar, 2)
    module.steps.fill_(10**6)  # β at its cap
    terms = module.objective(Batch(torch.ones(3, 10)), _seeded())
    for name in ("loss", "nll", "kl"):
        assert torch.isfinite(terms[name]), (name, terms[name])
    terms["loss"].backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in module.parameters())


class _ConstantDecoder(nn.Module):
    """A decoder whose logits are ``value`` everywhere: log p(x|z) is then the same for every z."""

    def __init__(self, value: float, n_features: int):
        super().__init__()
        self.value, self.n_features = value, n_features

    def forward(self, h):
        return torch.full((len(h), self.n_features), self.value) + 0.0 * h.sum(dim=1, keepdim=True)


def test_iwae_is_finite_when_every_log_weight_is_very_negative():
    # logits +100 on x = 0 over 200 pixels: log p(x|z) = -200·softplus(100) = -20000 for every z, so the
    # importance weights are ~exp(-2e4), zero in any float: only a log-sum-exp keeps the estimate finite
    config = VAEConfig(input_shape=(200,), latent_dim=2, hidden=(4,))
    module = VAEModule(config)
    module.decoder = _ConstantDecoder(100.0, 200)
    x = torch.zeros(3, 200)
    log_px = importance_weighted_log_likelihood(module, x, None, 50, _seeded())
    assert torch.isfinite(log_px).all()
    # log p(x) = log p(x|z) + log E_q[p(z)/q(z|x)]: the second term is 0 in expectation and small for K = 50
    torch.testing.assert_close(log_px, torch.full((3,), -200 * math.log1p(math.exp(100.0))), atol=5.0, rtol=0.0)


def test_log_mean_exp_of_minus_ten_thousand_is_minus_ten_thousand():
    # what importance_weighted_log_likelihood computes from its (K, n) log-weights
    log_w = torch.full((100, 4), -1e4)
    log_w[0] = -1e4 + math.log(2.0)
    value = torch.logsumexp(log_w, dim=0) - math.log(100)
    assert torch.isfinite(value).all()
    torch.testing.assert_close(value, torch.full((4,), -1e4 + math.log(101 / 100)))


# --- GAN losses at extreme logits --------------------------------------------------------------------


@pytest.mark.parametrize("pair", list(GAN_LOSSES))
@pytest.mark.parametrize("magnitude", [100.0, 1e4])
def test_gan_losses_and_their_gradients_are_finite_for_extreme_logits(pair, magnitude):
    # every sign combination: confident and right, confident and wrong (extends test_gan's value-only check)
    d_loss, g_loss = GAN_LOSSES[pair]
    for real_sign in (1.0, -1.0):
        for fake_sign in (1.0, -1.0):
            d_real = torch.full((4,), real_sign * magnitude, requires_grad=True)
            d_fake = torch.full((4,), fake_sign * magnitude, requires_grad=True)
            for loss in (d_loss(d_real, d_fake), d_loss(d_real, d_fake, 0.9), g_loss(d_fake)):
                assert torch.isfinite(loss)
                grads = torch.autograd.grad(loss, (d_real, d_fake), allow_unused=True)
                assert all(g is None or torch.isfinite(g).all() for g in grads)


# --- gradcheck in float64 ----------------------------------------------------------------------------


def test_gradcheck_gaussian_kl_and_log_densities():
    g = _seeded(1)
    mu = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    z = torch.randn(3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gaussian_kl, (mu, logvar))
    assert torch.autograd.gradcheck(log_normal, (z, mu, logvar))
    assert torch.autograd.gradcheck(gaussian_nll, (z, mu, logvar))


def _iwae_bound(module: VAEModule, x: torch.Tensor, n_importance: int = 5):
    """The IWAE bound of ``importance_weighted_log_likelihood`` as a differentiable function of the encoder
    outputs (mu, logvar) and the decoder (logits = z @ W, plus a Gaussian log-variance for that likelihood)."""
    iwae = importance_weighted_log_likelihood.__wrapped__  # the same code without its @torch.no_grad

    def bound(mu, logvar, W, x_logvar=None):
        module.encode = lambda x, y=None: Posterior(mu, logvar)
        module.decode_params = lambda z, y=None: (z @ W, x_logvar)
        return iwae(module, x, None, n_importance, _seeded(2))  # the same ε on every call

    return bound


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_gradcheck_iwae_bound(likelihood):
    module = VAEModule(VAEConfig(input_shape=(3,), latent_dim=2, hidden=(4,), likelihood=likelihood)).double()
    g = _seeded(3)
    x = torch.bernoulli(torch.full((4, 3), 0.5, dtype=torch.float64), generator=g)
    mu = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    logvar = (0.5 * torch.randn(4, 2, generator=g, dtype=torch.float64)).requires_grad_()
    W = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    inputs = (mu, logvar, W)
    if likelihood == "gaussian":
        inputs += (torch.zeros(1, 3, dtype=torch.float64, requires_grad=True),)
    bound = _iwae_bound(module, x)
    assert torch.isfinite(bound(*inputs)).all()
    assert torch.autograd.gradcheck(bound, inputs)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_gradcheck_gradient_penalty_in_the_critic_weights(arch):
    # test_gan checks the penalty's gradient in its input; training differentiates it in the critic's weights
    # (a double backward through autograd.grad(create_graph=True)), which is what this checks
    torch.manual_seed(0)
    if arch == "mlp":
        critic = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
        shape = (5, 3)
    else:
        critic = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 1)).double()
        shape = (3, 1, 4, 4)
    g = _seeded(4)
    real, fake = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    names = [name for name, _ in critic.named_parameters()]
    weights = tuple(p.detach().clone().requires_grad_() for p in critic.parameters())

    def penalty(*values):
        params = dict(zip(names, values))
        return gradient_penalty(lambda v: functional_call(critic, params, (v,)).squeeze(1), real, fake, _seeded(5))

    assert torch.autograd.gradcheck(penalty, weights)
