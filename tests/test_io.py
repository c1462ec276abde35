"""save/load: exact round trips, no pickle, atomic polite writes, strict loading of bad files."""
import json
import os
import re
import zipfile

import numpy as np
import pytest

import npcae
from npcae import ContractiveAutoencoder
from npcae.io import ModelFileError, atomic_write
from npcae.optim import SGD


@pytest.fixture
def data():
    return np.random.default_rng(0).random((80, 12)).astype(np.float32)


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    """A small fitted CAE saved once: the template every bad file is crafted from."""
    X = np.random.default_rng(0).random((40, 12)).astype(np.float32)
    model = ContractiveAutoencoder(n_hidden=3, epochs=2, random_state=0, verbose=0).fit(X)
    return model.save(tmp_path_factory.mktemp("good") / "m.npz")


def _read(path):
    """``(metadata, arrays)`` of a saved model, to be mutated and written back."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return json.loads(str(arrays.pop("__npcae__")[()])), arrays


def _write(path, meta, arrays, meta_entry=None):
    """Write an .npz like save_model does, from (possibly broken) metadata and arrays."""
    if meta_entry is None:
        meta_entry = np.array(json.dumps(meta))
    np.savez(path, __npcae__=meta_entry, **arrays)
    return path


def _rewrite_meta(src, dst, **changes):
    meta, arrays = _read(src)
    meta.update(changes)
    return _write(dst, meta, arrays)


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(tied=False), dict(dtype=np.float64),
                                dict(activation="tanh", output_activation="identity",
                                     loss="mse", optimizer=SGD(lr=0.01, momentum=0.9))])
def test_round_trip_identical_outputs(tmp_path, data, kw):
    model = ContractiveAutoencoder(n_hidden=5, epochs=2, random_state=1, verbose=0,
                                   **kw).fit(data)
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
    assert loaded.n_iter_ == 2


def test_resumed_training_is_bitwise_identical(tmp_path, data):
    a = ContractiveAutoencoder(n_hidden=4, epochs=2, random_state=3, verbose=0,
                               warm_start=True).fit(data)
    a.save(tmp_path / "a.npz")
    b = npcae.load(tmp_path / "a.npz")
    a.set_params(epochs=2).fit(data)
    b.set_params(epochs=2).fit(data)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert len(b.history_["total"]) == 4


def test_training_state_round_trips(tmp_path, data):
    """Format 3 stores the shuffling generator's state and the epoch count."""
    model = ContractiveAutoencoder(n_hidden=3, epochs=2, random_state=0, verbose=0).fit(data)
    if getattr(model, "training_rng_state_", None) is None:     # before fit records it
        model.training_rng_state_ = np.random.default_rng(3).bit_generator.state
    path = model.save(tmp_path / "m.npz")
    meta, _ = _read(path)
    assert meta["format_version"] == 3
    assert meta["training"] == {"rng_state": model.training_rng_state_, "n_iter": 2}
    loaded = npcae.load(path)
    assert loaded.training_rng_state_ == model.training_rng_state_
    assert loaded.n_iter_ == 2
    # the restored state drives a generator exactly like the saved one
    g = np.random.Generator(np.random.PCG64())
    g.bit_generator.state = loaded.training_rng_state_
    h = np.random.Generator(np.random.PCG64())
    h.bit_generator.state = model.training_rng_state_
    np.testing.assert_array_equal(g.permutation(50), h.permutation(50))


def test_absent_rng_state_is_saved_as_null(tmp_path, data):
    model = ContractiveAutoencoder(n_hidden=3, epochs=1, random_state=0, verbose=0).fit(data)
    if hasattr(model, "training_rng_state_"):
        del model.training_rng_state_
    path = model.save(tmp_path / "m.npz")
    assert _read(path)[0]["training"]["rng_state"] is None
    assert not hasattr(npcae.load(path), "training_rng_state_")


def test_file_is_plain_npz_without_pickle(tmp_path, data):
    path = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data).save(
        tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["__npcae__"][()]))
        assert meta["format"] == "npcae-model" and meta["format_version"] == npcae.io.FORMAT_VERSION
        assert meta["class"] == "ContractiveAutoencoder"
        assert meta["hyperparameters"]["n_hidden"] == 3
        assert {"param.W", "param.b", "param.c"} <= set(npz.files)


