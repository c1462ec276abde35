"""Autoencoder estimators. Every model subclasses :class:`BaseAutoencoder`."""
from .._workspace import Workspace
from .base import BaseAutoencoder, NotFittedError
from .autoencoder import Autoencoder
from .cae import ContractiveAutoencoder
from .layered import LayeredAutoencoder

# name -> class, used by npcae.load (a registry: loading never imports by string)
MODELS = {cls.__name__: cls for cls in (ContractiveAutoencoder, Autoencoder)}

__all__ = ["Autoencoder", "BaseAutoencoder", "ContractiveAutoencoder", "LayeredAutoencoder", "NotFittedError", "Workspace", "MODELS"]
