"""What keeps `specnet serve` answering: sizes, timeouts, concurrency, the worker pool.

- Sizes: rows per request, body bytes (after decompression too), request-head bytes.
- Timeouts: a connection must deliver a complete request head within `header_timeout`
  seconds of opening (or of its previous response), and the body within `body_timeout`;
  idle keep-alive connections close after `keep_alive` seconds (uvicorn's own timer).
  uvicorn alone arms no timer before the first request, so idle and slowloris sockets
  would stay open for ever: `guarded_protocol` adds the missing ones.
- Concurrency: past `limit_concurrency` requests in flight a request gets 503 at once;
  past `limit_concurrency` open connections the oldest idle ones (no request in flight)
  are closed to make room, so 20,000 idle sockets cannot lock real clients out.
- The worker pool: request bodies over `inline_bytes` are decoded, run and encoded in
  a small thread pool (onnxruntime and numpy release the GIL), so the event loop keeps
  answering health checks while large batches run; more than `max_queue` of them
  waiting is a 503. Smaller requests run inline: their work is shorter than a thread hop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from .protocol import ProtocolError

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Request limits and server timeouts; every field has a default that suits a small
    model on a few cores. Times are in seconds, sizes in bytes."""

    max_rows: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: int = 5
    limit_concurrency: int = 1024
    max_queue: int = 64
    pool_threads: int = 2
    inline_bytes: int = 64 * 1024
    graceful_timeout: int = 30

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for passing to worker processes)."""
        return asdict(self)


class WorkerPool:
    """A bounded thread pool for inference off the event loop.

    At most `threads` jobs run at once and `max_queue` wait; one more is a 503.
    """

    def __init__(self, threads: int, max_queue: int) -> None:
        self.executor = ThreadPoolExecutor(max(1, threads), thread_name_prefix="specnet-infer")
        self.max_pending = max(1, threads) + max(0, max_queue)
        self.pending = 0

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` in the pool; ProtocolError 503 when the pool and its queue are full."""
        if self.pending >= self.max_pending:
            raise ProtocolError(503, f"server busy: {self.pending} large requests are "
                                     "already running or queued; retry shortly")
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn)
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        """Finish running jobs, then stop the threads."""
        self.executor.shutdown(wait=True)


class InFlight:
    """Pure ASGI middleware: past `limit` requests in flight, 503 with a JSON error at once."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.count >= self.limit:
            body = (b'{"error":"server busy: ' + str(self.count).encode()
                    + b' requests in flight (--limit-concurrency); retry shortly"}')
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()), (b"retry-after", b"1")]})
            await send({"type": "http.response.body", "body": body})
            return
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1


# ---------------------------------------------------------------- connections

_settings = Limits()


def configure(limits: Limits) -> None:
    """Set the limits the connection guard of this process enforces."""
    global _settings
    _settings = limits


def _base_protocol() -> type[asyncio.Protocol]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is in the serve extra
        from uvicorn.protocols.http.h11_impl import H11Protocol
        return H11Protocol
    return HttpToolsProtocol


_Base: Any = _base_protocol()
_JSON = b"content-type: application/json\r\n"


class GuardedHTTP(_Base):
    """uvicorn's HTTP protocol plus a request-head deadline, a head-size cap and
    eviction of idle connections past the connection limit."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._head_bytes = 0
        self._idle_since = time.monotonic()
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()
        if len(self.connections) > _settings.limit_concurrency:
            self._evict()

    def _idle(self) -> bool:
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm(self) -> None:
        self._cancel()
        self._deadline = self.loop.call_later(_settings.header_timeout, self._expire)

    def _cancel(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        # A request already being answered is not cut off; one still sending its head is.
        if self._idle() and not self.transport.is_closing():
            self._reject(408, "request head not received within "
                              f"{_settings.header_timeout:g} s")

    def _reject(self, status: int, message: str) -> None:
        body = b'{"error":"' + message.encode() + b'"}'
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        try:
            self.transport.write(b"HTTP/1.1 %d %s\r\n" % (status, reason) + _JSON
                                 + b"connection: close\r\ncontent-length: %d\r\n\r\n"
                                 % len(body) + body)
        finally:
            self.transport.close()

    def _evict(self) -> None:
        """Close the oldest idle connections until this one fits under the limit."""
        idle = sorted((c for c in self.connections
                       if c is not self and isinstance(c, GuardedHTTP) and c._idle()),
                      key=lambda c: c._idle_since)
        excess = len(self.connections) - _settings.limit_concurrency
        # Close a few extra at once, so a flood does not sort the set on every accept.
        for c in idle[:max(excess, min(len(idle), 64))]:
            c._cancel()
            c.transport.close()
            self.connections.discard(c)

    def data_received(self, data: bytes) -> None:
        waiting = self._idle()
        super().data_received(data)
        if not self._idle():
            self._cancel()  # the head is complete: the app times the body itself
            self._head_bytes = 0
        elif waiting and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > _settings.max_header_bytes:
                self._reject(431, f"request head over {_settings.max_header_bytes} bytes")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._idle_since = time.monotonic()
            self._head_bytes = 0
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)
