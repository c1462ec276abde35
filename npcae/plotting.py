"""Figures for inspecting auto-encoders.

matplotlib is optional: it is imported lazily inside each function, so
``import npcae.plotting`` works without it and only a call fails, with an
``ImportError`` saying how to install it (``pip install npcae[demo]``). When no
backend has been chosen (no ``MPLBACKEND``, no backend in ``matplotlibrc``,
``matplotlib.pyplot`` not yet imported) the non-interactive ``Agg`` backend is
selected, so figures can be written on headless machines.

Every function takes plain arrays, returns the ``matplotlib.figure.Figure`` and
accepts ``path=``: if given, the figure is written there (PNG at 120 dpi unless
the extension names another format matplotlib supports), atomically — it is
rendered to a temporary file in the same directory and moved into place with
``os.replace``, so an interrupted or failed save never leaves a partial file —
and then closed. Missing parent directories are created.

Images are flattened row-major, ``(n, h*w)``, reshaped with ``image_shape``.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np

from ._validation import as_float_array, check_positive_int

__all__ = [
    "plot_reconstructions",
    "plot_filters",
    "plot_spectrum",
    "plot_tangents",
    "plot_history",
    "plot_contraction_curves",
    "plot_tangent_comparison",
    "plot_code_scatter",
    "plot_roc_curves",
    "plot_vector_fields",
    "plot_gap_convergence",
]

DPI = 120
_DIVERGING = "RdBu_r"
_INSTALL_HINT = ("npcae.plotting needs matplotlib, which is not installed. Install it with "
                 "`pip install npcae[demo]` (or `pip install matplotlib`).")


# ---------------------------------------------------------------------------
# matplotlib plumbing
# ---------------------------------------------------------------------------

def _backend_is_set(matplotlib):
    if os.environ.get("MPLBACKEND"):
        return True
    getter = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    if getter is not None:
        try:
            return getter() is not None
        except Exception:  # pragma: no cover - private API changed
            return False
    return False


def _pyplot():
    """Import and return ``matplotlib.pyplot``, choosing Agg if nothing is set."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    if "matplotlib.pyplot" not in sys.modules and not _backend_is_set(matplotlib):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi=DPI):
    """Write ``fig`` to ``path`` atomically (see :func:`npcae.io.atomic_write`).

    The format follows the file extension when matplotlib supports it, PNG
    otherwise. On any error the temporary file is removed and an existing file
    at ``path`` is left untouched.
    """
    from .io import atomic_write
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    fmt = ext if ext in fig.canvas.get_supported_filetypes() else "png"
    atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))


def _finish(plt, fig, path):
    if path is not None:
        try:
            save_figure(fig, path)
        finally:
            plt.close(fig)
    return fig


# ---------------------------------------------------------------------------
# input helpers
# ---------------------------------------------------------------------------

def _image_shape(image_shape, d, name):
    try:
        shape = tuple(int(s) for s in image_shape)
    except TypeError:
        raise TypeError(f"image_shape must be a (height, width) tuple; got "
                        f"{image_shape!r}.") from None
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image_shape must be a (height, width) tuple of positive ints; "
                         f"got {image_shape!r}.")
    if shape[0] * shape[1] != d:
        side = math.isqrt(d)
        hint = f" Try image_shape=({side}, {side})." if side * side == d else ""
        raise ValueError(f"{name} has {d} features per row but image_shape={shape} holds "
                         f"{shape[0] * shape[1]} pixels.{hint}")
    return shape


def _symmetric(v):
    """Scale ``v`` to [-1, 1] by its largest magnitude (zeros stay zeros)."""
    m = float(np.max(np.abs(v))) if v.size else 0.0
    return v / m if m > 0 else v


