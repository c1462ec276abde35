"""npcae.reference.verify: agreement, every named diagnosis for its injected bug and for no
correct gradient, layouts, scaled and permuted copies, and the command line."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import npcae
from npcae.cli import main
from npcae.reference import (MISTAKES, canonical_fixture, canonical_names, make_fixture,
                             mistake_gradients, save_fixture, verify)

CANONICAL = {name: canonical_fixture(name) for name in canonical_names()}

# which named diagnoses each canonical fixture must be able to produce
EXPECTED = {
    "keras_cae": {"sum_not_mean", "penalty_x2", "penalty_x0.5", "penalty_sum_not_mean",
                  "penalty_missing", "penalty_w_detached", "wrong_activation_derivative"},
    "tied_sigmoid_cae": {"sum_not_mean", "penalty_x2", "penalty_x0.5", "penalty_sum_not_mean",
                         "penalty_missing", "penalty_w_detached",
                         "wrong_activation_derivative"},
    "tanh_cae": {"sum_not_mean", "penalty_x2", "penalty_x0.5", "penalty_sum_not_mean",
                 "penalty_missing", "penalty_w_detached", "wrong_activation_derivative"},
    "deep_ae": {"sum_not_mean"},
    "kl_sparse_ae": {"sum_not_mean", "penalty_x2", "penalty_x0.5", "penalty_sum_not_mean",
                     "penalty_missing", "kl_per_activation"},
    "vae": {"sum_not_mean", "penalty_x2", "penalty_x0.5", "penalty_sum_not_mean",
            "penalty_missing", "sigma_exp_logvar"},
}


def _theirs(fixture, grads, loss=None):
    return {"loss": fixture.loss if loss is None else loss, **grads}


@pytest.mark.parametrize("name", canonical_names())
def test_correct_gradients_agree_and_every_mistake_is_named(name):
    f = CANONICAL[name]
    result = verify(_theirs(f, f.grads), f)
    assert result.ok and result.verdict == "agree" and bool(result)
    assert "AGREE" in str(result)
    found = set()
    for cand in mistake_gradients(f):
        result = verify(_theirs(f, cand.grads, cand.loss), f)
        assert not result.ok and result.verdict == "mistake", (cand.key, str(result))
        assert result.mistake == cand.key and cand.title in str(result)
        found.add(cand.key)
    assert found == EXPECTED[name]


def _cae_by_hand(f, *, pen_scale=1.0, batch_sum=False, pen_batch_sum=False, detach_w=False,
                 lam_int_div=False, wrong_phi=False):
    """A CAE gradient written independently of npcae (tied or not; sigmoid or tanh encoder;
    linear + MSE or sigmoid + BCE decoder), with the classic bugs as switches."""
    meta = f.meta["model"]["hyperparameters"]
    X, p, n = f.X, f.params, f.X.shape[0]
    W, b, c = p["W"], p["b"], p["c"]
    V = p["W_dec"] if "W_dec" in p else W.T
    lam = 0.0 if lam_int_div else meta["lam"]
    tanh = meta["activation"] == "tanh"
    h = np.tanh(X @ W + b) if tanh else 1 / (1 + np.exp(-(X @ W + b)))
    z = h @ V + c
    dz = 2 * (z - X) if meta["loss"] == "mse" else 1 / (1 + np.exp(-z)) - X   # per sample
    if tanh != wrong_phi:                       # the derivative the penalty uses, as u(h)
        u, du_dh = 1 - h ** 2, -2 * h
    else:
        u, du_dh = h * (1 - h), 1 - 2 * h
    dh_da = 1 - h ** 2 if tanh else h * (1 - h)
    s = (W ** 2).sum(axis=0)
    m = 1.0 if batch_sum else 1.0 / n                      # the batch reduction
    mp = lam * pen_scale * (1.0 if (batch_sum or pen_batch_sum) else 1.0 / n)
    G_z = m * dz
    G_a = (G_z @ V.T) * dh_da + mp * 2 * u * du_dh * dh_da * s     # d sum_j u_j^2 s_j / da
    g = {"W": X.T @ G_a + (0.0 if detach_w else mp * 2 * W * (u ** 2).sum(axis=0)),
         "b": G_a.sum(axis=0), "c": G_z.sum(axis=0)}
    if "W_dec" in p:
        g["W_dec"] = h.T @ G_z
    else:
        g["W"] = g["W"] + (h.T @ G_z).T
    return g


@pytest.mark.parametrize("name", ["keras_cae", "tied_sigmoid_cae", "tanh_cae"])
@pytest.mark.parametrize("bug, key", [
    ({}, None), ({"pen_scale": 2.0}, "penalty_x2"), ({"pen_scale": 0.5}, "penalty_x0.5"),
    ({"batch_sum": True}, "sum_not_mean"), ({"pen_batch_sum": True}, "penalty_sum_not_mean"),
    ({"detach_w": True}, "penalty_w_detached"), ({"lam_int_div": True}, "penalty_missing"),
    ({"wrong_phi": True}, "wrong_activation_derivative")])
def test_independent_buggy_cae_gradients_are_named(name, bug, key):
    f = CANONICAL[name]
    result = verify(_cae_by_hand(f, **bug), f)
    if key is None:
        assert result.ok, str(result)
    else:
        assert result.verdict == "mistake" and result.mistake == key, str(result)


def test_independent_kl_per_activation_and_vae_sigma():
    f = CANONICAL["kl_sparse_ae"]
    beta, rho, n = 3.0, 0.05, f.n_samples
    W, b = f.params["encoder.0.W"], f.params["encoder.0.b"]
    h = 1 / (1 + np.exp(-(f.X @ W + b)))
    dh = beta / n * (-rho / h + (1 - rho) / (1 - h))            # each activation's KL
    da = dh * h * (1 - h)
    grads = {k: v.copy() for k, v in f.term_grads["reconstruction"].items()}
    grads["encoder.0.W"] += f.X.T @ da
    grads["encoder.0.b"] += da.sum(axis=0)
    assert verify(grads, f).mistake == "kl_per_activation"
    # the right batch-mean form, written by hand, agrees
    q = h.mean(axis=0)
    da = np.broadcast_to(beta / n * (-rho / q + (1 - rho) / (1 - q)), h.shape) * h * (1 - h)
    grads = {k: v.copy() for k, v in f.term_grads["reconstruction"].items()}
    grads["encoder.0.W"] += f.X.T @ da
    grads["encoder.0.b"] += da.sum(axis=0)
    assert verify(grads, f).ok


def test_scaled_term_permuted_nonfinite_missing_and_loss():
    f = CANONICAL["tanh_cae"]
    r = verify({k: 3.7 * g for k, g in f.grads.items()}, f)
    assert r.verdict == "factor" and r.factor == pytest.approx(3.7) and r.mistake is None
    r = verify({k: f.grads[k] + 0.3 * f.term_grads["contractive"][k] for k in f.grads}, f)
    assert r.verdict == "term_factor" and r.term == "contractive"
    assert r.factor == pytest.approx(1.3)
    tg = f.term_grads
    r = verify({k: 0.5 * tg["reconstruction"][k] + 3 * tg["contractive"][k] for k in f.grads}, f)
    assert r.verdict == "mismatch"          # two terms scaled differently: nothing known
    W = f.grads["W"].copy()
    W[[0, 1]] = W[[1, 0]]
    r = verify({**f.grads, "W": W}, f)
    assert r.verdict == "mismatch" and not r.ok and r.worst_entries[0][0] == "W"
    assert r.worst_entries[0][1][0] in (0, 1) and "worst entries" in str(r)
    bad = f.grads["b"].copy()
    bad[2] = np.nan
    assert verify({**f.grads, "b": bad}, f).verdict == "nonfinite"
    r = verify({k: g for k, g in f.grads.items() if k != "c"}, f)
    assert r.verdict == "incomplete" and "missing: c (or decoder.bias)" in r.summary
    r = verify(_theirs(f, f.grads, f.loss + 1.0), f)
    assert r.verdict == "loss" and not r.ok
    with pytest.raises(ValueError, match="name no parameter"):
        verify({"W_enc": f.grads["W"]}, f)
    with pytest.raises(ValueError, match="given twice"):
        verify({**f.grads, "encoder.weight": f.grads["W"].T}, f)
    with pytest.raises(ValueError, match="rtol"):
        verify(f.grads, f, rtol=0)


def test_float32_gradients_pass_with_a_looser_rtol():
    f = CANONICAL["vae"]
    model = f.build_model().set_params(dtype=np.float32)
    model.params = {k: v.astype(np.float32) for k, v in model.params.items()}
    _, g32 = model.loss_and_grad(f.X.astype(np.float32), eps=f.noise["eps"].astype(np.float32))
    r = verify(g32, f)
    assert not r.ok and any("float32" in note for note in r.notes)
    assert verify(g32, f, rtol=1e-3).ok


def test_pytorch_names_and_layouts():
    f = CANONICAL["keras_cae"]
    torch = {f.meta["params"][k]["torch_name"]: (g.T if g.ndim == 2 else g)
             for k, g in f.grads.items()}
    r = verify(_theirs(f, torch), f)
    assert r.ok and {p.layout for p in r.params if p.name == "W"} == {"(out, in)"}
    # npcae names in PyTorch's layout (non-square): recognised by shape, with a note
    r = verify(_theirs(f, {k: (g.T if g.ndim == 2 else g) for k, g in f.grads.items()}), f)
    assert r.ok and any("transposed" in note for note in r.notes)
    r = verify(_theirs(f, {"grad/" + k: g for k, g in f.grads.items()}), f)
    assert r.ok


def test_transposed_square_weights_are_named():
    cae = npcae.ContractiveAutoencoder(n_hidden=5, lam=0.5, tied=False)
    f = make_fixture(cae, n_features=5, n_samples=6, random_state=3)
    grads = {k: (g.T if g.ndim == 2 else g) for k, g in f.grads.items()}
    r = verify(grads, f)
    assert r.verdict == "mistake" and r.mistake == "transposed", str(r)
    torch = {f.meta["params"][k]["torch_name"]: (g.T if g.ndim == 2 else g)
             for k, g in f.grads.items()}
    assert verify(torch, f).ok                   # PyTorch names: (out, in) is expected


def test_every_mistake_key_is_documented():
    keys = {c.key for f in CANONICAL.values() for c in mistake_gradients(f)} | {"transposed"}
    assert keys == set(MISTAKES)


# ------------------------------------------------------------------ hypothesis
@st.composite
def random_fixture(draw):
    kind = draw(st.sampled_from(["cae", "sae", "vae", "deep_cae"]))
    d, k, n = draw(st.integers(3, 7)), draw(st.integers(2, 4)), draw(st.integers(3, 6))
    seed = draw(st.integers(0, 2 ** 16))
    act = draw(st.sampled_from(["sigmoid", "tanh"]))
    lam = draw(st.floats(0.05, 2.0))
    if kind == "cae":
        model = npcae.ContractiveAutoencoder(n_hidden=k, lam=lam, activation=act,
                                             tied=draw(st.booleans()))
    elif kind == "sae":
        model = npcae.SparseAutoencoder(layers=(k,), sparsity=draw(st.sampled_from(["kl",
                                                                                   "l1"])),
                                        beta=lam, rho=0.1, tied=draw(st.booleans()))
    elif kind == "vae":
        model = npcae.VariationalAutoencoder(layers=(k + 1,), n_latent=k, activation=act)
    else:
        model = npcae.DeepContractiveAutoencoder(layers=(k + 1, k), lam=lam, activation=act)
    return make_fixture(model, n_features=d, n_samples=n, random_state=seed)


@given(random_fixture(), st.data())
def test_random_fixtures_correct_scaled_permuted_and_named_bugs(fixture, data):
    f = fixture
    assert verify(_theirs(f, f.grads), f).ok
    variant = data.draw(st.sampled_from(["scaled", "permuted", "mistake"]))
    if variant == "scaled":
        c = data.draw(st.floats(-10, 10).filter(
            lambda c: abs(c) > 1e-3 and abs(c - 1) > 1e-3 and abs(c - f.n_samples) > 1e-3))
        r = verify({k: c * g for k, g in f.grads.items()}, f)
        assert r.verdict == "factor" and r.factor == pytest.approx(c, rel=1e-9)
    elif variant == "permuted":
        name = data.draw(st.sampled_from([k for k, g in f.grads.items() if g.size > 1]))
        order = np.random.default_rng(data.draw(st.integers(0, 999))).permutation(
            f.grads[name].size)
        g = f.grads[name].reshape(-1)[order].reshape(f.grads[name].shape)
        assume(np.max(np.abs(g - f.grads[name])) > 1e-3 * np.max(np.abs(f.grads[name])))
        r = verify({**f.grads, name: g}, f)
        assert not r.ok and r.verdict in ("mismatch", "mistake", "term_factor", "factor")
        if r.verdict == "mistake":                 # only a transposition can be a permutation
            assert r.mistake == "transposed"
    else:
        cands = mistake_gradients(f)
        cand = data.draw(st.sampled_from(cands))
        differs = max(np.max(np.abs(cand.grads[k] - f.grads[k])) /
                      max(np.max(np.abs(f.grads[k])), 1e-300) for k in f.grads)
        assume(differs > 1e-4)
        r = verify(cand.grads, f)
        assert r.verdict == "mistake", str(r)
        # a mistake that coincides with another on this fixture may be reported as either
        assert r.mistake == cand.key or cand.title in r.also_matches or any(
            c.key == r.mistake and all(np.allclose(c.grads[k], cand.grads[k], rtol=1e-6,
                                                   atol=0) for k in f.grads) for c in cands)


# ------------------------------------------------------------------ command line
def test_cli_reference_and_verify(tmp_path, capsys):
    out = tmp_path / "sae.npz"
    assert main(["reference", "--model", "sae", "--sparsity", "kl", "--layers", "5",
                 "--n-features", "9", "--n-samples", "4", "--out", str(out)]) == 0
    assert "SparseAutoencoder fixture, X (4, 9)" in capsys.readouterr().out
    from npcae.reference import load_fixture
    f = load_fixture(out)
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    np.savez(good, loss=f.loss, **f.grads)
    kl = [c for c in mistake_gradients(f) if c.key == "kl_per_activation"][0]
    np.savez(bad, loss=kl.loss, **kl.grads)
    assert main(["verify", str(good), "--against", str(out)]) == 0
    assert "AGREE" in capsys.readouterr().out
    assert main(["verify", str(bad), "--against", str(out)]) == 1
    assert "sparse KL is applied to each activation" in capsys.readouterr().out
    assert main(["verify", str(good), "--against", "keras_cae"]) == 2
    assert "name no parameter" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "none.npz"), "--against", str(out)]) == 2
    canon = tmp_path / "vae.npz"
    assert main(["reference", "--canonical", "vae", "--out", str(canon)]) == 0
    assert canon.read_bytes() != b""
    assert main(["verify", str(good), "--against", str(out), "--rtol", "1e-3"]) == 0
    with pytest.raises(SystemExit):
        main(["reference", "--model", "cae", "--tied", "--out", str(out)])
    save_fixture(f, out)


def test_a_fixture_given_as_theirs_agrees_with_itself(tmp_path):
    """Users try this first: only its loss and grad/ entries are read."""
    from npcae.reference import canonical_path, verify
    result = verify(canonical_path("vae"), against=canonical_path("vae"))
    assert result.ok and result.verdict == "agree"


def test_a_non_numeric_entry_is_named_briefly(tmp_path):
    from npcae.reference import canonical_path, verify
    path = tmp_path / "theirs.npz"
    np.savez(path, loss=1.0, W=np.array(["x" * 500]))
    with pytest.raises(TypeError, match=r"the gradient 'W' is not a numeric array") as info:
        verify(path, against=canonical_path("tanh_cae"))
    assert len(str(info.value)) < 300


def test_canonical_refuses_model_options_it_would_ignore(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["reference", "--canonical", "tanh_cae", "--lam", "2", "--hidden", "9",
              "--out", str(tmp_path / "f.npz")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--hidden, --lam would be ignored" in err
    assert not (tmp_path / "f.npz").exists()
    assert main(["reference", "--canonical", "tanh_cae", "--out", str(tmp_path / "f.npz")]) == 0
