"""Asynchronous successive halving (ASHA): stop poor trainings of a sweep early.

Rungs sit at grace_period x reduction_factor^k epochs (k = 0, 1, ... up to max_t). When a
training reaches a rung, its per-epoch metric is compared with those that reached the rung
before it: unless it is in their best 1/reduction_factor, it stops there. The first
trainings to reach a rung always go on. This is Ray Tune's ASHAScheduler (one bracket,
`_Bracket.on_result`), applied to specnet's own trials (one per variant, repeat and fold).

Which trainings are stopped depends on the order in which they reach the rungs, so a sweep
with a scheduler is not reproducible run to run; a sweep without one is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import SpecError
from ..spec.base import did_you_mean

if TYPE_CHECKING:
    from ..spec.load import Source
    from .load import Sweep, Variant
    from .section import Scheduler

_LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse")


@dataclass(frozen=True)
class AshaPlan:
    """A resolved `sweep.scheduler`: the history column, its direction, and the rungs."""

    metric: str
    mode: Literal["min", "max"]
    milestones: tuple[int, ...]
    reduction_factor: float

    def describe(self) -> str:
        """One line for `specnet sweep --dry-run`."""
        rungs = ", ".join(map(str, self.milestones)) or "none (max_t < grace_period)"
        return (f"asha on {self.metric} ({self.mode}): rungs at epochs {rungs}; the best "
                f"1/{self.reduction_factor:g} go on at each (Ray backend)")


def history_columns(variants: list[Variant], metric_names: list[str]) -> list[str]:
    """The per-epoch history columns every variant writes (loss, <m>, val_loss, val_<m>)."""
    cols = ["loss", *metric_names]
    if all(v.spec.data.split.validation > 0 for v in variants):
        cols += ["val_loss", *(f"val_{m}" for m in metric_names)]
    return cols


def _default_metric(sweep_metric: str, columns: list[str]) -> str:
    split, _, base = sweep_metric.partition("_")
    if split in ("train", "val", "test") and base:
        for col in (f"val_{base}", base):
            if col in columns:
                return col
    return "val_loss" if "val_loss" in columns else "loss"


def milestones(grace_period: int, reduction_factor: float, max_t: int) -> tuple[int, ...]:
    """Rung epochs: grace_period x reduction_factor^k up to max_t (Tune's rung formula)."""
    if max_t < grace_period:
        return ()
    n = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return tuple(sorted({math.ceil(grace_period * reduction_factor ** k) for k in range(n)}))


def resolve(section: Scheduler, variants: list[Variant], metric_names: list[str],
            sweep_metric: str) -> AshaPlan:
    """The plan for `section`; ValueError naming the allowed columns for a bad metric."""
    columns = history_columns(variants, metric_names)
    metric = section.metric or _default_metric(sweep_metric, columns)
    if metric not in columns:
        raise ValueError(f"cannot stop on {metric!r}{did_you_mean(metric, columns)}: it is not "
                         f"a per-epoch history column; choose from {', '.join(columns)}")
    mode: Literal["min", "max"]
    if section.mode != "auto":
        mode = section.mode
    else:
        base = metric.removeprefix("val_")
        mode = "min" if base in _LOWER_IS_BETTER else "max"
    max_t = section.max_t or max(v.spec.training.epochs for v in variants)
    return AshaPlan(metric, mode, milestones(section.grace_period, section.reduction_factor,
                                             max_t), section.reduction_factor)


def check_scheduler(section: Scheduler, variants: list[Variant], metric_names: list[str],
                    sweep_metric: str, src: Source) -> None:
    """SpecError located at sweep.scheduler.metric when the metric is not a history column."""
    try:
        resolve(section, variants, metric_names, sweep_metric)
    except ValueError as exc:
        raise SpecError([src.issue(("sweep", "scheduler", "metric"), str(exc))]) from None


def plan_for(sweep: Sweep) -> AshaPlan | None:
    """The sweep's resolved scheduler, or None when it has none."""
    section = sweep.section.scheduler
    if section is None:
        return None
    return resolve(section, sweep.variants, sweep.metric_names, sweep.metric)


@dataclass
class Rungs:
    """The rungs' records; `report` decides whether a training goes on.

    Values are stored as rewards (larger is better: the metric, negated for min), as in
    Tune's bracket.
    """

    plan: AshaPlan
    recorded: dict[int, dict[tuple[int, int, int], float]] = field(default_factory=dict)

    def report(self, trial: tuple[int, int, int], epoch: int, value: float) -> bool:
        """Record `value` of `trial` at rung `epoch`; True when the trial should stop."""
        if epoch not in self.plan.milestones:
            return False
        rung = self.recorded.setdefault(epoch, {})
        if trial in rung:
            return False
        reward = -value if self.plan.mode == "min" else value
        seen = [v for v in rung.values() if math.isfinite(v)]
        stop = False
        if seen:
            cutoff = float(np.percentile(seen, (1 - 1 / self.plan.reduction_factor) * 100))
            stop = reward < cutoff  # a NaN never stops here (nor counts toward a cutoff)
        rung[trial] = reward
        return stop
