"""`specnet export MODEL --target triton|kserve|mlflow`: real files, read back with each
platform's own parser or loader (Triton's model_config.proto as tritonclient ships it,
the KServe SDK's model classes, mlflow.pyfunc)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from _exports import exported
from click.testing import CliRunner

from specnet.cli import main

ONNX_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.DOUBLE: "TYPE_FP64"}


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("iris", tmp_path_factory)


@pytest.fixture(scope="module")
def moons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("moons", tmp_path_factory)


def export(runner: CliRunner, model: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(main, ["export", str(model), *args])
    return result.exit_code, result.stdout, result.stderr


def _onnx_tensors(values: list[onnx.ValueInfoProto]) -> list[tuple[str, str, list[int]]]:
    """(name, Triton type, dims without the batch axis) of ONNX graph inputs/outputs, as
    the onnx package (not specnet's onnxruntime session) reads them."""
    out = []
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_value for d in t.shape.dim[1:]]
        out.append((v.name, ONNX_TYPES[t.elem_type], dims))
    return out


@pytest.mark.parametrize("name", ["iris", "moons"])
def test_triton_config_parses_with_tritons_proto_and_matches_the_model(
        runner: CliRunner, tmp_path: Path, name: str, iris: Path, moons: Path) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    model = {"iris": iris, "moons": moons}[name]
    repo = tmp_path / "repo"
    code, out, err = export(runner, model, "--target", "triton", "-o", str(repo),
                            "--max-batch-size", "64")
    assert code == 0, err
    assert f"{repo / name}/" in out and "checked:" in out
    config = text_format.Parse((repo / name / "config.pbtxt").read_text(),
                               model_config_pb2.ModelConfig())
    graph = onnx.load(str(repo / name / "1" / "model.onnx")).graph
    assert (repo / name / "1" / "model.onnx").read_bytes() == (model / "model.onnx").read_bytes()
    assert config.name == name and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 64
    assert config.HasField("dynamic_batching")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    dt = model_config_pb2.DataType.Name
    for got, want in ((config.input, graph.input), (config.output, graph.output)):
        for tensor, (wname, wtype, wdims) in zip(got, _onnx_tensors(list(want)), strict=True):
            assert (tensor.name, dt(tensor.data_type)) == (wname, wtype)
            if wdims:
                assert list(tensor.dims) == wdims
            else:  # [batch] only: Triton's dims [1] reshaped to []
                assert list(tensor.dims) == [1]
                assert tensor.HasField("reshape") and list(tensor.reshape.shape) == []
    if name == "iris":  # classification: Triton's classification extension reads the labels
        assert config.output[0].label_filename == "labels.txt"
        labels = (repo / name / "labels.txt").read_text().splitlines()
        meta = {p.key: p.value for p in onnx.load(str(model / "model.onnx")).metadata_props}
        assert labels == json.loads(meta["specnet.class_labels"])
    else:
        assert not (repo / name / "labels.txt").exists()


def test_triton_repository_holds_several_models_and_keeps_user_files(
        runner: CliRunner, tmp_path: Path, iris: Path, moons: Path) -> None:
    repo = tmp_path / "repo"
    for model in (iris, moons, iris):  # iris twice: an earlier output is replaced
        assert export(runner, model, "--target", "triton", "-o", str(repo))[0] == 0
    assert sorted(p.name for p in repo.iterdir()) == ["iris", "moons"]
    (repo / "iris" / "1" / "notes.txt").write_text("mine")
    code, _, err = export(runner, iris, "--target", "triton", "-o", str(repo))
    assert code == 1 and "1/notes.txt" in err and "choose another output folder" in err
    assert (repo / "iris" / "1" / "notes.txt").read_text() == "mine"
    assert (repo / "moons" / "config.pbtxt").is_file()


_KSERVE_CHECK = textwrap.dedent("""
    import json, sys, yaml, kserve, kubernetes.client as k8s

    obj = yaml.safe_load(open(sys.argv[1]))
    class Response:
        data = json.dumps(obj["spec"])
    api = kserve.ApiClient()
    spec = api.deserialize(Response(), "V1beta1InferenceServiceSpec")
    meta = k8s.ApiClient().deserialize(json.dumps(obj["metadata"]), "V1ObjectMeta",
                                       "application/json")
    isvc = kserve.V1beta1InferenceService(api_version=obj["apiVersion"], kind=obj["kind"],
                                          metadata=meta, spec=spec)
    back = api.sanitize_for_serialization(spec)
    back["predictor"]["model"].pop("name")  # the SDK's default container name, ''
    model = isvc.spec.predictor.model
    print(json.dumps({"round_trip": back == obj["spec"], "kind": isvc.kind,
                      "api_version": isvc.api_version, "name": isvc.metadata.name,
                      "format": model.model_format.name, "protocol": model.protocol_version,
                      "storage_uri": model.storage_uri}))
""")


