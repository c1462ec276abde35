"""Tests for npcae.datasets: IDX parsing, MNIST loading/downloading, procedural digits,
toy manifolds and the name dispatcher. No test touches the network."""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcae import datasets
from npcae.datasets import (DatasetNotFoundError, load_dataset, load_fashion_mnist,
                            load_mnist, make_digits, make_manifold, read_idx)
from npcae.datasets import mnist as mnist_files   # the MNIST file handling

NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
              np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


# --------------------------------------------------------------------------- helpers

def idx_bytes(arr):
    """Serialise ``arr`` as an IDX file (independent of the code under test)."""
    arr = np.asarray(arr)
    be = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    header = bytes([0, 0, TYPE_CODES[be], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(be).tobytes(order="C")


def write_idx(path, arr, gz=False):
    data = idx_bytes(arr)
    path = Path(path)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def fake_split(directory, split="train", n=12, seed=0, gz=True):
    """Write a tiny MNIST-format split into ``directory``; return (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / NAMES[split][0], images, gz=gz)
    write_idx(directory / NAMES[split][1], labels, gz=gz)
    return images, labels


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No $NPCAE_DATA_DIR and a fresh empty HOME, so the default cache is empty."""
    monkeypatch.delenv("NPCAE_DATA_DIR", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def _real_mnist_dir():
    candidates = []
    if os.environ.get("NPCAE_DATA_DIR"):
        candidates.append(Path(os.environ["NPCAE_DATA_DIR"]))
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist")
    for d in candidates:
        if all((d / (n + ".gz")).is_file() or (d / n).is_file()
               for pair in NAMES.values() for n in pair):
            return d
    return None


REAL_MNIST = _real_mnist_dir()
needs_mnist = pytest.mark.skipif(
    REAL_MNIST is None,
    reason="real MNIST IDX files not found (set NPCAE_DATA_DIR or put them in "
           "../shared/data/mnist next to the clone)")


# --------------------------------------------------------------------------- read_idx

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_read_idx_roundtrip(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    p = write_idx(tmp_path / "a-idx3", arr, gz=gz)
    out = read_idx(p)
    assert out.dtype == np.dtype(dtype).newbyteorder("=")
    assert out.dtype.isnative
    assert out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 0  # writable


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       dtype=st.sampled_from(["u1", "i1", "i2", "i4", "f4", "f8"]),
       gz=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_read_idx_roundtrip_any_shape(shape, dtype, gz, seed):
    import tempfile
    arr = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(dtype)
    with tempfile.TemporaryDirectory() as d:
        out = read_idx(write_idx(Path(d) / "x", arr, gz=gz))
    assert out.shape == tuple(shape) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_1d_and_gzip_detected_by_content(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    p = tmp_path / "labels-no-gz-suffix"
    p.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(p), labels)
    np.testing.assert_array_equal(read_idx(str(write_idx(tmp_path / "l", labels))), labels)


def test_read_idx_errors(tmp_path):
    good = idx_bytes(np.zeros((4, 2, 2), np.uint8))  # 16-byte header + 16 bytes

    def check(data, match, name="f"):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ValueError, match=match):
            read_idx(p)

    check(b"", "too short")
    check(b"\x00\x00", "too short")
    check(b"\x12\x34\x08\x03" + good[4:], "not an IDX file")
    check(b"<html><body>404 Not Found</body></html>", "HTML")
    check(b"\x00\x00\x07\x03" + good[4:], "unknown IDX type code 0x07")
    check(b"\x00\x00\x08\x00", "0 dimensions")
    check(good[:10], "truncated IDX header")
    check(good[:-1], r"size mismatch.*truncated.*\(4, 2, 2\).*16 data bytes.*15")
    check(good + b"\x00", "trailing data")
    gz = gzip.compress(good)
    check(gz[: len(gz) // 2], "truncated", name="t.gz")
    check(gz[:10] + b"\xff" * 20, "corrupt|truncated", name="c.gz")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "does-not-exist")


# --------------------------------------------------------------------------- loaders (fake files)

@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_tiny_files(tmp_path, clean_env, gz):
    images, labels = fake_split(tmp_path, "train", n=12, gz=gz)
    X, y = load_mnist(tmp_path, download=False)
    assert X.shape == (12, 784) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (12,) and y.dtype == np.int64
    np.testing.assert_allclose(X, images.reshape(12, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    assert 0.0 <= X.min() and X.max() <= 1.0

    X3, _ = load_mnist(tmp_path, download=False, flatten=False, dtype=np.float64)
    assert X3.shape == (12, 28, 28) and X3.dtype == np.float64
    np.testing.assert_allclose(X3.reshape(12, -1), images.reshape(12, -1) / 255.0,
                               rtol=1e-15)
    Xu, _ = load_mnist(tmp_path, download=False, normalize=False)
    assert Xu.dtype == np.uint8
    np.testing.assert_array_equal(Xu, images.reshape(12, -1))
    Xn, yn = load_mnist(tmp_path, download=False, n_samples=5)
    np.testing.assert_array_equal(Xn, X[:5])
    np.testing.assert_array_equal(yn, labels[:5])


def test_load_test_split_and_fashion(tmp_path, clean_env):
    images, labels = fake_split(tmp_path / "fashion_mnist", "test", n=7, gz=False)
    # found through the data_dir/<name> subfolder
    X, y = load_fashion_mnist(tmp_path, split="test", download=False)
    assert X.shape == (7, 784)
    np.testing.assert_array_equal(y, labels)
    assert len(datasets.FASHION_MNIST_CLASSES) == 10


def test_search_order(tmp_path, clean_env, monkeypatch):
    arg_dir, env_dir = tmp_path / "arg", tmp_path / "env"
    cache_dir = clean_env / ".cache" / "npcae" / "mnist"
    _, y_cache = fake_split(cache_dir, n=3, seed=3)
    # only the cache
    np.testing.assert_array_equal(load_mnist(download=False)[1], y_cache)
    # $NPCAE_DATA_DIR beats the cache
    _, y_env = fake_split(env_dir, n=4, seed=4)
    monkeypatch.setenv("NPCAE_DATA_DIR", str(env_dir))
    np.testing.assert_array_equal(load_mnist(download=False)[1], y_env)
    # data_dir beats $NPCAE_DATA_DIR
    _, y_arg = fake_split(arg_dir, n=5, seed=5)
    np.testing.assert_array_equal(load_mnist(arg_dir, download=False)[1], y_arg)
    # a data_dir without the files falls through to the next location
    np.testing.assert_array_equal(load_mnist(tmp_path / "empty", download=False)[1], y_env)


def test_count_mismatch_and_wrong_shapes(tmp_path, clean_env):
    write_idx(tmp_path / NAMES["train"][0], np.zeros((5, 28, 28), np.uint8))
    write_idx(tmp_path / NAMES["train"][1], np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        load_mnist(tmp_path, download=False)
    write_idx(tmp_path / NAMES["train"][0], np.zeros((4, 784), np.uint8))
    with pytest.raises(ValueError, match="3-D uint8"):
        load_mnist(tmp_path, download=False)


def test_bad_arguments(tmp_path, clean_env):
    fake_split(tmp_path, n=3)
    with pytest.raises(ValueError, match=r"split must be one of \['test', 'train'\]"):
        load_mnist(tmp_path, split="validation")
    with pytest.raises(ValueError, match="n_samples"):
        load_mnist(tmp_path, n_samples=0)
    with pytest.raises(ValueError, match="exceeds the 3 samples"):
        load_mnist(tmp_path, n_samples=4, download=False)
    with pytest.raises(ValueError, match="floating-point"):
        load_mnist(tmp_path, dtype=np.int32)


def test_not_found_message(tmp_path, clean_env):
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path / "nowhere", download=False)
    assert isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    for needle in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                   "t10k-images-idx3-ubyte", str(tmp_path / "nowhere"),
                   str(clean_env / ".cache" / "npcae" / "mnist"), "NPCAE_DATA_DIR",
                   "make_digits", "download=False"):
        assert needle in msg, needle


def test_public_api_comes_from_the_four_modules():
    """npcae.datasets is a package (idx, mnist, digits, manifolds) whose __init__ re-exports
    the public API and holds the name-based dispatchers."""
    from npcae.datasets import digits, idx, manifolds, mnist
    assert sorted(datasets.__all__) == ["DIGIT_FACTOR_NAMES", "DatasetNotFoundError",
                                        "FASHION_MNIST_CLASSES", "WARP_FACTOR_NAMES",
                                        "digit_tangents", "load_dataset", "load_fashion_mnist",
                                        "load_mnist", "load_train_test", "make_digits",
                                        "make_manifold", "read_idx", "render_digits",
                                        "sample_digit_factors"]
    assert read_idx is idx.read_idx
    assert (load_mnist, load_fashion_mnist) == (mnist.load_mnist, mnist.load_fashion_mnist)
    assert DatasetNotFoundError is mnist.DatasetNotFoundError
    assert datasets.FASHION_MNIST_CLASSES is mnist.FASHION_MNIST_CLASSES
    assert make_digits is digits.make_digits and make_manifold is manifolds.make_manifold


# --------------------------------------------------------------------------- download logic (no network)

def _serve(monkeypatch, payloads, calls=None):
    """Replace the network fetch: ``payloads`` maps file name -> bytes or exception."""
    def fake_fetch(url, dest, timeout):
        assert timeout <= 30
        if calls is not None:
            calls.append(url)
        what = payloads[url.rsplit("/", 1)[1]]
        if isinstance(what, Exception):
            dest.write(b"partial garbage")
            raise what
        dest.write(what)
    monkeypatch.setattr(mnist_files, "_fetch", fake_fetch)


def _fake_gz_split(split="train", n=6):
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    blobs = {NAMES[split][0] + ".gz": gzip.compress(idx_bytes(images)),
             NAMES[split][1] + ".gz": gzip.compress(idx_bytes(labels))}
    return images, labels, blobs


def test_download_good_checksum_renamed_into_place(tmp_path, clean_env, monkeypatch):
    images, labels, blobs = _fake_gz_split()
    for fname, blob in blobs.items():  # pretend these are the published files
        monkeypatch.setitem(mnist_files._DATASETS["mnist"]["md5"], fname,
                            hashlib.md5(blob).hexdigest())
    calls = []
    _serve(monkeypatch, blobs, calls)
    target = tmp_path / "dl"
    X, y = load_mnist(target)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(X, images.reshape(len(images), -1) / 255.0, rtol=1e-6)
    assert sorted(p.name for p in target.iterdir()) == sorted(blobs)
    for fname, blob in blobs.items():
        assert (target / fname).read_bytes() == blob
    assert len(calls) == 2  # first mirror served both files
    # second call: files are on disk, no fetch
    load_mnist(target)
    assert len(calls) == 2


def test_download_defaults_to_cache(tmp_path, clean_env, monkeypatch):
    _, labels, blobs = _fake_gz_split("test")
    for fname, blob in blobs.items():
        monkeypatch.setitem(mnist_files._DATASETS["fashion_mnist"]["md5"], fname,
                            hashlib.md5(blob).hexdigest())
    _serve(monkeypatch, blobs)
    _, y = load_fashion_mnist(split="test")
    np.testing.assert_array_equal(y, labels)
    cache = clean_env / ".cache" / "npcae" / "fashion_mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(blobs)


def test_download_bad_checksum_leaves_nothing(tmp_path, clean_env, monkeypatch):
    _, _, blobs = _fake_gz_split()  # real published md5s stay: these bytes cannot match
    calls = []
    _serve(monkeypatch, blobs, calls)
    target = tmp_path / "dl"
    target.mkdir()
    with pytest.raises(DatasetNotFoundError, match="md5 mismatch") as info:
        load_mnist(target)
    assert mnist_files._DATASETS["mnist"]["md5"]["train-images-idx3-ubyte.gz"] in str(info.value)
    assert list(target.iterdir()) == []  # no final file, no temporary .part file
    # every mirror was tried for the first file, then it gave up
    assert len(calls) == len(mnist_files._DATASETS["mnist"]["mirrors"])


def test_download_mirror_fallback_and_failure_cleanup(tmp_path, clean_env, monkeypatch):
    _, labels, blobs = _fake_gz_split()
    for fname, blob in blobs.items():
        monkeypatch.setitem(mnist_files._DATASETS["mnist"]["md5"], fname,
                            hashlib.md5(blob).hexdigest())
    mirrors = mnist_files._DATASETS["mnist"]["mirrors"]
    calls = []

    def flaky(url, dest, timeout):
        calls.append(url)
        if url.startswith(mirrors[0]):
            dest.write(b"half a fi")
            raise urllib.error.URLError("connection reset")
        dest.write(blobs[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(mnist_files, "_fetch", flaky)
    _, y = load_mnist(tmp_path / "dl")
    np.testing.assert_array_equal(y, labels)
    # the dead first mirror is not retried for the second file
    assert [u.startswith(mirrors[0]) for u in calls] == [True, False, False]
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == sorted(blobs)


def test_download_network_error_is_clear(tmp_path, clean_env, monkeypatch):
    _serve(monkeypatch, {n + ".gz": urllib.error.URLError("Name or service not known")
                         for n in NAMES["train"]})
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path / "dl")
    msg = str(info.value)
    assert "Name or service not known" in msg and "ossci-datasets" in msg
    assert "NPCAE_DATA_DIR" in msg and "make_digits" in msg
    assert not (tmp_path / "dl").exists()  # the directory made for the download is gone


def test_real_fetch_fails_fast_without_server(tmp_path, clean_env, monkeypatch):
    """The unpatched urllib fetch against a closed local port: quick, clean error."""
    monkeypatch.setitem(mnist_files._DATASETS["mnist"], "mirrors", ("http://127.0.0.1:9/",))
    monkeypatch.setattr(mnist_files, "_DOWNLOAD_TIMEOUT", 2.0)
    (tmp_path / "dl").mkdir()  # an existing directory is kept, and stays clean
    with pytest.raises(DatasetNotFoundError, match="127.0.0.1"):
        load_mnist(tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []


# --------------------------------------------------------------------------- real MNIST

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_mnist
def test_real_mnist_train(clean_env):
    X, y = load_mnist(REAL_MNIST, download=False)
    assert X.shape == (60000, 784) and X.dtype == np.float32
    assert y.dtype == np.int64
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y, minlength=10).tolist() == TRAIN_COUNTS
    assert X.min() == 0.0 and X.max() == 1.0


@needs_mnist
def test_real_mnist_test_split_and_env_var(clean_env, monkeypatch):
    monkeypatch.setenv("NPCAE_DATA_DIR", str(REAL_MNIST))
    X, y = load_mnist(split="test", download=False)
    assert X.shape == (10000, 784)
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y, minlength=10).tolist() == TEST_COUNTS
    Xu, _ = load_mnist(split="test", download=False, normalize=False, flatten=False,
                       n_samples=3)
    assert Xu.shape == (3, 28, 28) and Xu.dtype == np.uint8 and Xu.max() == 255


@needs_mnist
def test_fashion_loader_refuses_mnist_files(clean_env, monkeypatch):
    """Same file names: MNIST files must not be served as Fashion-MNIST."""
    monkeypatch.setenv("NPCAE_DATA_DIR", str(REAL_MNIST))
    with pytest.raises(DatasetNotFoundError, match="holds MNIST files"):
        load_fashion_mnist(split="test", download=False)


# --------------------------------------------------------------------------- content identification

FORMS = ("gz", "repacked-gz", "raw")
OTHER = {"mnist": "fashion_mnist", "fashion_mnist": "mnist"}
TITLE = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
LOADER = {"mnist": load_mnist, "fashion_mnist": load_fashion_mnist}


def write_form(directory, stem, data, form):
    """Write the IDX bytes ``data`` as ``stem`` in one of FORMS; return the path.

    "gz" stands for a first compression (default level, mtime 0), "repacked-gz" for the
    same content recompressed differently (level 9, another mtime): different bytes on
    disk, same decompressed content.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if form == "raw":
        path = directory / stem
        path.write_bytes(data)
    else:
        path = directory / (stem + ".gz")
        if form == "gz":
            path.write_bytes(gzip.compress(data, mtime=0))
        else:
            path.write_bytes(gzip.compress(data, compresslevel=9, mtime=1234567890))
    return path


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def tiny_split(n=9, random_state=0):
    """IDX bytes of a small synthetic (images, labels) pair, plus the arrays."""
    rng = np.random.default_rng(random_state)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return idx_bytes(images), idx_bytes(labels), images, labels


def pretend_official(monkeypatch, dataset, stem, data):
    """Make ``data`` the official content of ``stem`` of ``dataset``, through the module's
    own hash table, so the real lookup path is exercised."""
    monkeypatch.setitem(mnist_files._CONTENT_SHA256[dataset], stem, sha256(data))


def test_content_hashes_are_the_published_ones():
    """The eight embedded hashes are those listed in ../shared/data/CONTENT_SHA256."""
    table = mnist_files._CONTENT_SHA256
    assert sorted(table) == ["fashion_mnist", "mnist"]
    for name in table:
        assert sorted(table[name]) == sorted(n for pair in NAMES.values() for n in pair)
    hashes = [h for t in table.values() for h in t.values()]
    assert len(set(hashes)) == 8 and all(len(h) == 64 for h in hashes)
    listing = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "CONTENT_SHA256"
    if not listing.is_file():
        pytest.skip(f"{listing} not found; the embedded hashes cannot be cross-checked")
    listed = {}
    for line in listing.read_text().splitlines():
        if line.strip():
            digest, rel = line.split()
            name, stem = rel.split("/")
            listed.setdefault(name, {})[stem] = digest
    assert listed == table


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("which", ["labels", "images"])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_other_datasets_files_are_refused_in_every_form(tmp_path, clean_env, monkeypatch,
                                                        name, which, form):
    """Files whose content is the other dataset's are refused, whatever the compression;
    the error says which dataset they belong to."""
    img, lab, _, _ = tiny_split()
    stem_img, stem_lab = NAMES["train"]
    pretend_official(monkeypatch, OTHER[name], stem_lab if which == "labels" else stem_img,
                     lab if which == "labels" else img)
    folder = tmp_path / "data"
    write_form(folder, stem_img, img, form)
    bad = write_form(folder, stem_lab, lab, form)
    if which == "images":
        bad = folder / (stem_img + ("" if form == "raw" else ".gz"))
    with pytest.raises(DatasetNotFoundError) as info:
        LOADER[name](folder, download=False)
    msg = str(info.value)
    other = TITLE[OTHER[name]]
    assert f"holds {other} files, not {TITLE[name]}" in msg
    assert f"{bad.name} is {other}'s" in msg
    assert f"load_{OTHER[name]}()" in msg
    assert msg.splitlines()[1].startswith(f"Refused {other} files")


@pytest.mark.parametrize("form", FORMS)
def test_other_datasets_content_loads_with_its_own_loader(tmp_path, clean_env, monkeypatch,
                                                          form):
    """The same files are accepted by the loader of the dataset they belong to."""
    img, lab, images, labels = tiny_split()
    pretend_official(monkeypatch, "fashion_mnist", NAMES["train"][0], img)
    pretend_official(monkeypatch, "fashion_mnist", NAMES["train"][1], lab)
    write_form(tmp_path, NAMES["train"][0], img, form)
    write_form(tmp_path, NAMES["train"][1], lab, form)
    X, y = load_fashion_mnist(tmp_path, download=False, normalize=False, flatten=False)
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(DatasetNotFoundError, match="holds Fashion-MNIST files, not MNIST"):
        load_mnist(tmp_path, download=False)


def test_refused_directory_is_skipped_for_the_next_one(tmp_path, clean_env, monkeypatch):
    """A directory holding the other dataset's files does not stop the search."""
    img, lab, _, _ = tiny_split()
    pretend_official(monkeypatch, "fashion_mnist", NAMES["train"][1], lab)
    write_form(tmp_path / "fashion", NAMES["train"][0], img, "repacked-gz")
    write_form(tmp_path / "fashion", NAMES["train"][1], lab, "repacked-gz")
    _, y_env = fake_split(tmp_path / "env", n=4, seed=4)
    monkeypatch.setenv("NPCAE_DATA_DIR", str(tmp_path / "env"))
    _, y = load_mnist(tmp_path / "fashion", download=False)
    np.testing.assert_array_equal(y, y_env)


def test_refused_directory_is_not_downloaded_into(tmp_path, clean_env, monkeypatch):
    """download=True with the other dataset's files in data_dir: no fetch, no overwrite,
    and the message says why nothing was fetched."""
    img, lab, _, _ = tiny_split()
    pretend_official(monkeypatch, "mnist", NAMES["train"][0], img)
    folder = tmp_path / "data"
    paths = [write_form(folder, NAMES["train"][0], img, "raw"),
             write_form(folder, NAMES["train"][1], lab, "gz")]
    before = [p.read_bytes() for p in paths]

    def no_network(url, dest, timeout):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(mnist_files, "_fetch", no_network)
    with pytest.raises(DatasetNotFoundError) as info:
        load_fashion_mnist(folder)
    msg = str(info.value)
    assert "train-images-idx3-ubyte is MNIST's train-images-idx3-ubyte" in msg
    assert "nothing fetched" in msg and "load_mnist()" in msg
    assert [p.read_bytes() for p in paths] == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)


def test_misnamed_official_file_is_an_error(tmp_path, clean_env, monkeypatch):
    """The test labels saved under the train-labels name: refused, the message names the
    file's true identity."""
    img, lab, _, _ = tiny_split()
    pretend_official(monkeypatch, "mnist", NAMES["test"][1], lab)
    write_form(tmp_path, NAMES["train"][0], img, "gz")
    p = write_form(tmp_path, NAMES["train"][1], lab, "raw")
    with pytest.raises(ValueError, match="misnamed") as info:
        load_mnist(tmp_path, download=False)
    assert str(p) in str(info.value)
    assert "MNIST's t10k-labels-idx1-ubyte, not train-labels-idx1-ubyte" in str(info.value)


@pytest.mark.parametrize("form", FORMS)
def test_unknown_content_loads(tmp_path, clean_env, form):
    """Files of neither release (custom data in IDX form) load when they parse."""
    img, lab, images, labels = tiny_split(n=5)
    assert mnist_files._identify(img) is None and mnist_files._identify(lab) is None
    write_form(tmp_path, NAMES["test"][0], img, form)
    write_form(tmp_path, NAMES["test"][1], lab, form)
    for loader in (load_mnist, load_fashion_mnist):
        X, y = loader(tmp_path, split="test", download=False, normalize=False)
        np.testing.assert_array_equal(X, images.reshape(5, -1))
        np.testing.assert_array_equal(y, labels)


def test_each_file_is_read_once(tmp_path, clean_env, monkeypatch):
    """The bytes hashed for identification are the bytes parsed: one read per file."""
    fake_split(tmp_path, n=6)
    reads = []
    real = mnist_files._read_bytes

    def counting(path):
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(mnist_files, "_read_bytes", counting)
    load_mnist(tmp_path, download=False)
    assert sorted(reads) == sorted(n + ".gz" for n in NAMES["train"])


@needs_mnist
@pytest.mark.parametrize("form", ["repacked-gz", "raw"])
def test_real_mnist_recompressed_or_raw_is_recognised(tmp_path, clean_env, form):
    """The official MNIST test split, recompressed (level 9, another mtime) or raw: it
    loads as MNIST, equal to the original, and Fashion-MNIST refuses it."""
    X0, y0 = load_mnist(REAL_MNIST, split="test", download=False, normalize=False)
    contents = {}
    for stem in NAMES["test"]:
        original = REAL_MNIST / (stem + ".gz")
        data = gzip.decompress(original.read_bytes()) if original.is_file() else \
            (REAL_MNIST / stem).read_bytes()
        contents[stem] = data
        p = write_form(tmp_path, stem, data, form)
        if original.is_file():
            assert p.read_bytes() != original.read_bytes()  # really a different file
    X, y = load_mnist(tmp_path, split="test", download=False, normalize=False)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte.* is MNIST's"):
        load_fashion_mnist(tmp_path, split="test", download=False)
    for stem, data in contents.items():  # the real content matches the embedded hashes
        assert mnist_files._identify(data) == ("mnist", stem)


# --------------------------------------------------------------------------- make_digits

def test_make_digits_basic():
    X, y = make_digits(200, random_state=0)
    assert X.shape == (200, 784) and X.dtype == np.float32 and X.flags.c_contiguous
    assert y.shape == (200,) and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert np.bincount(y, minlength=10).tolist() == [20] * 10
    # MNIST-like: mostly exact-zero background, solid strokes, digit in the middle
    assert 0.6 < (X == 0).mean() < 0.95
    assert (X.max(axis=1) > 0.99).all()
    img = X.reshape(-1, 28, 28)
    assert img[:, :2, :].max() == 0.0 and img[:, -2:, :].max() == 0.0
    rows = np.arange(28)
    com_r = (img.sum(2) * rows).sum(1) / img.sum((1, 2))
    com_c = (img.sum(1) * rows).sum(1) / img.sum((1, 2))
    assert np.abs(com_r - 13.5).max() < 5 and np.abs(com_c - 13.5).max() < 5
    # ~20 px tall: rows containing ink
    height = (img.max(2) > 0.5).sum(1)
    assert 14 <= np.median(height) <= 24


def test_make_digits_reproducible_and_seeded():
    state = np.random.get_state()[1].copy()
    X1, y1, f1 = make_digits(50, random_state=123, return_factors=True)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched
    X2, y2, f2 = make_digits(50, random_state=123, return_factors=True)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    for k in f1:
        np.testing.assert_array_equal(f1[k], f2[k])
    X3, _ = make_digits(50, random_state=124)
    assert not np.array_equal(X1, X3)
    X4, y4 = make_digits(50, random_state=np.random.default_rng(123))
    np.testing.assert_array_equal(X1, X4)


def test_make_digits_random_state_forms():
    """None, int, Generator and RandomState are all accepted (scikit-learn convention)."""
    X1, y1 = make_digits(20, random_state=7)
    X2, y2 = make_digits(20, random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, _ = make_digits(20, random_state=np.int64(7))
    np.testing.assert_array_equal(X1, X3)
    Xa, _ = make_digits(20, random_state=np.random.RandomState(3))
    Xb, _ = make_digits(20, random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(Xa, Xb)
    rs = np.random.RandomState(3)
    make_digits(20, random_state=rs)
    assert not np.array_equal(make_digits(20, random_state=rs)[0], Xa)  # it advanced
    Xn, yn = make_digits(20, random_state=None)
    assert Xn.shape == (20, 784) and yn.shape == (20,)


def test_make_digits_factors_and_options():
    X, y, f = make_digits(100, random_state=1, return_factors=True, image_size=16,
                          dtype=np.float64, balanced=False)
    assert X.shape == (100, 256) and X.dtype == np.float64
    assert set(f) >= {"rotation", "scale_x", "scale_y", "shear", "shift_x", "shift_y",
                      "thickness"}
    for k, v in f.items():
        assert v.shape == (100,), k
    assert np.abs(f["rotation"]).max() <= 15.0
    assert (f["thickness"] > 0).all()
    # fixed geometry: zero rotation/shear/shift gives identical images per class & variant
    Xa, ya, fa = make_digits(40, random_state=2, return_factors=True, rotation=0, shear=0, shift=0,
                             scale=1, aspect=(1, 1), thickness=2, deform=0)
    assert (fa["scale_y"] == 1).all() and (fa["thickness"] == 2).all()
    assert (fa["rotation"] == 0).all() and (fa["shift_x"] == 0).all()
    for d in range(10):
        sel = (ya == d) & (fa["variant"] == 0)
        assert sel.sum() >= 1
        np.testing.assert_array_equal(Xa[sel], np.broadcast_to(Xa[sel][0], Xa[sel].shape))
    Xn, _ = make_digits(20, random_state=3, noise=0.2)
    assert 0.0 <= Xn.min() and Xn.max() <= 1.0


def test_make_digits_speed():
    """Vectorised rendering: 10,000 digits take ~1 s; fail only if grossly slower."""
    t0 = time.perf_counter()
    X, _ = make_digits(10000, random_state=0)
    assert X.shape == (10000, 784)
    assert time.perf_counter() - t0 < 15.0


def test_make_digits_distinguishable():
    """A nearest-class-mean classifier on held-out digits is far above chance (10%)."""
    Xtr, ytr = make_digits(2000, random_state=0)
    Xte, yte = make_digits(1000, random_state=1)
    means = np.stack([Xtr[ytr == d].mean(0) for d in range(10)])
    d2 = ((Xte[:, None, :] - means[None]) ** 2).sum(-1)
    acc = (d2.argmin(1) == yte).mean()
    assert acc > 0.7, acc


def test_make_digits_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        make_digits(0)
    with pytest.raises(ValueError, match="image_size"):
        make_digits(5, image_size=4)
    with pytest.raises(ValueError, match="floating-point"):
        make_digits(5, dtype=np.uint8)
    with pytest.raises(ValueError, match="thickness"):
        make_digits(5, thickness=(3, 1))
    with pytest.raises(ValueError, match="scale"):
        make_digits(5, scale=-1.0)
    with pytest.raises(ValueError, match="rotation"):
        make_digits(5, rotation=-10)
    with pytest.raises(ValueError, match="shear"):
        make_digits(5, shear="big")
    with pytest.raises(ValueError, match="noise"):
        make_digits(5, noise=-1)
    with pytest.raises(TypeError, match="random_state"):
        make_digits(5, random_state="abc")
    with pytest.raises(ValueError, match="random_state"):
        make_digits(5, random_state=-1)
    with pytest.raises(TypeError, match="random_state"):
        make_digits(5, random_state=True)
    with pytest.raises(TypeError, match="seed"):  # the old name is gone, no alias
        make_digits(5, seed=0)


# --------------------------------------------------------------------------- make_manifold

@pytest.mark.parametrize("kind", ["circle", "spiral", "sine"])
@pytest.mark.parametrize("ambient_dim", [2, 5])
def test_manifold_tangents_match_finite_differences(kind, ambient_dim):
    X, t, T = make_manifold(kind, 4000, ambient_dim=ambient_dim, random_state=0)
    assert X.shape == T.shape == (4000, ambient_dim) and t.shape == (4000,)
    np.testing.assert_allclose(np.linalg.norm(T, axis=1), 1.0, atol=1e-12)
    order = np.argsort(t)
    Xs, ts, Ts = X[order], t[order], T[order]
    fd = (Xs[2:] - Xs[:-2]) / (ts[2:] - ts[:-2])[:, None]
    fd /= np.linalg.norm(fd, axis=1, keepdims=True)
    cos = (fd * Ts[1:-1]).sum(1)  # same direction (increasing t), not just parallel
    assert cos.min() > 0.999, cos.min()


def test_manifold_geometry_and_noise():
    X, t, _ = make_manifold("circle", 300, random_state=1)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(X, np.column_stack([np.cos(t), np.sin(t)]), atol=1e-12)
    Xh, _, Th = make_manifold("spiral", 300, ambient_dim=10, random_state=1)
    # the embedded curve lies in a 2-D subspace
    s = np.linalg.svd(Xh, compute_uv=False)
    assert s[2] < 1e-10 * s[0]
    Xn, tn, Tn = make_manifold("spiral", 300, ambient_dim=10, random_state=1, noise=0.05)
    assert Xn.shape == (300, 10)
    assert 0.02 < np.std(Xn - Xh) < 0.08
    np.testing.assert_array_equal(Tn, Th)  # tangents of the clean curve
    Xf, tf, Tf = make_manifold("sine", 10, random_state=1, dtype=np.float32)
    assert Xf.dtype == tf.dtype == Tf.dtype == np.float32


def test_manifold_random_state():
    X1, t1, T1 = make_manifold("spiral", 50, ambient_dim=4, noise=0.1, random_state=3)
    X2, t2, T2 = make_manifold("spiral", 50, ambient_dim=4, noise=0.1,
                               random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(T1, T2)
    Xa = make_manifold("circle", 30, random_state=np.random.RandomState(1))[0]
    Xb = make_manifold("circle", 30, random_state=np.random.RandomState(1))[0]
    np.testing.assert_array_equal(Xa, Xb)
    assert make_manifold("circle", 30, random_state=None)[0].shape == (30, 2)
    with pytest.raises(ValueError, match="random_state"):
        make_manifold("circle", random_state=-3)
    with pytest.raises(TypeError, match="random_state"):
        make_manifold("circle", random_state=1.5)
    with pytest.raises(TypeError, match="seed"):  # no alias for the old name
        make_manifold("circle", seed=0)


def test_manifold_bad_arguments():
    with pytest.raises(ValueError, match=r"'circle', 'spiral', 'sine'"):
        make_manifold("torus")
    with pytest.raises(ValueError, match="ambient_dim"):
        make_manifold("circle", ambient_dim=1)
    with pytest.raises(ValueError, match="noise"):
        make_manifold("circle", noise=-0.1)


# --------------------------------------------------------------------------- load_dataset

def test_load_dataset_digits():
    Xtr, ytr = load_dataset("digits", "train", n_samples=30, random_state=5)
    Xte, yte = load_dataset("digits", "test", n_samples=30, random_state=5)
    assert Xtr.shape == Xte.shape == (30, 784)
    assert not np.array_equal(Xtr, Xte)
    Xtr2, ytr2 = load_dataset("Digits", "train", n_samples=30, random_state=5)
    np.testing.assert_array_equal(Xtr, Xtr2)
    np.testing.assert_array_equal(ytr, ytr2)
    assert not np.array_equal(Xtr, load_dataset("digits", n_samples=30, random_state=6)[0])


def test_load_dataset_idx_and_errors(tmp_path, clean_env):
    _, labels = fake_split(tmp_path / "fashion_mnist", "train", n=8)
    X, y = load_dataset("fashion-mnist", data_dir=tmp_path, n_samples=4)
    assert X.shape == (4, 784)
    np.testing.assert_array_equal(y, labels[:4])
    with pytest.raises(ValueError, match=r"\['mnist', 'fashion_mnist', 'digits'\]"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="split"):
        load_dataset("digits", split="val")


def test_load_dataset_random_state():
    # an int keeps the documented derivation: SeedSequence(int).spawn(2), train first
    streams = np.random.SeedSequence(5).spawn(2)
    for split, stream in zip(("train", "test"), streams):
        X, y = load_dataset("digits", split, n_samples=12, random_state=5)
        Xr, yr = make_digits(12, random_state=np.random.default_rng(stream))
        np.testing.assert_array_equal(X, Xr)
        np.testing.assert_array_equal(y, yr)
    X0 = load_dataset("digits", n_samples=12)[0]  # default random_state=0: reproducible
    np.testing.assert_array_equal(X0, load_dataset("digits", n_samples=12, random_state=0)[0])
    # Generator / RandomState: reproducible from their state, train != test
    for make in (np.random.default_rng, np.random.RandomState):
        Xtr = load_dataset("digits", "train", n_samples=12, random_state=make(9))[0]
        Xtr2 = load_dataset("digits", "train", n_samples=12, random_state=make(9))[0]
        Xte = load_dataset("digits", "test", n_samples=12, random_state=make(9))[0]
        np.testing.assert_array_equal(Xtr, Xtr2)
        assert not np.array_equal(Xtr, Xte)
    assert load_dataset("digits", n_samples=3, random_state=None)[0].shape == (3, 784)
    # validated for every dataset name, the error names the parameter
    for name in ("digits", "mnist"):
        with pytest.raises(ValueError, match="random_state"):
            load_dataset(name, random_state=-1)
        with pytest.raises(TypeError, match="random_state"):
            load_dataset(name, random_state="0")
    with pytest.raises(TypeError, match="random_state"):
        load_dataset("digits", random_state=False)
    with pytest.raises(TypeError, match="seed"):  # no alias for the old name
        load_dataset("digits", n_samples=3, seed=0)


def test_load_train_test_falls_back_to_the_built_in_digits(tmp_path, monkeypatch):
    """The one MNIST-else-digits fallback (npcae demo, npcae train --data auto, the demos)."""
    monkeypatch.setenv("NPCAE_DATA_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    X, y, X_test, y_test, what = datasets.load_train_test("auto", 50, 20, random_state=3)
    assert X.shape == (50, 784) and X_test.shape == (20, 784) and "MNIST files not found" in what
    again = datasets.load_train_test("digits", 50, 20, random_state=3)
    np.testing.assert_array_equal(again[0], X)
    np.testing.assert_array_equal(again[3], y_test)
