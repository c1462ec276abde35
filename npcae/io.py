"""Saving and loading models: ``.npz`` arrays plus JSON metadata, never pickle.

File layout (a plain zip of ``.npy`` files, readable with ``np.load``)::

    __npcae__.npy        0-d unicode array holding the JSON metadata
    param.<name>.npy     each entry of model.params
    optim.<key>.<i>.npy  the optimizer's per-parameter buffers (to resume training)
    stage.<i>.<name>.npy the parameters of a fitted stage ``i`` (StackedAutoencoder's ``stages_``)
    fitted.<name>.npy    other fitted arrays a model declares (MLPClassifier's ``classes_``)

The metadata is a JSON object::

    format            "npcae-model"
    format_version    1, 2 or 3 (this npcae writes 3)
    npcae_version     the npcae that wrote the file
    class             the model class, looked up in the registry the caller passes
    hyperparameters   the constructor's arguments, by name; an estimator among them (the
                      stacked model's ``stages``) is {"__estimator__": {"class": name,
                      "params": its hyperparameters}}, its class looked up in the registry
    n_features_in     the number of input features
    history           the per-epoch training history (lists of floats, optional best_epoch;
                      a stacked model's "stages": a list of its stages' histories)
    optimizer         null, or {"config", "steps", "n_buffers"} (the optimizer's state)
    training          {"rng_state": the minibatch-shuffling generator's state or null,
                       "n_iter": epochs trained}                           (version 3)

Loading reads with ``allow_pickle=False``, looks the class up in a registry that the
caller passes (``npcae.load`` passes ``npcae.models.MODELS``: an untrusted file cannot run
code, and this module never imports the models), and checks the whole file against this
schema before it builds the model: any problem raises :class:`ModelFileError` naming the
field or array at fault.

Every file (models, JSON, figures) is written through :func:`atomic_write`: to
a temporary file beside the target, renamed into place only when complete.
"""
from __future__ import annotations

import json
import os
import reprlib
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._version import __version__

__all__ = ["save_model", "load_model", "ModelFileError", "FORMAT", "FORMAT_VERSION",
           "atomic_write"]

FORMAT = "npcae-model"
FORMAT_VERSION = 3
# Version history:
# 1  Adam's paper moments per parameter name; such optimizer state is not carried over (a
#    warning says so), parameters and history load.
# 2  (npcae 0.1) the optimizer state of the packed parameter buffer (key "packed", see
#    npcae.training.pack_arrays), Adam's moments stored as m / (1 - beta1), v / (1 - beta2).
# 3  adds "training": the shuffling generator's state and the epoch count, so a warm start
#    after loading continues exactly like an uninterrupted run. The model's "seed"
#    hyperparameter became "random_state" (older files are read either way).
#    StackedAutoencoder files (format 3 too) add estimators in hyperparameters
#    ({"__estimator__": ...}), history "stages" and "stage.<i>.<name>" arrays. Only that class
#    uses them, and an npcae without it refuses its files by their unknown class, so the
#    version number did not change.
#    MLPClassifier files (format 3 too) add "fitted.classes_" (the labels; numbers, bools or
#    strings) and store the fitted architecture as the hyperparameters (layers, per-layer
#    activations, init_from null: the pretrained weights are the parameters). Same reasoning.
_META_KEY = "__npcae__"
_RESAVE = "the file was altered or damaged after saving; save the model again"


class ModelFileError(ValueError):
    """The file is not a readable npcae model (truncated, foreign, malformed or newer)."""


# ---------------------------------------------------------------------------
# Atomic writing
# ---------------------------------------------------------------------------