def _blank(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _as_series_dict(data, name, default_label):
    """Accept an array or a dict label -> array; return an ordered dict."""
    if isinstance(data, dict):
        if not data:
            raise ValueError(f"{name} is an empty dict; pass at least one label -> array.")
        return {str(k): v for k, v in data.items()}
    return {default_label: data}


# ---------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------

def plot_reconstructions(X, R, image_shape=(28, 28), n=10, path=None):
    """Originals (top row) above their reconstructions (bottom row).

    Parameters
    ----------
    X : array_like, shape (n_samples, h*w)
        Original images, flattened row-major.
    R : array_like, shape (n_samples, h*w)
        Reconstructions of the same rows (e.g. ``model.reconstruct(X)``).
    image_shape : (int, int)
        ``(h, w)``.
    n : int
        Number of images shown (the first ``n`` rows).
    path : str or os.PathLike, optional
        Where to save the figure (then closed).

    Returns
    -------
    matplotlib.figure.Figure
        Both rows share one grey scale. Each reconstruction is titled with its
        squared error summed over pixels.
    """
    X = as_float_array(X, "X", ndim=2)
    R = as_float_array(R, "R", ndim=2)
    if X.shape != R.shape:
        raise ValueError(f"X and R must have the same shape; got {X.shape} and {R.shape}.")
    shape = _image_shape(image_shape, X.shape[1], "X")
    n = min(check_positive_int(n, "n"), X.shape[0])
    plt = _pyplot()
    Xs, Rs = X[:n], R[:n]
    vmin = float(min(Xs.min(), Rs.min()))
    vmax = float(max(Xs.max(), Rs.max()))
    if vmax <= vmin:
        vmax = vmin + 1.0
    errs = np.sum((Xs.astype(np.float64) - Rs) ** 2, axis=1)
    fig, axes = plt.subplots(2, n, figsize=(max(3.0, 1.15 * n), 2.9), squeeze=False,
                             layout="constrained")
    for j in range(n):
        axes[0, j].imshow(Xs[j].reshape(shape), cmap="gray", vmin=vmin, vmax=vmax,
                          interpolation="nearest")
        axes[1, j].imshow(Rs[j].reshape(shape), cmap="gray", vmin=vmin, vmax=vmax,
                          interpolation="nearest")
        axes[1, j].set_title(f"err {errs[j]:.3g}", fontsize=8)
        _blank(axes[0, j])
        _blank(axes[1, j])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle(f"Reconstructions (err = squared error summed over pixels; mean "
                 f"{errs.mean():.3g})", fontsize=10)
    return _finish(plt, fig, path)


def plot_filters(W, image_shape=(28, 28), n=64, path=None):
    """Encoder filters (columns of ``W``) as images.

    Parameters
    ----------
    W : array_like, shape (d, k)
        Encoder weights, ``d = h*w``; column ``j`` is hidden unit ``j``'s filter
        (``model.params["W"]``).
    image_shape : (int, int)
        ``(h, w)``.
    n : int
        Number of filters shown (the first ``n`` columns), laid out in a
        near-square grid.
    path : str or os.PathLike, optional
        Where to save the figure (then closed).

    Returns
    -------
    matplotlib.figure.Figure
        Each filter is divided by its own largest absolute weight and drawn on a
        diverging colormap centred at 0 (red positive, blue negative).
    """
    W = as_float_array(W, "W", ndim=2)
    d, k = W.shape
    try:
        shape = _image_shape(image_shape, d, "W")
    except ValueError as exc:
        if k == int(np.prod(tuple(image_shape))):
            raise ValueError(f"{exc} W must be (d, k) with one filter per column; it looks "
                             f"like (k, d) — pass W.T.") from None
        raise
    n = min(check_positive_int(n, "n"), k)
    plt = _pyplot()
    ncols = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.0 * ncols + 1.2, 1.0 * nrows + 0.6),
                             squeeze=False, layout="constrained")
    im = None
    for idx, ax in enumerate(axes.flat):
        _blank(ax)
        if idx < n:
            im = ax.imshow(_symmetric(W[:, idx]).reshape(shape), cmap=_DIVERGING, vmin=-1,
                           vmax=1, interpolation="nearest")
        else:
            ax.set_visible(False)
    fig.colorbar(im, ax=axes, shrink=0.6, label="weight / max |weight| of the filter")
    fig.suptitle(f"Encoder filters (columns of W): {n} of {k}", fontsize=10)
    return _finish(plt, fig, path)


