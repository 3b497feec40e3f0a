"""The data source registry: every source loads offline as its info() promises."""

from __future__ import annotations

import gzip
import math
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specnet.data.sources import SOURCES, DataSource, Split, Xor
from specnet.errors import DataError, SpecError
from specnet.spec.load import loads
from specnet.spec.validate import validate


def _csv(tmp: Path) -> dict[str, Any]:
    rows = ["a,b,c,kind"] + [f"{i},{i % 3},{i * 0.5},{'xyz'[i % 3]}" for i in range(30)]
    (tmp / "t.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return {"path": tmp / "t.csv", "target": "kind"}


def _parquet(tmp: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": list(range(30)), "b": [i * 0.5 for i in range(30)],
                             "kind": ["xyz"[i % 3] for i in range(30)]}), tmp / "t.parquet")
    return {"path": tmp / "t.parquet", "target": "kind"}


def _npz(tmp: Path) -> dict[str, Any]:
    np.savez(tmp / "t.npz", X=np.ones((20, 2, 3)), y=np.arange(20) % 4)
    return {"path": tmp / "t.npz"}


def _idx(tmp: Path) -> dict[str, Any]:
    images, labels = np.zeros((12, 4, 4), np.uint8), np.arange(12, dtype=np.uint8) % 10
    for name, a in (("img.gz", images), ("lab.gz", labels)):
        head = bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
        (tmp / name).write_bytes(gzip.compress(head + a.tobytes()))
    return {"images": tmp / "img.gz", "labels": tmp / "lab.gz", "as_image": True}


def _npy(tmp: Path) -> dict[str, Any]:
    xy = np.column_stack([np.arange(24.0).reshape(8, 3), np.arange(8) % 2])
    np.save(tmp / "xy.npy", xy)
    return {"path": tmp / "xy.npy"}


# One small, offline configuration per registered source. A new source must add a line
# here: test_every_source_is_walked fails until it does.
SMALL: dict[str, Callable[[Path], dict[str, Any]]] = {
    "xor": lambda _: {"n_samples": 40},
    "moons": lambda _: {"n_samples": 40},
    "circles": lambda _: {"n_samples": 40, "factor": 0.3},
    "blobs": lambda _: {"n_samples": 60, "n_features": 3, "centers": 4},
    "classification": lambda _: {"n_samples": 90, "n_features": 6, "n_informative": 3,
                                 "n_classes": 3},
    "regression": lambda _: {"n_samples": 40, "n_features": 5, "n_informative": 2,
                             "n_targets": 2},
    "iris": lambda _: {},
    "wine": lambda _: {},
    "breast_cancer": lambda _: {},
    "digits": lambda _: {"as_image": True},
    "diabetes": lambda _: {},
    "csv": _csv,
    "parquet": _parquet,
    "npz": _npz,
    "npy": _npy,
    "mnist_idx": _idx,
}


def test_every_source_is_walked() -> None:
    assert set(SMALL) | {"arrays"} == set(SOURCES)


def test_in_memory_source_sizes_but_does_not_load() -> None:
    src = SOURCES["arrays"](shape=[5], n_classes=3)
    assert src.info().input_shape == (5,) and src.info().n_classes == 3
    assert SOURCES["arrays"](shape=[2], n_targets=2).info().kind == "regression"
    with pytest.raises(DataError, match="holds no data of its own: pass the arrays"):
        src.load(0)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_source_loads_as_info_promises(name: str, tmp_path: Path) -> None:
    src: DataSource = SOURCES[name](**SMALL[name](tmp_path))
    info = src.info()
    arrays = src.load(0)
    n = len(arrays.X)
    assert n > 0 and len(arrays.y) == n
    assert arrays.X.dtype == np.float32
    assert arrays.X.shape[1:] == info.input_shape
    assert np.isfinite(arrays.X).all()
    assert len(arrays.feature_names) == math.prod(info.input_shape)
    if info.feature_names:
        assert tuple(arrays.feature_names) == info.feature_names
    if info.kind == "regression":
        assert arrays.y.dtype == np.float32 and arrays.y.shape == (n, info.n_targets)
        assert arrays.class_labels is None and info.n_classes is None
    else:
        assert arrays.y.dtype == np.int64 and arrays.y.shape == (n,)
        assert info.n_classes is not None and arrays.class_labels is not None
        assert len(arrays.class_labels) == info.n_classes
        assert arrays.y.min() >= 0 and arrays.y.max() < info.n_classes
    if info.kind == "any":  # whole numbers: the spec's task decides, values kept
        assert arrays.extra["target_values"].shape == (n, info.n_targets)


