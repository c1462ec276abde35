"""npcae.StackedAutoencoder: greedy layer-wise pretraining of one-layer stages, then joint
fine-tuning of the stack on reconstruction only, on the layers engine."""
import copy
import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import npcae
from npcae import (Autoencoder, ContractiveAutoencoder, DenoisingAutoencoder, SparseAutoencoder,
                   StackedAutoencoder, VariationalAutoencoder)
from npcae.gradcheck import check_model
from npcae.io import ModelFileError

unit = st.floats(0.0, 1.0, allow_nan=False, width=64)


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).random((60, 12))


@pytest.fixture(scope="module")
def digits():
    return npcae.datasets.make_digits(400, random_state=0)[0]


def mixed_stages(epochs=3, **kw):
    """One stage of every kind: CAE (untied), DAE, SAE (KL), plain tied AE."""
    return [ContractiveAutoencoder(n_hidden=10, lam=0.1, tied=False, epochs=epochs, **kw),
            DenoisingAutoencoder(layers=(8,), noise_level=0.2, epochs=epochs, **kw),
            SparseAutoencoder(layers=(6,), beta=0.5, epochs=epochs, **kw),
            Autoencoder(layers=(4,), tied=True, epochs=epochs, **kw)]


def stack(stages, **kw):
    kw.setdefault("random_state", 0)
    kw.setdefault("batch_size", 20)
    return StackedAutoencoder(stages=stages, **kw)


def chain(stages, X):
    """The codes of each stage on its input, ``[h_1, ..., h_L]``, computed stage by stage."""
    codes, H = [], X
    for stage in stages:
        H = stage.encode(H)
        codes.append(H)
    return codes


def stage_params_equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------- the acceptance
def test_each_stage_reduces_its_own_reconstruction_loss(digits):
    model = stack(mixed_stages(epochs=6, batch_size=20), fine_tune=False).fit(digits)
    inputs = [digits, *chain(model.stages_, digits)[:-1]]
    for i, (stage, H) in enumerate(zip(model.stages_, inputs)):
        curve = stage.history_["reconstruction"]
        assert len(curve) == 6
        assert curve[-1] < curve[0], (i, curve)
        # on the stage's own input, from the exact parameters its training started from
        start = type(stage)(**stage.get_params())
        start._start_training_state(H.shape[1])
        before = start.loss_terms(H)["reconstruction"]
        after = stage.loss_terms(H)["reconstruction"]
        assert after < 0.95 * before, (i, before, after)


def test_fine_tuning_reduces_the_reconstruction_loss_below_the_greedy_stack(digits):
    stages = [ContractiveAutoencoder(n_hidden=32, lam=0.1, epochs=4),
              ContractiveAutoencoder(n_hidden=12, lam=0.1, epochs=4)]
    greedy = stack(stages, fine_tune=False).fit(digits)
    tuned = stack(stages, fine_tune=True, epochs=6).fit(digits)
    # the same pretraining: the same seeds give the same stages
    for a, b in zip(greedy.stages_, tuned.stages_):
        assert stage_params_equal(a.params, b.params)
    rec_greedy = greedy.loss_terms(digits)["reconstruction"]
    rec_tuned = tuned.loss_terms(digits)["reconstruction"]
    assert rec_tuned < 0.95 * rec_greedy, (rec_greedy, rec_tuned)
    assert tuned.score(digits) > greedy.score(digits)
    assert tuned.history_["total"][-1] < tuned.history_["total"][0]
    # fine-tuning optimises reconstruction only: the penalty is not in the stack's objective
    assert set(tuned.loss_terms(digits)) == {"reconstruction", "total"}
    assert set(tuned.history_) >= {"stages", "reconstruction", "total"}
    assert "contractive" not in tuned.history_


