"""npcae.report: the numbers in report.md are the measured ones, and its sentences follow them."""
import json

import numpy as np
import pytest

import npcae
from npcae import report
from npcae.analysis import contraction_ratio, jacobian_spectrum


SMALL_EXTRAS = dict(n_true_train=300, n_true_test=12, n_true_hidden=16, n_true_epochs=2,
                    n_gap=15, toy_epochs=3)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    X, y, X_test, y_test, desc = npcae.datasets.load_train_test("digits", 400, 120,
                                                                random_state=0)
    cae = npcae.ContractiveAutoencoder(n_hidden=12, lam=0.5, epochs=2, random_state=0)
    cae.fit(X, validation_data=X_test)
    out = tmp_path_factory.mktemp("report")
    numbers = report.write_report(cae, X, y, X_test, y_test, out, data_desc=desc,
                                  n_analysis=40, verbose=False, **SMALL_EXTRAS)
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
    cae["bce_per_image"] = 100.5
    assert "barely changed the reconstruction" in report._markdown(
        flipped, {}, "CAE (lam = 0.5)", "data", "settings")


@pytest.fixture(scope="module")
def written_all(tmp_path_factory):
    X, y, X_test, y_test, desc = npcae.datasets.load_train_test("digits", 300, 80,
                                                                random_state=1)
    cae = npcae.ContractiveAutoencoder(n_hidden=10, lam=0.5, epochs=2, random_state=1)
    cae.fit(X)
    out = tmp_path_factory.mktemp("report_all")
    numbers = report.write_report(cae, X, y, X_test, y_test, out, data_desc=desc,
                                  n_analysis=20, verbose=False, random_state=1, **SMALL_EXTRAS)
    return cae, X_test, out, numbers


def test_link_and_anomaly_numbers_are_recomputable(written_all):
    from npcae._scores import anomaly_scores, dae_cae_gap, roc_auc
    cae, X_test, out, numbers = written_all
    saved = json.loads((out / "report.json").read_text())
    recs = dae_cae_gap(cae, X_test[:15], sigmas=report.GAP_SIGMAS,
                      n_pairs=report.GAP_PAIRS, random_state=1)
    got = saved["link"]["CAE (lam = 0.5)"]["records"]
    assert [r["lhs"] for r in got] == pytest.approx([r["lhs"] for r in recs], rel=1e-9)
    assert got[0]["rhs"] == pytest.approx(recs[0]["rhs"], rel=1e-9)
    n = saved["anomaly"]["n_each"]
    assert n == 40                                       # half of the 80 test digits
    turned = np.rot90(X_test[40:80].reshape(n, 28, 28), axes=(1, 2)).reshape(n, -1)
    labels = np.r_[np.zeros(n), np.ones(n)]
    for kind in report.SCORE_KINDS:
        scores = anomaly_scores(cae, np.concatenate([X_test[:n], turned]), kind=kind)
        assert saved["anomaly"]["auc"]["CAE (lam = 0.5)"][kind] == pytest.approx(
            roc_auc(scores, labels))


def test_true_tangent_angles_are_the_measured_ones(written_all):
    from npcae._tangents import random_directions, tangent_alignment
    from npcae.datasets import digit_tangents, sample_digit_factors
    _, _, out, numbers = written_all
    t = numbers["true_tangents"]
    _, test_seq = np.random.SeedSequence(1).spawn(2)
    f_test = sample_digit_factors(12, random_state=np.random.default_rng(test_seq))
    T = digit_tangents(f_test)
    U = random_directions(12, report.N_TANGENTS, 784, random_state=1)
    assert t["angles_deg"]["random"] == pytest.approx(tangent_alignment(U, T).mean())
    assert set(t["angles_deg"]) == {"CAE, J_r", "CAE, J_f", "AE (lam = 0), J_r",
                                    "AE (lam = 0), J_f", "local PCA", "random"}
    assert all(0 <= v <= 90 for v in t["angles_deg"].values())


def test_every_section_and_figure_is_in_the_report(written_all):
    _, _, out, numbers = written_all
    text = (out / "report.md").read_text()
    for heading in ("## 5. Against the true tangents", "## 7. Denoising and contraction",
                    "## 9. Anomaly scores"):
        assert heading in text
    for f in ("true_tangents.png", "gap_convergence.png", "vector_fields.png", "roc.png"):
        assert (out / f).stat().st_size > 0 and f"]({f})" in text
    for line in text.splitlines():        # no norm bars inside a table row (they split cells)
        if line.startswith("| "):
            assert "||" not in line, line


def test_new_sections_switch_wording_when_the_numbers_do(written_all):
    _, _, _, numbers = written_all
    flipped = json.loads(json.dumps({k: v for k, v in numbers.items() if k != "files"}))
    a = flipped["true_tangents"]["angles_deg"]
    a.update({"CAE, J_r": 40.0, "AE (lam = 0), J_r": 50.0, "local PCA": 45.0, "random": 85.0,
              "CAE, J_f": 80.0})
    text = "\n".join(report._md_true_tangents(flipped, {}))
    assert "45 degrees closer to the true tangents than random" in text
    assert "closer than its lam = 0 twin's" in text and "closer than local PCA" in text
    assert "smooth patterns" in text                     # J_f far behind J_r: explained
    a.update({"CAE, J_r": 60.0, "local PCA": 45.0, "CAE, J_f": 61.0})
    text = "\n".join(report._md_true_tangents(flipped, {}))
    assert "not closer than its lam = 0 twin's" in text and "not closer than local PCA" in text
    assert "smooth patterns" not in text
    rec = flipped["link"]["CAE (lam = 0.5)"]["records"][-1]
    rec["gap"], rec["lhs_se"] = 1.0, 0.1
    assert "not within two standard errors" in "\n".join(report._md_link(flipped, {}))
    for by in flipped["link"].values():
        by["records"][-1]["gap"], by["records"][-1]["lhs_se"] = 0.0, 0.1
    assert "the expansion holds" in "\n".join(report._md_link(flipped, {}))
    auc = flipped["anomaly"]["auc"]
    for by in auc.values():
        by["jacobian"] = 0.7
    assert "does not mean" not in "\n".join(report._md_anomalies(flipped, {}))
    auc["AE (lam = 0)"]["jacobian"] = 0.3
    text = "\n".join(report._md_anomalies(flipped, {}))
    assert "for AE (lam = 0) (0.300)" in text
    auc["AE (lam = 0)"]["reconstruction"] = 0.99
    assert "is AE (lam = 0) with the reconstruction score (AUC 0.990)" in "\n".join(
        report._md_anomalies(flipped, {}))
