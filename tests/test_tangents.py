"""True tangents of the built-in digits and the analysis that compares tangent estimates with them.

Renderer: ``sample_digit_factors`` + ``render_digits`` reproduce ``make_digits`` bit for bit,
edits act as documented, and ``digit_tangents`` is checked against step refinement, the
first-order expansion, an exact identity (rotation = shift tangents weighted by the lever
arm), the analytic thickness derivative and the support of the anti-aliased edge.
Analysis: principal angles with known answers (identical, orthogonal, constructed angles, a
linear encoder, local PCA of flat data, the distribution of random directions), and an
end-to-end check that a trained CAE's Jacobian directions beat random ones.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npcae
from npcae._tangents import (compare_tangent_estimates, jacobian_tangent_alignment,
                             random_directions, reconstruction_tangent_directions,
                             summarize_angles, tangent_alignment)
from npcae.datasets import (DIGIT_FACTOR_NAMES, WARP_FACTOR_NAMES, digit_tangents, make_digits,
                            render_digits, sample_digit_factors)
from npcae.datasets import digits as digits_module

OPTION_SETS = [
    {},
    {"balanced": False, "deform": 0.0},
    # big, thick, far-shifted digits: many are moved and shrunk by the fit-inside placement
    {"scale": (1.1, 1.4), "aspect": (1.0, 1.5), "shift": 4, "thickness": (3, 5)},
    {"rotation": (-30, 10), "shear": 0.5},
]
PIXEL_Y, PIXEL_X = (g.ravel() for g in np.mgrid[0:28, 0:28])


@pytest.fixture(scope="module")
def digits():
    """40 default digits, their float64 images and applied factors, and all 13 tangents."""
    f = sample_digit_factors(40, random_state=3)
    X, applied = render_digits(f, dtype=np.float64, return_factors=True)
    T = digit_tangents(f, DIGIT_FACTOR_NAMES + WARP_FACTOR_NAMES)
    return f, X, applied, T


def _relative(a, b):
    """||a - b|| / ||b|| per row of the last axis."""
    return np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)


# ------------------------------------------------------------------ renderer from factors

@pytest.mark.parametrize("options", OPTION_SETS)
@pytest.mark.parametrize("image_size", [28, 16])
def test_render_of_sampled_factors_is_make_digits_bit_for_bit(options, image_size):
    X, y, applied = make_digits(120, random_state=7, image_size=image_size,
                                return_factors=True, **options)
    f = sample_digit_factors(120, random_state=7, **options)
    X2, applied2 = render_digits(f, image_size=image_size, return_factors=True)
    assert X2.dtype == np.float32 and X2.flags.c_contiguous
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(f["label"], y)
    assert list(applied2) == list(applied)
    for key in applied:
        np.testing.assert_array_equal(applied2[key], applied[key], err_msg=key)
    np.testing.assert_array_equal(render_digits(f, image_size=image_size, dtype=np.float64),
                                  X.astype(np.float64))


def test_make_digits_noise_is_drawn_after_the_factors():
    X = make_digits(30, random_state=5, noise=0.2)[0]
    rng = np.random.default_rng(5)
    clean = render_digits(sample_digit_factors(30, random_state=rng))
    noisy = np.clip(clean + rng.normal(0.0, 0.2, size=clean.shape).astype(np.float32), 0, 1)
    np.testing.assert_array_equal(X, noisy)


def test_make_digits_values_are_unchanged():
    """Regression values of make_digits(50, random_state=0) from before the renderer was
    split into sample_digit_factors + render_digits (sums are float64 of float32 pixels)."""
    X, y, f = make_digits(50, random_state=0, return_factors=True)
    assert y[:10].tolist() == REFERENCE["y"]
    np.testing.assert_allclose(X.astype(np.float64).sum(1)[:5], REFERENCE["ink"], rtol=1e-6)
    np.testing.assert_allclose(f["shift_x"][:5], REFERENCE["shift_x"], rtol=1e-12)


REFERENCE = {  # recorded with make_digits as it was before sample_digit_factors existed
    "y": [8, 3, 6, 4, 2, 3, 4, 4, 0, 6],
    "ink": [119.09868630304118, 92.21320872040587, 98.14168822924694, 119.44719256523967,
            125.41633412690317],
    "shift_x": [-0.9176106813276199, 0.07806674585362572, 0.07030418218475987,
                -1.2331930792611843, 1.445828079380119],
}


def test_factor_record_keys_shapes_and_ranges():
    f = sample_digit_factors(200, random_state=1)
    assert list(f) == ["label", "variant", "rotation", "scale_x", "scale_y", "shear", "shift_x",
                       "shift_y", "thickness", "warp", "phase"]
    assert f["label"].dtype == np.int64 and f["variant"].dtype == np.int64
    assert f["warp"].shape == (200, 4) and f["phase"].shape == (200, 2)
    assert np.bincount(f["label"], minlength=10).tolist() == [20] * 10
    assert np.abs(f["rotation"]).max() <= 15 and np.abs(f["shift_x"]).max() <= 1.5
    ratio = f["scale_x"] / f["scale_y"]
    assert 0.8 <= ratio.min() and ratio.max() <= 1.2
    assert 1.7 <= f["thickness"].min() and f["thickness"].max() <= 3.5


def test_editing_one_factor_changes_only_those_digits():
    f = sample_digit_factors(20, random_state=2)
    X = render_digits(f)
    g = dict(f, thickness=f["thickness"].copy())
    g["thickness"][3] += 1.0
    Y = render_digits(g)
    changed = np.flatnonzero(np.any(X != Y, axis=1))
    assert changed.tolist() == [3]
    assert Y[3].sum() > X[3].sum() + 10            # a thicker stroke has more ink
    # rotating by 90 degrees twice is rotating by 180 degrees once (same warp, same strokes)
    h = dict(f, rotation=f["rotation"] + 180.0)
    assert not np.array_equal(render_digits(h, fit_inside=False), X)
    # fit_inside only matters for digits the placement moves
    sel = {k: v[:1] for k, v in f.items()}
    sel["shift_x"] = np.array([9.0])                                # far out to the right
    inside = render_digits(sel).reshape(28, 28)
    cut = render_digits(sel, fit_inside=False).reshape(28, 28)
    assert inside[:, -1].max() == 0 and cut[:, -1].max() > 0.5       # kept inside vs cut off


def test_subset_of_a_record_renders_the_same_digits():
    f = sample_digit_factors(30, random_state=4)
    idx = np.array([29, 0, 7, 7])
    np.testing.assert_array_equal(render_digits({k: v[idx] for k, v in f.items()}),
                                  render_digits(f)[idx])


def test_render_digits_rejects_bad_records():
    f = sample_digit_factors(5, random_state=0)
    with pytest.raises(TypeError, match="dict of per-sample factors"):
        render_digits(np.zeros((5, 3)))
    _, _, applied = make_digits(5, random_state=0, return_factors=True)
    with pytest.raises(ValueError, match="lacks the keys .*'label'.*sample_digit_factors"):
        render_digits(applied)
    with pytest.raises(ValueError, match="digits 0-9"):
        render_digits(dict(f, label=f["label"] + 10))
    with pytest.raises(ValueError, match="variant.*does not exist for digit 0"):
        render_digits(dict(f, label=np.zeros(5, np.int64), variant=np.full(5, 1)))
    with pytest.raises(ValueError, match=r"'warp'.*shape \(5, 4\)"):
        render_digits(dict(f, warp=f["warp"][:, :3]))
    with pytest.raises(ValueError, match="'scale_x'.* > 0"):
        render_digits(dict(f, scale_x=-f["scale_x"]))
    with pytest.raises(ValueError, match="NaN"):
        render_digits(dict(f, shear=np.full(5, np.nan)))
    with pytest.raises(ValueError, match="image_size"):
        render_digits(f, image_size=4)
    with pytest.raises(ValueError, match="floating-point"):
        render_digits(f, dtype=np.uint8)
    with pytest.raises(TypeError, match="fit_inside"):
        render_digits(f, fit_inside="yes")
    with pytest.raises(ValueError, match="deform"):
        sample_digit_factors(5, deform=-1)
    with pytest.raises(ValueError, match="rotation"):
        sample_digit_factors(5, rotation=-3)


# ------------------------------------------------------------------ digit_tangents

def test_tangent_shapes_order_and_batching(digits):
    f, X, _, T = digits
    assert T.shape == (40, 13, 784) and T.dtype == np.float64
    assert np.all(np.linalg.norm(T, axis=-1) > 0)
    two = digit_tangents(f, ("thickness", "rotation"), batch_size=7)
    np.testing.assert_array_equal(two[:, 0], T[:, 6])
    np.testing.assert_array_equal(two[:, 1], T[:, 0])
    assert digit_tangents(f, "shear", image_size=16).shape == (40, 1, 256)


def test_tangents_converge_when_the_step_shrinks(digits):
    """Default steps against steps ten times smaller: the same to ~1e-6 (measured max 2e-6;
    the differences come from float64 rounding, not truncation)."""
    f, _, _, T = digits
    finer = digit_tangents(f, DIGIT_FACTOR_NAMES + WARP_FACTOR_NAMES,
                           step={k: v / 10 for k, v in digits_module._DEFAULT_STEPS.items()})
    assert _relative(T, finer).max() < 1e-4


def test_tangents_are_first_order_expansions(digits):
    """image(f + delta e_j) - image(f) = delta t_j + O(delta^2): the relative residual halves
    with delta (rendered in float64 with the placement held fixed, as digit_tangents does)."""
    f, _, _, T = digits
    F = digits_module._check_factors(f)
    placement = digits_module._place(F, 28)[3]
    X0 = digits_module._render_factors(F, 28, np.float64, placement=placement)[0]
    for j, name in enumerate(DIGIT_FACTOR_NAMES):
        delta = 0.05 if name in ("shift_x", "shift_y", "thickness") else 0.005
        residuals = []
        for dl in (delta, delta / 2, delta / 4):
            Xd = digits_module._render_factors(digits_module._perturb(F, name, dl), 28,
                                               np.float64, placement=placement)[0]
            residuals.append(np.mean(_relative(Xd - X0, dl * T[:, j])))
        ratios = np.array(residuals[:-1]) / np.array(residuals[1:])
        assert residuals[-1] < 0.03, (name, residuals)
        assert np.all((ratios > 1.6) & (ratios < 2.5)), (name, residuals)


def test_rotation_tangent_is_the_shift_tangents_times_the_lever_arm(digits):
    """Rotating the strokes by dtheta about the digit centre c moves the pixel q's content by
    J (q - c) dtheta (a rigid motion of the distance field), so t_rot = -(q-c)_y t_shift_x +
    (q-c)_x t_shift_y, divided by the placement's shrink k (a unit shift moves k pixels)."""
    f, _, applied, T = digits
    k = applied["scale_y"] / f["scale_y"]
    cx, cy = 13.5 + applied["shift_x"], 13.5 + applied["shift_y"]
    lever_x, lever_y = PIXEL_X - cx[:, None], PIXEL_Y - cy[:, None]
    predicted = (-lever_y * T[:, 4] + lever_x * T[:, 5]) / k[:, None]
    assert _relative(predicted, T[:, 0]).max() < 1e-6


