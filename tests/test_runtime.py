"""The onnxruntime side: opening artifacts, and the input checks predict and serve share."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from _exports import exported
from onnx import TensorProto, helper

from specnet.artifact import Artifact, model_path
from specnet.errors import ModelInputError, SpecnetError
from specnet.runtime import (
    Runtime,
    check_array,
    default_threads,
    predictions,
    rows_from_lists,
    rows_from_records,
)


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime(exported("iris", tmp_path_factory), threads=1)


@pytest.fixture(scope="session")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime(exported("digits_cnn", tmp_path_factory), threads=1)


def test_folder_and_bare_model_open_the_same(iris: Runtime, tmp_path: Path) -> None:
    bare = tmp_path / "copy.onnx"
    shutil.copyfile(iris.path, bare)
    other = Runtime(bare, threads=1)
    assert other.artifact.describe()["feature_names"] == iris.artifact.feature_names
    X = np.asarray([[5.1, 3.5, 1.4, 0.2]], np.float32)
    np.testing.assert_array_equal(other.run(X), iris.run(X))
    assert iris.artifact.verified and iris.artifact.verification_problem() is None


@pytest.mark.parametrize(("given", "message"), [
    ("missing", "does not exist"),
    ("folder-without-model", "is not an export folder"),
    ("text.txt", "is not a model"),
], ids=["missing", "folder-without-model", "not-onnx"])
def test_model_path_errors(given: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "folder-without-model").mkdir()
    (tmp_path / "text.txt").write_text("hello")
    with pytest.raises(SpecnetError, match=message):
        model_path(tmp_path / given)


def test_a_foreign_onnx_model_is_refused(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10  # what onnxruntime reads (onnx's default can be newer)
    onnx.save(model, tmp_path / "foreign.onnx")
    with pytest.raises(SpecnetError, match="has no specnet metadata"):
        Runtime(tmp_path / "foreign.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(SpecnetError, match="cannot load"):
        Runtime(tmp_path / "broken.onnx")


def test_image_models_take_flat_or_shaped_rows(cnn: Runtime) -> None:
    art = cnn.artifact
    assert art.input_shape == (1, 8, 8) and art.n_features == 64
    flat = np.random.default_rng(0).uniform(0, 16, (3, 64))
    shaped = flat.reshape(3, 1, 8, 8)
    np.testing.assert_array_equal(cnn.run(check_array(art, flat)),
                                  cnn.run(check_array(art, shaped)))


BAD_ARRAYS: list[tuple[str, Any, str]] = [
    ("wrong-width", np.ones((2, 5)), r"expected 4 per row .*got 5"),
    ("one-dimensional", np.ones(4), r"no rows|expected 4"),
    ("no-rows", np.ones((0, 4)), "no rows"),
    ("nan", np.asarray([[1, 2, 3, 4], [1, np.nan, 3, 4]]),
     r"row 2, column 'sepal width \(cm\)': nan is not a finite number"),
    ("infinity", np.asarray([[1, 2, 3, np.inf]]), r"row 1, column 'petal width \(cm\)'"),
    ("beyond-float32", np.asarray([[1, 2, 1e39, 4]]), r"row 1, column 'petal length \(cm\)'"),
    ("text", np.asarray([["a", "b", "c", "d"]]), "must be numbers"),
    ("booleans", np.ones((1, 4), bool), "true/false"),
]


@pytest.mark.parametrize(("X", "message"), [c[1:] for c in BAD_ARRAYS],
                         ids=[c[0] for c in BAD_ARRAYS])
def test_check_array_rejects(iris: Runtime, X: np.ndarray, message: str) -> None:
    with pytest.raises(ModelInputError, match=message):
        check_array(iris.artifact, X)


BAD_LISTS: list[tuple[str, Any, str]] = [
    ("ragged", [[1, 2, 3, 4], [1, 2, 3]], "row 2: expected 4 values, got 3"),
    ("string", [[1, 2, "x", 4]], r"row 1, column 'petal length \(cm\)': expected a number, "
                                 r"got 'x'"),
    ("null", [[1, 2, 3, None]], r"column 'petal width \(cm\)': expected a number, got None"),
    ("boolean", [[True, False, True, True]], "expected a number, got True"),
    ("object-row", [{"a": 1}], "row 1: expected a list of 4 numbers, got dict"),
    ("not-a-list", {"a": 1}, "must be a list"),
    ("too-wide", [[1, 2, 3, 4, 5]], r"expected 4 per row .*got 5"),
]


@pytest.mark.parametrize(("rows", "message"), [c[1:] for c in BAD_LISTS],
                         ids=[c[0] for c in BAD_LISTS])
def test_rows_from_lists_rejects(iris: Runtime, rows: Any, message: str) -> None:
    with pytest.raises(ModelInputError, match=message):
        rows_from_lists(iris.artifact, rows)


def test_records_match_by_name_and_ignore_extra_keys(iris: Runtime) -> None:
    names = iris.artifact.feature_names
    row = [5.1, 3.5, 1.4, 0.2]
    record = {"species": "setosa", **dict(zip(reversed(names), reversed(row), strict=True))}
    X = rows_from_records(iris.artifact, [record])
    np.testing.assert_array_equal(X, np.asarray([row], np.float32))


@pytest.mark.parametrize(("records", "message"), [
    ([{"sepal length (cm)": 1}], r"row 1: missing feature\(s\) 'sepal width \(cm\)'"),
    ([[1, 2, 3, 4]], "row 1: expected an object"),
    ([{"sepal length (cm)": "x", "sepal width (cm)": 1, "petal length (cm)": 1,
       "petal width (cm)": 1}], r"column 'sepal length \(cm\)': expected a number, got 'x'"),
], ids=["missing-feature", "row-not-object", "text-value"])
def test_rows_from_records_rejects(iris: Runtime, records: Any, message: str) -> None:
    with pytest.raises(ModelInputError, match=message):
        rows_from_records(iris.artifact, records)


def _art(task: str, labels: list[str] | None) -> Artifact:
    return Artifact(Path("m.onnx"), "m", task, ["a"], labels, (1,), ())


def test_predictions_in_user_terms() -> None:
    binary = predictions(_art("binary", ["no", "yes"]), np.asarray([0.2, 0.7], np.float32))
    assert binary["labels"] == ["no", "yes"]
    np.testing.assert_allclose(binary["probabilities"], [[0.8, 0.2], [0.3, 0.7]], rtol=1e-6)
    multi = predictions(_art("classification", ["a", "b", "c"]),
                        np.asarray([[0.1, 0.7, 0.2]], np.float32))
    assert multi["labels"] == ["b"] and multi["class_labels"] == ["a", "b", "c"]
    values = predictions(_art("regression", None), np.asarray([[1.5], [2.5]], np.float32))
    assert values["values"].shape == (2, 1)


def test_threads_leave_room_for_every_worker() -> None:
    assert default_threads(1) >= 1
    assert default_threads(10_000) == 1
    assert default_threads(2) * 2 <= max(2, default_threads(1))
