"""Sparse codes: a KL-sparse autoencoder (rho = 0.05) next to the same autoencoder without it.

Both are 784-100-784 with sigmoid units, squared error, untied, Glorot-uniform initial weights
(the same for both), AdamW (lr 3e-3, decoupled weight decay 0.3), batch 50, the same data. The
sparse one adds beta * sum_j KL(rho || rho_hat_j), where rho_hat_j is unit j's mean activation
over the batch (docs/derivations.md#sparse-autoencoder), with beta = 30 so that the penalty, not
the summed reconstruction error, sets the mean activation. The weight decay stands in for the
classic sparse autoencoder's L2 weight penalty: without it the weights of pixels that are
rarely lit keep their random start (or take large Adam steps on the few digits that light them),
and the filters look like noise.

    python demos/sparse_codes.py --out demo-sparse [--epochs 10] [--n-train 10000]

Prints the mean code activation (target rho) and the reconstruction error of both models.
Writes mean_activation.png (each unit's mean activation on the test digits against rho),
filters.png (the sparse model's first-layer weights), code_histogram.png (every test code
activation, both models) and history.png.
"""
import matplotlib

matplotlib.use("Agg")                   # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import load_data, parse_args  # noqa: E402

import npcae  # noqa: E402
from npcae import plotting  # noqa: E402

RHO, BETA, N_HIDDEN = 0.05, 30.0, 100

args = parse_args(__doc__.splitlines()[0], "demo-sparse", epochs=10, n_train=10000)
X, _, X_test, _ = load_data(args.n_train, random_state=args.random_state)
settings = dict(layers=(N_HIDDEN,), loss="mse", init="glorot_uniform", batch_size=50,
                optimizer=npcae.optim.AdamW(lr=3e-3, weight_decay=0.3), epochs=args.epochs,
                random_state=args.random_state)

sparse = npcae.SparseAutoencoder(sparsity="kl", rho=RHO, beta=BETA, **settings).fit(X)
plain = npcae.Autoencoder(**settings).fit(X)

codes = {"sparse (KL, rho = 0.05)": sparse.transform(X_test), "no sparsity penalty":
         plain.transform(X_test)}
rho_hat = {name: H.mean(axis=0) for name, H in codes.items()}
d = X.shape[1]
for (name, H), model in zip(codes.items(), (sparse, plain)):
    mse = float(np.mean((model.reconstruct(X_test) - X_test) ** 2))
    print(f"{name:<24} mean activation {H.mean():.4f}  (units: min {rho_hat[name].min():.3f}, "
          f"max {rho_hat[name].max():.3f}); fraction of activations < 0.1: "
          f"{np.mean(H < 0.1):.3f}; test MSE per pixel {mse:.4f}")
print(f"target rho {RHO}; the sparse model's last training epoch reports mean activation "
      f"{sparse.history_['mean_activation'][-1]:.4f}")

# each unit's mean activation on the test digits, against rho
fig, ax = plt.subplots(figsize=(10, 3.6), layout="constrained")
units = np.arange(N_HIDDEN)
width = 0.42
for offset, (name, values), color in zip((-width / 2, width / 2), rho_hat.items(),
                                         ("tab:blue", "tab:gray")):
    ax.bar(units + offset, values, width=width, color=color, label=f"{name}: mean "
           f"{values.mean():.3f}")
ax.axhline(RHO, color="tab:red", ls="--", lw=1.5, label=f"target rho = {RHO}")
ax.set_xlabel("code unit j")
ax.set_ylabel("mean activation on the test digits")
ax.set_xlim(-1, N_HIDDEN)
ax.set_title("Per-unit mean activation rho_hat_j against the target rho")
ax.legend(fontsize=9, loc="upper right")
ax.grid(True, axis="y", alpha=0.3)
plotting.save_figure(fig, args.out / "mean_activation.png")
plt.close(fig)

# the sparse model's filters (first-layer weights, one column per unit)
plotting.plot_filters(sparse.params["encoder.0.W"], n=N_HIDDEN, path=args.out / "filters.png")

# histogram of every code activation on the test digits
fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
bins = np.linspace(0.0, 1.0, 41)
for (name, H), color in zip(codes.items(), ("tab:blue", "tab:gray")):
    ax.hist(H.ravel(), bins=bins, color=color, alpha=0.6, label=f"{name}: mean {H.mean():.3f}")
ax.axvline(RHO, color="tab:red", ls="--", lw=1.5, label=f"rho = {RHO}")
ax.set_yscale("log")
ax.set_xlabel("code activation h_j(x)")
ax.set_ylabel(f"count ({len(X_test)} test digits x {N_HIDDEN} units)")
ax.set_title("Code activations on the test digits")
ax.legend(fontsize=9)
plotting.save_figure(fig, args.out / "code_histogram.png")
plt.close(fig)

plotting.plot_history(sparse.history_, path=args.out / "history.png")
print(f"figures in {args.out}/")