def test_zip_contains_only_npy(tmp_path, data):
    path = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data).save(
        tmp_path / "m.npz")
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())


def test_saving_unfitted_model_errors(tmp_path):
    with pytest.raises(ValueError, match="fit"):
        ContractiveAutoencoder().save(tmp_path / "x.npz")


# ---------------------------------------------------------------------------
# older formats
# ---------------------------------------------------------------------------

def test_version_1_file_loads_parameters_but_not_optimizer_state(tmp_path, data):
    """Format 1 stored Adam's paper moments per parameter name; they do not fit the packed,
    rescaled state of format 2, so they are dropped with a warning (parameters still load)."""
    model = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0, random_state=0).fit(data)
    path = model.save(tmp_path / "m.npz")
    _rewrite_meta(path, tmp_path / "v1.npz", format_version=1)
    with pytest.warns(UserWarning, match="optimizer state is not"):
        old = npcae.load(tmp_path / "v1.npz")
    assert getattr(old, "optimizer_", None) is None
    np.testing.assert_array_equal(old.transform(data), model.transform(data))
    assert old.n_iter_ == 1
    assert npcae.load(path).optimizer_ is not None                # later formats keep it


def test_version_2_file_loads(tmp_path, good_file, data):
    """Format 2: no "training" section and the hyperparameter was still called "seed"."""
    meta, arrays = _read(good_file)
    meta["format_version"] = 2
    del meta["training"]
    hyper = meta["hyperparameters"]
    hyper["seed"] = hyper.pop("random_state")
    old = npcae.load(_write(tmp_path / "v2.npz", meta, arrays))
    new = npcae.load(good_file)
    assert old.random_state == new.random_state == 0
    assert old.n_iter_ == len(old.history_["total"]) == 2
    assert not hasattr(old, "training_rng_state_")
    assert old.optimizer_.state_dict()["state"]["packed"]["t"] == \
        new.optimizer_.state_dict()["state"]["packed"]["t"]
    np.testing.assert_array_equal(old.transform(data), new.transform(data))
    del hyper["n_hidden"]                     # only arguments added since format 2 may be absent
    with pytest.raises(ModelFileError, match="n_hidden"):
        npcae.load(_write(tmp_path / "v2b.npz", meta, arrays))


# ---------------------------------------------------------------------------
# atomic, polite writes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_respect_the_umask(tmp_path, good_file, umask, mask, mode):
    umask(mask)
    model = npcae.load(good_file)
    assert os.stat(model.save(tmp_path / "m.npz")).st_mode & 0o7777 == mode
    atomic_write(tmp_path / "h.json", lambda fh: fh.write(b"{}"))
    assert os.stat(tmp_path / "h.json").st_mode & 0o7777 == mode


def test_umask_read_without_proc(tmp_path, umask, monkeypatch):
    """Without /proc (not Linux) the umask is read by setting and restoring it."""
    import npcae.io as io
    real_open = open

    def no_proc(name, *args, **kwargs):
        if str(name).startswith("/proc"):
            raise FileNotFoundError(name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(io, "open", no_proc, raising=False)
    umask(0o027)
    atomic_write(tmp_path / "f", lambda fh: fh.write(b"x"))
    assert os.stat(tmp_path / "f").st_mode & 0o7777 == 0o640
    assert umask(0o022) == 0o027                         # left as it was


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_overwrite_keeps_the_files_mode(tmp_path, good_file, umask, mode):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    npcae.load(good_file).save(path)
    assert os.stat(path).st_mode & 0o7777 == mode
    assert npcae.load(path).n_features_in_ == 12


def test_saving_through_a_symlink_updates_its_target(tmp_path, good_file):
    real_dir, link_dir = tmp_path / "store", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    target = real_dir / "model.npz"
    target.write_bytes(b"old")
    link = link_dir / "current.npz"
    link.symlink_to(os.path.relpath(target, link_dir))
    seen = []

    def write(fh):
        seen.append(sorted(os.listdir(real_dir)))      # the temp file sits beside the target
        fh.write(b"new")

    atomic_write(link, write)
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, link_dir)
    assert target.read_bytes() == b"new"
    assert len(seen[0]) == 2 and seen[0][0].endswith(".tmp")
    assert sorted(os.listdir(real_dir)) == ["model.npz"]
    assert sorted(os.listdir(link_dir)) == ["current.npz"]

    npcae.load(good_file).save(link)                   # and through model.save
    assert link.is_symlink() and npcae.load(target).n_features_in_ == 12


