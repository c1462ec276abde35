"""demos/rifai2011_table.py --quick end to end (built-in digits): table, results.json, figures."""
import json
import os
import subprocess
import sys

import pytest

METHODS = ("CAE", "DAE-g", "AE", "random")


@pytest.mark.slow
def test_rifai_demo_quick_prints_the_table_and_writes_results(tmp_path):
    pytest.importorskip("matplotlib")
    from conftest import REPO
    env = {**os.environ, "NPCAE_DATA_DIR": str(tmp_path / "no-mnist"), "OPENBLAS_NUM_THREADS": "1"}

    def run(out, *extra):
        done = subprocess.run([sys.executable, str(REPO / "demos" / "rifai2011_table.py"),
                               "--quick", "--out", str(out), *extra], cwd=REPO / "demos",
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        return done

    out = tmp_path / "out"
    done = run(out)
    stdout = done.stdout
    assert "built-in procedural digits" in stdout
    assert "nan" not in stdout.lower(), stdout
    assert ("grid: CAE lam in [0.5, 1.0, 2.0], DAE-g sigma in [0.25, 0.5]; fine-tuning lr in "
            "[0.5, 0.1] for every method") in stdout
    results = json.loads((out / "results.json").read_text())
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    rows = lines[header + 1:header + 1 + len(METHODS)]
    paper = {"CAE": "1.14", "DAE-g": "1.18", "AE": "1.78", "random": "-"}
    for method, row in zip(METHODS, rows):
        fields = row.split()
        assert fields[0] == method, row
        value, lr = results["chosen"][method]
        assert fields[1] == ("" if value is None else
                             f"{'lam' if method == 'CAE' else 'sigma'}={value:g},") + f"lr={lr:g}"
        assert fields[3] == "+-" and 0 <= float(fields[2]) < 50, row
        assert fields[5] == paper[method] and fields[6] == "3", row
    assert results["stage"] == "done"
    assert set(results["chosen"]) == set(METHODS)
    assert results["chosen"]["CAE"][0] in (0.5, 1.0, 2.0)
    assert results["chosen"]["DAE-g"][0] in (0.25, 0.5)
    assert results["chosen"]["AE"][0] is None and results["chosen"]["random"][0] is None
    assert all(lr in (0.5, 0.1) for _, lr in results["chosen"].values())
    # seed 0 ran every grid point, (3 + 2 + 1 + 1) values x 2 learning rates; seeds 1 and 2
    # the chosen ones: 14 + 2 * 4 runs
    assert len(results["records"]) == 22
    seed0 = [(r["method"], r["value"], r["ft_lr"]) for r in results["records"] if r["seed"] == 0]
    assert len(set(seed0)) == 14
    # the rows are the chosen points' runs: the chosen point has the lowest seed-0 val error
    for method in METHODS:
        runs = [r for r in results["records"] if r["method"] == method and r["seed"] == 0]
        best = min(runs, key=lambda r: r["val_error"])
        assert [best["value"], best["ft_lr"]] == results["chosen"][method]
        mean = sum(r["test_error"] for r in results["records"] if r["method"] == method
                   and [r["value"], r["ft_lr"]] == results["chosen"][method]) / 3
        assert f"{mean:.2f}" == rows[METHODS.index(method)].split()[2]
    for record in results["records"]:
        assert 0 <= record["saturated_before"] <= 1 and record["jnorm_before"] > 0
        assert record["val_error_curve"] and record["epochs_run"] >= 1
        assert 1 <= record["best_epoch"] <= record["epochs_run"]
        # the kept parameters are those of the best validation epoch over all stages
        assert record["val_error"] == pytest.approx(min(record["val_error_curve"]))
    for name in ("table.png", "curves.png", "table.txt"):
        assert (out / name).stat().st_size > 0, name

    # two worker processes: the same runs, the same numbers, in the same order
    run(tmp_path / "out2", "--jobs", "2")
    parallel = json.loads((tmp_path / "out2" / "results.json").read_text())
    keys = ("method", "value", "ft_lr", "seed", "val_error", "test_error", "val_error_curve")
    assert [[r[k] for k in keys] for r in parallel["records"]] == \
        [[r[k] for k in keys] for r in results["records"]]
    assert parallel["chosen"] == results["chosen"]
