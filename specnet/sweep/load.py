"""Load a sweep file: merge `extends:`, expand the `sweep:` section, validate every variant.

A sweep file is a spec with a `sweep:` section, or a file that `extends:` a base spec and
overrides some of its fields. The base spec keeps the strict `Spec` model: `sweep` and
`extends` are taken out before the rest is validated, and every expanded variant is
validated (and shape-checked) as a Spec. Errors name the variant and point at the line
that set the offending value (in the sweep file or in the base spec).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from ..data.sources import SourceInfo
from ..errors import Issue, SpecError
from ..spec.base import Strict, did_you_mean
from ..spec.load import Path_, Source, format_path, load_file
from ..spec.schema import Spec
from ..spec.validate import check, validate
from .paths import PathError, deep_merge, parse_path, set_path
from .section import (
    CrossValidation,
    Distribution,
    Override,
    RandomSearch,
    Scheduler,
    SweepSection,
    expand,
)
from .selection import shared_rows_problem

_LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse")

# ---------------------------------------------------------------- variants


@dataclass
class Variant:
    """One validated point of the sweep."""

    name: str
    overrides: list[Override]
    spec: Spec
    info: SourceInfo

    @property
    def settings(self) -> dict[str, Any]:
        """Path text -> value of what this variant sets."""
        return {format_path(o.path): o.value for o in self.overrides}


@dataclass
class Sweep:
    """A loaded, fully validated sweep: the variants and how they are run and ranked."""

    name: str
    file: str
    section: SweepSection
    variants: list[Variant]
    metric: str
    mode: Literal["min", "max"]
    metric_names: list[str]
    warnings: list[Issue] = field(default_factory=list)

    @property
    def cv(self) -> int | None:
        """Number of folds, or None for the spec's own split."""
        return self.section.cv.folds if self.section.cv else None

    @property
    def runs_per_variant(self) -> int:
        """Trainings per variant: folds x repeats."""
        return (self.cv or 1) * self.section.repeats


@dataclass
class _Origin:
    """Spec paths under `prefix` were written in `source` at `at` (+ the rest of the path)."""

    prefix: Path_
    source: Source
    at: Path_


def _relocate(issue: Issue, origins: list[_Origin]) -> Issue:
    """`issue` (found in a variant's merged data) pointed at the file and line that set it.

    The issue's path is the display path (`model[0].units`); the origin with the longest
    matching prefix wins, later origins (the sweep's own overrides) on ties. An issue on a
    parent of an override (`optimizer` when `optimizer.type` was swept) points at the
    override.
    """
    try:
        path = parse_path(issue.path) if issue.path else ()
    except PathError:
        path = ()
    best = origins[0]
    for origin in origins:
        n = len(origin.prefix)
        if tuple(path[:n]) == origin.prefix and n >= len(best.prefix):
            best = origin
    below = [o for o in origins if len(o.prefix) > len(path) and o.prefix[:len(path)] == path]
    if path and below:
        # An error on a parent of set values (`optimizer` when `optimizer.type` was
        # swept): the value set below it is the likely cause.
        best = below[-1]
    line, col = best.source.locate((*best.at, *path[len(best.prefix):]))
    return Issue(issue.path, issue.message, best.source.file, line, col, issue.severity)


# ---------------------------------------------------------------- loading


