"""`specnet init`: every starter spec validates as written, through `specnet validate`
and against the JSON Schema editors use; an existing file is never overwritten."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from specnet.cli import main
from specnet.spec.resolve import json_schema
from specnet.templates import TEMPLATES

NAMES = ["classification", "regression", "image", "csv"]


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_every_template_is_offered() -> None:
    assert list(TEMPLATES) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_template_validates_as_written(name: str, tmp_path: Path) -> None:
    code, text, err = _cli("init", name)
    assert code == 0, err
    assert text.startswith("# yaml-language-server: $schema=specnet.schema.json\n")
    spec = tmp_path / "spec.yaml"
    code, out, err = _cli("init", name, "-o", str(spec))
    assert code == 0 and out == "" and err == f"wrote {spec}\n"
    assert spec.read_text() == text  # the file and stdout agree
    if name == "csv":  # the template reads data.csv beside the spec
        (tmp_path / "data.csv").write_text("a,b,target\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    code, out, err = _cli("validate", str(spec))
    assert code == 0 and err == "", err  # no warnings either
    assert out.startswith(f"ok: {spec}: my_")
    validator = jsonschema.Draft202012Validator(json_schema())
    assert [e.message for e in validator.iter_errors(yaml.safe_load(text))] == []


def test_default_template_is_classification() -> None:
    assert _cli("init")[1] == TEMPLATES["classification"]


def test_csv_template_says_what_is_missing(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    assert _cli("init", "csv", "-o", str(spec))[0] == 0
    code, _, err = _cli("validate", str(spec))
    assert code == 1 and "data.csv" in err


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("mine\n")
    code, out, err = _cli("init", "regression", "-o", str(spec))
    assert code == 1 and out == ""
    assert err == f"error: {spec} already exists; choose another file (-o) or remove it " \
                  "first\n"
    assert spec.read_text() == "mine\n"


def test_unknown_template_lists_the_choices() -> None:
    code, _, err = _cli("init", "tabular")
    assert code == 2
    assert "'classification', 'regression', 'image', 'csv'" in err
