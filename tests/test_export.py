"""ONNX export and the artifact folder: `specnet build`, `specnet export`, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml
from _exports import exported, spec_data, torch_model, trained
from click.testing import CliRunner
from torch import nn

from specnet.artifact import EVALUATION_PLOTS, FILES
from specnet.cli import main
from specnet.errors import ExportError, SpecnetError, VerificationError
from specnet.export import export_model, export_run
from specnet.spec.resolve import dump_resolved, spec_hash
from specnet.trainer import predict_torch
from specnet.verify import torch_reference

TASKS = ["iris", "moons", "diabetes", "digits_cnn"]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris, built end to end through the CLI: `specnet build SPEC -o DIR`."""
    root = tmp_path_factory.mktemp("build")
    spec = root / "iris.yaml"
    spec.write_text(yaml.safe_dump(spec_data("iris")), encoding="utf-8")
    result = CliRunner().invoke(main, ["build", str(spec), "-o", str(root / "iris"), "-q"])
    assert result.exit_code == 0, result.output
    assert "verified: onnxruntime matches torch" in result.output
    return root / "iris"


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _raw_test_rows(name: str) -> np.ndarray:
    prepared = trained(name).prepared
    return prepared.x_scaler.inverse(prepared.X_test)


def test_build_writes_every_file_and_nothing_else(built: Path) -> None:
    plots = [EVALUATION_PLOTS[k] for k in ("confusion_matrix", "roc", "precision_recall",
                                           "calibration")]  # a classifier's figures
    assert sorted(p.name for p in built.iterdir()) == sorted([*FILES.values(), *plots])
    leftovers = [p.name for p in built.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    history = (built / FILES["history"]).read_text().splitlines()
    assert history[0].startswith("epoch,loss,val_loss")
    assert len(history) == 1 + 15
    assert (built / FILES["learning_curve"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((built / FILES["metrics"]).read_text())
    assert set(metrics["test"]) >= {"accuracy", "f1_macro"}
    # The test split's evaluation (onnxruntime) agrees with the trainer's test metrics.
    evaluation = json.loads((built / FILES["evaluation"]).read_text())
    assert evaluation["data"] == "test split"
    assert evaluation["metrics"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert evaluation["metrics"]["f1_macro"] == pytest.approx(metrics["test"]["f1_macro"])
    report = json.loads((built / FILES["verification"]).read_text())
    assert report["passed"] is True and report["batch_sizes"] == [1, 2, 7, 1024]


def test_model_is_one_checked_file_with_dynamic_batch(built: Path) -> None:
    model = onnx.load(str(built / FILES["model"]))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [20]
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "input" and dims[0].dim_param and dims[1].dim_value == 4
    assert [o.name for o in model.graph.output] == ["probabilities"]
    session = _session(built / FILES["model"])
    for n in (1, 3, 1000):
        out = session.run(None, {"input": np.ones((n, 4), np.float32)})[0]
        assert out.shape == (n, 3)


def test_metadata_describes_the_model(built: Path) -> None:
    meta = _meta(built / FILES["model"])
    spec_text = (built / FILES["spec"]).read_text()
    assert meta["specnet.spec"] == spec_text
    from specnet.spec.validate import validate

    spec = validate(yaml.safe_load(spec_text))
    assert meta["specnet.spec_sha256"] == spec_hash(spec)
    assert dump_resolved(spec) == spec_text
    assert meta["specnet.task"] == "classification"
    assert json.loads(meta["specnet.class_labels"]) == ["setosa", "versicolor", "virginica"]
    assert json.loads(meta["specnet.feature_names"])[0] == "sepal length (cm)"
    assert json.loads(meta["specnet.input_shape"]) == [4]
    assert set(json.loads(meta["specnet.versions"])) >= {"torch", "onnx", "onnxruntime",
                                                         "specnet"}
    parity = json.loads(meta["specnet.verification"])
    assert parity == json.loads((built / FILES["verification"]).read_text())
    assert parity["max_abs_err"] <= 1e-5


@pytest.mark.parametrize("name", TASKS)
def test_outputs_are_in_user_terms(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = exported(name, tmp_path_factory)
    run = trained(name)
    X = _raw_test_rows(name)
    out = _session(folder / FILES["model"]).run(None, {"input": X})[0]
    np.testing.assert_allclose(out, predict_torch(run, X), rtol=1e-4, atol=1e-5)
    if run.spec.task == "classification":
        assert out.shape == (len(X), len(run.prepared.class_labels or []))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    elif run.spec.task == "binary":
        assert out.shape == (len(X),) and ((out >= 0) & (out <= 1)).all()
    else:
        # Values come back in the target's own units, not standardised ones.
        y_raw = run.prepared.y_scaler.inverse(run.prepared.y_train)  # type: ignore[union-attr]
        assert abs(out.mean() - y_raw.mean()) < 3 * y_raw.std()
        assert out.std() > 1.0


def test_export_cli_from_a_run_folder(tmp_path: Path) -> None:
    from specnet.spec.validate import validate
    from specnet.trainer import train

    spec = validate(spec_data("moons"))
    train(spec, tmp_path / "run")
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(tmp_path / "run"), "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / FILES["history"]).read_bytes() == \
        (tmp_path / "run" / "history.csv").read_bytes()
    meta = _meta(tmp_path / "m" / FILES["model"])
    assert meta["specnet.task"] == "binary" and meta["specnet.output_name"] == "probabilities"


@pytest.mark.parametrize("kind", ["file", "folder-with-user-files"])
def test_export_refuses_to_replace_what_is_not_an_export(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "target"
    if kind == "file":
        target.write_text("my notes")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("my notes")
        (target / FILES["model"]).write_bytes(b"old")
    run = trained("iris")
    with pytest.raises(SpecnetError, match=r"target: (is a file|holds files that are not part"
                                           r" of a specnet export \(notes.txt\))"):
        export_run(run, target)
    if kind == "file":
        assert target.read_text() == "my notes"
    else:
        assert sorted(p.name for p in target.iterdir()) == [FILES["model"], "notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_build_checks_the_artifact_folder_before_training(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\ndata: iris\nmodel: [{linear: auto}]\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    result = CliRunner().invoke(main, ["build", str(spec), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "holds files that are not part of a specnet export (keep.txt)" in result.output
    assert "trained" not in result.output  # refused before any training


def test_failed_verification_keeps_the_existing_artifact(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    good = exported("iris", tmp_path_factory)
    target = tmp_path / "iris"
    export_run(trained("iris"), target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    run = trained("iris")
    with pytest.raises(VerificationError, match=r"(?s)max abs error [0-9.e-]+.*batch size 1:"):
        export_model(run.spec, run.model, run.prepared, target, metrics=run.metrics,
                     history=run.history,
                     reference=torch_reference(torch_model("iris", noise=0.05)))
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris"]  # no temporary folder
    assert good.is_dir()


def test_build_exits_3_when_verification_fails(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # A tolerance below float32 resolution: onnxruntime and torch differ in the last bits
    # somewhere among thousands of rows, so the gate must fail, for real.
    monkeypatch.chdir(tmp_path)
    Path("iris.yaml").write_text(yaml.safe_dump(spec_data("iris", rtol=1e-12, atol=1e-12)),
                                 "utf-8")
    result = CliRunner().invoke(main, ["build", "iris.yaml", "-q"], catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert "error: onnxruntime and torch disagree beyond rtol 1e-12 / atol 1e-12" in \
        result.output
    assert "max abs error" in result.output
    # exports/ (the default place) holds no artifact and no temporary folder.
    assert list(Path("exports").iterdir()) == []


class _NotExportable(nn.Module):
    """A network with data-dependent control flow: torch.export cannot capture it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x[:, :3]
        return -x[:, :3]


def test_export_error_leaves_no_folder(tmp_path: Path) -> None:
    run = trained("iris")
    with pytest.raises(ExportError, match=r"torch\.onnx\.export failed"):
        export_model(run.spec, _NotExportable(), run.prepared, tmp_path / "iris")
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_missing_run_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "Traceback" not in result.output


# Every registered layer, in two small networks on the digits (64 features, 10 classes).
EVERY_LAYER = {
    "dense": ["linear: 32", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "selu",
              "silu", "softplus", "prelu", "dropout: 0.1", "batchnorm", "layernorm",
              "identity", "{block: {layers: [linear: 32, relu], repeat: 2}}",
              "{softmax: {dim: 1}}", "{log_softmax: {dim: 1}}", "linear: auto"],
    "conv": ["{reshape: [1, 8, 8]}", "{conv2d: {out_channels: 4, kernel_size: 3, "
             "padding: same}}", "batchnorm", "maxpool2d: 2", "avgpool2d: 1",
             "adaptive_avgpool2d: 2", "flatten", "{unflatten: [4, 4]}",
             "{conv1d: {out_channels: 4, kernel_size: 3, padding: same}}", "maxpool1d: 2",
             "avgpool1d: 1", "adaptive_avgpool1d: 1", "flatten", "linear: auto"],
}


def test_the_networks_cover_every_registered_layer() -> None:
    from specnet.layers import LAYERS

    items = [yaml.safe_load(item) for net in EVERY_LAYER.values() for item in net]
    assert {next(iter(i)) if isinstance(i, dict) else i for i in items} == set(LAYERS)


@pytest.mark.parametrize("net", sorted(EVERY_LAYER))
def test_every_layer_exports_and_verifies(net: str, tmp_path: Path) -> None:
    from specnet.compile import compile_spec
    from specnet.data.prepare import prepare
    from specnet.spec.validate import check, validate

    text = "name: every\ndata: digits\nmodel:\n" + "".join(
        f"  - {item}\n" for item in EVERY_LAYER[net])
    spec = check(validate(yaml.safe_load(text))).spec
    exported = export_model(spec, compile_spec(spec).eval(), prepare(spec), tmp_path / net)
    assert exported.report["passed"] and exported.report["max_abs_err"] < 1e-5


@pytest.mark.parametrize("opset", [17, 23])
def test_opset_comes_from_the_spec(opset: int, tmp_path: Path) -> None:
    from specnet.compile import compile_spec
    from specnet.data.prepare import prepare
    from specnet.spec.validate import validate

    spec = validate({**spec_data("iris"), "export": {"opset": opset}})
    done = export_model(spec, compile_spec(spec).eval(), prepare(spec), tmp_path / "m")
    model = onnx.load(str(done.model_path))
    assert [o.version for o in model.opset_import if o.domain == ""] == [opset]
    assert done.report["passed"]
