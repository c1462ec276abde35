"""Features for classifiers: raw pixels, PCA and five autoencoders' codes under one linear probe.

Every feature kind is probed by the same multinomial logistic regression (npcae._probe.
linear_probe: features standardised with the training statistics, mean softmax cross-entropy +
alpha/2 ||W||^2 with alpha = 1e-3, full-batch Adam (lr 0.1, halved whenever the objective
rises) from W = 0 for at most --max-iter = 500 steps, tol 1e-5 on the largest gradient entry),
fitted on the training digits and scored on the test digits. At each code size k (--widths,
default 64 and 256) the features are:
  * raw pixels: the 784 pixels themselves, the reference (the same number in every column);
  * PCA: the first k principal-component scores (hand-written, via the SVD of the training set);
  * AE: a one-layer 784-k-784 autoencoder, sigmoid code and output, cross-entropy, untied;
  * DAE: the same, trained to undo masking noise (25% of the pixels set to 0);
  * sparse AE: the same with a KL sparsity penalty (rho = 0.05, beta = 3);
  * CAE: the classic one-layer tied contractive autoencoder (Rifai et al., 2011), lam = 0.1;
  * stacked CAE: two CAE stages, 784 -> 2k -> k (lam = 0.1 each, the first stage twice as wide,
    so that each layer halves the width), then fine-tuned jointly on reconstruction.
Every model is trained the same way: Adam (lr 3e-3), batch 100, --epochs epochs (the stacked
CAE: --epochs per stage, then --epochs of fine-tuning), the same data and random_state. The code
of a model is its encoder's output (transform). Then, at width --lam-width (64), the CAE is
trained again for each lam in --lams (0, 0.01, ..., 10) and probed the same way: accuracy as a
function of lam. lam = 0.1 in the table was fixed beforehand, not picked on the test digits.

    python demos/probe_features.py --out demo-probe [--epochs 10] [--n-train 10000]

Default runtime: about 15 minutes on 2 cores shared with other jobs (17 models trained for 10
epochs on 10,000 digits, the 2 stacked CAEs for 3 x 10, and 20 probes, the raw-pixel one the
dearest); --epochs 3 --n-train 5000 --widths 64 takes a few minutes.

Prints the table of test accuracies (rows: feature kind, columns: width), the same for the
training accuracy, the per-class test accuracy of the best features next to the raw pixels', and
the CAE's accuracy, its training accuracy and mean ||J_f(x)||_F^2 on the test digits for every
lam. Writes probe_accuracy.png (the table as grouped bars) and cae_accuracy_vs_lam.png (test
accuracy against lam, with the AE, PCA and raw-pixel probes of the same width as reference
lines).
"""
import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")                   # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import load_data  # noqa: E402

import npcae  # noqa: E402
from npcae import plotting  # noqa: E402
from npcae._probe import PCA, linear_probe  # noqa: E402

LAM = 0.1                               # the CAE (and stacked CAE stages) of the main table
RHO, BETA = 0.05, 3.0                   # sparse AE
NOISE = 0.25                            # DAE: masking noise level
ALPHA, TOL = 1e-3, 1e-5                 # the probe
KINDS = ("raw pixels", "PCA", "AE", "DAE", "sparse AE", "CAE", "stacked CAE")

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--out", default="demo-probe", type=Path)
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--n-train", type=int, default=10000)
p.add_argument("--n-test", type=int, default=None,
               help="test digits (default: the whole test set: 10,000 for MNIST, 2,000 for "
                    "the built-in digits)")
p.add_argument("--widths", type=int, nargs="+", default=[64, 256])
p.add_argument("--lams", type=float, nargs="+",
               default=[0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0])
p.add_argument("--lam-width", type=int, default=None,
               help="code size of the lam sweep (default: the first of --widths)")
p.add_argument("--max-iter", type=int, default=500, help="probe: most full-batch steps")
p.add_argument("--random-state", "--seed", dest="random_state", type=int, default=0,
               help="seed of the data (built-in digits) and of the models (default 0)")
args = p.parse_args()
args.out.mkdir(parents=True, exist_ok=True)
lam_width = args.widths[0] if args.lam_width is None else args.lam_width

start = time.perf_counter()
X, y, X_test, y_test = load_data(args.n_train, n_test=args.n_test,
                                 random_state=args.random_state)
optimizer = npcae.optim.Adam(lr=3e-3)   # copied by every model, never shared state
common = dict(optimizer=optimizer, batch_size=100, epochs=args.epochs,
              random_state=args.random_state)


def cae(k, lam):
    return npcae.ContractiveAutoencoder(n_hidden=k, lam=lam, **common)


