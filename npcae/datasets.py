"""Datasets: real MNIST / Fashion-MNIST from IDX files, procedural digits, toy manifolds.

Everything returns ``(n_samples, n_features)`` C-contiguous arrays (images flattened
row-major, 28x28 -> 784) unless asked otherwise, and all randomness goes through
``np.random.Generator`` objects built from the user's ``random_state`` (None, a
non-negative int, a ``np.random.Generator`` or a ``np.random.RandomState``, as in
scikit-learn); the global NumPy RNG is never touched.

Public functions
----------------
load_mnist, load_fashion_mnist
    The real datasets, read from the standard IDX files (gzipped or not). Files are
    looked for in ``data_dir``, then ``$NPCAE_DATA_DIR``, then
    ``~/.cache/npcae/<mnist|fashion_mnist>``, and downloaded (md5-verified) into the
    cache when missing and ``download=True``.
read_idx
    Parse any IDX file (the format MNIST is distributed in).
make_digits
    Procedural, MNIST-like 28x28 digits rendered in pure NumPy. Works offline.
make_manifold
    Points on a 1-D curve (circle, spiral, sine) embedded in ``ambient_dim``
    dimensions, with the curve parameter and the true unit tangents.
load_dataset
    Name-based dispatcher used by the command line.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ._validation import check_positive_int, check_random_state

__all__ = [
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "make_digits",
    "make_manifold",
    "read_idx",
]


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not on disk and could not be downloaded.

    The message lists the directories searched, the exact file names expected and
    how to make them available (``data_dir=``, ``$NPCAE_DATA_DIR`` or the cache).
    """


# ---------------------------------------------------------------------------
# IDX parsing
# ---------------------------------------------------------------------------

# type code (third magic byte) -> big-endian dtype of the stored values
_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32",
                   0x0D: "float32", 0x0E: "float64"}


def _read_bytes(path):
    """Whole file contents, transparently gunzipped when it starts with the gzip magic."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except EOFError as exc:
            raise ValueError(f"{path}: the gzip stream is truncated ({exc}); the file is "
                             f"incomplete, delete it and fetch it again.") from None
        except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{path}: corrupt gzip data ({exc}); delete the file and fetch "
                             f"it again.") from None
    return data


def _parse_idx(data, path, copy=True):
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} byte(s) is too short to be an IDX file "
                         f"(the header alone is at least 8 bytes).")
    b0, b1, code, ndim = data[0], data[1], data[2], data[3]
    if b0 != 0 or b1 != 0:
        hint = ""
        if data[:1] in (b"<", b"{") or data[:5].lower() in (b"<!doc", b"<html"):
            hint = (" It looks like text/HTML, e.g. an error page saved by a failed "
                    "download.")
        raise ValueError(f"{path} is not an IDX file: its magic number starts with bytes "
                         f"{data[:4].hex(' ')}, but an IDX file starts with 00 00 "
                         f"<type code> <number of dimensions>.{hint}")
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02X} ({n})" for c, n in _IDX_TYPE_NAMES.items())
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} in the magic number "
                         f"(valid codes: {known}).")
    if ndim == 0:
        raise ValueError(f"{path}: the IDX header declares 0 dimensions; at least 1 is "
                         f"required.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimension(s) need "
                         f"{header} header bytes but the file holds only {len(data)}.")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    count = 1
    for d in dims:
        count *= d
    expected = count * dtype.itemsize
    have = len(data) - header
    if have != expected:
        what = "truncated" if have < expected else "has trailing data"
        raise ValueError(f"{path}: size mismatch, the file is {what}: the header declares "
                         f"shape {dims} of {_IDX_TYPE_NAMES[code]} = {expected} data bytes, "
                         f"but {have} follow the {header}-byte header.")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    if dtype.byteorder == ">":
        arr = arr.astype(dtype.newbyteorder("="))  # also copies
    elif copy:
        arr = arr.copy()
    return arr


def read_idx(path):
    """Read an IDX file (the MNIST distribution format) into an array.

    The header is ``00 00 <type code> <ndim>`` followed by ``ndim`` big-endian
    uint32 dimensions, then the values in row-major (C) order. Type codes:
    0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    (multi-byte values are big-endian on disk). Gzipped files are detected by their
    content, whatever their name.

    Parameters
    ----------
    path : str or path-like
        The file, raw or gzip-compressed.

    Returns
    -------
    ndarray
        Writable array of shape ``dims`` with the native-byte-order dtype of the type
        code, e.g. ``(60000, 28, 28)`` uint8 for MNIST training images and ``(60000,)``
        uint8 for its labels.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not an IDX file (wrong magic number or type code), a truncated header, or a data
        size that does not match the header's shape (truncated file or trailing data);
        also a truncated or corrupt gzip stream. The message names the file and the
        numbers involved.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


# ---------------------------------------------------------------------------
# MNIST / Fashion-MNIST
# ---------------------------------------------------------------------------

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_DATASETS = {
    "mnist": {
        "title": "MNIST",
        "n": {"train": 60000, "test": 10000},
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        # published md5 of each distributed .gz file
        "md5": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        "subdirs": ("mnist", "MNIST/raw"),
    },
    "fashion_mnist": {
        "title": "Fashion-MNIST",
        "n": {"train": 60000, "test": 10000},
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "md5": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83fd310"},
        "subdirs": ("fashion_mnist", "FashionMNIST/raw"),
    },
}

# sha256 of the DECOMPRESSED content of each official IDX file, i.e. of the raw IDX bytes
# inside each published .gz (facts about the published data). Files found on disk are
# identified by these, so a re-compressed .gz (another gzip level, header or mtime) or a
# raw IDX file is recognised, and the other dataset's files (same file names) are refused.
_CONTENT_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte":
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte":
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte":
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte":
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte":
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte":
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte":
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte":
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

