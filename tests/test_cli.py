"""The command line: demo, train, gradcheck, inspect; and import hygiene.

Also the command line's guarantees: every numeric option is checked by argparse
(exit 2, naming the option), ``--random-state`` (alias ``--seed``), ``--out`` never
left behind empty by a failed run, Ctrl-C / SIGTERM save the last completed epoch
(exit 130 / 143, no temporary files), and ``npcae inspect`` never shows a traceback.
"""
import json
import re
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import npcae
from npcae import cli
from npcae.cli import build_parser, main
from npcae.models import ContractiveAutoencoder

# a small, fast training run (in-process); figures are skipped where they are not the point
SMALL = ["--data", "digits", "--n-train", "200", "--n-test", "50", "--epochs", "1",
         "--hidden", "8", "--n-analysis", "10"]


@pytest.fixture
def no_figures(monkeypatch):
    monkeypatch.setattr(cli, "_figures", lambda *a, **k: [])


def _tmp_files(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_import_npcae_imports_numpy_only():
    code = ("import sys, npcae, npcae.models, npcae.training, npcae.io, npcae.datasets, "
            "npcae.analysis, npcae.gradcheck; "
            "bad = [m for m in ('matplotlib', 'scipy', 'sklearn', 'torch', 'npcae.cli', "
            "'npcae.plotting') if m in sys.modules]; print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_library_installs_no_signal_handlers():
    code = ("import signal; before = {s: signal.getsignal(s) for s in "
            "(signal.SIGINT, signal.SIGTERM)}; import npcae, npcae.models, npcae.training, "
            "npcae.io, npcae.datasets, npcae.cli; "
            "assert {s: signal.getsignal(s) for s in before} == before")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    assert "model CAE(sigmoid->sigmoid, bce, tied)" in out
    assert "penalty contractive(tanh) d/dW" in out


def test_gradcheck_command_fails_on_a_broken_gradient(capsys, monkeypatch):
    from npcae import activations

    def wrong_derivative(self, a, h, out=None):
        value = 1.001 * (1 - h * h)
        if out is None:
            return value
        out[...] = value
        return out
    monkeypatch.setattr(activations.Tanh, "derivative", wrong_derivative)
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "activation tanh: phi'" in out


@pytest.mark.parametrize("flag", ["--random-state", "--seed"])
def test_gradcheck_random_state_reaches_the_audit(flag, monkeypatch, capsys):
    import npcae.audit
    seen = {}

    def fake_run_audit(**kwargs):
        seen.update(kwargs)
        return []
    monkeypatch.setattr(npcae.audit, "run_audit", fake_run_audit)
    monkeypatch.setattr(npcae.audit, "format_audit", lambda rows, rtol: "table")
    assert main(["gradcheck", flag, "5", "--rtol", "1e-6"]) == 0
    assert seen == {"random_state": 5, "rtol": 1e-6}


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("command", [["demo"], ["train", "--out", "o"], ["gradcheck"]])
def test_random_state_and_its_seed_alias(command):
    parser = build_parser()
    assert parser.parse_args(command).random_state == 0
    assert parser.parse_args(command + ["--random-state", "7"]).random_state == 7
    assert parser.parse_args(command + ["--seed", "7"]).random_state == 7
    assert not hasattr(parser.parse_args(command), "seed")


BAD_VALUES = [
    ("--n-analysis", "0"), ("--n-analysis", "-3"), ("--hidden", "0"), ("--hidden", "-1"),
    ("--epochs", "0"), ("--batch-size", "0"), ("--batch-size", "-100"), ("--n-test", "0"),
    ("--n-train", "-1"), ("--lr", "0"), ("--lr", "-0.1"), ("--lr", "nan"), ("--lr", "inf"),
    ("--lam", "-0.5"), ("--lam", "nan"), ("--lam", "inf"), ("--random-state", "-1"),
    ("--seed", "-2"), ("--hidden", "1.5"), ("--epochs", "ten"), ("--lam", "abc"),
]


@pytest.mark.parametrize("command", ["train", "demo"])
@pytest.mark.parametrize("option,value", BAD_VALUES)
def test_bad_numeric_option_is_an_argument_error(command, option, value, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main([command, "--data", "digits", "--out", str(out), option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    named = "--random-state" if option == "--seed" else option
    assert f"argument {named}" in err, err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("option,value", [("--rtol", "0"), ("--rtol", "-0.5"),
                                          ("--rtol", "nan"), ("--random-state", "-1")])
def test_bad_gradcheck_option_is_an_argument_error(option, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["gradcheck", option, value])
    assert exc.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


def test_boundary_values_are_accepted():
    args = build_parser().parse_args(["train", "--out", "o", "--lam", "0", "--n-train", "0",
                                      "--n-analysis", "1", "--hidden", "1", "--random-state",
                                      "0", "--lr", "1e-9"])
    assert (args.lam, args.n_train, args.n_analysis, args.random_state) == (0.0, 0, 1, 0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--out", "o", "--model", "no-such-model"])


# --------------------------------------------------------------------------- training
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
    assert summary["hyperparameters"]["random_state"] == 0
    assert len(json.loads((demo_dir / "history.json").read_text())["total"]) == 2
    assert not _tmp_files(demo_dir)


def test_demo_writes_a_report_that_embeds_existing_figures(demo_dir):
    report = (demo_dir / "report.md").read_text()
    numbers = json.loads((demo_dir / "report.json").read_text())
    assert report.startswith("# What the contractive autoencoder learned")
    for section in ("## 2. Reconstruction", "## 3. The manifold", "## 4. Tangent directions",
                    "## 5. Against the true tangents", "## 6. Contraction",
                    "## 7. Denoising and contraction", "## 8. Codes as features",
                    "## 9. Anomaly scores"):
        assert section in report, section
    embedded = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {"spectra_compared.png", "contraction.png", "codes.png", "tangents_compared.png",
            "history.png", "reconstructions.png", "filters.png", "true_tangents.png",
            "gap_convergence.png", "vector_fields.png", "roc.png"} <= set(embedded)
    for name in embedded:
        assert (demo_dir / name).stat().st_size > 0, name
    assert set(numbers["models"]) == {"CAE (lam = 0.5)", "AE (lam = 0)", "DAE (masking 0.25)"}
    for name, m in numbers["models"].items():
        assert f"| {name} |" in report and 0 <= m["probe_accuracy"] <= 1
    assert "nan" not in report.lower()


def test_demo_without_report(tmp_path, capsys, no_figures):
    out = tmp_path / "d"
    assert main(["demo", "--data", "digits", "--n-train", "100", "--n-test", "50",
                 "--epochs", "1", "--hidden", "4", "--n-analysis", "5", "--quiet",
                 "--no-report", "--out", str(out)]) == 0
    assert not (out / "report.md").exists() and (out / "model.npz").exists()


def test_demo_runs_offline_on_builtin_digits(tmp_path, monkeypatch, capsys, no_figures):
    """`--data auto` (the demo's default) without MNIST files and without network."""
    def no_network(*args, **kwargs):
        raise OSError("network access attempted in an offline test")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("NPCAE_DATA_DIR", str(tmp_path / "no-mnist"))
    monkeypatch.setenv("HOME", str(tmp_path))
    out = tmp_path / "demo"
    code = main(["demo", "--n-train", "200", "--n-test", "50", "--epochs", "1", "--hidden", "8",
                 "--n-analysis", "10", "--quiet", "--data-dir", str(tmp_path / "empty"),
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "built-in procedural digits" in captured.out
    assert npcae.load(out / "model.npz").params["W"].shape == (784, 8)


def test_train_prints_one_line_per_epoch_unless_quiet(tmp_path, capsys, no_figures):
    """The model's default is silent; the command line passes its own verbosity."""
    assert main(["train", *SMALL, "--epochs", "2", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == \
        ["1/2", "2/2"]
    assert main(["train", *SMALL, "--epochs", "2", "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("epoch ")]


def test_random_state_seeds_the_run_and_seed_is_its_alias(tmp_path, capsys, no_figures):
    def trained(*flags, name):
        assert main(["train", *SMALL, "--quiet", *flags, "--out", str(tmp_path / name)]) == 0
        return npcae.load(tmp_path / name / "model.npz")
    a = trained("--random-state", "3", name="a")
    b = trained("--seed", "3", name="b")
    c = trained("--random-state", "4", name="c")
    assert a.get_params()["random_state"] == 3
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    assert not np.array_equal(a.params["W"], c.params["W"])


# --------------------------------------------------------------------------- --out
def test_out_is_an_existing_file(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("keep me")
    assert main(["train", *SMALL, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "--out" in err and "existing file" in err and "Traceback" not in err
    assert target.read_text() == "keep me"


def test_out_below_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["train", *SMALL, "--out", str(tmp_path / "f" / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--out" in err, err


def test_train_without_data_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NPCAE_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path))
    code = main(["train", "--data", "mnist", "--data-dir", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o"), "--epochs", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "NPCAE_DATA_DIR" in err
    assert not (tmp_path / "o").exists()


def _diverge(self, X, y=None, validation_data=None):
    from npcae.training import TrainingDivergedError
    raise TrainingDivergedError("the loss became non-finite at epoch 1, step 3; try a smaller "
                                "learning rate")


@pytest.mark.parametrize("failure", ["bad model value", "divergence", "no data"])
def test_failed_run_leaves_no_empty_output_folder(failure, tmp_path, capsys, monkeypatch):
    flags = list(SMALL)
    if failure == "bad model value":
        flags += ["--activation", "no-such-activation"]
    elif failure == "divergence":
        monkeypatch.setattr(ContractiveAutoencoder, "fit", _diverge)
    else:
        monkeypatch.setenv("NPCAE_DATA_DIR", str(tmp_path / "nowhere"))
        monkeypatch.setenv("HOME", str(tmp_path))
        flags += ["--data", "mnist", "--data-dir", str(tmp_path / "empty")]
    out = tmp_path / "new" / "nested" / "run"
    assert main(["train", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npcae train: error: ") and "Traceback" not in err, err
    if failure != "no data":
        assert len(err.strip().splitlines()) == 1, err
    if failure == "divergence":
        assert "non-finite" in err
    assert not (tmp_path / "new").exists()


def test_failed_run_keeps_a_folder_that_existed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ContractiveAutoencoder, "fit", _diverge)
    empty = tmp_path / "empty"
    empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert main(["train", *SMALL, "--out", str(empty)]) == 2
    assert main(["train", *SMALL, "--out", str(full)]) == 2
    assert empty.is_dir() and not any(empty.iterdir())
    assert [p.name for p in full.iterdir()] == ["notes.txt"]


def test_programming_errors_stay_visible_and_leave_no_empty_folder(tmp_path, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(cli, "_build_model", broken)
    out = tmp_path / "run"
    with pytest.raises(ZeroDivisionError):
        main(["train", *SMALL, "--out", str(out)])
    assert not out.exists()


# --------------------------------------------------------------------------- interrupts
def _fit_then(action, epochs=2):
    """A ``fit`` that trains ``epochs`` epochs, then does ``action`` (as if interrupted)."""
    original = ContractiveAutoencoder.fit

    def fit(self, X, y=None, validation_data=None):
        self.set_params(epochs=epochs)
        original(self, X, validation_data=validation_data)
        action()
        raise AssertionError("the interrupt did not arrive")
    return fit


def _press_ctrl_c():
    raise KeyboardInterrupt


def test_ctrl_c_after_an_epoch_saves_the_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ContractiveAutoencoder, "fit", _fit_then(_press_ctrl_c))
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--quiet", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "after 2 completed epochs" in err and str(out / "model.npz") in err
    assert len(npcae.load(out / "model.npz").history_["total"]) == 2
    assert len(json.loads((out / "history.json").read_text())["total"]) == 2
    assert not (out / "summary.json").exists() and not _tmp_files(tmp_path)


class _SigtermReachedTheTest(Exception):
    pass


def _test_sigterm_handler(signum, frame):
    raise _SigtermReachedTheTest("the command line did not handle SIGTERM")


@pytest.fixture
def sigterm_guard():
    """A SIGTERM handler of the caller's, so that a missing CLI handler fails the test
    instead of killing the test process; the CLI must put it back afterwards."""
    original = signal.signal(signal.SIGTERM, _test_sigterm_handler)
    try:
        yield _test_sigterm_handler
    finally:
        signal.signal(signal.SIGTERM, original)


def test_sigterm_in_process_saves_and_restores_the_handler(tmp_path, capsys, monkeypatch,
                                                           sigterm_guard):
    before = signal.getsignal(signal.SIGTERM)
    assert before is sigterm_guard
    during = []

    def send_sigterm():
        during.append(signal.getsignal(signal.SIGTERM))
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(200):            # the Python-level handler runs between bytecodes
            time.sleep(0.01)
    monkeypatch.setattr(ContractiveAutoencoder, "fit", _fit_then(send_sigterm, epochs=1))
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--quiet", "--out", str(out)]) == 143
    assert during and during[0] is not before and callable(during[0])
    assert signal.getsignal(signal.SIGTERM) is before
    err = capsys.readouterr().err
    assert "SIGTERM" in err and "after 1 completed epoch;" in err
    assert len(npcae.load(out / "model.npz").history_["total"]) == 1
    assert not _tmp_files(tmp_path)


@pytest.mark.parametrize("where", ["fit", "data"])
def test_interrupt_before_an_epoch_saves_nothing(where, tmp_path, capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt
    if where == "fit":
        monkeypatch.setattr(ContractiveAutoencoder, "fit", interrupt)
    else:
        monkeypatch.setattr(cli, "_load_data", interrupt)
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "nothing was saved" in err and "Traceback" not in err
    assert not out.exists()


def _interrupt_real_run(sig, tmp_path):
    """Start `python -m npcae train`, wait for its first epoch line, send ``sig``."""
    out = tmp_path / "run"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "npcae", "train", "--data", "digits", "--n-train", "3000",
         "--n-test", "200", "--epochs", "1000", "--hidden", "16", "--n-analysis", "20",
         "--random-state", "0", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines = queue.Queue()

    def read_stdout():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)                 # end of output: the process has finished
    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    try:
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                proc.wait(timeout=60)
                pytest.fail(f"npcae train ended (exit {proc.returncode}) before its first "
                            f"epoch line:\n{proc.stderr.read()}")
            if line.startswith("epoch "):
                break
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    return code, proc.stderr.read(), out


def _check_saved_after_interrupt(code, err, out, tmp_path, expected_code):
    assert code == expected_code, err
    assert "Traceback" not in err, err
    assert str(out / "model.npz") in err, err
    model = npcae.load(out / "model.npz")
    n = len(model.history_["total"])
    assert 1 <= n < 1000
    assert f"after {n} completed epoch" in err, err
    assert len(json.loads((out / "history.json").read_text())["total"]) == n
    assert getattr(model, "n_iter_", n) == n
    assert not _tmp_files(tmp_path)
    return model, n


def test_ctrl_c_during_a_real_run_saves_the_last_completed_epoch(tmp_path):
    code, err, out = _interrupt_real_run(signal.SIGINT, tmp_path)
    model, n = _check_saved_after_interrupt(code, err, out, tmp_path, 130)
    # exactly the model an uninterrupted run of n epochs gives (no half epoch in it)
    from npcae.datasets import load_dataset
    X, _ = load_dataset("digits", "train", n_samples=3000, random_state=0)
    same = ContractiveAutoencoder(n_hidden=16, lam=0.1, activation="sigmoid",
                                  output_activation="sigmoid", loss="bce", tied=True,
                                  optimizer=npcae.optim.Adam(lr=1e-3), batch_size=100,
                                  epochs=n, random_state=0).fit(X)
    for name, value in same.params.items():
        np.testing.assert_allclose(model.params[name], value, rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_sigterm_during_a_real_run_saves_and_exits_143(tmp_path):
    code, err, out = _interrupt_real_run(signal.SIGTERM, tmp_path)
    _check_saved_after_interrupt(code, err, out, tmp_path, 143)


# --------------------------------------------------------------------------- inspect
def test_inspect(demo_dir, capsys):
    assert main(["inspect", str(demo_dir / "model.npz")]) == 0
    out = capsys.readouterr().out
    assert "ContractiveAutoencoder" in out and "W: shape (784, 16)" in out
    assert "trained 2 epochs" in out


def test_inspect_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    assert main(["inspect", str(bad)]) == 2
    assert "not a readable npcae model" in capsys.readouterr().err


def _make_case(kind, tmp_path, model_file):
    if kind == "missing":
        return tmp_path / "missing.npz"
    if kind == "folder":
        return tmp_path
    if kind == "folder with a model":
        (tmp_path / "model.npz").write_bytes(model_file.read_bytes())
        return tmp_path
    if kind == "truncated":
        data = model_file.read_bytes()
        (tmp_path / "t.npz").write_bytes(data[:len(data) // 2])
        return tmp_path / "t.npz"
    if kind == "npy":
        np.save(tmp_path / "a.npy", np.zeros(3))
        return tmp_path / "a.npy"
    if kind == "foreign npz":
        np.savez(tmp_path / "f.npz", W=np.zeros((3, 2)))
        return tmp_path / "f.npz"
    if kind == "empty":
        (tmp_path / "e.npz").write_bytes(b"")
        return tmp_path / "e.npz"
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model.npz"
    ContractiveAutoencoder(n_hidden=3, epochs=1).fit(np.full((5, 4), 0.5)).save(path)
    return path


@pytest.mark.parametrize("kind", ["missing", "folder", "folder with a model", "truncated",
                                  "npy", "foreign npz", "empty"])
def test_inspect_never_shows_a_traceback(kind, tmp_path, model_file, capsys):
    path = _make_case(kind, tmp_path, model_file)
    assert main(["inspect", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("npcae inspect: error: ") and "Traceback" not in captured.err
    assert str(path) in captured.err
    if kind == "folder with a model":
        assert "model.npz" in captured.err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs a POSIX user who cannot read a mode-000 file (not root)")
def test_inspect_unreadable_file(tmp_path, model_file, capsys):
    path = tmp_path / "locked.npz"
    path.write_bytes(model_file.read_bytes())
    path.chmod(0)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "ermission" in err


def test_inspect_catches_unexpected_errors(model_file, monkeypatch, capsys):
    def broken_load(path):
        raise RuntimeError("something\nunexpected")
    monkeypatch.setattr(npcae, "load", broken_load)
    assert main(["inspect", str(model_file)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "RuntimeError" in err


def test_inspect_unreadable_file_as_subprocess(tmp_path):
    """The real entry point: one line on stderr, exit 2, even for a directory."""
    done = subprocess.run([sys.executable, "-m", "npcae", "inspect", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# --------------------------------------------------------------------------- real data, demos
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


@pytest.mark.parametrize("script", ["keras_contractive.py",
                                    pytest.param("classic_cae.py", marks=pytest.mark.slow)])
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


# ----------------------------------------------------------------- deep autoencoders
@pytest.mark.parametrize("script,line", [("pytorch_text_autoencoder.py", "epoch [1/1], loss:"),
                                         ("tensorflow_text_autoencoder.py", "Epoch: 1 Loss:")])
def test_source_text_demos_print_their_losses(script, line, tmp_path):
    pytest.importorskip("matplotlib")
    from conftest import REPO
    out = tmp_path / "out"
    env = {**os.environ, "NPCAE_DATA_DIR": str(tmp_path / "no-mnist")}    # built-in digits
    done = subprocess.run([sys.executable, str(REPO / "demos" / script), "--out", str(out),
                           "--epochs", "1", "--n-train", "600"], cwd=REPO / "demos",
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert line in done.stdout and "built-in procedural digits" in done.stdout
    assert (out / "reconstructions.png").stat().st_size > 0


def test_train_a_deep_autoencoder_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "ae"
    code = main(["train", "--model", "ae", "--layers", "32,16,8", "--activation",
                 "leaky_relu:0.2", "--tied", "--data", "digits", "--n-train", "400",
                 "--n-test", "100", "--n-analysis", "20", "--epochs", "1", "--out", str(out),
                 "--quiet"])
    assert code == 0
    model = npcae.load(out / "model.npz")
    assert isinstance(model, npcae.Autoencoder)
    assert model.layers == (32, 16, 8) and model.tied is True
    assert model.activation == {"name": "leaky_relu", "alpha": 0.2}
    assert "decoder.0.W" not in model.params
    assert main(["inspect", str(out / "model.npz")]) == 0
    assert "encoder.2.W: shape (16, 8)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--model", "ae", "--layers", "5,x"], "comma-separated"),
    (["--model", "ae", "--layers", "5,0"], "positive"),
    (["--model", "ae", "--activation", "leaky_relu:steep"], "slope"),
])
def test_deep_model_arguments_are_argparse_errors(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "digits", "--out", str(tmp_path / "o"), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cae_refuses_several_layers(tmp_path, capsys):
    code = main(["train", "--model", "cae", "--layers", "5,4", "--data", "digits", "--out",
                 str(tmp_path / "o")])
    assert code == 2
    assert "one hidden layer" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------- sparse, denoising and variational models
NEW_MODEL_RUNS = [
    (["--model", "sae", "--rho", "0.1"], "SparseAutoencoder",
     {"sparsity": "kl", "rho": 0.1, "beta": 3.0, "layers": (16,), "tied": False}),
    (["--model", "sae", "--sparsity", "l1", "--beta", "0.5", "--layers", "32,16", "--tied"],
     "SparseAutoencoder", {"sparsity": "l1", "beta": 0.5, "layers": (32, 16), "tied": True}),
    (["--model", "dae"], "DenoisingAutoencoder",
     {"noise": "masking", "noise_level": 0.25, "layers": (16,)}),
    (["--model", "dae", "--noise", "gaussian", "--noise-level", "1.5", "--layers", "24,12"],
     "DenoisingAutoencoder", {"noise": "gaussian", "noise_level": 1.5, "layers": (24, 12)}),
    (["--model", "dae", "--noise", "salt_pepper", "--noise-level", "0.2", "--tied",
      "--activation", "tanh"], "DenoisingAutoencoder",
     {"noise": "salt_pepper", "noise_level": 0.2, "tied": True, "activation": "tanh"}),
    (["--model", "vae"], "VariationalAutoencoder",
     {"layers": (16,), "n_latent": 20, "decoder": "bernoulli", "activation": "relu"}),
    (["--model", "vae", "--n-latent", "2", "--decoder", "gaussian", "--layers", "32,16",
      "--activation", "softplus"], "VariationalAutoencoder",
     {"layers": (32, 16), "n_latent": 2, "decoder": "gaussian", "activation": "softplus"}),
    (["--model", "deep_cae", "--layers", "32,8", "--lam", "0.2"], "DeepContractiveAutoencoder",
     {"layers": (32, 8), "lam": 0.2, "penalty": "exact", "gamma": 0.0, "tied": False}),
    (["--model", "deep_cae", "--layers", "24,8", "--penalty", "stochastic", "--n-projections",
      "2", "--gamma", "0.5", "--sigma", "0.2", "--n-corrupt", "2", "--tied"],
     "DeepContractiveAutoencoder", {"penalty": "stochastic", "n_projections": 2, "gamma": 0.5,
                                    "sigma": 0.2, "n_corrupt": 2, "tied": True}),
    (["--model", "stacked", "--layers", "32,8", "--lam", "0.2"], "StackedAutoencoder",
     {"fine_tune": True}),
]
NEW_MODEL_SMALL = ["--data", "digits", "--n-train", "400", "--n-test", "100", "--epochs", "1",
                   "--hidden", "16", "--n-analysis", "10", "--quiet", "--random-state", "3"]


@pytest.mark.parametrize("argv,cls,expected", NEW_MODEL_RUNS,
                         ids=[" ".join(r[0][1:]) for r in NEW_MODEL_RUNS])
def test_train_save_load_inspect_each_new_model(argv, cls, expected, tmp_path, capsys,
                                                no_figures):
    out = tmp_path / "run"
    assert main(["train", *argv, *NEW_MODEL_SMALL, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    model = npcae.load(out / "model.npz")
    assert type(model).__name__ == cls
    params = model.get_params()
    for key, value in expected.items():
        assert params[key] == value, (key, params[key])
    assert params["epochs"] == 1 and params["random_state"] == 3
    assert model.n_iter_ == 1 and len(model.history_["total"]) == 1
    assert model.params["encoder.0.W"].shape[0] == 784
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == cls and np.isfinite(summary["test_terms"]["total"])
    if cls == "SparseAutoencoder":
        assert 0 < summary["test_mean_activation"] < 1
        assert "mean code activation on test points" in printed
    if cls == "DenoisingAutoencoder":
        assert summary["test_psnr_noisy_db"] == pytest.approx(
            10 * np.log10(1 / summary["test_noisy_mse_per_pixel"]))
        assert "PSNR noisy" in printed
    if cls == "VariationalAutoencoder":
        assert summary["test_elbo_per_image"] == pytest.approx(-summary["test_terms"]["total"],
                                                               rel=0.05)
        assert "test ELBO per image" in printed
    assert main(["inspect", str(out / "model.npz")]) == 0
    described = capsys.readouterr().out
    assert described.startswith(f"{cls} (") and "encoder.0.W: shape (784, " in described
    assert "trained 1 epochs" in described


def test_a_new_model_resumes_from_its_saved_file(tmp_path, capsys, no_figures):
    """The file `npcae train` writes is a complete training state (warm start is exact)."""
    out = tmp_path / "run"
    argv = ["--model", "dae", "--noise", "gaussian", "--noise-level", "0.3"]
    assert main(["train", *argv, *NEW_MODEL_SMALL, "--out", str(out)]) == 0
    X, _ = npcae.datasets.make_digits(60, random_state=0)
    model = npcae.load(out / "model.npz")
    model.set_params(warm_start=True, epochs=2).fit(X)
    assert model.n_iter_ == 3


def test_stacked_stages_take_the_stage_options(tmp_path, capsys, no_figures):
    out = tmp_path / "run"
    argv = ["--model", "stacked", "--stage-model", "dae", "--noise", "gaussian",
            "--noise-level", "0.2", "--layers", "24,8", "--no-fine-tune"]
    assert main(["train", *argv, *NEW_MODEL_SMALL, "--out", str(out)]) == 0
    model = npcae.load(out / "model.npz")
    assert model.get_params()["fine_tune"] is False and model.n_iter_ == 0
    assert [type(s).__name__ for s in model.stages_] == ["DenoisingAutoencoder"] * 2
    assert [s.get_params()["layers"] for s in model.stages_] == [(24,), (8,)]
    assert {s.noise for s in model.stages_} == {"gaussian"}
    assert model.transform(np.zeros((2, 784))).shape == (2, 8)
    assert main(["inspect", str(out / "model.npz")]) == 0


def test_vae_figures_and_summary(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "vae"
    assert main(["train", "--model", "vae", "--n-latent", "4", *NEW_MODEL_SMALL,
                 "--out", str(out)]) == 0
    for name in ("reconstructions.png", "filters.png", "spectrum.png", "tangents.png",
                 "history.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["mean_top5_singular_values"]) == 4      # d mu / d x: n_latent rows


def test_a_model_without_a_jacobian_skips_the_spectrum_and_tangents(tmp_path, capsys,
                                                                      monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.delattr(npcae.VariationalAutoencoder, "jacobian")
    out = tmp_path / "vae"
    assert main(["train", "--model", "vae", "--n-latent", "4", *NEW_MODEL_SMALL,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no encoder Jacobian: skipping the spectrum and tangent figures" in printed
    assert "||J_f(x)||" not in printed
    assert not (out / "spectrum.png").exists() and not (out / "tangents.png").exists()
    assert (out / "reconstructions.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jacobian"].startswith("skipped")
    assert "fraction_singular_values_below_1" not in summary


NEW_MODEL_BAD = [
    (["--model", "sae", "--rho", "0"], "--rho"), (["--model", "sae", "--rho", "1"], "--rho"),
    (["--model", "sae", "--rho", "nan"], "--rho"), (["--model", "sae", "--rho", "x"], "--rho"),
    (["--model", "sae", "--beta", "-1"], "--beta"), (["--model", "sae", "--beta", "inf"], "--beta"),
    (["--model", "sae", "--sparsity", "l2"], "--sparsity"),
    (["--model", "dae", "--noise-level", "-0.1"], "--noise-level"),
    (["--model", "dae", "--noise-level", "nan"], "--noise-level"),
    (["--model", "dae", "--noise-level", "1.5"], "--noise-level"),      # masking: a probability
    (["--model", "dae", "--noise", "salt_pepper", "--noise-level", "2"], "--noise-level"),
    (["--model", "dae", "--noise", "speckle"], "--noise"),
    (["--model", "vae", "--n-latent", "0"], "--n-latent"),
    (["--model", "vae", "--n-latent", "1.5"], "--n-latent"),
    (["--model", "vae", "--decoder", "poisson"], "--decoder"),
    (["--model", "sae", "--layers", "8,0"], "--layers"),
    # an option of another model is refused, not ignored
    (["--model", "dae", "--rho", "0.1"], "--rho"), (["--model", "sae", "--noise", "masking"],
                                                     "--noise"),
    (["--model", "ae", "--n-latent", "2"], "--n-latent"), (["--model", "cae", "--decoder",
                                                            "gaussian"], "--decoder"),
    (["--model", "vae", "--tied"], "--tied"), (["--model", "vae", "--loss", "mse"], "--loss"),
    (["--model", "sae", "--untied"], "--untied"), (["--model", "sae", "--lam", "0.1"], "--lam"),
    (["--model", "ae", "--gamma", "1"], "--gamma"), (["--model", "cae", "--penalty", "exact"],
                                                     "--penalty"),
    (["--model", "deep_cae", "--sigma", "0"], "--sigma"),
    (["--model", "deep_cae", "--penalty", "approx"], "--penalty"),
    (["--model", "deep_cae", "--n-corrupt", "0"], "--n-corrupt"),
    (["--model", "stacked", "--noise", "masking"], "--noise"),       # the stages are CAEs
    (["--model", "stacked", "--stage-model", "ae", "--lam", "0.1"], "--lam"),
    (["--model", "cae", "--no-fine-tune"], "--no-fine-tune"),
    (["--model", "stacked", "--stage-model", "vae"], "--stage-model"),
]


@pytest.mark.parametrize("command", ["train", "demo"])
@pytest.mark.parametrize("argv,option", NEW_MODEL_BAD,
                         ids=[" ".join(a) for a, _ in NEW_MODEL_BAD])
def test_new_model_options_are_argparse_errors(command, argv, option, tmp_path, capsys):
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exc:
        main([command, "--data", "digits", "--out", str(out), *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"npcae {command}: error: argument {option}" in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_new_model_options_take_their_defaults_and_boundaries():
    parse = build_parser().parse_args
    args = parse(["train", "--out", "o", "--model", "dae", "--noise", "gaussian",
                  "--noise-level", "7"])
    assert cli._check_model_options(args) is None and args.noise_level == 7.0
    args = parse(["train", "--out", "o", "--model", "dae", "--noise-level", "1"])
    assert cli._check_model_options(args) is None
    assert (args.noise, args.noise_level) == ("masking", 1.0)
    args = parse(["train", "--out", "o", "--model", "sae", "--beta", "0", "--rho", "0.999"])
    assert cli._check_model_options(args) is None
    assert (args.sparsity, args.beta, args.rho) == ("kl", 0.0, 0.999)
    args = parse(["train", "--out", "o", "--model", "vae"])
    assert cli._check_model_options(args) is None
    assert (args.n_latent, args.decoder, args.activation) == (20, "bernoulli", None)
    model = cli._build_model(args)
    assert model.activation == "relu" and model.layers == (64,)
    for command, lam in ((["train", "--out", "o"], 0.1), (["demo"], 0.5)):
        args = parse(command)                           # the CAE's --lam: the command's default
        assert cli._check_model_options(args) is None and args.lam == lam
        assert cli._build_model(args).lam == lam


# --------------------------------------------------------- gradcheck audit of the new models
def test_gradcheck_lists_every_new_model_configuration(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    for sparsity in ("kl", "l1"):
        for layers in ("(4,)", "(6, 3)"):
            for tag in ("tied", "untied"):
                assert any(line.startswith(f"model SparseAutoencoder({sparsity}, {layers},")
                           and f", {tag})" in line and line.rstrip().endswith("ok")
                           for line in out.splitlines()), (sparsity, layers, tag)
    for noise in ("masking", "gaussian", "salt_pepper"):
        assert sum(line.startswith(f"model DenoisingAutoencoder({noise} ")
                   and "corrupted fixed" in line for line in out.splitlines()) == 2, noise
    for decoder in ("bernoulli", "gaussian"):
        assert f"model VariationalAutoencoder({decoder}," in out


def _scaled_grad(original, key, factor):
    def loss_and_grad(self, X, **noise):
        loss, grads = original(self, X, **noise)
        grads[key] = grads[key] * factor
        return loss, grads
    return loss_and_grad


@pytest.mark.parametrize("cls,key", [("SparseAutoencoder", "decoder.0.b"),
                                     ("DenoisingAutoencoder", "encoder.0.W"),
                                     ("VariationalAutoencoder", "logvar.b")])
def test_gradcheck_fails_on_a_wrong_gradient_of_a_new_model(cls, key, monkeypatch, capsys):
    model_cls = getattr(npcae, cls)
    monkeypatch.setattr(model_cls, "loss_and_grad",
                        _scaled_grad(model_cls.loss_and_grad, key, 1.0001))
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    table = out.split("\n\n")[0].splitlines()          # the audit table, before the reports
    failed = [line for line in table if line.rstrip().endswith("FAIL")]
    assert failed and all(line.startswith(f"model {cls}(") for line in failed), failed
    assert sum(line.startswith(f"model {cls}(") for line in table) == len(failed)


def test_gradcheck_uses_the_given_corruption(monkeypatch, capsys):
    """A backward pass that reads the clean X where the encoder read the corrupted copy
    (dL/dW1 = X^T G instead of X~^T G) fails the audit: the noise really is held fixed."""
    from npcae.models.denoising import DenoisingAutoencoder
    original = DenoisingAutoencoder.loss_and_grad

    def clean_input_gradient(self, X, corrupted=None):
        loss, grads = original(self, X, corrupted=corrupted)
        _, clean = original(self, X, corrupted=X)       # the W1 gradient with X as input
        grads["encoder.0.W"] = clean["encoder.0.W"]
        return loss, grads
    monkeypatch.setattr(DenoisingAutoencoder, "loss_and_grad", clean_input_gradient)
    assert main(["gradcheck"]) == 1
    out = capsys.readouterr().out
    assert "FAIL model DenoisingAutoencoder(masking" in out


def test_gradcheck_fails_when_exp_logvar_is_used_as_sigma(monkeypatch, capsys):
    from npcae.models.vae import VariationalAutoencoder

    def sigma_bug(LV, out=None):
        return np.exp(LV, out=out)                      # exp(logvar) is the variance
    monkeypatch.setattr(VariationalAutoencoder, "_sigma", staticmethod(sigma_bug))
    assert main(["gradcheck"]) == 1
    assert "FAIL model VariationalAutoencoder(" in capsys.readouterr().out


# ------------------------------------------------ demos of the sparse, denoising and VAE models
NEW_DEMOS = [
    ("denoising.py", ["masking ", "gaussian ", "salt_pepper ", "PSNR = 10 log10(1 / MSE)"],
     ["denoising.png", "history_masking.png", "history_gaussian.png",
      "history_salt_pepper.png"]),
    ("sparse_codes.py", ["sparse (KL, rho = 0.05)  mean activation", "target rho 0.05"],
     ["mean_activation.png", "filters.png", "code_histogram.png", "history.png"]),
    ("vae_generation.py", ["n_latent 20: test ELBO per image", "n_latent  2: test ELBO per image",
                           "mean pixel intensity: prior samples"],
     ["prior_samples.png", "latent_manifold.png", "latent_means.png", "interpolations.png",
      "history.png"]),
]


@pytest.mark.parametrize("script,lines,figures", NEW_DEMOS, ids=[d[0] for d in NEW_DEMOS])
def test_new_model_demos_print_their_numbers_and_write_figures(script, lines, figures,
                                                               tmp_path):
    pytest.importorskip("matplotlib")
    from conftest import REPO
    out = tmp_path / "out"
    env = {**os.environ, "NPCAE_DATA_DIR": str(tmp_path / "no-mnist")}    # built-in digits
    done = subprocess.run([sys.executable, str(REPO / "demos" / script), "--out", str(out),
                           "--epochs", "1", "--n-train", "300", "--random-state", "1"],
                          cwd=REPO / "demos", capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert "built-in procedural digits" in done.stdout
    for line in lines:
        assert line in done.stdout, (line, done.stdout)
    assert "nan" not in done.stdout.lower(), done.stdout
    for name in figures:
        assert (out / name).stat().st_size > 0, name
    if script == "denoising.py":
        # every noise row: PSNR noisy and denoised, both finite numbers in dB
        rows = [line.split() for line in done.stdout.splitlines()
                if line.split()[:1] in (["masking"], ["gaussian"], ["salt_pepper"])]
        assert len(rows) == 3 and all(row[3] == "dB" and row[5] == "dB" for row in rows), rows
