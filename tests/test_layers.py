"""Layers: every backward pass against npcae.gradcheck.check_layer (float64, rtol 1e-7),
gradient accumulation and sharing, error messages, seeded initialisation, the
Sequential params view, and a small end-to-end training sanity check."""
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npcae.activations import LeakyReLU
from npcae.gradcheck import check_gradient, check_layer
from npcae.layers import (BIAS_INITIALIZERS, INITIALIZERS, Activation, Dense, Module, Sequential,
                          init_weights)
from npcae.losses import mse
from npcae.optim import Adam

ACTS = ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity"]
RTOL = 1e-7
coords = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)
sizes = st.integers(1, 12)
batch = st.integers(1, 8)
seeds = st.integers(0, 2**32 - 1)


def make_act(name):
    return Activation(LeakyReLU(0.2)) if name == "leaky_relu" else Activation(name)


def assert_checked(res):
    assert res.passed, res.report()
    return res


def is_smooth(module):
    """No relu/leaky_relu inside: then kink detection is switched off (stricter check)."""
    mods = module.modules if isinstance(module, Sequential) else [module]
    return not any(isinstance(m, Activation) and m.activation.kinked for m in mods)


def randomize_bias(layer, rng):
    """Biases start at zero; give them values so a b-dependence bug cannot hide."""
    for m in (layer.modules if isinstance(layer, Sequential) else [layer]):
        if isinstance(m, Dense):
            m.params["b"][...] = rng.uniform(-0.5, 0.5, m.n_out)


# ------------------------------------------------------------------ gradient checks
@pytest.mark.parametrize("init", sorted(INITIALIZERS))
@given(n=batch, n_in=sizes, n_out=sizes, seed=seeds, data=st.data())
def test_dense_check_layer_all_inits(init, n, n_in, n_out, seed, data):
    x = data.draw(arrays(np.float64, (n, n_in), elements=coords))
    layer = Dense(n_in, n_out, init=init, random_state=seed)
    randomize_bias(layer, np.random.default_rng(seed))
    res = assert_checked(check_layer(layer, x, random_state=seed, rtol=RTOL, detect_kinks=False))
    assert set(res) == {"input", "W", "b"}
    assert res["W"].n_checked == n_in * n_out and res["input"].n_checked == n * n_in


@pytest.mark.parametrize("name", ACTS)
@given(shape=st.tuples(batch, sizes), seed=seeds, data=st.data())
def test_activation_layer_check_layer(name, shape, seed, data):
    away = st.one_of(st.floats(-3.0, -1e-3), st.floats(1e-3, 3.0))
    x = data.draw(arrays(np.float64, shape, elements=away))
    # away from 0 even relu/leaky_relu are smooth within one step: no kink excuses at all
    res = assert_checked(check_layer(make_act(name), x, random_state=seed, rtol=RTOL,
                                     detect_kinks=False))
    assert set(res) == {"input"} and res["input"].n_checked == x.size


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_activation_layer_at_the_kink(name):
    x = np.array([[0.0, -1.0, 2.0], [0.5, 0.0, -0.25]])
    res = assert_checked(check_layer(make_act(name), x, random_state=3, rtol=RTOL))
    assert sorted(res["input"].kinks) == [(0, 0), (1, 1)]


@st.composite
def mlps(draw, max_depth=3):
    depth = draw(st.integers(1, max_depth))
    widths = [draw(sizes) for _ in range(depth + 1)]
    seed = draw(seeds)
    mods = []
    for i in range(depth):
        mods.append(Dense(widths[i], widths[i + 1], init=draw(st.sampled_from(
            ["glorot_uniform", "glorot_normal", "he_normal", "sigmoid_uniform"])),
            random_state=seed + i))
        if i < depth - 1 or draw(st.booleans()):
            mods.append(make_act(draw(st.sampled_from(ACTS))))
    seq = Sequential(*mods)
    randomize_bias(seq, np.random.default_rng(seed))
    x = draw(arrays(np.float64, (draw(batch), widths[0]), elements=coords))
    return seq, x, seed


