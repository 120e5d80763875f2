"""An example family's estimator file, as ``genlab/estimators/tied.py`` would be (see family_tied_model.py): the
parameter table, the module it builds, and the transformer methods. Everything else — validation, scaling, the
split, the loop, checkpoints, resume, saving and loading — comes from GenerativeEstimator."""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import TransformerMixin

from family_tied_model import TiedConfig, TiedModule
from genlab._params import Param, training_params
from genlab._validation import check_array, resolve_seed
from genlab.estimators.base import GenerativeEstimator

TIED_PARAMS = {"latent_dim": Param("int", "size of the code", low=1, default=2), **training_params(epochs=20)}


class TiedAutoencoder(TransformerMixin, GenerativeEstimator):
    """Linear autoencoder with tied weights (decoder = encoder transposed)."""

    _params = TIED_PARAMS
    _positional = ("latent_dim",)

    def _make_module(self, p, input_shape, n_classes):
        return TiedModule(TiedConfig(math.prod(input_shape), p.latent_dim))

    def transform(self, X) -> np.ndarray:
        return self._apply(self.module_.encode, self._check_X(X))

    def inverse_transform(self, Z) -> np.ndarray:
        self._check_fitted()
        Z = check_array(Z, name="Z", expected_shape=(self.latent_dim,), owner=type(self).__name__)
        out = self._apply(self.module_.decode, Z.astype(np.float32))
        return self.scaling_.inverse(out.reshape(len(out), *self.input_shape_))

    def reconstruct(self, X) -> np.ndarray:
        return self.inverse_transform(self.transform(X))

    def sample(self, n_samples: int = 1, *, random_state=None, mean: bool = True) -> np.ndarray:
        """Decode codes drawn from N(0, I)."""
        n_samples = self._check_n_samples(n_samples)
        self._check_mean(mean)
        z = np.random.default_rng(resolve_seed(random_state)).standard_normal((n_samples, self.latent_dim))
        return self.inverse_transform(z.astype(np.float32))
