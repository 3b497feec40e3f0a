"""`specnet serve --grpc-port`: the Open Inference Protocol's GRPCInferenceService.

What `tritonclient.grpc` and KServe's gRPC client call, over the torch-free runtime:
ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelConfig and
ModelInfer. Other RPCs of the service (statistics, repository, shared memory) answer
UNIMPLEMENTED.

ModelInfer takes the input tensor as `raw_input_contents` (little-endian bytes, what
tritonclient sends by default) or as typed `contents` (fp32/fp64/int/uint fields); FP16
only raw; BOOL and BYTES are refused. Every numeric datatype is cast to the model's
float32 and range-checked (a value beyond float32 is an error, not infinity). The answer
is in `raw_output_contents`, as tritonclient reads it.

Status codes: a bad request is INVALID_ARGUMENT with a message naming the problem; an
unknown model or version NOT_FOUND; a request over the row or size limit
RESOURCE_EXHAUSTED; more concurrent calls than the pool admits RESOURCE_EXHAUSTED at
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

from ..errors import ModelInputError, SpecnetError
from ..runtime import Runtime, check_array

DEFAULT_THREADS = 4
DEFAULT_MAX_CONCURRENT = 64
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
INSTALL = "pip install 'specnet[grpc]'"

DATATYPES: dict[str, tuple[np.dtype[Any], str | None]] = {
    "FP32": (np.dtype("<f4"), "fp32_contents"),
    "FP64": (np.dtype("<f8"), "fp64_contents"),
    "FP16": (np.dtype("<f2"), None),
    "INT8": (np.dtype("<i1"), "int_contents"),
    "INT16": (np.dtype("<i2"), "int_contents"),
    "INT32": (np.dtype("<i4"), "int_contents"),
    "INT64": (np.dtype("<i8"), "int64_contents"),
    "UINT8": (np.dtype("<u1"), "uint_contents"),
    "UINT16": (np.dtype("<u2"), "uint_contents"),
    "UINT32": (np.dtype("<u4"), "uint_contents"),
    "UINT64": (np.dtype("<u8"), "uint64_contents"),
}
"""Input datatype -> (little-endian dtype of raw bytes, InferTensorContents field or None
when the type travels raw only)."""

_log = logging.getLogger(__name__)


def _grpc() -> Any:
    try:
        import grpc
    except ImportError:
        raise SpecnetError(f"gRPC serving needs grpcio and protobuf: {INSTALL}") from None
    return grpc


class RequestError(Exception):
    """A request answered with a gRPC status code other than OK (code: the name, e.g.
    'INVALID_ARGUMENT')."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _bad(message: str) -> NoReturn:
    raise RequestError("INVALID_ARGUMENT", message)


@dataclass(frozen=True)
class GrpcLimits:
    """Rows per request, message size in bytes, threads and concurrent calls."""

    max_rows: int = 10_000
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    threads: int = DEFAULT_THREADS
    max_concurrent: int = DEFAULT_MAX_CONCURRENT


# ---------------------------------------------------------------- decoding


def _shape_text(runtime: Runtime) -> str:
    art = runtime.artifact
    text = f"[n, {art.n_features}]"
    if len(art.input_shape) > 1:
        text += f" or [n, {', '.join(map(str, art.input_shape))}]"
    return text


