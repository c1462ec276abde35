"""Gradient audit of every differentiable component (``npcae gradcheck``).

:func:`run_audit` checks each activation's first and second derivative, each
layer, each loss, the contractive penalty and every model configuration
against :mod:`npcae.gradcheck` in float64, and returns one row per check.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations, losses
from ._validation import check_random_state
from .gradcheck import ModelCheckResult, check_gradient, check_layer, check_model
from .gradcheck._engine import _check_tolerances
from .layers import Activation, Dense, Sequential, TiedDense
from .penalties import contractive_penalty

__all__ = ["AuditRow", "run_audit", "format_audit"]


@dataclass
class AuditRow:
    component: str
    method: str
    max_rel_error: float
    passed: bool
    detail: str = ""


def _check_rtol(rtol):
    return _check_tolerances(rtol, None)[0]


def _row(component, result, method):
    if hasattr(result, "max_rel_error"):           # one gradient
        worst = float(result.max_rel_error)
    else:                                          # a layer or model: every gradient's worst
        worst = max(float(r.max_rel_error) for r in result.values())
    return AuditRow(component, method, worst, bool(result.passed),
                    "" if result.passed else result.report())


def _activation_points(rng, act, shape=(4, 6)):
    a = rng.normal(0.0, 2.0, size=shape)
    if act.kinked:                       # keep clear of the kink at 0
        a = np.where(np.abs(a) < 0.1, 0.5, a)
    return a


def _audit_activations(rng, rtol):
    rows = []
    acts = [activations.sigmoid, activations.tanh, activations.relu,
            activations.LeakyReLU(0.2), activations.softplus, activations.identity]
    for act in acts:
        name = act.name if act.name != "leaky_relu" else "leaky_relu(0.2)"
        a = _activation_points(rng, act)
        d1 = act.derivative(a, act.value(a))
        d2 = act.second_derivative(a, act.value(a))
        r1 = check_gradient(lambda x: np.sum(act.value(x)), a, d1, method="richardson",
                            rtol=rtol)
        r2 = check_gradient(lambda x: np.sum(act.derivative(x, act.value(x))), a, d2,
                            method="richardson", rtol=rtol)
        rows.append(_row(f"activation {name}: phi'", r1, "richardson"))
        rows.append(_row(f"activation {name}: phi''", r2, "richardson"))
    return rows


def _audit_layers(rng, rtol):
    rows = []
    x = rng.normal(size=(5, 7))
    res = check_layer(Dense(7, 4, random_state=1), x, random_state=2, method="richardson",
                      rtol=rtol)
    rows.append(_row("layer Dense(7, 4)", res, "richardson"))
    for act in ("sigmoid", "tanh", "softplus", "identity"):
        res = check_layer(Activation(act), x, random_state=3, method="richardson", rtol=rtol)
        rows.append(_row(f"layer Activation({act})", res, "richardson"))
    for act in ("relu", "leaky_relu"):
        xk = np.where(np.abs(x) < 0.1, 0.5, x)
        res = check_layer(Activation(act), xk, random_state=3, method="central", rtol=rtol)
        rows.append(_row(f"layer Activation({act})", res, "central"))
    seq = Sequential(Dense(7, 5, random_state=4), Activation("tanh"),
                     Dense(5, 3, random_state=5), Activation("sigmoid"))
    res = check_layer(seq, x, random_state=6, method="richardson", rtol=rtol)
    rows.append(_row("layer Sequential(Dense-tanh-Dense-sigmoid)", res, "richardson"))
    enc = Dense(7, 4, random_state=7)
    tied = Sequential(enc, Activation("tanh"), TiedDense(enc))
    tied.modules[2].params["b"] = rng.normal(size=7)
    res = check_layer(tied, x, random_state=8, method="richardson", rtol=rtol)
    rows.append(_row("layer Sequential(Dense-tanh-TiedDense)", res, "richardson"))
    return rows


def _audit_losses(rng, rtol):
    rows = []
    target = rng.random((4, 6))
    pred = rng.uniform(0.05, 0.95, size=(4, 6))
    logits = rng.normal(size=(4, 6))
    cases = [("loss mse", losses.mse, pred), ("loss bce", losses.bce, pred),
             ("loss bce_with_logits", losses.bce_with_logits, logits),
             ("loss kl_divergence", losses.kl_divergence, pred),
             ("loss cosine", losses.cosine, logits)]
    for name, fn, p in cases:
        _, grad = fn(p, target)
        res = check_gradient(lambda q, fn=fn: fn(q, target)[0], p, grad, method="richardson",
                             rtol=rtol)
        rows.append(_row(name, res, "richardson"))
    labels = rng.integers(0, 6, size=4)
    _, grad = losses.softmax_cross_entropy(logits, labels)
    res = check_gradient(lambda q: losses.softmax_cross_entropy(q, labels)[0], logits, grad,
                         method="richardson", rtol=rtol)
    rows.append(_row("loss softmax_cross_entropy", res, "richardson"))
    return rows


def _audit_penalties(rng, rtol):
    rows = []
    X = rng.random((5, 8))
    W = rng.normal(size=(8, 4))
    b = rng.normal(size=4)
    for act in ("sigmoid", "tanh", "softplus"):
        _, grads = contractive_penalty(X, W, b, act)
        for pname, arr in (("W", W), ("b", b)):
            def f(v, pname=pname, act=act):
                args = {"W": W, "b": b, pname: v}
                return contractive_penalty(X, args["W"], args["b"], act)[0]
            res = check_gradient(f, arr, grads[pname], method="richardson", rtol=rtol)
            rows.append(_row(f"penalty contractive({act}) d/d{pname}", res, "richardson"))
    return rows


def _audit_models(rng, rtol):
    from .models import Autoencoder, ContractiveAutoencoder
    rows = []
    X = rng.random((6, 9))
    configs = [("sigmoid", "sigmoid", "bce"), ("tanh", "sigmoid", "bce"),
               ("sigmoid", "identity", "mse"), ("softplus", "identity", "mse")]
    for act, out, loss in configs:
        for tied in (True, False):
            model = ContractiveAutoencoder(n_hidden=4, lam=0.5, activation=act,
                                           output_activation=out, loss=loss, tied=tied,
                                           dtype=np.float64, random_state=0).initialize(9)
            res = check_model(model, X, method="richardson", rtol=rtol)
            tag = "tied" if tied else "untied"
            rows.append(_row(f"model CAE({act}->{out}, {loss}, {tag})", res, "richardson"))
    model = ContractiveAutoencoder(n_hidden=4, lam=0.5, output_activation="identity",
                                   loss="mse", dtype=np.float64, random_state=0).initialize(9)
    rows.append(_row("model CAE(sigmoid->identity, mse, tied)",
                     check_model(model, X, method="complex", rtol=rtol), "complex"))
    leaky = {"name": "leaky_relu", "alpha": 0.2}
    deep = [((5, 4, 3), "sigmoid", "sigmoid", "mse", "mean", False),   # the PyTorch text's shape
            ((5, 4, 3), leaky, "sigmoid", "mse", "mean", False),        # the TensorFlow text's
            ((6, 3), "tanh", "sigmoid", "bce", "sum", True),
            ((5, 4, 3, 2), "softplus", "identity", "mse", "sum", True)]
    for layers, act, out, loss, reduction, tied in deep:
        model = Autoencoder(layers=layers, activation=act, output_activation=out, loss=loss,
                            reduction=reduction, loss_weight=0.5, tied=tied, dtype=np.float64,
                            random_state=0).initialize(9)
        name = act if isinstance(act, str) else "leaky_relu(0.2)"
        tag = "tied" if tied else "untied"
        rows.append(_row(f"model Autoencoder({layers}, {name}->{out}, {loss}/{reduction}, {tag})",
                         check_model(model, X, method="richardson", rtol=rtol), "richardson"))
    rows += _audit_sparse(X, rtol)
    rows += _audit_denoising(X, rtol)
    rows += _audit_variational(X, rtol)
    rows += _audit_deep_contractive(X, rtol)
    rows += _audit_stacked(X, rtol)
    rows += _audit_classifier(X, rtol)
    return rows


def _audit_classifier(X, rtol):
    """MLPClassifier's softmax cross-entropy: random sigmoid and tanh networks of depth 1 and
    2, and one initialised from a CAE's encoder (``init_from``), the labels held fixed."""
    from .models import ContractiveAutoencoder, MLPClassifier
    rows = []
    y = np.arange(X.shape[0]) % 3
    cae = ContractiveAutoencoder(n_hidden=5, dtype=np.float64, random_state=7)
    cae.initialize(X.shape[1])
    configs = [("sigmoid", (5,), None), ("tanh", (6, 4), None), (None, None, cae)]
    for act, layers, source in configs:
        model = MLPClassifier(layers=layers, activation=act, init_from=source,
                              dtype=np.float64, random_state=0)
        model.classes_ = np.arange(3)
        model.initialize(X.shape[1])
        model.params["output.W"] = np.random.default_rng(40).normal(
            size=model.params["output.W"].shape)       # the default N(0, 0.01^2) is too flat
        res = check_model_with_noise(model, X, {"y": y}, rtol=rtol)
        what = "init_from a CAE (5)" if source is not None else f"{layers}, {act}"
        rows.append(_row(f"model MLPClassifier({what}, softmax cross-entropy, y fixed)", res,
                         "richardson"))
    return rows


