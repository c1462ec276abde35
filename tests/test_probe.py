"""Linear probe and PCA (npcae._probe): the objective against a loop-by-loop reference and
its gradient against npcae.gradcheck (float64, rtol 1e-7), known answers (separable data,
constructed mistakes, scikit-learn's solution of the same objective), the per-class
bookkeeping, PCA's known answers, input validation, and the demo end to end."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npcae._probe import PCA, ProbeResult, linear_probe, probe_loss_and_grad
from npcae.gradcheck import check_gradient

RTOL = 1e-7


def blobs(n_per_class, centres, spread=0.3, random_state=0):
    """Gaussian blobs around ``centres`` (C, d): labels 0..C-1, rows shuffled."""
    rng = np.random.default_rng(random_state)
    centres = np.asarray(centres, dtype=float)
    y = np.repeat(np.arange(len(centres)), n_per_class)
    Z = centres[y] + spread * rng.standard_normal((len(y), centres.shape[1]))
    order = rng.permutation(len(y))
    return Z[order], y[order]


def ref_objective(W, b, Z, y, alpha):
    """The objective written the long way: per sample, log of the softmax probability."""
    total = 0.0
    for z, label in zip(Z, y):
        s = [sum(z[j] * W[j, c] for j in range(len(z))) + b[c] for c in range(W.shape[1])]
        m = max(s)
        total -= s[label] - m - np.log(sum(np.exp(v - m) for v in s))
    return total / len(Z) + 0.5 * alpha * sum(w * w for w in W.ravel())


# ------------------------------------------------------------------- objective and gradient
@st.composite
def problems(draw):
    n = draw(st.integers(1, 12))
    d = draw(st.integers(1, 6))
    C = draw(st.integers(2, 5))
    alpha = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0, 10.0]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    rng = np.random.default_rng(seed)
    W = scale * rng.standard_normal((d, C))
    b = rng.standard_normal(C)
    Z = rng.standard_normal((n, d))
    y = rng.integers(0, C, n)
    return W, b, Z, y, alpha


@given(problems())
def test_objective_matches_the_long_way(problem):
    W, b, Z, y, alpha = problem
    value, _ = probe_loss_and_grad(W, b, Z, y, alpha)
    assert value == pytest.approx(ref_objective(W, b, Z, y, alpha), rel=1e-12, abs=1e-13)


@given(problems())
def test_gradient_passes_the_checker(problem):
    W, b, Z, y, alpha = problem
    _, grads = probe_loss_and_grad(W, b, Z, y, alpha)
    assert grads["W"].shape == W.shape and grads["b"].shape == b.shape
    res_W = check_gradient(lambda w: probe_loss_and_grad(w, b, Z, y, alpha)[0], W, grads["W"],
                           rtol=RTOL, name="W")
    res_b = check_gradient(lambda c: probe_loss_and_grad(W, c, Z, y, alpha)[0], b, grads["b"],
                           rtol=RTOL, name="b")
    assert res_W.passed, res_W.report()
    assert res_b.passed, res_b.report()


def test_the_checker_catches_a_missing_l2_term():
    """The gradient test can fail: dropping alpha W from dL/dW is caught."""
    rng = np.random.default_rng(0)
    W, b, Z, y = rng.standard_normal((4, 3)), rng.standard_normal(3), \
        rng.standard_normal((10, 4)), rng.integers(0, 3, 10)
    _, grads = probe_loss_and_grad(W, b, Z, y, 0.5)
    wrong = grads["W"] - 0.5 * W
    res = check_gradient(lambda w: probe_loss_and_grad(w, b, Z, y, 0.5)[0], W, wrong, rtol=RTOL)
    assert not res.passed


def test_bias_is_not_penalised():
    """alpha changes the value by alpha/2 ||W||^2 only, and the b gradient not at all."""
    rng = np.random.default_rng(1)
    W, b, Z, y = rng.standard_normal((3, 4)), rng.standard_normal(4), \
        rng.standard_normal((7, 3)), rng.integers(0, 4, 7)
    v0, g0 = probe_loss_and_grad(W, b, Z, y, 0.0)
    v1, g1 = probe_loss_and_grad(W, b, Z, y, 2.0)
    assert v1 - v0 == pytest.approx(np.sum(W * W), rel=1e-12)
    np.testing.assert_array_equal(g0["b"], g1["b"])
    np.testing.assert_allclose(g1["W"] - g0["W"], 2.0 * W, rtol=1e-12, atol=1e-15)


def test_objective_is_stable_for_huge_logits():
    W = np.array([[1e4, -1e4, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow is fine
        value, grads = probe_loss_and_grad(W, np.zeros(3), np.array([[1.0], [-1.0]]),
                                           np.array([0, 1]), 0.0)
    assert value == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.isfinite(grads["W"]))


# ----------------------------------------------------------------------------- the probe
def test_separates_linearly_separable_data():
    Z, y = blobs(60, [[4, 0, 0], [0, 4, 0], [0, 0, 4], [-4, -4, -4]], spread=0.5)
    res = linear_probe(Z[:160], y[:160], Z[160:], y[160:], alpha=1e-4)
    assert isinstance(res, ProbeResult)
    assert res.accuracy == 1.0 and res.train_accuracy == 1.0
    assert all(a == 1.0 for a in res.per_class_accuracy.values())
    assert np.array_equal(res.confusion, np.diag(np.diag(res.confusion)))


def test_separates_data_with_a_thin_margin():
    """Two classes separated by a hyperplane with margin 0.02 (in a 5-D cloud of scale 1)."""
    rng = np.random.default_rng(3)
    Z = rng.uniform(-1, 1, (600, 5))
    normal = np.array([1.0, -2.0, 0.5, 0.0, 1.0]) / np.sqrt(6.25)
    margin = Z @ normal - 0.1
    keep = np.abs(margin) > 0.01
    Z, y = Z[keep], (margin[keep] > 0).astype(int)
    res = linear_probe(Z, y, Z, y, alpha=0.0, max_iter=3000)
    assert res.train_accuracy == 1.0 and res.accuracy == 1.0


def test_converged_probe_matches_scikit_learn():
    """The same objective minimised by scikit-learn's L-BFGS (C = 1 / (n alpha), intercept not
    penalised) on the same standardised features: same weights, same predictions."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    Z, y = blobs(50, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], spread=0.8, random_state=2)
    Z = Z * [1.0, 10.0, 0.1, 3.0] + [5.0, -2.0, 0.0, 1.0]        # unequal scales and offsets
    alpha = 0.05
    res = linear_probe(Z, y, Z, y, alpha=alpha, tol=1e-9, max_iter=20000)
    assert res.converged and res.grad_max <= 1e-9
    Zs = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    ref = sklearn.LogisticRegression(C=1.0 / (len(Z) * alpha), tol=1e-12, max_iter=10000)
    ref.fit(Zs, y)
    np.testing.assert_allclose(res.W, ref.coef_.T, atol=1e-6)
    # scikit-learn's intercepts may differ by a common constant (softmax is shift-invariant)
    np.testing.assert_allclose(res.b - res.b.mean(), ref.intercept_ - ref.intercept_.mean(),
                               atol=1e-6)
    np.testing.assert_array_equal(res.predict(Z), ref.predict(Zs))


