r"""A plain (undercomplete, deep, optionally tied) autoencoder on the layers engine.

Everything it computes comes from :class:`~npcae.models.layered.LayeredAutoencoder`;
this file only names the hyperparameters. Objective, per batch of n samples::

    L = s * (1/n) sum_n loss(x_n, r_n),    r = g(f(x))

with ``s = loss_weight`` (``reduction="sum"``, the library's convention) or
``s = loss_weight / n_features`` (``reduction="mean"``: the mean over all
elements, as ``torch.nn.functional.mse_loss`` and Keras compute it).
"""
from __future__ import annotations

import numpy as np

from .layered import LayeredAutoencoder

__all__ = ["Autoencoder"]


class Autoencoder(LayeredAutoencoder):
    r"""Deep autoencoder with a mirrored decoder: ``d -> layers[0] -> ... -> layers[-1] -> ... -> d``.

    Parameters
    ----------
    layers : tuple of int
        Encoder widths; the last is the code size ``k`` (``(256, 128, 100)``).
    activation : str, dict or ActivationFunction
        Every hidden layer, encoder and decoder (``{"name": "leaky_relu",
        "alpha": 0.2}`` for a slope).
    code_activation : same, or None
        The code layer (None: ``activation``).
    output_activation : str, dict or ActivationFunction
        The output layer ``psi`` ("sigmoid" with "bce"; "identity" with "mse").
    loss : {"bce", "mse", "kl", "cosine"}
        Reconstruction loss. "bce" with a sigmoid output is computed from the
        logits (exact, stable) and needs ``X`` in [0, 1].
    reduction : {"sum", "mean"}
        "sum": per-sample sum over features, mean over the batch (default).
        "mean": mean over all elements. Applies to the reconstruction only.
    loss_weight : float > 0
        Multiplies the reconstruction term (``0.5 * mse_loss`` is
        ``loss="mse", reduction="mean", loss_weight=0.5``).
    tied : bool
        Decoder layer ``j`` uses ``encoder.{L-1-j}.W`` transposed (any depth).
    init : str
        "auto" (by activation), "torch_linear" (PyTorch's ``nn.Linear``
        default, biases drawn too), "glorot_uniform" (zero biases), ... (see
        :func:`npcae.layers.init_layer_params`).
    optimizer, batch_size, epochs, random_state, dtype, early_stopping, verbose, warm_start
        As for :class:`~npcae.ContractiveAutoencoder`.
    shuffle : bool
        Reshuffle the rows every epoch (default); False keeps their order.
    drop_last : bool
        Drop the last partial batch of each epoch.

    Attributes
    ----------
    params : dict
        Ordered ``encoder.{i}.W``, ``encoder.{i}.b``, then ``decoder.{j}.W``,
        ``decoder.{j}.b`` (no ``decoder.{j}.W`` when tied); see
        :mod:`npcae.models.layered`.
    history_, n_iter_, loss_curve_, optimizer_, training_rng_state_, n_features_in_

    Examples
    --------
    >>> import npcae
    >>> X, _ = npcae.datasets.make_digits(300, random_state=0)
    >>> ae = npcae.Autoencoder(layers=(64, 16), epochs=2, random_state=0).fit(X)
    >>> ae.transform(X).shape
    (300, 16)
    """

    def __init__(self, layers=(64,), activation="sigmoid", code_activation=None,
                 output_activation="sigmoid", loss="bce", reduction="sum", loss_weight=1.0,
                 tied=False, init="auto", optimizer=None, batch_size=100, epochs=10,
                 shuffle=True, drop_last=False, random_state=None, dtype=np.float32,
                 early_stopping=None, verbose=0, warm_start=False):
        self.layers = layers
        self.activation = activation
        self.code_activation = code_activation
        self.output_activation = output_activation
        self.loss = loss
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.tied = tied
        self.init = init
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.random_state = random_state
        self.dtype = dtype
        self.early_stopping = early_stopping
        self.verbose = verbose
        self.warm_start = warm_start

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        from .._validation import check_bool
        check_bool(self.shuffle, "shuffle")
        check_bool(self.drop_last, "drop_last")
