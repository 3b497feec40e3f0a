"""`specnet serve --grpc-port`: the Open Inference Protocol's GRPCInferenceService.

What `tritonclient.grpc` and KServe's gRPC client call, over the torch-free runtime:
ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelConfig and
ModelInfer. Other RPCs of the service (statistics, repository, shared memory) answer
UNIMPLEMENTED.

ModelInfer decodes, casts and checks its tensors with the same protocol core as HTTP
(`protocol.decode_tensor`, `request_feed`): every numeric datatype cast to the model's
float32 with range checks, BOOL refused, BYTES for raw text columns, and raw-column models
taking one tensor per column. What is gRPC's own is where the values come from:
`raw_input_contents` (little-endian bytes, what tritonclient sends by default), or each
tensor's typed `contents` (fp32/fp64/int/int64/uint/uint64/bytes fields; FP16 only raw).
The answer is in `raw_output_contents`, as tritonclient reads it.

Status codes: the core's ProtocolError statuses map to gRPC codes (STATUS_CODES): a bad
request is INVALID_ARGUMENT with the same message HTTP gives; an unknown model or version
NOT_FOUND; a request over the row or size limit RESOURCE_EXHAUSTED; more concurrent calls than the pool admits RESOURCE_EXHAUSTED at
once. INTERNAL only for a bug. Inference runs in a bounded thread pool (onnxruntime
releases the GIL).

Messages come from specnet.inference_proto (a private descriptor pool), so this server,
tritonclient and kserve can share a process. Needs the `grpc` extra (grpcio, protobuf).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..errors import SpecnetError
from ..runtime import Runtime
from .protocol import (
    MODEL_VERSION,
    InferRequest,
    ProtocolError,
    RequestedOutput,
    check_datatype,
    check_input_names,
    check_rows,
    decode_tensor,
    lookup,
    model_metadata,
    output_tensors,
    request_feed,
    tensor_bytes,
)

DEFAULT_THREADS = 4
DEFAULT_MAX_CONCURRENT = 64
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
INSTALL = "pip install 'specnet[grpc]'"

CONTENTS: dict[str, str] = {
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "BYTES": "bytes_contents",
}
"""Input datatype -> its InferTensorContents field (FP16 has none: it travels raw only)."""

STATUS_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED",
                413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT", 503: "UNAVAILABLE"}
"""ProtocolError status (an HTTP code) -> gRPC status code name."""

_log = logging.getLogger(__name__)


def check_installed() -> None:
    """SpecnetError naming the install command when grpcio is missing."""
    _grpc()


def _grpc() -> Any:
    try:
        import grpc
    except ImportError:
        raise SpecnetError(f"gRPC serving needs grpcio and protobuf: {INSTALL}") from None
    return grpc


def _bad(message: str) -> NoReturn:
    raise ProtocolError(400, message)


@dataclass(frozen=True)
class GrpcLimits:
    """Rows per request, message size in bytes, threads and concurrent calls."""

    max_rows: int = 10_000
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    threads: int = DEFAULT_THREADS
    max_concurrent: int = DEFAULT_MAX_CONCURRENT


# ---------------------------------------------------------------- decoding


def infer_request(request: Any, max_rows: int | None = None) -> InferRequest:
    """A ModelInferRequest decoded by the protocol core: each tensor from its entry of
    `raw_input_contents` (all inputs, in order) or from its typed `contents`. A first
    dimension over `max_rows` is refused before any data is decoded."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        _bad(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} "
             "input(s): send every input raw, in order, or none")
    arrays: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for i, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in arrays:
            _bad(f"input {name!r} is given twice")
        shape = list(tensor.shape)
        check_rows(shape, max_rows)
        datatype = check_datatype(name, tensor.datatype)
        if raw:
            if tensor.HasField("contents"):
                _bad(f"input {name!r} has both raw_input_contents and contents: send one "
                     "of them")
            arrays[name] = decode_tensor(name, datatype, shape, raw=raw[i])
        else:
            field = _contents_field(name, datatype, tensor.contents)
            arrays[name] = decode_tensor(name, datatype, shape,
                                         data=list(getattr(tensor.contents, field)),
                                         check_bools=False, source=f"contents.{field}")
        datatypes[name] = datatype
    return InferRequest(arrays, datatypes, id=request.id or None,
                        outputs=[RequestedOutput(o.name) for o in request.outputs])