def test_fine_tuning_continues_a_greedy_stack_without_pretraining_again(X):
    model = stack(mixed_stages(), fine_tune=False).fit(X)
    stages_before = model.stages_
    greedy_score = model.score(X)
    model.set_params(fine_tune=True, warm_start=True, epochs=8).fit(X)
    assert model.stages_ is stages_before
    assert model.n_iter_ == 8
    assert model.score(X) > greedy_score


# ----------------------------------------------------------------------- the greedy stack
@pytest.mark.parametrize("stages,tied", [
    (lambda: [ContractiveAutoencoder(n_hidden=6), ContractiveAutoencoder(n_hidden=3)], True),
    (lambda: [ContractiveAutoencoder(n_hidden=6, tied=False), Autoencoder(layers=(3,))], False),
    (lambda: mixed_stages(epochs=2), False),
    (lambda: [Autoencoder(layers=(5,), tied=True, activation="tanh", loss="mse",
                          output_activation="identity"),
              Autoencoder(layers=(3,), tied=True, loss="mse", output_activation="tanh")], True),
])
def test_fine_tune_false_is_exactly_the_greedy_stack(X, stages, tied):
    model = stack(stages(), fine_tune=False).fit(X)
    assert model.tied is tied
    L = len(model.stages_)
    codes = chain(model.stages_, X)
    np.testing.assert_array_equal(model.transform(X), codes[-1])
    # the decoders, mirrored: g_0(g_1(... g_{L-1}(h_L)))
    R = codes[-1]
    for stage in reversed(model.stages_):
        R = stage.inverse_transform(R)
    np.testing.assert_array_equal(model.inverse_transform(codes[-1]), R)
    # the parameter mapping of the module docstring
    for i, stage in enumerate(model.stages_):
        j = L - 1 - i
        p = stage.params
        cae = isinstance(stage, ContractiveAutoencoder)
        W, b = (p["W"], p["b"]) if cae else (p["encoder.0.W"], p["encoder.0.b"])
        c = p["c"] if cae else p["decoder.0.b"]
        np.testing.assert_array_equal(model.params[f"encoder.{i}.W"], W)
        np.testing.assert_array_equal(model.params[f"encoder.{i}.b"], b)
        np.testing.assert_array_equal(model.params[f"decoder.{j}.b"], c)
        if tied:
            assert f"decoder.{j}.W" not in model.params
        else:
            V = W.T if stage.tied else (p["W_dec"] if cae else p["decoder.0.W"])
            np.testing.assert_array_equal(model.params[f"decoder.{j}.W"], V)
    assert model.n_iter_ == 0 and model.loss_curve_ == []


def test_single_stage_stack_scores_like_its_stage(X):
    for stage in (ContractiveAutoencoder(n_hidden=5, lam=0.5, epochs=2),
                  Autoencoder(layers=(5,), loss="mse", output_activation="identity",
                              reduction="mean", loss_weight=0.5, epochs=2)):
        model = stack([stage], fine_tune=False, dtype=np.float64).fit(X)
        only = model.stages_[0]
        assert model.loss == stage.loss and model.layers == (5,)
        np.testing.assert_allclose(model.score(X), only.score(X), rtol=1e-12)
        np.testing.assert_allclose(model.loss_terms(X)["reconstruction"],
                                   only.loss_terms(X)["reconstruction"], rtol=1e-12)


def test_transform_gives_the_top_code(X):
    model = stack(mixed_stages(epochs=1), epochs=1).fit(X)
    assert model.transform(X).shape == (60, 4)
    assert model.layers == (10, 8, 6, 4)
    assert model.fit_transform(X).shape == (60, 4)
    assert model.reconstruct(X).shape == X.shape
    assert model.jacobian(X[:3]).shape == (3, 4, 12)
    assert list(model.get_feature_names_out()) == [f"stackedautoencoder{i}" for i in range(4)]


