"""scikit-learn interoperability: its own estimator checks, pipelines, grid search, pickling.

npcae never imports scikit-learn at runtime; these tests need it (the ``test``
extra) and skip without it.
"""
import io
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

from npcae import ContractiveAutoencoder, NotFittedError

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

MSE = dict(loss="mse", output_activation="identity")


def test_check_estimator_passes_on_the_mse_configuration():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # "does not inherit from BaseEstimator", skips
        results = check_estimator(ContractiveAutoencoder(**MSE), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results
              if r["status"] == "failed"]
    assert failed == []
    passed = [r for r in results if r["status"] == "passed"]
    skipped = [r["check_name"] for r in results if r["status"] == "skipped"]
    # only the array-API check may skip (it needs SCIPY_ARRAY_API); everything else runs
    assert set(skipped) <= {"check_array_api_input"}
    assert len(passed) >= 40


def test_check_estimator_runs_the_transformer_checks():
    """The tags make scikit-learn treat the model as a transformer of float32."""
    tags = ContractiveAutoencoder().__sklearn_tags__()
    assert tags.transformer_tags is not None
    assert tags.transformer_tags.preserves_dtype == ["float32"]
    assert ContractiveAutoencoder(dtype=np.float64).__sklearn_tags__() \
        .transformer_tags.preserves_dtype == ["float64"]
    assert tags.target_tags.required is False


def test_package_import_does_not_import_sklearn():
    code = "import sys, npcae, npcae.models; sys.exit('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_not_fitted_error_is_sklearns_kind():
    assert issubclass(NotFittedError, ValueError)
    assert issubclass(NotFittedError, AttributeError)
    model = ContractiveAutoencoder()
    with pytest.raises(sklearn.exceptions.NotFittedError):
        check_is_fitted(model)
    with pytest.raises(AttributeError):
        model.transform(np.zeros((2, 3)))
    assert not hasattr(model, "loss_curve_")


def test_pipeline_fit_then_transform():
    X, _ = load_digits(return_X_y=True)
    pipe = make_pipeline(MinMaxScaler(), ContractiveAutoencoder(n_hidden=8, epochs=2,
                                                                random_state=0))
    codes = pipe.fit(X).transform(X)
    assert codes.shape == (len(X), 8) and np.isfinite(codes).all()
    assert np.array_equal(pipe.fit_transform(X), codes)


def test_grid_search_over_a_pipeline_gives_finite_scores():
    """Test folds that a scaler maps slightly outside [0, 1] must still transform."""
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(MinMaxScaler(),
                         ContractiveAutoencoder(n_hidden=16, epochs=2, random_state=0),
                         LogisticRegression(max_iter=300))
    search = GridSearchCV(pipe, {"contractiveautoencoder__lam": [0.0, 0.5]}, cv=2,
                          error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error", sklearn.exceptions.FitFailedWarning)
        search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (scores > 0.5).all()


def test_transform_accepts_values_outside_the_unit_interval_for_bce():
    model = ContractiveAutoencoder(n_hidden=3, epochs=1, random_state=0)
    X = np.random.default_rng(0).random((20, 5))
    model.fit(X)
    outside = X * 1.3 - 0.1
    assert np.isfinite(model.transform(outside)).all()
    assert model.jacobian(outside).shape == (20, 3, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.score(outside)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss_terms(outside)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.fit(outside)


def test_pickle_and_joblib_round_trips():
    joblib = pytest.importorskip("joblib")
    X = np.random.default_rng(1).random((30, 6))
    model = ContractiveAutoencoder(n_hidden=4, epochs=2, random_state=0).fit(X)
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(again.transform(X), model.transform(X))
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    again = joblib.load(buffer)
    assert np.array_equal(again.transform(X), model.transform(X))
    assert again.get_params() == model.get_params()


def test_clone_keeps_hyperparameters_and_drops_state():
    model = ContractiveAutoencoder(n_hidden=5, lam=0.3, dtype=np.float64, random_state=3)
    model.fit(np.random.default_rng(0).random((10, 4)))
    fresh = clone(model)
    assert fresh.get_params() == model.get_params()
    assert not fresh.__sklearn_is_fitted__()


def test_set_output_pandas_and_global_config():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).random((12, 4)), columns=list("abcd"),
                     index=np.arange(100, 112))
    model = ContractiveAutoencoder(n_hidden=3, epochs=1, random_state=0)
    model.set_output(transform="pandas")
    out = model.fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"contractiveautoencoder{i}" for i in range(3)]
    assert list(out.index) == list(X.index)
    assert np.array_equal(out.to_numpy(), model.set_output(transform="default").transform(X))
    assert list(model.feature_names_in_) == list("abcd")
    plain = ContractiveAutoencoder(n_hidden=3, epochs=1, random_state=0).fit(X)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(plain.transform(X), pd.DataFrame)
    assert isinstance(plain.transform(X), np.ndarray)
    with pytest.raises(ValueError, match="set_output"):
        model.set_output(transform="polars!")


def test_feature_names_checked_between_fit_and_transform():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).random((12, 3)), columns=["x", "y", "z"])
    model = ContractiveAutoencoder(n_hidden=2, epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="feature names should match"):
        model.transform(X.rename(columns={"x": "w"}))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        model.transform(X.to_numpy())
    names = model.get_feature_names_out(["x", "y", "z"])
    assert list(names) == ["contractiveautoencoder0", "contractiveautoencoder1"]
    with pytest.raises(ValueError, match="input_features"):
        model.get_feature_names_out(["x", "y"])
