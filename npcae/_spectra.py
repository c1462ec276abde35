"""Geometry of a trained encoder: Jacobian spectra, tangents, contraction curves.

Everything here is plain NumPy and works on any fitted model that offers

* ``model.jacobian(X) -> (n, k, d)``: the encoder Jacobian ``J_f(x) = dh/dx`` at
  each row of ``X`` (rows of ``J_f`` are hidden units, columns are inputs);
* ``model.transform(X) -> (n, k)``: the code ``h = f(x)``;
* optionally ``model.n_features_in_``, used to check the width of ``X``.

A contractive auto-encoder (Rifai et al., 2011) penalises ``||J_f(x)||_F^2``, so
most singular values of ``J_f(x)`` are driven towards zero and only a few stay
large. The right singular vectors belonging to the large ones are the input
directions the code is sensitive to: the learned tangent space of the data
manifold at ``x``. The functions below measure exactly that, and give the
reference quantities (local PCA tangents, principal angles) needed to compare a
learned tangent space with the data or with a known true manifold.

This module never imports matplotlib; see :mod:`npcae.plotting` for figures.
"""
from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_n_features, check_positive_int, \
    check_positive_1d, check_random_state

__all__ = [
    "jacobian_spectrum",
    "tangent_directions",
    "contraction_ratio",
    "local_pca_tangents",
    "subspace_angles",
    "summarize_spectrum",
]

# Upper bound on the size of one batch of Jacobians, (batch, k, d), in bytes.
_JACOBIAN_BUDGET_BYTES = 128 * 2 ** 20


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _check_model(model, needs=("jacobian",)):
    for attr in needs:
        if not callable(getattr(model, attr, None)):
            raise TypeError(f"model must have a callable .{attr}() method (a fitted npcae "
                            f"model); got {type(model).__name__}.")


def _check_X_for_model(model, X, name="X"):
    X = as_float_array(X, name, ndim=2)
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None:
        check_n_features(X, int(n_in), name)
    return X


def _hidden_size_hint(model):
    """Number of hidden units if it can be read off the parameters, else None."""
    n_codes = getattr(model, "_n_codes", None)
    if callable(n_codes):                       # the layered models: the code size
        try:
            return int(n_codes())
        except (TypeError, ValueError, AttributeError):
            pass
    params = getattr(model, "params", None)
    if isinstance(params, dict):
        W = params.get("W")
        if W is not None and np.ndim(W) == 2:
            return int(np.shape(W)[1])
    return None


