r"""Variational autoencoder (Kingma & Welling, 2014) on the layers engine.

The encoder is a trunk of Dense + activation layers (widths ``layers``) whose
output ``H`` feeds two linear heads: the mean ``MU`` and the log-variance
``LV`` of ``q(z|x) = N(MU, diag(exp(LV)))``. ``LV`` is ``log sigma^2``
everywhere in npcae (never sigma, never sigma^2); sigma is ``S = exp(LV / 2)``,
computed in one place (:meth:`VariationalAutoencoder._sigma`). With noise
``EPS ~ N(0, I)`` of shape ``(n, n_latent)``, the reparameterised sample is::

    Z = MU + S * EPS

The decoder mirrors the trunk (``reversed(layers)``, same activation) and ends
in a Dense layer to ``d`` outputs ``Y``: the logits of a Bernoulli decoder, or
the mean of a Gaussian decoder with unit variance. The objective is the
negative ELBO per sample, averaged over the batch of ``n`` rows::

    L   = rec + kl
    rec = (1/n) sum_n sum_i [softplus(Y) - X Y]                      (bernoulli, from the logits)
        = (1/n) sum_n 0.5 sum_i (X - Y)^2  +  0.5 d log(2 pi)        (gaussian, unit variance)
    kl  = (1/n) sum_n -0.5 sum_j (1 + LV - MU^2 - exp(LV))           (KL(q(z|x) || N(0, I)))

and the backward pass, after the decoder's (the engine's)::

    G_Z  = decoder.backward(G_Y)                          dL/dZ
    G_MU = G_Z + MU / n                                   dZ/dMU = 1,  d kl/d MU = MU / n
    G_LV = G_Z * EPS * S / 2 + (exp(LV) - 1) / (2 n)      dZ/dLV = EPS * S / 2
    G_H  = mu_head.backward(G_MU) + logvar_head.backward(G_LV)
    trunk.backward(G_H)

Derivation, line by line: ``docs/derivations.md#variational-autoencoder``.

Parameters live in ``model.params`` under ordered keys, each ``W`` (n_in,
n_out) before its ``b`` (n_out,)::

    encoder.{i}.W  encoder.{i}.b   (i = 0 .. len(layers) - 1: the trunk)
    mu.W  mu.b  logvar.W  logvar.b (the heads: layers[-1] -> n_latent)
    decoder.{j}.W  decoder.{j}.b   (j = 0 .. len(layers): n_latent -> layers[-1] -> ... -> d)
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from .._validation import (check_bool, check_positive_int, check_random_state, check_widths,
                           layer_widths)
from ..activations import get_activation, sigmoid
from ..layers import Activation, Dense, Sequential, init_layer_params
from ..losses import bce_with_logits_into
from .base import BaseAutoencoder

__all__ = ["VariationalAutoencoder", "DECODERS"]

DECODERS = ("bernoulli", "gaussian")

_LOG_2PI = math.log(2.0 * math.pi)
_RELU_LIKE = ("relu", "leaky_relu")


class VariationalAutoencoder(BaseAutoencoder):
    r"""Variational autoencoder with a Gaussian encoder and a Bernoulli or Gaussian decoder.

    ``d -> layers[0] -> ... -> layers[-1] -> (mu, logvar) [n_latent each]``,
    ``z = mu + exp(logvar / 2) * eps``, ``z -> layers[-1] -> ... -> layers[0] -> d``.
    ``logvar`` is the log-variance ``log sigma^2``. Trained on the negative ELBO
    per sample, averaged over the batch (module docstring;
    ``docs/derivations.md#variational-autoencoder``).

    Parameters
    ----------
    layers : tuple of int
        Hidden widths of the encoder trunk (at least one); the decoder uses
        them reversed.
    n_latent : int
        Dimension of the latent space (the code size ``transform`` returns).
    activation : str, dict or ActivationFunction
        Every hidden layer, encoder and decoder (``{"name": "leaky_relu",
        "alpha": 0.2}`` for a slope). The heads and the decoder's output layer
        are linear.
    decoder : {"bernoulli", "gaussian"}
        "bernoulli": ``p(x|z) = prod_i sigmoid(y_i)^x_i (1 - sigmoid(y_i))^(1 - x_i)``,
        its negative log-likelihood is the binary cross-entropy from the
        logits ``y``, summed over pixels; ``X`` must lie in [0, 1] (intensities
        are used as targets as they are, not binarised). "gaussian":
        ``p(x|z) = N(y, I)``, whose negative log-likelihood is
        ``0.5 * ||x - y||^2 + 0.5 * d * log(2 pi)`` (the constant is included
        in every reported value); any real ``X``.
    init : str
        "auto" (``he_uniform`` for relu and leaky_relu, ``glorot_uniform``
        otherwise), "torch_linear" (PyTorch's ``nn.Linear`` default, biases
        drawn too), or any name in :data:`npcae.layers.INITIALIZERS`. Every
        layer, heads included, is drawn by :func:`npcae.layers.init_layer_params`.
    optimizer, batch_size, epochs, random_state, dtype, early_stopping, verbose, warm_start
        As for :class:`~npcae.Autoencoder`.
    shuffle : bool
        Reshuffle the rows every epoch (default).
    drop_last : bool
        Drop the last partial batch of each epoch.

    Attributes
    ----------
    params : dict
        ``encoder.{i}.W/b``, ``mu.W/b``, ``logvar.W/b``, ``decoder.{j}.W/b``, in
        that order (module docstring).
    history_ : dict
        Per epoch: ``reconstruction``, ``kl``, ``total`` (the negative ELBO)
        and ``elbo`` (``-total``), each the mean over the epoch's samples of
        the one-draw estimate made during training; plus ``val_*`` with
        ``validation_data``.
    n_iter_, loss_curve_, optimizer_, training_rng_state_, n_features_in_

    Notes
    -----
    Training draws ``eps`` from the training generator (the one that shuffles
    the minibatches, whose state is saved), so a run split by warm starts or by
    ``save``/``load`` equals the uninterrupted run bit for bit.
    ``loss_and_grad(X, eps=...)`` and ``loss_terms(X, eps=...)`` take ``eps``
    (shape ``(n, n_latent)``) explicitly, and are then deterministic; without
    it they draw from a generator of the call's own (from ``random_state``).

    Examples
    --------
    >>> import npcae
    >>> X, _ = npcae.datasets.make_digits(300, random_state=0)
    >>> vae = npcae.VariationalAutoencoder(layers=(64,), n_latent=4, epochs=2,
    ...                                    random_state=0).fit(X)
    >>> vae.transform(X).shape, vae.sample(5, random_state=0).shape
    ((300, 4), (5, 784))
    """

    _shape_hyperparameters = ("layers", "n_latent")

    def __init__(self, layers=(400,), n_latent=20, activation="relu", decoder="bernoulli",
                 init="auto", optimizer=None, batch_size=100, epochs=10, shuffle=True,
                 drop_last=False, random_state=None, dtype=np.float32, early_stopping=None,
                 verbose=0, warm_start=False):
        self.layers = layers
        self.n_latent = n_latent
        self.activation = activation
        self.decoder = decoder
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

    # -- architecture -------------------------------------------------------------------
    def _hidden_widths(self):
        return layer_widths(self.layers)

    def _n_codes(self):
        return int(self.n_latent)

    def _activation(self):
        return get_activation(self.activation)

    def _layer_widths(self, n_features):
        """``prefix -> (n_in, n_out)`` of every Dense layer, in parameter order."""
        hidden, k = self._hidden_widths(), self._n_codes()
        widths = {}
        trunk = (int(n_features), *hidden)
        for i, (n_in, n_out) in enumerate(zip(trunk[:-1], trunk[1:])):
            widths[f"encoder.{i}"] = (n_in, n_out)
        widths["mu"] = (hidden[-1], k)
        widths["logvar"] = (hidden[-1], k)
        decoder = (k, *reversed(hidden), int(n_features))
        for j, (n_in, n_out) in enumerate(zip(decoder[:-1], decoder[1:])):
            widths[f"decoder.{j}"] = (n_in, n_out)
        return widths

    def _weight_init(self):
        if self.init != "auto":
            return self.init
        return "he_uniform" if self._activation().name in _RELU_LIKE else "glorot_uniform"

    def _param_shapes(self, n_features):
        init = self._weight_init()
        shapes = {}
        for prefix, (n_in, n_out) in self._layer_widths(n_features).items():
            shapes[f"{prefix}.W"] = ((n_in, n_out), init)
            shapes[f"{prefix}.b"] = ((n_out,), init)
        return shapes

    def _draw_params(self, n_features, rng):
        """Each layer's ``W``, ``b`` from :func:`npcae.layers.init_layer_params`, in key order."""
        init, fresh = self._weight_init(), {}
        for prefix, (n_in, n_out) in self._layer_widths(n_features).items():
            layer = init_layer_params(init, n_in, n_out, rng)
            fresh[f"{prefix}.W"], fresh[f"{prefix}.b"] = layer["W"], layer["b"]
        return fresh

    # -- the network on the engine ----------------------------------------------------
    def _network(self, dtype):
        """``(trunk, mu_head, logvar_head, decoder, dense)`` on the engine's layers.

        ``dense`` maps each parameter prefix to its Dense layer (for binding).
        The decoder ends with its last Dense layer (``Y``: logits or means).
        Built once per architecture and dtype; layers keep their buffers.
        """
        key = (self.n_features_in_, self._hidden_widths(), self._n_codes(),
               repr(self._activation()), np.dtype(dtype))
        cached = getattr(self, "_network_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        opts = dict(reuse_buffers=True, check_input=False)
        act = self._activation()
        # nothing below the first layer learns: its backward skips dL/dX
        dense = {prefix: Dense(n_in, n_out, init="zeros", dtype=dtype,
                               input_grad=prefix != "encoder.0", **opts)
                 for prefix, (n_in, n_out) in self._layer_widths(key[0]).items()}
        n_hidden = len(key[1])
        trunk = []
        for i in range(n_hidden):
            trunk += [dense[f"encoder.{i}"], Activation(act, **opts)]
        decoder = []
        for j in range(n_hidden + 1):
            decoder.append(dense[f"decoder.{j}"])
            if j < n_hidden:
                decoder.append(Activation(act, **opts))
        network = (Sequential(trunk), dense["mu"], dense["logvar"], Sequential(decoder), dense)
        self._network_cache = (key, network)
        return network

    # -- the two conventions the whole model shares ---------------------------------------
    @staticmethod
    def _sigma(LV, out=None):
        """``S = exp(LV / 2)``: the standard deviation from the log-variance ``LV = log S^2``."""
        out = np.multiply(LV, 0.5, out=out)
        return np.exp(out, out=out)

    @staticmethod
    def _kl_per_sample(MU, LV, S):
        """``KL(N(MU, S^2) || N(0, I))`` per row: ``-0.5 sum_j (1 + LV - MU^2 - S^2)``.

        ``S^2 = exp(LV)``; derivation in ``docs/derivations.md#variational-autoencoder``.
        """
        return -0.5 * np.sum(1.0 + LV - MU * MU - S * S, axis=1)

    # -- the objective ------------------------------------------------------------------
    def _noise_shapes(self, X):
        return {"eps": (X.shape[0], self._n_codes())}

    def _objective(self, X, grads, ws, rng=None, eps=None):
        """Negative ELBO on ``X`` and, if ``grads`` is a dict, its gradient written into it.

        ``eps`` (n, n_latent) given: deterministic. Otherwise it is drawn from
        ``rng`` (standard normal, ``X``'s dtype): the training generator during
        ``fit``. Lines as in ``docs/derivations.md#variational-autoencoder``.
        """
        n, d = X.shape
        k = self._n_codes()
        trunk, mu_head, logvar_head, decoder, dense = self._network(X.dtype)
        for prefix, layer in dense.items():
            layer.bind(self.params, grads, prefix + ".")
        if eps is None:
            if rng is None:
                raise ValueError("VariationalAutoencoder._objective needs eps= (shape (n, "
                                 "n_latent)) or a generator rng= to draw it from.")
            eps = rng.standard_normal(dtype=X.dtype, out=ws.get("eps", (n, k), X.dtype))
        H = trunk.forward(X)                                    # the trunk's output
        MU = mu_head.forward(H)                                 # (n, k)
        LV = logvar_head.forward(H)                             # (n, k): log sigma^2
        S = self._sigma(LV, out=ws.get("S", (n, k), X.dtype))   # sigma = exp(LV / 2)
        Z = np.multiply(S, eps, out=ws.get("Z", (n, k), X.dtype))
        Z += MU                                                 # Z = MU + S * EPS
        Y = decoder.forward(Z)                                  # (n, d): logits or means
        rec, G_Y = self._reconstruction(Y, X, ws)               # rec and dL/dY (over Y)
        kl = float(np.sum(self._kl_per_sample(MU, LV, S))) / n
        total = rec + kl
        terms = {"reconstruction": rec, "kl": kl, "total": total, "elbo": -total}
        if grads is None:
            return total, terms
        for g in grads.values():
            g.fill(0)                                           # the layers accumulate (+=)
        G_Z = decoder.backward(G_Y)                             # dL/dZ, (n, k)
        G_MU = np.multiply(MU, 1.0 / n, out=ws.get("G_MU", (n, k), X.dtype))   # d kl/d MU
        G_MU += G_Z                                             # + G_Z * dZ/dMU (= 1)
        G_LV = np.multiply(S, S, out=ws.get("G_LV", (n, k), X.dtype))          # exp(LV)
        G_LV -= 1.0
        G_LV *= 0.5 / n                                         # d kl/d LV = (exp(LV) - 1) / 2n
        T = np.multiply(G_Z, eps, out=ws.get("T", (n, k), X.dtype))
        T *= S
        T *= 0.5                                                # G_Z * dZ/dLV = G_Z * EPS * S / 2
        G_LV += T
        G_H = mu_head.backward(G_MU)                            # G_MU mu.W^T (the head's buffer)
        G_H += logvar_head.backward(G_LV)                       # H feeds both heads: they add
        trunk.backward(G_H)
        return total, terms

    def _reconstruction(self, Y, X, ws):
        """``(rec, dL/dY)`` from the decoder output ``Y`` (overwritten by the gradient)."""
        n, d = X.shape
        if self.decoder == "bernoulli":
            # (1/n) sum [softplus(Y) - X Y], exact for any logit (docs/derivations.md#losses)
            value = bce_with_logits_into(Y, X, Y, ws.get("scratch", Y.shape, Y.dtype))
            return value, Y                                     # (sigmoid(Y) - X) / n
        G_Y = np.subtract(Y, X, out=Y)                          # Y - X
        flat = G_Y.reshape(-1)
        value = 0.5 * float(np.dot(flat, flat)) / n + 0.5 * d * _LOG_2PI
        G_Y *= 1.0 / n                                          # (Y - X) / n
        return value, G_Y

    # -- plain-NumPy inference (nothing cached) ---------------------------------------------
    def _trunk(self, X):
        H, act = X, self._activation()
        for i in range(len(self._hidden_widths())):
            H = act.value(H @ self.params[f"encoder.{i}.W"] + self.params[f"encoder.{i}.b"])
        return H

    def _posterior(self, X):
        """``(MU, LV)`` of ``q(z|x) = N(MU, diag(exp(LV)))``."""
        H = self._trunk(X)
        return (H @ self.params["mu.W"] + self.params["mu.b"],
                H @ self.params["logvar.W"] + self.params["logvar.b"])

    def _encode(self, X):
        H = self._trunk(X)
        return H @ self.params["mu.W"] + self.params["mu.b"]

    def _decoder_output(self, Z):
        """``Y``: the decoder's logits (bernoulli) or means (gaussian)."""
        act, n_hidden = self._activation(), len(self._hidden_widths())
        for j in range(n_hidden + 1):
            Z = Z @ self.params[f"decoder.{j}.W"] + self.params[f"decoder.{j}.b"]
            if j < n_hidden:
                Z = act.value(Z)
        return Z

    def _decode(self, Z):
        """Decoder means: ``sigmoid(Y)`` (bernoulli) or ``Y`` (gaussian)."""
        Y = self._decoder_output(Z)
        return sigmoid.value(Y) if self.decoder == "bernoulli" else Y

    def _neg_log_likelihood(self, Y, X):
        """``-log p(x|z)`` per row from the decoder output ``Y``."""
        if self.decoder == "bernoulli":
            return np.sum(np.logaddexp(0.0, Y) - X * Y, axis=1)
        R = X - Y
        return 0.5 * np.einsum("ij,ij->i", R, R) + 0.5 * X.shape[1] * _LOG_2PI

    def _sample_terms(self, X, eps=None):
        """Per-row ``reconstruction``, ``kl``, ``total`` (negative ELBO) and ``elbo`` for the
        given ``eps`` (default: one draw per row from :meth:`_row_noise` with
        ``random_state=0``, as :meth:`score_samples`); their means are ``_objective``'s
        terms for the same ``eps``."""
        MU, LV = self._posterior(X)
        if eps is None:
            eps = self._row_noise(X, 1, 0)[:, 0]
        S = self._sigma(LV)
        rec = self._neg_log_likelihood(self._decoder_output(MU + S * eps), X)
        kl = self._kl_per_sample(MU, LV, S)
        return {"reconstruction": rec, "kl": kl, "total": rec + kl, "elbo": -(rec + kl)}

    @staticmethod
    def _noise_seed(random_state):
        """One int for :meth:`_row_noise`: ``random_state`` itself when it is an int, one
        draw from it when it is a Generator or RandomState, fresh entropy for None."""
        rng = check_random_state(random_state)          # validates it (type, sign)
        if isinstance(random_state, (int, np.integer)):
            return int(random_state)
        return int(rng.integers(0, 2 ** 63 - 1))

    def _row_noise(self, X, n_draws, seed):
        """Standard normal draws ``(n, n_draws, n_latent)`` for evaluation, row by row.

        Row ``i`` draws from a generator seeded by ``(seed, hash of the bytes of X[i])``,
        so a row's noise, and hence its score, depends only on the row, the model and
        the seed: not on the other rows, their order or the evaluation blocks. Never
        the training generator. (About 30 us per row.)
        """
        out = np.empty((X.shape[0], n_draws, self._n_codes()), dtype=X.dtype)
        for i, row in enumerate(X):
            digest = hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8)
            rng = np.random.default_rng([seed, int.from_bytes(digest.digest(), "little")])
            rng.standard_normal(dtype=X.dtype, out=out[i])
        return out

    # -- public VAE methods ----------------------------------------------------------------
    def transform(self, X):
        """The posterior means ``mu(x)``, shape ``(n_samples, n_latent)``."""
        return super().transform(X)

    def transform_logvar(self, X):
        """Posterior log-variances ``logvar(x) = log sigma^2``, ``(n_samples, n_latent)``."""
        return self._posterior(self._ready(X))[1]

    def score_samples(self, X, random_state=0, n_draws=1):
        """ELBO of each sample (higher is better), shape ``(n_samples,)``.

        ``ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || N(0, I))``, the expectation
        estimated as the mean over ``n_draws`` draws of ``eps``, the KL exact.
        Deterministic: each row's draws come from a generator seeded by
        ``random_state`` and the row's values (:meth:`_row_noise`), never the
        training generator, so a row's score does not depend on the other rows,
        their order, or the bounded-memory blocks the evaluation runs in.
        """
        n_draws = check_positive_int(n_draws, "n_draws")
        seed = self._noise_seed(random_state)
        X = self._prepare_for_objective(X)
        out = np.empty(X.shape[0], dtype=X.dtype)
        for start, stop in self._eval_blocks(X):
            Xb = X[start:stop]
            eps = self._row_noise(Xb, n_draws, seed)
            elbo = np.zeros(stop - start, dtype=np.float64)
            for t in range(n_draws):
                elbo += self._sample_terms(Xb, eps[:, t])["elbo"]
            out[start:stop] = elbo / n_draws
        return out

    def score(self, X, y=None):
        """Mean ELBO per sample (higher is better): ``mean(score_samples(X))``.

        One draw of ``eps`` per sample (``random_state=0``), so the value is
        deterministic. The whole objective with its sign flipped, KL included
        (unlike the other models' ``score``, which leaves penalties out).
        """
        return float(np.mean(self.score_samples(X), dtype=np.float64))

    def log_likelihood(self, X, k=50, random_state=0):
        """Importance-weighted estimate of ``log p(x)`` per sample, shape ``(n_samples,)``.

        With ``z_t = mu + sigma * eps_t`` for ``t = 1..k`` (Burda et al., 2016)::

            log p(x) ~ log (1/k) sum_t exp(log p(x|z_t) + log p(z_t) - log q(z_t|x))

        ``log p(z) - log q(z|x) = -0.5 sum_j z_j^2 + 0.5 sum_j (eps_j^2 + logvar_j)``
        (the ``2 pi`` constants cancel). The log-mean-exp subtracts the largest
        term first (stable) and runs in float64. ``k = 1`` is the one-draw
        ELBO with the KL estimated by sampling; the estimate rises towards
        ``log p(x)`` as ``k`` grows. For the Bernoulli decoder, ``log p(x|z)``
        is the negative binary cross-entropy of the intensities (not a
        normalised density for non-binary ``x``). Deterministic, with the
        draws of :meth:`_row_noise` (as :meth:`score_samples`).
        """
        k = check_positive_int(k, "k")
        seed = self._noise_seed(random_state)
        X = self._prepare_for_objective(X)
        out = np.empty(X.shape[0], dtype=np.float64)
        for start, stop in self._eval_blocks(X):
            Xb = X[start:stop]
            MU, LV = self._posterior(Xb)
            S = self._sigma(LV)
            eps = self._row_noise(Xb, k, seed)
            log_w = np.empty((stop - start, k), dtype=np.float64)
            for t in range(k):
                Z = MU + S * eps[:, t]
                log_p_x_given_z = -self._neg_log_likelihood(self._decoder_output(Z), Xb)
                log_p_z_minus_log_q = (-0.5 * np.sum(Z * Z, axis=1)
                                       + 0.5 * np.sum(eps[:, t] ** 2 + LV, axis=1))
                log_w[:, t] = log_p_x_given_z + log_p_z_minus_log_q
            top = log_w.max(axis=1)
            out[start:stop] = top + np.log(np.mean(np.exp(log_w - top[:, None]), axis=1))
        return out

    def sample(self, n_samples, random_state=None):
        """Decoder means of ``n_samples`` draws ``z ~ N(0, I)`` from the prior, ``(n_samples, d)``.

        The draws come from a generator of this call's own: built from
        ``random_state``, or (None) from the model's ``random_state`` afresh
        for each call (an int gives the same samples every call; None, new
        ones); never the training generator.
        """
        n_samples = check_positive_int(n_samples, "n_samples")
        self._check_params()
        rng = self._call_rng() if random_state is None else check_random_state(random_state)
        Z = rng.standard_normal((n_samples, self._n_codes()), dtype=self._param_dtype())
        return self._decode(Z)

    def interpolate(self, x_a, x_b, steps=8):
        """Decoder means along the straight line from ``mu(x_a)`` to ``mu(x_b)``, ``(steps, d)``.

        ``x_a`` and ``x_b`` are single samples (shape ``(d,)`` or ``(1, d)``);
        row ``t`` decodes ``(1 - a_t) mu(x_a) + a_t mu(x_b)`` with ``a_t`` from
        0 to 1 in ``steps`` equal steps (both ends included).
        """
        if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)) \
                or steps < 2:
            raise ValueError(f"steps must be an integer >= 2 (both ends are included); got "
                             f"{steps!r}.")
        codes = []
        for name, x in (("x_a", x_a), ("x_b", x_b)):
            arr = np.asarray(x)
            arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
            if arr.ndim != 2 or arr.shape[0] != 1:
                raise ValueError(f"{name} must be one sample, shape (n_features,) or (1, "
                                 f"n_features); got shape {np.shape(x)}.")
            self._check_params()
            codes.append(self._encode(self._validate_X(arr, name, dtype=self._param_dtype())))
        a = np.linspace(0.0, 1.0, int(steps), dtype=self._param_dtype())[:, None]
        return self._decode((1.0 - a) * codes[0] + a * codes[1])

    def jacobian(self, X):
        """Jacobians of the posterior mean, ``d mu / d x``, shape ``(n, n_latent, d)``.

        ``J = mu.W^T diag(D_{L-1}) W_{L-1}^T ... diag(D_0) W_0^T`` with
        ``D_i = phi'(A_i)`` (``docs/derivations.md#jacobian-of-a-deep-encoder``,
        with the linear mu head as the last layer), built from the code side
        in blocks of rows of bounded memory.
        """
        X = self._ready(X)
        act, n_hidden = self._activation(), len(self._hidden_widths())
        W0 = self.params["encoder.0.W"]
        out = np.empty((len(X), self._n_codes(), X.shape[1]), dtype=X.dtype)
        per_row = self._n_codes() * max(X.shape[1], *self._hidden_widths()) * X.dtype.itemsize
        rows = max(1, (8 << 20) // per_row)
        for start in range(0, len(X), rows):
            H, derivs = X[start:start + rows], []
            for i in range(n_hidden):
                A = H @ self.params[f"encoder.{i}.W"] + self.params[f"encoder.{i}.b"]
                H = act.value(A)
                derivs.append(act.derivative(A, H))
            B = self.params["mu.W"].T[None] * derivs[-1][:, None, :]      # (rows, k, h_{L-1})
            for i in range(n_hidden - 1, 0, -1):
                B = (B @ self.params[f"encoder.{i}.W"].T) * derivs[i - 1][:, None, :]
            out[start:start + rows] = B @ W0.T
        return out

    # -- validation -------------------------------------------------------------------------
    def _requires_unit_interval(self):
        return self.decoder == "bernoulli"

    def _unit_interval_reason(self):
        return ("decoder='bernoulli' (binary cross-entropy targets; scale images with X / 255, "
                "or use decoder='gaussian' for real-valued data)")

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        from ..layers import check_init
        check_widths(self.layers, "layers", "(400,) (the encoder trunk; the decoder mirrors it)")
        check_positive_int(self.n_latent, "n_latent")
        self._activation()
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be 'bernoulli' (X in [0, 1], binary cross-entropy "
                             f"from the logits) or 'gaussian' (unit variance, linear output); "
                             f"got {self.decoder!r}.")
        check_init(self.init)
        check_bool(self.shuffle, "shuffle")
        check_bool(self.drop_last, "drop_last")
