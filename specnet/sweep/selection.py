"""Honest model selection for sweeps: which rows each cv training sees, the figures that
estimate the winner's performance on rows the selection never saw, and the comparisons
of every variant with the best.

The rows of a cross-validation sweep are carved in this order:

    all rows ──spec's test split (data.split.test, seed)──> held-out rows   (never selected on)
             └─> selection rows ──k folds (seed + repeat)──> train / validation / scored fold
                                 └─ nested: outer folds first, then k folds inside each

The held-out rows are carved by the same call with the same seed as `specnet build`
carves its test split, so `specnet build best.yaml` tests on exactly these rows.

Two figures are reported, named for what they are:
- selection score: the winner's mean over the scored folds. It picked the winner, so it
  is optimistic.
- held-out estimate: the winner retrained on the selection rows (its spec's own split,
  exactly as `build` does) and scored on the held-out rows; with `cv.nested` also the
  nested estimate, the mean over outer folds of each outer fold's own winner.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.prepare import split_indices
from ..spec.schema import Spec
from .stats import ALPHA, corrected_ttest, mean_interval

if TYPE_CHECKING:
    from .load import Sweep, Variant
    from .report import SweepResult
    from .runner import Job, JobResult

# ---------------------------------------------------------------- rows


def _stratify(spec: Spec) -> bool:
    return spec.data.split.stratify and spec.task != "regression"


def holdout_split(y: np.ndarray, spec: Spec, holdout: bool = True) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """(selection rows, held-out rows) of a data set with targets `y`, sorted.

    The held-out rows are the spec's own test split, carved by `split_indices` with the
    spec's seed and split exactly as `specnet build` carves it; without `holdout` (or
    with data.split.test 0) every row is a selection row.
    """
    n = len(y)
    if not holdout or spec.data.split.test <= 0:
        return np.arange(n), np.arange(0)
    train, val, test = split_indices(n, spec.data.split, spec.seed,
                                     y if _stratify(spec) else None)
    return np.sort(np.concatenate([train, val])), test


@dataclass(frozen=True)
class Scheme:
    """Where the rows of one cv training come from (see the module docstring).

    folds/fold: the inner k-fold split and the fold scored. seed: the variant's own seed
    (repeat 0), which carves the held-out rows and the outer folds; the inner folds use
    the training's seed (seed + repeat). outer/outer_fold: nested cv. refit: train on the
    outer fold's training rows and score on the outer fold (no inner folds).
    """

    folds: int
    fold: int
    holdout: bool
    seed: int
    outer: int | None = None
    outer_fold: int = 0
    refit: bool = False

    def indices(self, y: np.ndarray, spec: Spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(train, validation, scored) row indices into the whole data set."""
        from .runner import fold_indices

        stratify = _stratify(spec)
        validation = spec.data.split.validation
        rows, _ = holdout_split(y, spec.model_copy(update={"seed": self.seed}), self.holdout)
        if self.outer is not None:
            tr, va, sc = fold_indices(y[rows], self.outer, self.outer_fold, self.seed,
                                      validation if self.refit else 0.0, stratify)
            if self.refit:
                return rows[tr], rows[va], rows[sc]
            rows = rows[np.sort(np.concatenate([tr, va]))]
        tr, va, sc = fold_indices(y[rows], self.folds, self.fold, spec.seed, validation,
                                  stratify)
        return rows[tr], rows[va], rows[sc]


def scheme_for(sweep: Sweep, variant: Variant, fold: int) -> Scheme | None:
    """The Scheme of fold `fold` of a variant's selection trainings (None without cv)."""
    cv = sweep.section.cv
    if cv is None:
        return None
    return Scheme(cv.folds, fold, cv.holdout, variant.spec.seed)


def _carving(spec: Spec) -> str:
    """What decides the rows of the folds and the held-out split (not the scaling)."""
    data = spec.data.model_dump(mode="json", exclude={"normalize", "target_normalize"})
    data.get("split", {}).pop("validation", None)
    return f"{spec.seed}|{spec.task == 'regression'}|{data}"


