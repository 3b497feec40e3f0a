"""Export a trained network to one self-contained, verified model.onnx and its folder.

The exported graph is `InferenceModel`: raw features -> fitted input scaling -> network ->
output head (softmax probabilities, sigmoid P(class 1), or values in target units), so a
caller never has to know how the model was trained. The folder is written through
`atomic_dir`: it appears complete or not at all, and a failed export (including a failed
verification) leaves an existing folder as it was.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import platform
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import export_raw
from .artifact import FILES, INPUT_NAME, OWNED_FILES, Artifact, metadata_props, output_name
from .errors import ExportError
from .io import atomic_dir, finite, strict_json
from .spec.schema import Spec
from .verify import (
    Reference,
    onnx_reference,
    random_rows,
    small_batches_on_one_thread,
    torch_reference,
    verify,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .data.prepare import Prepared, Scaler
    from .trainer import Run

RANDOM_ROWS = 1024
"""Random rows used by the verification, besides the test split."""


def _inference_model_class() -> type[nn.Module]:
    import torch
    from torch import nn

    class InferenceModel(nn.Module):
        """Raw rows (batch, *input_shape) -> user-facing outputs.

        classification: (batch, classes) softmax; binary: (batch,) sigmoid of the logit;
        regression: (batch, targets) with the target scaling undone.
        """

        x_offset: torch.Tensor
        x_scale: torch.Tensor
        y_offset: torch.Tensor
        y_scale: torch.Tensor

        def __init__(self, net: nn.Module, task: str, x_offset: np.ndarray,
                     x_scale: np.ndarray, y_offset: np.ndarray | None,
                     y_scale: np.ndarray | None) -> None:
            super().__init__()
            self.net = net
            self.task = task
            self.scale_x = not (np.all(x_offset == 0) and np.all(x_scale == 1))
            self.scale_y = y_offset is not None and y_scale is not None and not (
                np.all(y_offset == 0) and np.all(y_scale == 1))
            self.register_buffer("x_offset", torch.as_tensor(x_offset, dtype=torch.float32))
            self.register_buffer("x_scale", torch.as_tensor(x_scale, dtype=torch.float32))
            self.register_buffer("y_offset", torch.as_tensor(
                y_offset if y_offset is not None else 0.0, dtype=torch.float32))
            self.register_buffer("y_scale", torch.as_tensor(
                y_scale if y_scale is not None else 1.0, dtype=torch.float32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.scale_x:
                x = (x - self.x_offset) / self.x_scale  # same arithmetic as Scaler.transform
            z = self.net(x)
            if self.task == "classification":
                return torch.softmax(z, dim=1)  # (batch, classes)
            if self.task == "binary":
                return torch.sigmoid(z.reshape(z.shape[0]))  # (batch, 1) -> (batch,)
            if self.scale_y:
                z = z * self.y_scale + self.y_offset  # same arithmetic as Scaler.inverse
            return z

    return InferenceModel


def inference_model(spec: Spec, net: nn.Module, x_scaler: Scaler,
                    y_scaler: Scaler | None = None) -> nn.Module:
    """Wrap a trained network with its fitted scaling and the task's output head (eval mode).

    The network itself is shared, not copied.
    """
    cls = _inference_model_class()
    y_off = y_scaler.offset if y_scaler is not None else None
    y_sc = y_scaler.scale if y_scaler is not None else None
    model = cls(net, spec.task, x_scaler.offset, x_scaler.scale, y_off, y_sc)
    return model.eval()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter: torch / onnxscript log records below ERROR (graph
    dumps, torchvision notices) and one torch-internal FutureWarning."""
    import torch  # noqa: F401 - registers torch's loggers before they are looked up

    names = [n for n in logging.root.manager.loggerDict
             if n.split(".")[0] in ("torch", "onnxscript", "onnx_ir")]
    loggers = [logging.getLogger(n) for n in ("torch", "onnxscript", *names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        # On failure torch.export print()s graph dumps to stderr; the error says enough.
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            # torch 2.13's exporter deep-copies pytree LeafSpec objects, which warns about its
            # own deprecation; nothing a user can act on.
            warnings.filterwarnings("ignore", category=FutureWarning,
                                    message=r".*isinstance\(treespec, LeafSpec\).*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def to_onnx(model: nn.Module, input_shape: tuple[int, ...], *, opset: int, task: str,
            example: np.ndarray | None = None) -> Any:
    """Export `model` with torch's dynamo exporter; returns the checked onnx.ModelProto.

    The batch axis is dynamic (exported from an example batch of 2 rows); weights are inside
    the proto (no external data).
    """
    import onnx
    import torch

    if example is None:
        example = np.zeros((2, *input_shape), np.float32)
    x = torch.from_numpy(np.ascontiguousarray(example[:2], dtype=np.float32))
    if len(x) < 2:
        x = x.repeat(2, *([1] * len(input_shape)))
    model.eval()
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                model, (x,), dynamo=True, input_names=[INPUT_NAME],
                output_names=[output_name(task)], opset_version=opset,
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}},
                external_data=False, verbose=False, report=False)
    except Exception as exc:  # the exporter raises many types; say what failed and why
        raise ExportError(_export_failure(exc)) from None
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise ExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    _check(proto, input_shape)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported model does not pass onnx.checker: {exc}") from None
    return proto


