"""Novelty detection: train on some digit classes, score test digits of every class, ROC AUC.

The models see only the "normal" classes (default 0-4: half the digits, so the test set is
balanced and the AUC is not dominated by one class). The held-out classes (5-9) are the
anomalies. They are digits too, made of the same strokes, so this is a hard, near-distribution
task, not the detection of noise images. Every model maps 784 pixels to 64 code units with
sigmoid units and cross-entropy, Adam (lr 2e-3), batch 50, --epochs epochs:
  * PCA (32 components): squared reconstruction error, the linear baseline;
  * AE: 784-64-784, untied, no regularisation;
  * DAE: the same, trained on Gaussian-corrupted inputs (standard deviation 0.3);
  * CAE: one layer, tied, lam = 0.1 on ||J_f(x)||_F^2;
  * VAE: 784-256-(16 latent)-256-784, Bernoulli decoder.
Score kinds (npcae._scores.anomaly_scores; higher = more anomalous):
  * reconstruction: the model's own reconstruction loss (cross-entropy summed over pixels;
    the VAE: -log p(x | z = mu(x)));
  * jacobian: ||J_f(x)||_F^2, the encoder's local sensitivity (the VAE: of mu(x));
  * elbo: the negative ELBO with 16 draws (VAE only).
The AUC (npcae._scores.roc_auc) is the probability that a random held-out digit scores above a
random normal one: 0.5 is chance, 1 perfect, below 0.5 an inverted score.

    python demos/anomaly.py --out demo-anomaly [--epochs 5] [--n-train 10000] [--normal 0 1 2 3 4]

Prints the AUC table (model x score kind) and the AUC of the reconstruction score for each
held-out class; writes roc.png (one panel per score kind).
"""
import argparse
import time
from pathlib import Path

import numpy as np
from _common import load_data

import npcae
from npcae.plotting import plot_roc_curves
from npcae._scores import SCORE_KINDS, anomaly_scores, roc_auc

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--out", default="demo-anomaly", type=Path)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--n-train", type=int, default=10000,
               help="training digits drawn before keeping the normal classes (default 10000)")
p.add_argument("--n-test", type=int, default=2000)
p.add_argument("--normal", type=int, nargs="+", default=[0, 1, 2, 3, 4],
               help="the classes seen in training (default 0 1 2 3 4)")
p.add_argument("--random-state", "--seed", dest="random_state", type=int, default=0)
args = p.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
t_start = time.time()

X_all, y_all, X_test, y_test = load_data(args.n_train, n_test=args.n_test,
                                         random_state=args.random_state)
normal = sorted(set(args.normal))
held_out = sorted(set(np.unique(y_test).tolist()) - set(normal))
if not normal or not held_out:
    raise SystemExit(f"--normal must leave at least one class out; got {normal}.")
X = X_all[np.isin(y_all, normal)]
labels = ~np.isin(y_test, normal)                  # True = anomaly (a class never seen)
print(f"normal classes {normal}: {len(X)} training digits; test: {int((~labels).sum())} "
      f"normal, {int(labels.sum())} anomalous (classes {held_out})")


class PCA:
    """k principal components of the training data; reconstruct = project and map back."""

    def __init__(self, k):
        self.k = k

    def fit(self, X):
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        _, V = np.linalg.eigh((X - self.mean_).T @ (X - self.mean_))   # ascending eigenvalues
        self.components_ = V[:, ::-1][:, :self.k].T
        return self

    def reconstruct(self, X):
        return (X - self.mean_) @ self.components_.T @ self.components_ + self.mean_


common = dict(optimizer=npcae.optim.Adam(lr=2e-3), batch_size=50, epochs=args.epochs,
              random_state=args.random_state)
models = {
    "PCA (32 components)": PCA(32),
    "AE": npcae.Autoencoder(layers=(64,), **common),
    "DAE (Gaussian 0.3)": npcae.DenoisingAutoencoder(layers=(64,), noise="gaussian",
                                                     noise_level=0.3, **common),
    "CAE (lam = 0.1)": npcae.ContractiveAutoencoder(n_hidden=64, lam=0.1, **common),
    "VAE (16 latent)": npcae.VariationalAutoencoder(layers=(256,), n_latent=16, **common),
}

aucs, scores = {}, {kind: {} for kind in SCORE_KINDS}
for name, model in models.items():
    t0 = time.time()
    model.fit(X)
    t_fit = time.time() - t0
    for kind in SCORE_KINDS:
        try:
            s = anomaly_scores(model, X_test, kind=kind)
        except (ValueError, TypeError):        # no ELBO (not a VAE), no Jacobian (PCA here)
            continue
        scores[kind][name] = (s, labels)
        aucs[name, kind] = roc_auc(s, labels)
    print(f"  {name:<22} trained in {t_fit:.0f} s")

print()
print(f"ROC AUC, held-out classes {held_out} against normal classes {normal} "
      f"({len(X_test)} test digits; - : the score does not exist for that model)")
print(f"{'model':<22}" + "".join(f"{kind:>16}" for kind in SCORE_KINDS))
for name in models:
    cells = [f"{aucs[name, kind]:>16.3f}" if (name, kind) in aucs else f"{'-':>16}"
             for kind in SCORE_KINDS]
    print(f"{name:<22}" + "".join(cells))

print()
print("ROC AUC of the reconstruction score for each held-out class alone (against all normal "
      "test digits)")
print(f"{'model':<22}" + "".join(f"{f'class {c}':>9}" for c in held_out))
normal_test = ~labels
for name in models:
    s = scores["reconstruction"][name][0]
    cells = []
    for c in held_out:
        keep = normal_test | (y_test == c)
        cells.append(f"{roc_auc(s[keep], (y_test == c)[keep]):>9.3f}")
    print(f"{name:<22}" + "".join(cells))

TITLES = {"reconstruction": "score: reconstruction loss",
          "jacobian": "score: ||J_f(x)||_F^2, the encoder's Jacobian",
          "elbo": "score: negative ELBO (VAE only)"}
panels = {TITLES[kind]: curves for kind, curves in scores.items() if curves}
plot_roc_curves(panels, path=args.out / "roc.png",
                title=f"Novelty detection: trained on digits {normal}, anomalies = unseen digits "
                      f"{held_out} ({len(X_test)} test digits)")
print(f"total {time.time() - t_start:.0f} s; figures in {args.out}/")
