"""Saving and loading models: ``.npz`` arrays plus JSON metadata, never pickle.

File layout (a plain zip of ``.npy`` files, readable with ``np.load``)::

    __npcae__.npy        0-d unicode array holding the JSON metadata
    param.<name>.npy     each entry of model.params
    optim.<key>.<i>.npy  the optimizer's per-parameter buffers (to resume training)

The metadata holds ``format`` ("npcae-model"), ``format_version``, the class
name, the hyperparameters, ``n_features_in_``, the training history and the
optimizer's config and step counts. Loading reads with
``allow_pickle=False`` and looks the class up in a fixed registry, so an
untrusted file cannot run code. Writing goes to a temporary file in the same
directory that is renamed into place only when complete.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["save_model", "load_model", "ModelFileError", "FORMAT", "FORMAT_VERSION",
           "atomic_write"]

FORMAT = "npcae-model"
FORMAT_VERSION = 2
# Version history: 2 (npcae 0.1) stores the optimizer state of the packed parameter buffer
# (key "packed", see npcae.training.pack_arrays) and Adam's moments as m / (1 - beta1) and
# v / (1 - beta2). Version 1 files load with their parameters and history; their optimizer
# state is not carried over (a warning says so).
_META_KEY = "__npcae__"


class ModelFileError(ValueError):
    """The file is not a readable npcae model (truncated, foreign or of a newer format)."""


def atomic_write(path, write):
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _jsonable(value):
    """Hyperparameter -> JSON value (dtypes, activations and optimizers by their config)."""
    from .activations import ActivationFunction
    from .optim import Optimizer
    if isinstance(value, (ActivationFunction, Optimizer)):
        return {"__config__": value.get_config(),
                "__kind__": "activation" if isinstance(value, ActivationFunction) else "optimizer"}
    if isinstance(value, type) and issubclass(value, np.generic) or isinstance(value, np.dtype):
        return {"__dtype__": np.dtype(value).name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save hyperparameter value {value!r} of type "
                    f"{type(value).__name__}; use a name, number or config dict.")


def _from_jsonable(value):
    from .activations import get_activation
    from .optim import get_optimizer
    if isinstance(value, dict):
        if "__dtype__" in value:
            return np.dtype(value["__dtype__"]).type
        if "__config__" in value:
            if value.get("__kind__") == "activation":
                return get_activation(value["__config__"])
            return get_optimizer(value["__config__"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


def save_model(model, path):
    """Write ``model`` to ``path`` atomically; returns the ``Path`` written.

    ``path`` is used as given (no suffix is added); ``.npz`` is the convention.
    """
    from . import __version__
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
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "npcae_version": __version__,
            "class": type(model).__name__, "hyperparameters": _jsonable(model.get_params()),
            "n_features_in": int(model.n_features_in_),
            "history": _jsonable(getattr(model, "history_", {})), "optimizer": optim_meta}
    arrays[_META_KEY] = np.array(json.dumps(meta))
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def load_model(path):
    """Load a model written by :func:`save_model` (or ``model.save``).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError
        Not an npcae model file: truncated, not a zip/npz, missing metadata,
        unknown class, or a newer format version.
    """
    from .models import MODELS
    from .optim import get_optimizer
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if _META_KEY not in data.files:
                raise ModelFileError(f"{path} is an .npz file but not an npcae model (no "
                                     f"'{_META_KEY}' metadata entry).")
            meta = json.loads(str(data[_META_KEY][()]))
            arrays = {k: data[k] for k in data.files if k != _META_KEY}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path} is not a readable npcae model file (truncated or not "
                             f"an .npz archive): {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} has format {meta.get('format')!r}, not {FORMAT!r}.")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{path} uses format version {meta['format_version']}; this "
                             f"npcae reads up to {FORMAT_VERSION}. Upgrade npcae.")
    cls = MODELS.get(meta.get("class"))
    if cls is None:
        raise ModelFileError(f"{path} holds unknown model class {meta.get('class')!r}; known: "
                             f"{sorted(MODELS)}.")
    model = cls(**_from_jsonable(meta["hyperparameters"]))
    model.params = {k[len("param."):]: v for k, v in arrays.items() if k.startswith("param.")}
    model.n_features_in_ = int(meta["n_features_in"])
    model.history_ = _from_jsonable(meta.get("history") or {})
    optim_meta = meta.get("optimizer")
    if optim_meta is not None and meta.get("format_version", 0) < 2:
        warnings.warn(f"{path} was written by an older npcae (format version "
                      f"{meta.get('format_version')}); its parameters are loaded but its "
                      f"optimizer state is not, so warm-started training starts with fresh "
                      f"optimizer moments.", UserWarning, stacklevel=2)
        optim_meta = None
    if optim_meta is not None:
        optimizer = get_optimizer(optim_meta["config"])
        optimizer.load_state_dict({
            "config": optim_meta["config"],
            "state": {key: {"t": steps,
                            "buffers": [arrays[f"optim.{key}.{i}"]
                                        for i in range(optim_meta["n_buffers"][key])]}
                      for key, steps in optim_meta["steps"].items()}})
        model.optimizer_ = optimizer
    try:
        model._check_params()
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: stored parameters do not fit the model: {exc}") from exc
    return model
