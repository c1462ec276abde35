"""The source texts' Keras CAE written in PyTorch, checked against npcae's reference fixture.

    npcae reference --canonical keras_cae --out keras_cae.npz
    python verify_pytorch.py keras_cae.npz theirs.npz
    npcae verify theirs.npz --against keras_cae.npz
"""
import json
import sys

import numpy as np
import torch

fixture_path, out_path = sys.argv[1], sys.argv[2]
with np.load(fixture_path, allow_pickle=False) as f:
    meta = json.loads(str(f["__fixture__"]))
    fx = {key: torch.from_numpy(f[key]) for key in f.files if key != "__fixture__"}
lam = meta["terms"]["contractive"]["weight"]
d, k = fx["param/W"].shape

model = torch.nn.ModuleDict({"encoder": torch.nn.Linear(d, k), "decoder": torch.nn.Linear(k, d)})
model = model.double()                                      # compare in float64
with torch.no_grad():                          # npcae's W is (in, out); Linear.weight is (out, in)
    model.encoder.weight.copy_(fx["param/W"].T)
    model.encoder.bias.copy_(fx["param/b"])
    model.decoder.weight.copy_(fx["param/W_dec"].T)
    model.decoder.bias.copy_(fx["param/c"])

X = fx["X"]
h = torch.sigmoid(model.encoder(X))
r = model.decoder(h)                                        # linear decoder
rec = ((r - X) ** 2).sum(dim=1).mean()                      # sum over pixels, mean over rows
jac = ((h * (1 - h)) ** 2 @ (model.encoder.weight ** 2).sum(dim=1)).mean()   # ||J_f||_F^2
loss = rec + lam * jac
loss.backward()
np.savez(out_path, loss=loss.item(),
         **{name: p.grad.numpy() for name, p in model.named_parameters()})