def _current_umask():
    """The process umask, read without changing it when the system allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting
    and restoring it (``os.umask`` has no read-only form).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write(path, write):
    """Write a file by calling ``write(fileobj)``, all or nothing.

    ``write`` receives a binary file object opened on a temporary file in the
    directory of the target; once it returns, the data are flushed and
    fsync'ed and the temporary file is renamed over the target
    (``os.replace``, atomic on POSIX and Windows). Readers therefore see the old
    file or the complete new one, never a partial file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. Missing parent directories are created. When ``path`` is
        a symbolic link, the file it points to is replaced and the link is
        kept.
    write : callable
        ``write(fileobj)`` writes the content (its return value is ignored).

    Returns
    -------
    pathlib.Path
        ``path`` as given.

    Notes
    -----
    A new file gets the permissions ``open`` would give it (``0o666`` minus the
    umask, e.g. ``0o644`` under umask ``022``); a replaced file keeps its mode.
    If ``write`` or the rename raises anything, KeyboardInterrupt included, the
    temporary file is removed, the target is left as it was and the exception
    propagates.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))          # through symlinks, to the real file
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    renamed = False
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, mode)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        renamed = True
    finally:
        if not renamed:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    return path


# ---------------------------------------------------------------------------
# Hyperparameters <-> JSON
# ---------------------------------------------------------------------------