def _export_failure(exc: BaseException) -> str:
    """One readable paragraph from the exporter's long, colourised error."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(root)).strip()
    first = text.splitlines()[0] if text else ""
    where = re.search(r'File "([^"]+)", line (\d+), in (\w+)', re.sub(
        r"\x1b\[[0-9;]*m", "", str(exc)))
    at = f" (at {where.group(1)}:{where.group(2)} in {where.group(3)})" if where else ""
    return (f"torch.onnx.export failed: {type(root).__name__}: {first}{at}; every layer in "
            "the registry exports, so this is a bug: please report it with the spec")


def _check(proto: Any, input_shape: tuple[int, ...]) -> None:
    """The interface we promise: one input, a symbolic batch axis, no external data."""
    from onnx.external_data_helper import uses_external_data

    inputs = proto.graph.input
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise ExportError(f"expected one input {INPUT_NAME!r}, got "
                          f"{[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    if not dims or not dims[0].dim_param:
        raise ExportError("the exported model's batch axis is not dynamic")
    if any(uses_external_data(t) for t in proto.graph.initializer):
        raise ExportError("the exported model keeps weights in external data")


def versions() -> dict[str, str]:
    """Versions of the libraries that made the artifact."""
    import onnx
    import onnxruntime
    import torch

    from . import __version__

    return {"specnet": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _target_names(spec: Spec, width: int) -> list[str]:
    target = getattr(spec.data, "target", None)
    if isinstance(target, str) and width == 1:
        return [target]
    return ["value"] if width == 1 else [f"value_{i}" for i in range(width)]


def _target_column(spec: Spec) -> str:
    """The target column's name in the training data ('target' for a built-in set)."""
    target = getattr(spec.data, "target", None)
    return target if isinstance(target, str) else "target"


@dataclass
class Exported:
    """Where an export went and what its verification said."""

    folder: Path
    model_path: Path
    artifact: Artifact
    report: dict[str, Any]
    files: list[str] = field(default_factory=list)


def verification_data(prepared: Prepared, seed: int) -> dict[str, np.ndarray]:
    """Raw rows to verify on: the test split (or validation, or train when it is empty),
    and RANDOM_ROWS random rows around the training distribution."""
    x = prepared.x_scaler
    splits = [(name, X) for name, X in (("test", prepared.X_test),
                                         ("validation", prepared.X_val),
                                         ("train", prepared.X_train)) if len(X)]
    name, X = splits[0]
    from .data.stream import head

    X = head(X)  # a streamed split: its first rows
    real = x.inverse(X) if x.kind != "none" else X.astype(np.float32)
    return {name: real, "random": random_rows(x.offset, x.scale, RANDOM_ROWS, seed)}


def export_model(spec: Spec, net: nn.Module, prepared: Prepared, out: str | Path, *,
                 metrics: dict[str, Any] | None = None,
                 history: list[dict[str, float]] | None = None,
                 run_dir: Path | None = None, reference: Reference | None = None) -> Exported:
    """Export, verify and write the artifact folder `out` (atomically).

    net: the trained nn.Sequential (its weights are exported as they are).
    reference: the torch side of the verification, raw rows -> user outputs (default: the
    wrapped `net` run eagerly). run_dir: the run folder, whose history.csv and
    learning_curve.png are copied when present. Raises ExportError, or VerificationError when onnxruntime and torch disagree; in both
    cases `out` is left as it was and no temporary folder remains.
    """
    from .spec.resolve import dump_resolved, spec_hash

    out = Path(out)
    wrapper = inference_model(spec, net, prepared.x_scaler, prepared.y_scaler)
    input_shape = tuple(int(d) for d in prepared.input_shape)
    data: dict[str, Any] = verification_data(prepared, spec.seed)
    first = next(iter(data.values()))
    enc = prepared.encoder
    with atomic_dir(out, OWNED_FILES, "a specnet export") as tmp:
        proto = to_onnx(wrapper, input_shape, opset=spec.export.opset, task=spec.task,
                        example=first)
        reference = reference or torch_reference(wrapper)
        if enc is not None and prepared.raw is not None:  # raw columns in, encoder inside
            proto = export_raw.merge(proto, enc, INPUT_NAME)
            data = export_raw.verification_tables(prepared.raw, enc, RANDOM_ROWS, spec.seed)
            first = next(iter(data.values()))
            run_onnx: Any = export_raw.table_runner(proto.SerializeToString(), enc)
            reference = export_raw.encoded_runner(reference, enc)  # type: ignore[assignment]
        else:
            run_onnx = onnx_reference(proto.SerializeToString())
        report = verify(run_onnx, reference, data,
                        task=spec.task, rtol=spec.export.rtol, atol=spec.export.atol)
        probe = run_onnx(first[np.arange(min(7, len(first)))])
        out_shape = tuple(int(d) for d in probe.shape[1:])
        width = math.prod(out_shape) if out_shape else 1
        art = Artifact(
            path=out / FILES["model"], name=spec.name, task=spec.task,
            feature_names=list(prepared.feature_names), class_labels=prepared.class_labels,
            input_shape=input_shape, output_shape=out_shape, output_name=output_name(spec.task),
            target_names=_target_names(spec, width) if spec.task == "regression" else [],
            target=_target_column(spec),
            spec_text=dump_resolved(spec, "yaml", portable=True), spec_sha256=spec_hash(spec),
            verification=finite(report), versions=versions(),
            metrics=finite((metrics or {}).get("test", {})),
            columns=list(prepared.columns or []))
        if enc is not None:
            art.input_layout = "columns"
            art.feature_names = [s.name for s in enc.steps]
            art.input_shape = (len(enc.steps),)
        _set_metadata(proto, art)
        final = proto.SerializeToString()
        # Metadata does not touch the graph; prove it: the final bytes give the same outputs.
        again = (export_raw.table_runner(final, enc) if enc is not None and prepared.raw
                 is not None else onnx_reference(final))
        if not np.array_equal(again(first[np.arange(min(7, len(first)))]), probe):
            raise ExportError("the model changed while its metadata was written")
        _write_folder(tmp, final, spec, net, prepared, report, metrics, history, run_dir)
        if "test" in data:  # evaluation.json and its figures, from the final model's outputs
            from .evaluate import write_split_evaluation

            write_split_evaluation(tmp, art, again(data["test"]), prepared)
        files = sorted(p.name for p in tmp.iterdir())
    return Exported(out, out / FILES["model"], art, report, files)