def test_kserve_manifest_loads_with_the_kserve_sdk(runner: CliRunner, tmp_path: Path,
                                                   iris: Path) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    out = tmp_path / "isvc"
    code, _, err = export(runner, iris, "--target", "kserve", "-o", str(out),
                          "--storage-uri", "s3://models/iris")
    assert code == 0, err
    # kserve and tritonclient.grpc register the same proto names: kserve in its own process
    proc = subprocess.run([sys.executable, "-c", _KSERVE_CHECK, str(out / "inferenceservice.yaml")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"round_trip": True, "kind": "InferenceService",
                   "api_version": "serving.kserve.io/v1beta1", "name": "iris",
                   "format": "onnx", "protocol": "v2", "storage_uri": "s3://models/iris"}
    config = text_format.Parse((out / "repository" / "iris" / "config.pbtxt").read_text(),
                               model_config_pb2.ModelConfig())
    assert config.name == "iris"  # the v2 route KServe's Triton runtime serves
    assert (out / "repository" / "iris" / "1" / "model.onnx").is_file()


def test_kserve_without_storage_uri_notes_it_and_bad_uri_is_refused(
        runner: CliRunner, tmp_path: Path, iris: Path) -> None:
    code, _, err = export(runner, iris, "--target", "kserve", "-o", str(tmp_path / "a"))
    assert code == 0 and "note: no --storage-uri" in err
    assert "storageUri" not in yaml.safe_load(
        (tmp_path / "a" / "inferenceservice.yaml").read_text())["spec"]["predictor"]["model"]
    code, _, err = export(runner, iris, "--target", "kserve", "-o", str(tmp_path / "b"),
                          "--storage-uri", "my bucket")
    assert code == 1 and "error: --storage-uri 'my bucket' is not a URI" in err
    assert not (tmp_path / "b").exists()


def _predict_csv(runner: CliRunner, model: Path, rows: np.ndarray, tmp_path: Path,
                 names: list[str]) -> list[dict[str, str]]:
    data = tmp_path / "rows.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows(rows.tolist())
    result = runner.invoke(main, ["predict", str(model), str(data)])
    assert result.exit_code == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_mlflow_model_loads_with_pyfunc_and_predicts_like_specnet_predict(
        runner: CliRunner, tmp_path: Path, iris: Path) -> None:
    from sklearn.datasets import load_iris

    out = tmp_path / "mlflow-iris"
    code, _, err = export(runner, iris, "--target", "mlflow", "-o", str(out))
    assert code == 0, err
    assert (out / "MLmodel").is_file()
    data = load_iris()
    rows = data.data[::10].astype(np.float32)  # 15 real rows, every class
    expected = _predict_csv(runner, iris, rows, tmp_path, list(data.feature_names))
    with warnings.catch_warnings():  # mlflow warns about its own type hints on import
        warnings.simplefilter("ignore", UserWarning)
        import mlflow.pyfunc
    model = mlflow.pyfunc.load_model(str(out))
    probs = np.asarray(model.predict(rows)["probabilities"])
    labels = model.metadata.metadata["specnet"]["class_labels"]
    assert [labels[i] for i in probs.argmax(axis=1)] == [r["label"] for r in expected]
    want = np.array([[float(r[f"prob_{c}"]) for c in labels] for r in expected])
    np.testing.assert_allclose(probs, want, rtol=1e-5, atol=1e-6)
    # a folder with files MLflow did not write is not replaced (checked before any work)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("x")
    code, _, err = export(runner, iris, "--target", "mlflow", "-o", str(tmp_path / "mine"))
    assert code == 1 and "data.csv" in err


def test_missing_mlflow_extra_names_the_install_command(
        runner: CliRunner, tmp_path: Path, iris: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.onnx", None)
    code, _, err = export(runner, iris, "--target", "mlflow", "-o", str(tmp_path / "m"))
    assert code == 1 and "pip install 'specnet[mlflow]'" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "triton"], "--target triton needs -o DIR"),
    (["--storage-uri", "s3://b/x", "-o", "x"], "--target triton|kserve|mlflow"),
    (["--target", "mlflow", "-o", "x", "--max-batch-size", "8"], "for --target triton or kserve"),
    (["--target", "triton", "-o", "x", "--storage-uri", "s3://b"], "for --target kserve"),
], ids=["no-output", "option-without-target", "batch-for-mlflow", "uri-for-triton"])
def test_target_option_errors(runner: CliRunner, iris: Path, args: list[str],
                              message: str) -> None:
    code, _, err = export(runner, iris, *args)
    assert code == 2 and message in err


def test_model_file_needs_a_target_and_a_run_folder_is_not_a_model(
        runner: CliRunner, tmp_path: Path, iris: Path) -> None:
    code, _, err = export(runner, iris / "model.onnx")
    assert code == 2 and "is a model, not a training run" in err
    run = tmp_path / "run"
    run.mkdir()
    code, _, err = export(runner, run, "--target", "triton", "-o", str(tmp_path / "r"))
    assert code == 1 and "export it first: specnet export" in err
