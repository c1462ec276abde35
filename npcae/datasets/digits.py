"""Procedural MNIST-like digits, rendered in pure NumPy (no files, no network)."""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_int, check_random_state

__all__ = ["make_digits"]


def _catmull_rom(ctrl, closed, per_span):
    """Sample a uniform Catmull-Rom spline through the control points ``ctrl`` (m, 2)."""
    P = np.asarray(ctrl, dtype=np.float64)
    if closed:
        ext = np.vstack([P[-1:], P, P[:2]])
        n_spans = len(P)
    else:
        ext = np.vstack([2 * P[:1] - P[1:2], P, 2 * P[-1:] - P[-2:-1]])
        n_spans = len(P) - 1
    s = np.linspace(0.0, 1.0, per_span, endpoint=False)[:, None]
    s2, s3 = s * s, s * s * s
    out = []
    for i in range(n_spans):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * s3))
    out.append(ext[n_spans + 1][None, :] if not closed else P[:1])
    return np.vstack(out)


def _polyline(ctrl, pieces=3):
    """Straight segments through ``ctrl``, each split in ``pieces`` so warps can bend it."""
    P = np.asarray(ctrl, dtype=np.float64)
    s = np.linspace(0.0, 1.0, pieces, endpoint=False)[:, None]
    out = [P[i] + (P[i + 1] - P[i]) * s for i in range(len(P) - 1)]
    out.append(P[-1:])
    return np.vstack(out)


def _ellipse(cx, cy, rx, ry, n=8, start=90.0):
    a = np.deg2rad(start + np.arange(n) * 360.0 / n)
    return np.column_stack([cx + rx * np.cos(a), cy - ry * np.sin(a)])


def _S(*pts):  # smooth open stroke
    return ("spline", pts)


def _L(*pts):  # straight-line stroke
    return ("line", pts)


def _O(cx, cy, rx, ry):  # closed loop
    return ("loop", _ellipse(cx, cy, rx, ry))


# Stroke templates in a unit box: x to the right, y DOWN, the digit spans y in [0, 1]
# and is centred at (0.5, 0.5). Each class has one or more variants with weights.
_DIGIT_TEMPLATES = {
    0: [(1.0, [_O(0.5, 0.5, 0.29, 0.49)])],
    1: [(0.55, [_L((0.55, 0.0), (0.46, 1.0))]),
        (0.35, [_L((0.32, 0.2), (0.55, 0.0), (0.46, 1.0))]),
        (0.10, [_L((0.32, 0.2), (0.55, 0.0), (0.46, 1.0)), _L((0.28, 1.0), (0.68, 1.0))])],
    2: [(0.7, [_S((0.2, 0.26), (0.34, 0.06), (0.56, 0.0), (0.75, 0.13), (0.74, 0.36),
                  (0.52, 0.62), (0.18, 0.98)),
               _L((0.18, 0.98), (0.86, 0.96))]),
        (0.3, [_S((0.2, 0.26), (0.34, 0.06), (0.56, 0.0), (0.75, 0.13), (0.74, 0.36),
                  (0.52, 0.62), (0.26, 0.92), (0.3, 1.0), (0.4, 0.92), (0.6, 0.95),
                  (0.86, 0.96))])],
    3: [(1.0, [_S((0.2, 0.12), (0.45, 0.0), (0.7, 0.07), (0.72, 0.26), (0.52, 0.44),
                  (0.38, 0.47)),
               _S((0.38, 0.47), (0.62, 0.5), (0.78, 0.68), (0.72, 0.9), (0.48, 1.0),
                  (0.18, 0.9))])],
    4: [(0.55, [_L((0.62, 0.0), (0.14, 0.66), (0.86, 0.66)), _L((0.63, 0.02), (0.63, 1.0))]),
        (0.45, [_L((0.26, 0.0), (0.2, 0.6), (0.84, 0.6)), _L((0.7, 0.02), (0.67, 1.0))])],
    5: [(1.0, [_L((0.8, 0.02), (0.32, 0.02), (0.27, 0.46)),
               _S((0.27, 0.46), (0.46, 0.38), (0.7, 0.46), (0.78, 0.7), (0.66, 0.92),
                  (0.42, 0.99), (0.18, 0.9))])],
    6: [(1.0, [_S((0.68, 0.0), (0.46, 0.16), (0.3, 0.42), (0.24, 0.7), (0.34, 0.94),
                  (0.54, 0.99), (0.72, 0.86), (0.74, 0.66), (0.56, 0.52), (0.36, 0.56),
                  (0.25, 0.7))])],
    7: [(0.8, [_L((0.16, 0.04), (0.84, 0.04)),
               _S((0.84, 0.04), (0.66, 0.4), (0.52, 0.72), (0.44, 1.0))]),
        (0.2, [_L((0.16, 0.04), (0.84, 0.04)),
               _S((0.84, 0.04), (0.66, 0.4), (0.52, 0.72), (0.44, 1.0)),
               _L((0.42, 0.52), (0.8, 0.52))])],
    8: [(1.0, [_O(0.5, 0.24, 0.22, 0.235), _O(0.5, 0.73, 0.27, 0.265)])],
    9: [(0.65, [_O(0.48, 0.28, 0.25, 0.27), _L((0.73, 0.24), (0.69, 0.6), (0.6, 1.0))]),
        (0.35, [_O(0.48, 0.28, 0.25, 0.27),
                _S((0.73, 0.24), (0.72, 0.62), (0.62, 0.92), (0.42, 1.0))])],
}

