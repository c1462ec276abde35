"""The project's metadata: a licence people can rely on, and the test extra's requirements."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _pyproject():
    tomllib = pytest.importorskip("tomllib")            # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_licence_file_and_metadata_agree():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    project = _pyproject()["project"]
    assert project["license"] == "BSD-3-Clause"          # an SPDX expression
    assert project["license-files"] == ["LICENSE"]
    assert "BSD 3-Clause" in (ROOT / "README.md").read_text()


def test_runtime_needs_numpy_only_and_tests_need_scikit_learn_1_6():
    project = _pyproject()["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["numpy"]
    assert "scikit-learn>=1.6" in project["optional-dependencies"]["test"]


def test_version_module_and_pyproject_agree():
    """The version lives in npcae/_version.py (importable without the package's other
    modules) and, statically, in pyproject.toml: the two must be the same string."""
    import npcae
    import npcae.io                                   # writes this string into saved files
    from npcae import _version
    version = _pyproject()["project"]["version"]
    assert _version.__version__ == version
    assert npcae.__version__ == version
    assert npcae.io.__version__ is _version.__version__
