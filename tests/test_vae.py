"""npcae.VariationalAutoencoder: gradients, the objective against independent formulas,
the classic bugs, noise handling, resume, and behaviour on the built-in digits."""
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import npcae
from npcae import VariationalAutoencoder
from npcae.gradcheck import check_model
from npcae.layers import Dense
from npcae.optim import Adam

unit = st.floats(0.0, 1.0, allow_nan=False, width=64)
normal = st.floats(-3.0, 3.0, allow_nan=False, width=64)
ACTIVATIONS = ["relu", "tanh", "sigmoid", "softplus", {"name": "leaky_relu", "alpha": 0.2},
               "identity"]


def vae(layers=(5,), n_latent=3, **kw):
    return VariationalAutoencoder(layers=layers, n_latent=n_latent, dtype=np.float64,
                                  random_state=kw.pop("random_state", 0), **kw)


class FixedNoise:
    """``model`` with its noise fixed: what ``check_model`` differentiates."""

    def __init__(self, model, eps):
        self.model, self.eps, self.params = model, eps, model.params

    def loss_and_grad(self, X):
        return self.model.loss_and_grad(X, eps=self.eps)


def gradcheck(model, X, eps):
    return check_model(FixedNoise(model, eps), X, method="richardson", rtol=1e-6)


# ----------------------------------------------------------------- the classic bugs
class SigmaIsExpLogvar(VariationalAutoencoder):
    """Bug: exp(logvar) used as sigma (it is the variance)."""

    @staticmethod
    def _sigma(LV, out=None):
        return np.exp(LV, out=out)


class KLWrongSign(VariationalAutoencoder):
    @staticmethod
    def _kl_per_sample(MU, LV, S):
        return 0.5 * np.sum(1.0 + LV - MU * MU - S * S, axis=1)


class KLWithoutHalf(VariationalAutoencoder):
    @staticmethod
    def _kl_per_sample(MU, LV, S):
        return -np.sum(1.0 + LV - MU * MU - S * S, axis=1)


BUGS = [SigmaIsExpLogvar, KLWrongSign, KLWithoutHalf]


def same_weights(cls, model, **kw):
    """A ``cls`` with ``model``'s hyperparameters and a copy of its weights."""
    other = cls(**{**model.get_params(), **kw}).initialize(model.n_features_in_)
    for key, value in model.params.items():
        other.params[key] = value.copy()
    return other


# ------------------------------------------------------------------- gradient checks
@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 3), data=st.data(), activation=st.sampled_from(ACTIVATIONS),
       decoder=st.sampled_from(["bernoulli", "gaussian"]),
       init=st.sampled_from(["auto", "torch_linear"]), seed=st.integers(0, 2 ** 16))
def test_loss_and_grad_passes_the_gradient_checker(depth, data, activation, decoder, init,
                                                   seed):
    widths = tuple(data.draw(st.lists(st.integers(1, 6), min_size=depth, max_size=depth)))
    n, d, k = (data.draw(st.integers(1, 6)), data.draw(st.integers(1, 7)),
               data.draw(st.integers(1, 4)))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    eps = data.draw(arrays(np.float64, (n, k), elements=normal))
    model = vae(widths, k, activation=activation, decoder=decoder, init=init,
                random_state=seed).initialize(d)
    # nonzero biases: with zero biases, X = 0 and eps = 0 put every unit exactly on relu's
    # kink at 0, where the loss has no gradient to check
    rng = np.random.default_rng(seed)
    for key in [key for key in model.params if key.endswith(".b")]:
        model.params[key] = rng.uniform(-0.5, 0.5, model.params[key].shape)
    result = gradcheck(model, X, eps)
    assert result.passed, result.report()
    assert list(result) == list(model.params)            # every parameter was checked