def _jsonable(value):
    """Hyperparameter -> JSON value (dtypes, activations and optimizers by their config)."""
    from .activations import ActivationFunction
    from .optim import Optimizer
    if isinstance(value, (ActivationFunction, Optimizer)):
        return {"__config__": value.get_config(),
                "__kind__": "activation" if isinstance(value, ActivationFunction) else "optimizer"}
    if _is_estimator(value):                           # e.g. a stacked model's stages
        return {"__estimator__": {"class": type(value).__name__,
                                  "params": _jsonable(value.get_params())}}
    if isinstance(value, type) and issubclass(value, np.generic) or isinstance(value, np.dtype):
        return {"__dtype__": np.dtype(value).name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):                       # e.g. layers=(256, 128): stays a tuple
        return {"__tuple__": [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save hyperparameter value {value!r} of type "
                    f"{type(value).__name__}; use a name, number or config dict.")


def _is_estimator(value):
    """An npcae model instance (duck-typed: this module never imports the models)."""
    return (not isinstance(value, type) and callable(getattr(value, "get_params", None))
            and callable(getattr(type(value), "_get_param_names", None)))


def _from_jsonable(value, registry=None, where="value"):
    """Inverse of :func:`_jsonable`. Estimators' classes are looked up in ``registry``
    (a mapping name -> class) and nowhere else; ``where`` names the value in errors."""
    from .activations import get_activation
    from .optim import get_optimizer
    if isinstance(value, dict):
        if "__estimator__" in value:
            return _estimator_from_jsonable(value, registry, where)
        if "__dtype__" in value:
            return np.dtype(value["__dtype__"]).type
        if "__tuple__" in value:
            if not isinstance(value["__tuple__"], list):
                raise TypeError(f"'__tuple__' must hold a list; got {value['__tuple__']!r}")
            return tuple(_from_jsonable(v, registry, f"{where}[{i}]")
                         for i, v in enumerate(value["__tuple__"]))
        if "__config__" in value:
            if value.get("__kind__") == "activation":
                return get_activation(value["__config__"])
            return get_optimizer(value["__config__"])
        return {k: _from_jsonable(v, registry, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v, registry, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _estimator_from_jsonable(value, registry, where):
    """An unfitted estimator from ``{"__estimator__": {"class": name, "params": {...}}}``.

    Strict: exactly those keys, a class from ``registry``, exactly the class's
    hyperparameter names. Raises ``ValueError`` naming ``where`` and what is wrong.
    """
    field = f"{where}.__estimator__"
    if set(value) != {"__estimator__"}:
        raise ValueError(f"{where}: an estimator is stored as {{'__estimator__': ...}} alone; "
                         f"found the other keys {sorted(k for k in value if k != '__estimator__')}")
    spec = value["__estimator__"]
    if not isinstance(spec, dict) or set(spec) != {"class", "params"}:
        raise ValueError(f"{field} must be a JSON object with exactly the keys 'class' and "
                         f"'params'; got {_short(spec)}")
    if registry is None:
        raise ValueError(f"{field}: decoding an estimator needs the model registry (pass it "
                         f"to load_model)")
    name, params = spec["class"], spec["params"]
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"{field}.class is {_short(name)}, not a known model class; known: "
                         f"{sorted(registry)}")
    if not isinstance(params, dict):
        raise ValueError(f"{field}.params must be a JSON object of {name}'s hyperparameters; "
                         f"got {_short(params)}")
    names = cls._get_param_names()
    missing = [k for k in names if k not in params]
    unknown = sorted(k for k in params if k not in names)
    if missing or unknown:
        raise ValueError(f"{field}.params must name exactly {name}'s hyperparameters {names}; "
                         f"missing: {missing}, unknown: {unknown}")
    values = {k: _from_jsonable(params[k], registry, f"{field}.params.{k}") for k in names}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"{field}: {name}(...) refused these hyperparameters: {exc}") from exc


# ---------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------

def save_model(model, path):
    """Write ``model`` to ``path`` atomically (see :func:`atomic_write`).

    Parameters
    ----------
    model : BaseAutoencoder
        A model with parameters (fitted, or set up with ``initialize``).
    path : str or os.PathLike
        Used as given (no suffix is added); ``.npz`` is the convention.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        The model has no parameters yet.
    """
    if not model.params:
        raise ValueError(f"this {type(model).__name__} has no parameters to save; fit it first.")
    arrays = {f"param.{k}": np.asarray(v) for k, v in model.params.items()}
    optimizer = getattr(model, "optimizer_", None)
    optim_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        optim_meta = {"config": state["config"],
                      "steps": {k: s["t"] for k, s in state["state"].items()},
                      "n_buffers": {k: len(s["buffers"]) for k, s in state["state"].items()}}
        for key, s in state["state"].items():
            for i, buf in enumerate(s["buffers"]):
                arrays[f"optim.{key}.{i}"] = buf
    saved_fitted = getattr(model, "_saved_fitted_arrays", None)
    for k, v in ((saved_fitted() if callable(saved_fitted) else None) or {}).items():
        arrays[f"fitted.{k}"] = _plain_array(v, f"{type(model).__name__}.{k}")
    saved_stages = getattr(model, "_saved_stages", None)
    for i, stage_params in enumerate((saved_stages() if callable(saved_stages) else None) or ()):
        for k, v in stage_params.items():
            arrays[f"stage.{i}.{k}"] = np.asarray(v)
    history = getattr(model, "history_", {})
    training = {"rng_state": _jsonable(getattr(model, "training_rng_state_", None)),
                "n_iter": int(getattr(model, "n_iter_", len(history.get("total", []))))}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "npcae_version": __version__,
            "class": type(model).__name__,
            "hyperparameters": _jsonable(_saved_hyperparameters(model)),
            "n_features_in": int(model.n_features_in_), "history": _jsonable(history),
            "optimizer": optim_meta, "training": training}
    arrays[_META_KEY] = np.array(json.dumps(meta))
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _saved_hyperparameters(model):
    """What a file stores as the hyperparameters: ``model._saved_hyperparameters()`` when the
    model defines it (the classifier replaces ``init_from`` by the architecture it fixed),
    else ``get_params()``."""
    hook = getattr(model, "_saved_hyperparameters", None)
    return hook() if callable(hook) else model.get_params()


def _plain_array(value, name):
    """``value`` as an array ``np.save`` writes without pickle (numbers, bools, strings)."""
    array = np.asarray(value)
    if array.dtype.kind == "O":
        kinds = {type(v).__name__ for v in array.ravel()}
        if all(isinstance(v, str) for v in array.ravel()):
            return array.astype(str)
        raise TypeError(f"cannot save {name} of dtype object holding {sorted(kinds)} without "
                        f"pickle; use numbers or strings.")
    if array.dtype.kind not in "biufU":
        raise TypeError(f"cannot save {name} of dtype {array.dtype} without pickle; use "
                        f"numbers or strings.")
    return array


# ---------------------------------------------------------------------------
# Loading: read the archive, check everything, then build
# ---------------------------------------------------------------------------

