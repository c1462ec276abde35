"""Tests for npcae._scores: the DAE-CAE gap on maps with known answers, anomaly scores, ROC."""
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import BARE_PACKAGE_PRELUDE, REPO, run_python
from hypothesis import given
from hypothesis import strategies as st

import npcae
from npcae._scores import (anomaly_scores, dae_cae_gap, format_gap_table,
                           reconstruction_derivatives, roc_auc, roc_curve)


# --------------------------------------------------------------------- known maps

class LinearMap:
    """r(x) = A x + b: J = A everywhere, Lap r = 0."""

    def __init__(self, A, b):
        self.A, self.b = A, b

    def __call__(self, X):
        return X @ self.A.T + self.b


class QuadraticMap:
    """r_i(x) = (A x + b)_i + 1/2 x^T Q_i x with symmetric Q_i.

    J(x) = A + [x^T Q_i]_i, Lap r_i = tr Q_i, and for eps ~ N(0, sigma^2 I) exactly
    E||x - r(x + eps)||^2 - ||x - r(x)||^2 = sigma^2 (||J||_F^2 - e.Lap r) + sigma^4 C,
    C = 1/4 sum_i ((tr Q_i)^2 + 2 ||Q_i||_F^2)   (module docstring of npcae._scores).
    """

    def __init__(self, A, b, Q):
        self.A, self.b, self.Q = A, b, Q

    def __call__(self, X):
        return X @ self.A.T + self.b + 0.5 * np.einsum("nj,ijk,nk->ni", X, self.Q, X)

    def jacobian(self, X):
        return self.A[None] + np.einsum("ijk,nk->nij", self.Q, X)

    def laplacian(self):
        return np.trace(self.Q, axis1=1, axis2=2)

    def quartic_coefficient(self):
        tr = self.laplacian()
        return 0.25 * float(np.sum(tr ** 2) + 2.0 * np.sum(self.Q ** 2))

    def rhs_terms(self, X):
        J = self.jacobian(X)
        E = X - self(X)
        return float(np.mean(np.sum(J * J, axis=(1, 2)))), float(np.mean(E @ self.laplacian()))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def quadratic(rng):
    d = 4
    A = 0.6 * rng.normal(size=(d, d))
    # Q_i = q_i I + a small symmetric part, and a large offset b: the residual x - r(x) is
    # large along Lap r, so the Laplacian term is far above the Monte-Carlo noise
    q = np.array([0.8, -0.5, 0.6, 0.3])
    S = 0.1 * rng.normal(size=(d, d, d))
    Q = q[:, None, None] * np.eye(d) + 0.5 * (S + np.swapaxes(S, 1, 2))
    b = -4.0 * q / np.linalg.norm(q)
    return QuadraticMap(A, b, Q)


def test_linear_map_gap_is_the_frobenius_norm_and_the_laplacian_vanishes(rng):
    d = 5
    f = LinearMap(rng.normal(size=(d, d)), rng.normal(size=d))
    X = rng.normal(size=(40, d))
    fro = float(np.sum(f.A ** 2))
    records = dae_cae_gap(f, X, sigmas=[2.0, 0.3, 0.01], n_pairs=64, random_state=1)
    assert [rec["sigma"] for rec in records] == [2.0, 0.3, 0.01]
    for rec in records:
        assert rec["method"] == "fd"
        assert rec["jacobian_term"] == pytest.approx(fro, rel=1e-9)
        assert abs(rec["laplacian_term"]) < 1e-8
        assert rec["rhs"] == pytest.approx(fro, rel=1e-9)
        assert rec["rhs_error"] < 1e-5
        # no gap at any sigma: the Monte-Carlo estimate is within 4 standard errors
        assert abs(rec["lhs"] - fro) < 4 * rec["lhs_se"], rec
        assert 0 < rec["lhs_se"] < 0.05 * fro
        # with the control variate ||A u||^2 the estimate is exact for a linear map
        assert rec["lhs_cv"] == pytest.approx(fro, rel=1e-9)
    # the antithetic estimate does not depend on sigma for a linear map (common draws)
    assert records[0]["lhs"] == pytest.approx(records[2]["lhs"], rel=1e-9)
    assert records[0]["lhs_minus_smallest"] == pytest.approx(0.0, abs=1e-8)


