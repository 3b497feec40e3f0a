"""The `sweep:` section: what a sweep varies, and its expansion into points.

    sweep:
      grid: {optimizer.type: [sgd, adam], model[0].units: [8, 32]}   # every combination
      variants: {small: {model.0.units: 8}, wide: {model.0.units: 256}}  # named overrides
      random: {trials: 8, seed: 0, params: {optimizer.lr: {loguniform: [0.0001, 0.1]}}}
      cv: 5            # k-fold cross-validation (stratified for classification) on the rows
                       # left after the spec's test split is held out; or in full:
      cv: {folds: 5, holdout: true, nested: 3}
      repeats: 3       # seeds seed, seed+1, ...

`expand` turns the section into named points, each a list of `Override`s (path, value,
and where the sweep file set it); `load.py` applies them to the base spec and validates.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..spec.base import Strict, did_you_mean
from ..spec.load import Path_, format_path
from .paths import parse_path

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

# ---------------------------------------------------------------- the section model


class Distribution(Strict):
    """One random-search distribution: exactly one of choice, uniform, loguniform, int."""

    choice: list[Any] | None = Field(None, min_length=1)
    """Pick one of these values with equal probability."""
    uniform: tuple[float, float] | None = None
    """A float drawn uniformly from [low, high]."""
    loguniform: tuple[float, float] | None = None
    """A float whose logarithm is uniform on [log low, log high] (learning rates)."""
    int_: tuple[int, int] | None = Field(None, alias="int")
    """An integer drawn uniformly from low..high, both included."""

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [k for k in ("choice", "uniform", "loguniform", "int_") if getattr(self, k)
                 is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, uniform, loguniform, int "
                             f"(got {len(given)})")
        for k in ("uniform", "loguniform", "int_"):
            bounds = getattr(self, k)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{k.rstrip('_')}: low must be below high, got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform bounds must be above 0")
        return self

    def sample(self, rng: np.random.Generator) -> Any:
        """One draw; floats keep 4 significant digits so names and specs agree."""
        if self.choice is not None:
            return copy.deepcopy(self.choice[int(rng.integers(len(self.choice)))])
        if self.int_ is not None:
            return int(rng.integers(self.int_[0], self.int_[1] + 1))
        if self.uniform is not None:
            value = rng.uniform(*self.uniform)
        else:
            assert self.loguniform is not None
            value = math.exp(rng.uniform(*np.log(self.loguniform)))
        return float(f"{value:.4g}")


class RandomSearch(Strict):
    """Random search: `trials` draws from the distributions in `params`."""

    trials: int = Field(..., ge=1, le=10_000)
    """Number of variants to draw."""
    seed: int = Field(0, ge=0)
    """Seed of the draws (the training seeds come from the spec and `repeats`)."""
    params: dict[str, Distribution] = Field(..., min_length=1)
    """Path -> distribution; a plain list is shorthand for {choice: [...]}."""

    @field_validator("params", mode="before")
    @classmethod
    def _lists_are_choices(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"choice": d} if isinstance(d, list) else d for k, d in v.items()}
        return v


class CrossValidation(Strict):
    """Cross-validation of a sweep: k folds, a held-out split, optionally a nested loop."""

    folds: int = Field(..., ge=2, le=50)
    """k: the selection rows are split into k folds, each scored once (stratified for
    classification, plain KFold for regression)."""
    holdout: bool = True
    """Hold out the spec's own test split (data.split.test, carved with the spec's seed,
    exactly as `specnet build` carves it) before the folds: no selection ever sees those
    rows, and the winner retrained on the selection rows is scored on them (the held-out
    estimate). false: the folds cover every row and there is no held-out estimate."""
    nested: int | None = Field(None, ge=2, le=20)
    """Outer folds of nested cross-validation: each outer fold repeats the whole
    selection (every variant, k inner folds) on the other outer folds and scores its
    winner on this one; the mean is an estimate of the selection procedure itself."""

class Scheduler(Strict):
    """Early termination of poor trainings: asynchronous successive halving (ASHA), as Ray
    Tune's ASHAScheduler does it. Runs on the Ray backend (`--backend ray`)."""

    type: Literal["asha"]
    """The scheduler: asha (asynchronous successive halving)."""
    metric: str | None = None
    """Per-epoch history column compared at each rung: val_loss, val_<metric>, loss or a
    training metric; default: the validation column of the ranking metric, else val_loss."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether smaller or larger is better; auto: min for losses and errors, max otherwise."""
    grace_period: int = Field(1, ge=1)
    """Epochs every training runs before it can be stopped (the first rung)."""
    reduction_factor: float = Field(3.0, gt=1)
    """Rungs at grace_period x reduction_factor^k epochs; at each rung a training goes on
    only if it is in the best 1/reduction_factor of those that reached the rung before it."""
    max_t: int | None = Field(None, ge=1)
    """Last epoch a rung may sit at (default: the largest training.epochs of the variants)."""


