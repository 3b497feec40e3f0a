"""Sweep results: per-variant mean ± sd, the tables (text, Markdown, CSV), the plot, and
the best variant's resolved spec."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..io import atomic_dir, check_replaceable
from ..spec.resolve import resolved_dict
from .load import Sweep, Variant
from .runner import JobResult
from .selection import (
    COMPARISON_NOTE,
    Estimates,
    best_yaml_note,
    compare,
    estimate_lines,
    interval_cell,
    p_cell,
)


@dataclass
class VariantResult:
    """The runs of one variant and their summary statistics."""

    variant: Variant
    runs: list[JobResult]

    @property
    def ok(self) -> list[JobResult]:
        """Runs that finished (not diverged)."""
        return [r for r in self.runs if r.error is None]

    def values(self, column: str) -> np.ndarray:
        """The column over finished runs (NaN where a run has no value)."""
        return np.array([r.values.get(column, math.nan) for r in self.ok], dtype=np.float64)

    @property
    def stopped(self) -> list[JobResult]:
        """Runs that a sweep scheduler (asha) stopped early."""
        return [r for r in self.ok if r.stopped_at is not None]

    def stat(self, column: str) -> tuple[float, float]:
        """(mean, sample sd) of a column over finished runs; sd 0 for one run, NaN for none."""
        v = self.values(column)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return math.nan, math.nan
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


@dataclass
class SweepResult:
    """A finished sweep: one VariantResult per variant, the best one, the wall time."""

    sweep: Sweep
    results: list[VariantResult]
    wall_s: float
    processes: int
    threads: int
    out_dir: Path | None = None
    estimates: Estimates | None = None
    """Held-out and nested estimates of a cv sweep (selection.estimate)."""
    backend: str = "local"
    """Where it ran: 'local' (processes) or 'ray' (processes: trainings at once)."""

    @property
    def best(self) -> VariantResult | None:
        """The variant with the best mean of the ranking metric (None if all failed).

        Variants that a scheduler stopped early are not candidates while any other is.
        """
        full = [i for i, r in enumerate(self.results) if not r.stopped]
        scored = [(r.stat(self.sweep.metric)[0], i) for i, r in enumerate(self.results)
                  if i in full or not full]
        scored = [(m, i) for m, i in scored if math.isfinite(m)]
        if not scored:
            return None
        sign = 1 if self.sweep.mode == "min" else -1
        return self.results[min(scored, key=lambda t: (sign * t[0], t[1]))[1]]

    # ------------------------------------------------------------ columns

    def _held(self) -> str:
        return "test" if self.sweep.cv else "val" if self._has("val") else "test"

    def _has(self, split: str) -> bool:
        name = f"{split}_loss"
        return any(name in r.values for v in self.results for r in v.ok)

    def shown_columns(self) -> list[str]:
        """Columns of the summary table, in order."""
        names = self.sweep.metric_names or ["loss"]
        cols: list[str] = []
        if self._has("val") and not self.sweep.cv:
            cols += [f"val_{m}" for m in names]
        if self._has("test"):
            cols += [f"test_{m}" for m in names]
        cols += [f"train_{names[0]}", f"gap_{names[0]}"]
        if self.sweep.metric not in cols:
            cols.insert(0, self.sweep.metric)
        return [*cols, "time_s", "epochs"]

    def header(self, column: str) -> str:
        """Human label of a column: 'val accuracy', 'cv accuracy', 'time (s)'."""
        if column == "time_s":
            return "train time (s)"
        split, _, name = column.partition("_")
        if not name:
            return column
        if split == "test" and self.sweep.cv:
            split = f"cv{self.sweep.cv}"
        if split == "gap":
            return f"{name} gap (train - {'cv' if self.sweep.cv else self._held()})"
        return f"{split} {name}"

    # ------------------------------------------------------------ tables

    def rows(self) -> list[list[str]]:
        """The summary table as text cells, header row first."""
        cols = self.shown_columns()
        at = cols.index(self.sweep.metric) + 3  # the CI and p columns follow the ranking one
        head = ["variant", "runs", *(self.header(c) for c in cols)]
        out = [[*head[:at], "95% CI", "p vs best", *head[at:]]]
        best = self.best
        for r, c in zip(self.results, compare(self), strict=True):
            name = r.variant.name + (" *" if r is best else "")
            runs = f"{len(r.ok)}" + (f" ({len(r.runs) - len(r.ok)} failed)"
                                     if len(r.ok) < len(r.runs) else "")
            if r.stopped:
                runs += f" ({len(r.stopped)} stopped)"
            row = [name, runs, *(_cell(*r.stat(col), col) for col in cols)]
            out.append([*row[:at], interval_cell(c), p_cell(c), *row[at:]])
        return out

    def text_table(self) -> str:
        """The summary as an aligned text table; '*' marks the best variant."""
        rows = self.rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join([*lines, self.footer(), *self.stopped_lines(), COMPARISON_NOTE,
                          *estimate_lines(self)])

    def markdown(self) -> str:
        """The summary as a Markdown table (the best variant in bold) with a footer line."""
        rows = self.rows()
        best = self.best
        lines = ["| " + " | ".join(rows[0]) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
        for r, row in zip(self.results, rows[1:], strict=True):
            cells = list(row)
            if r is best:
                cells[0] = f"**{r.variant.name}**"
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"- {line}" for line in estimate_lines(self)]
        return "\n".join([*lines, "", self.footer(), *self.stopped_lines(), "",
                          COMPARISON_NOTE, "", *notes]) + "\n"

    def footer(self) -> str:
        """One line: what was run, how, and which variant won."""
        s = self.sweep
        how = f"{s.cv}-fold cv" if s.cv else "train/val/test split"
        reps = f" x {s.section.repeats} seeds" if s.section.repeats > 1 else ""
        best = self.best
        won = (f"best: {best.variant.name} ({self.header(s.metric)} "
               f"{_cell(*best.stat(s.metric), s.metric)})" if best else "every run failed")
        where = (f"on {self.processes} process(es)" if self.backend == "local" else
                 f"on {self.backend}, {self.processes} training(s) at once")
        return (f"{len(s.variants)} variants x {s.runs_per_variant} runs ({how}{reps}); "
                f"mean ± sd; {won}; wall {self.wall_s:.1f}s {where} "
                f"x {self.threads} thread(s)")

    def stopped_lines(self) -> list[str]:
        """One line per variant a scheduler stopped early (none without a scheduler)."""
        out = []
        for r in self.results:
            if r.stopped:
                at = sorted({run.stopped_at for run in r.stopped if run.stopped_at})
                out.append(f"stopped early by asha: {r.variant.name} ({len(r.stopped)} of "
                           f"{len(r.runs)} runs, at epoch {', '.join(map(str, at))})")
        return out

    def summary_csv(self) -> str:
        """One row per variant: settings, run counts, mean and sd of every column."""
        cols = _all_columns(self)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["variant", "settings", "runs", "failed", *(f"{c}_{s}" for c in cols
                                                             for s in ("mean", "sd")),
                    "ci95_low", "ci95_high", "p_vs_best", "indistinguishable_from_best"])
        for r, c in zip(self.results, compare(self), strict=True):
            stats = [x for col in cols for x in r.stat(col)]
            w.writerow([r.variant.name, json.dumps(r.variant.settings), len(r.ok),
                        len(r.runs) - len(r.ok), *(_num(x) for x in stats), _num(c.low),
                        _num(c.high), _num(c.p), str(c.indistinguishable).lower()])
        return buf.getvalue()

    def runs_csv(self) -> str:
        """One row per training: variant, repeat, fold, seed, sizes, every value, error."""
        cols = _all_columns(self)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        asha = self.sweep.section.scheduler is not None
        w.writerow(["variant", "repeat", "fold", "seed", "n_train", "n_val", "n_scored", *cols,
                    "error", *(["stopped_at_epoch"] if asha else [])])
        for r in self.results:
            for run in r.runs:
                stop = [run.stopped_at or ""] if asha else []
                w.writerow([r.variant.name, run.key[1], run.key[2], run.seed, *run.sizes,
                            *(_num(run.values.get(c, math.nan)) for c in cols), run.error or "",
                            *stop])
        return buf.getvalue()

    def best_spec_yaml(self) -> str | None:
        """The best variant's resolved spec (no sweep section), ready for `specnet build`."""
        best = self.best
        if best is None:
            return None
        data = resolved_dict(best.variant.spec)
        data["name"] = f"{self.sweep.name}_best"[:64]
        head = (f"# Best variant of sweep {self.sweep.name!r}: {best.variant.name}\n"
                f"# (selection score: {self.header(self.sweep.metric)} "
                f"{_cell(*best.stat(self.sweep.metric), self.sweep.metric)}; "
                f"from {self.sweep.file}). Build it with: specnet build best.yaml\n"
                + best_yaml_note(self, data))
        return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)

    # ------------------------------------------------------------ plot

    def plot_png(self) -> bytes:
        """Ranking metric per variant (mean ± sd) and mean learning curves, overlaid."""
        from .plot import sweep_plot

        return sweep_plot(self)

    # ------------------------------------------------------------ files

    def write(self, out_dir: Path) -> list[str]:
        """Write every result file into `out_dir` (replaced as a whole, atomically).

        Raises SpecnetError when `out_dir` is a file or a folder with other files in it.
        """
        files = {"summary.md": self.markdown(), "summary.csv": self.summary_csv(),
                 "runs.csv": self.runs_csv()}
        best = self.best_spec_yaml()
        if best is not None:
            files["best.yaml"] = best
        with atomic_dir(out_dir, OUTPUT_FILES, "a sweep's output") as tmp:
            for name, text in files.items():
                (tmp / name).write_text(text, encoding="utf-8")
            (tmp / "plot.png").write_bytes(self.plot_png())
        self.out_dir = out_dir
        return [*files, "plot.png"]


