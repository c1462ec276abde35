"""The base estimator every autoencoder in npcae stands on.

A subclass declares its parameters (:meth:`BaseAutoencoder._param_shapes`),
its encoder and decoder, its training objective
(:meth:`BaseAutoencoder._objective`) and its per-sample terms
(:meth:`BaseAutoencoder._sample_terms`). The base class gives it, with no more
code:

* scikit-learn's estimator API without importing scikit-learn: ``fit`` /
  ``partial_fit`` / ``transform`` / ``fit_transform`` / ``inverse_transform`` /
  ``score`` / ``score_samples`` / ``get_params`` / ``set_params`` /
  ``get_feature_names_out`` / ``set_output``, ``n_features_in_``,
  ``feature_names_in_``, ``n_iter_``, ``loss_curve_``, and ``__sklearn_tags__``
  (which imports scikit-learn only when scikit-learn itself asks for it);
* the reference-library API ``params``, ``loss_and_grad``, ``loss_terms``;
* input and hyperparameter validation whose errors name what was wrong;
* training through :func:`npcae.training.fit_loop`, resumable bit for bit: a run
  split by warm starts (or by ``save`` / :func:`npcae.load`) equals the
  uninterrupted run, because the minibatch generator's state is model state;
* memory-bounded evaluation: ``loss_terms``, ``score`` and ``score_samples``
  work through ``X`` in blocks of at most ``_EVAL_BLOCK_BYTES`` per ``(rows, d)``
  array, so 60,000 MNIST rows cost tens of MB beyond ``X``, not gigabytes.

Objective convention (one for the whole library): per-sample loss summed over
features, per-sample penalties, both averaged over the batch::

    L = (1/n) sum_n [ loss(x_n, r_n) + penalties(x_n) ]
"""
from __future__ import annotations

import copy
import inspect
import sys

import numpy as np

from .._validation import (as_float_array, check_bool, check_finite, check_in_unit_interval,
                           check_n_features, check_positive_int, check_random_state)
from .._workspace import Workspace

__all__ = ["BaseAutoencoder", "BaseEstimator", "NotFittedError"]

_EVAL_BLOCK_BYTES = 8 << 20
"""Largest ``(rows, n_features)`` block that batched evaluation works on (8 MiB)."""