_DOWNLOAD_TIMEOUT = 10.0  # seconds per mirror and file


def _cache_dir(name):
    return Path(os.path.expanduser("~")) / ".cache" / "npcae" / name


def _candidate_dirs(name, data_dir):
    """``[(directory, where it came from)]`` in search order, without duplicates."""
    subdirs = _DATASETS[name]["subdirs"]
    out = []
    for base, origin in ((data_dir, "data_dir argument"),
                         (os.environ.get("NPCAE_DATA_DIR") or None, "$NPCAE_DATA_DIR")):
        if base is None:
            continue
        base = Path(base).expanduser()
        out.append((base, origin))
        out.extend((base / s, f"{origin}, subfolder") for s in subdirs)
    out.append((_cache_dir(name), "default cache"))
    seen, uniq = set(), []
    for d, origin in out:
        key = os.path.abspath(d)
        if key not in seen:
            seen.add(key)
            uniq.append((d, origin))
    return uniq


def _find_file(directory, stem):
    for fname in (stem, stem + ".gz"):
        p = directory / fname
        if p.is_file():
            return p
    return None


def _file_md5(path):
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _identify(data):
    """``(dataset name, file stem)`` of the official IDX file whose decompressed content
    is ``data`` (looked up by sha256 in ``_CONTENT_SHA256``), or None if it is none of
    them."""
    digest = hashlib.sha256(data).hexdigest()
    for name, table in _CONTENT_SHA256.items():
        for stem, known in table.items():
            if known == digest:
                return name, stem
    return None


def _read_checked(name, path, stem):
    """Read (and gunzip) ``path``, which stands for ``stem`` of dataset ``name``.

    Returns ``(data, None)`` when the content may be used: it is the official ``stem``
    of ``name``, or content of no known release (custom IDX data, parsed later). Returns
    ``(None, (other dataset, why))`` when the content is one of the *other* dataset's
    official files.
    Raises ValueError when it is another official file of ``name`` itself (e.g. the test
    labels under the train-labels name): the files are misnamed.
    """
    data = _read_bytes(path)
    ident = _identify(data)
    if ident is None:
        return data, None
    owner, true_stem = ident
    if owner != name:
        return None, (owner, f"{path.name} is {_DATASETS[owner]['title']}'s {true_stem}")
    if true_stem != stem:
        title = _DATASETS[name]["title"]
        raise ValueError(
            f"{path}: its content is {title}'s {true_stem}, not {stem} (identified by the "
            f"sha256 of its decompressed content), so the file is misnamed. Give it its "
            f"true name, {true_stem}[.gz], and put the {stem} file in its place.")
    return data, None


def _locate(name, split, data_dir):
    """Find and read the split's files.

    Returns ``(found, notes, refused)``: ``found`` is ``((images path, images bytes),
    (labels path, labels bytes))`` with the decompressed contents, or None; ``notes``
    lists ``(directory, origin, what happened)`` per directory searched; ``refused``
    describes each directory skipped because it holds the other dataset's files. Each
    file is read once: the bytes hashed for identification are the bytes parsed.
    """
    stems = _SPLITS[split]
    title = _DATASETS[name]["title"]
    notes, refused = [], []
    for directory, origin in _candidate_dirs(name, data_dir):
        if not directory.is_dir():
            notes.append((directory, origin, "does not exist"))
            continue
        found = [_find_file(directory, s) for s in stems]
        missing = [s for s, f in zip(stems, found) if f is None]
        if missing:
            notes.append((directory, origin, "missing " + ", ".join(missing)))
            continue
        img_path, lab_path = found
        # labels first: they are small, and a directory of the other dataset is then
        # skipped without decompressing its images
        lab, wrong = _read_checked(name, lab_path, stems[1])
        img = None
        if wrong is None:
            img, wrong = _read_checked(name, img_path, stems[0])
        if wrong is not None:
            owner, why = wrong
            notes.append((directory, origin, f"holds {_DATASETS[owner]['title']} files, "
                                             f"not {title} (refused, see above)"))
            refused.append(f"{directory} [{origin}]: {why}")
            continue
        return ((img_path, img), (lab_path, lab)), notes, refused
    return None, notes, refused


