"""True tangents of the built-in digits: how closely do a CAE's Jacobian directions follow them?

The built-in digits are rendered from known factors, so at every test digit x the true tangent
space is known: T_x = span of dx/df for the 7 factors rotation, scale, aspect, shear, shift x,
shift y and stroke thickness (npcae.datasets.digit_tangents: central differences of the
renderer with the digit's random warp held fixed). Each method below proposes k directions at
x; we report principal angles between their span and T_x:

  * CAE, J_r: the k leading left singular vectors of the reconstruction Jacobian dr/dx (the
    directions the reconstruction moves along: the learned manifold's tangent plane);
  * CAE, J_f: the k leading right singular vectors of the encoder Jacobian dh/dx (the input
    directions the code is most sensitive to; Rifai et al., 2011);
  * AE (lam = 0), J_r and J_f: the same for the same model trained without the penalty;
  * local PCA: the k principal directions of the 20 training digits nearest to x;
  * random on the edge: k random directions confined to x's anti-aliased edge pixels
    (0 < x < 1), where all true tangents live: knows where to look, not which way;
  * random: k random directions in the 784-pixel space (the chance level).

Mean principal angle = the mean over the test digits and over the min(k, 7) = k principal
angles between the k-dimensional estimate and the 7-dimensional T_x (0: inside T_x; 90:
orthogonal to it). It is printed for k = 1, 3 and 7 (7: the same dimension as T_x).

    python demos/true_tangents.py --out demo-true-tangents

Both models are ContractiveAutoencoder(n_hidden=512, sigmoid, tied, cross-entropy) trained
with Adam (lr 3e-3, batch 100) on the same digits and random_state, lam = 0.1 and lam = 0.
Always uses the built-in digits (the true tangents need the renderer): the training set is
load_train_test("digits", ...)'s. Writes tangents.png (true tangents next to each method's
directions at a few test digits), projections.png (each true tangent and what each method's
7-dimensional span keeps of it) and angles.png (mean principal angles by index).
"""
import argparse
import textwrap
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")                   # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import npcae  # noqa: E402
from npcae import plotting  # noqa: E402
from npcae._tangents import (random_directions, reconstruction_tangent_directions,  # noqa: E402
                             summarize_angles, tangent_alignment)
from npcae.analysis import local_pca_tangents, tangent_directions  # noqa: E402
from npcae.datasets import (DIGIT_FACTOR_NAMES, digit_tangents, render_digits,  # noqa: E402
                            sample_digit_factors)

K_SHOWN = (1, 3, 7)
N_NEIGHBORS = 20
N_FIGURE = 3                            # test digits in the figures
SIDE = 28
FACTOR_LABELS = {"rotation": "rotation", "scale": "scale", "aspect": "aspect",
                 "shear": "shear", "shift_x": "shift x", "shift_y": "shift y",
                 "thickness": "thickness"}

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--out", default=Path("demo-true-tangents"), type=Path)
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--n-train", type=int, default=10000)
p.add_argument("--n-test", type=int, default=100,
               help="held-out digits at which the tangents are compared (default 100)")
p.add_argument("--n-hidden", type=int, default=512)
p.add_argument("--lam", type=float, default=0.1, help="the CAE's penalty weight (default 0.1)")
p.add_argument("--random-state", "--seed", dest="random_state", type=int, default=0,
               help="seed of the digits and of the models (default 0)")
args = p.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
t_start = time.perf_counter()

# ---- data: the digits of load_train_test("digits"), with their factors
train_stream, test_stream = np.random.SeedSequence(args.random_state).spawn(2)
f_train = sample_digit_factors(args.n_train, random_state=np.random.default_rng(train_stream))
f_test = sample_digit_factors(args.n_test, random_state=np.random.default_rng(test_stream))
X, X_test = render_digits(f_train), render_digits(f_test)
T_true = digit_tangents(f_test)                                    # (n_test, 7, 784)
m = T_true.shape[1]
print(f"data: built-in procedural digits, {len(X)} train / {len(X_test)} test; true tangents "
      f"d x / d f for {m} factors ({', '.join(DIGIT_FACTOR_NAMES)})")

# ---- models
common = dict(n_hidden=args.n_hidden, optimizer=npcae.optim.Adam(lr=3e-3), batch_size=100,
              epochs=args.epochs, random_state=args.random_state)
models = {}
for name, lam in ((f"CAE (lam = {args.lam:g})", args.lam), ("AE (lam = 0)", 0.0)):
    start = time.perf_counter()
    models[name] = npcae.ContractiveAutoencoder(lam=lam, **common).fit(X)
    print(f"trained {name:<16} in {time.perf_counter() - start:5.1f} s (test cross-entropy "
          f"{-models[name].score(X_test):.1f} per image)", flush=True)
cae_name, ae_name = list(models)

# ---- tangent estimates, k = 7 directions each (the first k of them for smaller k)
estimates = {}
for name, model in models.items():
    short = name.split(" ")[0]
    estimates[f"{short}, J_r"] = reconstruction_tangent_directions(model, X_test, m)[0]
    estimates[f"{short}, J_f"] = tangent_directions(model, X_test, m)[0]
