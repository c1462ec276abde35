"""SparseAutoencoder and DenoisingAutoencoder: gradients, the classic bugs, behaviour, resume."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import npcae
from npcae import DenoisingAutoencoder, SparseAutoencoder
from npcae.gradcheck import check_gradient, check_model
from npcae.models import base as base_module

unit = st.floats(0.0, 1.0, allow_nan=False, width=64)
LOSSES = [("bce", "sigmoid"), ("mse", "identity"), ("mse", "sigmoid"), ("cosine", "sigmoid")]


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# ------------------------------------------------------------------- gradient checks
@settings(max_examples=30, deadline=None)
@given(depth=st.integers(1, 3), data=st.data(), tied=st.booleans(),
       sparsity=st.sampled_from(["kl", "l1"]), loss=st.sampled_from(LOSSES),
       activation=st.sampled_from(["sigmoid", "tanh", "softplus"]),
       beta=st.floats(0.0, 3.0), rho=st.floats(0.05, 0.95), seed=st.integers(0, 2 ** 16))
def test_sparse_loss_and_grad_passes_the_gradient_checker(depth, data, tied, sparsity, loss,
                                                          activation, beta, rho, seed):
    widths = tuple(data.draw(st.lists(st.integers(1, 5), min_size=depth, max_size=depth)))
    n, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    code = "sigmoid" if sparsity == "kl" else data.draw(st.sampled_from([None, "tanh"]))
    model = SparseAutoencoder(layers=widths, sparsity=sparsity, beta=beta, rho=rho,
                              activation=activation, code_activation=code,
                              output_activation=loss[1], loss=loss[0], tied=tied,
                              dtype=np.float64, random_state=seed).initialize(d)
    result = check_model(model, X, method="richardson", rtol=1e-6)
    assert result.passed, result.report()


def _check_with_fixed_corruption(model, X, C):
    _, grads = model.loss_and_grad(X, corrupted=C)
    for key in model.params:
        def loss(value, key=key):
            saved = model.params[key]
            model.params[key] = value
            try:
                return model.loss_and_grad(X, corrupted=C)[0]
            finally:
                model.params[key] = saved
        result = check_gradient(loss, model.params[key].copy(), grads[key],
                                method="richardson", rtol=1e-6)
        assert result.passed, (key, result.report())


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 3), data=st.data(), tied=st.booleans(),
       noise=st.sampled_from(["gaussian", "masking", "salt_pepper"]),
       loss=st.sampled_from(LOSSES), activation=st.sampled_from(["sigmoid", "tanh"]),
       seed=st.integers(0, 2 ** 16))
def test_denoising_loss_and_grad_on_given_corruption(depth, data, tied, noise, loss, activation,
                                                     seed):
    widths = tuple(data.draw(st.lists(st.integers(1, 5), min_size=depth, max_size=depth)))
    n, d = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = DenoisingAutoencoder(layers=widths, noise=noise, noise_level=0.3, tied=tied,
                                 activation=activation, output_activation=loss[1],
                                 loss=loss[0], dtype=np.float64, random_state=seed).initialize(d)
    C = model.corrupt(X, random_state=seed)
    _check_with_fixed_corruption(model, X, C)


# --------------------------------------------------------------------- classic bugs
def test_kl_sparsity_is_on_the_batch_mean_not_each_activation():
    """The classic bug averages KL(rho || h_nj) over samples; Jensen makes it differ."""
    X = np.random.default_rng(0).random((20, 6))
    model = SparseAutoencoder(layers=(4,), rho=0.1, beta=2.0, loss="mse",
                              output_activation="identity", dtype=np.float64,
                              random_state=0).initialize(6)
    p = model.params
    H = _sigmoid(X @ p["encoder.0.W"] + p["encoder.0.b"])
    rho, rho_hat = 0.1, H.mean(axis=0)
    batch_mean = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    per_activation = np.mean(np.sum(rho * np.log(rho / H) + (1 - rho) * np.log((1 - rho) / (1 - H)),
                                    axis=1))
    assert abs(batch_mean - per_activation) > 1e-3 * batch_mean     # the two really differ
    terms = model.loss_terms(X)
    assert terms["sparsity"] == pytest.approx(batch_mean, rel=1e-12)
    R = _sigmoid(X @ p["encoder.0.W"] + p["encoder.0.b"]) @ p["decoder.0.W"] + p["decoder.0.b"]
    rec = np.mean(np.sum((R - X) ** 2, axis=1))
    assert terms["total"] == pytest.approx(rec + 2.0 * batch_mean, rel=1e-12)


def test_kl_needs_a_code_activation_in_the_unit_interval():
    with pytest.raises(ValueError, match="code_activation='sigmoid'"):
        SparseAutoencoder(code_activation="tanh").fit(np.random.default_rng(0).random((5, 3)))


def test_batched_kl_uses_rho_hat_of_all_of_x(monkeypatch):
    X = np.random.default_rng(0).random((300, 8))
    model = SparseAutoencoder(layers=(5,), dtype=np.float64, random_state=0).initialize(8)
    whole = model.loss_terms(X)
    monkeypatch.setattr(base_module, "_EVAL_BLOCK_BYTES", 8 * 8 * 16)   # 16-row blocks
    assert len(model._eval_blocks(X)) == 19
    batched = model.loss_terms(X)
    for key in whole:
        assert batched[key] == pytest.approx(whole[key], rel=1e-12)


def test_score_samples_leaves_the_batch_level_kl_out():
    X = np.random.default_rng(0).random((12, 5))
    kl = SparseAutoencoder(layers=(3,), dtype=np.float64, random_state=0).initialize(5)
    assert np.mean(kl.score_samples(X)) == pytest.approx(-kl.loss_terms(X)["reconstruction"],
                                                         rel=1e-12)
    l1 = SparseAutoencoder(layers=(3,), sparsity="l1", dtype=np.float64,
                           random_state=0).initialize(5)
    assert np.mean(l1.score_samples(X)) == pytest.approx(-l1.loss_terms(X)["total"], rel=1e-12)


def test_the_loss_is_measured_against_the_clean_input():
    X = np.random.default_rng(0).random((6, 5))
    model = DenoisingAutoencoder(layers=(3,), loss="mse", output_activation="identity",
                                 dtype=np.float64, random_state=0).initialize(5)
    C = model.corrupt(X, random_state=1)
    p = model.params
    R = _sigmoid(C @ p["encoder.0.W"] + p["encoder.0.b"]) @ p["decoder.0.W"] + p["decoder.0.b"]
    against_clean = np.mean(np.sum((R - X) ** 2, axis=1))
    against_noisy = np.mean(np.sum((R - C) ** 2, axis=1))
    assert abs(against_clean - against_noisy) > 1e-3
    assert model.loss_terms(X, corrupted=C)["total"] == pytest.approx(against_clean, rel=1e-12)


def test_transform_reconstruct_and_score_never_corrupt():
    X = np.random.default_rng(0).random((10, 5))
    model = DenoisingAutoencoder(layers=(3,), noise="gaussian", noise_level=0.5,
                                 dtype=np.float64, random_state=0).fit(X)
    p = model.params
    clean = _sigmoid(X @ p["encoder.0.W"] + p["encoder.0.b"])
    np.testing.assert_array_equal(model.transform(X), clean)
    np.testing.assert_array_equal(model.transform(X), model.transform(X))
    np.testing.assert_allclose(model.reconstruct(X),
                               _sigmoid(clean @ p["decoder.0.W"] + p["decoder.0.b"]), rtol=1e-14)
    assert model.score(X) == model.score(X)
    assert model.score(X) == pytest.approx(-model.loss_terms(X, corrupted=X)["reconstruction"],
                                           rel=1e-12)


@pytest.mark.parametrize("noise,level", [("masking", 0.3), ("salt_pepper", 0.2),
                                         ("gaussian", 0.4)])
def test_corruptions_have_the_stated_statistics(noise, level):
    X = np.full((400, 250), 0.5)
    model = DenoisingAutoencoder(noise=noise, noise_level=level)
    C = model.corrupt(X, random_state=0)
    np.testing.assert_array_equal(C, model.corrupt(X, random_state=0))
    if noise == "masking":
        assert np.mean(C == 0) == pytest.approx(level, abs=0.01)
        assert set(np.unique(C)) == {0.0, 0.5}
    elif noise == "salt_pepper":
        assert np.mean(C == 0) == pytest.approx(level / 2, abs=0.01)
        assert np.mean(C == 1) == pytest.approx(level / 2, abs=0.01)
    else:
        assert np.std(C - X) == pytest.approx(level, rel=0.02)
        assert C.min() < 0 and C.max() > 1                      # no clipping


def test_noise_arguments_are_checked():
    X = np.random.default_rng(0).random((4, 3))
    dae = DenoisingAutoencoder(layers=(2,), dtype=np.float64, random_state=0).initialize(3)
    with pytest.raises(ValueError, match="corrupted must have shape"):
        dae.loss_and_grad(X, corrupted=X[:2])
    with pytest.raises(TypeError, match="corrupted="):
        dae.loss_terms(X, eps=X)
    with pytest.raises(TypeError, match="no noise arguments"):
        npcae.Autoencoder(layers=(2,), dtype=np.float64).initialize(3).loss_terms(X, corrupted=X)


def test_loss_calls_never_change_what_training_draws():
    X = np.random.default_rng(0).random((40, 6))
    kw = dict(layers=(4,), batch_size=10, random_state=5)
    once = DenoisingAutoencoder(epochs=3, **kw).fit(X)
    split = DenoisingAutoencoder(epochs=1, warm_start=True, **kw).fit(X)
    split.loss_terms(X), split.loss_and_grad(X), split.score(X), split.corrupt(X)
    split.set_params(epochs=2).fit(X)
    for key in once.params:
        np.testing.assert_array_equal(split.params[key], once.params[key])


@pytest.mark.parametrize("cls,kw", [(SparseAutoencoder, dict(sparsity="kl")),
                                    (SparseAutoencoder, dict(sparsity="l1", layers=(5, 3))),
                                    (DenoisingAutoencoder, dict(noise="salt_pepper", tied=True))])
def test_save_load_and_resume_are_exact(tmp_path, cls, kw):
    X = np.random.default_rng(0).random((40, 7))
    kw = {"layers": (4,), "batch_size": 8, "random_state": 2, **kw}
    once = cls(epochs=4, **kw).fit(X)
    first = cls(epochs=1, warm_start=True, **kw).fit(X)
    first.save(tmp_path / "m.npz")
    again = npcae.load(tmp_path / "m.npz")
    assert type(again) is cls and again.get_params() == first.get_params()
    again.set_params(epochs=3).fit(X)
    for key in once.params:
        np.testing.assert_array_equal(again.params[key], once.params[key])
    assert "sparsity" not in once.history_ or len(once.history_["mean_activation"]) == 4


# ------------------------------------------------------------------------ behaviour
@pytest.fixture(scope="module")
def digits():
    X, _ = npcae.datasets.make_digits(3000, random_state=0)
    X_test, _ = npcae.datasets.make_digits(300, random_state=1)
    return X, X_test


@pytest.mark.parametrize("noise,level", [("masking", 0.3), ("salt_pepper", 0.2),
                                         ("gaussian", 0.3)])
def test_denoising_halves_the_error_of_the_corrupted_input(digits, noise, level):
    X, X_test = digits
    model = DenoisingAutoencoder(layers=(256,), noise=noise, noise_level=level, epochs=15,
                                 batch_size=50, optimizer=npcae.optim.Adam(lr=2e-3),
                                 random_state=0).fit(X)
    C = model.corrupt(X_test, random_state=7)
    noisy_error = np.sum((C - X_test) ** 2)
    denoised_error = np.sum((model.reconstruct(C) - X_test) ** 2)
    assert denoised_error <= 0.5 * noisy_error, (denoised_error / noisy_error)


def test_kl_sparse_mean_activation_lands_near_rho(digits):
    X, X_test = digits
    # beta large enough that the penalty, not the summed reconstruction error, sets the mean
    model = SparseAutoencoder(layers=(64,), sparsity="kl", rho=0.05, beta=30.0, loss="mse",
                              epochs=10, batch_size=50, optimizer=npcae.optim.Adam(lr=3e-3),
                              random_state=0).fit(X)
    assert abs(model.history_["mean_activation"][-1] - 0.05) < 0.02
    assert abs(model.transform(X_test).mean() - 0.05) < 0.02
    assert len(model.history_["sparsity"]) == 10
