"""ContractiveAutoencoder: exact gradients of the training objective, the estimator API,
behaviour (contraction, spectrum), determinism and input errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import npcae
from npcae import ContractiveAutoencoder, NotFittedError
from npcae.gradcheck import check_model, numerical_gradient
from npcae.losses import bce, mse

unit = st.floats(0.0, 1.0, allow_nan=False)
CONFIGS = [("bce", "sigmoid"), ("mse", "identity"), ("mse", "sigmoid")]


def make_model(n_hidden, lam, activation="sigmoid", loss="bce", output="sigmoid", tied=True,
               random_state=0, **kw):
    return ContractiveAutoencoder(n_hidden=n_hidden, lam=lam, activation=activation,
                                  output_activation=output, loss=loss, tied=tied, random_state=random_state,
                                  dtype=np.float64, verbose=0, **kw)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus"])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("loss,output", CONFIGS)
@given(n=st.integers(1, 8), d=st.integers(1, 12), k=st.integers(1, 12),
       lam=st.floats(0.0, 5.0), seed=st.integers(0, 2**16), data=st.data())
def test_loss_and_grad_passes_gradcheck(activation, tied, loss, output, n, d, k, lam, seed,
                                        data):
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = make_model(k, lam, activation, loss, output, tied, random_state=seed).initialize(d)
    result = check_model(model, X, method="richardson", rtol=1e-7)
    assert result.passed, result.report()


@given(n=st.integers(1, 6), d=st.integers(1, 10), k=st.integers(1, 8), data=st.data())
def test_loss_and_grad_complex_step_exact(n, d, k, data):
    # sigmoid encoder + linear decoder + MSE is real-analytic end to end
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = make_model(k, 0.7, "sigmoid", "mse", "identity", random_state=1).initialize(d)
    result = check_model(model, X, method="complex", rtol=1e-10)
    assert result.passed, result.report()


@pytest.mark.parametrize("loss,output", CONFIGS)
def test_loss_terms_equal_independent_formulas(loss, output, rng):
    X = rng.random((9, 7))
    model = make_model(4, 0.3, "tanh", loss, output).initialize(7)
    terms = model.loss_terms(X)
    R = model.reconstruct(X)
    ref_rec = {"bce": bce, "mse": mse}[loss](R, X)[0]
    J = model.jacobian(X)
    ref_pen = np.mean(np.sum(J * J, axis=(1, 2)))
    np.testing.assert_allclose(terms["reconstruction"], ref_rec, rtol=1e-10)
    np.testing.assert_allclose(terms["contractive"], ref_pen, rtol=1e-10)
    np.testing.assert_allclose(terms["total"], ref_rec + 0.3 * ref_pen, rtol=1e-10)
    loss_value, _ = model.loss_and_grad(X)
    assert loss_value == pytest.approx(terms["total"], rel=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus"])
def test_jacobian_matches_numerical_jacobian_of_transform(activation, rng):
    X = rng.random((3, 5))
    model = make_model(4, 0.1, activation).initialize(5)
    J = model.jacobian(X)
    for n in range(3):
        for j in range(4):
            num = numerical_gradient(lambda x: model.transform(x[None])[0, j], X[n].copy(),
                                     method="richardson")
            np.testing.assert_allclose(J[n, j], num, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(model.jacobian_norm(X), np.sqrt(np.sum(J**2, axis=(1, 2))),
                               rtol=1e-12)


def test_params_can_be_assigned_before_loss_and_grad(rng):
    d, k = 6, 3
    W, b, c = rng.normal(size=(d, k)), rng.normal(size=k), rng.normal(size=d)
    model = make_model(k, 0.5)
    model.params["W"], model.params["b"], model.params["c"] = W, b, c
    X = rng.random((4, d))
    value, grads = model.loss_and_grad(X)
    assert model.params["W"] is W                    # kept, not re-drawn
    A = X @ W + b
    H = 1 / (1 + np.exp(-A))
    R = 1 / (1 + np.exp(-(H @ W.T + c)))
    rec = -np.sum(X * np.log(R) + (1 - X) * np.log(1 - R)) / 4
    pen = np.sum((H * (1 - H)) ** 2 @ np.sum(W**2, axis=0)) / 4
    assert value == pytest.approx(rec + 0.5 * pen, rel=1e-10)
    assert set(grads) == {"W", "b", "c"}
    with pytest.raises(ValueError, match="shape"):
        model.params["W"] = rng.normal(size=(k, d))
        model.loss_and_grad(X)


# ----------------------------------------------------------------------- estimator API
def test_sklearn_conventions(rng):
    X = rng.random((120, 10)).astype(np.float32)
    model = ContractiveAutoencoder(n_hidden=4, epochs=2, random_state=0, verbose=0)
    assert model.fit(X) is model
    assert model.transform(X).shape == (120, 4)
    assert model.transform(X).dtype == np.float32
    assert model.inverse_transform(model.transform(X)).shape == (120, 10)
    np.testing.assert_array_equal(model.reconstruct(X),
                                  model.inverse_transform(model.transform(X)))
    np.testing.assert_array_equal(model.encode(X), model.transform(X))
    params = model.get_params()
    assert params["n_hidden"] == 4 and params["epochs"] == 2
    assert model.set_params(lam=0.5) is model and model.lam == 0.5
    with pytest.raises(ValueError, match="not a hyperparameter"):
        model.set_params(hidden=3)
    other = ContractiveAutoencoder(n_hidden=4, epochs=2, random_state=0, verbose=0)
    np.testing.assert_array_equal(other.fit_transform(X),
                                  ContractiveAutoencoder(n_hidden=4, epochs=2, random_state=0,
                                                         verbose=0).fit(X).transform(X))
    assert model.score(X) == pytest.approx(-model.loss_terms(X)["reconstruction"])
    assert set(model.history_) >= {"reconstruction", "contractive", "total", "samples_per_s"}
    assert len(model.history_["total"]) == 2
    assert set(model.params) == {"W", "b", "c"}
    untied = ContractiveAutoencoder(n_hidden=4, tied=False, epochs=1, random_state=0, verbose=0).fit(X)
    assert untied.params["W_dec"].shape == (4, 10)


def test_same_seed_identical_weights_different_seed_differs(rng):
    X = rng.random((250, 12))
    fit = lambda seed: ContractiveAutoencoder(n_hidden=5, epochs=3, random_state=seed,
                                              verbose=0).fit(X).params
    a, b, c = fit(3), fit(3), fit(4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["W"], c["W"])


def test_does_not_mutate_user_optimizer_or_data(rng):
    from npcae.optim import Adam
    X = rng.random((50, 6))
    X_copy = X.copy()
    opt = Adam(lr=0.01)
    ContractiveAutoencoder(n_hidden=3, optimizer=opt, epochs=1, random_state=0, verbose=0).fit(X)
    assert opt.state == {}
    np.testing.assert_array_equal(X, X_copy)


# ----------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).random((60, 8)).astype(np.float32)
    return ContractiveAutoencoder(n_hidden=3, epochs=1, random_state=0, verbose=0).fit(X)


def test_nan_and_inf_rejected(fitted):
    X = np.zeros((3, 8), np.float32)
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.transform(X)
    X[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        ContractiveAutoencoder(verbose=0).fit(X)


def test_wrong_feature_count(fitted):
    with pytest.raises(ValueError, match="expecting 8 features"):
        fitted.transform(np.zeros((2, 9), np.float32))
    with pytest.raises(ValueError, match="H has 2 features"):
        fitted.inverse_transform(np.zeros((2, 2), np.float32))


def test_bce_targets_outside_unit_interval(fitted):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ContractiveAutoencoder(verbose=0).fit(np.full((4, 3), 2.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fitted.loss_terms(np.full((2, 8), -0.5, np.float32))
    # MSE with a linear decoder has no such restriction
    ContractiveAutoencoder(n_hidden=2, loss="mse", output_activation="identity", epochs=1,
                           verbose=0).fit(np.full((4, 3), 2.0))


def test_uint8_images_suggest_dividing_by_255():
    with pytest.raises(TypeError, match="255"):
        ContractiveAutoencoder(verbose=0).fit(np.zeros((4, 784), np.uint8))


def test_empty_and_wrong_rank():
    with pytest.raises(ValueError, match="empty"):
        ContractiveAutoencoder(verbose=0).fit(np.zeros((0, 5)))
    with pytest.raises(ValueError, match="2-D"):
        ContractiveAutoencoder(verbose=0).fit(np.zeros(5))
    with pytest.raises(ValueError, match="flatten images"):
        ContractiveAutoencoder(verbose=0).fit(np.zeros((3, 28, 28)))


def test_unfitted_model_errors():
    model = ContractiveAutoencoder()
    for call in (model.transform, model.reconstruct, model.jacobian, model.save):
        with pytest.raises((NotFittedError, ValueError), match="fit"):
            call(np.zeros((2, 3)))


def test_bad_hyperparameters():
    X = np.zeros((4, 3))
    with pytest.raises(ValueError, match="lam"):
        ContractiveAutoencoder(lam=-1, verbose=0).fit(X)
    with pytest.raises(ValueError, match="n_hidden"):
        ContractiveAutoencoder(n_hidden=0, verbose=0).fit(X)
    with pytest.raises(ValueError, match="unknown activation"):
        ContractiveAutoencoder(activation="swish", verbose=0).fit(X)
    with pytest.raises(ValueError, match="output_activation='sigmoid'"):
        ContractiveAutoencoder(output_activation="identity", loss="bce", verbose=0).fit(X)
    with pytest.raises(ValueError, match="batch_size"):
        ContractiveAutoencoder(batch_size=0, verbose=0).fit(X)


# ----------------------------------------------------------------------- behaviour
@pytest.fixture(scope="module")
def digits():
    X, y = npcae.datasets.make_digits(1200, random_state=0)
    return X[:1000], X[1000:]


@pytest.fixture(scope="module")
def trained_pair(digits):
    X_train, _ = digits
    kw = dict(n_hidden=32, epochs=15, batch_size=50, random_state=0, verbose=0)
    with_pen = ContractiveAutoencoder(lam=3.0, **kw).fit(X_train)
    without = ContractiveAutoencoder(lam=0.0, **kw).fit(X_train)
    return with_pen, without


def test_penalty_shrinks_jacobian_norm(trained_pair, digits):
    with_pen, without = trained_pair
    _, X_test = digits
    norm_pen = with_pen.jacobian_norm(X_test).mean()
    norm_free = without.jacobian_norm(X_test).mean()
    assert norm_pen < 0.5 * norm_free, (norm_pen, norm_free)


def test_singular_values_mostly_below_one_with_a_few_large(trained_pair, digits):
    with_pen, _ = trained_pair
    _, X_test = digits
    svals = np.linalg.svd(with_pen.jacobian(X_test[:100]), compute_uv=False)   # (n, k)
    assert np.mean(svals < 1.0) > 0.9
    # the leading directions are much more sensitive than the typical one
    assert np.median(svals[:, 0] / np.median(svals, axis=1)) > 3.0


def test_training_reduces_reconstruction(digits):
    X_train, X_test = digits
    model = ContractiveAutoencoder(n_hidden=32, lam=0.1, epochs=8, random_state=0, verbose=0)
    model.fit(X_train)
    h = model.history_["reconstruction"]
    assert h[-1] < 0.6 * h[0]
    assert model.score(X_test) > -1.2 * h[-1]


# ------------------------------------------------ published bugs, in the model's own path
@given(n=st.integers(1, 6), d=st.integers(1, 8), k=st.integers(1, 6), data=st.data())
def test_model_penalty_is_mean_of_per_sample_penalties(n, d, k, data):
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = make_model(k, 0.3, "tanh").initialize(d)
    per_sample = [model.loss_terms(X[i:i + 1])["contractive"] for i in range(n)]
    assert model.loss_terms(X)["contractive"] == pytest.approx(np.mean(per_sample), rel=1e-12)


# Each published bug is injected where the fused ``_objective`` computes that quantity now:
#   D1, D2 = self._phi_derivatives(A, H, ws)      phi'(A), phi''(A)
#   D2 *= (2 lam / n) s;  G_A += D2;  G_A *= D1   dL/dA = D1 (dL/dH + lam (2/n) D2 s)
#   _add_scaled_columns(grads["W"], W, w_scale)   the direct term lam W (2/n) sum_n D1^2
# and each test asserts that the gradient check passes without the bug and fails with it for
# the bug's own reason: the parameters it must corrupt fail, the others pass, and the
# analytic gradient is off by exactly the amount the bug predicts (computed by hand here).
BUG_KW = dict(n_hidden=4, lam=0.5, dtype=np.float64, random_state=0, verbose=0)


def _same_weights(cls, model, **changes):
    """A ``cls`` with ``model``'s hyperparameters (and ``changes``) and a copy of its weights."""
    other = cls(**{**model.get_params(), **changes})
    for name, value in model.params.items():
        other.params[name] = value.copy()
    return other


