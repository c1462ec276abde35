r"""Denoising autoencoder: reconstruct the clean input from a corrupted copy.

Training corrupts each minibatch with noise drawn from the training generator
(so runs, and resumed runs, draw the same noise) and measures the loss against
the CLEAN input::

    x~ = corrupt(x),   L = s * (1/n) sum_n loss(x_n, g(f(x~_n)))

``noise_level`` is the standard deviation of added Gaussian noise (no clipping),
the probability that a pixel is set to 0 ("masking"), or the probability that a
pixel is set to 0 or 1 with equal chance ("salt_pepper"). ``transform``,
``reconstruct``, ``score`` and ``score_samples`` never corrupt. The gradient is
the plain autoencoder's with ``x~`` as the encoder's input
(``docs/derivations.md#denoising-autoencoder``).
"""
from __future__ import annotations

import numpy as np

from .._validation import as_float_array, check_random_state
from .autoencoder import Autoencoder

__all__ = ["DenoisingAutoencoder", "NOISES"]

NOISES = ("gaussian", "masking", "salt_pepper")


class DenoisingAutoencoder(Autoencoder):
    r"""(Deep, optionally tied) autoencoder trained to undo a corruption of its input.

    Parameters
    ----------
    noise : {"masking", "gaussian", "salt_pepper"}
    noise_level : float
        Gaussian: standard deviation (>= 0). Masking and salt-and-pepper: the
        probability that a pixel is corrupted, in [0, 1].
    layers, activation, ..., warm_start
        As for :class:`~npcae.Autoencoder`.

    ``loss_and_grad(X, corrupted=...)`` and ``loss_terms(X, corrupted=...)``
    take the corrupted input explicitly (then the objective is deterministic);
    without it they draw from a generator of the call's own, never from the
    training generator.
    """

    def __init__(self, layers=(64,), noise="masking", noise_level=0.25, activation="sigmoid",
                 code_activation=None, output_activation="sigmoid", loss="bce",
                 reduction="sum", loss_weight=1.0, tied=False, init="auto", optimizer=None,
                 batch_size=100, epochs=10, shuffle=True, drop_last=False, random_state=None,
                 dtype=np.float32, early_stopping=None, verbose=0, warm_start=False):
        super().__init__(layers=layers, activation=activation, code_activation=code_activation,
                         output_activation=output_activation, loss=loss, reduction=reduction,
                         loss_weight=loss_weight, tied=tied, init=init, optimizer=optimizer,
                         batch_size=batch_size, epochs=epochs, shuffle=shuffle,
                         drop_last=drop_last, random_state=random_state, dtype=dtype,
                         early_stopping=early_stopping, verbose=verbose, warm_start=warm_start)
        self.noise = noise
        self.noise_level = noise_level

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        from .._validation import check_real
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {list(NOISES)}; got {self.noise!r}.")
        high = None if self.noise == "gaussian" else 1.0
        check_real(self.noise_level, "noise_level", low=0.0, high=high)

    # -- corruption --------------------------------------------------------------------
    def corrupt(self, X, random_state=None):
        """A corrupted copy of ``X`` (for looking at the noisy images).

        Uses only the generator built from ``random_state`` (None, int,
        Generator, RandomState), never the model's training generator.
        """
        self._check_hyperparameters()
        X = as_float_array(X, "X", ndim=2, convert_numeric=True, uint8="warn")
        return self._corrupt(X, check_random_state(random_state))

    def _corrupt(self, X, rng, out=None):
        """``x~`` from ``X`` with draws from ``rng`` (vectorised; ``out`` may be a buffer)."""
        level = float(self.noise_level)
        out = np.empty_like(X) if out is None else out
        if self.noise == "gaussian":
            out[...] = rng.standard_normal(X.shape, dtype=X.dtype)
            out *= level
            out += X                                            # x + level * N(0, 1)
        elif self.noise == "masking":
            keep = rng.random(X.shape, dtype=X.dtype) >= level  # each pixel kept w.p. 1 - level
            np.multiply(X, keep, out=out)
        else:                                                   # salt and pepper
            u = rng.random(X.shape, dtype=X.dtype)
            hit = u < level                                     # corrupted w.p. level
            salt = u < 0.5 * level                              # half of those to 1, half to 0
            np.copyto(out, X)
            out[hit] = 0.0
            out[salt] = 1.0
        return out

    # -- the objective: the autoencoder's, on the corrupted input ------------------------
    def _noise_shapes(self, X):
        return {"corrupted": X.shape}

    def _encoder_input(self, X, ws, rng, corrupted=None):
        if corrupted is not None:
            return corrupted
        return self._corrupt(X, rng, out=ws.get("corrupted", X.shape, X.dtype))