def _fetch(url, dest_fileobj, timeout):
    """Copy the body at ``url`` into the binary file object ``dest_fileobj``.

    Module-level so tests can replace it (there is no network in CI). Raises
    ``urllib.error.URLError`` / ``OSError`` on failure.
    """
    req = urllib.request.Request(url, headers={"User-Agent": "npcae"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        shutil.copyfileobj(resp, dest_fileobj, 1 << 20)


def _download_one(fname, target_dir, mirrors, md5, timeout, dead):
    """Fetch ``fname`` from the first working mirror into ``target_dir``.

    Each attempt writes to a fresh temporary file in ``target_dir``; the file is
    ``os.replace``-d to its final name only after its md5 matched, and removed in every
    other case. Mirrors that fail at the network level are added to ``dead`` and not
    tried again for the next file. Returns a list of failure descriptions (empty on
    success).
    """
    failures = []
    for mirror in mirrors:
        if mirror in dead:
            failures.append(f"{mirror}{fname}: skipped (mirror unreachable earlier)")
            continue
        url = mirror + fname
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=target_dir)
        try:
            try:
                with os.fdopen(fd, "wb") as fh:
                    _fetch(url, fh, timeout)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                dead.add(mirror)
                failures.append(f"{url}: {type(exc).__name__}: {exc}")
                continue
            got = _file_md5(tmp)
            if got != md5:
                failures.append(f"{url}: md5 mismatch (got {got}, expected {md5}); "
                                f"the download was discarded")
                continue
            os.replace(tmp, target_dir / fname)
            return []
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return failures


def _download(name, split, target_dir):
    spec = _DATASETS[name]
    target_dir = Path(target_dir)
    created = []  # directories made here, removed again if they stay empty
    d = target_dir
    while not d.exists() and d != d.parent:
        created.append(d)
        d = d.parent
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [f"cannot create {target_dir}: {exc}"]
    failures, dead = [], set()
    for stem in _SPLITS[split]:
        if _find_file(target_dir, stem) is not None:
            continue
        fname = stem + ".gz"
        fails = _download_one(fname, target_dir, spec["mirrors"], spec["md5"][fname],
                              _DOWNLOAD_TIMEOUT, dead)
        failures.extend(fails)
        if fails:
            break
    if failures:
        for d in created:
            try:
                d.rmdir()  # only succeeds while empty
            except OSError:
                break
    return failures


def _not_found_message(name, split, notes, download_note, refused=()):
    spec = _DATASETS[name]
    stems = _SPLITS[split]
    all_names = [s for pair in _SPLITS.values() for s in pair]
    lines = [f"{spec['title']} ({split} split) was not found."]
    if refused:
        other = next(o for o in _DATASETS if o != name)
        lines.append(f"Refused {_DATASETS[other]['title']} files (same names as "
                     f"{spec['title']}'s; identified by the sha256 of their decompressed "
                     f"content, whatever the compression):")
        lines += [f"    {r}" for r in refused]
        lines.append(f"Load those with load_{other}() instead, or replace them with the "
                     f"{spec['title']} files.")
    lines.append("Expected these files (raw, or gzipped with a .gz suffix), in one "
                 "directory:")
    lines += [f"    {s}[.gz]" for s in stems]
    lines.append("Searched, in order:")
    lines += [f"    {d}  [{origin}]: {what}" for d, origin, what in notes]
    lines.append(download_note)
    lines += [
        "To fix: put the files (all four, for both splits: " + ", ".join(all_names) +
        f"; .gz or not) in {_cache_dir(name)}, or in any directory and pass "
        "data_dir=that_directory, or point the environment variable NPCAE_DATA_DIR at "
        f"it (e.g. export NPCAE_DATA_DIR=/data/{name}).",
        "For data that needs no files or network at all, use "
        "npcae.datasets.make_digits() (procedural MNIST-like digits, works offline).",
    ]
    return "\n".join(lines)


def _check_split(split):
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)!r}; got {split!r}.")


def _check_n_samples(n_samples, available=None):
    if n_samples is None:
        return None
    n = check_positive_int(n_samples, "n_samples")
    if available is not None and n > available:
        raise ValueError(f"n_samples={n} exceeds the {available} samples available.")
    return n


def _load_idx_dataset(name, data_dir, split, download, dtype, flatten, normalize,
                      n_samples):
    _check_split(split)
    _check_n_samples(n_samples)
    if normalize:
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise ValueError(f"dtype must be a floating-point dtype when normalize=True; "
                             f"got {dtype}. Use normalize=False for the raw uint8 pixels.")
    found, notes, refused = _locate(name, split, data_dir)
    if found is None:
        target = Path(data_dir).expanduser() if data_dir is not None else _cache_dir(name)
        if not download:
            note = "Download: not attempted (download=False)."
        else:
            failures = _download(name, split, target)
            found, notes, refused = _locate(name, split, data_dir)
            if failures:
                note = ("Download into " + str(target) + " failed:\n" +
                        "\n".join("    " + f for f in failures))
            else:
                note = (f"Download: nothing fetched, {target} already holds files with "
                        f"these names (they are never overwritten).")
        if found is None:
            raise DatasetNotFoundError(_not_found_message(name, split, notes, note,
                                                          refused))
    (img_path, img_bytes), (lab_path, lab_bytes) = found
    images = _parse_idx(img_bytes, img_path, copy=False)
    labels = _parse_idx(lab_bytes, lab_path, copy=False)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{img_path}: expected a 3-D uint8 image array (n, rows, cols); "
                         f"got {images.ndim}-D {images.dtype} with shape {images.shape}.")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{lab_path}: expected a 1-D uint8 label array; got "
                         f"{labels.ndim}-D {labels.dtype} with shape {labels.shape}.")
    if len(images) != len(labels):
        raise ValueError(f"{img_path} holds {len(images)} images but {lab_path} holds "
                         f"{len(labels)} labels; the files do not belong together.")
    n = _check_n_samples(n_samples, len(images))
    if n is not None:
        images, labels = images[:n], labels[:n]
    if flatten:
        images = images.reshape(len(images), -1)
    if normalize:
        X = images.astype(dtype)
        X *= dtype.type(1.0 / 255.0)
    else:
        X = np.array(images, dtype=np.uint8, copy=True)
    return np.ascontiguousarray(X), labels.astype(np.int64)