def plot_spectrum(svals, path=None, percentiles=(10, 90), title=None):
    """Mean Jacobian singular value by index, on a log scale.

    Parameters
    ----------
    svals : array_like, shape (n, m), or dict label -> array_like
        Singular values per point from :func:`npcae.analysis.jacobian_spectrum`
        (each row descending). A dict overlays several models, e.g.
        ``{"lam=0": s0, "lam=0.1": s1}``.
    path : str or os.PathLike, optional
        Where to save the figure (then closed).
    percentiles : (float, float)
        Lower and upper percentile of the shaded band (across points).
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
        One line per model with its percentile band, a dashed line at 1, and
        the fraction of singular values below 1 in each legend entry. Exact
        zeros are drawn at a small floor so the log scale stays usable.
    """
    series = _as_series_dict(svals, "svals", "mean")
    lo_q, hi_q = (float(p) for p in percentiles)
    if not 0 <= lo_q <= hi_q <= 100:
        raise ValueError(f"percentiles must be (low, high) within [0, 100]; got "
                         f"{percentiles!r}.")
    arrays = {}
    for label, s in series.items():
        s = as_float_array(s, f"svals[{label!r}]" if isinstance(svals, dict) else "svals")
        if s.ndim == 1:
            s = s[None, :]
        if s.ndim != 2:
            raise ValueError(f"singular values must be (n, m); got shape {s.shape} for "
                             f"{label!r}.")
        if np.any(s < 0):
            raise ValueError(f"singular values must be non-negative ({label!r}).")
        arrays[label] = s.astype(np.float64, copy=False)
    top = max(float(s.max()) for s in arrays.values())
    positive = [float(s[s > 0].min()) for s in arrays.values() if np.any(s > 0)]
    floor = max(min(positive) if positive else 1e-12, 1e-12 * max(top, 1.0)) * 0.5
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for label, s in arrays.items():
        idx = np.arange(1, s.shape[1] + 1)
        mean = np.maximum(s.mean(axis=0), floor)
        lo = np.maximum(np.percentile(s, lo_q, axis=0), floor)
        hi = np.maximum(np.percentile(s, hi_q, axis=0), floor)
        frac = float(np.mean(s < 1.0))
        (line,) = ax.plot(idx, mean, lw=1.8, marker="o" if s.shape[1] <= 30 else None,
                          ms=3, label=f"{label}  ({frac:.0%} of σ < 1)")
        ax.fill_between(idx, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="σ = 1")
    ax.set_yscale("log")
    ax.set_xlabel("singular value index (descending)")
    ax.set_ylabel("singular value of $J_f(x)$")
    ax.set_title(title or f"Encoder Jacobian spectrum (mean, {lo_q:g}–{hi_q:g}th "
                          f"percentile band)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(plt, fig, path)


def plot_tangents(X, tangents, svals=None, image_shape=(28, 28), n_points=4,
                  n_directions=None, path=None, title=None):
    """Inputs next to their leading tangent directions, shown as images.

    Parameters
    ----------
    X : array_like, shape (n, h*w)
        The points.
    tangents : array_like, shape (n, m, h*w)
        Tangent directions per point (e.g. from
        :func:`npcae.analysis.tangent_directions` or ``local_pca_tangents``).
    svals : array_like, shape (n, m), optional
        Singular values matching ``tangents``; used as panel titles.
    image_shape : (int, int)
        ``(h, w)``.
    n_points : int
        Number of rows (the first ``n_points`` points).
    n_directions : int, optional
        Number of tangents per point shown (default: all ``m``).
    path : str or os.PathLike, optional
        Where to save the figure (then closed).
    title : str, optional
        Figure title (e.g. "Local PCA tangents").

    Returns
    -------
    matplotlib.figure.Figure
        One row per point: the input in grey, then each tangent divided by its
        largest absolute entry on a diverging colormap centred at 0.
    """
    X = as_float_array(X, "X", ndim=2)
    T = as_float_array(tangents, "tangents", ndim=3)
    if T.shape[0] != X.shape[0] or T.shape[2] != X.shape[1]:
        raise ValueError(f"tangents must have shape (n, m, d) = ({X.shape[0]}, m, "
                         f"{X.shape[1]}) to match X; got {T.shape}.")
    S = None
    if svals is not None:
        S = as_float_array(svals, "svals", ndim=2)
        if S.shape != T.shape[:2]:
            raise ValueError(f"svals must have shape (n, m) = {T.shape[:2]}; got {S.shape}.")
    shape = _image_shape(image_shape, X.shape[1], "X")
    rows = min(check_positive_int(n_points, "n_points"), X.shape[0])
    m = T.shape[1] if n_directions is None else min(
        check_positive_int(n_directions, "n_directions"), T.shape[1])
    plt = _pyplot()
    fig, axes = plt.subplots(rows, m + 1, figsize=(1.35 * (m + 1) + 1.0, 1.45 * rows + 0.5),
                             squeeze=False, layout="constrained")
    im = None
    for i in range(rows):
        axes[i, 0].imshow(X[i].reshape(shape), cmap="gray", interpolation="nearest")
        axes[i, 0].set_title(f"input {i}", fontsize=8)
        _blank(axes[i, 0])
        for j in range(m):
            ax = axes[i, j + 1]
            im = ax.imshow(_symmetric(T[i, j]).reshape(shape), cmap=_DIVERGING, vmin=-1,
                           vmax=1, interpolation="nearest")
            ax.set_title(f"σ{j + 1} = {S[i, j]:.3g}" if S is not None else f"tangent {j + 1}",
                         fontsize=8)
            _blank(ax)
    fig.colorbar(im, ax=axes[:, 1:], shrink=0.7, label="entry / max |entry|")
    if title is None:
        title = ("Leading tangent directions (right singular vectors of $J_f$)"
                 if S is not None else "Tangent directions")
    fig.suptitle(title, fontsize=10)
    return _finish(plt, fig, path)


_NON_SERIES_KEYS = {"epoch", "epochs", "step", "steps", "time", "times", "elapsed",
                    "seconds", "wall_time", "duration", "best_epoch"}
_NON_SERIES_SUFFIXES = ("_time", "_time_s", "_per_s", "_seconds")


def _is_bookkeeping(name):
    """Epoch counters and timings (e.g. ``epoch_time_s``, ``samples_per_s``)."""
    name = str(name).lower()
    return name in _NON_SERIES_KEYS or name.endswith(_NON_SERIES_SUFFIXES)
_VAL_PREFIXES = ("val_", "valid_", "validation_")
_VAL_SUFFIXES = ("_val", "_valid", "_validation")


def _series(values):
    try:
        arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.ndim == 1 and arr.size else None


def _split_history(history):
    """Return (train dict, val dict, epochs or None) from the supported layouts."""
    if hasattr(history, "history") and isinstance(history.history, (dict, list)):
        history = history.history
    if isinstance(history, (list, tuple)):
        if not all(isinstance(h, dict) for h in history):
            raise TypeError("history as a list must hold one dict of values per epoch.")
        keys = list(dict.fromkeys(k for h in history for k in h))
        history = {k: [h.get(k) for h in history] for k in keys}
    if not isinstance(history, dict):
        raise TypeError(f"history must be a dict name -> list of per-epoch values (or a "
                        f"list of per-epoch dicts); got {type(history).__name__}.")
    train, val = {}, {}
    nested_val = next((history[k] for k in ("val", "valid", "validation")
                       if isinstance(history.get(k), dict)), None)
    if isinstance(history.get("train"), dict) or nested_val is not None:
        train = dict(history.get("train", {}))
        val = dict(nested_val or {})
        epochs = history.get("epoch", history.get("epochs"))
    else:
        epochs = history.get("epoch", history.get("epochs"))
        for key, values in history.items():
            if isinstance(values, dict):
                continue
            base = None
            for p in _VAL_PREFIXES:
                if key.startswith(p):
                    base = key[len(p):]
            for s in _VAL_SUFFIXES:
                if key.endswith(s):
                    base = key[: -len(s)]
            if base:
                val[base] = values
            else:
                train[key] = values
    clean_train, clean_val = {}, {}
    for name in list(train) + [k for k in val if k not in train]:
        if _is_bookkeeping(name):
            continue
        t = _series(train[name]) if name in train and np.iterable(train[name]) else None
        v = _series(val[name]) if name in val and np.iterable(val[name]) else None
        if t is not None:
            clean_train[name] = t
        if v is not None:
            clean_val[name] = v
    ep = _series(epochs) if epochs is not None and np.iterable(epochs) else None
    return clean_train, clean_val, ep


def plot_history(history, path=None):
    """Per-epoch curves of every loss term, with validation curves if present.

    Parameters
    ----------
    history : dict or list of dict
        ``{name: [value per epoch, ...]}``. Validation values may be given as
        ``"val_<name>"`` (or ``"<name>_val"``) keys, or the whole thing as
        ``{"train": {...}, "val": {...}}``. A list of per-epoch dicts and
        objects with a ``.history`` dict are accepted too. An ``"epoch"`` entry
        is used as the x axis; bookkeeping entries (``best_epoch``, timings such
        as ``epoch_time_s`` and ``samples_per_s``) and scalars are ignored; ``None`` values are
        gaps. Loss values follow the package convention (summed over features,
        averaged over the batch).
    path : str or os.PathLike, optional
        Where to save the figure (then closed).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per term (train solid, validation dashed). A panel uses a log
        y-axis when its values are positive and span more than a factor of 20.
    """
    train, val, epochs = _split_history(history)
    names = list(train) + [k for k in val if k not in train]
    if not names:
        raise ValueError("history holds no numeric per-epoch series to plot.")
    plt = _pyplot()
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 3.0 * nrows), squeeze=False,
                             layout="constrained")
    for ax, name in zip(axes.flat, names):
        curves = [("train", train.get(name), "-"), ("validation", val.get(name), "--")]
        allv = []
        for label, y, ls in curves:
            if y is None:
                continue
            x = (epochs[: y.size] if epochs is not None and epochs.size >= y.size
                 else np.arange(1, y.size + 1))
            ax.plot(x, y, ls=ls, marker="o" if y.size <= 30 else None, ms=3, label=label)
            allv.append(y[np.isfinite(y)])
        allv = np.concatenate(allv) if allv else np.array([])
        if allv.size and np.all(allv > 0) and allv.max() / allv.min() > 20:
            ax.set_yscale("log")
        ax.set_title(str(name), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("value")
        ax.grid(True, alpha=0.3)
        if name in val:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle("Training history", fontsize=11)
    return _finish(plt, fig, path)


def plot_contraction_curves(radii, curves, path=None):
    """Contraction ratio against perturbation radius, one line per model.

    Parameters
    ----------
    radii : array_like, shape (n_radii,)
        Radii, as passed to :func:`npcae.analysis.contraction_ratio`.
    curves : dict label -> array_like (n_radii,), or one array
        Mean ``||f(x + r u) - f(x)|| / r`` per radius for each model.
    path : str or os.PathLike, optional
        Where to save the figure (then closed).

    Returns
    -------
    matplotlib.figure.Figure
        Log x-axis when the radii are positive and span a factor of 10 or more.
        A dashed line at ratio 1 separates contraction (below) from expansion
        when the curves come within a factor 2 of it; otherwise a note says all
        ratios are below 1.
    """
    r = as_float_array(radii, "radii", ndim=1)
    series = _as_series_dict(curves, "curves", "contraction ratio")
    arrays = {}
    for label, c in series.items():
        c = as_float_array(c, f"curves[{label!r}]" if isinstance(curves, dict) else "curves",
                           ndim=1)
        if c.shape != r.shape:
            raise ValueError(f"curve {label!r} has {c.size} values but there are {r.size} "
                             f"radii.")
        arrays[label] = c
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for label, c in arrays.items():
        ax.plot(r, c, marker="o", ms=3, lw=1.8, label=label)
    top = max(float(np.nanmax(c)) for c in arrays.values())
    title = "Contraction curves (lower = more contractive)"
    if top >= 0.5:
        ax.axhline(1.0, color="k", ls="--", lw=1, label="ratio = 1")
    else:
        # a line at 1 would squash the curves; say so in the title instead
        ax.set_ylim(0, 1.1 * top if top > 0 else 1.0)
        title += "\nall ratios < 1: the encoder contracts at every radius"
    if np.all(r > 0) and r.max() / r.min() >= 10:
        ax.set_xscale("log")
    ax.set_xlabel("radius r of the input perturbation")
    ax.set_ylabel(r"mean $\|f(x + r u) - f(x)\| \,/\, r$")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(plt, fig, path)


def plot_tangent_comparison(X, tangents, image_shape=(28, 28), n_points=4, n_directions=3,
                            path=None, title=None):
    """Several tangent estimates side by side: one row per point, one block per method.

    Parameters
    ----------
    X : array_like, shape (n, h*w)
        The points.
    tangents : dict label -> array_like (n, m, h*w)
        Tangent directions per point for each method, e.g. ``{"CAE (J_f)": T1,
        "local PCA": T2, "true (renderer)": T3}``.
    image_shape : (int, int)
    n_points, n_directions : int
        Rows shown, and directions shown per method (at most each method's ``m``).
    path : str or os.PathLike, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Column 0 is the input in grey; then each method's directions, each
        divided by its largest absolute entry (diverging colormap centred at 0;
        a tangent's sign is arbitrary), with the method named above its block.
    """
    X = as_float_array(X, "X", ndim=2)
    series = _as_series_dict(tangents, "tangents", "tangents")
    shape = _image_shape(image_shape, X.shape[1], "X")
    rows = min(check_positive_int(n_points, "n_points"), X.shape[0])
    n_dir = check_positive_int(n_directions, "n_directions")
    blocks = {}
    for label, T in series.items():
        T = as_float_array(T, f"tangents[{label!r}]", ndim=3)
        if T.shape[0] < rows or T.shape[2] != X.shape[1]:
            raise ValueError(f"tangents[{label!r}] must have shape (n, m, {X.shape[1]}) with "
                             f"n >= {rows}; got {T.shape}.")
        blocks[label] = T[:rows, :min(n_dir, T.shape[1])]
    cols = 1 + sum(T.shape[1] for T in blocks.values())
    plt = _pyplot()
    # fixed margins, not the constrained layout: with dozens of image panels it costs seconds
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols + 1.2, 1.35 * rows + 1.0),
                             squeeze=False)
    fig.subplots_adjust(left=0.02, right=0.9, bottom=0.03, top=1 - 0.75 / (1.35 * rows + 1.0),
                        wspace=0.08, hspace=0.12)
    im = None
    for i in range(rows):
        axes[i, 0].imshow(X[i].reshape(shape), cmap="gray", interpolation="nearest")
        axes[i, 0].set_title("input" if i == 0 else "", fontsize=8)
        _blank(axes[i, 0])
        c = 1
        for label, T in blocks.items():
            for j in range(T.shape[1]):
                ax = axes[i, c]
                im = ax.imshow(_symmetric(T[i, j]).reshape(shape), cmap=_DIVERGING, vmin=-1,
                               vmax=1, interpolation="nearest")
                if i == 0:
                    ax.set_title(f"{label}\n#{j + 1}" if j == 0 else f"#{j + 1}", fontsize=8)
                _blank(ax)
                c += 1
    cax = fig.add_axes([0.92, 0.15, 0.015, 0.6])
    fig.colorbar(im, cax=cax, label="entry / max |entry| (sign arbitrary)")
    fig.suptitle(title or "Tangent directions at the same inputs, by method", fontsize=10)
    return _finish(plt, fig, path)


