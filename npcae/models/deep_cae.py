r"""Deep contractive autoencoder: the whole encoder's Jacobian penalised, exactly or by projections,
optionally with the higher-order (CAE+H) curvature term.

For an encoder of ``L`` layers ``H_i = phi_i(H_{i-1} W_i + b_i)`` with Jacobian
``J(x) = dH_{L-1}/dx`` (``k x d``), per batch of ``n`` rows::

    L = s (1/n) sum_n loss(x_n, r_n)
        + lam   (1/n) sum_n ||J(x_n)||_F^2                                  (contractive)
        + gamma (1/n) sum_n (1/c) sum_c ||J(x_n) - J(x_n + eps_cn)||_F^2     (curvature, CAE+H)

with ``eps_cn ~ N(0, sigma^2 I)``, ``c = n_corrupt``. ``penalty="exact"``
computes ``||J||_F^2 = sum((B G) * B)`` from the code side (``B`` is ``J``
without its last factor ``W_0^T``, ``G = W_0^T W_0``), so nothing ``d``-wide
is formed per row; ``penalty="stochastic"`` replaces it by
``(1/m) sum_p ||J v_p||^2`` over ``m = n_projections`` vectors with
``E[v v^T] = I``, drawn once per minibatch and shared by its rows. Both
gradients, and CAE+H's, are exact for the quantity computed, including every
layer's second-derivative terms: ``docs/derivations.md#deep-contractive-penalty``.
The penalties' functions live in :mod:`npcae.penalties`; this file wires them
into the layers engine.
"""
from __future__ import annotations

import numpy as np

from ..layers import Sequential
from ..penalties import (curvature_terms, deep_contractive_terms, encoder_derivatives,
                         jacobian_sq_norms, penalty_chunk_rows, projected_contractive_terms)
from .autoencoder import Autoencoder

__all__ = ["DeepContractiveAutoencoder", "PENALTIES", "PROJECTIONS"]

PENALTIES = ("exact", "stochastic")
PROJECTIONS = ("rademacher", "gaussian")