def _contents_field(name: str, datatype: str, contents: Any) -> str:
    """The InferTensorContents field that carries `datatype`; 400 when there is none or
    the values are in another field."""
    field = CONTENTS.get(datatype)
    if field is None:
        _bad(f"input {name!r}: {datatype} travels only as raw_input_contents "
             "(InferTensorContents has no field for it)")
    others = [f.name for f, _ in contents.ListFields() if f.name != field]
    if others:
        _bad(f"input {name!r}: datatype {datatype} goes in contents.{field}; got "
             f"{', '.join(others)}")
    return field


# ---------------------------------------------------------------- the service


class InferenceService:
    """GRPCInferenceService handlers over one or more models (name -> Runtime)."""

    def __init__(self, models: Mapping[str, Runtime], limits: GrpcLimits | None = None,
                 version: str = "") -> None:
        from ..inference_proto import M

        self.M = M
        self.models = dict(models)
        self.limits = limits or GrpcLimits()
        self.version = version

    def _model(self, name: str, version: str) -> Runtime:
        return lookup(self.models, name, version)

    def server_live(self, request: Any) -> Any:
        """ServerLive: the process is up."""
        return self.M.ServerLiveResponse(live=True)

    def server_ready(self, request: Any) -> Any:
        """ServerReady: every model is loaded (they load before the server listens)."""
        return self.M.ServerReadyResponse(ready=True)

    def model_ready(self, request: Any) -> Any:
        """ModelReady: false for an unknown model or version."""
        ready = request.name in self.models and request.version in ("", MODEL_VERSION)
        return self.M.ModelReadyResponse(ready=ready)

    def server_metadata(self, request: Any) -> Any:
        """ServerMetadata: name, version and the protocol extensions served."""
        return self.M.ServerMetadataResponse(name="specnet", version=self.version,
                                             extensions=["model_configuration"])

    def model_metadata(self, request: Any) -> Any:
        """ModelMetadata: inputs and outputs with datatypes and shapes (-1: any rows), as
        HTTP's (`protocol.model_metadata`) without its parameters."""
        meta = model_metadata(self._model(request.name, request.version).artifact,
                              request.name)
        answer = self.M.ModelMetadataResponse(name=meta["name"], versions=meta["versions"],
                                              platform=meta["platform"])
        for t in meta["inputs"]:
            answer.inputs.add(**t)
        for t in meta["outputs"]:
            answer.outputs.add(**t)
        return answer

    def model_config(self, request: Any) -> Any:
        """ModelConfig: the Triton model configuration of the model (see deploy.triton)."""
        from ..deploy.triton import model_config

        runtime = self._model(request.name, request.version)
        config = model_config(runtime, max_batch_size=self.limits.max_rows)
        config.name = request.name
        return self.M.ModelConfigResponse(config=config)

    def model_infer(self, request: Any) -> Any:
        """ModelInfer: the request decoded and checked by the protocol core, the outputs in
        raw_output_contents."""
        runtime = self._model(request.model_name, request.model_version)
        # names first: a misnamed tensor is reported as such, whatever its contents
        check_input_names(runtime.artifact, [t.name for t in request.inputs])
        req = infer_request(request, self.limits.max_rows)
        feed, _ = request_feed(runtime.artifact, req, self.limits.max_rows)
        out = runtime.run_feed(feed)
        answer = self.M.ModelInferResponse(model_name=request.model_name,
                                           model_version=MODEL_VERSION, id=request.id)
        for name, datatype, arr, _binary in output_tensors(runtime.artifact, req, out):
            answer.outputs.add(name=name, datatype=datatype, shape=list(arr.shape))
            answer.raw_output_contents.append(tensor_bytes(datatype, arr))
        return answer


