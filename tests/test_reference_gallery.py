"""demos/bug_gallery.py runs (quick mode) and npcae's verifier names every mistake in it."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = {
    "(correct gradient)": "every gradient agrees",
    "penalty gradient x2": "gradient is 2x the right one",
    "penalty gradient x0.5": "gradient is half the right one",
    "sum over the batch": "the whole objective is summed over the batch",
    "penalty summed over the batch": "the contractive term is summed over the batch",
    "W detached in the penalty": "W is held constant (detached)",
    "integer division": "the contractive term's gradient is missing",
    "wrong activation derivative": "uses sigmoid's derivative for a tanh encoder",
    "transposed layout": "a square weight's gradient is transposed",
    "(correct sparse KL)": "every gradient agrees",
    "KL per activation": "the sparse KL is applied to each activation",
    "(correct VAE)": "every gradient agrees",
    "sigma = exp(logvar)": "sigma is taken as exp(logvar)",
}


def test_bug_gallery_quick_names_every_mistake():
    done = subprocess.run([sys.executable, str(ROOT / "demos" / "bug_gallery.py"), "--quick"],
                          capture_output=True, text=True, timeout=120,
                          env={"OPENBLAS_NUM_THREADS": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr
    rows = {}
    for line in done.stdout.splitlines():
        parts = [p.strip() for p in line.split(" | ")]
        if len(parts) == 4 and parts[0] in EXPECTED:
            rows[parts[0]] = parts
    assert set(rows) == set(EXPECTED)
    for mistake, (_, said, error, effect) in rows.items():
        assert EXPECTED[mistake] in said, (mistake, said)
        assert (float(error) < 1e-10) == mistake.startswith("(correct")
        assert effect