def test_the_gradient_checker_catches_exp_logvar_used_as_sigma():
    X = np.random.default_rng(0).random((5, 6))
    eps = np.random.default_rng(1).standard_normal((5, 3))
    model = vae((5, 4), activation="tanh").initialize(6)
    assert gradcheck(model, X, eps).passed
    result = gradcheck(same_weights(SigmaIsExpLogvar, model), X, eps)
    assert not result.passed
    assert not result["logvar.W"].passed and result["mu.W"].passed


# -------------------------------------------------- the objective, independently computed
def reference_terms(model, X, eps):
    """Plain NumPy, written from the formulas and not from the model's code."""
    p = model.params
    phi = {"relu": lambda a: np.maximum(a, 0.0), "tanh": np.tanh}[model.activation]
    n_hidden = len(model.layers)
    H = X
    for i in range(n_hidden):
        H = phi(H @ p[f"encoder.{i}.W"] + p[f"encoder.{i}.b"])
    mu = H @ p["mu.W"] + p["mu.b"]
    logvar = H @ p["logvar.W"] + p["logvar.b"]
    sigma = np.sqrt(np.exp(logvar))
    z = mu + sigma * eps
    for j in range(n_hidden + 1):
        z = z @ p[f"decoder.{j}.W"] + p[f"decoder.{j}.b"]
        if j < n_hidden:
            z = phi(z)
    if model.decoder == "bernoulli":
        r = 1.0 / (1.0 + np.exp(-z))
        log_px = np.sum(X * np.log(r) + (1 - X) * np.log(1 - r), axis=1)
    else:
        log_px = np.sum(-0.5 * (X - z) ** 2 - 0.5 * np.log(2 * np.pi), axis=1)
    # KL(N(mu, sigma^2) || N(0, 1)) = log(1 / sigma) + (sigma^2 + mu^2) / 2 - 1/2 per unit
    kl = np.sum(-np.log(sigma) + (sigma ** 2 + mu ** 2) / 2 - 0.5, axis=1)
    return {"reconstruction": -log_px.mean(), "kl": kl.mean(), "total": (kl - log_px).mean()}


def assert_matches_reference(model, X, eps):
    terms = model.loss_terms(X, eps=eps)
    expected = reference_terms(model, X, eps)
    for key, value in expected.items():
        assert terms[key] == pytest.approx(value, rel=1e-12), key
    assert terms["elbo"] == -terms["total"]
    assert model.loss_and_grad(X, eps=eps)[0] == pytest.approx(expected["total"], rel=1e-12)


@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("layers,activation", [((7,), "relu"), ((6, 4), "tanh"),
                                               ((8, 6, 5), "relu")])
def test_loss_equals_an_independent_numpy_formula(decoder, layers, activation):
    rng = np.random.default_rng(3)
    X = rng.random((9, 10))
    eps = rng.standard_normal((9, 3))
    model = vae(layers, activation=activation, decoder=decoder, init="torch_linear",
                random_state=4).initialize(10)
    model.params["logvar.b"][:] = [-1.5, 0.3, 1.2]          # sigma far from exp(logvar)
    model.params["mu.b"][:] = [0.5, -1.0, 2.0]
    assert_matches_reference(model, X, eps)


@pytest.mark.parametrize("bug", BUGS, ids=lambda c: c.__name__)
def test_the_reference_comparison_fails_on_each_classic_bug(bug):
    rng = np.random.default_rng(3)
    X, eps = rng.random((9, 10)), rng.standard_normal((9, 3))
    model = vae((7,), init="torch_linear", random_state=4).initialize(10)
    model.params["logvar.b"][:] = [-1.5, 0.3, 1.2]
    assert_matches_reference(model, X, eps)
    with pytest.raises(AssertionError):
        assert_matches_reference(same_weights(bug, model), X, eps)
    # the backward pass is the correct one, so the checker sees the mismatch too
    assert not gradcheck(same_weights(bug, model), X, eps).passed


