"""Validate loaded spec data: pydantic errors become located issues, then the cross-field
rules and the shape check run. Every problem is reported in one pass."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..data.sources import SourceInfo
from ..errors import DataError, Issue, SpecError, SpecnetError
from ..layers import Layer, Linear, Softmax, fmt_shape
from ..shapes import LocatedShapeError, Summary, infer
from .base import Shape, did_you_mean
from .load import Path_, Source, load_file
from .messages import issues_from
from .schema import (
    CLASSIFICATION_METRICS,
    LOSSES,
    OPTIMIZERS,
    REGRESSION_LOSSES,
    REGRESSION_METRICS,
    SCHEDULES,
    Spec,
)

LARGE_MODEL_BYTES = 2**30
"""Models bigger than this (weights and buffers as float32) get a warning."""


@dataclass
class Checked:
    """A spec that passed every check, with what the checks learned."""

    spec: Spec
    info: SourceInfo
    summary: Summary
    warnings: list[Issue]
    source: Source | None = None


def validate(source: Source | dict[str, Any]) -> Spec:
    """Validate loaded data as a Spec; raises SpecError listing every located problem."""
    if not isinstance(source, Source):
        source = Source(source)
    context = {"base_dir": source.base_dir}
    try:
        spec = Spec.model_validate(source.data, context=context)
    except ValidationError as exc:
        raise SpecError(issues_from(exc, source, Spec)) from None
    if "name" not in source.data and source.file not in ("<spec>", "<stdin>"):
        stem = Path(source.file).stem
        with contextlib.suppress(ValidationError):
            spec.name = stem
    return spec


# ---------------------------------------------------------------- cross-field rules


def output_width(spec: Spec, info: SourceInfo) -> int | None:
    """The width the output layer must have for this task and data, if known."""
    if spec.task == "binary":
        return 1
    if spec.task == "regression":
        return info.n_targets
    return info.n_classes


def resolve_auto(layers: list[Layer], width: int | None) -> list[Layer]:
    """The layers with `units: auto` replaced by `width` (left alone when unknown)."""
    from ..layers import Block

    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Linear) and layer.units == "auto" and width is not None:
            layer = layer.model_copy(update={"units": width})
        elif isinstance(layer, Block):
            layer = layer.model_copy(update={"layers": resolve_auto(layer.layers, width)})
        out.append(layer)
    return out


def _rules(spec: Spec, info: SourceInfo, loss_given: bool = True
           ) -> list[tuple[Path_, str, str]]:
    """(path, message, severity) for every cross-field rule the spec breaks.

    `loss_given`: the spec names its loss (else the task's default is in use, and
    problems with it are reported at `task`).
    """
    out: list[tuple[Path_, str, str]] = []
    err = lambda path, msg: out.append((path, msg, "error"))  # noqa: E731
    warn = lambda path, msg: out.append((path, msg, "warning"))  # noqa: E731
    loss = spec.loss_name
    loss_path: Path_ = ("loss",) if loss_given else ("task",)
    src = spec.data.source
    if spec.task == "regression" and info.kind == "classification":
        err(("task",), f"task is regression but {src!r} is a classification data set; "
                       f"use task: classification (or binary)")
    if spec.task != "regression" and info.kind == "regression":
        err(("task",), f"task is {spec.task} but {src!r} has continuous targets; "
                       "use task: regression")
    if spec.task != "regression" and info.n_classes is not None and info.n_classes < 2:
        err(("task",), f"{src!r} has one class in its targets, but task {spec.task} needs at "
                       "least 2; check the target column, or use task: regression for numeric "
                       "targets")
    if spec.task == "binary" and info.n_classes is not None and info.n_classes > 2:
        err(("task",), f"task is binary but {src!r} has {info.n_classes} classes; "
                       "use task: classification")
    if spec.task == "regression" and loss not in REGRESSION_LOSSES:
        err(loss_path, f"{loss} is a classification loss but the task is regression; "
                       f"use one of {', '.join(REGRESSION_LOSSES)}")
    if spec.task != "regression" and loss in REGRESSION_LOSSES:
        err(loss_path, f"{loss} is a regression loss but the task is {spec.task}; "
                       f"use {'bce' if spec.task == 'binary' else 'cross_entropy'}")
    if loss == "bce" and spec.task == "classification":
        err(loss_path, "bce takes one logit per row (task: binary); for "
                       f"{info.n_classes or 'n'} classes use cross_entropy")
    if loss == "cross_entropy" and spec.task == "binary":
        err(loss_path, "task binary has one output logit; use bce, or task: classification "
                       "with cross_entropy and 2 output units")
    cw = getattr(spec.loss, "class_weights", None)
    if isinstance(cw, list) and info.n_classes is not None and len(cw) != info.n_classes:
        err(("loss", "class_weights"), f"{len(cw)} class weights for {info.n_classes} classes; "
                                       "give one weight per class, or 'balanced'")
    if spec.data.target_normalize == "standard" and spec.task != "regression":
        err(("data", "target_normalize"), "target_normalize applies to regression only; "
                                          "remove it (or set it to none)")
    last = _last_layer(spec.model)
    if isinstance(last, Softmax) and loss == "cross_entropy":
        warn(("model", len(spec.model) - 1),
             "softmax before cross_entropy applies softmax twice (cross_entropy works on "
             "logits); remove it: the exported model adds softmax to its output itself")
    if loss == "nll" and last.type != "log_softmax":
        err(loss_path, "nll expects log-probabilities: end the model with `- log_softmax`, "
                       "or use cross_entropy on logits")
    if loss == "nll" and spec.task != "classification":
        err(loss_path, "nll is for task: classification")
    if type(last).__name__ == "Sigmoid" and loss == "bce":
        warn(("model", len(spec.model) - 1),
             "sigmoid before bce applies sigmoid twice (bce works on logits); remove it: "
             "the exported model adds sigmoid to its output itself")
    metrics = spec.metric_names
    allowed = REGRESSION_METRICS if spec.task == "regression" else CLASSIFICATION_METRICS
    for i, m in enumerate(spec.training.metrics):
        if m not in allowed:
            err(("training", "metrics", i), f"metric {m!r} does not apply to {spec.task}; "
                                            f"use {', '.join(allowed)}")
    for i, m in enumerate(spec.training.metrics):
        if m == "roc_auc" and spec.task == "classification" and info.n_classes not in (None, 2):
            err(("training", "metrics", i), f"roc_auc is for two classes, {src!r} has "
                                            f"{info.n_classes}; remove it or use task: binary")
    columns = {"loss", "val_loss", *metrics, *(f"val_{m}" for m in metrics)}
    watched: list[tuple[Path_, str]] = []
    if spec.training.early_stopping is not None:
        watched.append((("training", "early_stopping", "monitor"),
                        spec.training.early_stopping.monitor))
    sched = spec.training.schedule
    if sched is not None and sched.type == "plateau":
        watched.append((("training", "schedule", "monitor"), sched.monitor))  # type: ignore[attr-defined]
    for path, name in watched:
        if name not in columns:
            err(path, f"cannot monitor {name!r}{did_you_mean(name, columns)}; "
                      f"choose from {', '.join(sorted(columns))}")
        elif name.startswith("val_") and spec.data.split.validation == 0:
            err(path, f"monitoring {name!r} needs a validation split; set "
                      "data.split.validation above 0 or monitor a training column")
    if spec.input is not None and tuple(spec.input) != info.input_shape and info.input_shape:
        err(("input",), f"input {list(spec.input)} does not match the data's shape "
                        f"{list(info.input_shape)}; remove `input:` (the data's shape is the "
                        "default) or correct it")
    if spec.training.batch_size == 1 and any(l.type == "batchnorm" for l in spec.model):  # noqa: E741
        warn(("training", "batch_size"), "batchnorm with batch_size 1 cannot estimate "
                                         "batch statistics; use a larger batch")
    epochs = spec.training.epochs
    if sched is not None and sched.warmup_epochs >= epochs:
        err(("training", "schedule", "warmup_epochs"),
            f"warm-up of {sched.warmup_epochs} epochs leaves none of the {epochs} training "
            f"epochs; make warmup_epochs smaller than training.epochs")
    if sched is not None and sched.type == "step" and sched.step_size >= epochs:  # type: ignore[attr-defined]
        warn(("training", "schedule", "step_size"),
             f"step_size {sched.step_size} >= epochs {epochs}: the learning rate never "  # type: ignore[attr-defined]
             "decays; use a smaller step_size")
    stop = spec.training.early_stopping
    if stop is not None and stop.patience >= epochs:
        warn(("training", "early_stopping", "patience"),
             f"patience {stop.patience} >= epochs {epochs}: early stopping can never "
             "trigger; lower patience or raise training.epochs")
    return out


def _last_layer(layers: list[Layer]) -> Layer:
    from ..layers import Block

    last = layers[-1]
    return _last_layer(last.layers) if isinstance(last, Block) else last


def _shape_issue(path: Path_, exc: LocatedShapeError) -> tuple[Path_, str]:
    shape = fmt_shape(exc.inp)
    text = str(exc)
    return path, text if shape in text else f"{text} (input to this layer: {shape})"


def _output_issue(spec: Spec, out: Shape, width: int) -> str:
    src = spec.data.source
    shown = fmt_shape(out)
    if spec.task == "binary":
        return (f"the network outputs {shown} but a binary task needs [1] (one logit); make "
                "the last layer `linear: 1` or `linear: auto`, or use task: classification "
                "with cross_entropy")
    what = f"{width} classes" if spec.task == "classification" else \
        f"{width} target{'s' if width != 1 else ''}"
    return (f"the network outputs {shown} but {src!r} has {what}, so it needs [{width}]; make "
            f"the last layer `linear: {width}` or `linear: auto`")


def as_spec(obj: Any, caller: str) -> tuple[Spec, Source | None]:
    """(Spec, its Source) from a Spec, a spec file path (str or Path) or a dict of spec
    data; SpecnetError naming `caller` and the type it got otherwise."""
    if isinstance(obj, Spec):
        return obj, None
    if isinstance(obj, str | os.PathLike):
        src = load_file(Path(obj))
        return validate(src), src
    if isinstance(obj, dict):
        src = Source(obj)
        return validate(src), src
    raise SpecnetError(f"{caller}: expected a Spec, a spec file path or a dict of spec data, "
                       f"got {type(obj).__name__} {_short_repr(obj)}")


def _short_repr(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def check(spec: Spec | str | Path | dict[str, Any], source: Source | None = None) -> Checked:
    """Run the cross-field rules and the shape check; raises SpecError on any error.

    `spec`: a Spec, a spec file path or a dict of spec data. Warnings (double softmax, ...)
    come back in `Checked.warnings`, or with the errors.
    """
    if not isinstance(spec, Spec):
        spec, loaded = as_spec(spec, "specnet.check")
        source = source or loaded
    src = source or Source({})
    try:
        info = spec.data.info()
    except DataError as exc:
        # Locate the error at the file it names (`images` or `labels`, say), else at the
        # source's first file field, else at `source`.
        files = [(name, str(v)) for name, v in spec.data if isinstance(v, Path)]
        field = next((name for name, v in files if str(exc).startswith(v + ":")),
                     files[0][0] if files else "source")
        raise SpecError([src.issue(("data", field), str(exc))]) from None
    loss_given = not isinstance(src.data, dict) or not src.data or \
        src.data.get("loss") is not None
    rules = _rules(spec, info, loss_given)
    issues = [src.issue(p, m, s) for p, m, s in rules]
    input_shape: Shape = tuple(spec.input) if spec.input else info.input_shape
    width = output_width(spec, info)
    # A task that does not fit the data leaves `units: auto` unsized; the task error says
    # why, so a stand-in width lets the shape check go on without a second, vaguer error.
    task_error = any(p == ("task",) and s == "error" for p, _, s in rules)
    summary = Summary(input_shape, [])
    try:
        rows = infer(resolve_auto(spec.model, 1 if width is None and task_error else width),
                     input_shape)
        summary = Summary(input_shape, rows)
        if width is not None and summary.output_shape != (width,):
            issues.append(src.issue(("model", len(spec.model) - 1),
                                    _output_issue(spec, summary.output_shape, width)))
        from ..budget import spec_issues

        issues += [src.issue(p, m) for p, m in spec_issues(spec, info, summary)]
        if summary.size_bytes > LARGE_MODEL_BYTES:
            issues.append(src.issue(("model",), f"the model holds {summary.trainable:,} "
                                                f"parameters ({summary.size_bytes / 2**30:.1f} "
                                                "GiB as float32); check the layer widths",
                                    "warning"))
    except LocatedShapeError as exc:
        issues.append(src.issue(*_shape_issue(exc.path, exc)))
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise SpecError(sorted(issues, key=lambda i: (i.line, i.col)))
    return Checked(spec, info, summary, issues, source)


def load_spec(path: str | Path) -> Checked:
    """Load, validate and check a spec file in one step."""
    source = load_file(path)
    return check(validate(source), source)


__all__ = ["LOSSES", "OPTIMIZERS", "SCHEDULES", "Checked", "check", "did_you_mean", "load_spec",
           "validate"]
