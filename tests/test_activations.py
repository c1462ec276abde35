"""Activations: values against independent formulas, phi' and phi'' against numerical
derivatives (npcae.gradcheck), stability for |a| up to 1e4, and get_activation.

Numerical derivatives
---------------------
* analytic code paths (sigmoid, tanh, the softplus derivatives, identity) use the
  complex step on the whole array with ``atol=0``: the imaginary part of
  ``sum(f(a + i t e_k))`` comes from entry ``k`` alone and is exact to rounding, so the
  comparison is a genuine per-entry *relative* error;
* the rest (softplus value, relu, leaky_relu) are checked entry by entry as 1-element
  problems (Richardson / central differences), so one large entry's rounding noise
  cannot hide a small entry's error.

Precision range: sigmoid' = h(1-h) and tanh' = 1-h^2 are computed from h = phi(a),
which keeps full *relative* precision only while 1-h is well above eps (|a| <~ 8 for
tanh, a <~ 20 for sigmoid); beyond that they keep *absolute* precision (tested in
``test_derivatives_absolute_accuracy_in_the_tails``). See docs/derivations.md#activations.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npcae.activations import (ACTIVATIONS, ActivationFunction, Identity, LeakyReLU, ReLU,
                               Sigmoid, Softplus, Tanh, get_activation, identity, leaky_relu,
                               relu, sigmoid, softplus, tanh)
from npcae.gradcheck import check_gradient

ALL = ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity"]
SMOOTH = ["sigmoid", "tanh", "softplus", "identity"]
KINKED = ["relu", "leaky_relu"]


# --------------------------------------------------------------------------- helpers
def make(name):
    """Instances under test; leaky_relu with a non-default alpha so alpha is exercised."""
    return LeakyReLU(alpha=0.2) if name == "leaky_relu" else get_activation(name)


@st.composite
def batches(draw, lo=-8.0, hi=8.0, away_from_zero=False):
    n = draw(st.integers(1, 8))
    d = draw(st.integers(1, 12))
    if away_from_zero:
        elements = st.one_of(st.floats(lo, -1e-3), st.floats(1e-3, hi))
    else:
        elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return draw(arrays(np.float64, (n, d), elements=elements))


def _ref_sigmoid(a):
    """Stable two-branch logistic with full relative precision in both tails."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _ref_tanh(a):
    """tanh from expm1 (full relative precision near 0), odd symmetry."""
    em = np.expm1(-2.0 * np.abs(a))
    return -np.sign(a) * em / (2.0 + em)


REFERENCE = {
    "sigmoid": _ref_sigmoid,
    "tanh": _ref_tanh,
    "relu": lambda a: np.where(a > 0, a, 0.0),
    "leaky_relu": lambda a: np.where(a > 0, a, 0.2 * a),
    "softplus": lambda a: np.logaddexp(0.0, a),
    "identity": lambda a: a,
}


def _ref_d1(name, a):
    """Exact phi'(a) written in terms of a (not h), full relative precision."""
    if name == "sigmoid":
        e = np.exp(-np.abs(a))
        return e / (1.0 + e) ** 2
    if name == "tanh":
        c = np.cosh(a)
        return 1.0 / (c * c)
    if name == "softplus":
        return _ref_sigmoid(a)
    raise KeyError(name)


def _ref_d2(name, a):
    if name == "sigmoid":
        e = np.exp(-np.abs(a))
        return np.sign(a) * e * np.expm1(-np.abs(a)) / (1.0 + e) ** 3  # odd about 0
    if name == "tanh":
        c = np.cosh(a)
        return -2.0 * np.tanh(a) / (c * c)
    if name == "softplus":
        e = np.exp(-np.abs(a))
        return e / (1.0 + e) ** 2
    raise KeyError(name)


def d1_of(phi):
    return lambda a: phi.derivative(a, phi.value(a))


def d2_of(phi):
    return lambda a: phi.second_derivative(a, phi.value(a))


def assert_derivative(fn, deriv, a, method, rtol=1e-7, atol=0.0):
    """``deriv`` (array) must be the derivative of the elementwise ``fn`` at every a_k.

    complex: one check of ``sum(fn)`` with the given ``atol`` (default 0: purely relative);
    otherwise every entry is its own 1-element problem with the checker's noise-floor atol.
    """
    if method == "complex":
        res = check_gradient(lambda z: np.sum(fn(z)), a, deriv, method="complex", rtol=rtol,
                             atol=atol, detect_kinks=False)
        assert res.passed, res.report()
        return
    for k in np.ndindex(a.shape):
        x = np.array([a[k]])
        res = check_gradient(lambda z: fn(z)[0], x, np.array([deriv[k]]), method=method,
                             rtol=rtol, detect_kinks=False, name=f"a{k}")
        assert res.passed, res.report()