def shared_rows_problem(variants: list[Variant]) -> str | None:
    """Why the variants of a cv sweep cannot share folds and held-out rows, or None.

    Paired comparisons and an honest held-out split need every variant to carve the
    same rows: the same seed, data source and test fraction.
    """
    first = _carving(variants[0].spec)
    for v in variants[1:]:
        if _carving(v.spec) != first:
            return (f"variant {v.name!r} changes the seed or the data rows of "
                    f"{variants[0].name!r}: with sweep.cv every variant must share seed, "
                    "data source and data.split.test, so that all are scored on the same "
                    "folds and none sees the held-out rows; sweep them without cv, or in "
                    "separate sweeps")
    return None


# ---------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison:
    """One variant against the best on the ranking column, over the same folds and seeds.

    low/high: 95% interval on the variant's mean (NaN with one run). p: two-sided p of
    the corrected resampled paired t-test against the best (1 for the best itself,
    NaN when fewer than two runs pair up).
    """

    mean: float
    low: float
    high: float
    p: float
    pairs: int
    is_best: bool

    @property
    def indistinguishable(self) -> bool:
        """The best itself, or p >= 0.05: the data cannot tell it from the best."""
        return self.is_best or (math.isfinite(self.p) and self.p >= ALPHA)


def _scores(runs: list[JobResult], column: str) -> dict[tuple[int, int], float]:
    out = {}
    for r in runs:
        value = r.values.get(column, math.nan) if r.error is None else math.nan
        if math.isfinite(value):
            out[(r.key[1], r.key[2])] = value
    return out


def split_ratio(result: SweepResult) -> float:
    """n_test / n_train of the corrected t-test: scored rows over the rows trained on
    (training + validation) in a cv sweep; 0 when every run shares one fixed split."""
    if not result.sweep.cv:
        return 0.0
    sizes = [r.sizes for v in result.results for r in v.ok if r.sizes[0] + r.sizes[1] > 0]
    if not sizes:
        return 0.0
    return float(np.mean([s[2] / (s[0] + s[1]) for s in sizes]))


def compare(result: SweepResult) -> list[Comparison]:
    """A Comparison for each variant of `result`, in order (on the ranking column)."""
    column = result.sweep.metric
    ratio = split_ratio(result)
    best = result.best
    ref = _scores(best.runs, column) if best is not None else {}
    out = []
    for vr in result.results:
        mine = _scores(vr.runs, column)
        values = np.array(list(mine.values()))
        mean = float(values.mean()) if len(values) else math.nan
        low, high = mean_interval(values, ratio)
        keys = sorted(set(mine) & set(ref))
        is_best = vr is best
        if is_best:
            p = 1.0
        else:
            p = corrected_ttest([mine[k] for k in keys], [ref[k] for k in keys], ratio)[1]
        out.append(Comparison(mean, low, high, p, len(keys), is_best))
    return out


def interval_cell(c: Comparison) -> str:
    """'[0.951, 0.989]' or '-'."""
    if not math.isfinite(c.low):
        return "-"
    return f"[{c.low:.3f}, {c.high:.3f}]"


def p_cell(c: Comparison) -> str:
    """'best', '≈ p=0.320' (indistinguishable from the best), 'p=0.003', or '-'."""
    if c.is_best:
        return "best"
    if not math.isfinite(c.p):
        return "-"
    return f"{'≈ ' if c.indistinguishable else ''}p={c.p:.3f}"


COMPARISON_NOTE = ("95% CI: t interval on the mean; p vs best: corrected resampled paired "
                   "t-test (Nadeau & Bengio) over the same folds and seeds; ≈: "
                   "indistinguishable from the best (p >= 0.05)")

# ---------------------------------------------------------------- estimates


@dataclass
class NestedFold:
    """One outer fold of nested cv: its winner and the winner's score on the outer fold."""

    outer_fold: int
    winner: str
    inner_score: float
    score: float
    rows: int
    error: str | None = None


@dataclass
class Estimates:
    """The figures of a sweep's selection, named for what they are."""

    column: str
    """Ranking column, e.g. test_accuracy (the scored folds of a cv sweep)."""
    estimate_column: str
    """Column of the estimates, e.g. test_accuracy (the held-out rows)."""
    selection_rows: int
    heldout_rows: int
    heldout: JobResult | None = None
    """The winner retrained on the selection rows and scored on the held-out rows."""
    nested: list[NestedFold] = field(default_factory=list)

    @property
    def heldout_score(self) -> float:
        """The held-out estimate (NaN when there is none)."""
        if self.heldout is None or self.heldout.error is not None:
            return math.nan
        return self.heldout.values.get(self.estimate_column, math.nan)

    @property
    def nested_score(self) -> tuple[float, float]:
        """(mean, sd) of the nested estimate over outer folds (NaNs without nested cv)."""
        scores = np.array([f.score for f in self.nested if math.isfinite(f.score)])
        if len(scores) == 0:
            return math.nan, math.nan
        return float(scores.mean()), float(scores.std(ddof=1)) if len(scores) > 1 else 0.0


