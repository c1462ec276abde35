"""Deep contractive encoders: a one-layer CAE, a stacked CAE, a deep CAE with the exact penalty
on the whole encoder's Jacobian, and CAE+H, compared on the same data and code size.

Every model maps 784 pixels to a 64-unit sigmoid code, reconstructs with a sigmoid decoder and
cross-entropy summed over pixels, and is trained with Adam (lr 3e-3), batch 100, the same data
and random_state; lam = 0.5 weighs ||J(x)||_F^2 wherever a contractive penalty is used:
  * deep AE (lam = 0): 784-256-64, untied, no penalty: the reference for "not contractive";
  * CAE, one layer: the classic tied 784-64 CAE (Rifai et al., 2011), lam = 0.5;
  * stacked CAE, greedy: two tied CAE stages (784-256, then 256-64, lam = 0.5 each, --epochs
    each), stacked into 784-256-64 without further training;
  * stacked CAE, fine-tuned: the same stages, then --epochs of joint fine-tuning on
    reconstruction only (the penalties shape the pretraining, not the fine-tuning);
  * deep CAE, exact: 784-256-64, untied, lam = 0.5 on the exact ||J||_F^2 of the whole encoder;
  * deep CAE, stochastic: the same with the unbiased estimate from 4 Rademacher projections;
  * deep CAE+H: the exact deep CAE plus gamma = 0.5 times the curvature term
    E ||J(x) - J(x + eps)||_F^2, eps ~ N(0, 0.3^2 I) (2 perturbed copies per row).
So the one-layer CAE and the deep models penalise the same quantity, the Jacobian of x -> code
(the stacked stages penalise each layer's own Jacobian); the stacked models see 2 or 3 times
--epochs of training (stages, then fine-tuning), the others --epochs.

    python demos/deep_contractive.py --out demo-deep [--epochs 10] [--n-train 5000]

Prints, per model: the training time; the test reconstruction error (cross-entropy per image,
-model.score, and squared error per pixel); the mean singular spectrum of the whole encoder's
Jacobian J(x) = dh/dx on 500 test digits (the mean top-3 singular values, how many exceed 0.1 of
each point's largest, the fraction below 1, the mean ||J||_F); and the contraction ratio
mean ||f(x + r u) - f(x)|| / r over 10 random unit directions u per test digit, at radii r from
0.1 to 10 (Euclidean norm in pixel space: a test digit's own norm is printed for scale; the
perturbed images are not clipped to [0, 1], the encoders accept any real input). Then a short
reading of the numbers. Writes spectra.png (mean singular values per model, log scale),
contraction.png (contraction ratio against r) and reconstructions.png (test digits, then each
model's reconstructions).
"""
import textwrap
import time

import matplotlib

matplotlib.use("Agg")                   # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import load_data, parse_args  # noqa: E402

import npcae  # noqa: E402
from npcae import plotting  # noqa: E402
from npcae.analysis import contraction_ratio, jacobian_spectrum, summarize_spectrum  # noqa: E402

LAYERS = (256, 64)
LAM, GAMMA, SIGMA, N_CORRUPT = 0.5, 0.5, 0.3, 2
RADII = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)
N_ANALYSIS = 500                        # test digits for the spectra and the contraction ratios
N_SHOWN = 10
SIDE = 28

args = parse_args(__doc__.splitlines()[0], "demo-deep", epochs=10, n_train=5000)
X, _, X_test, _ = load_data(args.n_train, random_state=args.random_state)
optimizer = npcae.optim.Adam(lr=3e-3)   # copied by every model, never shared state
common = dict(optimizer=optimizer, batch_size=100, epochs=args.epochs,
              random_state=args.random_state)
deep = dict(layers=LAYERS, activation="sigmoid", output_activation="sigmoid", loss="bce",
            tied=False, **common)


def stages():
    return [npcae.ContractiveAutoencoder(n_hidden=width, lam=LAM, optimizer=optimizer,
                                         batch_size=100, epochs=args.epochs)
            for width in LAYERS]


