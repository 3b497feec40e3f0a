"""`specnet serve --grpc-port`: GRPCInferenceService on 127.0.0.1, driven by tritonclient.grpc
(default arguments) and by Triton's own generated stub for typed `contents` requests."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
from _exports import exported
from click.testing import CliRunner
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from specnet.cli import main
from specnet.runtime import Runtime
from specnet.serve.grpc import GrpcLimits, GrpcServer, serve_model

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]],
                np.float32)
MAX_ROWS = 50


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("iris", tmp_path_factory)


@pytest.fixture(scope="module")
def server(iris: Path) -> Iterator[GrpcServer]:
    srv = serve_model(iris, port=0, threads=1,
                      limits=GrpcLimits(max_rows=MAX_ROWS, max_message_bytes=16 * 1024))
    yield srv
    srv.stop(grace=1)


@pytest.fixture(scope="module")
def client(server: GrpcServer) -> Iterator[tg.InferenceServerClient]:
    c = tg.InferenceServerClient(f"127.0.0.1:{server.port}")
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(server: GrpcServer) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def runtime(iris: Path) -> Runtime:
    return Runtime(iris, threads=1)


def test_health_metadata_and_config(client: tg.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "1")
    assert not client.is_model_ready("nope") and not client.is_model_ready("iris", "2")
    assert client.get_server_metadata(as_json=True)["name"] == "specnet"
    meta = client.get_model_metadata("iris", as_json=True)
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "4"]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32",
                                "shape": ["-1", "3"]}]
    config = client.get_model_config("iris").config  # Triton's own ModelConfig message
    assert (config.name, config.platform, config.max_batch_size) == (
        "iris", "onnxruntime_onnx", MAX_ROWS)
    assert [(i.name, list(i.dims)) for i in config.input] == [("input", [4])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("probabilities", [3])]


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "FP16", "INT64", "INT32", "UINT8"])
def test_infer_with_default_arguments(client: tg.InferenceServerClient, runtime: Runtime,
                                      datatype: str) -> None:
    """tritonclient's defaults: raw_input_contents in, raw_output_contents out."""
    from tritonclient.utils import triton_to_np_dtype

    rows = ROWS.astype(triton_to_np_dtype(datatype))
    tensor = tg.InferInput("input", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    result = client.infer("iris", [tensor], request_id="r1")
    np.testing.assert_array_equal(result.as_numpy("probabilities"),
                                  runtime.run(rows.astype(np.float32)))
    response = result.get_response()
    assert response.id == "r1" and response.model_version == "1"


def _request(datatype: str, values: Any, field: str | None, shape: list[int] | None = None,
             **extra: Any) -> service_pb2.ModelInferRequest:
    arr = np.asarray(values)
    tensor: dict[str, Any] = {"name": "input", "datatype": datatype,
                              "shape": shape or list(arr.shape)}
    body = {"model_name": "iris", "inputs": [tensor], **extra}
    request = json_format.ParseDict(body, service_pb2.ModelInferRequest())
    if field is not None:
        getattr(request.inputs[0].contents, field).extend(arr.reshape(-1).tolist())
    return request


@pytest.mark.parametrize(("datatype", "field"), [
    ("FP32", "fp32_contents"), ("FP64", "fp64_contents"), ("INT32", "int_contents"),
    ("INT8", "int_contents"), ("INT64", "int64_contents"), ("UINT16", "uint_contents"),
    ("UINT64", "uint64_contents")])
def test_infer_with_typed_contents(stub: service_pb2_grpc.GRPCInferenceServiceStub,
                                   runtime: Runtime, datatype: str, field: str) -> None:
    rows = ROWS if datatype.startswith("FP") else np.rint(ROWS).astype(np.int64)
    response = stub.ModelInfer(_request(datatype, rows, field))
    out = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(
        list(response.outputs[0].shape))
    np.testing.assert_allclose(out, runtime.run(rows.astype(np.float32)), rtol=1e-6)


BAD: list[tuple[str, Callable[[], service_pb2.ModelInferRequest], str, str]] = [
    ("bool", lambda: _request("BOOL", ROWS > 3, "bool_contents"), "INVALID_ARGUMENT",
     "BOOL tensors are not accepted"),
    ("bytes", lambda: _request("BYTES", [[b"a"] * 4], "bytes_contents"), "INVALID_ARGUMENT",
     "BYTES \\(text\\) tensors are only for models with text columns"),
    ("fp16-typed", lambda: _request("FP16", ROWS, "fp32_contents"), "INVALID_ARGUMENT",
     "FP16 travels only as raw_input_contents"),
    ("wrong-field", lambda: _request("INT64", ROWS, "fp32_contents"), "INVALID_ARGUMENT",
     "datatype INT64 goes in contents.int64_contents; got fp32_contents"),
    ("width", lambda: _request("FP32", ROWS[:, :3], "fp32_contents"), "INVALID_ARGUMENT",
     r"input shape must be \[n, 4\], got \[3, 3\]"),
    ("count", lambda: _request("FP32", ROWS, "fp32_contents", shape=[4, 4]),
     "INVALID_ARGUMENT", r"shape \[4, 4\] needs 16 values, contents.fp32_contents has 12"),
    ("int8-range", lambda: _request("INT8", [[300, 1, 1, 1]], "int_contents"),
     "INVALID_ARGUMENT", r"input 'input': 300 is out of the INT8 range \[-128, 127\]"),
    ("nan", lambda: _request("FP32", [[float("nan"), 1, 1, 1]], "fp32_contents"),
     "INVALID_ARGUMENT", "row 1, column 'sepal length \\(cm\\)': nan is not a finite"),
    ("fp64-overflow", lambda: _request("FP64", [[1e300, 1, 1, 1]], "fp64_contents"),
     "INVALID_ARGUMENT", "beyond the float32 range"),
    ("empty", lambda: _request("FP32", np.zeros((0, 4)), "fp32_contents"),
     "INVALID_ARGUMENT", "no rows"),
    ("raw-size", lambda: _request("FP32", ROWS, None, raw_input_contents=["AAAA"]),
     "INVALID_ARGUMENT", r"shape \[3, 4\] of FP32 needs 48 bytes, got 3"),
    ("raw-and-typed", lambda: _request("FP32", ROWS, "fp32_contents",
                                       raw_input_contents=["AAAA"]),
     "INVALID_ARGUMENT", "both raw_input_contents and contents"),
    ("input-name", lambda: json_format.ParseDict(
        {"model_name": "iris", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4]}]},
        service_pb2.ModelInferRequest()), "INVALID_ARGUMENT", "unknown input tensor 'x'"),
    ("output-name", lambda: _request("FP32", ROWS, "fp32_contents",
                                     outputs=[{"name": "logits"}]),
     "INVALID_ARGUMENT", "unknown output 'logits'"),
    ("no-input", lambda: service_pb2.ModelInferRequest(model_name="iris"),
     "INVALID_ARGUMENT", "0 input tensors: this model's input is 'input'"),
    ("model", lambda: _request("FP32", ROWS, "fp32_contents", model_name="nope"),
     "NOT_FOUND", "unknown model 'nope'"),
    ("version", lambda: _request("FP32", ROWS, "fp32_contents", model_version="2"),
     "NOT_FOUND", "unknown version '2' of model 'iris'"),
    ("rows", lambda: _request("FP32", np.zeros((MAX_ROWS + 1, 4)), None,
                              raw_input_contents=[""]),
     "RESOURCE_EXHAUSTED", f"at most {MAX_ROWS} per request, got {MAX_ROWS + 1}"),
    ("message-size", lambda: _request("FP32", np.zeros((40, 4)), None,
                                      raw_input_contents=["A" * 40_000]),
     "RESOURCE_EXHAUSTED", "larger than max"),
]


