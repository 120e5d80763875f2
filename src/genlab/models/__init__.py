"""Methods layer: each model family's module, its objective terms and its update step."""

from .autoencoder import AutoencoderConfig, AutoencoderModule, pca_closed_form, set_linear_autoencoder
from .base import Batch, GenerativeModule

__all__ = ["AutoencoderConfig", "AutoencoderModule", "Batch", "GenerativeModule", "pca_closed_form", "set_linear_autoencoder"]
