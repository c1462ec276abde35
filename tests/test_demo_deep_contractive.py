"""demos/deep_contractive.py end to end, on the built-in digits with tiny settings."""
import os
import subprocess
import sys

import pytest

MODELS = ("deep AE (lam = 0)", "CAE, one layer", "stacked CAE, greedy", "stacked CAE, fine-tuned",
          "deep CAE, exact", "deep CAE, stochastic", "deep CAE+H")
FIGURES = ("spectra.png", "contraction.png", "reconstructions.png")


@pytest.mark.slow
def test_deep_contractive_demo_prints_its_tables_and_writes_figures(tmp_path):
    pytest.importorskip("matplotlib")
    from conftest import REPO
    out = tmp_path / "out"
    env = {**os.environ, "NPCAE_DATA_DIR": str(tmp_path / "no-mnist")}    # built-in digits
    done = subprocess.run([sys.executable, str(REPO / "demos" / "deep_contractive.py"), "--out",
                           str(out), "--epochs", "1", "--n-train", "300", "--random-state", "1"],
                          cwd=REPO / "demos", capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr
    stdout = done.stdout
    assert "built-in procedural digits" in stdout
    assert "nan" not in stdout.lower(), stdout
    lines = stdout.splitlines()
    # the two tables: a header, then one row per model with every number filled in
    recon = lines.index(next(line for line in lines if line.startswith("Reconstruction")))
    ratio = lines.index(next(line for line in lines if line.startswith("Contraction ratio")))
    assert lines[recon + 1].split()[:4] == ["model", "train", "s", "BCE/image"]
    assert lines[ratio + 1].split()[:3] == ["model", "r", "="]
    for start, n_numbers in ((recon + 2, 9), (ratio + 2, 6)):
        for name, line in zip(MODELS, lines[start:start + len(MODELS)]):
            assert line.startswith(name), (name, line)
            numbers = line[len(name):].replace("%", "").split()
            assert len(numbers) == n_numbers, line
            assert all(float(v) >= 0 for v in numbers), line
    assert "Reading the numbers:" in stdout and f"figures in {out}" in stdout
    for name in FIGURES:
        assert (out / name).stat().st_size > 0, name