estimates["local PCA"] = local_pca_tangents(X, X_test, n_neighbors=N_NEIGHBORS, n_components=m)
edge = (X_test > 0) & (X_test < 1)
estimates["random on the edge"] = random_directions(len(X_test), m, X.shape[1],
                                                    random_state=args.random_state,
                                                    support=edge)
estimates["random"] = random_directions(len(X_test), m, X.shape[1],
                                        random_state=args.random_state + 1)
angles = {name: {k: tangent_alignment(U[:, :k], T_true) for k in K_SHOWN}
          for name, U in estimates.items()}
mean = {name: {k: summarize_angles(a)["mean"] for k, a in by_k.items()}
        for name, by_k in angles.items()}

# ---- table
width = max(len(name) for name in estimates)
print(f"\nMean principal angle (degrees) between the span of k directions and the true "
      f"{m}-dimensional tangent space, over {len(X_test)} test digits (J_r: left singular "
      f"vectors of the reconstruction Jacobian dr/dx; J_f: right singular vectors of the "
      f"encoder Jacobian dh/dx):")
print(f"{'method':<{width}}  " + "  ".join(f"{f'k = {k}':>7}" for k in K_SHOWN)
      + "  " + "  ".join(f"{f'random - (k={k})':>14}" for k in K_SHOWN))
for name in estimates:
    print(f"{name:<{width}}  " + "  ".join(f"{mean[name][k]:7.1f}" for k in K_SHOWN) + "  "
          + "  ".join(f"{mean['random'][k] - mean[name][k]:14.1f}" for k in K_SHOWN))


# ---- reading
def gap(a, b, k):
    return mean[b][k] - mean[a][k]


below_r = {k: gap("CAE, J_r", "random", k) for k in K_SHOWN}
below_f = {k: gap("CAE, J_f", "random", k) for k in K_SHOWN}
reading = [
    f"A random k-dimensional subspace of the 784-pixel space is almost orthogonal to the "
    f"{m}-dimensional true tangent space (about {mean['random'][m]:.0f} degrees at k = {m}); "
    f"confining random directions to the digit's edge pixels, where every true tangent lives, "
    f"brings them to about {mean['random on the edge'][m]:.0f} degrees.",
    "CAE, J_r: the directions the CAE's reconstruction moves along are "
    + ", ".join(f"{below_r[k]:.1f}" for k in K_SHOWN)
    + " degrees closer to the true tangents than random (k = "
    + ", ".join(str(k) for k in K_SHOWN) + "), "
    + ", ".join(f"{gap('CAE, J_r', 'AE, J_r', k):.1f}" for k in K_SHOWN)
    + " degrees closer than the same directions of the AE without penalty, and "
    + ", ".join(f"{gap('CAE, J_r', 'local PCA', k):+.1f}" for k in K_SHOWN)
    + f" degrees against local PCA of the {N_NEIGHBORS} nearest training digits (positive: "
    "the CAE is closer).",
    "CAE, J_f: the input directions the CAE's code is most sensitive to are "
    + ", ".join(f"{below_f[k]:.1f}" for k in K_SHOWN)
    + " degrees closer than random, "
    + ", ".join(f"{gap('CAE, J_f', 'AE, J_f', k):.1f}" for k in K_SHOWN)
    + " degrees closer than the AE's (themselves "
    + ", ".join(f"{gap('AE, J_f', 'random', k):.1f}" for k in K_SHOWN)
    + f" from random). They are combinations of the {args.n_hidden} encoder filters weighted "
    "by the units' slopes: smooth patterns spread over the whole image (tangents.png), while "
    "the true tangents are thin bands on the digit's 1-pixel edge. The reconstruction "
    "Jacobian J_r = diag(sigmoid'(output)) W diag(slopes) W^T also carries the output "
    "sigmoid's slope, large only where the reconstructed digit has its edges, which puts its "
    "directions there.",
]
print("\nReading the numbers:")
for paragraph in reading:
    print(textwrap.fill(paragraph, width=96, initial_indent="  ", subsequent_indent="    ",
                        break_on_hyphens=False))


# ---- figure 1: true tangents next to each method's directions
def symmetric(v):
    a = float(np.max(np.abs(v)))
    return v / a if a > 0 else v


shown = [("true tangent\nd x / d factor", T_true), ("CAE, J_r\n(reconstruction)", None),
         ("CAE, J_f\n(encoder)", None), (f"local PCA\n({N_NEIGHBORS} neighbours)", None)]
shown = [(label, T if T is not None else estimates[key]) for (label, T), key in
         zip(shown, (None, "CAE, J_r", "CAE, J_f", "local PCA"))]
rows = N_FIGURE * len(shown)
fig, axes = plt.subplots(rows, m + 1, figsize=(1.25 * (m + 1) + 1.6, 1.3 * rows + 1.0),
                         squeeze=False)
fig.subplots_adjust(left=0.12, right=0.9, bottom=0.02, top=1 - 0.9 / (1.3 * rows + 1.0),
                    wspace=0.06, hspace=0.35)
