"""Losses: values against independent straightforward formulas, gradients against
npcae.gradcheck (float64, rtol 1e-7), the batch/feature convention, stability at the
edges, and input validation."""
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npcae.gradcheck import DEFAULT_STEPS, check_gradient
from npcae.losses import (LOSSES, bce, bce_with_logits, bce_with_logits_into, cosine,
                          get_loss, kl_divergence, mse, softmax_cross_entropy)

RTOL = 1e-7
EPS = np.finfo(np.float64).eps
shapes = st.tuples(st.integers(1, 8), st.integers(1, 12))


def fl(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def pairs(draw, pred_elems, target_elems):
    shape = draw(shapes)
    return (draw(arrays(np.float64, shape, elements=pred_elems)),
            draw(arrays(np.float64, shape, elements=target_elems)))


# ---------------------------------------------------- independent reference values
# Written the long way on purpose: per sample, per feature, in Python floats via numpy
# scalars, so they share no vectorised trick with the code under test.
def ref_mse(p, t):
    return sum(sum((pi - ti) ** 2 for pi, ti in zip(pr, tr)) for pr, tr in zip(p, t)) / len(p)


def ref_bce(p, t):
    total = 0.0
    for pr, tr in zip(p, t):
        for r, x in zip(pr, tr):
            total -= x * np.log(r) + (1 - x) * np.log(1 - r)
    return total / len(p)


def ref_bce_logits(z, t):
    """-x log sigma(z) - (1-x) log(1-sigma(z)) with log sigma(z) = -logaddexp(0, -z)."""
    total = 0.0
    for zr, tr in zip(z, t):
        for zz, x in zip(zr, tr):
            total += x * np.logaddexp(0.0, -zz) + (1 - x) * np.logaddexp(0.0, zz)
    return total / len(z)


def ref_kl(q, x):
    total = 0.0
    for qr, xr in zip(q, x):
        for qq, xx in zip(qr, xr):
            if xx > 0:
                total += xx * np.log(xx / qq)
    return total / len(q)


def ref_cosine(u, v):
    total = 0.0
    for ur, vr in zip(u, v):
        total += 1.0 - np.dot(ur, vr) / (np.linalg.norm(ur) * np.linalg.norm(vr))
    return total / len(u)


def ref_softmax_ce(z, y):
    total = 0.0
    for zr, label in zip(z, y):
        total += -np.log(np.exp(zr[label]) / np.sum(np.exp(zr)))
    return total / len(z)


def check_grad(loss_fn, pred, target, grad, method="central", atol=None):
    """Every loss is smooth where it is checked, so kink detection is off: no entry can be
    excused. ``atol`` None = the checker's noise floor."""
    res = check_gradient(lambda p: loss_fn(p, target)[0], pred, grad, rtol=RTOL,
                         method=method, atol=atol, name="pred", detect_kinks=False)
    assert res.passed, res.report()
    assert not res.kinks and res.n_checked == pred.size
    return res


# ------------------------------------------------------------------------ mse
@given(pq=pairs(fl(-3, 3), fl(-3, 3)))
def test_mse_value_and_gradient(pq):
    p, t = pq
    value, grad = mse(p, t)
    assert isinstance(value, float) and grad.shape == p.shape
    assert value == pytest.approx(ref_mse(p, t), rel=1e-12, abs=1e-300)
    check_grad(mse, p, t, grad)
    np.testing.assert_allclose(grad, 2.0 * (p - t) / len(p), rtol=1e-15)


@pytest.mark.parametrize("x0", [1.0, 0.3, -1.7, 3.0])
def test_mse_gradient_check_at_its_exact_minimum(x0):
    """pred == target: the gradient is exactly 0 and is correct, so it must pass.

    Minimal form of a draw the property test above finds. At the minimum L = 0, so the
    checker's default atol (proportional to |L|) is ~0, while central differences whose
    realised steps (x+t)-x and x-(x+t) differ by an ulp carry a bias (w+ - w-) f''/2 of
    order eps*|x| (here ~1.9e-16 for x = 1). If this fails, the checker is at fault
    (npcae.gradcheck's noise floor), not mse.
    """
    p = np.full((1, 1), x0)
    value, grad = mse(p, p.copy())
    assert value == 0.0 and np.all(grad == 0.0)
    for method in ("central", "richardson"):
        check_grad(mse, p, p.copy(), grad, method=method)


# ------------------------------------------------------------------------ bce
@given(pq=pairs(fl(0.01, 0.99), fl(0.0, 1.0)))
def test_bce_value_and_gradient(pq):
    p, t = pq
    value, grad = bce(p, t)
    assert value == pytest.approx(ref_bce(p, t), rel=1e-12)
    check_grad(bce, p, t, grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_safe_at_exactly_zero_and_one(dtype):
    p = np.array([[0.0, 1.0, 0.0, 1.0, 0.5]], dtype=dtype)
    t = np.array([[0.0, 1.0, 1.0, 0.0, 0.5]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            value, grad = bce(p, t)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    eps = 1e-7 if dtype == np.float32 else 1e-12
    # the two confident-and-wrong entries cost about -log(eps) each (1 - (1 - eps) is not
    # exactly eps in floating point), the 0.5/0.5 entry log 2, the right ones ~ eps
    expected = -2 * np.log(eps) + np.log(2.0)
    assert value == pytest.approx(expected, rel=1e-2)
    assert grad[0, 2] < 0 < grad[0, 3]


# ------------------------------------------------------------- bce with logits
@given(pq=pairs(fl(-20, 20), fl(0.0, 1.0)))
def test_bce_with_logits_value_and_gradient(pq):
    z, t = pq
    value, grad = bce_with_logits(z, t)
    assert value == pytest.approx(ref_bce_logits(z, t), rel=1e-12, abs=1e-12)
    check_grad(bce_with_logits, z, t, grad)
    sig = 1.0 / (1.0 + np.exp(-z))
    np.testing.assert_allclose(grad, (sig - t) / len(z), rtol=1e-12, atol=1e-17)


@given(pq=pairs(fl(-8, 8), fl(0.0, 1.0)))
def test_bce_with_logits_equals_bce_of_sigmoid(pq):
    z, t = pq
    r = 1.0 / (1.0 + np.exp(-z))
    v_logit, g_logit = bce_with_logits(z, t)
    v_prob, g_prob = bce(r, t)
    assert v_logit == pytest.approx(v_prob, rel=1e-9, abs=1e-12)
    # chain rule: dL/dz = dL/dr * r (1 - r)
    np.testing.assert_allclose(g_logit, g_prob * r * (1 - r), rtol=1e-8, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_stable_for_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 1e4, -1e4, 0.0], [-1e4, 1e4, 3e3, -7e2, 800.0]], dtype=dtype)
    t = np.array([[0.0, 0.0, 1.0, 1.0, 0.5], [0.0, 1.0, 1.0, 0.0, 0.25]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            value, grad = bce_with_logits(z, t)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and grad.dtype == dtype
    # exact: max(z,0) - x z (+ log 2 at z = 0), the log1p(e^-|z|) terms vanish
    expected = (1e4 + 0 + 0 + 1e4 + np.log(2.0) + 0 + 0 + 0 + 0 + 0.75 * 800.0) / 2
    assert value == pytest.approx(expected, rel=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(grad, (np.array([[1, 0, 0, -1, 0], [0, 0, 0, 0, 0.75]])) / 2,
                               rtol=0, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(pq=pairs(fl(-30, 30), fl(0.0, 1.0)))
def test_bce_with_logits_into_matches_reference(dtype, pq):
    z64, t64 = pq
    z, t = z64.astype(dtype), t64.astype(dtype)
    grad, scratch = np.empty_like(z), np.empty_like(z)
    value = bce_with_logits_into(z, t, grad, scratch)
    v2, g2 = bce_with_logits(z, t)
    assert value == v2
    np.testing.assert_array_equal(grad, g2)
    assert grad.dtype == dtype
    # against the float64 reference evaluated at the same (rounded) inputs
    zr, tr = z.astype(np.float64), t.astype(np.float64)
    ref = ref_bce_logits(zr, tr)
    eps = np.finfo(dtype).eps
    scale = (np.sum(np.abs(zr)) + np.sum(np.abs(zr * tr))) / len(z) + ref
    assert abs(value - ref) <= 64 * eps * scale + 1e-300, (value, ref)
    sig = 1.0 / (1.0 + np.exp(-zr))
    np.testing.assert_allclose(grad, (sig - tr) / len(z), rtol=0, atol=4 * eps)


def test_bce_with_logits_into_allocates_nothing_large():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((256, 784)).astype(np.float32)
    t = rng.uniform(0, 1, (256, 784)).astype(np.float32)
    grad, scratch = np.empty_like(z), np.empty_like(z)
    bce_with_logits_into(z, t, grad, scratch)
    tracemalloc.start()
    try:
        bce_with_logits_into(z, t, grad, scratch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.01 * z.nbytes, peak


# ------------------------------------------------------------------------- kl
@st.composite
def kl_pairs(draw):
    shape = draw(shapes)
    q = draw(arrays(np.float64, shape, elements=fl(0.05, 2.0)))
    x = draw(arrays(np.float64, shape, elements=st.one_of(st.just(0.0), fl(0.01, 2.0))))
    return q, x


@given(qx=kl_pairs())
def test_kl_value_and_gradient(qx):
    q, x = qx
    value, grad = kl_divergence(q, x)
    assert value == pytest.approx(ref_kl(q, x), rel=1e-12, abs=1e-13)
    check_grad(kl_divergence, q, x, grad)


def test_kl_zero_targets_and_identical_distributions():
    x = np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0]])
    assert kl_divergence(x + (x == 0), x)[0] == pytest.approx(0.0, abs=1e-15)
    value, grad = kl_divergence(np.zeros((2, 3)) + 1e-300, np.zeros((2, 3)))
    assert value == 0.0 and np.all(grad == 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        kl_divergence(np.array([[-0.1, 1.0]]), np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="non-negative"):
        kl_divergence(np.array([[0.5, 0.5]]), np.array([[-0.5, 1.5]]))


# --------------------------------------------------------------------- cosine
@given(pq=pairs(fl(-2, 2), fl(-2, 2)))
def test_cosine_value_and_gradient(pq):
    u, v = pq
    assume(np.all(np.linalg.norm(u, axis=1) > 0.1) and np.all(np.linalg.norm(v, axis=1) > 0.1))
    value, grad = cosine(u, v)
    assert value == pytest.approx(ref_cosine(u, v), rel=1e-12, abs=1e-13)
    # Rounding floor. L = mean(1 - c) is a cancellation when u || v (c = 1, L = 0, the
    # gradient is exactly 0), so |L| -- the checker's default noise scale -- says nothing
    # about the rounding there. The evaluations of L carry ~eps * 1 of noise (c <= 1) and
    # the analytic gradient ~eps/(n |u|) (a difference of two terms of size 1/(n |u|)).
    n, h = len(u), DEFAULT_STEPS["central"]
    atol = 64 * EPS * (max(1.0, abs(value)) / h + 1.0 / (n * np.linalg.norm(u, axis=1).min()))
    check_grad(cosine, u, v, grad, atol=atol)
    # scale invariance of the value, and the gradient is orthogonal to u in every row
    assert cosine(3.0 * u, 0.5 * v)[0] == pytest.approx(value, rel=1e-12, abs=1e-13)
    row_dots = np.sum(grad * u, axis=1)
    assert np.all(np.abs(row_dots) <= 1e-12 * np.linalg.norm(grad, axis=1)
                  * np.linalg.norm(u, axis=1) + 1e-15)


def test_cosine_zero_rows_are_finite():
    value, grad = cosine(np.zeros((2, 3)), np.ones((2, 3)))
    assert value == pytest.approx(1.0) and np.all(np.isfinite(grad))


# ------------------------------------------------------------ softmax cross-entropy
@st.composite
def logits_labels(draw):
    n, c = draw(shapes)
    z = draw(arrays(np.float64, (n, c), elements=fl(-10, 10)))
    y = draw(arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return z, y


@given(zy=logits_labels())
def test_softmax_cross_entropy_value_and_gradient(zy):
    z, y = zy
    value, grad = softmax_cross_entropy(z, y)
    assert value == pytest.approx(ref_softmax_ce(z, y), rel=1e-12, abs=1e-14)
    res = check_gradient(lambda zz: softmax_cross_entropy(zz, y)[0], z, grad, rtol=RTOL)
    assert res.passed, res.report()
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)   # rows of p - onehot


@given(zy=logits_labels(), shift=arrays(np.float64, 8, elements=fl(-100, 100)))
def test_softmax_cross_entropy_row_shift_invariance(zy, shift):
    z, y = zy
    c = shift[: len(z), None]
    v0, g0 = softmax_cross_entropy(z, y)
    v1, g1 = softmax_cross_entropy(z + c, y)
    assert v1 == pytest.approx(v0, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(g1, g0, rtol=1e-11, atol=1e-14)


def test_softmax_cross_entropy_huge_logits():
    z = np.array([[1e6, 0.0, -1e6], [5e3, 5e3, 5e3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            value, grad = softmax_cross_entropy(z, np.array([1, 2]))
    assert value == pytest.approx((1e6 + np.log(3.0)) / 2, rel=1e-14)
    np.testing.assert_allclose(grad, [[0.5, -0.5, 0.0], [1 / 6, 1 / 6, -1 / 3]], atol=1e-15)


@pytest.mark.parametrize("labels,exc", [
    (np.array([0.0, 1.0]), TypeError),            # float labels
    (np.array([True, False]), TypeError),         # booleans are not class indices
    (np.array([0, 3]), ValueError),               # out of range (C = 3)
    (np.array([-1, 0]), ValueError),              # negative
    (np.array([0, 1, 2]), ValueError),            # wrong length
    (np.array([[0], [1]]), ValueError),           # wrong shape (n, 1)
    (np.array([[0, 1, 0], [1, 0, 0]]), ValueError),  # one-hot instead of indices
])
def test_softmax_cross_entropy_bad_labels(labels, exc):
    with pytest.raises(exc):
        softmax_cross_entropy(np.zeros((2, 3)), labels)


# ----------------------------------------------------------- the shared convention
@st.composite
def convention_cases(draw):
    name = draw(st.sampled_from(["mse", "bce", "bce_with_logits", "kl_divergence"]))
    shape = draw(shapes)
    if name == "bce":
        p = draw(arrays(np.float64, shape, elements=fl(0.01, 0.99)))
    elif name == "kl_divergence":
        p = draw(arrays(np.float64, shape, elements=fl(0.05, 2.0)))
    else:
        p = draw(arrays(np.float64, shape, elements=fl(-3, 3)))
    hi = 2.0 if name == "kl_divergence" else 1.0
    t = draw(arrays(np.float64, shape, elements=fl(0.0, hi)))
    return LOSSES[name], p, t


@given(case=convention_cases())
def test_sum_over_features_mean_over_batch(case):
    loss, p, t = case
    v, g = loss(p, t)
    # duplicating the batch changes nothing (mean over samples) ...
    v2, g2 = loss(np.vstack([p, p]), np.vstack([t, t]))
    assert v2 == pytest.approx(v, rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(g2, np.vstack([g, g]) / 2, rtol=1e-12, atol=1e-300)
    # ... duplicating the features doubles it (sum over features)
    v3, g3 = loss(np.hstack([p, p]), np.hstack([t, t]))
    assert v3 == pytest.approx(2 * v, rel=1e-12, abs=1e-300)
    np.testing.assert_allclose(g3, np.hstack([g, g]), rtol=1e-12, atol=1e-300)
    # per-sample losses add up: the value of a batch is the mean of the one-row values
    rows = [loss(p[i:i + 1], t[i:i + 1])[0] for i in range(len(p))]
    assert v == pytest.approx(np.mean(rows), rel=1e-12, abs=1e-300)


@given(pq=pairs(fl(-2, 2), fl(-2, 2)))
def test_cosine_and_softmax_batch_mean(pq):
    u, v = pq
    assume(np.all(np.linalg.norm(u, axis=1) > 0.1) and np.all(np.linalg.norm(v, axis=1) > 0.1))
    c1 = cosine(u, v)[0]
    assert cosine(np.vstack([u, u]), np.vstack([v, v]))[0] == pytest.approx(c1, rel=1e-12,
                                                                           abs=1e-14)
    # cosine is per-sample: repeating the features leaves it unchanged (not a feature sum)
    assert cosine(np.hstack([u, u]), np.hstack([v, v]))[0] == pytest.approx(c1, rel=1e-12,
                                                                           abs=1e-14)
    y = np.zeros(len(u), dtype=np.int64)
    s1 = softmax_cross_entropy(u, y)[0]
    assert softmax_cross_entropy(np.vstack([u, u]), np.concatenate([y, y]))[0] == \
        pytest.approx(s1, rel=1e-12)


def test_the_gradient_checks_can_fail():
    """Test the tester: a 1/n missing, a factor 2 missing, or a 1e-6 relative error fail."""
    rng = np.random.default_rng(0)
    p, t = rng.uniform(0.1, 0.9, (4, 5)), rng.uniform(0, 1, (4, 5))
    for loss in (mse, bce, bce_with_logits, kl_divergence, cosine):
        _, g = loss(p, t)
        f = (lambda fn: lambda z: fn(z, t)[0])(loss)
        assert check_gradient(f, p, g, rtol=RTOL).passed
        for bad in (g * len(p), g * (1 + 1e-6), g / 2):
            assert not check_gradient(f, p, bad, rtol=RTOL).passed, loss.__name__


# -------------------------------------------------------------------- validation
ALL_PAIR_LOSSES = [mse, bce, bce_with_logits, kl_divergence, cosine]


@pytest.mark.parametrize("loss", ALL_PAIR_LOSSES)
def test_mismatched_shapes_raise(loss):
    with pytest.raises(ValueError) as exc:
        loss(np.full((2, 3), 0.5), np.full((2, 4), 0.5))
    assert "(2, 3)" in str(exc.value) and "(2, 4)" in str(exc.value)
    with pytest.raises(ValueError):
        loss(np.full((2, 3), 0.5), np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="2-D"):
        loss(np.full(3, 0.5), np.full(3, 0.5))


@pytest.mark.parametrize("loss", ALL_PAIR_LOSSES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_inputs_raise(loss, bad):
    p, t = np.full((2, 3), 0.5), np.full((2, 3), 0.5)
    p[1, 1] = bad
    with pytest.raises(ValueError, match="pred|logits"):
        loss(p, t)
    p[1, 1] = 0.5
    t[0, 2] = bad
    with pytest.raises(ValueError, match="target"):
        loss(p, t)


def test_softmax_cross_entropy_nonfinite_logits_raise():
    z = np.zeros((2, 3))
    z[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        softmax_cross_entropy(z, np.array([0, 1]))


@pytest.mark.parametrize("loss", [bce, bce_with_logits])
@pytest.mark.parametrize("bad_target", [-0.01, 1.01, 255.0])
def test_bce_targets_outside_unit_interval_raise(loss, bad_target):
    t = np.full((2, 3), 0.5)
    t[1, 0] = bad_target
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loss(np.full((2, 3), 0.5), t)


@pytest.mark.parametrize("bad_pred", [-1e-9, 1.0 + 1e-9, 3.0])
def test_bce_probabilities_outside_unit_interval_raise(bad_pred):
    p = np.full((2, 3), 0.5)
    p[0, 1] = bad_pred
    with pytest.raises(ValueError, match="pred"):
        bce(p, np.full((2, 3), 0.5))


def test_integer_inputs_raise_type_error():
    with pytest.raises(TypeError, match="255"):
        mse(np.ones((2, 3), dtype=np.uint8), np.ones((2, 3)))


def test_get_loss():
    for name, fn in LOSSES.items():
        assert get_loss(name) is fn
    assert get_loss(mse) is mse
    with pytest.raises(ValueError, match="mse"):
        get_loss("hinge")


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_bce_training_path_matches_precise_path(dtype, rtol):
    """The tanh-based training path of bce_with_logits_into equals the exp-based one:
    value to rtol, gradient to a few ulps of 1/n in absolute terms."""
    from npcae.losses import bce_with_logits_into
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(50, 30)) * 8).astype(dtype)
    z[0, :4] = [-90.0, 90.0, -1e4, 1e4]
    x = rng.random((50, 30)).astype(dtype)
    out = {}
    for precise in (True, False):
        grad = np.empty_like(z)
        ones = np.ones(z.shape[1], dtype)
        value = bce_with_logits_into(z, x, grad, np.empty_like(z), precise=precise, ones=ones)
        out[precise] = (value, grad)
    assert out[False][0] == pytest.approx(out[True][0], rel=rtol)
    np.testing.assert_allclose(out[False][1], out[True][1], rtol=0,
                               atol=8 * np.finfo(dtype).eps / z.shape[0])


@pytest.mark.parametrize("precise", [True, False])
def test_bce_with_logits_into_may_write_the_gradient_over_the_logits(precise):
    """The CAE computes Z straight into its gradient slot; grad=z must give the same value
    and gradient as separate arrays."""
    rng = np.random.default_rng(4)
    z = (rng.normal(size=(20, 13)) * 6).astype(np.float32)
    x = rng.random((20, 13)).astype(np.float32)
    ones = np.ones(13, np.float32)
    grad = np.empty_like(z)
    value = bce_with_logits_into(z, x, grad, np.empty_like(z), precise=precise, ones=ones)
    z_inplace = z.copy()
    value_inplace = bce_with_logits_into(z_inplace, x, z_inplace, np.empty_like(z),
                                         precise=precise, ones=ones)
    assert value_inplace == value
    np.testing.assert_array_equal(z_inplace, grad)
