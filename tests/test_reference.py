"""npcae.reference fixtures: exact round trips, canonical values pinned, validation errors."""
import json
import zipfile

import numpy as np
import pytest

import npcae
from npcae.gradcheck import check_gradient
from npcae.reference import (FixtureError, canonical_fixture, canonical_names, canonical_path,
                             compare_fixtures, load_fixture, make_fixture, recompute,
                             save_fixture)
from npcae.reference._canonical import build_canonical

# The canonical fixtures' losses and terms, pinned: changing any of them must be deliberate
# (regenerate with `python -m npcae.reference.regenerate` and update these in the same change).
PINNED = {
    "keras_cae": (71.75925150317713, {"reconstruction": 68.94569462100809,
                                      "contractive": 2.813556882169042}),
    "tied_sigmoid_cae": (19.265613993096288, {"reconstruction": 17.546153964279654,
                                              "contractive": 1.719460028816635}),
    "tanh_cae": (8.669885854630584, {"reconstruction": 6.07233638003655,
                                     "contractive": 2.5975494745940346}),
    "deep_ae": (18.820281136107397, {"reconstruction": 18.820281136107397}),
    "kl_sparse_ae": (75.10674469419513, {"reconstruction": 28.121639434620718,
                                         "sparsity": 46.98510525957441}),
    "vae": (14.625549788182022, {"reconstruction": 14.167555839408537,
                                 "kl": 0.4579939487734843}),
}


def _models():
    M = npcae
    return {
        "cae_tied": M.ContractiveAutoencoder(n_hidden=4, lam=0.3),
        "cae_untied_tanh": M.ContractiveAutoencoder(n_hidden=4, lam=0.3, activation="tanh",
                                                    output_activation="identity", loss="mse",
                                                    tied=False),
        "ae_deep_tied": M.Autoencoder(layers=(5, 3), tied=True),
        "ae_deep": M.Autoencoder(layers=(5, 3), activation="tanh", loss="mse",
                                 output_activation="identity"),
        "sae_l1": M.SparseAutoencoder(layers=(4,), sparsity="l1", beta=0.5),
        "sae_kl": M.SparseAutoencoder(layers=(4,), sparsity="kl", beta=2.0, rho=0.1),
        "dae": M.DenoisingAutoencoder(layers=(4,), noise="masking", noise_level=0.3),
        "vae": M.VariationalAutoencoder(layers=(5,), n_latent=2, activation="tanh"),
        "deep_cae": M.DeepContractiveAutoencoder(layers=(5, 3), lam=0.4),
        "deep_cae_h": M.DeepContractiveAutoencoder(layers=(5, 3), lam=0.4, gamma=0.2,
                                                   n_corrupt=2),
    }


def _arrays_equal(a, b):
    assert a.meta == b.meta
    assert a.loss == b.loss and a.terms == b.terms
    for x, y in ((a.X, b.X), (a.jacobian, b.jacobian), (a.jacobian_rows, b.jacobian_rows)):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    for da, db in ((a.params, b.params), (a.noise, b.noise), (a.grads, b.grads)):
        assert list(da) == list(db)
        for k in da:
            assert da[k].dtype == np.float64 and np.array_equal(da[k], db[k])
    for t in a.term_grads:
        for k in a.term_grads[t]:
            assert np.array_equal(a.term_grads[t][k], b.term_grads[t][k])


# ------------------------------------------------------------------ canonical fixtures
@pytest.mark.parametrize("name", canonical_names())
def test_canonical_fixture_matches_the_current_code_and_its_pins(name):
    fixture = canonical_fixture(name)
    worst, where = compare_fixtures(fixture, recompute(fixture))
    assert worst <= 1e-12, (name, where, worst)
    worst, where = compare_fixtures(fixture, build_canonical(name))   # same draws, same code
    assert worst <= 1e-12, (name, where, worst)
    loss, terms = PINNED[name]
    assert fixture.loss == pytest.approx(loss, rel=1e-12, abs=0)
    assert fixture.terms == pytest.approx(terms, rel=1e-12, abs=0)
    assert list(fixture.terms) == list(terms)


