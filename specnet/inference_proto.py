"""Open Inference Protocol (gRPC) and Triton model-config messages, declared in code.

The wire contract of `GRPCInferenceService` is Triton's `grpc_service.proto` and
`model_config.proto` (package `inference`; KServe's v2 gRPC protocol is the same messages).
Instead of vendoring generated `_pb2` modules, the subset specnet uses is declared here
field by field (same names, numbers and types, so the bytes on the wire and the text
format are Triton's) and built into a PRIVATE descriptor pool:

- no code generator (protoc / grpcio-tools) at build time, no generated files;
- the full names stay Triton's (`inference.ModelInferRequest`), yet they never collide
  with tritonclient's or kserve's copies registered in protobuf's default pool, so the
  server, `tritonclient.grpc` and `kserve` can live in one process;
- fields that are not declared (statistics, shared memory, parameters) are kept by
  protobuf as unknown fields and ignored: a full Triton client talks to it unchanged.

Only protobuf is needed (the `grpc` extra brings it; `onnx` does too).
"""

from __future__ import annotations

from typing import Any

from .errors import SpecnetError

PACKAGE = "inference"
SERVICE = "inference.GRPCInferenceService"

# (name, number, type, repeated, message/enum type name); types are protobuf's TYPE_* names.
_Field = tuple[str, int, str, bool, str]

_INFER_CONTENTS: list[_Field] = [
    ("bool_contents", 1, "BOOL", True, ""),
    ("int_contents", 2, "INT32", True, ""),
    ("int64_contents", 3, "INT64", True, ""),
    ("uint_contents", 4, "UINT32", True, ""),
    ("uint64_contents", 5, "UINT64", True, ""),
    ("fp32_contents", 6, "FLOAT", True, ""),
    ("fp64_contents", 7, "DOUBLE", True, ""),
    ("bytes_contents", 8, "BYTES", True, ""),
]

_TENSOR: list[_Field] = [
    ("name", 1, "STRING", False, ""),
    ("datatype", 2, "STRING", False, ""),
    ("shape", 3, "INT64", True, ""),
    ("contents", 5, "MESSAGE", False, "InferTensorContents"),
]

_NAME_VERSION: list[_Field] = [("name", 1, "STRING", False, ""),
                               ("version", 2, "STRING", False, "")]

# message name -> (fields, nested messages {name: fields})
_MESSAGES: dict[str, tuple[list[_Field], dict[str, list[_Field]]]] = {
    # grpc_service.proto
    "ServerLiveRequest": ([], {}),
    "ServerLiveResponse": ([("live", 1, "BOOL", False, "")], {}),
    "ServerReadyRequest": ([], {}),
    "ServerReadyResponse": ([("ready", 1, "BOOL", False, "")], {}),
    "ModelReadyRequest": (_NAME_VERSION, {}),
    "ModelReadyResponse": ([("ready", 1, "BOOL", False, "")], {}),
    "ServerMetadataRequest": ([], {}),
    "ServerMetadataResponse": ([("name", 1, "STRING", False, ""),
                                ("version", 2, "STRING", False, ""),
                                ("extensions", 3, "STRING", True, "")], {}),
    "ModelMetadataRequest": (_NAME_VERSION, {}),
    "ModelMetadataResponse": ([
        ("name", 1, "STRING", False, ""),
        ("versions", 2, "STRING", True, ""),
        ("platform", 3, "STRING", False, ""),
        ("inputs", 4, "MESSAGE", True, "ModelMetadataResponse.TensorMetadata"),
        ("outputs", 5, "MESSAGE", True, "ModelMetadataResponse.TensorMetadata"),
    ], {"TensorMetadata": _TENSOR[:3]}),
    "InferTensorContents": (_INFER_CONTENTS, {}),
    "ModelInferRequest": ([
        ("model_name", 1, "STRING", False, ""),
        ("model_version", 2, "STRING", False, ""),
        ("id", 3, "STRING", False, ""),
        ("inputs", 5, "MESSAGE", True, "ModelInferRequest.InferInputTensor"),
        ("outputs", 6, "MESSAGE", True, "ModelInferRequest.InferRequestedOutputTensor"),
        ("raw_input_contents", 7, "BYTES", True, ""),
    ], {"InferInputTensor": _TENSOR,
        "InferRequestedOutputTensor": [("name", 1, "STRING", False, "")]}),
    "ModelInferResponse": ([
        ("model_name", 1, "STRING", False, ""),
        ("model_version", 2, "STRING", False, ""),
        ("id", 3, "STRING", False, ""),
        ("outputs", 5, "MESSAGE", True, "ModelInferResponse.InferOutputTensor"),
        ("raw_output_contents", 6, "BYTES", True, ""),
    ], {"InferOutputTensor": _TENSOR}),
    "ModelConfigRequest": (_NAME_VERSION, {}),
    "ModelConfigResponse": ([("config", 1, "MESSAGE", False, "ModelConfig")], {}),
    # model_config.proto
    "ModelTensorReshape": ([("shape", 1, "INT64", True, "")], {}),
    "ModelInput": ([
        ("name", 1, "STRING", False, ""),
        ("data_type", 2, "ENUM", False, "DataType"),
        ("dims", 4, "INT64", True, ""),
        ("reshape", 5, "MESSAGE", False, "ModelTensorReshape"),
    ], {}),
    "ModelOutput": ([
        ("name", 1, "STRING", False, ""),
        ("data_type", 2, "ENUM", False, "DataType"),
        ("dims", 3, "INT64", True, ""),
        ("label_filename", 4, "STRING", False, ""),
        ("reshape", 5, "MESSAGE", False, "ModelTensorReshape"),
    ], {}),
    "ModelDynamicBatching": ([
        ("preferred_batch_size", 1, "INT32", True, ""),
        ("max_queue_delay_microseconds", 2, "UINT64", False, ""),
        ("preserve_ordering", 3, "BOOL", False, ""),
    ], {}),
    "ModelInstanceGroup": ([
        ("name", 1, "STRING", False, ""),
        ("count", 2, "INT32", False, ""),
        ("kind", 4, "ENUM", False, "ModelInstanceGroup.Kind"),
    ], {}),
    "ModelConfig": ([
        ("name", 1, "STRING", False, ""),
        ("platform", 2, "STRING", False, ""),
        ("max_batch_size", 4, "INT32", False, ""),
        ("input", 5, "MESSAGE", True, "ModelInput"),
        ("output", 6, "MESSAGE", True, "ModelOutput"),
        ("instance_group", 7, "MESSAGE", True, "ModelInstanceGroup"),
        ("default_model_filename", 8, "STRING", False, ""),
        ("dynamic_batching", 11, "MESSAGE", False, "ModelDynamicBatching"),
        ("backend", 17, "STRING", False, ""),
    ], {}),
}

