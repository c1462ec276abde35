"""``npcae demo``'s report: what the CAE learned, measured against its twins, in ``report.md``.

:func:`write_report` takes the demo's trained :class:`~npcae.ContractiveAutoencoder`,
trains two twins on the same data with the same settings (the same CAE with
``lam = 0``, i.e. a plain autoencoder, and a denoising autoencoder of the same
size), measures all three, writes the figures, and writes ``report.md``: every
number with one or two sentences that say what it shows, figures embedded, to be
read top to bottom. Sections: training, reconstruction, the Jacobian's spectrum,
tangents against local PCA, tangents against the true ones (a CAE and its twin
trained on the built-in digits, whose renderer gives them), contraction, the
denoising-contractive link (measured on all three, plus the reconstruction vector
fields of 2-D models), codes as features (linear probe), anomaly scores (upright
against rotated test digits) and filters. The numbers come back as a dict (also saved as
``report.json``). Matplotlib is needed for the figures only; without it the
report is written without them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["write_report", "vector_field_panels"]

RADII = (0.1, 0.3, 1.0, 3.0, 10.0)
N_TANGENTS = 3
GAP_SIGMAS = (0.3, 0.1, 0.03)
GAP_PAIRS = 32
TRUE_TANGENT_LAM = 0.1
SCORE_KINDS = ("reconstruction", "jacobian")


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


def _true_tangents(n_train, n_test, n_hidden, epochs, random_state):
    """A CAE and its lam = 0 twin trained on the built-in digits, whose true tangents are known.

    The models are those of ``demos/true_tangents.py``: ``n_hidden`` tied sigmoid
    units, cross-entropy, lam = ``TRUE_TANGENT_LAM``, Adam lr 3e-3, batch 100.

    Each estimate proposes ``N_TANGENTS`` directions at each test digit; the number
    is their mean principal angle (degrees) to the true tangent space, the span of
    ``d x / d factor`` for the renderer's 7 factors (:func:`npcae.datasets.digit_tangents`).

    Returns
    -------
    numbers : dict
    X_test : ndarray, shape (n_test, 784)
    shown : dict label -> ndarray, shape (n_test, N_TANGENTS, 784)
        For the figure: the true space's own leading directions and three estimates.
    """
    from ._tangents import random_directions, reconstruction_tangent_directions, tangent_alignment
    from .analysis import local_pca_tangents, tangent_directions
    from .datasets import digit_tangents, render_digits, sample_digit_factors
    from .models import ContractiveAutoencoder
    from .optim import Adam
    train_seq, test_seq = np.random.SeedSequence(random_state).spawn(2)
    f_train = sample_digit_factors(n_train, random_state=np.random.default_rng(train_seq))
    f_test = sample_digit_factors(n_test, random_state=np.random.default_rng(test_seq))
    X, X_test = render_digits(f_train), render_digits(f_test)
    T = digit_tangents(f_test)                                      # (n_test, 7, d)
    estimates = {}
    for name, lam in (("CAE", TRUE_TANGENT_LAM), ("AE (lam = 0)", 0.0)):
        model = ContractiveAutoencoder(n_hidden=n_hidden, lam=lam, optimizer=Adam(lr=3e-3),
                                       batch_size=100, epochs=epochs,
                                       random_state=random_state).fit(X)
        estimates[f"{name}, J_r"] = reconstruction_tangent_directions(model, X_test,
                                                                      N_TANGENTS)[0]
        estimates[f"{name}, J_f"] = tangent_directions(model, X_test, N_TANGENTS)[0]
    estimates["local PCA"] = local_pca_tangents(X, X_test, n_neighbors=20,
                                                n_components=N_TANGENTS)
    estimates["random"] = random_directions(n_test, N_TANGENTS, X.shape[1],
                                            random_state=random_state)
    numbers = {"angles_deg": {name: float(tangent_alignment(U, T).mean())
                              for name, U in estimates.items()},
               "n_train": int(n_train), "n_test": int(n_test), "n_factors": int(T.shape[1]),
               "n_hidden": int(n_hidden), "lam": TRUE_TANGENT_LAM, "epochs": int(epochs)}
    true_leading = np.linalg.svd(T, full_matrices=False)[2][:, :N_TANGENTS]
    shown = {"true (renderer)": true_leading,
             **{name: estimates[name] for name in ("CAE, J_r", "CAE, J_f", "local PCA")}}
    return numbers, X_test, shown


def _link(models, X_test, n_points, random_state):
    """The DAE-CAE link (:func:`npcae._scores.dae_cae_gap`) measured on each model."""
    from ._scores import dae_cae_gap
    X_gap = X_test[:n_points]
    return {name: {"records": dae_cae_gap(model, X_gap, sigmas=GAP_SIGMAS, n_pairs=GAP_PAIRS,
                                          random_state=random_state),
                   "encoder_jacobian_sq": float(np.mean(model.jacobian_norm(X_gap) ** 2))}
            for name, model in models.items()}


def _anomalies(models, X_test, n_max=1000):
    """Test digits against test digits rotated by 90 degrees: AUC of each score of each model.

    Returns ``(numbers, curves)``, curves for :func:`npcae.plotting.plot_roc_curves`;
    ``(None, None)`` when the images are not square.
    """
    from ._scores import anomaly_scores, roc_auc
    d = X_test.shape[1]
    side = int(round(np.sqrt(d)))
    half = len(X_test) // 2
    if side * side != d or half < 2:
        return None, None
    n = min(n_max, half)
    turned = np.rot90(X_test[half:half + n].reshape(n, side, side), axes=(1, 2)).reshape(n, d)
    X_all = np.concatenate([X_test[:n], turned])
    labels = np.r_[np.zeros(n, dtype=int), np.ones(n, dtype=int)]
    auc, curves = {}, {}
    for kind in SCORE_KINDS:
        panel = curves[f"score: {kind}"] = {}
        for name, model in models.items():
            scores = anomaly_scores(model, X_all, kind=kind)
            auc.setdefault(name, {})[kind] = float(roc_auc(scores, labels))
            panel[name] = (scores, labels)
    return {"auc": auc, "n_each": int(n)}, curves


def vector_field_panels(random_state=0, epochs=200, n_samples=1500):
    """AE, DAE and CAE on a noisy circle and a noisy spiral: their fields ``r(x) - x``.

    The models are 2-64-2 (tanh hidden units, linear output, squared error, Adam
    lr 3e-3, batch 50, float64): no regularisation, Gaussian corruption with
    standard deviation 0.1, and a tied CAE with lam = 0.03.

    Returns
    -------
    panels : list of dict
        For :func:`npcae.plotting.plot_vector_fields` (one per model and curve).
    errors : dict
        ``"<curve> / <model>" ->`` mean squared reconstruction error on the
        training points.
    """
    from .datasets import make_manifold
    from .models import Autoencoder, ContractiveAutoencoder, DenoisingAutoencoder
    from .optim import Adam
    toy = dict(activation="tanh", output_activation="identity", loss="mse", epochs=epochs,
               batch_size=50, optimizer=Adam(lr=3e-3), random_state=random_state,
               dtype=np.float64)
    g = np.linspace(-1.25, 1.25, 21)
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    panels, errors = [], {}
    for kind, noise in (("circle", 0.05), ("spiral", 0.03)):
        data, _, _ = make_manifold(kind, n_samples, noise=noise, random_state=random_state)
        curve, t, _ = make_manifold(kind, 400, noise=0.0, random_state=0)   # the noiseless curve
        curve = curve[np.argsort(t)]
        toys = {"AE (no regularisation)": Autoencoder(layers=(64,), **toy),
                "DAE (Gaussian noise 0.1)": DenoisingAutoencoder(
                    layers=(64,), noise="gaussian", noise_level=0.1, **toy),
                "CAE (lam = 0.03, tied)": ContractiveAutoencoder(n_hidden=64, lam=0.03, **toy)}
        for name, model in toys.items():
            model.fit(data)
            errors[f"{kind} / {name}"] = float(np.mean(np.sum(
                (model.reconstruct(data) - data) ** 2, axis=1)))
            panels.append({"grid": grid, "vectors": model.reconstruct(grid) - grid,
                           "data": data, "curve": curve,
                           "title": f"{name}\non the {kind} (noise {noise:g})"})
    return panels, errors


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


def _extra_figures(out, extras):
    """Figures of the true tangents, the DAE-CAE link, the vector fields and the ROC curves."""
    try:
        from . import plotting
        plotting._pyplot()
    except ImportError:
        return {}
    files = {}
    if "true_tangents" in extras:
        X_true, shown = extras["true_tangents"]
        plotting.plot_tangent_comparison(
            X_true[:4], shown, image_shape=(28, 28), n_points=4, n_directions=N_TANGENTS,
            path=out / "true_tangents.png",
            title="Built-in digits: the true tangent space's 3 leading directions, the CAE's "
                  "reconstruction (J_r) and encoder (J_f) directions, and local PCA")
        files["true_tangents"] = "true_tangents.png"
    if "link" in extras:
        plotting.plot_gap_convergence(
            {name: v["records"] for name, v in extras["link"].items()},
            path=out / "gap_convergence.png",
            title="Gaussian denoising as a contractive penalty on r = g(f(x)): (E||x - r(x + "
                  "eps)||^2 - ||x - r(x)||^2) / sigma^2 against its sigma -> 0 limit")
        files["gap"] = "gap_convergence.png"
    if "vector_fields" in extras:
        plotting.plot_vector_fields(
            extras["vector_fields"], path=out / "vector_fields.png",
            title="Reconstruction vector field r(x) - x of 2-64-2 autoencoders on noisy 2-D "
                  "curves (tanh hidden units, linear output, squared error)")
        files["vector_fields"] = "vector_fields.png"
    if extras.get("roc"):
        plotting.plot_roc_curves(
            extras["roc"], path=out / "roc.png", ncols=2,
            title="Test digits (negatives) against test digits rotated by 90 degrees "
                  "(positives): ROC of two anomaly scores")
        files["roc"] = "roc.png"
    return files


def _fmt(v, digits=3):
    return f"{v:.{digits}g}"


def _md_true_tangents(numbers, files):
    t = numbers.get("true_tangents")
    if not t:
        return []
    a = t["angles_deg"]
    lines = ["## 5. Against the true tangents (built-in digits)", "",
             f"MNIST's true tangents are unknown. The built-in digits are drawn from known "
             f"factors (rotation, scale, aspect, shear, horizontal and vertical shift, stroke "
             f"thickness), so at each of them the true tangent space is known: the span of the "
             f"{t['n_factors']} derivatives d x / d factor. A CAE ({t['n_hidden']} tied sigmoid "
             f"units, lam = {t['lam']:g}) and its lam = 0 twin were trained on {t['n_train']} "
             f"built-in digits ({t['epochs']} epochs of Adam, lr 3e-3), and each "
             f"method's {N_TANGENTS} directions at {t['n_test']} new digits were compared with "
             f"that space (mean principal angle; 0 = inside it, 90 = orthogonal to it). J_r: the "
             f"leading left singular vectors of the reconstruction Jacobian dr/dx, the "
             f"directions the reconstruction moves along when x moves (the tangent plane of "
             f"the learned manifold). J_f: the leading right singular vectors of the encoder "
             f"Jacobian, the input directions the code is most sensitive to.", "",
             "| directions | mean angle to the true tangent space (degrees) |", "| --- | --- |"]
    lines += [f"| {name} | {v:.1f} |" for name, v in a.items()]
    below_r = a["random"] - a["CAE, J_r"]
    below_f = a["random"] - a["CAE, J_f"]
    lines += ["", f"The CAE's reconstruction directions are {below_r:.0f} degrees closer to the "
              f"true tangents than random directions, "
              f"{'closer' if a['CAE, J_r'] < a['AE (lam = 0), J_r'] else 'not closer'} than its "
              f"lam = 0 twin's ({a['AE (lam = 0), J_r']:.0f} degrees) and "
              f"{'closer' if a['CAE, J_r'] < a['local PCA'] else 'not closer'} than local PCA "
              f"of 20 training neighbours ({a['local PCA']:.0f} degrees). Its encoder "
              f"directions are {below_f:.0f} degrees closer than random (twin: "
              f"{a['random'] - a['AE (lam = 0), J_f']:.0f})."]
    if below_f < below_r / 2:
        lines[-1] += (" They are combinations of the encoder's filters, smooth patterns spread "
                      "over the whole image, while a stroke's true tangents are narrow bands "
                      "along its edges. J_r = diag(output slope) W_dec diag(hidden "
                      "slope) W^T also carries the output sigmoid's slope, large only on the "
                      "reconstructed digit's edges, which puts its directions where the true "
                      "tangents are.")
    lines.append("")
    if "true_tangents" in files:
        lines += [f"![true tangents]({files['true_tangents']})", ""]
    return lines


def _md_link(numbers, files):
    link = numbers.get("link")
    if not link:
        return []
    first = next(iter(link.values()))["records"]
    sig = " / ".join(f"{r['sigma']:g}" for r in first)
    lines = ["## 7. Denoising and contraction", "",
             f"A denoising autoencoder trained with Gaussian noise eps ~ N(0, sigma^2 I) "
             f"minimises E||x - r(x + eps)||^2. Expanding r to second order, (E||x - r(x + "
             f"eps)||^2 - ||x - r(x)||^2) / sigma^2 tends to ||J_r(x)||_F^2 - (x - r(x)) . Lap "
             f"r(x) as sigma -> 0 (Lap: the Laplacian of each output). So small Gaussian noise "
             f"penalises the Jacobian of the whole reconstruction r = g(f(x)), as the CAE's "
             f"penalty does the encoder's (Alain & Bengio). Measured on "
             f"{first[0]['n_samples']} test digits: the left side by Monte Carlo "
             f"({first[0]['n_pairs']} antithetic pairs of noise per digit, mean +- one standard "
             f"error), the limit with each model's own first and second derivatives.", "",
             "Columns: the mean ||J_f(x)||_F^2 (what the CAE penalises) and ||J_r(x)||_F^2 "
             "(what small Gaussian noise penalises), the Laplacian term, the limit (the second "
             "minus the third), and the left side at each sigma with its relative distance "
             "from the limit.", "",
             f"| model | J_f squared | J_r squared | (x - r) . Lap r | limit | left side at "
             f"sigma = {sig} | (left - limit) / limit |", "| --- |" + " --- |" * 6]
    worst_first, worst_last, within = 0.0, 0.0, True
    for name, v in link.items():
        recs = v["records"]
        lines.append(
            f"| {name} | {_fmt(v['encoder_jacobian_sq'])} | {_fmt(recs[0]['jacobian_term'])} | "
            f"{_fmt(recs[0]['laplacian_term'])} | {_fmt(recs[0]['rhs'], 4)} | "
            + " / ".join(f"{_fmt(r['lhs'], 4)} +- {_fmt(r['lhs_se'], 2)}" for r in recs) + " | "
            + " / ".join(f"{r['relative_gap']:+.1%}" for r in recs) + " |")
        worst_first = max(worst_first, abs(recs[0]["relative_gap"]))
        worst_last = max(worst_last, abs(recs[-1]["relative_gap"]))
        within &= abs(recs[-1]["gap"]) <= 2 * recs[-1]["lhs_se"]
    worst_se = max(abs(v["records"][-1]["relative_gap_se"]) for v in link.values())
    lines += ["", f"The largest relative gap over the models is {worst_first:.1%} at "
              f"sigma = {first[0]['sigma']:g} and {worst_last:.1%} at sigma = "
              f"{first[-1]['sigma']:g} (one standard error there: up to {worst_se:.1%}); at the "
              f"smallest sigma the left side is "
              + ("within two standard errors of the limit for every model: the expansion holds "
                 "to this precision." if within else
                 "not within two standard errors of the limit for every model (see the figure: "
                 "the gap should shrink like sigma^2 until the Monte-Carlo noise hides it).")]
    if within and worst_last > worst_first / 2:
        lines[-1] += (" These draws are too few to see the gap shrink like sigma^2 (the noise is "
                      "as large as the gap); the figure's right panel pairs the draws across "
                      "sigma, and demos/dae_cae_link.py takes more of them.")
    names = list(link)
    jr = {n: link[n]["records"][0]["jacobian_term"] for n in names}
    smallest = min(jr, key=jr.get)
    lines[-1] += (f" The model with the smallest reconstruction Jacobian is {smallest} "
                  f"(||J_r||_F^2 = {_fmt(jr[smallest])}). The denoising twin here was trained "
                  f"with masking noise, not Gaussian, so the identity describes what Gaussian "
                  f"noise of that size would add to its loss, not its own objective.")
    lines.append("")
    if "gap" in files:
        lines += [f"![gap]({files['gap']})", ""]
    errors = numbers.get("vector_field_errors")
    if "vector_fields" in files and errors:
        lines += [f"![vector fields]({files['vector_fields']})", "",
                  "The same idea in two dimensions: each arrow is r(x) - x at a grid point, "
                  "where the reconstruction sends that point. A model that has learned the curve "
                  "sends nearby points onto it, so the arrows point at the curve from both sides "
                  "and are short along it; the DAE's field is, for small noise, proportional to "
                  "the gradient of the log-density of the data. Mean squared reconstruction "
                  "error on the training points: "
                  + "; ".join(f"{k} {_fmt(v, 2)}" for k, v in errors.items()) + ".", ""]
    return lines


def _md_anomalies(numbers, files):
    an = numbers.get("anomaly")
    if not an:
        return []
    auc = an["auc"]
    lines = ["## 9. Anomaly scores", "",
             f"Each model scored {an['n_each']} test digits and {an['n_each']} other test digits "
             f"rotated by 90 degrees, which no model saw in training, with two scores: "
             f"reconstruction (the digit's reconstruction loss) and jacobian (||J_f(x)||_F^2, "
             f"the encoder's local sensitivity). The ROC AUC is the probability that a rotated "
             f"digit scores higher than an upright one (1: perfect, 0.5: chance):", "",
             "| model | " + " | ".join(SCORE_KINDS) + " |", "| --- |" + " --- |" * len(SCORE_KINDS)]
    lines += [f"| {name} | " + " | ".join(f"{by[k]:.3f}" for k in SCORE_KINDS) + " |"
              for name, by in auc.items()]
    best = max(((name, k) for name in auc for k in SCORE_KINDS), key=lambda nk: auc[nk[0]][nk[1]])
    lines += ["", f"The best detector here is {best[0]} with the {best[1]} score (AUC "
              f"{auc[best[0]][best[1]]:.3f})."]
    inverted = [f"{name} ({by['jacobian']:.3f})" for name, by in auc.items()
                if by["jacobian"] < 0.5]
    if inverted:
        lines[-1] += (" The jacobian score ranks rotated digits below upright ones for "
                      + ", ".join(inverted) + ": far from the data the hidden units saturate, "
                      "so the Jacobian is small there too, and a small Jacobian does not mean "
                      "'familiar'.")
    lines.append("")
    if "roc" in files:
        lines += [f"![roc]({files['roc']})", ""]
    return lines


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
    if abs(cae["bce_per_image"] - ae["bce_per_image"]) < 0.01 * abs(ae["bce_per_image"]):
        lines += ["", f"The penalty barely changed the reconstruction: the CAE's error is "
                  f"{_fmt(cae['bce_per_image'], 4)} against {_fmt(ae['bce_per_image'], 4)} "
                  f"without it (less than 1% apart).", ""]
    elif cae["bce_per_image"] > ae["bce_per_image"]:
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
              f"noisier, and part of them sits on border pixels that no training digit lights: "
              f"the encoder never sees those pixels vary, so nothing ties its weights on them "
              f"to the data.", ""]
    if "tangents" in files:
        lines += [f"![tangents]({files['tangents']})", ""]
    lines += _md_true_tangents(numbers, files)
    lines += ["## 6. Contraction", "",
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
    lines += _md_link(numbers, files)
    lines += ["## 8. Codes as features", "",
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
    lines += _md_anomalies(numbers, files)
    if "filters" in files:
        lines += ["## 10. Filters", "", f"![filters]({files['filters']})", "",
                  "Each hidden unit's incoming weights as an image: the strokes the units "
                  "respond to.", ""]
    lines += ["## Where to go next", "",
              "`demos/deep_contractive.py` (deep and stacked CAEs, CAE+H), "
              "`demos/true_tangents.py` (tangents against the renderer's true ones), "
              "`demos/probe_features.py` (features of many models), `demos/anomaly.py`, "
              "`demos/dae_cae_link.py`; every derivation is in `docs/derivations.md`.", ""]
    return "\n".join(lines)


def write_report(cae, X, y, X_test, y_test, out, *, data_desc, n_analysis=500,
                 random_state=0, existing_figures=(), verbose=True, n_true_train=5000,
                 n_true_test=100, n_true_hidden=512, n_true_epochs=10, n_gap=100,
                 toy_epochs=200):
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
    n_true_train, n_true_test, n_true_hidden, n_true_epochs : int
        The true-tangent section: built-in digits on which a CAE of
        ``n_true_hidden`` units and its lam = 0 twin are trained for
        ``n_true_epochs``, and digits at which their directions are compared with
        the renderer's true tangents.
    n_gap : int
        Test digits at which the denoising-contractive link is measured.
    toy_epochs : int
        Epochs of the 2-D models whose reconstruction vector fields are drawn.

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
    extras = {}
    numbers["true_tangents"], X_true, shown = _true_tangents(
        n_true_train, n_true_test, n_true_hidden, n_true_epochs, random_state)
    extras["true_tangents"] = (X_true, shown)
    extras["link"] = _link(models, X_test, n_gap, random_state)
    numbers["link"] = extras["link"]
    extras["vector_fields"], numbers["vector_field_errors"] = vector_field_panels(
        random_state, epochs=toy_epochs)
    numbers["anomaly"], extras["roc"] = _anomalies(models, X_test)
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
    files.update(_extra_figures(out, extras))
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
