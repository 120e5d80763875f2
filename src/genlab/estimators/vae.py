"""``VAE``: the sklearn front door of :mod:`genlab.models.vae` (spec §4). β-VAE, conditional VAE,
KL warm-up, free bits and aggressive training are parameters of this one class."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import TransformerMixin

from .._params import Param, check_number, training_params
from .._validation import check_array, check_labels, resolve_seed
from ..errors import InvalidInputError
from ..models import VAEConfig, VAEModule, importance_weighted_log_likelihood, mutual_information, posterior_moments
from ..models.losses import gaussian_kl
from ..models.vae import row_normals
from .base import GenerativeEstimator, _as_tensor, with_training_doc

VAE_PARAMS: dict[str, Param] = {
    "latent_dim": Param("int", "size of z", low=1, default=8),
    "arch": Param("str", "encoder/decoder networks", choices=("mlp", "conv"), default="mlp"),
    "hidden": Param("ints", "hidden widths (mlp) or fully-connected widths after the convs (conv); default per arch", none_ok=True,
                    default=None),
    "channels": Param("ints", "conv channels per downsampling step", default=(32, 64)),
    "activation": Param("str", "hidden activation", choices=("relu", "leaky_relu", "tanh", "elu", "gelu"), default="relu"),
    "likelihood": Param("str", "p(x|z): bernoulli (data in [0,1]), gaussian, multinomial (counts)",
                        choices=("bernoulli", "gaussian", "multinomial"), default="bernoulli"),
    "variance": Param("str", "gaussian variance: fixed (sigma2), learned per pixel, or per sample", choices=("fixed", "pixel", "sample"),
                      default="fixed"),
    "sigma2": Param("float", "fixed Gaussian variance σ² (small: reconstruction dominates)", low=1e-8, default=1.0),
    "output_activation": Param("str", "gaussian decoder's mean: auto (linear) or tanh (in [-1, 1]; data scaled to [-1, 1] and back); "
                               "bernoulli and multinomial decoders keep their sigmoid / softmax", choices=("auto", "tanh"),
                               default="auto"),
    "beta": Param("float", "weight of the KL term: 1 VAE, >1 beta-VAE, 0 a noisy autoencoder", low=0, default=1.0),
    "kl_warmup": Param("int", "steps over which beta ramps up from 0 (KL annealing)", low=0, default=0),
    "free_bits": Param("float", "minimum KL per latent dimension in nats (batch mean)", low=0, default=0.0),
    "n_mc": Param("int", "Monte-Carlo samples of z per datapoint in the ELBO", low=1, default=1),
    "conditional": Param("bool", "condition on class labels y (fit(X, y); sample(n, y=c))", default=False),
    "encoder_sees_label": Param("bool", "conditional: give y to the encoder too (False: encoding needs no label)", default=True),
    "binarize": Param("str", "bernoulli data: none, fixed (threshold 0.5) or dynamic (x ~ Bernoulli(x) each epoch)",
                      choices=("none", "fixed", "dynamic"), default="none"),
    "training": Param("str", "standard, or aggressive inference-network updates against posterior collapse (He et al. 2019)",
                      choices=("standard", "aggressive"), default="standard"),
    "n_importance": Param("int", "importance samples K for score_samples (log-likelihood)", low=1, default=1000),
    **training_params(),
}
DEFAULT_HIDDEN = {"mlp": (512, 256), "conv": ()}


@with_training_doc
class VAE(TransformerMixin, GenerativeEstimator):
    """Variational autoencoder: p(z) = N(0, I), p(x|z) from the decoder, q(z|x) = N(μ(x), diag σ²(x)).

    Trains by maximising the ELBO E_q[log p(x|z)] − β·KL(q(z|x) ‖ p(z)); every term is reported in
    nats with all constants, so the numbers compare with published ones.

    Parameters
    ----------
    latent_dim, arch, hidden, channels, activation
        Networks (``hidden=None``: (512, 256) for mlp, () for conv).
    likelihood : {"bernoulli", "gaussian", "multinomial"}
        ``gaussian`` with ``variance="fixed"`` uses σ² = ``sigma2``: the loss is ‖x−Ψ(z)‖²/(2σ²) + const.
    output_activation : {"auto", "tanh"}
        The Gaussian decoder's mean: ``"auto"``, the network's linear output; ``"tanh"``, squashed into
        (−1, 1), with the data mapped to [−1, 1] by ``scaling`` (pixels and [0, 1] data as the GAN's tanh
        output maps them; with ``scaling="center"`` the centred data must already lie in [−1, 1]) and
        outputs mapped back. Draws (``sample(mean=False)``) add the Gaussian noise and may leave the range.
        Bernoulli and multinomial decoders have their own output (sigmoid, softmax): tanh is refused.
        The lecture's Ex 68.1 is ``likelihood="gaussian", output_activation="tanh", scaling="center"``.
    beta, kl_warmup, free_bits
        β-VAE weight, linear KL annealing over ``kl_warmup`` steps, free bits per dimension.
    n_mc : int
        Samples of z per datapoint in the training ELBO.
    conditional, encoder_sees_label
        Conditional VAE (one-hot y into decoder, and into the encoder unless ``encoder_sees_label=False``).
    binarize : {"none", "fixed", "dynamic"}
        For Bernoulli likelihoods on grey-level data.
    training : {"standard", "aggressive"}
        ``aggressive``: He et al. (2019) inner encoder loop until the mutual information stops rising.
    n_importance : int
        K in the importance-weighted estimate of :meth:`score_samples`.
    {training}
        ``scaling="center"`` (subtract the training mean per feature) needs ``likelihood="gaussian"``.

    Attributes
    ----------
    module_, history_ (per epoch: loss, elbo, reconstruction, kl, beta, validation terms, active_units,
    mutual_information, kl_dim_j), scaling_, input_shape_, n_classes_, seed_
    """

    _params = VAE_PARAMS
    _positional = ("latent_dim",)
    _has_likelihood = True

    # -- hooks ----------------------------------------------------------------------------------
    def _validated_params(self) -> dict[str, Any]:
        params = super()._validated_params()
        if params["binarize"] != "none" and params["likelihood"] != "bernoulli":
            raise InvalidInputError("binarize applies to likelihood='bernoulli' only.")
        own = {"bernoulli": "a sigmoid over its logits, data in [0, 1]", "multinomial": "a softmax over its logits, counts"}
        if params["output_activation"] == "tanh" and params["likelihood"] != "gaussian":
            raise InvalidInputError(f"output_activation='tanh' bounds a Gaussian decoder's mean; likelihood='{params['likelihood']}' "
                                    f"has its own output ({own[params['likelihood']]}): use likelihood='gaussian' with tanh.")
        if params["scaling"] == "center" and params["likelihood"] != "gaussian":
            raise InvalidInputError(f"scaling='center' subtracts the mean, leaving negative values, but likelihood="
                                    f"'{params['likelihood']}' models {own[params['likelihood']].split(', ')[1]}: use "
                                    "likelihood='gaussian' with it, or scaling='auto'.")
        return params

    def _output_range(self):
        if self.likelihood == "bernoulli":
            return (0.0, 1.0)
        return (-1.0, 1.0) if self.likelihood == "gaussian" and self.output_activation == "tanh" else None

    def _preprocess(self, x: np.ndarray) -> np.ndarray:
        return (x > 0.5).astype(np.float32) if self.binarize == "fixed" else x

    def fit(self, X, y=None, *, run_dir=None, resume=False):
        """Fit to ``X``; a conditional VAE needs class labels ``y`` (n,). See GenerativeEstimator.fit."""
        if self.conditional and y is None:
            raise InvalidInputError("conditional=True needs class labels: fit(X, y).")
        return super().fit(X, y if self.conditional else None, run_dir=run_dir, resume=resume)

    def _make_module(self, p, input_shape, n_classes):
        hidden = DEFAULT_HIDDEN[p.arch] if p.hidden is None else tuple(p.hidden)
        return VAEModule(VAEConfig(
            input_shape=input_shape, latent_dim=p.latent_dim, arch=p.arch, hidden=hidden, channels=tuple(p.channels),
            activation=p.activation, likelihood=p.likelihood, variance=p.variance, sigma2=float(p.sigma2),
            output_activation=p.output_activation,
            beta=float(p.beta), kl_warmup_steps=p.kl_warmup, free_bits=float(p.free_bits), n_mc=p.n_mc,
            n_classes=(n_classes or 0) if p.conditional else 0, encoder_sees_label=p.encoder_sees_label,
            binarize="dynamic" if p.binarize == "dynamic" else "none", aggressive=p.training == "aggressive",
        ))

    # -- labels ---------------------------------------------------------------------------------
    def _labels(self, y, n: int, *, for_encoder: bool) -> torch.Tensor | None:
        """Labels as a tensor where the model uses them; clear errors where they are missing."""
        if not self.conditional or (for_encoder and not self.encoder_sees_label):
            return None
        if y is None:
            raise InvalidInputError("this conditional VAE needs labels here: pass y (encoder_sees_label=False "
                                    "trains an encoder that does not).")
        if np.isscalar(y):
            y = np.full(n, y)
        y = check_labels(y, n)
        if y.max() >= self.n_classes_:
            raise InvalidInputError(f"label {y.max()} is out of range: this VAE was fitted on classes 0..{self.n_classes_ - 1}.")
        return torch.from_numpy(y).to(self._device())

    def _seed(self, random_state) -> int:
        """The seed of a Monte-Carlo estimate: the estimator's own unless ``random_state`` is given."""
        return self.seed_ if random_state is None else resolve_seed(random_state)

    def _generator(self, random_state) -> torch.Generator:
        return torch.Generator(device=self._device()).manual_seed(self._seed(random_state))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the networks compute in float32, whatever comes in
        return tags

    # -- the transformer API ----------------------------------------------------------------------
    def transform(self, X, y=None) -> np.ndarray:
        """Posterior means E_q[z|x] (n, latent_dim)."""
        x = _as_tensor(self._check_X(X)).to(self._device())
        with torch.no_grad():
            return posterior_moments(self.module_.eval(), x, self._labels(y, len(x), for_encoder=True)).mu.cpu().numpy()

    def inverse_transform(self, Z, y=None) -> np.ndarray:
        """Decode codes (n, latent_dim) to the mean of p(x|z), in the user's units and shape."""
        self._check_fitted()
        z = _as_tensor(check_array(Z, name="Z", expected_shape=(self.latent_dim,), owner=type(self).__name__)).to(self._device())
        labels = self._labels(y, len(z), for_encoder=False)
        with torch.no_grad():
            out = torch.cat([self.module_.eval().decode(z[s:s + 1024], None if labels is None else labels[s:s + 1024])
                             for s in range(0, len(z), 1024)])
        return self.scaling_.inverse(out.cpu().numpy())

    def reconstruct(self, X, y=None) -> np.ndarray:
        """Decoded posterior means: Ψ(E_q[z|x]), same shape and units as ``X``."""
        return self.inverse_transform(self.transform(X, y), y)

    def sample(self, n_samples: int = 1, *, y=None, random_state=None, mean: bool = True) -> np.ndarray:
        """Draw z ~ N(0, I) and return the mean of p(x|z) (n, *input_shape), user units; with
        ``mean=False``, draw x ~ p(x|z) itself: binary pixels (0 or the top of the data's range) for a
        Bernoulli decoder, the mean plus Gaussian noise of the decoder's variance σ² for a Gaussian one.

        Conditional VAEs generate class ``y`` (an int or n labels); without ``y`` the classes are
        cycled 0, 1, …, C−1, 0, …
        """
        n_samples = self._check_n_samples(n_samples)
        mean = self._check_mean(mean)
        if not mean and self.likelihood == "multinomial":
            raise InvalidInputError("a multinomial decoder gives word/item probabilities, not one draw per pixel: sample(mean=False) "
                                    "(CLI: --draw) works for likelihood='bernoulli' or 'gaussian'; the mean is the probabilities.")
        if self.conditional and y is None:
            y = np.arange(n_samples) % self.n_classes_
        rng = np.random.default_rng(resolve_seed(random_state))
        z = rng.standard_normal((n_samples, self.latent_dim)).astype(np.float32)
        if mean:
            return self.inverse_transform(z, y)
        gen = torch.Generator(device=self._device()).manual_seed(int(rng.integers(2**62)))
        zt = torch.from_numpy(z).to(self._device())
        labels = self._labels(y, len(zt), for_encoder=False)
        with torch.no_grad():
            out = torch.cat([self.module_.eval().draw(zt[s:s + 1024], None if labels is None else labels[s:s + 1024], gen)
                             for s in range(0, len(zt), 1024)])
        return self.scaling_.inverse(out.cpu().numpy())

    # -- likelihoods and diagnostics --------------------------------------------------------------
    def _tensors(self, X, y):
        x = _as_tensor(self._check_X(X)).to(self._device())
        return x, self._labels(y, len(x), for_encoder=False)

    def score_samples(self, X, y=None, *, n_importance: int | None = None, random_state=None) -> np.ndarray:
        """Importance-weighted estimate of log p(x) per sample, in nats (K = ``n_importance``).

        A row's K draws of z are seeded by the estimator's seed (or ``random_state``) and the row's own
        values, so a row scores the same alone, in any batch and in any order."""
        x, labels = self._tensors(X, y)
        k = self.n_importance if n_importance is None else check_number("n_importance", n_importance, low=1,
                                                                         what="a positive integer")
        seed = self._seed(random_state)
        per_batch = max(1, 20000 // max(k, 1))
        out = [importance_weighted_log_likelihood(self.module_.eval(), x[s:s + per_batch],
                                                  None if labels is None else labels[s:s + per_batch], k, seed=seed)
               for s in range(0, len(x), per_batch)]
        return torch.cat(out).cpu().numpy().astype(np.float64)

    def score(self, X, y=None) -> float:
        """Mean importance-weighted log-likelihood (nats per sample)."""
        return float(self.score_samples(X, y).mean())

    def elbo(self, X, y=None, *, n_mc: int = 1, random_state=None) -> np.ndarray:
        """The ELBO per sample in nats (β = 1, the bound on log p(x)), with ``n_mc`` samples of z (seeded per row,
        as in :meth:`score_samples`)."""
        n_mc = check_number("n_mc", n_mc, low=1, what="a positive integer")
        x, labels = self._tensors(X, y)
        seed = self._seed(random_state)
        out = []
        with torch.no_grad():
            for s in range(0, len(x), 512):
                part = x[s:s + 512]
                eps = row_normals(part, seed, n_mc, self.latent_dim)
                rec, kl_dims, _ = self.module_.eval().elbo_terms(part, None if labels is None else labels[s:s + 512],
                                                                 None, n_mc, eps=eps)
                out.append(-(rec + kl_dims.sum(dim=1)))
        return torch.cat(out).cpu().numpy().astype(np.float64)

    def kl_per_dim(self, X, y=None) -> np.ndarray:
        """KL(q(z_j|x) ‖ p(z_j)) averaged over X, per latent dimension (nats)."""
        x, labels = self._tensors(X, y)
        post = posterior_moments(self.module_.eval(), x, labels if self.encoder_sees_label else None)
        return gaussian_kl(post.mu, post.logvar).mean(dim=0).cpu().numpy().astype(np.float64)

    def active_units(self, X, y=None, *, threshold: float = 0.01) -> int:
        """Latent dimensions whose posterior mean varies over X: Cov_x(E_q[z_j]) > threshold."""
        return int((self.transform(X, y).var(axis=0, ddof=1) > threshold).sum())

    def mutual_information(self, X, y=None, *, random_state=None) -> float:
        """Estimate of I(x; z) under q, in nats (He et al. 2019); costs O(n²) in len(X)."""
        x, labels = self._tensors(X, y)
        post = posterior_moments(self.module_.eval(), x, labels if self.encoder_sees_label else None)
        return mutual_information(post, self._generator(random_state))
