"""The base estimator every autoencoder in npcae stands on.

A subclass declares its parameters (:meth:`BaseAutoencoder._param_shapes`),
its encoder and decoder, and its training objective
(:meth:`BaseAutoencoder._objective`). The base class gives it, with no more
code: scikit-learn style ``fit`` / ``transform`` / ``inverse_transform`` /
``get_params`` / ``set_params``; the reference-library API ``params``,
``loss_and_grad``, ``loss_terms``; input validation; training through
:func:`npcae.training.fit_loop`; and ``save`` / :func:`npcae.load`.

Objective convention (one for the whole library): per-sample loss summed over
features, per-sample penalties, both averaged over the batch::

    L = (1/n) sum_n [ loss(x_n, r_n) + penalties(x_n) ]
"""
from __future__ import annotations

import inspect

import numpy as np

from .._validation import (as_float_array, check_finite, check_in_unit_interval,
                           check_n_features, check_random_state)

__all__ = ["BaseAutoencoder", "Workspace", "NotFittedError"]


def _scalar(value):
    """A Python float (a Python complex during complex-step gradient checks)."""
    return complex(value) if np.iscomplexobj(value) else float(value)


class NotFittedError(RuntimeError):
    """Raised when a model is used before ``fit`` (or before its parameters exist)."""


