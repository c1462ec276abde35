"""Layers with hand-written forward and backward passes.

The protocol (CS231n / micrograd style)::

    y = module.forward(x)          # caches what backward needs
    dx = module.backward(dy)       # returns dL/dx and ADDS dL/dparam into module.grads

``params`` and ``grads`` are dicts with the same keys and shapes. Gradients
accumulate (``+=``) so a weight used twice (tied or shared) receives every
contribution; call :meth:`Module.zero_grad` before each new backward pass.

Shapes are ``(n_samples, n_features)`` throughout. Derivations:
``docs/derivations.md#dense-layer``, ``#activation-layer``, ``#tied-dense-layer``,
``#sequential``.

Two options serve models that train on these layers (:mod:`npcae.models.layered`)
without changing how the layers read:

* ``reuse_buffers=True``: ``forward`` and ``backward`` write their results into
  arrays kept by the layer (one per shape) instead of new ones, so a training
  step allocates nothing large. A result is then valid until the layer's next
  call, which is all backpropagation needs.
* ``check_input=False``: skip the input validation (models validate ``X`` once).
* ``input_grad=False``: ``backward`` fills the parameter gradients and returns
  ``None`` instead of dL/dx (a model's first layer: nothing below it learns).

A model owns its parameters; :meth:`Module.bind` points a layer's ``params`` and
``grads`` entries at the model's arrays, so a layer never creates parameters
the model already has. Parameters are drawn in one place, :func:`init_layer_params`.
"""
from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np

from ._validation import as_float_array, check_random_state
from ._workspace import Workspace
from .activations import get_activation

__all__ = ["Module", "Dense", "TiedDense", "Activation", "Sequential", "init_weights",
           "init_layer_params", "INITIALIZERS", "BIAS_INITIALIZERS"]


class Module:
    """Base class of every layer.

    Attributes
    ----------
    params : dict of str -> ndarray
        Trainable arrays; optimisers update them in place.
    grads : dict of str -> ndarray
        Gradients of the loss with respect to ``params``, same keys and shapes.
    training : bool
        Train (True) or eval (False) mode; layers whose behaviour differs
        (noise, dropout) read it.
    """

    def __init__(self, reuse_buffers=False, check_input=True, input_grad=True):
        self.params = {}
        self.grads = {}
        self.training = True
        self.reuse_buffers = bool(reuse_buffers)
        self.check_input = bool(check_input)
        self.input_grad = bool(input_grad)
        self._buffers = Workspace()

    def _out(self, name, shape, dtype):
        """Where to write a result: a kept buffer with ``reuse_buffers``, else None (new array)."""
        return self._buffers.get(name, shape, dtype) if self.reuse_buffers else None

    def bind(self, params, grads=None, prefix=""):
        """Point this layer's ``params`` (and ``grads``) at ``params[prefix + name]``.

        Used by models: the model's dict holds the arrays, the layer reads and
        accumulates into exactly those arrays. Returns self.
        """
        for name in list(self.params):
            self.params[name] = params[prefix + name]
            if grads is not None:
                self.grads[name] = grads[prefix + name]
        return self

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def zero_grad(self):
        """Set every gradient to zero (in place, keeping the arrays)."""
        for name, p in self.params.items():
            g = self.grads.get(name)
            if g is None or g.shape != p.shape or g.dtype != p.dtype:
                self.grads[name] = np.zeros_like(p)
            else:
                g.fill(0)

    def train(self, mode=True):
        """Set train mode (``mode=True``) or eval mode; returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Set eval mode; returns self."""
        return self.train(False)

    def _require_cache(self, attr):
        value = getattr(self, attr, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward(); "
                               f"run forward(x) first so the layer can cache its inputs.")
        return value


# ----------------------------------------------------------------------------- init
def _glorot_uniform(rng, n_in, n_out):
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def _glorot_normal(rng, n_in, n_out):
    return rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out))


def _he_normal(rng, n_in, n_out):
    return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))


def _he_uniform(rng, n_in, n_out):
    limit = np.sqrt(6.0 / n_in)
    return rng.uniform(-limit, limit, size=(n_in, n_out))


def _sigmoid_uniform(rng, n_in, n_out):
    # Glorot & Bengio (2010): 4x the Glorot range suits sigmoid units.
    return 4.0 * _glorot_uniform(rng, n_in, n_out)


def _normal(rng, n_in, n_out):
    return rng.normal(0.0, 0.01, size=(n_in, n_out))


def _zeros(rng, n_in, n_out):
    return np.zeros((n_in, n_out))


