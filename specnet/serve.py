"""`specnet serve`: an HTTP server over onnxruntime (FastAPI + uvicorn), torch-free.

Endpoints (JSON in and out):
  GET  /v2/health/live, /v2/health/ready           Open Inference Protocol v2 health
  GET  /v2, /v2/models/{name}, /v2/models/{name}/ready     server / model metadata
  POST /v2/models/{name}/infer                      v2 inference (tensor in, tensor out)
  POST /predict        {"records": [{feature: value}]} or {"rows": [[...]]} -> labels +
                       probabilities (or values)
  GET  /metadata       feature names, class labels, verification summary
  GET  /metrics        Prometheus text: requests, errors, rows, latency histogram

Bad input gets a 4xx with {"error": "..."} naming what was expected and what came
(400 bad JSON / shape / values, 404 unknown model, 413 body or row count over the limit);
it never reaches onnxruntime unchecked. Bodies are parsed with orjson (json without it)
straight into numpy; inference runs inline on the event loop, since a small model
answers in microseconds and a thread hop would cost more than the work.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from .artifact import Artifact
from .errors import ModelInputError, SpecnetError
from .runtime import (
    Runtime,
    check_array,
    default_threads,
    dumps,
    loads,
    predictions,
    rows_from_lists,
    rows_from_records,
)

CONFIG_ENV = "SPECNET_SERVE_CONFIG"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Latency histogram bucket bounds, seconds."""
DATATYPES = {"FP32": np.float32, "FP64": np.float64}

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Request limits: rows per request and body size in bytes."""

    max_rows: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024


class HTTPError(Exception):
    """An answer with a 4xx status and {"error": message}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Metrics:
    """Request counters and a latency histogram, rendered in Prometheus text format.

    Per worker process: with --workers N each worker counts its own requests.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.rows: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.count = 0

    def observe(self, endpoint: str, status: int, seconds: float, rows: int) -> None:
        """Record one answered request."""
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if rows:
            self.rows[endpoint] = self.rows.get(endpoint, 0) + rows
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.duration_sum += seconds
        self.count += 1

    def render(self, art: Artifact) -> str:
        """Prometheus exposition text (version 0.0.4)."""
        out = [
            "# HELP specnet_model_info The served model.",
            "# TYPE specnet_model_info gauge",
            f'specnet_model_info{{name="{_esc(art.name)}",task="{art.task}",'
            f'spec_sha256="{art.spec_sha256}"}} 1',
            "# HELP specnet_requests_total Requests answered, by endpoint and status code.",
            "# TYPE specnet_requests_total counter",
        ]
        for (endpoint, status), n in sorted(self.requests.items()):
            out.append(f'specnet_requests_total{{endpoint="{endpoint}",code="{status}"}} {n}')
        errors: dict[str, int] = {}
        for (endpoint, status), n in self.requests.items():
            if status >= 400:
                errors[endpoint] = errors.get(endpoint, 0) + n
        out += ["# HELP specnet_request_errors_total Requests answered with a 4xx or 5xx.",
                "# TYPE specnet_request_errors_total counter"]
        out += [f'specnet_request_errors_total{{endpoint="{e}"}} {n}'
                for e, n in sorted(errors.items())]
        out += ["# HELP specnet_rows_total Rows predicted.", "# TYPE specnet_rows_total counter"]
        out += [f'specnet_rows_total{{endpoint="{e}"}} {n}' for e, n in sorted(self.rows.items())]
        out += ["# HELP specnet_request_duration_seconds Time to answer a request.",
                "# TYPE specnet_request_duration_seconds histogram"]
        total = 0
        for bound, n in zip((*BUCKETS, float("inf")), self.buckets, strict=True):
            total += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'specnet_request_duration_seconds_bucket{{le="{le}"}} {total}')
        out.append(f"specnet_request_duration_seconds_sum {self.duration_sum:.6f}")
        out.append(f"specnet_request_duration_seconds_count {self.count}")
        return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ---------------------------------------------------------------- request parsing


def _as_object(body: bytes, what: str) -> dict[str, Any]:
    if not body.strip():
        raise HTTPError(400, f"empty body: expected a JSON object with {what}")
    try:
        data = loads(body)
    except ValueError as exc:
        raise HTTPError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPError(400, f"expected a JSON object with {what}, got {type(data).__name__}")
    return data


def _row_limit(n: int, limits: Limits) -> None:
    if n > limits.max_rows:
        raise HTTPError(413, f"too many rows: at most {limits.max_rows} per request, got {n}")


def parse_v2(art: Artifact, body: bytes, limits: Limits) -> tuple[np.ndarray, dict[str, Any]]:
    """Checked model input from a v2 infer request, and the request object."""
    req = _as_object(body, "'inputs'")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        got = f"{len(inputs)} inputs" if isinstance(inputs, list) else repr(type(inputs).__name__)
        raise HTTPError(400, f"'inputs' must be a list of one tensor {{name, shape, datatype, "
                             f"data}} named {art.input_name!r}; got {got}")
    tensor = inputs[0]
    name = tensor.get("name")
    if name != art.input_name:
        raise HTTPError(400, f"unknown input tensor {name!r}: this model's input is "
                             f"{art.input_name!r}")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise HTTPError(400, f"input datatype must be one of {', '.join(DATATYPES)}, "
                             f"got {datatype!r}")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                       for d in shape)):
        raise HTTPError(400, f"shape must be a list of non-negative integers like "
                             f"[n, {art.n_features}], got {shape!r}")
    want = [[-1, art.n_features], [-1, *art.input_shape]]
    if not any(len(shape) == len(w) and list(shape[1:]) == w[1:] for w in want):
        raise HTTPError(400, f"input shape must be [n, {art.n_features}]"
                             + (f" or [n, {', '.join(map(str, art.input_shape))}]"
                                if len(art.input_shape) > 1 else "")
                             + f", got {shape}")
    _row_limit(shape[0], limits)
    outputs = req.get("outputs") or []
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise HTTPError(400, f"'outputs' must be a list of objects like {{\"name\": "
                             f"\"{art.output_name}\"}}, got {outputs!r:.80}")
    for out in outputs:
        if out.get("name") != art.output_name:
            raise HTTPError(400, f"unknown output {out.get('name')!r}: this model's output "
                                 f"is {art.output_name!r}")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise HTTPError(400, f"input 'data' must be a list of numbers, got "
                             f"{type(data).__name__}")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        raise HTTPError(400, "input 'data' must be a flat (or evenly nested) list of "
                             "numbers; it is ragged") from None
    if arr.dtype.kind not in "iuf":
        raise HTTPError(400, f"input 'data' must hold numbers ({datatype}); found "
                             f"{_first_non_number(data)!r}")
    size = int(np.prod(shape))
    if arr.size != size:
        raise HTTPError(400, f"shape {shape} needs {size} values, 'data' has {arr.size}")
    return check_array(art, arr.reshape(shape)), req


def _first_non_number(data: list[Any]) -> Any:
    """The first value in (nested) `data` that is not an int or a float."""
    for v in data:
        if isinstance(v, list):
            bad = _first_non_number(v)
            if bad is not None:
                return bad
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return v
    return None


def parse_predict(art: Artifact, body: bytes, limits: Limits) -> np.ndarray:
    """Checked model input from a /predict request: {"records": [...]} or {"rows": [...]}."""
    req = _as_object(body, "'records' or 'rows'")
    keys = [k for k in ("records", "rows") if k in req]
    if len(keys) != 1:
        raise HTTPError(400, "expected exactly one of 'records' (a list of {feature: value}) "
                             f"or 'rows' (a list of lists of {art.n_features} numbers); "
                             f"got keys {sorted(req)}")
    items = req[keys[0]]
    if not isinstance(items, list):
        raise HTTPError(400, f"'{keys[0]}' must be a list, got {type(items).__name__}")
    _row_limit(len(items), limits)
    if keys[0] == "records":
        return rows_from_records(art, items)
    return rows_from_lists(art, items)


# ---------------------------------------------------------------- the app


def load_model(model: str | Path, *, allow_unverified: bool = False,
               threads: int | None = None) -> Runtime:
    """Open the model for serving; SpecnetError when its verification is missing or failed."""
    runtime = Runtime(model, threads=threads)
    problem = runtime.artifact.verification_problem()
    if problem and not allow_unverified:
        raise SpecnetError(f"refusing to serve: {problem}; rebuild it with `specnet build` / "
                           "`specnet export`, or pass --allow-unverified to serve it anyway")
    return runtime


def create_app(model: str | Path | Runtime, *, allow_unverified: bool = False,
               threads: int | None = None, limits: Limits | None = None) -> FastAPI:
    """The FastAPI application serving one model."""
    runtime = model if isinstance(model, Runtime) else load_model(
        model, allow_unverified=allow_unverified, threads=threads)
    art = runtime.artifact
    limits = limits or Limits()
    metrics = Metrics()
    app = FastAPI(title=f"specnet: {art.name}", version=art.versions.get("specnet", ""),
                  docs_url=None, redoc_url=None, openapi_url=None)
    model_meta = {
        "name": art.name, "versions": ["1"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": art.input_name, "datatype": "FP32",
                    "shape": [-1, *art.input_shape]}],
        "outputs": [{"name": art.output_name, "datatype": "FP32",
                     "shape": [-1, *art.output_shape]}],
        "parameters": {"task": art.task, "feature_names": art.feature_names,
                       "class_labels": art.class_labels, "target_names": art.target_names,
                       "spec_sha256": art.spec_sha256},
    }

    def check_name(name: str) -> None:
        if name != art.name:
            raise HTTPError(404, f"unknown model {name!r}: this server serves {art.name!r}")

    def infer(name: str, body: bytes) -> tuple[Any, int]:
        check_name(name)
        X, req = parse_v2(art, body, limits)
        out = runtime.run(X)
        answer: dict[str, Any] = {"model_name": art.name, "model_version": "1"}
        if isinstance(req.get("id"), str):
            answer["id"] = req["id"]
        answer["outputs"] = [{"name": art.output_name, "datatype": "FP32",
                              "shape": list(out.shape), "data": out.reshape(-1)}]
        return answer, len(X)

    def predict(body: bytes) -> tuple[Any, int]:
        X = parse_predict(art, body, limits)
        return {"model": art.name, **predictions(art, runtime.run(X))}, len(X)

    def answer(label: str, start: float, work: Callable[[], tuple[Any, int]]) -> tuple[
            int, bytes]:
        """Run `work`, turn input errors into 4xx, count the request: (status, JSON body)."""
        rows = 0
        try:
            obj, rows = work()
            status = 200
        except HTTPError as exc:
            status, obj = exc.status, {"error": str(exc)}
        except ModelInputError as exc:
            status, obj = 400, {"error": str(exc)}
        except Exception as exc:  # a bug: log it, answer in JSON, count it, keep serving
            _log.exception("%s failed", label)
            status, obj = 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
        payload = dumps(obj)
        metrics.observe(label, status, time.perf_counter() - start, rows)
        return status, payload

    def reply(label: str, work: Callable[[], tuple[Any, int]]) -> Response:
        status, payload = answer(label, time.perf_counter(), work)
        return Response(payload, status_code=status, media_type="application/json")

    async def handle(label: str, work: Callable[[bytes], tuple[Any, int]], receive: Receive,
                     length: str | None) -> tuple[int, bytes]:
        """Read the body (413 past the limit), then `answer` with `work(body)`."""
        start = time.perf_counter()
        try:
            body = await _read_body(receive, length, limits)
        except HTTPError as exc:
            return answer(label, start, _raiser(exc))
        return answer(label, start, lambda: work(body))

    async def post(request: Request, label: str,
                   work: Callable[[bytes], tuple[Any, int]]) -> Response:
        status, payload = await handle(label, work, request.receive,
                                       request.headers.get("content-length"))
        return Response(payload, status_code=status, media_type="application/json")

    @app.get("/v2")
    async def server_metadata() -> Response:
        """v2 server metadata."""
        return reply("server_metadata", lambda: ({
            "name": "specnet", "version": art.versions.get("specnet", ""), "extensions": []}, 0))

    @app.get("/v2/health/live")
    async def live() -> Response:
        """The process is up."""
        return reply("live", lambda: ({"live": True}, 0))

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        """The model is loaded (it is loaded before the server starts listening)."""
        return reply("ready", lambda: ({"ready": True}, 0))

    @app.get("/v2/models/{name}")
    async def v2_model(name: str) -> Response:
        """v2 model metadata (with feature names and class labels under `parameters`)."""
        def work() -> tuple[Any, int]:
            check_name(name)
            return model_meta, 0

        return reply("model_metadata", work)

    @app.get("/v2/models/{name}/ready")
    async def v2_model_ready(name: str) -> Response:
        """v2 model readiness."""
        def work() -> tuple[Any, int]:
            check_name(name)
            return {"name": art.name, "ready": True}, 0

        return reply("model_ready", work)

    @app.get("/metadata")
    async def metadata() -> Response:
        """What the model takes and gives, and how it was verified."""
        return reply("metadata", lambda: ({**art.describe(), "limits": {
            "max_rows": limits.max_rows, "max_body_bytes": limits.max_body_bytes}}, 0))

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus metrics of this worker."""
        return Response(metrics.render(art), media_type="text/plain; version=0.0.4")

    # The inference endpoints. These FastAPI routes answer other model names (404) and
    # document the API; the hot paths go through `_FastPath` below, which answers the same
    # requests with the same code, minus FastAPI's per-request routing and objects.
    @app.post("/v2/models/{name}/infer")
    async def v2_infer(name: str, request: Request) -> Response:
        """v2 inference: one FP32/FP64 tensor [n, features] in, the model's output out."""
        return await post(request, "infer", lambda body: infer(name, body))

    @app.post("/predict")
    async def predict_route(request: Request) -> Response:
        """Rows or records in, labels + probabilities (or values) out."""
        return await post(request, "predict", predict)

    fast = {
        "/predict": ("predict", predict),
        f"/v2/models/{art.name}/infer": ("infer", lambda body: infer(art.name, body)),
    }
    app.add_middleware(_FastPath, routes=fast, handle=handle)
    app.state.runtime = runtime
    return app


