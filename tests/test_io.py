"""save/load: exact round trips, no pickle, atomic writes, clear errors on bad files."""
import json
import os
import zipfile

import numpy as np
import pytest

import npcae
from npcae import ContractiveAutoencoder
from npcae.io import ModelFileError
from npcae.optim import SGD


@pytest.fixture
def data():
    return np.random.default_rng(0).random((80, 12)).astype(np.float32)


@pytest.mark.parametrize("kw", [dict(), dict(tied=False), dict(dtype=np.float64),
                                dict(activation="tanh", output_activation="identity",
                                     loss="mse", optimizer=SGD(lr=0.01, momentum=0.9))])
def test_round_trip_identical_outputs(tmp_path, data, kw):
    model = ContractiveAutoencoder(n_hidden=5, epochs=2, seed=1, verbose=0, **kw).fit(data)
    path = model.save(tmp_path / "cae.npz")
    loaded = npcae.load(path)
    assert type(loaded) is ContractiveAutoencoder
    assert repr(loaded) == repr(model)
    for k in model.params:
        np.testing.assert_array_equal(loaded.params[k], model.params[k])
        assert loaded.params[k].dtype == model.params[k].dtype
    np.testing.assert_array_equal(loaded.transform(data), model.transform(data))
    np.testing.assert_array_equal(loaded.reconstruct(data), model.reconstruct(data))
    assert loaded.history_ == model.history_


def test_resumed_training_is_bitwise_identical(tmp_path, data):
    a = ContractiveAutoencoder(n_hidden=4, epochs=2, seed=3, verbose=0, warm_start=True).fit(data)
    a.save(tmp_path / "a.npz")
    b = npcae.load(tmp_path / "a.npz")
    a.set_params(epochs=2).fit(data)
    b.set_params(epochs=2).fit(data)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    # and equal to 4 uninterrupted epochs? No: that is not promised (the shuffle restarts
    # per fit call); what is promised is that save/load loses nothing.
    assert len(b.history_["total"]) == 4


def test_file_is_plain_npz_without_pickle(tmp_path, data):
    path = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data).save(
        tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["__npcae__"][()]))
        assert meta["format"] == "npcae-model" and meta["format_version"] == npcae.io.FORMAT_VERSION
        assert meta["class"] == "ContractiveAutoencoder"
        assert meta["hyperparameters"]["n_hidden"] == 3
        assert {"param.W", "param.b", "param.c"} <= set(npz.files)


def test_object_arrays_are_refused(tmp_path, data):
    path = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data).save(
        tmp_path / "m.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["param.W"] = np.array([object()], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(ModelFileError):
        npcae.load(tmp_path / "evil.npz")


def test_truncated_file(tmp_path, data):
    path = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data).save(
        tmp_path / "m.npz")
    raw = path.read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        npcae.load(tmp_path / "t.npz")


def test_foreign_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not an npcae model"):
        npcae.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFileError):
        npcae.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        npcae.load(tmp_path / "missing.npz")


def _rewrite_meta(src, dst, **changes):
    with np.load(src) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["__npcae__"][()]))
    meta.update(changes)
    arrays["__npcae__"] = np.array(json.dumps(meta))
    np.savez(dst, **arrays)


def test_unknown_class_and_newer_version(tmp_path, data):
    path = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data).save(
        tmp_path / "m.npz")
    _rewrite_meta(path, tmp_path / "cls.npz", **{"class": "os.system"})
    with pytest.raises(ModelFileError, match="unknown model class"):
        npcae.load(tmp_path / "cls.npz")
    _rewrite_meta(path, tmp_path / "ver.npz", format_version=99)
    with pytest.raises(ModelFileError, match="version"):
        npcae.load(tmp_path / "ver.npz")


def test_version_1_file_loads_parameters_but_not_optimizer_state(tmp_path, data):
    """Format 1 stored Adam's paper moments per parameter name; they do not fit the packed,
    rescaled state of format 2, so they are dropped with a warning (parameters still load)."""
    model = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0, seed=0).fit(data)
    path = model.save(tmp_path / "m.npz")
    _rewrite_meta(path, tmp_path / "v1.npz", format_version=1)
    with pytest.warns(UserWarning, match="optimizer state is not"):
        old = npcae.load(tmp_path / "v1.npz")
    assert getattr(old, "optimizer_", None) is None
    np.testing.assert_array_equal(old.transform(data), model.transform(data))
    assert npcae.load(path).optimizer_ is not None                # format 2 keeps it


def test_write_is_atomic(tmp_path, data, monkeypatch):
    model = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data)
    path = model.save(tmp_path / "m.npz")
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before                     # old file untouched
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]       # no temp file left behind
    with pytest.raises(OSError):
        model.save(tmp_path / "new.npz")
    assert not (tmp_path / "new.npz").exists()


def test_saving_unfitted_model_errors(tmp_path):
    with pytest.raises(ValueError, match="fit"):
        ContractiveAutoencoder().save(tmp_path / "x.npz")


def test_zip_contains_only_npy(tmp_path, data):
    path = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data).save(
        tmp_path / "m.npz")
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())
