"""`specnet serve DIR` of a model repository (several models): a real server on 127.0.0.1
over a Triton repository and over a folder of export folders, driven by tritonclient
(HTTP and gRPC, default arguments), httpx and schemathesis."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from _exports import exported
from _server import Server, schemathesis, start
from click.testing import CliRunner

from specnet.cli import main

ROWS = {"iris": np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]],
                         np.float32),
        "diabetes": np.linspace(-0.1, 0.1, 30, dtype=np.float32).reshape(3, 10)}
OUTPUT = {"iris": "probabilities", "diabetes": "values"}


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two export folders (what `specnet build` leaves under exports/)."""
    folder = tmp_path_factory.mktemp("exports")
    for name in ROWS:
        shutil.copytree(exported(name, tmp_path_factory), folder / name)
    (folder / "README.md").write_text("not a model\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def repo(exports: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Triton model repository of the two models, written by `specnet export`."""
    repo = tmp_path_factory.mktemp("triton")
    for name in ROWS:
        result = CliRunner().invoke(main, ["export", str(exports / name), "--target",
                                           "triton", "-o", str(repo)])
        assert result.exit_code == 0, result.output
    return repo


@pytest.fixture(scope="module")
def expected(exports: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """What `specnet predict -f json` gives for ROWS, per model."""
    folder = tmp_path_factory.mktemp("predict")
    out = {}
    for name, rows in ROWS.items():
        np.save(folder / f"{name}.npy", rows)
        result = CliRunner().invoke(main, ["predict", str(exports / name),
                                           str(folder / f"{name}.npy"), "-f", "json"])
        assert result.exit_code == 0, result.output
        out[name] = np.asarray(json.loads(result.stdout)[OUTPUT[name]], np.float32)
    return out


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[Server]:
    srv = start(repo, "--threads", "1", "--max-rows", "100", "--grpc-port", "0")
    yield srv
    srv.stop()


def _grpc_address(server: Server) -> str:
    m = re.search(r"gRPC \S+ on (127\.0\.0\.1:\d+)", "".join(server.log))
    assert m, "".join(server.log)
    return m.group(1)


def test_tritonclient_http_infers_on_every_model(server: Server,
                                                 expected: dict[str, np.ndarray]) -> None:
    with httpclient.InferenceServerClient(server.url.removeprefix("http://")) as c:
        assert c.is_server_ready()
        index = c.get_model_repository_index()
        assert index == [{"name": n, "version": "1", "state": "READY", "reason": ""}
                         for n in ("diabetes", "iris")]
        for name, rows in ROWS.items():
            assert c.is_model_ready(name) and c.is_model_ready(name, "1")
            meta = c.get_model_metadata(name)
            assert meta["name"] == name and meta["inputs"][0]["shape"] == [-1, rows.shape[1]]
            assert c.get_model_config(name)["name"] == name
            tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows)  # binary_data=True: the defaults
            result = c.infer(name, [tensor])
            assert result.get_response()["model_name"] == name
            np.testing.assert_array_equal(result.as_numpy(OUTPUT[name]), expected[name])
        stats = c.get_inference_statistics()["model_stats"]
        assert {s["name"]: s["inference_count"] for s in stats} == {"diabetes": 3, "iris": 3}


def test_tritonclient_grpc_on_the_same_repository(server: Server,
                                                  expected: dict[str, np.ndarray]) -> None:
    with grpcclient.InferenceServerClient(_grpc_address(server)) as c:
        for name, rows in ROWS.items():
            assert c.is_model_ready(name)
            tensor = grpcclient.InferInput("input", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows)
            got = c.infer(name, [tensor]).as_numpy(OUTPUT[name])
            np.testing.assert_array_equal(got, expected[name])


def test_routes_by_model_name(server: Server, expected: dict[str, np.ndarray]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for name, rows in ROWS.items():
            r = c.post(f"/models/{name}/predict", json={"rows": rows.tolist()})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["model"] == name
            key = "probabilities" if name == "iris" else "values"
            np.testing.assert_allclose(np.asarray(body[key], np.float32).reshape(
                expected[name].shape), expected[name], rtol=1e-6)
            assert c.get(f"/models/{name}/metadata").json()["name"] == name
            assert c.get(f"/v2/models/{name}/versions/1/ready").json() == {
                "name": name, "ready": True}
        metrics = c.get("/metrics").text
        assert 'specnet_model_info{name="iris"' in metrics
        assert 'specnet_model_info{name="diabetes"' in metrics


@pytest.mark.parametrize(("method", "path", "status", "message"), [
    ("GET", "/v2/models/nope", 404, "unknown model 'nope': this server serves 'diabetes', "
                                    "'iris'"),
    ("POST", "/v2/models/nope/infer", 404, "unknown model 'nope'"),
    ("POST", "/models/nope/predict", 404, "unknown model 'nope'"),
    ("GET", "/models/nope/metadata", 404, "unknown model 'nope'"),
    ("GET", "/v2/models/iris/versions/2", 404, "unknown version '2' of model 'iris'"),
    ("POST", "/predict", 400, "this server serves 2 models ('diabetes', 'iris'): use "
                              "/models/<name>/predict"),
    ("GET", "/metadata", 400, "use /models/<name>/metadata"),
], ids=["model", "infer", "predict", "metadata", "version", "bare-predict", "bare-metadata"])
def test_unknown_and_ambiguous_routes_name_the_models(server: Server, method: str, path: str,
                                                       status: int, message: str) -> None:
    body = {"rows": ROWS["iris"].tolist()} if method == "POST" else None
    r = httpx.request(method, server.url + path, json=body, timeout=30)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_a_folder_of_export_folders_is_a_repository(exports: Path,
                                                    expected: dict[str, np.ndarray]) -> None:
    srv = start(exports, "--threads", "1", "--workers", "2")
    try:
        deadline = time.monotonic() + 90  # the supervisor listens before its workers start
        while sum("Application startup complete" in line for line in srv.log) < 2:
            assert srv.proc.poll() is None and time.monotonic() < deadline, "".join(srv.log)
            time.sleep(0.1)
        with httpclient.InferenceServerClient(srv.url.removeprefix("http://")) as c:
            assert [m["name"] for m in c.get_model_repository_index()] == ["diabetes", "iris"]
            for name, rows in ROWS.items():
                tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
                tensor.set_data_from_numpy(rows)
                np.testing.assert_array_equal(c.infer(name, [tensor]).as_numpy(OUTPUT[name]),
                                              expected[name])
    finally:
        srv.stop()


def test_one_model_repository_keeps_bare_predict(repo: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    shutil.copytree(repo / "iris", one / "iris")
    srv = start(one, "--threads", "1")
    try:
        r = httpx.post(srv.url + "/predict", json={"rows": ROWS["iris"].tolist()}, timeout=30)
        assert r.status_code == 200 and r.json()["model"] == "iris", r.text
    finally:
        srv.stop()


def test_bad_repositories_are_clear_errors(runner: CliRunner, exports: Path, repo: Path,
                                           tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "a.txt").write_text("x", encoding="utf-8")
    result = runner.invoke(main, ["serve", str(empty), "--port", "0"])
    assert result.exit_code == 1
    assert (f"error: {empty}: neither a model nor a model repository: no model.onnx in it "
            "or in its subfolders (it holds a.txt, notes/)") in result.stderr
    twice = tmp_path / "twice"
    shutil.copytree(exports / "iris", twice / "iris")
    shutil.copytree(exports / "iris", twice / "iris-copy")
    result = runner.invoke(main, ["serve", str(twice), "--port", "0"])
    assert result.exit_code == 1
    assert "error: two models are named 'iris': " in result.stderr
    assert "iris-copy" in result.stderr


def test_the_memory_budget_counts_every_model(runner: CliRunner, repo: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    size = sum(f.stat().st_size for f in repo.glob("*/1/model.onnx"))
    monkeypatch.setenv("SPECNET_MAX_MEMORY_MB", str(size * 1.5 / 2**20))
    result = runner.invoke(main, ["serve", str(repo), "--port", "0", "--workers", "2"])
    assert result.exit_code == 1
    assert "error: serving 2 models in 2 worker processes would take" in result.stderr


def test_schemathesis_finds_nothing_on_a_repository(server: Server, tmp_path: Path) -> None:
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    assert "/v2/models/iris/infer" in doc["paths"] and "/predict" not in doc["paths"]
    schemathesis(server.url, tmp_path)
