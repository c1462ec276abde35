"""The closed-form contractive penalty: value against explicit Jacobians, gradients
against the checker, and the known bugs of published CAE code each made to fail."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npcae.activations import get_activation, sigmoid
from npcae.gradcheck import check_gradient, numerical_gradient
from npcae.penalties import contractive_penalty, contractive_terms, encoder_jacobian

SMOOTH = ["sigmoid", "tanh", "softplus"]
floats = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


@st.composite
def problems(draw, square=False):
    n = draw(st.integers(1, 8))
    d = draw(st.integers(1, 12))
    k = d if square else draw(st.integers(1, 12))
    X = draw(arrays(np.float64, (n, d), elements=floats))
    W = draw(arrays(np.float64, (d, k), elements=floats))
    b = draw(arrays(np.float64, (k,), elements=floats))
    return X, W, b


def explicit_penalty(X, W, b, activation):
    """(1/n) sum_n ||J_n||_F^2 with J_n the encoder's Jacobian by central differences."""
    phi = get_activation(activation)
    total = 0.0
    for x in X:
        J = np.empty((W.shape[1], W.shape[0]))
        for i in range(W.shape[0]):
            step = np.zeros_like(x)
            step[i] = 1e-6
            J[:, i] = (phi(((x + step) @ W) + b) - phi(((x - step) @ W) + b)) / 2e-6
        total += np.sum(J * J)
    return total / X.shape[0]


def penalty_value_matches(fn, X, W, b, activation, rtol=1e-6):
    value = fn(X, W, b, activation)[0]
    ref = explicit_penalty(X, W, b, activation)
    return abs(value - ref) <= rtol * max(abs(ref), 1e-8)


def penalty_grads_pass(fn, X, W, b, activation):
    _, grads = fn(X, W, b, activation)
    rW = check_gradient(lambda W_: fn(X, W_, b, activation)[0], W, grads["W"],
                        method="richardson", rtol=1e-7)
    rb = check_gradient(lambda b_: fn(X, W, b_, activation)[0], b, grads["b"],
                        method="richardson", rtol=1e-7)
    return rW.passed and rb.passed


# ------------------------------------------------------------------------ the real thing
@pytest.mark.parametrize("activation", SMOOTH)
@given(problem=problems())
def test_closed_form_equals_explicit_jacobian_norm(activation, problem):
    X, W, b = problem
    assert penalty_value_matches(contractive_penalty, X, W, b, activation)