def load_model(path, registry):
    """Load a model written by :func:`save_model` (or ``model.save``).

    The whole file is checked before the model is built: the metadata schema,
    the hyperparameters (by the model's own validation), every array's shape
    and dtype, the optimizer state and the training state.

    Parameters
    ----------
    path : str or os.PathLike
    registry : mapping of str to class
        Model class name -> class; the file's ``class`` field is looked up here and
        nowhere else. :func:`npcae.load` passes :data:`npcae.models.MODELS`.

    Returns
    -------
    BaseAutoencoder
        The model, with ``params``, ``n_features_in_``, ``history_``,
        ``n_iter_``, ``optimizer_`` (when saved) and ``training_rng_state_``
        (format 3, when saved); a stacked model also gets its fitted ``stages_``
        back from its ``stage.<i>.<name>`` arrays.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError
        Not a valid npcae model file: truncated, not an ``.npz`` archive,
        missing or malformed metadata, unknown class, a newer format version,
        or arrays that do not fit the model. The message names the field.
    TypeError
        ``registry`` is not a mapping of class names to classes.
    """
    _check_registry(registry)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        meta, arrays = _read_archive(path)
        contents = _check_file(meta, arrays, registry)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from exc.__cause__
    if contents["dropped_optimizer"]:
        warnings.warn(f"{path} was written by an older npcae (format version "
                      f"{meta['format_version']}); its parameters are loaded but its "
                      f"optimizer state is not, so warm-started training starts with fresh "
                      f"optimizer moments.", UserWarning, stacklevel=2)
    model = contents["model"]
    model.params = contents["params"]
    model.n_features_in_ = contents["n_features_in"]
    model.history_ = contents["history"]
    model.n_iter_ = contents["n_iter"]
    if contents["rng_state"] is not None:
        model.training_rng_state_ = contents["rng_state"]
    if contents["optimizer"] is not None:
        model.optimizer_ = contents["optimizer"]
    if contents["stages"] is not None:
        model._restore_stages(contents["stages"])
    return model


def _check_registry(registry):
    if not isinstance(registry, Mapping):
        raise TypeError(f"registry must be a mapping of model class name -> class (e.g. "
                        f"npcae.models.MODELS); got {type(registry).__name__}.")
    bad = [name for name, cls in registry.items()
           if not (isinstance(name, str) and isinstance(cls, type))]
    if bad:
        raise TypeError(f"registry must map class names (str) to classes; these entries do "
                        f"not: {bad!r}. Use e.g. {{cls.__name__: cls for cls in classes}}.")


def _read_archive(path):
    """``(metadata, arrays)`` from the file: the parsed JSON and the other entries."""
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ModelFileError(f"not a readable npcae model file (truncated or not an .npz "
                             f"archive): {exc}") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ModelFileError(f"is a single .npy array (shape {np.shape(data)}), not an npcae "
                             f"model (an .npz archive written by model.save).")
    with data:
        if _META_KEY not in data.files:
            raise ModelFileError(f"is an .npz file but not an npcae model (no '{_META_KEY}' "
                                 f"metadata entry).")
        arrays = {}
        for key in data.files:
            try:
                arrays[key] = data[key]
            except Exception as exc:
                raise ModelFileError(f"entry {key!r} cannot be read (truncated file, or an "
                                     f"object array, which npcae never writes): {exc}") from exc
    return _parse_metadata(arrays.pop(_META_KEY)), arrays


def _parse_metadata(entry):
    """The metadata entry (a 0-d string array) -> the JSON object it holds."""
    if not isinstance(entry, np.ndarray) or entry.shape != () or entry.dtype.kind not in "US":
        raise ModelFileError(f"the '{_META_KEY}' metadata entry must be a 0-d string array; got "
                             f"{_describe(entry)}; {_RESAVE}.")
    try:
        text = entry[()]
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        text.encode("utf-8")                        # lone surrogates, out-of-range code points
        meta = json.loads(text)
    except RecursionError as exc:
        raise ModelFileError(f"the '{_META_KEY}' metadata is nested too deeply to be npcae "
                             f"metadata; {_RESAVE}.") from exc
    except (UnicodeError, ValueError) as exc:
        raise ModelFileError(f"the '{_META_KEY}' metadata entry is not valid UTF-8 JSON text "
                             f"({exc}); {_RESAVE}.") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"the '{_META_KEY}' metadata must be a JSON object; got "
                             f"{type(meta).__name__} {_short(meta)}; {_RESAVE}.")
    return meta


