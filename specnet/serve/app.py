"""The HTTP routes of `specnet serve` (FastAPI), torch-free.

Open Inference Protocol v2 (with `/versions/{v}` on every model route):
  GET  /v2, /v2/health/live, /v2/health/ready             server metadata and health
  GET  /v2/models/{name}[/versions/{v}][/ready|/config|/stats]  metadata, readiness,
       Triton model configuration, Triton statistics; GET /v2/models/stats
  POST /v2/models/{name}[/versions/{v}]/infer             inference (JSON or binary tensors)
  POST /v2/repository/index                               the model repository index
specnet's own: POST /predict, GET /metadata, GET /metrics; GET /openapi.json and /docs.

Every error is a 4xx (or 503 when busy) with {"error": "..."}, unrouted paths included.
The protocol itself lives in `protocol.py`, the limits and the worker pool in `limits.py`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ModelInputError, SpecnetError
from ..feed import feed_from_records
from ..runtime import Runtime, dumps, predictions, rows_from_lists, rows_from_records
from . import openapi
from .limits import InFlight, Limits, WorkerPool
from .protocol import (
    CHUNK,
    EXTENSIONS,
    MODEL_VERSION,
    ProtocolError,
    compress,
    contains_bool,
    decompress,
    encode_http_response,
    json_object,
    lookup,
    model_config,
    model_metadata,
    output_tensors,
    parse_infer_request,
    repository_index,
    request_feed,
)
from .repository import open_models
from .stats import Metrics, ModelStats

_log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
Reply = tuple[int, Headers, bytes]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Work = Callable[[bytes, dict[str, str]], tuple[Any, int]]
"""(body, request headers) -> (answer, rows): the answer is a JSON-able object or a
ready Reply."""

JSON_TYPE = b"application/json"
_BODY_TYPES = ("application/json", "application/octet-stream")


def load_model(model: str | Path, *, allow_unverified: bool = False,
               threads: int | None = None) -> Runtime:
    """Open one model for serving; SpecnetError when its verification is missing or failed,
    or when `model` is a repository of several (see `load_models`)."""
    models = load_models(model, allow_unverified=allow_unverified, threads=threads)
    if len(models) != 1:
        raise SpecnetError(f"{model}: a model repository of {len(models)} models "
                           f"({', '.join(models)}), not one model")
    return next(iter(models.values()))


def load_models(model: str | Path, *, allow_unverified: bool = False,
                threads: int | None = None, copies: int = 1) -> dict[str, Runtime]:
    """Open a model, or every model of a repository (name -> Runtime), for serving; see
    `serve.repository.open_models`."""
    return open_models(model, threads=threads, allow_unverified=allow_unverified,
                       copies=copies)


def _error(status: int, message: str, extra: Headers | None = None) -> Reply:
    return status, [(b"content-type", JSON_TYPE), *(extra or [])], dumps({"error": message})


def _check_content_type(value: str | None) -> None:
    if value is None:
        return
    mime = value.split(";", 1)[0].strip().lower()
    if mime in _BODY_TYPES or (mime.startswith("application/") and mime.endswith("+json")):
        return
    raise ProtocolError(415, f"unsupported Content-Type {value!r:.60}: send application/json "
                             "(or application/octet-stream with binary tensors); with curl, "
                             "use --json or -H 'Content-Type: application/json'")


async def read_body(receive: Receive, length: str | None, limits: Limits) -> bytes:
    """The request body: 413 as soon as it is known to exceed the limit, 408 when it does
    not arrive within `limits.body_timeout`."""
    if length is not None:
        if not length.isdigit():
            raise ProtocolError(400, f"bad Content-Length {length!r:.40}")
        if int(length) > limits.max_body_bytes:
            raise ProtocolError(413, f"body too large: at most {limits.max_body_bytes} "
                                     f"bytes, got {int(length)}")
    # One timer per request cancels the read at the deadline (cheaper than wait_for,
    # which would start a task for every receive).
    task = asyncio.current_task()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        if task is not None:
            task.cancel()

    timer = asyncio.get_running_loop().call_later(limits.body_timeout, expire)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ProtocolError(400, "the client disconnected before sending the whole "
                                         "body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise ProtocolError(413, f"body too large: at most {limits.max_body_bytes} "
                                         "bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except asyncio.CancelledError:
        if not expired:
            raise
        if task is not None:
            task.uncancel()
        raise ProtocolError(408, f"request body not received within "
                                 f"{limits.body_timeout:g} s") from None
    finally:
        timer.cancel()


class Model:
    """One served model: the name it is served under, its runtime, its statistics and the
    metadata documents it answers with."""

    def __init__(self, name: str, runtime: Runtime, limits: Limits) -> None:
        self.name = name
        self.runtime = runtime
        self.art = runtime.artifact
        self.stats = ModelStats()
        self.meta = model_metadata(self.art, name)
        self.config = model_config(self.art, limits.max_rows, name)


class Service:
    """The served models (name -> Model): the work behind every route, independent of
    FastAPI."""

    def __init__(self, models: Mapping[str, Runtime], limits: Limits) -> None:
        self.models = {name: Model(name, runtime, limits) for name, runtime in models.items()}
        self.limits = limits
        self.metrics = Metrics()
        self.pool = WorkerPool(limits.pool_threads, limits.max_queue)

    # ------------------------------------------------------------ checks

    def model(self, name: str, version: str | None = None) -> Model:
        """The model served as `name` (at `version`); 404 naming the served ones."""
        return lookup(self.models, name, version)

    def only(self, route: str) -> Model:
        """The one model, for the routes without a model name (/predict, /metadata); 400
        naming the models and their own routes when there are several."""
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        names = ", ".join(map(repr, self.models))
        raise ProtocolError(400, f"this server serves {len(self.models)} models ({names}): "
                                 f"use /models/<name>{route} (e.g. /models/"
                                 f"{next(iter(self.models))}{route}), or the v2 routes "
                                 "/v2/models/<name>/...")

    # ------------------------------------------------------------ work

    def infer(self, name: str, version: str | None, body: bytes,
              headers: dict[str, str]) -> tuple[Any, int]:
        """A v2 inference request -> (Reply, rows)."""
        m = self.model(name, version)
        start = time.perf_counter_ns()
        header_length = headers.get("inference-header-content-length")
        if header_length is not None:
            if not header_length.isdigit() or int(header_length) > len(body):
                raise ProtocolError(400, f"Inference-Header-Content-Length {header_length!r:.40}"
                                         f" must be an integer at most the body length "
                                         f"({len(body)})")
            cut = int(header_length)
            view = memoryview(body)
            req = parse_infer_request(json_object(view[:cut], "'inputs'"), view[cut:],
                                      self.limits.max_rows, _has_bool_token(view[:cut]))
        else:
            req = parse_infer_request(json_object(body, "'inputs'"), None, self.limits.max_rows,
                                      _has_bool_token(body))
        feed, n = request_feed(m.art, req, self.limits.max_rows)
        t_in = time.perf_counter_ns()
        out = m.runtime.run_feed(feed)
        t_run = time.perf_counter_ns()
        payload, head = encode_http_response(m.art, req, output_tensors(m.art, req, out),
                                             dumps, m.name)
        t_out = time.perf_counter_ns()
        m.stats.executed(n, t_in - start, t_run - t_in, t_out - t_run)
        m.stats.add("success", t_out - start)
        if head is None:
            return (200, [(b"content-type", JSON_TYPE)], payload), n
        return (200, [(b"content-type", b"application/octet-stream"),
                      (b"inference-header-content-length", str(head).encode())],
                payload), n

    def predict(self, m: Model, body: bytes, headers: dict[str, str]) -> tuple[Any, int]:
        """/predict: {"rows": [[...]]} or {"records": [{...}]} -> labels + probabilities."""
        art = m.art
        req = json_object(body, "'records' or 'rows'")
        keys = [k for k in ("records", "rows") if k in req]
        if len(keys) != 1:
            raise ProtocolError(400, "expected exactly one of 'records' (a list of {feature: "
                                     f"value}}) or 'rows' (a list of lists of {art.n_features}"
                                     f" numbers); got keys {sorted(req)}")
        items = req[keys[0]]
        if not isinstance(items, list):
            raise ProtocolError(400, f"'{keys[0]}' must be a list, got {type(items).__name__}")
        if len(items) > self.limits.max_rows:
            raise ProtocolError(413, f"too many rows: at most {self.limits.max_rows} per "
                                     f"request, got {len(items)}")
        if art.input_layout == "columns":  # raw columns: text, numbers, booleans, nulls
            if keys[0] != "records":
                raise ProtocolError(400, "this model takes raw columns: send 'records' (a "
                                         "list of {column: value}), not 'rows'")
            feed = feed_from_records(art, items)
            return {"model": m.name,
                    **predictions(art, m.runtime.run_feed(feed))}, len(items)
        if b"true" in body or b"false" in body:  # JSON booleans, or text that holds them
            _refuse_bools(art.feature_names, keys[0], items)
        X = (rows_from_records(art, items) if keys[0] == "records"
             else _rows(art, items))
        return {"model": m.name, **predictions(art, m.runtime.run(X))}, len(X)

    def metadata(self, m: Model) -> dict[str, Any]:
        """/metadata: specnet's description of the model and the request limits."""
        return {**m.art.describe(), "limits": {"max_rows": self.limits.max_rows,
                                               "max_body_bytes": self.limits.max_body_bytes}}

    def index(self, body: bytes, headers: dict[str, str]) -> tuple[Any, int]:
        """POST /v2/repository/index: body empty or {"ready": bool}."""
        ready = False
        if body.strip():
            req = json_object(body, "an optional 'ready' flag")
            ready = req.get("ready", False)
            if not isinstance(ready, bool):
                raise ProtocolError(400, f"'ready' must be true or false, got {ready!r:.40}")
        return repository_index(self.models, ready), 0

    def all_stats(self) -> dict[str, Any]:
        """Triton statistics of every model."""
        return {"model_stats": [m.stats.render(m.name, MODEL_VERSION)
                                for m in self.models.values()]}

    # ------------------------------------------------------------ plumbing

    def answer(self, label: str, start: float, work: Callable[[], tuple[Any, int]],
               accept_encoding: str | None = None, stats: ModelStats | None = None) -> Reply:
        """Run `work`, turn input errors into 4xx, compress, count (a failed inference in
        `stats`): the Reply."""
        rows = 0
        try:
            obj, rows = work()
            reply: Reply = obj if isinstance(obj, tuple) else (
                200, [(b"content-type", JSON_TYPE)], dumps(obj))
        except ProtocolError as exc:
            reply = _error(exc.status, str(exc), _retry(exc.status))
        except ModelInputError as exc:
            reply = _error(400, str(exc))
        except Exception as exc:  # a bug: log it, answer in JSON, count it, keep serving
            _log.exception("%s failed", label)
            reply = _error(500, f"internal error: {type(exc).__name__}: {exc}")
        status, headers, payload = reply
        if status >= 400 and stats is not None:
            stats.add("fail", int((time.perf_counter() - start) * 1e9))
        if accept_encoding:
            payload, encoding = compress(payload, accept_encoding)
            if encoding is not None:
                headers = [*headers, (b"content-encoding", encoding.encode()),
                           (b"vary", b"Accept-Encoding")]
        self.metrics.observe(label, status, time.perf_counter() - start, rows)
        return status, headers, payload

    async def handle(self, label: str, work: Work, scope: MutableMapping[str, Any],
                     receive: Receive, stats: ModelStats | None = None) -> Reply:
        """A POST: Content-Type, body (size, time), Content-Encoding, then `work` (in the
        worker pool when the body is large). `stats`: the model's, for an inference."""
        start = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        accept = headers.get("accept-encoding")
        try:
            _check_content_type(headers.get("content-type"))
            raw = await read_body(receive, headers.get("content-length"), self.limits)
            body = decompress(raw, headers.get("content-encoding"), self.limits.max_body_bytes)
        except ProtocolError as exc:
            return self.answer(label, start, _raiser(exc), stats=stats)
        if len(body) <= self.limits.inline_bytes:
            return self.answer(label, start, lambda: work(body, headers), accept, stats)
        t0 = time.perf_counter_ns()

        def job() -> Reply:
            if stats is not None:
                stats.add("queue", time.perf_counter_ns() - t0)
            return self.answer(label, start, lambda: work(body, headers), accept, stats)

        try:
            return await self.pool.run(job)
        except ProtocolError as exc:
            return self.answer(label, start, _raiser(exc), stats=stats)

    def reply(self, label: str, work: Callable[[], tuple[Any, int]]) -> Response:
        """A GET answered inline."""
        return _response(self.answer(label, time.perf_counter(), work))


