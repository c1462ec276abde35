"""The source texts' Keras contractive autoencoder, re-done in npcae.

784 -> 64 sigmoid encoder, *linear* decoder (untied, as two Keras Dense layers are), MSE
reconstruction, contractive weight lam = 1e-3, Adam, batch 100.

Keras's `mse` is the *mean* over the 784 pixels; npcae sums over features (one convention
everywhere). Multiplying the Keras objective by 784 gives npcae's, so the same balance between
reconstruction and contraction is npcae lam = 784 * 1e-3. Both are printed.

    python demos/keras_contractive.py --out demo-keras
"""
import numpy as np
from _common import load_data, parse_args

import npcae
from npcae import plotting
from npcae.analysis import jacobian_spectrum, summarize_spectrum

KERAS_LAM = 1e-3

args = parse_args(__doc__.splitlines()[0], "demo-keras", epochs=10)
X, _, X_test, _ = load_data(args.n_train, random_state=args.random_state)
d = X.shape[1]
lam = KERAS_LAM * d
print(f"Keras lam {KERAS_LAM:g} with mean-over-pixels MSE  ==  npcae lam {lam:g} with summed MSE")

cae = npcae.ContractiveAutoencoder(n_hidden=64, lam=lam, activation="sigmoid",
                                   output_activation="identity", loss="mse", tied=False,
                                   optimizer=npcae.optim.Adam(lr=1e-3), batch_size=100,
                                   epochs=args.epochs, random_state=args.random_state,
                                   verbose=1)
cae.fit(X, validation_data=X_test)
terms = cae.loss_terms(X_test)
svals = jacobian_spectrum(cae, X_test[:500])
summary = summarize_spectrum(svals)
print(f"test MSE per pixel {terms['reconstruction'] / d:.5f} (Keras-style loss "
      f"{terms['reconstruction'] / d + KERAS_LAM * terms['contractive']:.5f})")
print(f"mean ||J_f||_F^2 {terms['contractive']:.3f}; fraction of singular values < 1: "
      f"{np.mean(svals < 1):.3f}")
plotting.plot_reconstructions(X_test[:10], cae.reconstruct(X_test[:10]),
                              path=args.out / "reconstructions.png")
plotting.plot_spectrum(svals, path=args.out / "spectrum.png")
plotting.plot_filters(cae.params["W"], path=args.out / "filters.png")
print(f"figures in {args.out}/")
