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
MAX_DEPTH = 64
MAX_BYTES = 5_000_000

_STD_TAGS = {
    "tag:yaml.org,2002:map": "map",
    "tag:yaml.org,2002:seq": "seq",
    "tag:yaml.org,2002:str": "scalar",
    "tag:yaml.org,2002:int": "scalar",
    "tag:yaml.org,2002:float": "scalar",
    "tag:yaml.org,2002:bool": "scalar",
    "tag:yaml.org,2002:null": "scalar",
}
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_STD_TAGS_NAMES = {"tag:yaml.org,2002:int": "an integer", "tag:yaml.org,2002:float": "a number",
                   "tag:yaml.org,2002:bool": "true or false", "tag:yaml.org,2002:null": "null"}


def _short(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text):,} characters)"


def _reason(exc: Exception) -> str:
    """The first clause of a Python error, without advice meant for programmers."""
    return str(exc).split("; use sys.")[0]


@dataclass
class Source:
    """A loaded spec document: its data, where it came from, and key positions."""

    data: Any
    file: str = "<spec>"
    positions: Positions = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)

    def locate(self, path: Path_) -> tuple[int, int]:
        """(line, col) of the longest prefix of `path` that has a position, 1-based.

        A path in the full form (`model[0].units`) finds the shorthand it came from
        (`- linear: 16` or `- linear: {units: 16}`).
        """
        path = self._raw_path(path)
        for end in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:end]))
            if pos is not None:
                return pos
        return (1, 1)

    def _raw_path(self, path: Path_) -> Path_:
        out: list[str | int] = []
        node = self.data
        for part in path:
            if isinstance(node, dict) and isinstance(part, str) and part not in node \
                    and len(node) == 1:
                ((name, arg),) = node.items()
                if not isinstance(arg, dict):
                    return (*out, name)  # `- name: value`: the value is at the name
                out.append(name)
                node = arg
            out.append(part)
            if isinstance(node, dict):
                node = node.get(part) if isinstance(part, str) else None
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                node = None
        return tuple(out)

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
    """Turns a composed YAML node graph into plain Python data, recording positions.

    Aliases are expanded here, node by node, so the node count bounds the work: an alias
    bomb stops at MAX_NODES instead of filling memory. Merge keys (`<<: *base`) are
    resolved here too (explicit keys win), without PyYAML's eager flattening.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: Positions = {}
        self.count = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def fail(self, node: yaml.Node, message: str) -> NoReturn:
        _fail(self.file, node.start_mark.line + 1, node.start_mark.column + 1, message)

    def build(self, node: yaml.Node, path: Path_, stack: tuple[int, ...] = ()) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            self.fail(node, f"document expands to more than {MAX_NODES:,} values "
                            "(an alias bomb?)")
        if id(node) in stack:
            self.fail(node, "recursive alias: an anchor is used inside itself")
        if len(stack) >= MAX_DEPTH:
            self.fail(node, f"nested more than {MAX_DEPTH} levels deep")
        mark = node.start_mark
        self.positions.setdefault(path, (mark.line + 1, mark.column + 1))
        if node.tag == _TIMESTAMP and isinstance(node, yaml.ScalarNode):
            self.fail(node, f"{node.value} reads as a date in YAML, which a spec cannot hold; "
                            f"quote it (\"{node.value}\") if it is text")
        if _STD_TAGS.get(node.tag) is None:
            self.fail(node, f"YAML tag {node.tag!r} is not allowed: specs hold plain data only "
                            "(strings, numbers, booleans, null, lists, mappings)")
        stack = (*stack, id(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, stack)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), stack) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node)
        except (ValueError, OverflowError) as exc:  # `!!int abc`, a 5000-digit number
            self.fail(node, f"cannot read {_short(node.value)} as "
                            f"{_STD_TAGS_NAMES.get(node.tag, 'a value')}: {_reason(exc)}")

    def _mapping(self, node: yaml.MappingNode, path: Path_,
                 stack: tuple[int, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:  # first, so explicit keys' positions win
                merged = {**self._merge(value_node, path, stack), **merged}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.build(key_node, (*path, "<key>"), stack)
            self.positions.pop((*path, "<key>"), None)
            if not isinstance(key, str | int | float | bool) or key is None:
                self.fail(key_node, f"mapping key {key!r} must be a string")
            key = key if isinstance(key, str) else str(key)
            if key in out:
                self.fail(key_node, f"duplicate key {key!r}")
            kmark = key_node.start_mark
            self.positions[(*path, key)] = (kmark.line + 1, kmark.column + 1)
            out[key] = self.build(value_node, (*path, key), stack)
        return {**{k: v for k, v in merged.items() if k not in out}, **out}

    def _merge(self, node: yaml.Node, path: Path_, stack: tuple[int, ...]) -> dict[str, Any]:
        """The mapping(s) under a `<<` key; earlier ones win, as in YAML's merge spec."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        out: dict[str, Any] = {}
        for item in items:
            if not isinstance(item, yaml.MappingNode):
                self.fail(item, "`<<` (merge) takes a mapping or a list of mappings")
            value = self.build(item, path, stack)
            out = {**value, **out}
        return out


