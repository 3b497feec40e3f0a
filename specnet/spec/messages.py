"""Pydantic validation errors -> located issues a user can act on.

A pydantic error location such as `('model', 2, 'linear', 'units', 'int')` names the
internal tag of a tagged union (`linear`) and the member of a plain union that failed
(`int`). The user wrote `- linear: x` on some line, so the issue should read
`spec.yaml:7:5: model[2].units: must be an integer >= 1 or 'auto', got 'x'`. This module
walks each error location through the raw data and the model annotations to get there.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import Issue
from .base import did_you_mean, expand_shorthand
from .load import Path_, Source, format_path

# ---------------------------------------------------------------- annotations


def _strip(ann: Any) -> Any:
    """`Annotated[X, ...]` and `X | None` -> X (other unions are left alone)."""
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in get_args(ann) if a is not type(None)]
            if len(rest) != 1:
                return ann
            ann = rest[0]
        else:
            return ann


def _tagged(ann: Any) -> tuple[str, dict[str, type[BaseModel]]] | None:
    """(tag field, {name: model}) when `ann` is a discriminated union, else None."""
    origin = get_origin(ann)
    if origin is Annotated:
        base, *meta = get_args(ann)
        for m in meta:
            tag = getattr(m, "discriminator", None)
            if isinstance(tag, str):
                members = [m for m in get_args(_strip(base))
                           if isinstance(m, type) and issubclass(m, BaseModel)]
                return tag, {c.model_fields[tag].default: c for c in members}
        return _tagged(base)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in get_args(ann) if a is not type(None)]
        return _tagged(rest[0]) if len(rest) == 1 else None
    return None


def _model(ann: Any) -> type[BaseModel] | None:
    ann = _strip(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _item(ann: Any, index: int) -> Any:
    """The annotation of element `index` of a list or tuple annotation."""
    ann = _strip(ann)
    args = get_args(ann)
    if get_origin(ann) is list and args:
        return args[0]
    if get_origin(ann) is tuple and args:
        return args[index] if 0 <= index < len(args) and args[-1] is not Ellipsis else args[0]
    return None


def _field_ann(model: type[BaseModel], name: str) -> Any:
    """A field's annotation with its constraints and discriminator put back on."""
    info = model.model_fields[name]
    meta: list[Any] = list(info.metadata)
    if info.discriminator is not None:
        meta.append(info)
    return Annotated[(info.annotation, *meta)] if meta else info.annotation


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _bounds(meta: list[Any]) -> str:
    out = []
    for m in meta:
        for item in [m, *getattr(m, "metadata", [])]:
            for attr, op in _BOUNDS:
                value = getattr(item, attr, None)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    out.append(f"{op} {_num(value)}")
    return " " + " and ".join(out) if out else ""


def _num(value: float) -> str:
    """A bound as the user would write it: 4294967295 stays whole, 0.1 and 1e-05 short."""
    return str(value) if isinstance(value, int) else f"{value:g}"


_PLURAL = {"an integer": "integers", "a number": "numbers", "a string": "strings",
           "a mapping": "mappings"}


def _plural(desc: str) -> str:
    for one, many in _PLURAL.items():
        if desc.startswith(one):
            return many + desc[len(one):]
    return desc


def describe(ann: Any) -> list[str]:
    """What a value of annotation `ann` may be, as alternatives: ['an integer >= 1', "'auto'"]."""
    origin = get_origin(ann)
    args = get_args(ann)
    if origin is Annotated:
        bounds = _bounds(list(args[1:]))
        return [d + bounds if bounds and d in ("an integer", "a number") else d
                for d in describe(args[0])]
    if origin in (typing.Union, types.UnionType):
        return list(dict.fromkeys(d for a in args for d in describe(a)))
    if origin is Literal:
        return [repr(a) for a in args]
    if origin is list:
        return [f"a list of {_plural(' or '.join(describe(args[0])))}" if args else "a list"]
    if origin is tuple:
        parts = [" or ".join(describe(a)) for a in args if a is not Ellipsis]
        if len(set(parts)) == 1 and args[-1] is not Ellipsis:
            return [f"a list of {len(parts)} {_plural(parts[0])}"]
        return [f"a list [{', '.join(parts)}]"]
    simple = {type(None): "null", bool: "true or false", int: "an integer", float: "a number",
              str: "a string", Path: "a file path"}
    if ann in simple:
        return [simple[ann]]
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ["a mapping"]
    return [getattr(ann, "__name__", str(ann))]


