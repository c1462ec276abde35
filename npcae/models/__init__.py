"""Autoencoder estimators. Every model subclasses :class:`BaseAutoencoder`."""
from .base import BaseAutoencoder, NotFittedError, Workspace
from .cae import ContractiveAutoencoder

# name -> class, used by npcae.load (a registry: loading never imports by string)
MODELS = {cls.__name__: cls for cls in (ContractiveAutoencoder,)}

__all__ = ["BaseAutoencoder", "ContractiveAutoencoder", "NotFittedError", "Workspace", "MODELS"]