def test_linear_map_monte_carlo_matches_closed_form_with_many_draws(rng):
    d = 3
    f = LinearMap(rng.normal(size=(d, d)), np.zeros(d))
    X = rng.normal(size=(200, d))
    rec, = dae_cae_gap(f, X, sigmas=0.1, n_pairs=200, random_state=3)
    assert rec["lhs"] == pytest.approx(float(np.sum(f.A ** 2)), rel=0.02)


def test_quadratic_map_derivatives_are_exact(quadratic, rng):
    X = rng.normal(size=(7, 4))
    out = reconstruction_derivatives(quadratic, X, method="fd", return_jacobian=True)
    assert out["method"] == "fd"
    np.testing.assert_allclose(out["reconstruction"], quadratic(X), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(out["jacobian"], quadratic.jacobian(X), atol=1e-9)
    np.testing.assert_allclose(out["jacobian_sq_norm"],
                               np.sum(quadratic.jacobian(X) ** 2, axis=(1, 2)), rtol=1e-10)
    np.testing.assert_allclose(out["laplacian"], np.broadcast_to(quadratic.laplacian(), X.shape),
                               atol=1e-7)
    assert np.all(out["laplacian_error"] < 1e-4)


def test_quadratic_map_gap_matches_both_terms_and_the_sigma_squared_law(quadratic, rng):
    X = 0.5 * rng.normal(size=(60, 4))
    jac, lap = quadratic.rhs_terms(X)
    C = quadratic.quartic_coefficient()
    sigmas = [1.0, 0.5, 0.1, 0.02]
    records = dae_cae_gap(quadratic, X, sigmas=sigmas, n_pairs=256, random_state=2)
    for rec in records:
        s = rec["sigma"]
        assert rec["jacobian_term"] == pytest.approx(jac, rel=1e-9)
        assert rec["laplacian_term"] == pytest.approx(lap, rel=1e-7)
        assert rec["rhs"] == pytest.approx(jac - lap, rel=1e-8)
        # the Laplacian term is large and far outside the noise: a wrong sign would fail
        assert abs(lap) > abs(jac)                  # here rhs = jac - lap is even negative
        assert abs(lap) > 50 * rec["lhs_se"]
        # the exact expectation is rhs + sigma^2 C: both estimates agree within 4 se
        expected = jac - lap + s ** 2 * C
        assert abs(rec["lhs"] - expected) < 4 * rec["lhs_se"], (s, rec["lhs"], expected)
        assert abs(rec["lhs_cv"] - expected) < 4 * rec["lhs_cv_se"], (s, rec["lhs_cv"], expected)
        # paired differences from the smallest sigma: C (sigma^2 - sigma_min^2), precisely
        want = C * (s ** 2 - sigmas[-1] ** 2)
        assert abs(rec["lhs_minus_smallest"] - want) < 4 * rec["lhs_minus_smallest_se"] + 1e-9
    # at sigma = 1 the gap is real and significant; at sigma = 0.02 it is gone
    assert records[0]["gap"] > 10 * records[0]["lhs_se"]
    assert abs(records[-1]["gap"]) < 4 * records[-1]["lhs_se"]
    assert abs(records[0]["relative_gap"]) > abs(records[2]["relative_gap"])


def test_gap_does_not_depend_on_batch_size(quadratic, rng):
    X = rng.normal(size=(11, 4))
    a = dae_cae_gap(quadratic, X, sigmas=[0.3, 0.1], n_pairs=8, batch_size=3)
    b = dae_cae_gap(quadratic, X, sigmas=[0.3, 0.1], n_pairs=8, batch_size=100)
    for ra, rb in zip(a, b):
        for key in ("lhs", "lhs_se", "lhs_cv", "rhs", "lhs_minus_smallest"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-10, abs=1e-12)


def test_gap_inputs_are_checked(quadratic, rng):
    X = rng.normal(size=(5, 4))
    with pytest.raises(ValueError, match="sigmas"):
        dae_cae_gap(quadratic, X, sigmas=[0.1, -1.0])
    with pytest.raises(ValueError, match="n_pairs"):
        dae_cae_gap(quadratic, X, n_pairs=1)
    with pytest.raises(ValueError, match="method"):
        dae_cae_gap(quadratic, X, method="magic")
    with pytest.raises(ValueError, match="method='fd'"):
        dae_cae_gap(quadratic, X, method="exact")        # a function has no layers
    with pytest.raises(TypeError, match="reconstruct"):
        dae_cae_gap(object(), X)
    with pytest.raises(ValueError, match="R\\^d to R\\^d"):
        dae_cae_gap(lambda Z: Z[:, :2], X)


def test_float32_function_warns(rng):
    X = rng.normal(size=(3, 2))
    with pytest.warns(RuntimeWarning, match="float64"):
        dae_cae_gap(lambda Z: (0.5 * Z).astype(np.float32), X, sigmas=0.1, n_pairs=2)


def test_format_gap_table_lists_every_sigma(quadratic, rng):
    records = dae_cae_gap(quadratic, rng.normal(size=(5, 4)), sigmas=[0.3, 0.03], n_pairs=4)
    text = format_gap_table(records, title="quadratic")
    lines = text.splitlines()
    assert lines[0] == "quadratic"
    assert "rhs = ||J_r||_F^2 - (x - r).Lap r" in lines[1] and "finite differences" in lines[1]
    assert lines[-2].split()[0] == "0.3" and lines[-1].split()[0] == "0.03"
    assert "nan" not in text


# ------------------------------------------------------- the models' own derivatives

def _models():
    return {
        "cae": npcae.ContractiveAutoencoder(n_hidden=4, random_state=0),
        "cae untied tanh mse": npcae.ContractiveAutoencoder(
            n_hidden=4, activation="tanh", tied=False, output_activation="identity",
            loss="mse", random_state=0),
        "deep ae tanh": npcae.Autoencoder(layers=(5, 3), activation="tanh", random_state=0),
        "tied softplus": npcae.Autoencoder(layers=(5, 3), activation="softplus", tied=True,
                                           random_state=0),
        "dae": npcae.DenoisingAutoencoder(layers=(5,), random_state=0),
        "sparse": npcae.SparseAutoencoder(layers=(5,), random_state=0),
        "deep cae": npcae.DeepContractiveAutoencoder(layers=(5, 3), random_state=0),
        "vae bernoulli": npcae.VariationalAutoencoder(layers=(5,), n_latent=2,
                                                      activation="tanh", random_state=0),
        "vae gaussian": npcae.VariationalAutoencoder(layers=(5, 4), n_latent=2,
                                                     activation="softplus",
                                                     decoder="gaussian", random_state=0),
        "stacked": npcae.StackedAutoencoder(
            stages=[npcae.Autoencoder(layers=(5,), activation="softplus"),
                    npcae.ContractiveAutoencoder(n_hidden=3, activation="tanh", loss="mse",
                                                 output_activation="identity")],
            random_state=0),
    }


@pytest.mark.parametrize("name", sorted(_models()))
def test_exact_derivatives_match_finite_differences(name, rng):
    model = _models()[name]
    model.initialize(6)
    X = rng.uniform(size=(9, 6))
    exact = reconstruction_derivatives(model, X, method="exact", return_jacobian=True)
    fd = reconstruction_derivatives(model, X, method="fd", step=1e-3, return_jacobian=True)
    assert exact["method"] == "exact" and fd["method"] == "fd"
    np.testing.assert_allclose(exact["reconstruction"], model.reconstruct(X), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(exact["jacobian"], fd["jacobian"], atol=1e-8)
    np.testing.assert_allclose(exact["jacobian_sq_norm"], fd["jacobian_sq_norm"], rtol=1e-8,
                               atol=1e-10)
    # the tangent recursion (J u) and the Gram recursion (||J||_F^2) agree
    np.testing.assert_allclose(np.sum(exact["jacobian"] ** 2, axis=(1, 2)),
                               exact["jacobian_sq_norm"], rtol=1e-12)
    np.testing.assert_allclose(exact["laplacian"], fd["laplacian"], atol=1e-6)
    # at both steps, the finite-difference error estimate covers the actual error
    for step in (1e-3, 1e-2):
        fd = reconstruction_derivatives(model, X, method="fd", step=step)
        assert np.all(np.abs(exact["laplacian"] - fd["laplacian"]) <= fd["laplacian_error"])
        assert np.all(np.abs(exact["jacobian_sq_norm"] - fd["jacobian_sq_norm"])
                      <= fd["jacobian_sq_norm_error"])


def test_linear_autoencoder_has_the_closed_form(rng):
    lin = npcae.Autoencoder(layers=(3,), activation="identity", output_activation="identity",
                            loss="mse", random_state=0, dtype=np.float64).initialize(5)
    p = lin.params
    A = (p["encoder.0.W"] @ p["decoder.0.W"]).T                # r(x) = A x + const
    X = rng.normal(size=(30, 5))
    records = dae_cae_gap(lin, X, sigmas=[0.5, 0.05], n_pairs=32)
    for rec in records:
        assert rec["method"] == "exact"
        assert rec["jacobian_term"] == pytest.approx(float(np.sum(A ** 2)), rel=1e-12)
        assert rec["laplacian_term"] == 0.0
        assert abs(rec["lhs"] - rec["rhs"]) < 4 * rec["lhs_se"]
        assert rec["lhs_cv"] == pytest.approx(rec["rhs"], rel=1e-10)


def test_gap_on_a_model_is_computed_on_a_float64_copy(rng):
    model = npcae.ContractiveAutoencoder(n_hidden=4, random_state=0).initialize(6)
    before = {k: v.copy() for k, v in model.params.items()}
    X = rng.uniform(size=(20, 6))
    exact = dae_cae_gap(model, X, sigmas=[0.3, 0.01], n_pairs=16)
    fd = dae_cae_gap(model, X, sigmas=[0.3, 0.01], n_pairs=16, method="fd")
    for a, b in zip(exact, fd):
        assert abs(a["rhs"] - b["rhs"]) <= b["rhs_error"] < 1e-3   # within the stated error
        assert a["rhs_error"] == 0.0
        assert a["lhs"] == pytest.approx(b["lhs"], rel=1e-12)       # the same draws
    assert exact[1]["relative_gap"] == pytest.approx(exact[1]["gap"] / abs(exact[1]["rhs"]))
    assert abs(exact[1]["gap"]) < 4 * exact[1]["lhs_se"]
    for k, v in model.params.items():                             # the model is untouched
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, before[k])


def test_wrong_chain_is_refused(rng):
    class Impostor(npcae.Autoencoder):
        def reconstruct(self, X):                                 # not what the layers say
            return 0.5 * super().reconstruct(X)

    model = Impostor(layers=(3,), random_state=0).initialize(4)
    X = rng.uniform(size=(5, 4))
    with pytest.raises(RuntimeError, match="does not reproduce"):
        reconstruction_derivatives(model, X, method="exact")
    with pytest.warns(RuntimeWarning, match="finite differences"):
        out = reconstruction_derivatives(model, X, method="auto")
    assert out["method"] == "fd"


def test_unfitted_model_is_refused(rng):
    with pytest.raises(npcae.NotFittedError):
        dae_cae_gap(npcae.Autoencoder(), rng.uniform(size=(3, 4)))
    with pytest.raises(npcae.NotFittedError):
        anomaly_scores(npcae.Autoencoder(), rng.uniform(size=(3, 4)))


# --------------------------------------------------------------------- anomaly scores

@pytest.fixture
def small_models(rng):
    X = rng.uniform(size=(30, 6))
    models = {
        "ae": npcae.Autoencoder(layers=(3,), random_state=0).initialize(6),
        "cae": npcae.ContractiveAutoencoder(n_hidden=3, lam=0.5, random_state=0).initialize(6),
        "vae": npcae.VariationalAutoencoder(layers=(4,), n_latent=2,
                                            random_state=0).initialize(6),
    }
    return models, X


def test_reconstruction_score_is_the_loss_without_penalties(small_models):
    models, X = small_models
    for name in ("ae", "cae"):
        model = models[name]
        s = anomaly_scores(model, X, "reconstruction")
        assert s.shape == (len(X),) and s.dtype == np.float64
        np.testing.assert_allclose(s, model._sample_terms(X.astype(np.float32))["reconstruction"],
                                   rtol=1e-6)
        # the loss itself: cross-entropy summed over pixels
        R = model.reconstruct(X).astype(np.float64)
        bce = -np.sum(X * np.log(R) + (1 - X) * np.log(1 - R), axis=1)
        np.testing.assert_allclose(s, bce, rtol=1e-4)
    cae = models["cae"]
    assert np.all(-cae.score_samples(X) > anomaly_scores(cae, X))   # the penalty is left out


def test_vae_reconstruction_score_is_at_the_posterior_mean(small_models):
    models, X = small_models
    vae = models["vae"]
    s = anomaly_scores(vae, X, "reconstruction")
    np.testing.assert_array_equal(s, anomaly_scores(vae, X, "reconstruction"))  # no draws
    R = vae.reconstruct(X).astype(np.float64)                     # decoder mean at z = mu
    bce = -np.sum(X * np.log(R) + (1 - X) * np.log(1 - R), axis=1)
    np.testing.assert_allclose(s, bce, rtol=1e-4)


def test_jacobian_score_is_the_squared_frobenius_norm(small_models):
    models, X = small_models
    for model in models.values():
        J = model.jacobian(X).astype(np.float64)
        np.testing.assert_allclose(anomaly_scores(model, X, "jacobian"),
                                   np.sum(J * J, axis=(1, 2)), rtol=1e-5)


def test_jacobian_score_without_jacobian_norm_uses_jacobian(rng):
    class OnlyJacobian:
        n_features_in_ = 3

        def jacobian(self, X):
            return np.asarray(X)[:, None, :] * np.array([[1.0], [2.0]])

    X = rng.normal(size=(4, 3))
    np.testing.assert_allclose(anomaly_scores(OnlyJacobian(), X, "jacobian"),
                               5.0 * np.sum(X ** 2, axis=1))
    with pytest.raises(TypeError, match="jacobian"):
        anomaly_scores(object(), X, "jacobian")


def test_elbo_score_is_vae_only(small_models):
    models, X = small_models
    vae = models["vae"]
    np.testing.assert_allclose(anomaly_scores(vae, X, "elbo", n_draws=3),
                               -vae.score_samples(X, n_draws=3), rtol=1e-12)
    for name in ("ae", "cae"):
        with pytest.raises(ValueError, match="VariationalAutoencoder"):
            anomaly_scores(models[name], X, "elbo")
    with pytest.raises(ValueError, match="kind must be one of"):
        anomaly_scores(vae, X, "likelihood")


def test_reconstruction_score_of_a_plain_reconstructor_is_the_squared_error(rng):
    class Half:
        def reconstruct(self, X):
            return 0.5 * np.asarray(X)

    X = rng.normal(size=(5, 3))
    np.testing.assert_allclose(anomaly_scores(Half(), X), 0.25 * np.sum(X ** 2, axis=1))


def test_trained_autoencoder_flags_off_subspace_points(rng):
    """Normal data in a 2-D subspace of R^8; anomalies off it: reconstruction AUC near 1."""
    B = np.linalg.qr(rng.normal(size=(8, 2)))[0]
    X = rng.normal(size=(600, 2)) @ B.T
    normal = rng.normal(size=(100, 2)) @ B.T
    anomalies = normal + 1.5 * rng.normal(size=(100, 8)) @ (np.eye(8) - B @ B.T)
    model = npcae.Autoencoder(layers=(2,), activation="identity", output_activation="identity",
                              loss="mse", epochs=40, batch_size=50, random_state=0,
                              optimizer=npcae.optim.Adam(lr=1e-2)).fit(X)
    scores = anomaly_scores(model, np.vstack([normal, anomalies]))
    labels = np.r_[np.zeros(100), np.ones(100)]
    assert roc_auc(scores, labels) > 0.95


# --------------------------------------------------------------------- ROC

def _brute_force_auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=2, max_size=60))
def test_roc_auc_equals_brute_force_pair_counting_with_ties(pairs):
    scores = np.array([s for s, _ in pairs], dtype=float)
    labels = np.array([y for _, y in pairs], dtype=int)
    if labels.min() == labels.max():
        with pytest.raises(ValueError, match="both classes"):
            roc_auc(scores, labels)
        return
    auc = roc_auc(scores, labels)
    assert auc == pytest.approx(_brute_force_auc(scores, labels), abs=1e-12)
    fpr, tpr, thr = roc_curve(scores, labels)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc, abs=1e-12)
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert thr[0] == np.inf and np.all(np.diff(thr) < 0)
    assert len(thr) == len(np.unique(scores)) + 1


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=40),
       st.randoms(use_true_random=False))