@pytest.mark.parametrize("name", ["xor", "moons", "circles", "blobs", "classification",
                                  "regression"])
def test_generators_are_seeded(name: str, tmp_path: Path) -> None:
    src = SOURCES[name](**SMALL[name](tmp_path))
    a, b, c = src.load(0), src.load(0), src.load(1)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


def test_declared_classes_survive_a_sample_that_misses_one() -> None:
    # 10 points over 12 blob centres: the last two classes get no point, but the labels
    # still name all 12 classes that info() promised.
    src = SOURCES["blobs"](n_samples=10, centers=12)
    arrays = src.load(0)
    assert arrays.y.max() < 11
    assert arrays.class_labels == [str(c) for c in range(12)]
    assert src.info().n_classes == 12


def test_xor_labels() -> None:
    exact = Xor(n_samples=40, noise=0.0).load(0)
    np.testing.assert_array_equal(exact.y, (exact.X[:, 0] != exact.X[:, 1]).astype(int))
    assert sorted(map(tuple, np.unique(exact.X, axis=0).tolist())) == [
        (0, 0), (0, 1), (1, 0), (1, 1)]
    noisy = Xor(n_samples=400, noise=0.1).load(3)
    corner = np.round(noisy.X).astype(int)
    np.testing.assert_array_equal(noisy.y, corner[:, 0] ^ corner[:, 1])
    assert np.bincount(noisy.y).tolist() == [200, 200]


def _data_issue(data: str) -> tuple[str, int, str]:
    text = f"task: classification\nmodel: [linear: auto]\ndata: {data}\n"
    with pytest.raises(SpecError) as exc:
        validate(loads(text, "s.yaml"))
    (issue,) = exc.value.issues
    return issue.path, issue.line, issue.message


@pytest.mark.parametrize(("data", "path", "match"), [
    ("{source: classification, n_features: 6, n_informative: 5, n_redundant: 3}", "data",
     r"n_informative \(5\) \+ n_redundant \(3\) must be at most n_features \(6\)"),
    ("{source: classification, n_features: 6, n_informative: 3, n_classes: 5}", "data",
     r"n_classes \* n_clusters_per_class \(10\) must be at most 2\*\*n_informative \(8\)"),
    ("{source: regression, n_features: 3, n_informative: 5}", "data",
     r"n_informative \(5\) must be at most n_features \(3\)"),
    ("{source: circles, factor: 1.5}", "data.factor", r"less than 1"),
    ("{source: xor, n_samples: 4}", "data.n_samples", r"at least 8"),
    ("{source: blobs, centers: 1}", "data.centers", r"at least 2"),
    ("{source: moons, noise: -1}", "data.noise", r"at least 0"),
    ("{source: iris, split: {validation: 0.5, test: 0.45}}", "data.split",
     r"validation \+ test = 0.95 leaves too little to train on"),
    ("{source: iris, split: {test: 1.0}}", "data.split.test", r"less than 1"),
    ("irs", "data", r"unknown data source 'irs' \(did you mean 'iris'\?\)"),
    ("{source: moons, n_sample: 10}", "data.n_sample",
     r"unknown key 'n_sample' \(did you mean 'n_samples'\?\)"),
    ("{source: csv, path: x.csv}", "data.target", r"required"),
    ("{source: mnist_idx, images: a, labels: b, limit: 0}", "data.limit", r"at least 1"),
    ("{source: npz, path: a.npz, task_hint: classes}", "data.task_hint", r"'classes'"),
    ("{source: csv, path: a.csv, target: y, delimiter: ';;'}", "data.delimiter",
     r"at most 1"),
], ids=["informative-redundant", "clusters", "regression-informative", "circles-factor",
        "xor-samples", "blobs-centers", "moons-noise", "split-room", "split-test", "unknown",
        "unknown-key", "csv-target", "idx-limit", "npz-hint", "csv-delimiter"])
def test_source_arguments_are_validated(data: str, path: str, match: str) -> None:
    got_path, line, message = _data_issue(data)
    assert got_path == path and line == 3  # located in the spec, on the `data:` line
    assert re.search(match, message), message


def test_split_defaults() -> None:
    split = Split()
    assert (split.validation, split.test, split.stratify) == (0.2, 0.2, True)
