"""The DAE-CAE link, measured: E||x - r(x + eps)||^2 against its small-noise expansion.

For a reconstruction function r = g o f and eps ~ N(0, sigma^2 I), a second-order Taylor expansion
gives (npcae._scores, derivation in its docstring)

    lhs(sigma) = (E||x - r(x + eps)||^2 - ||x - r(x)||^2) / sigma^2
               = ||J_r(x)||_F^2 - (x - r(x)) . Lap r(x) + O(sigma^2)  =  rhs + O(sigma^2),

so a denoising auto-encoder trained with small Gaussian noise penalises the Jacobian of its whole
reconstruction, as a contractive one penalises its encoder's. This demo trains three models on
the same digits (784-128-784, sigmoid units, cross-entropy, Adam lr 2e-3, batch 50):
  * AE: no regularisation (untied);
  * DAE: Gaussian corruption with standard deviation 0.3 (untied);
  * CAE: one layer, tied weights, lam = 0.1 on ||J_f(x)||_F^2 (the encoder's Jacobian).
For each it measures lhs(sigma) by Monte Carlo on --n-points test digits (--n-pairs antithetic
pairs +-eps per digit, the same draws for every sigma) and rhs with the model's own first and
second derivatives (forward mode), prints the table and checks rhs against finite differences
on 3 digits. Then it trains 2-64-2 models (tanh, linear output, squared error) on a noisy circle
and a noisy spiral (npcae.report.vector_field_panels) and draws their reconstruction vector
fields r(x) - x.

    python demos/dae_cae_link.py --out demo-dae-cae [--epochs 5] [--n-train 5000]

Writes gap_convergence.png (|relative gap| against sigma, log-log) and vector_fields.png.
"""
import argparse
import time
from pathlib import Path

import numpy as np
from _common import load_data

import npcae
from npcae.plotting import plot_gap_convergence, plot_vector_fields
from npcae._scores import dae_cae_gap, format_gap_table, reconstruction_derivatives
from npcae.report import vector_field_panels

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--out", default="demo-dae-cae", type=Path)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--n-train", type=int, default=5000)
p.add_argument("--random-state", "--seed", dest="random_state", type=int, default=0)
p.add_argument("--sigmas", type=float, nargs="+", default=[0.3, 0.1, 0.03, 0.01])
p.add_argument("--n-points", type=int, default=200, help="test digits for the gap (default 200)")
p.add_argument("--n-pairs", type=int, default=32, help="antithetic pairs per digit (default 32)")
p.add_argument("--toy-epochs", type=int, default=200, help="epochs of the 2-D models")
args = p.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
t_start = time.time()

X, _, X_test, _ = load_data(args.n_train, random_state=args.random_state)
X_gap = X_test[:args.n_points]
HIDDEN, DAE_NOISE, CAE_LAM = 128, 0.3, 0.1
common = dict(optimizer=npcae.optim.Adam(lr=2e-3), batch_size=50, epochs=args.epochs,
              random_state=args.random_state)
models = {
    "AE": npcae.Autoencoder(layers=(HIDDEN,), **common),
    f"DAE (Gaussian noise {DAE_NOISE:g})": npcae.DenoisingAutoencoder(
        layers=(HIDDEN,), noise="gaussian", noise_level=DAE_NOISE, **common),
    f"CAE (lam = {CAE_LAM:g})": npcae.ContractiveAutoencoder(n_hidden=HIDDEN, lam=CAE_LAM,
                                                             **common),
}

results, summary = {}, []
for name, model in models.items():
    t0 = time.time()
    model.fit(X)
    t_fit = time.time() - t0
    t0 = time.time()
    records = dae_cae_gap(model, X_gap, sigmas=args.sigmas, n_pairs=args.n_pairs,
                          random_state=args.random_state)
    t_gap = time.time() - t0
    results[name] = records
    print()
    print(format_gap_table(records, title=f"{name}: trained {t_fit:.0f} s, gap measured "
                                          f"{t_gap:.0f} s"))
    enc_sq = float(np.mean(model.jacobian_norm(X_gap) ** 2))
    summary.append((name, records[0]["reconstruction_error"], enc_sq,
                    records[0]["jacobian_term"], records[0]["laplacian_term"]))

print()
print("Summary on the same test digits: the DAE's noise penalises ||J_r||_F^2, the whole "
      "reconstruction's Jacobian; the CAE penalises ||J_f||_F^2, the encoder's")
print(f"{'model':<28} {'||x - r||^2':>11} {'||J_f||_F^2':>11} {'||J_r||_F^2':>11} "
      f"{'(x-r).Lap r':>11}")
for name, rec, enc_sq, jac, lap in summary:
    print(f"{name:<28} {rec:>11.4g} {enc_sq:>11.4g} {jac:>11.4g} {lap:>11.4g}")

# the exact derivatives against central finite differences (steps h and 2h, Richardson)
name = list(models)[1]
exact = reconstruction_derivatives(models[name], X_gap[:3], method="exact")
fd = reconstruction_derivatives(models[name], X_gap[:3], method="fd", step=1e-2)
print()
print(f"Check on 3 digits ({name}): exact forward mode against finite differences (h = 0.01)")
print(f"  ||J_r||_F^2   exact {np.array2string(exact['jacobian_sq_norm'], precision=6)}   "
      f"max |difference| {np.max(np.abs(exact['jacobian_sq_norm'] - fd['jacobian_sq_norm'])):.2g}"
      f"   estimated fd error {np.max(fd['jacobian_sq_norm_error']):.2g}")
print(f"  Lap r         max |exact| {np.max(np.abs(exact['laplacian'])):.4g}   max |difference| "
      f"{np.max(np.abs(exact['laplacian'] - fd['laplacian'])):.2g}   estimated fd error "
      f"{np.max(fd['laplacian_error']):.2g}")

plot_gap_convergence(results, path=args.out / "gap_convergence.png",
                     title=f"DAE-CAE link on {len(X_gap)} test digits: lhs(sigma) = (E||x - "
                           f"r(x + eps)||^2 - ||x - r(x)||^2) / sigma^2 against its limit "
                           f"||J_r||_F^2 - (x - r).Lap r")

# --- 2-D toy manifolds: the reconstruction vector field r(x) - x -----------------------------
panels, errors = vector_field_panels(args.random_state, epochs=args.toy_epochs)
print()
print(f"2-D toy manifolds, 1500 points each ({args.toy_epochs} epochs): mean squared "
      f"reconstruction error on the training points")
for name, err in errors.items():
    print(f"  {name:<40} {err:.2g}")
plot_vector_fields(panels, path=args.out / "vector_fields.png",
                   title="Reconstruction vector field r(x) - x of 2-64-2 auto-encoders (tanh "
                         "hidden units, linear output, squared error)")
print(f"total {time.time() - t_start:.0f} s; figures in {args.out}/")
