r"""A multilayer perceptron classifier on the layers engine, optionally initialised from an
autoencoder's encoder (the fine-tuning step of Rifai et al., 2011, and of greedy pretraining).

Architecture, with ``L`` hidden layers and ``C`` classes::

    H_0 = X                                    (n, d)
    H_l = phi_l(H_{l-1} W_l + b_l)             (n, h_l),  l = 1..L     hidden layers
    Z   = H_L V + c                            (n, C)                  logits
    P   = softmax(Z)                           (n, C)                  class probabilities

Objective (the library's convention: per-sample loss, averaged over the batch)::

    L = (1/n) sum_n [ log sum_c exp(Z_nc) - Z_{n, y_n} ]    (losses.softmax_cross_entropy)

Backward, on the engine (docs/derivations.md, section "MLP classifier"): the loss gives
``G_Z = (P - onehot(y)) / n``; the output ``Dense`` layer gives ``dL/dV = H_L^T G_Z``,
``dL/dc = sum_n G_Z`` and ``G_{H_L} = G_Z V^T``; each hidden layer then applies the
activation and Dense backward passes of :mod:`npcae.layers`.

``init_from=`` takes a fitted autoencoder (``ContractiveAutoencoder``, ``Autoencoder``,
``DenoisingAutoencoder``, ``SparseAutoencoder``, ``DeepContractiveAutoencoder``, or a
``StackedAutoencoder`` for a deep MLP), or the dict that :func:`export_encoder` makes from
one. Its encoder weights, biases and activations become the hidden layers, exactly; the
output layer starts small and random (``N(0, 0.01^2)`` weights, zero biases).
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

from .._validation import as_float_array, check_n_features, check_widths, layer_widths
from .._workspace import Workspace
from ..activations import get_activation
from ..layers import Activation, Dense, Sequential, init_layer_params
from ..losses import softmax_cross_entropy
from .base import BaseAutoencoder, BaseEstimator, NotFittedError, _scalar
from .layered import _DEFAULT_INIT

__all__ = ["MLPClassifier", "export_encoder", "DataConversionWarning"]

_OUTPUT_INIT = "normal"
"""The output layer's weights: ``N(0, 0.01^2)`` (small, so the pretrained features lead)."""


class DataConversionWarning(UserWarning):
    """A column-vector ``y`` was given where a 1-D array was expected (it is flattened).

    Named like scikit-learn's warning of the same meaning (npcae does not import it).
    """


_SKLEARN_KINDS = {}


def _sklearn_kind(cls, name):
    """``cls``, or when scikit-learn is ALREADY imported a subclass of ``cls`` and of
    ``sklearn.exceptions.<name>`` (so its estimator checks recognise npcae's errors and
    warnings). npcae never imports scikit-learn itself."""
    exceptions = sys.modules.get("sklearn.exceptions")
    theirs = getattr(exceptions, name, None)
    if theirs is None:
        return cls
    if name not in _SKLEARN_KINDS:
        _SKLEARN_KINDS[name] = type(name, (cls, theirs), {"__module__": __name__})
    return _SKLEARN_KINDS[name]


# ----------------------------------------------------------------------------- export
def export_encoder(model):
    """The encoder of a fitted autoencoder as a dict of plain arrays and activation specs.

    Parameters
    ----------
    model : fitted autoencoder
        :class:`~npcae.ContractiveAutoencoder` (``W``, ``b``), or any model on the layers
        engine (``Autoencoder``, ``DenoisingAutoencoder``, ``SparseAutoencoder``,
        ``DeepContractiveAutoencoder``, ``StackedAutoencoder``: ``encoder.{i}.W`` /
        ``encoder.{i}.b``).

    Returns
    -------
    dict
        ``{"W": [W_1, ..., W_L], "b": [b_1, ..., b_L], "activation": [spec_1, ..., spec_L]}``:
        copies of the weights (``W_l`` of shape ``(h_{l-1}, h_l)``, ``h_0 = d``), biases
        ``(h_l,)`` and each layer's activation as a JSON-able spec (a name or a config
        dict). The encoder is ``h_l = phi_l(h_{l-1} W_l + b_l)``. This is what
        ``MLPClassifier(init_from=...)`` accepts; unlike the model itself it survives
        ``sklearn.base.clone`` (which copies arrays but makes estimators unfitted).
    """
    Ws, bs, acts = _encoder_arrays(model)
    return {"W": [np.array(W) for W in Ws], "b": [np.array(b) for b in bs],
            "activation": [a.get_config() for a in acts]}


