"""The canonical fixtures shipped inside the package, and the code that regenerates them.

Each is small (20 inputs, 6 rows) but has the architecture of the model it names. Their
values are pinned by ``tests/test_reference.py``: regenerating them is a deliberate act
(``python -m npcae.reference.regenerate``), never a side effect.
"""
from __future__ import annotations

from pathlib import Path

from ._names import CANONICAL_DESCRIPTIONS, FOLDER, canonical_names, canonical_path

__all__ = ["build_canonical", "canonical_fixture", "write_canonical_fixtures"]

N_FEATURES, N_SAMPLES = 20, 6


def _models():
    from ..models import (Autoencoder, ContractiveAutoencoder, SparseAutoencoder,
                          VariationalAutoencoder)
    return {
        "keras_cae": ContractiveAutoencoder(n_hidden=6, lam=0.784, activation="sigmoid",
                                            output_activation="identity", loss="mse",
                                            tied=False),
        "tied_sigmoid_cae": ContractiveAutoencoder(n_hidden=6, lam=0.5, activation="sigmoid",
                                                   output_activation="sigmoid", loss="bce",
                                                   tied=True),
        "tanh_cae": ContractiveAutoencoder(n_hidden=6, lam=0.5, activation="tanh",
                                           output_activation="identity", loss="mse", tied=True),
        "deep_ae": Autoencoder(layers=(8, 3), activation="sigmoid", loss="bce", tied=False),
        "kl_sparse_ae": SparseAutoencoder(layers=(6,), sparsity="kl", beta=3.0, rho=0.05),
        "vae": VariationalAutoencoder(layers=(6,), n_latent=2, activation="tanh",
                                      decoder="bernoulli"),
    }


def build_canonical(name):
    """Compute canonical fixture ``name`` with the current code (deterministic)."""
    from ._fixtures import make_fixture
    canonical_path(name)                                  # validates the name
    seed = canonical_names().index(name)
    return make_fixture(_models()[name], n_features=N_FEATURES, n_samples=N_SAMPLES,
                        n_jacobian=2, random_state=seed, name=name,
                        description=CANONICAL_DESCRIPTIONS[name])


def canonical_fixture(name):
    """The shipped canonical fixture ``name`` (loaded and validated)."""
    from ._fixtures import load_fixture
    return load_fixture(canonical_path(name))


def write_canonical_fixtures(folder=None):
    """Regenerate every canonical fixture into ``folder`` (default: the package's); returns
    the paths. Deterministic: the same code writes the same numbers."""
    from ._fixtures import save_fixture
    folder = FOLDER if folder is None else Path(folder)
    return [save_fixture(build_canonical(name), folder / f"{name}.npz")
            for name in canonical_names()]