def test_convex_so_any_start_converges_to_the_same_point():
    Z, y = blobs(40, [[1, 0], [0, 1], [-1, -1]], spread=0.7, random_state=4)
    runs = [linear_probe(Z, y, Z, y, alpha=0.1, tol=1e-10, max_iter=20000, random_state=rs)
            for rs in (None, 0, 1)]
    assert all(r.converged for r in runs)
    for r in runs[1:]:
        np.testing.assert_allclose(r.W, runs[0].W, atol=1e-8)
        # b is unique only up to a common shift (softmax is shift-invariant, b unpenalised)
        np.testing.assert_allclose(r.b - r.b.mean(), runs[0].b - runs[0].b.mean(), atol=1e-8)
        assert r.loss == pytest.approx(runs[0].loss, rel=1e-12)


def test_result_bookkeeping():
    Z, y = blobs(30, [[3, 0], [0, 3], [-3, -3]], spread=0.3)
    res = linear_probe(Z, y, Z, y, alpha=1e-3, tol=1e-6, max_iter=2000)
    assert res.converged == (res.grad_max <= 1e-6)
    assert len(res.loss_curve) == res.n_iter + 1 and res.loss == res.loss_curve[-1]
    assert res.loss < res.loss_curve[0] == pytest.approx(np.log(3))   # W = 0 starts at log C
    value, grads = probe_loss_and_grad(res.W, res.b, (Z - res.mean) / res.scale,
                                       np.searchsorted(res.classes, y), res.alpha)
    assert value == pytest.approx(res.loss, rel=1e-12)
    assert max(np.abs(grads["W"]).max(), np.abs(grads["b"]).max()) == \
        pytest.approx(res.grad_max, rel=1e-9)
    assert "test accuracy 1.0000" in res.summary() and str(res) == res.summary()