MODELS = {
    "deep AE (lam = 0)": lambda: npcae.Autoencoder(**deep),
    "CAE, one layer": lambda: npcae.ContractiveAutoencoder(n_hidden=LAYERS[-1], lam=LAM,
                                                           **common),
    "stacked CAE, greedy": lambda: npcae.StackedAutoencoder(stages=stages(), fine_tune=False,
                                                            **common),
    "stacked CAE, fine-tuned": lambda: npcae.StackedAutoencoder(stages=stages(), fine_tune=True,
                                                                **common),
    "deep CAE, exact": lambda: npcae.DeepContractiveAutoencoder(lam=LAM, penalty="exact",
                                                                **deep),
    "deep CAE, stochastic": lambda: npcae.DeepContractiveAutoencoder(
        lam=LAM, penalty="stochastic", n_projections=4, **deep),
    "deep CAE+H": lambda: npcae.DeepContractiveAutoencoder(
        lam=LAM, penalty="exact", gamma=GAMMA, sigma=SIGMA, n_corrupt=N_CORRUPT, **deep),
}

X_an = X_test[:N_ANALYSIS]
results = {}
for name, make in MODELS.items():
    start = time.perf_counter()
    model = make().fit(X)
    seconds = time.perf_counter() - start
    svals = jacobian_spectrum(model, X_an)
    results[name] = dict(
        model=model, seconds=seconds, bce=-model.score(X_test),
        mse=float(np.mean((model.reconstruct(X_test) - X_test) ** 2)), svals=svals,
        summary=summarize_spectrum(svals, rank_threshold=0.1),
        ratios=contraction_ratio(model, X_an, RADII, n_directions=10,
                                 random_state=args.random_state))
    print(f"trained {name:<24} in {seconds:6.1f} s", flush=True)

# ---- table 1: reconstruction and the Jacobian spectrum
width = max(len(name) for name in MODELS)
print(f"\nReconstruction (all {len(X_test)} test digits) and the singular values of the whole "
      f"encoder's Jacobian J(x) = dh/dx ({LAYERS[-1]} x {X.shape[1]}) on {len(X_an)} test "
      f"digits:")
print(f"{'model':<{width}}  {'train s':>7}  {'BCE/image':>9}  {'MSE/pixel':>9}  "
      f"{'mean top-3 singular values':>26}  {'#s > 0.1 s1':>11}  {'s < 1':>6}  {'||J||_F':>7}")
for name, r in results.items():
    s, top3 = r["summary"], r["summary"]["mean_singular_values"][:3]
    print(f"{name:<{width}}  {r['seconds']:7.1f}  {r['bce']:9.2f}  {r['mse']:9.4f}  "
          f"{'  '.join(f'{v:6.3f}' for v in top3):>26}  {s['effective_rank']:11.1f}  "
          f"{s['fraction_below_one']:6.1%}  {s['mean_frobenius_norm']:7.3f}")

# ---- table 2: contraction ratios
digit_norm = float(np.mean(np.linalg.norm(X_an, axis=1)))
print(f"\nContraction ratio mean ||f(x + r u) - f(x)|| / r (u uniform on the unit sphere of "
      f"pixel space, 10 per digit; a test digit's norm ||x|| is {digit_norm:.1f} on average):")
print(f"{'model':<{width}}  " + "  ".join(f"{f'r = {r:g}':>8}" for r in RADII))
for name, r in results.items():
    print(f"{name:<{width}}  " + "  ".join(f"{v:8.4f}" for v in r["ratios"]))

# ---- what the numbers say
ref = results["deep AE (lam = 0)"]
one, exact = results["CAE, one layer"], results["deep CAE, exact"]
greedy, tuned = results["stacked CAE, greedy"], results["stacked CAE, fine-tuned"]
stoch, cah = results["deep CAE, stochastic"], results["deep CAE+H"]


def fro(r):
    return f"{r['summary']['mean_frobenius_norm']:.2f}"