def test_stages_are_fitted_clones_and_the_users_stages_are_untouched(X):
    stages = mixed_stages(epochs=1)
    before = [copy.deepcopy(s.get_params()) for s in stages]
    model = stack(stages, epochs=1, dtype=np.float64).fit(X)
    assert model.stages is stages
    widths = [12, 10, 8, 6]
    for i, (user, clone) in enumerate(zip(stages, model.stages_)):
        assert clone is not user and type(clone) is type(user)
        assert not user.params and not hasattr(user, "n_features_in_")
        assert not hasattr(user, "history_")
        assert repr(user.get_params()) == repr(before[i])
        assert clone.n_features_in_ == widths[i]
        assert clone.n_iter_ == 1 and clone.history_ is model.history_["stages"][i]
        assert all(p.dtype == np.float64 for p in clone.params.values())   # the stack's dtype
    assert model.history_["stages"][0]["contractive"]           # each stage keeps its terms
    assert "sparsity" in model.history_["stages"][2]


def test_random_state_seeds_the_stages_reproducibly(X):
    a = stack(mixed_stages(epochs=1), epochs=2, random_state=5).fit(X)
    b = stack(mixed_stages(epochs=1), epochs=2, random_state=5).fit(X)
    c = stack(mixed_stages(epochs=1), epochs=2, random_state=6).fit(X)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    assert not np.array_equal(a.params["encoder.0.W"], c.params["encoder.0.W"])
    # the stages get different seeds from the one random_state
    seeds = [s.random_state for s in a.stages_]
    assert len(set(seeds)) == 4 and all(isinstance(s, int) for s in seeds)
    # a stage with its own random_state keeps it, whatever the stack's
    own = [ContractiveAutoencoder(n_hidden=4, epochs=1, random_state=7),
           ContractiveAutoencoder(n_hidden=2, epochs=1)]
    d = stack(own, fine_tune=False, random_state=1).fit(X)
    e = stack(own, fine_tune=False, random_state=2).fit(X)
    assert stage_params_equal(d.stages_[0].params, e.stages_[0].params)
    assert not stage_params_equal(d.stages_[1].params, e.stages_[1].params)


def test_validation_data_reaches_every_stage_and_the_fine_tuning(X):
    model = stack(mixed_stages(epochs=2), epochs=2).fit(X[:40], validation_data=X[40:])
    assert len(model.history_["val_total"]) == 2
    for stage_history in model.history_["stages"]:
        assert len(stage_history["val_total"]) == 2


def test_verbose_prints_one_line_per_stage_and_per_epoch(X, capsys):
    stack(mixed_stages(epochs=1), epochs=2, verbose=1).fit(X)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out if line.startswith("stage ")] == [
        "stage 1/4", "stage 2/4", "stage 3/4", "stage 4/4"]
    assert sum(line.startswith("epoch ") for line in out) == 2
    assert all("{" not in line for line in out)          # no stage history in epoch lines


# ------------------------------------------------------------------------ gradients
STAGE_KINDS = [
    lambda k, tied, act: ContractiveAutoencoder(n_hidden=k, tied=tied, activation=act),
    lambda k, tied, act: Autoencoder(layers=(k,), tied=tied, activation=act),
    lambda k, tied, act: DenoisingAutoencoder(layers=(k,), tied=tied, activation=act),
    lambda k, tied, act: SparseAutoencoder(layers=(k,), tied=tied, activation=act,
                                           sparsity="l1"),
]


@settings(max_examples=25, deadline=None)
@given(data=st.data(), depth=st.integers(1, 3), seed=st.integers(0, 2 ** 16),
       loss=st.sampled_from([("bce", "sigmoid"), ("mse", "identity"), ("mse", "tanh")]))
def test_the_stacks_objective_passes_the_gradient_checker(data, depth, seed, loss):
    stages = []
    for i in range(depth):
        kind = data.draw(st.sampled_from(STAGE_KINDS))
        act = "sigmoid" if i < depth - 1 else data.draw(st.sampled_from(["sigmoid", "tanh",
                                                                          "softplus"]))
        stages.append(kind(data.draw(st.integers(1, 5)), data.draw(st.booleans()), act))
    stages[0].set_params(loss=loss[0], output_activation=loss[1])
    n, d = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6))
    Xs = data.draw(arrays(np.float64, (n, d), elements=unit))
    model = StackedAutoencoder(stages, dtype=np.float64, random_state=seed).initialize(d)
    result = check_model(model, Xs, method="richardson", rtol=1e-6)
    assert result.passed, result.report()


