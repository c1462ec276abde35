"""Losses, each returning ``(value, grad)`` with ``grad = d value / d prediction``.

One convention everywhere (``../shared/DESIGN.md``): the per-sample loss is
**summed over features** and **averaged over the batch**::

    value = (1/n) * sum_n loss(pred_n, target_n)

so every gradient carries a factor ``1/n``. Arguments are ``(pred, target)``,
both ``(n_samples, n_features)``; ``softmax_cross_entropy`` takes integer labels.
Derivations: ``docs/derivations.md#losses``.
"""
from __future__ import annotations

import math

import numpy as np

from ._validation import as_float_array, check_in_unit_interval
from .activations import sigmoid

__all__ = ["mse", "bce", "bce_with_logits", "bce_with_logits_into", "kl_divergence", "cosine",
           "softmax_cross_entropy", "get_loss", "per_sample_loss", "LOSSES"]


def _check_pred_target(pred, target):
    """``pred`` and ``target`` as validated 2-D float arrays of the same shape."""
    pred = as_float_array(pred, "pred", ndim=2)
    target = as_float_array(target, "target", ndim=2)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape; got {pred.shape} and "
                         f"{target.shape}.")
    return pred, target


def mse(pred, target):
    r"""Squared error summed over features, averaged over the batch.

    .. math:: L = \frac1n \sum_n \sum_i (r_{ni} - x_{ni})^2, \qquad
              \frac{\partial L}{\partial r} = \frac2n (r - x)

    Returns ``(value, grad)``; ``grad`` has the shape of ``pred``.
    """
    pred, target = _check_pred_target(pred, target)
    diff = pred - target
    n = pred.shape[0]
    return float(np.sum(diff * diff) / n), (2.0 / n) * diff


def _bce_eps(dtype):
    return 1e-7 if np.dtype(dtype) == np.float32 else 1e-12


def bce(pred, target, eps=None):
    r"""Binary cross-entropy on probabilities ``pred`` in [0, 1].

    .. math:: L = -\frac1n \sum_n \sum_i [x \log r + (1-x)\log(1-r)], \qquad
              \frac{\partial L}{\partial r} = \frac1n \frac{r - x}{r(1-r)}

    ``pred`` is clipped to ``[eps, 1 - eps]`` (``eps`` = 1e-7 in float32, 1e-12 in
    float64) so ``pred`` exactly 0 or 1 gives a large but finite loss; the
    gradient is evaluated at the clipped value. Prefer :func:`bce_with_logits`
    when you have the logits: it is exact and stable for any logit.
    ``target`` must lie in [0, 1].
    """
    pred, target = _check_pred_target(pred, target)
    check_in_unit_interval(target, "target")
    check_in_unit_interval(pred, "pred")
    eps = _bce_eps(pred.dtype) if eps is None else eps
    r = np.clip(pred, eps, 1.0 - eps)
    n = pred.shape[0]
    value = -np.sum(target * np.log(r) + (1.0 - target) * np.log1p(-r)) / n
    grad = (r - target) / (r * (1.0 - r)) / n
    return float(value), grad


def bce_with_logits(logits, target):
    r"""Binary cross-entropy from logits ``z`` (``r = sigmoid(z)``), stable for any ``z``.

    .. math:: L = \frac1n \sum_n \sum_i [\mathrm{softplus}(z) - x z], \qquad
              \frac{\partial L}{\partial z} = \frac1n (\sigma(z) - x)

    using :math:`-x\log\sigma(z) - (1-x)\log(1-\sigma(z)) = \mathrm{softplus}(z) - xz`
    and :math:`\mathrm{softplus}(z) = \max(z,0) + \log(1+e^{-|z|})`.
    """
    logits, target = _check_pred_target(logits, target)
    check_in_unit_interval(target, "target")
    grad = np.empty_like(logits)
    value = bce_with_logits_into(logits, target, grad, np.empty_like(logits))
    return value, grad


