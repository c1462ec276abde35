"""The base estimator: input conversion and messages, hyperparameter errors, exact resume,
warm-start checks, divergence and interrupt semantics, partial_fit, score_samples and
memory-bounded evaluation. Everything here holds for every model built on BaseAutoencoder;
the CAE stands in for them.
"""
import copy
import tracemalloc

import numpy as np
import pytest

import npcae
from npcae import ContractiveAutoencoder, TrainingDivergedError
from npcae._workspace import Workspace
from npcae.models import base as base_module
from npcae.optim import SGD, Adam

MSE = dict(loss="mse", output_activation="identity")


def unit_data(n=40, d=7, seed=0):
    return np.random.default_rng(seed).random((n, d))


def small(**kw):
    defaults = dict(n_hidden=3, epochs=2, batch_size=8, random_state=0)
    return ContractiveAutoencoder(**{**defaults, **kw})


def params_equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- input
@pytest.mark.parametrize("kind", ["int", "bool", "object"])
def test_integer_bool_and_object_input_is_converted(kind):
    X = (unit_data() > 0.5)
    X = {"int": X.astype(np.int64), "bool": X, "object": X.astype(float).astype(object)}[kind]
    model = small(**MSE).fit(X)
    as_float = np.asarray(X, dtype=np.float64)
    assert np.array_equal(model.transform(X), model.transform(as_float))
    assert np.array_equal(small(**MSE).fit(as_float).params["W"], model.params["W"])


def test_object_array_that_is_not_numeric_is_a_type_error():
    X = unit_data().astype(object)
    X[0, 0] = {"a": 1}
    with pytest.raises(TypeError, match="argument must be a string.* number"):
        small().fit(X)


def test_uint8_images_divide_by_255_for_bce_and_warn_for_mse():
    X = (unit_data() * 255).astype(np.uint8)
    with pytest.raises(TypeError, match="255"):
        small().fit(X)
    with pytest.warns(UserWarning, match="255"):
        small(**MSE).fit(X)


def test_messages_scikit_learn_users_expect():
    model = small(**MSE).fit(unit_data(d=4))
    with pytest.raises(ValueError, match="Reshape your data"):
        model.transform(np.zeros(4))
    with pytest.raises(ValueError, match="X has 3 features, but ContractiveAutoencoder is "
                                         "expecting 4 features as input"):
        model.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Complex data not supported"):
        model.transform(np.zeros((2, 4), dtype=complex))
    with pytest.raises(ValueError, match="Complex data not supported"):
        small().fit(np.array([[1 + 1j, 0.5]], dtype=object))
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        small().fit(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="NaN"):
        model.transform(np.full((2, 4), np.nan))


def test_sparse_input_is_named():
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.csr_matrix(unit_data())
    with pytest.raises(TypeError, match="sparse matri.*toarray"):
        small().fit(X)


def test_transform_and_jacobian_need_no_unit_interval_but_the_loss_does():
    model = small().fit(unit_data())
    outside = unit_data() * 3 - 1
    assert np.isfinite(model.transform(outside)).all()
    assert np.isfinite(model.jacobian(outside[:2])).all()
    for method in (model.score, model.loss_terms, model.score_samples, model.loss_and_grad):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            method(outside)


# ------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("param,value,error,match", [
    ("lam", "0.1", TypeError, "lam"),
    ("lam", None, TypeError, "lam"),
    ("lam", -1.0, ValueError, "lam"),
    ("lam", float("nan"), ValueError, "lam"),
    ("random_state", -1, ValueError, "random_state"),
    ("random_state", 1.5, TypeError, "random_state"),
    ("tied", "yes", TypeError, "tied"),
    ("tied", 1, TypeError, "tied"),
    ("early_stopping", 0, ValueError, "early_stopping"),
    ("early_stopping", -2, ValueError, "early_stopping"),
    ("batch_size", 0, ValueError, "batch_size"),
    ("batch_size", 2.5, TypeError, "batch_size"),
    ("batch_size", True, TypeError, "batch_size"),
    ("epochs", 0, ValueError, "epochs"),
    ("epochs", "3", TypeError, "epochs"),
    ("n_hidden", 0, ValueError, "n_hidden"),
    ("optimizer", "adamx", ValueError, "optimizer"),
    ("optimizer", 3, ValueError, "optimizer"),
    ("warm_start", "no", TypeError, "warm_start"),
    ("verbose", -1, ValueError, "verbose"),
    ("dtype", np.float16, ValueError, "float16"),
    ("dtype", "int32", ValueError, "dtype"),
    ("init", "nope", ValueError, "init"),
    ("activation", "nope", ValueError, "nope"),
])
def test_bad_hyperparameters_are_named_before_training(param, value, error, match):
    model = small(**{param: value})
    with pytest.raises(error, match=match):
        model.fit(unit_data())
    assert not model.params and not hasattr(model, "history_")