def test_canonical_fixtures_are_small_and_shipped():
    for name in canonical_names():
        assert canonical_path(name).stat().st_size < 32_000
    keras = canonical_fixture("keras_cae")
    hyper = keras.meta["model"]["hyperparameters"]
    assert (hyper["lam"], hyper["activation"], hyper["output_activation"], hyper["loss"],
            hyper["tied"]) == (0.784, "sigmoid", "identity", "mse", False)
    assert keras.params["W"].shape == (20, 6) and keras.params["W_dec"].shape == (6, 20)
    assert load_fixture("vae").noise["eps"].shape == (6, 2)          # by name


@pytest.mark.parametrize("name", ["tied_sigmoid_cae", "kl_sparse_ae", "vae"])
def test_fixture_gradients_match_central_differences(name):
    """The stored gradient is the derivative of the stored loss (float64, fixture's noise)."""
    fixture = canonical_fixture(name)
    model = fixture.build_model()
    for key in fixture.params:
        def f(value, key=key):
            model.params[key] = value
            return model.loss_and_grad(fixture.X, **fixture.noise)[0]
        result = check_gradient(f, fixture.params[key].copy(), fixture.grads[key], rtol=1e-6,
                                name=key)
        model.params[key] = fixture.params[key].copy()
        assert result.passed, result


def test_cae_jacobian_and_terms_by_hand():
    """The tanh CAE: J = diag(1 - h^2) W^T; the contractive term is lam mean ||J||_F^2."""
    f = canonical_fixture("tanh_cae")
    W, b = f.params["W"], f.params["b"]
    h = np.tanh(f.X @ W + b)
    J = (1 - h ** 2)[:, :, None] * W.T[None]
    np.testing.assert_allclose(f.jacobian, J[f.jacobian_rows], rtol=1e-13, atol=0)
    assert f.terms["contractive"] == pytest.approx(0.5 * np.mean(np.sum(J ** 2, axis=(1, 2))),
                                                   rel=1e-13)
    R = h @ W.T + f.params["c"]
    assert f.terms["reconstruction"] == pytest.approx(np.mean(np.sum((R - f.X) ** 2, axis=1)),
                                                      rel=1e-13)


# ------------------------------------------------------------------ every model
@pytest.fixture(scope="module")
def fixtures():
    return {k: make_fixture(m, n_features=6, n_samples=5, random_state=i, name=k)
            for i, (k, m) in enumerate(_models().items())}


@pytest.mark.parametrize("kind", list(_models()))
def test_fixture_terms_sum_and_round_trip_exactly(kind, fixtures, tmp_path):
    f = fixtures[kind]
    assert sum(f.terms.values()) == pytest.approx(f.loss, rel=1e-12)
    for k, g in f.grads.items():
        summed = sum(tg[k] for tg in f.term_grads.values())
        np.testing.assert_allclose(summed, g, rtol=0, atol=1e-12 * max(1, np.abs(g).max()))
    model = f.build_model()
    loss, grads = model.loss_and_grad(f.X, **f.noise)
    assert loss == f.loss
    path = save_fixture(f, tmp_path / "f.npz")
    _arrays_equal(f, load_fixture(path))
    again = save_fixture(load_fixture(path), tmp_path / "g.npz")
    _arrays_equal(f, load_fixture(again))
    assert compare_fixtures(f, recompute(load_fixture(path)))[0] <= 1e-12


def test_fixture_noise_and_penalty_terms_are_the_models(fixtures):
    assert set(fixtures["dae"].noise) == {"corrupted"}
    assert set(fixtures["vae"].noise) == {"eps"} and list(fixtures["vae"].terms) == [
        "reconstruction", "kl"]
    assert set(fixtures["deep_cae_h"].noise) == {"perturbations"}
    assert list(fixtures["deep_cae_h"].terms) == ["reconstruction", "contractive", "curvature"]
    assert list(fixtures["sae_l1"].terms) == ["reconstruction", "sparsity"]
    # the decoder takes no part in a penalty
    assert not np.any(fixtures["sae_kl"].term_grads["sparsity"]["decoder.0.W"])
    # a deterministic recomputation needs the stored noise: without it the loss moves
    model = fixtures["dae"].build_model()
    assert model.loss_and_grad(fixtures["dae"].X)[0] != fixtures["dae"].loss


