"""Input checks shared by every module.

Each check raises an error that names the argument, says what was wrong and,
where there is one, how to fix it. Nothing here copies data it does not have to.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def _reject_sparse(x, name):
    """Raise ``TypeError`` for scipy.sparse matrices and arrays (without importing scipy)."""
    module = type(x).__module__ or ""
    if module.startswith("scipy.sparse") or (hasattr(x, "tocsr") and hasattr(x, "nnz")):
        raise TypeError(f"{name} is a sparse matrix ({type(x).__name__}), but npcae needs "
                        f"dense data: every model multiplies and differentiates dense "
                        f"arrays. Convert it with {name}.toarray() (mind the memory).")


def as_float_array(x, name="X", *, ndim=None, dtype=None, allow_empty=False,
                   finite=True, copy=False, convert_numeric=False, uint8="error",
                   owner=None):
    """Validate ``x`` and return it as a floating-point ndarray.

    Parameters
    ----------
    x : array_like
        The input (ndarray, nested lists, pandas DataFrame, ...).
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
    convert_numeric : bool
        Convert integer, bool and numeric object arrays to float, as
        scikit-learn's ``check_array`` does (estimators use this). When False,
        they are refused with a ``TypeError``.
    uint8 : {"error", "warn"}
        With ``convert_numeric``: what to do with ``uint8`` input, which is
        almost always raw 8-bit images that should be divided by 255 first.
    owner : str or None
        Estimator name for messages ("... but ContractiveAutoencoder ...").

    Raises
    ------
    TypeError
        Sparse matrices; strings; object arrays that do not convert to numbers;
        integer/bool input when ``convert_numeric`` is False; ``uint8`` with
        ``uint8="error"`` (the message says to divide by 255).
    ValueError
        Complex data, wrong rank ("Reshape your data ..."), empty input, NaN or Inf.
    """
    _reject_sparse(x, name)
    arr = np.asarray(x)
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            if "complex" in type(exc).__name__.lower() or "complex" in str(exc):
                raise ValueError(f"Complex data not supported: {name} holds complex numbers; "
                                 f"npcae works on real data.") from exc
            raise type(exc)(f"{name} has dtype object and could not be converted to float "
                            f"({exc}); pass a numeric array.") from exc
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}; npcae "
                         f"works on real data (take .real or np.abs first if that is meant).")
    if arr.dtype.kind in "iub":
        if arr.dtype == np.uint8:
            hint = (f"{name} has dtype uint8, which looks like raw 8-bit image data (0-255); "
                    f"scale it to [0, 1] first, e.g. X = X.astype(np.float32) / 255.")
            if not convert_numeric or uint8 == "error":
                raise TypeError(hint)
            warnings.warn(hint + " It is used as given (converted to float).", UserWarning,
                          stacklevel=4)
        elif not convert_numeric:
            raise TypeError(f"{name} has integer dtype {arr.dtype}; a floating-point array is "
                            f"required. Convert it first, e.g. X.astype(np.float32).")
        arr = arr.astype(np.float64 if dtype is None else dtype)
    if arr.dtype.kind not in "f":
        raise TypeError(f"{name} has dtype {arr.dtype}; a real numeric array (float32 or "
                        f"float64) is required.")
    if ndim is not None and arr.ndim != ndim:
        var = name if name.isidentifier() else "X"          # a name that reads as code
        shape_hint = ""
        if ndim == 2 and arr.ndim == 1:
            shape_hint = (f" Reshape your data either using {var}.reshape(-1, 1) if it has a "
                          f"single feature or {var}.reshape(1, -1) if it contains a single "
                          f"sample.")
        elif ndim == 2 and arr.ndim == 0:
            shape_hint = f" Reshape your data, e.g. {var} = np.atleast_2d({var})."
        elif ndim == 2 and arr.ndim >= 3:
            shape_hint = (f" Reshape your data: flatten images first, e.g. "
                          f"{var}.reshape(len({var}), -1).")
        raise ValueError(f"Expected a {ndim}-D array for {name} with shape (n_samples, "
                         f"n_features); got a {arr.ndim}-D array of shape {arr.shape}."
                         f"{shape_hint}")
    if not allow_empty and arr.size == 0:
        if arr.ndim == 2:
            what = "sample(s)" if arr.shape[0] == 0 else "feature(s)"
            count = f"0 {what} (shape={arr.shape}) while a minimum of 1 is required"
        else:
            count = f"no values (shape {arr.shape})"
        raise ValueError(f"{name} is empty: found {count}. Pass at least one sample with at "
                         f"least one feature.")
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


def check_n_features(arr, expected, name="X", owner=None):
    """Raise ``ValueError`` unless ``arr.shape[1] == expected``.

    The message follows scikit-learn's wording ("X has 3 features, but
    ContractiveAutoencoder is expecting 4 features as input.").
    """
    if arr.shape[1] != expected:
        who = owner or "the model"
        raise ValueError(f"{name} has {arr.shape[1]} features, but {who} is expecting "
                         f"{expected} features as input (shape (n_samples, {expected})); got "
                         f"shape {arr.shape}.")


def check_in_unit_interval(arr, name="X", why="binary cross-entropy"):
    """Raise ``ValueError`` unless every entry of ``arr`` lies in [0, 1]."""
    lo, hi = float(arr.min()), float(arr.max())
    if not (lo >= 0.0 and hi <= 1.0):                   # also catches NaN
        if not (np.isfinite(lo) and np.isfinite(hi)):
            check_finite(arr, name)                     # says how many NaN/inf and where
        raise ValueError(f"{name} must lie in [0, 1] for {why}; got values in "
                         f"[{lo:.4g}, {hi:.4g}]. Rescale it (e.g. min-max to [0, 1]) or use "
                         f"loss='mse' with a linear decoder.")


def check_random_state(random_state, name="random_state"):
    """Return a ``np.random.Generator`` from the scikit-learn style ``random_state``.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        ``None``: fresh OS entropy. A non-negative int: a reproducible stream.
        A ``Generator`` is returned as it is (so draws advance it). A legacy
        ``RandomState`` draws one 63-bit seed for a new ``Generator`` (so it is
        advanced too, and the same RandomState state gives the same stream).
    name : str
        The argument's name, for error messages.

    Raises
    ------
    ValueError
        A negative integer.
    TypeError
        Anything else (floats, strings, bools).
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(0, 2 ** 63 - 1, dtype=np.int64)))
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, (bool, np.bool_)):
        if random_state < 0:
            raise ValueError(f"{name} must be a non-negative integer, None, a "
                             f"numpy.random.Generator or a numpy.random.RandomState; got "
                             f"{random_state!r}.")
        return np.random.default_rng(int(random_state))
    raise TypeError(f"{name} must be None, a non-negative int, a numpy.random.Generator or a "
                    f"numpy.random.RandomState; got {random_state!r} of type "
                    f"{type(random_state).__name__}.")


