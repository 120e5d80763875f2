"""Objective terms shared by the model families. Each returns one value per sample, in nats
(or squared units), summed over the features of a sample: (n, ...) -> (n,)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import SparseBatch


def squared_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors per sample."""
    return (x_hat - x).pow(2).flatten(1).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | logits) for x in [0, 1] (binary cross-entropy), computed from logits for stability."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


RECONSTRUCTION_LOSSES = {"mse": squared_error, "bce": bernoulli_nll}

LOG_2PI = math.log(2.0 * math.pi)
# Gaussian log-variances produced by a network are clamped to this range: exp(±logvar) stays finite in float32
# (it overflows past 88), so the KL and the likelihoods below stay finite however far the network drifts
LOGVAR_RANGE = (-30.0, 20.0)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, exp(logvar)) per sample, with the ½·log 2π constant (logvar broadcasts)."""
    logvar = logvar.expand_as(mean)
    return 0.5 * (LOG_2PI + logvar + (x - mean).pow(2) * torch.exp(-logvar)).flatten(1).sum(dim=1)


def multinomial_nll(logits: torch.Tensor, x: torch.Tensor | SparseBatch) -> torch.Tensor:
    """-Σᵢ xᵢ log softmax(logits)ᵢ per sample (counts x; Liang et al. 2018 drop the multinomial coefficient).
    The softmax is over every item; for a sparse x the sum runs over its stored entries only."""
    log_p = torch.log_softmax(logits.flatten(1), dim=1)
    if isinstance(x, SparseBatch):
        return -x.row_sums(log_p[x.rows, x.cols] * x.values)
    return -(log_p * x.flatten(1)).sum(dim=1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) ‖ N(0, I)) per latent dimension, in nats: (n, k) -> (n, k)."""
    # closed form, Kingma & Welling (2014), appendix B
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(dim=-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(dim=-1)


def log_normal_pairwise(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(zᵢ; μⱼ, diag exp(logvarⱼ)) for every pair: z (m, k), mu/logvar (n, k) -> (m, n).

    The quadratic form is expanded into matrix products, so the cost is two (m×k)·(k×n) GEMMs
    rather than an (m, n, k) tensor."""
    inv_var = torch.exp(-logvar)  # (n, k)
    quad = (z * z) @ inv_var.T - 2.0 * z @ (mu * inv_var).T + (mu * mu * inv_var).sum(dim=1)
    return -0.5 * (z.shape[1] * LOG_2PI + logvar.sum(dim=1) + quad)


# -- GAN objectives, all from logits (spec §5). d_real/d_fake: discriminator logits or critic values (n,) ---------
def _real_term(d_real: torch.Tensor, real_target: float) -> torch.Tensor:
    """−[t·log D(x) + (1−t)·log(1−D(x))] with D = σ(d): t = 1 is the plain term, t = 0.9 one-sided smoothing."""
    return real_target * F.softplus(-d_real) + (1.0 - real_target) * F.softplus(d_real)


def minimax_d(d_real, d_fake, real_target=1.0):
    """D maximises E log D(x) + E log(1 − D(G(z))): minimise its negative."""
    return _real_term(d_real, real_target).mean() + F.softplus(d_fake).mean()


def minimax_g(d_fake):
    """G minimises E log(1 − D(G(z))) = −E softplus(d) (saturates when D rejects fakes confidently)."""
    return -F.softplus(d_fake).mean()


def nonsaturating_g(d_fake):
    """G maximises E log D(G(z)): minimise E softplus(−d)."""
    return F.softplus(-d_fake).mean()


def wasserstein_d(d_real, d_fake, real_target=1.0):
    """The critic maximises E D(x) − E D(G(z)) (Lipschitz constraint applied separately)."""
    return d_fake.mean() - d_real.mean()


def critic_g(d_fake):
    """G minimises −E D(G(z)) (Wasserstein and hinge)."""
    return -d_fake.mean()


def hinge_d(d_real, d_fake, real_target=1.0):
    """E max(0, 1 − D(x)) + E max(0, 1 + D(G(z)))."""
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


GAN_LOSSES = {  # name -> (discriminator loss, generator loss)
    "minimax": (minimax_d, minimax_g),
    "nonsaturating": (minimax_d, nonsaturating_g),
    "wasserstein": (wasserstein_d, critic_g),
    "hinge": (hinge_d, critic_g),
}


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None,
                     weight: float = 10.0) -> torch.Tensor:
    """λ·E(‖∇D(x̂)‖₂ − 1)² on random interpolates x̂ = εx + (1−ε)x̃ (Gulrajani et al. 2017). ``critic``
    maps a batch to (n,) values; extra inputs (labels) belong in the closure. Under ``torch.no_grad``
    (validation) the input gradient is still taken, and the penalty is returned without a graph."""
    shape = (len(real),) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    training = torch.is_grad_enabled()
    with torch.enable_grad():
        x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=training)
        penalty = weight * (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()
    return penalty if training else penalty.detach()
