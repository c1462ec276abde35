"""A gallery of published autoencoder gradient mistakes, named by npcae's verifier.

Each classic mistake is written below, in a few lines of plain NumPy, the way a hand-written
(or ported) implementation gets it wrong: a contractive autoencoder, a KL-sparse
autoencoder and a VAE, each with its bugs as switches. Every variant is run through
``npcae.reference.verify`` against npcae's canonical fixture of the same architecture, and
then trained on the built-in digits with npcae's Adam next to the correct gradient, to show
what the mistake does to the model.

    python demos/bug_gallery.py            # about 10 s
    python demos/bug_gallery.py --quick    # the tests' smoke run
"""
import argparse
import time

import numpy as np

import npcae
from npcae.optim import Adam
from npcae.reference import canonical_fixture, make_fixture, verify


def sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


# --------------------------------------------------------------------- a CAE, by hand
def cae(p, X, lam, act="sigmoid", out="sigmoid", bug=None):
    """Tied CAE h = act(x W + b), z = h W^T + c: BCE from the logits (out="sigmoid") or MSE
    of a linear decoder, plus lam * mean ||J||_F^2. Returns (loss, grads)."""
    n = len(X)
    W, b, c = p["W"], p["b"], p["c"]
    if bug == "integer division":
        lam = int(lam * 10) // 10              # "lam = 5 / 10" in Python 2 is 0
    h = sigmoid(X @ W + b) if act == "sigmoid" else np.tanh(X @ W + b)
    z = h @ W.T + c
    if out == "sigmoid":
        rec, gz = np.sum(np.logaddexp(0, z) - X * z), sigmoid(z) - X
    else:
        rec, gz = np.sum((z - X) ** 2), 2 * (z - X)
    dphi = h * (1 - h) if act == "sigmoid" else 1 - h * h        # phi'(a), for backprop
    dh = dphi                                                    # phi'(a) in the penalty
    ddh = dh * (1 - 2 * h) if act == "sigmoid" else -2 * h * dh   # phi''(a)
    if bug == "wrong activation derivative":                     # the other one's formula
        dh, ddh = ((1 - h * h, -2 * h * h * (1 - h)) if act == "sigmoid"
                   else (h * (1 - h), (1 - 2 * h) * (1 - h * h)))
    s = np.sum(W * W, axis=0)
    pen = np.sum(dh * dh @ s)
    k_rec = k_pen = 1 / n                                        # mean over the batch
    if bug == "sum over the batch":
        k_rec = k_pen = 1.0
    if bug == "penalty summed over the batch":
        k_pen = 1.0
    k_grad = k_pen * {"penalty gradient x2": 2.0, "penalty gradient x0.5": 0.5}.get(bug, 1.0)
    gz = k_rec * gz
    ga = (gz @ W) * dphi + lam * k_grad * 2 * dh * ddh * s
    gW = X.T @ ga + gz.T @ h
    if bug != "W detached in the penalty":                       # d s_j / d W
        gW = gW + lam * k_grad * 2 * W * np.sum(dh * dh, axis=0)
    grads = {"W": gW, "b": ga.sum(axis=0), "c": gz.sum(axis=0)}
    if bug == "transposed layout":                               # a (out, in) port, read back
        grads["W"] = grads["W"].T
    return k_rec * rec + lam * k_pen * pen, grads


