r"""Check another implementation's loss and gradients against a fixture, and name the bug.

What "theirs" is (a file written with ``np.savez``, or a dict in Python)::

    loss               the objective on the fixture's X (optional, recommended)
    <name>             the gradient of the loss with respect to parameter <name>

``<name>`` is npcae's (``W``, ``b``, ``c``, ``W_dec``, ``encoder.0.W``, ...), or its
PyTorch-style name from the fixture's metadata (``encoder.weight``,
``encoder.0.bias``, ``mu.weight``, ...), optionally prefixed by ``grad/``. A
PyTorch-named weight is expected in PyTorch's ``(out, in)`` layout and an
npcae-named one in npcae's ``(in, out)``; a non-square weight given the other
way round is recognised by its shape and compared transposed (a note says so).

The comparison, for each parameter, is the worst entrywise relative error::

    err = max_i |t_i - e_i| / max(|t_i|, |e_i|, rtol * max_j |e_j|)

(relative to both magnitudes; entries far below the parameter's largest are
measured against that floor). Everything agrees when every ``err <= rtol`` and
the loss agrees to ``rtol``. Otherwise the verifier recomputes every known
mistake on the fixture's own inputs (:mod:`npcae.reference._mistakes`) and names
the one theirs matches; failing that, it tests whether theirs is the right
gradient times one constant (``off by factor c``) or one term's gradient times a
constant; failing that, it reports a mismatch with the worst entries.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._fixtures import Fixture, load_fixture
from ._mistakes import mistake_gradients

__all__ = ["verify", "read_theirs", "VerifyResult", "ParamCheck", "DEFAULT_RTOL"]

DEFAULT_RTOL = 1e-6
_DISTINCT = 10.0
"""A mistake is named only if it differs from the right gradient by more than this many rtol."""


@dataclass
class ParamCheck:
    """How one parameter's gradient compares with the fixture's."""

    name: str
    given_as: str
    layout: str
    worst_rel_error: float
    worst_index: tuple
    theirs: float
    expected: float
    ok: bool


@dataclass
class VerifyResult:
    """The verdict of :func:`verify`; ``bool(result)`` is ``result.ok``.

    ``verdict`` is one of ``"agree"``, ``"mistake"`` (``mistake`` holds its key
    from :data:`npcae.reference.MISTAKES`), ``"factor"`` (the whole gradient
    times ``factor``), ``"term_factor"`` (one ``term``'s gradient times
    ``factor``), ``"loss"`` (the gradients agree, the loss does not),
    ``"mismatch"``, ``"incomplete"`` (parameters missing or of the wrong shape)
    or ``"nonfinite"`` (NaN or inf in theirs).
    """

    ok: bool
    verdict: str
    summary: str
    fixture: str
    rtol: float
    params: list = field(default_factory=list)
    loss_theirs: float | None = None
    loss_expected: float | None = None
    loss_rel_error: float | None = None
    mistake: str | None = None
    detail: str = ""
    also_matches: list = field(default_factory=list)
    factor: float | None = None
    term: str | None = None
    worst_entries: list = field(default_factory=list)
    closest: tuple | None = None
    notes: list = field(default_factory=list)

    def __bool__(self):
        return self.ok

    def __str__(self):
        lines = [f"npcae verify against {self.fixture} (rtol {self.rtol:g})",
                 f"verdict: {self.verdict.upper()}: {self.summary}"]
        if self.detail:
            lines.append(f"  ({self.detail})")
        for other in self.also_matches:
            lines.append(f"  equally consistent with: {other}")
        if self.loss_theirs is not None:
            lines.append(f"loss: theirs {self.loss_theirs:.17g}, expected "
                         f"{self.loss_expected:.17g} (relative error "
                         f"{self.loss_rel_error:.2g})")
        elif self.loss_expected is not None:
            lines.append(f"loss: not given (expected {self.loss_expected:.17g})")
        if self.params:
            width = max(len("parameter"), *(len(p.name) for p in self.params))
            given = max(len("given as"), *(len(p.given_as) for p in self.params))
            lines.append(f"{'parameter':<{width}}  {'given as':<{given}}  {'layout':<9}  "
                         f"worst rel. error")
            for p in self.params:
                where = (f"  at {p.worst_index}: theirs {p.theirs:.6g}, expected "
                         f"{p.expected:.6g}" if not p.ok else "")
                lines.append(f"{p.name:<{width}}  {p.given_as:<{given}}  {p.layout:<9}  "
                             f"{p.worst_rel_error:.2e} {'ok' if p.ok else 'DIFFERS'}{where}")
        if self.worst_entries:
            lines.append("worst entries:")
            for name, index, t, e, err in self.worst_entries:
                lines.append(f"  {name}{list(index)}: theirs {t:.10g}, expected {e:.10g} "
                             f"(rel. error {err:.2e})")
        if self.closest is not None:
            lines.append(f"closest known mistake: {self.closest[0]} (worst rel. error "
                         f"{self.closest[1]:.2e})")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


# ------------------------------------------------------------------------ reading theirs
def read_theirs(theirs):
    """``(loss or None, {key: array})`` from a file written with ``np.savez`` or a mapping.

    Keys other than ``loss`` are gradients (``grad/`` prefixes are removed). A
    nested mapping under ``grads`` is flattened.
    """
    if isinstance(theirs, (str, Path)):
        path = Path(theirs)
        if not path.exists():
            raise FileNotFoundError(f"no file at {path} (theirs: an .npz with 'loss' and one "
                                    f"gradient per parameter name)")
        try:
            with np.load(path, allow_pickle=False) as data:
                theirs = {k: data[k] for k in data.files}
        except Exception as exc:
            raise ValueError(f"{path}: not a readable .npz archive of arrays ({type(exc).__name__}"
                             f": {exc}); write it with np.savez(path, loss=..., "
                             f"**gradients).") from exc
    if not isinstance(theirs, Mapping):
        raise TypeError(f"theirs must be a path to an .npz file or a mapping of names to "
                        f"arrays; got {type(theirs).__name__}.")
    flat = {}
    for key, value in theirs.items():
        if key == "grads" and isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[key] = value
    if "__fixture__" in flat:
        # an npcae fixture given as "theirs" (e.g. to see the verifier agree): its loss and
        # grad/ entries are the gradients; inputs, weights, terms and noise are not.
        flat = {k: v for k, v in flat.items() if k == "loss" or k.startswith("grad/")}
    loss, grads = None, {}
    for key, value in flat.items():
        if not isinstance(key, str):
            raise TypeError(f"gradient names must be strings; got {key!r}.")
        if key == "loss":
            arr = np.asarray(value, dtype=np.float64)
            if arr.size != 1:
                raise ValueError(f"'loss' must be one number; got shape {arr.shape}.")
            loss = float(arr.reshape(()))
            continue
        name = key[len("grad/"):] if key.startswith("grad/") else key
        try:
            grads[name] = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            detail = str(exc) if len(str(exc)) <= 120 else str(exc)[:117] + "..."
            raise TypeError(f"the gradient {key!r} is not a numeric array ({detail}); "
                            f"store only 'loss' and one numeric array per "
                            f"parameter.") from exc
    return loss, grads


def _aliases(fixture):
    """``their name -> (npcae name, named in PyTorch's style)``."""
    table = {}
    for name, info in fixture.meta["params"].items():
        table[name] = (name, False)
        table[info["torch_name"]] = (name, True)
    return table


def _align(fixture, grads, notes):
    """Map their names to npcae's and their layouts to npcae's. Returns
    ``(aligned, given_as, layouts, problems)``."""
    table = _aliases(fixture)
    unknown = [k for k in grads if k not in table]
    if unknown:
        names = ", ".join(f"{k} (or {v['torch_name']})" for k, v in fixture.meta["params"].items())
        raise ValueError(f"{unknown} name no parameter of fixture {fixture.name!r}; its "
                         f"parameters are: {names}, plus 'loss'.")
    aligned, given_as, layouts, problems = {}, {}, {}, []
    for key, value in grads.items():
        name, torch_style = table[key]
        if name in aligned:
            raise ValueError(f"parameter {name!r} is given twice, as {given_as[name]!r} and "
                             f"{key!r}; keep one.")
        expected = fixture.grads[name].shape
        arr = value.T if (torch_style and value.ndim == 2) else value
        layout = "(out, in)" if torch_style and value.ndim == 2 else (
            "(in, out)" if value.ndim == 2 else "")
        if arr.shape != expected and arr.ndim == 2 and arr.T.shape == expected:
            arr = arr.T
            layout = "(in, out)" if torch_style else "(out, in)"
            notes.append(f"{key} has shape {value.shape}: taken as {layout} and transposed "
                         f"to npcae's {expected} (npcae's W is (in, out), PyTorch's "
                         f"Linear.weight is (out, in)).")
        if arr.shape != expected:
            problems.append(f"{key} has shape {value.shape}; {name} needs {expected} (npcae) "
                            f"or {expected[::-1]} (PyTorch)")
            continue
        aligned[name], given_as[name], layouts[name] = arr, key, layout
    missing = [k for k in fixture.grads if k not in aligned]
    if missing:
        problems.append("missing: " + ", ".join(
            f"{k} (or {fixture.meta['params'][k]['torch_name']})" for k in missing))
    return aligned, given_as, layouts, problems


# ------------------------------------------------------------------------ comparing
def _param_error(t, e, rtol):
    """``(worst, index)`` of ``|t - e| / max(|t|, |e|, rtol * max|e|)``."""
    if t.size == 0:
        return 0.0, ()
    scale = float(np.max(np.abs(e)))
    if scale == 0.0:
        scale = float(np.max(np.abs(t))) or 1.0
    err = np.abs(t - e) / np.maximum(np.maximum(np.abs(t), np.abs(e)), rtol * scale)
    flat = int(np.argmax(err))
    return float(err.reshape(-1)[flat]), tuple(int(i) for i in np.unravel_index(flat, t.shape))


def _worst(theirs, expected, rtol):
    """The worst error over every parameter of ``theirs`` (a dict like ``expected``)."""
    return max((_param_error(theirs[k], expected[k], rtol)[0] for k in theirs), default=0.0)


def _dot(a, b, names):
    return math.fsum(float(np.vdot(a[k], b[k])) for k in names)


def _close(x, y, rtol):
    return abs(x - y) <= rtol * max(abs(x), abs(y), 1e-300)


def _factor_words(c, n, d):
    for value, words in ((2.0, "a factor 2"), (0.5, "a factor 1/2"), (1.0 / n, "1/n: averaged "
                         "twice?"), (1.0 / d, "1/d: a mean over the features (e.g. Keras' mse)"
                         " instead of npcae's sum"), (float(d), "d: a sum over features where "
                         "a mean is expected")):
        if abs(c - value) <= 1e-9 * abs(value):
            return f" ({words})"
    return ""


def verify(theirs, against, *, rtol=DEFAULT_RTOL):
    """Compare another implementation's loss and gradients with a fixture, and name the bug.

    Parameters
    ----------
    theirs : str, path or mapping
        An ``.npz`` file (or a dict) with ``loss`` and one gradient per parameter,
        named as npcae does or in PyTorch's style (module docstring).
    against : Fixture, str or path
        The fixture (a :class:`Fixture`, a file, or a canonical fixture's name).
    rtol : float
        Agreement tolerance on the worst entrywise relative error (default 1e-6,
        for float64 implementations; float32 ones need about 1e-3).

    Returns
    -------
    VerifyResult
        ``ok`` is True only when every gradient and the loss (if given) agree.
    """
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a number in (0, 1); got {rtol!r}.")
    fixture = against if isinstance(against, Fixture) else load_fixture(against)
    label = f"{fixture.name or 'fixture'} ({fixture.model_class})"
    loss, grads = read_theirs(theirs)
    notes = []
    aligned, given_as, layouts, problems = _align(fixture, grads, notes)
    result = VerifyResult(ok=False, verdict="", summary="", fixture=label, rtol=rtol,
                          loss_theirs=loss, loss_expected=fixture.loss, notes=notes)
    if loss is not None:
        result.loss_rel_error = abs(loss - fixture.loss) / max(abs(loss), abs(fixture.loss),
                                                               1e-300)
    bad = [k for k, v in aligned.items() if not np.all(np.isfinite(v))]
    if loss is not None and not math.isfinite(loss):
        bad.append("loss")
    for name in aligned:
        err, idx = _param_error(aligned[name], fixture.grads[name], rtol)
        result.params.append(ParamCheck(name, given_as[name], layouts[name], err, idx,
                                        float(aligned[name][idx]),
                                        float(fixture.grads[name][idx]), err <= rtol))
    if bad:
        result.verdict = "nonfinite"
        result.summary = f"NaN or infinite values in {', '.join(bad)}"
        return result
    if problems:
        result.verdict = "incomplete"
        result.summary = "; ".join(problems)
        return result
    loss_ok = loss is None or result.loss_rel_error <= rtol
    n, d = fixture.n_samples, fixture.X.shape[1]
    if all(p.ok for p in result.params):
        if loss_ok:
            result.ok, result.verdict = True, "agree"
            result.summary = ("every gradient agrees" + (" and so does the loss" if loss
                                                         is not None else
                                                         " (no loss given to check)"))
        else:
            result.verdict = "loss"
            result.summary = (f"every gradient agrees but the loss does not (theirs - "
                              f"expected = {loss - fixture.loss:.10g}; a constant dropped or "
                              f"added does not change the gradient)")
        return result

    names = list(fixture.grads)
    # 1. a known mistake, recomputed on the fixture
    matches, closest = [], None
    for cand in mistake_gradients(fixture):
        if _worst(cand.grads, fixture.grads, rtol) <= _DISTINCT * rtol:
            continue                              # indistinguishable from right here
        err = _worst(aligned, cand.grads, rtol)
        if err <= rtol:
            matches.append((err, cand))
        elif closest is None or err < closest[1]:
            closest = (cand.key, err)
    if matches:
        matches.sort(key=lambda m: m[0])
        cand = matches[0][1]
        result.verdict, result.mistake, result.term = "mistake", cand.key, cand.term
        result.summary, result.detail = cand.title, cand.detail
        result.also_matches = [m[1].title for m in matches[1:]]
        if loss is not None and not loss_ok:
            if cand.loss is not None and _close(loss, cand.loss, rtol):
                notes.append("their loss is the loss this mistake gives, too.")
        return result
    # 2. the right gradient times one constant
    ee = _dot(fixture.grads, fixture.grads, names)
    c = _dot(aligned, fixture.grads, names) / ee if ee > 0 else 0.0
    if c != 0.0 and _worst(aligned, {k: c * g for k, g in fixture.grads.items()}, rtol) <= rtol:
        result.verdict, result.factor = "factor", c
        result.summary = f"every gradient is off by factor {c:.10g}{_factor_words(c, n, d)}"
        return result
    # 3. one term's gradient times one constant
    for term, tg in fixture.term_grads.items():
        gg = _dot(tg, tg, names)
        if gg == 0.0 or len(fixture.term_grads) < 2:
            continue
        resid = {k: aligned[k] - (fixture.grads[k] - tg[k]) for k in names}
        c = _dot(resid, tg, names) / gg
        model = {k: fixture.grads[k] + (c - 1.0) * tg[k] for k in names}
        if _worst(aligned, model, rtol) <= rtol:
            result.verdict, result.factor, result.term = "term_factor", c, term
            result.summary = (f"the {term} term's gradient is off by factor {c:.10g}"
                              f"{_factor_words(c, n, d)}; the other terms' are right")
            return result
    # 4. nothing known
    result.verdict = "mismatch"
    result.closest = closest if closest is not None and closest[1] < 0.05 else None
    differing = [p.name for p in result.params if not p.ok]
    result.summary = (f"the gradient of {', '.join(differing)} differs and matches no known "
                      f"mistake, no constant factor and no scaled term")
    entries = []
    for name in names:
        t, e = aligned[name], fixture.grads[name]
        scale = float(np.max(np.abs(e))) or 1.0
        err = np.abs(t - e) / np.maximum(np.maximum(np.abs(t), np.abs(e)), rtol * scale)
        for flat in np.argsort(err, axis=None)[::-1][:5]:
            idx = tuple(int(i) for i in np.unravel_index(flat, t.shape))
            entries.append((name, idx, float(t[idx]), float(e[idx]), float(err[idx])))
    result.worst_entries = sorted(entries, key=lambda x: -x[4])[:5]
    worst = max(p.worst_rel_error for p in result.params)
    if worst < 1e-2:
        notes.append(f"the worst error is small ({worst:.1e}): if theirs ran in float32, "
                     f"compute in float64 (or pass rtol=1e-3).")
    return result