# -- small helpers for naming what is wrong --------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = 60


def _short(value):
    return _repr.repr(value)


def _describe(array):
    if isinstance(array, np.ndarray):
        return f"an array of shape {array.shape} and dtype {array.dtype}"
    return f"{type(array).__name__} {_short(array)}"


def _field_error(field, expected, value):
    return ModelFileError(f"metadata field {field!r} must be {expected}; got {_short(value)}; "
                          f"{_RESAVE}.")


def _get(mapping, key, field):
    """``mapping[key]``, or a ModelFileError naming the missing ``field``."""
    if key not in mapping:
        raise ModelFileError(f"metadata field {field!r} is missing; {_RESAVE}.")
    return mapping[key]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(value, field, minimum):
    if not _is_int(value) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise _field_error(field, what, value)
    return value


def _check_dict(value, field, what="a JSON object"):
    if not isinstance(value, dict):
        raise _field_error(field, what, value)
    return value


# -- the schema ------------------------------------------------------------------------

def _check_file(meta, arrays, registry):
    """Check the metadata and arrays against the format; return what to build from.

    Returns a dict: ``model`` (built from the checked hyperparameters, nothing
    else set), ``params``, ``n_features_in``, ``history``, ``n_iter``,
    ``rng_state``, ``optimizer``, ``dropped_optimizer`` (a format-1
    optimizer state that is not carried over) and ``stages`` (None, or a
    stacked model's stage parameters: one dict per stage).
    """
    fmt = _get(meta, "format", "format")
    if fmt != FORMAT:
        raise ModelFileError(f"has format {_short(fmt)}, not {FORMAT!r}: not an npcae model.")
    version = _check_int(_get(meta, "format_version", "format_version"), "format_version", 1)
    if version > FORMAT_VERSION:
        raise ModelFileError(f"uses format version {version}; this npcae reads up to "
                             f"{FORMAT_VERSION}. Upgrade npcae to load it.")
    if "npcae_version" in meta and not isinstance(meta["npcae_version"], str):
        raise _field_error("npcae_version", "a string", meta["npcae_version"])
    name = _get(meta, "class", "class")
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelFileError(f"holds unknown model class {_short(name)} (metadata field "
                             f"'class'); known: {sorted(registry)}.")
    n_features = _check_int(_get(meta, "n_features_in", "n_features_in"), "n_features_in", 1)
    history = _check_history(_get(meta, "history", "history"))
    model = _build_model(cls, _get(meta, "hyperparameters", "hyperparameters"), version,
                         registry)
    _restore_fitted_arrays(model, arrays)
    params = _check_params(model, n_features, arrays)
    stages = _check_stages(model, n_features, arrays, history)

    optim_meta = _get(meta, "optimizer", "optimizer")
    if optim_meta is not None:
        _check_dict(optim_meta, "optimizer", "null or a JSON object")
    dropped = optim_meta is not None and version < 2
    optimizer = None
    if optim_meta is not None and not dropped:
        optimizer = _check_optimizer(optim_meta, model, params, arrays)
    elif any(key.startswith("optim.") for key in arrays) and not dropped:
        raise ModelFileError(f"holds optimizer arrays but metadata field 'optimizer' is null; "
                             f"{_RESAVE}.")

    leftover = sorted(k for k in arrays
                      if not k.startswith(("param.", "optim.", "stage.", "fitted.")))
    if leftover:
        raise ModelFileError(f"holds entries that are not part of an npcae model: {leftover}; "
                             f"{_RESAVE}.")

    rng_state, n_iter = None, len(history.get("total", []))
    if version >= 3:
        training = _check_dict(_get(meta, "training", "training"), "training")
        n_iter = _check_int(_get(training, "n_iter", "training.n_iter"), "training.n_iter", 0)
        rng_state = _get(training, "rng_state", "training.rng_state")
        if rng_state is not None:
            _check_rng_state(rng_state)
    return {"model": model, "params": params, "n_features_in": n_features,
            "history": history, "n_iter": n_iter, "rng_state": rng_state,
            "optimizer": optimizer, "dropped_optimizer": dropped, "stages": stages}


