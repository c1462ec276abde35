"""Elementwise activation functions with their first and second derivatives.

Every activation ``phi`` is an object with three methods::

    h   = phi.value(a)                   # phi(a)
    d1  = phi.derivative(a, h)           # phi'(a)
    d2  = phi.second_derivative(a, h)    # phi''(a)

``a`` is the pre-activation and ``h = phi(a)`` its output. Both are passed to
the derivatives because several are cheaper in terms of the output (sigmoid:
``phi' = h (1 - h)``, ``phi'' = h (1 - h) (1 - 2 h)``; tanh: ``phi' = 1 - h^2``,
``phi'' = -2 h (1 - h^2)``). The contractive penalty needs ``phi'`` and ``phi''``
(see ``docs/derivations.md#contractive-penalty``).

Calling the object, ``phi(a)``, is the same as ``phi.value(a)``.

All values are numerically stable: no overflow warning for ``|a|`` up to
``1e4`` in float32 or float64. The derivations are in
``docs/derivations.md#activations``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ActivationFunction", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softplus",
           "Identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity",
           "get_activation", "ACTIVATIONS"]


class ActivationFunction:
    """Base class. Subclasses implement ``value``, ``derivative`` and
    ``second_derivative``; all take and return arrays of the same shape.

    ``kinked`` is True for activations that are not differentiable everywhere
    (relu, leaky_relu at 0); gradient checks treat points within a step of a
    kink specially (see :mod:`npcae.gradcheck`).
    """

    name = "base"
    kinked = False

    def value(self, a, out=None):
        raise NotImplementedError

    def derivative(self, a, h, out=None):
        """phi'(a) given ``a`` and ``h = phi(a)`` (written into ``out`` when given)."""
        raise NotImplementedError

    def second_derivative(self, a, h):
        raise NotImplementedError

    def __call__(self, a, out=None):
        return self.value(a, out=out)

    def get_config(self):
        """JSON-serialisable description: ``{"name": ...}`` plus any parameters."""
        return {"name": self.name}

    def __repr__(self):
        extra = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({extra})"

    def __eq__(self, other):
        return isinstance(other, ActivationFunction) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(tuple(sorted(self.get_config().items())))


class Sigmoid(ActivationFunction):
    r"""Logistic sigmoid :math:`\sigma(a) = 1 / (1 + e^{-a})`.

    Computed exactly as written, with overflow silenced: for very negative
    ``a``, ``exp(-a)`` overflows to ``inf`` and ``1 / (1 + inf) = 0`` is the
    correct limit, while moderate tails keep full relative precision (no
    ``1 - x`` cancellation). Four unmasked SIMD passes, and analytic in ``a`` so
    complex-step differentiation works through it.

    :math:`\sigma' = h(1-h)`, :math:`\sigma'' = h(1-h)(1-2h)`
    (``docs/derivations.md#activations``).
    """

    name = "sigmoid"

    def value(self, a, out=None):
        with np.errstate(over="ignore"):
            out = np.negative(a, out=out)
            np.exp(out, out=out)                # exp(-a), may be inf: that is fine
        np.add(out, 1.0, out=out)               # 1 + exp(-a)
        np.reciprocal(out, out=out)             # 1 / (1 + exp(-a))
        return out

    @staticmethod
    def value_via_tanh(a, out=None):
        r""":math:`\sigma(a) = (1 + \tanh(a/2)) / 2`: the training loop's sigmoid.

        Three SIMD passes and no overflow path (``exp`` takes a slow path on
        arguments that overflow), accurate to one ulp of 1 in *absolute* terms
        but not relatively in the far negative tail (``sigma(-30)`` keeps only
        about four correct digits of 9.3576e-14). Used where only absolute accuracy
        matters: the encoder output ``h`` (whose derivatives are the
        output-form ``h(1-h)`` anyway) and the BCE gradient ``sigma(z) - x``.
        Complex-step safe.
        """
        out = np.multiply(a, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        return out

    def derivative(self, a, h, out=None):
        if out is None:
            return h * (1.0 - h)
        np.subtract(1.0, h, out=out)
        out *= h
        return out

    def second_derivative(self, a, h):
        return h * (1.0 - h) * (1.0 - 2.0 * h)


class Tanh(ActivationFunction):
    r"""Hyperbolic tangent. :math:`\tanh' = 1 - h^2`, :math:`\tanh'' = -2h(1-h^2)`."""

    name = "tanh"

    def value(self, a, out=None):
        return np.tanh(a, out=out)

    def derivative(self, a, h, out=None):
        if out is None:
            return 1.0 - h * h
        np.multiply(h, h, out=out)
        np.subtract(1.0, out, out=out)
        return out

    def second_derivative(self, a, h):
        return -2.0 * h * (1.0 - h * h)


class ReLU(ActivationFunction):
    r"""Rectified linear unit :math:`\max(a, 0)`.

    :math:`\phi' = [a > 0]` (the value 0 is used at the kink ``a = 0``),
    :math:`\phi'' = 0` everywhere except the kink. A contractive penalty built on
    relu therefore has no gradient through ``phi'`` (only through ``W``).
    """

    name = "relu"
    kinked = True

    def value(self, a, out=None):
        return np.maximum(a, 0.0, out=out)

    def derivative(self, a, h, out=None):
        if out is None:
            return (np.asarray(a) > 0).astype(np.result_type(a, np.float32))
        np.greater(a, 0, out=out)
        return out

    def second_derivative(self, a, h):
        return np.zeros_like(a, dtype=np.result_type(a, np.float32))


class LeakyReLU(ActivationFunction):
    r"""Leaky ReLU :math:`a` for :math:`a > 0`, :math:`\alpha a` otherwise.

    :math:`\phi' = 1` for :math:`a > 0`, :math:`\alpha` otherwise; :math:`\phi'' = 0`.
    """

    name = "leaky_relu"
    kinked = True

    def __init__(self, alpha=0.01):
        alpha = float(alpha)
        if not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"leaky_relu alpha must be a finite number >= 0; got {alpha!r}.")
        self.alpha = alpha

    def value(self, a, out=None):
        a = np.asarray(a)
        if self.alpha <= 1.0 and a.dtype.kind == "f":
            out = np.multiply(a, self.alpha, out=out)   # max(a, alpha a) for 0 <= alpha <= 1
            return np.maximum(a, out, out=out)
        result = np.where(a > 0, a, self.alpha * a)
        if out is None:
            return result
        np.copyto(out, result)
        return out

    def derivative(self, a, h, out=None):
        a = np.asarray(a)
        dtype = np.result_type(a, np.float32)
        if out is None:
            return np.where(a > 0, 1.0, self.alpha).astype(dtype, copy=False)
        np.greater(a, 0, out=out)                       # 1 where a > 0, else 0
        out *= 1.0 - self.alpha
        out += self.alpha                               # 1 where a > 0, else alpha
        return out

    def second_derivative(self, a, h):
        return np.zeros_like(a, dtype=np.result_type(a, np.float32))

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