_TEMPLATE_CACHE = {}


def _template_geometry(digit, variant):
    """Return (points (K, 2), segment start indices, segment end indices) of a variant."""
    key = (digit, variant)
    if key not in _TEMPLATE_CACHE:
        pts, a_idx = [], []
        offset = 0
        for kind, ctrl in _DIGIT_TEMPLATES[digit][variant][1]:
            if kind == "spline":
                p = _catmull_rom(ctrl, closed=False, per_span=5)
            elif kind == "loop":
                p = _catmull_rom(ctrl, closed=True, per_span=5)
            else:
                p = _polyline(ctrl)
            pts.append(p)
            a_idx.append(offset + np.arange(len(p) - 1))
            offset += len(p)
        pts = np.vstack(pts)
        a = np.concatenate(a_idx)
        _TEMPLATE_CACHE[key] = (pts, a, a + 1)
    return _TEMPLATE_CACHE[key]


def _check_range(value, name, symmetric, lo_bound=-np.inf):
    """``(low, high)`` from a pair; a scalar ``v`` gives ``(-v, v)`` if ``symmetric``,
    else the fixed value ``(v, v)``."""
    if np.ndim(value) == 0:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = np.nan
        if symmetric and not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0 (the half-width of a "
                             f"symmetric range) or a (low, high) pair; got {value!r}.")
        value = (-v, v) if symmetric else (v, v)
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a (low, high) pair; got "
                         f"{value!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or lo < lo_bound:
        bound = "" if lo_bound == -np.inf else f"{lo_bound} <= "
        raise ValueError(f"{name} must be a finite (low, high) pair with {bound}low <= high; "
                         f"got {value!r}.")
    return lo, hi


