"""`specnet serve`: a real uvicorn process on 127.0.0.1, driven by a real HTTP client."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from _exports import exported
from _server import Server, start

from specnet.runtime import Runtime

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]
MAX_ROWS = 500
MAX_BODY_MB = 0.05  # 52,428 bytes


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("iris", tmp_path_factory)


@pytest.fixture(scope="module")
def server(iris: Path) -> Iterator[Server]:
    srv = start(iris, "--max-rows", str(MAX_ROWS), "--max-body-mb", str(MAX_BODY_MB),
                "--threads", "1")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def expected(iris: Path) -> np.ndarray:
    return Runtime(iris, threads=1).run(np.asarray(ROWS, np.float32))


def _v2(rows: Any, **tensor: Any) -> dict[str, Any]:
    t = {"name": "input", "shape": [len(rows), 4], "datatype": "FP32",
         "data": np.asarray(rows).ravel().tolist()}
    return {"inputs": [{**t, **tensor}]}


def test_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "specnet"
    meta = client.get("/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert meta["parameters"]["class_labels"] == ["setosa", "versicolor", "virginica"]
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    info = client.get("/metadata").json()
    assert info["feature_names"][0] == "sepal length (cm)" and info["verified"] is True
    assert info["verification"]["passed"] is True
    assert info["limits"]["max_rows"] == MAX_ROWS


def test_v2_infer(client: httpx.Client, expected: np.ndarray) -> None:
    r = client.post("/v2/models/iris/infer", json={**_v2(ROWS), "id": "req-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "iris" and body["id"] == "req-1"
    (out,) = body["outputs"]
    assert out["name"] == "probabilities" and out["datatype"] == "FP32"
    assert out["shape"] == [3, 3]
    np.testing.assert_allclose(np.reshape(out["data"], out["shape"]), expected, rtol=1e-6)
    nested = client.post("/v2/models/iris/infer", json=_v2(ROWS, data=ROWS, datatype="FP64"))
    assert nested.json()["outputs"][0]["data"] == out["data"]


def test_predict_records_and_rows(client: httpx.Client, expected: np.ndarray) -> None:
    names = client.get("/metadata").json()["feature_names"]
    by_rows = client.post("/predict", json={"rows": ROWS}).json()
    by_records = client.post(
        "/predict", json={"records": [dict(zip(names, r, strict=True)) for r in ROWS]}).json()
    assert by_rows == by_records
    classes = ["setosa", "versicolor", "virginica"]
    assert by_rows["labels"] == [classes[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(by_rows["probabilities"], expected, rtol=1e-6)


BAD_REQUESTS: list[tuple[str, str, bytes | dict[str, Any], int, str]] = [
    # (id, path, body, status, message)
    ("malformed-json", "/predict", b'{"rows": [[1, 2', 400, "malformed JSON"),
    ("empty-body", "/predict", b"", 400, "empty body"),
    ("json-array-not-object", "/predict", b"[[1, 2, 3, 4]]", 400,
     "expected a JSON object with 'records' or 'rows', got list"),
    ("no-rows-key", "/predict", {"data": ROWS}, 400, "expected exactly one of 'records'"),
    ("wrong-feature-count", "/predict", {"rows": [[1, 2, 3]]}, 400,
     "expected 4 per row (shape [n, 4]), got 3"),
    ("ragged-rows", "/predict", {"rows": [[1, 2, 3, 4], [1, 2]]}, 400,
     "row 2: expected 4 values, got 2"),
    ("text-value", "/predict", {"rows": [[1, 2, "three", 4]]}, 400,
     "row 1, column 'petal length (cm)': expected a number, got 'three'"),
    ("nan-literal", "/predict", b'{"rows": [[1, 2, NaN, 4]]}', 400, "malformed JSON"),
    ("infinite-number", "/predict", b'{"rows": [[1, 2, 1e999, 4]]}', 400, "malformed JSON"),
    ("beyond-float32", "/predict", {"rows": [[1, 2, 1e39, 4]]}, 400,
     "row 1, column 'petal length (cm)': inf is not a finite number"),
    ("missing-feature", "/predict", {"records": [{"sepal length (cm)": 1}]}, 400,
     "row 1: missing feature(s) 'sepal width (cm)'"),
    ("too-many-rows", "/predict", {"rows": [[1, 2, 3, 4]] * (MAX_ROWS + 1)}, 413,
     f"too many rows: at most {MAX_ROWS} per request, got {MAX_ROWS + 1}"),
    ("body-too-large", "/predict", b" " * 60_000, 413, "body too large: at most 52428 bytes"),
    ("unknown-model", "/v2/models/other/infer", _v2(ROWS), 404,
     "unknown model 'other': this server serves 'iris'"),
    ("wrong-tensor-name", "/v2/models/iris/infer", _v2(ROWS, name="x"), 400,
     "unknown input tensor 'x': this model's input is 'input'"),
    ("bytes-for-a-numeric-model", "/v2/models/iris/infer",
     _v2(ROWS, datatype="BYTES", data=["a"] * 12), 400,
     "BYTES (text) tensors are only for models with text columns"),
    ("bool-datatype", "/v2/models/iris/infer", _v2(ROWS, datatype="BOOL"), 400,
     "BOOL tensors are not accepted"),
    ("bool-in-numbers", "/v2/models/iris/infer", _v2(ROWS, data=[1, 2, True, 4] * 3), 400,
     "must hold numbers (FP32); found true/false"),
    ("bool-in-rows", "/predict", {"rows": [[1, 2, 3, 4], [1, False, 3, 4]]}, 400,
     "row 2, column 'sepal width (cm)': expected a number, got false"),
    ("int8-out-of-range", "/v2/models/iris/infer", _v2(ROWS, datatype="INT8",
                                                       data=[1, 2, 300, 4] * 3), 400,
     "300 is out of the INT8 range [-128, 127]"),
    ("int-not-integral", "/v2/models/iris/infer", _v2(ROWS, datatype="INT32"), 400,
     "INT32 values must be integers, got 5.1"),
    ("wrong-shape", "/v2/models/iris/infer", _v2(ROWS, shape=[3, 5], data=[1] * 15), 400,
     "input shape must be [n, 4], got [3, 5]"),
    ("shape-data-mismatch", "/v2/models/iris/infer", _v2(ROWS, shape=[4, 4]), 400,
     "shape [4, 4] needs 16 values, 'data' has 12"),
    ("v2-text-data", "/v2/models/iris/infer", _v2([[1, 2, 3, 4]], data=[1, 2, "x", 4]), 400,
     "must hold numbers (FP32); found 'x'"),
    ("v2-no-inputs", "/v2/models/iris/infer", {"inputs": []}, 400,
     "'inputs' must be a non-empty list of tensors"),
    ("v2-too-many-rows", "/v2/models/iris/infer", _v2([[1, 2, 3, 4]], shape=[10_000, 4]),
     413, f"too many rows: at most {MAX_ROWS}"),
    ("v2-wrong-output", "/v2/models/iris/infer", {**_v2(ROWS), "outputs": [{"name": "y"}]},
     400, "unknown output 'y': this model's output is 'probabilities'"),
    ("v2-datatype-not-a-string", "/v2/models/iris/infer", _v2(ROWS, datatype=["FP32"]), 400,
     "datatype must be one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, "
     "INT64, FP16, FP32, FP64, BYTES, got ['FP32']"),
    ("v2-outputs-not-objects", "/v2/models/iris/infer",
     {**_v2(ROWS), "outputs": ["probabilities"]}, 400,
     """'outputs' must be a list of objects like {"name": ...}, got"""),
    ("v2-outputs-not-a-list", "/v2/models/iris/infer",
     {**_v2(ROWS), "outputs": "probabilities"}, 400,
     """'outputs' must be a list of objects like {"name": ...}, got"""),
]


@pytest.mark.parametrize(("path", "body", "status", "message"),
                         [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_naming_the_problem(
        client: httpx.Client, path: str, body: bytes | dict[str, Any], status: int,
        message: str) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(path, content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_server_survives_bad_input_and_counts_it(client: httpx.Client,
                                                 server: Server) -> None:
    for body in (b"{", b"[]", b'{"rows": "x"}'):
        assert client.post("/predict", content=body).status_code == 400
    assert client.get("/v2/health/live").status_code == 200
    text = client.get("/metrics").text
    assert re.search(r'specnet_requests_total\{endpoint="predict",code="400"\} \d+', text)
    assert re.search(r'specnet_request_errors_total\{endpoint="predict"\} [1-9]', text)
    assert re.search(r'specnet_rows_total\{endpoint="predict"\} [1-9]', text)
    assert 'specnet_request_duration_seconds_bucket{le="+Inf"}' in text
    assert not re.search(r'code="5\d\d"', text)
    assert server.proc.poll() is None


def test_concurrent_load_without_errors(server: Server, expected: np.ndarray) -> None:
    def worker(_: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for i in range(25):
                if i % 2:
                    r = c.post("/predict", json={"rows": ROWS})
                    ok = np.allclose(r.json()["probabilities"], expected, rtol=1e-6)
                else:
                    r = c.post("/v2/models/iris/infer", json=_v2(ROWS))
                    ok = np.allclose(r.json()["outputs"][0]["data"], expected.ravel(),
                                     rtol=1e-6)
                codes.append(r.status_code if ok else -1)
        return codes

    with ThreadPoolExecutor(16) as pool:
        codes = [c for batch in pool.map(worker, range(16)) for c in batch]
    assert len(codes) == 400 and set(codes) == {200}


def test_server_process_never_loads_torch(server: Server) -> None:
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    assert "onnxruntime" in maps  # the check can see shared libraries at all
    assert "libtorch" not in maps


def _with_verification(iris: Path, dest: Path, report: dict[str, Any] | None) -> Path:
    model = onnx.load(str(iris / "model.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    props.pop("specnet.verification")
    if report is not None:
        props["specnet.verification"] = json.dumps(report)
    onnx.helper.set_model_props(model, props)
    onnx.save(model, dest)
    return dest


@pytest.mark.parametrize(("report", "message"), [
    (None, "carries no verification report"),
    ({"passed": False, "summary": "max abs error 0.5"}, "failed its verification: max abs"),
], ids=["missing", "failed"])
def test_refuses_an_unverified_model(iris: Path, tmp_path: Path,
                                     report: dict[str, Any] | None, message: str) -> None:
    model = _with_verification(iris, tmp_path / "m.onnx", report)
    srv = start(model, wait=False)
    out = "".join(srv.log)
    assert srv.proc.returncode == 1, out
    assert "error: refusing to serve" in out and message in out and "--allow-unverified" in out
    assert "Traceback" not in out


def test_a_port_in_use_is_exit_code_1_not_3(iris: Path) -> None:
    # uvicorn exits with 3 when it cannot start, which specnet uses for a failed verification.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = subprocess.run(
            [sys.executable, "-m", "specnet.cli", "serve", str(iris), "--port", port],
            capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"error: cannot serve on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_allow_unverified_serves_it(iris: Path, tmp_path: Path) -> None:
    model = _with_verification(iris, tmp_path / "m.onnx", None)
    srv = start(model, "--allow-unverified")
    try:
        meta = httpx.get(srv.url + "/metadata", timeout=30).json()
        assert meta["verified"] is False
        r = httpx.post(srv.url + "/predict", json={"rows": ROWS}, timeout=30)
        assert r.status_code == 200
    finally:
        srv.stop()


def test_two_workers_share_the_port(iris: Path) -> None:
    srv = start(iris, "--workers", "2", "--threads", "1")
    try:
        deadline = time.monotonic() + 60
        while True:  # the workers start after the parent announces the port
            try:
                if httpx.get(srv.url + "/v2/health/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "".join(srv.log)
            time.sleep(0.1)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            codes = {c.post("/predict", json={"rows": ROWS}).status_code for _ in range(20)}
        assert codes == {200}
        while sum("Application startup complete" in line for line in srv.log) < 2:
            assert time.monotonic() < deadline + 30, "".join(srv.log)
            time.sleep(0.1)
    finally:
        srv.stop()


def test_an_internal_error_is_a_json_500_and_counted(iris: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # In process: make inference itself fail, as a bug in onnxruntime or in specnet would.
    import asyncio

    from specnet.serve import create_app

    runtime = Runtime(iris, threads=1)

    def broken(X: np.ndarray) -> np.ndarray:
        raise RuntimeError("onnxruntime fell over")

    monkeypatch.setattr(runtime, "run", broken)
    monkeypatch.setattr(runtime, "run_feed", lambda feed: broken(next(iter(feed.values()))))
    app = create_app(runtime)

    async def drive() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for path, body in (("/predict", {"rows": ROWS}),
                               ("/v2/models/iris/infer", _v2(ROWS))):
                r = await c.post(path, json=body)
                assert r.status_code == 500
                assert r.json() == {"error": "internal error: RuntimeError: onnxruntime "
                                             "fell over"}
            assert (await c.get("/v2/health/live")).status_code == 200
            return (await c.get("/metrics")).text

    metrics = asyncio.run(drive())
    assert 'specnet_requests_total{endpoint="predict",code="500"} 1' in metrics
    assert 'specnet_request_errors_total{endpoint="infer"} 1' in metrics