def _scalar(value):
    """A Python float (a Python complex during complex-step gradient checks)."""
    return complex(value) if np.iscomplexobj(value) else float(value)


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit`` (or before its parameters exist).

    Subclasses both ``ValueError`` and ``AttributeError``, as scikit-learn's
    ``NotFittedError`` does, so code written for either catches it.
    """


def _same_value(a, b):
    """Whether hyperparameter value ``a`` equals default ``b`` (for ``__repr__``)."""
    if a is b:
        return True
    if _is_dtype_like(b) and (_is_dtype_like(a) or isinstance(a, str)):
        try:
            return np.dtype(a) == np.dtype(b)
        except TypeError:
            return False
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _is_dtype_like(value):
    return isinstance(value, np.dtype) or (isinstance(value, type)
                                           and issubclass(value, np.generic))


class BaseEstimator:
    """The estimator plumbing every npcae model shares; not used directly.

    scikit-learn's conventions without importing it (``get_params`` /
    ``set_params`` / ``__repr__``), the ``params`` dict and its creation and
    checks, input validation, and training through
    :func:`npcae.training.fit_loop` with exact resume (warm starts). The
    autoencoders (:class:`BaseAutoencoder`) and the classifier
    (:class:`npcae.models.mlp.MLPClassifier`) add their own objective and
    inference methods.

    Subclasses implement ``_param_shapes(n_features)``, ``_objective`` and
    ``_n_codes``-style architecture hooks as described in
    :class:`BaseAutoencoder`.
    """

    _shape_hyperparameters = ()
    _monitor = "total"
    """The validation term early stopping watches (``history_["val_<_monitor>"]``)."""

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]

    def get_params(self, deep=True):
        """Hyperparameters as a dict (the constructor's arguments)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set hyperparameters by name; returns self. Unknown names raise ValueError.

        Values are checked when they are used (``fit``), as in scikit-learn.
        """
        valid = set(self._get_param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{key!r} is not a hyperparameter of {type(self).__name__}; "
                                 f"valid ones: {sorted(valid)}.")
            setattr(self, key, value)
        return self

    def __repr__(self):
        """The class and the hyperparameters that differ from their defaults."""
        defaults = {p.name: p.default
                    for p in inspect.signature(type(self).__init__).parameters.values()}
        parts = []
        for key, value in self.get_params().items():
            if _same_value(value, defaults.get(key, inspect.Parameter.empty)):
                continue
            shown = np.dtype(value).name if _is_dtype_like(value) else self._repr_value(key,
                                                                                        value)
            parts.append(f"{key}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __getstate__(self):
        """Pickled state without ``_network_cache`` (layers with scratch buffers; rebuilt on
        demand by models on the layers engine)."""
        state = dict(self.__dict__)
        state.pop("_network_cache", None)
        return state

    def _repr_value(self, key, value):
        """How ``__repr__`` shows hyperparameter ``key`` (subclasses shorten bulky values)."""
        return repr(value)

    def __sklearn_is_fitted__(self):
        return bool(getattr(self, "_params", None)) and hasattr(self, "n_features_in_")

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

    @property
    def loss_curve_(self):
        """Training objective per epoch (``history_["total"]``), as scikit-learn's MLPs have."""
        history = getattr(self, "history_", None)
        if history is None:
            raise NotFittedError(f"this {type(self).__name__} has not been trained yet; "
                                 f"call fit(X) first.")
        return list(history.get("total", []))

    def initialize(self, n_features, random_state=None):
        """Create every parameter for inputs with ``n_features`` features; returns self.

        Uses ``random_state`` (default: the model's ``random_state``). Parameters
        already present with the right shape are kept, so outside code may set
        some and let the model draw the rest.
        """
        n_features = check_positive_int(n_features, "n_features")
        rng = check_random_state(self.random_state if random_state is None else random_state)
        shapes = self._param_shapes(n_features)
        # draw every parameter, in order, so the stream does not depend on which exist
        fresh = self._draw_params(n_features, rng)
        for name, (shape, _) in shapes.items():
            current = self.params.get(name)
            if current is None or np.shape(current) != shape:
                self.params[name] = fresh[name].astype(self.dtype_)
        for name in list(self.params):
            if name not in shapes:
                del self.params[name]
        self.n_features_in_ = n_features
        return self

    def _draw_params(self, n_features, rng):
        """Fresh values for every parameter, in key order (``_init_param`` one at a time)."""
        return {name: self._init_param(name, shape, init, rng)
                for name, (shape, init) in self._param_shapes(n_features).items()}

    def _init_param(self, name, shape, init, rng):
        """One parameter: a weight matrix from :func:`npcae.layers.init_layer_params`
        (the one place parameters are drawn), or zeros for biases."""
        from ..layers import init_layer_params
        if init is None or init == "zeros" or len(shape) != 2:
            return np.zeros(shape)
        return init_layer_params(init, shape[0], shape[1], rng)["W"]

    def _check_params(self, n_features=None):
        """Raise unless every parameter exists, has the right shape and is finite."""
        if not self.params or not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet (it has no "
                                 f"parameters); call fit(X) first (or initialize(n_features) "
                                 f"to check gradients on fresh weights).")
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
                                 f"{shape}{self._shape_hint()}.")
            if p.dtype.kind not in "fc":   # complex only for complex-step gradient checks
                raise TypeError(f"params[{name!r}] has dtype {p.dtype}; floats are required.")
            check_finite(p, f"params[{name!r}]")

    def _shape_hint(self):
        if not self._shape_hyperparameters:
            return ""
        now = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._shape_hyperparameters)
        return f" (from {now})"

    def _validate_X(self, X, name="X", *, reset=False, dtype=None, check_range=False,
                    warm=False):
        """Return ``X`` as a finite float array of the working dtype, checking its shape.

        ``reset=True`` (fit) accepts any feature count and records
        ``feature_names_in_`` from a DataFrame's string column names; otherwise
        the feature count (and names) must match the fitted model's.
        ``check_range=True`` (fit, score and the loss methods) checks [0, 1] for
        losses that need it: encoding and the Jacobian accept any real input.
        ``warm=True`` (a warm-started fit) checks the fitted shapes with
        :meth:`_check_warm_start` instead, whose errors say how to start over.
        Integer, bool and numeric object arrays are converted to float; ``uint8``
        raises for models whose loss needs [0, 1] (raw images; divide by 255) and
        warns otherwise.
        """
        dtype = self.dtype_ if dtype is None else dtype
        unit = self._requires_unit_interval()
        owner = type(self).__name__
        names = _feature_names(X)
        arr = as_float_array(X, name, ndim=2, dtype=dtype, finite=not (unit and check_range),
                             convert_numeric=True, uint8="error" if unit else "warn",
                             owner=owner)
        if reset:
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            if not hasattr(self, "n_features_in_"):
                raise NotFittedError(f"this {owner} is not fitted yet; call fit(X) before "
                                     f"using it.")
            if warm:
                self._check_warm_start(arr.shape[1])
            else:
                check_n_features(arr, self.n_features_in_, name, owner=owner)
            if name == "X":
                self._check_feature_names(names)
        if unit and check_range:
            check_in_unit_interval(arr, name, why=self._unit_interval_reason())
        return arr

    def _check_feature_names(self, names):
        """Compare a DataFrame's column names with those seen in ``fit``."""
        import warnings
        fitted = getattr(self, "feature_names_in_", None)
        owner = type(self).__name__
        if fitted is None and names is not None:
            warnings.warn(f"X has feature names, but {owner} was fitted without feature "
                          f"names", UserWarning, stacklevel=4)
        elif fitted is not None and names is None:
            warnings.warn(f"X does not have valid feature names, but {owner} was fitted with "
                          f"feature names", UserWarning, stacklevel=4)
        elif fitted is not None and (len(names) != len(fitted) or np.any(names != fitted)):
            raise ValueError(f"The feature names should match those that were passed during "
                             f"fit: fitted with {list(fitted)[:5]}..., got "
                             f"{list(names)[:5]}...")

    def _requires_unit_interval(self):
        return False

    def _unit_interval_reason(self):
        """Why X must lie in [0, 1], for the error message (the loss that needs it)."""
        return f"loss={self.loss!r}"

    def _bind_layers(self, bindings, grads):
        """Point each engine layer (``(prefix, layer)`` pairs) at this model's parameter and
        gradient arrays, and zero the gradients: the layers accumulate into them (+=)."""
        for prefix, layer in bindings:
            layer.bind(self.params, grads, prefix)
        if grads is not None:
            for g in grads.values():
                g.fill(0)

    def _batch_buffer(self, ws, n, d, dtype):
        """Array the training loop gathers each minibatch into (models may place it
        inside their own scratch space to save a copy)."""
        return ws.get("batch", (n, d), dtype)

    def _param_dtype(self):
        """The dtype computations run in: that of the current parameters."""
        if self.params:
            return np.result_type(*[np.asarray(p).dtype for p in self.params.values()])
        return self.dtype_

    def _call_rng(self):
        """A generator for noise drawn outside training: fresh per call, from ``random_state``
        (the same int gives the same draws), never the training generator."""
        rs = self.random_state
        if isinstance(rs, (np.random.Generator, np.random.RandomState)):
            return np.random.default_rng(check_random_state(rs).integers(0, 2 ** 63 - 1))
        return check_random_state(rs)

    def _eval_blocks(self, X):
        """``(start, stop)`` row ranges of at most ``_EVAL_BLOCK_BYTES`` per ``(rows, d)`` array."""
        n, d = X.shape
        rows = max(1, _EVAL_BLOCK_BYTES // (d * X.dtype.itemsize))
        return [(start, min(start + rows, n)) for start in range(0, n, rows)]

    def _start_training_state(self, n_features):
        """Fresh parameters, optimizer, history and minibatch generator for a cold fit."""
        from ..optim import get_optimizer
        rng = check_random_state(self.random_state)
        init_seed, shuffle_seed = (int(s) for s in rng.integers(0, 2 ** 63 - 1, size=2))
        self._params = {}
        self.initialize(n_features, random_state=np.random.default_rng(init_seed))
        self.optimizer_ = get_optimizer(self.optimizer)
        self.history_ = {}
        self.n_iter_ = 0
        self.training_rng_state_ = np.random.default_rng(shuffle_seed).bit_generator.state

    def _resume_training_state(self):
        """Continue: a fresh optimizer from ``self.optimizer`` that inherits the old one's
        moments and step counts when it is of the same class; the stored generator."""
        from ..optim import get_optimizer
        optimizer = get_optimizer(self.optimizer)
        previous = getattr(self, "optimizer_", None)
        if previous is not None and type(previous) is type(optimizer):
            optimizer.state = previous.state
        self.optimizer_ = optimizer
        if not hasattr(self, "history_"):
            self.history_ = {}
        self.n_iter_ = len(self.history_.get("total", []))
        if getattr(self, "training_rng_state_", None) is None:
            # parameters set by hand, or a file from before the generator was saved
            rng = check_random_state(self.random_state)
            self.training_rng_state_ = np.random.default_rng(
                int(rng.integers(0, 2 ** 63 - 1))).bit_generator.state

    def _check_warm_start(self, n_features):
        """Refuse to continue training a model whose shapes no longer match."""
        owner = type(self).__name__
        if n_features != self.n_features_in_:
            raise ValueError(f"X has {n_features} features, but {owner} is expecting "
                             f"{self.n_features_in_} features as input: it was fitted on "
                             f"{self.n_features_in_}, and a warm start (or partial_fit) "
                             f"continues that fit. Use data with {self.n_features_in_} "
                             f"features, or set warm_start=False to train a new model from "
                             f"scratch.")
        expected = {k: shape for k, (shape, _) in self._param_shapes(n_features).items()}
        current = {k: np.shape(v) for k, v in self.params.items()}
        if expected != current:
            changed = [k for k in self._shape_hyperparameters]
            raise ValueError(f"warm start: the fitted parameters have shapes {current}, but "
                             f"the current hyperparameters{self._shape_hint()} need "
                             f"{expected}. A shape-defining hyperparameter "
                             f"({', '.join(changed) or 'architecture'}) changed since the "
                             f"model was fitted; restore it, or set warm_start=False to train "
                             f"a new model from scratch.")
        fitted_dtype = self._param_dtype()
        if fitted_dtype != self.dtype_:
            raise ValueError(f"warm start: the fitted parameters are {fitted_dtype.name} but "
                             f"dtype={self.dtype_.name}; restore dtype={fitted_dtype.name} or "
                             f"set warm_start=False to train a new model from scratch.")

    def _train(self, X, epochs, X_val, *, y=None, y_val=None):
        """Run the training loop from the stored generator state; keep ``n_iter_`` in step.

        ``y`` and ``y_val`` (validated targets, row-aligned with ``X`` and ``X_val``)
        are passed through to the loop for supervised models.
        """
        from ..training import fit_loop
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = copy.deepcopy(self.training_rng_state_)
        try:
            fit_loop(self, X, optimizer=self.optimizer_, epochs=epochs,
                     batch_size=self.batch_size, rng=rng, X_val=X_val,
                     early_stopping=self.early_stopping, verbose=self.verbose,
                     history=self.history_, y=y, y_val=y_val, monitor=self._monitor)
        finally:
            self.n_iter_ = len(self.history_.get("total", []))

    def _check_hyperparameters(self):
        """Raise ``TypeError``/``ValueError`` naming any bad hyperparameter (before training)."""
        from ..optim import get_optimizer
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.batch_size, "batch_size")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as exc:
            raise TypeError(f"dtype must be float32 or float64; got {self.dtype!r}.") from exc
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64; got {dtype.name}. float16 "
                             f"overflows in training (its largest value is 65504) and is not "
                             f"supported; use float32 (the default).")
        check_bool(self.warm_start, "warm_start")
        if self.early_stopping is not None:
            check_positive_int(self.early_stopping, "early_stopping")
        if isinstance(self.verbose, (bool, np.bool_)):
            pass
        elif not isinstance(self.verbose, (int, np.integer)) or self.verbose < 0:
            raise ValueError(f"verbose must be an int >= 0 (0 silent, 1 one line per epoch); "
                             f"got {self.verbose!r}.")
        check_random_state(self.random_state, "random_state")    # type and sign only
        get_optimizer(self.optimizer)

    def save(self, path):
        """Save to ``path`` (``.npz`` with JSON metadata; no pickle). See :func:`npcae.load`."""
        from ..io import save_model
        return save_model(self, path)


