"""The machinery behind :mod:`npcae.gradcheck`: argument checks, the step "problems"
(coordinates and random directions of an array or of a parameter perturbed in place),
central differences with exactly symmetric steps, Richardson extrapolation, the complex
step, and the second look at failing entries (refinement, kink and noise tests).

Nothing here is public: :mod:`npcae.gradcheck` holds the API and the result types, and
``docs/derivations.md#gradient-checking`` the mathematics.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping

import numpy as np

from .._validation import as_float_array, check_positive_int, check_random_state

EPS = float(np.finfo(np.float64).eps)

#: Supported ``method`` values.
METHODS = ("central", "richardson", "complex")

#: Default base steps: ``eps**(1/3)`` balances the O(h^2) truncation of central
#: differences against their O(eps/h) rounding; ``eps**(1/5)`` does the same for
#: the O(h^4) Richardson value; the complex step has no rounding term at all.
DEFAULT_STEPS = {"central": EPS ** (1.0 / 3.0), "richardson": EPS ** (1.0 / 5.0),
                 "complex": 1e-20}

# Safety factor on the rounding-noise estimate ``eps * |L| / h`` used for the default
# ``atol`` and when deciding whether an entry sits on a kink.
_NOISE_FACTOR = 64.0
# Noise-amplification of each estimate: D(h) ~ eps|L|/h, Richardson ~ 3 eps|L|/h.
_NOISE_GAIN = {"central": 1.0, "richardson": 3.0, "complex": 1.0}
# An entry is a kink if the finite differences' own inconsistency is at least
# this fraction of its error (a single kink always gives >= 0.85; see the docs).
_KINK_FRACTION = 0.25
# ... and at least this fraction of |d(h)| = |s+ - s-| (a pure kink gives >= 0.2, smooth f
# gives O(h^2) relative).
_KINK_SHAPE = 0.05
# Step reduction used to refine a failing complex-step entry.
_COMPLEX_REFINE = 2.0 ** 20
# Step multipliers tried, in order, when an entry still disagrees and is not a kink:
# the estimate's rounding noise falls like 1/t (see _analyse_failure, step 3).
_ESCALATION = {"central": (4.0, 16.0, 64.0), "richardson": (4.0, 16.0)}
# Step escalation stops once this many failures are confirmed (bounds the cost of a
# badly wrong gradient).
_MAX_NOISE_PROBES = 8

_COMPLEX_HELP = (
    "The complex step needs f to be real-analytic code that carries the imaginary part "
    "through: avoid np.abs, np.conj/np.conjugate, np.vdot, np.linalg.norm, .real, float(), "
    "np.sign, np.logaddexp, casts to a float dtype (x.astype(float), np.asarray(x, "
    "dtype=float64)) and branches on comparisons of complex values (np.maximum/np.minimum/"
    "np.where(x > 0, ...) compare lexicographically - branch on x.real instead). "
    "Or use method='central' or 'richardson'.")


# ========================================================================= validation
def _is_real_number(v):
    """A real scalar number (Python or NumPy), not a bool, string or array."""
    return (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)))


def _check_method(method):
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, one of {METHODS}; got {method!r} of type "
                        f"{type(method).__name__}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")


def _check_step(h, method):
    if h is None:
        return DEFAULT_STEPS[method]
    hint = (f"the relative step, e.g. {DEFAULT_STEPS[method]:.3g}; None selects that default "
            f"for method={method!r}")
    if not _is_real_number(h):
        raise TypeError(f"h must be a positive finite number ({hint}); got {h!r} of type "
                        f"{type(h).__name__}.")
    value = float(h)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"h must be a positive finite number ({hint}); got {h!r}.")
    return value


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} of type "
                        f"{type(value).__name__}.")
    return bool(value)


def _check_callable(fn, name, signature):
    if not callable(fn):
        raise TypeError(f"{name} must be a callable {signature}; got {fn!r} of type "
                        f"{type(fn).__name__}.")


def _check_max_full(max_full):
    if not isinstance(max_full, (int, np.integer)) or isinstance(max_full, (bool, np.bool_)):
        raise TypeError(f"max_full must be a non-negative integer (the largest array checked "
                        f"entry by entry); got {max_full!r} of type {type(max_full).__name__}.")
    if max_full < 0:
        raise ValueError(f"max_full must be a non-negative integer; got {max_full!r}.")
    return int(max_full)


def _check_directional_flag(directional):
    if directional is None:
        return None
    if not isinstance(directional, (bool, np.bool_)):
        raise TypeError(f"directional must be None (decide by size), True or False; got "
                        f"{directional!r} of type {type(directional).__name__}.")
    return bool(directional)


def _check_n_directions(n_directions):
    if (not isinstance(n_directions, (int, np.integer))
            or isinstance(n_directions, (bool, np.bool_))):
        raise TypeError(f"n_directions must be a positive integer (random directions per "
                        f"array); got {n_directions!r} of type {type(n_directions).__name__}.")
    return check_positive_int(n_directions, "n_directions")


def _check_settings(method, h, rtol, atol, detect_kinks):
    """Validate the arguments every check shares, before any work is done;
    returns ``(h, rtol, atol)`` as floats (``atol`` may stay None)."""
    _check_method(method)
    h = _check_step(h, method)
    rtol, atol = _check_tolerances(rtol, atol)
    _check_flag(detect_kinks, "detect_kinks")
    return h, rtol, atol


def _as_f64(x, name):
    """Validate a float64 array (refusing float32/integers, NaN and Inf)."""
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} is complex ({arr.dtype}); gradient checks take real float64 "
                        f"arrays (the complex step adds the imaginary part itself).")
    if arr.dtype.kind in "iub" or arr.dtype != np.float64:
        kind = "float32" if arr.dtype == np.float32 else str(arr.dtype)
        raise TypeError(f"{name} has dtype {kind}; gradient checks need float64 "
                        f"(float32's eps=1.2e-7 limits central differences to ~1e-5 "
                        f"relative accuracy, too coarse to catch real bugs). Cast it with "
                        f"{name}.astype(np.float64), or build the model/layer with "
                        f"dtype=np.float64.")
    return as_float_array(arr, name, allow_empty=False)


def _check_grad(grad, x, name="grad", xname="x"):
    grad = _as_f64(grad, name)
    if grad.shape != x.shape:
        hint = " (is it transposed?)" if grad.shape == x.shape[::-1] else ""
        raise ValueError(f"{name} has shape {grad.shape} but {xname} has shape {x.shape}; "
                         f"the gradient must have exactly the shape of {xname}{hint}.")
    return grad


def _check_tolerances(rtol, atol):
    if not _is_real_number(rtol):
        raise TypeError(f"rtol must be a positive finite number (relative tolerance, e.g. "
                        f"1e-7); got {rtol!r} of type {type(rtol).__name__}.")
    rtol = float(rtol)
    if not (rtol > 0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be positive and finite (e.g. 1e-7); got {rtol!r}.")
    if atol is not None:
        if not _is_real_number(atol):
            raise TypeError(f"atol must be a finite number >= 0, or None for the automatic "
                            f"noise floor; got {atol!r} of type {type(atol).__name__}.")
        atol = float(atol)
        if not (atol >= 0 and math.isfinite(atol)):
            raise ValueError(f"atol must be >= 0 and finite (or None for automatic); "
                             f"got {atol!r}.")
    return rtol, atol


def _real_value(v, what):
    """Turn f's output into a Python float, or raise a clear error."""
    arr = np.asarray(v)
    if arr.size != 1:
        raise ValueError(f"{what} must return a scalar; got an array of shape {arr.shape}. "
                         f"For vector-valued functions use check_vjp (random projection "
                         f"sum(g * f(x))).")
    if arr.dtype.kind == "c":
        if arr.imag.reshape(()) != 0:
            raise TypeError(f"{what} returned a complex value {arr.reshape(())} for a real "
                            f"input; it must be real-valued.")
        arr = arr.real
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{what} returned {arr.dtype}; a real scalar is required.")
    if arr.dtype == np.float32 or arr.dtype == np.float16:
        raise TypeError(f"{what} returned a {arr.dtype} value; gradient checks need the "
                        f"function computed in float64 (something inside casts to "
                        f"{arr.dtype}).")
    val = float(arr.reshape(()))
    if not math.isfinite(val):
        raise _NonFiniteError(f"{what} returned {val}; the function must be finite at and "
                              f"near the point being checked (if a step of "
                              f"h * max(1, |x_i|) leaves its domain, pass a smaller h).")
    return val


