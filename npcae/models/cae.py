r"""The Contractive Auto-Encoder (Rifai, Vincent, Muller, Glorot & Bengio, ICML 2011).

Encoder and decoder, with ``W`` of shape ``(d, k)``::

    h = phi(a),  a = x W + b                  (encoder, k hidden units)
    r = psi(z),  z = h W_dec + c              (decoder; tied: W_dec = W^T)

Objective on a batch of n samples (the library's one convention)::

    L = (1/n) sum_n [ loss(x_n, r_n) + lam * ||J_f(x_n)||_F^2 ],
    J_f(x) = dh/dx = diag(phi'(a)) W^T,   ||J_f||_F^2 = sum_j phi'(a_j)^2 sum_i W_ij^2

Tied weights are the default: with untied weights the encoder can shrink
``W`` to make the penalty vanish while the decoder scales back up. The whole
backward pass is derived in ``docs/derivations.md#cae-backward``.
"""
from __future__ import annotations

import numpy as np

from ..activations import Identity, Sigmoid, get_activation
from ..losses import bce_with_logits_into, get_loss
from .base import BaseAutoencoder

__all__ = ["ContractiveAutoencoder"]


def _scalar_value(value):
    return complex(value) if np.iscomplexobj(value) else float(value)

_DEFAULT_INIT = {"sigmoid": "sigmoid_uniform", "tanh": "glorot_uniform", "relu": "he_uniform",
                 "leaky_relu": "he_uniform", "softplus": "glorot_uniform",
                 "identity": "glorot_uniform"}