def _refuse_bools(names: list[str], key: str, items: list[Any]) -> None:
    """400 naming the first true/false in /predict rows or records (numpy would take it as 1/0)."""
    for i, item in enumerate(items):
        cells = (item if isinstance(item, list) else
                 [item.get(f) for f in names] if isinstance(item, dict) else [])
        for j, v in enumerate(cells):
            if v is True or v is False or (isinstance(v, list) and contains_bool(v)):
                col = repr(names[j]) if j < len(names) else str(j + 1)
                raise ProtocolError(400, f"row {i + 1}, column {col}: expected a number, got "
                                         f"{'true' if v is True else 'false' if v is False else v}")


def _rows(art: Any, items: list[Any]) -> Any:
    """rows_from_lists in slices of CHUNK rows (see protocol.CHUNK), row numbers kept."""
    if len(items) <= CHUNK:
        return rows_from_lists(art, items)
    parts = []
    for i in range(0, len(items), CHUNK):
        try:
            parts.append(rows_from_lists(art, items[i:i + CHUNK]))
        except ModelInputError as exc:
            m = re.match(r"row (\d+)", str(exc))
            text = (f"row {int(m.group(1)) + i}{str(exc)[m.end():]}" if m else str(exc))
            raise ModelInputError(text) from None
    return np.concatenate(parts)