def _restore_fitted_arrays(model, arrays):
    """Give the model its ``fitted.<name>`` arrays (before its parameter shapes are checked:
    the classifier's output width is ``len(classes_)``). Exactly the names the model's
    ``_fitted_array_names`` lists, each checked by ``model._restore_fitted_arrays``."""
    stored = {k[len("fitted."):]: v for k, v in arrays.items() if k.startswith("fitted.")}
    expected = set(getattr(model, "_fitted_array_names", ()))
    owner = type(model).__name__
    if set(stored) != expected:
        raise ModelFileError(f"holds fitted arrays {sorted(stored)}; a {owner} needs "
                             f"{sorted(expected)}; {_RESAVE}.")
    if not stored:
        return
    try:
        model._restore_fitted_arrays(stored)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"holds fitted arrays that a {owner} refuses: {exc}; "
                             f"{_RESAVE}.") from exc


def _check_history(history, where="history", stages_allowed=True):
    """A dict of lists of numbers (as floats), plus an optional int ``best_epoch`` and, at
    the top level, an optional ``stages``: a list of such dicts (a stacked model's stages)."""
    expected = "a JSON object of lists of numbers (and an optional int 'best_epoch')"
    _check_dict(history, where, expected)
    checked = {}
    for key, values in history.items():
        field = f"{where}.{key}"
        if key == "stages" and stages_allowed:
            if not isinstance(values, list):
                raise _field_error(field, "a list of the stages' histories", values)
            checked[key] = [_check_history(h, f"{field}[{i}]", stages_allowed=False)
                            for i, h in enumerate(values)]
            continue
        if key == "best_epoch":
            checked[key] = _check_int(values, field, 1)
            continue
        if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise _field_error(field, "a list of numbers", values)
        checked[key] = [float(v) for v in values]
    return checked


# what format-2 files store (with "random_state" for "seed"): nothing else may be missing
_FORMAT_2_HYPERPARAMETERS = {
    "ContractiveAutoencoder": ("n_hidden", "lam", "activation", "output_activation", "loss",
                               "tied", "optimizer", "batch_size", "epochs", "random_state",
                               "dtype", "init", "early_stopping", "verbose", "warm_start"),
}


def _build_model(cls, raw, version, registry=None):
    """An instance of ``cls`` from the stored hyperparameters, checked by the model itself."""
    _check_dict(raw, "hyperparameters")
    names = cls._get_param_names()
    raw = dict(raw)
    if version < 3:
        # formats 1 and 2 called random_state "seed"; arguments added since take their defaults
        if "seed" in raw and "random_state" not in raw and "random_state" in names:
            raw["random_state"] = raw.pop("seed")
        older = _FORMAT_2_HYPERPARAMETERS.get(cls.__name__, ())
        for key, value in cls().get_params().items():
            if key not in raw and key not in older:
                raw[key] = _jsonable(value)
    missing = [k for k in names if k not in raw]
    unknown = sorted(k for k in raw if k not in names)
    if missing:
        raise ModelFileError(f"metadata field 'hyperparameters' lacks {missing}, which "
                             f"{cls.__name__} needs; {_RESAVE}.")
    if unknown:
        raise ModelFileError(f"metadata field 'hyperparameters' has {unknown}, which "
                             f"{cls.__name__} does not take (it takes {names}); {_RESAVE}.")
    values = {}
    for name in names:
        try:
            values[name] = _from_jsonable(raw[name], registry, name)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise ModelFileError(f"metadata field 'hyperparameters.{name}' cannot be decoded "
                                 f"({exc}); {_RESAVE}.") from exc
    try:
        model = cls(**values)
        model._check_hyperparameters()
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"metadata field 'hyperparameters' holds a value that "
                             f"{cls.__name__} refuses: {exc}") from exc
    return model


