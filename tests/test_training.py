"""The shared training loop: history, progress line, early stopping, divergence, buffers."""
import io

import numpy as np
import pytest

from npcae import ContractiveAutoencoder, TrainingDivergedError
from npcae.optim import SGD
from npcae.training import fit_loop, iterate_minibatches


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((230, 16)).astype(np.float32), rng.random((40, 16)).astype(np.float32)


def test_minibatches_cover_every_sample_once():
    rng = np.random.default_rng(0)
    batches = list(iterate_minibatches(23, 5, rng))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate(batches)) == list(range(23))
    again = list(iterate_minibatches(23, 5, rng))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, again))   # reshuffled


def test_history_records_every_term_per_epoch(data):
    X, X_val = data
    model = ContractiveAutoencoder(n_hidden=4, epochs=3, random_state=0, verbose=0)
    model.fit(X, validation_data=X_val)
    h = model.history_
    for key in ("reconstruction", "contractive", "total", "val_reconstruction",
                "val_contractive", "val_total", "samples_per_s", "epoch_time_s"):
        assert len(h[key]) == 3, key
    for e in range(3):
        assert h["total"][e] == pytest.approx(h["reconstruction"][e] + 0.1 * h["contractive"][e],
                                              rel=1e-5)
    # the validation numbers are the objective on the validation set after the epoch
    assert h["val_total"][-1] == pytest.approx(model.loss_terms(X_val)["total"], rel=1e-6)


def test_epoch_loss_is_sample_weighted_mean_of_batches(data):
    # with lr tiny the parameters barely move: the epoch mean must equal the full-data loss
    X, _ = data
    model = ContractiveAutoencoder(n_hidden=4, epochs=1, batch_size=64, random_state=0, verbose=0,
                                   optimizer=SGD(lr=1e-12), dtype=np.float64)
    model.fit(X)
    assert model.history_["total"][0] == pytest.approx(model.loss_terms(X)["total"], rel=1e-9)


def test_progress_line(data):
    X, _ = data
    model = ContractiveAutoencoder(n_hidden=4, epochs=2, random_state=0, verbose=1)
    stream = io.StringIO()
    model._check_hyperparameters()
    model.initialize(X.shape[1])
    from npcae.optim import Adam
    fit_loop(model, X, optimizer=Adam(), epochs=2, batch_size=50,
             rng=np.random.default_rng(0), verbose=1, stream=stream)
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2") and "samples/s" in lines[0] and "ETA" in lines[0]
    assert "contractive" in lines[0] and "reconstruction" in lines[0]


def test_quiet_with_verbose_zero(data, capsys):
    ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data[0])
    assert capsys.readouterr().out == ""


def test_early_stopping_restores_best(data):
    X, X_val = data
    model = ContractiveAutoencoder(n_hidden=4, epochs=50, random_state=0, verbose=0, early_stopping=2,
                                   optimizer=SGD(lr=0.5))
    model.fit(X, validation_data=X_val)
    h = model.history_
    assert len(h["val_total"]) < 50
    best = int(np.argmin(h["val_total"]))
    assert h["best_epoch"] == best + 1
    assert model.loss_terms(X_val)["total"] == pytest.approx(h["val_total"][best], rel=1e-6)


def test_early_stopping_needs_validation(data):
    with pytest.raises(ValueError, match="validation"):
        ContractiveAutoencoder(n_hidden=3, epochs=2, early_stopping=1, verbose=0).fit(data[0])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_divergence_stops_with_clear_error_and_finite_params(data):
    X, _ = data
    model = ContractiveAutoencoder(n_hidden=4, epochs=5, random_state=0, verbose=0, lam=0.0,
                                   loss="mse", output_activation="identity",
                                   activation="identity", optimizer=SGD(lr=1e3))
    with pytest.raises(TrainingDivergedError, match="non-finite") as info:
        model.fit(X * 100)
    assert "learning rate" in str(info.value)
    assert all(np.isfinite(p).all() for p in model.params.values())


def test_nan_in_validation_data_rejected(data):
    X, X_val = data
    X_val = X_val.copy()
    X_val[0, 0] = np.nan
    with pytest.raises(ValueError, match="validation_data contains 1 NaN"):
        ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(X, validation_data=X_val)


def test_warm_start_continues_history_and_shuffle(data):
    X, _ = data
    model = ContractiveAutoencoder(n_hidden=4, epochs=2, random_state=0, verbose=0, warm_start=True)
    model.fit(X)
    W_after_2 = model.params["W"].copy()
    model.fit(X)
    assert len(model.history_["total"]) == 4
    assert not np.array_equal(model.params["W"], W_after_2)


