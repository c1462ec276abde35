"""npcae.report: the numbers in report.md are the measured ones, and its sentences follow them."""
import json

import numpy as np
import pytest

import npcae
from npcae import report
from npcae.analysis import contraction_ratio, jacobian_spectrum


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    X, y, X_test, y_test, desc = npcae.datasets.load_train_test("digits", 400, 120,
                                                                random_state=0)
    cae = npcae.ContractiveAutoencoder(n_hidden=12, lam=0.5, epochs=2, random_state=0)
    cae.fit(X, validation_data=X_test)
    out = tmp_path_factory.mktemp("report")
    numbers = report.write_report(cae, X, y, X_test, y_test, out, data_desc=desc,
                                  n_analysis=40, verbose=False)
    return cae, X, X_test, out, numbers


def test_numbers_are_the_measured_ones(written):
    cae, X, X_test, out, numbers = written
    saved = json.loads((out / "report.json").read_text())
    m = saved["models"]["CAE (lam = 0.5)"]
    s = jacobian_spectrum(cae, X_test[:40])
    assert m["fraction_below_1"] == pytest.approx(np.mean(s < 1.0))
    assert m["top5_singular_values"] == pytest.approx(list(s.mean(axis=0)[:5]), rel=1e-6)
    np.testing.assert_allclose(m["contraction"], contraction_ratio(
        cae, X_test[:40], report.RADII, n_directions=10, random_state=0), rtol=1e-6)
    assert m["bce_per_image"] == pytest.approx(-cae.score(X_test))
    assert saved["n_analysis"] == 40 and saved["n_probe_train"] == 400


def test_sentences_follow_the_numbers(written):
    _, _, _, out, numbers = written
    text = (out / "report.md").read_text()
    cae = numbers["models"]["CAE (lam = 0.5)"]
    ae = numbers["models"]["AE (lam = 0)"]
    faster = cae["s10_over_s1"] < ae["s10_over_s1"]
    assert ("spectrum decays faster" in text) == faster
    assert ("spectrum does not decay faster" in text) == (not faster)
    more = cae["contraction"][0] < ae["contraction"][0]
    assert (f"the CAE contracts {'more' if more else 'less'} than its twin") in text
    assert f"{numbers['probe_raw_pixels']:.1%}" in text


def test_markdown_switches_wording_when_the_numbers_do(written):
    _, _, _, _, numbers = written
    flipped = json.loads(json.dumps({k: v for k, v in numbers.items() if k != "files"}))
    cae, ae = flipped["models"]["CAE (lam = 0.5)"], flipped["models"]["AE (lam = 0)"]
    cae["s10_over_s1"], ae["s10_over_s1"] = 0.1, 0.9
    cae["contraction"][0], ae["contraction"][0] = 0.5, 0.1
    cae["bce_per_image"], ae["bce_per_image"] = 200.0, 100.0
    text = report._markdown(flipped, {}, "CAE (lam = 0.5)", "data", "settings")
    assert "spectrum decays faster" in text and "contracts less than its twin" in text
    assert "The penalty costs some reconstruction" in text
    cae["bce_per_image"] = 50.0
    assert "did not cost reconstruction" in report._markdown(flipped, {}, "CAE (lam = 0.5)",
                                                             "data", "settings")
