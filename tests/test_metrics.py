"""Every metric against sklearn.metrics on random and edge-case inputs, and output decoding."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from specnet.metrics import METRIC_FNS, compute, decode
from specnet.spec.schema import METRICS

CLASSIFICATION = {
    "accuracy": skm.accuracy_score,
    "balanced_accuracy": skm.balanced_accuracy_score,
    "f1_macro": lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
    "precision_macro": lambda y, p: skm.precision_score(y, p, average="macro", zero_division=0),
    "recall_macro": lambda y, p: skm.recall_score(y, p, average="macro", zero_division=0),
}
REGRESSION = {
    "mse": skm.mean_squared_error,
    "mae": skm.mean_absolute_error,
    "rmse": skm.root_mean_squared_error,
    "r2": skm.r2_score,
}


def test_the_registry_covers_every_spec_metric() -> None:
    assert set(METRIC_FNS) == set(METRICS)


def _label_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, k, n), rng.integers(0, k, n)) for k, n in
             [(2, 50), (3, 7), (10, 200), (5, 30)]]
    cases.append((np.array([0, 0, 1, 1]), np.array([0, 2, 1, 2])))  # predicted class unseen
    cases.append((np.array([0, 1, 2, 2]), np.array([0, 0, 0, 0])))  # one predicted class
    cases.append((np.array([3, 3, 3]), np.array([3, 3, 3])))        # one class overall
    return cases


@pytest.mark.parametrize("name", sorted(CLASSIFICATION))
def test_classification_metrics_match_sklearn(name: str) -> None:
    for y, p in _label_cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns on the degenerate cases
            expected = CLASSIFICATION[name](y, p)
        assert METRIC_FNS[name](y, p, p) == pytest.approx(expected), (y, p)


@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_metrics_match_sklearn(name: str) -> None:
    rng = np.random.default_rng(1)
    cases = [(rng.normal(size=(40, 1)), rng.normal(size=(40, 1))),
             (rng.normal(size=(25, 3)) * [1, 10, 100], rng.normal(size=(25, 3))),
             (np.ones((5, 1)), np.ones((5, 1))), (np.ones((5, 1)), np.zeros((5, 1)))]
    for y, p in cases:
        expected = REGRESSION[name](y, p)
        assert METRIC_FNS[name](y.astype(np.float32), p, p) == pytest.approx(expected, rel=1e-6)


def test_roc_auc_matches_sklearn_and_is_nan_with_one_class() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    score = rng.normal(size=100) + y
    assert METRIC_FNS["roc_auc"](y, (score > 0).astype(int), score) == pytest.approx(
        skm.roc_auc_score(y, score))
    assert math.isnan(METRIC_FNS["roc_auc"](np.ones(5, int), np.ones(5, int), np.ones(5)))


def test_roc_auc_of_non_finite_scores_is_nan_not_an_error() -> None:
    # A diverged model's outputs: the trainer then stops on the non-finite loss with advice.
    y = np.array([0, 1, 0, 1])
    score = np.array([0.1, np.nan, np.inf, 0.3])
    assert math.isnan(METRIC_FNS["roc_auc"](y, (score > 0).astype(int), score))


def test_r2_of_one_row_is_nan() -> None:
    assert math.isnan(METRIC_FNS["r2"](np.ones((1, 1)), np.ones((1, 1)), np.ones((1, 1))))


def test_decode_turns_outputs_into_predictions_and_scores() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0]], np.float32)
    pred, _ = decode("classification", logits)
    assert pred.tolist() == [0, 2]
    two = np.array([[0.0, 1.0], [2.0, -1.0]], np.float32)
    pred, score = decode("classification", two)
    assert pred.tolist() == [1, 0] and score.tolist() == [1.0, -3.0]
    pred, score = decode("binary", np.array([[0.3], [-0.1], [0.0]], np.float32))
    assert pred.tolist() == [1, 0, 0] and score.tolist() == pytest.approx([0.3, -0.1, 0.0])


def test_compute_runs_the_named_metrics_and_skips_empty_splits() -> None:
    y = np.array([0, 1, 1, 0])
    out = np.array([[-1.0], [2.0], [-0.5], [-3.0]], np.float32)
    got = compute(["accuracy", "roc_auc"], "binary", y, out)
    assert got == {"accuracy": 0.75, "roc_auc": 1.0}  # -0.5 misses the threshold, not the rank
    assert compute(["accuracy"], "binary", y[:0], out[:0]) == {}
    reg = compute(["mse", "r2"], "regression", np.array([[1.0], [3.0]], np.float32),
                  np.array([[1.0], [2.0]], np.float32))
    assert reg == {"mse": 0.5, "r2": 0.5}


@pytest.mark.parametrize("task", ["classification", "binary", "regression"])
def test_reference_metrics_come_from_sklearn_and_agree_with_the_fast_ones(task: str) -> None:
    rng = np.random.default_rng(2)
    if task == "regression":
        names, y, out = ["mse", "mae", "rmse", "r2"], rng.normal(size=(30, 2)), \
            rng.normal(size=(30, 2))
    elif task == "binary":
        names, y, out = [*CLASSIFICATION, "roc_auc"], rng.integers(0, 2, 30), \
            rng.normal(size=(30, 1))
    else:
        names, y, out = list(CLASSIFICATION), rng.integers(0, 4, 30), rng.normal(size=(30, 4))
    fast = compute(names, task, y, out)
    exact = compute(names, task, y, out, reference=True)
    assert exact.keys() == fast.keys()
    for name in names:
        assert exact[name] == pytest.approx(fast[name]), name
    pred, _ = decode(task, out)
    if task == "regression":
        assert exact["r2"] == pytest.approx(skm.r2_score(y, pred))
    else:
        assert exact["f1_macro"] == pytest.approx(
            skm.f1_score(y, pred, average="macro", zero_division=0))