# ------------------------------------------------------------ a KL-sparse AE, by hand
def sparse_ae(p, X, beta, rho, bug=None):
    """h = sigmoid(x W + b), logits z = h V + c, BCE + beta * sum_j KL(rho || mean_n h_nj)."""
    n = len(X)
    W, b, V, c = p["encoder.0.W"], p["encoder.0.b"], p["decoder.0.W"], p["decoder.0.b"]
    h = sigmoid(X @ W + b)
    z = h @ V + c
    q = h.mean(axis=0)                                          # rho_hat, the batch mean
    if bug == "KL per activation":                              # KL of every h_nj instead
        kl = np.sum(rho * np.log(rho / h) + (1 - rho) * np.log((1 - rho) / (1 - h))) / n
        gh_pen = beta / n * (-rho / h + (1 - rho) / (1 - h))
    else:
        kl = np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q)))
        gh_pen = beta / n * (-rho / q + (1 - rho) / (1 - q)) + 0 * h
    gz = (sigmoid(z) - X) / n
    ga = (gz @ V.T + gh_pen) * h * (1 - h)
    loss = np.sum(np.logaddexp(0, z) - X * z) / n + beta * kl
    return loss, {"encoder.0.W": X.T @ ga, "encoder.0.b": ga.sum(axis=0),
                  "decoder.0.W": h.T @ gz, "decoder.0.b": gz.sum(axis=0)}


# --------------------------------------------------------------------- a VAE, by hand
def vae(p, X, eps, bug=None):
    """tanh trunk -> (mu, logvar) -> z = mu + sigma eps -> tanh -> Bernoulli logits."""
    n = len(X)
    H = np.tanh(X @ p["encoder.0.W"] + p["encoder.0.b"])
    MU = H @ p["mu.W"] + p["mu.b"]
    LV = H @ p["logvar.W"] + p["logvar.b"]
    half = 1.0 if bug == "sigma = exp(logvar)" else 0.5        # sigma = exp(logvar / 2)
    S = np.exp(half * LV)
    Z = MU + S * eps
    D = np.tanh(Z @ p["decoder.0.W"] + p["decoder.0.b"])
    Y = D @ p["decoder.1.W"] + p["decoder.1.b"]
    kl = -0.5 * np.sum(1 + LV - MU ** 2 - np.exp(LV)) / n
    loss = np.sum(np.logaddexp(0, Y) - X * Y) / n + kl
    gY = (sigmoid(Y) - X) / n
    gD = gY @ p["decoder.1.W"].T * (1 - D * D)
    gZ = gD @ p["decoder.0.W"].T
    gMU = gZ + MU / n
    gLV = gZ * eps * half * S + (np.exp(LV) - 1) / (2 * n)
    gA = (gMU @ p["mu.W"].T + gLV @ p["logvar.W"].T) * (1 - H * H)
    return loss, {"encoder.0.W": X.T @ gA, "encoder.0.b": gA.sum(axis=0),
                  "mu.W": H.T @ gMU, "mu.b": gMU.sum(axis=0),
                  "logvar.W": H.T @ gLV, "logvar.b": gLV.sum(axis=0),
                  "decoder.0.W": Z.T @ gD, "decoder.0.b": gD.sum(axis=0),
                  "decoder.1.W": D.T @ gY, "decoder.1.b": gY.sum(axis=0)}


# ------------------------------------------------------------------ the verifier's view
def hyper(fixture, key):
    return fixture.meta["model"]["hyperparameters"][key]


def check(fixture, bug):
    """Their loss and gradient on the fixture, and what npcae's verifier says of them."""
    p, X, name = fixture.params, fixture.X, fixture.meta["model"]["class"]
    if name == "ContractiveAutoencoder":
        out = "sigmoid" if hyper(fixture, "loss") == "bce" else "linear"
        loss, grads = cae(p, X, hyper(fixture, "lam"), hyper(fixture, "activation"), out, bug)
    elif name == "SparseAutoencoder":
        loss, grads = sparse_ae(p, X, hyper(fixture, "beta"), hyper(fixture, "rho"), bug)
    else:
        loss, grads = vae(p, X, fixture.noise["eps"], bug)
    result = verify({"loss": loss, **grads}, against=fixture)
    worst = max(c.worst_rel_error for c in result.params)
    return result, worst, result.summary


# ------------------------------------------------------------------ training
def train(grad_fn, params, X, epochs, batch, lr, seed):
    opt, rng = Adam(lr=lr), np.random.default_rng(seed)
    params = {k: v.copy() for k, v in params.items()}
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch):
            rows = order[start:start + batch]
            _, grads = grad_fn(params, X[rows], rng)
            opt.step(params, grads)
    return params


