"""Variational autoencoders as generators: prior samples, a 2-D latent manifold, interpolations.

Two VAEs, each 784-400-(mu, logvar)-...-400-784 with ReLU hidden units and a Bernoulli decoder
(the pixel intensities in [0, 1] are the cross-entropy targets, not binarised), Adam lr 1e-3,
batch 100, trained on the negative ELBO per image:
  * n_latent = 20: samples decoded from the prior z ~ N(0, I), and interpolations between test
    digits along the straight line between their posterior means;
  * n_latent = 2: the latent manifold, the decoder means on a grid of z whose coordinates are
    standard-normal quantiles (so equal areas of prior mass per cell), and the test digits'
    posterior means coloured by class.

    python demos/vae_generation.py --out demo-vae [--epochs 15] [--n-train 10000]

Prints the test ELBO per image (higher is better; one draw of eps per image from a fixed seed),
an importance-weighted estimate of log p(x) (k = 50 draws) on 500 test images, and the mean
pixel intensity of the prior samples next to that of the training digits.
"""
from statistics import NormalDist

import matplotlib

matplotlib.use("Agg")                   # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import load_data, parse_args  # noqa: E402

import npcae  # noqa: E402
from npcae import plotting  # noqa: E402

SIDE = 28
GRID = 15                               # latent manifold: GRID x GRID decoded images
STEPS = 10                              # interpolation steps, both ends included
PAIRS = [(0, 6), (1, 7), (2, 3), (4, 9), (5, 8), (3, 8)]     # digit classes to interpolate


def mosaic(images, n_rows, n_cols, pad=1):
    """One (n_rows * (SIDE + pad), n_cols * (SIDE + pad)) image of the rows of ``images``."""
    step = SIDE + pad
    out = np.ones((n_rows * step - pad, n_cols * step - pad))
    for idx, image in enumerate(images[: n_rows * n_cols]):
        r, c = divmod(idx, n_cols)
        out[r * step: r * step + SIDE, c * step: c * step + SIDE] = image.reshape(SIDE, SIDE)
    return out


def save(fig, name):
    plotting.save_figure(fig, args.out / name)
    plt.close(fig)


def train(n_latent):
    vae = npcae.VariationalAutoencoder(layers=(400,), n_latent=n_latent, activation="relu",
                                       decoder="bernoulli", optimizer=npcae.optim.Adam(lr=1e-3),
                                       batch_size=100, epochs=args.epochs,
                                       random_state=args.random_state)
    vae.fit(X, validation_data=X_test)
    elbo = float(np.mean(vae.score_samples(X_test, random_state=0)))
    iw = float(np.mean(vae.log_likelihood(X_test[:500], k=50, random_state=0)))
    print(f"n_latent {n_latent:>2}: test ELBO per image {elbo:.2f} nats (negative ELBO "
          f"{-elbo:.2f}); importance-weighted log p(x), k = 50, first 500 test images: "
          f"{iw:.2f}")
    return vae


args = parse_args(__doc__.splitlines()[0], "demo-vae", epochs=15, n_train=10000)
X, _, X_test, y_test = load_data(args.n_train, random_state=args.random_state)

vae = train(20)
vae2 = train(2)

# -- samples from the prior (20-d model)
samples = vae.sample(100, random_state=args.random_state)
print(f"mean pixel intensity: prior samples {samples.mean():.4f}, training digits "
      f"{X.mean():.4f}")
fig, ax = plt.subplots(figsize=(6.4, 6.8), layout="constrained")
ax.imshow(mosaic(samples, 10, 10), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
ax.set_axis_off()
ax.set_title("100 samples from the prior: decoder means of z ~ N(0, I)\n"
             "(n_latent = 20, Bernoulli decoder)", fontsize=10)
save(fig, "prior_samples.png")

# -- the 2-D latent manifold: z on standard-normal quantiles
quantiles = np.linspace(0.5 / GRID, 1 - 0.5 / GRID, GRID)
z_values = np.array([NormalDist().inv_cdf(float(q)) for q in quantiles])
z1, z2 = np.meshgrid(z_values, z_values[::-1])            # top row: the largest z2
grid_images = vae2.decode(np.column_stack([z1.ravel(), z2.ravel()]))
fig, ax = plt.subplots(figsize=(7.6, 7.6), layout="constrained")
ax.imshow(mosaic(grid_images, GRID, GRID, pad=0), cmap="gray", vmin=0, vmax=1,
          interpolation="nearest")
centres = np.arange(GRID) * SIDE + SIDE / 2 - 0.5
shown = np.arange(0, GRID, 2)
ax.set_xticks(centres[shown], [f"{z_values[i]:.2f}" for i in shown])
ax.set_yticks(centres[shown], [f"{z_values[::-1][i]:.2f}" for i in shown])
ax.set_xlabel("z1 (standard-normal quantiles 1/30, 3/30, ..., 29/30)")
ax.set_ylabel("z2")
ax.set_title("Latent manifold of the 2-D VAE: decoder means on a grid of z", fontsize=10)
save(fig, "latent_manifold.png")

# -- where the test digits sit in the 2-D latent space (posterior means)
mu = vae2.transform(X_test)
fig, ax = plt.subplots(figsize=(6.8, 5.8), layout="constrained")
points = ax.scatter(mu[:, 0], mu[:, 1], c=y_test, cmap="tab10", s=6, alpha=0.8,
                    vmin=-0.5, vmax=9.5)
fig.colorbar(points, ax=ax, ticks=range(10), label="digit class")
ax.set_xlabel("mu_1(x)")
ax.set_ylabel("mu_2(x)")
ax.set_title(f"Posterior means of {len(X_test)} test digits (2-D VAE)", fontsize=10)
ax.grid(True, alpha=0.3)
save(fig, "latent_means.png")

# -- interpolations between test digits (20-d model), with the two digits at the ends
rows = []
for a, b in PAIRS:
    i, j = int(np.flatnonzero(y_test == a)[0]), int(np.flatnonzero(y_test == b)[0])
    rows.append(np.vstack([X_test[i], vae.interpolate(X_test[i], X_test[j], STEPS), X_test[j]]))
n_cols = STEPS + 2
fig, axes = plt.subplots(len(rows), n_cols, figsize=(0.95 * n_cols, 1.0 * len(rows) + 0.7),
                         squeeze=False, layout="constrained")
for r, row in enumerate(rows):
    for c in range(n_cols):
        ax = axes[r, c]
        ax.imshow(row[c].reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if c in (0, n_cols - 1):                      # the real digits: framed in red
            for spine in ax.spines.values():
                spine.set_color("tab:red")
                spine.set_linewidth(2)
for c, label in enumerate(["x_a"] + [f"t={t:.2g}" for t in np.linspace(0, 1, STEPS)]
                          + ["x_b"]):
    axes[0, c].set_title(label, fontsize=8)
fig.suptitle("Interpolations between test digits: decoder means of (1 - t) mu(x_a) + "
             "t mu(x_b) (n_latent = 20)", fontsize=10)
save(fig, "interpolations.png")

plotting.plot_history(vae.history_, path=args.out / "history.png")
print(f"figures in {args.out}/")