def _has_bool_token(body: bytes | memoryview) -> bool:
    data = bytes(body)
    return b"true" in data or b"false" in data


def _retry(status: int) -> Headers:
    return [(b"retry-after", b"1")] if status == 503 else []


def _raiser(exc: Exception) -> Callable[[], tuple[Any, int]]:
    def work() -> tuple[Any, int]:
        raise exc

    return work


def _response(reply: Reply) -> Response:
    status, headers, payload = reply
    r = Response(payload, status_code=status)
    for k, v in headers:
        r.headers[k.decode()] = v.decode()
    return r


FastRoute = tuple[str, Work, "ModelStats | None"]
"""A fast-path POST: (metrics label, work, the model's statistics for an inference)."""


class _FastPath:
    """Pure ASGI middleware answering POST on the inference paths directly.

    A small model answers in microseconds; FastAPI's routing, Request and Response objects
    would cost several times that per request. Everything else goes to the FastAPI app.
    """

    def __init__(self, app: Any, routes: dict[str, FastRoute], service: Service) -> None:
        self.app = app
        self.routes = routes
        self.service = service

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        label, work, stats = route
        status, headers, payload = await self.service.handle(label, work, scope, receive,
                                                             stats)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


Endpoint = Callable[..., Awaitable[Response]]


