"""The trainings of a sweep: jobs, leak-free folds, and one job's training.

Each training is a `Job` (variant x repeat x fold). A job loads its data, splits it, fits
the preprocessing on the training part only, trains with `specnet.trainer.train`, and
returns flat metrics and the history. Jobs are independent and seeded, so the results do
not depend on `jobs` or on the order in which they finish. Where the jobs run (this
process, worker processes, a Ray cluster) is up to a backend: `specnet.sweep.backends`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.prepare import Prepared, prepare_arrays, split_indices
from ..data.sources import Arrays, Split
from ..errors import DataError, TrainingError
from ..spec.schema import Spec
from .selection import Scheme, scheme_for

if TYPE_CHECKING:
    from ..track import Callback
    from .load import Sweep


@dataclass(frozen=True)
class Job:
    """One training of a sweep: variant `variant`, seed `spec.seed`, fold `fold` of `cv`."""

    variant: int
    repeat: int
    fold: int
    spec: Spec
    cv: int | None
    scheme: Scheme | None = None
    """Where a cv job's rows come from (held-out rows, nested folds); see selection.py."""

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
    stopped_at: int | None = None
    """The epoch at which a sweep scheduler (asha) stopped it; None: it ran its course."""


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
                jobs.append(Job(v, r, f, spec, sweep.cv, scheme_for(sweep, variant, f)))
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
        idx = job.scheme.indices(arrays.y, spec) if job.scheme is not None else fold_indices(
            arrays.y, job.cv, job.fold, spec.seed, spec.data.split.validation, stratify)
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


def run_job(job: Job, arrays: Arrays | None = None,
            callbacks: Sequence[Callback] = ()) -> JobResult:
    """Train one job and return its result; a diverged training is a result with `error`.

    arrays: the spec's data, already loaded (the Ray backend ships it once through the
    object store); None loads it here (once per process). callbacks: see `train`; one
    returning True stops the training there (a sweep scheduler).
    """
    import torch

    from ..trainer import train

    spec = job.spec
    prepared, sizes = prepare_job(job, arrays if arrays is not None else _arrays(spec))
    result = JobResult(job.key, spec.seed, sizes=sizes, pid=os.getpid())
    try:
        # The sweep's --threads (set in this process) wins over training.threads: auto.
        run = train(spec, None, quiet=True, prepared=prepared, callbacks=callbacks,
                    threads=torch.get_num_threads())
    except TrainingError as exc:
        result.error = str(exc).splitlines()[0]
        return result
    held = "test" if job.cv else "val" if sizes[1] else "test"
    result.values = flat_metrics(run.metrics, held)
    result.history = [{k: float(v) for k, v in row.items() if k not in ("lr", "seconds")}
                      for row in run.history]
    return result


# The process runner moved to backends/local.py; these names stay importable from here.
from .backends.local import execute as execute  # noqa: E402
from .backends.local import plan as plan  # noqa: E402