def test_max_iter_is_a_hard_stop():
    Z, y = blobs(30, [[1, 0], [0, 1]], spread=1.0)
    res = linear_probe(Z, y, Z, y, max_iter=7, tol=0.0)
    assert res.n_iter == 7 and not res.converged and len(res.loss_curve) == 8


def test_per_class_accuracy_with_planted_mistakes():
    """Test labels deliberately wrong for 3 of class 0's and 1 of class 2's samples:
    per-class accuracies are exactly (n0 - 3)/n0, 1, (n2 - 1)/n2, and they sum to accuracy."""
    centres = [[5, 0], [0, 5], [-5, -5]]
    Z, y = blobs(40, centres, spread=0.4, random_state=5)
    Zt, yt = blobs(20, centres, spread=0.4, random_state=6)
    yt = yt.copy()
    yt[np.flatnonzero(yt == 0)[:3]] = 1
    yt[np.flatnonzero(yt == 2)[:1]] = 0
    res = linear_probe(Z, y, Zt, yt)
    counts = {c: int(np.sum(yt == c)) for c in (0, 1, 2)}
    assert res.class_counts == counts
    assert res.per_class_accuracy[0] == pytest.approx(17 / 18)      # 20 - 3 + 1 samples of "0"
    assert res.per_class_accuracy[1] == pytest.approx(20 / 23)      # 3 planted "1"s are wrong
    assert res.per_class_accuracy[2] == pytest.approx(19 / 19)
    weighted = sum(res.per_class_accuracy[c] * counts[c] for c in counts) / len(yt)
    assert weighted == pytest.approx(res.accuracy, rel=1e-15)
    assert res.accuracy == pytest.approx(56 / 60)
    assert res.confusion.sum() == len(yt)
    np.testing.assert_array_equal(res.confusion.sum(axis=1), [counts[c] for c in (0, 1, 2)])
    assert res.confusion[0, 1] == 0 and res.confusion[1, 0] == 3 and res.confusion[0, 2] == 1


@given(st.integers(2, 6), st.integers(0, 2 ** 31 - 1))
def test_per_class_accuracy_weighted_by_counts_is_the_accuracy(C, seed):
    rng = np.random.default_rng(seed)
    Z, y = rng.standard_normal((40, 3)), rng.integers(0, C, 40)
    y[:C] = np.arange(C)                                 # every class present in training
    Zt, yt = rng.standard_normal((25, 3)), rng.integers(0, C, 25)
    res = linear_probe(Z, y, Zt, yt, max_iter=30)
    total = sum(res.per_class_accuracy[c] * res.class_counts[c] for c in res.class_counts)
    assert total / len(yt) == pytest.approx(res.accuracy, rel=1e-12)
    assert sorted(res.per_class_accuracy) == sorted(set(yt.tolist()))
    assert np.trace(res.confusion) == round(res.accuracy * len(yt))