def linear_gaussian_model(rng, d=4, k=2):
    """A linear VAE whose q(z|x) is the exact posterior of its own decoder.

    Decoder ``x = z A + c + noise``, ``z ~ N(0, I)``, ``noise ~ N(0, I)``, with the rows
    of ``A`` orthogonal, so the posterior ``N(P^-1 A (x - c), P^-1)``, ``P = I + A A^T``,
    is diagonal: the encoder can represent it exactly.
    """
    model = vae((d,), k, activation="identity", decoder="gaussian").initialize(d)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = Q[:k] * np.array([1.7, 0.6])[:, None]                # (k, d), orthogonal rows
    c = rng.standard_normal(d)
    var = 1.0 / (1.0 + np.sum(A * A, axis=1))                # diagonal of P^-1
    p = model.params
    p["encoder.0.W"][...], p["encoder.0.b"][...] = np.eye(d), 0.0        # H = X
    p["mu.W"][...], p["mu.b"][...] = A.T * var, -(A @ c) * var
    p["logvar.W"][...], p["logvar.b"][...] = 0.0, np.log(var)
    p["decoder.0.W"][...], p["decoder.0.b"][...] = A, c                  # Y = Z A + c
    p["decoder.1.W"][...], p["decoder.1.b"][...] = np.eye(d), 0.0
    cov = np.eye(d) + A.T @ A                                # x ~ N(c, I + A^T A)

    def log_px(X):
        R = X - c
        return -0.5 * (np.einsum("ni,ni->n", R @ np.linalg.inv(cov), R)
                       + np.linalg.slogdet(cov)[1] + d * np.log(2 * np.pi))
    return model, log_px


def exact_elbo(model, X):
    """``-E_eps[L]``: the objective is quadratic in eps for a linear VAE, and the four
    points (+-1, +-1) reproduce the first and second moments of N(0, I_2) exactly."""
    points = [np.tile(s, (len(X), 1)) for s in ([1, 1], [1, -1], [-1, 1], [-1, -1])]
    return -np.mean([model.loss_terms(X, eps=e)["total"] for e in points])


def test_elbo_is_the_exact_log_likelihood_when_q_is_the_exact_posterior():
    """ELBO = log p(x) - KL(q || posterior): equality (Gaussian constant included) iff
    the model computes the reconstruction, the KL and sigma = exp(logvar / 2) right."""
    rng = np.random.default_rng(0)
    model, log_px = linear_gaussian_model(rng)
    X = rng.standard_normal((6, 4)) * 2
    assert exact_elbo(model, X) == pytest.approx(np.mean(log_px(X)), rel=1e-12)
    # importance weights are constant: every k gives log p(x) exactly
    np.testing.assert_allclose(model.log_likelihood(X, k=3), log_px(X), rtol=1e-12)
    for bug in BUGS:
        buggy = same_weights(bug, model)
        assert abs(exact_elbo(buggy, X) - np.mean(log_px(X))) > 0.05, bug.__name__


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    X = np.random.default_rng(0).random((4, 5))
    model = vae((3,)).initialize(5)
    for key in ("mu.W", "mu.b", "logvar.W", "logvar.b"):
        model.params[key][...] = 0.0
    assert model.loss_terms(X, eps=np.ones((4, 3)))["kl"] == 0.0
    model.params["logvar.b"][:] = [-2.0, 0.5, 3.0]
    assert model.loss_terms(X, eps=np.ones((4, 3)))["kl"] > 0


# --------------------------------------------------------------------------- noise
def test_noise_is_explicit_and_otherwise_drawn_from_the_calls_own_generator():
    rng = np.random.default_rng(0)
    X, eps = rng.random((7, 6)), rng.standard_normal((7, 3))
    model = vae((4,), random_state=5).initialize(6)
    a, ga = model.loss_and_grad(X, eps=eps)
    b, gb = model.loss_and_grad(X, eps=eps)
    assert a == b and all(np.array_equal(ga[k], gb[k]) for k in ga)
    assert model.loss_and_grad(X, eps=eps + 0.5)[0] != a
    # without eps: random_state=5 draws the same noise every call
    assert model.loss_and_grad(X)[0] == model.loss_and_grad(X)[0]
    drawn = np.random.default_rng(5).standard_normal((7, 3))
    assert model.loss_and_grad(X)[0] == model.loss_and_grad(X, eps=drawn)[0]
    with pytest.raises(ValueError, match=r"eps must have shape \(7, 3\)"):
        model.loss_and_grad(X, eps=eps[:, :2])
    with pytest.raises(TypeError, match="eps="):
        model.loss_and_grad(X, corrupted=X)


