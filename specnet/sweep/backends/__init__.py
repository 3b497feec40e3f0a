"""Where a sweep's trainings run: one interface, the same results.

    backend = make_backend("local", jobs=2, threads=1, n_jobs=len(jobs))   # processes here
    backend = make_backend("ray", jobs=0, threads=1, n_jobs=len(jobs),
                           address="auto")                                 # a Ray cluster
    results = backend.run(jobs, done)   # one JobResult per job, sorted by job key

Every job is seeded and trains with `threads` torch threads wherever it runs, so both
backends give the same metrics to the last digit (the training times differ).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from ...errors import SpecnetError
from ..runner import Job, JobResult

if TYPE_CHECKING:
    from ..asha import AshaPlan

BACKENDS = ("local", "ray")
"""The backends `specnet sweep --backend` accepts."""


class Backend(Protocol):
    """Runs a sweep's jobs and hands back their results."""

    name: str
    threads: int

    @property
    def slots(self) -> int:
        """Trainings that run at once (known after `run` starts, for Ray)."""
        ...

    def run(self, jobs: list[Job], done: Callable[[JobResult], None] | None = None
            ) -> list[JobResult]:
        """Run every job; call `done` once per finished job (on the caller's side).
        Returns the results sorted by job key."""
        ...


def make_backend(name: str, jobs: int, threads: int, n_jobs: int, address: str | None = None,
                 scheduler: AshaPlan | None = None) -> Backend:
    """The backend `name` ('local' or 'ray') for `n_jobs` trainings.

    jobs: local worker processes (0: one per core), or on Ray the most trainings at once
    (0: as many as the cluster's CPUs hold). threads: torch threads per training.
    address: the Ray cluster to join (None starts a local Ray). scheduler: early
    termination (Ray only).
    """
    if name == "local":
        if address is not None:
            raise SpecnetError("--address names a Ray cluster: use it with --backend ray")
        if scheduler is not None:
            raise SpecnetError(
                "sweep.scheduler (asha) stops trainings early on the Ray backend only: run "
                "with --backend ray, or remove sweep.scheduler to train every variant fully")
        from .local import LocalBackend, plan

        return LocalBackend(*plan(jobs, threads, n_jobs))
    if name == "ray":
        from .ray import RayBackend

        return RayBackend(threads=threads, max_at_once=jobs, address=address,
                          scheduler=scheduler)
    raise SpecnetError(f"unknown sweep backend {name!r}; choose from {', '.join(BACKENDS)}")


@contextlib.contextmanager
def session(name: str, address: str | None, threads: int) -> Iterator[None]:
    """One Ray for all of a sweep's trainings (the sweep's and its estimates'), started here
    and shut down afterwards unless Ray already runs in this process; local: nothing."""
    if name != "ray":
        yield
        return
    from .ray import _init, import_ray

    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    _init(ray, address, threads)
    try:
        yield
    finally:
        ray.shutdown()
