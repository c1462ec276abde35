"""Autoencoder estimators. Every model subclasses :class:`BaseAutoencoder`."""
from .._workspace import Workspace
from .base import BaseAutoencoder, NotFittedError
from .autoencoder import Autoencoder
from .cae import ContractiveAutoencoder
from .deep_cae import DeepContractiveAutoencoder
from .denoising import DenoisingAutoencoder
from .layered import LayeredAutoencoder
from .sparse import SparseAutoencoder
from .stacked import StackedAutoencoder
from .vae import VariationalAutoencoder

# name -> class, used by npcae.load (a registry: loading never imports by string)
MODELS = {cls.__name__: cls for cls in (ContractiveAutoencoder, Autoencoder, SparseAutoencoder,
                                        DenoisingAutoencoder, VariationalAutoencoder,
                                        DeepContractiveAutoencoder, StackedAutoencoder)}

__all__ = ["Autoencoder", "BaseAutoencoder", "ContractiveAutoencoder", "DeepContractiveAutoencoder",
           "DenoisingAutoencoder",
           "LayeredAutoencoder", "NotFittedError", "SparseAutoencoder", "StackedAutoencoder",
           "VariationalAutoencoder", "Workspace", "MODELS"]
