"""Methods layer: each model family's module, its objective terms and its update step."""

from .autoencoder import AutoencoderConfig, AutoencoderModule, pca_closed_form, set_linear_autoencoder
from .base import Batch, GenerativeModule, OptimizerSpec, Step, detached
from .gan import GANConfig, GANModule
from .multvae import MultVAEConfig, MultVAEModule
from .vae import (
    Posterior,
    VAEConfig,
    VAEModule,
    collapse_diagnostics,
    importance_weighted_log_likelihood,
    mutual_information,
    posterior_moments,
)
from .vaegan import VAEGANConfig, VAEGANModule

__all__ = [
    "AutoencoderConfig", "AutoencoderModule", "Batch", "GANConfig", "GANModule", "GenerativeModule", "OptimizerSpec", "Step", "detached",
    "MultVAEConfig", "MultVAEModule", "Posterior", "VAEConfig", "VAEModule", "VAEGANConfig", "VAEGANModule",
    "collapse_diagnostics", "importance_weighted_log_likelihood", "mutual_information", "pca_closed_form",
    "posterior_moments", "set_linear_autoencoder",
]
