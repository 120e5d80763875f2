"""``VAEGAN``: the sklearn front door of :mod:`genlab.models.vaegan` (Larsen et al., ICML 2016): a VAE whose
reconstruction is measured in a GAN discriminator's features, trained with the GAN loss too."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import TransformerMixin

from .._params import Param, training_params
from .._validation import check_array, resolve_seed
from ..errors import InvalidInputError
from ..models import posterior_moments
from ..models.vaegan import ADVERSARIAL_LOSSES, VAEGANConfig, VAEGANModule
from .base import GenerativeEstimator, _as_tensor, with_training_doc
from .vae import DEFAULT_HIDDEN, VAE_PARAMS

VAEGAN_PARAMS: dict[str, Param] = {
    **{name: VAE_PARAMS[name] for name in ("latent_dim", "arch", "hidden", "channels", "activation")},  # the VAE's networks
    "d_hidden": Param("ints", "hidden widths of the MLP discriminator (arch='mlp')", default=(256, 256)),
    "d_channels": Param("ints", "channels of the DCGAN discriminator's strided convs (arch='conv')", default=(32, 64)),
    "feature_layer": Param("int", "hidden layer (mlp) or conv block (conv) of the discriminator, counted from 1, whose features "
                           "measure the reconstruction (None: the last)", low=1, none_ok=True, default=None),
    "gamma": Param("float", "weight γ of the feature reconstruction against the GAN loss in the decoder's update", low=0,
                   default=1.0),
    "feature_variance": Param("str", "covariance of the feature likelihood: unit (identity, as in the paper) or data (each feature's "
                              "variance over the real batch); None: unit for conv, data for mlp", choices=("unit", "data"),
                              none_ok=True, default=None),
    "loss": Param("str", "GAN objective: minimax, nonsaturating or hinge", choices=ADVERSARIAL_LOSSES, default="nonsaturating"),
    "lr_d": Param("float", "discriminator learning rate (None: lr)", low=0, none_ok=True, default=None),
    "betas": Param("floats", "Adam betas of the encoder's, decoder's and discriminator's optimisers", low=0, high=1, length=2,
                   default=(0.5, 0.999)),
    **training_params(),
}


@with_training_doc
class VAEGAN(TransformerMixin, GenerativeEstimator):
    """VAE-GAN (Larsen et al., ICML 2016): a VAE whose decoder is also a GAN generator, and whose reconstruction
    error is measured in the discriminator's features instead of pixels.

    p(z) = N(0, I), q(z|x) = N(μ(x), diag σ²(x)) as in :class:`genlab.VAE`; the pixel likelihood is replaced by
    L_llike = −log N(D_l(x); D_l(x̃), Σ), with D_l the discriminator's ``feature_layer``-th hidden layer, x̃ the
    reconstruction and Σ the identity or the features' variance (``feature_variance``). The encoder learns from
    KL + L_llike, the decoder from γ·L_llike plus the generator loss on reconstructions and on prior samples, the
    discriminator from the GAN loss alone (see :mod:`genlab.models.vaegan`).

    Parameters
    ----------
    latent_dim, arch, hidden, channels, activation
        The encoder and decoder, exactly as :class:`genlab.VAE` builds them (``hidden=None``: (512, 256) for mlp,
        () for conv). The decoder's output is a sigmoid, so data is scaled to [0, 1].
    d_hidden : tuple of int
        The MLP discriminator's hidden widths (``arch="mlp"``), LeakyReLU(0.2) as the GAN's.
    d_channels : tuple of int
        The DCGAN discriminator's channels (``arch="conv"``).
    feature_layer : int or None
        Which of D's hidden layers (mlp) or conv blocks (conv) gives D_l, counted from 1; None: the last.
    feature_variance : {"unit", "data"} or None
        The covariance of the feature likelihood: ``"unit"``, the identity, as in the paper; ``"data"``, each
        feature's variance over the real batch (detached), which makes L_llike independent of the scale D gives
        its features. None: ``"unit"`` for conv — the DCGAN discriminator batch-normalises its blocks after the
        first, so their features have unit scale, as the paper's had — and ``"data"`` for mlp, whose discriminator
        has no normalisation: on digits its features stay small, L_llike weighs little against the KL, and with
        the identity the posterior collapsed (KL 0.1–2 nats after 30 epochs, reconstruction MSE 0.12 per pixel, worse
        than the mean digit's 0.07), while ``"data"`` gave 15 nats and a held-out MSE of 0.035 (100 epochs).
    gamma : float
        γ, the weight of L_llike in the decoder's update against the GAN loss (the encoder always gets KL + L_llike).
    loss : {"minimax", "nonsaturating", "hinge"}
        The GAN objective, computed from logits as :class:`genlab.GAN` does.
    lr_d : float or None
        The discriminator's learning rate (None: ``lr``, which the encoder and decoder use).
    betas : (float, float)
        Adam's betas for all three optimisers; β₁ = 0.5 as for GANs.
    {training}
        ``scaling="center"`` is refused (the decoder's outputs lie in [0, 1]); so are early stopping and the plateau
        schedule: no record measures progress (the features D_l move).

    Notes
    -----
    A VAE-GAN has no likelihood p(x|z) of its own, so there is no ``score_samples``, ``score`` or ``elbo`` and
    ``sample(mean=False)`` is refused: its "likelihood" is a Gaussian over D's features, which change as D
    trains, and it is not a normalised density over x, so KL + L_llike bounds no log p(x) and values from two
    runs (or two epochs) do not compare. Judge it by its samples (``genlab evaluate``: FID, KID) and by its
    reconstructions.

    Attributes
    ----------
    module_, history_ (per epoch: loss, kl, feature_rec, g_loss, d_loss, d_real, d_fake, pixel_mse, validation terms,
    active_units, mutual_information, kl_dim_j), scaling_, input_shape_, n_features_in_, seed_
    """

    _params = VAEGAN_PARAMS
    _positional = ("latent_dim",)

    # -- hooks ----------------------------------------------------------------------------------
    def _validated_params(self) -> dict[str, Any]:
        params = super()._validated_params()
        layers_of = "d_channels" if params["arch"] == "conv" else "d_hidden"
        n_layers = len(params[layers_of])
        if n_layers == 0:
            raise InvalidInputError(f"{layers_of} must name at least one layer: the feature reconstruction reads the "
                                    "discriminator's hidden features.")
        if params["feature_layer"] is not None and params["feature_layer"] > n_layers:
            raise InvalidInputError(f"feature_layer={params['feature_layer']}, but the discriminator has {n_layers} layers "
                                    f"({layers_of}={params[layers_of]}); choose 1..{n_layers} or None (the last).")
        if params["scaling"] == "center":
            raise InvalidInputError("scaling='center' leaves negative values, but the VAE-GAN's decoder ends in a sigmoid (outputs "
                                    "in [0, 1]); use scaling='auto' or 'minmax'.")
        return params

    def _output_range(self):
        return (0.0, 1.0)  # the decoder ends in a sigmoid

    def fit(self, X, y=None, *, run_dir=None, resume=False):
        """Fit to ``X`` (n, d) or (n, c, h, w); ``y`` is ignored (the model is unconditional). See GenerativeEstimator.fit."""
        return super().fit(X, None, run_dir=run_dir, resume=resume)

    def _make_module(self, p, input_shape, n_classes):
        d_layers = tuple(p.d_channels if p.arch == "conv" else p.d_hidden)
        return VAEGANModule(VAEGANConfig(
            input_shape=input_shape, latent_dim=p.latent_dim, arch=p.arch,
            hidden=DEFAULT_HIDDEN[p.arch] if p.hidden is None else tuple(p.hidden), channels=tuple(p.channels),
            activation=p.activation, d_hidden=tuple(p.d_hidden), d_channels=tuple(p.d_channels),
            feature_layer=len(d_layers) if p.feature_layer is None else p.feature_layer, gamma=float(p.gamma),
            feature_variance=p.feature_variance or ("unit" if p.arch == "conv" else "data"), loss=p.loss,
            lr_d=None if p.lr_d is None else float(p.lr_d), betas=tuple(float(b) for b in p.betas),
        ))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the networks compute in float32, whatever comes in
        return tags

    # -- the transformer API ----------------------------------------------------------------------
    def transform(self, X) -> np.ndarray:
        """Posterior means E_q[z|x] (n, latent_dim)."""
        x = _as_tensor(self._check_X(X)).to(self._device())
        with torch.no_grad():
            return posterior_moments(self.module_.eval().vae, x, None).mu.cpu().numpy()

    def inverse_transform(self, Z) -> np.ndarray:
        """Decode codes (n, latent_dim) to images (or vectors) in the user's units and shape."""
        self._check_fitted()
        z = check_array(Z, name="Z", expected_shape=(self.latent_dim,), owner=type(self).__name__).astype(np.float32, copy=False)
        return self.scaling_.inverse(self._apply(self.module_.decode, z))

    def reconstruct(self, X) -> np.ndarray:
        """Dec(E_q[z|x]): the decoded posterior means, same shape and units as ``X``."""
        return self.inverse_transform(self.transform(X))

    def sample(self, n_samples: int = 1, *, random_state=None, mean: bool = True) -> np.ndarray:
        """Dec(z) for z ~ N(0, I): (n, *input_shape) in the user's units. The decoder is deterministic given z (the
        model defines no p(x|z) to draw from), so ``mean=False`` is refused."""
        n_samples = self._check_n_samples(n_samples)
        self._check_mean(mean)
        z = np.random.default_rng(resolve_seed(random_state)).standard_normal((n_samples, self.latent_dim)).astype(np.float32)
        return self.inverse_transform(z)