class Softplus(ActivationFunction):
    r"""Softplus :math:`\log(1 + e^a)`, computed as :math:`\max(a,0) + \log(1 + e^{-|a|})`.

    :math:`\phi' = \sigma(a)`, :math:`\phi'' = \sigma(a)(1 - \sigma(a))`.
    """

    name = "softplus"

    def value(self, a, out=None):
        a = np.asarray(a)
        res = np.log1p(np.exp(-np.abs(a)))
        return np.add(np.maximum(a, 0.0), res, out=out)

    def derivative(self, a, h, out=None):
        return sigmoid.value(a, out=out)

    def second_derivative(self, a, h):
        s = sigmoid.value(a)
        return s * (1.0 - s)


class Identity(ActivationFunction):
    r"""Identity :math:`\phi(a) = a`; :math:`\phi' = 1`, :math:`\phi'' = 0`."""

    name = "identity"

    def value(self, a, out=None):
        a = np.asarray(a)
        if out is None:
            return a.copy()
        np.copyto(out, a)
        return out

    def derivative(self, a, h, out=None):
        if out is None:
            return np.ones_like(a, dtype=np.result_type(a, np.float32))
        out.fill(1.0)
        return out

    def second_derivative(self, a, h):
        return np.zeros_like(a, dtype=np.result_type(a, np.float32))


sigmoid = Sigmoid()
tanh = Tanh()
relu = ReLU()
leaky_relu = LeakyReLU()
softplus = Softplus()
identity = Identity()

ACTIVATIONS = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU,
               "softplus": Softplus, "identity": Identity, "linear": Identity}


def get_activation(spec, **kwargs):
    """Return an :class:`ActivationFunction` from a name, a config dict or an instance.

    >>> get_activation("leaky_relu", alpha=0.2)
    LeakyReLU(alpha=0.2)
    """
    if isinstance(spec, ActivationFunction):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
        return get_activation(name, **spec, **kwargs)
    if isinstance(spec, str) and spec.lower() in ACTIVATIONS:
        return ACTIVATIONS[spec.lower()](**kwargs)
    raise ValueError(f"unknown activation {spec!r}; choose one of "
                     f"{sorted(ACTIVATIONS)} or pass an ActivationFunction instance.")
