"""Shared by the demo scripts: data (MNIST if found, else built-in digits) and an output folder."""
import argparse
from pathlib import Path

import npcae
from npcae.datasets import DatasetNotFoundError


def load_data(n_train, n_test=2000, random_state=0):
    """MNIST from $NPCAE_DATA_DIR / ~/.cache/npcae if present, else the built-in digits
    (drawn from ``random_state``)."""
    try:
        X, y = npcae.datasets.load_mnist(split="train", download=False, n_samples=n_train)
        X_test, y_test = npcae.datasets.load_mnist(split="test", download=False, n_samples=n_test)
        name = "MNIST"
    except DatasetNotFoundError:
        X, y = npcae.datasets.load_dataset("digits", "train", n_samples=n_train,
                                           random_state=random_state)
        X_test, y_test = npcae.datasets.load_dataset("digits", "test", n_samples=n_test,
                                                     random_state=random_state)
        name = "built-in digits (MNIST not found)"
    print(f"data: {name}, {len(X)} train / {len(X_test)} test")
    return X, y, X_test, y_test


def parse_args(description, default_out, **defaults):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=default_out, type=Path)
    p.add_argument("--epochs", type=int, default=defaults.get("epochs", 10))
    p.add_argument("--n-train", type=int, default=defaults.get("n_train", 20000))
    p.add_argument("--random-state", "--seed", dest="random_state", type=int, default=0,
                   help="seed of the data (built-in digits) and of the models (default 0)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args
