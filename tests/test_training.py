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
    model = ContractiveAutoencoder(n_hidden=4, epochs=3, seed=0, verbose=0)
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
    model = ContractiveAutoencoder(n_hidden=4, epochs=1, batch_size=64, seed=0, verbose=0,
                                   optimizer=SGD(lr=1e-12), dtype=np.float64)
    model.fit(X)
    assert model.history_["total"][0] == pytest.approx(model.loss_terms(X)["total"], rel=1e-9)


def test_progress_line(data):
    X, _ = data
    model = ContractiveAutoencoder(n_hidden=4, epochs=2, seed=0, verbose=1)
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
    model = ContractiveAutoencoder(n_hidden=4, epochs=50, seed=0, verbose=0, early_stopping=2,
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
    model = ContractiveAutoencoder(n_hidden=4, epochs=5, seed=0, verbose=0, lam=0.0,
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
    model = ContractiveAutoencoder(n_hidden=4, epochs=2, seed=0, verbose=0, warm_start=True)
    model.fit(X)
    W_after_2 = model.params["W"].copy()
    model.fit(X)
    assert len(model.history_["total"]) == 4
    assert not np.array_equal(model.params["W"], W_after_2)


def test_hot_loop_reuses_buffers(data, monkeypatch):
    """Scratch arrays are allocated once per batch shape, not once per step or epoch."""
    from npcae.models import base
    X, _ = data
    allocations = []
    original_get = base.Workspace.get

    def counting_get(self, name, shape, dtype, fill=None):
        before = len(self._arrays)
        arr = original_get(self, name, shape, dtype, fill)
        if len(self._arrays) > before:
            allocations.append((name, tuple(shape)))
        return arr

    monkeypatch.setattr(base.Workspace, "get", counting_get)

    def count(epochs):
        allocations.clear()
        ContractiveAutoencoder(n_hidden=4, epochs=epochs, batch_size=50, verbose=0).fit(X)
        return len(allocations)

    one, five = count(1), count(5)
    assert one > 0
    assert five == one                      # 5 epochs x 5 steps allocate no more than 1 epoch
