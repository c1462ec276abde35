"""Input checks shared by every module.

Each check raises an error that names the argument, says what was wrong and,
where there is one, how to fix it. Nothing here copies data it does not have to.
"""
from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def as_float_array(x, name="X", *, ndim=None, dtype=None, allow_empty=False,
                   finite=True, copy=False):
    """Validate ``x`` and return it as a floating-point ndarray.

    Parameters
    ----------
    x : array_like
        The input.
    name : str
        Name used in error messages.
    ndim : int or None
        Required number of dimensions (``2`` for ``(n_samples, n_features)``).
    dtype : numpy dtype or None
        Cast to this float dtype. ``None`` keeps float32/float64 as given.
    allow_empty : bool
        Whether zero-size arrays are accepted.
    finite : bool
        Reject NaN and Inf.

    Raises
    ------
    TypeError
        Integer, boolean, complex or object input (floats are required). For
        ``uint8`` the message suggests dividing by 255.
    ValueError
        Wrong rank, empty input, NaN or Inf.
    """
    arr = np.asarray(x)
    if arr.dtype.kind in "iub":
        hint = ""
        if arr.dtype == np.uint8:
            hint = (" It looks like raw 8-bit image data: scale it to [0, 1] first, "
                    "e.g. X = X.astype(np.float32) / 255.")
        else:
            hint = " Convert it first, e.g. X.astype(np.float32)."
        raise TypeError(f"{name} has integer dtype {arr.dtype}; a floating-point array is "
                        f"required.{hint}")
    if arr.dtype.kind not in "f":
        raise TypeError(f"{name} has dtype {arr.dtype}; a real floating-point array "
                        f"(float32 or float64) is required.")
    if ndim is not None and arr.ndim != ndim:
        shape_hint = ""
        if ndim == 2 and arr.ndim == 1:
            shape_hint = (" For a single sample use X.reshape(1, -1); for a single "
                          "feature use X.reshape(-1, 1).")
        elif ndim == 2 and arr.ndim == 3:
            shape_hint = " Flatten images first, e.g. X.reshape(len(X), -1)."
        raise ValueError(f"{name} must be {ndim}-D with shape (n_samples, n_features); "
                         f"got {arr.ndim}-D array of shape {arr.shape}.{shape_hint}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one sample with "
                         f"at least one feature is required.")
    if dtype is not None:
        dtype = np.dtype(dtype)
        arr = arr.astype(dtype, copy=copy)
    elif arr.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        arr = arr.astype(np.float64)
    elif copy:
        arr = arr.copy()
    if finite:
        check_finite(arr, name)
    return arr


def check_finite(arr, name="X"):
    """Raise ``ValueError`` if ``arr`` holds NaN or Inf, saying how many and where."""
    arr = np.asarray(arr)
    if arr.dtype.kind == "c":
        ok = np.isfinite(arr.real).all() and np.isfinite(arr.imag).all()
    else:
        # sum() propagates NaN/Inf and is faster than isfinite().all() on big arrays
        with np.errstate(over="ignore", invalid="ignore"):
            ok = bool(np.isfinite(arr.sum())) or bool(np.isfinite(arr).all())
    if not ok:
        bad = ~np.isfinite(arr)
        n_nan = int(np.isnan(arr).sum())
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains {n_nan} NaN and {int(bad.sum()) - n_nan} "
                         f"infinite value(s) (first at index {first}). Remove or impute "
                         f"them before passing the data in.")
    return arr


def check_n_features(arr, expected, name="X"):
    """Raise ``ValueError`` unless ``arr.shape[1] == expected``."""
    if arr.shape[1] != expected:
        raise ValueError(f"{name} has {arr.shape[1]} features per sample but {expected} "
                         f"were expected (shape (n_samples, {expected})); got shape "
                         f"{arr.shape}.")


def check_in_unit_interval(arr, name="X", why="binary cross-entropy"):
    """Raise ``ValueError`` unless every entry of ``arr`` lies in [0, 1]."""
    lo, hi = float(arr.min()), float(arr.max())
    if not (lo >= 0.0 and hi <= 1.0):                   # also catches NaN
        if not (np.isfinite(lo) and np.isfinite(hi)):
            check_finite(arr, name)                     # says how many NaN/inf and where
        raise ValueError(f"{name} must lie in [0, 1] for {why}; got values in "
                         f"[{lo:.4g}, {hi:.4g}]. Rescale it (e.g. min-max to [0, 1]) or use "
                         f"loss='mse' with a linear decoder.")


def check_random_state(seed):
    """Return a ``np.random.Generator`` from ``None``, an int or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be None, an int or a numpy.random.Generator; got "
                    f"{type(seed).__name__}.")


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)