@pytest.mark.parametrize("tied", [True, False])
def test_the_fine_tuned_stack_passes_the_gradient_checker(X, tied):
    stages = [ContractiveAutoencoder(n_hidden=6, tied=tied, epochs=2),
              DenoisingAutoencoder(layers=(3,), tied=tied, epochs=2)]
    model = stack(stages, epochs=3, dtype=np.float64).fit(X)
    assert model.tied is tied
    result = check_model(model, X[:8], method="richardson", rtol=1e-6)
    assert result.passed, result.report()
    # the objective is deterministic: no corruption from the denoising stage
    assert model.loss_and_grad(X[:8])[0] == model.loss_and_grad(X[:8])[0]


# ------------------------------------------------------------------- save, load, resume
def test_save_load_round_trip(tmp_path, X):
    model = stack(mixed_stages(epochs=2), epochs=2).fit(X)
    path = model.save(tmp_path / "stack.npz")
    loaded = npcae.load(path)
    assert type(loaded) is StackedAutoencoder
    assert repr(loaded) == repr(model)
    assert [type(s) for s in loaded.stages] == [type(s) for s in model.stages]
    assert [s.get_params() for s in loaded.stages[:1]] == [model.stages[0].get_params()]
    for key in model.params:
        np.testing.assert_array_equal(loaded.params[key], model.params[key])
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    assert loaded.history_ == model.history_ and loaded.n_iter_ == 2
    for a, b, H in zip(model.stages_, loaded.stages_, [X, *chain(model.stages_, X)]):
        assert type(a) is type(b) and b.n_features_in_ == a.n_features_in_
        assert stage_params_equal(a.params, b.params)
        assert b.history_ == a.history_
        assert b.get_params() == a.get_params()      # the seed it was trained with, too
        np.testing.assert_array_equal(b.transform(H), a.transform(H))
    with np.load(path) as npz:
        meta = json.loads(str(npz["__npcae__"][()]))
        assert {"stage.0.W", "stage.0.W_dec", "stage.3.decoder.0.b"} <= set(npz.files)
    stage0 = meta["hyperparameters"]["stages"][0]
    assert stage0["__estimator__"]["class"] == "ContractiveAutoencoder"
    assert stage0["__estimator__"]["params"]["n_hidden"] == 10


def test_save_load_of_a_greedy_and_of_an_initialized_stack(tmp_path, X):
    greedy = stack(mixed_stages(epochs=1), fine_tune=False).fit(X)
    loaded = npcae.load(greedy.save(tmp_path / "greedy.npz"))
    assert loaded.n_iter_ == 0 and list(loaded.history_) == ["stages"]
    np.testing.assert_array_equal(loaded.transform(X), greedy.transform(X))
    fresh = stack(mixed_stages()).initialize(12)
    loaded = npcae.load(fresh.save(tmp_path / "fresh.npz"))
    assert not hasattr(loaded, "stages_")
    np.testing.assert_array_equal(loaded.transform(X), fresh.transform(X))


@pytest.mark.parametrize("tied", [True, False])
def test_warm_start_and_save_load_resume_exactly(tmp_path, X, tied):
    stages = [ContractiveAutoencoder(n_hidden=6, tied=tied, epochs=2),
              DenoisingAutoencoder(layers=(3,), tied=tied, epochs=2)]
    once = stack(stages, epochs=5).fit(X)
    first = stack(stages, epochs=2, warm_start=True).fit(X)
    first.save(tmp_path / "s.npz")
    again = npcae.load(tmp_path / "s.npz")
    again.set_params(epochs=3).fit(X)
    first.set_params(epochs=3).fit(X)
    for model in (again, first):
        for key in once.params:
            np.testing.assert_array_equal(model.params[key], once.params[key])
        assert model.history_["total"] == once.history_["total"]
        assert model.n_iter_ == 5
        assert stage_params_equal(model.stages_[1].params, once.stages_[1].params)


