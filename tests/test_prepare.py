"""Splits (seeded, stratified, disjoint) and preprocessing fitted on the training split."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from specnet.data.prepare import Scaler, for_task, prepare, prepare_arrays, split_indices
from specnet.data.sources import Arrays, Blobs, Iris, Split
from specnet.errors import DataError
from specnet.spec.load import loads
from specnet.spec.validate import validate


def labels(counts: list[int]) -> np.ndarray:
    """Class indices with the given count per class, interleaved."""
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    return np.random.default_rng(1).permutation(y)


def arrays(n: int = 100, width: int = 3, y: np.ndarray | None = None,
           regression: bool = False) -> Arrays:
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(n, width)) * [1, 10, 100][:width] + 5).astype(np.float32)
    if regression:
        return Arrays(X, (X[:, :1] * 3 + 7).astype(np.float32), [f"x{i}" for i in range(width)])
    y = labels([n // 2, n - n // 2]) if y is None else y
    return Arrays(X, y.astype(np.int64), [f"x{i}" for i in range(width)], ["a", "b"])


# ---------------------------------------------------------------- splits


@pytest.mark.parametrize("split", [Split(), Split(validation=0.1, test=0.3),
                                   Split(validation=0, test=0.25), Split(validation=0.3, test=0),
                                   Split(stratify=False)],
                         ids=["default", "uneven", "no-validation", "no-test", "unstratified"])
def test_split_is_disjoint_covering_and_sized(split: Split) -> None:
    y = labels([60, 30, 10])
    train, val, test = split_indices(100, split, 0, y if split.stratify else None)
    together = np.concatenate([train, val, test])
    assert sorted(together.tolist()) == list(range(100))  # disjoint and covering
    assert len(test) == round(100 * split.test)
    assert len(val) == round(100 * split.validation)


def test_split_is_seeded() -> None:
    y = labels([50, 50])
    a = split_indices(100, Split(), 0, y)
    b = split_indices(100, Split(), 0, y)
    c = split_indices(100, Split(), 1, y)
    for x, z in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, z)
    assert not all(np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def test_split_keeps_class_proportions() -> None:
    y = labels([120, 60, 20])
    for part, size in zip(split_indices(200, Split(), 7, y), (120, 40, 40), strict=True):
        counts = np.bincount(y[part], minlength=3)
        expected = np.array([0.6, 0.3, 0.1]) * size
        assert np.abs(counts - expected).max() <= 1, counts


@pytest.mark.parametrize(("n", "y", "split", "match"), [
    (2, None, Split(), r"cannot split 2 rows into train / validation 0.2 / test 0.2: 1 test "
     r"and 1 validation rows leave none to train on; add rows or lower the fractions"),
    (0, None, Split(), r"cannot split 0 rows.*: the data set is empty"),
    (20, labels([19, 1]), Split(),
     r"cannot split 20 rows.*least populated class.*; with stratify every class needs rows "
     r"in every split: add rows, or set data.split.stratify: false"),
    (6, labels([3, 3]), Split(validation=0.1, test=0.1),
     r"cannot split 6 rows.*should be greater or equal to the number of classes"),
], ids=["two-rows", "no-rows", "singleton-class", "split-smaller-than-classes"])
def test_too_little_data_to_split(n: int, y: np.ndarray | None, split: Split,
                                  match: str) -> None:
    with pytest.raises(DataError, match=match):
        split_indices(n, split, 0, y)


# ---------------------------------------------------------------- scaling


def test_scaler_is_fitted_on_the_training_split_only() -> None:
    data, raw = Blobs(), arrays(200)
    p = prepare_arrays(data, raw, 0, regression=False)
    np.testing.assert_allclose(p.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(p.X_train.std(axis=0), 1, atol=1e-5)
    whole = np.concatenate([p.X_train, p.X_val, p.X_test])
    assert np.abs(whole.mean(axis=0)).min() > 1e-4  # other rows did not shape the scaler
    # Changing only the test rows leaves the scaler and the training rows as they were.
    _, _, test = split_indices(200, data.split, 0, raw.y)
    changed = Arrays(raw.X.copy(), raw.y, raw.feature_names, raw.class_labels)
    changed.X[test] = changed.X[test] * 100 + 1e4
    q = prepare_arrays(data, changed, 0, regression=False)
    np.testing.assert_array_equal(q.x_scaler.offset, p.x_scaler.offset)
    np.testing.assert_array_equal(q.x_scaler.scale, p.x_scaler.scale)
    np.testing.assert_array_equal(q.X_train, p.X_train)
    assert not np.allclose(q.X_test, p.X_test)


def test_minmax_maps_the_training_split_to_unit_range() -> None:
    data = Blobs(normalize="minmax")
    p = prepare_arrays(data, arrays(100), 0, regression=False)
    np.testing.assert_allclose(p.X_train.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(p.X_train.max(axis=0), 1, atol=1e-6)
    assert p.x_scaler.kind == "minmax"


def test_none_leaves_the_inputs_alone() -> None:
    raw = arrays(50)
    p = prepare_arrays(Blobs(normalize="none"), raw, 0, regression=False)
    train, _, _ = split_indices(50, Split(), 0, raw.y)
    np.testing.assert_array_equal(p.X_train, raw.X[train])


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_constant_features_do_not_divide_by_zero(kind: str) -> None:
    X = np.ones((30, 3), np.float32)
    X[:, 1] = np.linspace(0, 1, 30)
    scaler = Scaler.fit(kind, X)
    out = scaler.transform(X)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, [0, 2]], 0)
    assert scaler.scale[0] == 1.0


def test_images_are_scaled_per_pixel_with_their_shape() -> None:
    X = np.random.default_rng(0).uniform(0, 255, (40, 1, 4, 4)).astype(np.float32)
    scaler = Scaler.fit("standard", X)
    assert scaler.offset.shape == scaler.scale.shape == (1, 4, 4)
    np.testing.assert_allclose(scaler.transform(X).mean(axis=0), 0, atol=1e-4)


def test_regression_targets_standardised_and_restored() -> None:
    raw = arrays(100, regression=True)
    data = Blobs(target_normalize="standard")
    p = prepare_arrays(data, raw, 0, regression=True)
    assert p.y_scaler is not None and p.y_scaler.kind == "standard"
    np.testing.assert_allclose(p.y_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(p.y_train.std(axis=0), 1, atol=1e-5)
    train, _, test = split_indices(100, data.split, 0, None)
    np.testing.assert_allclose(p.y_scaler.inverse(p.y_test), raw.y[test], rtol=1e-5)
    np.testing.assert_allclose(p.y_scaler.inverse(p.y_train), raw.y[train], rtol=1e-5)
    auto = prepare_arrays(Blobs(), raw, 0, regression=True)  # target_normalize: auto
    assert auto.y_scaler is not None and auto.y_scaler.kind == "standard"
    plain = prepare_arrays(Blobs(target_normalize="none"), raw, 0, regression=True)
    assert plain.y_scaler is not None and plain.y_scaler.kind == "none"
    np.testing.assert_array_equal(plain.y_test, raw.y[test])
    assert plain.class_labels is None


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_scaler_round_trips_through_json(kind: str) -> None:
    X = np.random.default_rng(0).normal(3, 2, (20, 1, 2, 2)).astype(np.float32)
    scaler = Scaler.fit(kind, X)
    back = Scaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert back.kind == kind
    np.testing.assert_array_equal(back.offset, scaler.offset)
    np.testing.assert_array_equal(back.transform(X), scaler.transform(X))
    np.testing.assert_allclose(back.inverse(back.transform(X)), X, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("record", "match"), [
    ({"kind": "standard", "offset": [0.0]}, r"needs kind, offset, scale.*'scale'"),
    ({"kind": "zscore", "offset": [0.0], "scale": [1.0]}, r"kind 'zscore', expected one of"),
    ({"kind": "standard", "offset": [0.0, 1.0], "scale": [1.0]}, r"differ in shape"),
    ({"kind": "standard", "offset": [0.0], "scale": [0.0]}, r"scale nonzero"),
    ({"kind": "standard", "offset": ["a"], "scale": [1.0]}, r"bad scaler record"),
], ids=["missing-scale", "bad-kind", "shapes", "zero-scale", "text"])
def test_damaged_scaler_records_are_data_errors(record: dict[str, Any], match: str) -> None:
    with pytest.raises(DataError, match=match):
        Scaler.from_dict(record)


# ---------------------------------------------------------------- targets and the task


def test_whole_number_targets_become_values_for_regression() -> None:
    values = np.array([[3.0], [7.0], [3.0], [10.0]], np.float32)
    raw = Arrays(np.zeros((4, 1), np.float32), np.array([0, 1, 0, 2]), ["x"], ["3", "7", "10"],
                 {"target_values": values})
    assert for_task(raw, regression=False) is raw
    as_values = for_task(raw, regression=True)
    np.testing.assert_array_equal(as_values.y, values)
    assert as_values.class_labels is None


@pytest.mark.parametrize(("y", "extra", "regression", "match"), [
    (np.array([0, 1]), {}, True, r"the task is regression but the targets are class labels"),
    (np.array([[0.5], [1.5]], np.float32), {}, False,
     r"the task is classification but the targets are continuous values"),
], ids=["labels-for-regression", "values-for-classification"])
def test_targets_that_do_not_fit_the_task(y: np.ndarray, extra: dict[str, Any],
                                          regression: bool, match: str) -> None:
    raw = Arrays(np.zeros((2, 1), np.float32), y, ["x"], None, extra)
    with pytest.raises(DataError, match=match):
        for_task(raw, regression)


def test_given_indices_are_used_as_they_are() -> None:
    raw = arrays(20)
    p = prepare_arrays(Blobs(), raw, 0, regression=False, train_idx=np.arange(15),
                       val_idx=np.arange(15, 20))
    assert (len(p.X_train), len(p.X_val), len(p.X_test)) == (15, 5, 0)
    with pytest.raises(DataError, match=r"the training split is empty"):
        prepare_arrays(Blobs(), raw, 0, regression=False, train_idx=np.arange(0))


def test_prepare_a_spec() -> None:
    spec = validate(loads("seed: 3\ndata: iris\nmodel: [linear: auto]\n"))
    p = prepare(spec)
    assert (p.X_train.shape, p.X_val.shape, p.X_test.shape) == ((90, 4), (30, 4), (30, 4))
    assert p.class_labels == ["setosa", "versicolor", "virginica"]
    assert p.feature_names[0] == "sepal length (cm)" and p.input_shape == (4,)
    assert [np.bincount(y).tolist() for y in (p.y_val, p.y_test)] == [[10, 10, 10]] * 2
    again = prepare(spec)
    np.testing.assert_array_equal(again.X_test, p.X_test)
    assert isinstance(spec.data, Iris)


def test_rare_classes_are_named_before_a_stratified_split() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2, 3])
    raw = Arrays(np.zeros((22, 1), np.float32), y, ["x"], ["ant", "bee", "cat", "dog"])
    with pytest.raises(DataError, match=r"a stratified split needs at least 2 rows of every "
                                         r"class; 2 class\(es\) have 1 row: 'cat', 'dog'; add "
                                         r"rows, or set data.split.stratify: false"):
        prepare_arrays(Blobs(), raw, 0, regression=False)
    unstratified = prepare_arrays(Blobs(split=Split(stratify=False)), raw, 0, regression=False)
    assert len(unstratified.X_train) == 22 - 5 - 5