def _parse_yaml(text: str, file: str) -> tuple[Any, Positions]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if isinstance(exc, yaml.composer.ComposerError) and "another document" in str(exc):
            _fail(file, line, col, "a spec is one YAML document, but a second one starts here "
                                   "(`---`)")
        problem = exc.problem or exc.context or "syntax error"
        _fail(file, line, col, f"YAML syntax error: {problem}")
    except yaml.YAMLError as exc:
        _fail(file, 1, 1, f"YAML error: {exc}")
    except RecursionError:
        _fail(file, 1, 1, f"nested too deeply (more than {MAX_DEPTH} levels)")
    if node is None:
        _fail(file, 1, 1, "spec is empty")
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except (yaml.constructor.ConstructorError, ValueError, OverflowError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        _fail(file, line, col, f"bad value: {getattr(exc, 'problem', None) or exc}")
    return data, builder.positions


class _DuplicateKey(ValueError):
    pass


def _parse_json(text: str, file: str) -> tuple[Any, Positions]:
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _DuplicateKey(f"duplicate key {key!r}")
            out[key] = value
        return out

    def no_constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is not valid JSON (numbers must be finite)")

    try:
        data = json.loads(text, object_pairs_hook=no_dupes, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        _fail(file, exc.lineno, exc.colno, f"JSON syntax error: {exc.msg}")
    except RecursionError:
        _fail(file, 1, 1, f"nested too deeply (more than {MAX_DEPTH} levels)")
    except ValueError as exc:
        # JSON is (nearly) YAML: the YAML reader finds where a duplicate key is.
        if isinstance(exc, _DuplicateKey):
            try:
                _parse_yaml(text, file)
            except SpecError as located:
                if "duplicate key" in located.issues[0].message:
                    raise located from None
        _fail(file, 1, 1, f"JSON error: {_reason(exc)}")
    # JSON is (nearly) YAML: compose it again to learn positions; fall back to none.
    try:
        _, positions = _parse_yaml(text, file)
    except SpecError as exc:
        if any("nested" in i.message for i in exc.issues):
            raise
        positions = {}
    return data, positions


def loads(text: str, file: str = "<spec>", fmt: str | None = None,
          base_dir: Path | None = None) -> Source:
    """Parse spec text (YAML or JSON) into a `Source`; `fmt` is 'yaml', 'json' or sniffed."""
    if not text.strip():
        _fail(file, 1, 1, "spec is empty")
    if fmt is None and text.lstrip().startswith(("{", "[")):
        # Looks like JSON; a YAML flow mapping (`{a: 1}`) does too, so fall back to YAML.
        try:
            data, positions = _parse_json(text, file)
        except SpecError as exc:
            if not exc.issues[0].message.startswith("JSON syntax error"):
                raise
            data, positions = _parse_yaml(text, file)
    else:
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