@pytest.mark.parametrize("activation", SMOOTH)
@given(problem=problems())
def test_explicit_jacobian_matches_numerical(activation, problem):
    X, W, b = problem
    phi = get_activation(activation)
    J = encoder_jacobian(X, W, b, activation)
    assert J.shape == (X.shape[0], W.shape[1], W.shape[0])
    for n, x in enumerate(X):
        for j in range(W.shape[1]):
            grad_hj = numerical_gradient(lambda x_: phi(x_ @ W + b)[j], x, method="richardson")
            np.testing.assert_allclose(J[n, j], grad_hj, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("activation", SMOOTH)
@given(problem=problems())
def test_penalty_gradients_pass_the_checker(activation, problem):
    X, W, b = problem
    # phi' and phi'' are computed from h (sigmoid: h(1-h), tanh: 1-h^2), which keeps full
    # *relative* precision only while phi' >> eps; deep in saturation (tanh at |a| = 12:
    # 1 - h^2 ~ 1e-10 from h = 1 - 5e-11) they are exact only in absolute terms (see
    # test_activations.py::test_derivatives_absolute_accuracy_in_the_tails). Relative
    # gradient checks are meaningful inside that domain: |a| <= 8 (tanh'(8) = 4.5e-7).
    assume(np.abs(X @ W + b).max() <= 8.0)
    assert penalty_grads_pass(contractive_penalty, X, W, b, activation)


@given(problem=problems())
def test_penalty_complex_step_sigmoid(problem):
    # sigmoid and the closed form are analytic: the complex step is exact to ~1e-13
    X, W, b = problem
    _, grads = contractive_penalty(X, W, b, "sigmoid")

    def f(W_):
        A = X @ W_ + b
        H = sigmoid(A)
        D = H * (1 - H)
        return np.sum((D * D) @ np.sum(W_ * W_, axis=0)) / X.shape[0]

    res = check_gradient(f, W, grads["W"], method="complex", rtol=1e-10)
    assert res.passed, res.report()


@given(problem=problems(), activation=st.sampled_from(SMOOTH))
def test_batch_penalty_is_mean_of_per_sample(problem, activation):
    X, W, b = problem
    value, grads = contractive_penalty(X, W, b, activation)
    per = [contractive_penalty(X[i:i + 1], W, b, activation) for i in range(len(X))]
    np.testing.assert_allclose(value, np.mean([p[0] for p in per]), rtol=1e-12)
    np.testing.assert_allclose(grads["W"], np.mean([p[1]["W"] for p in per], axis=0),
                               rtol=1e-10, atol=1e-14)


def test_terms_never_build_the_jacobian(rng):
    # memory O(n k + d k): outputs have exactly those shapes
    d1, d2 = rng.random((5, 3)), rng.random((5, 3))
    value, grad_a, w_scale = contractive_terms(rng.random((7, 3)), d1, d2)
    assert np.isscalar(value) and grad_a.shape == (5, 3) and w_scale.shape == (3,)


def test_bad_shapes_raise(rng):
    with pytest.raises(ValueError, match="shapes do not fit"):
        contractive_penalty(rng.random((4, 5)), rng.random((6, 3)), rng.random(3))
    with pytest.raises(ValueError, match="NaN"):
        contractive_penalty(np.full((2, 2), np.nan), rng.random((2, 2)), rng.random(2))


# --------------------------------------------------- known bugs of published CAE code
# Each buggy variant must fail the same check the real implementation passes.
def _sigmoid_parts(X, W, b, activation):
    phi = get_activation(activation)
    A = X @ W + b
    H = phi(A)
    return phi, A, H, phi.derivative(A, H), phi.second_derivative(A, H)


def bug_factor_two(X, W, b, activation):
    value, grads = contractive_penalty(X, W, b, activation)
    return value, {k: 0.5 * g for k, g in grads.items()}      # forgot the 2 of d(D^2)


def bug_batch_summed(X, W, b, activation):
    value, grads = contractive_penalty(X, W, b, activation)
    n = X.shape[0]
    return value * n, {k: g * n for k, g in grads.items()}


def bug_w_constant(X, W, b, activation):
    _, _, _, d1, d2 = _sigmoid_parts(X, W, b, activation)
    value, grad_a, _ = contractive_terms(W, d1, d2)
    return value, {"W": X.T @ grad_a, "b": grad_a.sum(0)}     # dropped the direct term


def bug_sigmoid_derivative_for_tanh(X, W, b, activation):
    A = X @ W + b
    H = np.tanh(A)
    d1 = H * (1 - H)                                        # sigmoid's formula on tanh
    d2 = d1 * (1 - 2 * H)
    value, grad_a, w_scale = contractive_terms(W, d1, d2)
    return value, {"W": X.T @ grad_a + W * w_scale, "b": grad_a.sum(0)}


def bug_wrong_axis(X, W, b, activation):
    _, _, _, d1, d2 = _sigmoid_parts(X, W, b, activation)
    n = X.shape[0]
    row_sq = np.sum(W * W, axis=1)                          # sum over j instead of i
    value = float(np.sum((d1 * d1) @ row_sq)) / n
    grad_a = (2.0 / n) * d1 * d2 * row_sq
    return value, {"W": X.T @ grad_a + W * ((2.0 / n) * (d1 * d1).sum(0)), "b": grad_a.sum(0)}


@pytest.fixture
def square_problem():
    rng = np.random.default_rng(7)
    d = k = 6
    return rng.normal(size=(5, d)), rng.normal(size=(d, k)), rng.normal(size=k)


def test_real_penalty_passes_both_checks(square_problem):
    X, W, b = square_problem
    for act in ("sigmoid", "tanh"):
        assert penalty_value_matches(contractive_penalty, X, W, b, act)
        assert penalty_grads_pass(contractive_penalty, X, W, b, act)


def test_bug_factor_two_fails(square_problem):
    assert not penalty_grads_pass(bug_factor_two, *square_problem, "sigmoid")


def test_bug_batch_summed_fails(square_problem):
    # the value no longer equals the mean of per-sample ||J||_F^2
    assert not penalty_value_matches(bug_batch_summed, *square_problem, "sigmoid")


def test_bug_w_held_constant_fails(square_problem):
    assert not penalty_grads_pass(bug_w_constant, *square_problem, "sigmoid")


def test_bug_sigmoid_derivative_for_tanh_fails(square_problem):
    assert not penalty_value_matches(bug_sigmoid_derivative_for_tanh, *square_problem, "tanh")


def test_bug_wrong_axis_fails(square_problem):
    # square W so the wrong axis has the right shape and fails only numerically
    assert not penalty_value_matches(bug_wrong_axis, *square_problem, "sigmoid")
    assert not penalty_grads_pass(bug_wrong_axis, *square_problem, "sigmoid")