# ------------------------------------------------------------------------ values
@pytest.mark.parametrize("name", ALL)
@given(a=batches(-40.0, 40.0))
def test_value_matches_reference_formula(name, a):
    phi = make(name)
    h = phi.value(a)
    assert h.shape == a.shape and h.dtype == np.float64
    np.testing.assert_allclose(h, REFERENCE[name](a), rtol=1e-14, atol=0)
    np.testing.assert_array_equal(phi(a), h)           # __call__ == value


@pytest.mark.parametrize("name", ALL)
def test_value_out_argument_and_no_input_mutation(name):
    phi = make(name)
    a = np.linspace(-5, 5, 24).reshape(4, 6)
    a_copy = a.copy()
    out = np.empty_like(a)
    res = phi.value(a, out=out)
    assert res is out
    np.testing.assert_allclose(out, REFERENCE[name](a), rtol=1e-14, atol=0)
    np.testing.assert_array_equal(a, a_copy)
    h = phi.value(a)
    phi.derivative(a, h), phi.second_derivative(a, h)
    np.testing.assert_array_equal(a, a_copy)


def test_sigmoid_negative_tail_full_relative_precision():
    # exact value (50-digit mpmath): 1/(1+e^30) = 9.3576229688392989538e-14
    exact = 9.3576229688392989538e-14
    got = float(sigmoid(np.array([-30.0]))[0])
    assert abs(got - exact) / exact < 1e-12
    assert abs(got - 9.357622968840175e-14) / 9.357622968840175e-14 < 1e-12
    # deeper tail: sigma(-a) = e^{-a} / (1 + e^{-a}) keeps relative precision down to underflow
    for a, ref in [(-40.0, 4.2483542552915889773e-18), (-50.0, 1.928749847963917783e-22),
                   (-700.0, math.exp(-700.0))]:
        got = float(sigmoid(np.array([a]))[0])
        assert abs(got - ref) / ref < 1e-12, (a, got, ref)
    # derivative there too: h(1 - h) with 1 - h exact
    d = float(sigmoid.derivative(None, sigmoid(np.array([-30.0])))[0])
    assert abs(d - 9.3576229688384233028e-14) / 9.3576229688384233028e-14 < 1e-12


def test_sigmoid_value_via_tanh_is_absolutely_but_not_relatively_exact():
    """``Sigmoid.value_via_tanh`` (the training loop's sigmoid, (1 + tanh(a/2)) / 2) agrees
    with ``value`` to an ulp of 1 everywhere, is only roughly right relatively in the negative
    tail (about four correct digits at a = -30), fills ``out`` and is complex-step safe."""
    a = np.linspace(-40.0, 40.0, 2001)
    np.testing.assert_allclose(Sigmoid.value_via_tanh(a), sigmoid(a), rtol=0, atol=2.5e-16)
    far = float(Sigmoid.value_via_tanh(np.array([-30.0]))[0])
    assert abs(far - 9.3576229688392989538e-14) / 9.3576229688392989538e-14 < 1e-3
    out = np.empty_like(a)
    assert Sigmoid.value_via_tanh(a, out=out) is out
    z = np.array([0.3 + 1e-20j])
    assert Sigmoid.value_via_tanh(z).imag[0] / 1e-20 == pytest.approx(
        float(sigmoid.derivative(None, sigmoid(np.array([0.3])))[0]), rel=1e-14)


def test_softplus_large_arguments():
    a = np.array([40.0, 50.0, 100.0, 1e3, 1e4])
    np.testing.assert_array_equal(softplus(a), a)       # log1p(e^-a) < eps * a / 2
    np.testing.assert_array_equal(softplus(-np.array([800.0, 1e3, 1e4])), 0.0)
    # moderate negative tail: softplus(-a) = log1p(e^-a) ~ e^-a to full relative precision
    for a, ref in [(-40.0, 4.2483542552915889863e-18), (-50.0, 1.928749847963917783e-22),
                   (-30.0, 9.3576229688397367794e-14)]:
        got = float(softplus(np.array([a]))[0])
        assert abs(got - ref) / ref < 1e-12
    # 20 + 2.06e-9 and 30 + 9.4e-14 (mpmath) to precision
    np.testing.assert_allclose(softplus(np.array([20.0, 30.0])),
                               [20.00000000206115362, 30.000000000000093576], rtol=1e-15)
    for dt in (np.float32, np.float64):
        big = np.array([-1e4, 1e4], dtype=dt)
        np.testing.assert_array_equal(softplus(big), np.array([0.0, 1e4], dtype=dt))


