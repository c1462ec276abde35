"""Denoising autoencoders: one per corruption (masking, Gaussian, salt and pepper).

Each model (784-256-784, sigmoid, cross-entropy, untied, Adam lr 2e-3, batch 50) is trained to
reconstruct the CLEAN digit from a copy corrupted afresh every minibatch. Then the test digits
are corrupted once (a fixed seed) and the model's reconstructions of the corrupted digits are
compared with the clean ones. PSNR = 10 log10(1 / MSE) in dB for images in [0, 1] (MSE over
every pixel of the test set); the denoised PSNR should be well above the noisy one.

    python demos/denoising.py --out demo-denoising [--epochs 10] [--n-train 10000]

Writes denoising.png (for each noise: noisy, denoised and clean rows) and one training-history
figure per model.
"""
import matplotlib

matplotlib.use("Agg")                   # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import load_data, parse_args  # noqa: E402

import npcae  # noqa: E402
from npcae import plotting  # noqa: E402

# noise type -> noise_level: the probability that a pixel is corrupted (masking: set to 0;
# salt_pepper: set to 0 or 1), or the standard deviation of the added Gaussian noise
NOISES = {"masking": 0.5, "gaussian": 0.5, "salt_pepper": 0.2}
N_SHOWN = 10


def psnr(images, clean):
    """Peak signal-to-noise ratio (dB) of ``images`` against ``clean``, both in [0, 1] scale."""
    mse = float(np.mean((np.asarray(images, np.float64) - clean) ** 2))
    return 10.0 * np.log10(1.0 / mse), mse


def plot_denoising(rows, path):
    """``rows``: list of (label, images (N_SHOWN, 784)); one image row per entry."""
    n_rows = len(rows)
    fig, axes = plt.subplots(n_rows, N_SHOWN, figsize=(1.0 * N_SHOWN + 1.6, 1.05 * n_rows + 0.6),
                             squeeze=False, layout="constrained")
    for r, (label, images) in enumerate(rows):
        for c in range(N_SHOWN):
            ax = axes[r, c]
            # grey scale fixed to [0, 1]: Gaussian noise outside [0, 1] shows as black/white
            ax.imshow(images[c].reshape(28, 28), cmap="gray", vmin=0.0, vmax=1.0,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("Denoising autoencoders on held-out digits: noisy input, the model's "
                 "reconstruction of it, clean digit\n(PSNR against the clean digits over the "
                 "whole test set; grey scale clipped to [0, 1])", fontsize=11)
    plotting.save_figure(fig, path)
    plt.close(fig)


args = parse_args(__doc__.splitlines()[0], "demo-denoising", epochs=10, n_train=10000)
X, _, X_test, _ = load_data(args.n_train, random_state=args.random_state)

rows = []
print(f"{'noise':<12} {'level':>5}  {'PSNR noisy':>10}  {'PSNR denoised':>13}  "
      f"{'MSE noisy':>9}  {'MSE denoised':>12}")
for i, (noise, level) in enumerate(NOISES.items()):
    dae = npcae.DenoisingAutoencoder(layers=(256,), noise=noise, noise_level=level,
                                     batch_size=50, optimizer=npcae.optim.Adam(lr=2e-3),
                                     epochs=args.epochs, random_state=args.random_state)
    dae.fit(X)
    noisy = dae.corrupt(X_test, random_state=args.random_state + 100 + i)   # fixed corruption
    denoised = dae.reconstruct(noisy)
    psnr_noisy, mse_noisy = psnr(noisy, X_test)
    psnr_denoised, mse_denoised = psnr(denoised, X_test)
    print(f"{noise:<12} {level:>5g}  {psnr_noisy:>8.2f} dB  {psnr_denoised:>11.2f} dB  "
          f"{mse_noisy:>9.4f}  {mse_denoised:>12.4f}")
    tag = f"{noise} {level:g}"
    rows += [(f"{tag}\nnoisy\n{psnr_noisy:.1f} dB", noisy[:N_SHOWN]),
             (f"denoised\n{psnr_denoised:.1f} dB", denoised[:N_SHOWN]),
             ("clean", X_test[:N_SHOWN])]
    fig = plotting.plot_history(dae.history_)
    fig.suptitle(f"Training history: denoising autoencoder, {noise} noise, level {level:g}",
                 fontsize=11)
    plotting.save_figure(fig, args.out / f"history_{noise}.png")
    plt.close(fig)

plot_denoising(rows, args.out / "denoising.png")
print(f"PSNR = 10 log10(1 / MSE) over the {len(X_test)} test digits (pixels in [0, 1]); "
      f"{args.epochs} epochs on {len(X)} training digits")
print(f"figures in {args.out}/")