def _encoder_arrays(model):
    """``(Ws, bs, activations)`` of a fitted autoencoder's encoder: the model's own arrays
    (no copies) and ActivationFunction objects. See :func:`export_encoder`."""
    from .cae import ContractiveAutoencoder
    from .layered import LayeredAutoencoder
    if not isinstance(model, BaseAutoencoder):
        raise TypeError(f"export_encoder takes a fitted npcae autoencoder; got "
                        f"{type(model).__name__}.")
    if not model.__sklearn_is_fitted__():
        raise NotFittedError(f"this {type(model).__name__} is not fitted (it has no weights "
                             f"to export); call fit(X) first. (sklearn.base.clone, and so "
                             f"GridSearchCV, returns UNFITTED copies of estimators: to keep "
                             f"the pretraining through clone, pass init_from="
                             f"npcae.models.mlp.export_encoder(fitted_model), a dict of "
                             f"arrays, instead of the model.)")
    if isinstance(model, ContractiveAutoencoder):
        return [model.params["W"]], [model.params["b"]], [get_activation(model.activation)]
    if isinstance(model, LayeredAutoencoder) and "encoder.0.W" in model.params:
        L = len(model._encoder_widths())
        return ([model.params[f"encoder.{i}.W"] for i in range(L)],
                [model.params[f"encoder.{i}.b"] for i in range(L)],
                list(model._activations()[0]))
    raise TypeError(f"{type(model).__name__} has no deterministic encoder of Dense layers to "
                    f"export (a VAE's encoder outputs a distribution); use one of "
                    f"ContractiveAutoencoder, Autoencoder, DenoisingAutoencoder, "
                    f"SparseAutoencoder, DeepContractiveAutoencoder, StackedAutoencoder.")


def _check_encoder_dict(enc):
    """Validate an :func:`export_encoder` dict; returns ``(Ws, bs, activation specs)``."""
    if set(enc) != {"W", "b", "activation"}:
        raise ValueError(f"init_from dict must have exactly the keys 'W', 'b', 'activation' "
                         f"(lists, one entry per layer, as export_encoder(model) makes); got "
                         f"keys {sorted(map(str, enc))}.")
    Ws, bs, acts = list(enc["W"]), list(enc["b"]), list(enc["activation"])
    if not (len(Ws) == len(bs) == len(acts)) or not Ws:
        raise ValueError(f"init_from: 'W', 'b' and 'activation' must be non-empty lists of the "
                         f"same length (one per layer); got {len(Ws)}, {len(bs)}, "
                         f"{len(acts)}.")
    Ws = [as_float_array(W, f"init_from['W'][{i}]", ndim=2, convert_numeric=True)
          for i, W in enumerate(Ws)]
    bs = [as_float_array(b, f"init_from['b'][{i}]", ndim=1, convert_numeric=True)
          for i, b in enumerate(bs)]
    for i, (W, b) in enumerate(zip(Ws, bs)):
        if b.shape != (W.shape[1],):
            raise ValueError(f"init_from['b'][{i}] has shape {b.shape}; W[{i}] has shape "
                             f"{W.shape}, so b[{i}] needs ({W.shape[1]},).")
        if i and W.shape[0] != Ws[i - 1].shape[1]:
            raise ValueError(f"init_from['W'][{i}] has {W.shape[0]} rows but layer {i - 1} "
                             f"has {Ws[i - 1].shape[1]} units; the layers must chain.")
    acts = [get_activation(a) for a in acts]
    return Ws, bs, acts


def _terms(Z, codes):
    """The classifier's objective terms on the logits ``Z`` (n, C) and class codes ``codes``
    (n,): ``{"cross_entropy", "error", "total"}`` (means over the rows; total is the cross-
    entropy), and ``G_Z = dL/dZ = (P - onehot(codes)) / n`` from the loss."""
    value, G_Z = softmax_cross_entropy(Z, codes)
    error = float(np.mean(np.argmax(Z, axis=1) != codes))
    return {"cross_entropy": value, "error": error, "total": value}, G_Z