def test_arbitrary_integer_and_bool_labels():
    Z, y = blobs(30, [[4, 0], [0, 4], [-4, -4]], spread=0.3)
    labels = np.array([-3, 7, 100])
    res = linear_probe(Z, labels[y], Z, labels[y])
    np.testing.assert_array_equal(res.classes, labels)
    np.testing.assert_array_equal(res.predict(Z), labels[y])
    assert set(res.per_class_accuracy) == {-3, 7, 100} and res.accuracy == 1.0
    Zb, yb = blobs(30, [[3, 0], [-3, 0]], spread=0.3)
    res_b = linear_probe(Zb, yb.astype(bool), Zb, yb.astype(bool))
    assert res_b.accuracy == 1.0 and set(res_b.per_class_accuracy) == {0, 1}


def test_constant_columns_are_ignored():
    Z, y = blobs(30, [[4, 0], [0, 4], [-4, -4]], spread=0.5, random_state=7)
    padded = np.hstack([np.zeros((len(Z), 1)), Z, np.full((len(Z), 1), 3.7)])
    base = linear_probe(Z, y, Z, y, alpha=1e-2)
    res = linear_probe(padded, y, padded, y, alpha=1e-2)
    assert np.all(np.isfinite(res.W)) and res.scale[0] == 1.0 and res.scale[-1] == 1.0
    np.testing.assert_array_equal(res.W[[0, -1]], 0.0)
    np.testing.assert_allclose(res.W[1:-1], base.W, rtol=1e-12, atol=1e-14)
    assert res.accuracy == base.accuracy


def test_standardisation_makes_the_probe_scale_invariant():
    Z, y = blobs(30, [[2, 0], [0, 2], [-2, -2]], spread=0.8, random_state=8)
    a = linear_probe(Z, y, Z, y, max_iter=100)
    b = linear_probe(1000.0 * Z + 50.0, y, 1000.0 * Z + 50.0, y, max_iter=100)
    np.testing.assert_allclose(b.W, a.W, rtol=1e-9, atol=1e-12)
    assert a.accuracy == b.accuracy


def test_deterministic_and_inputs_untouched():
    Z, y = blobs(20, [[1, 0], [0, 1]], spread=1.0)
    Z_copy = Z.copy()
    a = linear_probe(Z, y, Z, y, max_iter=50)
    b = linear_probe(Z, y, Z, y, max_iter=50)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.loss_curve == b.loss_curve
    np.testing.assert_array_equal(Z, Z_copy)


def test_float32_and_integer_features_are_accepted():
    Z, y = blobs(20, [[3, 0], [0, 3]], spread=0.3)
    a = linear_probe(Z.astype(np.float32), y, Z.astype(np.float32), y)
    b = linear_probe(np.round(10 * Z).astype(np.int64), y, np.round(10 * Z).astype(np.int64), y)
    assert a.W.dtype == np.float64 and a.accuracy == 1.0 and b.accuracy == 1.0


# ------------------------------------------------------------------------------- errors
GOOD = blobs(10, [[1, 0], [0, 1]])