INITIALIZERS = {"glorot_uniform": _glorot_uniform, "xavier_uniform": _glorot_uniform,
                "glorot_normal": _glorot_normal, "xavier_normal": _glorot_normal,
                "he_normal": _he_normal, "he_uniform": _he_uniform,
                "sigmoid_uniform": _sigmoid_uniform, "normal": _normal, "zeros": _zeros}


def init_weights(init, n_in, n_out, random_state=None, dtype=np.float64):
    """Return an ``(n_in, n_out)`` weight matrix drawn by the named scheme.

    ``glorot_uniform``/``xavier_uniform``: U(-l, l), l = sqrt(6 / (n_in + n_out));
    ``glorot_normal``: N(0, 2 / (n_in + n_out)); ``he_normal``: N(0, 2 / n_in);
    ``he_uniform``: U(-sqrt(6 / n_in), ...); ``sigmoid_uniform``: 4x glorot_uniform;
    ``normal``: N(0, 0.01^2); ``zeros``.

    Parameters
    ----------
    init : str
        One of :data:`INITIALIZERS`.
    n_in, n_out : int
        Shape of the matrix.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the draws (``None``: fresh OS entropy). A ``Generator`` or
        ``RandomState`` is advanced by them.
    dtype : float dtype
        dtype of the result.
    """
    if not isinstance(init, str) or init not in INITIALIZERS:
        raise ValueError(f"unknown init {init!r}; choose one of {sorted(INITIALIZERS)}.")
    rng = check_random_state(random_state)
    return INITIALIZERS[init](rng, n_in, n_out).astype(dtype)


def _torch_linear(rng, n_in, n_out):
    bound = 1.0 / np.sqrt(n_in)
    return rng.uniform(-bound, bound, size=(n_in, n_out))


INITIALIZERS["torch_linear"] = _torch_linear

BIAS_INITIALIZERS = {"torch_linear"}
"""Schemes that draw the bias too (PyTorch's ``nn.Linear``: ``b ~ U(-1/sqrt(n_in), 1/sqrt(n_in))``);
every other scheme starts the bias at zero."""


def check_init(init, allow_auto=True):
    """Raise ``ValueError`` unless ``init`` names a scheme (or is ``"auto"`` for models)."""
    if not (allow_auto and init == "auto") and init not in INITIALIZERS:
        auto = "'auto' or " if allow_auto else ""
        raise ValueError(f"init must be {auto}one of {sorted(INITIALIZERS)}; got {init!r}.")


def init_layer_params(init, n_in, n_out, random_state=None, dtype=np.float64):
    """Draw one affine layer's parameters: ``{"W": (n_in, n_out), "b": (n_out,)}``.

    The one place where npcae creates layer parameters (:class:`Dense`, and
    every model through it). ``W`` comes from :func:`init_weights`; ``b`` is
    zero, except for ``"torch_linear"`` (PyTorch's ``nn.Linear`` default), which
    draws ``W`` and then ``b`` from ``U(-1/sqrt(n_in), 1/sqrt(n_in))``.
    """
    rng = check_random_state(random_state)
    W = init_weights(init, n_in, n_out, rng, dtype)
    if init in BIAS_INITIALIZERS:
        bound = 1.0 / np.sqrt(n_in)
        b = rng.uniform(-bound, bound, size=n_out).astype(dtype)
    else:
        b = np.zeros(n_out, dtype=dtype)
    return {"W": W, "b": b}