top_ratio = max(float(np.max(r["ratios"])) for r in results.values())
reading = [
    "The singular values of J(x) are the factors by which the encoder stretches (above 1) or "
    "shrinks (below 1) an infinitesimal step from x along each input direction (its right "
    "singular vector). A contractive encoder keeps a few large ones, the tangent directions of "
    "the data manifold at x, along which the code must follow the digit to reconstruct it, and "
    "squeezes all the others, far below 1.",
    f"One-layer CAE: largest singular value {one['summary']['mean_singular_values'][0]:.2f}, "
    f"{one['summary']['fraction_below_one']:.0%} of all below 1, "
    f"{one['summary']['effective_rank']:.1f} above a tenth of the largest.",
    f"Deep CAE (exact): ||J||_F {fro(exact)} against {fro(ref)} for the deep AE without penalty "
    f"and {fro(one)} for the one-layer CAE; largest singular value "
    f"{exact['summary']['mean_singular_values'][0]:.2f}, "
    f"{exact['summary']['fraction_below_one']:.0%} below 1; cross-entropy "
    f"{exact['bce']:.1f} per image against {ref['bce']:.1f} and {one['bce']:.1f}.",
    f"The stochastic penalty estimates the same ||J||_F^2 from 4 projections per minibatch: "
    f"||J||_F {fro(stoch)}, trained in {stoch['seconds']:.1f} s against "
    f"{exact['seconds']:.1f} s.",
    f"CAE+H also penalises how much J changes between x and points about "
    f"sigma * sqrt(784) = {SIGMA * np.sqrt(X.shape[1]):.1f} away: ||J||_F {fro(cah)} and "
    f"{cah['summary']['effective_rank']:.1f} singular values above a tenth of the largest, "
    f"against {exact['summary']['effective_rank']:.1f} for the exact deep CAE "
    f"(cross-entropy {cah['bce']:.1f}).",
    f"Stacked CAE: the greedy stack has ||J||_F {fro(greedy)}; fine-tuning it on "
    f"reconstruction alone (cross-entropy {greedy['bce']:.1f} -> {tuned['bce']:.1f}) moves "
    f"||J||_F to {fro(tuned)}, since no penalty is kept in that objective.",
    "The contraction ratio measures finite steps in random directions. A random direction is "
    "nearly orthogonal to the few tangent ones, so for small r the ratio is close to "
    "||J||_F/sqrt(784); where it falls at large r the sigmoid units saturate, where it rises "
    "the encoder gets steeper away from x. "
    + ("Every ratio is below 1: every encoder contracts random steps of every size tried."
       if top_ratio < 1 else f"The largest ratio is {top_ratio:.2f}: some steps are "
       f"stretched."),
]
print("\nReading the numbers:")
for paragraph in reading:
    print(textwrap.fill(paragraph, width=96, initial_indent="  ", subsequent_indent="    ",
                        break_on_hyphens=False))

# ---- figures
plotting.plot_spectrum({name: r["svals"] for name, r in results.items()},
                       path=args.out / "spectra.png",
                       title=f"Whole-encoder Jacobian spectrum on {len(X_an)} test digits\n(mean, "
                             f"10-90th percentile band)")
plotting.plot_contraction_curves(RADII, {name: r["ratios"] for name, r in results.items()},
                                 path=args.out / "contraction.png")

rows = [("test digits", X_test[:N_SHOWN])]
rows += [(name, r["model"].reconstruct(X_test[:N_SHOWN])) for name, r in results.items()]
fig, axes = plt.subplots(len(rows), N_SHOWN, figsize=(1.0 * N_SHOWN + 2.4, 1.0 * len(rows) + 0.6),
                         squeeze=False, layout="constrained")
for i, (label, images) in enumerate(rows):
    for j in range(N_SHOWN):
        ax = axes[i, j]
        ax.imshow(images[j].reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
fig.suptitle("Test digits (top) and each model's reconstructions", fontsize=11)
plotting.save_figure(fig, args.out / "reconstructions.png")
plt.close(fig)
print(f"figures in {args.out}/")
