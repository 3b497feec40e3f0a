"""The resolved spec (every default filled in) and the JSON Schema of the language."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from .schema import REGISTRIES, Spec


def resolved_dict(spec: Spec, portable: bool = False) -> dict[str, Any]:
    """The spec as plain data with every default filled in; validates to the same Spec.

    Data-file paths are absolute (resolved against the spec's folder); `portable` keeps
    them as written instead, for hashes and metadata that must not depend on the machine.
    """
    data = spec.model_dump(mode="json", exclude_none=True)
    if portable:
        data["data"].update(spec.data.given_paths())
    if spec.loss is None:
        data["loss"] = {"type": spec.loss_name}
    data["training"]["metrics"] = spec.metric_names
    return data


def dump_resolved(spec: Spec, fmt: str = "yaml", portable: bool = False) -> str:
    """The resolved spec as YAML (default) or JSON text; see `resolved_dict`."""
    data = resolved_dict(spec, portable)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def spec_hash(spec: Spec) -> str:
    """sha256 of the resolved spec's canonical JSON (data paths as written): equal specs
    hash equal, wherever they lie."""
    text = json.dumps(resolved_dict(spec, portable=True), sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _shorthand(registry: dict[str, Any], defs: dict[str, Any], tag: str) -> list[Any]:
    """JSON Schema alternatives for the shorthand forms of a tagged registry."""
    props: dict[str, Any] = {}
    for name, cls in registry.items():
        alts: list[Any] = [{"$ref": f"#/$defs/{cls.__name__}"}, {"type": "null"}]
        primary = getattr(cls, "primary", None)
        if primary and cls.__name__ in defs:
            prop = defs[cls.__name__].get("properties", {}).get(primary)
            if prop is not None:
                alts.insert(1, prop)
        props[name] = {"anyOf": alts}
    return [
        {"type": "string", "enum": list(registry)},
        {"type": "object", "properties": props, "additionalProperties": False,
         "minProperties": 1, "maxProperties": 1},
    ]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec language, shorthand forms included."""
    schema = Spec.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    by_tag = {frozenset(reg): reg for reg in REGISTRIES.values()}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: walk(v) for k, v in node.items()}
            disc = node.get("discriminator")
            if isinstance(disc, dict) and "mapping" in disc:
                registry = by_tag.get(frozenset(disc["mapping"]))
                if registry is not None:
                    # keep what describes the field on the outside, where editors look
                    outer = {k: node[k] for k in ("title", "description", "default")
                             if k in node}
                    full = {k: v for k, v in node.items() if k not in outer}
                    return {**outer, "anyOf": [full, *_shorthand(registry, defs,
                                                                  disc["propertyName"])]}
            return node
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    out: dict[str, Any] = walk(schema)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "specnet spec"
    return out
