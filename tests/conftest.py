"""Shared fixtures: a seed, a CLI runner, and the repository's paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def seed() -> int:
    """The seed tests use when they need one."""
    return 0


@pytest.fixture
def runner() -> CliRunner:
    """A click runner for the `specnet` CLI (stderr kept apart from stdout)."""
    return CliRunner()


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write spec text to a file in a temporary folder and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