def _literals(ann: Any) -> list[str]:
    """The string values a Literal inside `ann` allows."""
    if get_origin(ann) is Literal:
        return [a for a in get_args(ann) if isinstance(a, str)]
    return [v for a in get_args(ann) for v in _literals(a)]


def _either(options: list[str]) -> str:
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]


# ---------------------------------------------------------------- locations


@dataclass
class _Walk:
    display: list[str | int] = field(default_factory=list)  # what the user sees: model[2].units
    raw_path: list[str | int] = field(default_factory=list)  # where it is in the file
    ann: Any = None  # annotation expected at the end of the walk
    raw: Any = None  # the raw value at the end of the walk
    owner: type[BaseModel] | None = None  # the model whose field list holds the last key
    union_at: int | None = None  # index in loc of the first plain-union member label
    union_display: tuple[str | int, ...] = ()
    union_raw_path: tuple[str | int, ...] = ()
    union_ann: Any = None
    union_raw: Any = None


def _walk(data: Any, loc: tuple[Any, ...], kind: str, root: type[BaseModel]) -> _Walk:
    """Follow a pydantic error location through the raw data and the annotations."""
    w = _Walk(ann=root, raw=data)
    scalar: tuple[str | None, Any] | None = None  # inside `- name: value` shorthand
    for i, part in enumerate(loc):
        tagged = _tagged(w.ann)
        if tagged is not None and isinstance(part, str) and part in tagged[1]:
            tag, members = tagged
            raw = w.raw
            scalar = None
            if isinstance(raw, dict) and tag not in raw and len(raw) == 1 and part in raw:
                w.raw_path.append(part)  # shorthand `- name: ...`: point at the name
                arg = raw[part]
                if not isinstance(arg, dict):
                    scalar = (members[part].primary, arg)  # type: ignore[attr-defined]
                w.raw = arg if isinstance(arg, dict) else {}
            else:
                w.raw = expand_shorthand(raw, tag, members)  # type: ignore[arg-type]
            w.ann = members[part]
            continue
        if isinstance(part, int):
            w.display.append(part)
            w.raw_path.append(part)
            w.raw = w.raw[part] if isinstance(w.raw, list) and 0 <= part < len(w.raw) else None
            w.ann = _item(w.ann, part)
            scalar = None
            continue
        model = _model(w.ann)
        is_key = (model is not None and part in model.model_fields) \
            or (isinstance(w.raw, dict) and part in w.raw) \
            or (kind in ("missing", "extra_forbidden") and i == len(loc) - 1)
        if is_key and w.union_at is None:
            w.owner = model
            w.display.append(part)
            if scalar is not None and part == scalar[0]:
                w.raw = scalar[1]  # its position is that of the shorthand name
            else:
                if scalar is None:
                    w.raw_path.append(part)
                w.raw = w.raw.get(part) if isinstance(w.raw, dict) else None
            scalar = None
            w.ann = _field_ann(model, part) if model and part in model.model_fields else None
            continue
        if w.union_at is None:
            # pydantic's label for one member of a plain union (`int`, `literal['auto']`)
            w.union_at = i
            w.union_display = tuple(w.display)
            w.union_raw_path = tuple(w.raw_path)
            w.union_ann = w.ann
            w.union_raw = w.raw
            w.ann = None
            continue
        w.display.append(part)  # inside a union member: keep the key, type unknown
        w.raw = w.raw.get(part) if isinstance(w.raw, dict) else None
    return w


# ---------------------------------------------------------------- messages