class Workspace:
    """Reusable scratch arrays, keyed by name, shape and dtype.

    The training loop keeps one Workspace for the whole run so the hot path
    allocates nothing large per step (freed large temporaries would otherwise
    be returned to the OS and faulted back in every step).
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype, fill=None):
        """The array called ``name`` with this shape and dtype, created on first use
        (uninitialised, or filled with ``fill``). ``np.float32`` and
        ``np.dtype("float32")`` name the same array."""
        key = (name, tuple(shape), np.dtype(dtype))
        arr = self._arrays.get(key)
        if arr is None:
            arr = self._arrays[key] = np.empty(shape, dtype=dtype)
            if fill is not None:
                arr.fill(fill)
        return arr


class BaseAutoencoder:
    """Shared machinery; not used directly.

    Subclasses implement:

    * ``_param_shapes(n_features)`` -> dict name -> (shape, initialiser name or None)
    * ``_init_param(name, shape, init, rng)`` (optional override)
    * ``_encode(X)`` -> codes, ``_decode(H)`` -> reconstructions (validated input)
    * ``_objective(X, grads, ws)`` -> ``(total, terms)``; fills ``grads`` (overwrite)
      when it is not None. ``terms`` is a dict of floats that includes ``"total"``.
    * ``_requires_unit_interval`` -> bool (BCE-type losses need X in [0, 1])
    """

    # -- scikit-learn conventions ---------------------------------------------
    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]

    def get_params(self, deep=True):
        """Hyperparameters as a dict (the constructor's arguments)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set hyperparameters by name; returns self. Unknown names raise ValueError."""
        valid = set(self._get_param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{key!r} is not a hyperparameter of {type(self).__name__}; "
                                 f"valid ones: {sorted(valid)}.")
            setattr(self, key, value)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- parameters ---------------------------------------------------------------
    @property
    def params(self):
        """Dict name -> ndarray of the model's parameters (created lazily, see :meth:`initialize`).

        Arrays may be replaced (``model.params["W"] = W``) or modified in place;
        every computation reads them from this dict.
        """
        if not hasattr(self, "_params"):
            self._params = {}
        return self._params

    @params.setter
    def params(self, value):
        self._params = dict(value)

    @property
    def dtype_(self):
        return np.dtype(self.dtype)

    def initialize(self, n_features, seed=None):
        """Create every parameter for inputs with ``n_features`` features; returns self.

        Uses ``seed`` (default: the model's ``seed``). Parameters already present
        with the right shape are kept, so outside code may set some and let the
        model draw the rest.
        """
        n_features = int(n_features)
        rng = check_random_state(self.seed if seed is None else seed)
        shapes = self._param_shapes(n_features)
        for name, (shape, init) in shapes.items():
            # draw every parameter, in order, so the stream does not depend on which exist
            fresh = self._init_param(name, shape, init, rng)
            current = self.params.get(name)
            if current is None or np.shape(current) != shape:
                self.params[name] = fresh.astype(self.dtype_)
        for name in list(self.params):
            if name not in shapes:
                del self.params[name]
        self.n_features_in_ = n_features
        return self

    def _init_param(self, name, shape, init, rng):
        from ..layers import init_weights
        if init is None or init == "zeros":
            return np.zeros(shape)
        return init_weights(init, shape[0], shape[1], rng)

    def _check_params(self, n_features=None):
        """Raise unless every parameter exists, has the right shape and is finite."""
        if not self.params:
            raise NotFittedError(f"this {type(self).__name__} has no parameters yet; call "
                                 f"fit(X) first (or initialize(n_features) to check "
                                 f"gradients on fresh weights).")
        n_features = self.n_features_in_ if n_features is None else n_features
        shapes = self._param_shapes(n_features)
        for name, (shape, _) in shapes.items():
            if name not in self.params:
                raise NotFittedError(f"parameter {name!r} is missing; expected keys "
                                     f"{sorted(shapes)}. Call initialize(n_features) to "
                                     f"create the missing ones.")
            p = np.asarray(self.params[name])
            if p.shape != shape:
                raise ValueError(f"params[{name!r}] has shape {p.shape}; this model needs "
                                 f"{shape}.")
            if p.dtype.kind not in "fc":   # complex only for complex-step gradient checks
                raise TypeError(f"params[{name!r}] has dtype {p.dtype}; floats are required.")
            check_finite(p, f"params[{name!r}]")

    # -- input validation ---------------------------------------------------------
    def _validate_X(self, X, name="X", *, reset=False, dtype=None):
        """Return ``X`` as a finite float array of the working dtype, checking its shape.

        ``reset=True`` (fit) accepts any feature count; otherwise it must match
        the fitted model's.
        """
        dtype = self.dtype_ if dtype is None else dtype
        unit = self._requires_unit_interval()
        # [0, 1] bounds imply finiteness (NaN fails every comparison), so BCE-type models
        # check once instead of twice
        X = as_float_array(X, name, ndim=2, dtype=dtype, finite=not unit)
        if not reset:
            if not hasattr(self, "n_features_in_"):
                raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call "
                                     f"fit(X) before using it.")
            check_n_features(X, self.n_features_in_, name)
        if unit:
            check_in_unit_interval(X, name, why=f"loss={self.loss!r}")
        return X

    def _requires_unit_interval(self):
        return False

    def _grads_finite(self, grads):
        """Whether every gradient is finite (models may override with a cheaper exact test)."""
        return all(np.isfinite(g).all() for g in grads.values())

    def _batch_buffer(self, ws, n, d, dtype):
        """Array the training loop gathers each minibatch into (models may place it
        inside their own scratch space to save a copy)."""
        return ws.get("batch", (n, d), dtype)

    def _param_dtype(self):
        """The dtype computations run in: that of the current parameters."""
        if self.params:
            return np.result_type(*[np.asarray(p).dtype for p in self.params.values()])
        return self.dtype_

    # -- the reference-library API --------------------------------------------------
    def loss_and_grad(self, X):
        """Training objective on ``X`` and its gradient with respect to every parameter.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_features)

        Returns
        -------
        loss : float
            ``L = (1/n) sum_n [loss(x_n, r_n) + penalties(x_n)]``: exactly the
            objective ``fit`` minimises.
        grads : dict
            Same keys and shapes as :attr:`params`.

        Works in the parameters' dtype (build the model with
        ``dtype=np.float64`` to check gradients). If no parameters exist yet
        they are created from ``seed`` for ``X``'s feature count.
        """
        X = self._prepare_for_objective(X)
        grads = {name: np.empty(np.shape(p), dtype=X.dtype) for name, p in self.params.items()}
        total, _ = self._objective(X, grads, Workspace())
        return _scalar(total), grads

    def loss_terms(self, X):
        """Dict of the objective's terms on ``X`` (e.g. reconstruction, contractive) and ``total``."""
        X = self._prepare_for_objective(X)
        _, terms = self._objective(X, None, Workspace())
        return {key: _scalar(value) for key, value in terms.items()}

    def _prepare_for_objective(self, X):
        if not self.params or not hasattr(self, "n_features_in_"):
            X = self._validate_X(X, reset=True)
            self.initialize(X.shape[1])
        self._check_params()
        return self._validate_X(X, dtype=self._param_dtype())

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, y=None, validation_data=None):
        """Train on ``X`` (``y`` is ignored); returns self.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_features)
            Training data, float. Images as ``uint8`` must be scaled first
            (``X / 255``).
        y : ignored
            Present for scikit-learn pipeline compatibility.
        validation_data : ndarray of shape (m, n_features), optional
            Evaluated after each epoch (``history_["val_total"]`` etc.);
            enables early stopping when ``early_stopping`` is set.
        """
        from ..optim import get_optimizer
        from ..training import fit_loop

        X = self._validate_X(X, reset=True)
        if validation_data is not None:
            if isinstance(validation_data, tuple):
                validation_data = validation_data[0]
            X_val = self._validate_X(validation_data, "validation_data", reset=True)
            check_n_features(X_val, X.shape[1], "validation_data")
        else:
            X_val = None
        self._check_hyperparameters()
        ss = np.random.SeedSequence(self.seed)
        init_seed, shuffle_seed = ss.spawn(2)
        warm = getattr(self, "warm_start", False) and self.params \
            and getattr(self, "n_features_in_", None) == X.shape[1]
        if not warm:
            self._params = {}
            self.initialize(X.shape[1], seed=np.random.default_rng(init_seed))
            self.optimizer_ = get_optimizer(self.optimizer)
            self.history_ = {}
        else:
            # parameters set by initialize() or by hand, never fitted: start the rest fresh
            if getattr(self, "optimizer_", None) is None:
                self.optimizer_ = get_optimizer(self.optimizer)
            if not hasattr(self, "history_"):
                self.history_ = {}
        # a warm-started fit continues the shuffle stream instead of replaying epoch 1's order
        epochs_done = len(self.history_.get("total", []))
        shuffle_rng = np.random.default_rng([*shuffle_seed.generate_state(2), epochs_done])
        fit_loop(self, X, optimizer=self.optimizer_, epochs=self.epochs,
                 batch_size=self.batch_size, rng=shuffle_rng,
                 X_val=X_val, early_stopping=getattr(self, "early_stopping", None),
                 verbose=getattr(self, "verbose", 0), history=self.history_)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X, **fit_params).transform(X)

    def _check_hyperparameters(self):
        from .._validation import check_positive_int
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        if np.dtype(self.dtype).kind != "f":
            raise ValueError(f"dtype must be float32 or float64; got {self.dtype!r}.")

    # -- inference ----------------------------------------------------------------------
    def _ready(self, X):
        self._check_params()
        return self._validate_X(X, dtype=self._param_dtype())

    def transform(self, X):
        """Codes ``h = f(x)``, shape ``(n_samples, n_hidden)``."""
        return self._encode(self._ready(X))

    encode = transform

    def inverse_transform(self, H):
        """Reconstructions from codes: ``r = g(h)``, shape ``(n_samples, n_features)``."""
        self._check_params()
        H = as_float_array(H, "H", ndim=2, dtype=self._param_dtype())
        check_n_features(H, self._n_codes(), "H")
        return self._decode(H)

    decode = inverse_transform

    def reconstruct(self, X):
        """``g(f(x))``, shape ``(n_samples, n_features)``."""
        return self._decode(self._encode(self._ready(X)))

    def score(self, X, y=None):
        """Negative mean reconstruction loss per sample (higher is better)."""
        return -float(self.loss_terms(X)["reconstruction"])

    def save(self, path):
        """Save to ``path`` (``.npz`` with JSON metadata; no pickle). See :func:`npcae.load`."""
        from ..io import save_model
        return save_model(self, path)