def bce_with_logits_into(z, x, grad, scratch, precise=True, ones=None):
    """Allocation-free core of :func:`bce_with_logits` (no validation; used in training).

    Writes ``dL/dz`` into ``grad`` and returns the value; ``scratch`` is a float
    array shaped like ``z``. ``grad`` may be ``z`` itself: every sum that needs
    the logits is taken before the gradient is written. The sum of
    ``max(z, 0)`` is taken as ``(sum z + sum |z|) / 2`` and the sum of ``x z``
    as a dot product, so no pass needs a mask. ``ones`` (a ones vector with
    ``z.shape[-1]`` entries) turns each full sum into a BLAS matrix-vector
    product plus a sum over rows, which beats ``np.sum``'s pairwise reduction.

    ``precise=False`` (training) builds everything from one ``t = tanh(z / 2)``:
    ``sigma(z) = (1 + t) / 2`` and ``log(1 + exp(-|z|)) = log 2 - log1p(|t|)``
    (from ``exp(-|z|) = (1 - |t|) / (1 + |t|)``). Both are exact in absolute
    terms (a few ulps of 1 per entry), which is all a summed loss and the
    gradient ``(sigma(z) - x) / n`` need, and it saves the ``exp`` pass. See
    ``docs/derivations.md#losses``.
    """
    n = z.shape[0]
    if ones is None:
        total = np.sum
    else:
        def total(a):
            return np.sum(a @ ones)
    # the sums over z first: grad may be z
    np.abs(z, out=scratch)
    sum_abs = float(total(scratch))                     # sum |z|
    sum_z = float(total(z))                             # sum z
    sum_xz = float(np.vdot(x, z))                       # sum x z
    if precise:
        np.negative(scratch, out=scratch)
        np.exp(scratch, out=scratch)                    # exp(-|z|), in (0, 1]
        np.log1p(scratch, out=scratch)                  # log(1 + exp(-|z|))
        sum_log1p_exp = float(total(scratch))
        sigmoid.value(z, out=grad)                      # sigma(z)
    else:
        np.multiply(z, 0.5, out=grad)
        np.tanh(grad, out=grad)                         # t = tanh(z / 2)
        np.abs(grad, out=scratch)
        np.log1p(scratch, out=scratch)                  # log1p(|t|)
        sum_log1p_exp = z.size * math.log(2.0) - float(total(scratch))
        grad *= 0.5
        grad += 0.5                                     # sigma(z) = (1 + t) / 2
    sum_softplus = sum_log1p_exp + 0.5 * (sum_z + sum_abs)
    value = (sum_softplus - sum_xz) / n                 # (1/n) sum [softplus(z) - x z]
    grad -= x
    grad *= 1.0 / n                                     # (sigma(z) - x) / n
    return value


def kl_divergence(pred, target, eps=None):
    r"""KL divergence of the prediction from the target, :math:`\sum_i x_i \log(x_i / \hat x_i)`.

    .. math:: L = \frac1n \sum_n \sum_i x_{ni} \log\frac{x_{ni}}{\hat x_{ni}}, \qquad
              \frac{\partial L}{\partial \hat x} = -\frac1n \frac{x}{\hat x}

    Terms with :math:`x = 0` contribute 0 (the limit of :math:`x\log x`). Both
    arrays must be non-negative; ``pred`` is floored at ``eps`` where the
    target is positive. (Rows are not renormalised: pass distributions.)
    """
    pred, target = _check_pred_target(pred, target)
    if pred.min() < 0 or target.min() < 0:
        raise ValueError("kl_divergence needs non-negative pred and target (distributions).")
    eps = _bce_eps(pred.dtype) if eps is None else eps
    q = np.maximum(pred, eps)
    n = pred.shape[0]
    positive = target > 0
    safe_x = np.where(positive, target, 1.0)
    value = np.sum(np.where(positive, target * (np.log(safe_x) - np.log(q)), 0.0)) / n
    grad = -target / q / n
    return float(value), grad


