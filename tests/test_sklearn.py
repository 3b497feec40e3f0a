"""The scikit-learn estimators: sklearn's own check suite, parameters that reach into spec
paths, GridSearchCV / cross_val_score / Pipeline, and shapes adapting to the data."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_blobs, make_regression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from specnet.sklearn import EXPECTED_FAILED_CHECKS, SpecClassifier, SpecRegressor
from specnet.spec.validate import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def tiny(**over: Any) -> dict[str, Any]:
    """A spec that trains in milliseconds: one hidden layer, a few epochs, no validation."""
    spec: dict[str, Any] = {
        "data": {"source": "blobs", "split": {"validation": 0.0}},
        "model": [{"linear": 16}, "relu", {"linear": "auto"}],
        "optimizer": {"type": "adam", "lr": 0.03},
        "training": {"epochs": 10, "batch_size": 64},
    }
    spec.update(over)
    return spec


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X, y


# Skips inside the suite (pandas not installed, array API not enabled) are warnings.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize("estimator", [
    SpecClassifier(spec=tiny()),
    SpecRegressor(spec=tiny(task="regression", data={
        "source": "regression", "target_normalize": "standard", "split": {"validation": 0.0}})),
], ids=["classifier", "regressor"])
def test_check_estimator(estimator: Any) -> None:
    results = check_estimator(estimator, expected_failed_checks=EXPECTED_FAILED_CHECKS,
                              on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert failed == []
    assert sum(r["status"] == "passed" for r in results) >= 45


def test_params_reach_into_spec_paths(iris: Any) -> None:
    X, y = iris
    clf = SpecClassifier(spec=SPECS / "iris.yaml", training__epochs=3)
    clf.set_params(optimizer__lr=0.05, model__0__units=7, seed=3)
    assert clf.get_params() == {"spec": SPECS / "iris.yaml", "training__epochs": 3,
                                "optimizer__lr": 0.05, "model__0__units": 7, "seed": 3}
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    clf.fit(X, y)
    assert clf.spec_.optimizer.lr == 0.05 and clf.spec_.optimizer.type == "adam"
    assert clf.spec_.model[0].units == 7 and clf.spec_.seed == 3
    assert clf.spec_.training.epochs == 3 and len(clf.history_) == 3
    # The rest of the file's spec is kept: its early stopping and its batch size.
    assert clf.spec_.training.batch_size == 16
    assert clf.spec_.training.early_stopping is not None


@pytest.mark.parametrize(("key", "match"), [
    ("optimiser__lr", "invalid parameter 'optimiser__lr'"),
    ("optimizer__lrr", "unknown key 'lrr' \\(did you mean 'lr'\\?\\)"),
    ("model__9__units", "model has 5 items; index 9 is out of range"),
], ids=["unknown-field", "unknown-key", "bad-index"])
def test_bad_parameters_fail_at_fit_with_a_message(iris: Any, key: str, match: str) -> None:
    clf = SpecClassifier(spec=SPECS / "iris.yaml", training__epochs=1).set_params(**{key: 1})
    with pytest.raises(ValueError, match=match):
        clf.fit(*iris)


def test_grid_search_cross_val_and_pipeline(iris: Any) -> None:
    X, y = iris
    base = SpecClassifier(spec=tiny(), training__epochs=15)
    search = GridSearchCV(base, {"optimizer__lr": [0.0001, 0.03],
                                 "model__0__units": [2, 16]}, cv=3).fit(X, y)
    assert search.best_params_["optimizer__lr"] == 0.03
    best = search.best_estimator_
    assert best.spec_.optimizer.lr == 0.03
    assert best.spec_.model[0].units == search.best_params_["model__0__units"]
    assert search.best_score_ > 0.8
    pipe = Pipeline([("scale", StandardScaler()),
                     ("net", SpecClassifier(spec=tiny(), training__epochs=15))])
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    pipe.set_params(net__optimizer__lr=0.01)
    assert pipe.named_steps["net"].get_params()["optimizer__lr"] == 0.01


def test_input_width_and_head_adapt_to_the_data() -> None:
    X, y = make_blobs(120, n_features=6, centers=2, random_state=0)
    labels = np.array(["no", "yes"])[y]
    clf = SpecClassifier(spec=SPECS / "iris.yaml", training__epochs=20).fit(X, labels)
    assert clf.n_features_in_ == 6
    assert clf.run_.model[-1].out_features == 2  # `linear: auto` sized for 2 classes, not 3
    assert clf.run_.model[0].in_features == 6
    assert clf.spec_.data.info().input_shape == (6,)
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(clf.predict(X)) <= {"no", "yes"}
    assert clf.score(X, labels) > 0.9
    with pytest.raises(ValueError, match="6 features"):
        clf.predict(X[:, :4])


def test_path_dict_and_spec_give_the_same_model(iris: Any) -> None:
    X, y = iris
    checked = load_spec(SPECS / "iris.yaml")
    import yaml

    as_dict = yaml.safe_load((SPECS / "iris.yaml").read_text())
    outs = [SpecClassifier(spec=s, training__epochs=4).fit(X, y).predict_proba(X)
            for s in (SPECS / "iris.yaml", str(SPECS / "iris.yaml"), as_dict, checked.spec)]
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


def test_binary_spec_predicts_two_columns() -> None:
    X, y = make_blobs(100, n_features=2, centers=2, random_state=1)
    clf = SpecClassifier(spec=SPECS / "xor.yaml", training__epochs=30).fit(X, y + 5)
    assert clf.spec_.task == "binary" and clf.spec_.loss_name == "bce"
    proba = clf.predict_proba(X)
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(clf.classes_) == {5, 6} and clf.score(X, y + 5) > 0.9
    X3, y3 = make_blobs(90, n_features=2, centers=3, random_state=1)
    with pytest.raises(ValueError, match="task: binary but y has 3 classes"):
        SpecClassifier(spec=SPECS / "xor.yaml").fit(X3, y3)


def test_regressor_one_and_several_targets() -> None:
    X, y = make_regression(150, n_features=5, n_targets=2, noise=0.1, random_state=0)
    spec = tiny(task="regression", data={"source": "regression",
                                         "target_normalize": "standard",
                                         "split": {"validation": 0.0}})
    reg = SpecRegressor(spec=spec, training__epochs=60).fit(X, y)
    assert reg.predict(X).shape == (150, 2)
    assert reg.run_.model[-1].out_features == 2
    assert reg.score(X, y) > 0.8
    one = SpecRegressor(spec=spec, training__epochs=60).fit(X, y[:, 0])
    assert one.predict(X).shape == (150,)
    with pytest.raises(ValueError, match="SpecRegressor needs a spec with task: regression"):
        SpecRegressor(spec=SPECS / "iris.yaml").fit(X, y[:, 0])


def test_too_few_rows_for_validation_train_every_epoch(iris: Any) -> None:
    X, y = iris
    rows = [0, 1, 50, 51, 100, 101]  # two per class: no stratified validation split
    clf = SpecClassifier(spec=SPECS / "iris.yaml", training__epochs=30,
                         training__early_stopping__patience=5).fit(X[rows], y[rows])
    assert len(clf.run_.prepared.X_val) == 0
    # Early stopping on val_loss has nothing to watch: it must not stop after `patience`.
    assert clf.metrics_["epochs_run"] == 30 and not clf.metrics_["stopped_early"]


def test_default_spec_and_pickle(iris: Any) -> None:
    X, y = iris
    clf = SpecClassifier(training__epochs=30).fit(X, y)
    assert [layer.type for layer in clf.spec_.model] == ["linear", "relu", "linear", "relu",
                                                         "linear"]
    assert clf.score(X, y) > 0.9
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    # The fitted estimator keeps the scalers and shapes, not a copy of the training rows.
    assert len(clf.run_.prepared.X_train) == 0
