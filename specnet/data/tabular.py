"""Tabular files (CSV, Parquet) as a data source: read whole, columns decided, target split off.

`info` and `load` share one read of the file (`readers.cached`). Every problem of the
file is reported at once, each cell as `file: line N, column 'x': ...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..spec.base import did_you_mean
from . import encode
from .columns import Column, Inferred, infer, located, table_text
from .readers import Loaded, cached, read_csv, read_parquet
from .sources import Arrays, SourceInfo
from .table import Table

if TYPE_CHECKING:
    from .sources import Csv, Parquet

    Tabular = Csv | Parquet


@dataclass
class Described:
    """A tabular source, decided: its columns, the rows kept, and notes for the user."""

    loaded: Loaded
    inferred: Inferred
    keep: np.ndarray
    """Row indices with a target (rows with a missing target are dropped)."""
    notes: list[str]

    @property
    def columns(self) -> list[Column]:
        """Every column of the file, in file order."""
        return self.inferred.columns

    def table(self) -> str:
        """The column table and the notes, as printed by validate / build / inspect."""
        return "\n".join([table_text(self.columns), *self.notes])


def _load(src: Tabular) -> Loaded:
    from .sources import Csv

    if isinstance(src, Csv):
        from .files import _csv_layout, _csv_rows

        rows = _csv_rows(src)
        first = next(rows, None)
        if first is None:
            raise DataError(f"{src.path}: the file is empty; it needs a header row and data "
                            "rows")
        header = first[1]
        _csv_layout(src, header)  # header checks: names, duplicates, target, features
        if next(rows, None) is None:
            raise DataError(f"{src.path}: the file has a header but no data rows")
        return cached(("csv", src.delimiter), src.path,
                      lambda: read_csv(src.path, src.delimiter, header))
    loaded = cached(("parquet",), src.path, lambda: read_parquet(src.path))
    _check_names(src, loaded.header)
    return loaded


def _check_names(src: Tabular, header: list[str]) -> None:
    """Target and feature names against a Parquet file's columns (CSV: files._csv_layout)."""
    listing = f"columns: {', '.join(header)}"
    if src.target not in header:
        raise DataError(f"{src.path}: target column {src.target!r} not found"
                        f"{did_you_mean(src.target, header, cutoff=0.6)}; {listing}")
    unknown = [f"{f!r}{did_you_mean(f, header, cutoff=0.6)}" for f in src.features or []
               if f not in header]
    if unknown:
        raise DataError(f"{src.path}: feature column(s) {', '.join(unknown)} not found; "
                        f"{listing}")


def describe(src: Tabular) -> Described:
    """Read the file and decide every column; DataError listing every problem found."""
    loaded = _load(src)
    unknown = [k for k in src.columns if k not in loaded.header]
    if unknown:
        shown = ", ".join(f"{k!r}{did_you_mean(k, loaded.header, cutoff=0.6)}"
                          for k in unknown)
        raise DataError(f"{src.path}: data.columns names column(s) not in the file: {shown}; "
                        f"columns: {', '.join(loaded.header)}")
    defaults = {"impute": src.impute, "fill_value": src.fill_value,
                "missing_indicator": src.missing_indicator,
                "max_categories": src.max_categories}
    inferred = infer(loaded.header, loaded.table.columns, src.target, src.features,
                     src.columns, defaults)
    target = next(c for c in inferred.columns if c.role == "target")
    problems = [p for p in inferred.problems if p[1] != target.name or "float32" in p[2]
                or "finite" in p[2]]
    if target.type == "datetime":
        problems.append((0, target.name, "a date column cannot be the target"))
    error = located(src.path, problems, loaded.where)
    if error is not None:
        raise error
    notes: list[str] = []
    missing = target.col.missing
    keep = np.flatnonzero(~missing)
    if missing.any():
        rows = np.flatnonzero(missing)
        places = loaded.where(rows[:5])
        more = ", ..." if len(rows) > 5 else ""
        notes.append(f"note: dropped {len(rows)} row(s) whose target {target.name!r} is "
                     f"missing ({', '.join(places)}{more})")
    if not len(keep):
        raise DataError(f"{src.path}: every row's target {target.name!r} is missing")
    features = inferred.by_role("feature")
    if not features:
        raise DataError(f"{src.path}: no feature columns are left (every column is the "
                        "target, an id or ignored); see the column table with "
                        f"`specnet inspect {src.path}`, or set data.columns")
    return Described(loaded, inferred, keep, notes)


def _target(src: Tabular, d: Described) -> Any:
    from .columns import _as_text
    from .files import _label_target, _numeric_target

    target = next(c for c in d.columns if c.role == "target")
    raw = d.loaded.table.columns[target.name]
    if target.type == "boolean":  # classes named by the file's own words (yes / no)
        col = (raw if raw.codes is not None else _as_text(raw)).take(d.keep)
        return _label_target(list(col.strings()))
    col = target.col.take(d.keep)
    if target.type == "numeric":
        assert col.values is not None
        return _numeric_target(col.values.reshape(-1, 1), "auto")
    return _label_target(list(col.strings()))


def info(src: Tabular) -> SourceInfo:
    """Input width (encoded features), kind of target and feature names, from the whole file."""
    d = describe(src)
    target = _target(src, d)
    names = _feature_names(d.columns)
    n_classes = len(target.labels) if target.labels is not None else None
    return SourceInfo((len(names),), target.kind, n_classes, 1, tuple(names))


def _feature_names(columns: list[Column]) -> list[str]:
    feats = [c for c in columns if c.role == "feature"]
    if encode.needs_columns(columns):
        return encode.Encoder([encode.Step(c.name, c.type, indicator=c.missing_indicator,
                                           categories=c.categories,
                                           missing_slot=c.missing > 0)
                               for c in feats]).feature_names
    return [c.name for c in feats]


def load(src: Tabular) -> Arrays:
    """Arrays for training. All-numeric features with no blanks: X (n, features) float32 as
    before. Otherwise X is empty (n, 0) and extra["table"] holds the raw feature columns,
    encoded by `prepare` once the training split is known.

    extra["columns"]: every Column (for the model metadata); extra["notes"]: messages.
    """
    d = describe(src)
    target = _target(src, d)
    feats = [c for c in d.columns if c.role == "feature"]
    names = _feature_names(d.columns)
    if encode.needs_columns(d.columns):
        every = len(d.keep) == len(d.loaded.table)  # no dropped rows: no copy
        table = Table({c.name: c.col if every else c.col.take(d.keep) for c in feats})
        X = np.zeros((len(d.keep), 0), np.float32)
        extra: dict[str, Any] = {"table": table}
    else:
        X = np.stack([c.col.values[d.keep] for c in feats if c.col.values is not None],
                     axis=1).astype(np.float32)
        extra = {}
    arrays = target.arrays(X, names)
    arrays.extra.update(extra)
    arrays.extra["columns"] = d.columns
    arrays.extra["notes"] = d.notes
    return arrays