def test_hot_loop_reuses_buffers(data, monkeypatch):
    """Scratch arrays are allocated once per batch shape, not once per step or epoch."""
    from npcae._workspace import Workspace
    X, _ = data
    allocations = []
    original_get = Workspace.get

    def counting_get(self, name, shape, dtype, fill=None):
        before = len(self._arrays)
        arr = original_get(self, name, shape, dtype, fill)
        if len(self._arrays) > before:
            allocations.append((name, tuple(shape)))
        return arr

    monkeypatch.setattr(Workspace, "get", counting_get)

    def count(epochs):
        allocations.clear()
        ContractiveAutoencoder(n_hidden=4, epochs=epochs, batch_size=50, verbose=0).fit(X)
        return len(allocations)

    one, five = count(1), count(5)
    assert one > 0
    assert five == one                      # 5 epochs x 5 steps allocate no more than 1 epoch


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("activation,loss,output", [("sigmoid", "bce", "sigmoid"),
                                                    ("tanh", "mse", "identity"),
                                                    ("softplus", "bce", "sigmoid")])
def test_training_step_applies_the_checked_gradient(tied, activation, loss, output):
    """The training loop's in-place path (batch gathered into the stacked buffer, gradients
    in the packed buffer) must apply exactly the gradient that ``loss_and_grad`` returns and
    the gradient checker verifies. One batch holds every sample, so one SGD step is
    ``p - lr * grad`` (the batch order only changes the rounding of the sums)."""
    rng = np.random.default_rng(5)
    X = rng.random((9, 7))
    kw = dict(n_hidden=4, lam=0.3, activation=activation, output_activation=output, loss=loss,
              tied=tied, batch_size=9, epochs=1, random_state=2, dtype=np.float64, verbose=0)
    model = ContractiveAutoencoder(**kw, optimizer=SGD(lr=0.1), warm_start=True).initialize(7)
    before = {name: p.copy() for name, p in model.params.items()}
    _, grads = model.loss_and_grad(X)
    model.fit(X)                                    # warm_start: starts from `before`
    assert set(model.params) == set(grads)
    for name, g in grads.items():
        np.testing.assert_allclose(model.params[name], before[name] - 0.1 * g,
                                   rtol=1e-12, atol=1e-15, err_msg=name)


def test_parameters_and_optimizer_state_are_packed_after_fit(data):
    """After fit the parameters are views of one contiguous buffer (one optimiser pass per
    step), keep their shapes and values, and the optimiser keeps one state entry for it."""
    from npcae.training import PACKED
    X, _ = data
    model = ContractiveAutoencoder(n_hidden=4, epochs=1, random_state=0, verbose=0).fit(X)
    assert all(p.base is not None for p in model.params.values())
    assert len({id(p.base) for p in model.params.values()}) == 1
    flat = next(iter(model.params.values())).base
    assert flat.ndim == 1 and flat.size == sum(p.size for p in model.params.values())
    assert list(model.optimizer_.state) == [PACKED]
    assert model.optimizer_.state[PACKED]["buffers"][0].shape == flat.shape
    # the packed views are ordinary arrays to the rest of the library
    refit = model.set_params(warm_start=True).fit(X)
    assert refit.params["W"].shape == (16, 4) and np.isfinite(refit.params["W"]).all()


def test_pack_arrays_views_share_the_flat_buffer():
    from npcae.training import pack_arrays
    arrays = {"W": np.arange(6.0).reshape(2, 3), "b": np.array([7.0]), "c": np.zeros((0,))}
    flat, views = pack_arrays(arrays, np.float32)
    assert flat.dtype == np.float32 and flat.tolist() == [0, 1, 2, 3, 4, 5, 7]
    assert list(views) == ["W", "b", "c"] and views["W"].shape == (2, 3)
    flat += 1.0
    assert views["W"][1, 2] == 6.0 and views["b"][0] == 8.0
    views["b"][0] = -1.0
    assert flat[-1] == -1.0


def test_workspace_names_one_array_per_dtype_however_spelled():
    """``np.float32`` and ``np.dtype("float32")`` hash differently; a Workspace keyed on the
    raw argument would hand out two arrays, and the training loop's in-place batch (gathered
    through one spelling, read through the other) would silently read uninitialised memory."""
    from npcae._workspace import Workspace
    ws = Workspace()
    a = ws.get("x", (2, 3), np.float32)
    assert ws.get("x", (2, 3), np.dtype("float32")) is a
    assert ws.get("x", [2, 3], "float32") is a
    assert ws.get("x", (2, 3), np.float64) is not a


def test_all_finite_is_exact_even_when_the_sum_overflows():
    from npcae.training import _all_finite
    flat = np.ones(1000, dtype=np.float32)
    ones = np.ones_like(flat)
    assert _all_finite(flat, ones)
    for bad in (np.nan, np.inf, -np.inf):
        broken = flat.copy()
        broken[517] = bad
        assert not _all_finite(broken, ones)
    huge = np.full(1000, 3e38, dtype=np.float32)         # finite, but the sum overflows
    assert _all_finite(huge, ones)
    mixed = np.array([np.inf, -np.inf], dtype=np.float32)   # sums to NaN
    assert not _all_finite(mixed, np.ones(2, dtype=np.float32))
