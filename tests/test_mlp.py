"""MLPClassifier: init_from copies the encoder exactly, gradients, classifier API, resume."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npcae import (Autoencoder, ContractiveAutoencoder, DeepContractiveAutoencoder,
                   DenoisingAutoencoder, MLPClassifier, NotFittedError, SparseAutoencoder,
                   StackedAutoencoder, VariationalAutoencoder)
from npcae.audit import check_model_with_noise
from npcae.models.mlp import DataConversionWarning, export_encoder

unit = st.floats(0.0, 1.0, allow_nan=False, width=64)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((60, 8))
    y = (X[:, 0] + X[:, 1] > 1.0).astype(int) + 2 * (X[:, 2] > 0.5)     # 4 classes
    return X, y


def unfitted_classifier(X, y, **kwargs):
    """A classifier with parameters but no training step (classes_ from y)."""
    clf = MLPClassifier(**kwargs)
    clf.classes_ = np.unique(y)
    return clf.initialize(X.shape[1])


# ---------------------------------------------------------------- init_from copies exactly
ENCODERS = {
    "cae": lambda: ContractiveAutoencoder(n_hidden=5, lam=0.3, epochs=2, random_state=0),
    "ae": lambda: Autoencoder(layers=(5,), epochs=2, random_state=0),
    "dae": lambda: DenoisingAutoencoder(layers=(5,), noise="gaussian", noise_level=0.2,
                                        epochs=2, random_state=0),
    "sparse": lambda: SparseAutoencoder(layers=(5,), epochs=2, random_state=0),
    "deep_cae": lambda: DeepContractiveAutoencoder(layers=(6, 4), epochs=1, random_state=0),
    "stacked": lambda: StackedAutoencoder([ContractiveAutoencoder(n_hidden=6, epochs=1),
                                           Autoencoder(layers=(4,), activation="tanh",
                                                       epochs=1)],
                                          epochs=1, random_state=0),
}


@pytest.mark.parametrize("kind", list(ENCODERS))
@pytest.mark.parametrize("as_dict", [False, True])
def test_init_from_copies_the_encoder_exactly(data, kind, as_dict):
    """Predictions before any fine-tuning equal a hand computation from the encoder's weights."""
    X, y = data
    ae = ENCODERS[kind]().fit(X)
    enc = export_encoder(ae)
    clf = unfitted_classifier(X, y, init_from=enc if as_dict else ae, dtype=np.float64,
                              random_state=1)
    H = X
    for W, b, act in zip(enc["W"], enc["b"], enc["activation"]):
        name = act["name"]
        A = H @ W.astype(np.float64) + b.astype(np.float64)
        H = sigmoid(A) if name == "sigmoid" else np.tanh(A)
        assert name in ("sigmoid", "tanh")
    np.testing.assert_allclose(clf.hidden_activations(X), H, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(clf.hidden_activations(X), ae.transform(X), rtol=1e-5, atol=1e-6)
    for i, (W, b) in enumerate(zip(enc["W"], enc["b"])):
        assert np.array_equal(clf.params[f"hidden.{i}.W"], W)       # bit for bit
        assert np.array_equal(clf.params[f"hidden.{i}.b"], b)
    V, c = clf.params["output.W"], clf.params["output.b"]
    assert np.all(c == 0) and 0 < np.std(V) < 0.02                  # small and random
    P = softmax(H @ V + c)
    np.testing.assert_allclose(clf.predict_proba(X), P, rtol=1e-12, atol=1e-14)
    assert np.array_equal(clf.predict(X), clf.classes_[np.argmax(P, axis=1)])


def test_fit_starts_from_the_encoder_and_changes_it(data):
    X, y = data
    ae = ContractiveAutoencoder(n_hidden=5, epochs=2, random_state=0).fit(X)
    W0 = ae.params["W"].copy()
    clf = MLPClassifier(init_from=ae, epochs=3, random_state=0).fit(X, y)
    assert clf.hidden_layers_ == (5,)
    assert not np.array_equal(clf.params["hidden.0.W"], W0)
    assert np.array_equal(ae.params["W"], W0)                       # the autoencoder untouched


def test_export_encoder_refuses_what_it_cannot_export(data):
    X, _ = data
    with pytest.raises(NotFittedError, match="export_encoder"):
        export_encoder(ContractiveAutoencoder())
    vae = VariationalAutoencoder(layers=(4,), n_latent=2, epochs=1, random_state=0).fit(X)
    with pytest.raises(TypeError, match="VAE"):
        export_encoder(vae)
    with pytest.raises(TypeError, match="autoencoder"):
        export_encoder(np.zeros(3))


def test_bad_init_from_and_mismatched_architecture_are_refused(data):
    X, y = data
    ae = ContractiveAutoencoder(n_hidden=5, epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="layers=.*does not match"):
        MLPClassifier(init_from=ae, layers=(7,)).fit(X, y)
    with pytest.raises(ValueError, match="differs from the encoder"):
        MLPClassifier(init_from=ae, activation="tanh").fit(X, y)
    with pytest.raises(ValueError, match="features"):
        MLPClassifier(init_from=ae).fit(X[:, :5], y)
    with pytest.raises(ValueError, match="exactly the keys"):
        MLPClassifier(init_from={"W": [np.ones((8, 2))]}).fit(X, y)
    with pytest.raises(ValueError, match="chain"):
        MLPClassifier(init_from={"W": [np.ones((8, 2)), np.ones((3, 2))],
                                 "b": [np.zeros(2), np.zeros(2)],
                                 "activation": ["sigmoid", "sigmoid"]}).fit(X, y)
    with pytest.raises(TypeError, match="init_from must be"):
        MLPClassifier(init_from="cae").fit(X, y)


# ------------------------------------------------------------------------------ gradients
@settings(max_examples=30, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2 ** 16),
       act=st.sampled_from(["sigmoid", "tanh", "softplus"]))
