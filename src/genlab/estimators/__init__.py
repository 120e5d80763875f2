"""scikit-learn style estimators: validate, build ``module_``, call the training loop, convert
NumPy <-> torch and undo the data scaling on the way out. No modelling maths lives here."""

from .autoencoder import Autoencoder
from .base import GenerativeEstimator
from .ease import EASE
from .gan import GAN
from .recommend import MultDAE, MultVAE, Popularity
from .vae import VAE

# the only classes genlab.load will build (a model file names one of these keys)
ESTIMATORS: dict[str, type] = {
    "Autoencoder": Autoencoder, "VAE": VAE, "GAN": GAN, "MultVAE": MultVAE, "MultDAE": MultDAE, "EASE": EASE}

__all__ = ["EASE", "ESTIMATORS", "GAN", "VAE", "Autoencoder", "GenerativeEstimator", "MultDAE", "MultVAE", "Popularity"]