class SweepSection(Strict):
    """What a sweep varies and how each variant is scored."""

    name: str | None = Field(None, pattern=_NAME)
    """Name of the sweep: output folder sweeps/<name>/ (default: the file name)."""
    variants: dict[str, dict[str, Any]] | None = Field(None, min_length=1)
    """Named variants, each a mapping of path -> value (crossed with grid and random)."""
    grid: dict[str, list[Any]] | None = Field(None, min_length=1)
    """Path -> values; every combination is a variant. 'a,b: [...]' sets both paths."""
    random: RandomSearch | None = None
    """Random search over distributions (crossed with variants and grid)."""
    cv: CrossValidation | None = None
    """k-fold cross-validation: `cv: 5`, or {folds: 5, holdout: true, nested: 3}. The
    spec's test split is held out first (never seen by the selection); unset: the spec's
    train/validation/test split."""
    repeats: int = Field(1, ge=1, le=100)
    """Train each variant (and fold) with seeds seed, seed+1, ..., seed+repeats-1."""
    max_trainings: int = Field(10_000, ge=1)
    """Most trainings (variants x folds x repeats) the sweep may hold; counted before
    anything is expanded."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Short names for swept keys in variant names, e.g. {model[0].repeat: layers}."""
    metric: str | None = None
    """Column that ranks the variants, e.g. val_accuracy, cv_accuracy, gap_accuracy,
    time_s; default: the first metric on the validation set (on the scored fold with cv)."""
    mode: Literal["auto", "min", "max"] = "auto"
    """Whether smaller or larger is better; auto: min for losses, errors, times and the
    gaps of scores (gap_accuracy), max for the gaps of losses and errors (gap_loss)."""

    scheduler: Scheduler | None = None
    """Stop poor trainings early (Ray backend): {type: asha, metric, grace_period, ...}."""

    @model_validator(mode="after")
    def _labels_name_swept_keys(self) -> SweepSection:
        swept = [*(self.grid or {}), *(self.random.params if self.random else {})]
        for key in self.labels:
            if key not in swept:
                raise ValueError(f"labels: {key!r} is not a grid or random key"
                                 f"{did_you_mean(key, swept)}; swept: {', '.join(swept)}")
        return self

    @field_validator("cv", mode="before")
    @classmethod
    def _folds_shorthand(cls, v: Any) -> Any:
        return {"folds": v} if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("grid")
    @classmethod
    def _nonempty(cls, v: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        for key, values in (v or {}).items():
            if not values:
                raise ValueError(f"grid {key!r} has no values")
        return v


# ---------------------------------------------------------------- expansion


@dataclass(frozen=True)
class Override:
    """One value a variant sets: the spec path, the value, and where the sweep file set it."""

    path: Path_
    value: Any
    at: Path_
    label: str


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 40 else text[:37] + "..."


def _labels(keys: list[Path_]) -> dict[Path_, str]:
    """Short unique names for swept paths: the last field, or the whole path on a clash."""
    last = [format_path(tuple(p for p in k[-1:])) for k in keys]
    return {k: (s if last.count(s) == 1 else format_path(k)) for k, s in zip(keys, last,
                                                                             strict=True)}


def expand(section: SweepSection) -> list[tuple[str, list[Override]]]:
    """(name, overrides) for every point: variants x grid x random trials, in order."""
    points: list[tuple[list[str], list[Override]]] = [([], [])]
    named = bool(section.variants)
    if section.variants:
        points = []
        for vname, settings in section.variants.items():
            overrides = [Override(parse_path(key), value, ("sweep", "variants", vname, key),
                                  key) for key, value in settings.items()]
            points.append(([vname], overrides))
    swept: list[tuple[str, list[Path_]]] = []
    for key in (section.grid or {}):
        swept.append((key, [parse_path(p.strip()) for p in key.split(",")]))
    params = section.random.params if section.random else {}
    for key in params:
        swept.append((key, [parse_path(p.strip()) for p in key.split(",")]))
    labels = _labels([paths[0] for _, paths in swept])
    bare = not named and len(swept) == 1 and section.random is None

    def label(key: str, paths: list[Path_], value: Any) -> str:
        short = section.labels.get(key, labels[paths[0]])
        return _show(value) if bare else f"{short}={_show(value)}"

    if section.grid:
        keys = [(k, p) for k, p in swept if k in section.grid]
        combos = list(itertools.product(*(enumerate(section.grid[k]) for k, _ in keys)))
        points = [
            ([*names, *(label(k, paths, v) for (k, paths), (_, v) in zip(keys, combo,
                                                                          strict=True))],
             [*overrides, *(Override(p, v, ("sweep", "grid", k, i), k)
                            for (k, paths), (i, v) in zip(keys, combo, strict=True)
                            for p in paths)])
            for names, overrides in points for combo in combos]
    if section.random is not None:
        rng = np.random.default_rng(section.random.seed)
        width = len(str(section.random.trials - 1))
        draws = []
        for t in range(section.random.trials):
            values = {k: d.sample(rng) for k, d in params.items()}
            draws.append((f"t{t:0{width}d}", values))
        keys = [(k, p) for k, p in swept if k in params]
        points = [
            ([*names, tname, *(label(k, paths, values[k]) for k, paths in keys)],
             [*overrides, *(Override(p, values[k], ("sweep", "random", "params", k), k)
                            for k, paths in keys for p in paths)])
            for names, overrides in points for tname, values in draws]
    out: list[tuple[str, list[Override]]] = []
    seen: dict[str, int] = {}
    for names, overrides in points:
        name = " ".join(names) or "base"
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name} #{seen[name]}", overrides))
    return out