def _numerical(model, name, X):
    """d loss / d params[name] by Richardson extrapolation, independent of the model's grads."""
    base = model.params[name]

    def loss_at(value):
        model.params[name] = value
        try:
            return model.loss_and_grad(X)[0]
        finally:
            model.params[name] = base

    return numerical_gradient(loss_at, base.copy(), method="richardson")


def _hand_sigmoid_terms(model, X):
    """By hand, for a sigmoid encoder: ``dP/dA = (2/n) phi' phi'' s`` and ``w_scale``."""
    W, b = model.params["W"], model.params["b"]
    H = 1.0 / (1.0 + np.exp(-(X @ W + b)))
    D1 = H * (1 - H)
    s = np.sum(W * W, axis=0)
    n = X.shape[0]
    return (2.0 / n) * D1 * D1 * (1 - 2 * H) * s, (2.0 / n) * np.sum(D1 * D1, axis=0)


class _HalfPenaltyGradient(ContractiveAutoencoder):
    """Bug: the penalty's gradient at the pre-activation is half the true one (the 2 of
    d(D1^2)/dA = 2 D1 D2 forgotten), injected into ``phi''`` before ``_objective`` scales it
    by ``lam (2/n) s`` in place."""

    def _phi_derivatives(self, A, H, ws):
        D1, D2 = super()._phi_derivatives(A, H, ws)
        D2 *= 0.5
        return D1, D2


