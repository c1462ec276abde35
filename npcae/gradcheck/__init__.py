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

The mathematics is in ``docs/derivations.md#gradient-checking``; the machinery (steps,
Richardson, complex step, kink and noise tests) is in :mod:`npcae.gradcheck._engine`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_random_state
from ._engine import (DEFAULT_STEPS, EPS, METHODS, _ArrayCoords, _ArrayDirections, _as_f64,
                      _bitwise_equal, _check_callable, _check_flag, _check_grad,
                      _check_max_full, _check_method, _check_n_directions, _check_settings,
                      _check_shared, _check_step, _compare, _describe_random_state, _estimate,
                      _idx, _prepare, _problem_for, _random_directions, _real_value)

__all__ = ["numerical_gradient", "check_gradient", "check_directional", "check_vjp",
           "check_layer", "check_model", "GradCheckResult", "LayerCheckResult",
           "ModelCheckResult", "METHODS", "DEFAULT_STEPS"]

# failing / kinked / noisy entries named in a report
_MAX_LISTED = 5


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
    return _result(problem, grad.reshape(-1), method=method, h=h, rtol=rtol, atol=atol,
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
    return _result(problem, analytic, method=method, h=h, rtol=rtol, atol=atol,
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
            results[key] = _result(prob, analytic, method=method, h=h, rtol=rtol,
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
            results[k] = _result(prob, analytic, method=method, h=h, rtol=rtol, atol=atol,
                                  detect_kinks=detect_kinks, name=k, shape=grads[k].shape,
                                  index_of=index_of, mode=mode)
    finally:
        changed = restorer.restore()
    if changed:
        notes.append(f"loss_and_grad changed params {sorted(set(changed))} (restored).")
    settings = f"method={method}, rtol={rtol:g}, X shape {X.shape}"
    return ModelCheckResult(results, title=mname, notes=notes, settings=settings)


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


def _result(problem, analytic, **settings):
    """The :class:`GradCheckResult` of comparing ``analytic`` with the numeric estimate."""
    return GradCheckResult(**_compare(problem, analytic, **settings))
