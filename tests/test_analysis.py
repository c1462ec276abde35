"""Tests for npcae.analysis, run against small fake models (no real training)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import BARE_PACKAGE_PRELUDE, REPO, run_python

from npcae import analysis


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


class FakeSigmoidEncoder:
    """h = sigmoid(X @ W + b); J = h(1-h)[:, :, None] * W.T."""

    def __init__(self, W, b=None):
        self.params = {"W": np.asarray(W, dtype=np.float64)}
        self.params["b"] = np.zeros(self.params["W"].shape[1]) if b is None else np.asarray(b)
        self.n_features_in_ = self.params["W"].shape[0]
        self.calls = []

    def transform(self, X):
        return _sigmoid(X @ self.params["W"] + self.params["b"])

    def reconstruct(self, X):
        return _sigmoid(self.transform(X) @ self.params["W"].T)

    def jacobian(self, X):
        self.calls.append(len(X))
        h = self.transform(X)
        return (h * (1 - h))[:, :, None] * self.params["W"].T[None]


class FakeLinearEncoder:
    """h = X @ W, so J = W.T everywhere."""

    def __init__(self, W):
        self.params = {"W": np.asarray(W, dtype=np.float64)}
        self.n_features_in_ = self.params["W"].shape[0]

    def transform(self, X):
        return X @ self.params["W"]

    def jacobian(self, X):
        return np.broadcast_to(self.params["W"].T, (len(X),) + self.params["W"].T.shape).copy()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def sigmoid_model(rng):
    d, k = 7, 5
    return FakeSigmoidEncoder(rng.normal(size=(d, k)), rng.normal(size=k))


# --------------------------------------------------------------------- spectrum

def test_spectrum_matches_explicit_svd(sigmoid_model, rng):
    X = rng.normal(size=(23, 7))
    W, b = sigmoid_model.params["W"], sigmoid_model.params["b"]
    s = analysis.jacobian_spectrum(sigmoid_model, X, batch_size=4)
    assert s.shape == (23, 5)
    assert sigmoid_model.calls[:1] == [4] and sum(sigmoid_model.calls) == 23
    for i, x in enumerate(X):
        h = _sigmoid(x @ W + b)
        J = np.diag(h * (1 - h)) @ W.T
        np.testing.assert_allclose(s[i], np.linalg.svd(J, compute_uv=False), rtol=1e-12,
                                   atol=1e-14)
    assert np.all(np.diff(s, axis=1) <= 0)


def test_spectrum_overcomplete_shape(rng):
    model = FakeSigmoidEncoder(rng.normal(size=(3, 8)))
    assert analysis.jacobian_spectrum(model, rng.normal(size=(5, 3))).shape == (5, 3)


def test_spectrum_bad_input(sigmoid_model):
    with pytest.raises(ValueError, match="is expecting 7 features as input"):
        analysis.jacobian_spectrum(sigmoid_model, np.zeros((3, 6)))
    with pytest.raises(ValueError, match="2-D"):
        analysis.jacobian_spectrum(sigmoid_model, np.zeros(7))
    with pytest.raises(TypeError, match="uint8.*255"):
        analysis.jacobian_spectrum(sigmoid_model, np.zeros((3, 7), dtype=np.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        analysis.jacobian_spectrum(sigmoid_model, np.zeros((3, 7)), batch_size=0)
    with pytest.raises(TypeError, match="jacobian"):
        analysis.jacobian_spectrum(object(), np.zeros((3, 7)))


def test_spectrum_rejects_bad_jacobian_shape():
    class Bad:
        def jacobian(self, X):
            return np.zeros((len(X), 4))

    with pytest.raises(ValueError, match=r"expected \(n, k, d\)"):
        analysis.jacobian_spectrum(Bad(), np.zeros((2, 3)))


# --------------------------------------------------------------------- tangents

def test_tangents_unit_orthogonal_and_match_svals(sigmoid_model, rng):
    X = rng.normal(size=(11, 7))
    T, s = analysis.tangent_directions(sigmoid_model, X, n_directions=3, batch_size=5)
    assert T.shape == (11, 3, 7) and s.shape == (11, 3)
    gram = T @ np.swapaxes(T, 1, 2)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(3), gram.shape), atol=1e-12)
    np.testing.assert_allclose(s, analysis.jacobian_spectrum(sigmoid_model, X)[:, :3],
                               rtol=1e-12)
    # J t_j has norm s_j
    J = sigmoid_model.jacobian(X)
    np.testing.assert_allclose(np.linalg.norm(np.einsum("nkd,nmd->nmk", J, T), axis=-1), s,
                               rtol=1e-10)
    # deterministic sign: largest-|entry| is positive
    idx = np.argmax(np.abs(T), axis=-1)
    assert np.all(np.take_along_axis(T, idx[..., None], axis=-1) > 0)


def test_linear_encoder_top_tangent_is_top_singular_vector(rng):
    W = rng.normal(size=(6, 4))
    model = FakeLinearEncoder(W)
    X = rng.normal(size=(5, 6))
    T, s = analysis.tangent_directions(model, X, n_directions=2)
    _, sv, Vt = np.linalg.svd(W.T)
    for i in range(5):
        assert abs(T[i, 0] @ Vt[0]) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(s[i], sv[:2], rtol=1e-12)


def test_tangents_too_many_directions(sigmoid_model):
    with pytest.raises(ValueError, match="min\\(k, d\\) = 5"):
        analysis.tangent_directions(sigmoid_model, np.zeros((2, 7)), n_directions=6)


# --------------------------------------------------------------- contraction

def test_contraction_ratio_scaled_orthogonal_is_exact(rng):
    d, scale = 5, 0.37
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    model = FakeLinearEncoder(scale * Q)
    X = rng.normal(size=(9, d))
    radii = [1e-3, 0.1, 1.0, 10.0]
    ratios = analysis.contraction_ratio(model, X, radii, n_directions=4, random_state=1)
    assert ratios.shape == (4,)
    np.testing.assert_allclose(ratios, scale, rtol=1e-9)


def test_contraction_ratio_linear_matches_monte_carlo(rng):
    # general linear map: ratio is independent of r and equals mean ||W^T u||
    W = rng.normal(size=(4, 3))
    model = FakeLinearEncoder(W)
    X = rng.normal(size=(6, 4))
    r1 = analysis.contraction_ratio(model, X, [0.5, 2.0], n_directions=3, random_state=7)
    np.testing.assert_allclose(r1[0], r1[1], rtol=1e-12)
    g = np.random.default_rng(7).standard_normal((6, 3, 4))
    U = g / np.linalg.norm(g, axis=-1, keepdims=True)
    np.testing.assert_allclose(r1[0], np.linalg.norm(U @ W, axis=-1).mean(), rtol=1e-12)


def test_contraction_ratio_deterministic_and_batch_invariant(sigmoid_model, rng):
    X = rng.normal(size=(13, 7))
    a = analysis.contraction_ratio(sigmoid_model, X, [0.1, 1.0], n_directions=5, random_state=3,
                                   batch_size=5)
    b = analysis.contraction_ratio(sigmoid_model, X, [0.1, 1.0], n_directions=5, random_state=3,
                                   batch_size=1000)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    # sigmoid saturates: the ratio shrinks at large radii
    big = analysis.contraction_ratio(sigmoid_model, X, [1e-4, 100.0], random_state=0)
    assert big[1] < big[0]


def test_contraction_ratio_small_radius_matches_jacobian(sigmoid_model, rng):
    X = rng.normal(size=(4, 7))
    J = sigmoid_model.jacobian(X)
    g = np.random.default_rng(2).standard_normal((4, 6, 7))
    U = g / np.linalg.norm(g, axis=-1, keepdims=True)
    expected = np.linalg.norm(np.einsum("nkd,nmd->nmk", J, U), axis=-1).mean()
    got = analysis.contraction_ratio(sigmoid_model, X, [1e-6], n_directions=6, random_state=2)
    np.testing.assert_allclose(got[0], expected, rtol=1e-4)


@pytest.mark.parametrize("radii", [[], [0.0, 1.0], [-1.0], [np.nan], [[1.0, 2.0]]])
def test_contraction_ratio_bad_radii(sigmoid_model, radii):
    with pytest.raises(ValueError, match="radii"):
        analysis.contraction_ratio(sigmoid_model, np.zeros((2, 7)), radii)


def test_contraction_ratio_random_state_types(sigmoid_model, rng):
    X = rng.normal(size=(6, 7))

    def ratio(random_state):
        return analysis.contraction_ratio(sigmoid_model, X, [0.5], n_directions=3,
                                          random_state=random_state)

    np.testing.assert_array_equal(ratio(3), ratio(np.random.default_rng(3)))
    np.testing.assert_array_equal(ratio(np.random.RandomState(5)),
                                  ratio(np.random.RandomState(5)))
    assert not np.array_equal(ratio(3), ratio(4))
    assert np.all(np.isfinite(ratio(None)))
    gen = np.random.default_rng(3)                  # a Generator is advanced by the draws
    assert not np.array_equal(ratio(gen), ratio(gen))
    calls = []
    sigmoid_model.transform = lambda Z: calls.append(1) or FakeSigmoidEncoder.transform(
        sigmoid_model, Z)
    with pytest.raises(ValueError, match="random_state must be a non-negative integer"):
        ratio(-1)
    for bad in ("0", 1.5, True):
        with pytest.raises(TypeError, match="random_state must be None"):
            ratio(bad)
    assert calls == []                              # refused before any work
    with pytest.raises(TypeError, match="seed"):    # the old name is gone, no alias
        analysis.contraction_ratio(sigmoid_model, X, [0.5], seed=0)


@pytest.mark.parametrize("radii", ["abc", ["0.1", "x"], object()])
def test_contraction_ratio_non_numeric_radii_named(sigmoid_model, radii):
    with pytest.raises(TypeError, match="radii must be a positive number"):
        analysis.contraction_ratio(sigmoid_model, np.zeros((2, 7)), radii)


# ------------------------------------------------------------ subspace angles

def test_subspace_angles_identical_and_orthogonal(rng):
    A = rng.normal(size=(2, 6))
    mix = rng.normal(size=(2, 2))
    np.testing.assert_allclose(analysis.subspace_angles(A, mix @ A), 0.0, atol=1e-7)
    np.testing.assert_allclose(analysis.subspace_angles(A, A), 0.0, atol=1e-7)
    E = np.eye(6)
    np.testing.assert_allclose(analysis.subspace_angles(E[:2], E[2:5]), np.pi / 2,
                               atol=1e-12)


def test_subspace_angles_known_angle_and_small_angles():
    for theta in (1e-9, 1e-4, 0.3, 1.2, np.pi / 2 - 1e-6):
        A = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        B = np.array([[np.cos(theta), np.sin(theta), 0.0]])
        got = analysis.subspace_angles(A, B)
        assert got.shape == (1,)
        assert got[0] == pytest.approx(theta, rel=1e-6, abs=1e-14)
        assert analysis.subspace_angles(B, A)[0] == pytest.approx(theta, rel=1e-6, abs=1e-14)


def test_subspace_angles_batched_and_errors(rng):
    A = rng.normal(size=(4, 2, 5))
    B = rng.normal(size=(4, 3, 5))
    got = analysis.subspace_angles(A, B)
    assert got.shape == (4, 2)
    for i in range(4):
        np.testing.assert_allclose(got[i], analysis.subspace_angles(A[i], B[i]), atol=1e-12)
    assert np.all(np.diff(got, axis=1) >= 0) and np.all((got >= 0) & (got <= np.pi / 2))
    with pytest.raises(ValueError, match="linearly dependent"):
        analysis.subspace_angles(np.array([[1.0, 0, 0], [2.0, 0, 0]]), np.eye(3)[:1])
    with pytest.raises(ValueError, match="same space"):
        analysis.subspace_angles(np.eye(3)[:1], np.eye(4)[:1])


# ------------------------------------------------------------ local PCA

def test_local_pca_recovers_line(rng):
    direction = np.array([1.0, -2.0, 0.5, 3.0])
    direction /= np.linalg.norm(direction)
    offset = np.array([0.3, 0.1, -1.0, 2.0])
    t = rng.uniform(-5, 5, size=200)
    X_ref = offset + t[:, None] * direction
    X_query = offset + np.array([-1.0, 0.0, 2.5])[:, None] * direction
    T, var = analysis.local_pca_tangents(X_ref, X_query, n_neighbors=10, n_components=1,
                                         return_variance=True, batch_size=2)
    assert T.shape == (3, 1, 4) and var.shape == (3, 1)
    np.testing.assert_allclose(np.abs(T[:, 0] @ direction), 1.0, atol=1e-10)
    assert np.all(var > 0)


def test_local_pca_circle_tangent_and_comparison_with_angles(rng):
    # unit circle in 3-D, small noise off the plane; tangent at angle a is (-sin a, cos a, 0)
    a = rng.uniform(0, 2 * np.pi, size=2000)
    X_ref = np.c_[np.cos(a), np.sin(a), 1e-3 * rng.normal(size=a.size)]
    q = np.array([0.0, 1.0, 2.5])
    X_query = np.c_[np.cos(q), np.sin(q), np.zeros(3)]
    T = analysis.local_pca_tangents(X_ref, X_query, n_neighbors=15, n_components=1)
    true = np.c_[-np.sin(q), np.cos(q), np.zeros(3)][:, None, :]
    angles = analysis.subspace_angles(T, true)
    assert angles.shape == (3, 1)
    assert np.all(angles < 0.05)


def test_local_pca_neighbours_match_brute_force(rng):
    X_ref = rng.normal(size=(50, 3))
    X_query = rng.normal(size=(7, 3))
    idx = analysis._nearest_neighbours(X_ref, X_query, 5, batch_size=3)
    D = np.linalg.norm(X_query[:, None] - X_ref[None], axis=-1)
    np.testing.assert_array_equal(idx, np.argsort(D, axis=1)[:, :5])


def test_local_pca_errors(rng):
    X = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="n_neighbors"):
        analysis.local_pca_tangents(X, X, n_neighbors=11)
    with pytest.raises(ValueError, match="n_components"):
        analysis.local_pca_tangents(X, X, n_neighbors=3, n_components=3)
    with pytest.raises(ValueError, match="features"):
        analysis.local_pca_tangents(X, X[:, :2])


# ------------------------------------------------------------ summary

def test_summarize_spectrum():
    s = np.array([[3.0, 0.5, 0.0], [2.0, 1.0, 0.1]])
    out = analysis.summarize_spectrum(s, rank_threshold=0.2)
    np.testing.assert_allclose(out["mean_singular_values"], [2.5, 0.75, 0.05])
    assert out["fraction_below_one"] == pytest.approx(3 / 6)
    fro = np.sqrt([9 + 0.25, 4 + 1 + 0.01])
    assert out["mean_frobenius_norm"] == pytest.approx(fro.mean())
    assert out["mean_frobenius_norm_sq"] == pytest.approx((fro ** 2).mean())
    # relative cut 0.2 * s_1: row 1 keeps {3} (0.5 < 0.6), row 2 keeps {2, 1}
    assert out["effective_rank"] == pytest.approx(1.5)
    abs_rank = analysis.summarize_spectrum(s, rank_threshold=0.2, relative=False)
    assert abs_rank["effective_rank"] == pytest.approx(2.0)
    flat = analysis.summarize_spectrum(np.ones(4))
    assert flat["entropy_effective_rank"] == pytest.approx(4.0)
    assert flat["n_points"] == 1
    with pytest.raises(ValueError, match="non-negative"):
        analysis.summarize_spectrum(np.array([[1.0, -1.0]]))


def test_summarize_matches_jacobian_frobenius(sigmoid_model, rng):
    X = rng.normal(size=(8, 7))
    out = analysis.summarize_spectrum(analysis.jacobian_spectrum(sigmoid_model, X))
    J = sigmoid_model.jacobian(X)
    assert out["mean_frobenius_norm_sq"] == pytest.approx(np.mean(np.sum(J ** 2, axis=(1, 2))))


# ------------------------------------------------------------ import hygiene

def test_analysis_does_not_import_matplotlib():
    # Load npcae/analysis.py under a stub package so an unfinished npcae/__init__.py
    # (which might import anything) cannot affect the check.
    code = (
        BARE_PACKAGE_PRELUDE
        + "importlib.import_module('npcae.analysis')\n"
        "assert 'matplotlib' not in sys.modules, 'npcae.analysis imported matplotlib'\n"
    )
    res = run_python(code)
    assert res.returncode == 0, res.stderr


def test_import_npcae_analysis_through_package_does_not_import_matplotlib():
    res = run_python("import npcae.analysis, sys; assert 'matplotlib' not in sys.modules",
                     cwd=REPO)
    assert res.returncode == 0, res.stderr


class BoxOnlyEncoder(FakeLinearEncoder):
    """Linear encoder that, like a BCE model, refuses inputs outside [0, 1]."""

    def transform(self, X):
        if X.min() < 0 or X.max() > 1:
            raise ValueError("X must lie in [0, 1]")
        return super().transform(X)


def test_contraction_ratio_clip_for_box_constrained_models(rng):
    d, scale = 6, 0.5
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    model = BoxOnlyEncoder(scale * Q)
    X = rng.uniform(0.2, 0.8, size=(10, d))
    with pytest.raises(ValueError, match=r"clip=\(0, 1\)"):
        analysis.contraction_ratio(model, X, [5.0])
    # clipping changes the displacement, but the ratio uses the actual one: still exact
    ratios = analysis.contraction_ratio(model, X, [0.01, 1.0, 5.0], clip=(0, 1), random_state=4)
    np.testing.assert_allclose(ratios, scale, rtol=1e-9)
    # small radii never hit the box: identical to the unclipped computation
    np.testing.assert_allclose(
        analysis.contraction_ratio(model, X, [0.01], clip=(0, 1), random_state=4),
        analysis.contraction_ratio(FakeLinearEncoder(scale * Q), X, [0.01], random_state=4))
    with pytest.raises(ValueError, match="clip"):
        analysis.contraction_ratio(model, X, [1.0], clip=(1, 0))


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 3), a=st.integers(1, 9), b=st.integers(1, 9), seed=st.integers(0, 2**16),
       rank_drop=st.booleans())
def test_leading_singular_vectors_match_the_svd(m, a, b, seed, rank_drop):
    """Gram-matrix route against numpy's SVD, both shapes, both sides, rank-deficient too."""
    from npcae._spectra import leading_singular_vectors
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((m, a, b))
    if rank_drop and min(a, b) > 1:                # last singular value exactly 0
        U, s, Vt = np.linalg.svd(J, full_matrices=False)
        s[:, -1] = 0.0
        J = (U * s[:, None, :]) @ Vt
    _, s_ref, Vt_ref = np.linalg.svd(J, full_matrices=False)
    U_ref = np.swapaxes(np.linalg.svd(J, full_matrices=False)[0], 1, 2)
    n = min(a, b)
    for side, ref in (("right", Vt_ref), ("left", U_ref)):
        V, s = leading_singular_vectors(J, n, side=side)
        np.testing.assert_allclose(s, s_ref[:, :n], rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(V @ np.swapaxes(V, 1, 2), np.broadcast_to(np.eye(n), (m, n, n)),
                                   atol=1e-8)
        # each vector equals the SVD's up to sign where its singular value is simple and nonzero
        gaps = np.diff(-s_ref[:, :n], axis=1, prepend=-np.inf, append=np.inf)
        simple = (np.minimum(gaps[:, :-1], gaps[:, 1:]) > 1e-3) & (s_ref[:, :n] > 1e-8)
        dots = np.abs(np.sum(V * ref[:, :n], axis=-1))
        np.testing.assert_allclose(dots[simple], 1.0, atol=1e-6)
        flat = V.reshape(-1, V.shape[-1])
        pivot = flat[np.arange(len(flat)), np.argmax(np.abs(flat), axis=1)]
        assert np.all(pivot >= 0)
    with pytest.raises(ValueError, match="side must be"):
        leading_singular_vectors(J, 1, side="up")
