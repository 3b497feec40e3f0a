"""onnxruntime-vs-torch parity: the figures, the gate, and a real failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _exports import exported, torch_model, trained

from specnet.errors import VerificationError
from specnet.export import verification_data
from specnet.verify import (
    BATCH_SIZES,
    MAX_BATCHES,
    _batches,
    compare,
    onnx_reference,
    parity,
    torch_reference,
    verify,
)


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("iris", tmp_path_factory) / "model.onnx"


def _data(name: str) -> dict[str, np.ndarray]:
    run = trained(name)
    return verification_data(run.prepared, run.spec.seed)


def test_report_covers_every_batch_size_on_real_and_random_rows(iris_model: Path) -> None:
    report = verify(onnx_reference(str(iris_model)), torch_reference(torch_model("iris")),
                    _data("iris"), task="classification", rtol=1e-4, atol=1e-5)
    assert report["passed"] is True
    got = {(c["data"], c["batch_size"]) for c in report["checks"]}
    assert got == {(d, b) for d in ("test", "random") for b in BATCH_SIZES}
    assert all(c["ok"] and c["argmax_agreement"] == 1.0 for c in report["checks"])
    assert 0 < report["max_abs_err"] < 1e-5
    assert report["summary"].startswith("onnxruntime matches torch within rtol 0.0001")
    json.dumps(report)  # plain JSON, ready for verification.json and the metadata


def test_perturbed_torch_weights_fail_with_the_figures(iris_model: Path) -> None:
    with pytest.raises(VerificationError) as info:
        verify(onnx_reference(str(iris_model)), torch_reference(torch_model("iris", noise=0.05)),
               _data("iris"), task="classification", rtol=1e-4, atol=1e-5)
    message = str(info.value)
    assert message.startswith("onnxruntime and torch disagree beyond rtol 0.0001 / atol 1e-05")
    assert "test rows, batch size 7: max abs error" in message
    assert info.value.exit_code == 3


def test_a_small_perturbation_is_caught_even_when_labels_agree(iris_model: Path) -> None:
    report = parity(onnx_reference(str(iris_model)), torch_reference(torch_model("iris", 1e-3)),
                    _data("iris"), task="classification", rtol=1e-4, atol=1e-5)
    assert report["passed"] is False
    assert report["max_abs_err"] > 1e-5


@pytest.mark.parametrize("name", ["moons", "diabetes"])
def test_binary_and_regression_pass(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    model = exported(name, tmp_path_factory) / "model.onnx"
    run = trained(name)
    report = verify(onnx_reference(str(model)), torch_reference(torch_model(name)), _data(name),
                    task=run.spec.task, rtol=1e-4, atol=1e-5)
    assert report["passed"]
    assert ("argmax_agreement" in report) == (run.spec.task == "binary")


@pytest.mark.parametrize("size", [1, 2, 7, 1024])
def test_batches_have_the_exact_size(size: int) -> None:
    X = np.arange(30, dtype=np.float32).reshape(30, 1)
    batches = _batches(X, size)
    assert all(len(b) == size for b in batches)
    assert len(batches) <= MAX_BATCHES
    seen = np.concatenate(batches).ravel()
    assert len(seen) >= 30  # every row at least once, repeated to fill the last batch
    assert np.array_equal(seen, np.arange(len(seen)) % 30)


CASES = [
    # (id, task, onnx output, torch output, ok)
    ("equal", "classification", [[0.2, 0.8]], [[0.2, 0.8]], True),
    ("within-atol", "classification", [[0.2, 0.8]], [[0.200005, 0.799995]], True),
    ("beyond-atol", "classification", [[0.2, 0.8]], [[0.21, 0.79]], False),
    ("nan", "regression", [[np.nan]], [[1.0]], False),
    ("rtol-on-big-values", "regression", [[150.001]], [[150.0]], True),
    ("shape-differs", "binary", [0.3, 0.4], [[0.3], [0.4]], False),
    ("binary-tie-is-not-a-disagreement", "binary", [0.500001], [0.499999], True),
    ("binary-flip", "binary", [0.6], [0.4], False),
]


@pytest.mark.parametrize(("task", "onnx_out", "torch_out", "ok"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compare(task: str, onnx_out: list, torch_out: list, ok: bool) -> None:
    res = compare(task, np.asarray(onnx_out, np.float32), np.asarray(torch_out, np.float32),
                  rtol=1e-4, atol=1e-5)
    assert res["ok"] is ok


def test_argmax_counts_ties_apart() -> None:
    o = np.asarray([[0.5000001, 0.4999999], [0.9, 0.1]], np.float32)
    t = np.asarray([[0.4999999, 0.5000001], [0.9, 0.1]], np.float32)
    res = compare("classification", o, t, rtol=1e-4, atol=1e-5)
    assert res["argmax_agreement"] == 0.5
    assert res["argmax_ties"] == 1 and res["argmax_disagreements"] == 0 and res["ok"]


def test_nothing_to_verify_is_an_error() -> None:
    def same(X: np.ndarray) -> np.ndarray:
        return X

    with pytest.raises(VerificationError, match="no rows"):
        parity(same, same, {"test": np.zeros((0, 2), np.float32)}, task="regression",
               rtol=1e-4, atol=1e-5)
