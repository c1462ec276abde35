"""Shared by the demo scripts: data (MNIST if found, else built-in digits) and an output folder."""
import argparse
from pathlib import Path

import npcae


def load_data(n_train, n_test=2000, random_state=0):
    """MNIST from $NPCAE_DATA_DIR / ~/.cache/npcae if present, else the built-in digits
    (drawn from ``random_state``): npcae.datasets.load_train_test("auto", ...)."""
    X, y, X_test, y_test, name = npcae.datasets.load_train_test(
        "auto", n_train, n_test, random_state=random_state)
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
