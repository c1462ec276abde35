"""Autoencoder estimators. Every model subclasses :class:`BaseAutoencoder`."""
from .._workspace import Workspace
from .base import BaseAutoencoder, NotFittedError
from .autoencoder import Autoencoder
from .cae import ContractiveAutoencoder
from .denoising import DenoisingAutoencoder
from .layered import LayeredAutoencoder
from .sparse import SparseAutoencoder
from .vae import VariationalAutoencoder

# name -> class, used by npcae.load (a registry: loading never imports by string)
MODELS = {cls.__name__: cls for cls in (ContractiveAutoencoder, Autoencoder, SparseAutoencoder,
                                        DenoisingAutoencoder, VariationalAutoencoder)}

__all__ = ["Autoencoder", "BaseAutoencoder", "ContractiveAutoencoder", "DenoisingAutoencoder",
           "LayeredAutoencoder", "NotFittedError", "SparseAutoencoder", "VariationalAutoencoder",
           "Workspace", "MODELS"]
