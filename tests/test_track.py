"""Tracking: what `--tensorboard` and `--mlflow` write, read back with TensorBoard's own
event reader and MLflow's own client."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from specnet.cli import main
from specnet.track import flatten

SPEC = """\
name: tiny
seed: 0
task: binary
data: {source: xor, n_samples: 120, noise: 0.1}
model: [{linear: 4}, tanh, {linear: 1}]
loss: bce
optimizer: {type: adam, lr: 0.05}
training: {epochs: 6, batch_size: 32, metrics: [accuracy]}
"""

SWEEP = """\
extends: tiny.yaml
sweep:
  grid:
    model[1].type: [tanh, relu]
  repeats: 2
  metric: val_accuracy
"""


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def _history(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _client(uri: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri.resolve().as_uri())


def test_build_writes_tensorboard_and_mlflow_that_read_back(spec: Path, tmp_path: Path,
                                                            runner: CliRunner) -> None:
    result = runner.invoke(main, ["build", str(spec), "-q", "--run-dir", "run",
                                  "--tensorboard", "tb", "--mlflow"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "tracked in TensorBoard tb and MLflow mlruns" in result.stderr
    history = _history(tmp_path / "run" / "history.csv")

    train = _scalars(tmp_path / "tb" / "tiny" / "train")
    val = _scalars(tmp_path / "tb" / "tiny" / "validation")
    assert [s for s, _ in train["epoch_loss"]] == list(range(1, len(history) + 1))
    np.testing.assert_allclose([v for _, v in train["epoch_loss"]],
                               [h["loss"] for h in history], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in val["epoch_accuracy"]],
                               [h["val_accuracy"] for h in history], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in train["epoch_learning_rate"]],
                               [h["lr"] for h in history], rtol=1e-6)

    client = _client(tmp_path / "mlruns")
    experiment = client.get_experiment_by_name("tiny")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "build" and run.info.status == "FINISHED"
    assert run.data.params["optimizer.lr"] == "0.05"
    assert run.data.params["model.1.type"] == "tanh"
    loss = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in loss] == pytest.approx(
        [(int(h["epoch"]), h["loss"]) for h in history])
    assert "test_accuracy" in run.data.metrics
    files = {a.path for a in client.list_artifacts(run.info.run_id, "artifact")}
    assert {"artifact/model.onnx", "artifact/metrics.json", "artifact/spec.yaml"} <= files

    # The logged model is the exported one: the onnx flavor loads and predicts the same.
    import mlflow.onnx

    (logged,) = client.search_logged_models([experiment.experiment_id])
    model = mlflow.onnx.load_model(logged.model_uri)
    rows = np.array([[0.1, 0.9], [0.9, 0.9]], dtype=np.float32)
    ours = ort.InferenceSession(str(tmp_path / "exports" / "tiny" / "model.onnx"))
    theirs = ort.InferenceSession(model.SerializeToString())
    name = ours.get_inputs()[0].name
    np.testing.assert_array_equal(ours.run(None, {name: rows})[0],
                                  theirs.run(None, {name: rows})[0])


def test_train_logs_the_run_folder(spec: Path, tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["train", str(spec), "-q", "-o", "r", "--mlflow", "ml"])
    assert result.exit_code == 0, result.output + result.stderr
    client = _client(tmp_path / "ml")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.run_name == "train"
    files = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/history.csv", "run/metrics.json", "run/weights.safetensors"} <= files


def test_sweep_is_a_parent_run_with_a_nested_run_per_variant(spec: Path, tmp_path: Path,
                                                              runner: CliRunner) -> None:
    (tmp_path / "sw.yaml").write_text(SWEEP, encoding="utf-8")
    result = runner.invoke(main, ["sweep", "sw.yaml", "-q", "-o", "out",
                                  "--tensorboard", "tb", "--mlflow", "ml"])
    assert result.exit_code == 0, result.output + result.stderr
    text = (tmp_path / "out" / "summary.csv").read_text(encoding="utf-8")
    summary = {row["variant"]: row for row in csv.DictReader(text.splitlines())}

    client = _client(tmp_path / "ml")
    runs = client.search_runs([client.get_experiment_by_name("sw").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(summary)
    assert parent.data.tags["best_variant"] in summary
    for child in children:
        assert child.data.params["model.1.type"] in ("tanh", "relu")
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 2
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert "sweep/summary.csv" in artifacts

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    swept = set()
    for variant in summary:
        curves = _scalars(tmp_path / "tb" / "sw" / variant / "train")
        assert [s for s, _ in curves["epoch_loss"]] == list(range(1, 7))
        acc = EventAccumulator(str(next((tmp_path / "tb" / "sw" / variant / "hparams")
                                        .rglob("events.out.tfevents.*")).parent))
        acc.Reload()
        content = acc.PluginTagToContent("hparams")
        info = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]).session_start_info
        swept.add(info.hparams["model[1].type"].string_value)
    assert swept == {"tanh", "relu"}


def test_python_api_calls_callbacks_every_epoch(spec: Path, one_torch_thread: None) -> None:
    import specnet

    seen: list[dict[str, float]] = []

    class Keep:
        def on_epoch_end(self, row: dict[str, float]) -> None:
            seen.append(dict(row))

    run = specnet.train(spec, callbacks=[Keep()])
    assert seen == run.history


@pytest.mark.parametrize(("module", "flag", "extra"), [
    ("tensorboardX", ["--tensorboard", "tb"], "tensorboard"),
    ("mlflow", ["--mlflow"], "mlflow"),
], ids=["tensorboard", "mlflow"])
def test_a_missing_extra_names_its_install_command(spec: Path, runner: CliRunner,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   module: str, flag: list[str],
                                                   extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    result = runner.invoke(main, ["train", str(spec), "-q", "-o", "r", *flag])
    assert result.exit_code == 1
    assert f"pip install 'specnet[{extra}]'" in result.stderr
    assert not Path("r").exists()


def test_flatten_names_every_leaf() -> None:
    assert flatten({"a": {"b": [1, {"c": "x"}]}, "d": None}) == {
        "a.b.0": 1, "a.b.1.c": "x", "d": None}
