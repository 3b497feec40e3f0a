"""Streamed data (`data.stream: true`): .npy memory-mapped and Parquet by row group train
like the in-memory set, deterministically, within a memory budget the file is over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from specnet.budget import BudgetError
from specnet.data.prepare import prepare
from specnet.data.stream import SplitRows
from specnet.errors import DataError, SpecError
from specnet.spec.validate import check
from specnet.trainer import train

N, F = 1200, 6


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """xy.npy (features and target in one array), X.npy + y.npy, d.parquet (row groups of
    100), the same rows in each."""
    d = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(N, F)) * 3 + 1).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 1).astype(np.int64)
    np.save(d / "xy.npy", np.concatenate([X, y[:, None].astype(np.float32)], axis=1))
    np.save(d / "X.npy", X)
    np.save(d / "y.npy", y)
    table = pa.table({**{f"f{i}": X[:, i] for i in range(F)}, "label": y})
    pq.write_table(table, d / "d.parquet", row_group_size=100)
    return d


def _spec(files: Path, data: dict[str, Any], **training: Any) -> dict[str, Any]:
    for key in ("path", "y_path"):
        if key in data:
            data = {**data, key: str(files / data[key])}
    return {"name": "stream", "seed": 0, "task": "classification", "data": data,
            "model": [{"linear": 16}, "relu", {"linear": 2}],
            "optimizer": {"type": "adam", "lr": 0.01},
            "training": {"epochs": 3, "batch_size": 64, "threads": 1,
                         "metrics": ["accuracy"], **training}}


def _weights(run: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in run.model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


NPY_ONE = {"source": "npy", "path": "xy.npy"}
NPY_PAIR = {"source": "npy", "path": "X.npy", "y_path": "y.npy"}
PARQUET = {"source": "parquet", "path": "d.parquet", "target": "label"}


@pytest.mark.parametrize("data", [
    NPY_ONE, NPY_PAIR, {**NPY_ONE, "target_column": -1, "normalize": "minmax"},
    {**PARQUET, "stream_groups": 12},  # one window holds all 12 row groups
], ids=["npy-one-array", "npy-x-and-y", "npy-minmax", "parquet-one-window"])
def test_streamed_training_equals_in_memory_training(files: Path, data: dict[str, Any],
                                                     one_torch_thread: None) -> None:
    memory = train(_spec(files, data))
    streamed = train(_spec(files, {**data, "stream": True}))
    assert isinstance(streamed.prepared.X_train, SplitRows)
    assert isinstance(memory.prepared.X_train, np.ndarray)
    assert _same(_weights(memory), _weights(streamed))
    assert memory.history == [{**r, "seconds": m["seconds"]}
                              for r, m in zip(streamed.history, memory.history, strict=True)]
    for split in ("train", "val", "test"):
        assert memory.metrics[split] == streamed.metrics[split]
    np.testing.assert_array_equal(memory.prepared.x_scaler.offset,
                                  streamed.prepared.x_scaler.offset)


def test_the_split_and_scaled_rows_are_the_in_memory_ones(files: Path) -> None:
    memory = prepare(check(_spec(files, NPY_ONE)).spec)
    streamed = prepare(check(_spec(files, {**NPY_ONE, "stream": True})).spec)
    for split in ("train", "val", "test"):
        rows = getattr(streamed, f"X_{split}")
        assert isinstance(rows, SplitRows)
        got = np.concatenate(list(rows.chunks(100)))
        np.testing.assert_array_equal(got, getattr(memory, f"X_{split}"))
        np.testing.assert_array_equal(getattr(streamed, f"y_{split}"),
                                      getattr(memory, f"y_{split}"))


def test_parquet_row_group_shuffle_is_reproducible_and_close_to_in_memory(
        files: Path, one_torch_thread: None) -> None:
    spec = _spec(files, {**PARQUET, "stream": True, "stream_groups": 2}, epochs=6)
    first, second = train(spec), train(spec)
    assert _same(_weights(first), _weights(second))
    memory = train(_spec(files, PARQUET, epochs=6))
    assert not _same(_weights(first), _weights(memory))  # another order, other weights
    assert abs(first.metrics["test"]["accuracy"] - memory.metrics["test"]["accuracy"]) < 0.03
    assert first.metrics["test"]["accuracy"] > 0.9


def test_each_epoch_visits_every_training_row_once_in_windows_of_row_groups(
        files: Path) -> None:
    prepared = prepare(check(_spec(files, {**PARQUET, "stream": True,
                                               "stream_groups": 3})).spec)
    rows = prepared.X_train
    assert isinstance(rows, SplitRows)
    gen = torch.Generator().manual_seed(0)
    orders = [rows.epoch_order(gen).numpy() for _ in range(2)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(len(rows)))
        groups = rows.rows[order] // 100  # the row group of each step's row
        windows = [set(groups[i:i + 64].tolist()) for i in range(0, len(order), 64)]
        assert max(len(w) for w in windows) <= 2 * 3  # a batch lies in one or two windows
    assert not np.array_equal(orders[0], orders[1])  # a new order every epoch


def test_resume_of_a_streamed_run_reaches_the_same_weights(files: Path, tmp_path: Path,
                                                           one_torch_thread: None) -> None:
    spec = _spec(files, {**PARQUET, "stream": True, "stream_groups": 2}, epochs=4,
                 checkpoint_every=1)
    whole = train(spec, tmp_path / "whole")

    class Crash:
        def on_epoch_end(self, row: dict[str, float]) -> bool:
            if row["epoch"] == 3:  # before epoch 3's checkpoint: epoch 2's is the last
                raise RuntimeError("crash")
            return False

    with pytest.raises(RuntimeError, match="crash"):
        train(spec, tmp_path / "cut", callbacks=[Crash()])  # type: ignore[list-item]
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()] == ["epoch_00002.pt"]
    resumed = train(spec, tmp_path / "cut", resume=True)
    assert _same(_weights(whole), _weights(resumed))
    assert (tmp_path / "whole" / "weights.safetensors").read_bytes() == \
        (tmp_path / "cut" / "weights.safetensors").read_bytes()


# ---------------------------------------------------------------- memory budget


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 15 MiB .npy and a Parquet file of the same 40,000 x 96 rows (row groups of 1,000)."""
    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40_000, 96)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    np.save(d / "xy.npy", np.concatenate([X, y[:, None]], axis=1))
    table = pa.table({**{f"f{i}": X[:, i] for i in range(96)}, "label": y.astype(np.int64)})
    pq.write_table(table, d / "d.parquet", row_group_size=1000)
    return d


