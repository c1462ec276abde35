"""MLPClassifier under scikit-learn: its estimator checks, clone and GridSearchCV keep (or
loudly refuse to drop) the pretraining. Skipped without scikit-learn."""
import importlib.util
import warnings

import numpy as np
import pytest

from npcae import ContractiveAutoencoder, MLPClassifier, NotFittedError
from npcae.models.mlp import export_encoder

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone, is_classifier  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


@pytest.fixture(scope="module")
def cae(digits):
    return ContractiveAutoencoder(n_hidden=16, lam=0.1, epochs=3, random_state=0).fit(digits[0])


def test_check_estimator_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # "does not inherit from BaseEstimator", skips
        results = check_estimator(MLPClassifier(), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:300]) for r in results
              if r["status"] == "failed"]
    assert failed == []
    skipped = [r["check_name"] for r in results if r["status"] == "skipped"]
    allowed = {"check_array_api_input"}
    if importlib.util.find_spec("pandas") is None:   # the check needs pandas; CI has only
        allowed.add("check_classifier_data_not_an_array")   # the test extras
    assert set(skipped) <= allowed
    passed = [r["check_name"] for r in results if r["status"] == "passed"]
    assert len(passed) >= 50
    assert {"check_classifiers_train", "check_classifiers_classes",
            "check_supervised_y_2d", "check_estimators_unfitted"} <= set(passed)


def test_it_is_a_classifier_and_its_errors_are_sklearns_kind(digits):
    assert is_classifier(MLPClassifier())
    with pytest.raises(sklearn.exceptions.NotFittedError):
        MLPClassifier().predict(digits[0])
    with pytest.raises(NotFittedError):                    # and npcae's own
        MLPClassifier().predict_proba(digits[0])
    model = MLPClassifier(epochs=2, random_state=0).fit(*digits)
    check_is_fitted(model)


def first_weights(clf, X, y):
    """The hidden weights the classifier starts from (parameters drawn, no training step)."""
    clf = clone(clf)
    clf.classes_ = np.unique(y)
    return clf.initialize(X.shape[1]).params["hidden.0.W"]


def test_clone_keeps_the_pretraining_given_as_an_encoder_dict(digits, cae):
    X, y = digits
    clf = MLPClassifier(init_from=export_encoder(cae), epochs=2, random_state=0)
    again = clone(clf)
    assert np.array_equal(first_weights(again, X, y), cae.params["W"])
    assert np.array_equal(clone(again).fit(X, y).params["hidden.0.W"],
                          clf.fit(X, y).params["hidden.0.W"])


def test_clone_of_a_model_init_from_refuses_to_train_from_scratch(digits, cae):
    """clone makes an unfitted copy of an estimator parameter: fit says so, and what to pass."""
    X, y = digits
    clf = MLPClassifier(init_from=cae, epochs=2, random_state=0)
    clf.fit(X, y)                                          # the original works
    with pytest.raises(NotFittedError, match=r"clone.*export_encoder"):
        clone(clf).fit(X, y)


def test_grid_search_and_cross_validation_keep_the_pretraining(digits, cae):
    X, y = digits
    clf = MLPClassifier(init_from=export_encoder(cae), epochs=3, random_state=0)
    search = GridSearchCV(clf, {"optimizer": [{"name": "Adam", "lr": 1e-3},
                                              {"name": "Adam", "lr": 1e-2}]}, cv=2,
                          error_score="raise").fit(X, y)
    best = search.best_estimator_
    assert best.hidden_layers_ == (16,)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    with pytest.raises(NotFittedError, match="export_encoder"):
        cross_val_score(MLPClassifier(init_from=cae, epochs=1), X, y, cv=2,
                        error_score="raise")