def cae_effect(params, X_test, lam, act):
    """Mean ||J_f||_F^2 and mean reconstruction BCE of a tied CAE on held-out digits."""
    h = sigmoid(X_test @ params["W"] + params["b"]) if act == "sigmoid" else np.tanh(
        X_test @ params["W"] + params["b"])
    dh = h * (1 - h) if act == "sigmoid" else 1 - h * h
    jac = np.mean(dh * dh @ np.sum(params["W"] ** 2, axis=0))
    z = h @ params["W"].T + params["c"]
    rec = np.mean(np.sum(np.logaddexp(0, z) - X_test * z, axis=1))
    return jac, rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few epochs on a few digits")
    ap.add_argument("--random-state", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    n_train, epochs = (300, 3) if args.quick else (1500, 15)
    X_all, _ = npcae.datasets.make_digits(n_train + 500, image_size=14,
                                          random_state=args.random_state, dtype=np.float64)
    X, X_test = X_all[:n_train], X_all[n_train:]
    d, k, lam, rng = X.shape[1], 24, 0.5, np.random.default_rng(args.random_state)
    r = 4 * np.sqrt(6 / (d + k))

    def cae_init(act):
        scale = r if act == "sigmoid" else r / 4
        return {"W": rng.uniform(-scale, scale, (d, k)), "b": np.zeros(k), "c": np.zeros(d)}

    square = make_fixture(npcae.ContractiveAutoencoder(n_hidden=6, lam=0.5), n_features=6,
                          n_samples=6, random_state=1, name="square_cae")
    rows = []
    cae_bugs = [(None, "tied_sigmoid_cae"), ("penalty gradient x2", "tied_sigmoid_cae"),
                ("penalty gradient x0.5", "tied_sigmoid_cae"),
                ("sum over the batch", "tied_sigmoid_cae"),
                ("penalty summed over the batch", "tied_sigmoid_cae"),
                ("W detached in the penalty", "tied_sigmoid_cae"),
                ("integer division", "tied_sigmoid_cae"),
                ("wrong activation derivative", "tanh_cae"),
                ("transposed layout", square)]
    trained = {}
    for bug, fx in cae_bugs:
        fixture = fx if not isinstance(fx, str) else canonical_fixture(fx)
        result, worst, said = check(fixture, bug)
        act = hyper(fixture, "activation")
        effect = "-"
        if bug != "transposed layout":          # a layout slip: square W only, not trained
            key = (bug, act)
            init = cae_init(act)
            params = train(lambda p, Xb, _, bug=bug, act=act: cae(p, Xb, lam, act, "sigmoid",
                                                                  bug),
                           init, X, epochs, 50, 3e-3, args.random_state)
            jac, rec = cae_effect(params, X_test, lam, act)
            if bug is None or (act == "tanh" and ("ok", act) not in trained):
                ok = train(lambda p, Xb, _, act=act: cae(p, Xb, lam, act), cae_init(act), X,
                           epochs, 50, 3e-3, args.random_state) if act == "tanh" else params
                trained[("ok", act)] = cae_effect(ok, X_test, lam, act)
            ref = trained[("ok", act)]
            effect = (f"||J||^2 {jac:.3g} vs {ref[0]:.3g}, rec {rec:.1f} vs {ref[1]:.1f}"
                      + (f" ({act} CAE)" if act != "sigmoid" else ""))
            trained[key] = (jac, rec)
        rows.append((bug or "(correct gradient)", said, worst, effect))

    # the KL-sparse AE: what the per-activation KL does to the codes
    fixture = canonical_fixture("kl_sparse_ae")
    beta, rho = hyper(fixture, "beta"), hyper(fixture, "rho")
    init = {"encoder.0.W": rng.uniform(-r, r, (d, k)), "encoder.0.b": np.zeros(k),
            "decoder.0.W": rng.uniform(-r, r, (k, d)), "decoder.0.b": np.zeros(d)}
    codes = {}
    for bug in (None, "KL per activation"):
        result, worst, said = check(fixture, bug)
        params = train(lambda p, Xb, _, bug=bug: sparse_ae(p, Xb, beta, rho, bug), init, X,
                       epochs, 50, 3e-3, args.random_state)
        h = sigmoid(X_test @ params["encoder.0.W"] + params["encoder.0.b"])
        codes[bug] = (h.mean(), np.mean(h > 0.5))
        rows.append((bug or "(correct sparse KL)", said, worst, None))
    for i, bug in enumerate((None, "KL per activation")):
        m, active = codes[bug]
        rows[-2 + i] = rows[-2 + i][:3] + (
            f"mean h {m:.3f} (rho {rho}), h > 0.5: {active:.1%} vs "
            f"{codes[None][1]:.1%}",)

    # the VAE: sigma = exp(logvar)
    fixture = canonical_fixture("vae")
    h_vae, z_vae = 32, 4
    init = {"encoder.0.W": rng.uniform(-0.1, 0.1, (d, h_vae)), "encoder.0.b": np.zeros(h_vae),
            "mu.W": rng.uniform(-0.1, 0.1, (h_vae, z_vae)), "mu.b": np.zeros(z_vae),
            "logvar.W": rng.uniform(-0.1, 0.1, (h_vae, z_vae)), "logvar.b": np.zeros(z_vae),
            "decoder.0.W": rng.uniform(-0.3, 0.3, (z_vae, h_vae)),
            "decoder.0.b": np.zeros(h_vae),
            "decoder.1.W": rng.uniform(-0.1, 0.1, (h_vae, d)), "decoder.1.b": np.zeros(d)}
    stats = {}
    for bug in (None, "sigma = exp(logvar)"):
        result, worst, said = check(fixture, bug)
        params = train(lambda p, Xb, g, bug=bug: vae(p, Xb, g.standard_normal((len(Xb), z_vae)),
                                                     bug),
                       init, X, epochs, 50, 3e-3, args.random_state)
        eps = np.random.default_rng(1).standard_normal((len(X_test), z_vae))
        loss = vae(params, X_test, eps)[0]                      # the right objective
        H = np.tanh(X_test @ params["encoder.0.W"] + params["encoder.0.b"])
        sigma = np.exp(0.5 * (H @ params["logvar.W"] + params["logvar.b"]))
        stats[bug] = (loss, sigma.mean())
        rows.append((bug or "(correct VAE)", said, worst, None))
    for i, bug in enumerate((None, "sigma = exp(logvar)")):
        loss, sig = stats[bug]
        rows[-2 + i] = rows[-2 + i][:3] + (
            f"-ELBO {loss:.1f} vs {stats[None][0]:.1f}, mean sigma {sig:.3f}",)

    widths = [max(len(str(r[i])) if i != 2 else 8 for r in rows) for i in range(4)]
    widths = [max(w, len(h)) for w, h in zip(widths, ("mistake", "npcae verify says",
                                                      "error", "effect on training"))]
    print(f"{'mistake':<{widths[0]}} | {'npcae verify says':<{widths[1]}} | "
          f"{'error':>8} | effect on training (buggy vs correct)")
    print("-" * (sum(widths) + 10))
    for mistake, said, worst, effect in rows:
        print(f"{mistake:<{widths[0]}} | {said:<{widths[1]}} | {worst:8.2e} | {effect}")
    print(f"\nerror: worst relative error against the fixture's correct gradient. Training: "
          f"{n_train} built-in digits (14x14), {epochs} epochs, Adam(lr=3e-3), batch 50; "
          f"||J||^2 and rec (BCE per image) on 500 held-out digits. "
          f"{time.perf_counter() - t0:.1f} s")
    print("Adam divides out a constant factor of the whole gradient, so 'sum over the batch' "
          "barely changes its training (with plain SGD it multiplies the step size by n).")
    return rows


if __name__ == "__main__":
    main()
