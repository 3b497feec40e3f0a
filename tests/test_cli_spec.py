"""`specnet validate`, `show` and `schema`: exit codes, `error:` lines, no tracebacks, help
with examples, and a validate that never imports torch."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from specnet.cli import main
from specnet.spec.load import loads
from specnet.spec.resolve import json_schema
from specnet.spec.validate import load_spec, validate

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))

BAD: list[tuple[str, str, bytes, str]] = [
    # id, file name, content, the first `error:` line after the file name
    ("missing-file", "missing.yaml", b"", ": no such file"),
    ("empty", "s.yaml", b"", ":1:1: spec is empty"),
    ("not-utf8", "s.yaml", b"name: \xff\n", ":1:7: not UTF-8 text (byte 0xff)"),
    ("yaml-syntax", "s.yaml", b"data: [iris\n", ":2:1: YAML syntax error: expected ',' or ']', "
                                               "but got '<stream end>'"),
    ("json-syntax", "s.json", b'{"data": }', ":1:10: JSON syntax error: Expecting value"),
    ("top-level-list", "s.yaml", b"- relu\n", ":1:1: top level must be a mapping of spec "
                                             "fields, got list"),
    ("duplicate-key", "s.yaml", b"data: iris\ndata: wine\n", ":2:1: duplicate key 'data'"),
    ("python-tag", "s.yaml", b"data: !!python/object/apply:os.system [ls]\n",
     ":1:7: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
    ("alias-bomb", "s.yaml", ("a: &a [" + ", ".join(["x"] * 50) + "]\n" + "".join(
        f"{c}: &{c} [" + ", ".join([f"*{p}"] * 50) + "]\n"
        for p, c in zip("abcd", "bcde", strict=True))).encode(),
     ":1:143: document expands to more than 100,000 values (an alias bomb?)"),
    ("unknown-layer", "s.yaml", b"data: iris\nmodel: [relu2]\n",
     ":2:9: model[0]: unknown layer 'relu2' (did you mean 'relu'?)"),
    ("shape-mismatch", "s.yaml", b"data: iris\nmodel: [linear: 8, conv2d: 4, linear: auto]\n",
     ":2:20: model[1]: conv2d expects [C, H, W] (channels, height, width), got [8]"),
]


def _write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    if name != "missing.yaml":
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(("name", "content", "first"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_validate_bad_file_exits_1_with_located_error_lines(
        runner: CliRunner, tmp_path: Path, name: str, content: bytes, first: str) -> None:
    path = _write(tmp_path, name, content)
    result = runner.invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {path}{first}")
    assert lines[-1] == "error: 1 of 1 spec(s) invalid"
    assert all(line.startswith(("error: ", "warning: ")) for line in lines)


def test_validate_every_shipped_spec(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", *map(str, SPECS)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\nok: ") + result.stdout.startswith("ok: ") == len(SPECS)
    iris = next(line for line in result.stdout.splitlines() if "iris.yaml" in line)
    assert iris.endswith(": iris, 5 layers, 403 parameters, input [4] -> output [3]")
    quiet = runner.invoke(main, ["validate", "-q", *map(str, SPECS)])
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")


def test_validate_reports_each_file_and_fails_if_any_fails(runner: CliRunner,
                                                          tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.yaml", b"data: iris\nmodel: [linear: 2]\n")
    result = runner.invoke(main, ["validate", str(SPECS[0]), str(bad)])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"ok: {SPECS[0]}")
    assert result.stderr.splitlines() == [
        f"error: {bad}:2:9: model[0]: the network outputs [2] but 'iris' has 3 classes, so it "
        "needs [3]; make the last layer `linear: 3` or `linear: auto`",
        "error: 1 of 2 spec(s) invalid"]


def test_warnings_print_but_pass(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "soft.yaml", b"data: iris\nmodel: [linear: auto, softmax]\n")
    result = runner.invoke(main, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.stderr.startswith(f"warning: {path}:2:23: model[1]: softmax before "
                                    "cross_entropy applies softmax twice")


@pytest.mark.parametrize("command", ["validate", "show", "schema"])
def test_help_explains_with_an_example(runner: CliRunner, command: str) -> None:
    result = runner.invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert f"specnet {command}" in result.stdout


def test_show_prints_the_layer_table(runner: CliRunner) -> None:
    result = runner.invoke(main, ["show", str(ROOT / "specs" / "digits_cnn.yaml")])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("digits_cnn: task classification, data digits, loss cross_entropy, "
                        "optimizer adam")
    assert lines[1].split() == ["#", "layer", "output", "shape", "params"]
    assert "batchnorm" in lines[8] and lines[8].endswith(" 64")
    assert lines[-3:] == ["trainable params: 13,770", "non-trainable:    65",
                          "size (float32):   54.0 KiB"]


def test_show_bad_spec_exits_1_without_traceback(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", b"data: iris\nmodel: [relu2]\n")
    result = runner.invoke(main, ["show", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}:2:9: model[0]: unknown layer 'relu2'")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_show_resolved_round_trips(runner: CliRunner, fmt: str) -> None:
    path = ROOT / "specs" / "iris.yaml"
    args = ["show", "--resolved", str(path)] + (["--json"] if fmt == "json" else [])
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.stderr
    if fmt == "json":
        json.loads(result.stdout)
    assert validate(loads(result.stdout, f"iris.{fmt}")) == load_spec(path).spec
    assert "lr: 0.01" in result.stdout or '"lr": 0.01' in result.stdout


def test_show_json_without_resolved_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["show", "--json", str(SPECS[0])])
    assert result.exit_code == 2
    assert "--json works with --resolved: specnet show --resolved --json SPEC" in result.stderr
    assert result.stdout == ""


def test_schema_prints_and_writes(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json_schema()
    out = tmp_path / "schema.json"
    result = runner.invoke(main, ["schema", "-o", str(out)])
    assert result.exit_code == 0
    assert json.loads(out.read_text()) == json_schema()


def test_schema_to_a_folder_is_an_error_not_a_traceback(runner: CliRunner,
                                                         tmp_path: Path) -> None:
    result = runner.invoke(main, ["schema", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot write {tmp_path}: ")
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_public_api_imports_without_torch_and_matches_its_modules() -> None:
    code = ("import sys, specnet\n"
            "missing = [n for n in specnet.__all__ if not hasattr(specnet, n)]\n"
            "assert not missing, missing\n"
            "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    import specnet
    from specnet import export, trainer

    for name, real in [("train", trainer.train), ("load_run", trainer.load_run),
                       ("export_run", export.export_run)]:
        assert inspect.signature(getattr(specnet, name)) == inspect.signature(real), name


def test_validate_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from specnet.cli import main\n"
        "sys.argv = ['specnet', 'validate', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'sklearn', 'onnx', 'onnxruntime', 'scipy'))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *map(str, SPECS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, "evil.yaml", b"data: !!python/object/apply:os.system [echo pwned]\n")
    result = subprocess.run([sys.executable, "-m", "specnet.cli", "validate", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "pwned" not in result.stdout
    assert result.stderr.startswith(f"error: {path}:1:7: YAML tag")
