"""Sweeps: grids, random search, cross-validation and repeated comparisons of specs.

    sweep = load_sweep("specs/sweeps/optimizers_digits.yaml")  # every variant validated
    result = run_sweep(sweep, jobs=2)                           # trains, in 2 processes
    print(result.text_table())
    result.write(Path("sweeps") / sweep.name)                   # tables, plot, best.yaml
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import SpecnetError
from .load import Sweep, Variant, load_sweep, sweep_from_source
from .report import SweepResult, VariantResult
from .runner import Job, JobResult, fold_indices, make_jobs, prepare_job
from .section import Override, SweepSection
from .selection import estimate

__all__ = [
    "Job", "JobResult", "Override", "Sweep", "SweepResult", "SweepSection", "Variant",
    "VariantResult", "fold_indices", "load_sweep", "make_jobs", "prepare_job", "run_sweep",
    "sweep_from_source",
]

Progress = Callable[[str], None]


def run_sweep(sweep: Sweep, jobs: int = 1, threads: int = 1,
              progress: Progress | None = None, backend: str = "local",
              address: str | None = None) -> SweepResult:
    """Train every variant of `sweep` (folds x repeats each) and summarise.

    jobs: worker processes (0: one per core; 1: in this process); on Ray, the most
    trainings at once (0: as many as the cluster's CPUs hold). threads: torch threads per
    training, capped locally so processes x threads <= cores. backend: 'local' or 'ray'
    (`specnet.sweep.backends`); address: the Ray cluster to join (None: a local Ray).
    Results are the same for any `jobs` and either backend (every training is seeded and
    runs with `threads` threads); `sweep.scheduler` (Ray only) stops poor trainings early.
    `progress` gets one line per finished variant. Raises SpecnetError when every run fails.
    """
    from .backends import session

    with session(backend, address, threads):
        return _run(sweep, jobs, threads, progress, backend, address)


def _run(sweep: Sweep, jobs: int, threads: int, progress: Progress | None, backend: str,
         address: str | None) -> SweepResult:
    from .asha import plan_for
    from .backends import make_backend

    all_jobs = make_jobs(sweep)
    runner = make_backend(backend, jobs, threads, len(all_jobs), address, plan_for(sweep))
    per_variant = sweep.runs_per_variant
    finished: dict[int, list[JobResult]] = {}
    t0 = time.perf_counter()
    count = [0]

    def done(result: JobResult) -> None:
        runs = finished.setdefault(result.key[0], [])
        runs.append(result)
        if progress is None or len(runs) < per_variant:
            return
        count[0] += 1
        vr = VariantResult(sweep.variants[result.key[0]], runs)
        mean, sd = vr.stat(sweep.metric)
        failed = len(runs) - len(vr.ok)
        note = f", {failed} failed" if failed else ""
        stopped = [r.stopped_at for r in runs if r.stopped_at is not None]
        if stopped:
            note += f", {len(stopped)} stopped by asha at epoch {min(stopped)}+"
        metric = sweep.metric.replace("test_", "cv_") if sweep.cv else sweep.metric
        progress(f"[{count[0]}/{len(sweep.variants)}] {vr.variant.name}: {metric} "
                 f"{mean:.4f} ± {sd:.4f} ({len(runs)} runs{note}, "
                 f"{time.perf_counter() - t0:.1f}s)")

    results = runner.run(all_jobs, done)
    wall = time.perf_counter() - t0
    grouped = [VariantResult(v, [r for r in results if r.key[0] == i])
               for i, v in enumerate(sweep.variants)]
    out = SweepResult(sweep, grouped, wall, runner.slots, runner.threads, backend=runner.name)
    if all(not g.ok for g in grouped):
        first = next(r.error for r in results if r.error)
        raise SpecnetError(f"every training of sweep {sweep.name!r} failed; the first: {first}")
    # The retrainings behind the held-out / nested estimates run on the same backend,
    # without the scheduler (they must run their course).
    out.estimates = estimate(
        out, lambda jobs_: make_backend(backend, jobs, threads, len(jobs_), address).run(jobs_),
        progress)
    out.wall_s = time.perf_counter() - t0
    return out