def test_thickness_tangent_is_the_smoothstep_derivative(digits):
    """ink = s(u), u = (r + 1/2 - dist) / 1 px, s(u) = 3u^2 - 2u^3, r = thickness / 2, so
    d ink / d thickness = s'(u) / 2 = 3 u (1 - u), with u recovered from the ink."""
    _, X, _, T = digits
    u = X.copy()
    for _ in range(60):                                   # Newton on s(u) = ink
        slope = 6 * u * (1 - u)
        u = np.clip(u - (3 * u * u - 2 * u ** 3 - X) / np.maximum(slope, 1e-12), 0, 1)
    band = (X > 0.02) & (X < 0.98)
    np.testing.assert_allclose(T[:, 6][band], 3 * u[band] * (1 - u[band]), atol=1e-4)
    assert T[:, 6].min() >= 0


def test_tangents_live_on_the_anti_aliased_edge(digits):
    """Background (ink exactly 0) and stroke cores (exactly 1) do not change under small
    factor changes: every tangent is zero there."""
    f, _, _, T = digits
    X = digits_module._render_factors(digits_module._check_factors(f), 28, np.float64)[0]
    flat = (X == 0) | (X == 1)                         # exact in the float64 rendering
    assert flat.mean() > 0.5
    assert np.abs(T * flat[:, None, :]).max() == 0.0


