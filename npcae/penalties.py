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

Deep encoders (the second half of this file): the exact whole-encoder penalty
``||J||_F^2`` in the Gram form (:func:`deep_contractive_terms`), its
shared-projection estimate (:func:`projected_contractive_terms`) and the CAE+H
curvature term (:func:`curvature_terms`), each with its exact gradient
including every layer's second-derivative terms
(``docs/derivations.md#deep-contractive-penalty``).
"""
from __future__ import annotations

import numpy as np

from ._validation import as_float_array
from .activations import get_activation

__all__ = ["contractive_terms", "contractive_penalty", "encoder_jacobian", "encoder_derivatives",
           "code_side_forward", "code_side_backward", "deep_contractive_terms",
           "jacobian_sq_norms", "projected_contractive_terms", "curvature_terms",
           "penalty_chunk_rows"]


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


# =====================================================================================
# Deep encoders: the exact whole-encoder penalty, its stochastic estimate, and CAE+H
# =====================================================================================
# Notation (docs/derivations.md#deep-contractive-penalty): encoder layers i = 0..L-1,
#   A_i = H_{i-1} W_i + b_i,  H_i = phi_i(A_i),  D_i = phi_i'(A_i),  E_i = phi_i''(A_i),
#   J = diag(D_{L-1}) W_{L-1}^T ... diag(D_0) W_0^T  = B W_0^T,   G = W_0^T W_0.
# Every function below works on the per-layer lists D = [D_0, ...], E = [E_0, ...] (each
# (n, h_i)) and weights = [W_0, ...]; gradients with respect to the pre-activations come
# back as lists (they enter ordinary backprop at A_i), and the terms that reach W_i
# directly (not through A_i) are ADDED into grad_weights[i].

_CHUNK_BYTES = 16 << 20


def penalty_chunk_rows(n_codes, widths, itemsize, chunk_size=None):
    """Rows per chunk: ``chunk_size``, or as many as keep one ``(rows, k, h)`` array under 16 MiB."""
    if chunk_size is not None:
        return int(chunk_size)
    return max(1, _CHUNK_BYTES // (int(n_codes) * max(widths) * int(itemsize)))


def encoder_derivatives(X, weights, biases, activations):
    """Forward pass of a deep encoder keeping ``D_i = phi_i'(A_i)`` and ``E_i = phi_i''(A_i)``.

    Returns ``(H, D, E)``: the layer outputs ``[H_0, ..., H_{L-1}]`` and the two
    derivative lists, each array ``(n, h_i)``.
    """
    H, outputs, D, E = X, [], [], []
    for W, b, act in zip(weights, biases, activations):
        act = get_activation(act)
        A = H @ W + b
        H = act.value(A)
        outputs.append(H)
        D.append(act.derivative(A, H))
        E.append(act.second_derivative(A, H))
    return outputs, D, E


def _buffer(ws, name, shape, dtype):
    """Scratch array ``name`` from the workspace ``ws`` (reused between steps), or a new one."""
    return np.empty(shape, dtype) if ws is None else ws.get(name, shape, dtype)


def code_side_forward(D, weights, ws=None, tag=""):
    r"""``B = diag(D_{L-1}) W_{L-1}^T ... diag(D_1) W_1^T diag(D_0)`` per row, shape ``(n, k, h_0)``.

    Needs ``L >= 2`` (for one layer ``B = diag(D_0)``, which the callers use in
    closed form). From the code side: ``N_{L-2} = diag(D_{L-1}) W_{L-1}^T``
    (elementwise, no product), ``M_i = N_i diag(D_i)``, ``N_{i-1} = M_i W_i^T``.
    Returns ``B = M_0`` and ``cache[i] = (N_i, M_{i+1})`` (``M_{L-1}`` is the
    diagonal and is not stored) for :func:`code_side_backward`. ``ws``: a
    :class:`~npcae.models.Workspace` for the work arrays (names prefixed by ``tag``).
    """
    L, (n, k) = len(D), D[-1].shape
    dtype = np.result_type(*D)
    N = _buffer(ws, f"{tag}N{L - 2}", (n, k, weights[L - 1].shape[0]), dtype)
    np.multiply(D[L - 1][:, :, None], weights[L - 1].T, out=N)   # N_{L-2} = diag(D_{L-1}) W_{L-1}^T
    cache = [None] * (L - 1)
    M = None
    for i in range(L - 2, -1, -1):
        if i < L - 2:
            N = np.matmul(M, weights[i + 1].T,                   # N_i = M_{i+1} W_{i+1}^T
                          out=_buffer(ws, f"{tag}N{i}", (n, k, weights[i + 1].shape[0]), dtype))
        cache[i] = (N, M)                                        # M = M_{i+1} (None at the top)
        M = np.multiply(N, D[i][:, None, :],                     # M_i = N_i diag(D_i)
                        out=_buffer(ws, f"{tag}M{i}", N.shape, dtype))
    return M, cache


def code_side_backward(B_dot, D, weights, cache, grad_weights=None, ws=None):
    r"""Reverse of :func:`code_side_forward`: ``dT/dD_i`` for every layer, from ``dT/dB``.

    ``B_dot`` (``dT/dB``, ``(n, k, h_0)``) is overwritten. The direct gradients
    ``dT/dW_i`` for ``i >= 1`` (from ``N_{i-1} = M_i W_i^T``) are added into
    ``grad_weights[i]`` when it is given. For ``i = 0 .. L-2``::

        dT/dD_i     = sum_k (M_dot_i * N_i)              (the code's rows summed out)
        N_dot_i     = M_dot_i diag(D_i)
        dT/dW_{i+1} += sum_n N_dot_i^T M_{i+1}
        M_dot_{i+1} = N_dot_i W_{i+1}

    At the top (``i = L-2``), ``N_i = diag(D_{L-1}) W_{L-1}^T`` elementwise; with
    ``R = M_dot_i * W_{L-1}^T``::

        dT/dD_{L-2} = sum_k D_{L-1,k} R_k          dT/dD_{L-1} = sum_h R_{:,h} D_{L-2,h}
        dT/dW_{L-1} += sum_n (N_dot_i diag(D_{L-1}))^T

    See ``docs/derivations.md#deep-contractive-penalty``.
    """
    L = len(D)
    grad_D = [None] * L
    M_dot = B_dot
    for i in range(L - 1):
        N, M_up = cache[i]
        n, k, h = M_dot.shape
        if i + 1 == L - 1:                                   # N_i = diag(D_{L-1}) W_{L-1}^T
            W_top = weights[L - 1]
            R = np.multiply(M_dot, W_top.T, out=_buffer(ws, "R", M_dot.shape, M_dot.dtype))
            grad_D[i] = np.matmul(D[L - 1][:, None, :], R)[:, 0, :]        # sum_k D_{L-1} R
            grad_D[L - 1] = np.matmul(R, D[i][:, :, None])[:, :, 0]        # sum_h R D_i
            N_dot = np.multiply(M_dot, D[i][:, None, :], out=M_dot)        # dT/dN_i
            if grad_weights is not None:                     # sum_n N_dot[n,k,h] D_{L-1}[n,k]
                grad_weights[L - 1] += np.matmul(D[L - 1].T[:, None, :],
                                                 N_dot.transpose(1, 0, 2))[:, 0, :].T
        else:                                                # N_i = M_{i+1} W_{i+1}^T
            prod = np.multiply(M_dot, N, out=_buffer(ws, "R", M_dot.shape, M_dot.dtype))
            grad_D[i] = np.matmul(np.ones((1, k), dtype=prod.dtype), prod)[:, 0, :]
            N_dot = np.multiply(M_dot, D[i][:, None, :], out=M_dot)        # dT/dN_i
            if grad_weights is not None:
                h_up = M_up.shape[2]
                grad_weights[i + 1] += N_dot.reshape(-1, h).T @ M_up.reshape(-1, h_up)
            M_dot = np.matmul(N_dot, weights[i + 1],          # dT/dM_{i+1}
                              out=_buffer(ws, f"M_dot{i + 1}", M_up.shape, M_up.dtype))
    return grad_D


def _times_second_derivative(grad_D, E):
    """``dT/dA_i = dT/dD_i * phi_i''(A_i)``: how the penalty reaches the pre-activations."""
    return [g * e for g, e in zip(grad_D, E)]


def deep_contractive_terms(D, E, weights, scale=1.0, grad_weights=None, chunk_rows=None,
                           ws=None):
    r"""Exact ``||J(x_n)||_F^2`` of a deep encoder, and the gradient of ``T = scale * sum_n``.

    Parameters
    ----------
    D, E : list of ndarray, each (n, h_i)
        ``phi_i'(A_i)`` and ``phi_i''(A_i)`` of every layer.
    weights : list of ndarray, each (h_{i-1}, h_i)
    scale : float
        ``T = scale * sum_n ||J(x_n)||_F^2`` (the models pass ``lam / n``).
    grad_weights : list of ndarray or None
        If given, the direct ``dT/dW_i`` are ADDED into it and ``dT/dA_i`` is
        returned.
    chunk_rows : int or None
        Rows per chunk (bounds the ``(rows, k, h_0)`` work arrays).
    ws : Workspace or None
        Where the work arrays live between calls.

    Returns
    -------
    total : float
        ``sum_n ||J(x_n)||_F^2`` (per-row values: :func:`jacobian_sq_norms`).
    grad_A : list of ndarray (n, h_i), or None without ``grad_weights``.

    One layer: ``sum_j D_j^2 s_j`` (the closed form, ``s = diag(G)``). Deeper,
    with ``G = W_0^T W_0`` (``h_0 x h_0``) and ``S = sum_n B_n^T B_n``::

        sum_n ||B_n W_0^T||_F^2 = sum_n trace(B_n G B_n^T) = sum(S * G)

    so the ``d``-wide product ``B W_0^T`` is never taken, and the one
    ``(n k, h_0) x (h_0, h_0)`` product ``B G`` is needed only for the gradient.
    See ``docs/derivations.md#deep-contractive-penalty``.
    """
    n, W0 = D[0].shape[0], weights[0]
    if len(D) == 1:                          # the one-layer closed form, contractive_terms
        if grad_weights is None:
            return np.sum(jacobian_sq_norms(D, weights)), None
        mean, grad_pre_activation, w_scale = contractive_terms(W0, D[0], E[0])
        per_row = scale * n                                  # contractive_terms averages over n
        grad_weights[0] += W0 * (per_row * w_scale)          # through s
        return mean * n, [per_row * grad_pre_activation]     # through D_0
    G = W0.T @ W0                                            # (h_0, h_0)
    rows = chunk_rows or n
    S = np.zeros_like(G)                                     # sum_n B_n^T B_n
    grad_D = None if grad_weights is None else [np.empty_like(d) for d in D]
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        D_rows = [d[start:stop] for d in D]
        B, cache = code_side_forward(D_rows, weights, ws)
        flat = B.reshape(-1, B.shape[2])
        S += flat.T @ flat                                   # (symmetric: one syrk)
        if grad_weights is None:
            continue
        B_dot = np.matmul(B, G, out=_buffer(ws, "BG", B.shape, B.dtype))
        B_dot *= 2.0 * scale                                 # dT/dB = 2 scale B G
        chunk = code_side_backward(B_dot, D_rows, weights, cache, grad_weights, ws)
        for g, c in zip(grad_D, chunk):
            g[start:stop] = c
    total = np.sum(S * G)
    if grad_weights is None:
        return total, None
    grad_weights[0] += (2.0 * scale) * (W0 @ S)               # through G = W_0^T W_0
    return total, _times_second_derivative(grad_D, E)


def jacobian_sq_norms(D, weights, chunk_rows=None, ws=None):
    """Per-row ``||J(x_n)||_F^2``, shape ``(n,)``: ``sum((B G) * B)`` row by row (one layer:
    ``D_0^2 @ s``). For scores and analysis; training uses :func:`deep_contractive_terms`."""
    n, W0 = D[0].shape[0], weights[0]
    if len(D) == 1:
        return (D[0] * D[0]) @ np.einsum("ij,ij->j", W0, W0)
    G = W0.T @ W0
    rows = chunk_rows or n
    values = np.empty(n, dtype=np.result_type(*D))
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        B, _ = code_side_forward([d[start:stop] for d in D], weights, ws)
        BG = np.matmul(B, G, out=_buffer(ws, "BG", B.shape, B.dtype))
        values[start:stop] = np.einsum("nkh,nkh->n", BG, B)
    return values


def projected_contractive_terms(D, E, weights, projections, scale=1.0, grad_weights=None,
                                ws=None):
    r"""Stochastic ``||J(x_n)||_F^2 ~ (1/m) sum_p ||J(x_n) v_p||^2`` with shared projections.

    ``E[v v^T] = I`` makes each ``||J v||^2`` unbiased. The ``m`` vectors
    ``v_p`` (rows of ``projections``, ``(m, d)``) are shared by every row, so
    ``U = V W_0`` is one ``(m, d) x (d, h_0)`` product; then forward mode,
    ``t_0 = U * D_0`` and ``t_i = (t_{i-1} W_i) * D_i``, gives ``t_{L-1} = J v``
    per row and projection without any ``(k, d)`` Jacobian.

    Returns ``(total, grad_A or None)`` as :func:`deep_contractive_terms`;
    the gradient is the exact gradient of the estimate for these projections
    (``docs/derivations.md#stochastic-estimate``). ``ws``: work arrays' workspace.
    """
    m, n, L = projections.shape[0], D[0].shape[0], len(D)
    dtype = np.result_type(projections, *D)
    U = projections @ weights[0]                             # v_p W_0         (m, h_0)
    pre = [U[:, None, :]]                                    # s_i: t_i = s_i * D_i
    t = np.multiply(pre[0], D[0],                            # t_0             (m, n, h_0)
                    out=_buffer(ws, "t0", (m, n, U.shape[1]), dtype))
    ts = [t]
    for i in range(1, L):
        h = weights[i].shape[1]
        pre.append(np.matmul(t, weights[i], out=_buffer(ws, f"s{i}", (m, n, h), dtype)))
        t = np.multiply(pre[i], D[i], out=_buffer(ws, f"t{i}", (m, n, h), dtype))
        ts.append(t)                                         # t_i = (t_{i-1} W_i) * D_i
    total = np.vdot(t, t) / m                                # sum_n (1/m) sum_p ||t||^2
    if grad_weights is None:
        return total, None
    grad_D = [None] * L
    t_dot = np.multiply(t, 2.0 * scale / m,                  # dT/dt_{L-1}
                        out=_buffer(ws, f"t_dot{L - 1}", t.shape, dtype))
    for i in range(L - 1, -1, -1):
        if i > 0:
            grad_D[i] = np.multiply(t_dot, pre[i]).sum(axis=0)       # sum over projections
        else:                                                # s_0 = U, the same for every row
            grad_D[0] = t_dot[0] * U[0]
            for p in range(1, m):
                grad_D[0] += t_dot[p] * U[p]
        s_dot = np.multiply(t_dot, D[i], out=t_dot)          # dT/ds_i
        if i > 0:
            h_lo, h_up = ts[i - 1].shape[2], s_dot.shape[2]
            grad_weights[i] += ts[i - 1].reshape(-1, h_lo).T @ s_dot.reshape(-1, h_up)
            t_dot = np.matmul(s_dot, weights[i].T,           # dT/dt_{i-1}
                              out=_buffer(ws, f"t_dot{i - 1}", ts[i - 1].shape, dtype))
        else:
            grad_weights[0] += projections.T @ s_dot.sum(axis=1)     # U = V W_0
    return total, _times_second_derivative(grad_D, E)


def curvature_terms(D, E, D_tilde, E_tilde, weights, scale=1.0, grad_weights=None,
                    chunk_rows=None, ws=None):
    r"""CAE+H: ``sum_n (1/c) sum_c ||J(x_n) - J(x_n + eps_cn)||_F^2`` and its exact gradient.

    Parameters
    ----------
    D, E : list of (n, h_i)
        Derivatives at the clean rows.
    D_tilde, E_tilde : list of (c, n, h_i)
        Derivatives at the ``c`` perturbed copies of every row.
    weights, scale, grad_weights, chunk_rows, ws
        As for :func:`deep_contractive_terms`; ``T = scale * total``.

    Returns
    -------
    total : float
    grad_A, grad_A_tilde : lists of (n, h_i) and (c, n, h_i), or None
        ``dT/dA_i`` at the clean and at the perturbed forward passes.

    ``J - J~ = (B - B~) W_0^T``, so the Gram form applies to ``Delta = B - B~``
    (``total = sum(S * G) / c`` with ``S = sum Delta^T Delta``); one layer:
    ``sum_j (D_j - D~_j)^2 s_j`` (``docs/derivations.md#higher-order-cae-cae-h``).
    """
    c, n, W0 = D_tilde[0].shape[0], D[0].shape[0], weights[0]
    need_grad = grad_weights is not None
    per_copy = scale / c                                     # T = scale sum_n (1/c) sum_c ...
    if len(D) == 1:
        s = np.einsum("ij,ij->j", W0, W0)
        delta = D[0][None] - D_tilde[0]                      # (c, n, k)
        delta_sq = np.einsum("cnk,cnk->k", delta, delta)
        total = (delta_sq @ s) / c
        if not need_grad:
            return total, None, None
        grad_weights[0] += W0 * ((2.0 * per_copy) * delta_sq)        # through s
        g = (2.0 * per_copy) * delta * s                     # dT/dD (each copy) = -dT/dD~
        return total, [g.sum(axis=0) * E[0]], [-g * E_tilde[0]]
    G = W0.T @ W0
    rows = chunk_rows or n
    S = np.zeros_like(G)                                     # sum Delta^T Delta
    grad_D = [np.empty_like(d) for d in D] if need_grad else None
    grad_Dt = [np.empty_like(d) for d in D_tilde] if need_grad else None
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        D_rows = [d[start:stop] for d in D]
        B, cache = code_side_forward(D_rows, weights, ws, tag="clean")
        if need_grad:
            B_dot = _buffer(ws, "B_dot", B.shape, B.dtype)
            B_dot.fill(0)
        for copy in range(c):
            Dt_rows = [d[copy, start:stop] for d in D_tilde]
            Bt, cache_t = code_side_forward(Dt_rows, weights, ws, tag="copy")
            delta = np.subtract(B, Bt, out=Bt)               # B - B~
            flat = delta.reshape(-1, delta.shape[2])
            S += flat.T @ flat
            if not need_grad:
                continue
            delta_G = np.matmul(delta, G, out=_buffer(ws, "BG", delta.shape, delta.dtype))
            delta_G *= 2.0 * per_copy                        # dT/dDelta
            B_dot += delta_G                                 # dT/dB  = +dT/dDelta
            np.negative(delta_G, out=delta_G)                # dT/dB~ = -dT/dDelta
            chunk = code_side_backward(delta_G, Dt_rows, weights, cache_t, grad_weights, ws)
            for g, part in zip(grad_Dt, chunk):
                g[copy, start:stop] = part
        if need_grad:
            chunk = code_side_backward(B_dot, D_rows, weights, cache, grad_weights, ws)
            for g, part in zip(grad_D, chunk):
                g[start:stop] = part
    total = np.sum(S * G) / c
    if not need_grad:
        return total, None, None
    grad_weights[0] += (2.0 * per_copy) * (W0 @ S)
    return (total, _times_second_derivative(grad_D, E),
            _times_second_derivative(grad_Dt, E_tilde))