def test_loss_terms_in_blocks_slice_the_noise_by_rows(monkeypatch):
    rng = np.random.default_rng(0)
    X, eps = rng.random((23, 6)), rng.standard_normal((23, 3))
    model = vae((4,)).initialize(6)
    whole = model.loss_terms(X, eps=eps)
    monkeypatch.setattr(type(model), "_eval_blocks",
                        lambda self, X: [(s, min(s + 5, len(X))) for s in range(0, len(X), 5)])
    blocked = model.loss_terms(X, eps=eps)
    for key in whole:
        assert blocked[key] == pytest.approx(whole[key], rel=1e-12)


def test_training_draws_eps_from_the_training_generator(monkeypatch):
    X = np.random.default_rng(0).random((30, 5))
    model = VariationalAutoencoder(layers=(4,), n_latent=2, epochs=1, batch_size=10,
                                   random_state=1)
    seen = []
    original = VariationalAutoencoder._objective

    def spy(self, Xb, grads, ws, rng=None, eps=None):
        seen.append(rng)
        return original(self, Xb, grads, ws, rng, eps)
    monkeypatch.setattr(VariationalAutoencoder, "_objective", spy)
    model.fit(X)
    assert len(seen) == 3 and all(r is seen[0] for r in seen)
    assert model.training_rng_state_ == seen[0].bit_generator.state


# --------------------------------------------------------- estimator, save, resume
def test_save_load_and_resume_are_exact(tmp_path):
    X, _ = npcae.datasets.make_digits(120, random_state=1)
    kw = dict(layers=(16, 8), n_latent=3, batch_size=32, random_state=3)
    once = VariationalAutoencoder(epochs=5, **kw).fit(X)
    first = VariationalAutoencoder(epochs=2, warm_start=True, **kw).fit(X)
    first.save(tmp_path / "vae.npz")
    again = npcae.load(tmp_path / "vae.npz")
    assert type(again) is VariationalAutoencoder and again.get_params() == first.get_params()
    np.testing.assert_array_equal(again.transform(X), first.transform(X))
    again.set_params(epochs=3).fit(X)
    for key in once.params:
        np.testing.assert_array_equal(again.params[key], once.params[key])
    assert again.history_["total"] == once.history_["total"]
    assert again.history_["elbo"] == [-t for t in once.history_["total"]]
    assert again.n_iter_ == 5


def test_evaluation_never_touches_training(tmp_path):
    X, _ = npcae.datasets.make_digits(100, random_state=2)
    kw = dict(layers=(12,), n_latent=2, batch_size=25, random_state=0)
    plain = VariationalAutoencoder(epochs=3, **kw).fit(X)
    busy = VariationalAutoencoder(epochs=1, warm_start=True, **kw).fit(X)
    for _ in range(2):
        state = busy.training_rng_state_
        busy.score_samples(X), busy.score(X), busy.log_likelihood(X[:5], k=4)
        busy.sample(3), busy.loss_terms(X), busy.loss_and_grad(X)
        assert busy.training_rng_state_ == state
        busy.fit(X)
    for key in plain.params:
        np.testing.assert_array_equal(busy.params[key], plain.params[key])