def _render_group(pts, a_idx, b_idx, radius, out, softness, image_size, chunk=128):
    """Render the strokes ``pts`` (m, K, 2) in pixel coordinates into ``out`` (m, P).

    Distance of every pixel centre to the nearest stroke segment, min over segments,
    mapped to ink with a smoothstep edge ``softness`` pixels wide around ``radius``.
    """
    m = pts.shape[0]
    ii, jj = np.mgrid[0:image_size, 0:image_size]
    gx = jj.ravel().astype(np.float32)[None, :]
    gy = ii.ravel().astype(np.float32)[None, :]
    P = gx.shape[1]
    A = pts[:, a_idx, :]  # (m, S, 2)
    D = pts[:, b_idx, :] - A
    L2 = np.maximum((D * D).sum(-1), np.float32(1e-12))
    inv_L2 = (1.0 / L2).astype(np.float32)
    for s0 in range(0, m, chunk):
        s1 = min(s0 + chunk, m)
        c = s1 - s0
        best = np.full((c, P), np.inf, dtype=np.float32)
        dx = np.empty((c, P), np.float32)
        dy = np.empty((c, P), np.float32)
        t = np.empty((c, P), np.float32)
        tmp = np.empty((c, P), np.float32)
        for k in range(A.shape[1]):
            ax, ay = A[s0:s1, k, 0:1], A[s0:s1, k, 1:2]
            ux, uy = D[s0:s1, k, 0:1], D[s0:s1, k, 1:2]
            np.subtract(gx, ax, out=dx)
            np.subtract(gy, ay, out=dy)
            np.multiply(dx, ux, out=t)
            np.multiply(dy, uy, out=tmp)
            t += tmp
            t *= inv_L2[s0:s1, k:k + 1]
            np.clip(t, 0.0, 1.0, out=t)
            # residual = d - t * u
            np.multiply(t, ux, out=tmp)
            dx -= tmp
            np.multiply(t, uy, out=tmp)
            dy -= tmp
            np.multiply(dx, dx, out=dx)
            np.multiply(dy, dy, out=dy)
            dx += dy
            np.minimum(best, dx, out=best)
        np.sqrt(best, out=best)
        # ink: 1 inside radius - softness/2, 0 beyond radius + softness/2, smooth between
        r = radius[s0:s1, None]
        np.subtract(r + np.float32(0.5 * softness), best, out=best)
        best *= np.float32(1.0 / softness)
        np.clip(best, 0.0, 1.0, out=best)
        out[s0:s1] = best * best * (3.0 - 2.0 * best)


