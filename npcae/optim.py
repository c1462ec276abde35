"""Hand-written optimisers: SGD (momentum, Nesterov, weight decay), Adam, AdamW.

``opt.step(params, grads)`` updates the arrays of the ``params`` dict **in
place** from the same-keyed ``grads`` dict. State (moments, step counts) is
kept per key and round-trips through ``state_dict()`` / ``load_state_dict()``
so a checkpointed run resumes bit for bit. Update rules are written out in
``docs/derivations.md#optimisers``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "get_optimizer", "OPTIMIZERS"]


def _check_hyper(name, value, lo, hi=np.inf, lo_open=False):
    """Return ``float(value)`` if it is finite and in ``[lo, hi)`` (``(lo, hi)`` with
    ``lo_open``), else raise ValueError. NaN and inf are refused."""
    value = float(value)
    above = value > lo if lo_open else value >= lo
    if not (np.isfinite(value) and above and value < hi):
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g})"
        raise ValueError(f"{name} must be a finite number in {interval}; got {value!r}.")
    return value


class Optimizer:
    """Base class. Subclasses define ``_n_buffers``, ``_update(p, g, state, scratch)``.

    ``self.state[key] = {"t": steps taken, "buffers": [persistent arrays]}`` is
    what :meth:`state_dict` saves; scratch arrays (reused every step so the
    update allocates nothing) live apart and are never saved.
    """

    _n_buffers = 0      # persistent per-parameter arrays (moments, velocity)
    _n_scratch = 1      # temporary per-parameter arrays reused every step

    def __init__(self, lr):
        self.lr = _check_hyper("learning rate", lr, 0.0, lo_open=True)
        self.state = {}
        self._scratch = {}

    # -- public API -----------------------------------------------------------
    def step(self, params, grads):
        """Apply one update to every array in ``params`` (in place)."""
        for key, p in params.items():
            if key not in grads:
                raise KeyError(f"no gradient for parameter {key!r}; grads has "
                               f"{sorted(grads)}.")
            g = grads[key]
            if g.shape != p.shape:
                raise ValueError(f"gradient for {key!r} has shape {g.shape}, parameter has "
                                 f"{p.shape}.")
            state = self.state.get(key)
            if state is None or any(b.shape != p.shape or b.dtype != p.dtype
                                    for b in state["buffers"]):
                state = self.state[key] = {"t": 0, "buffers": [np.zeros_like(p) for _ in
                                                               range(self._n_buffers)]}
            scratch = self._scratch.get(key)
            if scratch is None or scratch[0].dtype != p.dtype \
                    or scratch[0].shape != self._scratch_shape(p):
                scratch = self._scratch[key] = self._make_scratch(p)
            state["t"] += 1
            self._update(p, g, state, scratch)

    def get_config(self):
        """Hyperparameters as a JSON-serialisable dict (``{"name": ..., ...}``)."""
        return {"name": type(self).__name__, **self._hyper()}

    def state_dict(self):
        """Return ``{"config": ..., "state": {key: {"t": int, "buffers": [arrays]}}}`` (copies)."""
        return {"config": self.get_config(),
                "state": {k: {"t": int(s["t"]), "buffers": [b.copy() for b in s["buffers"]]}
                          for k, s in self.state.items()}}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state from :meth:`state_dict`."""
        config = dict(state_dict["config"])
        if config.pop("name") != type(self).__name__:
            raise ValueError(f"state_dict is for {state_dict['config']['name']}, not "
                             f"{type(self).__name__}.")
        self.__init__(**config)
        self.state = {k: {"t": int(s["t"]), "buffers": [np.array(b) for b in s["buffers"]]}
                      for k, s in state_dict["state"].items()}
        return self

    def reset(self):
        """Forget all per-parameter state (moments and step counts)."""
        self.state = {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper().items())
        return f"{type(self).__name__}({args})"

    # -- subclass hooks ---------------------------------------------------------
    def _scratch_shape(self, p):
        return p.shape

    def _make_scratch(self, p):
        return [np.empty(self._scratch_shape(p), dtype=p.dtype) for _ in range(self._n_scratch)]

    def _hyper(self):
        raise NotImplementedError

    def _update(self, p, g, state, scratch):
        raise NotImplementedError


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

    With :math:`g' = g + \text{wd}\,p` and velocity :math:`v` (starts at 0)::

        v = momentum * v + g'
        d = g' + momentum * v      (nesterov)   or   d = v   (classical)
        p = p - lr * d

    (the PyTorch convention; with momentum 0 it is plain ``p -= lr * g'``).
    """

    _n_buffers = 1      # velocity
    _n_scratch = 2

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        self.momentum = _check_hyper("momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0.")
        self.weight_decay = _check_hyper("weight_decay", weight_decay, 0.0)

    def _hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update(self, p, g, state, scratch):
        (velocity,) = state["buffers"]
        d, tmp = scratch
        if self.weight_decay:
            np.multiply(p, self.weight_decay, out=d)
            d += g                                       # g' = g + wd p
        else:
            np.copyto(d, g)                              # g' = g
        if self.momentum:
            velocity *= self.momentum
            velocity += d                                # v = mu v + g'
            if self.nesterov:
                np.multiply(velocity, self.momentum, out=tmp)
                d += tmp                                 # d = g' + mu v
            else:
                np.copyto(d, velocity)                   # d = v
        d *= self.lr
        p -= d                                           # p = p - lr d


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015, Algorithm 1) with bias correction.

    For step :math:`t = 1, 2, \dots` (per parameter)::

        m = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g^2
        m_hat = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    ``eps`` is added **outside** the square root, to the bias-corrected
    ``sqrt(v_hat)`` (as in the paper and PyTorch; TensorFlow's default puts it on
    the uncorrected ``sqrt(v)``). ``weight_decay`` here is an L2 term added to
    the gradient (``g += wd * p``); for decoupled decay use :class:`AdamW`.

    The state buffers hold the moments without their constant factors,
    ``m~ = m / (1 - beta1)`` and ``v~ = v / (1 - beta2)`` (updated as
    ``m~ = beta1 m~ + g``, ``v~ = beta2 v~ + g^2``, two passes fewer per step;
    ``docs/derivations.md#optimisers``). Multiply by ``1 - beta1`` and
    ``1 - beta2`` to get the paper's ``m`` and ``v``.
    """

    _n_buffers = 2      # m, v
    _n_scratch = 2

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        self.beta1 = _check_hyper("beta1", beta1, 0.0, 1.0)
        self.beta2 = _check_hyper("beta2", beta2, 0.0, 1.0)
        self.eps = _check_hyper("eps", eps, 0.0, lo_open=True)
        self.weight_decay = _check_hyper("weight_decay", weight_decay, 0.0)

    def _hyper(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}

    # Adam works through large arrays in blocks of this many entries, so the ~12
    # elementwise passes of one block run in cache instead of streaming each
    # full array from memory 12 times.
    BLOCK = 65536

    def _scratch_shape(self, p):
        return p.shape if p.size <= self.BLOCK else (self.BLOCK,)

    def _gradient(self, p, g, buf):
        """The gradient the moments see: ``g + wd * p`` (L2 decay) written into ``buf``."""
        if not self.weight_decay:
            return g
        np.multiply(p, self.weight_decay, out=buf)
        buf += g
        return buf

    def _update(self, p, g, state, scratch):
        # the buffers hold m / (1 - beta1) and v / (1 - beta2) (docs/derivations.md#optimisers)
        m, v = state["buffers"]
        t = state["t"]
        # lr * m_hat / (sqrt(v_hat) + eps) = step * m~ / (sqrt(v~) + eps / c2), with
        # m_hat = (1 - beta1) m~ / (1 - beta1^t) and sqrt(v_hat) = c2 sqrt(v~)
        bias1 = 1.0 - self.beta1 ** t
        c2 = ((1.0 - self.beta2) / (1.0 - self.beta2 ** t)) ** 0.5
        eps_scaled = self.eps / c2
        step = self.lr * (1.0 - self.beta1) / (bias1 * c2)
        arrays = (p, g, m, v)
        if p.size <= self.BLOCK:                                # one block: the arrays as they are
            self._update_block(p, g, m, v, scratch[0], scratch[1], eps_scaled, step)
        elif all(a.flags.c_contiguous for a in arrays):
            flat = [a.reshape(-1) for a in arrays]              # views, no copies
            for start in range(0, p.size, self.BLOCK):
                block = [a[start:start + self.BLOCK] for a in flat]
                size = block[0].size
                self._update_block(*block, scratch[0][:size], scratch[1][:size],
                                   eps_scaled, step)
        else:                                                   # rare: strided arrays
            self._update_block(p, g, m, v, np.empty_like(p), np.empty_like(p),
                               eps_scaled, step)

    def _update_block(self, p, g, m, v, tmp, gbuf, eps_scaled, step):
        g = self._gradient(p, g, gbuf)
        m *= self.beta1
        m += g                                           # m~ = beta1 m~ + g
        v *= self.beta2
        np.square(g, out=tmp)                            # a unary loop, not g * g
        v += tmp                                         # v~ = beta2 v~ + g^2
        np.sqrt(v, out=tmp)
        tmp += eps_scaled                                # sqrt(v~) + eps / c2
        np.divide(m, tmp, out=tmp)
        tmp *= step
        p -= tmp                                         # p -= lr m_hat / (sqrt(v_hat) + eps)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Before the Adam step, ``p = p - lr * weight_decay * p``; the decay never
    enters the moments. Default ``weight_decay = 0.01``.
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)

    def _gradient(self, p, g, buf):
        if self.weight_decay:
            p *= 1.0 - self.lr * self.weight_decay       # decoupled: p = p - lr wd p
        return g


OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


def get_optimizer(spec):
    """Return a fresh optimizer from ``None`` (Adam(1e-3)), a name, a config dict or an instance.

    An instance is copied (its hyperparameters, not its state), so fitting one
    model never changes the object the user passed.
    """
    if spec is None:
        return Adam()
    if isinstance(spec, Optimizer):
        return type(spec)(**spec._hyper())
    if isinstance(spec, str):
        for name, cls in OPTIMIZERS.items():
            if name.lower() == spec.lower():
                return cls()
    if isinstance(spec, dict):
        config = dict(spec)
        name = config.pop("name", None)
        if name in OPTIMIZERS:
            return OPTIMIZERS[name](**config)
    raise ValueError(f"unknown optimizer {spec!r}; pass None, one of {sorted(OPTIMIZERS)}, a "
                     f"config dict with 'name', or an Optimizer instance.")