DATA_TYPES = ("TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32",
              "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64",
              "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING", "TYPE_BF16")
"""model_config.proto's DataType enum, in number order."""

_ENUMS: dict[str, list[str]] = {
    "DataType": list(DATA_TYPES),
    "ModelInstanceGroup.Kind": ["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"],
}


def _file_proto() -> Any:
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="specnet/inference.proto", package=PACKAGE,
                                              syntax="proto3")
    messages: dict[str, Any] = {}

    def fill(msg: Any, fields: list[_Field]) -> None:
        for name, number, kind, repeated, type_name in fields:
            field = msg.field.add(name=name, number=number, type=getattr(fdp, f"TYPE_{kind}"),
                                  label=fdp.LABEL_REPEATED if repeated else fdp.LABEL_OPTIONAL)
            if type_name:
                field.type_name = f".{PACKAGE}.{type_name}"

    for name, (fields, nested) in _MESSAGES.items():
        msg = file.message_type.add(name=name)
        messages[name] = msg
        fill(msg, fields)
        for sub, sub_fields in nested.items():
            fill(msg.nested_type.add(name=sub), sub_fields)
    for name, values in _ENUMS.items():
        owner, _, short = name.rpartition(".")
        enum = (messages[owner].enum_type if owner else file.enum_type).add(name=short)
        for number, value in enumerate(values):
            enum.value.add(name=value, number=number)
    return file


def text_format() -> Any:
    """protobuf's text_format module (the config.pbtxt codec); SpecnetError without it."""
    try:
        from google.protobuf import text_format as module
    except ImportError:
        raise SpecnetError("protobuf is not installed: pip install 'specnet[grpc]'") from None
    return module


class _Messages:
    """Message classes by short name (`M.ModelInferRequest`), built on first use."""

    def __init__(self) -> None:
        self._classes: dict[str, Any] | None = None
        self.pool: Any = None

    def _build(self) -> dict[str, Any]:
        try:
            from google.protobuf import descriptor_pool, message_factory
        except ImportError:
            raise SpecnetError("protobuf is not installed: pip install 'specnet[grpc]'") from None
        pool = descriptor_pool.DescriptorPool()
        pool.Add(_file_proto())
        classes = {}
        for name in _MESSAGES:
            classes[name] = message_factory.GetMessageClass(
                pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        self.pool = pool
        return classes

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._classes is None:
            self._classes = self._build()
        try:
            return self._classes[name]
        except KeyError:
            raise AttributeError(name) from None


M = _Messages()
"""The message classes: `M.ModelInferRequest()`, `M.ModelConfig.FromString(data)`."""
