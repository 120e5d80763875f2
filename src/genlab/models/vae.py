"""Variational autoencoders (spec §4): p(z) = N(0, I), p_θ(x|z), q_φ(z|x) = N(μ, diag σ²).

Training maximises the ELBO  L(x) = E_q[log p_θ(x|z)] − β·KL(q_φ(z|x) ‖ p(z))  with the KL in
closed form and the expectation by reparameterisation (``n_mc`` samples). Variants are options
of one module: β (β-VAE, β = 0 a noisy autoencoder), KL warm-up, free bits, the conditional VAE
(label into the decoder, and into the encoder unless ``encoder_sees_label=False``), and
aggressive inference-network training (He et al., ICLR 2019).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nets import MLP, ConvDecoder, ConvEncoder, make_activation
from .base import Batch, GenerativeModule, OptimizerSpec, Step, detached, full_precision
from .losses import (
    LOGVAR_RANGE,
    bernoulli_nll,
    gaussian_kl,
    gaussian_nll,
    log_normal,
    log_normal_pairwise,
    log_standard_normal,
    multinomial_nll,
)

KL_DIM = "kl_dim_"  # per-epoch record keys kl_dim_0, kl_dim_1, ...: the KL of each latent coordinate
DIAGNOSTIC_SAMPLES = 500  # per-epoch collapse diagnostics use a fixed random subset of this size (~1.5% of an mnist-5k epoch)


@dataclass(frozen=True)
class VAEConfig:
    input_shape: tuple[int, ...]
    latent_dim: int
    arch: Literal["mlp", "conv"] = "mlp"
    hidden: tuple[int, ...] = (512, 256)
    channels: tuple[int, ...] = (32, 64)
    activation: str = "relu"
    likelihood: Literal["bernoulli", "gaussian", "multinomial"] = "bernoulli"
    variance: Literal["fixed", "pixel", "sample"] = "fixed"  # Gaussian: fixed σ², learned per pixel, or per sample
    sigma2: float = 1.0
    output_activation: Literal["auto", "tanh"] = "auto"  # Gaussian mean: auto = the decoder's linear output; tanh: in (−1, 1)
    beta: float = 1.0
    kl_warmup_steps: int = 0  # β ramps linearly from 0 over this many steps
    free_bits: float = 0.0  # nats per latent dimension (Kingma et al. 2016)
    n_mc: int = 1
    n_classes: int = 0  # > 0: conditional VAE
    encoder_sees_label: bool = True
    binarize: Literal["none", "dynamic"] = "none"  # dynamic: x ~ Bernoulli(x) each time a batch is seen
    aggressive: bool = False
    aggressive_max_inner: int = 100


class Posterior(NamedTuple):
    mu: torch.Tensor  # (n, k)
    logvar: torch.Tensor  # (n, k)


class VAEModule(GenerativeModule):
    record_groups = (KL_DIM,)

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        shape, k, n_classes = tuple(config.input_shape), config.latent_dim, config.n_classes
        enc_extra = n_classes if config.encoder_sees_label else 0
        if config.arch == "conv":
            c, h, w = shape
            self.encoder = ConvEncoder((c + enc_extra, h, w), 2 * k, channels=config.channels, hidden=config.hidden,
                                       activation=config.activation)
            self.decoder = ConvDecoder(k + n_classes, shape, channels=tuple(reversed(config.channels)),
                                       hidden=tuple(reversed(config.hidden)), activation=config.activation)
        else:
            d = math.prod(shape)
            self.encoder = MLP(d + enc_extra, config.hidden, 2 * k, activation=config.activation)
            self.decoder = MLP(k + n_classes, tuple(reversed(config.hidden)), d, activation=config.activation)
        if config.output_activation == "tanh" and config.likelihood != "gaussian":
            raise ValueError("output_activation='tanh' is for a Gaussian decoder's mean")
        # the Gaussian mean's activation (bernoulli/multinomial outputs stay logits): no parameters, so state dicts are unchanged
        self.output_activation = make_activation("tanh" if config.output_activation == "tanh" else "identity")
        if config.likelihood == "gaussian" and config.variance == "pixel":
            self.x_logvar = nn.Parameter(torch.zeros(shape))
        elif config.likelihood == "gaussian" and config.variance == "sample":
            self.x_logvar_head = nn.Linear(k + n_classes, 1)
        # schedule state lives in buffers so that checkpoints resume it exactly
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("aggressive_on", torch.tensor(config.aggressive))
        self.register_buffer("best_mi", torch.tensor(-1e30))  # finite: checkpoints refuse non-finite state

    # -- the two networks --------------------------------------------------------------------
    def _onehot(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        if y is None:
            raise ValueError("this conditional VAE needs labels y")
        return F.one_hot(y.long(), self.config.n_classes).float().reshape(n, -1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        """q(z|x[, y]): mean and log-variance, each (n, latent_dim)."""
        if self.config.n_classes and self.config.encoder_sees_label:
            onehot = self._onehot(y, len(x))
            if self.config.arch == "conv":  # label as extra constant channels: (n, C) -> (n, C, h, w)
                x = torch.cat([x, onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
            else:
                x = torch.cat([x.flatten(1), onehot], dim=1)
        mu, logvar = full_precision(self.encoder(x)).chunk(2, dim=1)  # float32 under autocast: the KL and z are computed from them
        return Posterior(mu, logvar.clamp(*LOGVAR_RANGE))

    def _decoder_input(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([z, self._onehot(y, len(z))], dim=1) if self.config.n_classes else z

    def decode_params(self, z: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """p(x|z): the decoder's output (logits or mean, (n, *input_shape)) and, for a Gaussian, its log-variance."""
        h = self._decoder_input(z, y)
        out = full_precision(self.decoder(h)).reshape(len(z), *self.config.input_shape)  # (n, d) -> (n, c, h, w); float32 likelihood
        out = self.output_activation(out)
        cfg = self.config
        if cfg.likelihood != "gaussian":
            return out, None
        if cfg.variance == "fixed":
            return out, torch.full((), math.log(cfg.sigma2), device=z.device)
        if cfg.variance == "pixel":
            return out, self.x_logvar.clamp(*LOGVAR_RANGE)
        logvar = self.x_logvar_head(h).clamp(*LOGVAR_RANGE)  # (n, 1) -> broadcast over the sample's features
        return out, logvar.reshape(len(z), *([1] * len(cfg.input_shape)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of p(x|z) in data space (probabilities for Bernoulli and multinomial)."""
        out, _ = self.decode_params(z, y)
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(out)
        if self.config.likelihood == "multinomial":
            return torch.softmax(out.flatten(1), dim=1).reshape(out.shape)
        return out

    def draw(self, z: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ~ p(x|z) in data space: binary pixels from a Bernoulli, the mean plus noise of the decoder's
        variance from a Gaussian."""
        out, logvar = self.decode_params(z, y)
        if self.config.likelihood == "bernoulli":
            return torch.bernoulli(torch.sigmoid(out), generator=generator)
        if self.config.likelihood == "multinomial":
            raise ValueError("a multinomial decoder draws counts for a given total; genlab's VAE draws Bernoulli or Gaussian x")
        noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return out + torch.exp(0.5 * logvar) * noise

    def negative_log_likelihood(self, x: torch.Tensor, out: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
        """−log p(x|z) per sample, nats, all constants included."""
        if self.config.likelihood == "bernoulli":
            return bernoulli_nll(out, x)
        if self.config.likelihood == "multinomial":
            return multinomial_nll(out, x)
        return gaussian_nll(x, out, logvar)

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
        """log p(x|z) per sample, nats, all constants included."""
        return -self.negative_log_likelihood(x, out, logvar)

    # -- the objective -----------------------------------------------------------------------
    def reparameterize(self, post: Posterior, n_draws: int, generator: torch.Generator | None,
                       eps: torch.Tensor | None = None) -> torch.Tensor:
        """z = μ + σ ⊙ ε, ε ~ N(0, I) (drawn from ``generator`` unless given): (n_draws, n, k)."""
        if eps is None:
            eps = torch.randn((n_draws, *post.mu.shape), generator=generator, device=post.mu.device, dtype=post.mu.dtype)
        return post.mu + torch.exp(0.5 * post.logvar) * eps

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Dynamic binarisation: a fresh Bernoulli draw of x each time (no-op otherwise)."""
        return torch.bernoulli(x, generator=generator) if self.config.binarize == "dynamic" else x

    def elbo_terms(self, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None,
                   n_mc: int | None = None, *, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, Posterior]:
        """(reconstruction −E_q log p(x|z) (n,), KL per dimension (n, k), the posterior); ``eps`` (n_mc, n, k): given noise."""
        n_mc = n_mc or self.config.n_mc
        post = self.encode(x, y)
        z = self.reparameterize(post, n_mc, generator, eps).flatten(0, 1)  # (L, n, k) -> (L*n, k)
        y_rep = None if y is None else y.repeat(n_mc)
        out, logvar = self.decode_params(z, y_rep)
        if n_mc == 1:  # the usual case: no repeat, no average (each small op costs µs per step, forward and backward)
            return self.negative_log_likelihood(x, out, logvar), gaussian_kl(post.mu, post.logvar), post
        x_rep = x.unsqueeze(0).expand(n_mc, *x.shape).flatten(0, 1)  # (L*n, ...) in the same order as z
        rec = self.negative_log_likelihood(x_rep, out, logvar).reshape(n_mc, len(x)).mean(dim=0)
        return rec, gaussian_kl(post.mu, post.logvar), post

    def beta_now(self) -> torch.Tensor | float:
        """The KL weight now: a number, or a 0-d tensor on the module's device during KL warm-up (no host sync)."""
        cfg = self.config
        if cfg.kl_warmup_steps <= 0:
            return cfg.beta
        return cfg.beta * torch.clamp(self.steps.float() / cfg.kl_warmup_steps, max=1.0)

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        x = self.prepare(batch.x, generator)
        rec, kl_dims, _ = self.elbo_terms(x, batch.y, generator)
        rec_mean = rec.mean()
        if self.config.free_bits > 0:  # each dimension's batch-mean KL counts at least free_bits nats
            kl_train = torch.clamp(kl_dims.mean(dim=0), min=self.config.free_bits).sum()
        else:
            kl_train = kl_dims.sum() / len(x)  # the batch mean of the per-sample KL
        beta = self.beta_now()
        loss = rec_mean + kl_train if isinstance(beta, float) and beta == 1.0 else rec_mean + beta * kl_train
        with torch.no_grad():  # reported terms: no autograd graph for them
            kl_mean = kl_train.detach() if self.config.free_bits <= 0 else kl_dims.sum() / len(x)
            return {"loss": loss, "elbo": -(rec_mean + kl_mean), "reconstruction": rec_mean.detach(), "kl": kl_mean,
                    "beta": beta.detach() if torch.is_tensor(beta) else torch.full((), beta, device=x.device)}

    # -- training ----------------------------------------------------------------------------
    def _decoder_parameters(self) -> list[nn.Parameter]:
        encoder = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder]

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        if not self.config.aggressive:
            return super().optimizer_specs()
        return {"encoder": OptimizerSpec(list(self.encoder.parameters())), "decoder": OptimizerSpec(self._decoder_parameters())}

    def train_step(self, batch: Batch, step: Step, generator: torch.Generator | None = None,
                   stream: Callable[[], Batch] | None = None) -> dict[str, torch.Tensor]:
        self.steps += 1
        names = ("encoder", "decoder") if self.config.aggressive else ("model",)
        if self.config.aggressive and bool(self.aggressive_on):
            self._aggressive_encoder_updates(batch, step, generator, stream)
            names = ("decoder",)  # then one decoder update
        terms = self.objective(batch, generator)
        step(names, terms["loss"])
        return detached(terms)

    def _aggressive_encoder_updates(self, batch, step: Step, generator, stream, window: int = 15) -> None:
        """He et al. (2019), Algorithm 1: update only the encoder, on fresh batches from the stream,
        until its loss summed over a window of steps stops improving (at most aggressive_max_inner)."""
        previous, current = math.inf, 0.0
        for i in range(1, self.config.aggressive_max_inner + 1):
            inner = stream() if stream is not None and i > 1 else batch
            loss = self.objective(inner, generator)["loss"]
            step("encoder", loss)
            current += float(step.last_loss)  # the same on every process, so all stop after the same update
            if i % window == 0:
                if current > previous:
                    break
                previous, current = current, 0.0

    @torch.no_grad()
    def preview(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Means of p(x|z) for z from the prior (with the batch's labels when conditional)."""
        if len(self.config.input_shape) != 3:
            return None
        z = torch.randn((len(batch.x), self.config.latent_dim), generator=generator, device=batch.x.device)
        return self.decode(z, batch.y if self.config.n_classes else None)

    @torch.no_grad()
    def end_epoch(self, data, generator: torch.Generator | None = None) -> dict[str, float]:
        """Per-epoch collapse diagnostics on ``data``; also ends aggressive training once the
        mutual information stops rising (He et al. 2019)."""
        self.eval()
        stats = collapse_diagnostics(self, data.x, data.y, generator)
        if self.config.aggressive and bool(self.aggressive_on):
            if stats["mutual_information"] <= float(self.best_mi):
                self.aggressive_on.fill_(False)
            else:
                self.best_mi.fill_(stats["mutual_information"])
        stats["aggressive"] = float(self.aggressive_on)
        return stats


# -- density estimation and collapse diagnostics ----------------------------------------------
@torch.no_grad()
def posterior_moments(module: VAEModule, x: torch.Tensor, y: torch.Tensor | None, batch_size: int = 1024) -> Posterior:
    mus, logvars = [], []
    for s in range(0, len(x), batch_size):
        post = module.encode(x[s:s + batch_size], None if y is None else y[s:s + batch_size])
        mus.append(post.mu)
        logvars.append(post.logvar)
    return Posterior(torch.cat(mus), torch.cat(logvars))


def mutual_information(post: Posterior, generator: torch.Generator | None = None, n_draws: int = 5) -> float:
    """I(x; z) under q(x, z) = p_data(x) q(z|x), estimated as E[log q(z|x)] − E[log q(z)] with the
    aggregate posterior q(z) ≈ (1/N) Σⱼ q(z|xⱼ) (He et al. 2019, calc_mi), averaged over
    ``n_draws`` samples of z per x to tame the single-draw noise. Cost O(n_draws · n² · k)."""
    mu, logvar = post.mu.double(), post.logvar.double()
    n, k = mu.shape
    neg_entropy = (-0.5 * k * math.log(2 * math.pi) - 0.5 * (1 + logvar).sum(dim=1)).mean()
    eps = torch.randn((n_draws, n, k), generator=generator, device=mu.device, dtype=post.mu.dtype).double()
    z = (mu + torch.exp(0.5 * logvar) * eps).flatten(0, 1)  # (n_draws * n, k)
    # log q(z_i) = logsumexp_j log q(z_i|x_j) − log n, 4096 draws at a time to bound memory
    log_qz = torch.cat([torch.logsumexp(log_normal_pairwise(z[i:i + 4096], mu, logvar), dim=1)
                        for i in range(0, len(z), 4096)]) - math.log(n)
    return float(neg_entropy - log_qz.mean())


def collapse_diagnostics(module: VAEModule, x: torch.Tensor, y: torch.Tensor | None,
                         generator: torch.Generator | None = None, threshold: float = 0.01,
                         max_samples: int | None = DIAGNOSTIC_SAMPLES, n_draws: int = 1) -> dict[str, float]:
    """KL per latent dimension (mean over x), active units (Cov_x E_q[z_j] > threshold, Burda et al.
    2016) and the mutual-information estimate, on at most ``max_samples`` rows of x drawn at random."""
    if max_samples is not None and len(x) > max_samples:
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:max_samples].to(x.device)
        x, y = x[keep], None if y is None else y[keep]
    post = posterior_moments(module, x, y)
    kl_dims = gaussian_kl(post.mu, post.logvar).mean(dim=0)
    variance = post.mu.var(dim=0) if len(x) > 1 else torch.zeros_like(kl_dims)
    stats = {"active_units": float((variance > threshold).sum()),
             "mutual_information": mutual_information(post, generator, n_draws=n_draws)}
    stats.update({f"{KL_DIM}{j}": float(v) for j, v in enumerate(kl_dims)})
    return stats


def row_normals(x: torch.Tensor, seed: int, n_draws: int, dim: int) -> torch.Tensor:
    """Standard normal draws (n_draws, n, dim) in which row i's depend only on ``seed`` and the bytes of x[i]:
    a Monte-Carlo estimate for a row is then the same whatever else is in its batch, and in whatever order."""
    rows = x.detach().reshape(len(x), -1).cpu().numpy()
    out = np.empty((len(rows), n_draws, dim), dtype=np.float32)
    for i, row in enumerate(rows):
        key = int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
        out[i] = np.random.default_rng([seed, key]).standard_normal((n_draws, dim), dtype=np.float32)
    return torch.from_numpy(out).transpose(0, 1).to(device=x.device, dtype=torch.float32)  # (n, L, k) -> (L, n, k)


@torch.no_grad()
def importance_weighted_log_likelihood(module: VAEModule, x: torch.Tensor, y: torch.Tensor | None, n_importance: int,
                                       generator: torch.Generator | None = None, chunk: int = 100, *,
                                       seed: int | None = None) -> torch.Tensor:
    """log p(x) ≈ log (1/K) Σₖ p(x, zₖ)/q(zₖ|x), zₖ ~ q(z|x), per sample, nats (Burda et al. 2016).

    With ``seed``, each row's K draws come from :func:`row_normals` (a row's estimate does not depend on its
    batch); otherwise from ``generator``. Draws are decoded ``chunk`` at a time, so memory is bounded by
    chunk × len(x) decodes."""
    post = module.encode(x, y)
    eps = None if seed is None else row_normals(x, seed, n_importance, post.mu.shape[1])  # (K, n, k)
    log_w = []
    for start in range(0, n_importance, chunk):
        k = min(chunk, n_importance - start)
        z = module.reparameterize(post, k, generator, None if eps is None else eps[start:start + k])  # (k, n, d)
        flat = z.flatten(0, 1)
        out, logvar = module.decode_params(flat, None if y is None else y.repeat(k))
        x_rep = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
        log_px = module.log_likelihood(x_rep, out, logvar).reshape(k, len(x))
        log_w.append(log_px + log_standard_normal(z) - log_normal(z, post.mu, post.logvar))
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(n_importance)