def test_saving_through_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    atomic_write(link, lambda fh: fh.write(b"{}"))
    assert link.is_symlink() and (tmp_path / "real.json").read_bytes() == b"{}"


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_no_temp_file_left_when_write_raises(tmp_path, exc):
    (tmp_path / "f.json").write_bytes(b"old")

    def write(fh):
        fh.write(b"partial")
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(tmp_path / "f.json", write)
    with pytest.raises(type(exc)):
        atomic_write(tmp_path / "new.json", write)
    assert sorted(os.listdir(tmp_path)) == ["f.json"]
    assert (tmp_path / "f.json").read_bytes() == b"old"


@pytest.mark.parametrize("exc", [OSError("cross-device"), KeyboardInterrupt()])
def test_no_temp_file_left_when_rename_raises(tmp_path, monkeypatch, exc):
    def broken_replace(src, dst):
        raise exc

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(type(exc)):
        atomic_write(tmp_path / "f.json", lambda fh: fh.write(b"{}"))
    assert os.listdir(tmp_path) == []


def test_model_write_is_atomic(tmp_path, data, monkeypatch):
    model = ContractiveAutoencoder(n_hidden=3, epochs=1, verbose=0).fit(data)
    path = model.save(tmp_path / "m.npz")
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    assert path.read_bytes() == before                     # old file untouched
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]       # no temp file left behind
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "new.npz")
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_atomic_write_creates_parents_and_returns_the_path(tmp_path):
    path = tmp_path / "a" / "b" / "f.txt"
    assert atomic_write(path, lambda fh: fh.write(b"hi")) == path
    assert path.read_bytes() == b"hi"


# ---------------------------------------------------------------------------
# strict loading: every bad file is a ModelFileError that names what is wrong
# ---------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        npcae.load(tmp_path / "missing.npz")


def test_truncated_file(tmp_path, good_file):
    raw = good_file.read_bytes()
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


def test_npy_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    with pytest.raises(ModelFileError, match=r"\.npy"):
        npcae.load(tmp_path / "a.npy")


def test_load_model_looks_classes_up_in_the_registry_it_is_given(tmp_path, good_file):
    """io.load_model takes the registry (it never imports npcae.models); npcae.load passes
    npcae.models.MODELS."""
    from npcae.io import load_model
    from npcae.models import MODELS

    class MyCAE(ContractiveAutoencoder):
        pass

    loaded = load_model(good_file, MODELS)
    assert type(loaded) is ContractiveAutoencoder
    np.testing.assert_array_equal(loaded.params["W"], npcae.load(good_file).params["W"])
    meta, arrays = _read(good_file)
    meta["class"] = "MyCAE"
    mine = _write(tmp_path / "mine.npz", meta, arrays)
    assert type(load_model(mine, {"MyCAE": MyCAE})) is MyCAE     # the caller's classes only
    known = re.escape(repr(sorted(MODELS)))
    with pytest.raises(ModelFileError, match=rf"unknown model class 'MyCAE'.*'class'.*"
                                             rf"known: {known}"):
        load_model(mine, MODELS)
    with pytest.raises(ModelFileError, match=r"known: \[\]"):
        load_model(good_file, {})