def test_the_objective_passes_the_gradient_checker(data, seed, act):
    depth = data.draw(st.integers(1, 3))
    layers = tuple(data.draw(st.integers(1, 5)) for _ in range(depth))
    n, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    n_classes = data.draw(st.integers(2, 4))
    X = data.draw(arrays(np.float64, (n, d), elements=unit))
    y = data.draw(arrays(np.int64, n, elements=st.integers(0, n_classes - 1)))
    clf = MLPClassifier(layers=layers, activation=act, dtype=np.float64, random_state=seed)
    clf.classes_ = np.arange(n_classes)
    clf.initialize(d)
    rng = np.random.default_rng(seed)
    for name in clf.params:                       # a non-trivial output layer and biases,
        # of a scale that keeps the loss away from 0 (where f's rounding noise dominates)
        clf.params[name] = 0.5 * rng.normal(size=clf.params[name].shape)
    result = check_model_with_noise(clf, X, {"y": y}, rtol=1e-6)
    assert result.passed, result.report()


def test_the_gradient_from_a_pretrained_stack_checks(data):
    X, y = data
    stack = ENCODERS["stacked"]().fit(X)
    clf = unfitted_classifier(X, y, init_from=stack, dtype=np.float64, random_state=0)
    result = check_model_with_noise(clf, X[:7], {"y": y[:7]}, rtol=1e-6)
    assert result.passed, result.report()


def test_loss_and_grad_equals_the_hand_computed_cross_entropy(data):
    X, y = data
    clf = unfitted_classifier(X, y, layers=(3,), dtype=np.float64, random_state=0)
    H = sigmoid(X @ clf.params["hidden.0.W"] + clf.params["hidden.0.b"])
    P = softmax(H @ clf.params["output.W"] + clf.params["output.b"])
    codes = np.searchsorted(clf.classes_, y)
    expected = -np.mean(np.log(P[np.arange(len(y)), codes]))
    loss, grads = clf.loss_and_grad(X, y)
    assert loss == pytest.approx(expected, rel=1e-12)
    G = (P - np.eye(len(clf.classes_))[codes]) / len(y)
    np.testing.assert_allclose(grads["output.W"], H.T @ G, rtol=1e-10, atol=1e-15)
    assert clf.loss_terms(X, y)["total"] == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------- classifier API
@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "eel"]), np.array([-5, 3, 40]),
                                    np.array([0.0, 1.0, 2.0]), np.array([True, False])])
def test_any_label_set(labels):
    rng = np.random.default_rng(1)
    centers = rng.random((len(labels), 6)) * 4
    idx = np.repeat(np.arange(len(labels)), 30)
    X = centers[idx] + 0.1 * rng.normal(size=(len(idx), 6))
    y = labels[idx]
    clf = MLPClassifier(layers=(8,), epochs=60, optimizer={"name": "Adam", "lr": 0.03},
                        random_state=0).fit(X, y)
    assert np.array_equal(clf.classes_, np.unique(labels))
    pred = clf.predict(X)
    assert pred.dtype == clf.classes_.dtype and set(pred) <= set(labels)
    P = clf.predict_proba(X)
    assert P.shape == (len(X), len(labels))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), P, rtol=1e-4, atol=1e-7)
    assert clf.score(X, y) == np.mean(pred == y) > 0.95