def _raiser(exc: Exception) -> Callable[[], tuple[Any, int]]:
    def work() -> tuple[Any, int]:
        raise exc

    return work


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _read_body(receive: Receive, length: str | None, limits: Limits) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed the limit."""
    if length is not None:
        if not length.isdigit():
            raise HTTPError(400, f"bad Content-Length {length!r}")
        if int(length) > limits.max_body_bytes:
            raise HTTPError(413, f"body too large: at most {limits.max_body_bytes} bytes, "
                                 f"got {int(length)}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise HTTPError(413, f"body too large: at most {limits.max_body_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_JSON_HEADERS = [(b"content-type", b"application/json")]


class _FastPath:
    """Pure ASGI middleware answering POST on the two inference paths directly.

    A small model answers in microseconds; FastAPI's routing, Request and Response objects
    would cost several times that per request. Everything else goes to the FastAPI app.
    """

    def __init__(self, app: Any, routes: Mapping[str, tuple[str, Callable[[bytes], Any]]],
                 handle: Callable[[str, Callable[[bytes], Any], Receive, str | None],
                                  Awaitable[tuple[int, bytes]]]) -> None:
        self.app = app
        self.routes = routes
        self.handle = handle

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        label, work = route
        length = next((v.decode("latin-1") for k, v in scope["headers"]
                       if k == b"content-length"), None)
        status, payload = await self.handle(label, work, receive, length)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON_HEADERS,
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


# ---------------------------------------------------------------- running


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: the configuration comes in CONFIG_ENV."""
    cfg = json.loads(os.environ[CONFIG_ENV])
    return create_app(cfg["model"], allow_unverified=cfg["allow_unverified"],
                      threads=cfg["threads"], limits=Limits(**cfg["limits"]))


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          threads: int | None = None, limits: Limits | None = None,
          allow_unverified: bool = False, access_log: bool = False,
          log_level: str = "info") -> None:
    """Run the server until interrupted. The model is opened (and its verification
    checked) before anything listens, so a bad model fails fast with a clear message."""
    import uvicorn

    threads = threads or default_threads(workers)
    limits = limits or Limits()
    runtime = load_model(model, allow_unverified=allow_unverified, threads=threads)
    app: FastAPI | str = "specnet.serve:app_from_env"
    if workers == 1:
        app = create_app(runtime, limits=limits)
    else:
        os.environ[CONFIG_ENV] = json.dumps({
            "model": str(Path(runtime.path).resolve()), "allow_unverified": allow_unverified,
            "threads": threads, "limits": {"max_rows": limits.max_rows,
                                           "max_body_bytes": limits.max_body_bytes}})
        del runtime
    try:
        uvicorn.run(app, host=host, port=port, workers=workers, factory=workers > 1,
                    access_log=access_log, log_level=log_level)
    except SystemExit as exc:
        # uvicorn logs why it could not start (e.g. the port is taken) and exits with 3,
        # the code specnet keeps for a failed verification.
        if exc.code == 3:
            raise SpecnetError(f"cannot serve on {host}:{port} (see the uvicorn error "
                               "above)") from None
        raise