class BaseAutoencoder(BaseEstimator):
    """Shared machinery; not used directly.

    Subclasses implement:

    * ``_param_shapes(n_features)`` -> dict name -> (shape, initialiser name or None)
    * ``_init_param(name, shape, init, rng)`` (optional override)
    * ``_encode(X)`` -> codes, ``_decode(H)`` -> reconstructions (validated input)
    * ``_n_codes()`` -> the code size
    * ``_objective(X, grads, ws, rng=None)`` -> ``(total, terms)``; fills ``grads`` (overwrite)
      when it is not None. ``terms`` is a dict of floats that includes ``"total"``.
      ``rng`` is the training generator (noise a model draws comes from it, so
      resumed runs draw the same noise); deterministic objectives ignore it.
    * ``_sample_terms(X)`` -> dict of ``(n,)`` arrays, the same terms per sample
      (their means are ``_objective``'s terms)
    * ``_requires_unit_interval()`` -> bool (BCE-type losses need X in [0, 1])
    * ``_check_hyperparameters()`` (extend; call ``super()``)
    * ``_shape_hyperparameters``: names of the hyperparameters that set parameter
      shapes (named in the error when a warm start finds them changed)
    """

    # -- scikit-learn conventions ---------------------------------------------
    def __sklearn_tags__(self):
        """scikit-learn's tags (scikit-learn >= 1.6); imported only when it asks for them."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags
        return Tags(estimator_type=None,
                    target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=[self.dtype_.name]),
                    input_tags=InputTags(allow_nan=False, sparse=False),
                    requires_fit=True, non_deterministic=False)

    # -- the reference-library API --------------------------------------------------
    def loss_and_grad(self, X, **noise):
        """Training objective on ``X`` and its gradient with respect to every parameter.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_features)
        **noise : ndarray
            Models whose objective is random take their noise here, so that it
            can be checked on given noise (the denoising model's ``corrupted=``,
            the VAE's ``eps=``; see :meth:`_noise_shapes`). Without it, noise is
            drawn from a generator of the call's own (from ``random_state``),
            never from the training generator.

        Returns
        -------
        loss : float
            ``L = (1/n) sum_n [loss(x_n, r_n) + penalties(x_n)]``: exactly the
            objective ``fit`` minimises.
        grads : dict
            Same keys and shapes as :attr:`params`.

        Works in the parameters' dtype (build the model with
        ``dtype=np.float64`` to check gradients). If no parameters exist yet
        they are created from ``random_state`` for ``X``'s feature count.
        """
        X = self._prepare_for_objective(X)
        noise = self._check_noise(X, noise)
        grads = {name: np.empty(np.shape(p), dtype=X.dtype) for name, p in self.params.items()}
        total, _ = self._objective(X, grads, Workspace(), self._call_rng(), **noise)
        return _scalar(total), grads

    def loss_terms(self, X, **noise):
        """Dict of the objective's terms on ``X`` (e.g. reconstruction, contractive) and ``total``.

        Each term is the mean over the rows of ``X``, evaluated in blocks of
        rows so that memory stays bounded for any ``n`` (the result equals the
        one-block evaluation up to rounding). ``**noise`` as for
        :meth:`loss_and_grad`.
        """
        X = self._prepare_for_objective(X)
        noise = self._check_noise(X, noise)
        rng = self._call_rng()
        n = X.shape[0]
        sums = {}
        blocks = self._eval_blocks(X)
        ws = Workspace()                  # reused: fresh memory per block would page-fault
        for start, stop in blocks:
            if stop - start != blocks[0][1]:
                ws = Workspace()          # the shorter last block (frees the full-size arrays)
            block_noise = self._noise_rows(noise, start, stop)
            _, terms = self._objective(X[start:stop], None, ws, rng, **block_noise)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + _scalar(value) * (stop - start)
        return {key: value / n for key, value in sums.items()}

    def _noise_shapes(self, X):
        """Names and shapes of the noise the objective accepts (none: deterministic)."""
        return {}

    def _noise_rows(self, noise, start, stop):
        """The given noise for rows ``start:stop`` of X (row-aligned noise: its first axis)."""
        return {key: value[start:stop] for key, value in noise.items()}

    def _check_noise(self, X, noise):
        """Validate given noise arrays: known names, right shapes, finite floats of X's dtype."""
        shapes = self._noise_shapes(X)
        for name, value in list(noise.items()):
            if name not in shapes:
                accepted = ", ".join(f"{k}=" for k in shapes) or "no noise arguments"
                raise TypeError(f"{type(self).__name__}'s objective takes {accepted}; got "
                                f"{name}=.")
            if value is None:
                del noise[name]
                continue
            arr = as_float_array(value, name, dtype=X.dtype, convert_numeric=True, uint8="warn")
            if arr.shape != tuple(shapes[name]):
                raise ValueError(f"{name} must have shape {tuple(shapes[name])} to match X; got "
                                 f"{arr.shape}.")
            noise[name] = arr
        return noise

    def _prepare_for_objective(self, X):
        if not self.params or not hasattr(self, "n_features_in_"):
            X = self._validate_X(X, reset=True)
            self.initialize(X.shape[1])
        self._check_params()
        return self._validate_X(X, dtype=self._param_dtype(), check_range=True)

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, y=None, validation_data=None):
        """Train on ``X`` (``y`` is ignored); returns self.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_features)
            Training data. Integer input is converted to float; images as
            ``uint8`` must be scaled first (``X / 255``).
        y : ignored
            Present for scikit-learn pipeline compatibility.
        validation_data : ndarray of shape (m, n_features), optional
            Evaluated after each epoch (``history_["val_total"]`` etc.);
            enables early stopping when ``early_stopping`` is set.

        With ``warm_start=True`` and a fitted model, training continues from the
        current parameters, optimizer moments and minibatch generator, so
        ``fit`` with ``epochs=2`` then ``epochs=3`` gives bit for bit the
        parameters of one ``fit`` with ``epochs=5``. Changing the optimizer's
        hyperparameters with ``set_params(optimizer=...)`` takes effect (its
        moments are kept when its class is unchanged). A different feature
        count or a changed shape-defining hyperparameter is an error.

        If interrupted (``KeyboardInterrupt``), the model is left as it was
        after the last completed epoch and the interrupt is re-raised.
        """
        self._check_hyperparameters()
        warm = bool(self.warm_start) and self.__sklearn_is_fitted__()
        if warm:
            X = self._validate_X(X, check_range=True, warm=True)
        else:
            X = self._validate_X(X, reset=True, check_range=True)
        X_val = self._validate_validation_data(validation_data, X.shape[1])
        if warm:
            self._resume_training_state()
        else:
            self._start_training_state(X.shape[1])
        self._train(X, self.epochs, X_val)
        return self

    def partial_fit(self, X, y=None):
        """One pass of minibatch steps over the rows of ``X`` (reshuffled); returns self.

        The first call initialises the model for ``X``'s feature count; later
        calls continue with the same parameters, optimizer state and minibatch
        generator. Each call appends one entry to ``history_`` and adds one to
        ``n_iter_``.
        """
        self._check_hyperparameters()
        if self.__sklearn_is_fitted__() and hasattr(self, "optimizer_"):
            X = self._validate_X(X, check_range=True, warm=True)
            self._resume_training_state()
        else:
            X = self._validate_X(X, reset=not self.__sklearn_is_fitted__(), check_range=True)
            if self.__sklearn_is_fitted__():
                self._resume_training_state()       # parameters set by hand or initialize()
            else:
                self._start_training_state(X.shape[1])
        self._train(X, 1, None)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """``fit(X)`` then ``transform(X)``."""
        codes = self.fit(X, **fit_params)._encode(self._ready(X))
        return self._wrap_output(codes, X)

    def _validate_validation_data(self, validation_data, n_features):
        if validation_data is None:
            return None
        if isinstance(validation_data, tuple):
            validation_data = validation_data[0]
        X_val = as_float_array(validation_data, "validation_data", ndim=2, dtype=self.dtype_,
                               convert_numeric=True,
                               uint8="error" if self._requires_unit_interval() else "warn")
        check_n_features(X_val, n_features, "validation_data", owner=type(self).__name__)
        if self._requires_unit_interval():
            check_in_unit_interval(X_val, "validation_data", why=self._unit_interval_reason())
        return X_val

    # -- inference ----------------------------------------------------------------------
    def _ready(self, X):
        self._check_params()
        return self._validate_X(X, dtype=self._param_dtype())

    def transform(self, X):
        """Codes ``h = f(x)``, shape ``(n_samples, n_hidden)``.

        Any real input is accepted (no [0, 1] check: only the loss needs it).
        Returns a pandas DataFrame after ``set_output(transform="pandas")``.
        """
        return self._wrap_output(self._encode(self._ready(X)), X)

    def encode(self, X):
        """Codes ``h = f(x)`` as an ndarray (``transform`` without output wrapping)."""
        return self._encode(self._ready(X))

    def inverse_transform(self, H):
        """Reconstructions from codes: ``r = g(h)``, shape ``(n_samples, n_features)``."""
        self._check_params()
        H = as_float_array(H, "H", ndim=2, dtype=self._param_dtype(), convert_numeric=True,
                           uint8="warn")
        check_n_features(H, self._n_codes(), "H", owner=type(self).__name__)
        return self._decode(H)

    decode = inverse_transform

    def reconstruct(self, X):
        """``g(f(x))``, shape ``(n_samples, n_features)``."""
        return self._decode(self._encode(self._ready(X)))

    def score(self, X, y=None):
        """Negative mean reconstruction loss per sample (higher is better).

        Penalties are left out, so models with different ``lam`` are compared on
        reconstruction alone; :meth:`score_samples` gives the whole objective.
        Never random: a denoising model is scored on the clean input.
        """
        X = self._prepare_for_objective(X)
        total = 0.0
        for start, stop in self._eval_blocks(X):
            rec = self._sample_terms(X[start:stop])["reconstruction"]
            total += float(np.sum(rec, dtype=np.float64))
        return -total / X.shape[0]

    def score_samples(self, X):
        """Negative training objective of each sample, shape ``(n_samples,)``.

        ``-(loss(x_n, r_n) + penalties(x_n))``: its mean is
        ``-loss_terms(X)["total"]``. Higher means better explained (useful as an
        anomaly score with the sign flipped). Evaluated in bounded-memory blocks.
        """
        X = self._prepare_for_objective(X)
        out = np.empty(X.shape[0], dtype=X.dtype)
        for start, stop in self._eval_blocks(X):
            out[start:stop] = -self._sample_terms(X[start:stop])["total"]
        return out

    # -- feature names and output containers -------------------------------------------
    def get_feature_names_out(self, input_features=None):
        """Names of the code units: ``"<classname><i>"``, e.g. ``contractiveautoencoder0``.

        ``input_features`` is checked against the fitted input (count, and the
        names seen in ``fit`` when there were any) and otherwise unused.
        """
        self._check_params()
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            if input_features.ndim != 1 or len(input_features) != self.n_features_in_:
                raise ValueError(f"input_features should have length equal to "
                                 f"n_features_in_ ({self.n_features_in_}); got "
                                 f"{input_features.shape}.")
            fitted = getattr(self, "feature_names_in_", None)
            if fitted is not None and np.any(input_features != fitted):
                raise ValueError("input_features is not equal to feature_names_in_.")
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_codes())], dtype=object)

    def set_output(self, *, transform=None):
        """Choose what ``transform`` and ``fit_transform`` return; returns self.

        ``"default"``: ndarrays. ``"pandas"``: DataFrames with the code names as
        columns (pandas is imported only then). ``None``: unchanged. Without a
        choice, scikit-learn's global ``transform_output`` applies when
        scikit-learn is already imported.
        """
        if transform is None:
            return self
        if transform not in ("default", "pandas"):
            raise ValueError(f"set_output(transform=...) must be 'default', 'pandas' or None; "
                             f"got {transform!r}.")
        self._sklearn_output_config = {"transform": transform}
        return self

    def _output_kind(self):
        kind = getattr(self, "_sklearn_output_config", {}).get("transform")
        if kind is None:
            sklearn = sys.modules.get("sklearn")          # follow its config, never import it
            kind = sklearn.get_config().get("transform_output", "default") if sklearn else "default"
        return kind

    def _wrap_output(self, codes, X):
        kind = self._output_kind()
        if kind == "default":
            return codes
        if kind != "pandas":
            raise ValueError(f"transform output {kind!r} is not supported; use 'default' or "
                             f"'pandas'.")
        import pandas as pd
        index = getattr(X, "index", None) if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(codes, index=index, columns=self.get_feature_names_out())

def _feature_names(X):
    """A DataFrame's column names as an object array when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "iloc"):
        return None
    names = np.asarray(columns, dtype=object)
    if len(names) and all(isinstance(c, str) for c in names):
        return names
    return None