_LOAD_DOC = """Load {title} from its standard IDX files.

    Parameters
    ----------
    data_dir : str, path-like or None
        Directory holding the files. Searched first (also its subfolders
        ``{sub0}/`` and ``{sub1}/``), then ``$NPCAE_DATA_DIR`` (and the same
        subfolders), then ``~/.cache/npcae/{name}``. The first directory holding both
        files of the split is used, unless its files are {other}'s (see Notes).
    split : {{"train", "test"}}
        ``"train"``: 60,000 samples; ``"test"``: 10,000 samples.
    download : bool
        When the files are missing, fetch the split's two ``.gz`` files into
        ``data_dir`` (if given) or ``~/.cache/npcae/{name}``, verifying each against its
        published md5 (a temporary file is renamed into place only after verification).
        Each mirror gets a 10 s timeout; without a network this fails quickly.
    dtype : float dtype
        Dtype of ``X`` when ``normalize=True``.
    flatten : bool
        ``X`` of shape ``(n, 784)`` (row-major) if True, else ``(n, 28, 28)``.
    normalize : bool
        If True, pixels are scaled to [0, 1] in ``dtype``; if False, ``X`` holds the raw
        uint8 values 0-255 (``dtype`` is then ignored).
    n_samples : int or None
        Return only the first ``n_samples`` samples of the split (file order).

    Returns
    -------
    X : ndarray, shape (n, 784) or (n, 28, 28)
        Images, 0 = background; C-contiguous.
    y : ndarray of int64, shape (n,)
        Labels 0-9.{classes}

    Raises
    ------
    DatasetNotFoundError
        The files are not found and could not be downloaded; the message lists the
        directories searched and the file names expected, and names any file refused
        because it is {other}'s.
    ValueError
        Bad arguments, or files that are corrupt / do not belong together, or a file
        whose content is another official {title} file than its name says (e.g. the
        test labels saved as ``train-labels-idx1-ubyte.gz``).

    Notes
    -----
    Files are identified by the sha256 of their *decompressed* content, compared with
    the published content of the eight official IDX files of MNIST and Fashion-MNIST
    (which share their file names). The hash is taken of the bytes read for parsing,
    so each file is read once. Hence:

    * the official {title} files load in any form: the original ``.gz``, a ``.gz``
      re-compressed with another level or header, or the raw IDX file;
    * {other}'s files are always refused, in any of these forms: their directory is
      skipped (the search goes on, so one ``$NPCAE_DATA_DIR`` can serve one dataset
      while the other comes from elsewhere), and if no directory qualifies the
      :class:`DatasetNotFoundError` names the refused files;
    * files of neither release (your own data in IDX form) load when they parse as
      valid IDX: a 3-D uint8 image array ``(n, rows, cols)`` and a 1-D uint8 label
      array of the same length.

    Downloads are verified separately, by the published md5 of each ``.gz`` file.
    """


def load_mnist(data_dir=None, *, split="train", download=True, dtype=np.float32,
               flatten=True, normalize=True, n_samples=None):
    return _load_idx_dataset("mnist", data_dir, split, download, dtype, flatten,
                             normalize, n_samples)


def load_fashion_mnist(data_dir=None, *, split="train", download=True, dtype=np.float32,
                       flatten=True, normalize=True, n_samples=None):
    return _load_idx_dataset("fashion_mnist", data_dir, split, download, dtype, flatten,
                             normalize, n_samples)


load_mnist.__doc__ = _LOAD_DOC.format(title="MNIST", name="mnist", sub0="mnist",
                                      sub1="MNIST/raw", other="Fashion-MNIST", classes="")
load_fashion_mnist.__doc__ = _LOAD_DOC.format(
    title="Fashion-MNIST", name="fashion_mnist", sub0="fashion_mnist",
    sub1="FashionMNIST/raw", other="MNIST",
    classes=" Class names are in ``FASHION_MNIST_CLASSES``.")


# ---------------------------------------------------------------------------
# Procedural digits
# ---------------------------------------------------------------------------

def _catmull_rom(ctrl, closed, per_span):
    """Sample a uniform Catmull-Rom spline through the control points ``ctrl`` (m, 2)."""
    P = np.asarray(ctrl, dtype=np.float64)
    if closed:
        ext = np.vstack([P[-1:], P, P[:2]])
        n_spans = len(P)
    else:
        ext = np.vstack([2 * P[:1] - P[1:2], P, 2 * P[-1:] - P[-2:-1]])
        n_spans = len(P) - 1
    s = np.linspace(0.0, 1.0, per_span, endpoint=False)[:, None]
    s2, s3 = s * s, s * s * s
    out = []
    for i in range(n_spans):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * s3))
    out.append(ext[n_spans + 1][None, :] if not closed else P[:1])
    return np.vstack(out)


def _polyline(ctrl, pieces=3):
    """Straight segments through ``ctrl``, each split in ``pieces`` so warps can bend it."""
    P = np.asarray(ctrl, dtype=np.float64)
    s = np.linspace(0.0, 1.0, pieces, endpoint=False)[:, None]
    out = [P[i] + (P[i + 1] - P[i]) * s for i in range(len(P) - 1)]
    out.append(P[-1:])
    return np.vstack(out)


def _ellipse(cx, cy, rx, ry, n=8, start=90.0):
    a = np.deg2rad(start + np.arange(n) * 360.0 / n)
    return np.column_stack([cx + rx * np.cos(a), cy - ry * np.sin(a)])


def _S(*pts):  # smooth open stroke
    return ("spline", pts)


def _L(*pts):  # straight-line stroke
    return ("line", pts)


def _O(cx, cy, rx, ry):  # closed loop
    return ("loop", _ellipse(cx, cy, rx, ry))


