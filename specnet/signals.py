"""SIGINT and SIGTERM: end every child process, say what was kept, exit 130 or 143.

The CLI runs each command inside `handled()`: SIGTERM then raises `Terminated` (a
KeyboardInterrupt, like Ctrl-C's SIGINT), so the `finally` blocks on the way out run
(the sweep's worker pool is stopped, temporary folders removed) and nothing is killed
half-way through a rename. A command names what an interruption keeps with
`on_interrupt(...)`; the CLI prints that as one line and exits 128 + the signal number.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

_hint: list[Callable[[], str]] = []


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM."""

    signum = signal.SIGTERM


def exit_code(exc: BaseException) -> int:
    """130 for SIGINT (Ctrl-C), 143 for SIGTERM: 128 + the signal number, as shells do."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def signal_name(exc: BaseException) -> str:
    """'SIGINT' or 'SIGTERM'."""
    return signal.Signals(getattr(exc, "signum", signal.SIGINT)).name


_received: list[int] = []


def _on_term(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Terminated()


def _on_int(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt()


def raise_if_received() -> None:
    """Raise the interruption again when a signal arrived but a library swallowed it
    (uvicorn ends its server on SIGTERM / SIGINT and returns as if all went well)."""
    if _received:
        raise Terminated() if _received[-1] == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGTERM raises Terminated and SIGINT KeyboardInterrupt while the block runs (the
    previous handlers come back afterwards); any interruption hint is cleared at the end."""
    previous: dict[int, Any] = {}
    try:
        previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_term)
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _on_int)
    except ValueError:  # not the main thread (a test runner's thread): leave them alone
        previous.clear()
    _received.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def on_interrupt(hint: Callable[[], str] | str) -> None:
    """Say what an interruption of the running command keeps and how to go on."""
    _hint[:] = [hint if callable(hint) else (lambda: hint)]


def interrupt_message(exc: BaseException) -> str:
    """The one line printed for an interruption: the signal, what was kept, how to resume."""
    try:
        hint = _hint[0]() if _hint else "nothing was written"
    except Exception:  # a hint must never turn an interruption into a traceback
        hint = "nothing was written"
    finally:
        _hint.clear()
    return f"interrupted ({signal_name(exc)}): {hint}"


def ignore_sigint() -> None:
    """In worker processes: Ctrl-C reaches the whole process group, but only the parent
    acts on it (it stops the workers), so no worker prints a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def descendants(pid: int) -> list[int]:
    """Process ids of every descendant of `pid` (children first), from /proc; empty where
    there is no /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += children.get(p, [])
    return out


def _pool_pids(pool: Any) -> list[int]:
    """The pool's workers, the forkserver that forks them, and everything below those
    (and nothing else: other children of this process are not the pool's)."""
    from multiprocessing import forkserver

    processes = getattr(pool, "_processes", None)
    roots = [p.pid for p in processes.values() if p.pid] if isinstance(processes, dict) else []
    server = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if server is not None:
        roots.append(server)
    out: list[int] = []
    for pid in roots:
        for p in [pid, *descendants(pid)]:
            if p not in out:
                out.append(p)
    return out


def stop_pool(pool: Any, timeout: float = 5.0) -> None:
    """End a ProcessPoolExecutor's workers and its forkserver now (their jobs are lost).

    They are sent SIGTERM, then SIGKILL if still there after `timeout` seconds.
    multiprocessing's resource tracker is left alone: it exits by itself once no process
    holds its pipe. Works while the pool is still starting its workers (when its own
    bookkeeping is locked by the thread that submits jobs).
    """
    procs = _pool_pids(pool)
    for pid in reversed(procs):  # workers before the forkserver that forked them
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_running(p) for p in procs):
        time.sleep(0.02)
    for pid in procs:
        if _running(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        pool.shutdown(wait=False, cancel_futures=True)


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a zombie child is left for
    multiprocessing to reap: it checks its forkserver with waitpid)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