def _log_softmax(Z):
    """Row-wise log-softmax of the logits ``Z`` (n, C), stable (row maximum subtracted first)."""
    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))


# ------------------------------------------------------------------------- classifier
class MLPClassifier(BaseEstimator):
    r"""Multilayer perceptron with a softmax output, optionally initialised from an autoencoder.

    Parameters
    ----------
    layers : int, tuple of int or None
        Hidden widths ``(h_1, ..., h_L)``. ``None``: ``(100,)``, or the encoder's widths with
        ``init_from`` (which must match when both are given).
    activation : str, dict, ActivationFunction, list of them, or None
        Hidden nonlinearity (a list: one per hidden layer). ``None``: ``"sigmoid"``, or the
        encoder's (per layer) with ``init_from``; given together with ``init_from`` it must
        equal the encoder's.
    init_from : None, fitted autoencoder or dict
        Pretrained hidden layers: a fitted npcae autoencoder, or
        :func:`export_encoder`'s dict of it. Its weights and biases are copied exactly
        into the hidden layers; the output layer starts small and random. Prefer the
        dict with ``sklearn.base.clone`` / ``GridSearchCV``: they copy a dict's arrays
        but replace an estimator with an unfitted copy, which ``fit`` refuses with an
        error that says so.
    optimizer : None, str, dict or Optimizer
        Default ``Adam(lr=1e-3)``. An instance is copied, never mutated.
    batch_size, epochs : int
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the random weights and of the minibatch order.
    dtype : float32 (default) or float64
    init : str
        Initialiser of the hidden layers that ``init_from`` does not give; ``"auto"``:
        4x Glorot-uniform for sigmoid, He for relu, Glorot otherwise.
    early_stopping : int or None
        Patience in epochs on the validation ERROR (needs ``validation_data``); the
        parameters of the best epoch are restored at the end.
    verbose : int
    warm_start : bool
        Continue from the current parameters, optimizer state and minibatch generator
        (bit for bit like one uninterrupted run).

    Attributes
    ----------
    classes_ : ndarray
        The sorted labels seen in ``fit`` (any labels ``np.unique`` sorts: ints, strings).
    hidden_layers_ : tuple of int
        The hidden widths, fixed when the parameters were created (from ``layers`` or
        ``init_from``).
    activations_ : list of ActivationFunction
        The hidden activations, one per layer, fixed at the same time.
    params : dict
        ``hidden.{l}.W`` (h_{l-1}, h_l), ``hidden.{l}.b`` (h_l,) for l = 0..L-1, then
        ``output.W`` (h_L, C), ``output.b`` (C,).
    history_ : dict of lists
        Per epoch: ``cross_entropy``, ``error`` (training minibatches), ``total``, and with
        validation data ``val_cross_entropy``, ``val_error``, ``val_total``.
    n_features_in_, n_iter_, loss_curve_, optimizer_, training_rng_state_
        As for the autoencoders.

    Examples
    --------
    >>> import npcae
    >>> X, y = npcae.datasets.make_digits(600, random_state=0)
    >>> ae = npcae.ContractiveAutoencoder(n_hidden=32, lam=0.1, epochs=2, random_state=0).fit(X)
    >>> clf = npcae.MLPClassifier(init_from=ae, epochs=5, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:3]).shape
    (3, 10)
    """

    _monitor = "error"
    _shape_hyperparameters = ("layers",)

    def __init__(self, layers=None, activation=None, init_from=None, optimizer=None,
                 batch_size=100, epochs=100, random_state=None, dtype=np.float32, init="auto",
                 early_stopping=None, verbose=0, warm_start=False):
        self.layers = layers
        self.activation = activation
        self.init_from = init_from
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.epochs = epochs
        self.random_state = random_state
        self.dtype = dtype
        self.init = init
        self.early_stopping = early_stopping
        self.verbose = verbose
        self.warm_start = warm_start

    def _repr_value(self, key, value):
        if key == "init_from" and isinstance(value, dict):
            widths = [np.shape(W)[-1] for W in value.get("W", ())]
            return f"<encoder dict, widths {tuple(widths)}>"
        return repr(value)

    # -- architecture -------------------------------------------------------------------
    def _pretrained(self):
        """``(Ws, bs, activations)`` of ``init_from``, or None."""
        source = self.init_from
        if source is None:
            return None
        if isinstance(source, dict):
            return _check_encoder_dict(source)
        if isinstance(source, BaseEstimator):
            if not source.__sklearn_is_fitted__():
                raise NotFittedError(
                    f"init_from is an UNFITTED {type(source).__name__}, so there is no "
                    f"pretraining to start from. If this classifier came from "
                    f"sklearn.base.clone (GridSearchCV, cross_val_score, ...), clone replaced "
                    f"the fitted autoencoder by an unfitted copy; pass "
                    f"init_from=npcae.models.mlp.export_encoder(fitted_model) (a dict of "
                    f"arrays, which clone keeps) instead. Otherwise fit the autoencoder "
                    f"first.")
            Ws, bs, acts = _encoder_arrays(source)
            return _check_encoder_dict({"W": Ws, "b": bs, "activation": acts})
        raise TypeError(f"init_from must be None, a fitted npcae autoencoder or the dict "
                        f"export_encoder(model) returns; got {type(source).__name__}.")

    def _architecture_from_hyperparameters(self):
        """``(hidden widths, hidden activations)`` from ``layers``/``activation`` and
        ``init_from``, checked against each other."""
        pre = self._pretrained()
        if pre is None:
            widths = layer_widths((100,) if self.layers is None else self.layers)
            acts = self._activation_list(len(widths))
            return widths, acts
        widths, acts = tuple(W.shape[1] for W in pre[0]), list(pre[2])
        if self.layers is not None and layer_widths(self.layers) != widths:
            raise ValueError(f"layers={self.layers!r} does not match the encoder in "
                             f"init_from, whose widths are {widths}; pass layers=None "
                             f"(or {widths}).")
        if self.activation is not None:
            given = [a.get_config() for a in self._activation_list(len(widths))]
            if given != [a.get_config() for a in acts]:
                raise ValueError(f"activation={self.activation!r} differs from the "
                                 f"encoder's {[a.get_config() for a in acts]} in "
                                 f"init_from; pass activation=None to use the encoder's.")
        return widths, acts

    def _activation_list(self, n_layers):
        """``activation`` as one ActivationFunction per hidden layer (a list/tuple gives one
        per layer; a single spec is repeated; None is sigmoid)."""
        spec = "sigmoid" if self.activation is None else self.activation
        if isinstance(spec, (list, tuple)):
            if len(spec) != n_layers:
                raise ValueError(f"activation has {len(spec)} entries but there are "
                                 f"{n_layers} hidden layers; give one per layer or a single "
                                 f"activation.")
            return [get_activation(a) for a in spec]
        return [get_activation(spec)] * n_layers

    def _architecture(self):
        """The fitted architecture (``hidden_layers_``, ``activations_``), else the one the
        hyperparameters describe."""
        if hasattr(self, "hidden_layers_"):
            return self.hidden_layers_, self.activations_
        return self._architecture_from_hyperparameters()

    def initialize(self, n_features, random_state=None):
        """Create every parameter for ``n_features`` inputs (``classes_`` must be set): the
        hidden layers from ``init_from`` (copies) or drawn, the output layer drawn. Fixes
        the architecture as ``hidden_layers_`` and ``activations_``. Returns self."""
        self.hidden_layers_, self.activations_ = self._architecture_from_hyperparameters()
        return super().initialize(n_features, random_state)

    def _hidden_widths(self):
        return self._architecture()[0]

    def _hidden_activations(self):
        return self._architecture()[1]

    def _n_classes(self):
        classes = getattr(self, "classes_", None)
        if classes is None:
            raise NotFittedError(f"this {type(self).__name__} has no classes_ yet; call "
                                 f"fit(X, y) first.")
        return len(classes)

    def _layer_shapes(self, n_features):
        widths = [int(n_features), *self._hidden_widths(), self._n_classes()]
        return list(zip(widths[:-1], widths[1:]))

    def _weight_init(self):
        if self.init != "auto":
            return self.init
        return _DEFAULT_INIT.get(self._hidden_activations()[0].name, "glorot_uniform")

    def _param_shapes(self, n_features):
        shapes = {}
        layers = self._layer_shapes(n_features)
        for i, (n_in, n_out) in enumerate(layers[:-1]):
            shapes[f"hidden.{i}.W"] = ((n_in, n_out), self._weight_init())
            shapes[f"hidden.{i}.b"] = ((n_out,), None)
        shapes["output.W"] = (layers[-1], _OUTPUT_INIT)
        shapes["output.b"] = ((layers[-1][1],), None)
        return shapes

    def _draw_params(self, n_features, rng):
        """The hidden layers from ``init_from`` (copies) or drawn; the output layer drawn."""
        pre = self._pretrained()
        layers = self._layer_shapes(n_features)
        if pre is not None and pre[0][0].shape[0] != n_features:
            raise ValueError(f"X has {n_features} features, but the encoder in init_from "
                             f"takes {pre[0][0].shape[0]}; fit on the autoencoder's input.")
        fresh = {}
        for i, (n_in, n_out) in enumerate(layers[:-1]):
            if pre is None:
                layer = init_layer_params(self._weight_init(), n_in, n_out, rng)
            else:
                layer = {"W": pre[0][i], "b": pre[1][i]}
            fresh[f"hidden.{i}.W"] = np.array(layer["W"], dtype=self.dtype_)
            fresh[f"hidden.{i}.b"] = np.array(layer["b"], dtype=self.dtype_)
        layer = init_layer_params(_OUTPUT_INIT, *layers[-1], rng)
        fresh["output.W"], fresh["output.b"] = layer["W"], layer["b"]
        return fresh

    def _network(self, dtype):
        """``(Sequential, bindings)`` on the engine: Dense/Activation per hidden layer, then the
        output Dense (the softmax is applied with the loss). Built once per shape and dtype."""
        key = (self.n_features_in_, self._hidden_widths(), self._n_classes(),
               repr(self._hidden_activations()), np.dtype(dtype))
        cached = getattr(self, "_network_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        opts = dict(reuse_buffers=True, check_input=False)
        layers = self._layer_shapes(self.n_features_in_)
        modules, bindings = [], []
        for i, ((n_in, n_out), act) in enumerate(zip(layers[:-1], self._hidden_activations())):
            dense = Dense(n_in, n_out, init="zeros", dtype=dtype, input_grad=i > 0, **opts)
            bindings.append((f"hidden.{i}.", dense))
            modules += [dense, Activation(act, **opts)]
        out = Dense(*layers[-1], init="zeros", dtype=dtype, input_grad=len(layers) > 1, **opts)
        bindings.append(("output.", out))
        network = (Sequential(modules + [out]), bindings)
        self._network_cache = (key, network)
        return network

    # -- the objective ------------------------------------------------------------------
    def _objective(self, X, grads, ws, rng=None, y=None):
        """Softmax cross-entropy of the class codes ``y`` (n,) and, if ``grads`` is a dict,
        its gradient written into it: ``G_Z = (P - onehot(y)) / n`` from the loss, then the
        engine's backward pass (docs/derivations.md, section "MLP classifier")."""
        network, bindings = self._network(X.dtype)
        self._bind_layers(bindings, grads)
        Z = network.forward(X)
        terms, G_Z = _terms(Z, y)                            # G_Z = (P - onehot(y)) / n
        if grads is not None:
            network.backward(G_Z.astype(Z.dtype, copy=False))
        return terms["total"], terms

    def _logits(self, X):
        """``Z`` (n, C) with plain products (inference: nothing cached)."""
        return self._hidden(X) @ self.params["output.W"] + self.params["output.b"]

    def _hidden(self, X):
        """The last hidden layer's activations ``H_L`` (n, h_L)."""
        H = X
        for i, act in enumerate(self._hidden_activations()):
            H = act.value(H @ self.params[f"hidden.{i}.W"] + self.params[f"hidden.{i}.b"])
        return H

    # -- targets ------------------------------------------------------------------------
    def _validate_y(self, y, n, name="y"):
        """``y`` as a 1-D array of ``n`` labels (a column vector is flattened, with a warning)."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             f"y is None.")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples, ), for example using "
                          "ravel().", _sklearn_kind(DataConversionWarning,
                                                    "DataConversionWarning"), stacklevel=3)
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"{name} should be a 1d array of class labels; got shape "
                             f"{y.shape} (one-hot or multilabel targets are not supported).")
        if len(y) != n:
            raise ValueError(f"{name} has {len(y)} labels but X has {n} rows; they must be "
                             f"row-aligned.")
        if y.dtype.kind in "fc":
            if np.isnan(y).any():
                raise ValueError(f"Input {name} contains NaN.")
            if not np.isfinite(y).all():
                raise ValueError(f"Input {name} contains infinity or a value too large for "
                                 f"dtype('float64').")
            if y.dtype.kind == "c" or np.any(y != np.round(y)):
                raise ValueError(f"Unknown label type: continuous. {type(self).__name__} is a "
                                 f"classifier; {name} must hold class labels (ints or "
                                 f"strings), not real-valued targets.")
        elif y.dtype.kind == "O":
            if any(isinstance(v, float) and not np.isfinite(v) for v in y):
                raise ValueError(f"Input {name} contains NaN.")
        return y

    def _encode_y(self, y, name="y"):
        """Class codes ``0..C-1`` of ``y`` in ``classes_`` (labels never seen in fit: error)."""
        codes = np.searchsorted(self.classes_, y)
        codes = np.clip(codes, 0, len(self.classes_) - 1)
        unseen = self.classes_[codes] != y
        if np.any(unseen):
            raise ValueError(f"{name} has labels not seen in fit: "
                             f"{np.unique(y[unseen])[:5].tolist()}; classes_ are "
                             f"{self.classes_.tolist()[:10]}.")
        return codes.astype(np.intp)

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, y, validation_data=None):
        """Train on ``(X, y)``; returns self.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,)
            Class labels, any kind ``np.unique`` sorts (ints, strings); ``classes_``
            holds them sorted, and predictions are drawn from it.
        validation_data : tuple (X_val, y_val), optional
            Evaluated after each epoch (``history_["val_error"]`` etc.); enables
            early stopping on the validation error when ``early_stopping`` is set.

        With ``warm_start=True`` and a fitted model, training continues exactly
        (parameters, optimizer moments, minibatch generator); the labels must be
        among ``classes_``.
        """
        self._check_hyperparameters()
        warm = bool(self.warm_start) and self.__sklearn_is_fitted__()
        X, codes = self._training_data(X, y, warm, classes=None)
        X_val, codes_val = self._validate_validation_data(validation_data, X.shape[1])
        self._begin_training(warm, X.shape[1])
        self._train(X, self.epochs, X_val, y=codes, y_val=codes_val)
        return self

    def partial_fit(self, X, y, classes=None):
        """One pass of minibatch steps over the rows of ``(X, y)`` (reshuffled); returns self.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like, shape (n_samples,)
        classes : array_like, shape (n_classes,), optional
            Every label any call may hold. Required on the first call (one batch
            need not show every class); later calls may omit it, or must repeat it.

        The first call initialises the model (from ``init_from`` when set); later
        calls, and calls after ``fit``, continue with the same parameters, optimizer
        state and minibatch generator. Each call appends one entry to ``history_``
        and adds one to ``n_iter_``: ``partial_fit`` twice gives bit for bit the
        parameters of ``fit`` with ``epochs=2`` on the same data.
        """
        self._check_hyperparameters()
        resume = self.__sklearn_is_fitted__()       # after fit, partial_fit, load, initialize
        if classes is not None:
            classes = np.unique(self._validate_y(classes, np.size(classes), "classes"))
            if resume and not np.array_equal(classes, self.classes_):
                raise ValueError(f"classes={classes.tolist()[:10]} differs from the classes "
                                 f"of the first call, {self.classes_.tolist()[:10]}; pass the "
                                 f"same classes, or omit them after the first call.")
        elif not resume:
            raise ValueError(f"classes must be passed on the first call to partial_fit: "
                             f"every label that any call may hold, e.g. "
                             f"{type(self).__name__}().partial_fit(X, y, "
                             f"classes=np.unique(y_all)).")
        X, codes = self._training_data(X, y, resume, classes=classes)
        self._begin_training(resume, X.shape[1])
        self._train(X, 1, None, y=codes)
        return self

    def _training_data(self, X, y, warm, classes):
        """Validated ``X`` and the class codes of ``y`` for :meth:`fit` / :meth:`partial_fit`.

        ``warm``: continue the fitted network (its architecture, feature count and
        ``classes_`` are checked). Otherwise ``classes_`` is set to ``classes``
        (``np.unique(y)`` when None), which must hold at least two labels.
        """
        if warm:
            self._check_warm_architecture()
        X = self._validate_X(X, warm=warm, reset=not warm)
        y = self._validate_y(y, X.shape[0])
        if not warm:
            source = "y" if classes is None else "classes"
            classes = np.unique(y) if classes is None else classes
            if len(classes) < 2:
                raise ValueError(f"{source} has only one label ({classes.tolist()}), i.e. one "
                                 f"class; a classifier needs at least two classes to train.")
            self.classes_ = classes
        return X, self._encode_y(y)

    def _begin_training(self, warm, n_features):
        """Resume the stored training state, or start a fresh one for ``n_features``."""
        if warm:
            self._resume_training_state()
        else:
            self._start_training_state(n_features)

    def _check_warm_architecture(self):
        """Refuse a warm start whose hyperparameters now describe another network."""
        widths, acts = self._architecture_from_hyperparameters()
        fitted_widths, fitted_acts = self._architecture()
        if widths != tuple(fitted_widths) or [a.get_config() for a in acts] != \
                [a.get_config() for a in fitted_acts]:
            raise ValueError(f"warm start: the fitted network has hidden layers "
                             f"{tuple(fitted_widths)} with activations "
                             f"{[a.get_config() for a in fitted_acts]}, but the current "
                             f"hyperparameters (layers, activation, init_from) describe "
                             f"{widths} with {[a.get_config() for a in acts]}; restore them, "
                             f"or set warm_start=False to train a new model from scratch.")

    def _validate_validation_data(self, validation_data, n_features):
        if validation_data is None:
            return None, None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"validation_data must be a tuple (X_val, y_val); got "
                             f"{type(validation_data).__name__}.")
        X_val = as_float_array(validation_data[0], "validation_data[0]", ndim=2,
                               dtype=self.dtype_, convert_numeric=True, uint8="warn")
        check_n_features(X_val, n_features, "validation_data[0]", owner=type(self).__name__)
        y_val = self._validate_y(validation_data[1], X_val.shape[0], "validation_data[1]")
        return X_val, self._encode_y(y_val, "validation_data[1]")

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        from ..layers import check_init
        if self.layers is not None:
            check_widths(self.layers, "layers", "(1000,) or (500, 250)")
        check_init(self.init)
        self._architecture_from_hyperparameters()

    # -- the reference-library API --------------------------------------------------------
    def loss_and_grad(self, X, y):
        """Mean softmax cross-entropy on ``(X, y)`` and its gradient for every parameter.

        ``y`` holds labels from ``classes_`` (on a model with no parameters yet,
        ``classes_`` is set to ``np.unique(y)`` and the parameters are drawn from
        ``random_state``). Works in the parameters' dtype (float64 for gradient checks).
        """
        X, codes = self._prepare_for_objective(X, y)
        grads = {name: np.empty(np.shape(p), dtype=X.dtype) for name, p in self.params.items()}
        total, _ = self._objective(X, grads, Workspace(), None, y=codes)
        return _scalar(total), grads

    def loss_terms(self, X, y):
        """``{"cross_entropy", "error", "total"}`` on ``(X, y)``: means over the rows,
        evaluated in blocks of rows (bounded memory)."""
        return self._supervised_terms(*self._prepare_for_objective(X, y))

    def _supervised_terms(self, X, codes):
        """:meth:`loss_terms` on validated ``X`` and class codes (the training loop's
        validation call)."""
        sums = {}
        for start, stop in self._eval_blocks(X):
            terms, _ = _terms(self._logits(X[start:stop]), codes[start:stop])
            for key, v in terms.items():
                sums[key] = sums.get(key, 0.0) + v * (stop - start)
        return {key: value / X.shape[0] for key, value in sums.items()}

    def _prepare_for_objective(self, X, y):
        """Validated ``X`` and the class codes of ``y``. On a model with no parameters yet,
        ``classes_`` becomes ``np.unique(y)`` and the parameters are drawn (gradient checks)."""
        if not self.params or not hasattr(self, "n_features_in_"):
            X = self._validate_X(X, reset=True)
            self.classes_ = np.unique(self._validate_y(y, X.shape[0]))
            self.initialize(X.shape[1])
        self._check_params()
        X = self._validate_X(X, dtype=self._param_dtype())
        return X, self._encode_y(self._validate_y(y, X.shape[0]))

    # -- inference --------------------------------------------------------------------------
    def _ready(self, X):
        try:
            self._check_params()
            self._n_classes()
        except NotFittedError as exc:
            raise _sklearn_kind(NotFittedError, "NotFittedError")(str(exc)) from None
        return self._validate_X(X, dtype=self._param_dtype())

    def decision_logits(self, X):
        """The logits ``Z`` (n, C) (before the softmax)."""
        return self._logits(self._ready(X))

    def predict_proba(self, X):
        """Class probabilities ``softmax(Z)``, shape ``(n_samples, n_classes)``, columns in
        the order of ``classes_``; rows sum to 1."""
        return np.exp(_log_softmax(self.decision_logits(X)))

    def predict_log_proba(self, X):
        """``log predict_proba(X)``, computed from the logits (no log of 0)."""
        return _log_softmax(self.decision_logits(X))

    def predict(self, X):
        """The most probable class of each row, from ``classes_``."""
        Z = self.decision_logits(X)
        return self.classes_[np.argmax(Z, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Accuracy: the fraction of rows whose prediction equals ``y`` (optionally weighted)."""
        predicted = self.predict(X)
        correct = predicted == self._validate_y(y, len(predicted))
        if sample_weight is None:
            return float(np.mean(correct))
        w = as_float_array(sample_weight, "sample_weight", ndim=1, convert_numeric=True)
        return float(np.sum(w * correct) / np.sum(w))

    def hidden_activations(self, X):
        """The last hidden layer's activations ``H_L`` (n, h_L) (the learned features)."""
        return self._hidden(self._ready(X))

    # -- saving (npcae.io) ----------------------------------------------------------------
    _fitted_array_names = ("classes_",)

    def _saved_fitted_arrays(self):
        return {"classes_": self.classes_}

    def _restore_fitted_arrays(self, arrays):
        classes = np.asarray(arrays["classes_"])
        if classes.ndim != 1 or len(classes) < 2 or len(np.unique(classes)) != len(classes):
            raise ValueError(f"classes_ must be at least two distinct labels in a 1-D array; "
                             f"got {classes!r}")
        self.classes_ = np.sort(classes)
        self.hidden_layers_, self.activations_ = self._architecture_from_hyperparameters()

    def _saved_hyperparameters(self):
        """The hyperparameters a file stores: ``init_from`` is replaced by the architecture it
        fixed (``layers`` = ``hidden_layers_``, ``activation`` = one config per layer), since
        the pretrained weights are already the parameters."""
        params = self.get_params()
        if hasattr(self, "hidden_layers_"):
            params.update(layers=tuple(self.hidden_layers_), init_from=None,
                          activation=[a.get_config() for a in self.activations_])
        return params

    # -- scikit-learn ---------------------------------------------------------------------
    def __sklearn_tags__(self):
        """scikit-learn's classifier tags (imported only when scikit-learn asks for them)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
        return Tags(estimator_type="classifier",
                    target_tags=TargetTags(required=True, one_d_labels=True,
                                           two_d_labels=False),
                    classifier_tags=ClassifierTags(multi_class=True, multi_label=False,
                                                   poor_score=False),
                    input_tags=InputTags(allow_nan=False, sparse=False),
                    requires_fit=True, non_deterministic=False)

    def __sklearn_is_fitted__(self):
        return super().__sklearn_is_fitted__() and getattr(self, "classes_", None) is not None