def _check_params(model, n_features, arrays):
    """The ``param.*`` arrays, exactly the names, shapes and dtypes the model needs."""
    try:
        shapes = {name: tuple(shape)
                  for name, (shape, _) in model._param_shapes(n_features).items()}
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"metadata fields 'hyperparameters' and 'n_features_in' do not "
                             f"define a model: {exc}") from exc
    stored = {k[len("param."):]: v for k, v in arrays.items() if k.startswith("param.")}
    missing = sorted(set(shapes) - set(stored))
    unknown = sorted(set(stored) - set(shapes))
    if missing or unknown:
        raise ModelFileError(f"holds parameter arrays {sorted(stored)}; this "
                             f"{type(model).__name__} needs {sorted(shapes)} (missing: "
                             f"{missing}, unexpected: {unknown}); {_RESAVE}.")
    for name, shape in shapes.items():
        array = stored[name]
        entry = f"param.{name}"
        if not isinstance(array, np.ndarray) or array.dtype not in (np.float32, np.float64):
            raise ModelFileError(f"array {entry!r} must be a float32 or float64 array; got "
                                 f"{_describe(array)}; {_RESAVE}.")
        if array.shape != shape:
            raise ModelFileError(f"array {entry!r} has shape {array.shape}; a "
                                 f"{type(model).__name__} with these hyperparameters on "
                                 f"{n_features} features needs {shape}; {_RESAVE}.")
        if not np.isfinite(array).all():
            raise ModelFileError(f"array {entry!r} holds NaN or infinite values; {_RESAVE}.")
    return {name: stored[name] for name in shapes}


def _check_stages(model, n_features, arrays, history):
    """A stacked model's ``stage.<i>.<name>`` arrays: None when there are none, else one dict
    per stage with exactly the names, shapes and (float) dtypes the stages need."""
    stored = {k: v for k, v in arrays.items() if k.startswith("stage.")}
    shapes_of = getattr(model, "_stage_param_shapes", None)
    owner = type(model).__name__
    if not callable(shapes_of):
        if stored or "stages" in history:
            what = f"arrays {sorted(stored)}" if stored else "metadata field 'history.stages'"
            raise ModelFileError(f"holds {what}, but a {owner} has no stages; {_RESAVE}.")
        return None
    try:
        expected = shapes_of(n_features)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"metadata fields 'hyperparameters' and 'n_features_in' do not "
                             f"define the stages: {exc}") from exc
    if "stages" in history and len(history["stages"]) != len(expected):
        raise ModelFileError(f"metadata field 'history.stages' holds "
                             f"{len(history['stages'])} histories; this {owner} has "
                             f"{len(expected)} stages; {_RESAVE}.")
    if not stored:
        return None
    needed = {f"stage.{i}.{name}": shape
              for i, shapes in enumerate(expected) for name, shape in shapes.items()}
    missing = sorted(set(needed) - set(stored))
    unknown = sorted(set(stored) - set(needed))
    if missing or unknown:
        raise ModelFileError(f"holds stage arrays {sorted(stored)}; this {owner} needs "
                             f"{sorted(needed)} (missing: {missing}, unexpected: {unknown}); "
                             f"{_RESAVE}.")
    for entry, shape in needed.items():
        array = stored[entry]
        if not isinstance(array, np.ndarray) or array.dtype not in (np.float32, np.float64):
            raise ModelFileError(f"array {entry!r} must be a float32 or float64 array; got "
                                 f"{_describe(array)}; {_RESAVE}.")
        if array.shape != shape:
            raise ModelFileError(f"array {entry!r} has shape {array.shape}; the stage needs "
                                 f"{shape}; {_RESAVE}.")
        if not np.isfinite(array).all():
            raise ModelFileError(f"array {entry!r} holds NaN or infinite values; {_RESAVE}.")
    return [{name: stored[f"stage.{i}.{name}"] for name in shapes}
            for i, shapes in enumerate(expected)]