def test_targets_are_validated(data):
    X, y = data
    clf = MLPClassifier(epochs=1)
    with pytest.raises(ValueError, match="requires y"):
        clf.fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="one class"):
        clf.fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="row-aligned"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(X, np.full(len(X), np.nan))
    with pytest.warns(DataConversionWarning, match="column-vector"):
        clf.fit(X, y[:, None])
    with pytest.raises(ValueError, match="not seen in fit"):
        clf.fit(X, y, validation_data=(X, y + 10))
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)


def test_early_stopping_watches_the_validation_error_and_restores_the_best(data):
    X, y = data
    clf = MLPClassifier(layers=(6,), epochs=40, early_stopping=3, random_state=0,
                        optimizer={"name": "Adam", "lr": 0.05})
    clf.fit(X[:40], y[:40], validation_data=(X[40:], y[40:]))
    errors = clf.history_["val_error"]
    best = clf.history_["best_epoch"]
    assert errors[best - 1] == min(errors)
    assert errors.index(min(errors)) == best - 1                   # the first of the best
    assert clf.loss_terms(X[40:], y[40:])["error"] == pytest.approx(min(errors))
    assert len(errors) < 40 or best == 40


def test_warm_start_resumes_exactly(data):
    X, y = data
    kwargs = dict(layers=(5,), batch_size=16, random_state=3, optimizer={"name": "SGD",
                                                                         "lr": 0.3,
                                                                         "momentum": 0.9})
    whole = MLPClassifier(epochs=5, **kwargs).fit(X, y)
    split = MLPClassifier(epochs=2, warm_start=True, **kwargs).fit(X, y)
    split.set_params(epochs=3).fit(X, y)
    for name in whole.params:
        assert np.array_equal(whole.params[name], split.params[name]), name
    assert whole.history_["total"] == split.history_["total"]
    assert split.n_iter_ == 5


def test_partial_fit_is_one_epoch_and_continues_exactly(data):
    X, y = data
    labels = np.array(["w", "x", "y", "z"])[y]
    ae = ContractiveAutoencoder(n_hidden=5, epochs=1, random_state=0).fit(X)
    kwargs = dict(init_from=ae, batch_size=16, random_state=3,
                  optimizer={"name": "SGD", "lr": 0.3, "momentum": 0.9})
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier(**kwargs).partial_fit(X, labels)
    clf = MLPClassifier(**kwargs)
    # the first batch lacks a class: classes= says which labels exist
    first = labels != "z"
    clf.partial_fit(X[first], labels[first], classes=np.unique(labels))
    assert clf.classes_.tolist() == ["w", "x", "y", "z"] and clf.n_iter_ == 1
    assert clf.params["output.W"].shape == (5, 4)
    clf.partial_fit(X, labels)
    assert clf.n_iter_ == 2
    # partial_fit twice on the same data == fit with epochs=2
    twice = MLPClassifier(**kwargs).partial_fit(X, labels, classes=np.unique(labels))
    twice.partial_fit(X, labels, classes=["z", "y", "x", "w"])        # same set: accepted
    whole = MLPClassifier(epochs=2, **kwargs).fit(X, labels)
    for name in whole.params:
        assert np.array_equal(whole.params[name], twice.params[name]), name
    assert whole.history_["total"] == twice.history_["total"]
    # after fit, partial_fit continues that fit (one more epoch)
    three = MLPClassifier(epochs=3, **kwargs).fit(X, labels)
    whole.partial_fit(X, labels)
    for name in three.params:
        assert np.array_equal(three.params[name], whole.params[name]), name
    with pytest.raises(ValueError, match="differs from the classes of the first call"):
        whole.partial_fit(X, labels, classes=["w", "x"])
    with pytest.raises(ValueError, match="labels not seen in fit"):
        whole.partial_fit(X, np.where(labels == "w", "v", labels))
    with pytest.raises(ValueError, match="features"):
        whole.partial_fit(X[:, :-1], labels)
    with pytest.raises(ValueError, match="only one label"):
        MLPClassifier(**kwargs).partial_fit(X, labels, classes=["w"])


def test_the_unsupervised_loop_is_unchanged_by_the_targets_option(data):
    """fit_loop without y gives the autoencoders exactly what it gave before (same calls)."""
    X, _ = data
    a = ContractiveAutoencoder(n_hidden=4, epochs=2, random_state=0).fit(X)
    b = ContractiveAutoencoder(n_hidden=4, epochs=1, random_state=0, warm_start=True).fit(X)
    b.fit(X)
    assert np.array_equal(a.params["W"], b.params["W"])