@pytest.mark.parametrize("change, exc, match", [
    (dict(y_train=GOOD[1][:-1]), ValueError, "Z_train has 20 samples but y_train has 19"),
    (dict(y_test=GOOD[1][:5]), ValueError, "Z_test has 20 samples but y_test has 5"),
    (dict(Z_test=np.zeros((20, 3))), ValueError, "Z_test has 3 features but Z_train has 2"),
    (dict(y_train=GOOD[1].astype(float)), TypeError, r"integer class labels.*astype\(int\)"),
    (dict(y_train=GOOD[1] + 0.5), TypeError, "integer class labels"),
    (dict(y_train=np.array(["a", "b"] * 10)), TypeError, "integer class labels"),
    (dict(y_train=GOOD[1][:, None]), ValueError, r"1-D array.*y.ravel\(\)"),
    (dict(y_train=np.zeros(20, dtype=int)), ValueError, "single class"),
    (dict(y_test=np.full(20, 5)), ValueError, r"never seen in y_train: \[5\]"),
    (dict(Z_train=np.where(np.eye(20, 2) > 0, np.nan, GOOD[0])), ValueError,
     "Z_train contains 2 NaN"),
    (dict(Z_test=np.full((20, 2), np.inf)), ValueError, "Z_test contains 0 NaN and 40 infinite"),
    (dict(Z_train=GOOD[0][:, 0]), ValueError, "Expected a 2-D array for Z_train"),
    (dict(alpha=-1.0), ValueError, "alpha must be a finite number >= 0"),
    (dict(lr=0.0), ValueError, "lr must be a finite number > 0"),
    (dict(tol=np.nan), ValueError, "tol must be a finite number"),
    (dict(max_iter=0), ValueError, "max_iter must be a positive integer"),
    (dict(max_iter=10.0), TypeError, "max_iter must be a positive integer"),
    (dict(random_state=-1), ValueError, "random_state must be a non-negative integer"),
])
def test_errors_say_what_was_wrong(change, exc, match):
    args = dict(Z_train=GOOD[0], y_train=GOOD[1], Z_test=GOOD[0], y_test=GOOD[1])
    args.update(change)
    kwargs = {k: args.pop(k) for k in list(args) if k not in
              ("Z_train", "y_train", "Z_test", "y_test")}
    with pytest.raises(exc, match=match):
        linear_probe(args["Z_train"], args["y_train"], args["Z_test"], args["y_test"], **kwargs)


def test_objective_shape_errors():
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        probe_loss_and_grad(np.zeros((2, 3)), np.zeros(2), np.zeros((4, 2)), np.zeros(4, int))
    with pytest.raises(ValueError, match="Z has 5 features but W has 2 rows"):
        probe_loss_and_grad(np.zeros((2, 3)), np.zeros(3), np.zeros((4, 5)), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        probe_loss_and_grad(np.zeros((2, 3)), np.zeros(3), np.zeros((4, 2)), np.full(4, 3))


def test_predict_checks_the_width():
    res = linear_probe(*GOOD, *GOOD)
    with pytest.raises(ValueError, match="X has 3 features|Z has 3 features"):
        res.predict(np.zeros((2, 3)))


# ---------------------------------------------------------------------------------- PCA
def test_pca_data_on_a_line():
    rng = np.random.default_rng(0)
    direction = np.array([3.0, -4.0, 0.0, 12.0]) / 13.0
    t = rng.standard_normal(50)
    X = 2.0 + np.outer(t, direction)
    pca = PCA(2).fit(X)
    assert pca.explained_variance_ratio_[0] == pytest.approx(1.0, abs=1e-12)
    assert pca.explained_variance_ratio_[1] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(pca.components_[0], direction, atol=1e-12)   # 12/13 > 0: sign
    assert pca.explained_variance_[0] == pytest.approx(np.var(t, ddof=1), rel=1e-12)
    np.testing.assert_allclose(pca.transform(X)[:, 0], t - t.mean(), atol=1e-12)
    np.testing.assert_allclose(PCA(1).fit(X).inverse_transform(PCA(1).fit_transform(X)), X,
                               atol=1e-12)


@given(st.integers(2, 15), st.integers(1, 8), st.integers(0, 2 ** 31 - 1), st.data())
def test_pca_known_answers(n, d, seed, data):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)
    k = data.draw(st.integers(1, min(n, d)))
    pca = PCA(k).fit(X)
    V = pca.components_
    assert V.shape == (k, d)
    np.testing.assert_allclose(V @ V.T, np.eye(k), atol=1e-10)                 # orthonormal
    # eigenvalues of the sample covariance, largest first
    eig = np.sort(np.linalg.eigvalsh(np.atleast_2d(np.cov(X, rowvar=False))))[::-1]
    np.testing.assert_allclose(pca.explained_variance_, eig[:k], rtol=1e-8,
                               atol=1e-10 * eig[0])
    assert pca.total_variance_ == pytest.approx(np.sum(np.var(X, axis=0, ddof=1)), rel=1e-10)
    # reconstruction error of the training data = the sum of the dropped eigenvalues
    R = pca.inverse_transform(pca.transform(X))
    err = np.sum((X - R) ** 2) / (n - 1)
    assert err == pytest.approx(pca.residual_variance_, rel=1e-7, abs=1e-9 * eig[0])
    assert pca.residual_variance_ == pytest.approx(eig[k:].sum(), rel=1e-7, abs=1e-9 * eig[0])
    # scores are centred and uncorrelated, with the explained variances as variances
    T = pca.transform(X)
    np.testing.assert_allclose(T.mean(axis=0), 0.0, atol=1e-10 * (1 + np.abs(X).max()))
    np.testing.assert_allclose(T.T @ T / (n - 1), np.diag(pca.explained_variance_),
                               atol=1e-9 * eig[0])
    # sign convention: each component's largest-magnitude entry is positive
    assert np.all(V[np.arange(k), np.argmax(np.abs(V), axis=1)] > 0)