def test_metadata_names_conventions_and_torch_layouts(fixtures):
    meta = canonical_fixture("keras_cae").meta
    assert meta["params"]["W"] == {"shape": [20, 6], "torch_name": "encoder.weight",
                                   "torch_shape": [6, 20]}
    assert meta["params"]["W_dec"]["torch_name"] == "decoder.weight"
    assert "(n_out, n_in)" in meta["conventions"]["weight_layout"]
    assert "averaged over" in meta["conventions"]["reduction"]
    assert meta["activations"] == {"encoder": "sigmoid", "decoder_output": "identity"}
    assert meta["terms"]["contractive"]["weight"] == 0.784
    vae = fixtures["vae"].meta["params"]
    assert vae["mu.W"]["torch_name"] == "mu.weight" and vae["logvar.b"]["torch_name"] == \
        "logvar.bias"


def test_make_fixture_uses_given_inputs_and_weights():
    X = np.linspace(0.1, 0.9, 12).reshape(3, 4)
    cae = npcae.ContractiveAutoencoder(n_hidden=2, lam=0.1, random_state=0).initialize(4)
    f = make_fixture(cae, X, random_state=1)
    assert np.array_equal(f.X, X) and np.array_equal(f.params["W"], cae.params["W"])
    assert cae.dtype_ == np.float32 and f.params["W"].dtype == np.float64
    with pytest.raises(ValueError, match="needs X, n_features"):
        make_fixture(npcae.Autoencoder(layers=(2,)))


# ------------------------------------------------------------------ validation
def _rewrite(src, dst, edit):
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    np.savez(dst, **arrays)
    return dst


def _meta_edit(change):
    def edit(arrays):
        meta = json.loads(str(arrays["__fixture__"][()]))
        change(meta)
        arrays["__fixture__"] = np.array(json.dumps(meta))
    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.pop("grad/W"), "entry 'grad/W' is missing"),
    (lambda a: a.update({"grad/W": a["grad/W"].astype(np.float32)}), "dtype float32"),
    (lambda a: a.update({"X": a["X"][:, :5]}), "X has shape"),
    (lambda a: a.update({"param/b": np.zeros(7)}), "'param/b' has shape"),
    (lambda a: a["grad/b"].__setitem__(0, np.nan), "NaN"),
    (lambda a: a.update({"grad/c": a["grad/c"] + 1e-6}), "inconsistent numbers"),
    (lambda a: a.update({"term/contractive": a["term/contractive"] + 1}), "inconsistent"),
    (lambda a: a.update({"extra": np.zeros(1)}), "unexpected entries"),
    (lambda a: a.pop("__fixture__"), "not an npcae fixture"),
    (_meta_edit(lambda m: m.update(format_version=99)), "format_version 99"),
    (_meta_edit(lambda m: m.update(format="other")), "does not say format"),
    (_meta_edit(lambda m: m["model"].update({"class": "Nope"})), "cannot be rebuilt"),
])
def test_load_fixture_names_what_is_wrong(tmp_path, edit, message):
    path = _rewrite(canonical_path("tied_sigmoid_cae"), tmp_path / "bad.npz", edit)
    with pytest.raises(FixtureError, match=message) as info:
        load_fixture(path)
    assert str(path) in str(info.value)


def test_load_fixture_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_fixture(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(FixtureError, match="not a readable"):
        load_fixture(tmp_path / "text.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(FixtureError, match="single .npy"):
        load_fixture(tmp_path / "one.npy")
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(canonical_path("vae").read_bytes()[:3000])
    with pytest.raises(FixtureError):
        load_fixture(truncated)
    with zipfile.ZipFile(canonical_path("vae")) as z:
        assert all(not n.endswith(".pkl") for n in z.namelist())


def test_save_is_atomic(tmp_path, monkeypatch):
    path = save_fixture(canonical_fixture("deep_ae"), tmp_path / "f.npz")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        save_fixture(canonical_fixture("vae"), path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