def test_a_warm_start_with_another_architecture_is_refused(data):
    X, y = data
    clf = MLPClassifier(layers=(5,), epochs=1, warm_start=True, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"warm start: .*\(5,\).*\(6,\)"):
        clf.set_params(layers=(6,)).fit(X, y)


def test_repr_shows_an_encoder_dict_briefly(data):
    X, _ = data
    ae = ContractiveAutoencoder(n_hidden=5, epochs=1, random_state=0).fit(X)
    assert repr(MLPClassifier(init_from=export_encoder(ae))) == \
        "MLPClassifier(init_from=<encoder dict, widths (5,)>)"


# -------------------------------------------------------------------------- save / load
def test_save_load_round_trip_and_exact_resume(tmp_path, data):
    import npcae
    X, y = data
    labels = np.array(["a", "b", "c", "d"])[y]
    stack = ENCODERS["stacked"]().fit(X)
    kwargs = dict(init_from=stack, epochs=2, batch_size=16, random_state=0,
                  optimizer={"name": "SGD", "lr": 0.2, "momentum": 0.9})
    clf = MLPClassifier(**kwargs).fit(X, labels)
    path = clf.save(tmp_path / "clf.npz")
    back = npcae.load(path)
    assert isinstance(back, MLPClassifier) and np.array_equal(back.classes_, clf.classes_)
    assert back.init_from is None and back.layers == (6, 4)     # the architecture it fixed
    assert [a.name for a in back.activations_] == ["sigmoid", "tanh"]
    assert np.array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert np.array_equal(back.predict(X), clf.predict(X))
    # 2 epochs, save, load, 3 more epochs == 5 epochs in one go
    whole = MLPClassifier(**{**kwargs, "epochs": 5}).fit(X, labels)
    back.set_params(warm_start=True, epochs=3).fit(X, labels)
    for name in whole.params:
        assert np.array_equal(whole.params[name], back.params[name]), name


def test_a_file_with_bad_classes_is_refused(tmp_path, data):
    import npcae
    from npcae.io import ModelFileError
    X, y = data
    clf = MLPClassifier(layers=(3,), epochs=1, random_state=0).fit(X, y)
    clf.classes_ = np.array([0, 0, 1, 2])
    path = clf.save(tmp_path / "bad.npz")
    with pytest.raises(ModelFileError, match="classes_"):
        npcae.load(path)
    clf.classes_ = np.array([0, 1, 2])                            # 3 classes, 4 outputs
    path = clf.save(tmp_path / "bad2.npz")
    with pytest.raises(ModelFileError, match="output"):
        npcae.load(path)


# -------------------------------------------------------------- fit_loop with targets
def test_fit_loop_takes_the_same_rows_of_y_as_of_X(data):
    """Each minibatch's targets are its rows' targets: a model that records what it was given."""
    from npcae.optim import SGD
    from npcae.training import fit_loop
    X, y = data
    clf = unfitted_classifier(X, y, layers=(3,), dtype=np.float64, random_state=0)
    seen = []
    objective = clf._objective

    def recording(Xb, grads, ws, rng=None, y=None):
        rows = [int(np.flatnonzero((X == x).all(axis=1))[0]) for x in Xb]
        seen.append((rows, y.copy()))
        return objective(Xb, grads, ws, rng, y=y)

    clf._objective = recording
    codes = np.searchsorted(clf.classes_, y)
    fit_loop(clf, X, optimizer=SGD(lr=0.1), epochs=2, batch_size=7,
             rng=np.random.default_rng(0), y=codes, verbose=0)
    assert sum(len(rows) for rows, _ in seen) == 2 * len(X)
    for rows, yb in seen:
        assert np.array_equal(yb, codes[rows])
    with pytest.raises(ValueError, match="row-aligned"):
        fit_loop(clf, X, optimizer=SGD(lr=0.1), epochs=1, batch_size=7,
                 rng=np.random.default_rng(0), y=codes[:-1], verbose=0)
    with pytest.raises(ValueError, match="y_val"):
        fit_loop(clf, X, optimizer=SGD(lr=0.1), epochs=1, batch_size=7,
                 rng=np.random.default_rng(0), y=codes, X_val=X, verbose=0)


def test_verbose_prints_the_validation_error(data, capsys):
    X, y = data
    MLPClassifier(layers=(3,), epochs=2, verbose=1, random_state=0).fit(
        X, y, validation_data=(X, y))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("val_error" in line and "cross_entropy" in line
                                   for line in lines)
