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


class Optimizer:
    """Base class. Subclasses define ``_update(key, p, g, state)``."""

    def __init__(self, lr):
        lr = float(lr)
        if not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning rate must be a finite number > 0; got {lr!r}.")
        self.lr = lr
        self.state = {}

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
            if state is None or state["buffers"][0].shape != p.shape \
                    or state["buffers"][0].dtype != p.dtype:
                state = self.state[key] = self._init_state(p)
            state["t"] += 1
            self._update(p, g, state)

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
    def _hyper(self):
        raise NotImplementedError

    def _init_state(self, p):
        raise NotImplementedError

    def _update(self, p, g, state):
        raise NotImplementedError


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

    With :math:`g' = g + \text{wd}\,p` and velocity :math:`v` (starts at 0)::

        v = momentum * v + g'
        d = g' + momentum * v      (nesterov)   or   d = v   (classical)
        p = p - lr * d

    (the PyTorch convention; with momentum 0 it is plain ``p -= lr * g'``).
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1); got {momentum!r}.")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0.")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay!r}.")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)

    def _hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _init_state(self, p):
        return {"t": 0, "buffers": [np.zeros_like(p), np.empty_like(p)]}  # velocity, scratch

    def _update(self, p, g, state):
        velocity, d = state["buffers"]
        np.copyto(d, g)                                  # d = g
        if self.weight_decay:
            d += self.weight_decay * p                   # g' = g + wd p
        if self.momentum:
            velocity *= self.momentum
            velocity += d                                # v = mu v + g'
            if self.nesterov:
                d += self.momentum * velocity            # d = g' + mu v
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
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {beta!r}.")
        if eps <= 0:
            raise ValueError(f"eps must be > 0; got {eps!r}.")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay!r}.")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)

    def _hyper(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}

    def _init_state(self, p):
        # first moment m, second moment v, one scratch array (no allocation per step)
        return {"t": 0, "buffers": [np.zeros_like(p), np.zeros_like(p), np.empty_like(p)]}

    def _decay(self, p, g, scratch):
        """Return the gradient the moments see (L2 decay adds ``wd * p``)."""
        if not self.weight_decay:
            return g
        np.multiply(p, self.weight_decay, out=scratch)
        scratch += g
        return scratch.copy()

    def _update(self, p, g, state):
        m, v, tmp = state["buffers"]
        t = state["t"]
        g = self._decay(p, g, tmp)
        b1, b2 = self.beta1, self.beta2
        np.subtract(g, m, out=tmp)
        tmp *= 1.0 - b1
        m += tmp                                         # m = b1 m + (1 - b1) g
        np.multiply(g, g, out=tmp)
        np.subtract(tmp, v, out=tmp)
        tmp *= 1.0 - b2
        v += tmp                                         # v = b2 v + (1 - b2) g^2
        # lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m / bias1, v_hat = v / bias2,
        # rewritten as step * m / (sqrt(v) + eps * sqrt(bias2)) to save two passes
        bias1 = 1.0 - b1 ** t
        root_bias2 = (1.0 - b2 ** t) ** 0.5
        np.sqrt(v, out=tmp)
        tmp += self.eps * root_bias2                     # sqrt(bias2) (sqrt(v_hat) + eps)
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr * root_bias2 / bias1
        p -= tmp                                         # p -= lr m_hat / (sqrt(v_hat) + eps)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Before the Adam step, ``p = p - lr * weight_decay * p``; the decay never
    enters the moments. Default ``weight_decay = 0.01``.
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps, weight_decay)

    def _decay(self, p, g, scratch):
        if self.weight_decay:
            p *= 1.0 - self.lr * self.weight_decay
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
