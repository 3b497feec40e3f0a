"""Load a YAML or JSON spec into plain data, keeping the source position of every key.

Only YAML's core types are built (mappings, sequences, strings, numbers, booleans,
null): a tag that would construct an object is an error, and alias expansion is bounded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ..errors import Issue, SpecError

Path_ = tuple[str | int, ...]
Positions = dict[Path_, tuple[int, int]]

# An alias bomb (a billion laughs) expands to more nodes than any real spec holds.
MAX_NODES = 100_000
MAX_BYTES = 5_000_000

_STD_TAGS = {
    "tag:yaml.org,2002:map": "map",
    "tag:yaml.org,2002:omap": "bad",
    "tag:yaml.org,2002:seq": "seq",
    "tag:yaml.org,2002:str": "scalar",
    "tag:yaml.org,2002:int": "scalar",
    "tag:yaml.org,2002:float": "scalar",
    "tag:yaml.org,2002:bool": "scalar",
    "tag:yaml.org,2002:null": "scalar",
}


@dataclass
class Source:
    """A loaded spec document: its data, where it came from, and key positions."""

    data: Any
    file: str = "<spec>"
    positions: Positions = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)

    def locate(self, path: Path_) -> tuple[int, int]:
        """(line, col) of the longest prefix of `path` that has a position, 1-based."""
        for end in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:end]))
            if pos is not None:
                return pos
        return (1, 1)

    def issue(self, path: Path_, message: str, severity: str = "error") -> Issue:
        """An Issue located at `path` in this source."""
        line, col = self.locate(path)
        return Issue(format_path(path), message, self.file, line, col, severity)


def format_path(path: Path_) -> str:
    """('model', 3, 'units') -> 'model[3].units'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _fail(file: str, line: int, col: int, message: str) -> NoReturn:
    raise SpecError([Issue("", message, file, line, col)])


class _Builder:
    """Turns a composed YAML node graph into plain Python data, recording positions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: Positions = {}
        self.count = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path_, stack: tuple[int, ...] = ()) -> Any:
        self.count += 1
        mark = node.start_mark
        if self.count > MAX_NODES:
            _fail(self.file, mark.line + 1, mark.column + 1,
                  f"document expands to more than {MAX_NODES:,} nodes (an alias bomb?)")
        if id(node) in stack:
            _fail(self.file, mark.line + 1, mark.column + 1, "recursive alias")
        self.positions.setdefault(path, (mark.line + 1, mark.column + 1))
        kind = _STD_TAGS.get(node.tag)
        if kind is None or kind == "bad":
            _fail(self.file, mark.line + 1, mark.column + 1,
                  f"YAML tag {node.tag!r} is not allowed: specs hold plain data only")
        stack = (*stack, id(node))
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, (*path, "<key>"), stack)
                kmark = key_node.start_mark
                if not isinstance(key, str | int | float | bool) or key is None:
                    _fail(self.file, kmark.line + 1, kmark.column + 1,
                          f"mapping key {key!r} must be a string")
                key = str(key) if not isinstance(key, str) else key
                if key in out:
                    _fail(self.file, kmark.line + 1, kmark.column + 1,
                          f"duplicate key {key!r}")
                self.positions[(*path, key)] = (kmark.line + 1, kmark.column + 1)
                out[key] = self.build(value_node, (*path, key), stack)
            self.positions.pop((*path, "<key>"), None)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), stack) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node)


def _parse_yaml(text: str, file: str) -> tuple[Any, Positions]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "syntax error"
        _fail(file, line, col, f"YAML syntax error: {problem}")
    except yaml.YAMLError as exc:
        _fail(file, 1, 1, f"YAML error: {exc}")
    if node is None:
        _fail(file, 1, 1, "spec is empty")
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except (yaml.constructor.ConstructorError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        _fail(file, line, col, f"bad value: {getattr(exc, 'problem', None) or exc}")
    return data, builder.positions


def _parse_json(text: str, file: str) -> tuple[Any, Positions]:
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=no_dupes,
                          parse_constant=lambda c: _fail(file, 1, 1, f"{c} is not valid JSON"))
    except json.JSONDecodeError as exc:
        _fail(file, exc.lineno, exc.colno, f"JSON syntax error: {exc.msg}")
    except ValueError as exc:
        _fail(file, 1, 1, f"JSON error: {exc}")
    # JSON is (nearly) YAML: compose it again to learn positions; fall back to none.
    try:
        _, positions = _parse_yaml(text, file)
    except SpecError:
        positions = {}
    return data, positions


def loads(text: str, file: str = "<spec>", fmt: str | None = None,
          base_dir: Path | None = None) -> Source:
    """Parse spec text (YAML or JSON) into a `Source`; `fmt` is 'yaml', 'json' or sniffed."""
    if fmt is None:
        fmt = "json" if text.lstrip().startswith(("{", "[")) else "yaml"
    if not text.strip():
        _fail(file, 1, 1, "spec is empty")
    data, positions = (_parse_json if fmt == "json" else _parse_yaml)(text, file)
    if not isinstance(data, dict):
        _fail(file, 1, 1, f"top level must be a mapping of spec fields, got {type(data).__name__}")
    return Source(data, file, positions, base_dir or Path.cwd())


def load_file(path: str | Path) -> Source:
    """Read and parse a spec file; the format comes from the extension or the content."""
    p = Path(path)
    file = str(path)
    if not p.exists():
        _fail(file, 0, 0, "no such file")
    if p.is_dir():
        _fail(file, 0, 0, "is a directory, not a spec file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        _fail(file, 0, 0, f"cannot read: {exc.strerror}")
    if len(raw) > MAX_BYTES:
        _fail(file, 0, 0, f"file is {len(raw):,} bytes; specs are limited to {MAX_BYTES:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        _fail(file, line, col, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})")
    suffix = p.suffix.lower()
    fmt = "json" if suffix == ".json" else "yaml" if suffix in (".yaml", ".yml") else None
    return loads(text.removeprefix("\ufeff"), file, fmt, p.resolve().parent)
