"""``npcae demo``'s report: what the CAE learned, measured against its twins, in ``report.md``.

:func:`write_report` takes the demo's trained :class:`~npcae.ContractiveAutoencoder`,
trains two twins on the same data with the same settings (the same CAE with
``lam = 0``, i.e. a plain autoencoder, and a denoising autoencoder of the same
size), measures all three, writes the figures, and writes ``report.md``: every
number with one or two sentences that say what it shows, figures embedded, to be
read top to bottom. The numbers come back as a dict (also saved as
``report.json``). Matplotlib is needed for the figures only; without it the
report is written without them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["write_report"]

RADII = (0.1, 0.3, 1.0, 3.0, 10.0)
N_TANGENTS = 3


def _twins(cae, X, verbose):
    """The lam = 0 twin (a plain autoencoder) and a denoising twin, trained like ``cae``."""
    from .models import ContractiveAutoencoder, DenoisingAutoencoder
    p = cae.get_params()
    twins = {}
    t0 = time.perf_counter()
    twins["AE (lam = 0)"] = ContractiveAutoencoder(**{**p, "lam": 0.0, "verbose": 0}).fit(X)
    times = {"AE (lam = 0)": time.perf_counter() - t0}
    t0 = time.perf_counter()
    twins["DAE (masking 0.25)"] = DenoisingAutoencoder(
        layers=(p["n_hidden"],), noise="masking", noise_level=0.25, activation=p["activation"],
        output_activation=p["output_activation"], loss=p["loss"], tied=p["tied"],
        optimizer=p["optimizer"], batch_size=p["batch_size"], epochs=p["epochs"],
        random_state=p["random_state"], dtype=p["dtype"]).fit(X)
    times["DAE (masking 0.25)"] = time.perf_counter() - t0
    if verbose:
        for name, s in times.items():
            print(f"report: trained the twin {name} in {s:.1f} s", flush=True)
    return twins, times


def _measure(models, X, y, X_test, y_test, n_analysis, random_state):
    """Every number of the report (no figures)."""
    from .analysis import (contraction_ratio, jacobian_spectrum, local_pca_tangents,
                           subspace_angles, tangent_directions)
    from ._probe import PCA, linear_probe
    Xa = X_test[:n_analysis]
    numbers = {"models": {}}
    spectra, tangents = {}, {}
    n_q = min(100, len(Xa))
    local = local_pca_tangents(X[:20000], Xa[:n_q], n_neighbors=20, n_components=N_TANGENTS)
    rng = np.random.default_rng(random_state)
    random_dirs = rng.standard_normal((n_q, N_TANGENTS, X.shape[1]))
    numbers["random_vs_local_pca_deg"] = float(np.degrees(
        subspace_angles(random_dirs, local)).mean())
    n_probe = min(len(X), 5000)
    for name, model in models.items():
        m = {}
        R = model.reconstruct(X_test)
        m["bce_per_image"] = float(-model.score(X_test))
        m["mse_per_pixel"] = float(np.mean((R - X_test) ** 2))
        s = jacobian_spectrum(model, Xa).astype(np.float64)
        spectra[name] = s
        mean = s.mean(axis=0)
        m["top5_singular_values"] = [float(v) for v in mean[:5]]
        m["fraction_below_1"] = float(np.mean(s < 1.0))
        m["n_above_tenth_of_top"] = float(np.mean(np.sum(s > 0.1 * s[:, :1], axis=1)))
        m["s10_over_s1"] = float(np.mean(s[:, min(9, s.shape[1] - 1)] / s[:, 0]))
        m["jacobian_frobenius_mean"] = float(np.mean(np.sqrt(np.sum(s ** 2, axis=1))))
        m["contraction"] = [float(v) for v in contraction_ratio(
            model, Xa, RADII, n_directions=10, random_state=random_state)]
        T, _ = tangent_directions(model, Xa[:n_q], n_directions=N_TANGENTS)
        tangents[name] = T
        m["tangent_vs_local_pca_deg"] = float(np.degrees(subspace_angles(T, local)).mean())
        probe = linear_probe(model.transform(X[:n_probe]), y[:n_probe],
                             model.transform(X_test), y_test, random_state=random_state)
        m["probe_accuracy"] = float(probe.accuracy)
        m["code_size"] = int(model.transform(X_test[:1]).shape[1])
        numbers["models"][name] = m
    raw = linear_probe(X[:n_probe], y[:n_probe], X_test, y_test, random_state=random_state)
    cae = next(iter(models.values()))
    Z_train, Z_test = cae.transform(X[:n_probe]), cae.transform(X_test)
    pca = PCA(2).fit(Z_train)                 # the CAE code's first two principal components
    numbers["probe_codes_2d"] = float(linear_probe(
        pca.transform(Z_train), y[:n_probe], pca.transform(Z_test), y_test,
        random_state=random_state).accuracy)
    numbers["chance"] = float(np.max(np.bincount(y_test)) / len(y_test))
    numbers["probe_raw_pixels"] = float(raw.accuracy)
    numbers["n_probe_train"] = int(n_probe)
    numbers["n_analysis"] = int(len(Xa))
    numbers["n_tangent_points"] = int(n_q)
    return numbers, spectra, tangents, local


def _figures(out, models, numbers, spectra, tangents, local, X_test, y_test, cae_name):
    try:
        from . import plotting
        plotting._pyplot()
    except ImportError:
        return {}
    files = {}
    plotting.plot_spectrum(spectra, path=out / "spectra_compared.png", percentiles=(25, 75),
                           title=f"Singular values of the encoder Jacobian J_f(x): mean over "
                                 f"{numbers['n_analysis']} test digits\n(band: 25th-75th "
                                 f"percentile)")
    files["spectra"] = "spectra_compared.png"
    plotting.plot_contraction_curves(
        RADII, {name: m["contraction"] for name, m in numbers["models"].items()},
        path=out / "contraction.png")
    files["contraction"] = "contraction.png"
    side = int(round(np.sqrt(X_test.shape[1])))
    if side * side == X_test.shape[1]:
        shown = {f"{name} J_f": T for name, T in tangents.items() if "DAE" not in name}
        shown["local PCA"] = local
        plotting.plot_tangent_comparison(
            X_test[:4], shown, image_shape=(side, side), n_points=4, n_directions=N_TANGENTS,
            path=out / "tangents_compared.png",
            title="Leading tangent directions at four test digits: the CAE's, its lam = 0 "
                  "twin's, and local PCA of 20 training neighbours")
        files["tangents"] = "tangents_compared.png"
    from ._probe import PCA
    Z_test = models[cae_name].transform(X_test)
    pca = PCA(2).fit(Z_test)                  # the test codes' own first two components
    Z2, explained = pca.transform(Z_test), float(np.sum(pca.explained_variance_ratio_))
    plotting.plot_code_scatter(
        Z2, y_test, path=out / "codes.png",
        title=f"CAE codes of the test digits, coloured by label\nfirst two principal "
              f"components ({explained:.0%} of the code variance)",
        xlabel="principal component 1 of the code", ylabel="principal component 2 of the code")
    files["codes"] = "codes.png"
    return files


def _fmt(v, digits=3):
    return f"{v:.{digits}g}"


def _markdown(numbers, files, cae_name, data_desc, settings):
    """The report, top to bottom, each number with what it shows."""
    M = numbers["models"]
    cae, ae = M[cae_name], M["AE (lam = 0)"]
    lines = ["# What the contractive autoencoder learned", "",
             f"Data: {data_desc}. Model: {settings}. The CAE minimises the reconstruction "
             f"cross-entropy plus lam * ||J_f(x)||_F^2, the squared Frobenius norm of the "
             f"encoder's Jacobian. To see what the penalty does, two twins were trained on the "
             f"same data with the same settings: the same model with lam = 0 (a plain "
             f"autoencoder), and a denoising autoencoder of the same size (25% of the pixels "
             f"set to 0 at every step).", ""]
    if "history" in files:
        lines += ["## 1. Training", "", f"![training curves]({files['history']})", ""]
        gap = numbers.get("train_val_gap")
        if gap is not None:
            close = abs(gap) < 0.05
            lines += [f"The objective per epoch on the training digits and on 2000 held-out "
                      f"digits. After the last epoch the held-out value is {abs(gap):.1%} "
                      f"{'above' if gap > 0 else 'below'} the training value: "
                      + ("the two stay close, so the model has not memorised the training set."
                         if close else "a visible gap; more data or fewer epochs would "
                                       "narrow it."), ""]
    lines += ["## 2. Reconstruction", "",
              "| model | cross-entropy per image | squared error per pixel |",
              "| --- | --- | --- |"]
    lines += [f"| {n} | {_fmt(m['bce_per_image'], 4)} | {_fmt(m['mse_per_pixel'])} |"
              for n, m in M.items()]
    if cae["bce_per_image"] > ae["bce_per_image"]:
        lines += ["", f"The penalty costs some reconstruction: the CAE's error is "
                  f"{_fmt(cae['bce_per_image'], 4)} against {_fmt(ae['bce_per_image'], 4)} "
                  f"without it. That is the trade the CAE makes: it gives up detail in "
                  f"directions the data does not use in exchange for a more contracted code.",
                  ""]
    else:
        lines += ["", f"Here the penalty did not cost reconstruction: the CAE's error is "
                  f"{_fmt(cae['bce_per_image'], 4)} against {_fmt(ae['bce_per_image'], 4)} "
                  f"without it (the penalty also acts as a regulariser).", ""]
    if "reconstructions" in files:
        lines += [f"![reconstructions]({files['reconstructions']})", ""]
    lines += ["## 3. The manifold: the Jacobian's singular values", "",
              f"At each of {numbers['n_analysis']} test digits the encoder Jacobian J_f(x) "
              f"(code size x 784) has singular values: how much the code moves for a small "
              f"step in the input along each right singular vector.", "",
              "| model | mean top 5 singular values | fraction below 1 | "
              "number above 10% of the top | s10 / s1 | mean Frobenius norm of J_f |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {n} | {', '.join(_fmt(v) for v in m['top5_singular_values'])} | "
              f"{m['fraction_below_1']:.1%} | {m['n_above_tenth_of_top']:.1f} | "
              f"{_fmt(m['s10_over_s1'])} | {_fmt(m['jacobian_frobenius_mean'])} |"
              for n, m in M.items()]
    faster = cae["s10_over_s1"] < ae["s10_over_s1"]
    lines += ["", f"The CAE's spectrum {'decays faster' if faster else 'does not decay faster'} "
              f"than its lam = 0 twin's: its tenth singular value is "
              f"{_fmt(cae['s10_over_s1'])} of its first, against {_fmt(ae['s10_over_s1'])}, and "
              f"{cae['fraction_below_1']:.0%} of its singular values are below 1 (twin: "
              f"{ae['fraction_below_1']:.0%}). A few large singular values and many small ones "
              f"is the signature of a learned low-dimensional manifold: the code follows the "
              f"digit along a few directions and ignores the rest.", ""]
    if "spectra" in files:
        lines += [f"![spectra]({files['spectra']})", ""]
    lines += ["## 4. Tangent directions", "",
              f"The right singular vectors with the largest singular values are the directions "
              f"the code is most sensitive to: the model's tangents to the digit manifold. An "
              f"independent estimate of the same tangents is local PCA: the leading principal "
              f"directions of each test digit's 20 nearest training digits. Mean principal angle "
              f"between the {N_TANGENTS} leading directions and the {N_TANGENTS} local-PCA "
              f"directions, over {numbers['n_tangent_points']} test digits (90 degrees = "
              f"unrelated, 0 = the same plane):", "",
              "| directions | mean angle to local PCA (degrees) |", "| --- | --- |"]
    lines += [f"| {n} | {m['tangent_vs_local_pca_deg']:.1f} |" for n, m in M.items()]
    lines += [f"| random directions | {numbers['random_vs_local_pca_deg']:.1f} |", "",
              f"Random directions are almost orthogonal to the data's tangent plane in 784 "
              f"dimensions; the CAE's leading directions are {cae['tangent_vs_local_pca_deg']:.0f}"
              f" degrees from it, against {ae['tangent_vs_local_pca_deg']:.0f} for the lam = 0 "
              f"twin. The figure shows them as images: red and blue are the pixels that "
              f"brighten and darken along the direction (the sign is arbitrary). Local PCA's "
              f"directions, taken from real neighbouring digits, show what tangents of these "
              f"digits look like (strokes shifting and thickening); the models' directions are "
              f"noisier, and part of them sits on border pixels that no training digit lights, "
              f"which the reconstruction never constrains.", ""]
    if "tangents" in files:
        lines += [f"![tangents]({files['tangents']})", ""]
    lines += ["## 5. Contraction", "",
              "The contraction ratio ||f(x + r u) - f(x)|| / r, averaged over test digits and "
              "random unit directions u, measures how much the encoder shrinks a step of size "
              "r in input space:", "",
              "| model | " + " | ".join(f"r = {r:g}" for r in RADII) + " |",
              "| --- |" + " --- |" * len(RADII)]
    lines += [f"| {n} | " + " | ".join(_fmt(v) for v in m["contraction"]) + " |"
              for n, m in M.items()]
    lower = cae["contraction"][0] < ae["contraction"][0]
    lines += ["", f"Near the data (r = {RADII[0]:g}) the CAE contracts "
              f"{'more' if lower else 'less'} than its twin ({_fmt(cae['contraction'][0])} "
              f"against {_fmt(ae['contraction'][0])}): random steps leave the manifold, and "
              f"the penalty teaches the encoder to ignore them.", ""]
    if "contraction" in files:
        lines += [f"![contraction]({files['contraction']})", ""]
    lines += ["## 6. Codes as features", "",
              f"A linear classifier (multinomial logistic regression, the same settings for "
              f"every row) trained on {numbers['n_probe_train']} training digits' features, "
              f"tested on the test digits:", "",
              "| features | test accuracy |", "| --- | --- |",
              f"| raw pixels (784) | {numbers['probe_raw_pixels']:.1%} |"]
    lines += [f"| {n} codes | {m['probe_accuracy']:.1%} |" for n, m in M.items()]
    lines += ["", f"Each code is {cae['code_size']} numbers against 784 pixels; the probe "
              f"measures how much of the class survives that compression, linearly. The "
              f"CAE's codes reach {cae['probe_accuracy']:.1%} against "
              f"{numbers['probe_raw_pixels']:.1%} for the raw pixels.", ""]
    if "codes" in files:
        lines += [f"![codes]({files['codes']})", "",
                  f"The CAE's codes of the test digits projected on their first two principal "
                  f"components, coloured by the true label, which the model never saw. The same "
                  f"probe on these two coordinates alone reaches {numbers['probe_codes_2d']:.1%}"
                  f" (chance: {numbers['chance']:.1%}).", ""]
    if "filters" in files:
        lines += ["## 7. Filters", "", f"![filters]({files['filters']})", "",
                  "Each hidden unit's incoming weights as an image: the strokes the units "
                  "respond to.", ""]
    lines += ["## Where to go next", "",
              "`demos/deep_contractive.py` (deep and stacked CAEs, CAE+H), "
              "`demos/true_tangents.py` (tangents against the renderer's true ones), "
              "`demos/probe_features.py` (features of many models), `demos/anomaly.py`, "
              "`demos/dae_cae_link.py`; every derivation is in `docs/derivations.md`.", ""]
    return "\n".join(lines)


def write_report(cae, X, y, X_test, y_test, out, *, data_desc, n_analysis=500,
                 random_state=0, existing_figures=(), verbose=True):
    """Train the twins, measure, write the figures, ``report.md`` and ``report.json``.

    Parameters
    ----------
    cae : ContractiveAutoencoder
        The demo's trained model.
    X, y, X_test, y_test : arrays
        Training and test images ``(n, d)`` in [0, 1] and their integer labels.
    out : path
        Output folder (exists).
    data_desc : str
        What the data are (printed in the report).
    existing_figures : iterable of str
        Files the demo already wrote (``history.png``, ``reconstructions.png``,
        ``filters.png``), embedded when present.

    Returns
    -------
    dict
        The numbers (as in ``report.json``).
    """
    from .io import atomic_write
    out = Path(out)
    twins, times = _twins(cae, X, verbose)
    cae_name = f"CAE (lam = {cae.lam:g})"
    models = {cae_name: cae, **twins}
    t0 = time.perf_counter()
    numbers, spectra, tangents, local = _measure(models, X, y, X_test, y_test, n_analysis,
                                                 random_state)
    numbers["twin_train_seconds"] = times
    hist = getattr(cae, "history_", {})
    if hist.get("val_total") and hist.get("total"):
        numbers["train_val_gap"] = float(hist["val_total"][-1] / hist["total"][-1] - 1.0)
    files = {}
    for f in existing_figures:
        key = Path(f).stem
        if key in ("history", "reconstructions", "filters"):
            files[key] = f
    files.update(_figures(out, models, numbers, spectra, tangents, local, X_test, y_test,
                          cae_name))
    numbers["measure_seconds"] = time.perf_counter() - t0
    settings = (f"{cae.n_hidden} sigmoid hidden units, {'tied' if cae.tied else 'untied'} "
                f"weights, lam = {cae.lam:g}, {cae.epochs} epochs of Adam, batch "
                f"{cae.batch_size}, {len(X)} training digits")
    text = _markdown(numbers, files, cae_name, data_desc, settings)
    atomic_write(out / "report.md", lambda fh: fh.write(text.encode()))
    atomic_write(out / "report.json", lambda fh: fh.write(json.dumps(numbers, indent=2)
                                                          .encode()))
    numbers["files"] = ["report.md", "report.json", *files.values()]
    return numbers
