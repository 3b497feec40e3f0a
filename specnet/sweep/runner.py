"""Run the trainings of a sweep: leak-free folds, serial or in worker processes.

Each training is a `Job` (variant x repeat x fold). A job loads its data, splits it, fits
the preprocessing on the training part only, trains with `specnet.trainer.train`, and
returns flat metrics and the history. Jobs are independent and seeded, so the results do
not depend on `jobs` or on the order in which they finish.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.prepare import Prepared, prepare_arrays, split_indices
from ..data.sources import Arrays, Split
from ..errors import DataError, SpecnetError, TrainingError
from ..spec.schema import Spec

if TYPE_CHECKING:
    from .load import Sweep


@dataclass(frozen=True)
class Job:
    """One training of a sweep: variant `variant`, seed `spec.seed`, fold `fold` of `cv`."""

    variant: int
    repeat: int
    fold: int
    spec: Spec
    cv: int | None

    @property
    def key(self) -> tuple[int, int, int]:
        """Sort key: (variant, repeat, fold)."""
        return (self.variant, self.repeat, self.fold)


@dataclass
class JobResult:
    """What one training gives back: flat metrics, the history, or the error that stopped it.

    values: train_<m>, val_<m>, test_<m> (the scored fold with cv), gap_<m>, time_s, epochs.
    sizes: rows in (train, validation, test/scored fold).
    """

    key: tuple[int, int, int]
    seed: int
    values: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    sizes: tuple[int, int, int] = (0, 0, 0)
    error: str | None = None
    pid: int = 0
    """The process that trained it (this one, or a worker)."""


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def make_jobs(sweep: Sweep) -> list[Job]:
    """Every training of the sweep, variant by variant (seeds: spec.seed + repeat)."""
    jobs = []
    for v, variant in enumerate(sweep.variants):
        for r in range(sweep.section.repeats):
            spec = variant.spec.model_copy(update={"seed": variant.spec.seed + r})
            for f in range(sweep.cv or 1):
                jobs.append(Job(v, r, f, spec, sweep.cv))
    return jobs


# ---------------------------------------------------------------- folds


def fold_indices(y: np.ndarray, k: int, fold: int, seed: int, validation: float,
                 stratify: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, scored) row indices for fold `fold` of a seeded k-fold split.

    The scored fold is held out whole; the validation rows (for early stopping) are an
    inner split of the remaining rows, so nothing about the scored fold reaches training.
    Stratified on `y` (class indices) when `stratify`, plain KFold otherwise.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(y)
    splitter = (StratifiedKFold(k, shuffle=True, random_state=seed) if stratify
                else KFold(k, shuffle=True, random_state=seed))
    try:
        rest, scored = list(splitter.split(np.zeros((n, 1)), y if stratify else None))[fold]
    except ValueError as exc:
        raise DataError(f"cannot make {k} folds of {n} rows: {exc}") from None
    inner = Split(validation=validation, test=0.0, stratify=stratify)
    tr, va, _ = split_indices(len(rest), inner, seed, y[rest] if stratify else None)
    return np.sort(rest[tr]), np.sort(rest[va]), np.sort(scored)


def prepare_job(job: Job, arrays: Arrays) -> tuple[Prepared, tuple[int, int, int]]:
    """Split and scale the arrays for `job` (scalers fitted on its training rows only)."""
    spec = job.spec
    regression = spec.task == "regression"
    if job.cv is None:
        prepared = prepare_arrays(spec.data, arrays, spec.seed, regression)
    else:
        stratify = spec.data.split.stratify and not regression
        idx = fold_indices(arrays.y, job.cv, job.fold, spec.seed, spec.data.split.validation,
                           stratify)
        prepared = prepare_arrays(spec.data, arrays, spec.seed, regression, *idx)
    sizes = (len(prepared.X_train), len(prepared.X_val), len(prepared.X_test))
    return prepared, sizes


# ---------------------------------------------------------------- one job

_CACHE: dict[tuple[str, int], Arrays] = {}


def _arrays(spec: Spec) -> Arrays:
    """The spec's data, loaded once per process for each (source, seed)."""
    key = (spec.data.model_dump_json(), spec.seed)
    if key not in _CACHE:
        if len(_CACHE) >= 4:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = spec.data.load(spec.seed)
    return _CACHE[key]


def flat_metrics(metrics: dict[str, Any], held: str) -> dict[str, float]:
    """Run.metrics -> {train_<m>, val_<m>, test_<m>, gap_<m>, time_s, epochs}.

    gap_<m> is train minus `held` ('val', or 'test' for the scored fold of a cv sweep).
    """
    out: dict[str, float] = {}
    for split in ("train", "val", "test"):
        for name, value in (metrics.get(split) or {}).items():
            out[f"{split}_{name}"] = float(value) if value is not None else math.nan
    for name in metrics.get("train") or {}:
        if f"{held}_{name}" in out:
            out[f"gap_{name}"] = out[f"train_{name}"] - out[f"{held}_{name}"]
    out["time_s"] = float(metrics.get("training_time_s", math.nan))
    out["epochs"] = float(metrics.get("epochs_run", math.nan))
    return out


def run_job(job: Job) -> JobResult:
    """Train one job and return its result; a diverged training is a result with `error`."""
    import torch

    from ..trainer import train

    spec = job.spec
    prepared, sizes = prepare_job(job, _arrays(spec))
    result = JobResult(job.key, spec.seed, sizes=sizes, pid=os.getpid())
    try:
        # The sweep's --threads (set in this process) wins over training.threads: auto.
        run = train(spec, None, quiet=True, prepared=prepared, threads=torch.get_num_threads())
    except TrainingError as exc:
        result.error = str(exc).splitlines()[0]
        return result
    held = "test" if job.cv else "val" if sizes[1] else "test"
    result.values = flat_metrics(run.metrics, held)
    result.history = [{k: float(v) for k, v in row.items() if k not in ("lr", "seconds")}
                      for row in run.history]
    return result


# ---------------------------------------------------------------- execution


def _init_worker(threads: int) -> None:
    import torch

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
