"""The local backend: a sweep's trainings in this process and in worker processes.

This process is one of the workers; `--jobs N` adds N - 1 worker processes started from a
forkserver that has torch and the trainer imported already. What `specnet sweep` did
before there were backends, unchanged.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ...errors import SpecnetError
from ..runner import Job, JobResult, cores, run_job


@dataclass
class LocalBackend:
    """Trainings on `processes` local processes (this one included), `threads` torch
    threads each."""

    processes: int
    threads: int
    name: str = "local"

    @property
    def slots(self) -> int:
        """Trainings that run at once."""
        return self.processes

    def run(self, jobs: list[Job], done: Callable[[JobResult], None] | None = None
            ) -> list[JobResult]:
        """Run every job; `done` is called once per finished job. Sorted by job key."""
        return execute(jobs, self.processes, self.threads, done)




def _init_worker(threads: int) -> None:
    import torch

    from ...signals import ignore_sigint

    ignore_sigint()  # Ctrl-C reaches the process group: the parent stops the workers

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)


def _context() -> multiprocessing.context.BaseContext:
    """forkserver where there is one, spawn elsewhere: never a fork of a process that may
    already run torch threads. The forkserver imports torch and the trainer once, so
    workers start without paying for those imports again."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["specnet.sweep._preload"])
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - Windows


def plan(jobs: int, threads: int, n_jobs: int) -> tuple[int, int]:
    """(processes, threads per process) with processes x threads <= cores.

    jobs 0 means one process per core; never more processes than trainings.
    """
    n = cores()
    procs = n if jobs <= 0 else min(jobs, n)
    procs = max(1, min(procs, n_jobs))
    return procs, max(1, min(threads, n // procs))


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute(jobs: list[Job], processes: int, threads: int,
            done: Callable[[JobResult], None] | None = None) -> list[JobResult]:
    """Run `jobs` on `processes` processes, each training with `threads` torch threads.

    This process is one of them: it trains jobs from the end of the list while a feeder
    thread hands jobs from the front to `processes - 1` worker processes, two at a time
    each (one running, one queued). So this process starts at once, while the workers
    still import torch, and at the end nobody waits for more than one job.
    `done` is called once per finished job (from either thread, never both at once).
    Results come back sorted by job key.
    """
    results: list[JobResult] = []
    lock = threading.Lock()

    def finish(result: JobResult) -> None:
        with lock:
            results.append(result)
            if done is not None:
                done(result)

    queue = deque(jobs)
    with _torch_threads(threads):
        if processes <= 1:
            while queue:
                finish(run_job(queue.popleft()))
            return results
        helpers = processes - 1
        pool = ProcessPoolExecutor(helpers, mp_context=_context(), initializer=_init_worker,
                                   initargs=(threads,))
        failed: list[BaseException] = []
        feeder = threading.Thread(target=_feed, args=(pool, helpers, queue, lock, finish,
                                                      failed), daemon=True)
        feeder.start()
        try:
            while not failed:
                with lock:
                    job = queue.pop() if queue else None
                if job is None:
                    break
                finish(run_job(job))
            feeder.join()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: end the workers now, not after their jobs
            from ...signals import stop_pool

            with lock:
                queue.clear()
            stop_pool(pool)
            raise
        finally:
            with lock:
                queue.clear()  # stops the feeder after an error or Ctrl-C here
            pool.shutdown(wait=True, cancel_futures=True)
            feeder.join()
        if failed:
            raise failed[0]
    return sorted(results, key=lambda r: r.key)


def _feed(pool: ProcessPoolExecutor, helpers: int, queue: deque[Job], lock: threading.Lock,
          finish: Callable[[JobResult], None], failed: list[BaseException]) -> None:
    """Keep each worker process one job ahead, from the front of `queue`, until it is empty.

    Runs on a thread: the first submit blocks until the pool's processes exist (the
    forkserver imports torch first), and this process trains meanwhile.
    """
    flight: set[Future[JobResult]] = set()
    try:
        while True:
            while len(flight) < 2 * helpers:
                with lock:  # not held while submitting: the first submit takes seconds
                    job = queue.popleft() if queue else None
                if job is None:
                    break
                flight.add(pool.submit(run_job, job))
            if not flight:
                return
            finished, flight = wait(flight, return_when=FIRST_COMPLETED)
            for fut in finished:
                finish(_result(fut))
    except BaseException as exc:  # handed to the main thread
        failed.append(exc)


def _result(fut: Future[JobResult]) -> JobResult:
    try:
        return fut.result()  # re-raises a worker's exception here
    except BrokenProcessPool:
        raise SpecnetError(
            "a sweep worker process died: it could not start (a script that calls run_sweep "
            "needs the `if __name__ == '__main__':` guard), ran out of memory, or was killed; "
            "with --jobs 1 everything trains in this process and shows the error") from None
