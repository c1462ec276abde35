"""MNIST and Fashion-MNIST from their IDX files: finding, identifying, downloading.

Files are looked for in ``data_dir``, then ``$NPCAE_DATA_DIR``, then
``~/.cache/npcae/<mnist|fashion_mnist>``; each file is identified by the sha256 of its
decompressed content (the two datasets share their file names), and downloads are
verified against the published md5 of each ``.gz`` before they are renamed into place.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from .._validation import check_positive_int
from .idx import _parse_idx, _read_bytes

__all__ = ["DatasetNotFoundError", "FASHION_MNIST_CLASSES", "load_fashion_mnist", "load_mnist"]


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not on disk and could not be downloaded.

    The message lists the directories searched, the exact file names expected and
    how to make them available (``data_dir=``, ``$NPCAE_DATA_DIR`` or the cache).
    """


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