def estimate_column(sweep: Sweep) -> str:
    """The column the estimates report: the ranking metric on the held-out rows."""
    split, _, name = sweep.metric.partition("_")
    if split in ("train", "val", "test", "gap") and name:
        return f"test_{name}"
    return f"test_{sweep.metric_names[0] if sweep.metric_names else 'loss'}"


def _winner(means: list[tuple[float, int]], mode: str) -> int | None:
    finite = [(m, i) for m, i in means if math.isfinite(m)]
    if not finite:
        return None
    sign = 1 if mode == "min" else -1
    return min(finite, key=lambda t: (sign * t[0], t[1]))[1]


def estimate(result: SweepResult, execute: Callable[[list[Job]], list[JobResult]],
             progress: Callable[[str], None] | None = None) -> Estimates | None:
    """Run the trainings behind the estimates of a cv sweep (None without cv).

    The winner is retrained with its spec's own split (held-out rows = test split) when
    there are held-out rows; with `cv.nested`, each outer fold repeats the selection on
    its training rows and retrains its winner there. `execute` runs a list of jobs and
    returns their results (the sweep's backend: local processes or Ray).
    """
    from .runner import Job, _arrays

    sweep = result.sweep
    cv = sweep.section.cv
    best = result.best
    if cv is None or best is None:
        return None
    y = _arrays(best.variant.spec).y
    rows, held = holdout_split(y, best.variant.spec, cv.holdout)
    est = Estimates(sweep.metric, estimate_column(sweep), len(rows), len(held))
    say = progress or (lambda _line: None)
    index = {id(vr): i for i, vr in enumerate(result.results)}

    def run(jobs: list[Job]) -> dict[tuple[int, int, int], JobResult]:
        return {r.key: r for r in execute(jobs)}

    refits: list[Job] = []
    if cv.nested:
        k, outer = cv.folds, cv.nested
        inner: list[Job] = []
        for o in range(outer):
            for v, variant in enumerate(sweep.variants):
                for r in range(sweep.section.repeats):
                    spec = variant.spec.model_copy(update={"seed": variant.spec.seed + r})
                    for f in range(k):
                        scheme = Scheme(k, f, cv.holdout, variant.spec.seed, outer, o)
                        inner.append(Job(v, r, o * k + f, spec, k, scheme))
        say(f"nested cv: {len(inner)} inner trainings ({outer} outer folds x "
            f"{len(sweep.variants)} variants x {sweep.runs_per_variant} runs)")
        found = run(inner)
        for o in range(outer):
            means = []
            for v in range(len(sweep.variants)):
                vals = [found[(v, r, o * k + f)].values.get(sweep.metric, math.nan)
                        for r in range(sweep.section.repeats) for f in range(k)
                        if found[(v, r, o * k + f)].error is None]
                means.append((float(np.nanmean(vals)) if vals and np.isfinite(vals).any()
                               else math.nan, v))
            w = _winner(means, sweep.mode)
            if w is None:
                est.nested.append(NestedFold(o, "-", math.nan, math.nan, 0,
                                             "every inner training failed"))
                continue
            variant = sweep.variants[w]
            est.nested.append(NestedFold(o, variant.name, means[w][0], math.nan, 0))
            refits.append(Job(w, 0, o, variant.spec, k,
                              Scheme(k, 0, cv.holdout, variant.spec.seed, outer, o, True)))
    b = index[id(best)]
    if len(held):
        # The spec's own split: train/validation from the selection rows, test = held out.
        refits.append(Job(b, 0, cv.nested or 0, best.variant.spec, None))
    if not refits:
        return est
    names = list(dict.fromkeys(sweep.variants[j.variant].name for j in refits))
    say(f"estimates: {len(refits)} retraining(s) of {', '.join(names)} "
        f"({len(held)} held-out rows, {len(est.nested)} outer folds)")
    found = run(refits)
    for fold in est.nested:
        if fold.error is not None:
            continue
        w = next(j.variant for j in refits if j.fold == fold.outer_fold and j.cv is not None)
        got = found[(w, 0, fold.outer_fold)]
        fold.rows = got.sizes[2]
        fold.error = got.error
        fold.score = (got.values.get(est.estimate_column, math.nan) if got.error is None
                      else math.nan)
    if len(held):
        est.heldout = found[(b, 0, cv.nested or 0)]
    return est


