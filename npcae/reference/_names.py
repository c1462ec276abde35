"""Names and files of the canonical fixtures shipped in ``npcae/reference/fixtures/``."""
from __future__ import annotations

from pathlib import Path

__all__ = ["CANONICAL_DESCRIPTIONS", "FOLDER", "canonical_names", "canonical_path",
           "is_canonical_name"]

FOLDER = Path(__file__).resolve().parent / "fixtures"

CANONICAL_DESCRIPTIONS = {
    "keras_cae": ("The source texts' Keras CAE (784 -> 64 sigmoid encoder, linear untied "
                  "decoder, MSE summed over pixels, lam = 784 * 1e-3 = 0.784) with 20 inputs "
                  "and 6 hidden units."),
    "tied_sigmoid_cae": ("Rifai et al.'s CAE: tied weights, sigmoid encoder and decoder, "
                         "cross-entropy from the logits, lam = 0.5; 20 -> 6."),
    "tanh_cae": "A tied tanh CAE with a linear decoder and MSE, lam = 0.5; 20 -> 6.",
    "deep_ae": ("A deep untied sigmoid autoencoder 20 -> 8 -> 3 -> 8 -> 20, "
                "cross-entropy from the logits."),
    "kl_sparse_ae": ("A KL-sparse autoencoder 20 -> 6 -> 20 (sigmoid), beta = 3, "
                     "rho = 0.05, cross-entropy."),
    "vae": ("A VAE 20 -> 6 (tanh) -> (mu, logvar) of 2 -> 6 -> 20, Bernoulli decoder, with "
            "the eps stored in noise/eps."),
}


def canonical_names():
    """Names of the canonical fixtures, in order."""
    return list(CANONICAL_DESCRIPTIONS)


def is_canonical_name(name):
    return isinstance(name, str) and name in CANONICAL_DESCRIPTIONS


def canonical_path(name):
    """Path of the shipped file of canonical fixture ``name``."""
    if not is_canonical_name(name):
        raise ValueError(f"{name!r} is not a canonical fixture; choose one of "
                         f"{canonical_names()}.")
    return FOLDER / f"{name}.npz"