def plot_code_scatter(Z, labels, path=None, title=None, xlabel="component 1",
                      ylabel="component 2", max_points=3000, random_state=0):
    """2-D scatter of codes coloured by class label.

    Parameters
    ----------
    Z : array_like, shape (n, 2)
        Two coordinates per sample (a 2-unit code, or the first two principal
        components of a wider code).
    labels : array_like of int, shape (n,)
    path, title : optional
    xlabel, ylabel : str
        Axis names (say what the coordinates are).
    max_points : int
        At most this many points are drawn (a fixed random subset), so the
        classes stay visible.

    Returns
    -------
    matplotlib.figure.Figure
        One colour per class with a legend; each class's median marked by its label.
    """
    Z = as_float_array(Z, "Z", ndim=2)
    if Z.shape[1] != 2:
        raise ValueError(f"Z must have two columns (a 2-D embedding); got shape {Z.shape}. "
                         f"Project a wider code first, e.g. on its first two principal "
                         f"components.")
    y = np.asarray(labels)
    if y.shape != (Z.shape[0],):
        raise ValueError(f"labels must have shape ({Z.shape[0]},) to match Z; got {y.shape}.")
    keep = np.arange(Z.shape[0])
    if Z.shape[0] > check_positive_int(max_points, "max_points"):
        keep = np.sort(np.random.default_rng(random_state).choice(Z.shape[0], max_points,
                                                                  replace=False))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.0), layout="constrained")
    classes = np.unique(y)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for c_i, c in enumerate(classes):
        sel = keep[y[keep] == c]
        ax.scatter(Z[sel, 0], Z[sel, 1], s=5, alpha=0.6, color=cmap(c_i % cmap.N),
                   label=str(c))
        if np.any(y == c):
            mx, my = np.median(Z[y == c], axis=0)
            ax.text(mx, my, str(c), fontsize=11, weight="bold", ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", alpha=0.7, lw=0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "Codes coloured by label", fontsize=10)
    ax.legend(title="label", fontsize=7, markerscale=2, loc="best", ncol=2)
    ax.grid(True, alpha=0.3)
    return _finish(plt, fig, path)


def _roc_panel(ax, curves, title, colors):
    from ._scores import roc_auc, roc_curve
    for label, (scores, labels) in curves.items():
        fpr, tpr, _ = roc_curve(scores, labels)
        ax.plot(fpr, tpr, lw=1.6, color=colors[label],
                label=f"{label} (AUC {roc_auc(scores, labels):.3f})")
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="chance (AUC 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.005)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (normal samples flagged)")
    ax.set_ylabel("true-positive rate (anomalies flagged)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def plot_roc_curves(curves, path=None, title=None, ncols=3):
    """ROC curves with their AUC in the legend, and the chance diagonal.

    Parameters
    ----------
    curves : dict
        Either ``label -> (scores, labels)`` (one panel), or
        ``panel title -> {label -> (scores, labels)}`` (one panel each). Scores:
        higher means more positive (anomalous); labels: 1/True for positives.
    path : str or os.PathLike, optional
        Where to save the figure (then closed).
    title : str, optional
        Figure title.
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a non-empty dict: label -> (scores, labels), or panel "
                         "title -> {label -> (scores, labels)}.")
    nested = all(isinstance(v, dict) for v in curves.values())
    panels = curves if nested else {None: curves}
    plt = _pyplot()
    n = len(panels)
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 4.5 * nrows + 0.4),
                             squeeze=False, layout="constrained")
    colors = {}
    for panel in panels.values():
        for label in panel:
            colors.setdefault(label, f"C{len(colors) % 10}")
    for ax, (panel_title, panel) in zip(axes.flat, panels.items()):
        _roc_panel(ax, panel, panel_title, colors)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return _finish(plt, fig, path)


def plot_vector_fields(panels, path=None, title=None, ncols=3):
    """Reconstruction vector fields ``r(x) - x`` over the plane, one panel each.

    Each arrow starts at a grid point ``x`` and points to its reconstruction
    ``r(x)``, coloured by its true length ``||r(x) - x||``. All panels share one
    length scale: arrows are drawn at their true length, or shortened by one
    common factor (stated under the figure) so that nine arrows in ten are
    at most 1.2 grid spacings long. A denoising or contractive auto-encoder pulls points towards
    the data: arrows point at the curve from both sides and vanish on it.

    Parameters
    ----------
    panels : list of dict
        Each with ``"grid"`` (g, 2) points, ``"vectors"`` (g, 2) the displacements
        ``r(x) - x``, and optionally ``"data"`` (n, 2) training points,
        ``"curve"`` (c, 2) the noise-free curve (a line), ``"title"``.
    path, title, ncols
        As for :func:`plot_roc_curves`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not panels:
        raise ValueError("panels must be a non-empty list of dicts with 'grid' and 'vectors'.")
    checked = []
    for i, p in enumerate(panels):
        G = as_float_array(p["grid"], f"panels[{i}]['grid']", ndim=2)
        V = as_float_array(p["vectors"], f"panels[{i}]['vectors']", ndim=2)
        if G.shape != V.shape or G.shape[1] != 2:
            raise ValueError(f"panels[{i}]: 'grid' and 'vectors' must both be (g, 2); got "
                             f"{G.shape} and {V.shape}.")
        checked.append((G, V, p))
    plt = _pyplot()
    from matplotlib.lines import Line2D
    n = len(checked)
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols + 0.8, 4.2 * nrows + 0.6),
                             squeeze=False, layout="constrained")
    lengths = np.concatenate([np.linalg.norm(V, axis=1) for _, V, _ in checked])
    vmax = float(np.max(lengths)) or 1.0
    spacing = min(_grid_spacing(G) for G, _, _ in checked)
    # one factor for every panel: the 90th percentile of the lengths -> 1.2 grid spacings
    shrink = max(1.0, float(np.percentile(lengths, 90)) / (1.2 * spacing))
    quiver = None
    for ax, (G, V, p) in zip(axes.flat, checked):
        if p.get("data") is not None:
            D = as_float_array(p["data"], "data", ndim=2)
            ax.scatter(D[:, 0], D[:, 1], s=3, color="0.65", zorder=1, lw=0)
        if p.get("curve") is not None:
            C = as_float_array(p["curve"], "curve", ndim=2)
            ax.plot(C[:, 0], C[:, 1], color="k", lw=1.0, zorder=2)
        quiver = ax.quiver(G[:, 0], G[:, 1], V[:, 0], V[:, 1], np.linalg.norm(V, axis=1),
                           angles="xy", scale_units="xy", scale=shrink, cmap="viridis",
                           clim=(0.0, vmax), width=0.004, headwidth=3.5, headlength=4,
                           zorder=3)
        ax.set_aspect("equal")
        lo, hi = G.min(axis=0), G.max(axis=0)
        pad = 0.06 * (hi - lo)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        if p.get("title"):
            ax.set_title(p["title"], fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles = [Line2D([], [], marker="o", ls="", color="0.65", ms=4, label="training data"),
               Line2D([], [], color="k", lw=1, label="noise-free curve"),
               Line2D([], [], marker=r"$\rightarrow$", ls="", color="C0", ms=12,
                      label="arrow from x towards r(x)" + (
                          "" if shrink == 1.0 else f", drawn at 1/{shrink:.3g} of its length"))]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9)
    fig.colorbar(quiver, ax=axes.ravel().tolist(), shrink=0.8,
                 label=r"arrow length $\|r(x) - x\|$")
    if title:
        fig.suptitle(title, fontsize=11)
    return _finish(plt, fig, path)


