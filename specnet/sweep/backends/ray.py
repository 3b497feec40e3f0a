"""The Ray backend: a sweep's trainings as Ray tasks, on a local Ray or on a cluster.

One task per job (variant x repeat x fold), declaring its resources: `threads` CPUs, and
one GPU when the spec trains on `device: cuda`. Each data set is loaded once here and put
in the object store (`ray.put`); tasks on a node share that copy. A task trains exactly as
the local backend does (`runner.run_job`, seeded, `threads` torch threads), so the metrics
are the same to the last digit.

With `sweep.scheduler: {type: asha}`, tasks report the scheduler's metric at each rung
epoch to one actor that holds the rungs (`asha.Rungs`); the actor tells poor trainings to
stop there.

Ray is imported here only: without it, the error names `pip install 'specnet[ray]'`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import SpecnetError
from ..asha import AshaPlan, Rungs
from ..runner import Job, JobResult, cores, run_job

if TYPE_CHECKING:
    from ...data.sources import Arrays

INSTALL = "pip install 'specnet[ray]'"


def import_ray() -> Any:
    """The `ray` module, or SpecnetError naming the install command."""
    try:
        import ray
    except ImportError:
        raise SpecnetError(f"--backend ray needs Ray, which is not installed: {INSTALL}"
                           ) from None
    return ray


# ---------------------------------------------------------------- in the task


class _Reporter:
    """A task's training callback: the scheduler's metric to the rungs actor at rung epochs;
    True (stop) when the rung cuts this training."""

    def __init__(self, rungs: Any, plan: AshaPlan, key: tuple[int, int, int]) -> None:
        self.rungs = rungs
        self.plan = plan
        self.key = key
        self.stopped_at: int | None = None

    def on_epoch_end(self, row: Mapping[str, float]) -> bool:
        epoch = int(row["epoch"])
        if epoch not in self.plan.milestones:
            return False
        import ray

        value = float(row.get(self.plan.metric, math.nan))
        if ray.get(self.rungs.report.remote(self.key, epoch, value)):
            self.stopped_at = epoch
            return True
        return False


def trial(job: Job, arrays: Arrays, threads: int, rungs: Any = None,
          plan: AshaPlan | None = None) -> JobResult:
    """One training in a Ray worker, with `threads` torch threads (as the local backend)."""
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set in this worker
        torch.set_num_interop_threads(1)
    hook = _Reporter(rungs, plan, job.key) if rungs is not None and plan is not None else None
    result = run_job(job, arrays, [hook] if hook is not None else ())
    if hook is not None and hook.stopped_at is not None and result.error is None:
        result.stopped_at = hook.stopped_at
    return result


# ---------------------------------------------------------------- the driver


@dataclass
class RayBackend:
    """Trainings as Ray tasks.

    threads: CPUs (and torch threads) per training. max_at_once: most trainings in flight
    (0: as many as the cluster's CPUs hold). address: a cluster to join (`ray.init(address=)`,
    e.g. 'auto' or 'ray://head:10001'); None starts a local Ray on this machine's cores
    (unless Ray is already initialised in this process: then that one is used).
    """

    threads: int = 1
    max_at_once: int = 0
    address: str | None = None
    scheduler: AshaPlan | None = None
    name: str = "ray"
    slots: int = field(default=0, init=False)
    """Trainings at once, known once Ray runs."""

    def run(self, jobs: list[Job], done: Callable[[JobResult], None] | None = None
            ) -> list[JobResult]:
        """Run every job on Ray; `done` per finished job, here. Sorted by job key.

        Ray is shut down afterwards (also after an error or Ctrl-C) if this call started it.
        """
        ray = import_ray()
        started = False
        if not ray.is_initialized():
            _init(ray, self.address, self.threads)
            started = True
        try:
            return self._run(ray, jobs, done)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray: Any, jobs: list[Job], done: Callable[[JobResult], None] | None
             ) -> list[JobResult]:
        resources = ray.cluster_resources()
        cpus = int(resources.get("CPU", 0))
        gpus = int(resources.get("GPU", 0))
        if self.threads > cpus:
            raise SpecnetError(f"--threads {self.threads} asks each training for more CPUs "
                               f"than the Ray cluster has ({cpus}): lower --threads")
        wants_gpu = any(j.spec.device == "cuda" for j in jobs)
        if wants_gpu and gpus == 0:
            raise SpecnetError("the sweep trains on device: cuda but the Ray cluster has no "
                               "GPU: use device: cpu (or auto), or join a cluster with GPUs")
        fit = cpus // self.threads
        if wants_gpu:
            fit = min(fit, gpus)
        self.slots = max(1, min(fit, self.max_at_once or fit, len(jobs)))
        remote = ray.remote(max_retries=0)(trial)
        rungs = None
        if self.scheduler is not None:
            rungs = ray.remote(num_cpus=0)(Rungs).remote(self.scheduler)
        data: dict[tuple[str, int], Any] = {}  # one object-store copy per data set

        def submit(job: Job) -> Any:
            key = (job.spec.data.model_dump_json(), job.spec.seed)
            if key not in data:
                data[key] = ray.put(job.spec.data.load(job.spec.seed))
            gpu = 1 if job.spec.device == "cuda" else 0
            return remote.options(num_cpus=self.threads, num_gpus=gpu).remote(
                job, data[key], self.threads, rungs, self.scheduler)

        queue = deque(jobs)
        # One queued per running slot, so that a worker never waits for the driver; a
        # --jobs cap is a hard cap.
        ahead = self.slots if self.max_at_once else 2 * self.slots
        flight: dict[Any, Job] = {}
        results: list[JobResult] = []
        try:
            while queue or flight:
                while queue and len(flight) < ahead:
                    job = queue.popleft()
                    flight[submit(job)] = job
                ready, _ = ray.wait(list(flight), num_returns=1)
                for ref in ready:
                    job = flight.pop(ref)
                    result = _get(ray, ref, job)
                    results.append(result)
                    if done is not None:
                        done(result)
        finally:
            for ref in flight:  # after an error or Ctrl-C: nothing keeps training
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        return sorted(results, key=lambda r: r.key)


@contextlib.contextmanager
def _worker_niceness() -> Iterator[None]:
    """Ray starts its workers at niceness 15 (RAY_worker_niceness): on a shared machine they
    then get a fraction of the CPU that the local backend's processes get. The trainings are
    the sweep's work, so a local Ray started here runs them at the driver's priority (0),
    unless RAY_worker_niceness says otherwise. The raylet reads it once, at ray.init."""
    key = "RAY_worker_niceness"
    before = os.environ.get(key)
    os.environ.setdefault(key, "0")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)


def _init(ray: Any, address: str | None, threads: int) -> None:
    """Start a local Ray on this process's cores, or join the cluster at `address`."""
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING,
             "log_to_driver": False, "configure_logging": True}
    try:
        if address is None:
            with _worker_niceness():
                ray.init(num_cpus=max(cores(), threads), **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as exc:  # Ray raises plain Exception too (a node that timed out)
        with contextlib.suppress(Exception):
            ray.shutdown()  # whatever part of a local Ray did start
        where = f"join the Ray cluster at {address!r}" if address else "start a local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecnetError(f"cannot {where}: {first}") from None


def _get(ray: Any, ref: Any, job: Job) -> JobResult:
    """The task's result; its exception as a SpecnetError (a user error stays itself)."""
    try:
        result: JobResult = ray.get(ref)
        return result
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, SpecnetError):
            raise cause from None
        what = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        raise SpecnetError(f"training {_where(job)} failed on Ray: "
                           f"{what.strip().splitlines()[0]}") from None
    except ray.exceptions.RayError as exc:
        raise SpecnetError(f"training {_where(job)} was lost on Ray (the worker died, ran out "
                           f"of memory or its node left): {type(exc).__name__}") from None


def _where(job: Job) -> str:
    fold = f", fold {job.fold}" if job.cv else ""
    return f"(variant {job.variant}, repeat {job.repeat}{fold})"