def _audit_stacked(X, rtol):
    """StackedAutoencoder's fine-tuning objective (the engine with per-layer activations):
    a tied stack of CAEs, and an untied mix (CAE, tanh autoencoder, softplus sparse stage)."""
    from .models import (Autoencoder, ContractiveAutoencoder, SparseAutoencoder,
                         StackedAutoencoder)
    rows = []
    stacks = [("tied CAE 5-3", [ContractiveAutoencoder(n_hidden=5), ContractiveAutoencoder(
        n_hidden=3)]),
              ("CAE 6 / AE tanh 4 / SAE softplus 3, untied",
               [ContractiveAutoencoder(n_hidden=6, tied=False),
                Autoencoder(layers=(4,), activation="tanh", loss="mse",
                            output_activation="sigmoid"),
                SparseAutoencoder(layers=(3,), sparsity="l1", activation="softplus",
                                  loss="mse", output_activation="tanh")])]
    for name, stages in stacks:
        model = StackedAutoencoder(stages=stages, dtype=np.float64,
                                   random_state=0).initialize(X.shape[1])
        rows.append(_row(f"model StackedAutoencoder({name}, fine-tuning objective)",
                         check_model(model, X, method="richardson", rtol=rtol), "richardson"))
    return rows


def _audit_deep_contractive(X, rtol):
    """DeepContractiveAutoencoder: exact penalty at depths 1-3, the stochastic estimate with
    projections fixed, CAE+H with perturbations fixed (exact and stochastic)."""
    from .models import DeepContractiveAutoencoder
    rows = []
    rng = np.random.default_rng(30)
    projections = rng.standard_normal((3, X.shape[1]))
    perturbations = 0.3 * rng.standard_normal((2, *X.shape))
    configs = [((4,), "sigmoid", "exact", 0.0, False), ((6, 3), "sigmoid", "exact", 0.0, False),
               ((6, 4, 3), "tanh", "exact", 0.0, True), ((6, 3), "softplus", "stochastic", 0.0,
                                                         False),
               ((5,), "tanh", "exact", 0.8, False), ((6, 3), "sigmoid", "exact", 0.8, True),
               ((6, 4, 3), "sigmoid", "stochastic", 0.8, False)]
    for layers, act, penalty, gamma, tied in configs:
        model = DeepContractiveAutoencoder(layers=layers, lam=0.6, penalty=penalty,
                                           n_projections=3, gamma=gamma, sigma=0.3, n_corrupt=2,
                                           activation=act, tied=tied, dtype=np.float64,
                                           random_state=0).initialize(X.shape[1])
        noise, fixed = {}, []
        if penalty == "stochastic":
            noise["projections"] = projections
            fixed.append("projections fixed")
        if gamma:
            noise["perturbations"] = perturbations
            fixed.append("perturbations fixed")
        res = (check_model_with_noise(model, X, noise, rtol=rtol) if noise
               else check_model(model, X, method="richardson", rtol=rtol))
        extra = f", CAE+H gamma={gamma:g}" if gamma else ""
        tag = "tied" if tied else "untied"
        rows.append(_row(f"model DeepContractiveAutoencoder({layers}, {act}, {penalty}{extra}, "
                         f"{tag}{', ' if fixed else ''}{', '.join(fixed)})", res, "richardson"))
    return rows


