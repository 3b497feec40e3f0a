"""gRPC against HTTP (binary and JSON tensors), side by side in one run, on one
`specnet serve --grpc-port` process.

One server process serves both protocols for the same iris model (seeded weights; speed does
not depend on training), on 127.0.0.1. The clients are the real third-party ones:
tritonclient.grpc (default arguments: raw tensor bytes) for gRPC, and tritonclient.http with
its defaults (binary tensor data both ways) and with JSON tensors (binary_data=False on the
input and the output), each client thread with its own connection. With 2+ cores the server runs on core 0 and the clients on core 1. Rounds alternate
between the protocols and each one's best round is kept (a shared machine makes single
rounds noisy). In-process onnxruntime (one thread, on the clients' core) on the same batch is
the reference. The server's CPU time per request (from /proc) is reported too: it barely
depends on what else runs, and it shows the server's cost apart from the clients' (Python
clients that encode and decode JSON tensors are slower than the server that parses them).

  1,000 rows   requests carrying 1,000 rows, from --clients threads: rows/s
  single row   requests carrying 1 row: requests/s, p50 / p99 latency

    python bench/grpc.py                 # 3 rounds of 100 batch + 1,000 single-row requests
    python bench/grpc.py --rounds 5 --requests 2000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as `python bench/grpc.py`, this file's folder comes first on sys.path and this file
# would shadow the grpc package that tritonclient imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
BATCH = 1000


def build_model(folder: Path) -> None:
    """Export the iris network with seeded initial weights."""
    from specnet.compile import compile_spec
    from specnet.data.prepare import prepare
    from specnet.export import export_model
    from specnet.spec.validate import load_spec

    spec = load_spec(ROOT / "specs" / "iris.yaml").spec
    export_model(spec, compile_spec(spec).eval(), prepare(spec), folder)


@contextmanager
def server(model: Path, pin: bool) -> Iterator[tuple[str, str, int]]:
    """`specnet serve MODEL --grpc-port 0`; yield (HTTP URL, gRPC address, pid)."""
    cmd = [sys.executable, "-m", "specnet.cli", "serve", str(model), "--port", "0",
           "--grpc-port", "0", "--threads", "1"]
    preexec = (lambda: os.sched_setaffinity(0, {0})) if pin else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, preexec_fn=preexec)
    found: dict[str, str] = {}
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            for key, pattern in (("grpc", r"gRPC \S+ on (127\.0\.0\.1:\d+)"),
                                 ("http", r"Uvicorn running on (http://127\.0\.0\.1:\d+)")):
                m = re.search(pattern, line)
                if m:
                    found[key] = m.group(1)
            if len(found) == 2:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(90):
            raise RuntimeError("server did not start:\n" + "".join(log))
        yield found["http"], found["grpc"], proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _grpc_caller(address: str, rows: np.ndarray) -> Callable[[], Callable[[], None]]:
    import tritonclient.grpc as tg

    def make() -> Callable[[], None]:
        client = tg.InferenceServerClient(address)
        tensor = tg.InferInput("input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)

        def call() -> None:
            out = client.infer("iris", [tensor]).as_numpy("probabilities")
            assert out is not None and len(out) == len(rows)

        return call

    return make


def _http_caller(url: str, rows: np.ndarray, binary: bool = False
                 ) -> Callable[[], Callable[[], None]]:
    """tritonclient.http with JSON tensors, or (binary) with its defaults: binary tensor
    data in the request and the response."""
    import tritonclient.http as th

    def make() -> Callable[[], None]:
        client = th.InferenceServerClient(url.removeprefix("http://"), network_timeout=60)
        tensor = th.InferInput("input", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        wanted = [th.InferRequestedOutput("probabilities", binary_data=binary)]

        def call() -> None:
            out = client.infer("iris", [tensor], outputs=wanted).as_numpy("probabilities")
            assert out is not None and len(out) == len(rows)

        return call

    return make


def load(make: Callable[[], Callable[[], None]], requests: int,
         clients: int) -> tuple[float, list[float]]:
    """Send `requests` calls from `clients` threads, each with its own client made in that
    thread (tritonclient.http's gevent client must stay in its thread); (seconds,
    per-call latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    share = [requests // clients + (i < requests % clients) for i in range(clients)]

    def worker(n: int) -> None:
        call = make()
        call()  # connect and warm up
        ready.wait()
        mine = []
        for _ in range(n):
            t = time.perf_counter()
            call()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in share]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(model: Path, rows: np.ndarray, seconds: float = 2.0) -> float:
    """rows/s of onnxruntime in this process (one thread) on the same batch."""
    from specnet.runtime import Runtime

    rt = Runtime(model, threads=1)
    rt.run(rows)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        rt.run(rows)
        n += 1
    return n * len(rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000,
                        help="single-row requests per protocol and round")
    parser.add_argument("--batch-requests", type=int, default=100,
                        help="1,000-row requests per protocol and round")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true", help="do not pin server / client")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "grpc.json")
    args = parser.parse_args()
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    rng = np.random.default_rng(0)
    batch = rng.normal(5, 1, size=(BATCH, 4)).astype(np.float32)
    one = batch[:1]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "iris"
        build_model(model)
        ceiling = 0.0
        if pin:
            os.sched_setaffinity(0, {1})
        best: dict[str, dict[str, Any]] = {}
        with server(model, pin) as (url, address, pid):
            makers = {"grpc": (_grpc_caller(address, batch), _grpc_caller(address, one)),
                      "http_binary": (_http_caller(url, batch, True),
                                      _http_caller(url, one, True)),
                      "http_json": (_http_caller(url, batch), _http_caller(url, one))}
            for rnd in range(args.rounds):
                ceiling = max(ceiling, in_process(model, batch, seconds=1.0))
                for name, (make_batch, make_one) in makers.items():
                    cpu = cpu_seconds(pid)
                    secs, _ = load(make_batch, args.batch_requests, args.clients)
                    cpu_batch = (cpu_seconds(pid) - cpu) / (args.batch_requests + args.clients)
                    rows_s = args.batch_requests * BATCH / secs
                    cpu = cpu_seconds(pid)
                    secs1, lat = load(make_one, args.requests, args.clients)
                    cpu_one = (cpu_seconds(pid) - cpu) / (args.requests + args.clients)
                    req_s = args.requests / secs1
                    q = statistics.quantiles(lat, n=100)
                    got = {"rows_per_s": rows_s, "single_req_per_s": req_s,
                           "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3,
                           "server_ms_cpu_batch": cpu_batch * 1e3,
                           "server_ms_cpu_single": cpu_one * 1e3}
                    print(f"round {rnd + 1} {name:<9} {rows_s:>10,.0f} rows/s  "
                          f"{req_s:>7,.0f} req/s  p50 {got['p50_ms']:.2f} ms  "
                          f"p99 {got['p99_ms']:.2f} ms  server CPU/request "
                          f"{got['server_ms_cpu_batch']:.3f} ms (1,000 rows), "
                          f"{got['server_ms_cpu_single']:.3f} ms (1 row)", file=sys.stderr)
                    old = best.get(name)
                    best[name] = {k: (max if k.endswith("per_s") else min)(
                        v, old[k]) if old else v for k, v in got.items()}
    g, h, b = best["grpc"], best["http_json"], best["http_binary"]
    print(f"\nin-process onnxruntime, 1,000-row batch: {ceiling:,.0f} rows/s")
    print(f"{'':<10} {'rows/s (1,000-row)':>19} {'% of ort':>9} {'1-row req/s':>12} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'server CPU ms/req (1,000 / 1 row)':>34}")
    for name, r in best.items():
        print(f"{name:<10} {r['rows_per_s']:>19,.0f} {100 * r['rows_per_s'] / ceiling:>8.1f}% "
              f"{r['single_req_per_s']:>12,.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
              f"{r['server_ms_cpu_batch']:>24.3f} / {r['server_ms_cpu_single']:.3f}")
    print(f"\ngRPC / HTTP JSON: {g['rows_per_s'] / h['rows_per_s']:.2f}x rows/s on 1,000-row "
          f"requests, {g['single_req_per_s'] / h['single_req_per_s']:.2f}x single-row req/s; "
          f"server CPU per 1,000-row request {h['server_ms_cpu_batch'] / g['server_ms_cpu_batch']:.1f}x "
          f"less, per single-row request "
          f"{h['server_ms_cpu_single'] / g['server_ms_cpu_single']:.1f}x less")
    print(f"gRPC / HTTP binary: {g['rows_per_s'] / b['rows_per_s']:.2f}x rows/s on 1,000-row "
          f"requests, {g['single_req_per_s'] / b['single_req_per_s']:.2f}x single-row req/s; "
          f"server CPU per 1,000-row request {b['server_ms_cpu_batch'] / g['server_ms_cpu_batch']:.1f}x "
          f"less, per single-row request "
          f"{b['server_ms_cpu_single'] / g['server_ms_cpu_single']:.1f}x less")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"in_process_rows_per_s": ceiling, **best,
                                     "pinned": pin, "clients": args.clients}, indent=2))


if __name__ == "__main__":
    main()
