"""Shared pieces of the spec models: the strict base class and shorthand expansion."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Shape = tuple[int, ...]
InitName = Literal[
    "default", "xavier", "xavier_uniform", "xavier_normal", "kaiming", "kaiming_uniform",
    "kaiming_normal", "orthogonal", "normal", "zeros",
]
BiasInit = Literal["default", "zeros"]


def did_you_mean(name: str, options: Iterable[str], cutoff: float = 0.7) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''.

    Close spellings (difflib), a different case, and unique prefixes ('acc' -> 'accuracy')
    all count.
    """
    opts = [str(o) for o in options]
    if not isinstance(name, str) or not name or not opts:
        return ""
    lower = {o.lower(): o for o in opts}
    close = lower.get(name.lower())
    if close is None:
        found = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=cutoff)
        close = lower[found[0]] if found else None
    if close is None and len(name) >= 2:
        prefixed = [o for o in opts if o.lower().startswith(name.lower())]
        close = prefixed[0] if len(prefixed) == 1 else None
    return f" (did you mean {close!r}?)" if close is not None and close != name else ""


class _Flag:
    """A YAML boolean found where a number or a name belongs: no type accepts it."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "true" if self.value else "false"


def _allows_bool(ann: Any) -> bool:
    if ann is bool or ann is Any:
        return True
    return any(_allows_bool(a) for a in get_args(ann) if not isinstance(a, str))


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, values are validated on assignment.

    Numbers must be finite: `.nan` or `.inf` in a spec is an error, not a silent NaN.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True,
                              use_attribute_docstrings=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        # pydantic would read `true` as 1; in a spec that is a slip (YAML's yes/no/on/off),
        # so a boolean where none belongs goes on as a value that fails with its own name.
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            field = cls.model_fields.get(key)
            if field is None or _allows_bool(field.annotation):
                continue
            if isinstance(value, bool):
                out[key] = _Flag(value)
            elif isinstance(value, list) and any(isinstance(v, bool) for v in value):
                out[key] = [_Flag(v) if isinstance(v, bool) else v for v in value]
        return out


class Tagged(Strict):
    """A model picked by a tag field (`type:` or `source:`) that also has a shorthand form.

    `primary` names the field a shorthand scalar fills: `- linear: 16` is
    `{type: linear, units: 16}`; `- relu` is `{type: relu}`. `kind` names the registry
    ('layer', 'loss', ...) in messages and in the tag field's description.
    """

    primary: ClassVar[str | None] = None
    kind: ClassVar[str] = "entry"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Runs before pydantic collects the fields, so every registry entry's tag field
        # (`type: Literal["relu"] = "relu"`) gets a description without repeating it.
        super().__init_subclass__(**kwargs)
        for tag, what in (("type", None), ("source", "data source")):
            value = cls.__dict__.get(tag)
            if isinstance(value, str):
                setattr(cls, tag, Field(value, description=f"Selects the {what or cls.kind} "
                                                           f"{value!r}."))


def expand_shorthand(value: Any, tag: str, registry: dict[str, type[Tagged]]) -> Any:
    """Bring `name`, `{name: x}` and `{name: {...}}` to the full `{tag: name, ...}` form."""
    if isinstance(value, str):
        return {tag: value}
    if isinstance(value, dict) and tag not in value and len(value) == 1:
        ((name, arg),) = value.items()
        if name in registry:
            if isinstance(arg, dict):
                if arg.get(tag, name) != name:
                    return value  # `linear: {type: relu}`: left for validation to reject
                return {**arg, tag: name}
            if arg is None:
                return {tag: name}
            field = registry[name].primary
            if field is not None:
                return {tag: name, field: arg}
    return value
