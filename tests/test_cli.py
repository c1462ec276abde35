"""The command line: demo, train, gradcheck, inspect; and import hygiene."""
import json
import subprocess
import sys

import pytest

from npcae.cli import main


def test_import_npcae_imports_numpy_only():
    code = ("import sys, npcae, npcae.models, npcae.training, npcae.io, npcae.datasets, "
            "npcae.analysis, npcae.gradcheck; "
            "bad = [m for m in ('matplotlib', 'scipy', 'sklearn', 'torch', 'npcae.cli', "
            "'npcae.plotting') if m in sys.modules]; print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    assert "model CAE(sigmoid->sigmoid, bce, tied)" in out
    assert "penalty contractive(tanh) d/dW" in out


def test_gradcheck_command_fails_on_a_broken_gradient(capsys, monkeypatch):
    from npcae import activations
    monkeypatch.setattr(activations.Tanh, "derivative", lambda self, a, h: 1.001 * (1 - h * h))
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "activation tanh: phi'" in out


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--data", "digits", "--n-train", "600", "--n-test", "200",
                 "--epochs", "2", "--hidden", "16", "--n-analysis", "50", "--quiet",
                 "--out", str(out)])
    assert code == 0
    return out


def test_demo_writes_figures_and_summary(demo_dir, capsys):
    for name in ("model.npz", "history.json", "summary.json", "reconstructions.png",
                 "filters.png", "spectrum.png", "tangents.png", "history.png"):
        assert (demo_dir / name).stat().st_size > 0, name
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert 0 < summary["test_reconstruction_per_pixel"] < 1
    assert 0 <= summary["fraction_singular_values_below_1"] <= 1
    assert len(json.loads((demo_dir / "history.json").read_text())["total"]) == 2


def test_inspect(demo_dir, capsys):
    assert main(["inspect", str(demo_dir / "model.npz")]) == 0
    out = capsys.readouterr().out
    assert "ContractiveAutoencoder" in out and "W: shape (784, 16)" in out


def test_inspect_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    assert main(["inspect", str(bad)]) == 2
    assert "not a readable npcae model" in capsys.readouterr().err


def test_train_without_data_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NPCAE_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path))
    code = main(["train", "--data", "mnist", "--data-dir", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o"), "--epochs", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "NPCAE_DATA_DIR" in err


@pytest.mark.slow
def test_train_on_real_mnist(mnist_dir, tmp_path, capsys):
    """A few epochs on real MNIST give sensible reconstructions."""
    out = tmp_path / "run"
    code = main(["train", "--model", "cae", "--data", "mnist", "--data-dir", str(mnist_dir),
                 "--hidden", "64", "--lam", "0.1", "--epochs", "3", "--quiet",
                 "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    # an untrained tied sigmoid AE gives ~0.7 BCE/pixel; a few epochs should bring it below 0.15
    assert summary["test_reconstruction_per_pixel"] < 0.15, summary
    assert summary["test_mse_per_pixel"] < 0.03, summary
    assert summary["fraction_singular_values_below_1"] > 0.5


@pytest.mark.parametrize("script", ["keras_contractive.py", "classic_cae.py"])
def test_demo_scripts_run(script, tmp_path):
    pytest.importorskip("matplotlib")
    from conftest import REPO
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "demos" / script), "--out", str(out),
                           "--epochs", "1", "--n-train", "500"], cwd=REPO / "demos",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "figures in" in done.stdout
    assert any(p.suffix == ".png" and p.stat().st_size > 0 for p in out.iterdir())