def _check_optimizer(optim_meta, model, params, arrays):
    """An optimizer restored from the metadata and ``optim.*`` arrays, after checking them.

    The state key ``"packed"`` (see :data:`npcae.training.PACKED`) holds buffers
    of the total parameter size in the model's dtype; any other key must be a
    parameter name, with buffers of that parameter's shape and dtype. Buffers
    that do not fit would make the optimizer silently restart its moments.
    """
    from .optim import get_optimizer
    from .training import PACKED
    config = _check_dict(_get(optim_meta, "config", "optimizer.config"), "optimizer.config")
    try:
        optimizer = get_optimizer(config)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"metadata field 'optimizer.config' is not a valid optimizer "
                             f"config ({exc}); {_RESAVE}.") from exc
    steps = _check_dict(_get(optim_meta, "steps", "optimizer.steps"), "optimizer.steps")
    n_buffers = _check_dict(_get(optim_meta, "n_buffers", "optimizer.n_buffers"),
                            "optimizer.n_buffers")
    if set(steps) != set(n_buffers):
        raise ModelFileError(f"metadata fields 'optimizer.steps' and 'optimizer.n_buffers' "
                             f"name different keys ({sorted(steps)} and {sorted(n_buffers)}); "
                             f"{_RESAVE}.")
    total_size = sum(p.size for p in params.values())
    state, used = {}, set()
    for key, t in steps.items():
        _check_int(t, f"optimizer.steps.{key}", 0)
        count = n_buffers[key]
        if not _is_int(count) or count != optimizer._n_buffers:
            raise _field_error(f"optimizer.n_buffers.{key}",
                               f"{optimizer._n_buffers} (the buffers {type(optimizer).__name__} "
                               f"keeps per parameter)", count)
        if key == PACKED:
            shape, dtype = (total_size,), model.dtype_
        elif key in params:
            shape, dtype = params[key].shape, params[key].dtype
        else:
            raise ModelFileError(f"metadata field 'optimizer.steps' has key {_short(key)}, "
                                 f"which is neither {PACKED!r} nor a parameter name "
                                 f"{sorted(params)}; {_RESAVE}.")
        buffers = []
        for i in range(count):
            entry = f"optim.{key}.{i}"
            if entry not in arrays:
                raise ModelFileError(f"array {entry!r} is missing (metadata field "
                                     f"'optimizer.n_buffers.{key}' is {count}); {_RESAVE}.")
            buf = arrays[entry]
            if not isinstance(buf, np.ndarray) or buf.shape != shape or buf.dtype != dtype:
                raise ModelFileError(f"array {entry!r} must have shape {shape} and dtype "
                                     f"{dtype}; got {_describe(buf)}; {_RESAVE}.")
            buffers.append(buf)
            used.add(entry)
        state[key] = {"t": t, "buffers": buffers}
    extra = sorted(k for k in arrays if k.startswith("optim.") and k not in used)
    if extra:
        raise ModelFileError(f"holds optimizer arrays {extra} that metadata field "
                             f"'optimizer.n_buffers' does not declare; {_RESAVE}.")
    return optimizer.load_state_dict({"config": optimizer.get_config(), "state": state})


def _check_rng_state(rng_state):
    """Raise unless ``rng_state`` is a state a PCG64 generator accepts and reports back."""
    expected = "null or a PCG64 state (np.random.Generator(np.random.PCG64()).bit_generator.state)"
    _check_dict(rng_state, "training.rng_state", expected)
    bit_generator = np.random.PCG64()
    try:
        bit_generator.state = rng_state
        accepted = bit_generator.state == rng_state
    except (ValueError, TypeError, KeyError, OverflowError):
        accepted = False
    if not accepted:
        raise _field_error("training.rng_state", expected, rng_state)