# ----------------------------------------------------------------------------- Dense
class Dense(Module):
    r"""Affine layer :math:`y = x W + b`.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths. ``W`` has shape ``(n_in, n_out)``, ``b`` ``(n_out,)``.
    init : str
        Weight initialiser (see :func:`init_layer_params`); biases start at zero
        except for ``"torch_linear"``.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the initial weights (``None``: fresh OS entropy; an int: the
        same weights every time). A ``Generator`` or ``RandomState`` is
        advanced by the draw.
    dtype : float dtype
        Parameter dtype (float64 for gradient checks, float32 for speed).
    reuse_buffers, check_input : bool
        See the module docstring.

    Notes
    -----
    Backward (``docs/derivations.md#dense-layer``), with ``G = dL/dy`` of shape
    ``(n, n_out)``::

        grad_W += x.T @ G          # (n_in, n_out)
        grad_b += G.sum(axis=0)    # (n_out,)
        grad_x  = G @ W.T          # (n, n_in)
    """

    def __init__(self, n_in, n_out, init="glorot_uniform", random_state=None,
                 dtype=np.float64, reuse_buffers=False, check_input=True, input_grad=True):
        super().__init__(reuse_buffers=reuse_buffers, check_input=check_input,
                         input_grad=input_grad)
        self.n_in, self.n_out = int(n_in), int(n_out)
        if self.n_in < 1 or self.n_out < 1:
            raise ValueError(f"Dense needs n_in >= 1 and n_out >= 1; got {n_in}, {n_out}.")
        self.params.update(init_layer_params(init, self.n_in, self.n_out, random_state, dtype))
        self.zero_grad()
        self.x = None

    def forward(self, x):
        if self.check_input:
            x = as_float_array(x, "Dense input", ndim=2)
            if x.shape[1] != self.n_in:
                raise ValueError(f"Dense layer expects input of shape (n_samples, "
                                 f"{self.n_in}); got {x.shape}.")
        self.x = x
        W = self.params["W"]
        y = np.matmul(x, W, out=self._out("y", (x.shape[0], self.n_out),
                                         np.result_type(x, W)))
        y += self.params["b"]
        return y

    def backward(self, grad_out):
        x = self._require_cache("x")
        if grad_out.shape != (x.shape[0], self.n_out):
            raise ValueError(f"Dense.backward expects grad_out of shape "
                             f"{(x.shape[0], self.n_out)} (the output's shape); got "
                             f"{grad_out.shape}.")
        W, grad_W = self.params["W"], self.grads["W"]
        _accumulate_matmul(grad_W, x.T, grad_out, self._out("grad_W", grad_W.shape, grad_W.dtype))
        self.grads["b"] += grad_out.sum(axis=0)
        if not self.input_grad:
            return None
        return np.matmul(grad_out, W.T, out=self._out("grad_x", x.shape,
                                                      np.result_type(grad_out, W)))

    def __repr__(self):
        return f"Dense({self.n_in}, {self.n_out})"


def _accumulate_matmul(acc, a, b, scratch):
    """``acc += a @ b``, through ``scratch`` when given (no new array)."""
    acc += np.matmul(a, b, out=scratch)


# ------------------------------------------------------------------------ TiedDense
class TiedDense(Module):
    r"""Affine layer that reuses another :class:`Dense`'s weights, transposed: :math:`y = x W^T + b`.

    The decoder half of a tied autoencoder: ``TiedDense(encoder_layer)`` maps
    ``n_out -> n_in`` of ``encoder_layer`` with its own bias ``b`` of shape
    ``(n_in,)`` and no weight of its own. Its weight gradient is ADDED to the
    source layer's ``grads["W"]``, so ``W`` receives both contributions.

    Notes
    -----
    Backward (``docs/derivations.md#tied-dense-layer``), ``G = dL/dy`` of shape
    ``(n, n_in)``::

        source.grad_W += G.T @ x   # (n_in, n_out): the transpose of x.T @ G
        grad_b        += G.sum(axis=0)
        grad_x         = G @ W     # (n, n_out)
    """

    def __init__(self, source, reuse_buffers=False, check_input=True, input_grad=True):
        super().__init__(reuse_buffers=reuse_buffers, check_input=check_input,
                         input_grad=input_grad)
        if not isinstance(source, Dense):
            raise TypeError(f"TiedDense ties to a Dense layer; got {type(source).__name__}.")
        self.source = source
        self.n_in, self.n_out = source.n_out, source.n_in
        self.params["b"] = np.zeros(self.n_out, dtype=source.params["W"].dtype)
        self.zero_grad()
        self.x = None

    def forward(self, x):
        if self.check_input:
            x = as_float_array(x, "TiedDense input", ndim=2)
            if x.shape[1] != self.n_in:
                raise ValueError(f"TiedDense layer expects input of shape (n_samples, "
                                 f"{self.n_in}); got {x.shape}.")
        self.x = x
        W = self.source.params["W"]
        y = np.matmul(x, W.T, out=self._out("y", (x.shape[0], self.n_out),
                                           np.result_type(x, W)))
        y += self.params["b"]
        return y

    def backward(self, grad_out):
        x = self._require_cache("x")
        if grad_out.shape != (x.shape[0], self.n_out):
            raise ValueError(f"TiedDense.backward expects grad_out of shape "
                             f"{(x.shape[0], self.n_out)}; got {grad_out.shape}.")
        W, grad_W = self.source.params["W"], self.source.grads["W"]
        _accumulate_matmul(grad_W, grad_out.T, x,
                           self._out("grad_W", grad_W.shape, grad_W.dtype))
        self.grads["b"] += grad_out.sum(axis=0)
        if not self.input_grad:
            return None
        return np.matmul(grad_out, W, out=self._out("grad_x", x.shape,
                                                    np.result_type(grad_out, W)))

    def __repr__(self):
        return f"TiedDense({self.n_in}, {self.n_out})"


