"""Validate loaded spec data: pydantic errors become located issues, then the cross-field
rules and the shape check run. Every problem is reported in one pass."""

from __future__ import annotations

import contextlib
import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..data.sources import SourceInfo
from ..errors import DataError, Issue, SpecError
from ..layers import Layer, Linear, Softmax
from ..shapes import LocatedShapeError, Summary, infer
from .base import Shape
from .load import Path_, Source, load_file
from .schema import (
    CLASSIFICATION_METRICS,
    LOSSES,
    OPTIMIZERS,
    REGISTRIES,
    REGRESSION_LOSSES,
    REGRESSION_METRICS,
    SCHEDULES,
    Spec,
)

_TAG_FIELDS = {"model": "layer", "layers": "layer", "data": "source", "loss": "loss",
               "optimizer": "optimizer", "schedule": "schedule"}


@dataclass
class Checked:
    """A spec that passed every check, with what the checks learned."""

    spec: Spec
    info: SourceInfo
    summary: Summary
    warnings: list[Issue]
    source: Source | None = None


def did_you_mean(name: str, options: typing.Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------- pydantic -> issues


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types inside Optional / Annotated / Union / list annotations."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for a in get_args(tp) for t in _unwrap(a)]
    return [tp]


def _model_for(raw: Any, tp: Any) -> type[BaseModel] | None:
    """The pydantic model a raw value validates as, resolving tagged unions by tag."""
    models = [t for t in _unwrap(tp) if isinstance(t, type) and issubclass(t, BaseModel)]
    if len(models) <= 1:
        return models[0] if models else None
    for model in models:
        for tag in ("type", "source"):
            field = model.model_fields.get(tag)
            if field is not None and isinstance(raw, dict) and raw.get(tag) == field.default:
                return model
    return None


def _expand(raw: Any, registry: dict[str, Any] | None, tag: str) -> Any:
    from .base import expand_shorthand

    return expand_shorthand(raw, tag, registry) if registry is not None else raw


def _walk(spec_data: Any, loc: tuple[Any, ...]) -> tuple[Path_, type[BaseModel] | None, Any]:
    """Follow a pydantic error location through the raw data.

    Returns the user-facing path (tags of tagged unions dropped), the model that owns
    the last key, and the raw value there.
    """
    path: list[str | int] = []
    model: type[BaseModel] | None = Spec
    raw = spec_data
    field_name: str | None = None
    for part in loc:
        if isinstance(part, int):
            path.append(part)
            raw = raw[part] if isinstance(raw, list) and part < len(raw) else None
            continue
        tagfield = _TAG_FIELDS.get(field_name or "")
        if tagfield:
            registry = REGISTRIES[tagfield]
            tag = "source" if tagfield == "source" else "type"
            expanded = _expand(raw, registry, tag)
            if isinstance(expanded, dict) and expanded.get(tag) == part:
                raw = expanded
                field_name = None
                cls = registry.get(part)
                model = cls if isinstance(cls, type) else None
                continue
        path.append(part)
        if model is not None and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            nxt = raw.get(part) if isinstance(raw, dict) else None
            field_name = part
            inner = [a for t in _unwrap(annotation) for a in (get_args(t) if get_origin(t)
                                                               is list else [t])]
            model = _model_for(nxt, typing.Union[tuple(inner)]) if inner else None  # noqa: UP007
            raw = nxt
        else:
            raw = raw.get(part) if isinstance(raw, dict) else None
    return tuple(path), model, raw


def _owner(spec_data: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose field list an unknown key at `loc` should be checked against."""
    return _walk(spec_data, loc[:-1])[1] if loc else Spec


def _message(err: Any, spec_data: Any) -> tuple[Path_, str]:
    loc = tuple(err["loc"])
    kind = err["type"]
    path, _, _ = _walk(spec_data, loc)
    bad = err.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        owner = _owner(spec_data, loc)
        fields = sorted(owner.model_fields) if owner else []
        hint = did_you_mean(key, fields)
        allowed = f"; allowed: {', '.join(f for f in fields if f not in ('type', 'source'))}" \
            if fields else ""
        return path, f"unknown key {key!r}{hint}{allowed}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = next((p for p in reversed(path) if isinstance(p, str)), "")
        what = _TAG_FIELDS.get(field, "type")
        names = list(REGISTRIES[what]) if what in REGISTRIES else []
        tag = "source" if what == "source" else "type"
        if kind == "union_tag_not_found":
            return path, f"missing `{tag}`: choose one of {', '.join(names)}"
        given = err["ctx"]["tag"]
        return path, (f"unknown {what} {given!r}{did_you_mean(given, names)}; "
                      f"choose from {', '.join(names)}")
    if kind == "missing":
        return path, "required field is missing"
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "model_type" or (kind.endswith("_type") and isinstance(bad, dict | list)):
        return path, f"{msg}, got {type(bad).__name__}"
    if isinstance(bad, str | int | float | bool) or bad is None:
        return path, f"{msg}, got {bad!r}"
    return path, msg


def validate(source: Source | dict[str, Any]) -> Spec:
    """Validate loaded data as a Spec; raises SpecError listing every located problem."""
    if not isinstance(source, Source):
        source = Source(source)
    context = {"base_dir": source.base_dir}
    try:
        spec = Spec.model_validate(source.data, context=context)
    except ValidationError as exc:
        issues = []
        seen = set()
        for err in exc.errors(include_url=False):
            path, message = _message(err, source.data)
            if (path, message) in seen:
                continue
            seen.add((path, message))
            issues.append(source.issue(path, message))
        raise SpecError(sorted(issues, key=lambda i: (i.line, i.col))) from None
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


def _rules(spec: Spec, info: SourceInfo) -> list[tuple[Path_, str, str]]:
    """(path, message, severity) for every cross-field rule the spec breaks."""
    out: list[tuple[Path_, str, str]] = []
    err = lambda path, msg: out.append((path, msg, "error"))  # noqa: E731
    warn = lambda path, msg: out.append((path, msg, "warning"))  # noqa: E731
    loss = spec.loss_name
    loss_path: Path_ = ("loss",) if spec.loss is not None else ("task",)
    src = spec.data.source
    if spec.task == "regression" and info.kind == "classification":
        err(("task",), f"task is regression but {src!r} is a classification data set; "
                       f"use task: classification (or binary)")
    if spec.task != "regression" and info.kind == "regression":
        err(("task",), f"task is {spec.task} but {src!r} has continuous targets; "
                       "use task: regression")
    if spec.task == "binary" and info.n_classes not in (None, 2):
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
        err(("loss", "class_weights"), f"{len(cw)} class weights for {info.n_classes} classes")
    if spec.data.target_normalize != "none" and spec.task != "regression":
        err(("data", "target_normalize"), "target_normalize applies to regression only")
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
    if "roc_auc" in spec.training.metrics and spec.task == "classification" \
            and info.n_classes not in (None, 2):
        err(("training", "metrics"), "roc_auc is for binary tasks")
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
                        f"{list(info.input_shape)}")
    if spec.training.batch_size == 1 and any(l.type == "batchnorm" for l in spec.model):  # noqa: E741
        warn(("training", "batch_size"), "batchnorm with batch_size 1 cannot estimate "
                                         "batch statistics; use a larger batch")
    return out


def _last_layer(layers: list[Layer]) -> Layer:
    from ..layers import Block

    last = layers[-1]
    return _last_layer(last.layers) if isinstance(last, Block) else last


def check(spec: Spec, source: Source | None = None) -> Checked:
    """Run the cross-field rules and the shape check; raises SpecError on any error."""
    src = source or Source({})
    try:
        info = spec.data.info()
    except DataError as exc:
        field = next((f for f in ("path", "images") if hasattr(spec.data, f)), "source")
        raise SpecError([src.issue(("data", field), str(exc))]) from None
    issues = [src.issue(p, m, s) for p, m, s in _rules(spec, info)]
    input_shape: Shape = tuple(spec.input) if spec.input else info.input_shape
    width = output_width(spec, info)
    summary = Summary(input_shape, [])
    try:
        rows = infer(resolve_auto(spec.model, width), input_shape)
        summary = Summary(input_shape, rows)
        out = summary.output_shape
        want = (width,) if width is not None else None
        if want is not None and out != want:
            what = {"binary": "one logit (binary task)",
                    "regression": f"{width} target value(s)",
                    "classification": f"{width} classes"}[spec.task]
            issues.append(src.issue(("model", len(spec.model) - 1),
                                    f"the network outputs {list(out)} but {spec.data.source!r} "
                                    f"needs {list(want)} ({what}); make the last layer "
                                    f"`linear: {width}` or `linear: auto`"))
    except LocatedShapeError as exc:
        issues.append(src.issue(exc.path, f"{exc} (input to this layer: "
                                          f"{_input_of(spec, exc.path, input_shape, width)})"))
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise SpecError(sorted(issues, key=lambda i: (i.line, i.col)))
    return Checked(spec, info, summary, issues, source)


def _input_of(spec: Spec, path: Path_, inp: Shape, width: int | None) -> str:
    """The shape that reaches the top-level layer at `path`, as text."""
    index = path[1] if len(path) > 1 and isinstance(path[1], int) else 0
    if index:
        with contextlib.suppress(LocatedShapeError):
            inp = infer(resolve_auto(spec.model[:index], width), inp)[-1].shape
    return "[" + ", ".join(map(str, inp)) + "]"


def load_spec(path: str | Path) -> Checked:
    """Load, validate and check a spec file in one step."""
    source = load_file(path)
    return check(validate(source), source)


__all__ = ["LOSSES", "OPTIMIZERS", "SCHEDULES", "Checked", "check", "load_spec", "validate"]