def check_positive_int(value, name):
    """Return ``int(value)`` for an integer >= 1 (bools refused), else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer; got {value!r} of type "
                        f"{type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1); got {value!r}.")
    return int(value)


def check_bool(value, name):
    """Return ``bool(value)`` for ``True``/``False`` (numpy bools too), else raise ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} of type "
                        f"{type(value).__name__}.")
    return bool(value)


def check_real(value, name, *, low=None, low_open=False, high=None):
    """Return ``float(value)`` for a finite real number in the allowed range, else raise.

    Strings, ``None`` and bools are a ``TypeError`` (no silent ``float("0.1")``);
    NaN, inf and out-of-range values are a ``ValueError``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} of type "
                        f"{type(value).__name__}.")
    value_f = float(value)
    ok = np.isfinite(value_f)
    if ok and low is not None:
        ok = value_f > low if low_open else value_f >= low
    if ok and high is not None:
        ok = value_f <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"<= {high:g}"
        rng = " and ".join(part for part in (lo, hi) if part)
        raise ValueError(f"{name} must be a finite number{' ' + rng if rng else ''}; got "
                         f"{value!r}.")
    return value_f


def layer_widths(layers):
    """``layers`` as a tuple of ints (an int is one layer); no checking (see :func:`check_widths`)."""
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, (bool, np.bool_)):
        layers = (layers,)
    return tuple(int(w) for w in layers)


def check_widths(layers, name="layers", example="(256, 128, 64)"):
    """Raise unless ``layers`` is an int or a non-empty tuple/list of positive ints."""
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, (bool, np.bool_)):
        layers = (layers,)
    if not isinstance(layers, (tuple, list)) or not layers:
        raise TypeError(f"{name} must be a non-empty tuple of widths, e.g. {example}; got "
                        f"{layers!r}.")
    for i, width in enumerate(layers):
        check_positive_int(width, f"{name}[{i}]")


def check_positive_1d(values, name, meaning="positive numbers"):
    """``values`` as a non-empty 1-D float64 array of finite numbers > 0 (a scalar becomes one
    entry), else raise; ``meaning`` names what they are in the message (e.g. "radii")."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number or a 1-D sequence of positive "
                        f"numbers; got {values!r}.") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of {meaning}; got shape "
                         f"{arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0 ({meaning}); got {arr.tolist()}.")
    return arr
