"""How well estimated tangents match the true tangents of a known manifold.

For data rendered from known factors (``npcae.datasets.sample_digit_factors`` /
``render_digits``) the true tangent space at each image ``x`` is known:
``T_x = span{dx/df_j}``, one derivative per continuous factor ``f_j``
(``npcae.datasets.digit_tangents``). A tangent *estimate* at ``x`` is another set
of directions ``u_1..u_k`` in pixel space: the leading right singular vectors of a
model's encoder Jacobian (:func:`npcae.analysis.tangent_directions`), the leading
left singular vectors of its reconstruction Jacobian
(:func:`reconstruction_tangent_directions`), local PCA of the nearest training
images (:func:`npcae.analysis.local_pca_tangents`) or, as the chance level, random
directions (:func:`random_directions`). The functions below compare the two
subspaces per point through their principal angles.

Principal angles
----------------
For subspaces ``U`` (dimension ``k``) and ``T`` (dimension ``m``) of ``R^d`` with
orthonormal bases ``Q_U`` (d, k) and ``Q_T`` (d, m), the principal angles
``0 <= theta_1 <= ... <= theta_p <= 90`` degrees, ``p = min(k, m)``, have cosines
equal to the singular values of ``Q_U^T Q_T`` (computed accurately at both ends by
:func:`npcae.analysis.subspace_angles`). With ``k <= m``, ``theta_i`` measures how
far the ``i``-th best direction of ``U`` is from ``T``: all zero iff ``U`` lies in
``T``; ``sum_i cos^2 theta_i = ||Q_T^T Q_U||_F^2`` is the part of ``U``'s unit
directions that ``T`` captures.

The *mean principal angle* of a method is the mean of all ``p`` angles over all
points, ``mean_{i, n} theta_i(x_n)``. Compare methods with the same ``k`` against
the same ``T``: a random ``k``-dimensional subspace of ``R^d`` is almost orthogonal
to a fixed ``m``-dimensional one when ``k + m << d`` (every angle near 90), a
perfect estimate gives 0.

This module is plain NumPy and never imports matplotlib.
"""
from __future__ import annotations

import numpy as np

from ._spectra import (_check_model, _check_X_for_model, leading_singular_vectors,
                       local_pca_tangents, subspace_angles, tangent_directions)
from ._validation import as_float_array, check_positive_int, check_random_state

__all__ = [
    "tangent_alignment",
    "random_directions",
    "reconstruction_tangent_directions",
    "jacobian_tangent_alignment",
    "compare_tangent_estimates",
    "summarize_angles",
]


def _as_batched(A, name):
    A = as_float_array(A, name)
    if A.ndim == 2:
        A = A[None]
    if A.ndim != 3:
        raise ValueError(f"{name} must have shape (n, k, d) (k directions of length d per "
                         f"point) or (k, d) for one point; got shape {A.shape}.")
    return A


def tangent_alignment(directions, true_tangents):
    """Principal angles, in degrees, between estimated and true tangent spaces per point.

    Parameters
    ----------
    directions : array_like, shape (n, k, d) or (k, d)
        Rows of ``directions[i]`` span the estimated tangent space at point ``i``
        (any linearly independent rows: they need not be orthonormal).
    true_tangents : array_like, shape (n, m, d) or (m, d)
        Rows of ``true_tangents[i]`` span the true tangent space at point ``i``,
        e.g. ``npcae.datasets.digit_tangents(factors)`` (one derivative per factor,
        any scale).

    Returns
    -------
    angles : ndarray of float64, shape (n, min(k, m))
        Principal angles ``theta_1 <= ... <= theta_p`` in degrees, each row
        ascending, in ``[0, 90]``. A 2-D pair of inputs still gives ``(1, p)``.
        Their mean over everything is the *mean principal angle* (see the module
        docstring); it does not depend on the scale or the basis of either set.

    Raises
    ------
    ValueError
        Mismatched shapes, or a set whose rows are (numerically) linearly dependent
        (its span would have fewer than ``k`` or ``m`` dimensions).
    """
    U = _as_batched(directions, "directions")
    T = _as_batched(true_tangents, "true_tangents")
    if U.shape[0] != T.shape[0] or U.shape[2] != T.shape[2]:
        raise ValueError(f"directions {U.shape} and true_tangents {T.shape} must have the "
                         f"same number of points n and the same dimension d: shapes "
                         f"(n, k, d) and (n, m, d).")
    return np.degrees(subspace_angles(U, T))