def test_partial_fit_pretrains_once_then_fine_tunes_an_epoch_per_call(X):
    model = stack(mixed_stages(epochs=2))
    model.partial_fit(X)
    stages = model.stages_
    assert model.n_iter_ == 1 and all(s.n_iter_ == 2 for s in stages)
    model.partial_fit(X)
    assert model.stages_ is stages and model.n_iter_ == 2
    with pytest.raises(ValueError, match="fine_tune=False"):
        model.set_params(fine_tune=False).partial_fit(X)


def test_interrupted_pretraining_leaves_the_stack_as_it_was(X, monkeypatch):
    model = stack([ContractiveAutoencoder(n_hidden=4, epochs=1),
                   Autoencoder(layers=(2,), epochs=1)], epochs=1).fit(X)
    params = {k: v.copy() for k, v in model.params.items()}
    stages, history = model.stages_, model.history_

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(Autoencoder, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    assert model.stages_ is stages and model.history_ is history
    for key in params:
        np.testing.assert_array_equal(model.params[key], params[key])
    fresh = stack([ContractiveAutoencoder(n_hidden=4, epochs=1), Autoencoder(layers=(2,))])
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X)
    assert not fresh.params and not hasattr(fresh, "stages_")


# ------------------------------------------------------------------------------ errors
def _fitted_cae():
    return ContractiveAutoencoder(n_hidden=3, epochs=1, random_state=0).fit(
        np.random.default_rng(0).random((10, 5)))


BAD_STAGES = {
    "none": (None, ValueError, "stages is required"),
    "empty": ([], ValueError, "stages is empty"),
    "one estimator": (ContractiveAutoencoder(), TypeError, r"not one estimator.*stages=\["),
    "not a list": ("cae", TypeError, "stages must be a list"),
    "a string stage": (["cae"], TypeError, r"stages\[0\] must be an npcae estimator"),
    "a sklearn model": (lambda: [__import__("sklearn.decomposition").decomposition.PCA(2)],
                        TypeError, r"stages\[0\] must be an npcae estimator"),
    "a class": ([ContractiveAutoencoder], TypeError, r"stages\[0\] is the class"),
    "a vae": ([ContractiveAutoencoder(), VariationalAutoencoder()], ValueError,
              r"stages\[1\] is a VariationalAutoencoder"),
    "two layers": ([Autoencoder(layers=(8, 4))], ValueError,
                   r"stages\[0\].*2 layers.*Autoencoder\(layers=\(8,\)\), "
                   r"Autoencoder\(layers=\(4,\)\)"),
    "a stack": ([StackedAutoencoder([Autoencoder()])], ValueError,
                r"stages\[0\] is a StackedAutoencoder"),
    "fitted": (lambda: [ContractiveAutoencoder(), _fitted_cae()], ValueError,
               r"stages\[1\] \(ContractiveAutoencoder\) is already fitted"),
    "bad stage hyperparameter": ([ContractiveAutoencoder(lam=-1.0)], ValueError,
                                 r"stages\[0\] \(ContractiveAutoencoder\): lam must be"),
    "bad layers": ([Autoencoder(layers=(0,))], ValueError, r"stages\[0\] \(Autoencoder\).*"
                                                          r"layers\[0\]"),
    "bce above tanh": ([Autoencoder(layers=(4,), activation="tanh"), Autoencoder(layers=(2,))],
                       ValueError, r"stages\[1\].*loss='bce'.*stages\[0\].*'tanh'.*loss='mse'"),
}