def cosine(pred, target, eps=None):
    r"""Cosine-similarity loss :math:`1 - \cos(\hat x, x)` per sample, averaged.

    With :math:`u = \hat x`, :math:`v = x`, :math:`c = u\cdot v / (\|u\|\|v\|)`:

    .. math:: \frac{\partial c}{\partial u} = \frac{v}{\|u\|\|v\|} - c\,\frac{u}{\|u\|^2},
              \qquad \frac{\partial L}{\partial u} = -\frac1n \frac{\partial c}{\partial u}

    Norms are floored at ``eps`` (rows of zeros give cos = 0, not NaN).
    """
    pred, target = _check_pred_target(pred, target)
    eps = _bce_eps(pred.dtype) if eps is None else eps
    n = pred.shape[0]
    nu = np.maximum(np.sqrt(np.sum(pred * pred, axis=1, keepdims=True)), eps)
    nv = np.maximum(np.sqrt(np.sum(target * target, axis=1, keepdims=True)), eps)
    c = np.sum(pred * target, axis=1, keepdims=True) / (nu * nv)
    value = np.sum(1.0 - c) / n
    dc_du = target / (nu * nv) - c * pred / (nu * nu)
    return float(value), -dc_du / n


def softmax_cross_entropy(logits, labels):
    r"""Softmax cross-entropy from logits ``z`` (n, C) and integer labels ``y`` (n,).

    .. math:: L = \frac1n \sum_n [\log\sum_c e^{z_{nc}} - z_{n y_n}], \qquad
              \frac{\partial L}{\partial z} = \frac1n(\mathrm{softmax}(z) - \mathrm{onehot}(y))

    The log-sum-exp subtracts the row maximum first, so any finite logit is safe.
    """
    logits = as_float_array(logits, "logits", ndim=2)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers in [0, {logits.shape[1]}); got dtype "
                        f"{labels.dtype}.")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match logits "
                         f"{logits.shape}; got {labels.shape}.")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}); got range "
                         f"[{labels.min()}, {labels.max()}].")
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    log_prob = shifted - np.log(sum_exp)
    rows = np.arange(n)
    value = -np.sum(log_prob[rows, labels]) / n
    grad = exp / sum_exp
    grad[rows, labels] -= 1.0
    return float(value), grad / n


LOSSES = {"mse": mse, "bce": bce, "bce_with_logits": bce_with_logits,
          "kl": kl_divergence, "kl_divergence": kl_divergence, "cosine": cosine}


def per_sample_loss(name, pred, target):
    """Each row's loss, shape ``(n,)``: the terms whose mean the loss ``name`` returns.

    ``name`` is one of :data:`LOSSES` or a callable loss. Named losses use the
    same formulas (and clipping) as their batch versions, vectorised over rows;
    a callable is evaluated one row at a time (slow; for custom losses only).
    No validation: used by models on already-validated arrays.
    """
    if callable(name):
        return np.array([name(pred[i:i + 1], target[i:i + 1])[0] for i in range(len(pred))])
    loss = get_loss(name)
    if loss is mse:
        diff = pred - target
        return np.einsum("ij,ij->i", diff, diff)
    if loss is bce:
        eps = _bce_eps(pred.dtype)
        r = np.clip(pred, eps, 1.0 - eps)
        return -np.sum(target * np.log(r) + (1.0 - target) * np.log1p(-r), axis=1)
    if loss is bce_with_logits:
        return np.sum(np.logaddexp(0.0, pred) - target * pred, axis=1)
    if loss is kl_divergence:
        eps = _bce_eps(pred.dtype)
        q = np.maximum(pred, eps)
        positive = target > 0
        safe_x = np.where(positive, target, 1.0)
        return np.sum(np.where(positive, target * (np.log(safe_x) - np.log(q)), 0.0), axis=1)
    if loss is cosine:
        eps = _bce_eps(pred.dtype)
        nu = np.maximum(np.sqrt(np.sum(pred * pred, axis=1)), eps)
        nv = np.maximum(np.sqrt(np.sum(target * target, axis=1)), eps)
        return 1.0 - np.sum(pred * target, axis=1) / (nu * nv)
    raise ValueError(f"no per-sample form for loss {name!r}.")


def get_loss(name):
    """Return the reconstruction loss function registered under ``name``."""
    if callable(name):
        return name
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}.")
    return LOSSES[name]
