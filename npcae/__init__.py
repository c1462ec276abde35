"""npcae: contractive and other autoencoders in pure NumPy.

Every layer has a hand-written forward and backward pass, every gradient is
checked against finite differences, and the contractive penalty's gradient
is derived in closed form (``docs/derivations.md``). Importing npcae imports
numpy only.
"""
from . import activations, layers, losses, optim, penalties
from ._version import __version__
from .models import (Autoencoder, BaseAutoencoder, ContractiveAutoencoder,
                     DeepContractiveAutoencoder, DenoisingAutoencoder, MLPClassifier,
                     NotFittedError, SparseAutoencoder, StackedAutoencoder,
                     VariationalAutoencoder)
from .models.mlp import export_encoder
from .training import TrainingDivergedError

__all__ = ["activations", "layers", "losses", "optim", "penalties", "gradcheck", "datasets",
           "analysis", "io", "reference", "Autoencoder", "BaseAutoencoder",
           "DenoisingAutoencoder",
           "SparseAutoencoder", "VariationalAutoencoder", "ContractiveAutoencoder",
           "DeepContractiveAutoencoder", "StackedAutoencoder", "MLPClassifier", "export_encoder",
           "NotFittedError", "TrainingDivergedError", "load", "__version__"]


def load(path):
    """Load a model saved with ``model.save(path)`` (no pickle; see :mod:`npcae.io`).

    The class is looked up in :data:`npcae.models.MODELS`, the registry of npcae's models.
    """
    from .io import load_model
    from .models import MODELS
    return load_model(path, MODELS)


def __getattr__(name):
    # submodules that are heavier or optional load on first use
    if name in ("gradcheck", "datasets", "analysis", "io", "plotting", "reference"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'npcae' has no attribute {name!r}")
