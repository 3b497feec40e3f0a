"""Column types and roles of a tabular file, inferred from the whole file; the column table.

Rules (each can be overridden in the spec with `data.columns: {name: type-or-role}`):

- numbers in every non-missing cell -> `numeric` feature; an integer column named like an
  id (`id`, `customer_id`, `userId`, `index`) whose values are all distinct -> `id`;
- true/false (also yes/no, t/f, y/n, any case) -> `boolean` feature (1.0 / 0.0);
- dates or timestamps (ISO 8601: 2024-03-01, 2024-03-01 12:00:00) -> `datetime`, ignored
  (said in the table: dates are not features; derive a number column from them);
- text with more than 10 distinct values, distinct on at least 90% of its non-missing rows
  -> `id`: never trained on (a name, an order number);
- other text -> `categorical` feature (one-hot, the `max_categories` most frequent keep a
  column of their own, the rest fold into `<other>`);
- a column with no values at all -> ignored.

Roles: `target` (the spec's `target:`), `feature`, `id` (never trained on, passed through
by predict), `ignore`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..errors import DataError
from ..spec.base import Strict, did_you_mean
from .table import Col

ColumnType = Literal["numeric", "categorical", "boolean", "datetime"]
Role = Literal["feature", "target", "id", "ignore"]
TYPES: tuple[str, ...] = ("numeric", "categorical", "boolean", "datetime")
ROLES: tuple[str, ...] = ("feature", "id", "ignore")
F32_MAX = float(np.finfo(np.float32).max)
ID_DISTINCT = 0.9
"""Text distinct on at least this share of its non-missing rows is an id ..."""
ID_MIN_DISTINCT = 10
"""... when it has more than this many distinct values."""
_ID_NAME = re.compile(r"(?i)^(id|index|key|uuid)$|[_\s-](id|key)$|^(id|key)[_\s-]|[a-z]Id$")
SHOWN = 20
"""Data problems listed in one error; the rest are counted."""
_BOOL_WORDS = ("true", "false", "yes", "no")
"""Data problems listed in one error; the rest are counted."""


class ColumnSpec(Strict):
    """How one column is read and encoded; unset fields take the inferred or global value.

    Shorthand: a type (`numeric`, `categorical`, `boolean`, `datetime`) or a role
    (`feature`, `id`, `ignore`), e.g. `columns: {customer_id: id, zip: categorical}`.
    """

    type: ColumnType | None = None
    """Column type; default: inferred from the whole file."""
    role: Literal["feature", "id", "ignore"] | None = None
    """feature (trained on), id (never trained on, passed through), ignore; default: inferred."""
    impute: Literal["median", "mean", "constant"] | None = None
    """Missing numbers: filled with the training split's median / mean, or `fill_value`."""
    fill_value: float | None = None
    """The constant for `impute: constant`."""
    missing_indicator: bool | None = None
    """Add a 0/1 feature `<name>_missing` that is 1 where the cell was missing."""
    max_categories: int | None = Field(None, ge=1)
    """Categories with a one-hot column of their own (most frequent first); rarer -> <other>."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data in TYPES:
                return {"type": data}
            if data in ROLES:
                return {"role": data}
            if data == "target":
                raise ValueError("the target is set with `data.target`, not in `columns`")
            raise ValueError(f"unknown column setting {data!r}{did_you_mean(data, TYPES + ROLES)};"
                             f" expected a type ({', '.join(TYPES)}) or a role "
                             f"({', '.join(ROLES)}) or a mapping")
        return data


@dataclass
class Column:
    """One column of the file: what it is, what it is used for, and its figures."""

    name: str
    type: ColumnType
    role: Role
    col: Col
    rows: int
    missing: int
    distinct: int
    example: str
    why: str = ""
    """Why the role differs from the type's default (said in the table)."""
    impute: str = "median"
    fill_value: float = 0.0
    missing_indicator: bool = False
    max_categories: int = 20
    categories: list[str] = field(default_factory=list)
    """Categorical features: categories with a one-hot column, most frequent first."""

    def meta(self) -> dict[str, Any]:
        """The column's entry in the model metadata `specnet.columns`."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "role": self.role}
        if self.type == "categorical" and self.role == "feature":
            out["categories"] = list(self.categories)
        return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_numbers(col: Col) -> tuple[Col, list[int]]:
    """A text column read as numbers; the row indices of cells that are not numbers."""
    assert col.codes is not None
    lv = np.array([float(w) if _is_number(w) else np.nan for w in col.levels] + [np.nan])
    values = lv[col.codes]
    bad_levels = np.array([not _is_number(w) for w in col.levels] + [False])
    bad = np.flatnonzero(bad_levels[col.codes])
    return Col("number", values=values), [int(b) for b in bad]


def _as_text(col: Col) -> Col:
    """A number / bool column read as category text ('3', '2.5', 'true')."""
    assert col.values is not None
    if col.kind == "bool":
        words = np.where(np.isnan(col.values), "", np.where(col.values > 0.5, "true", "false"))
    else:
        words = np.array(["" if np.isnan(v) else f"{v:g}" for v in col.values], dtype=object)
    from .table import text_col

    return text_col(words)


def _as_bool(col: Col) -> tuple[Col, list[int]]:
    """Text or 0/1 numbers read as booleans; row indices of cells that are neither."""
    from .readers import FALSE, TRUE

    if col.codes is None:
        assert col.values is not None
        ok = np.isnan(col.values) | (col.values == 0) | (col.values == 1)
        return Col("bool", values=np.where(ok, col.values, np.nan)), [
            int(i) for i in np.flatnonzero(~ok)]
    lv = [1.0 if w.lower() in TRUE else 0.0 if w.lower() in FALSE else np.nan
          for w in col.levels]
    values = np.array([*lv, np.nan])[col.codes]
    bad_lv = np.array([np.isnan(v) for v in lv] + [False])
    return Col("bool", values=values), [int(b) for b in np.flatnonzero(bad_lv[col.codes])]


def _categories(col: Col, cap: int) -> list[str]:
    """The `cap` most frequent categories (ties by name), most frequent first."""
    assert col.codes is not None
    counts = np.bincount(col.codes[col.codes >= 0], minlength=len(col.levels))
    order = sorted(range(len(col.levels)), key=lambda i: (-counts[i], col.levels[i]))
    return [col.levels[i] for i in order[:cap] if counts[i] > 0]


@dataclass
class Inferred:
    """Every column of a file, decided, and the data problems found on the way."""

    columns: list[Column]
    problems: list[tuple[int, str, str]]
    """(row index, column name, message) of every bad cell."""

    def by_role(self, role: str) -> list[Column]:
        """The columns with `role`, in file order."""
        return [c for c in self.columns if c.role == role]


def infer(header: list[str], cols: dict[str, Col], target: str, features: list[str] | None,
          overrides: dict[str, ColumnSpec], defaults: dict[str, Any]) -> Inferred:
    """Decide the type and role of every column (see the module docstring for the rules).

    defaults: the source's global impute / fill_value / missing_indicator / max_categories.
    """
    out: list[Column] = []
    problems: list[tuple[int, str, str]] = []
    for name in header:
        col = cols[name]
        spec = overrides.get(name, ColumnSpec())
        ctype, role, why = _decide(name, col, name == target, features)
        if spec.type is not None and spec.type != ctype:
            ctype, why = spec.type, "set in the spec"
            if role != "target":
                role = "ignore" if ctype == "datetime" and spec.role is None else "feature"
        if spec.role is not None and name != target:
            role, why = spec.role, "set in the spec"
        col, bad = _convert(col, ctype)
        for r in bad[:SHOWN]:
            problems.append((r, name, _bad_cell(col_text(cols[name], r), ctype)))
        n = len(col)
        miss = int(col.missing.sum())
        settings = {k: getattr(spec, k) if getattr(spec, k) is not None else defaults[k]
                    for k in ("impute", "fill_value", "missing_indicator", "max_categories")}
        column = Column(name, ctype, role, col, n, miss, col.distinct(), col.example(), why,
                        **settings)
        if ctype == "categorical" and role == "feature":
            column.categories = _categories(col, column.max_categories)
        if ctype in ("numeric", "boolean") and role in ("feature", "target"):
            assert col.values is not None
            with np.errstate(invalid="ignore"):
                big = np.flatnonzero(~np.isnan(col.values) & ~(np.abs(col.values) <= F32_MAX))
            for r in big[:SHOWN]:
                v = col.values[r]
                what = ("is not a finite number" if not np.isfinite(v) else
                        "is outside the float32 range (about ±3.4e38)")
                problems.append((int(r), name, f"{v:g} {what}"))
        out.append(column)
    return Inferred(out, problems)


def col_text(col: Col, r: int) -> str:
    """Cell `r` of a raw column as text."""
    if col.codes is not None:
        c = int(col.codes[r])
        return col.levels[c] if c >= 0 else ""
    assert col.values is not None
    return f"{col.values[r]:g}"


def _bad_cell(text: str, ctype: str) -> str:
    if ctype == "boolean":
        return f"{text!r} is not true/false (or yes/no)"
    return (f"{text!r} is not a number (the column's other values are; mark it "
            "`categorical` in data.columns to read it as text)")


def _decide(name: str, col: Col, is_target: bool,
            features: list[str] | None) -> tuple[ColumnType, Role, str]:
    """Inferred (type, role, why) of one column."""
    kind = col.kind
    n_ok = len(col) - int(col.missing.sum())
    if kind in ("number", "empty"):
        ctype: ColumnType = "numeric"
    elif kind == "bool":
        ctype = "boolean"
    elif kind == "date":
        ctype = "datetime"
    elif col.levels and all(w.lower() in _BOOL_WORDS for w in col.levels):
        ctype = "boolean"
    else:
        assert col.codes is not None
        numeric = np.array([_is_number(w) for w in col.levels] + [False])[col.codes]
        ctype = "numeric" if n_ok and numeric.sum() >= 0.9 * n_ok else "categorical"
    if is_target:
        return ctype, "target", ""
    if features is not None and name not in features:
        return ctype, "ignore", "not in `features`"
    if n_ok == 0:
        return ctype, "ignore", "every value is missing"
    if ctype == "datetime":
        return ctype, "ignore", "dates are not features; derive a number column to use one"
    distinct = col.distinct()
    if ctype == "categorical" and distinct > ID_MIN_DISTINCT and distinct >= ID_DISTINCT * n_ok:
        return ctype, "id", "text distinct on nearly every row"
    if ctype == "numeric" and kind == "number" and _ID_NAME.search(name) and n_ok == len(col):
        assert col.values is not None
        v = col.values
        if np.all(v == np.round(v)) and distinct == len(v) and len(v) > ID_MIN_DISTINCT:
            return ctype, "id", "distinct whole numbers, named like an id"
    return ctype, "feature", ""


def _convert(col: Col, ctype: str) -> tuple[Col, list[int]]:
    """The raw column in the form its type needs; rows of cells that do not fit."""
    if ctype == "numeric":
        if col.codes is not None and col.kind != "date":
            return _as_numbers(col)
        if col.kind == "date":
            return col, []
        return Col("number", values=col.values), []
    if ctype == "categorical":
        return (col, []) if col.codes is not None else (_as_text(col), [])
    if ctype == "boolean":
        return _as_bool(col)
    return col, []


def located(path: Any, problems: list[tuple[int, str, str]],
            where: Any) -> DataError | None:
    """One DataError with every problem, each `file: line N, column 'x': ...`, or None."""
    if not problems:
        return None
    problems = sorted(problems)
    shown = problems[:SHOWN]
    places = where(np.array([r for r, _, _ in shown], np.int64))
    lines = [f"{path}: {at}, column {name!r}: {msg}"
             for at, (_, name, msg) in zip(places, shown, strict=True)]
    if len(problems) > SHOWN:
        lines.append(f"{path}: ... and {len(problems) - SHOWN} more problem(s)")
    text = "\n".join(lines)
    # The CLI prefixes `error: ` to the first line only; the path starts every line.
    return DataError(text)


# ---------------------------------------------------------------- the column table


def table_text(columns: list[Column]) -> str:
    """The column table: name, type, role, missing %, distinct values, an example."""
    head = ("column", "type", "role", "missing", "distinct", "example")
    rows = []
    for c in columns:
        pct = f"{100.0 * c.missing / c.rows:.1f}%" if c.rows else "-"
        role = c.role + (f" ({c.why})" if c.why else "")
        ex = c.example if len(c.example) <= 24 else c.example[:21] + "..."
        rows.append((c.name, c.type, role, pct, str(c.distinct), repr(ex) if ex else "-"))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [head, *rows])
