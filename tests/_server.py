"""A real `specnet serve` subprocess on 127.0.0.1 for the serving tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCHEMATHESIS_CONFIG = Path(__file__).resolve().parent / "data" / "schemathesis.toml"


@dataclass
class Server:
    """A `specnet serve` subprocess and everything it printed."""

    proc: subprocess.Popen[str]
    url: str = ""
    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                self.proc.kill()
                self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start(model: Path, *args: str, wait: bool = True) -> Server:
    """Start `specnet serve MODEL --port 0`; wait until it says where it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "specnet.cli", "serve", str(model), "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = Server(proc)
    found = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            server.log.append(line)
            m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if m:
                server.url = m.group(1)
                found.set()

    server.reader = threading.Thread(target=read, daemon=True)
    server.reader.start()
    if not wait:
        proc.wait(timeout=60)
        server.stop()  # joins the reader: the log is complete
        return server
    deadline = time.monotonic() + 60
    while not found.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError("server did not start:\n" + "".join(server.log))
    return server


def schemathesis(url: str, folder: Path) -> None:
    """Run schemathesis (all checks) over url/openapi.json and assert it finds nothing.

    Bounded for CI: the fuzzing phase, 5 cases per operation. By hand, all phases:
      schemathesis --config-file tests/data/schemathesis.toml run URL/openapi.json \\
          --checks all --max-examples 10
    """
    exe = shutil.which("schemathesis")
    if exe is None:
        pytest.skip("schemathesis is not installed")
    proc = subprocess.run(
        [exe, "--config-file", str(SCHEMATHESIS_CONFIG), "run", url + "/openapi.json",
         "--checks", "all", "--phases", "fuzzing", "--max-examples", "5", "--seed", "1",
         "--no-shrink", "--report-dir", str(folder)],
        capture_output=True, text=True, timeout=300, cwd=folder)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert " passed" in out and "failed" not in out.split("Test cases:")[-1], out[-2000:]
