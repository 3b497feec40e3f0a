"""Real third-party clients against a real `specnet serve`: tritonclient.http with its
default arguments (binary tensors), Triton's own model_config.proto for the config, and
KServe's REST client in a separate process (kserve and tritonclient.grpc cannot share one).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _exports import exported
from _server import Server, start

from specnet.runtime import Runtime

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

ROWS = np.asarray([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]],
                  dtype=np.float32)


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("iris", tmp_path_factory)


@pytest.fixture(scope="module")
def server(iris: Path) -> Iterator[Server]:
    srv = start(iris, "--threads", "1", "--max-rows", "500")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def triton(server: Server) -> Iterator[Any]:
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def runtime(iris: Path) -> Runtime:
    return Runtime(iris, threads=1)


def _input(X: np.ndarray, datatype: str = "FP32", **kw: Any) -> Any:
    inp = httpclient.InferInput("input", list(X.shape), datatype)
    inp.set_data_from_numpy(X, **kw)
    return inp


def test_health_metadata_config_index(triton: Any) -> None:
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2

    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready("iris") and triton.is_model_ready("iris", "1")
    assert not triton.is_model_ready("iris", "2")
    server = triton.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]
    meta = triton.get_model_metadata("iris", "1")
    assert meta["versions"] == ["1"] and meta["inputs"][0]["shape"] == [-1, 4]
    config = triton.get_model_config("iris")
    assert triton.get_model_config("iris", "1") == config
    parsed = json_format.ParseDict(config, model_config_pb2.ModelConfig())  # Triton's schema
    assert parsed.name == "iris" and parsed.max_batch_size == 500
    assert [(i.name, i.data_type, list(i.dims)) for i in parsed.input] == [
        ("input", model_config_pb2.TYPE_FP32, [4])]
    assert [(o.name, list(o.dims)) for o in parsed.output] == [("probabilities", [3])]
    index = triton.get_model_repository_index()
    assert index == [{"name": "iris", "version": "1", "state": "READY", "reason": ""}]


def test_infer_with_default_arguments(triton: Any, runtime: Runtime) -> None:
    expected = runtime.run(ROWS)
    result = triton.infer("iris", [_input(ROWS)])  # binary in, binary out (the defaults)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-6)
    versioned = triton.infer("iris", [_input(ROWS)], model_version="1", request_id="r7")
    assert versioned.get_response()["id"] == "r7"
    np.testing.assert_array_equal(versioned.as_numpy("probabilities"),
                                  result.as_numpy("probabilities"))
    as_json = triton.infer("iris", [_input(ROWS, binary_data=False)], outputs=[
        httpclient.InferRequestedOutput("probabilities", binary_data=False)])
    assert "data" in as_json.get_output("probabilities")
    np.testing.assert_allclose(as_json.as_numpy("probabilities"), expected, rtol=1e-6)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_responses(triton: Any, runtime: Runtime,
                                           algorithm: str) -> None:
    X = np.tile(ROWS, (100, 1))  # big enough for a compressed response
    result = triton.infer("iris", [_input(X)], request_compression_algorithm=algorithm,
                          response_compression_algorithm=algorithm)
    np.testing.assert_allclose(result.as_numpy("probabilities"), runtime.run(X), rtol=1e-6)


@pytest.mark.parametrize("datatype", ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                                      "UINT32", "UINT64", "FP16", "FP32", "FP64"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_every_numeric_datatype(triton: Any, runtime: Runtime, datatype: str,
                                binary: bool) -> None:
    from tritonclient.utils import triton_to_np_dtype

    X = np.rint(ROWS).astype(triton_to_np_dtype(datatype))
    if datatype == "FP16" and not binary:
        pytest.skip("tritonclient sends FP16 only as binary")
    result = triton.infer("iris", [_input(X, datatype, binary_data=binary)])
    np.testing.assert_allclose(result.as_numpy("probabilities"),
                               runtime.run(X.astype(np.float32)), rtol=1e-6)


def test_statistics_count_inferences(triton: Any) -> None:
    before = triton.get_inference_statistics("iris")["model_stats"][0]
    triton.infer("iris", [_input(ROWS)])
    stats = triton.get_inference_statistics("iris", "1")["model_stats"][0]
    assert stats["name"] == "iris" and stats["version"] == "1"
    assert stats["inference_count"] == before["inference_count"] + 3
    assert stats["execution_count"] == before["execution_count"] + 1
    assert stats["inference_stats"]["success"]["count"] > 0
    assert any(b["batch_size"] == 3 for b in stats["batch_stats"])
    assert triton.get_inference_statistics()["model_stats"][0]["name"] == "iris"


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.infer("other", [_input(ROWS)]), "unknown model 'other'"),
    (lambda c: c.infer("iris", [_input(ROWS)], model_version="2"), "unknown version '2'"),
    (lambda c: c.get_model_config("iris", "3"), "unknown version '3'"),
    (lambda c: c.infer("iris", [_input(ROWS[:, :3])]), "input shape must be [n, 4]"),
    (lambda c: c.infer("iris", [httpclient.InferInput("input", [1, 4], "BOOL")
                                .set_data_from_numpy(np.ones((1, 4), bool))]),
     "BOOL tensors are not accepted"),
    (lambda c: c.infer("iris", [httpclient.InferInput("input", [1, 4], "BYTES")
                                .set_data_from_numpy(np.full((1, 4), b"x", object))]),
     "BYTES (text) tensors are only for models with text columns"),
    (lambda c: c.infer("iris", [_input(ROWS)], outputs=[
        httpclient.InferRequestedOutput("probabilities", class_count=2)]),
     "classification extension is not supported"),
], ids=["unknown-model", "unknown-version", "config-version", "wrong-shape", "bool",
        "bytes", "classification"])
def test_errors_reach_tritonclient_as_messages(triton: Any, call: Any, message: str) -> None:
    with pytest.raises(InferenceServerException) as info:
        call(triton)
    assert message in info.value.message()
    assert info.value.status() in ("400", "404")


def _binary(size: int, tail: bytes) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a binary-tensor request claiming `size` bytes, followed by `tail`."""
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                   "parameters": {"binary_data_size": size}}]}).encode()
    return {"inference-header-content-length": str(len(head))}, head + tail