class _NonFiniteError(ValueError):
    """``f`` returned NaN or Inf (e.g. a step left its domain)."""


class _ComplexStepError(TypeError):
    """Raised when the complex step cannot work on the given function."""


def _complex_value(v, what):
    arr = np.asarray(v)
    if arr.size != 1:
        raise ValueError(f"{what} must return a scalar; got an array of shape {arr.shape}.")
    if arr.dtype.kind != "c":
        raise _ComplexStepError(f"{what} returned a real {arr.dtype} value for a complex "
                                f"input, so the imaginary part (which carries the derivative) "
                                f"was dropped. " + _COMPLEX_HELP)
    val = complex(arr.reshape(()))
    if not (math.isfinite(val.real) and math.isfinite(val.imag)):
        raise ValueError(f"{what} returned {val} at a complex-step point.")
    return val


def _call_complex(fn, what):
    """Call ``fn()`` turning dropped imaginary parts into errors, not silent zeros."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        try:
            return _complex_value(fn(), what)
        except np.exceptions.ComplexWarning as exc:
            raise _ComplexStepError(f"{what} cast a complex array to real ({exc}), "
                                    f"discarding the derivative. " + _COMPLEX_HELP) from None
        except _ComplexStepError:
            raise
        except (TypeError, ValueError) as exc:
            raise _ComplexStepError(f"{what} failed on complex input "
                                    f"({type(exc).__name__}: {exc}). " + _COMPLEX_HELP) from exc


# ========================================================================== problems
# A "problem" is the family of 1-D slices phi_k(t) = L(base + t u_k), k = 0..m-1,
# with u_k a coordinate vector e_k (full mode) or a random unit direction v_k
# (directional mode). Each exposes:
#   m, scales (step multiplier per slice), f0() (L at the base point),
#   real_pair(k, t) -> (fp, fm, wp, wm): L at the "+" and "-" points and the realised
#       step lengths (the "+" point is base + wp u_k up to first-order corrections),
#   imag(k, t) -> Im L(base + i t u_k) / t,
# and optionally fscale_hint, a magnitude bounding L's rounding (check_layer).
def _symmetric_step(x, s):
    """Displacement ``d ~ s`` such that ``x + d`` and ``x - d`` are both exact floats.

    ``d = sign(s) * (fl(|x| + |s|) - |x|)``: the subtraction is exact (Sterbenz) and ``d``
    is a multiple of ulp(|x|), so the point towards zero, ``|x| - |d|``, is exact too
    whenever ``|s| <= |x|``. Unequal realised steps ``w+ != w-`` would otherwise bias
    ``D`` by ``(w+ - w-) f''/2 ~ eps |x| f''``, which is not small next to a zero
    gradient at a minimum. (For ``|s| > |x|`` the asymmetry left is ``O(eps |s|)``
    and is removed by the three-point formula in :func:`_central`.)
    """
    a = np.abs(x)
    return np.copysign((a + np.abs(s)) - a, s)


def _base_value(problem):
    """``L`` at the unperturbed point, evaluated once and cached on the problem."""
    if not hasattr(problem, "_f0"):
        problem._f0 = problem.f0()
    return problem._f0


def _central(problem, fp, fm, wp, wm):
    """Central difference from ``L(x + wp e)``, ``L(x - wm e)``; exact for quadratics."""
    if wp == wm:
        return (fp - fm) / (wp + wm)
    f0 = _base_value(problem)
    return (wm * wm * (fp - f0) + wp * wp * (f0 - fm)) / (wp * wm * (wp + wm))


class _ArrayCoords:
    """Coordinates of an array argument; ``f`` gets a fresh copy on every call."""

    def __init__(self, f, x, what="f"):
        self.f, self.x, self.what = f, x, what
        self.flat = x.reshape(-1)
        self.m = x.size
        self.scales = np.maximum(1.0, np.abs(self.flat))

    def _eval(self, k, value):
        arr = self.x.copy()
        arr.flat[k] = value
        return _real_value(self.f(arr), self.what)

    def f0(self):
        return _real_value(self.f(self.x.copy()), self.what)

    def real_pair(self, k, t):
        xk = self.flat[k]
        xp, xm = _stepped(xk, t, f"x{_idx(k, self.x.shape)}")
        return self._eval(k, xp), self._eval(k, xm), float(xp - xk), float(xk - xm)

    def imag(self, k, t):
        arr = self.x.astype(np.complex128)
        arr.flat[k] += 1j * t
        return _call_complex(lambda: self.f(arr), self.what).imag / t


def _stepped(xk, t, label):
    """``(xk + d, xk - d)`` for the symmetric step ``d`` of size ~``t``; refuses a step
    below the resolution of ``xk``."""
    d = _symmetric_step(xk, t)
    xp, xm = xk + d, xk - d
    if xp == xk or xm == xk:
        raise ValueError(f"step {t:.3g} is below the resolution of {label} = {xk!r}; use a "
                         f"larger h.")
    return xp, xm


class _ArrayDirections:
    """Random unit directions ``v_d`` through an array argument."""

    def __init__(self, f, x, grad, directions, scale, what="f"):
        self.f, self.x, self.grad, self.V, self.what = f, x, grad, directions, what
        self.m = len(directions)
        self.scales = np.full(self.m, scale)

    def f0(self):
        return _real_value(self.f(self.x.copy()), self.what)

    def real_pair(self, k, t):
        tv = t * self.V[k]
        d = _symmetric_step(self.x, tv)
        fp = _real_value(self.f(self.x + d), self.what)
        fm = _real_value(self.f(self.x - d), self.what)
        # The exact displacement d differs from t v by rounding (~eps|x|); move L back
        # onto the line x + t v to first order with the (analytic) gradient. The points
        # are symmetric, so no second-order bias is left.
        e = float(np.vdot(self.grad, d - tv))
        return fp - e, fm + e, t, t

    def imag(self, k, t):
        z = self.x + 1j * t * self.V[k]
        return _call_complex(lambda: self.f(z), self.what).imag / t


class _ParamCoords:
    """Coordinates of ``store[name]``, perturbed *in place* so the owner sees them."""

    def __init__(self, loss, store, name, what):
        self.loss, self.store, self.name, self.what = loss, store, name, what
        self.p = store[name]
        self.m = self.p.size
        self.scales = np.maximum(1.0, np.abs(self.p.reshape(-1)))
        self._z = None

    def f0(self):
        return _real_value(self.loss(), self.what)

    def _eval(self, k, value):
        p = self.p
        old = p.flat[k]
        p.flat[k] = value
        try:
            return _real_value(self.loss(), self.what)
        finally:
            p.flat[k] = old

    def real_pair(self, k, t):
        xk = self.p.flat[k]
        xp, xm = _stepped(xk, t, f"{self.name}{_idx(k, self.p.shape)}")
        return self._eval(k, xp), self._eval(k, xm), float(xp - xk), float(xk - xm)

    def imag(self, k, t):
        if self._z is None:
            self._z = self.p.astype(np.complex128)
        z = self._z
        old = z.flat[k]
        z.flat[k] = old + 1j * t
        self.store[self.name] = z
        try:
            return _call_complex(self.loss, self.what).imag / t
        finally:
            self.store[self.name] = self.p
            z.flat[k] = old


class _ParamDirections:
    """Random unit directions through ``store[name]`` (in place, then restored)."""

    def __init__(self, loss, store, name, grad, directions, scale, what):
        self.loss, self.store, self.name, self.what = loss, store, name, what
        self.p, self.grad, self.V = store[name], grad, directions
        self.base = self.p.copy()
        self.m = len(directions)
        self.scales = np.full(self.m, scale)

    def f0(self):
        return _real_value(self.loss(), self.what)

    def _eval_at(self, values):
        np.copyto(self.p, values)
        try:
            return _real_value(self.loss(), self.what)
        finally:
            np.copyto(self.p, self.base)

    def real_pair(self, k, t):
        tv = t * self.V[k]
        d = _symmetric_step(self.base, tv)
        fp, fm = self._eval_at(self.base + d), self._eval_at(self.base - d)
        e = float(np.vdot(self.grad, d - tv))
        return fp - e, fm + e, t, t

    def imag(self, k, t):
        self.store[self.name] = self.base + 1j * t * self.V[k]
        try:
            return _call_complex(self.loss, self.what).imag / t
        finally:
            self.store[self.name] = self.p


def _idx(k, shape):
    return tuple(int(i) for i in np.unravel_index(k, shape)) if shape else ()


def _random_directions(rng, n, shape):
    V = rng.standard_normal((n, *shape))
    norms = np.sqrt(np.sum(V.reshape(n, -1) ** 2, axis=1))
    return V / norms.reshape((n,) + (1,) * len(shape))


# ============================================================================== core
def _estimate(problem, method, h, *, extra_coarse=False):
    """Numeric derivative of every slice.

    Returns a dict: ``"t"`` the steps, ``"num"`` the estimates and, per real step
    level ``lvl``, ``(L(x + lvl t), L(x - lvl t), D(lvl t))`` arrays.
    """
    m = problem.m
    t = h * problem.scales
    cache = {"t": t}
    if method == "complex":
        cache["num"] = np.array([problem.imag(k, t[k]) for k in range(m)])
        return cache
    levels = [1.0] if method == "central" else [1.0, 0.5]
    if extra_coarse:
        levels = [2.0] + levels
    for lvl in levels:
        fp, fm, D = np.empty(m), np.empty(m), np.empty(m)
        for k in range(m):
            a, b, wp, wm = problem.real_pair(k, lvl * t[k])
            fp[k], fm[k], D[k] = a, b, _central(problem, a, b, wp, wm)
        cache[lvl] = (fp, fm, D)
    if method == "central":
        cache["num"] = cache[1.0][2]
    else:
        cache["num"] = (4.0 * cache[0.5][2] - cache[1.0][2]) / 3.0
    return cache


def _fscale(problem, cache):
    scale = abs(_base_value(problem))
    for key in (1.0, 0.5):
        if key in cache:
            scale = max(scale, float(np.max(np.abs(cache[key][0]))),
                        float(np.max(np.abs(cache[key][1]))))
    hint = getattr(problem, "fscale_hint", None)
    if hint is not None:
        scale = max(scale, hint)
    return scale


def _central_pair(problem, k, t):
    """``(L(x + t e), L(x - t e), D(t))`` for slice ``k``."""
    fp, fm, wp, wm = problem.real_pair(k, t)
    return fp, fm, _central(problem, fp, fm, wp, wm)


def _nonsmooth(problem, p1, p2, t, fscale):
    """``(inconsistency, d(t))`` from ``p1 = (L(x+t), L(x-t), D(t))`` and ``p2`` at ``t/2``.

    One-sided slope differences ``d(t) = s+(t) - s-(t)`` are ``~ t f''`` for smooth f
    and ``O(jump)`` at a kink; smooth f has ``d(t) = 2 d(t/2)`` and ``D(t) = D(t/2)``
    up to ``O(t^2)``. The inconsistency is the larger violation minus rounding noise.
    """
    f0 = _base_value(problem)
    (fp1, fm1, D1), (fp2, fm2, D2) = p1, p2
    d1 = (fp1 - 2.0 * f0 + fm1) / t
    d2 = (fp2 - 2.0 * f0 + fm2) / (t / 2)
    noise = _NOISE_FACTOR * 8.0 * EPS * fscale / t
    return max(abs(d1 - 2.0 * d2), abs(D1 - D2)) - noise, d1


def _looks_kinked(problem, p1, p2, t, err, fscale):
    """Kink test (see :func:`check_gradient`, Notes): the inconsistency must explain the
    error AND be a sizeable fraction of ``|d(t)|`` (O(t^2) for smooth f, >= 0.2 at any
    kink)."""
    ns, d1 = _nonsmooth(problem, p1, p2, t, fscale)
    return ns >= _KINK_FRACTION * err and ns >= _KINK_SHAPE * abs(d1)


def _persists(problem, k, p1, p2, t, fscale, enabled):
    """Does the non-smoothness seen at ``t`` persist at ``16 t`` (4 evaluations)?

    A kink at distance ``u t`` (``u < 1``) gives an inconsistency of at least 0.8 of
    the slope jump at ``16 t`` and at most the jump at ``t``; rounding noise scales
    like ``1/t`` and drops ~16x. ``enabled=False`` skips the test (assumes a kink).
    """
    if not enabled:
        return True
    ns_t = _nonsmooth(problem, p1, p2, t, fscale)[0]
    try:
        with np.errstate(all="ignore"):
            r1, r2 = _central_pair(problem, k, 16.0 * t), _central_pair(problem, k, 8.0 * t)
    except _NonFiniteError:      # 16 t leaves f's domain: cannot confirm a kink
        return False
    memo = problem.__dict__.setdefault("_memo_D", {})
    memo[(k, 16.0 * t)], memo[(k, 8.0 * t)] = r1[2], r2[2]
    return _nonsmooth(problem, r1, r2, 16.0 * t, fscale)[0] >= 0.4 * ns_t


def _default_atol(method, h, fscale):
    if method == "complex":
        return _NOISE_FACTOR * EPS * fscale
    return _NOISE_FACTOR * _NOISE_GAIN[method] * EPS * fscale / h


def _compare(problem, analytic, *, method, h, rtol, atol, detect_kinks, excluded=None,
             name="x", shape=(), index_of=None, mode="full"):
    """Run the numeric estimate and compare it with ``analytic`` (flat); returns the
    fields of a :class:`~npcae.gradcheck.GradCheckResult` as a dict."""
    rtol, atol = _check_tolerances(rtol, atol)
    _base_value(problem)
    cache = _estimate(problem, method, h)
    num = cache["num"].copy()
    fscale = _fscale(problem, cache)
    if method == "complex":
        # no function values at real steps: the size of the linear variation stands in
        fscale = max(fscale, float(np.max(np.abs(num) * problem.scales)))
    if atol is None:
        # never below what the step itself can resolve before underflow (subnormal x)
        atol = max(_default_atol(method, h, fscale),
                   4.0 * np.finfo(np.float64).tiny / h)
    floor = max(atol / rtol, np.finfo(np.float64).tiny)
    a = analytic
    excluded = np.zeros(problem.m, bool) if excluded is None else excluded.copy()

    def rel_of(aa, nn):
        return np.abs(aa - nn) / np.maximum(np.maximum(np.abs(aa), np.abs(nn)), floor)

    rel = rel_of(a, num)
    failing = np.flatnonzero((rel > rtol) & ~excluded)
    kinks = [int(k) for k in np.flatnonzero(excluded)]
    noisy = []
    n_refined = 0
    ctx = dict(problem=problem, cache=cache, method=method, rtol=rtol, atol=atol,
               fscale=fscale, detect_kinks=detect_kinks)
    n_confirmed = 0
    for k in failing[np.argsort(-rel[failing], kind="stable")]:
        # Once a few failures are confirmed the check fails anyway; the remaining
        # entries skip the step escalation and the kink persistence test (refinement
        # and the kink test still run), which bounds the cost of a badly wrong gradient.
        verdict, num[k] = _analyse_failure(k, a[k], num[k], **ctx,
                                           measure_noise=n_confirmed < _MAX_NOISE_PROBES)
        n_confirmed += verdict == "fail"
        n_refined += 1
        rel[k] = rel_of(a[k], num[k])
        if verdict == "kink":
            excluded[k] = True
            kinks.append(int(k))
        elif verdict == "noisy":
            noisy.append(int(k))
            rel[k] = min(rel[k], rtol)   # verified at a larger step (guards rounding)

    ok = ~excluded
    n_checked = int(problem.m)
    if ok.any():
        rel_ok = np.where(ok, rel, -1.0)
        w = int(np.argmax(rel_ok))
        max_rel = float(rel[w])
        max_abs = float(np.max(np.abs(a - num)[ok]))
        worst = index_of(w)
        n_failed = int(np.sum((rel > rtol) & ok))
    else:
        w, max_rel, max_abs, worst, n_failed = None, 0.0, 0.0, None, 0
    return dict(
        passed=n_failed == 0, max_abs_error=max_abs, max_rel_error=max_rel,
        worst_index=worst, analytic=float(a[w]) if w is not None else float("nan"),
        numeric=float(num[w]) if w is not None else float("nan"), method=method, step=h,
        n_checked=n_checked, kinks=[index_of(k) for k in sorted(set(kinks))], name=name,
        shape=tuple(shape), mode=mode, rtol=rtol, atol=float(atol), floor=float(floor),
        n_failed=n_failed, n_refined=n_refined,
        noisy=[index_of(k) for k in sorted(noisy)])


def _analyse_failure(k, a, n, *, problem, cache, method, rtol, atol, fscale, detect_kinks,
                     measure_noise):
    """Second look at an entry above tolerance: refine, then kink and noise tests.

    Returns ``(verdict, refined_numeric)``, verdict in ``"pass"`` (the refined
    estimate agrees), ``"kink"``, ``"noisy"`` (agrees at a larger step, where f's own
    rounding noise matters less) or ``"fail"``. ``measure_noise=False`` skips the step
    escalation (up to 12 evaluations).
    """
    t = cache["t"][k]
    scale = problem.scales[k]

    def agrees(num, tol_abs):
        return abs(a - num) <= max(rtol * max(abs(a), abs(num)), tol_abs)

    # 1. Refine: a failure must survive a higher-order estimate. Central gets the O(h^4)
    #    Richardson value; Richardson one more Romberg level, O(h^6); the complex step
    #    (error -h^2 f'''/6, visible next to a zero gradient) is re-evaluated at h / rho
    #    and extrapolated in h^2.
    if method == "complex":
        rho2 = _COMPLEX_REFINE ** 2
        n = (rho2 * problem.imag(k, t / _COMPLEX_REFINE) - n) / (rho2 - 1.0)
        if agrees(n, atol):
            return "pass", n
        if not detect_kinks:
            return "fail", n
        # The complex step is exact next to a kink and only sees one lying exactly at x;
        # probe with real differences at the central step.
        tk = DEFAULT_STEPS["central"] * scale
        p1, p2 = _central_pair(problem, k, tk), _central_pair(problem, k, tk / 2)
        kinked = (_looks_kinked(problem, p1, p2, tk, abs(a - n), fscale)
                  and _persists(problem, k, p1, p2, tk, fscale, measure_noise))
        return ("kink" if kinked else "fail"), n
    p1 = tuple(c[k] for c in cache[1.0])
    if method == "central":
        p2 = _central_pair(problem, k, t / 2)
        n = (4.0 * p2[2] - p1[2]) / 3.0
    else:
        p2 = tuple(c[k] for c in cache[0.5])
        D4 = _central_pair(problem, k, t / 4)[2]
        problem.__dict__.setdefault("_memo_D", {})[(k, t / 4)] = D4
        n = (16.0 * (4.0 * D4 - p2[2]) / 3.0 - n) / 15.0
    if agrees(n, atol):
        return "pass", n
    # 2. Kinks. Rounding noise can look like one at a small step; a kink persists at
    #    16x the step, noise (~1/t) fades.
    if detect_kinks and _looks_kinked(problem, p1, p2, t, abs(a - n), fscale):
        if method == "central":
            if _persists(problem, k, p1, p2, t, fscale, measure_noise):
                return "kink", n
        else:
            # Richardson's step is ~100x the central one, and a smooth but curved f can
            # look kinked at that scale next to a small error. Confirm at the central
            # scale: a clean fine estimate that agrees with a, or a kink there too.
            tf = min(DEFAULT_STEPS["central"] * scale, t / 8)
            q1, q2 = _central_pair(problem, k, tf), _central_pair(problem, k, tf / 2)
            fine = (4.0 * q2[2] - q1[2]) / 3.0
            if agrees(fine, max(atol, _default_atol("richardson", tf, fscale))):
                return "kink", n
            if (_looks_kinked(problem, q1, q2, tf, abs(a - fine), fscale)
                    and _persists(problem, k, q1, q2, tf, fscale, measure_noise)):
                return "kink", n
    # 3. Rounding noise of f itself: ill-conditioned code (1 - tanh(a)^2 at saturation,
    #    cancelling sums) is noisier than the eps*|f| behind the default atol. Noise in
    #    the estimate falls like 1/t and truncation is already O(t^4) or better, so try
    #    larger steps: agreement there means the discrepancy was noise; a bug (or a
    #    kink further out) disagrees at every step.
    if measure_noise:
        memo = problem.__dict__.setdefault("_memo_D", {})
        memo[(k, t)], memo[(k, t / 2)] = p1[2], p2[2]
        for factor in _ESCALATION[method]:
            try:
                with np.errstate(all="ignore"):
                    n_big = _refined(problem, k, factor * t, method)
            except _NonFiniteError:      # the larger step leaves f's domain
                break
            if agrees(n_big, atol):
                return "noisy", n_big
    return "fail", n


def _refined(problem, k, t, method):
    """The refined estimate at step ``t``: (4 D(t/2) - D(t))/3 for central, the
    Romberg value from D(t), D(t/2), D(t/4) for Richardson (memoised per problem)."""
    memo = problem.__dict__.setdefault("_memo_D", {})

    def D(step):
        key = (k, step)
        if key not in memo:
            memo[key] = _central_pair(problem, k, step)[2]
        return memo[key]

    if method == "central":
        return (4.0 * D(t / 2) - D(t)) / 3.0
    R1 = (4.0 * D(t / 2) - D(t)) / 3.0
    R2 = (4.0 * D(t / 4) - D(t / 2)) / 3.0
    return (16.0 * R2 - R1) / 15.0


# ================================================================== layers and models
def _bitwise_equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _check_store(store, owner):
    if not isinstance(store, Mapping):
        raise TypeError(f"{owner}.params must be a dict-like mapping name -> ndarray; got "
                        f"{type(store).__name__}.")
    for name in store:
        p = store[name]
        if not isinstance(p, np.ndarray):
            raise TypeError(f"{owner}.params[{name!r}] is a {type(p).__name__}, not an ndarray.")
        _as_f64(p, f"{owner}.params[{name!r}]")


class _Restorer:
    """Snapshot of a params mapping: restores objects *and* bits on exit."""

    def __init__(self, store):
        self.store = store
        self.objects = {k: store[k] for k in store}
        self.backup = {k: v.copy() for k, v in self.objects.items()}

    def restore(self):
        changed = []
        for k, obj in self.objects.items():
            if self.store[k] is not obj:
                self.store[k] = obj
                changed.append(k)
            if not _bitwise_equal(obj, self.backup[k]):
                np.copyto(obj, self.backup[k])
                changed.append(k)
        return changed


def _problem_for(kind, *, loss, store, name, f_of_x, x, grad, use_dir, n_directions, rng,
                 what):
    if use_dir:
        V = _random_directions(rng, n_directions, grad.shape)
        base = x if kind == "x" else store[name]
        scale = max(1.0, float(np.max(np.abs(base))))
        if kind == "x":
            prob = _ArrayDirections(f_of_x, x, grad, V, scale, what)
        else:
            prob = _ParamDirections(loss, store, name, grad, V, scale, what)
        analytic = np.array([float(np.vdot(grad, v)) for v in V])
        return prob, analytic, (lambda k: (int(k),)), "directional"
    if kind == "x":
        prob = _ArrayCoords(f_of_x, x, what)
    else:
        prob = _ParamCoords(loss, store, name, what)
    shape = grad.shape
    return prob, grad.reshape(-1), (lambda k: _idx(k, shape)), "full"


def _describe_random_state(random_state):
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return repr(random_state)
    return type(random_state).__name__


def _check_shared(method, h, rtol, atol, detect_kinks, max_full, n_directions, directional,
                  random_state):
    """Validate the settings of check_layer / check_model before any work; returns
    ``(h, rtol, atol, max_full, n_directions, directional, rng)``."""
    h, rtol, atol = _check_settings(method, h, rtol, atol, detect_kinks)
    return (h, rtol, atol, _check_max_full(max_full), _check_n_directions(n_directions),
            _check_directional_flag(directional), check_random_state(random_state))


def _prepare(store, owner, x, xname):
    """Validate the parameters and the input of check_layer / check_model; returns
    ``(x as float64, restorer of store)``."""
    _check_store(store, owner)
    return _as_f64(x, xname), _Restorer(store)
