"""Shared fixtures: a seed, a CLI runner, and the repository's paths."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Train on one torch thread: on a shared 2-core box more threads stall, and timings
    and results stay comparable between runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
