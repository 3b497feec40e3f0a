"""Property: whatever a spec file holds, loading + validation + the shape check either pass
or raise specnet's own SpecError, and every issue it carries is located in the file.

Valid shipped specs are mutated (keys deleted, values replaced with other types or
out-of-range numbers, unknown keys added, registry names swapped) and written back as
YAML or JSON; raw text and raw bytes are garbled too.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from specnet.data.sources import SOURCES
from specnet.errors import SpecError
from specnet.layers import LAYERS
from specnet.spec.load import load_file, loads
from specnet.spec.schema import LOSSES, METRICS, OPTIMIZERS, SCHEDULES, Spec
from specnet.spec.validate import check, validate

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
TEXTS = [p.read_text() for p in SPECS]
DATA = [yaml.safe_load(t) for t in TEXTS]


def _field_names() -> list[str]:
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(name)
            stack = [info.annotation]
            while stack:
                ann = stack.pop()
                if isinstance(ann, type) and issubclass(ann, BaseModel):
                    walk(ann)
                stack.extend(typing.get_args(ann))

    walk(Spec)
    return sorted(names)


NAMES = sorted({*LAYERS, *LOSSES, *OPTIMIZERS, *SCHEDULES, *SOURCES, *METRICS, "auto", "full",
                "same", "valid", "balanced", "val_loss", "classification", "binary",
                "regression", "standard", "none", "cpu"})
KEYS = _field_names() + sorted(LAYERS) + ["type", "source", "<<", "bais", "unitz"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-3, 300), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-2, 2),
    st.text(max_size=12), st.sampled_from(NAMES),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        root = root[part]
    return root


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    data = json.loads(json.dumps(draw(st.sampled_from(DATA))))  # a deep copy
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        op = draw(st.sampled_from(["delete", "replace", "add-key", "number", "name"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(values)
        elif op == "add-key":
            target = parent[path[-1]] if isinstance(parent[path[-1]], dict) else parent
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS) | st.text(max_size=6))] = draw(values)
        elif op == "number":
            parent[path[-1]] = draw(st.sampled_from([0, -1, 1, 2, 10**9, 2**31, -(10**12),
                                                     0.5, -0.5, 1.5, 1e-12, 1e300]))
        else:
            parent[path[-1]] = draw(st.sampled_from(NAMES))
        if not data:
            break
    return data


def _run(text: str) -> None:
    src = loads(text, "spec.yaml")
    check(validate(src), src)


def _assert_located(exc: SpecError, file: str) -> None:
    assert exc.issues
    for issue in exc.issues:
        assert issue.file == file
        assert issue.line >= 1 and issue.col >= 1, issue
        assert issue.message


PROPS = settings(max_examples=200, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(data=mutated(), as_json=st.booleans())
def test_mutated_specs_fail_only_with_located_spec_errors(data: Any, as_json: bool) -> None:
    text = json.dumps(data) if as_json else yaml.safe_dump(data, sort_keys=False)
    try:
        _run(text)
    except SpecError as exc:
        _assert_located(exc, "spec.yaml")


@st.composite
def garbled(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "swap-line"]))
        if op == "insert":
            junk = draw(st.sampled_from(["{", "}", "[", "]", ":", "- ", "&a ", "*a", "!!", "\t",
                                         "'", '"', "\n", "  ", "#", "---\n", "<<: ", "? ", "%"])
                         | st.text(max_size=5))
            text = text[:at] + junk + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        else:
            lines = text.splitlines(keepends=True)
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
    return text


@PROPS
@given(text=garbled())
def test_garbled_text_fails_only_with_located_spec_errors(text: str) -> None:
    try:
        _run(text)
    except SpecError as exc:
        _assert_located(exc, "spec.yaml")


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300) | st.sampled_from(TEXTS).map(str.encode).flatmap(
    lambda b: st.integers(0, len(b)).map(lambda i: b[:i] + b"\xff\xc3(" + b[i:])))
def test_raw_bytes_fail_only_with_located_spec_errors(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "spec.yaml"
    path.write_bytes(raw)
    try:
        src = load_file(path)
        check(validate(src), src)
    except SpecError as exc:
        _assert_located(exc, str(path))