@pytest.mark.parametrize("case", sorted(BAD_STAGES))
def test_bad_stages_are_refused_with_a_clear_error(X, case):
    stages, error, match = BAD_STAGES[case]
    stages = stages() if callable(stages) else stages
    with pytest.raises(error, match=match):
        StackedAutoencoder(stages=stages).fit(X)


def test_bad_stack_hyperparameters_are_named(X):
    for kw, match in [(dict(fine_tune="yes"), "fine_tune"), (dict(epochs=0), "epochs"),
                      (dict(dtype=np.float16), "dtype"), (dict(batch_size=-1), "batch_size")]:
        with pytest.raises((TypeError, ValueError), match=match):
            StackedAutoencoder([Autoencoder(layers=(3,))], **kw).fit(X)
    model = stack([Autoencoder(layers=(3,), epochs=1)], fine_tune=False,
                  warm_start=True).fit(X)
    with pytest.raises(ValueError, match="fine_tune=False.*fine_tune=True"):
        model.fit(X)


def test_a_bce_stack_needs_inputs_in_the_unit_interval(X):
    with pytest.raises(ValueError, match="stages\\[0\\]"):
        stack([ContractiveAutoencoder(n_hidden=3)]).fit(X * 2)
    # an mse stage 0 takes any real input
    stack([ContractiveAutoencoder(n_hidden=3, loss="mse", output_activation="identity",
                                  epochs=1)], epochs=1).fit(X * 2 - 1)


def test_a_stage_that_diverges_is_named(X):
    stages = [Autoencoder(layers=(3,), epochs=1),
              Autoencoder(layers=(2,), loss="mse", output_activation="identity",
                          optimizer={"name": "SGD", "lr": 1e30}, epochs=3)]
    with pytest.raises(npcae.TrainingDivergedError, match=r"pretraining stages\[1\]"):
        stack(stages).fit(X)


# ----------------------------------------------------------------------- strict loading
def _read(path):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop("__npcae__")[()])), arrays


def _write(path, meta, arrays):
    np.savez(path, __npcae__=np.array(json.dumps(meta)), **arrays)
    return path


def _estimator(meta, i=0):
    return meta["hyperparameters"]["stages"][i]["__estimator__"]


BAD_FILES = {
    "unknown stage class": (lambda m, a: _estimator(m).update({"class": "os.system"}),
                            r"hyperparameters.stages.*stages\[0\].__estimator__.class is "
                            r"'os.system', not a known model class"),
    "extra key": (lambda m, a: m["hyperparameters"]["stages"][0].update({"x": 1}),
                  r"stages\[0\].*other keys \['x'\]"),
    "no params": (lambda m, a: _estimator(m).pop("params"), "exactly the keys 'class' and "
                                                            "'params'"),
    "missing stage hyperparameter": (lambda m, a: _estimator(m)["params"].pop("lam"),
                                     r"missing: \['lam'\]"),
    "unknown stage hyperparameter": (lambda m, a: _estimator(m)["params"].update({"seed": 1}),
                                     r"unknown: \['seed'\]"),
    "refused stage hyperparameter": (lambda m, a: _estimator(m)["params"].update({"lam": -1}),
                                     r"refuses: stages\[0\] \(ContractiveAutoencoder\): lam"),
    "stage array shape": (lambda m, a: a.update({"stage.1.encoder.0.W": np.zeros((3, 3))}),
                          r"'stage.1.encoder.0.W' has shape \(3, 3\)"),
    "stage array missing": (lambda m, a: a.pop("stage.0.c"), r"missing: \['stage.0.c'\]"),
    "stage array extra": (lambda m, a: a.update({"stage.2.W": np.zeros(3)}),
                          r"unexpected: \['stage.2.W'\]"),
    "stage array nan": (lambda m, a: a["stage.0.b"].fill(np.nan), "'stage.0.b' holds NaN"),
    "stage array ints": (lambda m, a: a.update({"stage.0.b": np.zeros(4, dtype=int)}),
                         "'stage.0.b' must be a float32 or float64"),
    "stage histories count": (lambda m, a: m["history"]["stages"].pop(),
                              "'history.stages' holds 1 histories; .* 2 stages"),
    "stage history values": (lambda m, a: m["history"]["stages"][1].update({"total": ["x"]}),
                             r"'history.stages\[1\].total' must be a list of numbers"),
    "stage histories not a list": (lambda m, a: m["history"].update({"stages": {}}),
                                   "'history.stages' must be a list"),
}