def _section_issues(exc: ValidationError, src: Source) -> list[Issue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path: Path_ = ("sweep", *loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            owner: type[Strict] = SweepSection
            if loc[:1] == ("random",):
                owner = Distribution if loc[1:2] == ("params",) else RandomSearch
            elif loc[:1] == ("cv",):
                owner = CrossValidation
            elif loc[:1] == ("scheduler",):
                owner = Scheduler
            names = [f.alias or n for n, f in owner.model_fields.items()]
            msg = f"unknown key {key!r}{did_you_mean(key, names)}; allowed: {', '.join(names)}"
        elif isinstance(err.get("input"), str | int | float | bool) and err["type"] != "missing":
            msg = f"{msg}, got {err['input']!r}"
        issues.append(src.issue(path, msg))
    return issues


def _group(found: list[tuple[str, Issue]], total: int) -> list[Issue]:
    """Issues seen in several variants once, naming the variants (or 'every variant')."""
    by_issue: dict[Issue, list[str]] = {}
    for name, issue in found:
        names = by_issue.setdefault(issue, [])
        if name not in names:
            names.append(name)
    out = []
    for issue, names in by_issue.items():
        if len(names) == total and total > 1:
            who = "every variant"
        else:
            shown = ", ".join(repr(n) for n in names[:3])
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            who = f"variant{'s' if len(names) > 1 else ''} {shown}{more}"
        path = f"{who}: {issue.path}" if issue.path else who
        out.append(Issue(path, issue.message, issue.file, issue.line, issue.col, issue.severity))
    return sorted(out, key=lambda i: (i.file, i.line, i.col))


def _base(src: Source) -> tuple[dict[str, Any], list[_Origin], Path]:
    """The spec data the sweep varies, with where each part of it was written."""
    own = {k: v for k, v in src.data.items() if k not in ("sweep", "extends")}
    if "extends" not in src.data:
        return own, [_Origin((), src, ())], src.base_dir
    target = src.data["extends"]
    if not isinstance(target, str) or not target.strip():
        raise SpecError([src.issue(("extends",), "extends must be the path of a base spec "
                                                 f"file, got {target!r}")])
    path = Path(target) if Path(target).is_absolute() else src.base_dir / target
    if not path.is_file():
        raise SpecError([src.issue(("extends",), f"base spec {target!r} not found "
                                                 f"(looked for {path})")])
    base = load_file(path)
    for key in ("sweep", "extends"):
        if key in base.data:
            raise SpecError([src.issue(("extends",), f"base spec {target!r} has its own "
                                                     f"`{key}:`; extend a plain spec")])
    merged, from_over = deep_merge(base.data, own)
    origins = [_Origin((), base, ()), *(_Origin(p, src, p) for p in from_over)]
    base_dir = src.base_dir if "data" in own else base.base_dir
    return merged, origins, base_dir


def load_sweep(path: str | Path) -> Sweep:
    """Load a sweep file, expand every variant, validate and shape-check each one.

    Raises SpecError with every located problem (naming the variant) before anything
    trains.
    """
    return sweep_from_source(load_file(path))


def _path_issues(raw: dict[str, Any], src: Source) -> list[Issue]:
    """A located issue for every swept key that is not a path (`model[0.units`)."""
    keys: list[tuple[Path_, str]] = []
    for where in ("grid", "variants", "random"):
        group = raw.get(where)
        if where == "random":
            group = group.get("params") if isinstance(group, dict) else None
            at: Path_ = ("sweep", "random", "params")
            keys += [(at, k) for k in group or {}] if isinstance(group, dict) else []
        elif where == "variants" and isinstance(group, dict):
            keys += [(("sweep", "variants", v), k) for v, sets in group.items()
                     if isinstance(sets, dict) for k in sets]
        elif isinstance(group, dict):
            keys += [(("sweep", where), k) for k in group]
    issues = []
    for at, key in keys:
        for part in key.split(","):
            try:
                parse_path(part.strip())
            except PathError as exc:
                issues.append(src.issue((*at, key), str(exc)))
                break
    return issues


def _check_size(section: SweepSection, src: Source) -> None:
    """SpecError when the sweep holds more than `max_trainings` trainings (counted from
    the section's lengths, before any variant exists)."""
    from ..budget import sweep_trainings

    cv = section.cv if isinstance(section.cv, CrossValidation) else None
    # Nested cv repeats the whole selection once per outer fold.
    folds = cv.folds * (1 + (cv.nested or 0)) if cv is not None else 1
    total = sweep_trainings(len(section.variants or {}),
                            [len(v) for v in (section.grid or {}).values()],
                            section.random.trials if section.random else 0,
                            folds, section.repeats)
    if total > section.max_trainings:
        raise SpecError([src.issue(("sweep",), (
            f"the sweep holds {total:,} trainings (variants x grid x trials x folds x "
            f"repeats), over sweep.max_trainings = {section.max_trainings:,}; sweep fewer "
            "values, or raise the cap with `max_trainings:` in the sweep section"))])


def sweep_from_source(src: Source) -> Sweep:
    """`load_sweep` for an already loaded Source."""
    if "sweep" not in src.data:
        raise SpecError([src.issue((), "no `sweep:` section: add one (grid, variants, random, "
                                       "cv, repeats) to run a sweep")])
    raw = src.data["sweep"]
    if not isinstance(raw, dict):
        raise SpecError([src.issue(("sweep",), "sweep must be a mapping with grid, variants, "
                                               f"random, cv or repeats, got {raw!r}")])
    issues = _path_issues(raw, src)
    section: SweepSection | None = None
    try:
        section = SweepSection.model_validate(raw)
    except ValidationError as exc:
        issues = _section_issues(exc, src) + issues
    base, origins, base_dir = _base(src)
    if section is None or issues:
        # The variants cannot be expanded: report the base spec's own problems with these.
        try:
            bsrc = Source(base, src.file, {}, base_dir)
            check(validate(bsrc), bsrc)
        except SpecError as exc:
            issues += [_relocate(i, origins) for i in exc.issues]
        raise SpecError(sorted(issues, key=lambda i: (i.file, i.line, i.col)))
    name = section.name or Path(src.file).stem
    _check_size(section, src)
    points = expand(section)
    found: list[tuple[str, Issue]] = []
    variants: list[Variant] = []
    warnings: list[tuple[str, Issue]] = []
    for vname, overrides in points:
        data = copy.deepcopy(base)
        vorigins = list(origins)
        for o in overrides:
            try:
                set_path(data, o.path, o.value)
                vorigins.append(_Origin(o.path, src, o.at))
            except PathError as exc:  # reported; the variant is still checked for the rest
                key_at = o.at[:-1] if isinstance(o.at[-1], int) else o.at  # the key
                found.append((vname, src.issue(key_at, str(exc))))
        vsrc = Source(data, src.file, {}, base_dir)
        try:
            checked = check(validate(vsrc), vsrc)
        except SpecError as exc:
            found.extend((vname, _relocate(i, vorigins)) for i in exc.issues)
            continue
        warnings.extend((vname, _relocate(w, vorigins)) for w in checked.warnings)
        variants.append(Variant(vname, overrides, checked.spec, checked.info))
    if found:
        raise SpecError(_group(found, len(points)))
    metric_names = [m for m in variants[0].spec.metric_names
                    if all(m in v.spec.metric_names for v in variants)]
    metric, mode = _ranking(section, variants, metric_names, src)
    problem = shared_rows_problem(variants) if section.cv else None
    if problem is not None:
        raise SpecError([src.issue(("sweep", "cv"), problem)])
    if section.scheduler is not None:
        from .asha import check_scheduler

        check_scheduler(section.scheduler, variants, metric_names, metric, src)
    return Sweep(name, src.file, section, variants, metric, mode, metric_names,
                 _group(warnings, len(points)))


def columns(metric_names: list[str]) -> list[str]:
    """Every result column a sweep can rank on."""
    names = ["loss", *metric_names]
    return ([f"{s}_{m}" for s in ("train", "val", "test") for m in names]
            + [f"gap_{m}" for m in names] + ["time_s", "epochs"])


def _ranking(section: SweepSection, variants: list[Variant], metric_names: list[str],
             src: Source) -> tuple[str, Literal["min", "max"]]:
    has_val = all(v.spec.data.split.validation > 0 for v in variants)
    has_test = all(v.spec.data.split.test > 0 for v in variants)
    first = metric_names[0] if metric_names else "loss"
    if section.metric is None:
        if not section.cv and not has_val:
            # The fallback would be the test split: choosing a model on it leaks the test
            # set into the choice, so it must be asked for by name.
            raise SpecError([src.issue(("sweep",), (
                "no validation split to rank the variants on (data.split.validation is 0 "
                "and there is no sweep.cv): set data.split.validation above 0, set "
                f"sweep.cv, or name the column in sweep.metric (e.g. test_{first}, knowing "
                "that it picks the model on the test split)"))])
        metric = f"{'test' if section.cv else 'val'}_{first}"
    else:
        metric = section.metric
        if metric.startswith("cv_"):
            if not section.cv:
                raise SpecError([src.issue(("sweep", "metric"),
                                           f"{metric!r} needs cross-validation: set sweep.cv")])
            metric = "test_" + metric[3:]
        elif metric in ("loss", *metric_names):
            metric = f"{'test' if section.cv else 'val' if has_val else 'train'}_{metric}"
        allowed = columns(metric_names)
        if metric not in allowed:
            shown = [c.replace("test_", "cv_") if section.cv else c for c in allowed]
            raise SpecError([src.issue(("sweep", "metric"), f"cannot rank on {section.metric!r}"
                                       f"{did_you_mean(section.metric, shown)}; choose from "
                                       f"{', '.join(shown)}")])
    split = metric.split("_", 1)[0]
    if (split == "val" and not has_val) or (split == "test" and not section.cv and not has_test):
        where = "validation" if split == "val" else "test"
        raise SpecError([src.issue(("sweep", "metric"),
                                   f"cannot rank on {metric!r}: some variants have no "
                                   f"{where} split (data.split.{where} is 0)")])
    if section.mode != "auto":
        return metric, section.mode
    base = metric.split("_", 1)[1] if "_" in metric else metric
    if metric.startswith("gap_"):
        # train minus held-out: a score's gap grows with overfitting, an error's falls below 0.
        lower = base not in _LOWER_IS_BETTER
    else:
        lower = base in _LOWER_IS_BETTER or metric == "time_s"
    return metric, "min" if lower else "max"