def _got(value: Any) -> str:
    """The bad value as the user wrote it: 'x', 3, true, null, [1, 2] (or its kind if long)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, dict | list):
        text = repr(value)
        return text if len(text) <= 40 else ("a mapping" if isinstance(value, dict)
                                              else f"a list of {len(value)} items")
    return repr(value)


def _kind_of(members: dict[str, type[BaseModel]], tag: str) -> str:
    if tag == "source":
        return "data source"
    first = next(iter(members.values()), None)
    return str(getattr(first, "kind", "type"))


def _tag_message(err: dict[str, Any], w: _Walk) -> str | None:
    """Messages for a value that should pick a registry entry by its tag."""
    tagged = _tagged(w.ann)
    if tagged is None:
        return None
    tag, members = tagged
    kind = _kind_of(members, tag)
    names = list(members)
    choose = f"choose from {', '.join(names)}"
    raw = w.raw
    if err["type"] == "union_tag_invalid":
        given = str(err["ctx"]["tag"])
        return f"unknown {kind} {given!r}{did_you_mean(given, names)}; {choose}"
    if err["type"] in ("model_attributes_type", "model_type", "dict_type") or (
            err["type"] == "union_tag_not_found" and not isinstance(raw, dict)):
        example = next((n for n, c in members.items() if not any(
            f.is_required() for k, f in c.model_fields.items() if k != tag)), names[0])
        article = "an" if kind[0] in "aeiou" else "a"
        return (f"must be {article} {kind}: a name like `{example}`, `{example}: {{...}}`, or a "
                f"mapping with `{tag}:`, got {type(raw).__name__}")
    if err["type"] == "union_tag_not_found":
        if isinstance(raw, dict) and len(raw) == 1:
            ((name, arg),) = raw.items()
            if name in members and isinstance(arg, dict) and tag in arg:
                return (f"`{name}:` holds `{tag}: {arg[tag]!r}`; give the {kind} once, "
                        f"as `{name}: {{...}}` or `{{{tag}: {name}, ...}}`")
            if name in members:
                return (f"{kind} {name!r} takes no shorthand value (got {_got(arg)}); write "
                        f"just `{name}`, or `{name}: {{field: value}}`")
            if not any(name in c.model_fields for c in members.values()):
                return f"unknown {kind} {name!r}{did_you_mean(str(name), names)}; {choose}"
        named = [k for k in raw if k in members] if isinstance(raw, dict) else []
        if len(named) > 1:  # `- linear: 8` and `relu:` indented as one item
            got = ", ".join(repr(n) for n in named[:-1]) + f" and {named[-1]!r}"
            return f"one {kind} per item, got {got}; start each with its own `- `"
        if named:  # `{block: [...], repeat: 2}`: shorthand plus other keys
            name = named[0]
            others = [str(k) for k in raw if k != name]
            arg, primary = raw[name], members[name].primary  # type: ignore[attr-defined]
            fields = list(arg) if isinstance(arg, dict) else [primary] \
                if primary and arg is not None else []
            keys = dict.fromkeys([*fields, *others])
            full = ", ".join([f"{tag}: {name}", *(f"{k}: ..." for k in keys)])
            return (f"`{name}:` shorthand cannot take other keys (got {', '.join(others)}); "
                    f"write the full form `{{{full}}}`")
        return f"missing `{tag}`: {choose}"
    return None


def _message(err: dict[str, Any], w: _Walk) -> str:
    kind: str = err["type"]
    ctx = err.get("ctx") or {}
    bad = err.get("input")
    tag_msg = _tag_message(err, w)
    if tag_msg is not None:
        return tag_msg
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        fields = [f for f in (w.owner.model_fields if w.owner else {})
                  if f not in ("type", "source")]
        allowed = f"; allowed: {', '.join(sorted(fields))}" if fields else ""
        return f"unknown key {key!r}{did_you_mean(key, fields)}{allowed}"
    if kind == "missing" and isinstance(err["loc"][-1], int):
        return "missing: the list is too short"
    if kind == "missing":
        name = str(err["loc"][-1])
        info = w.owner.model_fields.get(name) if w.owner else None
        what = f" ({info.description.splitlines()[0].rstrip('.')})" \
            if info is not None and info.description else ""
        return f"required field is missing{what}"
    simple = {
        "int_parsing": "must be an integer", "int_type": "must be an integer",
        "int_from_float": "must be a whole number", "float_parsing": "must be a number",
        "float_type": "must be a number", "bool_parsing": "must be true or false",
        "bool_type": "must be true or false", "string_type": "must be a string",
        "list_type": "must be a list", "tuple_type": "must be a list",
        "finite_number": "must be a finite number", "dict_type": "must be a mapping",
        "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
        "path_type": "must be a file path",
    }
    if kind in simple:
        msg = simple[kind]
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "greater than"),
              "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}[kind]
        limit = ctx.get(op[0])
        msg = f"must be {op[1]} {_num(limit) if isinstance(limit, int | float) else limit}"
    elif kind == "literal_error":
        options = [str(a) for a in get_args(_strip(w.ann)) if isinstance(a, str)]
        msg = f"must be {ctx.get('expected', 'one of the listed values')}" + (
            did_you_mean(bad, options) if isinstance(bad, str) else "")
    elif kind in ("too_short", "too_long"):
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        unit = "item" if n == 1 else "items"
        msg = f"must have {'at least' if kind == 'too_short' else 'at most'} {n} {unit}"
    elif kind == "string_pattern_mismatch":
        msg = f"must match the pattern {ctx.get('pattern')}"
    elif kind in ("string_too_short", "string_too_long"):
        n = ctx.get("min_length" if kind == "string_too_short" else "max_length")
        msg = f"must have {'at least' if kind == 'string_too_short' else 'at most'} {n} " \
              "characters"
    else:
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        msg = msg[:1].lower() + msg[1:] if msg[:2] != msg[:2].upper() else msg
        if kind == "value_error":
            return msg
    if kind.endswith("_type") or kind in ("model_attributes_type",):
        return f"{msg}, got {type(bad).__name__ if isinstance(bad, dict | list) else _got(bad)}"
    return f"{msg}, got {_got(bad)}"


def issues_from(exc: ValidationError, source: Source, root: type[BaseModel]) -> list[Issue]:
    """Every pydantic error of `exc` as a located Issue in `source`, sorted by position.

    Errors in the members of a plain union (`units: int | 'auto'`) are merged into one
    issue saying what the value may be, unless one member got far enough to say more.
    """
    out: list[Issue] = []
    seen: set[tuple[Path_, str]] = set()
    unions: dict[tuple[Any, ...], list[tuple[dict[str, Any], _Walk]]] = {}

    def add(raw_path: Path_, display: Path_, message: str) -> None:
        if (display, message) in seen:
            return
        seen.add((display, message))
        line, col = source.locate(raw_path)
        out.append(Issue(format_path(display), message, source.file, line, col))

    for details in exc.errors(include_url=False):
        err: dict[str, Any] = dict(details)
        w = _walk(source.data, tuple(err["loc"]), err["type"], root)
        if w.union_at is None:
            add(tuple(w.raw_path), tuple(w.display), _message(err, w))
        else:
            unions.setdefault(w.union_display, []).append((err, w))
    for group in unions.values():
        w0 = group[0][1]
        deeper = [(e, w) for e, w in group if len(e["loc"]) > (w.union_at or 0) + 1]
        if isinstance(w0.union_raw, dict | list) and deeper:
            for e, w in deeper:
                add(tuple(w.raw_path), tuple(w.display), _message(e, w))
            continue
        may = describe(w0.union_ann) if w0.union_ann is not None else []
        if not may:
            for e, w in group:
                add(tuple(w.raw_path), tuple(w.display), _message(e, w))
            continue
        hint = did_you_mean(w0.union_raw, _literals(w0.union_ann)) \
            if isinstance(w0.union_raw, str) else ""
        add(w0.union_raw_path, w0.union_display,
            f"must be {_either(may)}{hint}, got {_got(w0.union_raw)}")
    return sorted(out, key=lambda i: (i.line, i.col))