def test_roc_auc_on_real_scores_and_monotone_invariance(values, random):
    scores = np.array(values)
    labels = np.array([random.random() < 0.5 for _ in values])
    labels[0], labels[-1] = True, False
    auc = roc_auc(scores, labels)
    assert auc == pytest.approx(_brute_force_auc(scores, labels.astype(int)), abs=1e-12)
    assert roc_auc(np.arctan(scores / 1e5), labels) == pytest.approx(auc, abs=1e-12)
    assert roc_auc(-scores, labels) == pytest.approx(1.0 - auc, abs=1e-12)


def test_roc_auc_perfect_reversed_tied_and_random(rng):
    labels = np.r_[np.zeros(50), np.ones(30)]
    scores = np.r_[rng.uniform(0, 1, 50), rng.uniform(2, 3, 30)]
    assert roc_auc(scores, labels) == 1.0
    assert roc_auc(-scores, labels) == 0.0
    assert roc_auc(np.ones(80), labels) == 0.5
    fpr, tpr, _ = roc_curve(np.ones(80), labels)                  # one diagonal step
    np.testing.assert_array_equal(fpr, [0, 1])
    np.testing.assert_array_equal(tpr, [0, 1])
    n = 20000
    y = rng.random(n) < 0.3
    assert abs(roc_auc(rng.normal(size=n), y) - 0.5) < 0.015     # se ~ 0.0045
    assert roc_auc(scores, labels.astype(bool)) == 1.0


