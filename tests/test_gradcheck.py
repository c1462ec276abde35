"""Tests for npcae.gradcheck: accuracy of the numerical derivatives, and "testing the tester"
(the checker must fail on deliberately wrong gradients and pass on correct ones).

The tiny modules below implement the Module protocol themselves so these tests do not depend
on npcae.layers.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npcae.gradcheck import (DEFAULT_STEPS, METHODS, GradCheckResult, LayerCheckResult,
                             check_directional, check_gradient, check_layer, check_model,
                             check_vjp, numerical_gradient)

SETTINGS = dict(deadline=None, max_examples=100)

# ------------------------------------------------------------------ known functions
RNG = np.random.default_rng(12345)
A6 = RNG.standard_normal((6, 6))
B6 = RNG.standard_normal(6)


def _quad(x):
    return 0.5 * x @ A6[:x.size, :x.size] @ x + B6[:x.size] @ x


def _quad_grad(x):
    A = A6[:x.size, :x.size]
    return 0.5 * (A + A.T) @ x + B6[:x.size]


def _lse(x):  # written with np.exp/np.log only, so the complex step works
    return np.log(np.sum(np.exp(x)))


def _lse_grad(x):
    e = np.exp(x - x.max())
    return e / e.sum()


FUNCTIONS = {
    "quadratic": (_quad, _quad_grad),
    "sin": (lambda x: np.sum(np.sin(x)), np.cos),
    "exp": (lambda x: np.sum(np.exp(x)), np.exp),
    "logsumexp": (_lse, _lse_grad),
    "tanh_product": (lambda x: np.sum(np.tanh(x) * x),
                     lambda x: np.tanh(x) + x * (1 - np.tanh(x) ** 2)),
}

# Worst values of ||n - a||_inf / max(||a||_inf, 1) over these functions and |x_i| <= 3,
# found by hypothesis with target() maximising the error (1500 examples per pair):
# 1.9e-10 (central), 3.5e-12 (Richardson), 8.3e-16 (complex step). The asserted bounds
# keep ~5x headroom over that measurement.
ACCURACY = {"central": 1e-9, "richardson": 2e-11, "complex": 4e-15}

small_vectors = hnp.arrays(np.float64, st.integers(1, 6),
                           elements=st.floats(-3, 3, allow_nan=False, width=64))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fname", sorted(FUNCTIONS))
@settings(**SETTINGS)
@given(x=small_vectors)
def test_numerical_gradient_accuracy(fname, method, x):
    f, grad = FUNCTIONS[fname]
    num = numerical_gradient(f, x, method=method)
    exact = grad(x)
    assert num.shape == x.shape and num.dtype == np.float64
    # Finite-difference errors scale with |f| and its derivatives, not with |f'| alone, so the
    # error is normalised by max(||a||, 1) (an exactly zero gradient must not blow it up).
    err = np.max(np.abs(num - exact)) / max(np.max(np.abs(exact)), 1.0)
    assert err <= ACCURACY[method], (fname, method, err)


@pytest.mark.parametrize("method", ["central", "richardson"])
@settings(**SETTINGS)
@given(x=small_vectors)
def test_error_estimate_bounds_actual_error(method, x):
    # Rounding in f is ~eps times its *intermediates*; the estimator only sees |f| and
    # |f'| max(1, |x|), so where the intermediates cancel (the quadratic form) the test
    # allows the part of the rounding it cannot see: eps * sum|terms| / t.
    t = DEFAULT_STEPS[method] * np.maximum(1.0, np.abs(x))
    A, b = A6[:x.size, :x.size], B6[:x.size]
    unseen = {"sin": 0.0, "logsumexp": 0.0,
              "quadratic": 0.5 * np.abs(x) @ np.abs(A) @ np.abs(x) + np.abs(b) @ np.abs(x)}
    for fname in unseen:
        f, grad = FUNCTIONS[fname]
        num, err = numerical_gradient(f, x, method=method, return_error=True)
        actual = np.abs(num - grad(x))
        assert err.shape == x.shape and np.all(err >= 0)
        # the estimate is an honest bound (within a factor 2) and is not vacuous
        allowed = 2 * err + 8 * np.finfo(float).eps * unseen[fname] / t + 1e-15
        assert np.all(actual <= allowed), (fname, actual, err)
        assert np.max(err) <= {"central": 1e-8, "richardson": 1e-10}[method]


def test_complex_step_error_estimate_is_rounding_level():
    x = np.linspace(-1, 1, 5)
    g, err = numerical_gradient(FUNCTIONS["sin"][0], x, method="complex", return_error=True)
    assert np.all(np.abs(g - np.cos(x)) <= err + 1e-300)
    assert np.max(err) < 1e-14


def test_scalar_and_matrix_inputs_keep_shape():
    assert numerical_gradient(lambda z: z ** 3, 2.0).shape == ()
    assert abs(numerical_gradient(lambda z: z ** 3, 2.0) - 12.0) < 1e-8
    X = RNG.standard_normal((3, 4))
    g = numerical_gradient(lambda z: np.sum(z ** 2), X, method="complex")
    np.testing.assert_allclose(g, 2 * X, rtol=1e-15)


# ------------------------------------------------- the caller's array is never touched
@pytest.mark.parametrize("method", METHODS)
def test_caller_array_bitwise_unchanged_even_if_f_mutates_or_keeps_references(method):
    x = np.array([[0.5, -0.0, 3.0], [1e-300, -2.0, 7.25]])
    before = x.tobytes()
    seen = []

    def f(z):
        seen.append(z)          # keeps a reference to what it was given
        value = np.sum(np.sin(z) * z)
        z *= 2.0                # and vandalises it afterwards
        return value

    numerical_gradient(f, x, method=method)
    check_gradient(f, x, np.sin(x) + x * np.cos(x), method=method)
    assert x.tobytes() == before
    # f saw correct values: every array it was handed (and then doubled) differs from 2x in
    # exactly one entry, by 2 * (step), or not at all (the base point f(x)).
    for z in seen:
        diff = (z - 2.0 * x).reshape(-1)
        nz = np.flatnonzero(diff)
        assert len(nz) <= 1
        if method == "complex":
            assert np.all(z.real == 2.0 * x)
        for k in nz:
            step = DEFAULT_STEPS[method] * max(1, abs(x.flat[k]))
            assert 0 < abs(diff[k]) <= 2.0 * 2 * step * 1.01


@pytest.mark.parametrize("method", METHODS)
def test_each_call_gets_a_fresh_array(method):
    kept = []

    def f(z):
        kept.append(z)
        return np.sum(z ** 2)

    x = np.arange(4.0)
    numerical_gradient(f, x, method=method)
    assert len(kept) == {"central": 8, "richardson": 16, "complex": 4}[method]
    assert len({id(z) for z in kept}) == len(kept)          # all alive, all distinct
    assert not any(np.shares_memory(z, x) for z in kept)


# ------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("bad", [np.float32, np.int64, np.float16])
def test_non_float64_x_refused(bad):
    x = np.ones(3, dtype=bad)
    with pytest.raises(TypeError, match="float64"):
        check_gradient(lambda z: np.sum(z ** 2), x, 2.0 * np.ones(3))
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda z: np.sum(z ** 2), x)


def test_float32_grad_refused():
    with pytest.raises(TypeError, match="float64"):
        check_gradient(lambda z: np.sum(z ** 2), np.ones(3), np.full(3, 2.0, np.float32))


def test_float32_function_output_refused():
    with pytest.raises(TypeError, match="float32"):
        numerical_gradient(lambda z: np.float32(np.sum(z)), np.ones(3))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_refused(value):
    x = np.ones(4)
    bad = x.copy()
    bad[2] = value
    with pytest.raises(ValueError, match="NaN|infinite"):
        check_gradient(lambda z: np.sum(z ** 2), bad, 2 * x)
    with pytest.raises(ValueError, match="NaN|infinite"):
        check_gradient(lambda z: np.sum(z ** 2), x, bad)
    with pytest.raises(ValueError, match="returned"), np.errstate(all="ignore"):
        numerical_gradient(lambda z: np.sum(np.log(z - 1.0)), x)


def test_shape_mismatch_names_both_shapes():
    x = np.ones((2, 3))
    with pytest.raises(ValueError) as info:
        check_gradient(lambda z: np.sum(z ** 2), x, np.ones((3, 2)))
    msg = str(info.value)
    assert "(3, 2)" in msg and "(2, 3)" in msg and "transposed" in msg
    with pytest.raises(ValueError, match=r"\(6,\).*\(2, 3\)"):
        check_gradient(lambda z: np.sum(z ** 2), x, np.ones(6))


def test_vector_output_refused_with_pointer_to_check_vjp():
    with pytest.raises(ValueError, match="check_vjp"):
        numerical_gradient(lambda z: z ** 2, np.ones(3))


def test_bad_arguments():
    f = lambda z: np.sum(z ** 2)  # noqa: E731
    with pytest.raises(ValueError, match="method"):
        numerical_gradient(f, np.ones(2), method="forward")
    with pytest.raises(ValueError, match="h must"):
        numerical_gradient(f, np.ones(2), h=-1.0)
    with pytest.raises(ValueError, match="rtol"):
        check_gradient(f, np.ones(2), 2 * np.ones(2), rtol=0)
    with pytest.raises(TypeError, match="complex"):
        check_gradient(f, np.ones(2) + 0j, 2 * np.ones(2))


@pytest.mark.parametrize("breaker, culprit", [
    (lambda z: np.sum(np.abs(z) ** 2), "np.abs"),
    (lambda z: np.sum(z.real ** 2), "real"),
    (lambda z: np.linalg.norm(z) ** 2, "norm"),
    (lambda z: np.sum(np.asarray(z, dtype=np.float64) ** 2), "cast"),
    (lambda z: np.sum(np.logaddexp(z, 0.0)), "logaddexp"),
])
def test_complex_step_refuses_code_that_drops_the_imaginary_part(breaker, culprit):
    with pytest.raises(TypeError) as info:
        numerical_gradient(breaker, np.array([0.5, -1.5]), method="complex")
    msg = str(info.value)
    assert "complex" in msg and "np.abs" in msg  # the help text lists the usual culprits
    assert culprit in msg


def test_complex_step_sees_through_vdot_conjugation_as_a_failure():
    # np.vdot conjugates its first argument: output stays complex, derivative is wrong.
    x = np.array([0.3, -1.2, 2.0])
    res = check_gradient(lambda z: np.vdot(z, z), x, 2 * x, method="complex")
    assert res.passed is False


# ------------------------------------------------------------------- check_gradient
@pytest.mark.parametrize("method", METHODS)
@settings(**SETTINGS)
@given(data=st.data())
def test_check_gradient_passes_correct_quadratic_forms(method, data):
    n = data.draw(st.integers(1, 6))
    A = data.draw(hnp.arrays(np.float64, (n, n), elements=st.floats(-10, 10, width=64)))
    x = data.draw(hnp.arrays(np.float64, n, elements=st.floats(-100, 100, width=64)))
    res = check_gradient(lambda z: z @ A @ z, x, (A + A.T) @ x, method=method)
    assert res.passed, res.report()
    assert isinstance(res, GradCheckResult) and res.n_checked == n


@pytest.mark.parametrize("method", METHODS)
@settings(**SETTINGS)
@given(x=small_vectors, delta=st.floats(1e-4, 1.0))
def test_check_gradient_fails_scaled_gradients(method, x, delta):
    f, grad = FUNCTIONS["tanh_product"]
    g = grad(x)
    res = check_gradient(f, x, g * (1 + delta), method=method)
    # detectable iff the induced error clears the noise floor atol somewhere
    assume(np.max(np.abs(g)) * delta > 10 * res.atol)
    assert res.passed is False
    assert res.worst_index is not None and str(res.worst_index) in res.report()


def test_result_fields_and_report_are_short():
    x = RNG.standard_normal((60, 60))   # 3600 entries: the report must still be one line
    res = check_gradient(lambda z: np.sum(z ** 2), x, 2.002 * x, method="complex")
    assert res.passed is False
    assert isinstance(res.worst_index, tuple) and len(res.worst_index) == 2
    assert res.n_checked == 3600 and res.n_failed > 0
    assert res.method == "complex" and res.step == DEFAULT_STEPS["complex"]
    assert abs(res.analytic - 2.002 * x[res.worst_index]) < 1e-12
    assert abs(res.numeric - 2.0 * x[res.worst_index]) < 1e-12
    assert res.max_rel_error == pytest.approx(0.002 / 2.002, rel=1e-6)
    text = str(res)
    assert text == res.report() and "\n" not in text and len(text) < 700
    assert str(res.worst_index) in text and "FAILED" in text


def test_relative_error_is_symmetric_and_floored():
    x = np.array([1.0, 2.0, 3.0])
    f = lambda z: 0.5 * np.sum(z * z) - z[0]  # noqa: E731; gradient z - e0 is 0 at z[0] = 1
    res = check_gradient(f, x, np.array([0.0, 2.0, 3.0]))
    assert res.passed and res.max_rel_error < 1e-7
    res = check_gradient(f, x, np.array([1e-3, 2.0, 3.0]))
    assert not res.passed and res.worst_index == (0,)
    assert res.max_rel_error == pytest.approx(1e-3 / max(1e-3, res.floor), rel=1e-3)


@pytest.mark.parametrize("method", METHODS)
@settings(**SETTINGS)
@given(x0=hnp.arrays(np.float64, st.integers(1, 5),
                     elements=st.floats(-100, 100, allow_subnormal=True, width=64)))
def test_zero_gradient_at_an_exact_minimum_passes(method, x0):
    # L = 0 and grad = 0 exactly, so atol ~ 0: unequal realised steps (x + t) - x and
    # x - (x - t) would leave a bias (t+ - t-) f''/2 ~ eps |x| f'' and fail this.
    w = np.linspace(1.0, 3.0, x0.size)
    f = lambda z: np.sum(w * (z - x0) ** 2)  # noqa: E731
    zero = np.zeros_like(x0)
    res = check_gradient(f, x0.copy(), zero, method=method)
    assert res.passed, res.report()
    res = check_directional(f, x0.copy(), zero, n_directions=4, method=method)
    assert res.passed, res.report()
    # a wrong non-zero gradient there is still caught
    assert check_gradient(f, x0.copy(), zero + 1e-3, method=method).passed is False


def test_complex_step_truncation_next_to_a_zero_gradient_is_refined():
    # Im((ih)^3)/h = -h^2 = -1e-40 at x = 0 while f'(0) = 0: the O(h^2) term must not fail it
    res = check_gradient(lambda z: np.sum(z ** 3 + z ** 2 * np.sin(z)), np.zeros(3),
                         np.zeros(3), method="complex", rtol=1e-12)
    assert res.passed and res.max_abs_error < 1e-60, res.report()


def test_zero_gradient_minimum_through_model_parameters():
    class Quadratic:
        def __init__(self):
            self.params = {"w": np.array([1.0, 0.3, -1.7, 3.0])}
            self.c = self.params["w"].copy()

        def loss_and_grad(self, X):
            r = self.params["w"] - self.c
            return np.sum(X) * (r @ r), {"w": 2 * np.sum(X) * r}   # no float(): complex-safe

    for method in METHODS:
        assert check_model(Quadratic(), np.ones((2, 2)), method=method).passed
        assert check_model(Quadratic(), np.ones((2, 2)), method=method,
                           directional=True).passed


def _saturated_tanh_problem(a):
    # phi'(a) = 1 - tanh(a)^2 written the textbook way: near saturation the subtraction
    # leaves a staircase in ulps of 1 (~1e-9 relative at a = 8), far above the eps*|L|
    # noise floor the default atol assumes.
    a0 = np.array([a, a + 0.25, -(a + 0.5), a - 0.25])
    f = lambda z: np.sum((1.0 - np.tanh(z) ** 2) ** 2)  # noqa: E731
    grad = -4.0 * np.tanh(a0) * (1.0 - np.tanh(a0) ** 2) ** 2
    return f, a0, grad


@pytest.mark.parametrize("method, a", [("central", 7.0), ("richardson", 9.0)])
def test_noisy_function_is_verified_at_a_larger_step(method, a):
    f, a0, grad = _saturated_tanh_problem(a)
    res = check_gradient(f, a0, grad, method=method)
    assert res.passed, res.report()
    assert res.noisy and "larger step" in res.report()
    # a larger step verifies; it does not excuse a 0.1 % error
    bad = check_gradient(f, a0, grad * 1.001, method=method)
    assert bad.passed is False and bad.noisy == []


def test_too_noisy_function_fails_with_a_hint():
    # at a ~ 9 the central estimate is off by ~1e-4 at every step tried: not verified
    f, a0, grad = _saturated_tanh_problem(9.0)
    res = check_gradient(f, a0, grad)
    assert res.passed is False and "method='complex'" in res.report()


def test_larger_steps_that_leave_the_domain_are_skipped_not_raised():
    # log is undefined beyond x - 64 t: the step escalation must stop quietly
    x = np.array([2e-4, 1.0])
    grad = 1.0 / x
    grad[0] *= 1 + 1e-6
    res = check_gradient(lambda z: np.sum(np.log(z)), x, grad)
    assert res.passed is False and res.worst_index == (0,)
    with pytest.raises(ValueError, match="smaller h"), np.errstate(all="ignore"):
        numerical_gradient(lambda z: np.sum(np.log(z)), np.array([1e-6]))


def test_cost_of_a_badly_wrong_gradient_is_bounded():
    calls = []

    def f(z):
        calls.append(1)
        return np.sum(np.sin(z))

    x = np.linspace(-1, 1, 300)
    res = check_gradient(f, x, 1.001 * np.cos(x))
    assert res.passed is False and res.n_failed == 300
    # 2 per entry + 2 per entry of refinement + a bounded number of extra probes
    assert len(calls) <= 4 * x.size + 200


# --------------------------------------------------------------------------- kinks
def _relu_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 5))
    c = rng.standard_normal((4, 5))
    h = DEFAULT_STEPS["central"]
    x[0, 1] = 0.0            # exactly on the kink
    x[2, 3] = -0.0
    x[1, 1] = 0.3 * h        # within one step of it
    x[3, 0] = -0.7 * h
    kinks = {(0, 1), (2, 3), (1, 1), (3, 0)}
    return x, c, kinks


@pytest.mark.parametrize("method", ["central", "richardson"])
@pytest.mark.parametrize("slope", [0.0, 0.1])   # relu, leaky relu
def test_kinks_are_reported_not_failed(method, slope):
    x, c, kinks = _relu_problem()
    f = lambda z: np.sum(c * np.where(z > 0, z, slope * z))  # noqa: E731
    grad = c * np.where(x > 0, 1.0, slope)
    res = check_gradient(f, x, grad, method=method)
    assert res.passed, res.report()
    assert kinks <= set(res.kinks)
    assert "kink" in res.report()
    off = check_gradient(f, x, grad, method=method, detect_kinks=False)
    assert off.passed is False and off.worst_index in kinks


def test_real_error_at_a_non_kink_still_fails():
    x, c, kinks = _relu_problem()
    f = lambda z: np.sum(c * np.maximum(z, 0))  # noqa: E731
    grad = c * (x > 0)
    bad = (2, 4) if x[2, 4] > 0 else (1, 2)
    grad[bad] = grad[bad] * 1.001 + 1e-3
    res = check_gradient(f, x, grad)
    assert res.passed is False and res.worst_index == bad and res.n_failed == 1
    assert kinks <= set(res.kinks) and bad not in res.kinks
    assert str(bad) in res.report()


def test_big_bug_at_a_kink_is_not_excused():
    x, c, _ = _relu_problem()
    f = lambda z: np.sum(c * np.maximum(z, 0))  # noqa: E731
    grad = c * (x > 0)
    grad[0, 1] = 50.0 * (abs(c[0, 1]) + 1)   # far beyond any subgradient
    res = check_gradient(f, x, grad)
    assert res.passed is False and res.worst_index == (0, 1)


@settings(**SETTINGS)
@given(u=st.floats(-0.999, 0.999), jump=st.floats(0.01, 10), method=st.sampled_from(
    ["central", "richardson"]))
def test_any_kink_within_one_step_is_recognised(u, jump, method):
    # relu-like kink at distance u*h from x: the analytic slope is the one at x itself.
    h = DEFAULT_STEPS[method]
    x = np.array([u * h, 0.8, -1.3])
    f = lambda z: jump * np.maximum(z[0], 0) + np.sum(np.sin(z[1:]))  # noqa: E731
    grad = np.array([jump * (x[0] > 0), np.cos(0.8), np.cos(-1.3)])
    res = check_gradient(f, x, grad, method=method)
    assert res.passed, res.report()


def test_kink_fn_marks_entries_explicitly():
    x, c, _ = _relu_problem()
    f = lambda z: np.sum(c * np.maximum(z, 0))  # noqa: E731
    grad = c * (x > 0)
    res = check_gradient(f, x, grad, kink_fn=lambda z: np.abs(z) < 1e-5, detect_kinks=False)
    assert res.passed and set(res.kinks) == {(0, 1), (2, 3), (1, 1), (3, 0)}
    with pytest.raises(ValueError, match="kink_fn"):
        check_gradient(f, x, grad, kink_fn=lambda z: np.zeros(3, bool))


def test_complex_step_is_exact_next_to_a_kink():
    # Im f(x + ih)/h never crosses the kink; only the exact tie is ambiguous (and reported).
    x, c, _ = _relu_problem()
    f = lambda z: np.sum(c * np.where(z.real > 0, z, 0))  # noqa: E731
    res = check_gradient(f, x, c * (x > 0), method="complex")
    assert res.passed and res.kinks == [] and res.max_rel_error < 1e-15


# ---------------------------------------------------------------------- directional
def _big_problem(n=20000):
    x = np.random.default_rng(3).standard_normal(n)
    w = np.linspace(0.5, 2.0, n)
    f = lambda z: np.sum(w * np.sin(z)) + 0.25 * np.dot(z, z) ** 1.5 / n  # noqa: E731
    grad = w * np.cos(x) + 0.75 * np.dot(x, x) ** 0.5 * x / n
    return f, x, grad


@pytest.mark.parametrize("method", METHODS)
def test_directional_passes_correct_and_fails_scaled(method):
    f, x, grad = _big_problem()
    calls = []
    counted = lambda z: (calls.append(1), f(z))[1]  # noqa: E731
    ok = check_directional(counted, x, grad, n_directions=8, random_state=1, method=method)
    assert ok.passed, ok.report()
    assert ok.mode == "directional" and ok.n_checked == 8
    per_dir = {"central": 2, "richardson": 4, "complex": 1}[method]
    assert len(calls) <= 8 * per_dir + 1          # O(n_directions), not O(x.size)
    bad = check_directional(f, x, grad * 1.001, n_directions=8, random_state=1, method=method)
    assert bad.passed is False and str(bad.worst_index) in bad.report()
    assert "direction" in bad.report()


def test_directional_is_seeded():
    f, x, grad = _big_problem(500)
    r1 = check_directional(f, x, grad, random_state=7)
    r2 = check_directional(f, x, grad, random_state=7)
    assert r1.max_rel_error == r2.max_rel_error and r1.worst_index == r2.worst_index


def test_check_vjp_random_projection():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((7, 4))
    x = rng.standard_normal(4)
    f = lambda z: np.tanh(A @ z)  # noqa: E731
    vjp = lambda g: A.T @ (g * (1 - np.tanh(A @ x) ** 2))  # noqa: E731
    assert check_vjp(f, x, vjp).passed
    assert check_vjp(f, x, vjp, method="complex").max_rel_error < 1e-14
    # ignoring the upstream gradient only passes if g were all ones: it is not
    wrong = lambda g: A.T @ (1 - np.tanh(A @ x) ** 2)  # noqa: E731
    assert check_vjp(f, x, wrong).passed is False
    assert check_vjp(f, x, vjp, max_full=2).mode == "directional"


# -------------------------------------------------------- tiny Module implementations
class Linear:
    """y = x @ W + b with optional deliberate bugs in backward."""

    def __init__(self, n_in, n_out, seed=0, bug=None):
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.standard_normal((n_in, n_out)),
                       "b": rng.standard_normal(n_out)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.bug = bug

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0.0)

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, g):
        x, W = self.x, self.params["W"]
        if self.bug == "ignores_grad_out":
            g = np.ones_like(g)
        gW, gb, gx = x.T @ g, g.sum(axis=0), g @ W.T
        if self.bug == "scaled_W":
            gW = gW * 1.001
        elif self.bug == "transposed_W":
            gW = gW.T
        elif self.bug == "dropped_bias":
            gb = np.zeros_like(gb)
        elif self.bug == "wrong_axis_b":
            gb = g.sum(axis=1)
        elif self.bug == "transposed_x":
            gx = g @ W
        if self.bug == "overwrites":
            self.grads["W"][...] = gW
            self.grads["b"][...] = gb
        else:
            self.grads["W"] += gW
            self.grads["b"] += gb
        return gx


class Bilinear:
    """y = x * (x @ W) (square W): backward needs both summands of the product rule."""

    def __init__(self, n, seed=0, bug=None):
        self.params = {"W": np.random.default_rng(seed).standard_normal((n, n))}
        self.grads = {"W": np.zeros((n, n))}
        self.bug = bug

    def zero_grad(self):
        self.grads["W"].fill(0.0)

    def forward(self, x):
        self.x = x
        return x * (x @ self.params["W"])

    def backward(self, g):
        x, W = self.x, self.params["W"]
        self.grads["W"] += x.T @ (g * x)
        gx = g * (x @ W)
        if self.bug != "dropped_summand":
            gx = gx + (g * x) @ W.T
        return gx


class Tanh:
    """Parameter-free tanh (complex-safe)."""

    params, grads = {}, {}

    def zero_grad(self):
        pass

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y ** 2)


class ReLU:
    def __init__(self, threshold=0.0):
        self.params, self.grads, self.threshold = {}, {}, threshold

    def zero_grad(self):
        pass

    def forward(self, x):
        self.x = x
        return np.where(x.real > 0, x, 0.0)

    def backward(self, g):
        return g * (self.x > self.threshold)


class Noisy(Linear):
    def forward(self, x):
        return super().forward(x) + np.random.default_rng().normal(size=1) * 1e-3


X4 = np.random.default_rng(11).standard_normal((4, 4))   # batch 4 = n_out: wrong axis fits


def test_correct_linear_layer_passes_every_method():
    for method in METHODS:
        res = check_layer(Linear(4, 4), X4, method=method)
        assert isinstance(res, LayerCheckResult)
        assert res.passed, res.report()
        assert set(res) == {"input", "W", "b"}
        assert res["W"].shape == (4, 4) and res["input"].n_checked == 16
    tight = check_layer(Linear(4, 4), X4, method="complex")
    assert max(r.max_rel_error for r in tight.values()) < 1e-14


@pytest.mark.parametrize("module, key", [
    (Linear(4, 4, bug="scaled_W"), "W"),
    (Linear(4, 4, bug="transposed_W"), "W"),
    (Linear(4, 4, bug="dropped_bias"), "b"),
    (Linear(4, 4, bug="wrong_axis_b"), "b"),
    (Linear(4, 4, bug="transposed_x"), "input"),
    (Linear(4, 4, bug="ignores_grad_out"), "input"),
    (Bilinear(4, bug="dropped_summand"), "input"),
    (ReLU(threshold=0.5), "input"),          # wrong derivative at non-kink points
], ids=["scaled_W", "transposed_W", "dropped_bias", "wrong_axis_b", "transposed_x",
        "ignores_grad_out", "dropped_product_rule_summand", "relu_wrong_threshold"])
@pytest.mark.parametrize("method", METHODS)
def test_the_tester_fails_wrong_gradients(module, key, method):
    res = check_layer(module, X4, method=method)
    assert res.passed is False
    assert res[key].passed is False
    assert key in res.failures
    worst = res[key].worst_index
    assert worst is not None
    assert str(worst) in res[key].report()
    assert str(worst) in res.report() and "FAIL" in res.report()


def test_ignoring_grad_out_fails_the_parameter_gradient_too():
    res = check_layer(Linear(4, 4, bug="ignores_grad_out"), X4)
    assert set(res.failures) == {"input", "W", "b"}


def test_correct_composite_modules_pass():
    assert check_layer(Bilinear(4), X4).passed
    assert check_layer(Tanh(), X4, method="complex").passed
    x = X4.copy()
    x[0, 0] = 0.0
    res = check_layer(ReLU(), x)
    assert res.passed and (0, 0) in res["input"].kinks


def test_overwriting_instead_of_accumulating_is_reported():
    res = check_layer(Linear(4, 4, bug="overwrites"), X4)
    assert all(r.passed for r in res.values())   # the numbers themselves are right
    assert res.passed is False and any("accumulate" in n for n in res.notes)
    assert "accumulate" in res.report()


@pytest.mark.parametrize("method", METHODS)
def test_check_layer_restores_params_objects_bits_and_grads(method):
    mod = Linear(4, 4, bug="scaled_W")
    mod.params["W"][0, 0] = -0.0
    objects = dict(mod.params)
    bits = {k: v.tobytes() for k, v in mod.params.items()}
    mod.grads["W"][...] = 7.0
    grads_before = {k: v.copy() for k, v in mod.grads.items()}
    x = X4.copy()
    check_layer(mod, x, method=method)
    check_layer(mod, x, method=method, directional=True)
    for k in objects:
        assert mod.params[k] is objects[k]
        assert mod.params[k].tobytes() == bits[k]
        np.testing.assert_array_equal(mod.grads[k], grads_before[k])
    assert x.tobytes() == X4.tobytes()


def test_check_layer_restores_params_after_an_exception():
    class Exploding(Linear):
        calls = 0

        def forward(self, x):
            Exploding.calls += 1
            if Exploding.calls > 33:   # while W is perturbed in place
                raise RuntimeError("boom")
            return super().forward(x)

    mod = Exploding(3, 3)
    bits = {k: v.tobytes() for k, v in mod.params.items()}
    with pytest.raises(RuntimeError, match="boom"):
        check_layer(mod, X4[:, :3])
    assert all(mod.params[k].tobytes() == bits[k] for k in bits)


def test_upstream_gradient_is_seeded_and_directional_mode_kicks_in():
    r1 = check_layer(Linear(4, 4), X4, random_state=3)
    r2 = check_layer(Linear(4, 4), X4, random_state=3)
    assert r1["W"].max_rel_error == r2["W"].max_rel_error
    res = check_layer(Linear(4, 4, bug="scaled_W"), X4, max_full=10)
    assert res["W"].mode == "directional" and res["b"].mode == "full"
    assert res["W"].passed is False


def test_check_layer_rejects_nondeterministic_and_float32_modules():
    with pytest.raises(ValueError, match="deterministic"):
        check_layer(Noisy(4, 4), X4)
    mod = Linear(4, 4)
    mod.params["W"] = mod.params["W"].astype(np.float32)
    with pytest.raises(TypeError, match="float64"):
        check_layer(mod, X4)
    with pytest.raises(TypeError, match="float64"):
        check_layer(Linear(4, 4), X4.astype(np.float32))
    with pytest.raises(TypeError, match="Module protocol"):
        check_layer(object(), X4)


# ---------------------------------------------------------------------------- models
class TiedAutoencoder:
    """L = mean_n ||tanh(x W + b) W^T + c - x||^2 with tied W (d, k)."""

    def __init__(self, d=5, k=3, seed=0, bug=None, noise=False):
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.standard_normal((d, k)) * 0.5, "b": rng.standard_normal(k),
                       "c": rng.standard_normal(d)}
        self.bug, self.noise = bug, noise

    def loss_and_grad(self, X):
        W, b, c = self.params["W"], self.params["b"], self.params["c"]
        if self.noise:
            X = X + np.random.default_rng().normal(scale=0.1, size=X.shape)
        n = X.shape[0]
        H = np.tanh(X @ W + b)
        R = H @ W.T + c
        E = R - X
        loss = np.sum(E * E) / n
        dR = 2 * E / n
        dA = (dR @ W) * (1 - H * H)
        gW = X.T @ dA
        if self.bug != "untied":
            gW = gW + dR.T @ H            # decoder's use of the tied weight
        grads = {"W": gW, "b": dA.sum(axis=0), "c": dR.sum(axis=0)}
        if self.bug == "missing_key":
            del grads["c"]
        return loss, grads


XM = np.random.default_rng(21).standard_normal((6, 5))


@pytest.mark.parametrize("method", METHODS)
def test_check_model_passes_correct_model(method):
    res = check_model(TiedAutoencoder(), XM, method=method)
    assert res.passed, res.report()
    assert set(res) == {"W", "b", "c"}


def test_check_model_catches_dropped_tied_term_and_restores():
    model = TiedAutoencoder(bug="untied")
    objects = dict(model.params)
    bits = {k: v.tobytes() for k, v in model.params.items()}
    res = check_model(model, XM)
    assert res.passed is False and res.failures == ["W"]
    assert str(res["W"].worst_index) in res.report()
    for method in ("complex", "richardson"):
        check_model(model, XM, method=method)
    assert all(model.params[k] is objects[k] for k in objects)
    assert all(model.params[k].tobytes() == bits[k] for k in bits)


def test_check_model_directional_for_large_params():
    res = check_model(TiedAutoencoder(d=60, k=100), XM.repeat(12, axis=1), n_directions=6)
    assert res["W"].mode == "directional" and res["b"].mode == "full"   # 6000 > 5000
    assert res.passed, res.report()
    bad = check_model(TiedAutoencoder(bug="untied"), XM, directional=True)
    assert bad["W"].passed is False and bad["W"].mode == "directional"


def test_check_model_refuses_noise_and_key_mismatch():
    with pytest.raises(ValueError, match="deterministic"):
        check_model(TiedAutoencoder(noise=True), XM)
    with pytest.raises(KeyError, match="missing"):
        check_model(TiedAutoencoder(bug="missing_key"), XM)
    with pytest.raises(TypeError, match="float64"):
        check_model(TiedAutoencoder(), XM.astype(np.float32))


# ------------------------------------------- argument validation, before any work (issue 8)
class _Counting:
    """Wraps a function and counts calls, to prove a refusal happens before any work."""

    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, z):
        self.calls += 1
        return self.f(z)


class _CountingLinear(Linear):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


class _CountingModel(TiedAutoencoder):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def loss_and_grad(self, X):
        self.calls += 1
        return super().loss_and_grad(X)


_COMMON = {"method", "rtol", "atol", "h", "detect_kinks"}
_ACCEPTS = {"check_gradient": _COMMON,
            "check_directional": _COMMON | {"n_directions", "random_state"},
            "check_vjp": _COMMON | {"n_directions", "random_state", "max_full"},
            "check_layer": _COMMON | {"n_directions", "random_state", "max_full", "directional"},
            "check_model": _COMMON | {"n_directions", "random_state", "max_full", "directional"}}


def _run_every_check(**kwargs):
    """Call each public check that takes all of ``kwargs``; assert each raises before calling
    the function, layer or model under test; return the errors."""
    x = np.array([0.3, -0.7, 1.1])
    f = _Counting(lambda z: np.sum(z ** 2))
    fv = _Counting(lambda z: z ** 2)
    layer, model = _CountingLinear(3, 2), _CountingModel()
    calls = {
        "check_gradient": lambda: check_gradient(f, x, 2 * x, **kwargs),
        "check_directional": lambda: check_directional(f, x, 2 * x, **kwargs),
        "check_vjp": lambda: check_vjp(fv, x, lambda g: 2 * x * g, **kwargs),
        "check_layer": lambda: check_layer(layer, X4[:, :3], **kwargs),
        "check_model": lambda: check_model(model, XM, **kwargs),
    }
    errors = []
    for name, call in calls.items():
        if not set(kwargs) <= _ACCEPTS[name]:
            continue
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        errors.append(info.value)
    assert errors
    assert f.calls == fv.calls == layer.calls == model.calls == 0
    return errors


@pytest.mark.parametrize("h", ["1e-5", "abc", b"1e-5", True, [1e-5], 1e-5j, object()])
def test_non_numeric_step_is_refused_naming_h_before_any_work(h):
    for err in _run_every_check(h=h):
        assert isinstance(err, TypeError) and "h must be a positive finite number" in str(err)
        assert repr(h) in str(err)
    with pytest.raises(TypeError, match="h must"):
        numerical_gradient(_Counting(np.sum), np.ones(2), h=h)


@pytest.mark.parametrize("h", [0, 0.0, -1e-5, float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("method", METHODS)
def test_non_positive_or_non_finite_step_is_refused_naming_h(h, method):
    for err in _run_every_check(h=h, method=method):
        assert isinstance(err, ValueError) and str(err).startswith("h must be a positive")
        assert f"method={method!r}" in str(err)          # says which default None selects
    f = _Counting(np.sum)
    with pytest.raises(ValueError, match="h must"):
        numerical_gradient(f, np.ones(2), method=method, h=h)
    assert f.calls == 0


def test_numeric_steps_of_any_real_type_are_accepted():
    f, x = (lambda z: np.sum(z ** 2)), np.array([0.5, -1.5])
    for h in (1e-5, np.float64(1e-5), np.float32(1e-5), 1, np.int64(1)):
        assert check_gradient(f, x, 2 * x, h=h, method="complex").passed


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(rtol="1e-7"), TypeError, "rtol must be a positive finite number"),
    (dict(rtol=None), TypeError, "rtol must be a positive finite number"),
    (dict(rtol=True), TypeError, "rtol must be"),
    (dict(rtol=0.0), ValueError, "rtol must be positive and finite"),
    (dict(rtol=float("nan")), ValueError, "rtol must be positive and finite"),
    (dict(atol="0"), TypeError, "atol must be a finite number >= 0, or None"),
    (dict(atol=-1.0), ValueError, "atol must be >= 0"),
    (dict(method=None), TypeError, "method must be a string, one of"),
    (dict(method=["central"]), TypeError, "method must be a string"),
    (dict(method="forward"), ValueError, "method must be one of"),
    (dict(detect_kinks="no"), TypeError, "detect_kinks must be True or False"),
    (dict(random_state=-1), ValueError, "random_state must be a non-negative integer"),
    (dict(random_state="0"), TypeError, "random_state must be None, a non-negative int"),
    (dict(random_state=1.5), TypeError, "random_state must be None"),
])
def test_bad_settings_are_refused_by_every_check_before_any_work(kwargs, exc, words):
    for err in _run_every_check(**kwargs):
        assert isinstance(err, exc) and words in str(err), str(err)


@pytest.mark.parametrize("n_directions, exc", [("16", TypeError), (4.0, TypeError),
                                               (True, TypeError), (None, TypeError),
                                               (0, ValueError), (-3, ValueError)])
def test_bad_n_directions_is_refused_before_any_work(n_directions, exc):
    for err in _run_every_check(n_directions=n_directions):
        assert isinstance(err, exc) and "n_directions must be a positive integer" in str(err)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(max_full="5000"), TypeError, "max_full must be a non-negative integer"),
    (dict(max_full=10.0), TypeError, "max_full must be a non-negative integer"),
    (dict(max_full=-1), ValueError, "max_full must be a non-negative integer"),
    (dict(directional="yes"), TypeError, "directional must be None"),
    (dict(directional=1), TypeError, "directional must be None"),
])
def test_bad_mode_arguments_are_refused_before_any_work(kwargs, exc, words):
    for err in _run_every_check(**kwargs):
        assert isinstance(err, exc) and words in str(err), str(err)


def test_non_callables_and_flags_are_refused_naming_the_argument():
    x = np.ones(3)
    with pytest.raises(TypeError, match="f must be a callable"):
        check_gradient("f", x, 2 * x)
    with pytest.raises(TypeError, match="f must be a callable"):
        numerical_gradient(None, x)
    with pytest.raises(TypeError, match="f must be a callable"):
        check_directional(3.0, x, 2 * x)
    fv = _Counting(lambda z: z ** 2)
    with pytest.raises(TypeError, match="vjp must be a callable"):
        check_vjp(fv, x, 2 * x)
    assert fv.calls == 0
    f = _Counting(lambda z: np.sum(z ** 2))
    with pytest.raises(TypeError, match="kink_fn must be a callable"):
        check_gradient(f, x, 2 * x, kink_fn=np.zeros(3, bool))
    with pytest.raises(TypeError, match="return_error must be True or False"):
        numerical_gradient(f, x, return_error="yes")
    assert f.calls == 0


def test_random_state_types_and_no_seed_alias():
    f, x, grad = _big_problem(200)
    bad = grad + 1e-3 * np.random.default_rng(0).standard_normal(grad.shape)

    def err(random_state):
        return check_directional(f, x, bad, n_directions=4,
                                 random_state=random_state).max_rel_error

    # an int, a Generator seeded by it and a RandomState all give reproducible draws
    assert err(7) == err(7) == err(np.random.default_rng(7))
    assert err(np.random.RandomState(3)) == err(np.random.RandomState(3))
    assert err(7) != err(8)
    assert check_directional(f, x, grad, random_state=None).passed
    # a Generator is advanced, so two checks sharing one draw different directions
    g = np.random.default_rng(7)
    assert err(g) != err(g)
    for fn, args in ((check_directional, (f, x, grad)),
                     (check_vjp, (lambda z: z, x, lambda g: g)),
                     (check_layer, (Linear(4, 4), X4)), (check_model, (TiedAutoencoder(), XM))):
        with pytest.raises(TypeError, match="seed"):
            fn(*args, seed=0)
    res = check_layer(Linear(4, 4), X4, random_state=np.random.default_rng(1))
    assert "random_state=Generator" in res.report()
    assert "random_state=5" in check_layer(Linear(4, 4), X4, random_state=5).report()


def test_audit_validates_random_state_and_rtol_first():
    from npcae.audit import run_audit
    with pytest.raises(TypeError, match="rtol must be a positive finite number"):
        run_audit(rtol="1e-7")
    with pytest.raises(ValueError, match="rtol must be positive"):
        run_audit(rtol=-1.0)
    with pytest.raises(ValueError, match="random_state must be a non-negative"):
        run_audit(random_state=-1)
    with pytest.raises(TypeError, match="random_state must be None"):
        run_audit(random_state="0")
    with pytest.raises(TypeError, match="seed"):
        run_audit(seed=0)


def test_public_api_reads_in_the_public_module():
    """npcae.gradcheck defines its API and result types itself; the machinery (steps,
    Richardson, complex step, kinks) lives beside it in npcae.gradcheck._engine."""
    import npcae.gradcheck as gc
    from npcae.gradcheck import _engine
    for name in ("numerical_gradient", "check_gradient", "check_directional", "check_vjp",
                 "check_layer", "check_model", "GradCheckResult", "LayerCheckResult",
                 "ModelCheckResult"):
        assert getattr(gc, name).__module__ == "npcae.gradcheck", name
    assert gc.METHODS is _engine.METHODS and gc.DEFAULT_STEPS is _engine.DEFAULT_STEPS
    assert not hasattr(_engine, "check_gradient")