# Stroke templates in a unit box: x to the right, y DOWN, the digit spans y in [0, 1]
# and is centred at (0.5, 0.5). Each class has one or more variants with weights.
_DIGIT_TEMPLATES = {
    0: [(1.0, [_O(0.5, 0.5, 0.29, 0.49)])],
    1: [(0.55, [_L((0.55, 0.0), (0.46, 1.0))]),
        (0.35, [_L((0.32, 0.2), (0.55, 0.0), (0.46, 1.0))]),
        (0.10, [_L((0.32, 0.2), (0.55, 0.0), (0.46, 1.0)), _L((0.28, 1.0), (0.68, 1.0))])],
    2: [(0.7, [_S((0.2, 0.26), (0.34, 0.06), (0.56, 0.0), (0.75, 0.13), (0.74, 0.36),
                  (0.52, 0.62), (0.18, 0.98)),
               _L((0.18, 0.98), (0.86, 0.96))]),
        (0.3, [_S((0.2, 0.26), (0.34, 0.06), (0.56, 0.0), (0.75, 0.13), (0.74, 0.36),
                  (0.52, 0.62), (0.26, 0.92), (0.3, 1.0), (0.4, 0.92), (0.6, 0.95),
                  (0.86, 0.96))])],
    3: [(1.0, [_S((0.2, 0.12), (0.45, 0.0), (0.7, 0.07), (0.72, 0.26), (0.52, 0.44),
                  (0.38, 0.47)),
               _S((0.38, 0.47), (0.62, 0.5), (0.78, 0.68), (0.72, 0.9), (0.48, 1.0),
                  (0.18, 0.9))])],
    4: [(0.55, [_L((0.62, 0.0), (0.14, 0.66), (0.86, 0.66)), _L((0.63, 0.02), (0.63, 1.0))]),
        (0.45, [_L((0.26, 0.0), (0.2, 0.6), (0.84, 0.6)), _L((0.7, 0.02), (0.67, 1.0))])],
    5: [(1.0, [_L((0.8, 0.02), (0.32, 0.02), (0.27, 0.46)),
               _S((0.27, 0.46), (0.46, 0.38), (0.7, 0.46), (0.78, 0.7), (0.66, 0.92),
                  (0.42, 0.99), (0.18, 0.9))])],
    6: [(1.0, [_S((0.68, 0.0), (0.46, 0.16), (0.3, 0.42), (0.24, 0.7), (0.34, 0.94),
                  (0.54, 0.99), (0.72, 0.86), (0.74, 0.66), (0.56, 0.52), (0.36, 0.56),
                  (0.25, 0.7))])],
    7: [(0.8, [_L((0.16, 0.04), (0.84, 0.04)),
               _S((0.84, 0.04), (0.66, 0.4), (0.52, 0.72), (0.44, 1.0))]),
        (0.2, [_L((0.16, 0.04), (0.84, 0.04)),
               _S((0.84, 0.04), (0.66, 0.4), (0.52, 0.72), (0.44, 1.0)),
               _L((0.42, 0.52), (0.8, 0.52))])],
    8: [(1.0, [_O(0.5, 0.24, 0.22, 0.235), _O(0.5, 0.73, 0.27, 0.265)])],
    9: [(0.65, [_O(0.48, 0.28, 0.25, 0.27), _L((0.73, 0.24), (0.69, 0.6), (0.6, 1.0))]),
        (0.35, [_O(0.48, 0.28, 0.25, 0.27),
                _S((0.73, 0.24), (0.72, 0.62), (0.62, 0.92), (0.42, 1.0))])],
}

_TEMPLATE_CACHE = {}


def _template_geometry(digit, variant):
    """Return (points (K, 2), segment start indices, segment end indices) of a variant."""
    key = (digit, variant)
    if key not in _TEMPLATE_CACHE:
        pts, a_idx = [], []
        offset = 0
        for kind, ctrl in _DIGIT_TEMPLATES[digit][variant][1]:
            if kind == "spline":
                p = _catmull_rom(ctrl, closed=False, per_span=5)
            elif kind == "loop":
                p = _catmull_rom(ctrl, closed=True, per_span=5)
            else:
                p = _polyline(ctrl)
            pts.append(p)
            a_idx.append(offset + np.arange(len(p) - 1))
            offset += len(p)
        pts = np.vstack(pts)
        a = np.concatenate(a_idx)
        _TEMPLATE_CACHE[key] = (pts, a, a + 1)
    return _TEMPLATE_CACHE[key]


def _check_range(value, name, symmetric, lo_bound=-np.inf):
    """``(low, high)`` from a pair; a scalar ``v`` gives ``(-v, v)`` if ``symmetric``,
    else the fixed value ``(v, v)``."""
    if np.ndim(value) == 0:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = np.nan
        if symmetric and not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0 (the half-width of a "
                             f"symmetric range) or a (low, high) pair; got {value!r}.")
        value = (-v, v) if symmetric else (v, v)
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a (low, high) pair; got "
                         f"{value!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or lo < lo_bound:
        bound = "" if lo_bound == -np.inf else f"{lo_bound} <= "
        raise ValueError(f"{name} must be a finite (low, high) pair with {bound}low <= high; "
                         f"got {value!r}.")
    return lo, hi


def _render_group(pts, a_idx, b_idx, radius, out, softness, image_size, chunk=128):
    """Render the strokes ``pts`` (m, K, 2) in pixel coordinates into ``out`` (m, P).

    Distance of every pixel centre to the nearest stroke segment, min over segments,
    mapped to ink with a smoothstep edge ``softness`` pixels wide around ``radius``.
    """
    m = pts.shape[0]
    ii, jj = np.mgrid[0:image_size, 0:image_size]
    gx = jj.ravel().astype(np.float32)[None, :]
    gy = ii.ravel().astype(np.float32)[None, :]
    P = gx.shape[1]
    A = pts[:, a_idx, :]  # (m, S, 2)
    D = pts[:, b_idx, :] - A
    L2 = np.maximum((D * D).sum(-1), np.float32(1e-12))
    inv_L2 = (1.0 / L2).astype(np.float32)
    for s0 in range(0, m, chunk):
        s1 = min(s0 + chunk, m)
        c = s1 - s0
        best = np.full((c, P), np.inf, dtype=np.float32)
        dx = np.empty((c, P), np.float32)
        dy = np.empty((c, P), np.float32)
        t = np.empty((c, P), np.float32)
        tmp = np.empty((c, P), np.float32)
        for k in range(A.shape[1]):
            ax, ay = A[s0:s1, k, 0:1], A[s0:s1, k, 1:2]
            ux, uy = D[s0:s1, k, 0:1], D[s0:s1, k, 1:2]
            np.subtract(gx, ax, out=dx)
            np.subtract(gy, ay, out=dy)
            np.multiply(dx, ux, out=t)
            np.multiply(dy, uy, out=tmp)
            t += tmp
            t *= inv_L2[s0:s1, k:k + 1]
            np.clip(t, 0.0, 1.0, out=t)
            # residual = d - t * u
            np.multiply(t, ux, out=tmp)
            dx -= tmp
            np.multiply(t, uy, out=tmp)
            dy -= tmp
            np.multiply(dx, dx, out=dx)
            np.multiply(dy, dy, out=dy)
            dx += dy
            np.minimum(best, dx, out=best)
        np.sqrt(best, out=best)
        # ink: 1 inside radius - softness/2, 0 beyond radius + softness/2, smooth between
        r = radius[s0:s1, None]
        np.subtract(r + np.float32(0.5 * softness), best, out=best)
        best *= np.float32(1.0 / softness)
        np.clip(best, 0.0, 1.0, out=best)
        out[s0:s1] = best * best * (3.0 - 2.0 * best)