@pytest.mark.parametrize("registry, match", [
    (None, "registry must be a mapping.*got NoneType"),
    ([ContractiveAutoencoder], "registry must be a mapping.*got list"),
    ({"ContractiveAutoencoder": "ContractiveAutoencoder"}, "map class names.*"
                                                           "'ContractiveAutoencoder'"),
    ({1: ContractiveAutoencoder}, r"map class names.*\[1\]"),
])
def test_load_model_refuses_a_bad_registry(good_file, registry, match):
    from npcae.io import load_model
    with pytest.raises(TypeError, match=match):
        load_model(good_file, registry)
    with pytest.raises(TypeError, match="registry"):             # required, no default
        load_model(good_file)


def test_object_arrays_are_refused(tmp_path, good_file):
    meta, arrays = _read(good_file)
    arrays["param.W"] = np.array([object()], dtype=object)
    with pytest.raises(ModelFileError, match="param.W"):
        npcae.load(_write(tmp_path / "evil.npz", meta, arrays))


@pytest.mark.parametrize("entry, match", [
    (np.array(b"\xff\xfe{not utf-8"), "UTF-8"),
    (np.array([0xFFFFFFFF, 0x7B], dtype=np.uint32).view("U2").reshape(()), "UTF-8"),
    (np.array("not json {"), "JSON"),
    (np.array(5), "0-d string array"),
    (np.array(["{}", "{}"]), "0-d string array"),
    (np.array("[1, 2]"), "JSON object"),
    (np.array('"text"'), "JSON object"),
    (np.array("[" * 100_000 + "]" * 100_000), "nested too deeply"),
], ids=["bytes-not-utf8", "bad-code-point", "not-json", "number", "1-d", "list", "string",
        "deep"])
def test_bad_metadata_entry(tmp_path, good_file, entry, match):
    meta, arrays = _read(good_file)
    with pytest.raises(ModelFileError, match=match):
        npcae.load(_write(tmp_path / "bad.npz", meta, arrays, meta_entry=entry))


def _set(*keys, value):
    """A mutation setting ``meta[k0][k1]... = value``."""
    def mutate(meta, arrays):
        node = meta
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return mutate


def _delete(*keys):
    def mutate(meta, arrays):
        node = meta
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    return mutate


def _array(name, change):
    """A mutation replacing (``change(array)``) or, with ``change=None``, removing an array."""
    def mutate(meta, arrays):
        if change is None:
            del arrays[name]
        else:
            arrays[name] = change(arrays.get(name))
    return mutate