def test_shift_tangent_is_minus_the_image_gradient(digits):
    _, X, _, T = digits
    gy, gx = (g.reshape(40, -1) for g in np.gradient(X.reshape(-1, 28, 28), axis=(1, 2)))

    def cosine(a, b):
        return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    for t, g in ((T[:, 4], gx), (T[:, 5], gy)):       # the pixel-grid gradient is crude
        c = cosine(t, -g)
        assert np.median(c) > 0.7 and c.min() > 0.5


def test_digit_tangents_rejects_bad_arguments():
    f = sample_digit_factors(3, random_state=0)
    with pytest.raises(ValueError, match="distinct factor names"):
        digit_tangents(f, ("rotation", "size"))
    with pytest.raises(ValueError, match="distinct factor names"):
        digit_tangents(f, ("rotation", "rotation"))
    with pytest.raises(ValueError, match="distinct factor names"):
        digit_tangents(f, ())
    with pytest.raises(ValueError, match="step for 'shear'"):
        digit_tangents(f, ("shear",), step={"shear": 0})
    with pytest.raises(ValueError, match="step names unknown factors"):
        digit_tangents(f, step={"size": 1e-3})
    with pytest.raises(ValueError, match="step for 'rotation'"):
        digit_tangents(f, step=-1.0)
    with pytest.raises(ValueError, match="lacks the keys"):
        digit_tangents({"rotation": np.zeros(3)})