@pytest.fixture(scope="module")
def good_stack_file(tmp_path_factory, X):
    model = stack([ContractiveAutoencoder(n_hidden=4, epochs=1, tied=False),
                   Autoencoder(layers=(2,), epochs=1)], epochs=1).fit(X)
    return model.save(tmp_path_factory.mktemp("stack") / "good.npz")


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_stack_files_raise_model_file_error_naming_the_field(tmp_path, case,
                                                                       good_stack_file):
    meta, arrs = _read(good_stack_file)
    BAD_FILES[case][0](meta, arrs)
    path = _write(tmp_path / "bad.npz", meta, arrs)
    with pytest.raises(ModelFileError, match=BAD_FILES[case][1]):
        npcae.load(path)


def test_stage_entries_in_a_file_of_another_model_are_refused(tmp_path, X, good_stack_file):
    path = ContractiveAutoencoder(n_hidden=3, epochs=1).fit(X).save(tmp_path / "cae.npz")
    meta, arrs = _read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        npcae.load(path)
    arrs["stage.0.W"] = np.zeros((12, 3))
    with pytest.raises(ModelFileError, match="has no stages"):
        npcae.load(_write(tmp_path / "bad1.npz", meta, arrs))
    del arrs["stage.0.W"]
    meta["history"]["stages"] = []
    with pytest.raises(ModelFileError, match="'history.stages'.*has no stages"):
        npcae.load(_write(tmp_path / "bad2.npz", meta, arrs))
    # an estimator in a hyperparameter needs the registry
    good, _ = _read(good_stack_file)
    with pytest.raises(ValueError, match="registry"):
        npcae.io._from_jsonable(good["hyperparameters"]["stages"][0])


# ----------------------------------------------------------------- scikit-learn and data
def test_scikit_learn_check_estimator_passes_on_an_mse_stack():
    pytest.importorskip("sklearn")
    from sklearn.utils.estimator_checks import check_estimator
    mse = dict(loss="mse", output_activation="identity", epochs=2)
    model = StackedAutoencoder([Autoencoder(layers=(4,), **mse), Autoencoder(layers=(2,), **mse)],
                               epochs=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(model, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results
              if r["status"] == "failed"]
    assert failed == []
    assert sum(r["status"] == "passed" for r in results) >= 40


def test_clone_and_pipeline(X):
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    model = stack(mixed_stages(epochs=1), epochs=1)
    twin = clone(model)
    assert twin.stages[0] is not model.stages[0] and repr(twin) == repr(model)
    pipe = make_pipeline(MinMaxScaler(), twin).fit(X)
    assert pipe.transform(X).shape == (60, 4)
    assert not hasattr(model, "stages_")


@pytest.mark.slow
def test_real_mnist_fine_tuning_beats_the_greedy_stack(mnist_dir, monkeypatch):
    monkeypatch.setenv("NPCAE_DATA_DIR", str(mnist_dir))
    X = npcae.datasets.load_mnist(mnist_dir, download=False, n_samples=3000)[0]
    stages = [ContractiveAutoencoder(n_hidden=100, lam=0.1, epochs=3),
              ContractiveAutoencoder(n_hidden=30, lam=0.1, epochs=3)]
    model = stack(stages, fine_tune=False).fit(X)
    greedy = model.score(X)
    model.set_params(fine_tune=True, warm_start=True, epochs=5).fit(X)
    assert model.score(X) > greedy