def check_model_with_noise(model, X, noise, *, method="richardson", rtol=1e-7):
    """Every parameter's gradient of ``model.loss_and_grad(X, **noise)``, noise held fixed.

    :func:`npcae.gradcheck.check_model` calls ``loss_and_grad(X)`` with no noise
    argument, so for a model whose objective is random (the denoising model's
    ``corrupted=``, the VAE's ``eps=``) each parameter is checked here with
    :func:`npcae.gradcheck.check_gradient` on a closure that sets that parameter
    to the perturbed value, evaluates the objective on the SAME noise, and puts
    the original array back. The result has ``passed``, ``report()`` and one
    :class:`~npcae.gradcheck.GradCheckResult` per parameter, like ``check_model``'s.
    """
    loss0, grads = model.loss_and_grad(X, **noise)
    loss1, _ = model.loss_and_grad(X, **noise)
    if loss0 != loss1:
        raise ValueError(f"{type(model).__name__}.loss_and_grad is not deterministic with the "
                         f"given noise {sorted(noise)} (loss {loss0!r} then {loss1!r}).")
    results = {}
    for name in list(model.params):
        def f(value, name=name):
            saved = model.params[name]
            model.params[name] = value
            try:
                return model.loss_and_grad(X, **noise)[0]
            finally:
                model.params[name] = saved
        results[name] = check_gradient(f, np.array(model.params[name], dtype=np.float64),
                                       grads[name], method=method, rtol=rtol)
    given = ", ".join(f"{k}= fixed" for k in noise)
    return ModelCheckResult(results, title=type(model).__name__,
                            settings=f"method={method}, rtol={rtol:g}, X shape {X.shape}, "
                                     f"{given}")


