r"""Regularisation penalties with closed-form gradients.

Contractive penalty (Rifai et al., 2011) of a one-layer encoder
``h = phi(a)``, ``a = x W + b`` with ``W`` of shape ``(d, k)``. Its Jacobian is
``J_f(x) = diag(phi'(a)) W^T`` (shape ``(k, d)``), so

.. math::

    \|J_f(x)\|_F^2 = \sum_j \phi'(a_j)^2 \sum_i W_{ij}^2 = \sum_j D_j^2 s_j ,
    \qquad D = \phi'(a),\; s_j = \sum_i W_{ij}^2 .

Over a batch the penalty is **averaged** (the library's one convention):
``P = (1/n) sum_n ||J_f(x_n)||_F^2``. Its gradients (derivation in
``docs/derivations.md#contractive-penalty``), with ``DD = phi''(a)``::

    dP/dA           = (2/n) * D * DD * s            # (n, k), enters backprop at the pre-activation
    dP/dW |direct   = W * ((2/n) * sum_n D**2)      # (d, k), through s
    dP/dW           = X.T @ dP/dA + dP/dW|direct
    dP/db           = sum_n dP/dA

Nothing here builds the ``(n, k, d)`` Jacobian: memory is ``O(n k + d k)``.
"""
from __future__ import annotations

import numpy as np

from ._validation import as_float_array
from .activations import get_activation

__all__ = ["contractive_terms", "contractive_penalty", "encoder_jacobian"]


def contractive_terms(W, d1, d2):
    r"""Core of the contractive penalty, given the activation's derivatives.

    Parameters
    ----------
    W : ndarray, shape (d, k)
        Encoder weights.
    d1, d2 : ndarray, shape (n, k)
        ``phi'(A)`` and ``phi''(A)`` at the batch's pre-activations ``A = X W + b``.

    Returns
    -------
    value : numpy scalar
        ``P = (1/n) sum_n sum_j d1[n, j]**2 * s[j]`` (complex when the inputs are,
        so complex-step checks work through it) with ``s[j] = sum_i W[i, j]**2``.
    grad_pre_activation : ndarray, shape (n, k)
        ``dP/dA = (2/n) * d1 * d2 * s``.
    w_scale : ndarray, shape (k,)
        ``(2/n) * sum_n d1**2``, so that the direct gradient through ``s`` is
        ``dP/dW|direct = W * w_scale`` (a column scaling of ``W``; never formed here).

    See ``docs/derivations.md#contractive-penalty``.
    """
    n = d1.shape[0]
    col_sq_norms = np.einsum("ij,ij->j", W, W)            # s_j = sum_i W_ij^2       (k,)
    d1_sq = d1 * d1                                       # D^2                      (n, k)
    value = np.sum(d1_sq @ col_sq_norms) / n              # (1/n) sum_n sum_j D^2 s_j
    grad_pre_activation = (2.0 / n) * (d1 * d2) * col_sq_norms   # (2/n) D DD s     (n, k)
    w_scale = (2.0 / n) * d1_sq.sum(axis=0)               # (2/n) sum_n D^2          (k,)
    return value, grad_pre_activation, w_scale


def _encode_with_derivatives(X, W, b, activation):
    phi = get_activation(activation)
    A = X @ W + b
    H = phi.value(A)
    return phi, A, H, phi.derivative(A, H), phi.second_derivative(A, H)


def contractive_penalty(X, W, b, activation="sigmoid"):
    r"""Contractive penalty of the encoder ``h = phi(X W + b)`` and its exact gradients.

    .. math:: P = \frac1n \sum_n \|J_f(x_n)\|_F^2, \qquad J_f(x) = \mathrm{diag}(\phi'(a)) W^\top

    Parameters
    ----------
    X : ndarray, shape (n_samples, d)
    W : ndarray, shape (d, k)
    b : ndarray, shape (k,)
    activation : str or ActivationFunction
        Any elementwise activation with first and second derivatives. For the
        sigmoid, ``phi' = h(1-h)`` and ``phi'' = h(1-h)(1-2h)`` are used.

    Returns
    -------
    value : float
    grads : dict with ``"W"`` of shape (d, k) and ``"b"`` of shape (k,)

    See ``docs/derivations.md#contractive-penalty``.
    """
    X = as_float_array(X, "X", ndim=2)
    W = as_float_array(W, "W", ndim=2)
    b = as_float_array(b, "b", ndim=1)
    if X.shape[1] != W.shape[0] or b.shape != (W.shape[1],):
        raise ValueError(f"shapes do not fit: X {X.shape}, W {W.shape} (need (d, k) with "
                         f"d = X.shape[1]), b {b.shape} (need (k,)).")
    _, _, _, d1, d2 = _encode_with_derivatives(X, W, b, activation)
    value, grad_a, w_scale = contractive_terms(W, d1, d2)
    grads = {"W": X.T @ grad_a + W * w_scale, "b": grad_a.sum(axis=0)}
    return float(value), grads


def encoder_jacobian(X, W, b, activation="sigmoid"):
    """Explicit Jacobians ``J_f(x_n) = diag(phi'(a_n)) W^T``, shape ``(n, k, d)``.

    For analysis and tests; training never forms this tensor.
    """
    X = as_float_array(X, "X", ndim=2)
    _, _, _, d1, _ = _encode_with_derivatives(X, W, b, activation)
    return d1[:, :, None] * W.T[None, :, :]