def _grid_spacing(G):
    """Typical distance from a grid point to its nearest neighbour (median)."""
    if len(G) < 2:
        return 1.0
    D = np.sum((G[:, None, :] - G[None, :, :]) ** 2, axis=-1) if len(G) <= 2000 else None
    if D is None:
        span = np.ptp(G, axis=0)
        return float(np.sqrt(span[0] * span[1] / len(G))) or 1.0
    np.fill_diagonal(D, np.inf)
    return float(np.sqrt(np.median(D.min(axis=1)))) or 1.0


def plot_gap_convergence(results, path=None, title=None):
    """How ``lhs(sigma)`` of :func:`npcae._scores.dae_cae_gap` converges to ``rhs``, log-log.

    Parameters
    ----------
    results : dict label -> list of records
        The output of ``dae_cae_gap`` for each model (at least two sigmas).
    path, title
        As for :func:`plot_roc_curves`.

    Returns
    -------
    matplotlib.figure.Figure
        Left: ``|lhs - rhs| / |rhs|`` (filled markers) and the standard error of
        ``lhs / |rhs|`` (hollow markers, dotted): where the two meet, the gap is
        lost in the Monte-Carlo noise. Right: ``|lhs(sigma) - lhs(sigma_min)| /
        |rhs|`` from paired draws, with one-standard-error bars, and a dashed
        line of slope 2 (the predicted ``O(sigma^2)``).
    """
    if not isinstance(results, dict) or not results:
        raise ValueError("results must be a non-empty dict: label -> list of dae_cae_gap "
                         "records.")
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.6), layout="constrained")
    top, s_all = 0.0, []
    for i, (label, records) in enumerate(results.items()):
        recs = sorted(records, key=lambda rec: rec["sigma"])
        s = np.array([rec["sigma"] for rec in recs])
        rhs = abs(recs[0]["rhs"]) or 1.0
        gap = np.abs([rec["relative_gap"] for rec in recs])
        se = np.array([rec["relative_gap_se"] for rec in recs])
        color = f"C{i}"
        ax1.plot(s, gap, marker="o", color=color, lw=1.6, label=f"{label}: |lhs - rhs| / |rhs|")
        ax1.plot(s, se, marker="o", mfc="none", ls=":", color=color, lw=1,
                 label=f"{label}: standard error")
        diff = np.array([abs(rec["lhs_minus_smallest"]) for rec in recs[1:]]) / rhs
        dse = np.array([rec["lhs_minus_smallest_se"] for rec in recs[1:]]) / rhs
        ax2.errorbar(s[1:], diff, yerr=dse, marker="o", color=color, lw=1.6, capsize=3,
                     label=label)
        if diff.size:
            top = max(top, float(np.max(diff)))
        s_all.extend(s)
    if top > 0:
        s_ref = np.array([min(s_all), max(s_all)])
        ax2.plot(s_ref, top * (s_ref / s_ref[1]) ** 2, color="k", ls="--", lw=1,
                 label=r"slope 2: $\propto \sigma^2$")
    s_min = min(s_all)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"noise standard deviation $\sigma$")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set_ylabel(r"$|\mathrm{lhs}(\sigma) - \mathrm{rhs}|\,/\,|\mathrm{rhs}|$")
    ax1.set_title("gap to the sigma -> 0 limit (exact derivatives)", fontsize=10)
    ax2.set_ylabel(rf"$|\mathrm{{lhs}}(\sigma) - \mathrm{{lhs}}({s_min:g})|\,/\,"
                   rf"|\mathrm{{rhs}}|$")
    ax2.set_title(f"change from sigma = {s_min:g}, paired draws (+-1 standard error)",
                  fontsize=10)
    fig.suptitle(title or "DAE-CAE link: lhs(sigma) -> ||J_r||_F^2 - (x - r).Lap r as "
                          "sigma -> 0", fontsize=11)
    return _finish(plt, fig, path)
