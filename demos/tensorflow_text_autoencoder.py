"""The source text's TensorFlow 1 deep autoencoder, re-done in npcae.

784-256-128-64 encoder with tf.nn.leaky_relu (negative slope 0.2) on every hidden layer, the
64-unit code included; a mirrored, untied 64-128-256 leaky_relu decoder and a sigmoid output;
Glorot-uniform weights and zero biases; MSE as the mean over all elements; Adam at lr 1e-3
(eps 1e-8); batch 128, the last partial batch dropped, no shuffling. npcae spells these
`activation={"name": "leaky_relu", "alpha": 0.2}, init="glorot_uniform", loss="mse",
reduction="mean", shuffle=False, drop_last=True`.

All batches have the same size, so npcae's per-epoch loss is exactly the text's mean of the
per-batch losses. Compare with `../shared/bench/peers_torch_family.py --config deep_leaky
--data-dir DIR --epochs 10` (the PyTorch peer reshuffles each epoch; the text does not).

    python demos/tensorflow_text_autoencoder.py --out demo-tensorflow-text [--epochs 10]
"""
from _common import load_data, parse_args

import npcae
from npcae import plotting

args = parse_args(__doc__.splitlines()[0], "demo-tensorflow-text", epochs=10, n_train=0)
X, _, X_test, _ = load_data(args.n_train or None, random_state=args.random_state)

model = npcae.Autoencoder(layers=(256, 128, 64), activation={"name": "leaky_relu", "alpha": 0.2},
                          output_activation="sigmoid", loss="mse", reduction="mean",
                          init="glorot_uniform", optimizer=npcae.optim.Adam(lr=1e-3, eps=1e-8),
                          batch_size=128, shuffle=False, drop_last=True, epochs=args.epochs,
                          random_state=args.random_state)
print(model)
for epoch in range(args.epochs):
    model.partial_fit(X)               # one epoch; the next call continues it exactly
    print(f"Epoch: {epoch + 1} Loss: {model.loss_curve_[-1]:.6f}", flush=True)
print(f"test loss (mean squared error): {-model.score_samples(X_test).mean():.6f}")
plotting.plot_reconstructions(X_test[:10], model.reconstruct(X_test[:10]),
                              path=args.out / "reconstructions.png")
print(f"reconstruction grid in {args.out}/reconstructions.png")
