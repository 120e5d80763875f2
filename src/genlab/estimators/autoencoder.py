"""``Autoencoder``: the sklearn front door of :mod:`genlab.models.autoencoder` (spec §3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.mixture import GaussianMixture

from .._params import Param, training_params
from .._validation import check_array, resolve_seed
from ..errors import InvalidInputError
from ..models import AutoencoderConfig, AutoencoderModule, pca_closed_form, set_linear_autoencoder
from ..training import distributed, resolve_device, write_metrics
from .base import GenerativeEstimator, _as_tensor, with_training_doc

AE_PARAMS: dict[str, Param] = {
    "latent_dim": Param("int", "size of the code", low=1, default=8),
    "arch": Param("str", "encoder/decoder: mlp, conv (images) or linear (= PCA)", choices=("mlp", "conv", "linear"), default="mlp"),
    "hidden": Param("ints", "hidden layer widths (mlp) or fully-connected widths after the convs (conv); default per arch",
                    none_ok=True, default=None),
    "channels": Param("ints", "conv channels per downsampling step", default=(32, 64)),
    "pooling": Param("str", "arch=conv only: each downsampling step is two 3x3 convs and a 2x2 max or avg pooling, mirrored "
                     "by unpooling in the decoder (max: at the positions the encoder recorded; a code decoded alone, and avg, "
                     "upsample by copying); none: strided convs", choices=("max", "avg"), none_ok=True, default=None),
    "activation": Param("str", "hidden activation", choices=("relu", "leaky_relu", "tanh", "sigmoid", "elu", "gelu"), default="relu"),
    "code_activation": Param("str", "activation on the code (sigmoid for the 8-3-8 demo)", choices=("sigmoid", "tanh"),
                             none_ok=True, default=None),
    "loss": Param("str", "reconstruction loss: squared error or binary cross-entropy", choices=("mse", "bce"), default="mse"),
    "output_activation": Param("str", "sigmoid: output units in (0, 1) under the squared loss too (the lectures' 8-3-8 net; "
                               "data scaled to [0, 1]); none: linear for mse, sigmoid for bce", choices=("sigmoid",),
                               none_ok=True, default=None),
    "solver": Param("str", "auto: closed form for arch=linear with mse, gradient otherwise",
                    choices=("auto", "closed_form", "gradient"), default="auto"),
    "sampler_components": Param("int", "Gaussian mixture components fitted to the codes for sample()", low=1, default=1),
    **training_params(),
}
DEFAULT_HIDDEN = {"mlp": (256, 128), "conv": (), "linear": ()}


def _whole(x) -> torch.Tensor:
    """Every row as one tensor (rows read from a mapped file are read here)."""
    return x if torch.is_tensor(x) else x[0:len(x)]


@with_training_doc
class Autoencoder(TransformerMixin, GenerativeEstimator):
    """Autoencoder: encoder Φ: X→Z and decoder Ψ: Z→X minimising Σᵢ D(xᵢ, Ψ(Φ(xᵢ))) (spec §3).

    Parameters
    ----------
    latent_dim : int
        Size of the code z.
    arch : {"mlp", "conv", "linear"}
        ``"linear"`` with ``loss="mse"`` is PCA: by default it is solved in closed form (encoder
        h = Vᵀ(x−μ), decoder x̂ = μ + Vh with V the top-k eigenvectors of the covariance), and
        ``solver="gradient"`` trains the same model with Adam. ``"conv"`` needs images (n, c, h, w).
    pooling : {None, "max", "avg"}
        ``arch="conv"`` only. None (the default): each downsampling step is a strided convolution. ``"max"``
        or ``"avg"``: the pooling autoencoder — each step is two 3x3 convolutions and a 2x2 pooling (odd
        sides round up), and the decoder mirrors them, un-pooling before its convolutions in reverse order.
        With ``"max"`` the decoder puts values back at the positions the encoder's max-poolings recorded for
        the same input; those exist in :meth:`reconstruct` and :meth:`score` only. :meth:`inverse_transform`
        and :meth:`sample` decode codes that come with no positions, and upsample by copying each value to
        its window instead. The positions carry information past the code, so a decoder trained on
        reconstructions alone would decode bare codes badly: training minimises the mean of both
        reconstruction losses (recorded as ``reconstruction`` and ``reconstruction_code_only``). Expect
        ``reconstruct(X)`` to be closer to ``X`` than ``inverse_transform(transform(X))``, and do not compare
        its error with that of a model whose code is its only channel. ``"avg"`` mirrors average pooling by
        copying each mean back to its window; both paths are then the same.
    hidden, channels, activation, code_activation
        Network shape; ``hidden=None`` means (256, 128) for mlp and () for conv.
    loss : {"mse", "bce"}
        Squared error, or binary cross-entropy (outputs through a sigmoid; data scaled to [0, 1]).
    sampler_components : int
        An autoencoder has no sampling distribution of its own: :meth:`sample` draws codes from a
        Gaussian mixture with this many full-covariance components fitted to the training codes.
    {training}

    Attributes
    ----------
    module_ : AutoencoderModule
    history_ : list of dict, one record per epoch (losses, validation losses, time)
    scaling_ : Scaling applied to inputs and undone on outputs
    input_shape_, n_features_in_, seed_
    components_, explained_variance_, mean_ : closed-form linear autoencoder only (as sklearn's PCA)
    code_weights_, code_means_, code_covariances_ : the Gaussian mixture on the codes
    """

    _params = AE_PARAMS
    _positional = ("latent_dim",)
    _fitted_arrays = ("components_", "explained_variance_", "mean_", "code_weights_", "code_means_", "code_covariances_")

    def _validated_params(self) -> dict[str, Any]:
        params = super()._validated_params()
        if params["arch"] == "linear" and params["hidden"]:
            raise InvalidInputError("arch='linear' has no hidden layers; leave hidden unset.")
        if params["arch"] == "linear" and params["code_activation"]:
            raise InvalidInputError("arch='linear' has a linear code; leave code_activation unset.")
        if params["pooling"] is not None and params["arch"] != "conv":
            raise InvalidInputError(f"pooling={params['pooling']!r} pools convolutional feature maps and needs arch='conv'; "
                                    f"got arch={params['arch']!r}. Use arch='conv', or leave pooling unset.")
        if params["solver"] == "closed_form" and (params["arch"] != "linear" or params["loss"] != "mse" or params["output_activation"]):
            raise InvalidInputError("solver='closed_form' exists only for arch='linear' with loss='mse' and linear outputs (that is PCA).")
        return params

    def fit(self, X, y=None, *, run_dir=None, resume=False):
        """Fit to ``X``; ``y`` is ignored (an autoencoder learns from X alone; accepted for pipelines).
        See GenerativeEstimator.fit."""
        return super().fit(X, None, run_dir=run_dir, resume=resume)

    def _closed_form(self) -> bool:
        return self.arch == "linear" and self.loss == "mse" and not self.output_activation and self.solver in ("auto", "closed_form")

    def _output_range(self):
        return (0.0, 1.0) if self.loss == "bce" or self.output_activation == "sigmoid" else None

    def _make_module(self, p, input_shape, n_classes):
        hidden = DEFAULT_HIDDEN[p.arch] if p.hidden is None else tuple(p.hidden)
        return AutoencoderModule(AutoencoderConfig(
            input_shape=input_shape, latent_dim=p.latent_dim, arch=p.arch, hidden=hidden,
            channels=tuple(p.channels), activation=p.activation, code_activation=p.code_activation, loss=p.loss,
            pooling=p.pooling, output_activation=p.output_activation,
        ))

    def _fit_module(self, module, train_data, val_data, run_dir, resume):
        for name in ("components_", "explained_variance_", "mean_"):
            self.__dict__.pop(name, None)
        if not self._closed_form():
            return super()._fit_module(module, train_data, val_data, run_dir, resume)
        x = _whole(train_data.x)  # the SVD needs every row
        n_samples, n_features = len(x), x[0].numel()
        if self.latent_dim > min(n_samples, n_features):
            raise InvalidInputError(
                f"arch='linear' is PCA, which has at most min(n_samples, n_features) components, but latent_dim={self.latent_dim} "
                f"and the training data has n_samples={n_samples}, n_features={n_features}; lower latent_dim.")
        solution = pca_closed_form(x, self.latent_dim)
        set_linear_autoencoder(module, solution)
        module.to(resolve_device(self.device))
        self.components_ = solution.components.float().numpy()
        self.explained_variance_ = solution.explained_variance.float().numpy()
        self.mean_ = solution.mean.float().numpy()
        self.best_epoch_, self.stopped_early_ = 0, False
        record = {"epoch": 0, "step": 0, "loss": self._mean_loss(x, module)}
        if val_data is not None:
            record["val_loss"] = self._mean_loss(_whole(val_data.x), module)
        if run_dir is not None and distributed.current().main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_metrics(run_dir, [record])
        return [record]

    def _mean_loss(self, x: torch.Tensor, module=None) -> float:
        module = module or self.module_
        with torch.no_grad():
            x = x.to(next(module.parameters()).device)
            return float(module.reconstruction_loss(module.reconstruct_raw(x), x).mean())

    def _after_fit(self, x_train, y_train):
        codes = self._apply(self.module_.encode, x_train).astype(np.float64)
        n_components = min(self.sampler_components, len(codes))
        gmm = GaussianMixture(n_components, covariance_type="full", reg_covar=1e-6, random_state=self.seed_).fit(codes)
        self.code_weights_ = gmm.weights_.astype(np.float32)
        self.code_means_ = gmm.means_.astype(np.float32)
        self.code_covariances_ = gmm.covariances_.astype(np.float32)

    def code_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The moments of the Gaussian mixture fitted to the training codes (an autoencoder has no prior; sample()
        draws from that mixture): its mean, and per coordinate the square root of the law of total variance."""
        self._check_fitted()
        w = np.asarray(self.code_weights_, np.float64) / np.sum(self.code_weights_)  # (m,)
        means = np.asarray(self.code_means_, np.float64)  # (m, k)
        mean = w @ means
        var = np.einsum("m,mkk->k", w, np.asarray(self.code_covariances_, np.float64)) + w @ (means - mean) ** 2
        return mean, np.sqrt(np.maximum(var, 1e-12))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the networks compute in float32, whatever comes in
        return tags

    # -- the transformer API -----------------------------------------------------------------
    def transform(self, X) -> np.ndarray:
        """Codes Φ(x): (n, *input_shape) -> (n, latent_dim), float32."""
        x = self._check_X(X)
        return self._apply(self.module_.encode, x)

    def inverse_transform(self, Z) -> np.ndarray:
        """Decode codes (n, latent_dim) to samples in the user's units and shape.

        With ``pooling="max"`` a code comes with no recorded positions to un-pool at, so each value is copied to
        its window (see ``pooling``); :meth:`reconstruct` uses the positions.
        """
        self._check_fitted()
        Z = check_array(Z, name="Z", expected_shape=(self.latent_dim,), owner=type(self).__name__)
        return self.scaling_.inverse(self._apply(self.module_.decode, Z.astype(np.float32)))

    def reconstruct(self, X) -> np.ndarray:
        """Ψ(Φ(x)) in the user's units, same shape as ``X`` (with max-pooling, un-pooled at x's own positions)."""
        x = self._check_X(X)
        return self.scaling_.inverse(self._apply(self.module_.reconstruct, x))

    def score(self, X, y=None) -> float:
        """Negative mean reconstruction loss per sample in model units (higher is better; for GridSearchCV)."""
        x = _as_tensor(self._check_X(X))
        return -self._mean_loss(x)

    def sample(self, n_samples: int = 1, *, random_state=None, mean: bool = True) -> np.ndarray:
        """Draw codes from the Gaussian mixture fitted to the training codes and decode them.

        This is *not* a generative model in the VAE/GAN sense: the autoencoder defines no
        distribution, so the samples are only as good as a Gaussian (mixture) fit of the codes, and
        ``mean=False`` (draw from p(x|z)) is refused: there is no p(x|z).
        """
        n_samples = self._check_n_samples(n_samples)
        self._check_mean(mean)
        rng = np.random.default_rng(resolve_seed(random_state))
        comps = rng.choice(len(self.code_weights_), size=n_samples, p=self.code_weights_ / self.code_weights_.sum())
        chol = np.linalg.cholesky(self.code_covariances_.astype(np.float64))  # (m, k, k)
        eps = rng.standard_normal((n_samples, self.latent_dim))
        z = self.code_means_[comps] + np.einsum("nij,nj->ni", chol[comps], eps)
        return self.inverse_transform(z.astype(np.float32))
