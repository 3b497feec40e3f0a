"""`specnet serve` under pressure: idle and slowloris sockets, limits, large batches,
SIGTERM. A real server on 127.0.0.1, raw sockets and httpx as the clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _exports import exported
from _server import Server, start

from specnet.serve.limits import WorkerPool
from specnet.serve.protocol import ProtocolError


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("iris", tmp_path_factory)


@pytest.fixture(scope="module")
def guarded(iris: Path) -> Iterator[Server]:
    srv = start(iris, "--threads", "1", "--limit-concurrency", "100", "--header-timeout", "1",
                "--body-timeout", "2")
    yield srv
    srv.stop()


def _addr(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def _health_ms(url: str) -> float:
    t = time.perf_counter()
    r = httpx.get(url + "/v2/health/ready", timeout=10)
    assert r.status_code == 200, r.text
    return (time.perf_counter() - t) * 1e3


def test_idle_and_slowloris_sockets_cannot_lock_the_server(guarded: Server) -> None:
    # A scaled-down flood (CI): 300 idle sockets against a limit of 100 connections, and
    # 30 slowloris sockets that dribble a request head byte by byte.
    idle = [socket.create_connection(_addr(guarded)) for _ in range(300)]
    slow = [socket.create_connection(_addr(guarded)) for _ in range(30)]
    try:
        for s in slow:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        times = []
        for _ in range(20):
            for s in slow:
                with contextlib.suppress(OSError):  # closed by the server: as it should be
                    s.sendall(b"X")
            times.append(_health_ms(guarded.url))
        assert max(times) < 2000, times
        # Past the header timeout (1 s) every slowloris socket has been answered 408 or closed.
        time.sleep(1.5)
        for s in slow:
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except (ConnectionResetError, TimeoutError):
                data = b""
            assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:80]
        # The idle flood was trimmed to the limit (oldest first), so the earliest are closed.
        idle[0].settimeout(5)
        assert idle[0].recv(1) == b""
    finally:
        for s in idle + slow:
            s.close()
    assert _health_ms(guarded.url) < 2000


def test_an_oversized_request_head_is_431(guarded: Server) -> None:
    with socket.create_connection(_addr(guarded)) as s:
        s.settimeout(10)
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(40):
                s.sendall(b"X-Pad: " + b"a" * 4000 + b"\r\n")
        except OSError:
            pass
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 431") and b'"error"' in data


def _hold(server: Server, n: int) -> list[socket.socket]:
    """`n` requests in flight: heads sent, bodies still to come."""
    held = []
    for _ in range(n):
        s = socket.create_connection(_addr(server))
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 40\r\n\r\n{\"rows\": ")
        held.append(s)
    return held


def test_past_the_concurrency_limit_a_503_comes_at_once(iris: Path) -> None:
    srv = start(iris, "--threads", "1", "--limit-concurrency", "3")
    try:
        held = _hold(srv, 3)
        time.sleep(0.5)
        t = time.perf_counter()
        r = httpx.get(srv.url + "/v2/health/live", timeout=10)
        assert r.status_code == 503 and "--limit-concurrency" in r.json()["error"]
        assert time.perf_counter() - t < 2
        for s in held:
            s.close()
        time.sleep(0.5)
        assert httpx.get(srv.url + "/v2/health/live", timeout=10).status_code == 200
    finally:
        srv.stop()


def test_a_slow_body_gets_408(guarded: Server) -> None:
    (s,) = _hold(guarded, 1)
    data = b""
    with s:
        s.settimeout(10)
        while b"not received" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 408") and b"not received within 2 s" in data


LOAD = """
import json, sys, threading, httpx
rows = [[4.1, 3.2, 1.5, 0.3]] * 10_000
body = json.dumps({"rows": rows}).encode()
def load():
    with httpx.Client(base_url=sys.argv[1], timeout=60) as c:
        while True:
            r = c.post("/predict", content=body, headers={"content-type": "application/json"})
            sys.stdout.write(f"{r.status_code}\\n")
            sys.stdout.flush()
for _ in range(2):
    threading.Thread(target=load, daemon=True).start()
sys.stdin.read()
"""


def _health_p99(url: str, n: int = 100) -> list[float]:
    with httpx.Client(base_url=url, timeout=10) as c:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            assert c.get("/v2/health/ready").status_code == 200
            times.append((time.perf_counter() - t0) * 1e3)
            time.sleep(0.01)
    return sorted(times)


def test_health_checks_stay_fast_while_large_batches_run(guarded: Server) -> None:
    # The load comes from another process, so this one's GIL does not slow the checks.
    idle = _health_p99(guarded.url)
    proc = subprocess.Popen([sys.executable, "-c", LOAD, guarded.url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("200")  # the load is running
        busy = _health_p99(guarded.url)
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=30)
        codes = set(proc.stdout.read().split())
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
    assert set("".join(codes).replace("200", "")) == set()
    p50, p99, base50, base99 = (statistics.median(busy), busy[98], statistics.median(idle),
                                idle[98])
    report = (f"health under load: p50 {p50:.1f} ms, p99 {p99:.1f} ms; without load: p50 "
              f"{base50:.1f} ms, p99 {base99:.1f} ms")
    # Inline inference made every check wait for whole batches (a median of ~360 ms).
    assert p50 < base50 + 25, report
    # On an overloaded machine the OS, not the server, sets the tail: the 50 ms p99 bound
    # is asserted where checks without load are quick.
    if base99 < 5:
        assert p99 < 50, report


def test_sigterm_drains_a_request_in_flight(iris: Path) -> None:
    srv = start(iris, "--threads", "1")
    body = json.dumps({"rows": [[5.1, 3.5, 1.4, 0.2]]}).encode()
    with socket.create_connection(_addr(srv)) as s:
        s.settimeout(20)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.5)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert srv.proc.poll() is None  # still draining
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(_addr(srv), timeout=2).close()
        s.sendall(body[10:])
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b'"labels"' in data
    # Drained first; then specnet exits 143 with its one line (specnet.signals).
    assert srv.proc.wait(timeout=30) == 128 + signal.SIGTERM
    srv.stop()
    assert any("Finished server process" in line for line in srv.log)


def test_the_worker_pool_is_bounded() -> None:
    gate = threading.Event()

    async def main() -> tuple[str, int]:
        pool = WorkerPool(threads=1, max_queue=1)
        running = [asyncio.ensure_future(pool.run(gate.wait)) for _ in range(2)]
        await asyncio.sleep(0.1)
        try:
            await pool.run(lambda: True)
            message = ""
        except ProtocolError as exc:
            message, status = str(exc), exc.status
        gate.set()
        assert await asyncio.gather(*running) == [True, True]
        assert await pool.run(lambda: 7) == 7  # room again
        pool.shutdown()
        return message, status

    message, status = asyncio.run(main())
    assert status == 503 and "server busy" in message