MODELS = {
    "AE": lambda k: npcae.Autoencoder(layers=(k,), **common),
    "DAE": lambda k: npcae.DenoisingAutoencoder(layers=(k,), noise="masking",
                                                noise_level=NOISE, **common),
    "sparse AE": lambda k: npcae.SparseAutoencoder(layers=(k,), sparsity="kl", rho=RHO,
                                                   beta=BETA, **common),
    "CAE": lambda k: cae(k, LAM),
    "stacked CAE": lambda k: npcae.StackedAutoencoder(
        stages=[npcae.ContractiveAutoencoder(n_hidden=2 * k, lam=LAM, optimizer=optimizer,
                                             batch_size=100, epochs=args.epochs),
                npcae.ContractiveAutoencoder(n_hidden=k, lam=LAM, optimizer=optimizer,
                                             batch_size=100, epochs=args.epochs)],
        fine_tune=True, **common),
}


def probe(Z, Z_test):
    return linear_probe(Z, y, Z_test, y_test, alpha=ALPHA, tol=TOL, max_iter=args.max_iter)


def fit(name, make, k):
    t0 = time.perf_counter()
    model = make(k).fit(X)
    seconds = time.perf_counter() - t0
    print(f"  {name:<12} k = {k:<4} trained in {seconds:6.1f} s, test reconstruction "
          f"{-model.score(X_test):8.2f} (loss per image)", flush=True)
    return model


results = {}                            # (kind, k) -> ProbeResult
models = {}                             # (kind, k) -> fitted model
print("Training (Adam lr 3e-3, batch 100, "
      f"{args.epochs} epochs each) and probing (alpha = {ALPHA:g}, at most {args.max_iter} "
      f"full-batch steps):", flush=True)
raw = probe(X, X_test)
for k in args.widths:
    results["raw pixels", k] = raw
    pca = PCA(k).fit(X)
    print(f"  {'PCA':<12} k = {k:<4} explains {pca.explained_variance_ratio_.sum():.1%} of "
          f"the training variance", flush=True)
    results["PCA", k] = probe(pca.transform(X), pca.transform(X_test))
    for name, make in MODELS.items():
        models[name, k] = model = fit(name, make, k)
        results[name, k] = probe(model.transform(X), model.transform(X_test))


def row(kind, values, fmt="{:>8.4f}"):
    return f"{kind:<12}" + "".join(fmt.format(v) for v in values)


n_train, n_test = len(X), len(X_test)
print(f"\nLinear probe test accuracy ({n_train} training / {n_test} test digits; raw pixels "
      f"are {X.shape[1]} features in every column)")
print(f"{'feature':<12}" + "".join(f"{k:>8}" for k in args.widths))
for kind in KINDS:
    print(row(kind, [results[kind, k].accuracy for k in args.widths]))
print("\nLinear probe training accuracy")
print(f"{'feature':<12}" + "".join(f"{k:>8}" for k in args.widths))
for kind in KINDS:
    print(row(kind, [results[kind, k].train_accuracy for k in args.widths]))
unconverged = sorted({kind if kind == "raw pixels" else f"{kind} ({k})"   # raw: one probe
                      for (kind, k), r in results.items() if not r.converged})
steps = [r.n_iter for r in results.values()]
print(f"probe steps: {min(steps)} to {max(steps)}; "
      + (f"stopped by max_iter = {args.max_iter} (largest gradient entries "
         f"{min(r.grad_max for r in results.values()):.1e} to "
         f"{max(r.grad_max for r in results.values()):.1e}): {', '.join(unconverged)}"
         if unconverged else f"all converged (largest gradient entry <= {TOL:g})"))

best_kind, best_k = max(((kind, k) for kind in KINDS[1:] for k in args.widths),
                        key=lambda key: results[key].accuracy)
best = results[best_kind, best_k]
labels = sorted(best.per_class_accuracy)
print(f"\nPer-class test accuracy: the best features ({best_kind}, k = {best_k}) and raw pixels")
print(f"{'digit':<16}" + "".join(f"{c:>7}" for c in labels) + "    all")
for name, r in ((f"{best_kind} {best_k}", best), ("raw pixels", raw)):
    print(f"{name:<16}" + "".join(f"{r.per_class_accuracy[c]:>7.3f}" for c in labels)
          + f"{r.accuracy:>7.3f}")
worst = min(labels, key=lambda c: best.per_class_accuracy[c])
row_w = best.confusion[list(best.classes).index(worst)].copy()
row_w[list(best.classes).index(worst)] = 0
print(f"hardest digit for {best_kind} {best_k}: {worst}, most often read as "
      f"{best.classes[int(np.argmax(row_w))]} ({int(row_w.max())} of "
      f"{best.class_counts[worst]})")