# ------------------------------------------------------------------ analysis

def _basis(rng, n, m, d):
    """n random m-dim subspaces of R^d as orthonormal rows (n, m, d)."""
    Q = np.linalg.qr(rng.standard_normal((n, d, m)))[0]
    return np.swapaxes(Q, 1, 2)


def test_identical_subspaces_give_zero_and_orthogonal_ones_ninety(rng):
    T = _basis(rng, 5, 3, 30)
    mix = rng.standard_normal((5, 3, 3)) + 3 * np.eye(3)        # another basis, other scales
    np.testing.assert_allclose(tangent_alignment(mix @ T, T), 0, atol=1e-6)
    E = np.eye(30)
    np.testing.assert_allclose(tangent_alignment(E[None, :2], E[None, 2:6]), 90, atol=1e-9)
    np.testing.assert_allclose(tangent_alignment(E[:1] + E[1:2], E[:1]), [[45.0]], atol=1e-9)


def test_constructed_angles_are_recovered(rng):
    """u_i = cos(a_i) e_i + sin(a_i) e_{m+i} against span(e_1..e_m): angles a_i, sorted."""
    angles = np.array([70.0, 5.0, 33.0])
    E = np.eye(12)
    U = (np.cos(np.radians(angles))[:, None] * E[:3]
         + np.sin(np.radians(angles))[:, None] * E[5:8])
    out = tangent_alignment(U, E[:5])
    np.testing.assert_allclose(out, [np.sort(angles)], atol=1e-9)
    assert out.shape == (1, 3)
    assert tangent_alignment(E[:5], U).shape == (1, 3)         # min(k, m) either way


@given(n=st.integers(1, 4), k=st.integers(1, 5), m=st.integers(1, 5),
       d=st.integers(10, 40), seed=st.integers(0, 2 ** 16))
def test_tangent_alignment_shapes_range_and_scale_invariance(n, k, m, d, seed):
    rng = np.random.default_rng(seed)
    U, T = rng.standard_normal((n, k, d)), rng.standard_normal((n, m, d))
    a = tangent_alignment(U, T)
    assert a.shape == (n, min(k, m))
    assert np.all((a >= 0) & (a <= 90)) and np.all(np.diff(a, axis=1) >= -1e-9)
    scale = rng.uniform(0.1, 10, size=(n, k, 1))
    np.testing.assert_allclose(tangent_alignment(U * scale, T), a, atol=1e-6)


def test_tangent_alignment_errors():
    with pytest.raises(ValueError, match="same number of points n"):
        tangent_alignment(np.ones((2, 1, 5)), np.ones((3, 1, 5)))
    with pytest.raises(ValueError, match=r"shape \(n, k, d\)"):
        tangent_alignment(np.ones(5), np.ones((1, 5)))
    with pytest.raises(ValueError, match="linearly dependent"):
        tangent_alignment(np.eye(5)[:2], np.ones((2, 5)))