def _set_metadata(proto: Any, art: Artifact) -> None:
    import onnx

    keep = {p.key: p.value for p in proto.metadata_props if not p.key.startswith("specnet.")}
    onnx.helper.set_model_props(proto, {**keep, **metadata_props(art)})
    proto.producer_name = "specnet"
    proto.producer_version = art.versions.get("specnet", "")
    proto.doc_string = (f"specnet model {art.name!r} ({art.task}): input {art.input_name!r} "
                        f"float32 [batch, {', '.join(map(str, art.input_shape))}] raw features "
                        f"-> {art.output_name!r}")
    if art.input_layout == "columns":
        proto.doc_string = (f"specnet model {art.name!r} ({art.task}): one input per feature "
                            "column, [batch, 1] float32 (NaN = blank) or string -> "
                            f"{art.output_name!r}")


def _write_folder(tmp: Path, model_bytes: bytes, spec: Spec, net: nn.Module,
                  prepared: Prepared, report: dict[str, Any], metrics: dict[str, Any] | None,
                  history: list[dict[str, float]] | None, run_dir: Path | None) -> None:
    """Every file of the artifact into the (temporary) folder `tmp`."""
    from safetensors.torch import save

    from .spec.resolve import dump_resolved

    (tmp / FILES["model"]).write_bytes(model_bytes)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    (tmp / FILES["weights"]).write_bytes(save(state, metadata={"format": "pt"}))
    (tmp / FILES["spec"]).write_text(dump_resolved(spec, "yaml"), encoding="utf-8")
    (tmp / FILES["preprocessing"]).write_text(
        strict_json(prepared.record(spec.task)), "utf-8")
    (tmp / FILES["verification"]).write_text(
        strict_json(report), "utf-8")
    if metrics is not None:
        (tmp / FILES["metrics"]).write_text(
            strict_json(metrics), "utf-8")
    if history is not None:
        src = run_dir / FILES["history"] if run_dir is not None else None
        if src is not None and src.is_file():
            shutil.copyfile(src, tmp / FILES["history"])
        else:
            from .trainer import history_csv

            (tmp / FILES["history"]).write_text(history_csv(history), "utf-8")
        png = run_dir / FILES["learning_curve"] if run_dir is not None else None
        if png is not None and png.is_file():
            shutil.copyfile(png, tmp / FILES["learning_curve"])
        else:
            from .plot import learning_curve

            es = spec.training.early_stopping
            learning_curve(history, spec.metric_names[0] if spec.metric_names else None,
                           tmp / FILES["learning_curve"], title=spec.name,
                           loss_name=spec.loss_name,
                           best_epoch=(metrics or {}).get("best_epoch"),
                           restored=bool(es and es.restore_best),
                           monitor=es.monitor if es else None)


def export_run(run: Run | str | Path, out: str | Path) -> Exported:
    """Export a trained Run (from `train` or `load_run`, or a finished run folder's path)
    to the folder `out`.

    The torch side of the verification is `predict_torch(run, X)`: the training code's own
    idea of the model's outputs, so the artifact is checked against it.
    """
    import os

    from .trainer import Run, load_run, predict_torch

    if isinstance(run, str | os.PathLike):
        run = load_run(run)
    if not isinstance(run, Run):
        raise ExportError(f"specnet.export_run: expected a Run (from specnet.train or "
                          f"specnet.load_run) or a run folder path, got {type(run).__name__}")

    reference = small_batches_on_one_thread(lambda X: predict_torch(run, X))
    return export_model(run.spec, run.model, run.prepared, out, metrics=run.metrics,
                        history=run.history, run_dir=run.run_dir, reference=reference)
