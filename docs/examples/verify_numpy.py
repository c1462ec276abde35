"""A tied sigmoid CAE written in plain NumPy, checked against npcae's reference fixture.

    npcae reference --canonical tied_sigmoid_cae --out cae.npz
    python verify_numpy.py cae.npz theirs.npz
    npcae verify theirs.npz --against cae.npz
"""
import json
import sys

import numpy as np

fixture_path, out_path = sys.argv[1], sys.argv[2]
with np.load(fixture_path, allow_pickle=False) as f:        # a plain .npz: no npcae needed
    meta = json.loads(str(f["__fixture__"]))
    X, W, b, c = f["X"], f["param/W"], f["param/b"], f["param/c"]   # W is (d, k): x @ W + b
lam = meta["terms"]["contractive"]["weight"]
n = X.shape[0]

# forward: h = sigmoid(x W + b), logits z = h W^T + c (tied), cross-entropy from the logits
h = 1 / (1 + np.exp(-(X @ W + b)))
z = h @ W.T + c
rec = np.sum(np.logaddexp(0, z) - X * z) / n             # summed over pixels, mean over rows
dh = h * (1 - h)                                         # sigmoid'(a)
s = np.sum(W ** 2, axis=0)                               # ||W_j||^2, one per hidden unit
pen = np.sum(dh ** 2 @ s) / n                            # mean ||J_f(x)||_F^2
loss = rec + lam * pen

# backward
gz = (1 / (1 + np.exp(-z)) - X) / n                      # dL/dz
ga = (gz @ W) * dh + lam * (2 / n) * dh ** 2 * (1 - 2 * h) * s   # dL/da
gW = X.T @ ga + gz.T @ h + lam * (2 / n) * W * np.sum(dh ** 2, axis=0)
np.savez(out_path, loss=loss, W=gW, b=ga.sum(axis=0), c=gz.sum(axis=0))