def _audit_sparse(X, rtol):
    """SparseAutoencoder: KL (sigmoid code) and L1 (tanh code, so the sign matters), depth 1
    and 2, tied and untied."""
    from .models import SparseAutoencoder
    rows = []
    configs = [("kl", "sigmoid", "sigmoid", "bce"), ("l1", "tanh", "identity", "mse")]
    for sparsity, act, out, loss in configs:
        for layers in ((4,), (6, 3)):
            for tied in (True, False):
                model = SparseAutoencoder(layers=layers, sparsity=sparsity, beta=0.7, rho=0.1,
                                          activation=act, output_activation=out, loss=loss,
                                          tied=tied, dtype=np.float64,
                                          random_state=0).initialize(X.shape[1])
                tag = "tied" if tied else "untied"
                rows.append(_row(f"model SparseAutoencoder({sparsity}, {layers}, {act}->{out}, "
                                 f"{loss}, {tag})",
                                 check_model(model, X, method="richardson", rtol=rtol),
                                 "richardson"))
    return rows


def _audit_denoising(X, rtol):
    """DenoisingAutoencoder: each noise type, tied and untied, on a fixed corrupted array."""
    from .models import DenoisingAutoencoder
    rows = []
    configs = [("masking", 0.3, (4,), "sigmoid", "sigmoid", "bce"),
               ("gaussian", 0.2, (6, 3), "tanh", "identity", "mse"),
               ("salt_pepper", 0.3, (6, 3), "softplus", "sigmoid", "bce")]
    for i, (noise, level, layers, act, out, loss) in enumerate(configs):
        for tied in (True, False):
            model = DenoisingAutoencoder(layers=layers, noise=noise, noise_level=level,
                                         activation=act, output_activation=out, loss=loss,
                                         tied=tied, dtype=np.float64,
                                         random_state=0).initialize(X.shape[1])
            corrupted = model.corrupt(X, random_state=10 + i)
            tag = "tied" if tied else "untied"
            res = check_model_with_noise(model, X, {"corrupted": corrupted}, rtol=rtol)
            rows.append(_row(f"model DenoisingAutoencoder({noise} {level:g}, {layers}, "
                             f"{act}->{out}, {loss}, {tag}, corrupted fixed)", res,
                             "richardson"))
    return rows


def _audit_variational(X, rtol):
    """VariationalAutoencoder (when the library has it): each decoder, eps fixed."""
    from . import models
    VAE = getattr(models, "VariationalAutoencoder", None)
    if VAE is None:
        return []
    rows = []
    n_latent = 3
    eps = np.random.default_rng(20).standard_normal((X.shape[0], n_latent))
    configs = [("bernoulli", (5,), "relu"), ("bernoulli", (5,), "tanh"),
               ("gaussian", (6, 4), "softplus")]
    for decoder, layers, act in configs:
        model = VAE(layers=layers, n_latent=n_latent, activation=act, decoder=decoder,
                    dtype=np.float64, random_state=0).initialize(X.shape[1])
        res = check_model_with_noise(model, X, {"eps": eps}, rtol=rtol)
        rows.append(_row(f"model VariationalAutoencoder({decoder}, {layers}, {act}, "
                         f"n_latent={n_latent}, eps fixed)", res, "richardson"))
    return rows


def run_audit(random_state=0, rtol=1e-7):
    """Check every differentiable component; returns a list of :class:`AuditRow`.

    Parameters
    ----------
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of the evaluation points (the layers' and models' own weights
        use fixed seeds). The default 0 makes the audit reproducible.
    rtol : float
        Relative tolerance of every check (positive and finite).
    """
    rtol = _check_rtol(rtol)
    rng = check_random_state(random_state)
    rows = []
    for part in (_audit_activations, _audit_layers, _audit_losses, _audit_penalties,
                 _audit_models):
        rows.extend(part(rng, rtol))
    return rows


def format_audit(rows, rtol=1e-7):
    """The audit as a fixed-width text table, failures' reports appended."""
    width = max(len(r.component) for r in rows)
    lines = [f"{'component':<{width}}  {'method':<10}  {'max rel error':>13}  status",
             "-" * (width + 36)]
    for r in rows:
        lines.append(f"{r.component:<{width}}  {r.method:<10}  {r.max_rel_error:>13.2e}  "
                     f"{'ok' if r.passed else 'FAIL'}")
    n_fail = sum(not r.passed for r in rows)
    lines.append("-" * (width + 36))
    lines.append(f"{len(rows) - n_fail} passed, {n_fail} failed (float64, tolerance "
                 f"{rtol:g} relative)")
    for r in rows:
        if not r.passed:
            lines += ["", f"FAIL {r.component}:", r.detail]
    return "\n".join(lines)
