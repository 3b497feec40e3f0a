"""Shared pieces of the spec models: the strict base class and shorthand expansion."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Shape = tuple[int, ...]
InitName = Literal[
    "default", "xavier", "xavier_uniform", "xavier_normal", "kaiming", "kaiming_uniform",
    "kaiming_normal", "orthogonal", "normal", "zeros",
]
BiasInit = Literal["default", "zeros"]


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True,
                              use_attribute_docstrings=True)


class Tagged(Strict):
    """A model picked by a tag field (`type:` or `source:`) that also has a shorthand form.

    `primary` names the field a shorthand scalar fills: `- linear: 16` is
    `{type: linear, units: 16}`; `- relu` is `{type: relu}`.
    """

    primary: ClassVar[str | None] = None


def expand_shorthand(value: Any, tag: str, registry: dict[str, type[Tagged]]) -> Any:
    """Bring `name`, `{name: x}` and `{name: {...}}` to the full `{tag: name, ...}` form."""
    if isinstance(value, str):
        return {tag: value}
    if isinstance(value, dict) and tag not in value and len(value) == 1:
        ((name, arg),) = value.items()
        if name in registry:
            if isinstance(arg, dict):
                return {tag: name, **arg}
            if arg is None:
                return {tag: name}
            field = registry[name].primary
            if field is not None:
                return {tag: name, field: arg}
    return value