HOSTILE: list[tuple[str, str, dict[str, str], bytes, int, str]] = [
    # (id, path, headers, body, status, message)
    ("unrouted-404", "/nope", {}, b"", 404, "Not Found"),
    ("bad-content-type", "/predict", {"content-type": "text/plain"}, b"{}", 415,
     "unsupported Content-Type 'text/plain'"),
    ("form-content-type", "/v2/models/iris/infer",
     {"content-type": "application/x-www-form-urlencoded"}, b"{}", 415, "use --json"),
    ("unknown-encoding", "/predict", {"content-encoding": "br"}, b"{}", 415,
     "unsupported Content-Encoding 'br'"),
    ("not-gzip", "/predict", {"content-encoding": "gzip"}, b"{}", 400,
     "not valid gzip data"),
    ("gzip-bomb", "/predict", {"content-encoding": "gzip"}, gzip.compress(b" " * 9_000_000),
     413, "once decompressed"),
    ("header-length-past-body", "/v2/models/iris/infer",
     {"inference-header-content-length": "999"}, b"{}", 400,
     "Inference-Header-Content-Length '999'"),
    ("binary-size-past-end", "/v2/models/iris/infer", *_binary(16, b"\0" * 8), 400,
     "goes past the end of the body"),
    ("bytes-left-over", "/v2/models/iris/infer", *_binary(16, b"\0" * 20), 400,
     "belong to no input"),
    ("binary-wrong-size", "/v2/models/iris/infer", *_binary(8, b"\0" * 8), 400,
     "needs 16 bytes, got 8"),
    ("index-ready-not-bool", "/v2/repository/index", {}, b'{"ready": 1}', 400,
     "'ready' must be true or false"),
    ("fp16-out-of-range", "/v2/models/iris/infer", {},
     b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP16","data":[1,2,70000,4]}]}',
     400, "70000 is out of the FP16 range"),
    ("uint-negative", "/v2/models/iris/infer", {},
     b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"UINT8","data":[1,2,-1,4]}]}',
     400, "-1 is out of the UINT8 range"),
]


@pytest.mark.parametrize(("path", "headers", "body", "status", "message"),
                         [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_requests_get_a_4xx_with_an_error_body(
        server: Server, path: str, headers: dict[str, str], body: bytes, status: int,
        message: str) -> None:
    r = httpx.post(server.url + path, content=body, headers=headers, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert message in r.json()["error"]


def test_wrong_method_is_a_json_405(server: Server) -> None:
    r = httpx.get(server.url + "/v2/models/iris/infer", timeout=30)
    assert r.status_code == 405 and "POST" in r.headers["allow"]
    assert r.json() == {"error": "Method Not Allowed"}


def test_raw_deflate_and_zlib_deflate_both_decode(server: Server, runtime: Runtime) -> None:
    body = json.dumps({"rows": ROWS.tolist()}).encode()
    raw = zlib.compressobj(wbits=-15)
    for data in (zlib.compress(body), raw.compress(body) + raw.flush()):
        r = httpx.post(server.url + "/predict", content=data, timeout=30,
                       headers={"content-encoding": "deflate",
                                "content-type": "application/json"})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["probabilities"], runtime.run(ROWS), rtol=1e-6)


KSERVE = textwrap.dedent("""
    import asyncio, json, sys
    import numpy as np
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def main(url):
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            live = await client.is_server_live(url)
            ready = await client.is_model_ready(url, "iris")
            X = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
            inp = InferInput("input", list(X.shape), "FP32")
            inp.set_data_from_numpy(X)  # binary_data=True, the default
            res = await client.infer(url, InferRequest("iris", [inp]), model_name="iris")
            out = res.outputs[0]
            print(json.dumps({"live": live, "ready": ready, "name": out.name,
                              "data": np.asarray(out.as_numpy()).tolist()}))
        finally:
            await client.close()

    asyncio.run(main(sys.argv[1]))
""")


def test_kserve_client_with_default_binary_data(server: Server, runtime: Runtime) -> None:
    if importlib.util.find_spec("kserve") is None:  # not imported here: see the docstring
        pytest.skip("kserve is not installed")
    proc = subprocess.run([sys.executable, "-c", KSERVE, server.url, json.dumps(ROWS.tolist())],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["live"] is True and out["ready"] is True and out["name"] == "probabilities"
    np.testing.assert_allclose(out["data"], runtime.run(ROWS), rtol=1e-6)