def test_score_samples_is_deterministic_and_per_row():
    X, _ = npcae.datasets.make_digits(40, random_state=3)
    model = VariationalAutoencoder(layers=(12,), n_latent=3, epochs=1, random_state=0).fit(X)
    s = model.score_samples(X)
    assert s.shape == (40,)
    np.testing.assert_array_equal(model.score_samples(X), s)
    np.testing.assert_array_equal(model.score_samples(X[::-1]), s[::-1])      # order
    # a subset: the same draws (float32 products of other shapes round differently)
    np.testing.assert_allclose(model.score_samples(X[5:6]), s[5:6], rtol=1e-6)
    np.testing.assert_array_equal(model._row_noise(X[5:6], 1, 0), model._row_noise(X, 1, 0)[5:6])
    assert not np.array_equal(model.score_samples(X, random_state=1), s)
    assert model.score(X) == pytest.approx(float(np.mean(s, dtype=np.float64)))
    many = model.score_samples(X, n_draws=50)
    assert np.all(np.abs(many - s) < np.abs(s))                  # the same quantity
    # each row's ELBO from its own draws, through the objective
    eps = model._row_noise(X, 1, 0)[:, 0]
    assert model.loss_terms(X, eps=eps)["elbo"] == pytest.approx(float(np.mean(s)), rel=1e-5)


def test_log_likelihood_bounds_the_elbo_from_above_on_average():
    X, _ = npcae.datasets.make_digits(60, random_state=4)
    model = VariationalAutoencoder(layers=(32,), n_latent=4, epochs=3, random_state=0).fit(X)
    elbo = model.score_samples(X, n_draws=20)
    iw = model.log_likelihood(X, k=20)
    assert iw.shape == (60,) and iw.dtype == np.float64
    np.testing.assert_array_equal(model.log_likelihood(X, k=20), iw)
    assert np.mean(iw) > np.mean(elbo)


def test_shapes_of_sample_interpolate_transform_and_jacobian():
    X = np.random.default_rng(0).random((6, 9))
    model = vae((5, 4), 3, activation="tanh").initialize(9)
    assert model.transform(X).shape == (6, 3)
    np.testing.assert_array_equal(model.transform(X), model._posterior(X)[0])
    assert model.transform_logvar(X).shape == (6, 3)
    assert model.sample(7, random_state=0).shape == (7, 9)
    np.testing.assert_array_equal(model.sample(4, random_state=1), model.sample(4, random_state=1))
    prior = np.random.default_rng(1).standard_normal((4, 3))
    np.testing.assert_array_equal(model.sample(4, random_state=1), model.decode(prior))
    path = model.interpolate(X[0], X[1], steps=5)
    assert path.shape == (5, 9)
    np.testing.assert_allclose(path[[0, -1]], model.reconstruct(X[:2]), rtol=1e-12)
    assert np.all((path > 0) & (path < 1))                           # Bernoulli means
    with pytest.raises(ValueError, match="steps"):
        model.interpolate(X[0], X[1], steps=1)
    with pytest.raises(ValueError, match="x_b"):
        model.interpolate(X[0], X[1:3])
    assert list(model.get_feature_names_out()) == [f"variationalautoencoder{i}"
                                                   for i in range(3)]
    J = model.jacobian(X[:3])
    h, numeric = 1e-6, np.empty((3, 3, 9))
    for i in range(9):
        step = np.zeros(9)
        step[i] = h
        numeric[:, :, i] = (model.transform(X[:3] + step) - model.transform(X[:3] - step)) / (2 * h)
    np.testing.assert_allclose(J, numeric, rtol=1e-6, atol=1e-9)


