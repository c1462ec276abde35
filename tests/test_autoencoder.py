"""npcae.Autoencoder on the layers engine, and the CAE's fused path against its engine reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import npcae
from npcae import Autoencoder, ContractiveAutoencoder
from npcae.gradcheck import check_model
from npcae.layers import Dense, TiedDense

unit = st.floats(0.0, 1.0, allow_nan=False, width=64)
ACTIVATIONS = ["sigmoid", "tanh", "softplus", "relu", {"name": "leaky_relu", "alpha": 0.2},
               "identity"]
LOSSES = [("bce", "sigmoid"), ("mse", "identity"), ("mse", "sigmoid"), ("kl", "sigmoid"),
          ("cosine", "sigmoid"), ("cosine", "tanh")]


def ae(layers, **kw):
    return Autoencoder(layers=layers, dtype=np.float64, random_state=kw.pop("random_state", 0),
                       **kw)


# ------------------------------------------------------------------- gradient checks
@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 4), data=st.data(), tied=st.booleans(),
       activation=st.sampled_from(ACTIVATIONS), code=st.sampled_from([None, "sigmoid", "tanh"]),
       loss=st.sampled_from(LOSSES), reduction=st.sampled_from(["sum", "mean"]),
       weight=st.floats(0.1, 3.0), seed=st.integers(0, 2 ** 16))
def test_loss_and_grad_passes_the_gradient_checker(depth, data, tied, activation, code, loss,
                                                   reduction, weight, seed):
    widths = tuple(data.draw(st.lists(st.integers(1, 6), min_size=depth, max_size=depth)))
    n, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 7))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = ae(widths, activation=activation, code_activation=code, output_activation=loss[1],
               loss=loss[0], reduction=reduction, loss_weight=weight, tied=tied,
               random_state=seed).initialize(d)
    result = check_model(model, X, method="richardson", rtol=1e-6)
    assert result.passed, result.report()


def test_tied_decoder_gets_both_contributions_and_has_no_weight_of_its_own():
    model = ae((5, 3), tied=True).initialize(6)
    assert list(model.params) == ["encoder.0.W", "encoder.0.b", "encoder.1.W", "encoder.1.b",
                                  "decoder.0.b", "decoder.1.b"]
    X = np.random.default_rng(0).random((4, 6))
    _, grads = model.loss_and_grad(X)
    # remove the decoder's contribution by hand: the gradient must change
    untied = ae((5, 3), tied=False).initialize(6)
    for key in model.params:
        untied.params[key] = model.params[key].copy()
    untied.params["decoder.0.W"] = model.params["encoder.1.W"].T.copy()
    untied.params["decoder.1.W"] = model.params["encoder.0.W"].T.copy()
    _, g_untied = untied.loss_and_grad(X)
    np.testing.assert_allclose(grads["encoder.0.W"],
                               g_untied["encoder.0.W"] + g_untied["decoder.1.W"].T, rtol=1e-12)


def test_parameter_keys_are_ordered_encoder_then_decoder_w_before_b():
    model = ae((4, 3, 2)).initialize(5)
    assert list(model.params) == [f"{part}.{i}.{p}" for part in ("encoder", "decoder")
                                  for i in range(3) for p in ("W", "b")]
    shapes = [model.params[f"encoder.{i}.W"].shape for i in range(3)]
    assert shapes == [(5, 4), (4, 3), (3, 2)]
    assert [model.params[f"decoder.{i}.W"].shape for i in range(3)] == [(2, 3), (3, 4), (4, 5)]


# ----------------------------------------------------------------------- Jacobians
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", {"name": "leaky_relu",
                                                             "alpha": 0.2}])
@pytest.mark.parametrize("layers", [(3,), (5, 3), (6, 4, 2)])
def test_jacobian_equals_numerical_jacobian_of_transform(activation, layers):
    model = ae(layers, activation=activation).initialize(7)
    X = np.random.default_rng(1).random((3, 7))
    J = model.jacobian(X)
    h = 1e-6
    numeric = np.empty_like(J)
    for i in range(7):
        step = np.zeros(7)
        step[i] = h
        numeric[:, :, i] = (model.transform(X + step) - model.transform(X - step)) / (2 * h)
    np.testing.assert_allclose(J, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.jacobian_norm(X), np.sqrt((J ** 2).sum(axis=(1, 2))),
                               rtol=1e-12)


def test_jacobian_is_computed_in_bounded_blocks(monkeypatch):
    model = ae((6, 2)).initialize(5)
    X = np.random.default_rng(0).random((50, 5))
    assert len(model._jacobian_rows(X)) == 1
    whole, whole_norm = model.jacobian(X), model.jacobian_norm(X)
    monkeypatch.setattr(type(model), "_jacobian_rows",
                        lambda self, X: [(s, min(s + 7, len(X))) for s in range(0, len(X), 7)])
    np.testing.assert_allclose(model.jacobian(X), whole, rtol=1e-12)
    np.testing.assert_allclose(model.jacobian_norm(X), whole_norm, rtol=1e-12)
    assert model.jacobian(X).shape == (50, 2, 5)


# ------------------------------------------------------------ the source texts' losses
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def test_pytorch_text_network_loss_is_half_torch_mse_loss():
    """784-256-128-100, sigmoid after every layer, 0.5 * mse_loss (mean over all elements)."""
    X = np.random.default_rng(0).random((9, 784))
    model = Autoencoder(layers=(256, 128, 100), activation="sigmoid",
                        output_activation="sigmoid", loss="mse", reduction="mean",
                        loss_weight=0.5, init="torch_linear", dtype=np.float64,
                        random_state=0).initialize(784)
    p, H = model.params, X
    for i in range(3):
        H = _sigmoid(H @ p[f"encoder.{i}.W"] + p[f"encoder.{i}.b"])
    for j in range(3):
        H = _sigmoid(H @ p[f"decoder.{j}.W"] + p[f"decoder.{j}.b"])
    expected = 0.5 * np.mean((H - X) ** 2)
    assert model.loss_terms(X)["total"] == pytest.approx(expected, rel=1e-12)
    for key, value in p.items():          # PyTorch's nn.Linear default init, W and b
        fan_in = value.shape[0] if value.ndim == 2 else None
        if fan_in:
            assert np.abs(value).max() <= 1 / np.sqrt(fan_in)
            assert np.abs(p[key[:-1] + "b"]).max() <= 1 / np.sqrt(fan_in)
            assert np.any(p[key[:-1] + "b"] != 0)


def test_tensorflow_text_network_loss_is_mse_mean_over_elements():
    """784-256-128-64 leaky_relu(0.2) incl. the code, sigmoid output, Glorot W, zero b."""
    X = np.random.default_rng(1).random((5, 784))
    model = Autoencoder(layers=(256, 128, 64), activation={"name": "leaky_relu", "alpha": 0.2},
                        output_activation="sigmoid", loss="mse", reduction="mean",
                        init="glorot_uniform", dtype=np.float64, random_state=0).initialize(784)
    p, H = model.params, X

    def leaky(a):
        return np.where(a > 0, a, 0.2 * a)
    for i in range(3):
        H = leaky(H @ p[f"encoder.{i}.W"] + p[f"encoder.{i}.b"])
    for j in range(3):
        A = H @ p[f"decoder.{j}.W"] + p[f"decoder.{j}.b"]
        H = _sigmoid(A) if j == 2 else leaky(A)
    assert model.loss_terms(X)["total"] == pytest.approx(np.mean((H - X) ** 2), rel=1e-12)
    assert all(np.all(p[k] == 0) for k in p if k.endswith(".b"))
    limit = np.sqrt(6 / (784 + 256))
    assert np.abs(p["encoder.0.W"]).max() <= limit


def test_drop_last_and_no_shuffle_reproduce_the_tensorflow_loop():
    X = np.random.default_rng(0).random((50, 6))
    model = Autoencoder(layers=(4,), batch_size=16, epochs=1, shuffle=False, drop_last=True,
                        dtype=np.float64, random_state=0, loss="mse",
                        output_activation="identity")
    seen = []
    original = model._objective

    def spy(Xb, grads, ws, rng=None):
        seen.append(Xb.copy())
        return original(Xb, grads, ws, rng)
    model._objective = spy
    model.fit(X)
    assert [len(b) for b in seen] == [16, 16, 16]
    np.testing.assert_array_equal(np.vstack(seen), X[:48])


# --------------------------------------------------------- estimator, save, resume
@pytest.mark.parametrize("layers,tied", [((4,), False), ((5, 3), True), ((6, 4, 2), False),
                                         ((6, 5, 4, 3), True)])
def test_save_load_and_resume_are_exact_at_every_depth(tmp_path, layers, tied):
    X = np.random.default_rng(0).random((40, 8))
    kw = dict(layers=layers, tied=tied, batch_size=8, random_state=3)
    once = Autoencoder(epochs=4, **kw).fit(X)
    first = Autoencoder(epochs=1, warm_start=True, **kw).fit(X)
    first.save(tmp_path / "ae.npz")
    again = npcae.load(tmp_path / "ae.npz")
    assert again.get_params() == first.get_params()
    np.testing.assert_array_equal(again.transform(X), first.transform(X))
    again.set_params(epochs=3).fit(X)
    for key in once.params:
        np.testing.assert_array_equal(again.params[key], once.params[key])


def test_bad_hyperparameters_are_named():
    X = np.random.default_rng(0).random((10, 4))
    for kw, match in [(dict(layers=()), "layers"), (dict(layers=(3, 0)), r"layers\[1\]"),
                      (dict(reduction="avg"), "reduction"), (dict(loss_weight=0), "loss_weight"),
                      (dict(shuffle="yes"), "shuffle"), (dict(init="nope"), "init"),
                      (dict(loss="bce", output_activation="identity"), "sigmoid")]:
        with pytest.raises((TypeError, ValueError), match=match):
            Autoencoder(**kw).fit(X)


def test_network_cache_is_not_pickled():
    import pickle
    X = np.random.default_rng(0).random((10, 4))
    model = Autoencoder(layers=(3,), epochs=1, random_state=0).fit(X)
    model.loss_and_grad(X.astype(np.float32))
    assert hasattr(model, "_network_cache")
    again = pickle.loads(pickle.dumps(model))
    assert not hasattr(again, "_network_cache")
    np.testing.assert_array_equal(again.transform(X), model.transform(X))


def test_check_estimator_passes_for_the_autoencoder():
    sklearn = pytest.importorskip("sklearn")
    import warnings
    from sklearn.utils.estimator_checks import check_estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(Autoencoder(layers=(4, 2), loss="mse",
                                              output_activation="identity"), on_fail=None)
    assert [r["check_name"] for r in results if r["status"] == "failed"] == []
    assert sklearn


# ------------------------------------------------------ the CAE: fused = reference
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 7), d=st.integers(1, 8), k=st.integers(1, 6), data=st.data(),
       activation=st.sampled_from(["sigmoid", "tanh", "softplus", "relu", "identity"]),
       loss=st.sampled_from([("bce", "sigmoid"), ("mse", "identity"), ("mse", "sigmoid"),
                             ("kl", "sigmoid"), ("cosine", "sigmoid")]),
       tied=st.booleans(), lam=st.floats(0.0, 3.0), seed=st.integers(0, 2 ** 16))
def test_fused_cae_equals_its_engine_reference(n, d, k, data, activation, loss, tied, lam,
                                               seed):
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = ContractiveAutoencoder(n_hidden=k, lam=lam, activation=activation,
                                   output_activation=loss[1], loss=loss[0], tied=tied,
                                   dtype=np.float64, random_state=seed).initialize(d)
    fused_loss, fused = model.loss_and_grad(X)
    ref_loss, ref = model.reference_loss_and_grad(X)
    assert fused_loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-300)
    assert fused.keys() == ref.keys()
    for key in fused:
        scale = max(np.abs(ref[key]).max(), np.abs(fused[key]).max(), 1e-300)
        # + a roundoff floor: the terms summed here are O(1) (inputs in [0, 1], weights O(1)),
        # so a gradient that is exactly 0 (cosine loss on one feature is constant) comes out
        # of the fused lines as ~1e-17, of the engine as 0
        assert np.abs(fused[key] - ref[key]).max() <= 1e-12 * scale + 1e-15, key


def test_fused_cae_equals_its_engine_reference_where_the_gradient_vanishes():
    """The case hypothesis found: d = 1 with the cosine loss (piecewise constant in 1-D)."""
    X = np.array([[0.5], [0.5]])
    model = ContractiveAutoencoder(n_hidden=3, lam=0.0, output_activation="sigmoid",
                                   loss="cosine", dtype=np.float64,
                                   random_state=1415).initialize(1)
    _, fused = model.loss_and_grad(X)
    _, ref = model.reference_loss_and_grad(X)
    for key in fused:
        assert np.abs(ref[key]).max() == 0.0 and np.abs(fused[key]).max() < 1e-15, key


def test_reference_path_uses_the_engine_layers(monkeypatch):
    """The reference really runs Dense/TiedDense backward (not a copy of the fused lines)."""
    calls = []
    for cls in (Dense, TiedDense):
        original = cls.backward

        def spy(self, g, _original=original, _name=cls.__name__):
            calls.append(_name)
            return _original(self, g)
        monkeypatch.setattr(cls, "backward", spy)
    X = np.random.default_rng(0).random((3, 4))
    ContractiveAutoencoder(n_hidden=2, dtype=np.float64, random_state=0).initialize(4) \
        .reference_loss_and_grad(X)
    assert calls == ["TiedDense", "Dense"]


class _NoisyObjective(Autoencoder):
    """Draws one number per step from the generator the objective is given."""

    def _objective(self, X, grads, ws, rng=None):
        if grads is not None:
            self.draws_.append(float(rng.random()))
        return super()._objective(X, grads, ws, rng)


def test_the_objective_draws_from_the_training_generator_and_resumes_it():
    X = np.random.default_rng(0).random((30, 5))
    once = _NoisyObjective(layers=(3,), epochs=4, batch_size=10, random_state=1)
    once.draws_ = []
    once.fit(X)
    split = _NoisyObjective(layers=(3,), epochs=1, batch_size=10, random_state=1,
                            warm_start=True)
    split.draws_ = []
    split.fit(X)
    split.set_params(epochs=3).fit(X)
    assert len(once.draws_) == 12 and split.draws_ == once.draws_
    assert len(set(once.draws_)) == 12