class DeepContractiveAutoencoder(Autoencoder):
    r"""Autoencoder of any depth whose whole encoder is contractive (Rifai et al., 2011).

    Parameters
    ----------
    layers : tuple of int
        Encoder widths, the last is the code size (``(256, 64)``: 784-256-64).
    lam : float >= 0
        Weight of ``(1/n) sum_n ||J(x_n)||_F^2``.
    penalty : {"exact", "stochastic"}
        "exact": the Frobenius norm of the whole encoder's Jacobian, in the
        Gram form; cost per row ``O(k h_0^2 + k sum_i h_i h_{i-1})``, memory
        ``O(rows k h_0)`` per chunk. "stochastic": the unbiased estimate
        ``(1/m) sum_p ||J v_p||^2``; cost per row ``O(m sum_i h_i h_{i-1})``
        plus one ``(m, d) x (d, h_0)`` product per batch. Its relative
        standard error on a batch mean is ``sqrt(2 ||C||_F^2 / m) / tr(C)``
        for Gaussian vectors, with ``C`` the batch mean of ``J^T J``
        (Rademacher vectors drop the diagonal's share, so never more).
    n_projections : int >= 1
        ``m`` for the stochastic estimate.
    projection : {"rademacher", "gaussian"}
        Distribution of the projection vectors: independent entries +-1 with
        equal chance, or N(0, 1). Both have ``E[v v^T] = I``.
    gamma : float >= 0
        Weight of the CAE+H curvature term (0 turns it off).
    sigma : float > 0
        Standard deviation of the CAE+H perturbations.
    n_corrupt : int >= 1
        Perturbed copies of each row for CAE+H.
    chunk_size : int or None
        Rows per chunk of the exact penalty's ``(rows, k, h_0)`` work arrays
        (None: as many rows as keep one under 16 MiB).
    layers, activation, code_activation, output_activation, loss, reduction, loss_weight, tied,
    init, optimizer, batch_size, epochs, shuffle, drop_last, random_state, dtype,
    early_stopping, verbose, warm_start
        As for :class:`~npcae.Autoencoder` (untied by default here).

    Notes
    -----
    ``loss_and_grad(X, projections=...)`` (shape ``(n_projections,
    n_features)``) and ``loss_and_grad(X, perturbations=...)`` (shape
    ``(n_corrupt, n_samples, n_features)``, the ``eps``) make the objective
    deterministic; the gradient is then exact for the given noise. Training
    draws both from the training generator (so resumed runs draw the same).
    ``score_samples`` is never random: it uses the exact penalty (also for
    ``penalty="stochastic"``) and leaves the curvature term out. With one
    layer the exact penalty is the closed form of
    :class:`~npcae.ContractiveAutoencoder` (which stays the fused one-layer
    model).

    ``history_`` gains ``contractive`` (with ``lam > 0``) and ``curvature`` (with
    ``gamma > 0``), unweighted batch means. With ``lam = 0`` and ``gamma = 0`` nothing
    beyond the plain autoencoder is computed (``jacobian_norm`` still measures the
    encoder).

    Examples
    --------
    >>> import npcae
    >>> X, _ = npcae.datasets.make_digits(200, random_state=0)
    >>> m = npcae.DeepContractiveAutoencoder(layers=(32, 8), lam=0.1, epochs=1, random_state=0)
    >>> m.fit(X).transform(X).shape
    (200, 8)
    """

    def __init__(self, layers=(256, 64), lam=0.1, penalty="exact", n_projections=4,
                 projection="rademacher", gamma=0.0, sigma=0.1, n_corrupt=4, chunk_size=None,
                 activation="sigmoid", code_activation=None, output_activation="sigmoid",
                 loss="bce", reduction="sum", loss_weight=1.0, tied=False, init="auto",
                 optimizer=None, batch_size=100, epochs=10, shuffle=True, drop_last=False,
                 random_state=None, dtype=np.float32, early_stopping=None, verbose=0,
                 warm_start=False):
        super().__init__(layers=layers, activation=activation, code_activation=code_activation,
                         output_activation=output_activation, loss=loss, reduction=reduction,
                         loss_weight=loss_weight, tied=tied, init=init, optimizer=optimizer,
                         batch_size=batch_size, epochs=epochs, shuffle=shuffle,
                         drop_last=drop_last, random_state=random_state, dtype=dtype,
                         early_stopping=early_stopping, verbose=verbose, warm_start=warm_start)
        self.lam = lam
        self.penalty = penalty
        self.n_projections = n_projections
        self.projection = projection
        self.gamma = gamma
        self.sigma = sigma
        self.n_corrupt = n_corrupt
        self.chunk_size = chunk_size

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        from .._validation import check_positive_int, check_real
        check_real(self.lam, "lam", low=0.0)
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {list(PENALTIES)}; got {self.penalty!r}.")
        check_positive_int(self.n_projections, "n_projections")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {list(PROJECTIONS)}; got "
                             f"{self.projection!r}.")
        check_real(self.gamma, "gamma", low=0.0)
        check_real(self.sigma, "sigma", low=0.0, low_open=True)
        check_positive_int(self.n_corrupt, "n_corrupt")
        if self.chunk_size is not None:
            check_positive_int(self.chunk_size, "chunk_size")

    # -- noise: projections (shared by the batch) and perturbations (per row) ------------
    def _noise_shapes(self, X):
        shapes = {}
        if self.penalty == "stochastic":
            shapes["projections"] = (int(self.n_projections), X.shape[1])
        if float(self.gamma) > 0:
            shapes["perturbations"] = (int(self.n_corrupt), X.shape[0], X.shape[1])
        return shapes

    def _noise_rows(self, noise, start, stop):
        rows = {}
        if "projections" in noise:
            rows["projections"] = noise["projections"]              # shared by every row
        if "perturbations" in noise:
            rows["perturbations"] = noise["perturbations"][:, start:stop]
        return rows

    def _draw_projections(self, rng, d, dtype):
        shape = (int(self.n_projections), d)
        if self.projection == "gaussian":
            return rng.standard_normal(shape, dtype=dtype)
        return (2 * rng.integers(0, 2, size=shape, dtype=np.int8) - 1).astype(dtype)

    def _draw_perturbations(self, rng, X):
        eps = rng.standard_normal((int(self.n_corrupt), *X.shape), dtype=X.dtype)
        eps *= float(self.sigma)
        return eps

    # -- the penalties on the engine's cached forward pass ------------------------------
    def _encoder_weights(self):
        return [self.params[f"encoder.{i}.W"] for i in range(len(self._encoder_widths()))]

    @staticmethod
    def _cached_derivatives(encoder, second=True):
        """``D_i = phi_i'(A_i)`` and (if ``second``) ``E_i = phi_i''(A_i)``, from the engine's
        Activation modules."""
        D, E = [], []
        for module in encoder.modules[1::2]:
            a, h = module.pre_activation, module.output
            D.append(module.activation.derivative(a, h))
            E.append(module.activation.second_derivative(a, h) if second else None)
        return D, E

    def _chunk_rows(self, X):
        widths = [X.shape[1], *self._encoder_widths()]
        return penalty_chunk_rows(self._n_codes(), widths, X.dtype.itemsize, self.chunk_size)

    def _extra_terms(self, X, encoder, grads, ws, rng, projections=None,
                     perturbations=None):
        n, d = X.shape
        L = len(self._encoder_widths())
        weights = self._encoder_weights()
        grad_weights = None if grads is None else [grads[f"encoder.{i}.W"] for i in range(L)]
        lam, gamma = float(self.lam), float(self.gamma)
        terms, add_grad = {}, {}
        if lam == 0 and gamma == 0:
            return terms, add_grad                  # a plain autoencoder: nothing to compute
        D, E = self._cached_derivatives(encoder, second=grads is not None)
        if lam > 0:
            if self.penalty == "stochastic":
                if projections is None:
                    projections = self._draw_projections(rng, d, X.dtype)
                total, grad_A = projected_contractive_terms(D, E, weights, projections, lam / n,
                                                            grad_weights, ws)
            else:
                total, grad_A = deep_contractive_terms(D, E, weights, lam / n, grad_weights,
                                                       self._chunk_rows(X), ws)
            contractive = float(total) / n
            terms["contractive"] = (contractive, lam * contractive)
            if grad_A is not None:
                add_grad = {2 * i: g for i, g in enumerate(grad_A)}
        if gamma > 0:
            curvature, grad_A_clean = self._curvature(X, D, E, weights, grads, grad_weights,
                                                      ws, rng, perturbations)
            terms["curvature"] = (curvature, gamma * curvature)
            if grad_A_clean is not None:
                for i, g in enumerate(grad_A_clean):
                    add_grad[2 * i] = add_grad[2 * i] + g if 2 * i in add_grad else g
        return terms, add_grad

    def _curvature(self, X, D, E, weights, grads, grad_weights, ws, rng, perturbations):
        """CAE+H's term: forward the perturbed copies through a second engine encoder (same
        parameters), take :func:`npcae.penalties.curvature_terms`, and backpropagate its
        gradient at the copies' pre-activations through that encoder."""
        n, d = X.shape
        c = int(self.n_corrupt)
        if perturbations is None:
            perturbations = self._draw_perturbations(rng, X)
        X_tilde = (X[None] + perturbations).reshape(c * n, d)
        encoder_t = self._perturbed_encoder(X.dtype)
        for i, dense in enumerate(encoder_t.modules[0::2]):
            dense.bind(self.params, grads, f"encoder.{i}.")
        encoder_t.forward(X_tilde)
        D_t, E_t = self._cached_derivatives(encoder_t, second=grads is not None)
        D_t = [v.reshape(c, n, -1) for v in D_t]
        E_t = [None if v is None else v.reshape(c, n, -1) for v in E_t]
        scale = float(self.gamma) / n
        total, grad_A, grad_A_t = curvature_terms(D, E, D_t, E_t, weights, scale,
                                                  grad_weights, self._chunk_rows(X), ws)
        if grads is not None:
            top = np.zeros((c * n, self._n_codes()), dtype=X.dtype)
            encoder_t.backward(top, add_grad={2 * i: g.reshape(c * n, -1)
                                              for i, g in enumerate(grad_A_t)})
        return float(total) / n, grad_A

    def _perturbed_encoder(self, dtype):
        """A second encoder on the engine for the perturbed copies, bound to the same
        parameters and gradients (its layers accumulate into them too)."""
        key = (self.n_features_in_, self._encoder_widths(), repr(self._activations()),
               np.dtype(dtype))
        cached = getattr(self, "_perturbed_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        encoder = Sequential(self._encoder_modules(dtype))
        self._perturbed_cache = (key, encoder)
        return encoder

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_perturbed_cache", None)
        return state

    # -- per-row terms (never random) ------------------------------------------------------
    def _extra_sample_terms(self, X):
        """Per row: the exact ``||J(x_n)||_F^2`` (for either ``penalty``); no curvature term."""
        if float(self.lam) == 0:
            return {}
        L = len(self._encoder_widths())
        _, D, E = encoder_derivatives(X, self._encoder_weights(),
                                      [self.params[f"encoder.{i}.b"] for i in range(L)],
                                      self._activations()[0])
        values = jacobian_sq_norms(D, self._encoder_weights(), self._chunk_rows(X))
        return {"contractive": (values, float(self.lam) * values)}