def make_digits(n_samples=1000, *, random_state=None, image_size=28, dtype=np.float32,
                return_factors=False, balanced=True, rotation=15.0, scale=(0.9, 1.1),
                aspect=(0.8, 1.2), shear=(-0.4, 0.15), shift=1.5, thickness=(1.7, 3.5),
                deform=0.06, noise=0.0):
    """Procedural MNIST-like handwritten digits, rendered in pure NumPy (offline).

    Each digit 0-9 is a stroke template (polylines and Catmull-Rom splines in a unit
    box, a few variants per class, e.g. 1 with or without a flag, open or closed 4).
    Per sample, the strokes get a small random smooth warp, then a random affine map
    (scale, aspect, shear, rotation, shift) that places the digit, ~20 px tall, in the
    centre of a 28x28 image, and are rendered as a distance-to-stroke field: full ink
    within ``thickness / 2`` pixels of the stroke, a 1-pixel smooth edge, exact 0
    background. Rendering is vectorised over samples (loops only over classes,
    variants and stroke segments); 10,000 digits take about a second.

    Parameters
    ----------
    n_samples : int
        Number of images.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of randomness. The same non-negative int gives identical output; None
        draws fresh entropy; a ``Generator`` is used (and advanced) as it is; a
        ``RandomState`` seeds a new ``Generator`` from one draw.
    image_size : int
        Side of the square image in pixels (>= 8). Geometry (sizes, shifts,
        thickness) is given for 28 px and scaled by ``image_size / 28``.
    dtype : float dtype
        Dtype of ``X``.
    return_factors : bool
        Also return the per-sample generative factors.
    balanced : bool
        If True, every class appears ``n_samples // 10`` or one more times (in random
        order); if False, labels are drawn uniformly at random.
    rotation : float or (low, high)
        Rotation in degrees, uniform; a scalar ``v`` means ``[-v, v]`` (so does a scalar
        ``shear`` or ``shift``). For ``scale``, ``aspect`` and ``thickness`` a scalar
        means that fixed value.
    scale : float or (low, high)
        Overall size factor, uniform (1: stroke centre lines 17.5 px tall, ink about
        20 px tall like MNIST's 20x20 box).
    aspect : float or (low, high)
        Width multiplier on top of ``scale``, uniform (``scale_x = scale * aspect``).
    shear : float or (low, high)
        Horizontal shear ``x += shear * y`` (y points down, so negative values lean the
        top of the digit to the right, like most handwriting), uniform.
    shift : float or (low, high)
        Translation of the digit centre in pixels (each axis), uniform. Digits that
        would come closer than 1 px to the border are moved back inside (the returned
        ``shift_x`` / ``shift_y`` factors include that correction).
    thickness : float or (low, high)
        Stroke width in pixels, uniform.
    deform : float
        Amplitude (fraction of the digit height) of the random smooth warp applied to
        the strokes before the affine map; 0 disables it. The warp is not part of
        ``factors``.
    noise : float
        Standard deviation of Gaussian pixel noise added at the end (result clipped to
        [0, 1]); 0 disables it.

    Returns
    -------
    X : ndarray, shape (n_samples, image_size**2)
        Images flattened row-major, values in [0, 1], 0 = background.
    y : ndarray of int64, shape (n_samples,)
        Digit labels 0-9.
    factors : dict of str -> ndarray, shape (n_samples,)
        Only if ``return_factors``: ``rotation`` (degrees), ``scale_x``, ``scale_y``,
        ``shear``, ``shift_x``, ``shift_y`` (pixels), ``thickness`` (pixels),
        ``variant`` (index of the stroke template variant within its class).
    """
    n = check_positive_int(n_samples, "n_samples")
    size = check_positive_int(image_size, "image_size")
    if size < 8:
        raise ValueError(f"image_size must be at least 8 pixels; got {image_size}.")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point dtype; got {dtype}.")
    rot = _check_range(rotation, "rotation", symmetric=True)
    sc = _check_range(scale, "scale", symmetric=False, lo_bound=1e-3)
    asp = _check_range(aspect, "aspect", symmetric=False, lo_bound=1e-3)
    sh = _check_range(shear, "shear", symmetric=True)
    sft = _check_range(shift, "shift", symmetric=True)
    th = _check_range(thickness, "thickness", symmetric=False, lo_bound=1e-3)
    for val, nm in ((deform, "deform"), (noise, "noise")):
        if not (np.ndim(val) == 0 and np.isfinite(val) and val >= 0):
            raise ValueError(f"{nm} must be a finite number >= 0; got {val!r}.")
    rng = check_random_state(random_state)

    if balanced:
        y = np.arange(n, dtype=np.int64) % 10
        rng.shuffle(y)
    else:
        y = rng.integers(0, 10, size=n).astype(np.int64)
    px = size / 28.0
    f = {
        "rotation": rng.uniform(*rot, size=n),
        "scale_y": rng.uniform(*sc, size=n),
        "shear": rng.uniform(*sh, size=n),
        "shift_x": rng.uniform(*sft, size=n) * px,
        "shift_y": rng.uniform(*sft, size=n) * px,
        "thickness": rng.uniform(*th, size=n) * px,
    }
    f["scale_x"] = f["scale_y"] * rng.uniform(*asp, size=n)
    warp = rng.normal(0.0, float(deform), size=(n, 4))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 2))
    variant = np.zeros(n, dtype=np.int64)
    u_var = rng.random(n)
    for d in range(10):
        w = np.cumsum([v[0] for v in _DIGIT_TEMPLATES[d]])
        idx = y == d
        variant[idx] = np.minimum(np.searchsorted(w / w[-1], u_var[idx], side="right"),
                                  len(w) - 1)
    f["variant"] = variant

    # per-sample affine, template unit box -> pixels: p = M @ (u - 0.5) * H + centre
    H = 17.5 * px  # stroke centre lines; with the stroke width the ink is ~20 px tall
    softness = max(px, 0.5)  # width of the anti-aliased stroke edge, pixels
    margin = 1.0 * px
    th_r = np.deg2rad(f["rotation"])
    cos, sin = np.cos(th_r), np.sin(th_r)
    sx, sy, g = f["scale_x"] * H, f["scale_y"] * H, f["shear"]
    # M = R @ [[1, g], [0, 1]] @ diag(sx, sy)
    M = np.empty((n, 2, 2))
    M[:, 0, 0] = cos * sx
    M[:, 0, 1] = (cos * g - sin) * sy
    M[:, 1, 0] = sin * sx
    M[:, 1, 1] = (sin * g + cos) * sy
    centre = (size - 1) / 2.0
    T = np.column_stack([centre + f["shift_x"], centre + f["shift_y"]])
    radius = (0.5 * f["thickness"]).astype(np.float32)

    X = np.empty((n, size * size), dtype=np.float32)
    for d in range(10):
        for v in range(len(_DIGIT_TEMPLATES[d])):
            idx = np.flatnonzero((y == d) & (variant == v))
            if idx.size == 0:
                continue
            pts, a_idx, b_idx = _template_geometry(d, v)
            ux, uy = pts[:, 0][None, :], pts[:, 1][None, :]
            cx, cy = ux - 0.5, uy - 0.5
            w, ph = warp[idx], phase[idx]
            # smooth low-frequency warp of the strokes (template units)
            wx = w[:, 0:1] * np.sin(np.pi * uy + ph[:, 0:1]) + w[:, 1:2] * 4 * cx * cy
            wy = w[:, 2:3] * np.sin(np.pi * ux + ph[:, 1:2]) + w[:, 3:4] * 4 * cx * cx
            cx = cx + wx
            cy = cy + wy
            Mi = M[idx]
            px_x = Mi[:, 0, 0:1] * cx + Mi[:, 0, 1:2] * cy + T[idx, 0:1]
            px_y = Mi[:, 1, 0:1] * cx + Mi[:, 1, 1:2] * cy + T[idx, 1:2]
            # keep the ink at least `margin` px inside the image: shrink digits that are
            # too big (about their box centre), then move them inside. The factors are
            # updated to the scale and shift actually applied.
            r_ink = radius[idx, None] + 0.5 * softness + margin
            avail = (size - 1) - 2 * r_ink
            lo_x, hi_x = px_x.min(1, keepdims=True), px_x.max(1, keepdims=True)
            lo_y, hi_y = px_y.min(1, keepdims=True), px_y.max(1, keepdims=True)
            k = np.minimum(1.0, np.minimum(avail / np.maximum(hi_x - lo_x, 1e-9),
                                           avail / np.maximum(hi_y - lo_y, 1e-9)))
            f["scale_x"][idx] *= k[:, 0]
            f["scale_y"][idx] *= k[:, 0]
            for coord, lo, hi, col, key in ((px_x, lo_x, hi_x, 0, "shift_x"),
                                            (px_y, lo_y, hi_y, 1, "shift_y")):
                mid = 0.5 * (lo + hi)
                coord -= mid
                coord *= k
                lo_k, hi_k = mid + k * (lo - mid), mid + k * (hi - mid)
                corr = (np.maximum(r_ink - lo_k, 0.0)
                        - np.maximum(hi_k + r_ink - (size - 1), 0.0))
                coord += mid + corr
                f[key][idx] = (mid + k * (T[idx, col:col + 1] - mid) + corr)[:, 0] - centre
            P = np.stack([px_x, px_y], axis=-1).astype(np.float32)
            out = np.empty((idx.size, size * size), dtype=np.float32)
            _render_group(P, a_idx, b_idx, radius[idx], out, softness=softness,
                          image_size=size)
            X[idx] = out
    if noise > 0:
        X += rng.normal(0.0, float(noise), size=X.shape).astype(np.float32)
        np.clip(X, 0.0, 1.0, out=X)
    X = np.ascontiguousarray(X, dtype=dtype)
    if return_factors:
        order = ("rotation", "scale_x", "scale_y", "shear", "shift_x", "shift_y",
                 "thickness", "variant")
        return X, y, {k: f[k] for k in order}
    return X, y


