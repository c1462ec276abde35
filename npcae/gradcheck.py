r"""Finite-difference and complex-step gradient checking.

npcae is used as a *gradient-correctness reference*, so this module is the
referee: it compares hand-written (analytic) gradients with numerical ones and
says, in one short paragraph, where and by how much they disagree.

Public API
----------
numerical_gradient(f, x, method="central", h=None, return_error=False)
    Gradient of a scalar function by central differences, Richardson
    extrapolation or the complex step.
check_gradient(f, x, grad, ...) -> GradCheckResult
    Entry-by-entry comparison of ``grad`` with ``numerical_gradient``.
check_directional(f, x, grad, n_directions=16, random_state=0, ...) -> GradCheckResult
    Compares ``v . grad`` with the directional derivative along random unit
    directions ``v``; costs ``O(n_directions)`` evaluations instead of ``O(x.size)``.
check_vjp(f, x, vjp, random_state=0, ...) -> GradCheckResult
    Vector-valued ``f``: checks a vector-Jacobian product through the random
    projection ``L = sum(g * f(x))``.
check_layer(module, x, ...) -> LayerCheckResult
    Input gradient and every parameter gradient of a ``Module``.
check_model(model, X, ...) -> ModelCheckResult
    Every entry of ``model.loss_and_grad(X)[1]``.

Conventions
-----------
* Everything runs in float64. float32 (or integer) inputs are **refused** with a
  ``TypeError``: with float32's ``eps = 1.2e-7`` the best central difference is
  only accurate to ``eps**(2/3) ~ 2e-5``, far too coarse to tell a correct
  gradient from one that is off by 0.1 %.
* A step ``h`` is always *relative*: the perturbation of entry ``i`` is
  ``h * max(1, |x_i|)``.
* Relative error of one entry, with analytic value ``a`` and numeric value ``n``::

      rel = |a - n| / max(|a|, |n|, floor),     floor = atol / rtol

  so an entry passes iff ``|a - n| <= max(rtol * max(|a|, |n|), atol)`` and
  ``passed`` is exactly ``max_rel_error <= rtol``. ``atol`` defaults to the
  finite-difference noise floor ``64 * eps * |L| / h`` (central; ``3x`` that for
  Richardson, ``64 * eps * |L|`` for the complex step), where ``|L|`` is the
  magnitude of the function value, so exact zeros neither explode nor hide
  real errors above the noise. It is never below ``4 * tiny / h`` (underflow).
* Entries above tolerance are re-estimated one order higher, then tested for
  kinks (relu-like non-smoothness within one step), which are excluded and
  listed rather than failed, and re-estimated at larger steps in case ``f``'s
  own rounding noise swamps the default one; see :func:`check_gradient`.

The mathematics is in ``docs/derivations.md#gradient-checking``.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ._validation import as_float_array, check_positive_int, check_random_state

__all__ = ["numerical_gradient", "check_gradient", "check_directional", "check_vjp",
           "check_layer", "check_model", "GradCheckResult", "LayerCheckResult",
           "ModelCheckResult", "METHODS", "DEFAULT_STEPS"]

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
_MAX_LISTED = 5

_COMPLEX_HELP = (
    "The complex step needs f to be real-analytic code that carries the imaginary part "
    "through: avoid np.abs, np.conj/np.conjugate, np.vdot, np.linalg.norm, .real, float(), "
    "np.sign, np.logaddexp, casts to a float dtype (x.astype(float), np.asarray(x, "
    "dtype=float64)) and branches on comparisons of complex values (np.maximum/np.minimum/"
    "np.where(x > 0, ...) compare lexicographically - branch on x.real instead). "
    "Or use method='central' or 'richardson'.")


# ============================================================================ results
@dataclass
class GradCheckResult:
    """Outcome of one gradient comparison.

    Attributes
    ----------
    passed : bool
        ``True`` iff every compared entry (kinks excluded) has
        ``rel <= rtol``, i.e. ``max_rel_error <= rtol``. If every entry is a
        kink nothing was compared (``worst_index`` is None) and the report
        says so.
    max_abs_error, max_rel_error : float
        Largest ``|a - n|`` and largest ``|a - n| / max(|a|, |n|, floor)`` over
        the compared entries (kinks excluded).
    worst_index : tuple or None
        Index (into ``x``) of the entry with the largest relative error; in
        directional mode ``(d,)``, the number of the worst direction.
    analytic, numeric : float
        The two values at ``worst_index``.
    method : str
        ``"central"``, ``"richardson"`` or ``"complex"``.
    step : float
        Base step ``h``; entry ``i`` was perturbed by ``h * max(1, |x_i|)``.
    n_checked : int
        Number of entries (or directions) compared.
    kinks : list of tuple
        Entries excluded from pass/fail because ``f`` is not smooth there (a
        relu-like kink within one step) or because ``kink_fn`` marked them.
    name, shape, mode : str, tuple, str
        What was checked; ``mode`` is ``"full"`` or ``"directional"``.
    rtol, atol, floor : float
        The tolerances used (``floor = atol / rtol``).
    n_failed : int
        Number of compared entries above tolerance.
    n_refined : int
        Entries above tolerance that were re-estimated at higher order (and
        then judged on that better estimate).
    noisy : list of tuple
        Entries that disagree at the default step but agree (within ``rtol``/
        ``atol``) at a larger one, where ``f``'s own rounding noise matters less
        (ill-conditioned ``f``). They count as agreeing and are listed here.
    """

    passed: bool
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple | None
    analytic: float
    numeric: float
    method: str
    step: float
    n_checked: int
    kinks: list = field(default_factory=list)
    name: str = "x"
    shape: tuple = ()
    mode: str = "full"
    rtol: float = 1e-7
    atol: float = 0.0
    floor: float = 0.0
    n_failed: int = 0
    n_refined: int = 0
    noisy: list = field(default_factory=list)

    def report(self):
        """One short paragraph: verdict, worst entry, tolerances, kinks."""
        status = "passed" if self.passed else "FAILED"
        where = "direction" if self.mode == "directional" else "index"
        head = f"gradient check of {self.name!r} (shape {self.shape}, {self.mode}): {status}."
        if self.worst_index is None:
            body = (" No entry could be compared: every entry sits within one step of a "
                    "kink, which explains each discrepancy. Move x away from the kinks for a "
                    "real check.")
        else:
            cmp = "<=" if self.max_rel_error <= self.rtol else ">"
            body = (f" Max relative error {self.max_rel_error:.3g} {cmp} rtol {self.rtol:.3g} "
                    f"at {where} {self.worst_index}: analytic {self.analytic:.10g} vs numeric "
                    f"{self.numeric:.10g} (abs error {abs(self.analytic - self.numeric):.3g}).")
            if not self.passed:
                plural = "directions" if self.mode == "directional" else "entries"
                body += f" {self.n_failed} of {self.n_checked} {plural} failed."
            else:
                body += f" {self.n_checked} checked."
        how = {"central": "central differences", "richardson": "Richardson extrapolation",
               "complex": "complex step"}[self.method]
        body += (f" Method: {how}, h={self.step:.3g}*max(1,|x_i|), atol={self.atol:.3g} "
                 f"(floor {self.floor:.3g}).")
        if self.n_refined:
            body += f" {self.n_refined} failing entries re-estimated at higher order."
        if self.noisy:
            shown = ", ".join(str(k) for k in self.noisy[:_MAX_LISTED])
            more = ", ..." if len(self.noisy) > _MAX_LISTED else ""
            body += (f" {len(self.noisy)} entries agree only at a larger step (f's rounding "
                     f"noise swamps the default one there): {shown}{more}.")
        if self.kinks:
            shown = ", ".join(str(k) for k in self.kinks[:_MAX_LISTED])
            more = ", ..." if len(self.kinks) > _MAX_LISTED else ""
            body += (f" {len(self.kinks)} entries excluded as kinks (f not smooth within one "
                     f"step): {shown}{more}.")
        if (not self.passed and self.method != "complex" and self.mode == "full"
                and self.max_rel_error < 1e-3):
            body += (" A small discrepancy can also be rounding noise in an ill-conditioned "
                     "f or gradient (e.g. 1 - tanh(a)**2 at saturation); method='complex' "
                     "has no step-size noise.")
        if (not self.passed and self.method == "complex" and self.numeric == 0.0
                and self.analytic != 0.0):
            body += (" The complex step returned exactly 0 here: f may drop the imaginary "
                     "part (np.abs, .real, np.maximum, ...).")
        return head + body

    def __str__(self):
        return self.report()


class LayerCheckResult(Mapping):
    """Read-only mapping ``name -> GradCheckResult`` with an overall verdict.

    ``"input"`` is the gradient with respect to the layer input (renamed
    ``"input (x)"`` if a parameter is called ``"input"``); the other keys are
    the parameter names. ``notes`` lists protocol problems found on the way
    (``backward`` overwriting instead of accumulating, mutating its argument,
    ...); any note makes ``passed`` False.
    """

    _title = "check_layer"

    def __init__(self, results, *, title="", notes=(), settings=""):
        self._results = dict(results)
        self.title = title
        self.notes = list(notes)
        self.settings = settings

    def __getitem__(self, key):
        return self._results[key]

    def __iter__(self):
        return iter(self._results)

    def __len__(self):
        return len(self._results)

    @property
    def passed(self):
        """All gradients within tolerance and no protocol problems."""
        return not self.notes and all(r.passed for r in self._results.values())

    @property
    def failures(self):
        """Names of the gradients that failed."""
        return [k for k, r in self._results.items() if not r.passed]

    def report(self):
        """A table with one row per gradient, then the worst failure in words."""
        status = "passed" if self.passed else "FAILED"
        lines = [f"{self._title}({self.title}): {status}  [{self.settings}]"]
        rows = [("name", "shape", "mode", "checked", "max rel err", "max abs err",
                 "worst index", "kinks", "status")]
        for name, r in self._results.items():
            rows.append((name, str(r.shape), r.mode, str(r.n_checked), f"{r.max_rel_error:.2e}",
                         f"{r.max_abs_error:.2e}", str(r.worst_index), str(len(r.kinks)),
                         "ok" if r.passed else "FAIL"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        for note in self.notes:
            lines.append(f"  protocol: {note}")
        for name in self.failures:
            lines.append(f"  {name}: {self._results[name].report()}")
        return "\n".join(lines)

    def __str__(self):
        return self.report()

    def __repr__(self):
        return (f"{type(self).__name__}(passed={self.passed}, "
                f"failures={self.failures}, notes={len(self.notes)})")


class ModelCheckResult(LayerCheckResult):
    """:class:`LayerCheckResult` for :func:`check_model` (keys are parameter names)."""

    _title = "check_model"


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


def _pair(problem, k, t):
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
            r1, r2 = _pair(problem, k, 16.0 * t), _pair(problem, k, 8.0 * t)
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
    """Run the numeric estimate, compare with ``analytic`` (flat), build the result."""
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
    return GradCheckResult(
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
        p1, p2 = _pair(problem, k, tk), _pair(problem, k, tk / 2)
        kinked = (_looks_kinked(problem, p1, p2, tk, abs(a - n), fscale)
                  and _persists(problem, k, p1, p2, tk, fscale, measure_noise))
        return ("kink" if kinked else "fail"), n
    p1 = tuple(c[k] for c in cache[1.0])
    if method == "central":
        p2 = _pair(problem, k, t / 2)
        n = (4.0 * p2[2] - p1[2]) / 3.0
    else:
        p2 = tuple(c[k] for c in cache[0.5])
        D4 = _pair(problem, k, t / 4)[2]
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
            q1, q2 = _pair(problem, k, tf), _pair(problem, k, tf / 2)
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
            memo[key] = _pair(problem, k, step)[2]
        return memo[key]

    if method == "central":
        return (4.0 * D(t / 2) - D(t)) / 3.0
    R1 = (4.0 * D(t / 2) - D(t)) / 3.0
    R2 = (4.0 * D(t / 4) - D(t / 2)) / 3.0
    return (16.0 * R2 - R1) / 15.0


# ========================================================================= public API
def numerical_gradient(f, x, method="central", h=None, *, return_error=False):
    r"""Numerical gradient of a real scalar function.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``; must be deterministic. It receives a **fresh copy**
        of ``x`` on every call (so it may keep or even modify it); the caller's
        ``x`` is never perturbed.
    x : ndarray of float64
        Point at which to differentiate (any shape). float32 is refused.
    method : {"central", "richardson", "complex"}
        See Notes.
    h : float, optional
        Base step; entry ``i`` is perturbed by ``h * max(1, |x_i|)``. Defaults:
        ``eps**(1/3) ~ 6.1e-6`` (central), ``eps**(1/5) ~ 7.4e-4`` (Richardson),
        ``1e-20`` (complex).
    return_error : bool
        Also return an a-posteriori error estimate per entry (see Notes).

    Returns
    -------
    grad : ndarray, shape of ``x``
    err : ndarray, shape of ``x``
        Only with ``return_error=True``.

    Notes
    -----
    With :math:`\phi(t) = f(x + t e_i)` (``docs/derivations.md#gradient-checking``):

    **central**: :math:`D(h) = (\phi(h) - \phi(-h)) / 2h = \phi'(0) + h^2 \phi'''/6
    + O(h^4)`. Rounding adds about :math:`\epsilon |f| / h`; the two balance at
    :math:`h \sim \epsilon^{1/3}`, giving ~1e-10 relative accuracy. The step is
    adjusted so that ``x_i + h`` and ``x_i - h`` are both exact floats
    (``h = fl(|x_i| + h) - |x_i|``); unequal realised steps would bias ``D`` by
    ``(h+ - h-) f''/2 ~ eps |x_i| f''``, fatal next to a zero gradient at a
    minimum. Where exact symmetry is impossible (``|x_i| < h``) the three-point
    formula for unequal steps is used, which is exact for quadratics.
    2 evaluations per entry. Error estimate: :math:`|D(h) - D(2h)|/3 + 4\epsilon|f|/h`
    (2 more evaluations), where ``|f|`` stands for ``max(|f(x +- h e_i)|, |D| max(1, |x_i|))``
    - rounding of ``f`` is assumed to be a few ``eps`` of that magnitude.

    **richardson**: :math:`R = (4 D(h/2) - D(h)) / 3` cancels the :math:`h^2`
    term, so :math:`R = \phi'(0) - h^4 \phi^{(5)}/480 + O(h^6)`; rounding is
    about :math:`3\epsilon|f|/h`, balanced at :math:`h \sim \epsilon^{1/5}`. 4
    evaluations per entry. Error estimate: with :math:`R_2 = (4D(h) - D(2h))/3`
    (2 more evaluations) the :math:`h^4` terms are in ratio 16:1, so the truncation
    error of :math:`R` is about :math:`|R - R_2| / 15`; because at the optimal step the
    rounding noise of :math:`R_2` is comparable, the estimate returned is the
    conservative :math:`|R - R_2| + 3\epsilon|f|/h`.

    The error estimates are meant as error bars: on smooth test functions they
    exceeded the actual error in every case measured, typically by 10-30x.

    **complex**: for real-analytic :math:`f`, :math:`f(x + ih e_i) = f(x) + ih f'
    - h^2 f''/2 - i h^3 f'''/6 + \dots`, so
    :math:`\operatorname{Im} f(x + ih e_i) / h = f' - h^2 f'''/6 + \dots` with **no
    subtraction**: ``h = 1e-20`` gives the derivative to machine precision
    (the truncation ``1e-40 |f'''|`` only shows next to an exactly zero
    gradient; :func:`check_gradient` then re-evaluates at ``h / 2**20`` and
    extrapolates). One evaluation per entry. The error estimate is a rounding bound
    ``8 eps |grad|``, valid only for complex-safe ``f``.

    The complex step silently breaks (or raises here) when ``f`` does anything
    non-analytic on the complex array: ``np.abs``, ``np.conj``/``np.conjugate``,
    ``np.vdot`` (conjugates), ``np.linalg.norm``, ``.real``/``.imag``,
    ``float()``, ``np.sign``, casts such as ``x.astype(float)``, ``np.logaddexp``
    (unsupported), and comparisons (``np.maximum``, ``np.minimum``, ``>``,
    ``np.clip``, ``np.where(x > 0, ...)``) which order complex numbers
    lexicographically, so ties at a kink are decided by the imaginary
    perturbation. Write branches on ``x.real`` and use ``x @ y`` / ``np.sum(x * y)``
    rather than ``np.vdot``. A real-typed output, or a ``ComplexWarning``
    raised inside ``f``, becomes a ``TypeError`` here.

    Raises
    ------
    TypeError
        ``x`` not float64; ``f`` returns a non-scalar, float32, or (complex
        method) a real value.
    ValueError
        NaN/Inf in ``x`` or in ``f``'s output; unknown method.
    """
    _check_callable(f, "f", "f(x) -> float")
    _check_method(method)
    h = _check_step(h, method)
    return_error = _check_flag(return_error, "return_error")
    x = _as_f64(x, "x")
    problem = _ArrayCoords(f, x)
    if method == "complex":
        g = np.array([problem.imag(k, h * problem.scales[k]) for k in range(problem.m)])
        if return_error:
            return g.reshape(x.shape), 8.0 * EPS * np.abs(g).reshape(x.shape)
        return g.reshape(x.shape)
    if not return_error:
        return _estimate(problem, method, h)["num"].reshape(x.shape)
    cache = _estimate(problem, method, h, extra_coarse=True)
    fp, fm, D1 = cache[1.0]
    D2x = cache[2.0][2]
    t = cache["t"]
    # Rounding of f is ~eps times the size of its *intermediates*, which can exceed |f|
    # (log(exp(x)) near 0); |D| * max(1, |x_i|), the size of f's linear variation over a
    # unit of x, is a cheap proxy for them.
    fmag = np.maximum(np.maximum(np.abs(fp), np.abs(fm)), np.abs(D1) * problem.scales)
    if method == "central":
        err = np.abs(D1 - D2x) / 3.0 + 4.0 * EPS * fmag / t
    else:
        R_coarse = (4.0 * D1 - D2x) / 3.0
        err = np.abs(cache["num"] - R_coarse) + 3.0 * EPS * fmag / t
    return cache["num"].reshape(x.shape), err.reshape(x.shape)


def check_gradient(f, x, grad, *, method="central", rtol=1e-7, atol=None, h=None, name="x",
                   kink_fn=None, detect_kinks=True):
    """Compare an analytic gradient with a numerical one, entry by entry.

    Parameters
    ----------
    f : callable
        ``f(x) -> float`` (deterministic; receives fresh copies of ``x``).
    x : ndarray of float64
        The point.
    grad : ndarray of float64, shape of ``x``
        The analytic gradient ``df/dx`` at ``x`` to be checked.
    method : {"central", "richardson", "complex"}
        Numerical estimate (see :func:`numerical_gradient`).
    rtol : float
        Relative tolerance (see the module docstring for the error measure).
    atol : float, optional
        Absolute tolerance; default: the noise floor ``64 eps |f| / h``
        (central), ``192 eps |f| / h`` (Richardson), ``64 eps |f|`` (complex).
    h : float, optional
        Base step (method default).
    name : str
        Label used in the report.
    kink_fn : callable, optional
        ``kink_fn(x) -> bool array`` of ``x``'s shape marking entries known to
        be non-differentiable points (e.g. ``lambda x: x == 0`` for
        ``sum(relu(x))``); they are excluded from pass/fail and listed in
        ``kinks``.
    detect_kinks : bool
        Automatic kink detection (default on), see Notes.

    Returns
    -------
    GradCheckResult

    Notes
    -----
    Entries above tolerance are examined further (only failing entries pay:
    2 evaluations for the refinement, up to 4 for kink confirmation, up to 12
    for larger steps):

    1. *Refinement*: the estimate is replaced by a higher-order one - central:
       the Richardson value ``(4 D(h/2) - D(h)) / 3``; Richardson: one more
       Romberg level with ``D(h/4)``; complex step: ``(rho^2 C(h/rho) - C(h)) /
       (rho^2 - 1)`` with ``rho = 2**20`` - so truncation error alone never
       fails a correct gradient.
    2. *Kink test*: with one-sided slopes ``s+(t) = (f(x + t e) - f(x)) / t``,
       ``s-(t) = (f(x) - f(x - t e)) / t`` and ``d(t) = s+(t) - s-(t)``, a smooth
       ``f`` has ``d(t) = t f'' + O(t^3)``, so ``d(h) = 2 d(h/2)`` and
       ``D(h) = D(h/2)`` up to ``O(h^2)``. A kink (relu at 0) within ``h`` of
       ``x_i`` makes one of these differ by ``O(jump in slope)``. The entry is
       flagged as a kink when ``max(|d(h) - 2 d(h/2)|, |D(h) - D(h/2)|)``, minus
       the rounding noise, is at least ``0.25 |a - n|`` (the finite differences
       are themselves inconsistent at the size of the discrepancy) and at least
       ``0.05 |d(h)|`` (relative to the one-sided slope difference a smooth
       ``f`` gives only ``O(h^2)``, any kink at least 0.2). A real bug at a
       smooth point is never excused; a bug much larger than the slope jump at
       a kink is not excused either. For a kink at distance ``u h`` the
       inconsistency is at least 0.85 times the error for every ``u`` (see
       ``docs/derivations.md#gradient-checking``). The label is confirmed by
       the inconsistency persisting at ``16 h`` (rounding noise fades like
       ``1/h``, a kink does not) and, for Richardson's larger step, at the
       central step.
    3. *Noise*: the refined estimate is recomputed at 4, 16 (and, central,
       64) times the step, where rounding noise in ``f`` (``~1/h``) matters
       less and truncation is still ``O(h^4)`` or better. Agreement there
       lists the entry in ``noisy`` and counts; a bug disagrees at every step.
       Badly ill-conditioned code (``1 - tanh(a)**2`` at ``|a| > 8``) can still
       fail - often rightly, since its analytic gradient then carries the same
       cancellation error.
    """
    _check_callable(f, "f", "f(x) -> float")
    h, rtol, atol = _check_settings(method, h, rtol, atol, detect_kinks)
    if kink_fn is not None:
        _check_callable(kink_fn, "kink_fn", "kink_fn(x) -> bool array (or None)")
    x = _as_f64(x, "x")
    grad = _check_grad(grad, x)
    excluded = None
    if kink_fn is not None:
        mask = np.asarray(kink_fn(x.copy()), dtype=bool)
        if mask.shape != x.shape:
            raise ValueError(f"kink_fn must return a boolean array of x's shape {x.shape}; "
                             f"got shape {mask.shape}.")
        excluded = mask.reshape(-1)
    problem = _ArrayCoords(f, x)
    return _compare(problem, grad.reshape(-1), method=method, h=h, rtol=rtol, atol=atol,
                    detect_kinks=detect_kinks, excluded=excluded, name=name, shape=x.shape,
                    index_of=lambda k: _idx(k, x.shape))


def check_directional(f, x, grad, *, n_directions=16, random_state=0, method="central",
                      rtol=1e-7, atol=None, h=None, name="x", detect_kinks=True):
    r"""Check ``grad`` along random unit directions (for large ``x``).

    For directions :math:`v_d` drawn from a standard normal and scaled
    to unit norm, compares :math:`v_d \cdot \nabla f` with the directional
    derivative :math:`(f(x + hv) - f(x - hv)) / 2h` (or the Richardson /
    complex-step version). Costs ``2 * n_directions`` evaluations regardless
    of ``x.size``. ``h`` is scaled by ``max(1, max|x|)``. Rounding of
    ``x + h v`` is compensated to first order.

    A systematically wrong gradient (scaled, transposed, missing term) is
    caught with overwhelming probability by a single direction; an error in
    one entry out of ``n`` shifts ``v . grad`` by only ``~|error| / sqrt(n)``,
    so use :func:`check_gradient` when sparse errors matter.
    ``worst_index`` is ``(d,)``, the number of the worst direction.

    Parameters
    ----------
    n_directions : int
        Number of random unit directions (positive).
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the directions (default 0: the same directions on every
        call). A ``Generator`` or ``RandomState`` is advanced by the draw.
    f, x, grad, method, rtol, atol, h, name, detect_kinks
        As in :func:`check_gradient`.
    """
    _check_callable(f, "f", "f(x) -> float")
    h, rtol, atol = _check_settings(method, h, rtol, atol, detect_kinks)
    n_directions = _check_n_directions(n_directions)
    rng = check_random_state(random_state)
    x = _as_f64(x, "x")
    grad = _check_grad(grad, x)
    V = _random_directions(rng, n_directions, x.shape)
    scale = max(1.0, float(np.max(np.abs(x))))
    problem = _ArrayDirections(f, x, grad, V, scale)
    analytic = np.array([float(np.vdot(grad, v)) for v in V])
    return _compare(problem, analytic, method=method, h=h, rtol=rtol, atol=atol,
                    detect_kinks=detect_kinks, name=name, shape=x.shape,
                    index_of=lambda k: (int(k),), mode="directional")


def check_vjp(f, x, vjp, *, random_state=0, method="central", rtol=1e-7, atol=None, h=None,
              name="x", max_full=5000, n_directions=16, detect_kinks=True):
    """Check a vector-Jacobian product of a vector-valued ``f`` by random projection.

    With a standard-normal ``g`` of ``f(x)``'s shape (never all ones, so
    a backward pass that ignores its upstream gradient fails), the scalar
    ``L(x) = sum(g * f(x))`` has gradient ``vjp(g) = J_f(x)^T g``. That is
    checked with :func:`check_gradient`, or :func:`check_directional` when
    ``x.size > max_full``.

    Parameters
    ----------
    f : callable
        ``f(x) -> ndarray`` (deterministic).
    vjp : callable
        ``vjp(g) -> ndarray`` of ``x``'s shape, the product ``J_f(x)^T g``.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of ``g`` and, in directional mode, of the directions (default
        0: the same draws on every call). A ``Generator`` or ``RandomState``
        is advanced.
    max_full : int
        ``x`` with more entries than this is checked directionally.
    n_directions : int
        Directions in directional mode.
    x, method, rtol, atol, h, name, detect_kinks
        As in :func:`check_gradient`.
    """
    _check_callable(f, "f", "f(x) -> ndarray")
    _check_callable(vjp, "vjp", "vjp(g) -> ndarray of x's shape")
    h, rtol, atol = _check_settings(method, h, rtol, atol, detect_kinks)
    max_full = _check_max_full(max_full)
    n_directions = _check_n_directions(n_directions)
    rng = check_random_state(random_state)
    x = _as_f64(x, "x")
    y = np.asarray(f(x.copy()))
    g = rng.standard_normal(y.shape)
    grad = _check_grad(np.asarray(vjp(g.copy())), x, "vjp(g)")

    def scalar(z):
        return np.sum(g * f(z))

    if x.size > max_full:
        return check_directional(scalar, x, grad, n_directions=n_directions, random_state=rng,
                                 method=method, rtol=rtol, atol=atol, h=h, name=name,
                                 detect_kinks=detect_kinks)
    return check_gradient(scalar, x, grad, method=method, rtol=rtol, atol=atol, h=h,
                          name=name, detect_kinks=detect_kinks)


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


def check_layer(module, x, *, random_state=0, method="central", rtol=1e-7, atol=None, h=None,
                detect_kinks=True, max_full=5000, n_directions=16, directional=None):
    r"""Check a Module's input gradient and every parameter gradient.

    The scalar is :math:`L = \sum g \odot \mathrm{module.forward}(x)` with a
    standard-normal upstream gradient ``g`` (not all ones: a backward
    that ignores ``grad_out`` must fail). The analytic side is
    ``zero_grad(); forward(x); dx = backward(g)`` and ``module.grads``. The
    numerical side perturbs ``x`` (fresh copies) and each
    ``module.params[name]`` **in place**, entry by entry (or along random
    directions for arrays with more than ``max_full`` entries, or all arrays
    if ``directional=True``).

    Also checked (reported under ``notes``; any note fails the check):
    ``backward`` accumulates (two backward calls give twice the gradients),
    ``forward``/``backward`` do not modify their arguments, and ``forward`` is
    deterministic.

    Afterwards every ``module.params[name]`` is the *same object* with the
    *same bits* as before, and ``module.grads`` hold their previous values.
    For ``method="complex"`` the module must accept complex input and read
    ``self.params[name]`` at call time (each parameter is temporarily replaced
    by a complex copy).

    Parameters
    ----------
    module : Module
        Has ``params``, ``grads``, ``forward``, ``backward``, ``zero_grad``; float64.
    x : ndarray of float64
        Input batch.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of ``g`` and of the random directions (default 0: the same
        draws on every call). A ``Generator`` or ``RandomState`` is advanced.
    method, rtol, atol, h, detect_kinks
        As in :func:`check_gradient`.
    max_full : int
        Arrays larger than this are checked directionally.
    n_directions : int
        Directions per array in directional mode.
    directional : bool or None
        Force directional (True) or full (False) mode; ``None`` decides by size.

    Returns
    -------
    LayerCheckResult
        ``result.passed``, ``result["input"]``, ``result["W"]``, ...,
        ``print(result)`` for a table.
    """
    h, rtol, atol, max_full, n_directions, directional, rng = _check_shared(
        method, h, rtol, atol, detect_kinks, max_full, n_directions, directional, random_state)
    for attr in ("params", "grads", "forward", "backward", "zero_grad"):
        if not hasattr(module, attr):
            raise TypeError(f"{type(module).__name__} has no {attr!r}; check_layer needs the "
                            f"Module protocol (params, grads, forward, backward, zero_grad).")
    mname = type(module).__name__
    store = module.params
    x, restorer = _prepare(store, mname, x, "x")
    notes = []
    grads_before = {k: np.array(module.grads[k], copy=True) for k in module.grads}
    try:
        x_in = x.copy()
        module.zero_grad()
        y = np.asarray(module.forward(x_in))
        if not _bitwise_equal(x_in, x):
            notes.append("forward() modified its input array in place.")
        _as_f64(y, f"{mname}.forward(x)")
        g = rng.standard_normal(y.shape)
        g_in = g.copy()
        dx = module.backward(g_in)
        if dx is None:
            raise TypeError(f"{mname}.backward() returned None; it must return dL/dx.")
        dx = _check_grad(np.array(dx, copy=True), x, f"{mname}.backward(g)", "x")
        if not _bitwise_equal(g_in, g):
            notes.append("backward() modified grad_out in place.")
        missing = [k for k in store if k not in module.grads]
        if missing:
            raise KeyError(f"{mname}.grads lacks entries for params {missing}.")
        pgrads = {}
        for k in store:
            pgrads[k] = _check_grad(np.array(module.grads[k], copy=True), store[k],
                                    f"{mname}.grads[{k!r}]", f"params[{k!r}]")
        # accumulation: a second backward without zero_grad must double the grads
        if len(store):
            module.forward(x.copy())
            module.backward(g.copy())
            bad = [k for k in store
                   if not np.allclose(module.grads[k], 2.0 * pgrads[k], rtol=1e-10,
                                      atol=1e-300)]
            if bad:
                notes.append(f"backward() does not accumulate into grads {bad} (two calls "
                             f"without zero_grad should give twice the gradient; use +=).")

        def f_of_x(z):
            return np.sum(g * module.forward(z))

        def loss():
            return np.sum(g * module.forward(x.copy()))

        L0, L1 = float(loss()), float(loss())
        if L0 != L1 and not math.isclose(L0, L1, rel_tol=1e-13, abs_tol=0.0):
            raise ValueError(f"{mname}.forward is not deterministic (sum(g*y) = {L0!r} then "
                             f"{L1!r}); switch off noise/dropout (e.g. module.eval()) "
                             f"before checking.")
        hint = float(np.sum(np.abs(g * y)))
        results = {}
        xkey = "input" if "input" not in store else "input (x)"
        entries = [(xkey, "x", dx)] + [(k, "p", pgrads[k]) for k in store]
        for key, kind, grad in entries:
            size = grad.size
            use_dir = directional if directional is not None else size > max_full
            prob, analytic, index_of, mode = _problem_for(
                kind, loss=loss, store=store, name=key, f_of_x=f_of_x, x=x, grad=grad,
                use_dir=use_dir, n_directions=n_directions, rng=rng,
                what=f"sum(g * {mname}.forward(x))")
            prob.fscale_hint = hint
            results[key] = _compare(prob, analytic, method=method, h=h, rtol=rtol,
                                    atol=atol, detect_kinks=detect_kinks, name=key,
                                    shape=grad.shape, index_of=index_of, mode=mode)
    finally:
        changed = restorer.restore()
        for k, v in grads_before.items():
            if k in module.grads and module.grads[k].shape == v.shape:
                np.copyto(module.grads[k], v)
    if changed:
        notes.append(f"forward() changed params {sorted(set(changed))} (restored).")
    settings = (f"method={method}, rtol={rtol:g}, upstream g ~ N(0,1) "
                f"random_state={_describe_random_state(random_state)}, "
                f"x shape {x.shape}")
    return LayerCheckResult(results, title=mname, notes=notes, settings=settings)


def check_model(model, X, *, method="central", rtol=1e-7, atol=None, h=None,
                detect_kinks=True, max_full=5000, n_directions=16, directional=None,
                random_state=0):
    """Check every gradient returned by ``model.loss_and_grad(X)``.

    Compares ``model.loss_and_grad(X)[1][name]`` with numerical derivatives
    of ``model.loss_and_grad(X)[0]`` with respect to ``model.params[name]``,
    perturbed **in place** (and restored: same objects, same bits). Arrays with
    more than ``max_full`` entries are checked along ``n_directions`` random
    unit directions (``directional=True``/``False`` forces the mode).

    The model must be float64 and deterministic (a corrupting/sampling model
    such as a denoising AE or VAE must have its noise fixed); a loss that
    differs between two identical calls raises ``ValueError``. For
    ``method="complex"`` each parameter is temporarily replaced by a complex
    copy, so the model must read ``self.params`` at call time and be
    complex-safe.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of float64 arrays) and ``loss_and_grad(X)``.
    X : ndarray of float64
        The batch.
    method, rtol, atol, h, detect_kinks
        As in :func:`check_gradient`.
    max_full, n_directions, directional
        As in :func:`check_layer`.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the random directions in directional mode (default 0).

    Returns
    -------
    ModelCheckResult
        Mapping ``name -> GradCheckResult`` with ``passed`` and ``report()``.
    """
    h, rtol, atol, max_full, n_directions, directional, rng = _check_shared(
        method, h, rtol, atol, detect_kinks, max_full, n_directions, directional, random_state)
    mname = type(model).__name__
    if not hasattr(model, "params") or not hasattr(model, "loss_and_grad"):
        raise TypeError(f"{mname} needs .params and .loss_and_grad(X) to be checked.")
    store = model.params
    X, restorer = _prepare(store, mname, X, "X")
    notes = []
    what = f"{mname}.loss_and_grad(X)[0]"
    try:
        out = model.loss_and_grad(X.copy())
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"{mname}.loss_and_grad(X) must return (loss, grads); got "
                            f"{type(out).__name__}.")
        L0 = _real_value(out[0], what)
        grads = out[1]
        keys = list(store)
        missing = [k for k in keys if k not in grads]
        extra = [k for k in grads if k not in store]
        if missing or extra:
            raise KeyError(f"{mname}.loss_and_grad grads keys must match params keys; missing "
                           f"{missing}, unexpected {extra}.")
        grads = {k: _check_grad(np.array(grads[k], copy=True), store[k], f"grads[{k!r}]",
                                f"params[{k!r}]") for k in keys}

        def loss():
            return model.loss_and_grad(X.copy())[0]

        L1 = _real_value(loss(), what)
        if L0 != L1 and not math.isclose(L0, L1, rel_tol=1e-13, abs_tol=0.0):
            raise ValueError(f"{mname}.loss_and_grad is not deterministic (loss {L0!r} then "
                             f"{L1!r} for the same X and params); fix its noise (random_state/"
                             f"eval mode) before checking.")
        results = {}
        for k in keys:
            use_dir = directional if directional is not None else grads[k].size > max_full
            prob, analytic, index_of, mode = _problem_for(
                "p", loss=loss, store=store, name=k, f_of_x=None, x=None, grad=grads[k],
                use_dir=use_dir, n_directions=n_directions, rng=rng, what=what)
            results[k] = _compare(prob, analytic, method=method, h=h, rtol=rtol, atol=atol,
                                  detect_kinks=detect_kinks, name=k, shape=grads[k].shape,
                                  index_of=index_of, mode=mode)
    finally:
        changed = restorer.restore()
    if changed:
        notes.append(f"loss_and_grad changed params {sorted(set(changed))} (restored).")
    settings = f"method={method}, rtol={rtol:g}, X shape {X.shape}"
    return ModelCheckResult(results, title=mname, notes=notes, settings=settings)
