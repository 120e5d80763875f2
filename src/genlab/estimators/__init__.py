"""scikit-learn style estimators: validate, build ``module_``, call the training loop, convert
NumPy <-> torch and undo the data scaling on the way out. No modelling maths lives here."""

from .autoencoder import Autoencoder
from .base import GenerativeEstimator
from .ease import EASE
from .gan import GAN
from .recommend import MultDAE, MultVAE, Popularity
from .vae import VAE
from .vaegan import VAEGAN

__all__ = ["EASE", "GAN", "VAE", "VAEGAN", "Autoencoder", "GenerativeEstimator", "MultDAE", "MultVAE", "Popularity"]
