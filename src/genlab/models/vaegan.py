"""VAE-GAN (Larsen, Sønderby, Larochelle & Winther, ICML 2016, "Autoencoding beyond pixels using a learned
similarity metric"): genlab's VAE encoder and decoder, plus a GAN discriminator D whose l-th hidden layer takes the
place of the pixel likelihood.

With z ~ q(z|x), x̃ = Dec(z) (a reconstruction) and x_p = Dec(z_p), z_p ~ N(0, I) (a prior sample), per batch:

    L_prior  = KL(q(z|x) ‖ p(z))                          closed form, as the VAE        record "kl"
    L_llike  = −log N(D_l(x); D_l(x̃), Σ)                  D's layer-l features           record "feature_rec"
    L_GAN    = log D(x) + log(1 − D(x̃)) + log(1 − D(x_p))                                  records "d_loss", "g_loss"

and each network is updated from its own loss (the paper's Algorithm 1, section 2.2):

    encoder        ∇(L_prior + L_llike)           no GAN gradient reaches the encoder
    decoder        ∇(γ·L_llike − L_GAN)           γ trades reconstruction against fooling D
    discriminator  ∇(−L_GAN)                      D never sees L_llike: it is not trained to make features easy

Σ is the identity, as in the paper, or (``feature_variance="data"``) the diagonal of each feature's variance over
the real batch, detached: the metric then does not depend on the scale D happens to give its features (an MLP
discriminator without normalisation keeps them small, and with the identity the KL wins and the posterior
collapses). All three gradients are taken at the same weights, then the three optimisers step. The loop's stepper
back-propagates each loss into the named optimiser's parameters only, and no graph is shared between two updates:
the decoder's loss decodes a detached z, and the discriminator's sees detached fakes. The GAN part is one of
:data:`~genlab.models.losses.GAN_LOSSES` (``nonsaturating`` by default, as the GAN: the decoder
then maximises log D(fake) rather than minimising log(1 − D(fake))), with the reconstructions and
the prior samples pooled into one fake batch of 2n (the paper sums the two fake terms; pooling weighs the real
and the fake side alike, as a plain GAN does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from ..nets import MLP, DCGANDiscriminator
from .base import Batch, GenerativeModule, OptimizerSpec, Step, full_precision
from .losses import GAN_LOSSES, gaussian_kl, gaussian_nll
from .vae import Posterior, VAEConfig, VAEModule, collapse_diagnostics

FEATURE_VARIANCE_FLOOR = 1e-4  # added to the batch variance of each feature: a feature constant over the batch gets a finite weight
ADVERSARIAL_LOSSES = ("minimax", "nonsaturating", "hinge")  # the Wasserstein critic needs a Lipschitz constraint: not offered


@dataclass(frozen=True)
class VAEGANConfig:
    input_shape: tuple[int, ...]
    latent_dim: int
    arch: Literal["mlp", "conv"] = "mlp"
    hidden: tuple[int, ...] = (512, 256)  # encoder (the decoder mirrors it), as the VAE's
    channels: tuple[int, ...] = (32, 64)  # conv encoder (the decoder mirrors it), as the VAE's
    activation: str = "relu"
    d_hidden: tuple[int, ...] = (256, 256)  # MLP discriminator
    d_channels: tuple[int, ...] = (32, 64)  # DCGAN discriminator
    feature_layer: int = 2  # 1-based hidden layer (mlp) or conv block (conv) of D whose output is D_l
    gamma: float = 1.0
    feature_variance: Literal["unit", "data"] = "unit"  # covariance of L_llike: I, or diag of D_l's variance over the real batch
    loss: Literal["minimax", "nonsaturating", "hinge"] = "nonsaturating"
    lr_d: float | None = None  # None: the training configuration's lr
    betas: tuple[float, float] = (0.5, 0.999)

    def vae_config(self) -> VAEConfig:
        """The encoder and decoder: a VAE whose decoder outputs logits of pixel intensities, x̃ = σ(logits)."""
        return VAEConfig(input_shape=tuple(self.input_shape), latent_dim=self.latent_dim, arch=self.arch, hidden=tuple(self.hidden),
                         channels=tuple(self.channels), activation=self.activation, likelihood="bernoulli")


class VAEGANLosses(NamedTuple):
    """The three updates' losses, each a scalar with its graph, and the detached records."""

    encoder: torch.Tensor  # L_prior + L_llike
    decoder: torch.Tensor  # γ·L_llike + the generator loss on reconstructions and prior samples
    discriminator: torch.Tensor  # the discriminator loss: real x against the pooled fakes
    terms: dict[str, torch.Tensor]