def _fmt(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "-"


def estimate_lines(result: SweepResult) -> list[str]:
    """The selection score and the held-out / nested estimates, one sentence each."""
    sweep = result.sweep
    best = result.best
    if best is None:
        return []
    label = result.header(sweep.metric)
    mean, sd = best.stat(sweep.metric)
    est = result.estimates
    name = estimate_column(sweep).partition("_")[2].replace("_", " ")
    if not sweep.cv:
        lines = [f"selection score: {label} {_fmt(mean)} ± {_fmt(sd)} of the winner "
                 f"{best.variant.name!r} (it picked the winner, so it is optimistic)"]
        col = estimate_column(sweep)
        if not sweep.metric.startswith("test_") and any(col in r.values for r in best.ok):
            tm, tsd = best.stat(col)
            lines.append(f"held-out estimate: test {name} {_fmt(tm)} ± {_fmt(tsd)} (the "
                         "winner's runs on the spec's test split, which the selection never "
                         "saw)")
        elif sweep.metric.startswith("test_"):
            lines.append("held-out estimate: none (the sweep ranks on the test split, so "
                         "that split took part in the selection)")
        return lines
    assert est is not None
    lines = [f"selection score: {label} {_fmt(mean)} ± {_fmt(sd)} of the winner "
             f"{best.variant.name!r} (mean over its scored folds of the {est.selection_rows} "
             "selection rows; it picked the winner, so it is optimistic)"]
    if est.heldout is not None:
        if est.heldout.error is not None:
            lines.append(f"held-out estimate: the retraining failed ({est.heldout.error})")
        else:
            lines.append(f"held-out estimate: test {name} {_fmt(est.heldout_score)} (the "
                         f"winner retrained on the {est.selection_rows} selection rows and "
                         f"scored on the {est.heldout_rows} held-out rows that no selection "
                         "saw; `specnet build best.yaml` trains and tests on the same rows)")
    else:
        lines.append("held-out estimate: none (no held-out rows: "
                     + ("sweep.cv.holdout is false)" if not sweep.section.cv
                        or not sweep.section.cv.holdout else "data.split.test is 0)"))
    if est.nested:
        nm, nsd = est.nested_score
        winners = ", ".join(f.winner for f in est.nested)
        lines.append(f"nested estimate: {name} {_fmt(nm)} ± {_fmt(nsd)} over "
                     f"{len(est.nested)} outer folds (each outer fold's own winner, chosen by "
                     f"{sweep.cv}-fold cv on the other outer folds; winners: {winners})")
    return lines


def best_yaml_note(result: SweepResult, data: dict[str, Any]) -> str:
    """Comment lines for best.yaml on what its test split is; `data` (the resolved spec)
    gets data.split.test 0 when every row took part in the selection, so that `build`
    never calls such rows a test set."""
    sweep = result.sweep
    spec = data.get("data", {})
    split = spec.get("split") if isinstance(spec, dict) else None
    test = float(split.get("test", 0)) if isinstance(split, dict) else 0.0
    cv = sweep.section.cv
    est = result.estimates
    seen = (cv is not None and (not cv.holdout or est is None or est.heldout_rows == 0)) or (
        cv is None and sweep.metric.startswith("test_"))
    if seen:
        if isinstance(split, dict) and test > 0:
            split["test"] = 0.0
        why = ("the cv folds covered every row" if cv is not None
               else "the sweep ranked on the test split")
        return (f"# Every row took part in the selection ({why}), so data.split.test is 0: "
                "`build` reports no test score.\n")
    if cv is not None and est is not None:
        return (f"# Its test split (data.split.test {test:g}, seed {data.get('seed')}) is "
                f"exactly the {est.heldout_rows} held-out rows that no selection saw: the "
                f"test score of `build` is the held-out estimate "
                f"({_fmt(est.heldout_score)}).\n")
    if test <= 0:
        return ""
    return ("# Its test split is the spec's own; the selection ranked on "
            f"{sweep.metric} and never saw it.\n")