@pytest.mark.parametrize("data", [
    NPY_ONE, {**PARQUET, "stream_groups": 1},
], ids=["npy", "parquet"])
def test_a_file_over_the_memory_budget_trains_when_streamed(
        big: Path, data: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        one_torch_thread: None) -> None:
    monkeypatch.setenv("SPECNET_MAX_MEMORY_MB", "16")
    spec = _spec(big, data, epochs=1, batch_size=256)
    spec["data"]["split"] = {"validation": 0.1, "test": 0.1}
    with pytest.raises((BudgetError, SpecError), match=r"memory budget is 16 MiB.*"
                                                       r"data\.stream: true"):
        train(spec)
    spec["data"]["stream"] = True
    run = train(spec)
    assert run.metrics["test"]["accuracy"] > 0.9


def test_a_streamed_set_whose_bookkeeping_is_over_the_budget_names_the_working_set(
        big: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECNET_MAX_MEMORY_MB", "4")
    spec = check(_spec(big, {**NPY_ONE, "stream": True}, batch_size=256)).spec
    with pytest.raises(BudgetError, match=r"xy\.npy: streaming 40,000 rows \(80 bytes a row "
                                          r".*working set of .* MiB.*lower training.batch_size"):
        prepare(spec)


# ---------------------------------------------------------------- errors


def _parquet(path: Path, **cols: Any) -> Path:
    pq.write_table(pa.table(cols), path, row_group_size=50)
    return path


@pytest.mark.parametrize(("cols", "data", "match"), [
    ({"a": np.arange(200.0), "city": ["x", "y"] * 100, "t": [0, 1] * 100}, {},
     r"column 'city' has type string: streaming reads numeric and boolean feature columns "
     r"only .* `city: ignore`"),
    ({"a": [1.0, None] * 100, "t": [0, 1] * 100}, {},
     r"row 2, column 'a': missing value; a streamed file cannot be imputed"),
    ({"a": np.arange(200.0), "user_id": np.arange(200), "t": [0, 1] * 100}, {},
     r"column 'user_id' is named like an id; .*`user_id: id`"),
    ({"a": np.arange(200.0), "t": [0, 1] * 100}, {"columns": {"a": "categorical"}},
     r"data\.columns\.a: streamed files take only a role here"),
], ids=["text-feature", "blank-cell", "id-named", "column-type"])
def test_parquet_streaming_refuses_what_needs_whole_columns(
        tmp_path: Path, cols: dict[str, Any], data: dict[str, Any], match: str) -> None:
    path = _parquet(tmp_path / "p.parquet", **cols)
    spec = _spec(tmp_path, {"source": "parquet", "path": str(path), "target": "t",
                            "stream": True, **data})
    with pytest.raises((DataError, SpecError), match=match):
        train(spec)


def test_streamed_parquet_takes_columns_set_to_ignore_and_drops_rows_without_target(
        tmp_path: Path) -> None:
    path = _parquet(tmp_path / "p.parquet", a=np.arange(200.0), b=["x", "y"] * 100,
                    user_id=np.arange(200), t=[0, 1, None, 1] * 50)
    spec = _spec(tmp_path, {"source": "parquet", "path": str(path), "target": "t",
                            "stream": True, "columns": {"b": "ignore", "user_id": "id"}})
    prepared = prepare(check(spec).spec)
    assert prepared.feature_names == ["a"]
    assert len(prepared.X_train) + len(prepared.X_val) + len(prepared.X_test) == 150
    assert [c["role"] for c in prepared.columns or []] == ["feature", "ignore", "id", "target"]


@pytest.mark.parametrize(("data", "match"), [
    ({"y_path": "y.npy", "target_column": 0}, r"either y_path .* or target_column"),
    ({"target_column": 9}, r"target_column 9 is outside the array's 7 columns"),
    ({"path": "X.npy", "y_path": "y5.npy"}, r"y5\.npy: has 5 rows but .*X\.npy has 1,200"),
], ids=["both-targets", "column-out-of-range", "target-rows"])
def test_npy_source_errors(files: Path, data: dict[str, Any], match: str) -> None:
    np.save(files / "y5.npy", np.arange(5))
    with pytest.raises(SpecError, match=match):
        check(_spec(files, {**NPY_ONE, "stream": True, **data}))


def test_an_npz_archive_is_not_an_npy_file(files: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", X=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(SpecError, match=r"an \.npz archive, not a single \.npy array.*"
                                        r"source: npz"):
        check(_spec(tmp_path, {"source": "npy", "path": "a.npz"}))


def test_full_batches_cannot_stream(files: Path) -> None:
    with pytest.raises(DataError, match=r"batch_size: full would read the whole training "
                                        r"split every step"):
        train(_spec(files, {**NPY_ONE, "stream": True}, batch_size="full"))


def test_nan_in_a_streamed_npy_file_is_found_before_training(tmp_path: Path) -> None:
    X = np.ones((100, 3), np.float32)
    X[:, 2] = np.arange(100) % 2  # the target: the last column
    X[70, 1] = np.nan
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(DataError, match=r"x\.npy: holds NaN or infinity.*sample 70"):
        prepare(check(_spec(tmp_path, {"source": "npy", "path": "x.npy",
                                           "task_hint": "classification",
                                           "stream": True})).spec)


def test_a_streamed_run_exports_and_verifies(files: Path, tmp_path: Path,
                                             one_torch_thread: None) -> None:
    from specnet.export import export_run

    run = train(_spec(files, {**NPY_ONE, "stream": True}, epochs=1), tmp_path / "run")
    exported = export_run(run, tmp_path / "export")
    assert (exported.folder / "model.onnx").is_file()
    assert exported.report  # export_model raises VerificationError when the parity fails


def test_specnet_train_streams_a_parquet_file_over_the_budget(
        big: Path, tmp_path: Path, runner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from specnet.cli import main

    monkeypatch.setenv("SPECNET_MAX_MEMORY_MB", "16")
    spec = _spec(big, {**PARQUET, "stream": True, "stream_groups": 1,
                       "split": {"validation": 0.1, "test": 0.1}}, epochs=1, batch_size=256)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    checked = runner.invoke(main, ["validate", str(path)])  # no column table: no whole read
    assert checked.exit_code == 0, checked.output
    assert "(data.stream: true)" in checked.output
    result = runner.invoke(main, ["train", str(path), "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "weights.safetensors").is_file()