# the CAE's accuracy as a function of lam, at lam_width
print(f"\nlam sweep: one-layer tied CAEs, k = {lam_width}", flush=True)
sweep = []
for lam in args.lams:
    key = ("CAE", lam_width)
    if lam == LAM and key in models:
        model, r = models[key], results[key]
    else:
        model = fit(f"CAE lam={lam:g}", lambda k: cae(k, lam), lam_width)
        r = probe(model.transform(X), model.transform(X_test))
    jf2 = float(np.mean(model.jacobian_norm(X_test) ** 2))
    sweep.append((lam, r.accuracy, r.train_accuracy, jf2))
print(f"\nCAE accuracy against lam (one-layer tied CAE, k = {lam_width}; mean ||J_f(x)||_F^2 on "
      f"the test digits)")
print(f"{'lam':>8}{'test':>8}{'train':>8}{'||J||_F^2':>11}")
for lam, acc, train_acc, jf2 in sweep:
    print(f"{lam:>8g}{acc:>8.4f}{train_acc:>8.4f}{jf2:>11.3f}")

# figure 1: the table as grouped bars (raw pixels: one bar, they have no width k)
fig, ax = plt.subplots(figsize=(9, 4.2), layout="constrained")
width = 0.8 / len(args.widths)
colors = plt.cm.viridis(np.linspace(0.2, 0.8, len(args.widths)))
bars = ax.bar([0], [raw.accuracy], width=width, color="tab:gray", hatch="//",
              edgecolor="white", label=f"raw pixels ({X.shape[1]} features)")
ax.bar_label(bars, labels=[f"{raw.accuracy:.3f}"], fontsize=7, padding=2)
for i, (k, color) in enumerate(zip(args.widths, colors)):
    values = [results[kind, k].accuracy for kind in KINDS[1:]]
    xs = np.arange(1, len(KINDS)) + (i - (len(args.widths) - 1) / 2) * width
    bars = ax.bar(xs, values, width=width, color=color, label=f"k = {k}")
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=7, padding=2)
ax.axhline(raw.accuracy, color="tab:gray", ls=":", lw=1)
ax.set_xticks(np.arange(len(KINDS)), KINDS)
accs = [r.accuracy for r in results.values()]
ax.set_ylim(max(0.0, min(accs) - 0.05), min(1.0, max(accs) + 0.025))
ax.set_ylabel("test accuracy of the linear probe")
ax.set_title(f"Linear probe (multinomial logistic regression, alpha = {ALPHA:g}) on "
             f"{n_train} training digits:\nraw pixels, and features of size k")
ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
ax.grid(True, axis="y", alpha=0.3)
plotting.save_figure(fig, args.out / "probe_accuracy.png")
plt.close(fig)

# figure 2: CAE accuracy against lam (symlog: lam = 0 is on the axis)
fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
lams = np.array([s[0] for s in sweep])
ax.plot(lams, [s[1] for s in sweep], "o-", color="tab:blue", label="CAE, test")
for lam, acc, _, _ in sweep:                      # the values: differences are small at lam <= 1
    ax.annotate(f"{acc:.3f}", (lam, acc), textcoords="offset points", xytext=(0, -13),
                ha="center", fontsize=7, color="tab:blue",
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
ax.margins(y=0.1)                                 # room for the lowest label
ax.plot(lams, [s[2] for s in sweep], "o--", color="tab:blue", alpha=0.5, label="CAE, train")
refs = (("raw pixels", "tab:gray", ":"), ("PCA", "tab:green", "--"),
        ("AE", "tab:orange", "-."))
for kind, color, ls in refs:
    if (kind, lam_width) in results:
        acc = results[kind, lam_width].accuracy
        size = {"raw pixels": f"{X.shape[1]} features", "AE": f"untied, k = {lam_width}"}.get(
            kind, f"k = {lam_width}")
        ax.axhline(acc, color=color, ls=ls, lw=1.2, label=f"{kind} ({size}), test: {acc:.3f}")
positive = lams[lams > 0]
linthresh = positive.min() if positive.size else 1.0
ax.set_xscale("symlog", linthresh=linthresh)
ax.set_xticks(lams, [f"{v:g}" for v in lams])
ax.minorticks_off()
ax.set_xlim(lams.min() - 0.3 * linthresh, lams.max() * 1.5 if lams.max() > 0 else 1.0)
ax.set_xlabel("contraction weight lam (symlog scale: linear below the first nonzero lam)")
ax.set_ylabel("linear probe accuracy")
ax.set_title(f"One-layer tied CAE, k = {lam_width}: linear probe accuracy against lam\n"
             f"({n_train} training / {n_test} test digits, {args.epochs} "
             f"epoch{'s' if args.epochs != 1 else ''})")
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
ax.grid(True, alpha=0.3)
plotting.save_figure(fig, args.out / "cae_accuracy_vs_lam.png")
plt.close(fig)

print(f"\nfigures in {args.out}/ (total {time.perf_counter() - start:.0f} s)")