def test_pca_errors():
    X = np.random.default_rng(0).standard_normal((5, 3))
    with pytest.raises(ValueError, match="at most min\\(n_samples, n_features\\) = 3"):
        PCA(4).fit(X)
    with pytest.raises(ValueError, match="at least 2 samples"):
        PCA(1).fit(X[:1])
    with pytest.raises(TypeError, match="n_components must be a positive integer"):
        PCA(1.5).fit(X)
    with pytest.raises(ValueError, match="not fitted yet"):
        PCA(2).transform(X)
    pca = PCA(2).fit(X)
    with pytest.raises(ValueError, match="4 features"):
        pca.transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="T has 3 columns but this PCA has 2 components"):
        pca.inverse_transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        PCA(1).fit(np.where(np.eye(5, 3) > 0, np.nan, X))
    assert np.all(PCA(2).fit(np.ones((4, 3))).explained_variance_ratio_ == 0.0)


# ------------------------------------------------------------------------------- the demo
@pytest.mark.slow
def test_probe_features_demo_prints_its_tables_and_writes_the_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from conftest import REPO
    out = tmp_path / "out"
    env = {**os.environ, "NPCAE_DATA_DIR": str(tmp_path / "no-mnist")}    # built-in digits
    done = subprocess.run([sys.executable, str(REPO / "demos" / "probe_features.py"), "--out",
                           str(out), "--epochs", "1", "--n-train", "300", "--n-test", "200",
                           "--widths", "16", "32", "--lams", "0", "0.1", "--max-iter", "50"],
                          cwd=REPO / "demos", capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr
    stdout = done.stdout
    assert "built-in procedural digits" in stdout and "nan" not in stdout.lower(), stdout
    lines = stdout.splitlines()
    head = lines.index(next(line for line in lines if line.startswith("feature")))
    assert lines[head].split()[1:] == ["16", "32"]
    rows = lines[head + 1:head + 8]
    kinds = ("raw pixels", "PCA", "AE", "DAE", "sparse AE", "CAE", "stacked CAE")
    for kind, row in zip(kinds, rows):
        assert row.startswith(kind + " "), (kind, row)
        values = [float(v) for v in row[len(kind):].split()]
        assert len(values) == 2 and all(0.0 <= v <= 1.0 for v in values), row
    assert any(line.startswith("CAE accuracy against lam") for line in lines)
    assert (out / "cae_accuracy_vs_lam.png").stat().st_size > 0
