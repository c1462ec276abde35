"""Toy manifolds: points on a 1-D curve in ``ambient_dim`` dimensions, with the true
tangents (for checking what a contractive encoder learns)."""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_int, check_random_state

__all__ = ["make_manifold"]


_MANIFOLDS = ("circle", "spiral", "sine")


def _curve(kind, t):
    """Points (n, 2) and derivative d/dt (n, 2) of the planar curve ``kind`` at ``t``."""
    if kind == "circle":
        p = np.column_stack([np.cos(t), np.sin(t)])
        dp = np.column_stack([-np.sin(t), np.cos(t)])
    elif kind == "spiral":
        # Archimedean spiral r = t / (3 pi), t in [pi/2, 3 pi]: radius from 1/6 to 1
        r, dr = t / (3 * np.pi), 1.0 / (3 * np.pi)
        p = np.column_stack([r * np.cos(t), r * np.sin(t)])
        dp = np.column_stack([dr * np.cos(t) - r * np.sin(t), dr * np.sin(t) + r * np.cos(t)])
    else:  # sine: x = t in [-1, 1], y = 0.5 sin(pi t)
        p = np.column_stack([t, 0.5 * np.sin(np.pi * t)])
        dp = np.column_stack([np.ones_like(t), 0.5 * np.pi * np.cos(np.pi * t)])
    return p, dp


_T_RANGE = {"circle": (0.0, 2 * np.pi), "spiral": (0.5 * np.pi, 3 * np.pi), "sine": (-1.0, 1.0)}


def make_manifold(kind="circle", n_samples=500, *, ambient_dim=2, noise=0.0,
                  random_state=None, dtype=np.float64):
    """Points on a 1-D curve, with the curve parameter and the true unit tangents.

    Curves (in the plane, before embedding), parameter ``t`` drawn uniformly:

    * ``"circle"``: ``(cos t, sin t)``, ``t`` in [0, 2 pi).
    * ``"spiral"``: ``r (cos t, sin t)`` with ``r = t / (3 pi)``, ``t`` in
      [pi/2, 3 pi] (radius 1/6 to 1, 1.25 turns).
    * ``"sine"``: ``(t, 0.5 sin(pi t))``, ``t`` in [-1, 1].

    For ``ambient_dim > 2`` the plane is mapped into ``R^ambient_dim`` by a random
    orthonormal 2-frame ``Q`` (drawn from ``random_state``), ``x = Q @ p``, so the curve is
    not axis-aligned. Noise is isotropic Gaussian in all ambient dimensions.

    Parameters
    ----------
    kind : {"circle", "spiral", "sine"}
    n_samples : int
    ambient_dim : int
        Dimension of the data, >= 2.
    noise : float
        Standard deviation of the Gaussian noise added to ``X`` (not to the tangents).
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of randomness (parameters, frame, noise); an int gives reproducible
        output, as in :func:`make_digits`.
    dtype : float dtype

    Returns
    -------
    X : ndarray, shape (n_samples, ambient_dim)
        Points, noise included.
    t : ndarray, shape (n_samples,)
        Curve parameter of each point.
    tangents : ndarray, shape (n_samples, ambient_dim)
        Unit tangent of the noise-free curve at ``t``, oriented in the direction of
        increasing ``t``.
    """
    if kind not in _MANIFOLDS:
        raise ValueError(f"kind must be one of {list(_MANIFOLDS)!r}; got {kind!r}.")
    n = check_positive_int(n_samples, "n_samples")
    d = check_positive_int(ambient_dim, "ambient_dim")
    if d < 2:
        raise ValueError(f"ambient_dim must be >= 2 (the curves are planar); got {d}.")
    if not (np.ndim(noise) == 0 and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}.")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point dtype; got {dtype}.")
    rng = check_random_state(random_state)
    t = rng.uniform(*_T_RANGE[kind], size=n)
    p, dp = _curve(kind, t)
    tan = dp / np.linalg.norm(dp, axis=1, keepdims=True)
    if d > 2:
        Q, R = np.linalg.qr(rng.standard_normal((d, 2)))
        Q = Q * np.sign(np.diag(R))  # a uniformly random frame
        p, tan = p @ Q.T, tan @ Q.T
    X = p + float(noise) * rng.standard_normal((n, d)) if noise > 0 else p
    return (np.ascontiguousarray(X, dtype=dtype), t.astype(dtype),
            np.ascontiguousarray(tan, dtype=dtype))
