"""The docs cannot drift: the README's shell blocks run in the order written, every Python
snippet in the docs runs as written, and the MkDocs site builds strictly."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
# The set-up block installs and runs the whole suite: this test is part of that suite.
_SETUP = re.compile(r"^\s*(pip install|pytest)\b", re.M)


def _blocks(path: Path, lang: str) -> list[str]:
    return [body for kind, body in _BLOCK.findall(path.read_text(encoding="utf-8"))
            if kind == lang]


def _workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A temporary folder holding the example specs, and an environment whose `specnet`
    runs this checkout (not whichever copy is installed)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "specs", work / "specs")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "specnet"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m specnet.cli "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return work, env


def test_readme_shell_blocks_run_in_order(tmp_path: Path) -> None:
    blocks = [b for b in _blocks(ROOT / "README.md", "bash") if not _SETUP.search(b)]
    assert len(blocks) >= 4, "the README lost its quick start"
    work, env = _workspace(tmp_path)
    # One shell for every block, as a reader would type them; background servers end with
    # the shell, whether the blocks pass or not.
    script = ("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
              + "\n".join(blocks) + "\n")
    proc = subprocess.Popen(["bash", "-c", script], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, out[-4000:]
    assert '"labels":["setosa"]' in out, out[-4000:]
    assert (work / "exports" / "iris" / "model.onnx").is_file()


SNIPPETS = [(path, i, body) for path in [ROOT / "README.md", *DOCS]
            for i, body in enumerate(_blocks(path, "python"))]


@pytest.fixture(scope="module")
def iris_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """exports/iris as the quick start's first command leaves it, for the snippets that
    start from it."""
    work, env = _workspace(tmp_path_factory.mktemp("iris"))
    subprocess.run(["specnet", "build", "specs/iris.yaml", "-q"], cwd=work, env=env,
                   check=True, capture_output=True, timeout=300)
    return work / "exports" / "iris"


@pytest.mark.parametrize(("path", "index", "code"), SNIPPETS,
                         ids=[f"{p.name}-{i}" for p, i, _ in SNIPPETS])
def test_python_snippets_run_as_written(path: Path, index: int, code: str, tmp_path: Path,
                                        iris_export: Path) -> None:
    work, env = _workspace(tmp_path)
    shutil.copytree(iris_export, work / "exports" / "iris")
    result = subprocess.run([sys.executable, "-c", code], cwd=work, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{path.name} snippet {index}:\n{result.stderr[-4000:]}"


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                             "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