@pytest.mark.parametrize("tied", [True, False])
def test_half_penalty_gradient_fails_by_half_the_penalty_term(tied, rng):
    X = rng.random((5, 7))
    good = ContractiveAutoencoder(activation="sigmoid", tied=tied, **BUG_KW).initialize(7)
    bad = _same_weights(_HalfPenaltyGradient, good)
    assert check_model(good, X, method="richardson").passed
    result = check_model(bad, X, method="richardson")
    # only the encoder's W and b see dL/dA; the decoder's gradients are right
    assert not result.passed and sorted(result.failures) == ["W", "b"], result.report()
    assert result["b"].max_rel_error > 1e-3
    (value_good, g_good), (value_bad, g_bad) = good.loss_and_grad(X), bad.loss_and_grad(X)
    assert value_bad == value_good                      # the value is untouched
    # off by exactly half the penalty's share: -lam/2 sum_n dP/dA, and X^T of it in W
    dP_dA, _ = _hand_sigmoid_terms(good, X)
    lam = BUG_KW["lam"]
    np.testing.assert_allclose(g_bad["b"] - g_good["b"], -0.5 * lam * dP_dA.sum(axis=0),
                               rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(g_bad["W"] - g_good["W"], -0.5 * lam * X.T @ dP_dA,
                               rtol=1e-9, atol=1e-13)
    # the ratio the name says: the buggy penalty share of dL/db over the true share is 1/2
    plain = _same_weights(ContractiveAutoencoder, good, lam=0.0).loss_and_grad(X)[1]
    np.testing.assert_allclose(g_bad["b"] - plain["b"], 0.5 * (g_good["b"] - plain["b"]),
                               rtol=1e-9, atol=1e-13)


class _SigmoidDerivativeForTanh(ContractiveAutoencoder):
    """Bug: sigmoid's ``h(1 - h)`` (and its ``phi''``) used for a tanh encoder. In the fused
    path ``phi'`` serves both the backward pass through the encoder and the penalty, so the
    whole pre-activation gradient comes out scaled by ``h(1-h) / (1-h^2) = h / (1+h)``."""

    def _phi_derivatives(self, A, H, ws):
        D1 = H * (1 - H)
        return D1, D1 * (1 - 2 * H)


@pytest.mark.parametrize("tied", [True, False])
def test_sigmoid_derivative_for_tanh_fails_by_h_over_1_plus_h(tied, rng):
    X = rng.random((5, 7))
    good = ContractiveAutoencoder(activation="tanh", tied=tied, **BUG_KW).initialize(7)
    bad = _same_weights(_SigmoidDerivativeForTanh, good)
    assert check_model(good, X, method="richardson").passed
    result = check_model(bad, X, method="richardson")
    assert not result.passed and sorted(result.failures) == ["W", "b"], result.report()
    # the penalty's value is the sigmoid formula's, not ||J_f||_F^2; the reconstruction is right
    W, b = good.params["W"], good.params["b"]
    H = np.tanh(X @ W + b)
    s = np.sum(W * W, axis=0)
    J = good.jacobian(X)
    terms_good, terms_bad = good.loss_terms(X), bad.loss_terms(X)
    assert terms_good["contractive"] == pytest.approx(np.mean(np.sum(J * J, axis=(1, 2))),
                                                      rel=1e-12)
    assert terms_bad["contractive"] == pytest.approx(np.mean((H * (1 - H)) ** 2 @ s), rel=1e-12)
    assert terms_bad["reconstruction"] == pytest.approx(terms_good["reconstruction"], rel=1e-14)
    # one sample: dL/db_j is dL/dA_j itself, so analytic / numerical = h_j / (1 + h_j) per unit
    x1 = X[:1]
    ratio = bad.loss_and_grad(x1)[1]["b"] / _numerical(bad, "b", x1)
    h1 = np.tanh(x1 @ W + b)[0]
    np.testing.assert_allclose(ratio, h1 / (1 + h1), rtol=1e-6)


def test_direct_penalty_term_dropped_fails_in_w_only(rng, monkeypatch):
    """Bug: ``W`` held constant inside ``s_j = sum_i W_ij^2`` (the direct term dropped)."""
    from npcae.models import cae as cae_module
    X = rng.random((5, 7))
    good = ContractiveAutoencoder(activation="sigmoid", **BUG_KW).initialize(7)
    assert check_model(good, X, method="richardson").passed
    g_good = good.loss_and_grad(X)[1]
    monkeypatch.setattr(cae_module, "_add_scaled_columns", lambda out, W, scale, ws: None)
    result = check_model(good, X, method="richardson")
    assert not result.passed and result.failures == ["W"], result.report()
    _, w_scale = _hand_sigmoid_terms(good, X)
    g_bad = good.loss_and_grad(X)[1]
    np.testing.assert_allclose(g_bad["W"] - g_good["W"],
                               -BUG_KW["lam"] * good.params["W"] * w_scale,
                               rtol=1e-9, atol=1e-13)
    for name in ("b", "c"):
        np.testing.assert_array_equal(g_bad[name], g_good[name])


@pytest.mark.parametrize("d,k,block", [(7, 3, 6), (7, 3, 3), (5, 4, 1000), (9, 2, 1)])
def test_row_blocked_direct_term_equals_full_product(d, k, block):
    """``_add_scaled_columns`` (out += W * scale, a block of rows at a time) covers every
    row exactly once, including a short last block."""
    from npcae._workspace import Workspace
    from npcae.models.cae import _add_scaled_columns
    rng = np.random.default_rng(d * k + block)
    W, out, scale = rng.normal(size=(d, k)), rng.normal(size=(d, k)), rng.normal(size=k)
    expected = out + W * scale
    _add_scaled_columns(out, W, scale, Workspace(), block_entries=block)
    np.testing.assert_array_equal(out, expected)
