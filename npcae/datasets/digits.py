"""Procedural MNIST-like digits, rendered in pure NumPy (no files, no network)."""
from __future__ import annotations

import numpy as np

from .._validation import check_positive_int, check_random_state

__all__ = ["make_digits", "sample_digit_factors", "render_digits", "digit_tangents",
           "DIGIT_FACTOR_NAMES", "WARP_FACTOR_NAMES"]


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
    Computed in ``out.dtype``: float32 for :func:`make_digits` / :func:`render_digits`,
    float64 for :func:`digit_tangents` (``pts`` and ``radius`` must have that dtype).
    """
    dt = out.dtype.type
    m = pts.shape[0]
    ii, jj = np.mgrid[0:image_size, 0:image_size]
    gx = jj.ravel().astype(dt)[None, :]
    gy = ii.ravel().astype(dt)[None, :]
    P = gx.shape[1]
    A = pts[:, a_idx, :]  # (m, S, 2)
    D = pts[:, b_idx, :] - A
    L2 = np.maximum((D * D).sum(-1), dt(1e-12))
    inv_L2 = (1.0 / L2).astype(dt)
    for s0 in range(0, m, chunk):
        s1 = min(s0 + chunk, m)
        c = s1 - s0
        best = np.full((c, P), np.inf, dtype=dt)
        dx = np.empty((c, P), dt)
        dy = np.empty((c, P), dt)
        t = np.empty((c, P), dt)
        tmp = np.empty((c, P), dt)
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
        np.subtract(r + dt(0.5 * softness), best, out=best)
        best *= dt(1.0 / softness)
        np.clip(best, 0.0, 1.0, out=best)
        out[s0:s1] = best * best * (3.0 - 2.0 * best)


# ---------------------------------------------------------------------------
# explicit factors: sample, check, place, render
# ---------------------------------------------------------------------------

# Keys of a factor record (sample_digit_factors), in order.
_FACTOR_KEYS = ("label", "variant", "rotation", "scale_x", "scale_y", "shear", "shift_x",
                "shift_y", "thickness", "warp", "phase")
_FLOAT_KEYS = ("rotation", "scale_x", "scale_y", "shear", "shift_x", "shift_y", "thickness")
_WARP_SHAPES = {"warp": 4, "phase": 2}

#: The continuous pose and stroke factors that :func:`digit_tangents` differentiates by
#: default (see there for their units).
DIGIT_FACTOR_NAMES = ("rotation", "scale", "aspect", "shear", "shift_x", "shift_y",
                      "thickness")
#: The parameters of the per-sample smooth warp, which :func:`digit_tangents` can also
#: differentiate (they are held fixed by default).
WARP_FACTOR_NAMES = ("warp_0", "warp_1", "warp_2", "warp_3", "phase_0", "phase_1")

# Central-difference steps, in each factor's unit (digit_tangents). Each moves the stroke
# centre lines by about 1e-5 px (rotation, scale, aspect, shear: ~10 px lever arm; warp:
# 17.5 px per template unit; phase: ~1 px warp amplitude) or changes a width or offset by
# 1e-5 px. The rendering is only piecewise smooth (the distance to the strokes has a kink
# where two segments are equally near), so the step must be small enough that hardly any
# pixel has a kink within it; float64 rounding stays ~1e-9 relative at these steps.
_DEFAULT_STEPS = {"rotation": 1e-6, "scale": 1e-6, "aspect": 1e-6, "shear": 1e-6,
                  "shift_x": 1e-5, "shift_y": 1e-5, "thickness": 1e-5,
                  "warp_0": 5e-7, "warp_1": 5e-7, "warp_2": 5e-7, "warp_3": 5e-7,
                  "phase_0": 1e-5, "phase_1": 1e-5}


def sample_digit_factors(n_samples=1000, *, random_state=None, balanced=True, rotation=15.0,
                         scale=(0.9, 1.1), aspect=(0.8, 1.2), shear=(-0.4, 0.15), shift=1.5,
                         thickness=(1.7, 3.5), deform=0.06):
    """Draw the generative factors of :func:`make_digits`, without rendering.

    The draws are exactly those of :func:`make_digits` with the same arguments and
    ``random_state``, so ``render_digits(sample_digit_factors(n, random_state=s, ...))``
    is bit-for-bit ``make_digits(n, random_state=s, ...)[0]`` (with ``noise=0``; the
    noise is drawn after these). Change any factor and render again to move a digit
    along one factor with everything else, including its random warp, held fixed.

    Parameters
    ----------
    n_samples : int
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        As in :func:`make_digits`.
    balanced, rotation, scale, aspect, shear, shift, thickness, deform
        As in :func:`make_digits` (ranges in degrees, size factors, pixels of a
        28-px image).

    Returns
    -------
    factors : dict of str -> ndarray
        A *factor record* for ``n = n_samples`` digits (all float arrays float64):

        ``label`` (n,) int64
            Digit class 0-9.
        ``variant`` (n,) int64
            Index of the stroke template variant within its class.
        ``rotation`` (n,)
            Degrees; positive turns the digit clockwise as displayed (the image
            y axis points down).
        ``scale_x``, ``scale_y`` (n,)
            Width and height factors (1: stroke centre lines 17.5 px tall);
            ``scale_x = scale_y * aspect``.
        ``shear`` (n,)
            ``x += shear * y`` after scaling (y down: negative leans the top right).
        ``shift_x``, ``shift_y`` (n,)
            Offset of the digit centre from the image centre, in pixels of a
            28-px image (multiplied by ``image_size / 28`` when rendering).
        ``thickness`` (n,)
            Stroke width, pixels of a 28-px image.
        ``warp`` (n, 4), ``phase`` (n, 2)
            The smooth random warp of the template strokes (template units, the
            digit is 1 tall; radians): with ``(cx, cy)`` the template point relative
            to its box centre, ``cx += warp_0 sin(pi y + phase_0) + 4 warp_1 cx cy``
            and ``cy += warp_2 sin(pi x + phase_1) + 4 warp_3 cx^2``.

        Scale and shift are the values as drawn; :func:`render_digits` may shrink or
        move a digit that would come closer than 1 px to the border (see its
        ``fit_inside``) and reports the values actually applied.

    Examples
    --------
    >>> f = sample_digit_factors(4, random_state=0)
    >>> f["rotation"] = f["rotation"] + 10.0          # ten degrees more, same strokes
    >>> X = render_digits(f)
    """
    n = check_positive_int(n_samples, "n_samples")
    rot = _check_range(rotation, "rotation", symmetric=True)
    sc = _check_range(scale, "scale", symmetric=False, lo_bound=1e-3)
    asp = _check_range(aspect, "aspect", symmetric=False, lo_bound=1e-3)
    sh = _check_range(shear, "shear", symmetric=True)
    sft = _check_range(shift, "shift", symmetric=True)
    th = _check_range(thickness, "thickness", symmetric=False, lo_bound=1e-3)
    if not (np.ndim(deform) == 0 and np.isfinite(deform) and deform >= 0):
        raise ValueError(f"deform must be a finite number >= 0; got {deform!r}.")
    rng = check_random_state(random_state)
    return _draw_factors(rng, n, balanced, rot, sc, asp, sh, sft, th, deform)


def _draw_factors(rng, n, balanced, rot, sc, asp, sh, sft, th, deform):
    """The draws of make_digits, in its order (do not reorder: outputs are seeded)."""
    if balanced:
        y = np.arange(n, dtype=np.int64) % 10
        rng.shuffle(y)
    else:
        y = rng.integers(0, 10, size=n).astype(np.int64)
    f = {
        "rotation": rng.uniform(*rot, size=n),
        "scale_y": rng.uniform(*sc, size=n),
        "shear": rng.uniform(*sh, size=n),
        "shift_x": rng.uniform(*sft, size=n),
        "shift_y": rng.uniform(*sft, size=n),
        "thickness": rng.uniform(*th, size=n),
    }
    f["scale_x"] = f["scale_y"] * rng.uniform(*asp, size=n)
    f["warp"] = rng.normal(0.0, float(deform), size=(n, 4))
    f["phase"] = rng.uniform(0.0, 2 * np.pi, size=(n, 2))
    variant = np.zeros(n, dtype=np.int64)
    u_var = rng.random(n)
    for d in range(10):
        w = np.cumsum([v[0] for v in _DIGIT_TEMPLATES[d]])
        idx = y == d
        variant[idx] = np.minimum(np.searchsorted(w / w[-1], u_var[idx], side="right"),
                                  len(w) - 1)
    f["label"] = y
    f["variant"] = variant
    return {k: f[k] for k in _FACTOR_KEYS}


def _check_factors(factors, name="factors"):
    """Validate a factor record; return a dict of C-contiguous arrays (float64 / int64)."""
    if not hasattr(factors, "keys") or not hasattr(factors, "__getitem__"):
        raise TypeError(f"{name} must be a dict of per-sample factors as returned by "
                        f"sample_digit_factors; got {type(factors).__name__}.")
    missing = [k for k in _FACTOR_KEYS if k not in factors]
    if missing:
        raise ValueError(f"{name} lacks the keys {missing}; a factor record has the keys "
                         f"{list(_FACTOR_KEYS)} (get one from sample_digit_factors; "
                         f"make_digits(return_factors=True) reports the applied factors "
                         f"but not the warp, so it cannot be re-rendered).")
    out = {}
    label = np.asarray(factors["label"])
    if label.ndim != 1 or label.size == 0 or label.dtype.kind not in "iu":
        raise ValueError(f"{name}['label'] must be a non-empty 1-D integer array; got dtype "
                         f"{label.dtype} and shape {label.shape}.")
    if label.min() < 0 or label.max() > 9:
        raise ValueError(f"{name}['label'] must hold digits 0-9; got values in "
                         f"[{label.min()}, {label.max()}].")
    n = label.size
    out["label"] = label.astype(np.int64, copy=False)
    variant = np.asarray(factors["variant"])
    if variant.shape != (n,) or variant.dtype.kind not in "iu":
        raise ValueError(f"{name}['variant'] must be an integer array of shape ({n},) like "
                         f"'label'; got dtype {variant.dtype} and shape {variant.shape}.")
    n_var = np.array([len(_DIGIT_TEMPLATES[d]) for d in range(10)])[out["label"]]
    if np.any(variant < 0) or np.any(variant >= n_var):
        i = int(np.flatnonzero((variant < 0) | (variant >= n_var))[0])
        raise ValueError(f"{name}['variant'][{i}] = {variant[i]} does not exist for digit "
                         f"{out['label'][i]}, which has variants 0..{n_var[i] - 1}.")
    out["variant"] = variant.astype(np.int64, copy=False)
    for key in _FLOAT_KEYS + tuple(_WARP_SHAPES):
        shape = (n,) if key in _FLOAT_KEYS else (n, _WARP_SHAPES[key])
        try:
            v = np.asarray(factors[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{key!r}] must be a float array of shape {shape}.") \
                from None
        if v.shape != shape:
            raise ValueError(f"{name}[{key!r}] must have shape {shape} (one entry per "
                             f"label); got {v.shape}.")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name}[{key!r}] contains NaN or infinite values.")
        if key in ("scale_x", "scale_y", "thickness") and np.any(v <= 0):
            raise ValueError(f"{name}[{key!r}] must be > 0; got min {v.min():g}.")
        out[key] = v
    return out


def _take(F, idx):
    return {k: v[idx] for k, v in F.items()}


def _concat(records):
    return {k: np.concatenate([r[k] for r in records]) for k in records[0]}


def _place(F, size, fit_inside=True, placement=None):
    """Stroke centre lines in pixel coordinates, grouped by (class, variant).

    Per sample, with ``(cx, cy)`` the warped template points relative to the box
    centre: ``p = M (cx, cy) + T`` with ``M = R(rotation) [[1, shear], [0, 1]]
    diag(scale_x, scale_y) * 17.5 px`` and ``T`` the image centre plus the shift.
    Then the placement ``p <- k (p - mid) + mid + corr`` (``k <= 1`` a shrink about the
    box centre ``mid``, ``corr`` a move) keeps the ink 1 px inside the image: computed
    from the geometry if ``fit_inside`` and ``placement`` is None, applied as given if
    ``placement`` (n, 5) = ``[k, mid_x, mid_y, corr_x, corr_y]`` is passed, skipped
    otherwise. The arithmetic is the original make_digits' one, bit for bit.

    Returns
    -------
    groups : list of (idx, P (m, K, 2) float64, a_idx, b_idx)
    radius : (n,) float32, half the stroke width in pixels
    applied : dict, the make_digits ``return_factors`` record (scale and shift after
        the placement, shift and thickness in pixels)
    placement : (n, 5) float64 or None
    softness : float, width of the anti-aliased edge in pixels
    """
    n = F["label"].size
    px = size / 28.0
    H = 17.5 * px  # stroke centre lines; with the stroke width the ink is ~20 px tall
    softness = max(px, 0.5)  # width of the anti-aliased stroke edge, pixels
    margin = 1.0 * px
    applied = {
        "rotation": F["rotation"].copy(),
        "scale_x": F["scale_x"].copy(),
        "scale_y": F["scale_y"].copy(),
        "shear": F["shear"].copy(),
        "shift_x": F["shift_x"] * px,
        "shift_y": F["shift_y"] * px,
        "thickness": F["thickness"] * px,
        "variant": F["variant"].copy(),
    }
    # per-sample affine, template unit box -> pixels: p = M @ (u - 0.5) * H + centre
    th_r = np.deg2rad(F["rotation"])
    cos, sin = np.cos(th_r), np.sin(th_r)
    sx, sy, g = F["scale_x"] * H, F["scale_y"] * H, F["shear"]
    # M = R @ [[1, g], [0, 1]] @ diag(sx, sy)
    M = np.empty((n, 2, 2))
    M[:, 0, 0] = cos * sx
    M[:, 0, 1] = (cos * g - sin) * sy
    M[:, 1, 0] = sin * sx
    M[:, 1, 1] = (sin * g + cos) * sy
    centre = (size - 1) / 2.0
    T = np.column_stack([centre + applied["shift_x"], centre + applied["shift_y"]])
    radius = (0.5 * applied["thickness"]).astype(np.float32)
    compute = placement is None and fit_inside
    if compute:
        placement = np.empty((n, 5))
    warp, phase, y, variant = F["warp"], F["phase"], F["label"], F["variant"]

    groups = []
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
            if compute:
                # keep the ink at least `margin` px inside the image: shrink digits that
                # are too big (about their box centre), then move them inside. The
                # applied factors are updated to the scale and shift actually used.
                r_ink = radius[idx, None] + 0.5 * softness + margin
                avail = (size - 1) - 2 * r_ink
                lo_x, hi_x = px_x.min(1, keepdims=True), px_x.max(1, keepdims=True)
                lo_y, hi_y = px_y.min(1, keepdims=True), px_y.max(1, keepdims=True)
                k = np.minimum(1.0, np.minimum(avail / np.maximum(hi_x - lo_x, 1e-9),
                                               avail / np.maximum(hi_y - lo_y, 1e-9)))
                placement[idx, 0] = k[:, 0]
                for coord, lo, hi, col in ((px_x, lo_x, hi_x, 0), (px_y, lo_y, hi_y, 1)):
                    mid = 0.5 * (lo + hi)
                    lo_k, hi_k = mid + k * (lo - mid), mid + k * (hi - mid)
                    corr = (np.maximum(r_ink - lo_k, 0.0)
                            - np.maximum(hi_k + r_ink - (size - 1), 0.0))
                    placement[idx, 1 + col] = mid[:, 0]
                    placement[idx, 3 + col] = corr[:, 0]
            if placement is not None:
                k = placement[idx, 0:1]
                for coord, col, key in ((px_x, 0, "shift_x"), (px_y, 1, "shift_y")):
                    mid, corr = placement[idx, 1 + col:2 + col], placement[idx, 3 + col:4 + col]
                    coord -= mid
                    coord *= k
                    coord += mid + corr
                    applied[key][idx] = (mid + k * (T[idx, col:col + 1] - mid)
                                         + corr)[:, 0] - centre
                applied["scale_x"][idx] *= k[:, 0]
                applied["scale_y"][idx] *= k[:, 0]
            groups.append((idx, np.stack([px_x, px_y], axis=-1), a_idx, b_idx))
    return groups, radius, applied, placement, softness


def _render_factors(F, size, precision=np.float32, fit_inside=True, placement=None):
    """Images (n, size**2) in ``precision``, the applied factors and the placement."""
    groups, radius, applied, placement, softness = _place(F, size, fit_inside, placement)
    precision = np.dtype(precision)
    if precision != np.float32:
        radius = 0.5 * applied["thickness"].astype(precision)
    X = np.empty((F["label"].size, size * size), dtype=precision)
    for idx, P, a_idx, b_idx in groups:
        out = np.empty((idx.size, size * size), dtype=precision)
        _render_group(P.astype(precision), a_idx, b_idx, radius[idx], out,
                      softness=softness, image_size=size)
        X[idx] = out
    return X, applied, placement


def _check_image_size(image_size):
    size = check_positive_int(image_size, "image_size")
    if size < 8:
        raise ValueError(f"image_size must be at least 8 pixels; got {image_size}.")
    return size


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point dtype; got {dtype}.")
    return dtype


def render_digits(factors, *, image_size=28, dtype=np.float32, fit_inside=True,
                  return_factors=False):
    """Render digits from explicit factors (a record from :func:`sample_digit_factors`).

    Parameters
    ----------
    factors : dict of str -> ndarray
        A factor record (see :func:`sample_digit_factors` for the keys and units),
        possibly edited: change ``rotation``, ``scale_x``, ``thickness``, ... of some
        samples and render again; everything not changed, including the random warp,
        stays as it was. Select samples with ``{k: v[idx] for k, v in f.items()}``.
    image_size : int
        Side of the square image in pixels (>= 8); geometry is given for 28 px and
        scaled by ``image_size / 28``.
    dtype : float dtype
        Dtype of ``X`` (rendering is done in float32, as in :func:`make_digits`).
    fit_inside : bool
        As in :func:`make_digits` (default): a digit that would come closer than 1 px
        to the border is shrunk about its box centre and then moved back inside. With
        False the factors are rendered as they are (ink may be cut off by the border).
    return_factors : bool
        Also return the factors actually applied, in :func:`make_digits`'s
        ``return_factors`` format (scale and shift after ``fit_inside``; shift and
        thickness in pixels of this ``image_size``).

    Returns
    -------
    X : ndarray, shape (n, image_size**2)
        Images flattened row-major, values in [0, 1], 0 = background. For a record
        from ``sample_digit_factors(n, random_state=s, **options)``, ``X`` is
        bit-for-bit ``make_digits(n, random_state=s, **options)[0]``.
    applied : dict of str -> ndarray, shape (n,)
        Only if ``return_factors``.
    """
    F = _check_factors(factors)
    size = _check_image_size(image_size)
    dtype = _check_dtype(dtype)
    if not isinstance(fit_inside, (bool, np.bool_)):
        raise TypeError(f"fit_inside must be True or False; got {fit_inside!r}.")
    X, applied, _ = _render_factors(F, size, np.float32, bool(fit_inside))
    X = np.ascontiguousarray(X, dtype=dtype)
    return (X, applied) if return_factors else X


def _perturb(F, name, t):
    """Copy of the record ``F`` with factor ``name`` moved by ``t`` (its natural unit)."""
    G = dict(F)
    if name == "rotation":
        G["rotation"] = F["rotation"] + np.rad2deg(t)
    elif name == "scale":
        G["scale_x"] = F["scale_x"] * np.exp(t)
        G["scale_y"] = F["scale_y"] * np.exp(t)
    elif name == "aspect":
        G["scale_x"] = F["scale_x"] * np.exp(t)
    elif name in ("shear", "shift_x", "shift_y", "thickness"):
        G[name] = F[name] + t
    else:  # warp_i / phase_i
        key, i = name.rsplit("_", 1)
        G[key] = F[key].copy()
        G[key][:, int(i)] += t
    return G


def digit_tangents(factors, names=DIGIT_FACTOR_NAMES, *, image_size=28, step=None,
                   fit_inside=True, batch_size=256):
    r"""True tangent vectors of rendered digits: the image's derivative per factor.

    For each digit ``x = r(f)`` rendered from its factors ``f`` and each factor
    ``j`` in ``names``, the tangent ``t_j = dr/df_j`` (a vector of pixels) by central
    differences of the renderer,

        ``t_j = (r(f + h_j e_j) - r(f - h_j e_j)) / (2 h_j)``,

    with everything else held fixed: the other factors, the stroke template, the
    per-sample random warp and the placement that keeps the digit inside the image
    (the move/shrink of ``fit_inside``, computed once at ``f``: with the default
    ranges about 16% of the digits are moved back inside, which does not change the
    tangents, and 1% are also shrunk by a factor ``k < 1`` about their box centre,
    so that for them one unit of ``shift_x`` / ``shift_y`` moves the ink ``k``
    pixels; the other factors act on the shrunk digit as on any digit of that size).
    The vectors ``t_j`` span the tangent space, at ``x``, of the manifold of images
    obtained by varying these factors.

    Factors and units (the derivative is per unit):

    ``rotation``
        radians (positive: clockwise as displayed).
    ``scale``
        log of the overall size: ``scale_x, scale_y <- e^t scale_x, e^t scale_y``.
    ``aspect``
        log of the width alone: ``scale_x <- e^t scale_x``.
    ``shear``
        the shear coefficient (``x += shear * y``).
    ``shift_x``, ``shift_y``
        pixels of a 28-px image (positive: right, down).
    ``thickness``
        stroke width, pixels of a 28-px image.
    ``warp_0`` ... ``warp_3``, ``phase_0``, ``phase_1`` (:data:`WARP_FACTOR_NAMES`)
        the warp parameters (template units, radians), held fixed unless named.

    A rotation of the strokes about the digit's centre ``c`` is a rigid motion of
    the distance field, so ``t_rotation(q) = -(q - c)_y t_shift_x(q) + (q - c)_x
    t_shift_y(q)`` at every pixel centre ``q`` (a useful check, used in the tests).

    Parameters
    ----------
    factors : dict of str -> ndarray
        A factor record from :func:`sample_digit_factors` (possibly edited).
    names : sequence of str
        Factors to differentiate, any of :data:`DIGIT_FACTOR_NAMES` and
        :data:`WARP_FACTOR_NAMES`, in the order wanted.
    image_size : int
        As in :func:`render_digits`.
    step : None, float or dict of str -> float
        Central-difference step ``h_j`` in the factor's unit. None: the defaults
        (1e-6 for rotation, scale, aspect, shear; 1e-5 px for shifts and thickness;
        5e-7 for warp amplitudes, 1e-5 for phases), each moving the stroke centre
        lines by about 1e-5 px (see Notes). A float is used for every factor; a dict
        overrides the defaults of the factors it names.
    fit_inside : bool
        Whether the placement held fixed is the one :func:`render_digits` applies
        by default (True) or none (False).
    batch_size : int
        Digits per block (each block renders ``2 len(names)`` images per digit).

    Returns
    -------
    tangents : ndarray of float64, shape (n, len(names), image_size**2)
        ``tangents[i, j]`` = derivative of image ``i`` with respect to factor
        ``names[j]``, per unit of that factor.

    Notes
    -----
    Rendering is done in float64 for the differences (the images themselves, from
    :func:`render_digits`, are float32), so rounding costs only ~1e-9 relative even at
    the tiny default steps. The image is a *piecewise* smooth function of the
    factors: the ink is a smoothstep (C^1) of the distance to the stroke segments, and
    that distance, a minimum over segments, has a kink where two segments (the inner
    side of a bend, two strokes that meet) are equally near. A pixel whose kink lies
    within ``h`` of the current factors gets a wrong difference, so the steps are much
    smaller than the usual sqrt(eps) rule would give. Measured on 1000 digits of
    ``sample_digit_factors(1000, random_state=0)``, all 13 factors, against steps 100
    times smaller: relative error ``||t - t_ref|| / ||t_ref||`` per digit and factor
    median 1e-8, 99.9th percentile 3e-6, largest 5e-5 (a phase, where the reference
    itself is rounding-limited). With steps 10 times larger than the defaults (strokes
    moved 1e-4 px) 0.1% of the digit-factor pairs are off by more than 1e-3 (largest
    2e-2); with the 1e-2 px steps that are common for smooth functions the median
    error is already 2e-3 and the largest 0.2.
    """
    F = _check_factors(factors)
    size = _check_image_size(image_size)
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    known = DIGIT_FACTOR_NAMES + WARP_FACTOR_NAMES
    bad = [nm for nm in names if nm not in known]
    if bad or not names or len(set(names)) != len(names):
        raise ValueError(f"names must be a non-empty sequence of distinct factor names "
                         f"from {list(known)}; got {list(names)}.")
    steps = dict(_DEFAULT_STEPS)
    if step is not None:
        if isinstance(step, dict):
            unknown = [k for k in step if k not in known]
            if unknown:
                raise ValueError(f"step names unknown factors {unknown}; valid names: "
                                 f"{list(known)}.")
            steps.update(step)
        else:
            steps = {k: step for k in known}
    for nm in names:
        h = steps[nm]
        if isinstance(h, (bool, np.bool_)) or not np.isscalar(h) or not (
                np.isfinite(float(h)) and float(h) > 0):
            raise ValueError(f"step for {nm!r} must be a finite number > 0; got {h!r}.")
    if not isinstance(fit_inside, (bool, np.bool_)):
        raise TypeError(f"fit_inside must be True or False; got {fit_inside!r}.")
    n, nf, P = F["label"].size, len(names), size * size
    placement = _place(F, size, bool(fit_inside))[3]
    out = np.empty((n, nf, P), dtype=np.float64)
    for s0 in range(0, n, batch_size):
        sl = slice(s0, min(n, s0 + batch_size))
        sub = _take(F, sl)
        m = sub["label"].size
        parts = [_perturb(sub, nm, sign * float(steps[nm])) for nm in names
                 for sign in (1.0, -1.0)]
        pl = None if placement is None else np.tile(placement[sl], (2 * nf, 1))
        X = _render_factors(_concat(parts), size, np.float64, placement=pl)[0]
        X = X.reshape(nf, 2, m, P)
        h = np.array([float(steps[nm]) for nm in names])[:, None, None]
        out[sl] = np.swapaxes((X[:, 0] - X[:, 1]) / (2.0 * h), 0, 1)
    return out


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

    ``make_digits`` is :func:`sample_digit_factors` followed by
    :func:`render_digits` (and the noise): use those two to render digits from
    explicit, editable factors, and :func:`digit_tangents` for the derivative of the
    images with respect to each factor.

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
        ``factors`` (it is in :func:`sample_digit_factors`' record).
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
    size = _check_image_size(image_size)
    dtype = _check_dtype(dtype)
    if not (np.ndim(noise) == 0 and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}.")
    rng = check_random_state(random_state)
    # the factors from the same generator, then the noise after them
    F = sample_digit_factors(n_samples, random_state=rng, balanced=balanced, rotation=rotation,
                             scale=scale, aspect=aspect, shear=shear, shift=shift,
                             thickness=thickness, deform=deform)
    X, applied, _ = _render_factors(F, size, np.float32)
    if noise > 0:
        X += rng.normal(0.0, float(noise), size=X.shape).astype(np.float32)
        np.clip(X, 0.0, 1.0, out=X)
    X = np.ascontiguousarray(X, dtype=dtype)
    if return_factors:
        return X, F["label"], applied
    return X, F["label"]