def _jacobian_batches(model, X, batch_size):
    """Yield ``(start, stop, J)`` with ``J = model.jacobian(X[start:stop])``.

    The batch is the smaller of ``batch_size`` and what fits in
    ``_JACOBIAN_BUDGET_BYTES`` (when the hidden size is known), so memory stays
    bounded for wide encoders on 784-pixel images.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    n, d = X.shape
    k = _hidden_size_hint(model)
    if k is not None:
        per_sample = max(1, k * d * X.dtype.itemsize)
        batch_size = max(1, min(batch_size, _JACOBIAN_BUDGET_BYTES // per_sample))
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        J = np.asarray(model.jacobian(X[start:stop]))
        if J.ndim != 3 or J.shape[0] != stop - start or J.shape[2] != d:
            raise ValueError(f"model.jacobian returned shape {J.shape} for {stop - start} "
                             f"samples with {d} features; expected (n, k, d) = "
                             f"({stop - start}, k, {d}).")
        if J.dtype.kind != "f":
            J = J.astype(np.float64)
        yield start, stop, J


def _sign_normalise(V):
    """Flip each vector (last axis) so that its largest-magnitude entry is positive.

    Ties are broken by the first such entry, so the result is deterministic.
    """
    idx = np.argmax(np.abs(V), axis=-1)
    pivot = np.take_along_axis(V, idx[..., None], axis=-1)
    signs = np.where(pivot < 0, -1.0, 1.0).astype(V.dtype)
    return V * signs


def leading_singular_vectors(J, n_directions, side="right", rtol=1e-6):
    """Leading singular values and singular vectors of each matrix in a stack.

    Computed from the smaller Gram matrix: for ``J`` (a, b) with ``a <= b``, the
    eigenpairs ``(s^2, u)`` of ``J J^T`` (a, a) give the right singular vectors
    ``v = J^T u / s``; with ``a > b``, those of ``J^T J`` (b, b) are ``v`` itself.
    Left vectors are the right ones of ``J^T``. This is about three times faster than a
    full SVD for a (512, 784) Jacobian. The Gram matrix squares the condition number,
    which costs accuracy only for singular values far below the largest; a point whose
    requested singular values fall below ``rtol * s_1`` (or is all zero) is recomputed
    with ``numpy.linalg.svd``.

    Parameters
    ----------
    J : ndarray, shape (m, a, b)
        Computed in float64 whatever its dtype.
    n_directions : int
        How many leading pairs, at most ``min(a, b)``.
    side : {"right", "left"}
        Right singular vectors (length ``b``) or left ones (length ``a``).

    Returns
    -------
    vectors : ndarray of float64, shape (m, n_directions, b or a)
        Orthonormal per matrix, by decreasing singular value, sign-normalised
        (largest-magnitude entry positive).
    svals : ndarray of float64, shape (m, n_directions)
    """
    J = np.asarray(J, dtype=np.float64)
    if side == "left":
        J = np.swapaxes(J, 1, 2)
    elif side != "right":
        raise ValueError(f"side must be 'right' or 'left'; got {side!r}.")
    m, a, b = J.shape
    k = n_directions
    if a <= b:
        w, U = np.linalg.eigh(J @ np.swapaxes(J, 1, 2))              # ascending
        U, w = U[:, :, ::-1][:, :, :k], w[:, ::-1][:, :k]
        svals = np.sqrt(np.maximum(w, 0.0))
        V = np.swapaxes(U, 1, 2) @ J                                  # (m, k, b) = s v^T
        np.divide(V, svals[:, :, None], out=V, where=svals[:, :, None] > 0)
    else:
        w, Vc = np.linalg.eigh(np.swapaxes(J, 1, 2) @ J)
        V, w = np.swapaxes(Vc[:, :, ::-1][:, :, :k], 1, 2), w[:, ::-1][:, :k]
        svals = np.sqrt(np.maximum(w, 0.0))
    poor = np.any(svals <= rtol * svals[:, :1], axis=1) | (svals[:, 0] == 0)
    if np.any(poor):
        _, s_exact, Vt = np.linalg.svd(J[poor], full_matrices=False)
        V[poor], svals[poor] = Vt[:, :k, :], s_exact[:, :k]
    return _sign_normalise(V), svals


# ---------------------------------------------------------------------------
# Jacobian spectrum and tangents
# ---------------------------------------------------------------------------

def jacobian_spectrum(model, X, batch_size=256):
    """Singular values of the encoder Jacobian at every sample.

    Parameters
    ----------
    model : fitted model
        Must provide ``model.jacobian(X) -> (n, k, d)``.
    X : array_like, shape (n, d)
        Points at which to evaluate ``J_f``.
    batch_size : int
        Maximum number of Jacobians held in memory at once. It is lowered
        automatically so one batch of ``(batch, k, d)`` stays under ~128 MB
        when the hidden size can be read from ``model.params["W"]``.

    Returns
    -------
    svals : ndarray, shape (n, min(k, d))
        Singular values of ``J_f(x_i)`` in each row, in descending order. Their
        squares sum to ``||J_f(x_i)||_F^2``, the CAE penalty at ``x_i``.
    """
    _check_model(model)
    X = _check_X_for_model(model, X)
    out = None
    for start, stop, J in _jacobian_batches(model, X, batch_size):
        s = np.linalg.svd(J, compute_uv=False)
        if out is None:
            out = np.empty((X.shape[0], s.shape[1]), dtype=s.dtype)
        out[start:stop] = s
    return out


def tangent_directions(model, X, n_directions=5, batch_size=256):
    """Leading right singular vectors of the encoder Jacobian: learned tangents.

    The right singular vectors of ``J_f(x)`` with the largest singular values
    are the input-space directions along which the code changes fastest. For a
    contractive auto-encoder these span the learned tangent plane of the data
    manifold at ``x`` (Rifai et al., 2011, "The manifold tangent classifier").

    Parameters
    ----------
    model : fitted model
        Must provide ``model.jacobian(X) -> (n, k, d)``.
    X : array_like, shape (n, d)
        Points at which to compute the tangents.
    n_directions : int
        Number of leading directions to return, at most ``min(k, d)``.
    batch_size : int
        Maximum number of Jacobians held in memory at once (see
        :func:`jacobian_spectrum`).

    Returns
    -------
    tangents : ndarray, shape (n, n_directions, d)
        ``tangents[i, j]`` is the unit-norm right singular vector of
        ``J_f(x_i)`` for its ``j``-th largest singular value; the directions of
        one point are mutually orthogonal. Each vector's sign is fixed so that
        its largest-magnitude entry is positive.
    svals : ndarray, shape (n, n_directions)
        The matching singular values, descending.
    """
    _check_model(model)
    X = _check_X_for_model(model, X)
    n_directions = check_positive_int(n_directions, "n_directions")
    tangents = svals = None
    for start, stop, J in _jacobian_batches(model, X, batch_size):
        m = min(J.shape[1], J.shape[2])
        if n_directions > m:
            raise ValueError(f"n_directions={n_directions} exceeds min(k, d) = {m} for a "
                             f"Jacobian of shape (k, d) = {J.shape[1:]}; ask for at most "
                             f"{m}.")
        if tangents is None:
            tangents = np.empty((X.shape[0], n_directions, X.shape[1]), dtype=J.dtype)
            svals = np.empty((X.shape[0], n_directions), dtype=J.dtype)
        for s0 in range(0, J.shape[0], 32):                # float64 copies of 32 at a time
            V, s = leading_singular_vectors(J[s0:s0 + 32], n_directions, "right")
            tangents[start + s0:start + s0 + len(V)] = V
            svals[start + s0:start + s0 + len(V)] = s
    return tangents, svals


# ---------------------------------------------------------------------------
# contraction curves
# ---------------------------------------------------------------------------

def contraction_ratio(model, X, radii, n_directions=10, random_state=0, batch_size=4096,
                      clip=None):
    """Contraction curve: how much the encoder shrinks isotropic perturbations.

    For every radius ``r`` this returns

        mean over i and u of ``||f(x_i + r u) - f(x_i)|| / r``

    with ``u`` drawn uniformly on the unit sphere of input space
    (``n_directions`` draws per point), i.e. the ratio of distances in code
    space to distances in input space at scale ``r`` (Rifai et al., 2011). A
    ratio below 1 means the encoder contracts at that scale. As ``r -> 0`` it
    tends to the mean of ``||J_f(x) u||``, roughly ``||J_f(x)||_F / sqrt(d)``.

    Parameters
    ----------
    model : fitted model
        Must provide ``model.transform(X) -> (n, k)``.
    X : array_like, shape (n, d)
        Anchor points.
    radii : array_like of float, shape (n_radii,)
        Positive perturbation sizes (Euclidean norm in input space).
    n_directions : int
        Random directions per point. The same directions are reused for every
        radius, so the curve is smooth in ``r``.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the random directions (default 0: the same directions on
        every call). The result depends on ``random_state`` only, not on
        ``batch_size``. A ``Generator`` or ``RandomState`` is advanced by the
        draws.
    batch_size : int
        Approximate number of perturbed inputs passed to ``model.transform``
        per call (a whole point's ``n_directions`` perturbations always go
        together).
    clip : (float, float) or None
        Clip every perturbed input into ``[low, high]`` — needed for models
        that only accept inputs in a box, e.g. ``clip=(0, 1)`` for a
        cross-entropy (``loss="bce"``) model on pixel intensities. The ratio
        then divides by the actual displacement ``||x' - x||`` (at most
        ``r``) instead of ``r``, and perturbations clipped back onto ``x``
        itself are left out of the mean.

    Returns
    -------
    ratios : ndarray, shape (n_radii,)
        Mean contraction ratio for each radius, as float64.

    Notes
    -----
    Perturbed inputs are cast to ``X``'s dtype. With a float32 model and very
    small ``r`` the difference ``f(x + r u) - f(x)`` loses precision; pass
    float64 data (and model) to probe radii much below ~1e-3.
    """
    _check_model(model, needs=("transform",))
    X = _check_X_for_model(model, X)
    n_directions = check_positive_int(n_directions, "n_directions")
    batch_size = check_positive_int(batch_size, "batch_size")
    radii_arr = check_positive_1d(radii, "radii", "perturbation radii")
    if clip is not None:
        try:
            lo, hi = (float(v) for v in clip)
        except (TypeError, ValueError):
            raise ValueError(f"clip must be None or a (low, high) pair; got {clip!r}.") from None
        if not lo < hi:
            raise ValueError(f"clip must satisfy low < high; got {clip!r}.")
    rng = check_random_state(random_state)
    n, d = X.shape
    pts_per_batch = max(1, batch_size // n_directions)
    totals = np.zeros(radii_arr.size, dtype=np.float64)
    counts = np.zeros(radii_arr.size, dtype=np.int64)
    for start in range(0, n, pts_per_batch):
        Xb = X[start:start + pts_per_batch]
        nb = Xb.shape[0]
        # Sequential draws from one Generator concatenate exactly, so this equals
        # a single (n, n_directions, d) draw whatever the batch size.
        U = rng.standard_normal((nb, n_directions, d))
        norms = np.linalg.norm(U, axis=-1, keepdims=True)
        U /= np.where(norms > 0, norms, 1.0)
        H0 = np.asarray(model.transform(Xb), dtype=np.float64)
        if H0.ndim != 2 or H0.shape[0] != nb:
            raise ValueError(f"model.transform returned shape {H0.shape} for {nb} samples; "
                             f"expected (n, k).")
        for ir, r in enumerate(radii_arr):
            Xp = (Xb[:, None, :] + r * U).astype(X.dtype, copy=False)
            if clip is None:
                step = np.full((nb, n_directions), r)
            else:
                np.clip(Xp, lo, hi, out=Xp)
                step = np.linalg.norm(Xp.astype(np.float64) - Xb[:, None, :], axis=-1)
            try:
                Hp = model.transform(Xp.reshape(nb * n_directions, d))
            except ValueError as exc:
                if clip is not None:
                    raise
                raise ValueError(f"model.transform rejected inputs perturbed by r={r:g} "
                                 f"({exc}). If the model only accepts inputs in a box, "
                                 f"pass e.g. clip=(0, 1).") from exc
            Hp = np.asarray(Hp, dtype=np.float64).reshape(nb, n_directions, -1)
            dist = np.linalg.norm(Hp - H0[:, None, :], axis=-1)
            ok = step > 0
            totals[ir] += np.sum(dist[ok] / step[ok])
            counts[ir] += int(ok.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


# ---------------------------------------------------------------------------
# reference tangents and subspace comparison
# ---------------------------------------------------------------------------

def _nearest_neighbours(X_ref, X_query, n_neighbors, batch_size=1024):
    """Indices (n_query, n_neighbors) of the nearest rows of X_ref, closest first."""
    ref_sq = np.einsum("ij,ij->i", X_ref, X_ref)
    out = np.empty((X_query.shape[0], n_neighbors), dtype=np.intp)
    for start in range(0, X_query.shape[0], batch_size):
        Q = X_query[start:start + batch_size]
        # ||q - r||^2 = ||q||^2 + ||r||^2 - 2 q.r ; ||q||^2 does not change the ranking
        D = ref_sq[None, :] - 2.0 * (Q @ X_ref.T)
        if n_neighbors < X_ref.shape[0]:
            part = np.argpartition(D, n_neighbors - 1, axis=1)[:, :n_neighbors]
        else:
            part = np.broadcast_to(np.arange(X_ref.shape[0]), D.shape).copy()
        order = np.argsort(np.take_along_axis(D, part, axis=1), axis=1, kind="stable")
        out[start:start + Q.shape[0]] = np.take_along_axis(part, order, axis=1)
    return out


def local_pca_tangents(X_ref, X_query, n_neighbors=20, n_components=2,
                       return_variance=False, batch_size=1024):
    """Tangent estimate from PCA of each query point's nearest neighbours.

    Parameters
    ----------
    X_ref : array_like, shape (n_ref, d)
        Reference sample of the data manifold (e.g. the training set).
    X_query : array_like, shape (n_query, d)
        Points at which to estimate the tangent space. A query point that is
        also in ``X_ref`` counts as one of its own neighbours.
    n_neighbors : int
        Neighbourhood size, ``2 <= n_neighbors <= n_ref``.
    n_components : int
        Number of principal directions, at most ``min(n_neighbors - 1, d)``
        (``n_neighbors`` centred points span at most ``n_neighbors - 1``
        directions).
    return_variance : bool
        Also return the variance along each direction.
    batch_size : int
        Query points per block of the (vectorised) squared-distance matrix.

    Returns
    -------
    tangents : ndarray, shape (n_query, n_components, d)
        Orthonormal principal directions of each neighbourhood, by decreasing
        variance, sign-normalised like :func:`tangent_directions`.
    variances : ndarray, shape (n_query, n_components)
        Only if ``return_variance``: the neighbourhood variance along each
        direction (divisor ``n_neighbors - 1``).
    """
    X_ref = as_float_array(X_ref, "X_ref", ndim=2)
    X_query = as_float_array(X_query, "X_query", ndim=2)
    if X_query.shape[1] != X_ref.shape[1]:
        raise ValueError(f"X_query has {X_query.shape[1]} features but X_ref has "
                         f"{X_ref.shape[1]}; both must be (n_samples, d) with the same d.")
    n_neighbors = check_positive_int(n_neighbors, "n_neighbors")
    n_components = check_positive_int(n_components, "n_components")
    batch_size = check_positive_int(batch_size, "batch_size")
    n_ref, d = X_ref.shape
    if not 2 <= n_neighbors <= n_ref:
        raise ValueError(f"n_neighbors must be between 2 and the number of reference "
                         f"points ({n_ref}); got {n_neighbors}.")
    if n_components > min(n_neighbors - 1, d):
        raise ValueError(f"n_components={n_components} is too large: {n_neighbors} "
                         f"neighbours in {d} dimensions span at most "
                         f"{min(n_neighbors - 1, d)} directions.")
    dtype = np.result_type(X_ref.dtype, X_query.dtype)
    X_ref = X_ref.astype(dtype, copy=False)
    X_query = X_query.astype(dtype, copy=False)
    nq = X_query.shape[0]
    tangents = np.empty((nq, n_components, d), dtype=dtype)
    variances = np.empty((nq, n_components), dtype=dtype)
    for start in range(0, nq, batch_size):
        stop = min(nq, start + batch_size)
        idx = _nearest_neighbours(X_ref, X_query[start:stop], n_neighbors, batch_size)
        N = X_ref[idx]                                   # (b, K, d)
        N = N - N.mean(axis=1, keepdims=True)
        _, s, Vt = np.linalg.svd(N, full_matrices=False)  # Vt: (b, min(K, d), d)
        tangents[start:stop] = _sign_normalise(Vt[:, :n_components, :])
        variances[start:stop] = s[:, :n_components] ** 2 / (n_neighbors - 1)
    if return_variance:
        return tangents, variances
    return tangents


def _orthonormal_columns(A, name, rtol):
    """Orthonormal basis (…, d, p) of the row-space of A (…, p, d), via SVD."""
    U, s, _ = np.linalg.svd(np.swapaxes(A, -1, -2), full_matrices=False)
    smax = s[..., :1]
    if np.any(s[..., -1:] <= rtol * np.maximum(smax, np.finfo(s.dtype).tiny)):
        raise ValueError(f"the rows of {name} are (numerically) linearly dependent, so "
                         f"they do not span a {A.shape[-2]}-dimensional space; pass a "
                         f"full-rank set of directions.")
    return U


def subspace_angles(A, B):
    """Principal angles between the row-spaces of ``A`` and ``B``.

    Parameters
    ----------
    A : array_like, shape (p, d) or (n, p, d)
        Rows spanning the first subspace (need not be orthonormal, must be
        linearly independent). A leading batch axis compares ``n`` pairs at
        once, e.g. learned tangents against local-PCA tangents per point.
    B : array_like, shape (q, d) or (n, q, d)
        Rows spanning the second subspace, same ``d`` (and ``n``).

    Returns
    -------
    angles : ndarray, shape (min(p, q),) or (n, min(p, q))
        Principal angles in radians, ascending, in ``[0, pi/2]``. ``0`` means a
        shared direction, ``pi/2`` an orthogonal one.

    Notes
    -----
    Both row-spaces are orthonormalised by SVD. With ``Qa``, ``Qb`` the bases
    (``p >= q``), the singular values of ``Qa^T Qb`` are the cosines of the
    angles and those of ``Qb - Qa Qa^T Qb`` their sines; small angles are taken
    from the sines and large ones from the cosines, so both ends are accurate.
    """
    A = as_float_array(A, "A")
    B = as_float_array(B, "B")
    if A.ndim not in (2, 3) or B.ndim != A.ndim:
        raise ValueError(f"A and B must both be 2-D (p, d) or both 3-D (n, p, d); got "
                         f"shapes {A.shape} and {B.shape}.")
    if A.shape[-1] != B.shape[-1]:
        raise ValueError(f"A and B must live in the same space (same last dimension); got "
                         f"shapes {A.shape} and {B.shape}.")
    if A.ndim == 3 and A.shape[0] != B.shape[0]:
        raise ValueError(f"batched A and B must have the same leading size; got shapes "
                         f"{A.shape} and {B.shape}.")
    d = A.shape[-1]
    if A.shape[-2] > d or B.shape[-2] > d:
        raise ValueError(f"cannot have more than d={d} independent rows; got shapes "
                         f"{A.shape} and {B.shape}.")
    dtype = np.result_type(A.dtype, B.dtype, np.float64)
    A = A.astype(dtype, copy=False)
    B = B.astype(dtype, copy=False)
    rtol = max(A.shape[-2], B.shape[-2], d) * np.finfo(dtype).eps * 10
    Qa = _orthonormal_columns(A, "A", rtol)
    Qb = _orthonormal_columns(B, "B", rtol)
    if Qa.shape[-1] < Qb.shape[-1]:
        Qa, Qb = Qb, Qa
    M = np.swapaxes(Qa, -1, -2) @ Qb                      # (..., p, q)
    cos = np.linalg.svd(M, compute_uv=False)               # descending -> angles ascending
    R = Qb - Qa @ M                                        # (..., d, q)
    sin = np.linalg.svd(R, compute_uv=False)[..., ::-1]    # ascending -> angles ascending
    cos = np.clip(cos, 0.0, 1.0)
    sin = np.clip(sin, 0.0, 1.0)
    return np.where(sin ** 2 <= 0.5, np.arcsin(sin), np.arccos(cos))


# ---------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------

def summarize_spectrum(svals, rank_threshold=0.1, relative=True):
    """Summary statistics of Jacobian singular values.

    Parameters
    ----------
    svals : array_like, shape (n, m) or (m,)
        Singular values per point, as returned by :func:`jacobian_spectrum`
        (each row descending). A 1-D input is one point.
    rank_threshold : float
        Singular values above this count towards the effective rank.
    relative : bool
        If True (default) the threshold is relative to each point's largest
        singular value (``s_i > rank_threshold * s_1``); otherwise absolute.

    Returns
    -------
    summary : dict
        ``"n_points"`` : int.
        ``"mean_singular_values"`` : ndarray (m,), mean over points per index.
        ``"fraction_below_one"`` : float, fraction of all singular values < 1
        (directions the encoder contracts).
        ``"mean_frobenius_norm"`` : float, mean over points of
        ``||J||_F = sqrt(sum_i s_i^2)``.
        ``"mean_frobenius_norm_sq"`` : float, mean of ``||J||_F^2`` — the CAE
        penalty averaged over the points, equal to ``model.loss_terms(X)["contractive"]``
        (which excludes ``lam``).
        ``"effective_rank"`` : float, mean over points of the number of
        singular values above the threshold.
        ``"entropy_effective_rank"`` : float, mean of ``exp(H(p))`` with
        ``p = s / sum(s)`` (threshold-free; 1 for one dominant direction, m for
        a flat spectrum).
        ``"rank_threshold"``, ``"relative"`` : the settings used.
    """
    s = as_float_array(svals, "svals")
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2:
        raise ValueError(f"svals must be 1-D (m,) or 2-D (n, m); got shape {s.shape}.")
    if np.any(s < 0):
        raise ValueError("svals must be non-negative (they are singular values).")
    thr = float(rank_threshold)
    if not np.isfinite(thr) or thr < 0:
        raise ValueError(f"rank_threshold must be a finite number >= 0; got {rank_threshold!r}.")
    s = s.astype(np.float64, copy=False)
    fro_sq = np.sum(s ** 2, axis=1)
    smax = s.max(axis=1, keepdims=True)
    cut = thr * smax if relative else thr
    rank = np.sum(s > cut, axis=1)
    total = s.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(total > 0, s / np.where(total > 0, total, 1.0), 0.0)
        ent = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    ent_rank = np.where(total[:, 0] > 0, np.exp(ent), 0.0)
    return {
        "n_points": int(s.shape[0]),
        "mean_singular_values": s.mean(axis=0),
        "fraction_below_one": float(np.mean(s < 1.0)),
        "mean_frobenius_norm": float(np.mean(np.sqrt(fro_sq))),
        "mean_frobenius_norm_sq": float(np.mean(fro_sq)),
        "effective_rank": float(np.mean(rank)),
        "entropy_effective_rank": float(np.mean(ent_rank)),
        "rank_threshold": thr,
        "relative": bool(relative),
    }