def decode_input(runtime: Runtime, request: Any, limits: GrpcLimits) -> np.ndarray:
    """The checked model input (n, *input_shape) float32 of a ModelInferRequest;
    RequestError naming what is wrong."""
    art = runtime.artifact
    if len(request.inputs) != 1:
        _bad(f"expected 1 input tensor named {art.input_name!r}, got {len(request.inputs)}")
    tensor = request.inputs[0]
    if tensor.name != art.input_name:
        _bad(f"unknown input tensor {tensor.name!r}: this model's input is "
             f"{art.input_name!r}")
    if tensor.datatype not in DATATYPES:
        refused = {"BOOL": "true/false values are not numbers",
                   "BYTES": "this model takes numbers, not bytes"}.get(tensor.datatype, "")
        _bad(f"input datatype {tensor.datatype!r} is not supported"
             + (f" ({refused})" if refused else "")
             + f"; use one of {', '.join(DATATYPES)}")
    shape = [int(d) for d in tensor.shape]
    ok = (len(shape) == 2 and shape[1:] == [art.n_features]) or (
        shape[1:] == list(art.input_shape) and len(shape) == len(art.input_shape) + 1)
    if not ok or shape[0] < 0:
        _bad(f"input shape must be {_shape_text(runtime)}, got {shape}")
    if shape[0] > limits.max_rows:
        raise RequestError("RESOURCE_EXHAUSTED", f"too many rows: at most {limits.max_rows} "
                                                 f"per request, got {shape[0]}")
    dtype, field = DATATYPES[tensor.datatype]
    size = int(np.prod(shape))
    raw = list(request.raw_input_contents)
    has_contents = tensor.HasField("contents")
    if raw:
        if len(raw) != 1:
            _bad(f"raw_input_contents has {len(raw)} entries for 1 input")
        if has_contents:
            _bad("input has both raw_input_contents and contents: send one of them")
        data = raw[0]
        if len(data) != size * dtype.itemsize:
            _bad(f"shape {shape} of {tensor.datatype} needs {size * dtype.itemsize} bytes "
                 f"of raw_input_contents, got {len(data)}")
        arr = np.frombuffer(data, dtype=dtype)
    else:
        if field is None:
            _bad(f"{tensor.datatype} travels only as raw_input_contents (InferTensorContents "
                 "has no field for it)")
        contents = tensor.contents
        others = [f.name for f, _ in contents.ListFields() if f.name != field]
        if others:
            _bad(f"input datatype {tensor.datatype} goes in contents.{field}; got "
                 f"{', '.join(others)}")
        values = getattr(contents, field)
        if len(values) != size:
            _bad(f"shape {shape} needs {size} values in contents.{field}, got {len(values)}")
        wide = np.array(values, dtype=np.float64 if dtype.kind == "f" else
                        np.int64 if dtype.kind == "i" else np.uint64)
        if dtype.kind in "iu" and size:
            info = np.iinfo(dtype)
            low, high = wide.min(), wide.max()
            if low < info.min or high > info.max:
                bad = low if low < info.min else high
                _bad(f"value {int(bad)} is out of the {tensor.datatype} range "
                     f"[{info.min}, {info.max}]")
        arr = wide
    try:
        return check_array(art, arr.reshape(shape))
    except ModelInputError as exc:
        _bad(str(exc))


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
        runtime = self.models.get(name)
        if runtime is None:
            served = ", ".join(map(repr, self.models))
            raise RequestError("NOT_FOUND", f"unknown model {name!r}: this server serves "
                                            f"{served}")
        if version not in ("", "1"):
            raise RequestError("NOT_FOUND", f"model {name!r} has no version {version!r}: "
                                            "its only version is '1'")
        return runtime

    def server_live(self, request: Any) -> Any:
        """ServerLive: the process is up."""
        return self.M.ServerLiveResponse(live=True)

    def server_ready(self, request: Any) -> Any:
        """ServerReady: every model is loaded (they load before the server listens)."""
        return self.M.ServerReadyResponse(ready=True)

    def model_ready(self, request: Any) -> Any:
        """ModelReady: false for an unknown model or version."""
        ready = request.name in self.models and request.version in ("", "1")
        return self.M.ModelReadyResponse(ready=ready)

    def server_metadata(self, request: Any) -> Any:
        """ServerMetadata: name, version and the protocol extensions served."""
        return self.M.ServerMetadataResponse(name="specnet", version=self.version,
                                             extensions=["model_configuration"])

    def model_metadata(self, request: Any) -> Any:
        """ModelMetadata: inputs and outputs with datatypes and shapes (-1: any rows)."""
        runtime = self._model(request.name, request.version)
        art = runtime.artifact
        meta = self.M.ModelMetadataResponse(name=request.name, versions=["1"],
                                            platform="onnxruntime_onnx")
        meta.inputs.add(name=art.input_name, datatype="FP32", shape=[-1, *art.input_shape])
        meta.outputs.add(name=art.output_name, datatype="FP32",
                         shape=[-1, *art.output_shape])
        return meta

    def model_config(self, request: Any) -> Any:
        """ModelConfig: the Triton model configuration of the model (see deploy.triton)."""
        from ..deploy.triton import model_config

        runtime = self._model(request.name, request.version)
        config = model_config(runtime, max_batch_size=self.limits.max_rows)
        config.name = request.name
        return self.M.ModelConfigResponse(config=config)

    def model_infer(self, request: Any) -> Any:
        """ModelInfer: one input tensor in, the model's output in raw_output_contents."""
        runtime = self._model(request.model_name, request.model_version)
        art = runtime.artifact
        for out in request.outputs:
            if out.name != art.output_name:
                _bad(f"unknown output {out.name!r}: this model's output is "
                     f"{art.output_name!r}")
        X = decode_input(runtime, request, self.limits)
        out = runtime.run(X)
        answer = self.M.ModelInferResponse(model_name=request.model_name, model_version="1",
                                           id=request.id)
        answer.outputs.add(name=art.output_name, datatype="FP32", shape=list(out.shape))
        answer.raw_output_contents.append(out.astype("<f4", copy=False).tobytes())
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
        except RequestError as exc:
            context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
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


def open_models(model: str | Path, *, threads: int | None = None,
                allow_unverified: bool = False) -> dict[str, Runtime]:
    """name -> Runtime of an exported model (folder or model.onnx), or of every model in a
    Triton model repository (`specnet export MODEL --target triton -o DIR`). An unverified
    model is refused unless `allow_unverified`, as `specnet serve` does."""
    from ..deploy.triton import is_repository, repository_models

    path = Path(model)
    paths = repository_models(path) if is_repository(path) else {"": path}
    models: dict[str, Runtime] = {}
    for folder, file in paths.items():
        runtime = Runtime(file, threads=threads)
        name = folder or runtime.artifact.name  # a repository serves its folder names
        problem = runtime.artifact.verification_problem()
        if problem and not allow_unverified:
            raise SpecnetError(f"refusing to serve: {problem}; rebuild it with `specnet build` "
                               "/ `specnet export`, or pass --allow-unverified to serve it "
                               "anyway")
        models[name] = runtime
    return models


def serve_model(model: str | Path | Runtime, *, host: str = "127.0.0.1", port: int = 0,
                threads: int | None = None, limits: GrpcLimits | None = None,
                allow_unverified: bool = False) -> GrpcServer:
    """Open an exported model or a Triton model repository of several (`open_models`) and
    `start` serving it."""
    _grpc()  # a missing extra is reported before the model is opened
    if isinstance(model, Runtime):
        models = {model.artifact.name: model}
    else:
        models = open_models(model, threads=threads, allow_unverified=allow_unverified)
    from .. import __version__

    return start(models, host=host, port=port, limits=limits, version=__version__)