# ---------------------------------------------------------------------------
# Toy manifolds
# ---------------------------------------------------------------------------

_MANIFOLDS = ("circle", "spiral", "sine")


def _curve(kind, t):
    """Points (n, 2) and derivative d/dt (n, 2) of the planar curve ``kind`` at ``t``."""
    if kind == "circle":
        p = np.column_stack([np.cos(t), np.sin(t)])
        dp = np.column_stack([-np.sin(t), np.cos(t)])
    elif kind == "spiral":
        # Archimedean spiral r = t / (3 pi), t in [pi/2, 3 pi]: radius from 1/6 to 1
        r, dr = t / (3 * np.pi), 1.0 / (3 * np.pi)
        p = np.column_stack([r * np.cos(t), r * np.sin(t)])
        dp = np.column_stack([dr * np.cos(t) - r * np.sin(t), dr * np.sin(t) + r * np.cos(t)])
    else:  # sine: x = t in [-1, 1], y = 0.5 sin(pi t)
        p = np.column_stack([t, 0.5 * np.sin(np.pi * t)])
        dp = np.column_stack([np.ones_like(t), 0.5 * np.pi * np.cos(np.pi * t)])
    return p, dp


_T_RANGE = {"circle": (0.0, 2 * np.pi), "spiral": (0.5 * np.pi, 3 * np.pi), "sine": (-1.0, 1.0)}