def test_roc_inputs_are_checked():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 2, 3], [1, 1, 1])
    with pytest.raises(ValueError, match="binary"):
        roc_auc([1, 2, 3], [0, 1, 2])
    with pytest.raises(ValueError, match="one label per score"):
        roc_auc([1, 2, 3], [0, 1])
    with pytest.raises(ValueError):
        roc_auc([1.0, np.nan, 3.0], [0, 1, 1])
    with pytest.raises(ValueError, match="binary"):
        roc_curve([1, 2], ["a", "b"])


# --------------------------------------------------------------------- plots, imports, demos

def test_plots_are_written(tmp_path, rng):
    pytest.importorskip("matplotlib")
    from npcae.plotting import plot_gap_convergence, plot_roc_curves, plot_vector_fields
    labels = np.r_[np.zeros(20), np.ones(20)]
    curves = {"good": (np.r_[rng.normal(0, 1, 20), rng.normal(2, 1, 20)], labels),
              "random": (rng.normal(size=40), labels)}
    plot_roc_curves(curves, path=tmp_path / "roc1.png", title="one panel")
    fig = plot_roc_curves({"a": curves, "b": curves})
    assert "AUC" in fig.axes[0].get_legend().get_texts()[0].get_text()
    g = np.linspace(-1, 1, 5)
    G = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    panels = [{"grid": G, "vectors": -0.3 * G, "data": rng.normal(size=(10, 2)),
               "curve": np.c_[np.cos(g), np.sin(g)], "title": "AE"},
              {"grid": G, "vectors": 0.0 * G, "title": "zero field"}]
    plot_vector_fields(panels, path=tmp_path / "field.png", title="fields")
    f = QuadraticMap(0.5 * np.eye(2), np.zeros(2), 0.1 * np.stack([np.eye(2)] * 2))
    results = {"quadratic": dae_cae_gap(f, rng.normal(size=(5, 2)), sigmas=[0.3, 0.1, 0.03],
                                        n_pairs=4)}
    plot_gap_convergence(results, path=tmp_path / "gap.png")
    for name in ("roc1.png", "field.png", "gap.png"):
        assert (tmp_path / name).stat().st_size > 0
    with pytest.raises(ValueError, match="both be"):
        plot_vector_fields([{"grid": G, "vectors": G[:3]}])


