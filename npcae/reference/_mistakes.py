r"""Published gradient mistakes, each recomputed on a fixture's own inputs, weights and noise.

:func:`mistake_gradients` returns, for one fixture, the gradient (and where it is
determined, the loss) that an implementation with each known mistake computes.
The verifier compares another implementation's gradient with each and names the
one it matches. What each mistake computes, relative to the right gradient, is
derived in ``docs/derivations.md``, section "Reference fixtures and the mistakes
gallery". With ``T`` a penalty term (its weight included), ``R`` the
reconstruction term and ``n`` the batch size:

=====================  ================================================================
key                    the gradient it gives
=====================  ================================================================
penalty_x2             dR + 2 dT                       (the factor 2 of a square twice)
penalty_x0.5           dR + dT / 2                     (the factor 2 of a square dropped)
sum_not_mean           n (dR + dT)                     (everything summed over the batch)
penalty_sum_not_mean   dR + n dT                       (the penalty alone summed)
penalty_missing        dR                              (its weight floored to 0)
penalty_w_detached     dL - dT/dW|direct               (W constant inside the penalty)
wrong_activation_...   dR + d[lam mean_n sum_j u(h)^2 s_j]   (u = the other activation's
                                                        derivative written in h)
kl_per_activation      dR + d[beta mean_n sum_j KL(rho || h_nj)]
sigma_exp_logvar       the VAE's gradient with Z = MU + exp(LV) EPS
transposed             dL with each square weight's gradient transposed
=====================  ================================================================
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MISTAKES", "Candidate", "mistake_gradients"]

MISTAKES = {
    "penalty_x2": ("the {term} term's gradient is 2x the right one",
                   "the factor 2 from differentiating a square applied twice (or the term "
                   "counted twice)"),
    "penalty_x0.5": ("the {term} term's gradient is half the right one",
                     "the factor 2 from differentiating a square dropped"),
    "sum_not_mean": ("the whole objective is summed over the batch instead of averaged",
                     "every gradient is n = {n} times too large"),
    "penalty_sum_not_mean": ("the {term} term is summed over the batch while the "
                             "reconstruction is averaged",
                             "the {term} term's gradient is n = {n} times too large"),
    "penalty_missing": ("the {term} term's gradient is missing",
                        "its weight became 0, e.g. an integer division (1/1000 in Python 2, "
                        "or int(...)) floored it"),
    "penalty_w_detached": ("W is held constant (detached) inside the contractive penalty",
                           "the penalty's direct gradient through the column norms "
                           "||W_j||^2 is missing; only its path through phi'(a) remains"),
    "wrong_activation_derivative": ("the contractive penalty uses {wrong}'s derivative for a "
                                    "{right} encoder",
                                    "phi'(a) written as {formula} of h = {right}(a)"),
    "kl_per_activation": ("the sparse KL is applied to each activation instead of the "
                          "batch mean",
                          "beta mean_n sum_j KL(rho || h_nj) instead of beta sum_j "
                          "KL(rho || mean_n h_nj)"),
    "sigma_exp_logvar": ("sigma is taken as exp(logvar) instead of exp(logvar / 2)",
                         "the sample is Z = MU + exp(LV) * EPS (the KL keeps the right "
                         "variance)"),
    "transposed": ("a square weight's gradient is transposed",
                   "{names} compared in the other layout (PyTorch's Linear.weight is "
                   "(out, in), npcae's W is (in, out)); square matrices cannot be told "
                   "apart by shape"),
}
"""key -> (title, detail) templates of every mistake the verifier can name."""


@dataclass
class Candidate:
    """One mistake recomputed on a fixture: its gradient, and its loss when that is determined."""

    key: str
    title: str
    detail: str
    grads: dict
    loss: float | None = None
    term: str | None = None


def _text(key, **fields):
    title, detail = MISTAKES[key]
    return title.format(**fields), detail.format(**fields)


def _combine(fixture, scales):
    """``sum_t scales[t] * term_grads[t]`` (terms not named keep scale 1)."""
    return {name: sum(scales.get(t, 1.0) * tg[name] for t, tg in fixture.term_grads.items())
            for name in fixture.grads}


def _term_loss(fixture, scales):
    return float(sum(scales.get(t, 1.0) * v for t, v in fixture.terms.items()))


def _encoder_backward(model, X, grad_code):
    """Gradients of every parameter when ``dT/d code = grad_code(H)`` (layered models'
    encoder on the engine; the decoder's gradients stay 0)."""
    grads = {k: np.zeros_like(v) for k, v in model.params.items()}
    encoder, _, bindings = model._network(X.dtype)
    for prefix, layer in bindings:
        layer.bind(model.params, grads, prefix)
    H = encoder.forward(X).copy()
    value, G = grad_code(H)
    encoder.backward(G)
    return value, grads


def _kl_per_activation(fixture, model):
    """``T = beta (1/n) sum_n sum_j KL(rho || h_nj)``, whose gradient at the code is
    ``dT/dh_nj = (beta/n)(-rho/h + (1-rho)/(1-h))``; ``docs/derivations.md``, section
    "Reference fixtures and the mistakes gallery"."""
    beta, rho, n = float(model.beta), float(model.rho), fixture.n_samples

    def grad_code(H):
        h = np.clip(H, 1e-7, 1 - 1e-7)
        value = np.sum(rho * np.log(rho / h) + (1 - rho) * np.log((1 - rho) / (1 - h))) / n
        return beta * value, (beta / n) * (-rho / h + (1 - rho) / (1 - h))

    value, pen = _encoder_backward(model, fixture.X, grad_code)
    grads = {k: fixture.term_grads["reconstruction"][k] + pen[k] for k in fixture.grads}
    return grads, fixture.terms["reconstruction"] + value


def _wrong_activation(fixture, model):
    """The CAE penalty with ``u(h)``, the other activation's derivative written in ``h``:
    tanh encoder, ``u = h (1 - h)``, ``du/da = (1 - 2h)(1 - h^2)``; sigmoid encoder,
    ``u = 1 - h^2``, ``du/da = -2h h (1 - h)``. Returns None for other activations."""
    from ..penalties import contractive_terms
    right = model._phi.name
    if right not in ("sigmoid", "tanh"):
        return None
    X, W, b, lam = fixture.X, model.params["W"], model.params["b"], float(model.lam)
    h = model._phi.value(X @ W + b)
    if right == "tanh":
        u, du, wrong, formula = h * (1 - h), (1 - 2 * h) * (1 - h * h), "sigmoid", "h (1 - h)"
    else:
        u, du, wrong, formula = 1 - h * h, -2 * h * h * (1 - h), "tanh", "1 - h^2"
    value, grad_a, w_scale = contractive_terms(W, u, du)
    grads = {k: v.copy() for k, v in fixture.term_grads["reconstruction"].items()}
    grads["W"] += lam * (X.T @ grad_a + W * w_scale)
    grads["b"] += lam * grad_a.sum(axis=0)
    title, detail = _text("wrong_activation_derivative", wrong=wrong, right=right,
                          formula=formula)
    return Candidate("wrong_activation_derivative", title, detail, grads,
                     fixture.terms["reconstruction"] + lam * float(value), "contractive")


def _w_detached(fixture, model):
    """``dL - dT/dW|direct``: the exact penalty's terms that reach each encoder ``W`` directly
    (not through its pre-activation), from :func:`npcae.penalties.deep_contractive_terms`."""
    from ..penalties import deep_contractive_terms, encoder_derivatives
    if type(model).__name__ == "ContractiveAutoencoder":
        names, acts = ["W"], [model._phi]
        biases = [model.params["b"]]
    else:
        if model.penalty != "exact" or float(model.gamma) != 0.0:
            return None
        acts = model._activations()[0]
        names = [f"encoder.{i}.W" for i in range(len(acts))]
        biases = [model.params[f"encoder.{i}.b"] for i in range(len(acts))]
    weights = [model.params[k] for k in names]
    _, D, E = encoder_derivatives(fixture.X, weights, biases, acts)
    direct = [np.zeros_like(w) for w in weights]
    deep_contractive_terms(D, E, weights, scale=float(model.lam) / fixture.n_samples,
                           grad_weights=direct)
    grads = {k: v.copy() for k, v in fixture.grads.items()}
    for name, part in zip(names, direct):
        grads[name] -= part
    title, detail = _text("penalty_w_detached")
    return Candidate("penalty_w_detached", title, detail, grads, fixture.loss, "contractive")


def _sigma_exp_logvar(fixture, model):
    from ._fixtures import vae_term_gradients
    rec, kl, grads = vae_term_gradients(model, fixture.X, fixture.noise["eps"], sigma_power=1.0)
    title, detail = _text("sigma_exp_logvar")
    return Candidate("sigma_exp_logvar", title, detail, grads, rec + kl, "kl")


def _transposed(fixture):
    square = [k for k, g in fixture.grads.items() if g.ndim == 2 and g.shape[0] == g.shape[1]]
    if not square:
        return None
    grads = {k: (g.T.copy() if k in square else g) for k, g in fixture.grads.items()}
    title, detail = _text("transposed", names=", ".join(square))
    return Candidate("transposed", title, detail, grads, fixture.loss)


def mistake_gradients(fixture, model=None):
    """Every known mistake that applies to ``fixture``'s model, recomputed on its inputs.

    Parameters
    ----------
    fixture : Fixture
    model : npcae model, optional
        ``fixture.build_model()`` (rebuilt when not given).

    Returns
    -------
    list of Candidate
        Mistakes whose effect is zero here (a penalty of weight 0) are left out.
    """
    model = fixture.build_model() if model is None else model
    cls, n = fixture.model_class, fixture.n_samples
    out = []
    if n > 1:
        title, detail = _text("sum_not_mean", n=n)
        out.append(Candidate("sum_not_mean", title, detail,
                             {k: n * g for k, g in fixture.grads.items()}, n * fixture.loss))
    for term in fixture.penalty_terms:
        if not any(np.any(g) for g in fixture.term_grads[term].values()):
            continue                                     # weight 0: nothing to get wrong
        for key, scale, loss in (("penalty_x2", 2.0, None), ("penalty_x0.5", 0.5, None),
                                 ("penalty_sum_not_mean", float(n), True),
                                 ("penalty_missing", 0.0, True)):
            if key == "penalty_sum_not_mean" and n == 1:
                continue
            title, detail = _text(key, term=term, n=n)
            out.append(Candidate(key, title, detail, _combine(fixture, {term: scale}),
                                 _term_loss(fixture, {term: scale}) if loss else None, term))
    lam_on = float(getattr(model, "lam", 0.0) or 0.0) > 0
    if cls in ("ContractiveAutoencoder", "DeepContractiveAutoencoder") and lam_on:
        found = _w_detached(fixture, model)
        if found is not None:
            out.append(found)
    if cls == "ContractiveAutoencoder" and lam_on:
        found = _wrong_activation(fixture, model)
        if found is not None:
            out.append(found)
    if cls == "SparseAutoencoder" and model.sparsity == "kl" and float(model.beta) > 0:
        grads, loss = _kl_per_activation(fixture, model)
        title, detail = _text("kl_per_activation")
        out.append(Candidate("kl_per_activation", title, detail, grads, loss, "sparsity"))
    if cls == "VariationalAutoencoder":
        out.append(_sigma_exp_logvar(fixture, model))
    found = _transposed(fixture)
    if found is not None:
        out.append(found)
    return out
