"""The OpenAPI document of `specnet serve`, and schemathesis (all checks) against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _exports import exported
from _server import Server, schemathesis, start


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start(exported("iris", tmp_path_factory), "--threads", "1", "--max-rows", "100")
    yield srv
    srv.stop()


def test_every_operation_documents_its_body_and_errors(server: Server) -> None:
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert ("POST", "/v2/models/{name}/versions/{version}/infer") in ops
    assert ("GET", "/v2/models/{name}/config") in ops and ("GET", "/v2/models/stats") in ops
    for (method, path), op in ops.items():
        codes = set(op["responses"])
        assert {"200", "503"} <= codes and "422" not in codes, (method, path)
        if method == "POST":
            assert {"400", "404", "408", "413", "415"} <= codes, path
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert schema.get("properties") or schema.get("oneOf"), path
        for code in codes - {"200"}:
            ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error"
    infer = ops[("POST", "/v2/models/{name}/infer")]["requestBody"]["content"]
    tensor = infer["application/json"]["schema"]["properties"]["inputs"]["items"]
    assert tensor["properties"]["datatype"]["enum"][:2] == ["UINT8", "UINT16"]
    page = httpx.get(server.url + "/docs", timeout=30)
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    schemathesis(server.url, tmp_path)
