"""Mult-VAE and Mult-DAE for collaborative filtering (spec §6; Liang, Krishnan, Hoffman and Jebara,
"Variational autoencoders for collaborative filtering", WWW 2018).

A user is the row x of their interactions with all items. The row is L2-normalised, dropped out
(the denoising corruption), encoded by a tanh MLP into q(z|x) = N(μ, σ²) — or, for the DAE, a
point z — and decoded to logits over the items; the likelihood is multinomial,
log p(x|z) = Σᵢ xᵢ log softmax(f(z))ᵢ. The VAE's KL term is weighted by β, annealed linearly from 0
to a cap (0.2 by default) over ``anneal_steps`` updates (a buffer). The decoder's logits rank the items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse

from ..nets import MLP
from .base import Batch, GenerativeModule, SparseBatch, full_precision
from .losses import LOGVAR_RANGE, gaussian_kl, multinomial_nll
from .ranking import RANKING_METRICS, SELECTION_METRIC


@dataclass(frozen=True)
class MultVAEConfig:
    n_items: int
    hidden: tuple[int, ...] = (600,)  # encoder widths; the decoder mirrors them
    latent_dim: int = 200
    dropout: float = 0.5  # on the normalised input
    variational: bool = True  # False: Mult-DAE (deterministic code, no KL)
    beta_cap: float = 0.2


class MultVAEModule(GenerativeModule):
    monitor = (SELECTION_METRIC, True)  # the paper's model selection: validation NDCG@100
    monitor_needs_validation = True

    def __init__(self, config: MultVAEConfig):
        super().__init__()
        self.config = config
        code = 2 * config.latent_dim if config.variational else config.latent_dim
        self.encoder = MLP(config.n_items, config.hidden, code, activation="tanh", sparse_input=True)  # reads sparse rows
        self.decoder = MLP(config.latent_dim, tuple(reversed(config.hidden)), config.n_items, activation="tanh")
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        # updates over which β rises linearly from 0 to beta_cap (estimators set it from the run's length: the
        # cap is reached after 80% of the updates); a buffer, so checkpoints and saved models carry it
        self.register_buffer("anneal_steps", torch.tensor(200_000, dtype=torch.long))

    def upgrade_state(self, state: dict[str, torch.Tensor], format_version: int) -> dict[str, torch.Tensor]:
        """Files of format 1 hold the first layer as ``nn.Linear`` does, hidden × items: transpose it."""
        key = "encoder.layers.0.weight"
        if format_version < 2 and key in state and state[key].ndim == 2:
            state = {**state, key: state[key].t().contiguous()}
        return state

    def beta(self) -> torch.Tensor:
        """The KL weight now, a 0-d tensor on the module's device (no host sync per step)."""
        if not self.config.variational:
            return torch.zeros((), device=self.steps.device)
        progress = self.steps.float() / self.anneal_steps.clamp(min=1).float()
        return self.config.beta_cap * progress.clamp(max=1.0)

    def encode(self, x: torch.Tensor | SparseBatch,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(μ, log σ²) of q(z|x) — (z, None) for the DAE — with input dropout in train mode. A sparse x is
        normalised and dropped out on its stored values, and the first layer multiplies those alone."""
        if isinstance(x, SparseBatch):
            norms = x.row_sums(x.values.square()).sqrt().clamp(min=1e-12)  # as F.normalize: x / max(‖x‖, ε)
            values = self._dropout(x.values / norms[x.rows], generator)
            out = self.encoder.forward_sparse(x.cols, x.offsets, values)
        else:
            out = self.encoder(self._dropout(F.normalize(x, dim=1), generator))
        out = full_precision(out)  # float32 codes under autocast (the KL is summed from them)
        if not self.config.variational:
            return out, None
        mu, logvar = out.chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)  # as in the VAE: exp(logvar) would overflow past 88

    def _dropout(self, h: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not (self.training and self.config.dropout > 0):
            return h
        keep = torch.rand(h.shape, generator=generator, device=h.device) >= self.config.dropout  # seeded: reproducible
        return h * keep / (1.0 - self.config.dropout)

    def scores(self, x: torch.Tensor | SparseBatch) -> torch.Tensor:
        """Item logits for each user row (posterior mean code, no dropout): higher ranks first."""
        mu, _ = self.encode(x)
        return self.decoder(mu)

    def objective(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(batch.x, generator)
        if logvar is None:
            z, kl = mu, torch.zeros(len(mu), device=mu.device)
        else:
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator, device=mu.device) if self.training else mu
            kl = gaussian_kl(mu, logvar).sum(dim=1)
        nll = multinomial_nll(full_precision(self.decoder(z)), batch.x)  # float32 under autocast: a softmax over every item
        beta = self.beta()
        return {"loss": (nll + beta * kl).mean(), "nll": nll.mean(), "kl": kl.mean(), "beta": beta}

    def train_step(self, batch, step, generator=None, stream=None):
        terms = super().train_step(batch, step, generator, stream)
        self.steps += 1
        return terms

    @torch.no_grad()
    def eval_step(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss terms; with held-out items in ``batch.y`` also the ranking metrics of Liang et al.
        (fold-in items in ``batch.x`` are never recommended)."""
        terms = {k: v.detach() for k, v in self.objective(batch, generator).items()}
        if batch.y is not None:
            scores = self.scores(batch.x)
            if isinstance(batch.x, SparseBatch):
                scores[batch.x.rows, batch.x.cols] = -torch.inf
            else:
                scores = scores.masked_fill(batch.x > 0, -torch.inf)
            scores, heldout = scores.cpu().numpy(), _csr(batch.y)
            for name, (metric, k) in RANKING_METRICS.items():
                terms[name] = torch.tensor(float(np.nanmean(metric(scores, heldout, k))))
        return terms


def _csr(y: torch.Tensor | SparseBatch) -> sparse.csr_matrix:
    if isinstance(y, SparseBatch):
        return sparse.csr_matrix((y.values.cpu().numpy(), (y.rows.cpu().numpy(), y.cols.cpu().numpy())), shape=y.shape)
    return sparse.csr_matrix(y.cpu().numpy())
