"""Shared test configuration: hypothesis profiles and data locations.

Profiles: "ci" (deterministic: derandomized, no deadline; chosen when CI is set)
and "dev" (random, more examples). Select with HYPOTHESIS_PROFILE=dev.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=30,
                          print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]

# Python source for a subprocess: make `npcae` a bare package over this repository's npcae/
# folder, so one submodule can be imported without running npcae/__init__.py.
BARE_PACKAGE_PRELUDE = (
    "import sys, types, importlib\n"
    f"pkg = types.ModuleType('npcae'); pkg.__path__ = [{str(REPO / 'npcae')!r}]\n"
    "sys.modules['npcae'] = pkg\n"
)


def run_python(code, **kwargs):
    """Run ``code`` in a fresh interpreter; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, **kwargs)


def shared_mnist_dir():
    """The real MNIST files: $NPCAE_DATA_DIR, else ../shared/data/mnist beside the repo."""
    candidates = []
    if os.environ.get("NPCAE_DATA_DIR"):
        candidates.append(Path(os.environ["NPCAE_DATA_DIR"]))
    candidates.append(REPO.parent / "shared" / "data" / "mnist")
    for c in candidates:
        if (c / "train-images-idx3-ubyte.gz").exists() or (c / "train-images-idx3-ubyte").exists():
            return c
    return None


@pytest.fixture(scope="session")
def mnist_dir():
    d = shared_mnist_dir()
    if d is None:
        pytest.skip("real MNIST not found: set NPCAE_DATA_DIR or put the IDX files in "
                    "../shared/data/mnist beside the repository")
    return d


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