def test_random_state_accepts_every_scikit_learn_form():
    X = unit_data()
    same = [small(random_state=5).fit(X).params["W"] for _ in range(2)]
    assert np.array_equal(*same)
    a = small(random_state=np.random.RandomState(3)).fit(X).params["W"]
    b = small(random_state=np.random.RandomState(3)).fit(X).params["W"]
    assert np.array_equal(a, b)
    gen = np.random.default_rng(4)
    model = small(random_state=gen)
    first = model.fit(X).params["W"].copy()
    assert not np.array_equal(first, model.fit(X).params["W"])     # the Generator advanced
    assert small(random_state=None).fit(X).params["W"].shape == (7, 3)


def test_verbose_defaults_to_silent(capsys):
    assert ContractiveAutoencoder().verbose == 0
    small().fit(unit_data())
    assert capsys.readouterr().out == ""


def test_repr_shows_only_non_defaults_and_dtype_by_name():
    assert repr(ContractiveAutoencoder()) == "ContractiveAutoencoder()"
    r = repr(ContractiveAutoencoder(n_hidden=8, dtype=np.float64, optimizer=Adam(lr=0.01)))
    assert r == "ContractiveAutoencoder(n_hidden=8, optimizer=Adam(lr=0.01, beta1=0.9, " \
                "beta2=0.999, eps=1e-08, weight_decay=0.0), dtype=float64)"
    assert repr(ContractiveAutoencoder(dtype="float32")) == "ContractiveAutoencoder()"


# ------------------------------------------------------------------------ resume
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_warm_start_two_plus_three_epochs_equals_five(dtype):
    X = unit_data(n=50)
    once = small(epochs=5, dtype=dtype).fit(X)
    split = small(epochs=2, dtype=dtype, warm_start=True).fit(X)
    split.set_params(epochs=3).fit(X)
    assert params_equal(once.params, split.params)
    assert once.history_["total"] == split.history_["total"]
    assert split.n_iter_ == 5 and split.loss_curve_ == once.loss_curve_


def test_resume_across_save_and_load_is_exact(tmp_path):
    X = unit_data(n=50)
    once = small(epochs=5).fit(X)
    first = small(epochs=2, warm_start=True).fit(X)
    first.save(tmp_path / "m.npz")
    resumed = npcae.load(tmp_path / "m.npz")
    resumed.set_params(epochs=3).fit(X)
    assert params_equal(once.params, resumed.params)
    assert resumed.n_iter_ == 5


def test_partial_fit_is_one_epoch_and_continues_exactly():
    X = unit_data(n=50)
    model = small()
    model.partial_fit(X)
    assert model.n_iter_ == 1
    assert params_equal(model.params, small(epochs=1).fit(X).params)
    model.partial_fit(X)
    assert params_equal(model.params, small(epochs=2).fit(X).params)
    assert model.optimizer_.state["packed"]["t"] == 2 * 7       # 50 rows, batch 8: 7 steps
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:, :-1])


def test_warm_start_refuses_other_feature_counts_and_shapes():
    X = unit_data()
    model = small(warm_start=True).fit(X)
    with pytest.raises(ValueError, match="expecting 7 features.*warm_start=False"):
        model.fit(unit_data(d=6))
    with pytest.raises(ValueError, match="n_hidden"):
        model.set_params(n_hidden=5).fit(X)
    model.set_params(n_hidden=3, tied=False)
    with pytest.raises(ValueError, match="tied"):
        model.fit(X)
    model.set_params(tied=True, dtype=np.float64)
    with pytest.raises(ValueError, match="dtype"):
        model.fit(X)
    model.set_params(dtype=np.float32, warm_start=False, n_hidden=5)
    assert model.fit(X).params["W"].shape == (7, 5)          # a cold fit may change shape


def test_set_params_optimizer_before_a_warm_fit_takes_effect():
    X = unit_data()
    model = small(warm_start=True, optimizer=Adam(lr=1e-3)).fit(X)
    moments = copy.deepcopy(model.optimizer_.state)
    model.set_params(optimizer=Adam(lr=5e-2), epochs=1)
    reference = copy.deepcopy(model)
    reference.optimizer_ = Adam(lr=5e-2)
    reference.optimizer_.state = copy.deepcopy(moments)
    model.fit(X)
    assert model.optimizer_.lr == 5e-2
    assert model.optimizer_.state["packed"]["t"] == moments["packed"]["t"] + 5
    # the moments were kept: equal to continuing by hand with the old moments, new lr
    from npcae.training import fit_loop
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = reference.training_rng_state_
    fit_loop(reference, X.astype(np.float32), optimizer=reference.optimizer_, epochs=1,
             batch_size=8, rng=rng, verbose=0, history=reference.history_)
    assert params_equal(model.params, reference.params)
    model.set_params(optimizer=SGD(lr=0.1)).fit(X)           # another class: fresh state
    assert model.optimizer_.state["packed"]["t"] == 5