OUTPUT_FILES = ("summary.md", "summary.csv", "runs.csv", "best.yaml", "plot.png")
"""What `SweepResult.write` puts in its folder."""


def check_out_dir(out_dir: Path) -> None:
    """SpecnetError unless `out_dir` is absent, empty, or a previous sweep's output: the
    folder is replaced as a whole, so anything else in it would be lost."""
    check_replaceable(out_dir, OUTPUT_FILES, "a sweep's output")


def _all_columns(result: SweepResult) -> list[str]:
    seen: list[str] = []
    for r in result.results:
        for run in r.ok:
            seen += [k for k in run.values if k not in seen]
    order = ["train", "val", "test", "gap", "time", "epochs"]
    return sorted(seen, key=lambda c: (order.index(c.split("_")[0]) if c.split("_")[0] in order
                                       else 9, seen.index(c)))


def mean_curve(histories: list[list[dict[str, float]]], column: str) -> np.ndarray:
    """Mean of `column` per epoch over the runs still training at that epoch.

    Runs stop at different epochs (early stopping); the curve ends where fewer than half
    of them are left, so that one long run does not draw the tail alone.
    """
    lengths = sorted((len(h) for h in histories), reverse=True)
    length = lengths[(len(lengths) - 1) // 2] if lengths else 0
    out = np.full(length, np.nan)
    for e in range(length):
        vals = [h[e][column] for h in histories if e < len(h) and column in h[e]]
        if vals:
            out[e] = float(np.mean(vals))
    return out


def _cell(mean: float, sd: float, column: str) -> str:
    if not math.isfinite(mean):
        return "-"
    if column == "epochs":
        return f"{mean:.0f} ± {sd:.0f}"
    digits = 2 if column == "time_s" else 3
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else repr(float(x))