def _add_scaled_columns(out, W, scale, ws, block_entries=65536):
    """``out += W * scale`` (column ``j`` of ``W`` times ``scale[j]``), a block of rows at a time.

    Each block's product stays in cache until it is added, instead of one
    full-size temporary going out to memory and back (the result is the same;
    timings in ``benchmarks/README.md``).
    """
    rows = max(1, block_entries // W.shape[1])
    scratch = ws.get("scaled_rows", (min(rows, W.shape[0]), W.shape[1]),
                     np.result_type(W, scale))
    for start in range(0, W.shape[0], rows):
        stop = min(start + rows, W.shape[0])
        block = np.multiply(W[start:stop], scale, out=scratch[:stop - start])
        out[start:stop] += block


class ContractiveAutoencoder(BaseAutoencoder):
    r"""One-hidden-layer contractive autoencoder with a closed-form penalty.

    Parameters
    ----------
    n_hidden : int
        Number of hidden units ``k``.
    lam : float
        Weight of the contractive penalty :math:`\lambda \ge 0` (``0`` gives a
        plain autoencoder with the same code path).
    activation : str or ActivationFunction
        Encoder nonlinearity ``phi``: any elementwise activation with first and
        second derivatives ("sigmoid", "tanh", "softplus", "relu", ...).
    output_activation : str
        Decoder nonlinearity ``psi``: "sigmoid" (with ``loss="bce"``) or
        "identity" (with ``loss="mse"``), or any pairing that makes sense.
    loss : {"bce", "mse", "kl", "cosine"}
        Reconstruction loss, summed over features. "bce" with a sigmoid
        decoder is computed from the logits (exact and stable) and needs
        ``X`` in [0, 1].
    tied : bool
        ``W_dec = W.T`` (default) or a separate ``W_dec`` of shape ``(k, d)``.
    optimizer : None, str, dict or Optimizer
        Default ``Adam(lr=1e-3)``. An instance is copied, never mutated.
    batch_size, epochs : int
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the initial weights and the minibatch order: the same int and
        data give identical parameters. A Generator (or RandomState) is drawn
        from, so repeated fits differ. ``None``: fresh entropy each fit.
    dtype : float32 (default) or float64
        Parameter and computation dtype. Use float64 to check gradients.
    init : str
        Weight initialiser; "auto" picks 4x Glorot-uniform for sigmoid, He for
        relu, Glorot otherwise (see :func:`npcae.layers.init_weights`).
    early_stopping : int or None
        Patience in epochs on the validation loss (needs ``validation_data``);
        the best parameters are restored at the end.
    verbose : int
        0 silent (default), 1 one line per epoch.
    warm_start : bool
        Continue from the current parameters, optimizer state and minibatch
        generator on the next ``fit`` (exactly like one uninterrupted run).

    Attributes
    ----------
    params : dict
        ``W`` (d, k), ``b`` (k,), ``c`` (d,), and ``W_dec`` (k, d) when untied.
    history_ : dict of lists
        Per-epoch ``reconstruction``, ``contractive``, ``total`` (and ``val_*``),
        ``samples_per_s``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` was given a DataFrame with string column names.
    n_iter_ : int
        Epochs trained so far (``partial_fit`` calls count as epochs).
    loss_curve_ : list of float
        The training objective after each epoch (``history_["total"]``).
    optimizer_ : Optimizer
        The optimizer with its moments (kept for warm starts and in saved files).
    training_rng_state_ : dict
        State of the minibatch-order generator after the last completed epoch.

    Examples
    --------
    >>> import numpy as np, npcae
    >>> X, _ = npcae.datasets.make_digits(500, random_state=0)
    >>> cae = npcae.ContractiveAutoencoder(n_hidden=32, lam=0.1, epochs=2, random_state=0)
    >>> codes = cae.fit(X).transform(X)
    >>> codes.shape
    (500, 32)
    """

    def __init__(self, n_hidden=64, lam=0.1, activation="sigmoid", output_activation="sigmoid",
                 loss="bce", tied=True, optimizer=None, batch_size=100, epochs=10,
                 random_state=None, dtype=np.float32, init="auto", early_stopping=None,
                 verbose=0, warm_start=False):
        self.n_hidden = n_hidden
        self.lam = lam
        self.activation = activation
        self.output_activation = output_activation
        self.loss = loss
        self.tied = tied
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.epochs = epochs
        self.random_state = random_state
        self.dtype = dtype
        self.init = init
        self.early_stopping = early_stopping
        self.verbose = verbose
        self.warm_start = warm_start

    # -- configuration -----------------------------------------------------------------
    @property
    def _phi(self):
        return get_activation(self.activation)

    @property
    def _psi(self):
        return get_activation(self.output_activation)

    _shape_hyperparameters = ("n_hidden", "tied")

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        from .._validation import check_bool, check_positive_int, check_real
        from ..layers import check_init
        check_positive_int(self.n_hidden, "n_hidden")
        check_real(self.lam, "lam", low=0.0)
        check_bool(self.tied, "tied")
        get_activation(self.activation), get_activation(self.output_activation)
        get_loss(self.loss)
        check_init(self.init)
        if self.loss == "bce" and not isinstance(self._psi, Sigmoid):
            raise ValueError(f"loss='bce' needs output_activation='sigmoid' (got "
                             f"{self.output_activation!r}); for a linear decoder use "
                             f"loss='mse'.")

    def _requires_unit_interval(self):
        return self.loss == "bce"

    def _n_codes(self):
        return int(self.n_hidden)

    def _param_shapes(self, n_features):
        d, k = int(n_features), int(self.n_hidden)
        init = self.init
        if init == "auto":
            init = _DEFAULT_INIT.get(self._phi.name, "glorot_uniform")
        shapes = {"W": ((d, k), init), "b": ((k,), None), "c": ((d,), None)}
        if not self.tied:
            shapes["W_dec"] = ((k, d), init)
        return shapes

    def _decoder_weights(self):
        return self.params["W"].T if self.tied else self.params["W_dec"]

    # -- encoder / decoder --------------------------------------------------------------
    def _encode(self, X):
        return self._phi.value(X @ self.params["W"] + self.params["b"])

    def _decode(self, H):
        return self._psi.value(H @ self._decoder_weights() + self.params["c"])

    def jacobian(self, X):
        """Encoder Jacobians ``J_f(x_n) = diag(phi'(a_n)) W^T``, shape ``(n, k, d)``.

        Memory is ``n * k * d`` floats: batch it for large inputs (see
        :func:`npcae.analysis.jacobian_spectrum`).
        """
        d1 = self._code_derivative(self._ready(X))
        return d1[:, :, None] * self.params["W"].T[None, :, :]

    def jacobian_norm(self, X):
        r"""Frobenius norms :math:`\|J_f(x_n)\|_F`, shape ``(n,)``, without forming ``J``."""
        d1 = self._code_derivative(self._ready(X))
        W = self.params["W"]
        return np.sqrt((d1 * d1) @ np.einsum("ij,ij->j", W, W))

    def _code_derivative(self, X):
        """``phi'(X W + b)``, shape ``(n, k)``: the derivative of each code unit at ``X``."""
        A = X @ self.params["W"] + self.params["b"]
        return self._phi.derivative(A, self._phi.value(A))

    # -- the objective ------------------------------------------------------------------
    def _batch_buffer(self, ws, n, d, dtype):
        """Where the training loop should gather a batch of ``n`` rows: the top half of
        the stacked ``[X; G_Z]`` buffer, so the tied gradient needs no copy of ``X``."""
        return ws.get("stack_in", (2 * n, d), dtype)[:n]

    def _phi_derivatives(self, A, H, ws):
        """``D1 = phi'(A)`` and ``D2 = phi''(A)``, both ``(n, k)``.

        For the sigmoid both come from ``H`` alone (``docs/derivations.md#contractive-penalty``):
        ``D1 = H (1 - H)`` and ``D2 = D1 (1 - 2H)``.
        """
        if isinstance(self._phi, Sigmoid):
            D1 = np.subtract(1.0, H, out=ws.get("D1", H.shape, H.dtype))
            D1 *= H                                             # H (1 - H)
            D2 = np.multiply(H, -2.0, out=ws.get("D2", H.shape, H.dtype))
            D2 += 1.0                                           # 1 - 2H
            D2 *= D1                                            # H (1 - H)(1 - 2H)
            return D1, D2
        return self._phi.derivative(A, H), self._phi.second_derivative(A, H)

    def _objective(self, X, grads, ws, rng=None):
        """Loss terms on ``X`` and, if ``grads`` is a dict, the gradient written into it.

        Each line is one line of ``docs/derivations.md#cae-backward``. Scratch
        arrays come from the Workspace ``ws`` so training allocates nothing
        large per step. Two stacked buffers let one matmul give the tied
        gradient: ``stack_in = [X; G_Z]`` (2n, d) and ``stack_out = [G_A; H]``
        (2n, k), so ``stack_in^T stack_out = X^T G_A + G_Z^T H``. The decoder's
        pre-activation ``Z`` is computed straight into the ``G_Z`` slot and the
        loss turns it into ``dL/dZ`` in place. The decoder product is taken as
        ``Z^T = W_dec^T H^T`` (d, n) and transposed back while adding ``c``: BLAS
        handles that orientation of the product better (``benchmarks/README.md``).
        """
        p = self.params
        W, b, c = p["W"], p["b"], p["c"]
        W_dec = self._decoder_weights()                         # (k, d)
        phi, lam = self._phi, float(self.lam)
        n, d = X.shape
        k = W.shape[1]
        dt = X.dtype
        stack_in = ws.get("stack_in", (2 * n, d), dt)           # [X ; G_Z]
        stack_out = ws.get("stack_out", (2 * n, k), dt)         # [G_A ; H]
        G_Z, G_A, H = stack_in[n:], stack_out[:n], stack_out[n:]

        # ---- forward: encoder
        A = np.matmul(X, W, out=ws.get("A", (n, k), dt))
        A += b                                                  # A = X W + b        (n, k)
        if isinstance(phi, Sigmoid):
            phi.value_via_tanh(A, out=H)                        # H = phi(A)         (n, k)
        else:
            phi.value(A, out=H)
        # ---- forward: decoder and reconstruction loss
        Z_T = np.matmul(W_dec.T, H.T, out=ws.get("Z_T", (d, n), dt))    # (H W_dec)^T
        Z = np.add(Z_T.T, c, out=G_Z)                           # Z = H W_dec + c    (n, d)
        rec = self._reconstruction(Z, X, ws)                    # Z becomes G_Z = dL_rec/dZ
        # ---- contractive penalty, closed form (docs/derivations.md#contractive-penalty)
        D1, D2 = self._phi_derivatives(A, H, ws)                # phi'(A), phi''(A)
        col_sq_norms = np.einsum("ij,ij->j", W, W)              # s_j = sum_i W_ij^2         (k,)
        col_d1_sq = np.einsum("ij,ij->j", D1, D1)               # sum_n D1_nj^2              (k,)
        pen = (col_d1_sq @ col_sq_norms) / n                    # P = (1/n) sum_n sum_j D1^2 s_j
        total = rec + lam * pen
        terms = {"reconstruction": rec, "contractive": pen, "total": total}
        if grads is None:
            return total, terms

        # ---- backward: decoder
        ones = ws.get("ones", (n,), dt, fill=1)
        np.matmul(ones, G_Z, out=grads["c"])                    # dL/dc = sum_n G_Z
        np.matmul(G_Z, W_dec.T, out=G_A)                        # dL/dH = G_Z W_dec^T
        # ---- backward: encoder nonlinearity, plus the penalty at the pre-activation
        if lam:
            D2 *= (2.0 * lam / n) * col_sq_norms                # lam (2/n) phi'' s
            G_A += D2
        G_A *= D1                                       # dL/dA = D1 (dL/dH + lam (2/n) D2 s)
        np.matmul(ones, G_A, out=grads["b"])                    # dL/db = sum_n dL/dA
        if self.tied:
            # dL/dW = X^T dL/dA + (H^T G_Z)^T, as one product of the stacked buffers
            if not (X.base is stack_in and X.shape[0] == n):     # (training gathers in place)
                stack_in[:n] = X
            np.matmul(stack_in.T, stack_out, out=grads["W"])
        else:
            np.matmul(X.T, G_A, out=grads["W"])                 # dL/dW = X^T dL/dA
            np.matmul(H.T, G_Z, out=grads["W_dec"])             # dL/dW_dec = H^T G_Z
        if lam:
            w_scale = (2.0 * lam / n) * col_d1_sq               # lam (2/n) sum_n D1^2     (k,)
            _add_scaled_columns(grads["W"], W, w_scale, ws)     #       + lam W * w_scale
        return total, terms

    def _reconstruction(self, Z, X, ws):
        """Reconstruction loss from decoder pre-activations ``Z``; overwrites ``Z`` with dL/dZ."""
        n = X.shape[0]
        psi = self._psi
        if self.loss == "bce" and isinstance(psi, Sigmoid):
            # fused, from the logits: exact for any Z (docs/derivations.md#losses)
            ones = ws.get("ones_row", (Z.shape[1],), Z.dtype, fill=1)
            return bce_with_logits_into(Z, X, Z, ws.get("scratch", Z.shape, Z.dtype),
                                        precise=False, ones=ones)
        if self.loss == "mse" and isinstance(psi, Identity):
            np.subtract(Z, X, out=Z)                            # R - X with R = Z
            flat = Z.reshape(-1)
            value = np.dot(flat, flat) / n                      # (1/n) sum (R - X)^2
            Z *= 2.0 / n                                        # dL/dZ = 2 (R - X) / n
            return value
        # any other pairing: chain rule through psi
        R = psi.value(Z)
        value, G_R = get_loss(self.loss)(R, X)                  # dL/dR
        np.multiply(G_R, psi.derivative(Z, R), out=Z)           # dL/dZ = dL/dR * psi'(Z)
        return value

    def _sample_terms(self, X):
        """The objective's terms for each row of ``X``: dict of ``(n,)`` arrays.

        Written plainly (no fusions): ``reconstruction_n = loss(x_n, r_n)`` summed
        over features, ``contractive_n = sum_j phi'(a_nj)^2 s_j`` and
        ``total_n = reconstruction_n + lam * contractive_n``; their means are the
        terms ``_objective`` returns.
        """
        from ..losses import per_sample_loss
        W, b = self.params["W"], self.params["b"]
        A = X @ W + b
        H = self._phi.value(A)
        Z = H @ self._decoder_weights() + self.params["c"]
        if self.loss == "bce" and isinstance(self._psi, Sigmoid):
            rec = np.sum(np.logaddexp(0.0, Z) - X * Z, axis=1)   # BCE from the logits
        else:
            rec = per_sample_loss(self.loss, self._psi.value(Z), X)
        D1 = self._phi.derivative(A, H)
        pen = (D1 * D1) @ np.einsum("ij,ij->j", W, W)
        return {"reconstruction": rec, "contractive": pen, "total": rec + float(self.lam) * pen}

    def reference_loss_and_grad(self, X):
        """The same objective as :meth:`loss_and_grad`, computed plainly on the layers engine.

        No fusion: ``Dense`` + ``Activation`` encode, ``TiedDense`` (or ``Dense``)
        decodes, a loss from :mod:`npcae.losses` reconstructs, and
        :func:`npcae.penalties.contractive_terms` gives the penalty, whose
        pre-activation gradient joins the backward pass at ``A`` and whose direct
        ``W`` term is added last. ``docs/derivations.md#cae-backward`` derives the
        fused :meth:`_objective` from these lines; the tests hold the two equal.
        """
        from ..layers import Dense, Sequential, TiedDense
        from ..layers import Activation as ActivationLayer
        from ..losses import bce_with_logits
        from ..penalties import contractive_terms
        X = self._prepare_for_objective(X)
        p, lam, psi = self.params, float(self.lam), self._psi
        grads = {name: np.zeros_like(value) for name, value in p.items()}
        encoder = Sequential(Dense(*p["W"].shape, init="zeros", dtype=X.dtype).bind(p, grads),
                             ActivationLayer(self._phi))
        decoder = (TiedDense(encoder[0]) if self.tied
                   else Dense(*p["W_dec"].shape, init="zeros", dtype=X.dtype))
        decoder.bind({"W": p.get("W_dec"), "b": p["c"]}, {"W": grads.get("W_dec"),
                                                          "b": grads["c"]})
        H = encoder.forward(X)                                  # h = phi(x W + b)
        Z = decoder.forward(H)                                  # z = h W_dec + c
        if self.loss == "bce" and isinstance(psi, Sigmoid):
            rec, G_Z = bce_with_logits(Z, X)                    # from the logits
        else:
            R = psi.value(Z)
            rec, G_R = get_loss(self.loss)(R, X)
            G_Z = G_R * psi.derivative(Z, R)                    # dL/dz = dL/dr psi'(z)
        A, H = encoder[1].pre_activation, encoder[1].output
        pen, G_A_pen, w_scale = contractive_terms(p["W"], self._phi.derivative(A, H),
                                                  self._phi.second_derivative(A, H))
        G_H = decoder.backward(G_Z)                             # dL/dh
        encoder.backward(G_H, add_grad={0: lam * G_A_pen})      # the penalty enters at A
        grads["W"] += lam * p["W"] * w_scale                    # and directly through s_j
        return _scalar_value(rec + lam * pen), grads

    # convenience for users checking the closed form
    def contractive_penalty(self, X):
        """Mean ``||J_f(x)||_F^2`` over ``X`` (the penalty term without ``lam``)."""
        return self.loss_terms(X)["contractive"]