@given(problem=mlps())
def test_sequential_check_layer(problem):
    seq, x, seed = problem
    res = assert_checked(check_layer(seq, x, random_state=seed, rtol=RTOL,
                                     detect_kinks=not is_smooth(seq)))
    assert set(res) == {"input"} | set(seq.params)
    for r in res.values():                 # kinks excuse at most a few entries, never all
        assert len(r.kinks) <= max(1, r.n_checked // 4), r.report()


@given(problem=mlps(max_depth=2))
def test_sequential_check_layer_richardson(problem):
    seq, x, seed = problem
    assert_checked(check_layer(seq, x, random_state=seed, rtol=RTOL, method="richardson",
                               detect_kinks=not is_smooth(seq)))


def test_sequential_directional_mode_for_large_arrays():
    rng = np.random.default_rng(0)
    seq = Sequential(Dense(80, 70, random_state=1), Activation("tanh"),
                     Dense(70, 9, random_state=2))
    randomize_bias(seq, rng)
    res = assert_checked(check_layer(seq, rng.uniform(-1, 1, (5, 80)), rtol=RTOL,
                                     detect_kinks=False))
    assert res["0.W"].mode == "directional" and res["2.W"].mode == "full"


class _BadBias(Dense):
    def backward(self, grad_out):
        dx = super().backward(grad_out)
        self.grads["b"] *= 1.0 + 1e-6          # off by one part in a million
        return dx


class _Overwrites(Dense):
    def backward(self, grad_out):
        self.zero_grad()
        return super().backward(grad_out)


class _UntransposedDx(Dense):
    def backward(self, grad_out):           # G @ W instead of G @ W.T (square layer)
        super().backward(grad_out)
        return grad_out @ self.params["W"]


class _ForgotDerivative(Activation):
    def backward(self, grad_out):
        return np.asarray(grad_out).copy()


def test_the_checker_catches_broken_layers():
    """Test the tester: each deliberately broken backward fails check_layer."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (4, 5))
    for bad in (_BadBias(5, 3, random_state=0), _Overwrites(5, 3, random_state=0),
                _UntransposedDx(5, 5, random_state=0)):
        randomize_bias(bad, rng)
        good = Dense(5, bad.n_out, random_state=0)
        assert check_layer(good, x, random_state=1, rtol=RTOL).passed
        assert not check_layer(bad, x, random_state=1, rtol=RTOL).passed, type(bad).__name__
    assert not check_layer(_ForgotDerivative("tanh"), x, rtol=RTOL).passed
    seq = Sequential(Dense(5, 4, random_state=0), _ForgotDerivative("sigmoid"),
                     Dense(4, 2, random_state=1))
    assert not check_layer(seq, x, rtol=RTOL).passed


# ---------------------------------------------------------------- accumulation
@given(problem=mlps())
def test_two_backward_passes_give_twice_the_gradient(problem):
    seq, x, seed = problem
    g = np.random.default_rng(seed).standard_normal(seq.forward(x).shape)
    seq.zero_grad()
    seq.forward(x)
    dx1 = seq.backward(g)
    once = {k: seq.grads[k].copy() for k in seq.grads}
    seq.forward(x)
    dx2 = seq.backward(g)
    np.testing.assert_array_equal(dx1, dx2)
    for k in once:
        np.testing.assert_array_equal(seq.grads[k], 2.0 * once[k])
    arrays_before = {k: seq.grads[k] for k in seq.grads}
    seq.zero_grad()
    for k in seq.grads:
        assert seq.grads[k] is arrays_before[k]           # zeroed in place, same objects
        np.testing.assert_array_equal(seq.grads[k], 0.0)


def test_shared_weight_receives_both_contributions():
    rng = np.random.default_rng(0)
    d1, d2 = Dense(4, 4, random_state=1), Dense(4, 4, random_state=2)
    d2.params["W"] = d1.params["W"]            # one weight, two uses
    d2.grads["W"] = d1.grads["W"]              # one gradient accumulator
    seq = Sequential(d1, Activation("tanh"), d2)
    randomize_bias(seq, rng)
    x = rng.uniform(-1, 1, (3, 4))
    g = rng.standard_normal((3, 4))
    W = d1.params["W"]

    def loss(w):
        np.copyto(W, w)
        return np.sum(g * seq.forward(x))

    w0 = W.copy()
    seq.zero_grad()
    seq.forward(x)
    seq.backward(g)
    total = d1.grads["W"].copy()
    assert d2.grads["W"] is d1.grads["W"]
    res = check_gradient(loss, w0, total, rtol=RTOL, name="shared W", detect_kinks=False)
    np.copyto(W, w0)
    assert res.passed, res.report()
    # and it really is the sum of the two separate contributions
    h = np.tanh(x @ W + d1.params["b"])
    G2 = g
    G1 = (G2 @ W.T) * (1 - h * h)
    np.testing.assert_allclose(total, x.T @ G1 + h.T @ G2, rtol=1e-12, atol=1e-14)
    # the un-shared gradient of either use alone would fail the check
    np.copyto(W, w0)
    assert not check_gradient(loss, w0, x.T @ G1, rtol=RTOL).passed
    np.copyto(W, w0)
    assert not check_gradient(loss, w0, h.T @ G2, rtol=RTOL).passed
    np.copyto(W, w0)


def test_zero_grad_restores_missing_or_mismatched_buffers():
    d = Dense(3, 2, random_state=0)
    del d.grads["b"]
    d.grads["W"] = np.ones((2, 3))
    d.zero_grad()
    assert d.grads["b"].shape == (2,) and d.grads["W"].shape == (3, 2)
    assert not d.grads["W"].any() and not d.grads["b"].any()


# ---------------------------------------------------------------------- errors
def test_dense_wrong_input_shape_names_both_shapes():
    d = Dense(3, 5)
    with pytest.raises(ValueError) as exc:
        d.forward(np.ones((2, 4)))
    assert "3" in str(exc.value) and "(2, 4)" in str(exc.value)


def test_dense_wrong_grad_shape_names_both_shapes():
    d = Dense(3, 5)
    d.forward(np.ones((2, 3)))
    with pytest.raises(ValueError) as exc:
        d.backward(np.ones((2, 4)))
    assert "(2, 5)" in str(exc.value) and "(2, 4)" in str(exc.value)
    with pytest.raises(ValueError):
        d.backward(np.ones((5, 2)))


def test_activation_wrong_grad_shape():
    a = Activation("tanh")
    a.forward(np.ones((2, 3)))
    with pytest.raises(ValueError) as exc:
        a.backward(np.ones((3, 2)))
    assert "(2, 3)" in str(exc.value) and "(3, 2)" in str(exc.value)


def test_sequential_propagates_shape_errors():
    seq = Sequential(Dense(3, 4), Activation("relu"), Dense(4, 2))
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        seq.forward(np.ones((2, 5)))
    seq.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        seq.backward(np.ones((2, 3)))


@pytest.mark.parametrize("make", [lambda: Dense(3, 2), lambda: Activation("sigmoid"),
                                  lambda: Sequential(Dense(3, 2), Activation("tanh"))])
def test_backward_before_forward_raises_runtime_error(make):
    with pytest.raises(RuntimeError, match="forward"):
        make().backward(np.ones((2, 2)))


@pytest.mark.parametrize("make", [lambda: Dense(3, 2),
                                  lambda: Sequential(Dense(3, 2), Activation("tanh")),
                                  lambda: Activation("tanh")])
def test_bad_inputs_raise_clear_errors(make):
    layer = make()
    x = np.ones((2, 3))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layer.forward(x)
    x[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        layer.forward(x)
    with pytest.raises(TypeError, match="255"):
        layer.forward(np.ones((2, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="int64"):
        layer.forward(np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="Complex data not supported"):
        layer.forward(np.ones((2, 3), dtype=np.complex128))


@pytest.mark.parametrize("make", [lambda: Dense(3, 2),
                                  lambda: Sequential(Dense(3, 2), Activation("tanh"))])
def test_one_dimensional_input_raises_with_hint(make):
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        make().forward(np.ones(3))
    with pytest.raises(ValueError, match="Reshape your data: flatten"):
        make().forward(np.ones((2, 3, 1)))


def test_constructor_errors():
    with pytest.raises(ValueError):
        Dense(0, 3)
    with pytest.raises(ValueError):
        Dense(3, 0)
    with pytest.raises(ValueError, match="glorot_uniform"):
        Dense(3, 3, init="glorot")
    with pytest.raises(TypeError):
        Sequential(Dense(2, 2), np.tanh)
    with pytest.raises(ValueError):
        Activation("gelu")
    with pytest.raises(TypeError, match="random_state must be None"):
        Dense(2, 2, random_state="0")
    with pytest.raises(TypeError, match="random_state must be None"):
        Dense(2, 2, random_state=1.0)
    with pytest.raises(ValueError, match="random_state must be a non-negative integer"):
        Dense(2, 2, random_state=-1)
    with pytest.raises(TypeError, match="seed"):       # the old name is gone, no alias
        Dense(2, 2, seed=0)
    with pytest.raises(ValueError, match="random_state must be a non-negative integer"):
        init_weights("glorot_uniform", 2, 2, random_state=-1)
    with pytest.raises(ValueError, match="choose one of"):
        init_weights(["glorot_uniform"], 2, 2, random_state=0)


# ---------------------------------------------------------------- initialisation
@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_seeded_init_deterministic_and_global_rng_untouched(init):
    state = np.random.get_state()[1].copy()
    a, b = Dense(7, 5, init=init, random_state=3), Dense(7, 5, init=init, random_state=3)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    gen = Dense(7, 5, init=init, random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(gen.params["W"], a.params["W"])
    np.testing.assert_array_equal(
        init_weights(init, 7, 5, random_state=3), a.params["W"])
    # a legacy RandomState is accepted: the same state gives the same weights
    rs1 = Dense(7, 5, init=init, random_state=np.random.RandomState(9))
    rs2 = Dense(7, 5, init=init, random_state=np.random.RandomState(9))
    np.testing.assert_array_equal(rs1.params["W"], rs2.params["W"])
    # a shared Generator is advanced: two layers drawn from it differ
    shared = np.random.default_rng(3)
    first = Dense(7, 5, init=init, random_state=shared)
    second = Dense(7, 5, init=init, random_state=shared)
    np.testing.assert_array_equal(first.params["W"], a.params["W"])
    assert init == "zeros" or not np.array_equal(first.params["W"], second.params["W"])
    if init != "zeros":
        c = Dense(7, 5, init=init, random_state=4)
        assert not np.array_equal(a.params["W"], c.params["W"])
    if init in BIAS_INITIALIZERS:      # PyTorch's nn.Linear: b ~ U(+-1/sqrt(n_in)) after W
        assert np.all(np.abs(a.params["b"]) <= 1 / np.sqrt(7)) and np.any(a.params["b"] != 0)
        np.testing.assert_array_equal(b.params["b"], a.params["b"])
    else:
        np.testing.assert_array_equal(a.params["b"], 0.0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    for dt in (np.float32, np.float64):
        d = Dense(7, 5, init=init, random_state=3, dtype=dt)
        assert d.params["W"].dtype == dt and d.params["b"].dtype == dt
        assert d.grads["W"].dtype == dt and d.params["W"].flags.c_contiguous
        np.testing.assert_allclose(d.params["W"], a.params["W"].astype(dt), rtol=0, atol=0)


# (kind, scale(n_in, n_out)): uniform -> bound, normal -> standard deviation
INIT_SCALES = {
    "glorot_uniform": ("uniform", lambda i, o: np.sqrt(6.0 / (i + o))),
    "xavier_uniform": ("uniform", lambda i, o: np.sqrt(6.0 / (i + o))),
    "he_uniform": ("uniform", lambda i, o: np.sqrt(6.0 / i)),
    "sigmoid_uniform": ("uniform", lambda i, o: 4.0 * np.sqrt(6.0 / (i + o))),
    "glorot_normal": ("normal", lambda i, o: np.sqrt(2.0 / (i + o))),
    "xavier_normal": ("normal", lambda i, o: np.sqrt(2.0 / (i + o))),
    "he_normal": ("normal", lambda i, o: np.sqrt(2.0 / i)),
    "normal": ("normal", lambda i, o: 0.01),
    "zeros": ("zeros", lambda i, o: 0.0),
    "torch_linear": ("uniform", lambda i, o: 1.0 / np.sqrt(i)),
}


def test_every_initializer_has_a_documented_scale():
    assert set(INIT_SCALES) == set(INITIALIZERS)


@pytest.mark.parametrize("init", sorted(INIT_SCALES))
@pytest.mark.parametrize("n_in,n_out", [(300, 100), (50, 400)])
def test_init_scales_as_documented(init, n_in, n_out):
    kind, scale = INIT_SCALES[init]
    s = scale(n_in, n_out)
    W = init_weights(init, n_in, n_out, np.random.default_rng(0))
    assert W.shape == (n_in, n_out)
    if kind == "zeros":
        np.testing.assert_array_equal(W, 0.0)
        return
    # 15,000-40,000 draws: the sample std is within 2 % of the truth with huge margin
    assert abs(W.mean()) < 0.03 * s
    if kind == "uniform":
        assert np.all(np.abs(W) <= s)
        assert np.abs(W).max() > 0.999 * s
        assert abs(W.std() / (s / np.sqrt(3.0)) - 1.0) < 0.02
    else:
        assert abs(W.std() / s - 1.0) < 0.02
        assert np.abs(W).max() > 3.0 * s               # a normal, not a bounded draw


def test_init_weights_unknown_raises():
    with pytest.raises(ValueError, match="choose one of"):
        init_weights("orthogonal", 3, 3, 0)


# ------------------------------------------------------------ Sequential params view
def test_sequential_params_view_assignment_changes_the_layer():
    seq = Sequential(Dense(3, 4, random_state=0), Activation("tanh"), Dense(4, 2, random_state=1))
    assert list(seq.params) == ["0.W", "0.b", "2.W", "2.b"] == list(seq.grads)
    assert len(seq.params) == 4 and len(seq) == 3 and seq[1].params == {}
    assert seq.params["0.W"] is seq[0].params["W"]
    x = np.random.default_rng(1).uniform(-1, 1, (5, 3))
    y0 = seq.forward(x)
    new = np.random.default_rng(2).uniform(-1, 1, (3, 4))
    seq.params["0.W"] = new
    np.testing.assert_array_equal(seq[0].params["W"], new)
    expected = np.tanh(x @ new + seq[0].params["b"]) @ seq[2].params["W"] + seq[2].params["b"]
    np.testing.assert_allclose(seq.forward(x), expected, rtol=1e-14)
    assert not np.allclose(seq.forward(x), y0)
    seq.params["2.b"] = np.array([1.0, -1.0])
    np.testing.assert_array_equal(seq[2].params["b"], [1.0, -1.0])
    # gradients are taken at the new values
    assert_checked(check_layer(seq, x, rtol=RTOL, detect_kinks=False))
    # and in-place edits through the view reach the layer as well
    seq.params["2.W"][0, 0] = 42.0
    assert seq[2].params["W"][0, 0] == 42.0


def test_sequential_params_view_errors():
    seq = Sequential(Dense(3, 4, random_state=0), Activation("tanh"))
    with pytest.raises(ValueError) as exc:
        seq.params["0.W"] = np.zeros((4, 3))
    assert "(3, 4)" in str(exc.value) and "(4, 3)" in str(exc.value)
    for key in ("5.W", "x.W", "0.c", "1.W"):
        with pytest.raises(KeyError):
            seq.params[key] = np.zeros((3, 4))
    with pytest.raises(KeyError):
        seq.params["9.W"]
    with pytest.raises(TypeError):
        del seq.params["0.W"]


def test_sequential_accepts_a_list_and_train_eval_propagate():
    mods = [Dense(2, 3), Activation("relu")]
    seq = Sequential(mods)
    assert seq.modules == mods
    seq.eval()
    assert not seq.training and not any(m.training for m in mods)
    seq.train()
    assert seq.training and all(m.training for m in mods)
    assert isinstance(seq, Module)


def test_float32_forward_stays_float32():
    seq = Sequential(Dense(4, 3, dtype=np.float32, random_state=0), Activation("sigmoid"),
                     Dense(3, 2, dtype=np.float32, random_state=1))
    x = np.random.default_rng(0).uniform(-1, 1, (5, 4)).astype(np.float32)
    y = seq.forward(x)
    assert y.dtype == np.float32
    dx = seq.backward(np.ones_like(y))
    assert dx.dtype == np.float32
    assert all(seq.grads[k].dtype == np.float32 for k in seq.grads)


# ------------------------------------------------------------------ training sanity
def test_mlp_trained_with_adam_reduces_mse_tenfold():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (200, 3))
    w = np.array([1.5, -2.0, 1.0])
    y = np.sin(X @ w)[:, None]
    seq = Sequential(Dense(3, 32, random_state=1), Activation("tanh"),
                     Dense(32, 1, random_state=2))
    opt = Adam(lr=0.01)
    start = time.perf_counter()
    first, _ = mse(seq.forward(X), y)
    losses = []
    for _ in range(500):
        seq.zero_grad()
        value, grad = mse(seq.forward(X), y)
        seq.backward(grad)
        opt.step(seq.params, seq.grads)
        losses.append(value)
    final, _ = mse(seq.forward(X), y)
    assert np.all(np.isfinite(losses))
    assert final < first / 10.0, (first, final)
    assert time.perf_counter() - start < 3.0


def test_input_grad_false_fills_parameter_grads_and_returns_none():
    x = np.random.default_rng(0).normal(size=(5, 4))
    g = np.random.default_rng(1).normal(size=(5, 3))
    full = Dense(4, 3, random_state=2)
    lean = Dense(4, 3, random_state=2, input_grad=False)
    full.forward(x), lean.forward(x)
    assert full.backward(g) is not None
    assert lean.backward(g) is None
    for name in ("W", "b"):
        np.testing.assert_array_equal(lean.grads[name], full.grads[name])
    seq = Sequential(lean, Activation("tanh"))
    seq.zero_grad()
    seq.forward(x)
    assert seq.backward(np.ones((5, 3))) is None           # the pass ends at the first layer
    assert np.abs(lean.grads["W"]).sum() > 0