_RPCS = {
    "ServerLive": ("server_live", "ServerLiveRequest", "ServerLiveResponse"),
    "ServerReady": ("server_ready", "ServerReadyRequest", "ServerReadyResponse"),
    "ModelReady": ("model_ready", "ModelReadyRequest", "ModelReadyResponse"),
    "ServerMetadata": ("server_metadata", "ServerMetadataRequest", "ServerMetadataResponse"),
    "ModelMetadata": ("model_metadata", "ModelMetadataRequest", "ModelMetadataResponse"),
    "ModelConfig": ("model_config", "ModelConfigRequest", "ModelConfigResponse"),
    "ModelInfer": ("model_infer", "ModelInferRequest", "ModelInferResponse"),
}


def _handler(grpc: Any, method: Callable[[Any], Any], name: str) -> Callable[[Any, Any], Any]:
    def handle(request: Any, context: Any) -> Any:
        try:
            return method(request)
        except ProtocolError as exc:
            code = STATUS_CODES.get(exc.status, "INVALID_ARGUMENT")
            context.abort(getattr(grpc.StatusCode, code), str(exc))
        except Exception as exc:  # a bug: log it, answer INTERNAL, keep serving
            _log.exception("%s failed", name)
            context.abort(grpc.StatusCode.INTERNAL,
                          f"internal error: {type(exc).__name__}: {exc}")

    return handle


def _generic_handler(grpc: Any, service: InferenceService) -> Any:
    from ..inference_proto import SERVICE, M

    handlers = {}
    for rpc, (attr, req, resp) in _RPCS.items():
        handlers[rpc] = grpc.unary_unary_rpc_method_handler(
            _handler(grpc, getattr(service, attr), rpc),
            request_deserializer=getattr(M, req).FromString,
            response_serializer=getattr(M, resp).SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


@dataclass
class GrpcServer:
    """A running gRPC server: `port` is the bound port; `stop()` drains and stops it."""

    server: Any
    host: str
    port: int

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting calls; let calls in flight finish for up to `grace` seconds."""
        self.server.stop(grace).wait()


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def start(models: Mapping[str, Runtime], *, host: str = "127.0.0.1", port: int = 0,
          limits: GrpcLimits | None = None, version: str = "") -> GrpcServer:
    """Start serving `models` on host:port (0: any free port) in background threads.

    SpecnetError when grpcio is missing or the port cannot be bound.
    """
    grpc = _grpc()
    limits = limits or GrpcLimits()
    service = InferenceService(models, limits, version)
    size = limits.max_message_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.threads,
                                   thread_name_prefix="specnet-grpc"),
        maximum_concurrent_rpcs=limits.max_concurrent,
        options=[("grpc.max_receive_message_length", size),
                 ("grpc.max_send_message_length", size),
                 ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_generic_handler(grpc, service),))
    address = _address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise SpecnetError(f"cannot serve gRPC on {address}: {exc} (is the port in use?)"
                           ) from None
    if not bound:
        raise SpecnetError(f"cannot serve gRPC on {address} (is the port in use?)")
    server.start()
    return GrpcServer(server, host, bound)


def serve_model(model: str | Path | Runtime, *, host: str = "127.0.0.1", port: int = 0,
                threads: int | None = None, limits: GrpcLimits | None = None,
                allow_unverified: bool = False) -> GrpcServer:
    """Open an exported model or a model repository of several (`repository.open_models`)
    and `start` serving it."""
    check_installed()  # a missing extra is reported before the model is opened
    if isinstance(model, Runtime):
        models = {model.artifact.name: model}
    else:
        from .repository import open_models

        models = open_models(model, threads=threads, allow_unverified=allow_unverified)
    from .. import __version__

    return start(models, host=host, port=port, limits=limits, version=__version__)