# ------------------------------------------------------------------ derivatives
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "identity"])
@given(a=batches())
def test_first_derivative_complex_step(name, a):
    phi = make(name)
    assert_derivative(phi.value, d1_of(phi)(a), a, "complex")


@given(a=batches())
def test_softplus_first_derivative_richardson(a):
    # softplus.value uses |a| and max(a, 0): not complex-safe, so Richardson entry by entry
    assert_derivative(softplus.value, d1_of(softplus)(a), a, "richardson")


@pytest.mark.parametrize("name", SMOOTH)
@given(a=batches())
def test_second_derivative_complex_step(name, a):
    # atol 1e-15 (~ 5 eps * max|phi''|): sigma'' = h(1-h)(1-2h) has a zero at a = 0 where
    # 1 - 2h cancels, so it is accurate to ~eps absolutely, not relatively, near a = 0.
    phi = make(name)
    assert_derivative(d1_of(phi), d2_of(phi)(a), a, "complex", atol=1e-15)


@pytest.mark.parametrize("name", SMOOTH)
@given(a=batches())
def test_second_derivative_richardson(name, a):
    # the same property with an estimate that does not rely on complex arithmetic
    phi = make(name)
    assert_derivative(d1_of(phi), d2_of(phi)(a), a, "richardson")


@pytest.mark.parametrize("name", KINKED)
@given(a=batches(away_from_zero=True))
def test_kinked_derivatives_away_from_the_kink(name, a):
    phi = make(name)
    assert_derivative(phi.value, d1_of(phi)(a), a, "central")
    assert_derivative(d1_of(phi), d2_of(phi)(a), a, "central")
    np.testing.assert_array_equal(d2_of(phi)(a), 0.0)


def test_kink_conventions_at_zero():
    a = np.array([[-0.0, 0.0, 1e-300, -1e-300]])
    np.testing.assert_array_equal(relu.derivative(a, relu(a)), [[0.0, 0.0, 1.0, 0.0]])
    lk = LeakyReLU(0.2)
    np.testing.assert_array_equal(lk.derivative(a, lk(a)), [[0.2, 0.2, 1.0, 0.2]])
    assert relu.kinked and leaky_relu.kinked
    assert not any(get_activation(n).kinked for n in SMOOTH)
    # a gradient check straight across the kink: the checker excludes exactly those entries
    x = np.array([-1.0, 0.0, 0.5, 0.0, 2.0])
    res = check_gradient(lambda z: np.sum(relu(z)), x, relu.derivative(x, relu(x)))
    assert res.passed, res.report()
    assert sorted(res.kinks) == [(1,), (3,)]


@pytest.mark.parametrize("name", SMOOTH[:3])
@given(a=batches(-40.0, 40.0))
def test_derivatives_match_closed_forms_in_a(name, a):
    """phi', phi'' computed from h agree with closed forms written in a.

    The bound is ``4 eps`` absolute plus ``1e-13`` relative: 1 - h^2 and h(1 - h) lose
    relative (not absolute) precision as h -> +-1, e.g. tanh'(6) is off by ~2e-12 relative.
    """
    phi = make(name)
    eps = np.finfo(np.float64).eps
    np.testing.assert_allclose(d1_of(phi)(a), _ref_d1(name, a), rtol=1e-13, atol=4 * eps)
    np.testing.assert_allclose(d2_of(phi)(a), _ref_d2(name, a), rtol=1e-13, atol=4 * eps)


@pytest.mark.parametrize("name", SMOOTH[:3])
def test_derivatives_absolute_accuracy_in_the_tails(name):
    """For |a| up to 40 the h-based formulas are accurate to a few eps in absolute terms."""
    a = np.linspace(-40.0, 40.0, 801)
    phi = make(name)
    assert np.max(np.abs(d1_of(phi)(a) - _ref_d1(name, a))) < 4 * np.finfo(float).eps
    assert np.max(np.abs(d2_of(phi)(a) - _ref_d2(name, a))) < 4 * np.finfo(float).eps


