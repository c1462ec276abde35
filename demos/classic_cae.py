"""The classic CAE of Rifai et al. (2011): tied weights, sigmoid encoder and decoder,
cross-entropy reconstruction; trained with and without the penalty to show what it does.

    python demos/classic_cae.py --out demo-classic

Prints, for lam = 0 and lam > 0 on the same data and random_state: test cross-entropy per pixel, the mean
Frobenius norm of the encoder Jacobian, and the fraction of its singular values below 1. Writes
the two spectra overlaid and the tangent directions of the contractive model.
"""
import numpy as np
from _common import load_data, parse_args

import npcae
from npcae import plotting
from npcae.analysis import jacobian_spectrum, tangent_directions

args = parse_args(__doc__.splitlines()[0], "demo-classic", epochs=10)
X, _, X_test, _ = load_data(args.n_train, random_state=args.random_state)

spectra = {}
models = {}
for lam in (0.0, 0.5):
    cae = npcae.ContractiveAutoencoder(n_hidden=128, lam=lam, epochs=args.epochs,
                                       random_state=args.random_state).fit(X)
    svals = jacobian_spectrum(cae, X_test[:500])
    spectra[f"lam = {lam:g}"] = svals
    models[lam] = cae
    terms = cae.loss_terms(X_test)
    print(f"lam {lam:<4g} test BCE/pixel {terms['reconstruction'] / X.shape[1]:.4f}  "
          f"mean ||J||_F {cae.jacobian_norm(X_test).mean():.3f}  "
          f"singular values < 1: {100 * np.mean(svals < 1):.1f}%  "
          f"top-3 mean {np.round(svals[:, :3].mean(0), 2)}")

plotting.plot_spectrum(spectra, path=args.out / "spectra.png")
tangents, tsv = tangent_directions(models[0.5], X_test[:4], n_directions=5)
plotting.plot_tangents(X_test[:4], tangents, tsv, path=args.out / "tangents.png")
print(f"figures in {args.out}/")