BAD_FILES = {
    # missing keys, top level and nested
    "no-format": (_delete("format"), "'format' is missing"),
    "no-version": (_delete("format_version"), "'format_version' is missing"),
    "no-class": (_delete("class"), "'class' is missing"),
    "no-hyperparameters": (_delete("hyperparameters"), "'hyperparameters' is missing"),
    "no-n-features": (_delete("n_features_in"), "'n_features_in' is missing"),
    "no-history": (_delete("history"), "'history' is missing"),
    "no-optimizer": (_delete("optimizer"), "'optimizer' is missing"),
    "no-training": (_delete("training"), "'training' is missing"),
    "no-n-iter": (_delete("training", "n_iter"), "'training.n_iter' is missing"),
    "no-rng-state": (_delete("training", "rng_state"), "'training.rng_state' is missing"),
    "no-optim-config": (_delete("optimizer", "config"), "'optimizer.config' is missing"),
    "no-optim-steps": (_delete("optimizer", "steps"), "'optimizer.steps' is missing"),
    # format, version, class
    "foreign-format": (_set("format", value="other"), "not an npcae model"),
    "future-version": (_set("format_version", value=4), "version 4.*Upgrade npcae"),
    "version-string": (_set("format_version", value="3"), "'format_version' must be"),
    "version-zero": (_set("format_version", value=0), "'format_version' must be"),
    "unknown-class": (_set("class", value="os.system"), "unknown model class 'os.system'"),
    "class-not-string": (_set("class", value=["ContractiveAutoencoder"]), "unknown model class"),
    "npcae-version-number": (_set("npcae_version", value=1), "'npcae_version' must be"),
    # n_features_in
    "n-features-string": (_set("n_features_in", value="abc"),
                          "'n_features_in' must be a positive int; got 'abc'"),
    "n-features-float": (_set("n_features_in", value=12.0), "'n_features_in' must be"),
    "n-features-negative": (_set("n_features_in", value=-12), "'n_features_in' must be"),
    "n-features-bool": (_set("n_features_in", value=True), "'n_features_in' must be"),
    "n-features-other": (_set("n_features_in", value=13), "param.W.*shape"),
    # hyperparameters
    "hyper-not-dict": (_set("hyperparameters", value=[3]), "'hyperparameters' must be"),
    "hyper-unknown": (_set("hyperparameters", "bogus", value=1), "bogus"),
    "hyper-missing": (_delete("hyperparameters", "lam"), "lacks \\['lam'\\]"),
    "hyper-old-seed": (_set("hyperparameters", "seed", value=0), "seed"),
    "hyper-bad-n-hidden": (_set("hyperparameters", "n_hidden", value=-3), "n_hidden"),
    "hyper-n-hidden-float": (_set("hyperparameters", "n_hidden", value=3.0), "n_hidden"),
    "hyper-lam-string": (_set("hyperparameters", "lam", value="abc"), "lam"),
    "hyper-lam-negative": (_set("hyperparameters", "lam", value=-1.0), "lam"),
    "hyper-bad-loss": (_set("hyperparameters", "loss", value="bogus"), "loss"),
    "hyper-bad-activation": (_set("hyperparameters", "activation", value="bogus"),
                             "activation"),
    "hyper-bad-dtype": (_set("hyperparameters", "dtype", value={"__dtype__": "nonsense"}),
                        "hyperparameters.dtype"),
    "hyper-int-dtype": (_set("hyperparameters", "dtype", value={"__dtype__": "int32"}),
                        "dtype"),
    "hyper-bad-optimizer": (_set("hyperparameters", "optimizer",
                                 value={"__config__": {"name": "Nope"}, "__kind__": "optimizer"}),
                            "hyperparameters.optimizer"),
    "hyper-other-shape": (_set("hyperparameters", "n_hidden", value=4), "param.W.*shape"),
    # history
    "history-list": (_set("history", value=[1.0]), "'history' must be"),
    "history-string-values": (_set("history", "total", value="abc"), "'history.total' must be"),
    "history-mixed-values": (_set("history", "total", value=[1.0, "x"]),
                             "'history.total' must be"),
    "history-bool-values": (_set("history", "total", value=[True]), "'history.total' must be"),
    "history-best-float": (_set("history", "best_epoch", value=1.5),
                           "'history.best_epoch' must be"),
    "history-best-negative": (_set("history", "best_epoch", value=-1),
                              "'history.best_epoch' must be"),
    # parameter arrays
    "param-transposed": (_array("param.W", lambda W: W.T.copy()), "param.W.*shape"),
    "param-int": (_array("param.b", lambda b: b.astype(np.int64)), "param.b.*float"),
    "param-complex": (_array("param.b", lambda b: b.astype(np.complex128)), "param.b.*float"),
    "param-float16": (_array("param.b", lambda b: b.astype(np.float16)), "param.b.*float"),
    "param-nan": (_array("param.c", lambda c: np.full_like(c, np.nan)), "param.c.*NaN"),
    "param-missing": (_array("param.c", None), "missing: \\['c'\\]"),
    "param-extra": (_array("param.Z", lambda _: np.zeros(3, np.float32)),
                    "unexpected: \\['Z'\\]"),
    "foreign-entry": (_array("notes", lambda _: np.zeros(3)), "notes"),
    # optimizer state
    "optim-not-dict": (_set("optimizer", value="adam"), "'optimizer' must be"),
    "optim-unknown-name": (_set("optimizer", "config", value={"name": "Nope"}),
                           "optimizer.config"),
    "optim-bad-lr": (_set("optimizer", "config", "lr", value=-1.0), "optimizer.config"),
    "optim-steps-string": (_set("optimizer", "steps", "packed", value="x"),
                           "'optimizer.steps.packed' must be"),
    "optim-steps-negative": (_set("optimizer", "steps", "packed", value=-1),
                             "'optimizer.steps.packed' must be"),
    "optim-steps-float": (_set("optimizer", "steps", "packed", value=2.5),
                          "'optimizer.steps.packed' must be"),
    "optim-n-buffers": (_set("optimizer", "n_buffers", "packed", value=1),
                        "'optimizer.n_buffers.packed' must be 2"),
    "optim-keys-differ": (_set("optimizer", "n_buffers", "W", value=2), "different keys"),
    "optim-unknown-key": (lambda m, a: (m["optimizer"]["steps"].update(bogus=1),
                                        m["optimizer"]["n_buffers"].update(bogus=2)), "bogus"),
    "optim-truncated": (_array("optim.packed.0", lambda m: m[:-1]), "optim.packed.0"),
    "optim-wrong-dtype": (_array("optim.packed.1", lambda v: v.astype(np.float64)),
                          "optim.packed.1.*dtype float32"),
    "optim-2d": (_array("optim.packed.1", lambda v: v.reshape(1, -1)), "optim.packed.1"),
    "optim-missing-buffer": (_array("optim.packed.1", None), "optim.packed.1.*missing"),
    "optim-extra-buffer": (_array("optim.packed.2", lambda _: np.zeros(3, np.float32)),
                           "optim.packed.2"),
    "optim-arrays-without-meta": (_set("optimizer", value=None), "optimizer"),
    # training state
    "training-list": (_set("training", value=[]), "'training' must be"),
    "n-iter-negative": (_set("training", "n_iter", value=-1), "'training.n_iter' must be"),
    "n-iter-string": (_set("training", "n_iter", value="5"), "'training.n_iter' must be"),
    "rng-string": (_set("training", "rng_state", value="abc"), "'training.rng_state' must be"),
    "rng-mt19937": (_set("training", "rng_state",
                         value=np.random.MT19937(0).state | {"state": {"key": [1], "pos": 0}}),
                    "'training.rng_state' must be"),
    "rng-bad-state": (_set("training", "rng_state", value={
        "bit_generator": "PCG64", "state": {"state": "x", "inc": 1}, "has_uint32": 0,
        "uinteger": 0}), "'training.rng_state' must be"),
    "rng-missing-part": (_set("training", "rng_state",
                              value={"bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0}),
                         "'training.rng_state' must be"),
    "rng-too-big": (_set("training", "rng_state", value={
        "bit_generator": "PCG64", "state": {"state": 2 ** 200, "inc": 1}, "has_uint32": 0,
        "uinteger": 0}), "'training.rng_state' must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_names_the_field(tmp_path, good_file, case):
    mutate, match = BAD_FILES[case]
    meta, arrays = _read(good_file)
    meta["training"]["rng_state"] = np.random.default_rng(3).bit_generator.state
    _write(tmp_path / "ok.npz", meta, arrays)
    npcae.load(tmp_path / "ok.npz")                    # the template itself is fine
    mutate(meta, arrays)
    path = _write(tmp_path / "bad.npz", meta, arrays)
    with pytest.raises(ModelFileError, match=match) as info:
        npcae.load(path)
    assert str(path) in str(info.value)


def test_per_parameter_optimizer_state_loads(tmp_path, good_file):
    """Optimizer state may be kept per parameter name, with each parameter's shape."""
    meta, arrays = _read(good_file)
    for key in [k for k in arrays if k.startswith("optim.")]:
        del arrays[key]
    steps, n_buffers = {}, {}
    for name in ("W", "b", "c"):
        steps[name], n_buffers[name] = 5, 2
        for i in range(2):
            arrays[f"optim.{name}.{i}"] = np.full_like(arrays[f"param.{name}"], i + 1.0)
    meta["optimizer"].update(steps=steps, n_buffers=n_buffers)
    loaded = npcae.load(_write(tmp_path / "per.npz", meta, arrays))
    state = loaded.optimizer_.state_dict()["state"]
    assert state["W"]["t"] == 5 and state["W"]["buffers"][1].shape == arrays["param.W"].shape
    arrays["optim.b.1"] = arrays["optim.b.1"][:-1]
    with pytest.raises(ModelFileError, match="optim.b.1"):
        npcae.load(_write(tmp_path / "per_bad.npz", meta, arrays))
