"""Datasets: real MNIST / Fashion-MNIST from IDX files, procedural digits, toy manifolds.

Everything returns ``(n_samples, n_features)`` C-contiguous arrays (images flattened
row-major, 28x28 -> 784) unless asked otherwise, and all randomness goes through
``np.random.Generator`` objects built from the user's ``random_state`` (None, a
non-negative int, a ``np.random.Generator`` or a ``np.random.RandomState``, as in
scikit-learn); the global NumPy RNG is never touched.

Public functions (modules ``idx``, ``mnist``, ``digits``, ``manifolds``)
------------------------------------------------------------------------
load_mnist, load_fashion_mnist
    The real datasets, read from the standard IDX files (gzipped or not). Files are
    looked for in ``data_dir``, then ``$NPCAE_DATA_DIR``, then
    ``~/.cache/npcae/<mnist|fashion_mnist>``, and downloaded (md5-verified) into the
    cache when missing and ``download=True``.
read_idx
    Parse any IDX file (the format MNIST is distributed in).
make_digits
    Procedural, MNIST-like 28x28 digits rendered in pure NumPy. Works offline.
sample_digit_factors, render_digits, digit_tangents
    The same digits from explicit factors (rotation, scale, aspect, shear, shift,
    thickness, and the per-sample warp), and the exact-to-~1e-8 derivative of each
    image with respect to each factor: the true tangents of the digit manifold
    (``DIGIT_FACTOR_NAMES``, ``WARP_FACTOR_NAMES``).
make_manifold
    Points on a 1-D curve (circle, spiral, sine) embedded in ``ambient_dim``
    dimensions, with the curve parameter and the true unit tangents.
load_dataset
    Name-based dispatcher used by the command line.
load_train_test
    MNIST when its files are found, else the built-in digits: the one fallback that
    ``npcae demo`` and the demo scripts share.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_random_state
from .digits import (DIGIT_FACTOR_NAMES, WARP_FACTOR_NAMES, digit_tangents, make_digits,
                     render_digits, sample_digit_factors)
from .idx import read_idx
from .manifolds import make_manifold
from .mnist import (FASHION_MNIST_CLASSES, DatasetNotFoundError, _check_n_samples, _check_split,
                    load_fashion_mnist, load_mnist)

__all__ = [
    "DIGIT_FACTOR_NAMES",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "WARP_FACTOR_NAMES",
    "digit_tangents",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_train_test",
    "make_digits",
    "make_manifold",
    "read_idx",
    "render_digits",
    "sample_digit_factors",
]


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


def load_train_test(name="auto", n_train=None, n_test=None, random_state=0, data_dir=None, *,
                    download=False, dtype=np.float32):
    """Train and test splits of a dataset, with MNIST-else-digits as ``name="auto"``.

    ``"auto"`` uses MNIST when its files are found (``data_dir``,
    ``$NPCAE_DATA_DIR``, ``~/.cache/npcae/mnist``; never downloading) and the
    built-in procedural digits otherwise, so every command runs offline.

    Returns
    -------
    X, y, X_test, y_test : ndarrays
    description : str
        What was loaded, e.g. ``"MNIST"`` or ``"built-in procedural digits
        (MNIST files not found)"``.
    """
    if name == "auto":
        try:
            return load_train_test("mnist", n_train, n_test, random_state, data_dir,
                                   download=False, dtype=dtype)
        except DatasetNotFoundError:
            X, y, X_test, y_test, _ = load_train_test("digits", n_train, n_test, random_state,
                                                      data_dir, dtype=dtype)
            return (X, y, X_test, y_test, "built-in procedural digits (npcae.datasets."
                    "make_digits): MNIST files not found in data_dir, $NPCAE_DATA_DIR or "
                    "~/.cache/npcae/mnist")
    X, y = load_dataset(name, "train", n_samples=n_train, random_state=random_state,
                        data_dir=data_dir, download=download, dtype=dtype)
    X_test, y_test = load_dataset(name, "test", n_samples=n_test, random_state=random_state,
                                  data_dir=data_dir, download=download, dtype=dtype)
    description = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST",
                   "digits": "built-in procedural digits (npcae.datasets.make_digits)"}[
        str(name).lower().replace("-", "_")]
    return X, y, X_test, y_test, description