def test_parameter_keys_shapes_and_initialisers():
    model = vae((6, 4), 2, activation="relu").initialize(7)
    assert list(model.params) == ["encoder.0.W", "encoder.0.b", "encoder.1.W", "encoder.1.b",
                                  "mu.W", "mu.b", "logvar.W", "logvar.b", "decoder.0.W",
                                  "decoder.0.b", "decoder.1.W", "decoder.1.b", "decoder.2.W",
                                  "decoder.2.b"]
    assert [model.params[f"decoder.{j}.W"].shape for j in range(3)] == [(2, 4), (4, 6), (6, 7)]
    assert model.params["logvar.W"].shape == (4, 2)
    assert np.abs(model.params["encoder.0.W"]).max() <= np.sqrt(6 / 7)          # he_uniform
    assert np.abs(model.params["encoder.0.W"]).max() > np.sqrt(6 / 13)
    assert all(np.all(model.params[k] == 0) for k in model.params if k.endswith(".b"))
    tanh = vae((6, 4), 2, activation="tanh").initialize(7)
    assert np.abs(tanh.params["encoder.0.W"]).max() <= np.sqrt(6 / 13)          # glorot
    torch = vae((6, 4), 2, init="torch_linear").initialize(7)
    for key, value in torch.params.items():
        fan_in = torch.params[key[:-1] + "W"].shape[0]
        assert np.abs(value).max() <= 1 / np.sqrt(fan_in) and np.any(value != 0), key


def test_training_runs_on_the_engine_layers(monkeypatch):
    calls = []
    original = Dense.backward

    def spy(self, g):
        calls.append((self.n_in, self.n_out))
        return original(self, g)
    monkeypatch.setattr(Dense, "backward", spy)
    vae((5,), 2).initialize(6).loss_and_grad(np.random.default_rng(0).random((3, 6)))
    assert calls == [(5, 6), (2, 5), (5, 2), (5, 2), (6, 5)]     # decoder, mu, logvar, trunk


def test_network_cache_is_not_pickled():
    X = np.random.default_rng(0).random((10, 4))
    model = VariationalAutoencoder(layers=(3,), n_latent=2, epochs=1, random_state=0).fit(X)
    assert hasattr(model, "_network_cache")
    again = pickle.loads(pickle.dumps(model))
    assert not hasattr(again, "_network_cache")
    np.testing.assert_array_equal(again.transform(X), model.transform(X))


def test_bad_hyperparameters_and_inputs_are_named():
    X = np.random.default_rng(0).random((10, 4))
    for kw, match in [(dict(layers=()), "layers"), (dict(layers=(3, 0)), r"layers\[1\]"),
                      (dict(n_latent=0), "n_latent"), (dict(decoder="poisson"), "decoder"),
                      (dict(activation="swish"), "activation"), (dict(init="nope"), "init"),
                      (dict(shuffle="yes"), "shuffle")]:
        with pytest.raises((TypeError, ValueError), match=match):
            VariationalAutoencoder(**kw).fit(X)
    with pytest.raises(ValueError, match="decoder='bernoulli'"):
        VariationalAutoencoder(layers=(3,), n_latent=2).fit(X * 3)
    with pytest.raises(ValueError, match="validation_data.*decoder='bernoulli'"):
        VariationalAutoencoder(layers=(3,), n_latent=2).fit(X, validation_data=X - 1)
    gaussian = VariationalAutoencoder(layers=(3,), n_latent=2, decoder="gaussian", epochs=1,
                                      random_state=0).fit(X * 3 - 1)
    assert np.isfinite(gaussian.score(X * 3 - 1))
    with pytest.raises(ValueError, match="n_draws"):
        gaussian.score_samples(X, n_draws=0)


# ------------------------------------------------------ behaviour on the built-in digits
def test_digits_held_out_elbo_improves_and_prior_samples_match_the_mean_intensity():
    X, _ = npcae.datasets.make_digits(2500, random_state=0)
    train, test = X[:2000], X[2000:]
    model = VariationalAutoencoder(layers=(128,), n_latent=8, batch_size=50, epochs=1,
                                   optimizer=Adam(lr=2e-3), random_state=0, warm_start=True)
    model.fit(train)
    early = model.score(test)
    model.set_params(epochs=19).fit(train)
    late = model.score(test)
    assert late > early + 50, (early, late)              # nats per image
    assert model.history_["elbo"][-1] > model.history_["elbo"][0]
    samples = model.sample(2000, random_state=1)
    assert abs(samples.mean() - train.mean()) < 0.05, (samples.mean(), train.mean())