def create_app(model: str | Path | Runtime | Mapping[str, Runtime], *,
               allow_unverified: bool = False, threads: int | None = None,
               limits: Limits | None = None) -> FastAPI:
    """The FastAPI application serving one model, or a model repository of several.

    model: an export folder, .onnx file or model repository (see `serve.repository`), an
    open Runtime, or name -> Runtime.
    """
    if isinstance(model, Runtime):
        runtimes: Mapping[str, Runtime] = {model.artifact.name: model}
    elif isinstance(model, Mapping):
        runtimes = model
    else:
        runtimes = load_models(model, allow_unverified=allow_unverified, threads=threads)
    limits = limits or Limits()
    svc = Service(runtimes, limits)
    single = len(svc.models) == 1
    first = next(iter(svc.models.values()))
    version = first.art.versions.get("specnet", "")
    title = (f"specnet: {first.name}" if single
             else f"specnet: {len(svc.models)} models ({', '.join(svc.models)})")
    app = FastAPI(title=title, version=version,
                  docs_url=None, redoc_url=None, openapi_url=None,
                  description="Open Inference Protocol v2 (with Triton's binary tensor data, "
                              "model configuration, repository and statistics extensions) "
                              "over onnxruntime.")
    docs = openapi.Docs({m.name: m.art for m in svc.models.values()}, limits)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status, _, payload = _error(exc.status_code, str(exc.detail))
        r = Response(payload, status_code=status, headers=dict(exc.headers or {}))
        r.headers["content-type"] = "application/json"
        return r

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        return _response(_error(400, f"bad request: {exc}"))

    async def on_bug(request: Request, exc: Exception) -> Response:
        _log.exception("unhandled error", exc_info=exc)
        return _response(_error(500, f"internal error: {type(exc).__name__}: {exc}"))

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_bug)

    def model_get(label: str, make: Callable[[Model], Any]) -> Endpoint:
        async def route(name: str, version: str | None = None) -> Response:
            return svc.reply(label, lambda: (make(svc.model(name, version)), 0))

        return route

    server_meta = {"name": "specnet", "version": version, "extensions": EXTENSIONS}

    @app.get("/v2", **docs.get("Server metadata (v2)."))
    async def server_metadata() -> Response:
        return svc.reply("server_metadata", lambda: (server_meta, 0))

    @app.get("/v2/health/live", **docs.get("The process is up (v2)."))
    async def live() -> Response:
        return svc.reply("live", lambda: ({"live": True}, 0))

    @app.get("/v2/health/ready", **docs.get("Every model is loaded (v2)."))
    async def ready() -> Response:
        return svc.reply("ready", lambda: ({"ready": True}, 0))

    @app.get("/v2/models/stats", **docs.get("Statistics of every model (Triton extension)."))
    async def all_stats() -> Response:
        return svc.reply("stats", lambda: (svc.all_stats(), 0))

    routes: list[tuple[str, str, Endpoint]] = [
        ("", "Model metadata (v2): inputs, outputs, and under `parameters` the task, "
             "feature names and class labels.", model_get("model_metadata", lambda m: m.meta)),
        ("/ready", "Model readiness (v2).",
         model_get("model_ready", lambda m: {"name": m.name, "ready": True})),
        ("/config", "Model configuration as Triton's ModelConfig in JSON (dims without the "
                    "batch axis).", model_get("model_config", lambda m: m.config)),
        ("/stats", "Inference statistics (Triton's statistics extension).",
         model_get("stats", lambda m: {"model_stats": [m.stats.render(m.name,
                                                                      MODEL_VERSION)]})),
    ]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        for suffix, summary, endpoint in routes:
            app.add_api_route(prefix + suffix, endpoint, methods=["GET"], **docs.get(summary))

    # POST routes with a model's body: documented as /...{name}/... for one model; for
    # several, each model's own path is documented with its own body (the {name} route
    # still answers, 404 for an unknown name).
    def add_post(path: str, kind: str, summary: str, label: str,
                 make: Callable[[str, str | None], Work]) -> dict[str, FastRoute]:
        async def run(name: str, version: str | None, request: Request) -> Response:
            stats = svc.models[name].stats if name in svc.models and label == "infer" else None
            return _response(await svc.handle(label, make(name, version), request.scope,
                                              request.receive, stats))

        versioned = "{version}" in path
        endpoint = _endpoint(run, None, versioned)
        if single:
            app.add_api_route(path, endpoint, methods=["POST"], **docs.post(summary, kind))
        else:
            app.add_api_route(path, endpoint, methods=["POST"], include_in_schema=False)
        fast: dict[str, FastRoute] = {}
        for m in svc.models.values():
            concrete = path.replace("{name}", m.name)
            stats = m.stats if label == "infer" else None
            version = MODEL_VERSION if versioned else None
            fast[concrete.replace("{version}", MODEL_VERSION)] = (
                label, make(m.name, version), stats)
            if not single:
                app.add_api_route(concrete, _endpoint(run, m.name, versioned),
                                  methods=["POST"], **docs.post(summary, kind, m.name))
        return fast

    def infer_work(name: str, version: str | None) -> Work:
        return lambda body, headers: svc.infer(name, version, body, headers)

    def predict_work(name: str, version: str | None) -> Work:
        return lambda body, headers: svc.predict(svc.model(name), body, headers)

    infer_doc = "v2 inference: tensors in (JSON or binary), tensors out."
    predict_doc = "Rows or records in, labels and probabilities (or values) out."
    fast = {**add_post("/v2/models/{name}/infer", "infer", infer_doc, "infer", infer_work),
            **add_post("/v2/models/{name}/versions/{version}/infer", "infer", infer_doc,
                       "infer", infer_work),
            **add_post("/models/{name}/predict", "predict", predict_doc, "predict",
                       predict_work)}

    @app.post("/v2/repository/index", **docs.post("The model repository index (Triton "
                                                   "extension).", "index"))
    async def index(request: Request) -> Response:
        return _response(await svc.handle("index", svc.index, request.scope, request.receive))

    def predict_only(body: bytes, headers: dict[str, str]) -> tuple[Any, int]:
        return svc.predict(svc.only("/predict"), body, headers)

    fast["/predict"] = ("predict", predict_only, None)
    # Without a model name, /predict and /metadata mean the one model; with several they
    # answer 400 naming them, and are left out of the OpenAPI document.
    predict_kw = docs.post(predict_doc, "predict") if single else {"include_in_schema": False}

    @app.post("/predict", **predict_kw)
    async def predict(request: Request) -> Response:
        return _response(await svc.handle("predict", predict_only, request.scope,
                                          request.receive))

    metadata_doc = "What the model takes and gives, and how it was verified."

    @app.get("/metadata", **(docs.get(metadata_doc) if single else {"include_in_schema": False}))
    async def metadata() -> Response:
        return svc.reply("metadata", lambda: (svc.metadata(svc.only("/metadata")), 0))

    @app.get("/models/{name}/metadata", **docs.get(metadata_doc))
    async def model_metadata_route(name: str) -> Response:
        return svc.reply("metadata", lambda: (svc.metadata(svc.model(name)), 0))

    @app.get("/metrics", **docs.get("Prometheus metrics of this worker.", text=True))
    async def prometheus() -> Response:
        return Response(svc.metrics.render({m.name: m.art for m in svc.models.values()}),
                        media_type="text/plain; version=0.0.4")

    schema: dict[str, Any] = {}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> Response:
        if not schema:
            schema.update(docs.finish(app))
        return Response(dumps(schema), media_type="application/json")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    app.add_middleware(_FastPath, routes=fast, service=svc)
    app.add_middleware(InFlight, limit=limits.limit_concurrency)
    app.state.service = svc
    return app


Run = Callable[[str, "str | None", Request], Awaitable[Response]]


def _endpoint(run: Run, name: str | None, versioned: bool) -> Endpoint:
    """A POST route calling run(name, version, request): with the model name a path
    parameter (name None) or fixed, and with or without a version path parameter (FastAPI
    reads the parameters from the signature, so each form is its own function)."""
    async def by_name(name: str, request: Request) -> Response:
        return await run(name, None, request)

    async def by_name_version(name: str, version: str, request: Request) -> Response:
        return await run(name, version, request)

    async def fixed(request: Request) -> Response:
        assert name is not None
        return await run(name, None, request)

    async def fixed_version(version: str, request: Request) -> Response:
        assert name is not None
        return await run(name, version, request)

    if name is None:
        return by_name_version if versioned else by_name
    return fixed_version if versioned else fixed
