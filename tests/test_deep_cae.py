"""DeepContractiveAutoencoder: the exact whole-encoder penalty, its stochastic estimate and CAE+H.

Values are checked against Jacobians computed by finite differences of the encoder (never
against the model's own analytic Jacobian alone); gradients against the gradient checker in
float64; the classic mistakes (upper layers' second-derivative terms dropped, the direct
weight term dropped) must make the checker fail.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import npcae
from npcae import ContractiveAutoencoder, DeepContractiveAutoencoder
from npcae import penalties
from npcae.audit import check_model_with_noise
from npcae.gradcheck import check_model

unit = st.floats(0.0, 1.0, allow_nan=False, width=64)
ACTIVATIONS = ["sigmoid", "tanh", "softplus"]


def _numerical_jacobian(model, X, h=1e-5):
    """``dH/dx`` of the whole encoder by central differences, shape (n, k, d)."""
    n, d = X.shape
    J = np.empty((n, model._n_codes(), d))
    for i in range(d):
        step = np.zeros(d)
        step[i] = h
        J[:, :, i] = (model._encode(X + step) - model._encode(X - step)) / (2 * h)
    return J


def _model(widths, activation, d, seed, **kw):
    return DeepContractiveAutoencoder(layers=widths, activation=activation, dtype=np.float64,
                                      random_state=seed, **kw).initialize(d)


def _widths(data, depth):
    return tuple(data.draw(st.lists(st.integers(1, 5), min_size=depth, max_size=depth)))


# ---------------------------------------------------------------------- the exact penalty
@settings(max_examples=30, deadline=None)
@given(depth=st.integers(1, 4), data=st.data(), activation=st.sampled_from(ACTIVATIONS),
       seed=st.integers(0, 2 ** 16), chunk=st.sampled_from([None, 1, 2]))
def test_exact_penalty_is_the_squared_norm_of_the_numerical_jacobian(depth, data, activation,
                                                                     seed, chunk):
    widths = _widths(data, depth)
    n, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = _model(widths, activation, d, seed, lam=1.0, chunk_size=chunk)
    J = _numerical_jacobian(model, X)
    expected = np.sum(J ** 2, axis=(1, 2))
    np.testing.assert_allclose(model.loss_terms(X)["contractive"], expected.mean(),
                               rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(model._extra_sample_terms(X)["contractive"][0], expected,
                               rtol=1e-7, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(1, 4), data=st.data(), activation=st.sampled_from(ACTIVATIONS),
       tied=st.booleans(), lam=st.floats(0.0, 3.0), seed=st.integers(0, 2 ** 16),
       chunk=st.sampled_from([None, 1, 2]))
def test_exact_penalty_gradient_passes_the_checker(depth, data, activation, tied, lam, seed,
                                                   chunk):
    widths = _widths(data, depth)
    n, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = _model(widths, activation, d, seed, lam=lam, tied=tied, chunk_size=chunk)
    result = check_model(model, X, method="richardson", rtol=1e-6)
    assert result.passed, result.report()


@settings(max_examples=20, deadline=None)
@given(data=st.data(), activation=st.sampled_from(ACTIVATIONS), seed=st.integers(0, 2 ** 16))
def test_one_layer_equals_the_closed_form(data, activation, seed):
    k, n, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)), data.draw(
        st.integers(1, 6))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = _model((k,), activation, d, seed, lam=1.0)
    W, b = model.params["encoder.0.W"], model.params["encoder.0.b"]
    value, grads = penalties.contractive_penalty(X, W, b, activation)
    np.testing.assert_allclose(model.loss_terms(X)["contractive"], value, rtol=1e-12)
    # and the fused one-layer CAE with the same encoder gives the same term
    cae = ContractiveAutoencoder(n_hidden=k, activation=activation, dtype=np.float64,
                                 random_state=0).initialize(d)
    cae.params["W"], cae.params["b"] = W.copy(), b.copy()
    np.testing.assert_allclose(cae.loss_terms(X)["contractive"], value, rtol=1e-12)
    # the general code-side chain agrees with the closed form too (B = diag(D_0))
    _, D, E = penalties.encoder_derivatives(X, [W], [b], [activation])
    B = D[0][:, :, None] * np.eye(k)
    np.testing.assert_allclose(np.einsum("nkh,nkh->n", B @ (W.T @ W), B).mean(), value,
                               rtol=1e-12)
    # its gradient through the deep-penalty functions equals contractive_penalty's
    grad_W = [np.zeros_like(W)]
    _, grad_A = penalties.deep_contractive_terms(D, E, [W], 1.0 / n, grad_W)
    np.testing.assert_allclose(grad_W[0] + X.T @ grad_A[0], grads["W"], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad_A[0].sum(axis=0), grads["b"], rtol=1e-10, atol=1e-14)


def test_chunking_changes_nothing():
    X = np.random.default_rng(0).random((9, 7))
    whole = _model((5, 4, 3), "tanh", 7, 0, lam=0.5)
    _, g_whole = whole.loss_and_grad(X)
    for chunk in (1, 2, 4):
        part = _model((5, 4, 3), "tanh", 7, 0, lam=0.5, chunk_size=chunk)
        loss, g = part.loss_and_grad(X)
        assert loss == pytest.approx(whole.loss_and_grad(X)[0], rel=1e-13)
        for key in g:
            np.testing.assert_allclose(g[key], g_whole[key], rtol=1e-11, atol=1e-15)


def test_penalty_chunk_rows_bounds_the_work_arrays():
    rows = penalties.penalty_chunk_rows(64, [784, 256, 64], 4)
    assert rows * 64 * 784 * 4 <= 16 << 20 < (rows + 1) * 64 * 784 * 4
    assert penalties.penalty_chunk_rows(64, [784], 4, chunk_size=7) == 7


# --------------------------------------------------------------------- the classic bugs
def _break(monkeypatch, bug):
    from npcae.models import deep_cae
    if bug == "upper second derivatives dropped":       # the D_i of layers i >= 1 held constant
        original = penalties._times_second_derivative

        def buggy(grad_D, E):
            out = original(grad_D, E)
            return [out[0]] + [np.zeros_like(g) for g in out[1:]]
        monkeypatch.setattr(penalties, "_times_second_derivative", buggy)
    else:                                                # "W_0 held constant in G = W_0^T W_0"
        original = penalties.deep_contractive_terms

        def buggy(D, E, weights, scale=1.0, grad_weights=None, *args):
            if grad_weights is None:
                return original(D, E, weights, scale, None, *args)
            extra = [np.zeros_like(g) for g in grad_weights]
            total, grad_A = original(D, E, weights, scale, extra, *args)
            for g, e in list(zip(grad_weights, extra))[1:]:   # W_0's only direct term is dropped
                g += e
            return total, grad_A
        monkeypatch.setattr(deep_cae, "deep_contractive_terms", buggy)


@pytest.mark.parametrize("bug", ["upper second derivatives dropped", "direct W_0 term dropped"])
def test_the_classic_mistakes_fail_the_checker(monkeypatch, bug):
    X = np.random.default_rng(1).random((5, 6))
    model = _model((4, 3), "sigmoid", 6, 3, lam=2.0)
    assert check_model(model, X, method="richardson", rtol=1e-6).passed
    _break(monkeypatch, bug)
    assert not check_model(model, X, method="richardson", rtol=1e-6).passed


# ------------------------------------------------------------------ the stochastic estimate
@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 4), data=st.data(), activation=st.sampled_from(ACTIVATIONS),
       m=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_stochastic_estimate_value_and_gradient_for_given_projections(depth, data, activation,
                                                                      m, seed):
    widths = _widths(data, depth)
    n, d = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    V = data.draw(arrays(np.float64, (m, d), elements=st.floats(-2, 2)))
    model = _model(widths, activation, d, seed, lam=1.3, penalty="stochastic",
                   n_projections=m)
    J = _numerical_jacobian(model, X)
    expected = np.mean(np.sum(np.einsum("nkd,md->mnk", J, V) ** 2, axis=2))   # mean_n (1/m)...
    np.testing.assert_allclose(model.loss_terms(X, projections=V)["contractive"], expected,
                               rtol=1e-7, atol=1e-12)
    result = check_model_with_noise(model, X, {"projections": V}, rtol=1e-6)
    assert result.passed, result.report()


@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
def test_stochastic_estimate_is_unbiased(projection):
    rng = np.random.default_rng(0)
    X = rng.random((6, 12))
    model = _model((8, 5, 3), "sigmoid", 12, 0, lam=1.0, penalty="stochastic",
                   n_projections=2, projection=projection)
    exact = float(np.mean(np.sum(_numerical_jacobian(model, X) ** 2, axis=(1, 2))))
    draws = np.array([model.loss_terms(X, projections=model._draw_projections(rng, 12,
                                                                            np.float64))
                      ["contractive"] for _ in range(4000)])
    standard_error = draws.std(ddof=1) / np.sqrt(len(draws))
    assert abs(draws.mean() - exact) < 3 * standard_error
    assert standard_error > 0


def test_projections_are_shared_by_the_batch_and_have_identity_second_moment():
    model = _model((4,), "sigmoid", 5, 0, penalty="stochastic", n_projections=3)
    rng = np.random.default_rng(0)
    V = np.concatenate([model._draw_projections(rng, 5, np.float64) for _ in range(3000)])
    np.testing.assert_allclose(V.T @ V / len(V), np.eye(5), atol=0.05)
    assert set(np.unique(V)) == {-1.0, 1.0}
    assert model._noise_shapes(np.zeros((10, 5))) == {"projections": (3, 5)}


# ---------------------------------------------------------------------------------- CAE+H
@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 3), data=st.data(), activation=st.sampled_from(ACTIVATIONS),
       c=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
       penalty=st.sampled_from(["exact", "stochastic"]), chunk=st.sampled_from([None, 1]))
def test_cae_h_value_and_gradient_for_given_perturbations(depth, data, activation, c, seed,
                                                          penalty, chunk):
    widths = _widths(data, depth)
    n, d = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    eps = data.draw(arrays(np.float64, (c, n, d), elements=st.floats(-0.5, 0.5)))
    model = _model(widths, activation, d, seed, lam=0.4, gamma=1.7, n_corrupt=c,
                   penalty=penalty, n_projections=2, chunk_size=chunk)
    J = _numerical_jacobian(model, X)
    J_tilde = np.stack([_numerical_jacobian(model, X + eps[i]) for i in range(c)])
    expected = np.mean(np.sum((J[None] - J_tilde) ** 2, axis=(2, 3)))
    noise = {"perturbations": eps}
    if penalty == "stochastic":
        noise["projections"] = data.draw(arrays(np.float64, (2, d), elements=st.floats(-2, 2)))
    np.testing.assert_allclose(model.loss_terms(X, **noise)["curvature"], expected,
                               rtol=1e-6, atol=1e-11)
    result = check_model_with_noise(model, X, noise, rtol=1e-6)
    assert result.passed, result.report()


def test_cae_h_term_falls_during_training_compared_with_gamma_zero():
    X, _ = npcae.datasets.make_digits(600, random_state=0)
    eps = 0.3 * np.random.default_rng(9).standard_normal((2, 300, X.shape[1]))
    kw = dict(layers=(48, 16), lam=0.05, sigma=0.3, n_corrupt=2, epochs=6, batch_size=50,
              random_state=0)
    without = DeepContractiveAutoencoder(gamma=0.0, **kw).fit(X)
    with_h = DeepContractiveAutoencoder(gamma=2.0, **kw).fit(X)
    probe = DeepContractiveAutoencoder(gamma=1.0, **{**kw, "epochs": 0})

    def curvature(model):
        probe.params = {k: v.astype(np.float64) for k, v in model.params.items()}
        probe.n_features_in_ = X.shape[1]
        probe.dtype = np.float64
        return probe.loss_terms(X[:300], perturbations=eps)["curvature"]

    assert curvature(with_h) < 0.7 * curvature(without)
    curve = with_h.history_["curvature"]
    assert curve[-1] < curve[0]


# ------------------------------------------------------------------- noise and the blocks
def test_noise_arguments_are_checked():
    X = np.random.default_rng(0).random((4, 5))
    exact = _model((3, 2), "sigmoid", 5, 0)
    with pytest.raises(TypeError, match="no noise arguments"):
        exact.loss_and_grad(X, projections=np.ones((4, 5)))
    stoch = _model((3, 2), "sigmoid", 5, 0, penalty="stochastic", n_projections=4, gamma=1.0,
                   n_corrupt=2)
    with pytest.raises(ValueError, match=r"projections must have shape \(4, 5\)"):
        stoch.loss_and_grad(X, projections=np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"perturbations must have shape \(2, 4, 5\)"):
        stoch.loss_and_grad(X, perturbations=np.ones((4, 5)))


def test_loss_terms_slices_perturbations_by_rows_and_shares_projections(monkeypatch):
    from npcae.models import base
    rng = np.random.default_rng(0)
    X = rng.random((10, 5))
    model = _model((3, 2), "tanh", 5, 0, penalty="stochastic", n_projections=2, gamma=0.5,
                   n_corrupt=3)
    noise = dict(projections=rng.standard_normal((2, 5)),
                 perturbations=0.2 * rng.standard_normal((3, 10, 5)))
    whole = model.loss_terms(X, **noise)
    monkeypatch.setattr(base, "_EVAL_BLOCK_BYTES", 3 * 5 * 8)     # blocks of 3 rows
    blocked = model.loss_terms(X, **noise)
    for key in whole:
        assert blocked[key] == pytest.approx(whole[key], rel=1e-12)
    assert whole["total"] == pytest.approx(model.loss_and_grad(X, **noise)[0], rel=1e-12)


def test_score_samples_is_never_random_and_uses_the_exact_penalty():
    X = np.random.default_rng(0).random((8, 6))
    model = _model((4, 3), "sigmoid", 6, 0, lam=0.7, penalty="stochastic", gamma=1.0)
    first, second = model.score_samples(X), model.score_samples(X)
    np.testing.assert_array_equal(first, second)
    exact = model.set_params(penalty="exact", gamma=0.0)
    np.testing.assert_allclose(-first.mean(), exact.loss_terms(X)["total"], rtol=1e-12)


# ------------------------------------------------------------------- training and files
def test_training_on_digits_reduces_the_loss_and_the_penalty_contracts():
    X, _ = npcae.datasets.make_digits(800, random_state=0)
    kw = dict(layers=(64, 16), epochs=5, batch_size=50, random_state=0)
    plain = DeepContractiveAutoencoder(lam=0.0, **kw).fit(X)
    cae = DeepContractiveAutoencoder(lam=4.0, **kw).fit(X)
    stoch = DeepContractiveAutoencoder(lam=4.0, penalty="stochastic", **kw).fit(X)
    for model in (plain, cae, stoch):
        assert model.history_["total"][-1] < model.history_["total"][0]
        assert model.transform(X).shape == (800, 16) and model.transform(X).dtype == np.float32
    jac_plain = np.mean(plain.jacobian_norm(X) ** 2)
    assert np.mean(cae.jacobian_norm(X) ** 2) < 0.3 * jac_plain          # measured 0.03
    assert np.mean(stoch.jacobian_norm(X) ** 2) < 0.3 * jac_plain        # measured 0.13


@pytest.mark.parametrize("kw", [dict(), dict(penalty="stochastic", gamma=0.5, n_corrupt=2),
                                dict(tied=True, gamma=0.3, n_corrupt=1, layers=(6,))])
def test_save_load_and_resume_are_exact(tmp_path, kw):
    X = np.random.default_rng(0).random((40, 7))
    kw = {"layers": (5, 3), "batch_size": 8, "random_state": 2, "lam": 0.3, **kw}
    once = DeepContractiveAutoencoder(epochs=3, **kw).fit(X)
    first = DeepContractiveAutoencoder(epochs=1, warm_start=True, **kw).fit(X)
    first.save(tmp_path / "m.npz")
    again = npcae.load(tmp_path / "m.npz")
    assert type(again) is DeepContractiveAutoencoder
    assert again.get_params() == first.get_params()
    again.set_params(epochs=2).fit(X)
    for key in once.params:
        np.testing.assert_array_equal(again.params[key], once.params[key])
    assert again.history_["contractive"] == once.history_["contractive"]


@pytest.mark.parametrize("bad,match", [
    (dict(penalty="approx"), "penalty must be one of"),
    (dict(projection="sparse"), "projection must be one of"),
    (dict(n_projections=0), "n_projections"),
    (dict(gamma=-1.0), "gamma"),
    (dict(sigma=0.0), "sigma"),
    (dict(n_corrupt=1.5), "n_corrupt"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(lam=float("nan")), "lam"),
])
def test_bad_hyperparameters_are_refused(bad, match):
    X = np.random.default_rng(0).random((5, 4))
    with pytest.raises((ValueError, TypeError), match=match):
        DeepContractiveAutoencoder(layers=(3,), **bad).fit(X)
