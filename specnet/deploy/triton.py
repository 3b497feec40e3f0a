"""Triton Inference Server target: a model repository entry `<dir>/<name>/`.

Layout (Triton's onnxruntime backend):
  <dir>/<name>/config.pbtxt      ModelConfig in protobuf text format
  <dir>/<name>/1/model.onnx      version 1: the exported model, byte for byte
  <dir>/<name>/labels.txt        class labels, one a line (classification only), named by the
                                 output's `label_filename` for Triton's classification extension

The config is built as a `inference.ModelConfig` message (model_config.proto's names and
numbers, see specnet.inference_proto), written with protobuf's text format, parsed back and
matched against the model's own inputs and outputs as onnxruntime reads them: names,
datatypes, dims without the batch axis, max_batch_size, dynamic batching. Torch-free.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecnetError
from ..io import atomic_dir, atomic_write_text
from ..runtime import Runtime
from ._layout import Layout, check_layout

PLATFORM = "onnxruntime_onnx"
VERSION = "1"
CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
DEFAULT_MAX_BATCH_SIZE = 1024
QUEUE_DELAY_US = 100
"""Dynamic batching: how long Triton may hold a request to batch it with others (µs)."""

MODEL_LAYOUT: Layout = {CONFIG_FILE: None, LABELS_FILE: None, VERSION: {"model.onnx": None}}
"""What one Triton model folder written here holds."""

ORT_TYPES = {
    "tensor(float)": "TYPE_FP32", "tensor(double)": "TYPE_FP64",
    "tensor(float16)": "TYPE_FP16", "tensor(bfloat16)": "TYPE_BF16",
    "tensor(int8)": "TYPE_INT8", "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32", "tensor(int64)": "TYPE_INT64",
    "tensor(uint8)": "TYPE_UINT8", "tensor(uint16)": "TYPE_UINT16",
    "tensor(uint32)": "TYPE_UINT32", "tensor(uint64)": "TYPE_UINT64",
    "tensor(bool)": "TYPE_BOOL", "tensor(string)": "TYPE_STRING",
}
"""onnxruntime tensor type -> model_config.proto DataType."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as Triton sees it: dims exclude the batch axis; a tensor
    that is only [batch] is dims [1] reshaped to [] (Triton's rule for batched models)."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None


def _spec(node: Any, what: str) -> TensorSpec:
    """TensorSpec of an onnxruntime NodeArg (its shape's first axis is the batch)."""
    data_type = ORT_TYPES.get(node.type)
    if data_type is None:
        raise SpecnetError(f"{what} {node.name!r} has type {node.type}, which Triton's "
                           "onnxruntime backend cannot take")
    shape = list(node.shape)
    rest = shape[1:]
    if not shape or isinstance(shape[0], int) or not all(isinstance(d, int) for d in rest):
        raise SpecnetError(f"{what} {node.name!r} has shape {shape}: Triton batching needs a "
                           "dynamic first (batch) axis and fixed other axes")
    if not rest:
        return TensorSpec(node.name, data_type, (1,), ())
    return TensorSpec(node.name, data_type, tuple(int(d) for d in rest), None)


def tensors(runtime: Runtime) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model's inputs and outputs, read from its onnxruntime session."""
    return ([_spec(n, "input") for n in runtime.session.get_inputs()],
            [_spec(n, "output") for n in runtime.session.get_outputs()])


def model_config(runtime: Runtime, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 labels: bool = False) -> Any:
    """The `inference.ModelConfig` message of a served / exported model.

    labels: name LABELS_FILE as the classification output's label file.
    """
    from ..inference_proto import M

    art = runtime.artifact
    inputs, outputs = tensors(runtime)
    config = M.ModelConfig(name=art.name, platform=PLATFORM, max_batch_size=max_batch_size,
                           dynamic_batching=M.ModelDynamicBatching(
                               max_queue_delay_microseconds=QUEUE_DELAY_US),
                           instance_group=[M.ModelInstanceGroup(kind="KIND_CPU", count=1)])
    for t in inputs:
        item = config.input.add(name=t.name, data_type=t.data_type, dims=t.dims)
        if t.reshape is not None:
            item.reshape.SetInParent()  # an empty shape: the tensor is [batch] only
    for t in outputs:
        item = config.output.add(name=t.name, data_type=t.data_type, dims=t.dims)
        if t.reshape is not None:
            item.reshape.SetInParent()
        if labels and _has_labels(runtime) and t.name == art.output_name:
            item.label_filename = LABELS_FILE
    return config


def _has_labels(runtime: Runtime) -> bool:
    art = runtime.artifact
    return (art.task == "classification" and bool(art.class_labels)
            and not any("\n" in str(c) or "\r" in str(c) for c in art.class_labels or []))


def check_config(text: str, runtime: Runtime, config_class: Any = None) -> Any:
    """Parse config.pbtxt text with model_config.proto (`config_class`, default specnet's
    copy of `inference.ModelConfig`) and match it against the model; SpecnetError listing
    every mismatch. Returns the parsed message."""
    from ..inference_proto import M, text_format

    cls = config_class or M.ModelConfig
    codec = text_format()
    try:
        config = codec.Parse(text, cls())
    except codec.ParseError as exc:
        raise SpecnetError(f"{CONFIG_FILE} does not parse as a Triton ModelConfig: {exc}") from None
    enum = cls.DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name[
        "data_type"].enum_type
    problems: list[str] = []
    if config.name != runtime.artifact.name:
        problems.append(f"name {config.name!r} is not the model's {runtime.artifact.name!r}")
    if config.platform != PLATFORM:
        problems.append(f"platform {config.platform!r} is not {PLATFORM!r}")
    if config.max_batch_size < 1:
        problems.append(f"max_batch_size {config.max_batch_size} < 1: batching is off")
    if not config.HasField("dynamic_batching"):
        problems.append("no dynamic_batching")
    want_in, want_out = tensors(runtime)
    for kind, got, want in (("input", config.input, want_in),
                            ("output", config.output, want_out)):
        have = [TensorSpec(t.name, enum.values_by_number[t.data_type].name, tuple(t.dims),
                           tuple(t.reshape.shape) if t.HasField("reshape") else None)
                for t in got]
        if have != want:
            problems.append(f"{kind}s {have} do not match the model's {want}")
    if problems:
        raise SpecnetError(f"{CONFIG_FILE} does not match {runtime.path}:\n"
                           + "\n".join(f"  {p}" for p in problems))
    return config


def check_name(name: str) -> str:
    """`name` when it can be a model repository folder; SpecnetError otherwise."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith("."):
        raise SpecnetError(f"model name {name!r} cannot be a Triton model folder name")
    return name


def write_model(runtime: Runtime, folder: Path, *, max_batch_size: int) -> list[str]:
    """Write one Triton model folder (config, version 1, labels) into the empty `folder`
    and check it; the files written, relative to `folder`."""
    from ..inference_proto import text_format

    config = model_config(runtime, max_batch_size=max_batch_size, labels=True)
    text = text_format().MessageToString(config)
    (folder / VERSION).mkdir()
    model = folder / VERSION / "model.onnx"
    shutil.copyfile(runtime.path, model)
    atomic_write_text(folder / CONFIG_FILE, text)
    files = [CONFIG_FILE, f"{VERSION}/model.onnx"]
    if any(o.label_filename for o in config.output):
        labels = "".join(f"{c}\n" for c in runtime.artifact.class_labels or [])
        atomic_write_text(folder / LABELS_FILE, labels)
        files.append(LABELS_FILE)
    check_config((folder / CONFIG_FILE).read_text("utf-8"), runtime)
    if _sha256(model) != _sha256(runtime.path):
        raise SpecnetError(f"{model}: the copy differs from {runtime.path}")
    return files


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_triton(runtime: Runtime, out: Path, *,
                  max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> tuple[Path, list[str]]:
    """Add the model to the Triton model repository `out` (other models in it are left as
    they are; an earlier `out/<name>/` written here is replaced as a whole).

    Returns the model folder and its files. SpecnetError if `out/<name>` holds other files.
    """
    name = check_name(runtime.artifact.name)
    if out.exists() and not out.is_dir():
        raise SpecnetError(f"{out}: is a file, not a model repository folder; choose another "
                           "output folder (-o)")
    target = out / name
    check_layout(target, MODEL_LAYOUT, "a Triton model")
    with atomic_dir(target) as tmp:
        files = write_model(runtime, tmp, max_batch_size=max_batch_size)
    return target, [f"{name}/{f}" for f in files]