def test_scores_module_does_not_import_matplotlib():
    done = run_python(BARE_PACKAGE_PRELUDE + "import npcae._scores, npcae.plotting\n"
                      "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n",
                      cwd=REPO)
    assert done.returncode == 0, done.stderr


def _run_demo(tmp_path, script, *extra):
    out = tmp_path / "out"
    env = {**os.environ, "NPCAE_DATA_DIR": str(tmp_path / "no-mnist")}    # built-in digits
    done = subprocess.run([sys.executable, str(REPO / "demos" / script), "--out", str(out),
                           *extra], cwd=REPO / "demos", capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    assert "built-in procedural digits" in done.stdout
    assert "nan" not in done.stdout.lower(), done.stdout
    return done.stdout, out


@pytest.mark.slow
def test_dae_cae_link_demo(tmp_path):
    pytest.importorskip("matplotlib")
    stdout, out = _run_demo(tmp_path, "dae_cae_link.py", "--epochs", "1", "--n-train", "300",
                            "--n-points", "10", "--n-pairs", "4", "--toy-epochs", "2",
                            "--sigmas", "0.3", "0.03")
    assert stdout.count("rhs = ||J_r||_F^2 - (x - r).Lap r") == 3
    assert "exact forward mode against finite differences" in stdout
    for name in ("gap_convergence.png", "vector_fields.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_anomaly_demo(tmp_path):
    pytest.importorskip("matplotlib")
    stdout, out = _run_demo(tmp_path, "anomaly.py", "--epochs", "1", "--n-train", "400",
                            "--n-test", "200")
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("ROC AUC, held-out"))
    assert lines[head + 1].split() == ["model", "reconstruction", "jacobian", "elbo"]
    rows = lines[head + 2:head + 7]
    assert [r.split()[0] for r in rows] == ["PCA", "AE", "DAE", "CAE", "VAE"]
    assert rows[-1].split()[-1] != "-" and rows[1].split()[-1] == "-"
    for row in rows:
        for cell in row.split()[-3:]:
            assert cell == "-" or 0.0 <= float(cell) <= 1.0
    assert (out / "roc.png").stat().st_size > 0
