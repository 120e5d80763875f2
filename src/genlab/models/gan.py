"""Generative adversarial networks (spec §5): G: Z→X with z ~ N(0, I) or U(−1, 1)^k, D: X→ℝ (a logit,
or a critic value). Training alternates ``d_steps`` discriminator and ``g_steps`` generator updates
inside this family's own ``train_step``; the shared loop just calls it.

Objectives are pairs from :data:`genlab.models.losses.GAN_LOSSES`, all from logits. D ends in one
real-vs-fake logit d, or (``d_head="softmax"``) in two logits (l_real, l_fake) whose softmax gives
P(real) = σ(l_real − l_fake): the losses then read d = l_real − l_fake, so both heads are the same model
(tested). Variants are options: conditional GAN (one-hot label into G and D), the C+1-class semi-supervised discriminator
(Salimans et al. 2016), one-sided label smoothing, annealed instance noise, spectral norm, weight
clipping or gradient penalty for the Wasserstein critic. Samples come from an exponential moving
average of the generator's weights (Yazıcı et al. 2019, "The unusual effectiveness of averaging in GAN
training"); ``ema=0`` samples from the generator being trained.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as add_spectral_norm

from ..nets import MLP, DCGANDiscriminator, DCGANGenerator, make_activation
from .base import Batch, GenerativeModule, OptimizerSpec, Step, detached, full_precision
from .losses import GAN_LOSSES, gradient_penalty

LOG4 = math.log(4.0)


@dataclass(frozen=True)
class GANConfig:
    input_shape: tuple[int, ...]
    latent_dim: int = 16
    arch: Literal["mlp", "conv"] = "mlp"
    hidden: tuple[int, ...] = (256, 256)  # MLP widths of both players, unless hidden_g / hidden_d say otherwise
    hidden_g: tuple[int, ...] | None = None  # the MLP generator's widths (None: hidden)
    hidden_d: tuple[int, ...] | None = None  # the MLP discriminator's widths (None: hidden)
    activation_g: str = "relu"  # hidden activations of the MLP players (names in genlab.nets.ACTIVATIONS)
    activation_d: str = "leaky_relu"
    d_head: Literal["logit", "softmax"] = "logit"  # softmax: two outputs (real, fake); minimax / nonsaturating only
    channels: tuple[int, ...] = (64, 128)  # discriminator's; the generator mirrors them
    loss: Literal["minimax", "nonsaturating", "wasserstein", "hinge"] = "nonsaturating"
    penalty: Literal["gp", "clip"] = "gp"  # Lipschitz constraint for the Wasserstein critic
    gp_weight: float = 10.0
    clip_value: float = 0.01
    prior: Literal["normal", "uniform"] = "normal"
    d_steps: int = 1
    g_steps: int = 1
    label_smoothing: float = 1.0  # target for real samples: 1.0 none, 0.9 one-sided smoothing
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs, annealed linearly to 0
    noise_anneal_steps: int = 1000
    spectral_norm: bool = False
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    output: Literal["tanh", "sigmoid", "linear"] = "linear"
    n_classes: int = 0  # > 0 with conditional: label into G and D
    conditional: bool = False
    semi_supervised: bool = False  # D has n_classes + 1 outputs; unlabelled rows carry y = −1
    ema: float = 0.999  # decay of the generator-weight average used in eval mode; 0 disables it


class GANModule(GenerativeModule):
    monitor = None  # no record measures sample quality
    no_monitor_reason = ("a GAN's d_loss and g_loss trade off against each other and do not say whether the samples improve. "
                         "Train a fixed number of epochs and judge the samples with genlab evaluate.")

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        shape, k = tuple(config.input_shape), config.latent_dim
        n_cond = config.n_classes if config.conditional else 0
        if config.d_head == "softmax" and (config.semi_supervised or config.loss not in ("minimax", "nonsaturating")):
            raise ValueError("d_head='softmax' needs loss 'minimax' or 'nonsaturating' and no semi-supervised head")
        d_out = config.n_classes + 1 if config.semi_supervised else 2 if config.d_head == "softmax" else 1
        if config.arch == "conv":
            self.generator = DCGANGenerator(k, shape, channels=tuple(reversed(config.channels)), in_features_extra=n_cond)
            self.discriminator = DCGANDiscriminator(shape, channels=config.channels, out_features=d_out,
                                                    in_channels_extra=n_cond, spectral_norm=config.spectral_norm)
        else:
            d = math.prod(shape)
            hidden_g = config.hidden if config.hidden_g is None else config.hidden_g
            hidden_d = config.hidden if config.hidden_d is None else config.hidden_d
            self.generator = MLP(k + n_cond, hidden_g, d, activation=config.activation_g)
            self.discriminator = MLP(d + n_cond, hidden_d, d_out, activation=config.activation_d)
            if config.spectral_norm:
                for m in list(self.discriminator.modules()):
                    if isinstance(m, nn.Linear):
                        add_spectral_norm(m)
        self.output_activation = make_activation("identity" if config.output == "linear" else config.output)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        # the averaged generator: what eval mode (sample, validation) uses; never trained by a gradient
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if config.ema > 0 else None

    # -- the two players ---------------------------------------------------------------------------
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.steps.device
        if self.config.prior == "uniform":
            return 2.0 * torch.rand((n, self.config.latent_dim), generator=generator, device=device) - 1.0
        return torch.randn((n, self.config.latent_dim), generator=generator, device=device)

    def _onehot(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if not self.config.conditional:
            return None
        if y is None:
            raise ValueError("this conditional GAN needs labels y")
        return F.one_hot(y.long().clamp(min=0), self.config.n_classes).float().reshape(n, -1)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """G(z[, y]) in data space, (n, *input_shape); in eval mode the weight-averaged generator."""
        onehot = self._onehot(y, len(z))
        net = self.generator_ema if (self.generator_ema is not None and not self.training) else self.generator
        if self.config.arch == "conv":
            out = net(z, onehot)
        else:
            out = net(z if onehot is None else torch.cat([z, onehot], dim=1))
        return self.output_activation(out.reshape(len(z), *self.config.input_shape))  # (n, d) -> (n, c, h, w)

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D's raw outputs: (n,) logit or critic value, (n, 2) logits (real, fake) for ``d_head="softmax"``, or
        (n, C+1) class logits when semi-supervised (the fake class last)."""
        onehot = self._onehot(y, len(x))
        if self.config.arch == "conv":
            out = self.discriminator(x, onehot)
        else:
            out = self.discriminator(x.flatten(1) if onehot is None else torch.cat([x.flatten(1), onehot], dim=1))
        out = full_precision(out)  # float32 under autocast: the losses are computed from these logits
        return out if self.config.semi_supervised or self.config.d_head == "softmax" else out.squeeze(1)

    def real_fake_logit(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """d(x) with D(x) = σ(d), (n,). The softmax head's P(real) = e^l_real / (e^l_real + e^l_fake) = σ(l_real − l_fake),
        so d = l_real − l_fake; for the C+1 discriminator d = logsumexp(real classes) − fake logit."""
        out = self.logits(x, y)
        if self.config.semi_supervised:
            return torch.logsumexp(out[:, :-1], dim=1) - out[:, -1]
        if self.config.d_head == "softmax":
            return out[:, 0] - out[:, 1]
        return out

    # -- objective terms ---------------------------------------------------------------------------
    def _noise(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        cfg = self.config
        if cfg.instance_noise <= 0:
            return x
        std = cfg.instance_noise * max(0.0, 1.0 - float(self.steps) / max(cfg.noise_anneal_steps, 1))
        if std == 0:
            return x
        return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    def _fake(self, batch: Batch, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        y = batch.y if self.config.conditional else None
        if y is not None and self.config.semi_supervised:  # unlabelled rows (−1): draw a class for their fakes
            y = torch.where(y < 0, torch.randint(self.config.n_classes, y.shape, generator=generator, device=y.device), y)
        return self.generate(self.sample_prior(len(batch.x), generator), y), y

    def discriminator_terms(self, batch: Batch, fake: torch.Tensor, y_fake, generator) -> dict[str, torch.Tensor]:
        cfg = self.config
        y_real = batch.y if cfg.conditional else None
        x_real, x_fake = self._noise(batch.x, generator), self._noise(fake, generator)
        d_real, d_fake = self.real_fake_logit(x_real, y_real), self.real_fake_logit(x_fake, y_fake)
        d_loss_fn, _ = GAN_LOSSES[cfg.loss]
        loss = d_loss_fn(d_real, d_fake, cfg.label_smoothing)
        terms = {}
        if cfg.loss == "wasserstein" and cfg.penalty == "gp":
            # in float32 even under autocast: the input gradient of a float16 critic is not loss-scaled and would underflow
            with torch.autocast(x_real.device.type, enabled=False):
                terms["gradient_penalty"] = gradient_penalty(lambda v: self.real_fake_logit(v, y_real), full_precision(x_real),
                                                             full_precision(x_fake.detach()), generator, cfg.gp_weight)
            loss = loss + terms["gradient_penalty"]
        if cfg.semi_supervised:  # cross-entropy over the C real classes on the labelled rows (0 if none here)
            labelled = batch.y >= 0
            logits = self.logits(batch.x, None)[:, :-1]
            per_row = F.cross_entropy(logits, batch.y.clamp(min=0), reduction="none") * labelled
            terms["supervised"] = per_row.sum() / labelled.sum().clamp(min=1)
            loss = loss + terms["supervised"]
        terms.update(d_loss=loss, d_real=_summary(d_real, cfg.loss), d_fake=_summary(d_fake, cfg.loss))
        if cfg.loss in ("minimax", "nonsaturating"):
            value = -(F.softplus(-d_real).mean() + F.softplus(d_fake).mean())  # V(D, G) = E log D(x) + E log(1 − D(G(z)))
            terms["js_estimate"] = 0.5 * (value + LOG4)
        return terms

    def generator_loss(self, fake: torch.Tensor, y_fake) -> torch.Tensor:
        _, g_loss_fn = GAN_LOSSES[self.config.loss]
        return g_loss_fn(self.real_fake_logit(fake, y_fake))

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Both players' losses on one batch, no update (validation). ``loss`` = d_loss + g_loss is
        only what the loop checks for finiteness; it is not a measure of sample quality."""
        fake, y_fake = self._fake(batch, generator)
        terms = self.discriminator_terms(batch, fake, y_fake, generator)
        terms["g_loss"] = self.generator_loss(fake, y_fake)
        terms["loss"] = terms["d_loss"] + terms["g_loss"]
        return terms

    # -- training -----------------------------------------------------------------------------------
    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        cfg = self.config  # the GAN's own learning rates and betas (spec §5: Adam β₁ = 0.5)
        return {"discriminator": OptimizerSpec(list(self.discriminator.parameters()), lr=cfg.lr_d, betas=cfg.betas,
                                               log_grad_norm=True),
                "generator": OptimizerSpec(list(self.generator.parameters()), lr=cfg.lr_g, betas=cfg.betas, log_grad_norm=True)}

    def train_step(self, batch: Batch, step: Step, generator: torch.Generator | None = None,
                   stream: Callable[[], Batch] | None = None) -> dict[str, torch.Tensor]:
        cfg = self.config
        for i in range(cfg.d_steps):  # k_d discriminator updates, each on a fresh real batch
            real = batch if i == 0 or stream is None else stream()
            with torch.no_grad():
                fake, y_fake = self._fake(real, generator)
            d_terms = self.discriminator_terms(real, fake, y_fake, generator)
            step("discriminator", d_terms["d_loss"])
            if cfg.loss == "wasserstein" and cfg.penalty == "clip":
                with torch.no_grad():
                    for p in self.discriminator.parameters():
                        p.clamp_(-cfg.clip_value, cfg.clip_value)
        zero = torch.zeros((), device=batch.x.device)
        g_loss = zero
        for _ in range(cfg.g_steps):  # k_g generator updates; only G's parameters receive gradients
            fake, y_fake = self._fake(batch, generator)
            g_loss = self.generator_loss(fake, y_fake)
            step("generator", g_loss)
        self.steps += 1
        self._update_ema()
        terms = detached(d_terms)
        terms.update(g_loss=g_loss.detach(), loss=(d_terms["d_loss"] + g_loss).detach(),
                     d_grad_norm=step.grad_norms.get("discriminator", zero), g_grad_norm=step.grad_norms.get("generator", zero))
        return terms

    @torch.no_grad()
    def preview(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Samples of the averaged generator (eval mode), with the batch's labels when conditional."""
        return self._fake(batch, generator)[0] if len(self.config.input_shape) == 3 else None

    @torch.no_grad()
    def _update_ema(self) -> None:
        """θ_ema ← d·θ_ema + (1 − d)·θ with d = min(ema, (1 + t)/(10 + t)), so short runs are not
        dominated by the initial weights; batch-norm statistics are copied."""
        if self.generator_ema is None:
            return
        t = self.steps.float()  # stays on the device: no host sync per step
        weight = 1.0 - torch.clamp((1.0 + t) / (10.0 + t), max=self.config.ema)
        for avg, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            avg.lerp_(p, weight)
        for avg, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            avg.copy_(b)


def _summary(d: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean D output for the logs: a probability σ(d) for logit objectives, the raw critic otherwise."""
    return (torch.sigmoid(d) if loss in ("minimax", "nonsaturating") else d).mean().detach()

