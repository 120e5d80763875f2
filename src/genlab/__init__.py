"""genlab: autoencoders, VAEs and GANs you can trust.

>>> import genlab
>>> X, y = genlab.datasets.load("digits")
>>> ae = genlab.Autoencoder(latent_dim=10, arch="linear").fit(X)
"""

__version__ = "0.1.0"

from . import datasets, evaluate, latent  # noqa: E402  (the README uses genlab.evaluate and genlab.latent after `import genlab`)
from .errors import DataError, InvalidInputError, ModelFileError  # noqa: E402
from .estimators import EASE, GAN, VAE, VAEGAN, Autoencoder, MultDAE, MultVAE, Popularity  # noqa: E402
from .io import load, save  # noqa: E402

__all__ = [
    "GAN", "VAE", "VAEGAN", "Autoencoder", "MultDAE", "MultVAE", "Popularity", "EASE",
    "DataError", "InvalidInputError", "ModelFileError", "__version__", "datasets", "evaluate", "latent", "load", "save"]
