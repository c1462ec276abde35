"""docs/verify-your-implementation.md: its examples are the tested files, and they pass."""
import subprocess
import sys
from pathlib import Path

import pytest

from npcae.cli import main
from npcae.reference import verify

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "verify-your-implementation.md"
EXAMPLES = ROOT / "docs" / "examples"


@pytest.mark.parametrize("name", ["verify_numpy.py", "verify_pytorch.py"])
def test_the_document_quotes_each_example_verbatim(name):
    text = DOC.read_text()
    code = (EXAMPLES / name).read_text()
    assert f"<!-- example: docs/examples/{name} -->\n```python\n{code}```" in text


def _run_example(name, canonical, tmp_path):
    fixture, theirs = tmp_path / f"{canonical}.npz", tmp_path / "theirs.npz"
    assert main(["reference", "--canonical", canonical, "--out", str(fixture)]) == 0
    done = subprocess.run([sys.executable, str(EXAMPLES / name), str(fixture), str(theirs)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = verify(theirs, against=fixture)
    assert result.ok, str(result)
    assert main(["verify", str(theirs), "--against", str(fixture)]) == 0
    return result


def test_numpy_example_agrees_with_the_fixture(tmp_path):
    _run_example("verify_numpy.py", "tied_sigmoid_cae", tmp_path)


def test_pytorch_example_agrees_with_the_fixture(tmp_path):
    pytest.importorskip("torch")
    result = _run_example("verify_pytorch.py", "keras_cae", tmp_path)
    assert [p.given_as for p in result.params] == ["encoder.weight", "encoder.bias",
                                                   "decoder.weight", "decoder.bias"]