def make_digits(n_samples=1000, *, random_state=None, image_size=28, dtype=np.float32,
                return_factors=False, balanced=True, rotation=15.0, scale=(0.9, 1.1),
                aspect=(0.8, 1.2), shear=(-0.4, 0.15), shift=1.5, thickness=(1.7, 3.5),
                deform=0.06, noise=0.0):
    """Procedural MNIST-like handwritten digits, rendered in pure NumPy (offline).

    Each digit 0-9 is a stroke template (polylines and Catmull-Rom splines in a unit
    box, a few variants per class, e.g. 1 with or without a flag, open or closed 4).
    Per sample, the strokes get a small random smooth warp, then a random affine map
    (scale, aspect, shear, rotation, shift) that places the digit, ~20 px tall, in the
    centre of a 28x28 image, and are rendered as a distance-to-stroke field: full ink
    within ``thickness / 2`` pixels of the stroke, a 1-pixel smooth edge, exact 0
    background. Rendering is vectorised over samples (loops only over classes,
    variants and stroke segments).

    Parameters
    ----------
    n_samples : int
        Number of images.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of randomness. The same non-negative int gives identical output; None
        draws fresh entropy; a ``Generator`` is used (and advanced) as it is; a
        ``RandomState`` seeds a new ``Generator`` from one draw.
    image_size : int
        Side of the square image in pixels (>= 8). Geometry (sizes, shifts,
        thickness) is given for 28 px and scaled by ``image_size / 28``.
    dtype : float dtype
        Dtype of ``X``.
    return_factors : bool
        Also return the per-sample generative factors.
    balanced : bool
        If True, every class appears ``n_samples // 10`` or one more times (in random
        order); if False, labels are drawn uniformly at random.
    rotation : float or (low, high)
        Rotation in degrees, uniform; a scalar ``v`` means ``[-v, v]`` (so does a scalar
        ``shear`` or ``shift``). For ``scale``, ``aspect`` and ``thickness`` a scalar
        means that fixed value.
    scale : float or (low, high)
        Overall size factor, uniform (1: stroke centre lines 17.5 px tall, ink about
        20 px tall like MNIST's 20x20 box).
    aspect : float or (low, high)
        Width multiplier on top of ``scale``, uniform (``scale_x = scale * aspect``).
    shear : float or (low, high)
        Horizontal shear ``x += shear * y`` (y points down, so negative values lean the
        top of the digit to the right, like most handwriting), uniform.
    shift : float or (low, high)
        Translation of the digit centre in pixels (each axis), uniform. Digits that
        would come closer than 1 px to the border are moved back inside (the returned
        ``shift_x`` / ``shift_y`` factors include that correction).
    thickness : float or (low, high)
        Stroke width in pixels, uniform.
    deform : float
        Amplitude (fraction of the digit height) of the random smooth warp applied to
        the strokes before the affine map; 0 disables it. The warp is not part of
        ``factors``.
    noise : float
        Standard deviation of Gaussian pixel noise added at the end (result clipped to
        [0, 1]); 0 disables it.

    Returns
    -------
    X : ndarray, shape (n_samples, image_size**2)
        Images flattened row-major, values in [0, 1], 0 = background.
    y : ndarray of int64, shape (n_samples,)
        Digit labels 0-9.
    factors : dict of str -> ndarray, shape (n_samples,)
        Only if ``return_factors``: ``rotation`` (degrees), ``scale_x``, ``scale_y``,
        ``shear``, ``shift_x``, ``shift_y`` (pixels), ``thickness`` (pixels),
        ``variant`` (index of the stroke template variant within its class).
    """
    n = check_positive_int(n_samples, "n_samples")
    size = check_positive_int(image_size, "image_size")
    if size < 8:
        raise ValueError(f"image_size must be at least 8 pixels; got {image_size}.")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point dtype; got {dtype}.")
    rot = _check_range(rotation, "rotation", symmetric=True)
    sc = _check_range(scale, "scale", symmetric=False, lo_bound=1e-3)
    asp = _check_range(aspect, "aspect", symmetric=False, lo_bound=1e-3)
    sh = _check_range(shear, "shear", symmetric=True)
    sft = _check_range(shift, "shift", symmetric=True)
    th = _check_range(thickness, "thickness", symmetric=False, lo_bound=1e-3)
    for val, nm in ((deform, "deform"), (noise, "noise")):
        if not (np.ndim(val) == 0 and np.isfinite(val) and val >= 0):
            raise ValueError(f"{nm} must be a finite number >= 0; got {val!r}.")
    rng = check_random_state(random_state)

    if balanced:
        y = np.arange(n, dtype=np.int64) % 10
        rng.shuffle(y)
    else:
        y = rng.integers(0, 10, size=n).astype(np.int64)
    px = size / 28.0
    f = {
        "rotation": rng.uniform(*rot, size=n),
        "scale_y": rng.uniform(*sc, size=n),
        "shear": rng.uniform(*sh, size=n),
        "shift_x": rng.uniform(*sft, size=n) * px,
        "shift_y": rng.uniform(*sft, size=n) * px,
        "thickness": rng.uniform(*th, size=n) * px,
    }
    f["scale_x"] = f["scale_y"] * rng.uniform(*asp, size=n)
    warp = rng.normal(0.0, float(deform), size=(n, 4))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 2))
    variant = np.zeros(n, dtype=np.int64)
    u_var = rng.random(n)
    for d in range(10):
        w = np.cumsum([v[0] for v in _DIGIT_TEMPLATES[d]])
        idx = y == d
        variant[idx] = np.minimum(np.searchsorted(w / w[-1], u_var[idx], side="right"),
                                  len(w) - 1)
    f["variant"] = variant

    # per-sample affine, template unit box -> pixels: p = M @ (u - 0.5) * H + centre
    H = 17.5 * px  # stroke centre lines; with the stroke width the ink is ~20 px tall
    softness = max(px, 0.5)  # width of the anti-aliased stroke edge, pixels
    margin = 1.0 * px
    th_r = np.deg2rad(f["rotation"])
    cos, sin = np.cos(th_r), np.sin(th_r)
    sx, sy, g = f["scale_x"] * H, f["scale_y"] * H, f["shear"]
    # M = R @ [[1, g], [0, 1]] @ diag(sx, sy)
    M = np.empty((n, 2, 2))
    M[:, 0, 0] = cos * sx
    M[:, 0, 1] = (cos * g - sin) * sy
    M[:, 1, 0] = sin * sx
    M[:, 1, 1] = (sin * g + cos) * sy
    centre = (size - 1) / 2.0
    T = np.column_stack([centre + f["shift_x"], centre + f["shift_y"]])
    radius = (0.5 * f["thickness"]).astype(np.float32)

    X = np.empty((n, size * size), dtype=np.float32)
    for d in range(10):
        for v in range(len(_DIGIT_TEMPLATES[d])):
            idx = np.flatnonzero((y == d) & (variant == v))
            if idx.size == 0:
                continue
            pts, a_idx, b_idx = _template_geometry(d, v)
            ux, uy = pts[:, 0][None, :], pts[:, 1][None, :]
            cx, cy = ux - 0.5, uy - 0.5
            w, ph = warp[idx], phase[idx]
            # smooth low-frequency warp of the strokes (template units)
            wx = w[:, 0:1] * np.sin(np.pi * uy + ph[:, 0:1]) + w[:, 1:2] * 4 * cx * cy
            wy = w[:, 2:3] * np.sin(np.pi * ux + ph[:, 1:2]) + w[:, 3:4] * 4 * cx * cx
            cx = cx + wx
            cy = cy + wy
            Mi = M[idx]
            px_x = Mi[:, 0, 0:1] * cx + Mi[:, 0, 1:2] * cy + T[idx, 0:1]
            px_y = Mi[:, 1, 0:1] * cx + Mi[:, 1, 1:2] * cy + T[idx, 1:2]
            # keep the ink at least `margin` px inside the image: shrink digits that are
            # too big (about their box centre), then move them inside. The factors are
            # updated to the scale and shift actually applied.
            r_ink = radius[idx, None] + 0.5 * softness + margin
            avail = (size - 1) - 2 * r_ink
            lo_x, hi_x = px_x.min(1, keepdims=True), px_x.max(1, keepdims=True)
            lo_y, hi_y = px_y.min(1, keepdims=True), px_y.max(1, keepdims=True)
            k = np.minimum(1.0, np.minimum(avail / np.maximum(hi_x - lo_x, 1e-9),
                                           avail / np.maximum(hi_y - lo_y, 1e-9)))
            f["scale_x"][idx] *= k[:, 0]
            f["scale_y"][idx] *= k[:, 0]
            for coord, lo, hi, col, key in ((px_x, lo_x, hi_x, 0, "shift_x"),
                                            (px_y, lo_y, hi_y, 1, "shift_y")):
                mid = 0.5 * (lo + hi)
                coord -= mid
                coord *= k
                lo_k, hi_k = mid + k * (lo - mid), mid + k * (hi - mid)
                corr = (np.maximum(r_ink - lo_k, 0.0)
                        - np.maximum(hi_k + r_ink - (size - 1), 0.0))
                coord += mid + corr
                f[key][idx] = (mid + k * (T[idx, col:col + 1] - mid) + corr)[:, 0] - centre
            P = np.stack([px_x, px_y], axis=-1).astype(np.float32)
            out = np.empty((idx.size, size * size), dtype=np.float32)
            _render_group(P, a_idx, b_idx, radius[idx], out, softness=softness,
                          image_size=size)
            X[idx] = out
    if noise > 0:
        X += rng.normal(0.0, float(noise), size=X.shape).astype(np.float32)
        np.clip(X, 0.0, 1.0, out=X)
    X = np.ascontiguousarray(X, dtype=dtype)
    if return_factors:
        order = ("rotation", "scale_x", "scale_y", "shear", "shift_x", "shift_y",
                 "thickness", "variant")
        return X, y, {k: f[k] for k in order}
    return X, y