def make_manifold(kind="circle", n_samples=500, *, ambient_dim=2, noise=0.0,
                  random_state=None, dtype=np.float64):
    """Points on a 1-D curve, with the curve parameter and the true unit tangents.

    Curves (in the plane, before embedding), parameter ``t`` drawn uniformly:

    * ``"circle"``: ``(cos t, sin t)``, ``t`` in [0, 2 pi).
    * ``"spiral"``: ``r (cos t, sin t)`` with ``r = t / (3 pi)``, ``t`` in
      [pi/2, 3 pi] (radius 1/6 to 1, 1.25 turns).
    * ``"sine"``: ``(t, 0.5 sin(pi t))``, ``t`` in [-1, 1].

    For ``ambient_dim > 2`` the plane is mapped into ``R^ambient_dim`` by a random
    orthonormal 2-frame ``Q`` (drawn from ``random_state``), ``x = Q @ p``, so the curve is
    not axis-aligned. Noise is isotropic Gaussian in all ambient dimensions.

    Parameters
    ----------
    kind : {"circle", "spiral", "sine"}
    n_samples : int
    ambient_dim : int
        Dimension of the data, >= 2.
    noise : float
        Standard deviation of the Gaussian noise added to ``X`` (not to the tangents).
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Source of randomness (parameters, frame, noise); an int gives reproducible
        output, as in :func:`make_digits`.
    dtype : float dtype

    Returns
    -------
    X : ndarray, shape (n_samples, ambient_dim)
        Points, noise included.
    t : ndarray, shape (n_samples,)
        Curve parameter of each point.
    tangents : ndarray, shape (n_samples, ambient_dim)
        Unit tangent of the noise-free curve at ``t``, oriented in the direction of
        increasing ``t``.
    """
    if kind not in _MANIFOLDS:
        raise ValueError(f"kind must be one of {list(_MANIFOLDS)!r}; got {kind!r}.")
    n = check_positive_int(n_samples, "n_samples")
    d = check_positive_int(ambient_dim, "ambient_dim")
    if d < 2:
        raise ValueError(f"ambient_dim must be >= 2 (the curves are planar); got {d}.")
    if not (np.ndim(noise) == 0 and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}.")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point dtype; got {dtype}.")
    rng = check_random_state(random_state)
    t = rng.uniform(*_T_RANGE[kind], size=n)
    p, dp = _curve(kind, t)
    tan = dp / np.linalg.norm(dp, axis=1, keepdims=True)
    if d > 2:
        Q, R = np.linalg.qr(rng.standard_normal((d, 2)))
        Q = Q * np.sign(np.diag(R))  # a uniformly random frame
        p, tan = p @ Q.T, tan @ Q.T
    X = p + float(noise) * rng.standard_normal((n, d)) if noise > 0 else p
    return (np.ascontiguousarray(X, dtype=dtype), t.astype(dtype),
            np.ascontiguousarray(tan, dtype=dtype))


# ---------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------

_DATASET_NAMES = ("mnist", "fashion_mnist", "digits")
_DIGITS_DEFAULT_N = {"train": 10000, "test": 2000}


def load_dataset(name, split="train", n_samples=None, random_state=0, data_dir=None, *,
                 download=True, dtype=np.float32):
    """Load a dataset by name (used by the command line).

    Parameters
    ----------
    name : {"mnist", "fashion_mnist", "digits"}
        Case-insensitive; ``"fashion-mnist"`` is accepted too.
    split : {"train", "test"}
    n_samples : int or None
        For the IDX datasets: the first ``n_samples`` samples (None: all). For
        ``"digits"``: how many to render (None: 10,000 for train, 2,000 for test).
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Only used for ``"digits"`` (but validated for every name). Train and test are
        rendered from two independent streams of one ``np.random.SeedSequence``
        (``.spawn(2)``, train gets the first), so the two splits differ from each other.
        That sequence is ``SeedSequence(random_state)`` for a non-negative int (the
        default, 0: reproducible; the same int always gives the same train and test
        sets); for a ``Generator`` or ``RandomState`` it is seeded by one draw from it
        (reproducible when the generator's state is); for None, by fresh entropy.
    data_dir : str, path-like or None
        Passed to :func:`load_mnist` / :func:`load_fashion_mnist`.
    download : bool
        Passed to the IDX loaders.
    dtype : float dtype

    Returns
    -------
    X : ndarray, shape (n, 784)
        Flattened images in [0, 1].
    y : ndarray of int64, shape (n,)
    """
    key = str(name).lower().replace("-", "_")
    if key not in _DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {list(_DATASET_NAMES)!r}.")
    _check_split(split)
    if not isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        check_random_state(random_state)  # TypeError / ValueError naming random_state
    if key == "digits":
        n = _check_n_samples(n_samples)
        if n is None:
            n = _DIGITS_DEFAULT_N[split]
        if isinstance(random_state, (int, np.integer)):
            entropy = int(random_state)
        else:  # None, Generator or RandomState: one draw seeds the two split streams
            entropy = int(check_random_state(random_state).integers(0, 2 ** 63 - 1))
        streams = np.random.SeedSequence(entropy).spawn(2)
        rng = np.random.default_rng(streams[0 if split == "train" else 1])
        return make_digits(n, random_state=rng, dtype=dtype)
    loader = load_mnist if key == "mnist" else load_fashion_mnist
    return loader(data_dir, split=split, download=download, dtype=dtype,
                  n_samples=n_samples)