def feature_layer_count(config: VAEGANConfig) -> int:
    """How many layers D has to take features from: hidden layers (mlp) or conv blocks (conv)."""
    return len(config.d_channels) if config.arch == "conv" else len(config.d_hidden)


def _cut_after_activation(layers: nn.Sequential, layer: int) -> int:
    """Index just past the ``layer``-th (1-based) LeakyReLU of ``layers``: the end of that hidden layer or conv block."""
    seen = 0
    for i, module in enumerate(layers):
        if isinstance(module, nn.LeakyReLU):
            seen += 1
            if seen == layer:
                return i + 1
    raise ValueError(f"the discriminator has {seen} hidden layers; feature_layer={layer} is not one of them")


class VAEGANModule(GenerativeModule):
    """Encoder and decoder (``vae``, a :class:`~genlab.models.vae.VAEModule`) and a discriminator; see the module doc."""

    record_groups = VAEModule.record_groups  # the encoder's KL per latent dimension, as the VAE reports it
    monitor = None
    no_monitor_reason = ("a VAE-GAN's feature reconstruction is measured in features the discriminator keeps changing, and its "
                         "GAN losses trade off against each other, so no record says whether the model improves. Train a fixed "
                         "number of epochs and judge the samples with genlab evaluate.")

    def __init__(self, config: VAEGANConfig):
        super().__init__()
        self.config = config
        n_layers = feature_layer_count(config)
        if not 1 <= config.feature_layer <= n_layers:
            raise ValueError(f"feature_layer must be between 1 and {n_layers} (the discriminator's layers); got {config.feature_layer}")
        self.vae = VAEModule(config.vae_config())
        if config.arch == "conv":
            self.discriminator = DCGANDiscriminator(tuple(config.input_shape), channels=config.d_channels)
            self._cut = _cut_after_activation(self.discriminator.convs, config.feature_layer)
        else:
            self.discriminator = MLP(math.prod(config.input_shape), config.d_hidden, 1, activation="leaky_relu")
            self._cut = _cut_after_activation(self.discriminator.layers, config.feature_layer)

    # -- the networks ------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z|x): mean and log-variance, each (n, latent_dim)."""
        return self.vae.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Dec(z): pixel intensities in [0, 1], (n, *input_shape)."""
        return self.vae.decode(z)

    def discriminate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D on ``x`` (n, *input_shape): its layer-l features D_l(x), flattened to (n, m), and its logit (n,)."""
        d, cut = self.discriminator, self._cut
        if self.config.arch == "conv":
            h = d.convs[:cut](x)  # (n, c, h, w) -> the l-th block's maps
            logit = d.linear(d.convs[cut:](h).flatten(1))
        else:
            h = d.layers[:cut](x.flatten(1))  # (n, c, h, w) -> (n, d) -> the l-th hidden layer
            logit = d.layers[cut:](h)
        return full_precision(h.flatten(1)), full_precision(logit).squeeze(1)

    def draw_noise(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ε for the reparameterisation and z_p from the prior, each (n, latent_dim), drawn in that order."""
        device, k = next(self.parameters()).device, self.config.latent_dim
        eps = torch.randn((n, k), generator=generator, device=device)
        return eps, torch.randn((n, k), generator=generator, device=device)

    # -- the objective -----------------------------------------------------------------------------
    def losses(self, x: torch.Tensor, eps: torch.Tensor, z_prior: torch.Tensor) -> VAEGANLosses:
        """The three losses on real ``x`` (n, *input_shape), with the reparameterisation noise ``eps`` and the prior
        codes ``z_prior`` (each (n, latent_dim)) given: a pure function of its arguments and the weights."""
        cfg = self.config
        d_loss_fn, g_loss_fn = GAN_LOSSES[cfg.loss]
        post = self.vae.encode(x)
        z = self.vae.reparameterize(post, 1, None, eps.unsqueeze(0))[0]  # z = μ + σ ⊙ ε
        kl = gaussian_kl(post.mu, post.logvar).sum(dim=1).mean()
        f_real, d_real = self.discriminate(x)
        target = f_real.detach()  # D_l(x) depends on D's weights only, and D does not learn from L_llike
        if cfg.feature_variance == "data" and len(x) > 1:
            logvar = torch.log(target.var(dim=0) + FEATURE_VARIANCE_FLOOR)  # (m,): each feature's spread over the real batch
        else:
            logvar = torch.zeros((), device=x.device)

        def feature_nll(x_rec: torch.Tensor) -> torch.Tensor:
            """L_llike per sample, averaged: −log N(D_l(x); D_l(x̃), I) in nats, with its ½·log 2π per feature."""
            return gaussian_nll(target, self.discriminate(x_rec)[0], logvar).mean()

        # the encoder's update: through the decoder and D, but only the encoder's optimiser steps on it
        feature_rec = feature_nll(self.vae.decode(z))
        encoder = kl + feature_rec
        # the decoder's update: z detached, so that neither term reaches the encoder (a second graph through Dec)
        x_rec, x_prior = self.vae.decode(z.detach()), self.vae.decode(z_prior)
        feature_rec_decoder = feature_nll(x_rec)
        d_fake = torch.cat([self.discriminate(x_rec)[1], self.discriminate(x_prior)[1]])  # (2n,): both kinds of fakes
        g_loss = g_loss_fn(d_fake)
        decoder = cfg.gamma * feature_rec_decoder + g_loss
        # the discriminator's update: the fakes detached, so that D's loss reaches D only
        d_fake_detached = torch.cat([self.discriminate(x_rec.detach())[1], self.discriminate(x_prior.detach())[1]])
        d_loss = d_loss_fn(d_real, d_fake_detached)
        with torch.no_grad():
            terms = {"loss": encoder + decoder + d_loss, "kl": kl, "feature_rec": feature_rec, "g_loss": g_loss, "d_loss": d_loss,
                     "d_real": _summary(d_real, cfg.loss), "d_fake": _summary(d_fake_detached, cfg.loss),
                     "pixel_mse": (x_rec - x).pow(2).mean()}
        return VAEGANLosses(encoder, decoder, d_loss, {name: value.detach() for name, value in terms.items()})

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The records of one batch, no update (validation). ``loss`` (the three losses' sum) is only what the loop
        checks for finiteness; it measures nothing on its own."""
        eps, z_prior = self.draw_noise(len(batch.x), generator)
        return self.losses(batch.x, eps, z_prior).terms

    # -- training ----------------------------------------------------------------------------------
    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        cfg = self.config
        encoder = list(self.vae.encoder.parameters())
        in_encoder = {id(p) for p in encoder}
        return {"encoder": OptimizerSpec(encoder, betas=cfg.betas),
                "decoder": OptimizerSpec([p for p in self.vae.parameters() if id(p) not in in_encoder], betas=cfg.betas),
                "discriminator": OptimizerSpec(list(self.discriminator.parameters()), lr=cfg.lr_d, betas=cfg.betas)}

    def train_step(self, batch: Batch, step: Step, generator: torch.Generator | None = None,
                   stream: Callable[[], Batch] | None = None) -> dict[str, torch.Tensor]:
        eps, z_prior = self.draw_noise(len(batch.x), generator)
        out = self.losses(batch.x, eps, z_prior)
        # Algorithm 1: all three losses were computed at the same weights; each network steps on its own. The encoder
        # goes first: its loss's graph runs through the decoder's and D's weights, which must not have moved yet.
        step("encoder", out.encoder)
        step("decoder", out.decoder)
        step("discriminator", out.discriminator)
        return out.terms

    @torch.no_grad()
    def preview(self, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Decoded prior samples, as the VAE shows them."""
        return self.vae.preview(batch, generator)

    @torch.no_grad()
    def end_epoch(self, data, generator: torch.Generator | None = None) -> dict[str, float]:
        """The encoder's collapse diagnostics (KL per dimension, active units, mutual information), as the VAE's."""
        self.eval()
        return collapse_diagnostics(self.vae, data.x, None, generator)


def _summary(d: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean D output for the records: a probability σ(d) for the logit objectives, the raw value for hinge."""
    return (torch.sigmoid(d) if loss in ("minimax", "nonsaturating") else d).mean()
