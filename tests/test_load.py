"""specnet.spec.load: YAML / JSON with positions, safe loading, one located error per bad file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from specnet.errors import SpecError
from specnet.spec.load import MAX_BYTES, MAX_DEPTH, MAX_NODES, Source, load_file, loads

YAML = """\
name: iris
data: iris
model:
  - linear: 16
  - relu
  - {type: linear, units: 3}
training:
  metrics: [accuracy, f1_macro]
"""

JSON = """\
{
  "name": "iris",
  "data": "iris",
  "model": [
    {"linear": 16},
    "relu"
  ]
}
"""


def _one_error(exc: pytest.ExceptionInfo[SpecError]) -> str:
    assert len(exc.value.issues) == 1, exc.value.issues
    return str(exc.value.issues[0])


# ---------------------------------------------------------------- formats and positions


def test_yaml_keeps_the_position_of_every_key_and_item(tmp_path: Path) -> None:
    path = tmp_path / "iris.yaml"
    path.write_text(YAML)
    src = load_file(path)
    assert src.data["model"][2] == {"type": "linear", "units": 3}
    assert src.positions[("name",)] == (1, 1)
    assert src.positions[("model",)] == (3, 1)
    assert src.positions[("model", 0)] == (4, 5)
    assert src.positions[("model", 0, "linear")] == (4, 5)
    assert src.positions[("model", 1)] == (5, 5)
    assert src.positions[("model", 2, "units")] == (6, 20)
    assert src.positions[("training", "metrics", 1)] == (8, 23)
    assert src.locate(("model", 2, "units", "nowhere")) == (6, 20)
    assert src.base_dir == tmp_path.resolve()


def test_full_form_paths_find_their_shorthand() -> None:
    src = loads(YAML, "s.yaml")
    assert src.locate(("model", 0, "units")) == (4, 5)  # `- linear: 16`
    assert src.issue(("model", 0, "units"), "bad").line == 4


def test_json_by_extension_keeps_positions(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(JSON)
    src = load_file(path)
    assert src.data["model"] == [{"linear": 16}, "relu"]
    assert src.positions[("model", 1)] == (6, 5)
    assert src.positions[("data",)] == (3, 3)


@pytest.mark.parametrize(("name", "text"), [
    ("spec.txt", JSON),
    ("spec", YAML),
    ("spec.txt", "{name: iris, data: iris, model: [relu]}"),  # YAML flow style, not JSON
], ids=["json-content", "yaml-content", "yaml-flow-content"])
def test_format_from_content(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert load_file(path).data["name"] == "iris"


def test_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: x\n")
    assert load_file(path).data == {"name": "x"}


def test_merge_keys_work_and_explicit_keys_win() -> None:
    src = loads("base: &b {units: 4, bias: false}\nlayer:\n  <<: *b\n  units: 8\n")
    assert src.data["layer"] == {"units": 8, "bias": False}
    assert src.positions[("layer", "units")] == (4, 3)


def test_loads_accepts_plain_text_and_format() -> None:
    assert loads('{"a": 1}', fmt="json").data == {"a": 1}
    assert isinstance(loads("a: 1"), Source)


# ---------------------------------------------------------------- one located error each


BAD_FILES = [
    # id, file name, content, expected `line:col: message` (after `file:`)
    ("empty", "s.yaml", b"", "1:1: spec is empty"),
    ("blank", "s.yaml", b"  \n\n", "1:1: spec is empty"),
    ("comment-only", "s.yaml", b"# nothing here\n", "1:1: spec is empty"),
    ("not-utf8", "s.yaml", b"name: ok\nseed: \xff\xfe\n", "2:7: not UTF-8 text (byte 0xff)"),
    ("yaml-syntax", "s.yaml", b"model: [1, 2\n",
     "2:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"),
    ("yaml-tab", "s.yaml", b"model:\n\t- relu\n",
     "2:1: YAML syntax error: found character '\\t' that cannot start any token"),
    ("json-syntax", "s.json", b'{"a": 1,,}',
     "1:9: JSON syntax error: Expecting property name enclosed in double quotes"),
    ("json-nan", "s.json", b'{"a": NaN}', "1:1: JSON error: NaN is not valid JSON (numbers "
                                          "must be finite)"),
    ("top-level-list", "s.yaml", b"- relu\n- tanh\n",
     "1:1: top level must be a mapping of spec fields, got list"),
    ("top-level-scalar", "s.yaml", b"just text\n",
     "1:1: top level must be a mapping of spec fields, got str"),
    ("top-level-json-list", "s.json", b"[1, 2]",
     "1:1: top level must be a mapping of spec fields, got list"),
    ("duplicate-key", "s.yaml", b"name: a\nseed: 1\nname: b\n", "3:1: duplicate key 'name'"),
    ("duplicate-nested-key", "s.yaml", b"optimizer:\n  lr: 1\n  lr: 2\n",
     "3:3: duplicate key 'lr'"),
    ("duplicate-json-key", "s.json", b'{"name": "a",\n "name": "b"}',
     "2:2: duplicate key 'name'"),
    ("two-documents", "s.yaml", b"name: a\n---\nname: b\n",
     "2:1: a spec is one YAML document, but a second one starts here (`---`)"),
    ("non-string-key", "s.yaml", b"? [1, 2]\n: x\n", "1:3: mapping key [1, 2] must be a string"),
    ("null-key", "s.yaml", b"~: x\n", "1:1: mapping key None must be a string"),
    ("bad-merge", "s.yaml", b"<<: 5\n", "1:5: `<<` (merge) takes a mapping or a list of "
                                        "mappings"),
    ("recursive-alias", "s.yaml", b"a: &a [*a]\n",
     "1:4: recursive alias: an anchor is used inside itself"),
    ("recursive-mapping-alias", "s.yaml", b"a: &a\n  b: *a\n",
     "1:4: recursive alias: an anchor is used inside itself"),
    ("date", "s.yaml", b"name: 2001-12-14\n",
     '1:7: 2001-12-14 reads as a date in YAML, which a spec cannot hold; quote it '
     '("2001-12-14") if it is text'),
    ("bad-explicit-int", "s.yaml", b"name: x\nseed: !!int abc\n",
     "2:7: cannot read 'abc' as an integer: invalid literal for int() with base 10: 'abc'"),
    ("huge-int", "s.yaml", b"seed: " + b"9" * 5000 + b"\n",
     "1:7: cannot read '99999999999999999999'... (5,000 characters) as an integer: Exceeds "
     "the limit (4300 digits) for integer string conversion: value has 5000 digits"),
    ("huge-json-int", "s.json", b'{"seed": ' + b"9" * 5000 + b"}",
     "1:1: JSON error: Exceeds the limit (4300 digits) for integer string conversion: value "
     "has 5000 digits"),
    ("deep-yaml", "s.yaml", b"a: " + b"[" * 2000 + b"]" * 2000,
     f"1:1: nested too deeply (more than {MAX_DEPTH} levels)"),
    ("deep-yaml-within-recursion-limit", "s.yaml", b"a: " + b"[" * 80 + b"]" * 80,
     f"1:{4 + MAX_DEPTH - 1}: nested more than {MAX_DEPTH} levels deep"),
    ("deep-json", "s.json", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     f"1:1: nested too deeply (more than {MAX_DEPTH} levels)"),
]

TAGS = [
    ("python-object-apply", b'x: !!python/object/apply:os.system ["echo hacked"]\n',
     "tag:yaml.org,2002:python/object/apply:os.system"),
    ("python-name", b"x: !!python/name:os.system\n", "tag:yaml.org,2002:python/name:os.system"),
    ("python-object-new", b"x: !!python/object/new:subprocess.Popen [[ls]]\n",
     "tag:yaml.org,2002:python/object/new:subprocess.Popen"),
    ("custom-tag", b"x: !include other.yaml\n", "!include"),
    ("binary", b"x: !!binary aGVsbG8=\n", "tag:yaml.org,2002:binary"),
    ("set", b"x: !!set {a, b}\n", "tag:yaml.org,2002:set"),
    ("omap", b"x: !!omap [a: 1]\n", "tag:yaml.org,2002:omap"),
]


@pytest.mark.parametrize(("name", "content", "expected"),
                         [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_is_one_located_error(tmp_path: Path, name: str, content: bytes,
                                       expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SpecError) as exc:
        load_file(path)
    assert _one_error(exc) == f"{path}:{expected}"


@pytest.mark.parametrize(("content", "tag"), [t[1:] for t in TAGS], ids=[t[0] for t in TAGS])
def test_tags_that_construct_objects_are_rejected(tmp_path: Path, content: bytes,
                                                  tag: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as exc:
        load_file(path)
    assert _one_error(exc) == (f"{path}:1:4: YAML tag {tag!r} is not allowed: specs hold plain "
                               "data only (strings, numbers, booleans, null, lists, mappings)")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as exc:
        load_file(tmp_path / "nope.yaml")
    assert _one_error(exc) == f"{tmp_path / 'nope.yaml'}: no such file"
    with pytest.raises(SpecError) as exc:
        load_file(tmp_path)
    assert _one_error(exc) == f"{tmp_path}: is a directory, not a spec file"


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(SpecError, match="specs are limited to"):
        load_file(path)


# ---------------------------------------------------------------- alias bombs


def _laughs(levels: int, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(20)
def test_billion_laughs_fails_fast() -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError) as exc:
        loads(_laughs(9), "bomb.yaml")  # 9**9 = 387 million strings if expanded
    assert time.perf_counter() - start < 5
    assert _one_error(exc).endswith(f"document expands to more than {MAX_NODES:,} values "
                                    "(an alias bomb?)")


@pytest.mark.timeout(20)
def test_merge_key_bomb_fails_fast() -> None:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3}"]
    for i in range(1, 12):
        lines.append(f"m{i}: &m{i}\n  <<: [{', '.join([f'*m{i - 1}'] * 9)}]\n  k{i}: 1")
    lines.append("top:\n  <<: *m11")
    start = time.perf_counter()
    with pytest.raises(SpecError, match="alias bomb"):
        loads("\n".join(lines) + "\n", "bomb.yaml")
    assert time.perf_counter() - start < 5


def test_shared_aliases_below_the_limit_load() -> None:
    src = loads(_laughs(3))  # 9 + 81 + 729 strings
    assert len(src.data["a2"]) == 9 and src.data["a2"][0][0] == ["lol"] * 9