def test_random_directions_follow_the_known_distribution():
    """One random direction against a fixed m-dim subspace of R^d: cos^2 of the angle is
    Beta(m/2, (d - m)/2), mean m/d."""
    V = random_directions(4000, 1, 200, random_state=0)
    assert V.shape == (4000, 1, 200)
    np.testing.assert_allclose(np.linalg.norm(V, axis=-1), 1)
    np.testing.assert_array_equal(V, random_directions(4000, 1, 200, random_state=0))
    E = np.broadcast_to(np.eye(200)[:8], (4000, 8, 200))
    cos2 = np.cos(np.radians(tangent_alignment(V, E)[:, 0])) ** 2
    assert abs(cos2.mean() - 8 / 200) < 0.004
    with pytest.raises(ValueError, match="k <= d"):
        random_directions(2, 6, 5)


class LinearEncoder:
    """h = W^T x: the Jacobian is W^T at every point."""

    def __init__(self, W):
        self.W = W
        self.n_features_in_ = W.shape[0]

    def jacobian(self, X):
        return np.broadcast_to(self.W.T, (len(X),) + self.W.T.shape).copy()


def test_linear_encoder_directions_are_the_top_singular_vectors(rng):
    """W^T = U diag(s) V^T with s descending: the leading Jacobian directions are the first
    rows of V^T, so they make 0 degrees with span(V[:, :2]) and 90 with span(V[:, 2:4])."""
    d, k = 20, 6
    U = np.linalg.qr(rng.standard_normal((k, k)))[0]
    V = np.linalg.qr(rng.standard_normal((d, k)))[0]
    W = (U @ np.diag([9.0, 7.0, 3.0, 2.0, 1.0, 0.5]) @ V.T).T      # (d, k)
    X = rng.standard_normal((4, d))
    top = np.broadcast_to(V[:, :2].T, (4, 2, d))
    nxt = np.broadcast_to(V[:, 2:4].T, (4, 2, d))
    model = LinearEncoder(W)
    np.testing.assert_allclose(jacobian_tangent_alignment(model, X, top), 0, atol=1e-5)
    np.testing.assert_allclose(jacobian_tangent_alignment(model, X, nxt), 90, atol=1e-6)
    three = jacobian_tangent_alignment(model, X, top, n_directions=3)   # k > m: m angles
    np.testing.assert_allclose(three, 0, atol=1e-5)
    with pytest.raises(ValueError, match="to match X"):
        jacobian_tangent_alignment(model, X[:3], top)


def test_compare_tangent_estimates_on_a_flat_manifold(rng):
    """Points on a 2-D plane in R^15: local PCA finds the plane exactly (0 degrees), a
    linear encoder whose top directions are the plane does too, random does not."""
    d = 15
    basis = np.linalg.qr(rng.standard_normal((d, 2)))[0].T            # (2, d)
    X_ref = rng.standard_normal((300, 2)) @ basis + 1.0
    X = rng.standard_normal((10, 2)) @ basis + 1.0
    T = np.broadcast_to(basis, (10, 2, d))
    Q = np.linalg.qr(np.concatenate([basis.T, rng.standard_normal((d, 3))], 1))[0]
    W = np.concatenate([Q[:, :2] * 5, Q[:, 2:] * 0.1], 1)   # top 2 directions: the plane
    out = compare_tangent_estimates(X, T, {"linear": LinearEncoder(W)}, X_ref=X_ref,
                                    n_neighbors=10, random_state=1)
    assert list(out) == ["linear", "local PCA", "random"]
    np.testing.assert_allclose(out["linear"], 0, atol=1e-4)
    np.testing.assert_allclose(out["local PCA"], 0, atol=1e-4)
    assert out["random"].mean() > 40
    assert list(compare_tangent_estimates(X, T)) == ["random"]


def test_summarize_angles():
    s = summarize_angles(np.array([[10.0, 50.0], [20.0, 80.0]]))
    assert s["mean"] == 40.0 and s["median"] == 40.0
    np.testing.assert_allclose(s["per_index"], [15.0, 65.0])
    assert (s["smallest"], s["largest"], s["n_points"], s["n_angles"]) == (15.0, 65.0, 2, 2)
    with pytest.raises(ValueError, match="radians"):
        summarize_angles(np.array([[100.0]]))


# ------------------------------------------------------------------ end to end