@pytest.mark.parametrize(("make", "code", "message"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_requests_get_a_status_naming_the_problem(
        stub: service_pb2_grpc.GRPCInferenceServiceStub,
        make: Callable[[], service_pb2.ModelInferRequest], code: str, message: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(make(), timeout=30)
    err: Any = info.value
    assert err.code().name == code, err.details()
    assert re.search(message, err.details()), err.details()


def test_bad_datatype_and_shape_through_tritonclient(client: tg.InferenceServerClient) -> None:
    tensor = tg.InferInput("input", [3, 4], "BOOL")
    tensor.set_data_from_numpy(ROWS > 3)
    with pytest.raises(InferenceServerException, match="BOOL tensors are not accepted") as info:
        client.infer("iris", [tensor])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    tensor = tg.InferInput("input", [4, 3], "FP32")
    tensor.set_data_from_numpy(ROWS.reshape(4, 3))
    with pytest.raises(InferenceServerException, match=r"must be \[n, 4\]") as info:
        client.infer("iris", [tensor])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert client.is_server_live()  # and it keeps serving


def test_cli_serves_grpc_beside_http(iris: Path, runtime: Runtime) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "specnet.cli", "serve", str(iris), "--port", "0",
         "--grpc-port", "0", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found: dict[str, str] = {}
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            for key, pattern in (("grpc", r"gRPC \S+ on (127\.0\.0\.1:\d+)"),
                                 ("http", r"Uvicorn running on (http://127\.0\.0\.1:\d+)")):
                m = re.search(pattern, line)
                if m:
                    found[key] = m.group(1)
            if len(found) == 2:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.wait(0.1):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(log)
        with tg.InferenceServerClient(found["grpc"]) as c:
            tensor = tg.InferInput("input", [3, 4], "FP32")
            tensor.set_data_from_numpy(ROWS)
            np.testing.assert_array_equal(c.infer("iris", [tensor]).as_numpy("probabilities"),
                                          runtime.run(ROWS))
        assert httpx.get(f"{found['http']}/v2/health/live").json() == {"live": True}
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    # SIGTERM: uvicorn drains and stops, the gRPC server stops with it, and specnet exits
    # 143 with one line (specnet.signals)
    assert code == 143, "".join(log)
    assert "error: interrupted (SIGTERM)" in "".join(log)


def test_grpc_port_in_use_is_an_error(runner: CliRunner, iris: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(main, ["serve", str(iris), "--port", "0",
                                      "--grpc-port", str(port)])
    assert result.exit_code == 1
    assert f"error: cannot serve gRPC on 127.0.0.1:{port}" in result.stderr


def test_missing_grpc_extra_names_the_install_command(
        runner: CliRunner, iris: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)
    result = runner.invoke(main, ["serve", str(iris), "--grpc-port", "0"])
    assert result.exit_code == 1
    assert "pip install 'specnet[grpc]'" in result.stderr


def test_serves_a_triton_repository_of_several_models(
        runner: CliRunner, tmp_path: Path, iris: Path, runtime: Runtime,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    moons = exported("moons", tmp_path_factory)
    repo = tmp_path / "repo"
    for model in (iris, moons):
        assert runner.invoke(main, ["export", str(model), "--target", "triton",
                                    "-o", str(repo)]).exit_code == 0
    srv = serve_model(repo, port=0, threads=1)
    try:
        with tg.InferenceServerClient(f"127.0.0.1:{srv.port}") as c:
            assert c.is_model_ready("iris") and c.is_model_ready("moons")
            assert c.get_model_config("moons").config.output[0].dims == [1]
            for name, rows, want in (("iris", ROWS, runtime.run(ROWS)),
                                     ("moons", ROWS[:, :2], Runtime(moons).run(ROWS[:, :2]))):
                tensor = tg.InferInput("input", list(rows.shape), "FP32")
                tensor.set_data_from_numpy(np.ascontiguousarray(rows))
                got = c.infer(name, [tensor]).as_numpy("probabilities")
                np.testing.assert_array_equal(got, want)
    finally:
        srv.stop(grace=1)


def test_calls_past_the_concurrency_limit_are_refused_at_once(iris: Path) -> None:
    srv = serve_model(iris, port=0, threads=1, limits=GrpcLimits(threads=1, max_concurrent=1))
    rows = np.tile(ROWS, (3000, 1))  # 9,000 rows: each call takes a while
    request = _request("FP32", rows, None, raw_input_contents=[])
    request.raw_input_contents.append(rows.tobytes())
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer
            pending = [call.future(request, timeout=60) for _ in range(16)]
            codes = []
            for f in pending:
                try:
                    f.result()
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
                    assert "Concurrent RPC limit exceeded" in (exc.details() or "")
            assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
            assert call(request, timeout=60).outputs[0].shape == [len(rows), 3]
    finally:
        srv.stop(grace=1)