# ---------------------------------------------------------------- divergence, interrupts
class _Inject:
    """Wrap a model's ``_objective`` so that call number ``at`` misbehaves."""

    def __init__(self, model, at, how):
        self.model, self.at, self.how, self.calls = model, at, how, 0
        self.original = model._objective
        self.params_seen = []

    def __call__(self, X, grads, ws, rng=None):
        self.calls += 1
        self.params_seen.append({k: v.copy() for k, v in self.model.params.items()})
        total, terms = self.original(X, grads, ws, rng)
        if self.calls == self.at:
            if self.how == "interrupt":
                raise KeyboardInterrupt
            if self.how == "nan_loss":
                return float("nan"), terms
            if self.how == "inf_weight_grad":     # only W's gradient: biases stay finite
                grads["W"][0, 0] = np.inf
        return total, terms


@pytest.mark.parametrize("how", ["nan_loss", "inf_weight_grad"])
def test_divergence_keeps_the_state_from_before_the_bad_step(how):
    X = unit_data(n=40)                                        # 5 steps per epoch
    model = small(epochs=3)
    model.fit(X)                                               # a fitted model to reuse
    model.set_params(warm_start=False)
    inject = _Inject(model, at=8, how=how)                     # epoch 2, step 3
    model._objective = inject
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 3.*learning rate"):
        model.fit(X)
    assert params_equal(model.params, inject.params_seen[7])
    assert model.optimizer_.state["packed"]["t"] == 7
    assert all(np.isfinite(b).all() for b in model.optimizer_.state["packed"]["buffers"])


def test_keyboard_interrupt_leaves_the_last_completed_epoch_and_resumes_exactly():
    X = unit_data(n=40)
    once = small(epochs=4).fit(X)
    model = small(epochs=4, warm_start=True)
    inject = _Inject(model, at=13, how="interrupt")             # epoch 3, step 3
    model._objective = inject
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    two = small(epochs=2).fit(X)
    assert params_equal(model.params, two.params)
    assert model.n_iter_ == 2 and model.history_["total"] == two.history_["total"]
    assert model.training_rng_state_ == two.training_rng_state_
    assert model.optimizer_.state["packed"]["t"] == two.optimizer_.state["packed"]["t"]
    del model._objective
    model.set_params(epochs=2).fit(X)
    assert params_equal(model.params, once.params)


def test_keyboard_interrupt_in_the_first_epoch_leaves_the_fresh_model():
    X = unit_data(n=40)
    model = small(epochs=3)
    inject = _Inject(model, at=2, how="interrupt")
    model._objective = inject
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    assert params_equal(model.params, inject.params_seen[0])
    assert model.n_iter_ == 0 and model.history_ == {}


# ------------------------------------------------------------- score_samples, memory
@pytest.mark.parametrize("config", [{}, MSE, dict(loss="cosine", output_activation="sigmoid"),
                                    dict(loss="kl", output_activation="sigmoid")])
def test_score_samples_is_the_per_sample_negative_objective(config):
    X = unit_data(n=30)
    model = small(dtype=np.float64, lam=0.4, **config).fit(X)
    samples = model.score_samples(X)
    assert samples.shape == (30,)
    assert np.isclose(-samples.mean(), model.loss_terms(X)["total"], rtol=1e-12)
    alone = np.array([model.score_samples(X[i:i + 1])[0] for i in range(5)])
    assert np.allclose(alone, samples[:5], rtol=1e-12)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_batched_evaluation_equals_one_block(monkeypatch, dtype, rtol):
    X = unit_data(n=997, d=20)
    model = small(dtype=dtype, lam=0.3).fit(X)
    Xd = X.astype(dtype)
    _, whole = model._objective(Xd, None, Workspace())
    monkeypatch.setattr(base_module, "_EVAL_BLOCK_BYTES", 20 * np.dtype(dtype).itemsize * 64)
    assert len(model._eval_blocks(Xd)) == 16
    batched = model.loss_terms(X)
    for key in whole:
        assert batched[key] == pytest.approx(float(whole[key]), rel=rtol)
    assert model.score(X) == pytest.approx(-float(whole["reconstruction"]), rel=rtol)


def test_score_on_60000_rows_adds_at_most_64_mb():
    X = np.random.default_rng(0).random((60000, 784), dtype=np.float32)
    model = ContractiveAutoencoder(n_hidden=64, random_state=0).initialize(784)
    tracemalloc.start()
    try:
        model.score(X)
        model.score_samples(X)
        model.loss_terms(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MB"