im = None
for i in range(N_FIGURE):
    for r, (label, T) in enumerate(shown):
        row = i * len(shown) + r
        ax = axes[row, 0]
        if r == 0:
            ax.imshow(X_test[i].reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(f"test digit {i}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.axis("off")
        ax.text(-0.15, 0.5, label, transform=ax.transAxes, ha="right", va="center",
                fontsize=8)
        for j in range(m):
            ax = axes[row, j + 1]
            im = ax.imshow(symmetric(T[i, j]).reshape(SIDE, SIDE), cmap="RdBu_r", vmin=-1,
                           vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(FACTOR_LABELS[DIGIT_FACTOR_NAMES[j]] if r == 0 else
                         f"direction {j + 1}", fontsize=7)
cax = fig.add_axes([0.92, 0.3, 0.015, 0.4])
fig.colorbar(im, cax=cax, label="pixel value / max |pixel| (sign arbitrary)")
fig.suptitle("True tangents of test digits (one per factor) and the directions each method "
             "proposes\n(the methods' directions need not match the factors one by one: "
             "compare the spans, see projections.png)", fontsize=10)
plotting.save_figure(fig, args.out / "tangents.png")
plt.close(fig)


# ---- figure 2: what each 7-dimensional span keeps of each true tangent
def project(T, U):
    """Orthogonal projection of the rows of T (m, d) onto the span of the rows of U (k, d)."""
    Q = np.linalg.qr(U.T)[0]                       # (d, k) orthonormal
    return (T @ Q) @ Q.T


methods = ("CAE, J_r", "CAE, J_f", "AE, J_r", "local PCA", "random on the edge")
digit = 0
rows = 1 + len(methods)
fig, axes = plt.subplots(rows, m + 1, figsize=(1.25 * (m + 1) + 1.6, 1.3 * rows + 1.0),
                         squeeze=False)
fig.subplots_adjust(left=0.13, right=0.9, bottom=0.02, top=1 - 1.0 / (1.3 * rows + 1.0),
                    wspace=0.06, hspace=0.4)
truth = T_true[digit]
scale = np.max(np.abs(truth), axis=1)             # each column on its true tangent's scale
panels = [("true tangent", truth)] + [(name, project(truth, estimates[name][digit]))
                                      for name in methods]
for r, (label, P) in enumerate(panels):
    ax = axes[r, 0]
    if r == 0:
        ax.imshow(X_test[digit].reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title("test digit", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.axis("off")
    ax.text(-0.15, 0.5, label if r == 0 else f"projection on\n{label}", transform=ax.transAxes,
            ha="right", va="center", fontsize=8)
    for j in range(m):
        ax = axes[r, j + 1]
        im = ax.imshow((P[j] / scale[j]).reshape(SIDE, SIDE), cmap="RdBu_r", vmin=-1, vmax=1,
                       interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        kept = np.linalg.norm(P[j]) / np.linalg.norm(truth[j])
        ax.set_title(FACTOR_LABELS[DIGIT_FACTOR_NAMES[j]] if r == 0 else f"keeps {kept:.0%}",
                     fontsize=7)
cax = fig.add_axes([0.92, 0.3, 0.015, 0.4])
fig.colorbar(im, cax=cax, label="pixel value / max |true tangent pixel|")
fig.suptitle("Each true tangent (top row) and its orthogonal projection on each method's "
             f"{m}-dimensional span\n('keeps' = ||projection|| / ||tangent|| = cosine of the "
             "angle between the tangent and the span)", fontsize=10)
plotting.save_figure(fig, args.out / "projections.png")
plt.close(fig)

# ---- figure 3: mean principal angles by index, k = m
fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
idx = np.arange(1, m + 1)
STYLE = {"CAE, J_r": ("tab:blue", "-", "o"), "CAE, J_f": ("tab:blue", ":", "s"),
         "AE, J_r": ("tab:red", "-", "o"), "AE, J_f": ("tab:red", ":", "s"),
         "local PCA": ("tab:green", "-", "^"), "random on the edge": ("0.45", "--", "x"),
         "random": ("black", "--", "x")}
for name in estimates:
    colour, line, marker = STYLE[name]
    what = (" = dr/dx, reconstruction" if name.endswith("J_r") else
            " = dh/dx, encoder" if name.endswith("J_f") else "")
    ax.plot(idx, summarize_angles(angles[name][m])["per_index"], color=colour, ls=line,
            marker=marker, label=f"{name}{what} (mean {mean[name][m]:.1f})")
ax.set_xlabel(f"principal angle index i (1 = smallest of the {m})")
ax.set_ylabel("mean principal angle over test digits (degrees)")
ax.set_ylim(0, 90)
ax.set_yticks(range(0, 91, 15))
ax.set_xticks(idx)
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8, loc="lower right")
ax.set_title(f"Angles between {m} estimated directions and the true {m}-D tangent space\n"
             f"({len(X_test)} test digits; 0 = inside the true tangent space, 90 = orthogonal)",
             fontsize=10)
plotting.save_figure(fig, args.out / "angles.png")
plt.close(fig)
print(f"total time {time.perf_counter() - t_start:.0f} s; figures in {args.out}/")