def random_directions(n, k, d, random_state=0, support=None):
    """Random tangent estimates: the chance level for :func:`tangent_alignment`.

    Parameters
    ----------
    n, k, d : int
        Number of points, directions per point, dimension.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the directions (default 0: the same on every call).
    support : array_like of bool, shape (n, d), optional
        Restrict point ``i``'s directions to the coordinates where ``support[i]`` is
        True (zero elsewhere), e.g. the pixels on a digit's anti-aliased edge
        ``(0 < x) & (x < 1)``, where all its true tangents live: a stronger chance
        level that knows where to look but not which way. Each row needs at least
        ``k`` True entries.

    Returns
    -------
    directions : ndarray of float64, shape (n, k, d)
        Independent standard Gaussian vectors (on the support) scaled to unit norm,
        so each ``directions[i]`` spans a uniformly random ``k``-dimensional
        subspace of ``R^d`` (of the support's coordinate subspace), with
        probability one.
    """
    n = check_positive_int(n, "n")
    k = check_positive_int(k, "k")
    d = check_positive_int(d, "d")
    if k > d:
        raise ValueError(f"k={k} random directions cannot be independent in d={d} "
                         f"dimensions; ask for k <= d.")
    mask = None
    if support is not None:
        mask = np.asarray(support)
        if mask.dtype != bool or mask.shape != (n, d):
            raise ValueError(f"support must be a boolean array of shape (n, d) = ({n}, {d}); "
                             f"got dtype {mask.dtype} and shape {mask.shape}.")
        few = np.flatnonzero(mask.sum(axis=1) < k)
        if few.size:
            raise ValueError(f"support row {few[0]} has {int(mask[few[0]].sum())} True "
                             f"entries, fewer than the k={k} directions asked for.")
    rng = check_random_state(random_state)
    V = rng.standard_normal((n, k, d))
    if mask is not None:
        V *= mask[:, None, :]
    V /= np.linalg.norm(V, axis=-1, keepdims=True)
    return V