@pytest.mark.parametrize("name", SMOOTH[:3])
def test_harness_detects_a_slightly_wrong_derivative(name):
    """Test the tester: a derivative off by 1e-6 (relative) or a sign must fail."""
    phi = make(name)
    a = np.linspace(-3.0, 3.0, 12).reshape(3, 4) + 0.01
    for bad in (d1_of(phi)(a) * (1 + 1e-6), -d1_of(phi)(a), d1_of(phi)(a) + 1e-6):
        res = check_gradient(lambda z: np.sum(phi.value(z)), a, bad, method="complex",
                             rtol=1e-7, atol=0.0)
        assert not res.passed
    bad2 = d2_of(phi)(a) * (1 + 1e-6)
    with pytest.raises(AssertionError):
        assert_derivative(d1_of(phi), bad2, a, "richardson")


# -------------------------------------------------------------------- stability
STABILITY_POINTS = [-1e4, -1e3, -710.0, -100.0, -89.0, -30.0, -1.0, -0.0, 0.0, 1e-30,
                    1.0, 30.0, 89.0, 100.0, 710.0, 1e3, 1e4]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ALL)
def test_no_warnings_and_finite_for_large_arguments(name, dtype):
    phi = make(name)
    a = np.array(STABILITY_POINTS, dtype=dtype).reshape(1, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            h = phi.value(a)
            d1 = phi.derivative(a, h)
            d2 = phi.second_derivative(a, h)
    for arr in (h, d1, d2):
        assert arr.shape == a.shape
        assert arr.dtype == dtype, (name, arr.dtype)   # float32 stays float32
        assert np.all(np.isfinite(arr))
    # and the limits are right
    ref = REFERENCE[name](a.astype(np.float64))
    # (atol = tiny: sigmoid(-89) in float32 and sigmoid(-710) in float64 are subnormal)
    np.testing.assert_allclose(h.astype(np.float64), ref,
                               rtol=4 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ALL)
@given(data=st.data())
def test_no_warnings_random_large_arrays(name, dtype, data):
    width = 32 if dtype == np.float32 else 64
    a = data.draw(arrays(dtype, st.tuples(st.integers(1, 8), st.integers(1, 12)),
                         elements=st.floats(-1e4, 1e4, width=width)))
    phi = make(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            h = phi.value(a)
            vals = (h, phi.derivative(a, h), phi.second_derivative(a, h))
    for arr in vals:
        assert arr.dtype == dtype and np.all(np.isfinite(arr))
    h = vals[0]
    if name == "sigmoid":
        assert np.all((h >= 0) & (h <= 1))
    elif name == "tanh":
        assert np.all(np.abs(h) <= 1)
    elif name in ("relu", "softplus"):
        assert np.all(h >= 0)


def test_ranges_and_symmetries():
    a = np.linspace(-50, 50, 1001)
    s = sigmoid(a)
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(s + sigmoid(-a), 1.0, rtol=0, atol=2 * np.finfo(float).eps)
    np.testing.assert_allclose(tanh(-a), -tanh(a), rtol=0, atol=0)
    np.testing.assert_allclose(softplus(a) - softplus(-a), a, rtol=0, atol=1e-13)


# ------------------------------------------------------------------ get_activation
@pytest.mark.parametrize("name", ALL)
def test_get_activation_by_name_config_and_instance(name):
    phi = get_activation(name)
    assert isinstance(phi, ActivationFunction) and phi.name == name
    assert get_activation(name.upper()) == phi
    assert get_activation(phi) is phi
    cfg = make(name).get_config()
    back = get_activation(cfg)
    assert back == make(name) and back.get_config() == cfg
    assert cfg == {"name": name, **({"alpha": 0.2} if name == "leaky_relu" else {})}


def test_get_activation_classes_and_kwargs():
    expected = {"sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU,
                "softplus": Softplus, "identity": Identity, "linear": Identity}
    for name, cls in expected.items():
        assert type(get_activation(name)) is cls
    lk = get_activation("leaky_relu", alpha=0.3)
    assert lk.alpha == 0.3 and lk != leaky_relu
    assert get_activation({"name": "leaky_relu"}, alpha=0.5).alpha == 0.5
    assert leaky_relu.alpha == 0.01 and identity == get_activation("linear")
    assert hash(get_activation("tanh")) == hash(tanh)


@pytest.mark.parametrize("bad", ["softmax", "", "sigmod", None, 3, {"name": "gelu"}, {}])
def test_get_activation_unknown_names_choices(bad):
    with pytest.raises(ValueError) as exc:
        get_activation(bad)
    msg = str(exc.value)
    for choice in ACTIVATIONS:
        assert choice in msg


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf")])
def test_leaky_relu_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        LeakyReLU(alpha)