def test_cae_directions_beat_random_on_digits():
    """A CAE trained briefly on 3000 built-in digits, at 60 held-out digits with k = 3
    directions: its reconstruction-Jacobian directions are far closer to the true tangent
    space than random directions (measured: 60.8 against 84.9 degrees), its encoder-Jacobian
    directions a little (78.8; the AE twin's 82.2)."""
    f_train = sample_digit_factors(3000, random_state=0)
    f_test = sample_digit_factors(60, random_state=1)
    X, X_test = render_digits(f_train), render_digits(f_test)
    T = digit_tangents(f_test)
    cae = npcae.ContractiveAutoencoder(n_hidden=256, lam=0.3, epochs=15, random_state=0,
                                       optimizer=npcae.optim.Adam(lr=3e-3)).fit(X)
    chance = tangent_alignment(random_directions(60, 3, 784, random_state=0), T).mean()
    assert chance > 80
    J_r = reconstruction_tangent_directions(cae, X_test, 3)[0]
    assert tangent_alignment(J_r, T).mean() < chance - 15
    J_f = jacobian_tangent_alignment(cae, X_test, T, n_directions=3)
    assert J_f.mean() < chance - 3


def test_reconstruction_directions_are_the_left_singular_vectors_of_dr_dx(rng):
    """Against the full (d, d) Jacobian of the reconstruction, by central differences of
    model.reconstruct in float64; k > d as well as k < d, tied and untied."""
    X = make_digits(40, random_state=0, image_size=8, dtype=np.float64)[0]
    for kw in (dict(n_hidden=10), dict(n_hidden=90, tied=False, activation="tanh",
                                       output_activation="identity", loss="mse")):
        model = npcae.ContractiveAutoencoder(lam=0.1, epochs=2, random_state=0,
                                             dtype=np.float64, **kw).fit(X)
        V, S = reconstruction_tangent_directions(model, X[:3], 4)
        assert V.shape == (3, 4, 64) and S.shape == (3, 4)
        h, eye = 1e-5, np.eye(64)
        for i in range(3):
            J = np.stack([(model.reconstruct(X[i] + h * e[None]) - model.reconstruct(
                X[i] - h * e[None]))[0] / (2 * h) for e in eye], axis=1)     # (d_out, d_in)
            U, s, _ = np.linalg.svd(J)
            np.testing.assert_allclose(S[i], s[:4], rtol=1e-6)
            np.testing.assert_allclose(np.abs(np.sum(V[i] * U[:, :4].T, axis=1)), 1, atol=1e-6)
        np.testing.assert_allclose(V @ np.swapaxes(V, 1, 2), np.broadcast_to(np.eye(4), (3, 4, 4)),
                                   atol=1e-12)
    with pytest.raises(ValueError, match="at most 64"):
        reconstruction_tangent_directions(model, X[:2], 65)
    with pytest.raises(TypeError, match="one-hidden-layer"):
        reconstruction_tangent_directions(LinearEncoder(np.eye(64)), X[:2], 2)


def test_random_directions_on_a_support(rng):
    support = np.zeros((3, 50), bool)
    support[:, 10:20] = True
    V = random_directions(3, 4, 50, random_state=1, support=support)
    assert np.all(V[:, :, ~support[0]] == 0)
    np.testing.assert_allclose(np.linalg.norm(V, axis=-1), 1)
    with pytest.raises(ValueError, match="fewer than the k=11"):
        random_directions(3, 11, 50, support=support)
    with pytest.raises(ValueError, match="boolean array of shape"):
        random_directions(3, 4, 50, support=support.astype(float))


@pytest.mark.slow
def test_true_tangents_demo_prints_its_table_and_writes_figures(tmp_path):
    pytest.importorskip("matplotlib")
    import subprocess
    import sys

    from conftest import REPO
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "demos" / "true_tangents.py"), "--out",
                           str(out), "--epochs", "1", "--n-train", "300", "--n-test", "8",
                           "--n-hidden", "32", "--random-state", "1"],
                          cwd=REPO / "demos", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    head = lines.index(next(line for line in lines if line.startswith("Mean principal angle")))
    assert lines[head + 1].split()[:4] == ["method", "k", "=", "1"]
    names = ("CAE, J_r", "CAE, J_f", "AE, J_r", "AE, J_f", "local PCA", "random on the edge",
             "random")
    for name, line in zip(names, lines[head + 2:head + 2 + len(names)]):
        assert line.startswith(name), (name, line)
        numbers = [float(v) for v in line[len(name):].split()]
        assert len(numbers) == 6 and all(0 <= v <= 90 for v in numbers[:3]), line
    assert "Reading the numbers:" in done.stdout and "nan" not in done.stdout.lower()
    for name in ("tangents.png", "projections.png", "angles.png"):
        assert (out / name).stat().st_size > 0, name
