"""The source text's PyTorch deep autoencoder, re-done in npcae.

784-256-128-100 encoder and a mirrored, untied 100-128-256-784 decoder, a sigmoid after every
layer (the code and the output too), PyTorch's default nn.Linear init (W and b uniform in
+-1/sqrt(n_in)), Adam at lr 0.01, batch 256 keeping the last partial batch, trained on
0.5 * mse_loss (the mean over all elements). npcae spells that loss
`loss="mse", reduction="mean", loss_weight=0.5`.

Each epoch prints the training loss in the text's units. npcae's history is the mean over
samples; the text prints the mean of the per-batch losses, which differs only through the last
(partial) batch's weight (96 of 60,000 samples: a relative difference below 1e-3). The PyTorch
peer `../shared/bench/peers_torch_family.py --config deep_sigmoid --data-dir DIR --epochs 10`
prints the same numbers for comparison.

    python demos/pytorch_text_autoencoder.py --out demo-pytorch-text [--epochs 10] [--n-train 0]
"""
from _common import load_data, parse_args

import npcae
from npcae import plotting

args = parse_args(__doc__.splitlines()[0], "demo-pytorch-text", epochs=10, n_train=0)
X, _, X_test, _ = load_data(args.n_train or None, random_state=args.random_state)

model = npcae.Autoencoder(layers=(256, 128, 100), activation="sigmoid",
                          output_activation="sigmoid", loss="mse", reduction="mean",
                          loss_weight=0.5, init="torch_linear",
                          optimizer=npcae.optim.Adam(lr=0.01), batch_size=256,
                          epochs=args.epochs, random_state=args.random_state)
print(model)
for epoch in range(args.epochs):
    model.partial_fit(X)               # one epoch; the next call continues it exactly
    print(f"epoch [{epoch + 1}/{args.epochs}], loss:{model.loss_curve_[-1]:.4f}", flush=True)
print(f"test loss (0.5 * mean squared error): {-model.score_samples(X_test).mean():.4f}")
plotting.plot_reconstructions(X_test[:10], model.reconstruct(X_test[:10]),
                              path=args.out / "reconstructions.png")
print(f"reconstruction grid in {args.out}/reconstructions.png")
