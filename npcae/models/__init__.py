"""Estimators. Every autoencoder subclasses :class:`BaseAutoencoder`; the classifier
(:class:`MLPClassifier`) shares their plumbing through :class:`BaseEstimator`."""
from .._workspace import Workspace
from .base import BaseAutoencoder, NotFittedError
from .autoencoder import Autoencoder
from .cae import ContractiveAutoencoder
from .deep_cae import DeepContractiveAutoencoder
from .denoising import DenoisingAutoencoder
from .layered import LayeredAutoencoder
from .mlp import MLPClassifier, export_encoder
from .sparse import SparseAutoencoder
from .stacked import StackedAutoencoder
from .vae import VariationalAutoencoder

# name -> class, used by npcae.load (a registry: loading never imports by string)
MODELS = {cls.__name__: cls for cls in (ContractiveAutoencoder, Autoencoder, SparseAutoencoder,
                                        DenoisingAutoencoder, VariationalAutoencoder,
                                        DeepContractiveAutoencoder, StackedAutoencoder,
                                        MLPClassifier)}

__all__ = ["Autoencoder", "BaseAutoencoder", "ContractiveAutoencoder", "DeepContractiveAutoencoder",
           "DenoisingAutoencoder",
           "LayeredAutoencoder", "MLPClassifier", "NotFittedError", "SparseAutoencoder",
           "StackedAutoencoder",
           "VariationalAutoencoder", "Workspace", "MODELS", "export_encoder"]