def reconstruction_tangent_directions(model, X, n_directions=5):
    r"""Leading left singular vectors of the reconstruction Jacobian ``J_r = dr/dx``.

    For a one-hidden-layer model ``h = phi(x W + b)``, ``r = psi(h W_dec + c)``,

    .. math::

        J_r(x) = \operatorname{diag}(\psi'(o))\, W_{dec}^T\, \operatorname{diag}(\phi'(a))\, W^T
               = D(x)\, J_f(x),

    with ``a = x W + b`` and ``o = h W_dec + c``: the decoder Jacobian ``D`` (d, k)
    times the encoder Jacobian ``J_f`` (k, d). Its column space is the set of
    directions in which the reconstruction moves when ``x`` moves: the tangent
    plane of the learned manifold (the image of the decoder) as seen from ``x``.
    The leading *left* singular vectors are those directions, in image space, by
    decreasing gain; :func:`npcae.analysis.tangent_directions` gives the leading
    *right* singular vectors of ``J_f`` instead (input directions the code is most
    sensitive to). ``D`` carries ``psi'(o)``, which for a sigmoid output is large
    only where the reconstruction is uncertain (a digit's edges), so these
    directions are localised on the reconstructed digit.

    Computation: with the thin QR factorisation ``W = Q R`` (``Q`` (d, p)
    orthonormal columns, ``R`` (p, k), ``p = min(d, k)``), ``J_r = B Q^T`` with
    ``B = diag(psi') W_dec^T diag(phi') R^T`` (d, p); ``Q^T`` has orthonormal rows,
    so the left singular vectors and singular values of ``J_r`` are those of
    ``B``: ``O(d k p)`` per point instead of ``O(d^2 k)``. Float64 throughout.

    Parameters
    ----------
    model : fitted one-hidden-layer model
        A :class:`npcae.ContractiveAutoencoder` (any ``lam``, tied or not, any
        activations).
    X : array_like, shape (n, d)
    n_directions : int
        At most ``min(d, k)``.

    Returns
    -------
    directions : ndarray of float64, shape (n, n_directions, d)
        Orthonormal per point, sign-normalised (largest-magnitude entry positive).
    svals : ndarray of float64, shape (n, n_directions)
        The matching singular values of ``J_r(x)``, descending.
    """
    params = getattr(model, "params", None)
    needs = ("_phi", "_psi", "_decoder_weights")
    if not (isinstance(params, dict) and {"W", "b", "c"} <= set(params)
            and all(hasattr(model, a) for a in needs)):
        raise TypeError(f"reconstruction_tangent_directions needs a fitted one-hidden-layer "
                        f"model (npcae.ContractiveAutoencoder); got "
                        f"{type(model).__name__}. For other models use "
                        f"npcae.analysis.tangent_directions (encoder Jacobian).")
    X = _check_X_for_model(model, X).astype(np.float64, copy=False)
    n_directions = check_positive_int(n_directions, "n_directions")
    W = np.asarray(params["W"], dtype=np.float64)
    Wd = np.asarray(model._decoder_weights(), dtype=np.float64)       # (k, d)
    b = np.asarray(params["b"], dtype=np.float64)
    c = np.asarray(params["c"], dtype=np.float64)
    d, k = W.shape
    if n_directions > min(d, k):
        raise ValueError(f"n_directions={n_directions} exceeds min(d, k) = {min(d, k)}; "
                         f"ask for at most {min(d, k)}.")
    phi, psi = model._phi, model._psi
    _, R = np.linalg.qr(W)                                             # (p, k)
    n = X.shape[0]
    directions = np.empty((n, n_directions, d))
    svals = np.empty((n, n_directions))
    step = max(1, 2 ** 23 // (d * max(d, k)))                       # ~64 MB per array
    for s0 in range(0, n, step):
        Xb = X[s0:s0 + step]
        A = Xb @ W + b
        H = phi.value(A)
        O = H @ Wd + c
        dphi = phi.derivative(A, H)                                     # (m, k)
        dpsi = psi.derivative(O, psi.value(O))                          # (m, d)
        # B[m] = diag(dpsi[m]) Wd^T diag(dphi[m]) R^T  -> (m, d, p)
        B = np.einsum("kd,mk,pk->mdp", Wd, dphi, R, optimize=True) * dpsi[:, :, None]
        directions[s0:s0 + step], svals[s0:s0 + step] = leading_singular_vectors(
            B, n_directions, side="left")
    return directions, svals


def _true_tangents_for(X, true_tangents, n_directions):
    """``true_tangents`` as ``(n, m, d)`` matching ``X``, and the number of directions to compare
    (``n_directions``, default ``m``)."""
    T = _as_batched(true_tangents, "true_tangents")
    if T.shape[0] != X.shape[0] or T.shape[2] != X.shape[1]:
        raise ValueError(f"true_tangents must have shape (n, m, d) = ({X.shape[0]}, m, "
                         f"{X.shape[1]}) to match X; got {T.shape}.")
    k = T.shape[1] if n_directions is None else check_positive_int(n_directions,
                                                                     "n_directions")
    return T, k


def jacobian_tangent_alignment(model, X, true_tangents, n_directions=None, batch_size=256):
    """Principal angles between a model's leading Jacobian directions and true tangents.

    The estimate at ``x`` is the span of the ``n_directions`` leading right
    singular vectors of the encoder Jacobian ``J_f(x)`` (the input directions the
    code is most sensitive to, :func:`npcae.analysis.tangent_directions`).

    Parameters
    ----------
    model : fitted model with ``jacobian(X) -> (n, k, d)``
    X : array_like, shape (n, d)
        The points (e.g. rendered digits).
    true_tangents : array_like, shape (n, m, d)
        True tangents at the same points.
    n_directions : int or None
        Leading directions compared (default ``m``: the same dimension as the true
        tangent space).
    batch_size : int
        Jacobians held in memory at once.

    Returns
    -------
    angles : ndarray of float64, shape (n, min(n_directions, m))
        As :func:`tangent_alignment`, in degrees.
    """
    _check_model(model)
    X = _check_X_for_model(model, X)
    T, k = _true_tangents_for(X, true_tangents, n_directions)
    U, _ = tangent_directions(model, X, n_directions=k, batch_size=batch_size)
    return tangent_alignment(U, T)


def compare_tangent_estimates(X, true_tangents, models=None, X_ref=None, n_directions=None,
                              n_neighbors=20, random_state=0):
    """Principal angles to the true tangents for several estimates side by side.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Points at which the tangents are compared (held-out images).
    true_tangents : array_like, shape (n, m, d)
        True tangents at ``X``.
    models : dict of str -> fitted model, optional
        Each model's ``n_directions`` leading Jacobian directions
        (:func:`jacobian_tangent_alignment`).
    X_ref : array_like, shape (n_ref, d), optional
        Reference sample (the training set) for local PCA of the ``n_neighbors``
        nearest reference points of each ``x`` (:func:`npcae.analysis.local_pca_tangents`);
        reported as ``"local PCA"``. Skipped when None.
    n_directions : int or None
        Directions per estimate, the same for all (default ``m``).
    n_neighbors : int
        Neighbourhood size of local PCA.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the ``"random"`` directions (always included).

    Returns
    -------
    angles : dict of str -> ndarray, shape (n, min(n_directions, m))
        Principal angles in degrees per estimate: the models in the given order,
        then ``"local PCA"`` (if ``X_ref``), then ``"random"``.
    """
    X = as_float_array(X, "X", ndim=2)
    T, k = _true_tangents_for(X, true_tangents, n_directions)
    out = {}
    for name, model in (models or {}).items():
        out[str(name)] = jacobian_tangent_alignment(model, X, T, n_directions=k)
    if X_ref is not None:
        U = local_pca_tangents(X_ref, X, n_neighbors=n_neighbors, n_components=k)
        out["local PCA"] = tangent_alignment(U, T)
    n, d = X.shape
    out["random"] = tangent_alignment(random_directions(n, k, d, random_state), T)
    return out


def summarize_angles(angles):
    """Summary of principal angles (degrees) from :func:`tangent_alignment`.

    Parameters
    ----------
    angles : array_like, shape (n, p)
        Principal angles per point, each row ascending.

    Returns
    -------
    summary : dict
        ``"mean"``: the mean principal angle (over points and angles);
        ``"median"``: median over points of each point's mean angle;
        ``"per_index"``: ndarray (p,), mean over points of ``theta_i`` (smallest
        first); ``"smallest"``, ``"largest"``: means of ``theta_1`` and ``theta_p``;
        ``"n_points"``, ``"n_angles"``.
    """
    A = as_float_array(angles, "angles", ndim=2).astype(np.float64, copy=False)
    if np.any(A < 0) or np.any(A > 90 + 1e-9):
        raise ValueError("angles must be principal angles in degrees, within [0, 90]; "
                         f"got values in [{A.min():g}, {A.max():g}] (radians? multiply by "
                         f"180/pi).")
    per_index = A.mean(axis=0)
    return {
        "mean": float(A.mean()),
        "median": float(np.median(A.mean(axis=1))),
        "per_index": per_index,
        "smallest": float(per_index[0]),
        "largest": float(per_index[-1]),
        "n_points": int(A.shape[0]),
        "n_angles": int(A.shape[1]),
    }