# ------------------------------------------------------------------------ Activation
class Activation(Module):
    r"""Elementwise nonlinearity :math:`h = \phi(a)` as a layer (no parameters).

    Backward (``docs/derivations.md#activation-layer``): ``grad_a = grad_h * phi'(a)``.
    """

    def __init__(self, activation="sigmoid", reuse_buffers=False, check_input=True, **kwargs):
        super().__init__(reuse_buffers=reuse_buffers, check_input=check_input)
        self.activation = get_activation(activation, **kwargs)
        self.pre_activation = None
        self.output = None

    def forward(self, x):
        if self.check_input:
            x = as_float_array(x, "Activation input", allow_empty=True)
        self.pre_activation = x
        self.output = self.activation.value(x, out=self._out("h", x.shape, x.dtype))
        return self.output

    def backward(self, grad_out):
        a = self._require_cache("pre_activation")
        if grad_out.shape != a.shape:
            raise ValueError(f"Activation.backward expects grad_out of shape {a.shape}; "
                             f"got {grad_out.shape}.")
        out = self._out("grad_a", a.shape, np.result_type(grad_out, a))
        derivative = self.activation.derivative(a, self.output, out=out)
        return np.multiply(grad_out, derivative, out=derivative if out is not None else None)

    def __repr__(self):
        return f"Activation({self.activation!r})"


# ------------------------------------------------------------------------ Sequential
class _NamespacedDict(MutableMapping):
    """``"<index>.<name>"`` view over the children's ``params`` or ``grads`` dicts.

    Reading and assigning both go through to the child, so ``seq.params["0.W"] = W``
    really replaces the first layer's weights.
    """

    def __init__(self, modules, attr):
        self._modules, self._attr = modules, attr

    def _split(self, key):
        idx, _, name = key.partition(".")
        try:
            module = self._modules[int(idx)]
        except (ValueError, IndexError):
            raise KeyError(key) from None
        store = getattr(module, self._attr)
        return store, name

    def __getitem__(self, key):
        store, name = self._split(key)
        return store[name]

    def __setitem__(self, key, value):
        store, name = self._split(key)
        if name not in store:
            raise KeyError(key)
        value = np.asarray(value)
        if value.shape != store[name].shape:
            raise ValueError(f"{key} must have shape {store[name].shape}; got {value.shape}.")
        store[name] = value

    def __delitem__(self, key):
        raise TypeError("parameters of a Sequential cannot be deleted")

    def __iter__(self):
        for i, m in enumerate(self._modules):
            for name in getattr(m, self._attr):
                yield f"{i}.{name}"

    def __len__(self):
        return sum(len(getattr(m, self._attr)) for m in self._modules)


class Sequential(Module):
    """Compose modules: ``forward`` runs them in order, ``backward`` in reverse.

    Parameter names are ``"<index>.<name>"`` (``"0.W"``, ``"0.b"``, ...).
    Backward is the chain rule (``docs/derivations.md#sequential``)::

        g = grad_out
        for m in reversed(modules): g = m.backward(g)
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        for m in modules:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential takes Module instances; got {type(m).__name__}.")
        self.modules = list(modules)
        self.params = _NamespacedDict(self.modules, "params")
        self.grads = _NamespacedDict(self.modules, "grads")

    def forward(self, x):
        for m in self.modules:
            x = m.forward(x)
        return x

    def backward(self, grad_out, add_grad=None):
        """Backpropagate ``grad_out`` (dL/d output) through every module, last first.

        ``add_grad`` maps a module index ``i`` to an array added to dL/d(output
        of module ``i``) before module ``i``'s backward runs: the gradient of a
        term that reads an intermediate output (a hidden-layer penalty).
        """
        add_grad = add_grad or {}
        last = len(self.modules) - 1
        for i in range(last, -1, -1):
            if i in add_grad:
                grad_out = grad_out + add_grad[i] if i == last else _add_into(grad_out,
                                                                              add_grad[i])
            grad_out = self.modules[i].backward(grad_out)
            if grad_out is None:             # a module with input_grad=False ends the pass
                break
        return grad_out

    def zero_grad(self):
        for m in self.modules:
            m.zero_grad()

    def train(self, mode=True):
        self.training = bool(mode)
        for m in self.modules:
            m.train(mode)
        return self

    def __getitem__(self, i):
        return self.modules[i]

    def __len__(self):
        return len(self.modules)

    def __repr__(self):
        inner = ", ".join(repr(m) for m in self.modules)
        return f"Sequential({inner})"


def _add_into(grad, extra):
    """``grad + extra``, in place when ``grad`` is a layer's own result array."""
    grad += extra
    return grad
