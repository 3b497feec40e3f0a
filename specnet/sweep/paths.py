"""Dotted paths into spec data: `optimizer.lr`, `model[0].units`, `model__0__units`.

A sweep (and the scikit-learn wrapper) changes a spec by setting values at paths. The
spec may use shorthand (`- linear: 16`, `optimizer: adam`), so each tagged node on the
way is brought to its full form first: `model[0].units` then works on `- linear: 16`.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ..layers import LAYERS
from ..spec.base import expand_shorthand
from ..spec.load import Path_, format_path

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[-?\d+\])*)")
_INDEX = re.compile(r"\[(-?\d+)\]")


class PathError(ValueError):
    """A path that cannot be parsed or does not lead anywhere in the spec data."""


def _registries() -> dict[str, tuple[str, dict[str, Any]]]:
    # Imported lazily: schema imports the data sources, which import this package's parents.
    from ..data.sources import SOURCES
    from ..spec.schema import LOSSES, OPTIMIZERS, SCHEDULES

    return {"data": ("source", SOURCES), "loss": ("type", LOSSES),
            "optimizer": ("type", OPTIMIZERS), "schedule": ("type", SCHEDULES)}


_LAYER_LISTS = ("model", "layers")


def parse_path(text: str) -> Path_:
    """'model[0].units' -> ('model', 0, 'units').

    Also 'model.0.units' (no brackets, handy inside YAML flow mappings, where `[` must be
    quoted) and 'model__0__units' (scikit-learn's parameter style).
    """
    if not isinstance(text, str) or not text.strip():
        raise PathError(f"path must be a non-empty string like 'optimizer.lr', got {text!r}")
    if "__" in text and "." not in text and "[" not in text:
        return tuple(int(p) if p.lstrip("-").isdigit() else p for p in text.split("__"))
    out: list[str | int] = []
    for part in text.strip().split("."):
        if part.lstrip("-").isdigit() and out:  # model.0.units, for YAML flow mappings
            out.append(int(part))
            continue
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise PathError(f"bad path {text!r}: {part!r} is not a field name with optional "
                            "[index] parts (example: model[0].units)")
        out.append(match.group(1))
        out.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(out)


def expand_node(key: str | int | None, value: Any) -> Any:
    """The full form of `value` found under `key` (layers and tagged sections expand)."""
    if key in _LAYER_LISTS and isinstance(value, list):
        return [expand_shorthand(v, "type", LAYERS) for v in value]  # type: ignore[arg-type]
    tagged = _registries().get(key) if isinstance(key, str) else None
    if tagged is not None:
        tag, registry = tagged
        return expand_shorthand(value, tag, registry)
    return value


def get_path(data: Any, path: Path_) -> Any:
    """The value at `path` in (shorthand-expanded) `data`; raises PathError if absent."""
    node = data
    key: str | int | None = None
    for i, part in enumerate(path):
        node = expand_node(key, node)
        where = format_path(path[:i]) or "the spec"
        if isinstance(part, int):
            if not isinstance(node, list):
                raise PathError(f"{where} is not a list, so {format_path(path[:i + 1])} "
                                "does not exist")
            if not -len(node) <= part < len(node):
                raise PathError(f"{where} has {len(node)} items; index {part} is out of range")
            node = node[part]
        else:
            if not isinstance(node, dict) or part not in node:
                raise PathError(f"{format_path(path[:i + 1])} is not set in the spec")
            node = node[part]
            key = part
    return expand_node(key, node)


def set_path(data: dict[str, Any], path: Path_, value: Any) -> None:
    """Set `value` at `path` in `data` (in place), expanding shorthand on the way.

    Missing mappings are created (`regularization.l1` works on a spec without
    `regularization:`); list indexes must exist. Raises PathError naming the step that fails.
    """
    if not path:
        raise PathError("empty path")
    node: Any = data
    key: str | int | None = None
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = format_path(path[:i]) or "the spec"
        if isinstance(part, int):
            if not isinstance(node, list):
                raise PathError(f"{where} is a {type(node).__name__}, not a list: "
                                f"{format_path(path[:i + 1])} does not exist")
            if not -len(node) <= part < len(node):
                raise PathError(f"{where} has {len(node)} items; index {part} is out of range")
            if last:
                node[part] = copy.deepcopy(value)
                return
            if key in _LAYER_LISTS:
                node[part] = expand_shorthand(node[part], "type", LAYERS)  # type: ignore[arg-type]
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise PathError(f"{where} is a {type(node).__name__}, not a mapping: cannot set "
                            f"{format_path(path[:i + 1])}")
        if last:
            node[part] = copy.deepcopy(value)
            return
        child = node.get(part)
        if child is None:
            if isinstance(path[i + 1], int):
                raise PathError(f"{format_path(path[:i + 1])} is not set, so "
                                f"{format_path(path[:i + 2])} does not exist")
            child = {}
        child = expand_node(part, child)
        node[part] = child
        node = child
        key = part


def deep_merge(base: dict[str, Any], over: dict[str, Any],
               prefix: Path_ = ()) -> tuple[dict[str, Any], list[Path_]]:
    """`over` merged into `base` (a new dict) and the paths whose values came from `over`.

    Mappings merge key by key; anything else is replaced. A tagged section whose tag
    changes (`optimizer: {type: sgd}` over `{type: adam, betas: ...}`) is replaced whole,
    so fields of the old type do not leak into the new one.
    """
    out = copy.deepcopy(base)
    origins: list[Path_] = []
    for key, value in over.items():
        path = (*prefix, key)
        old = expand_node(key, out.get(key))
        new = expand_node(key, value)
        tagged = _registries().get(key)
        same_tag = tagged is None or (isinstance(old, dict) and isinstance(new, dict)
                                      and new.get(tagged[0], old.get(tagged[0]))
                                      == old.get(tagged[0]))
        if isinstance(old, dict) and isinstance(new, dict) and same_tag:
            out[key], inner = deep_merge(old, new, path)
            origins.extend(inner)
        else:
            out[key] = copy.deepcopy(new)
            origins.append(path)
    return out, origins
