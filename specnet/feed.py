"""Raw rows -> the onnxruntime feed of a raw-column model (torch-free, numpy only).

A model exported from a tabular file with text, booleans or blanks takes one input per
feature column (`Artifact.input_layout == "columns"`): [n, 1] float32 for numeric and
boolean columns (NaN for a blank), [n, 1] string (object) for categorical ones. These
functions build that feed from JSON records, or from columns of cells (CSV text), and
name the row and column of every value that cannot be read:

- numeric: numbers, numeric text, or a blank (None, '', NA, NaN, null, ?) -> NaN;
- boolean: true/false, yes/no, 1/0 (any case), or a blank -> NaN;
- categorical: any text (an unseen category is not an error: the model maps it to
  <other>), numbers as their shortest text ('3', '2.5'), a blank -> ''.
Values beyond the float32 range are errors, as in training data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ModelInputError

if TYPE_CHECKING:
    from .artifact import Artifact

BLANKS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "#n/a", "-nan"})
TRUE_WORDS = frozenset({"true", "yes", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "no", "0", "0.0"})
F32_MAX = float(np.finfo(np.float32).max)
_SHOWN = 20


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    from .spec.base import did_you_mean

    return did_you_mean(name, options, cutoff=0.6)


def _number(v: Any, boolean: bool) -> float:
    """One cell as a float (NaN for a blank); ValueError with the reason otherwise."""
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        x = float(v)
    elif isinstance(v, str):
        t = v.strip()
        low = t.lower()
        if low in BLANKS:
            return math.nan
        if boolean:
            if low in TRUE_WORDS:
                return 1.0
            if low in FALSE_WORDS:
                return 0.0
            raise ValueError(f"{v!r} is not true/false (or yes/no, 1/0)")
        try:
            x = float(t)
        except ValueError:
            raise ValueError(f"{v!r} is not a number") from None
    else:
        raise ValueError(f"expected a number, got {type(v).__name__}")
    if math.isnan(x):
        return x
    if not abs(x) <= F32_MAX:
        raise ValueError(f"{x:g} is outside the float32 range (about ±3.4e38)"
                         if math.isfinite(x) else f"{x:g} is not a finite number")
    if boolean and x not in (0.0, 1.0):
        raise ValueError(f"{v!r} is not true/false (or yes/no, 1/0)")
    return x


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return "" if isinstance(v, float) and math.isnan(v) else f"{v:g}"
    if isinstance(v, str):
        t = v.strip()
        return "" if t.lower() in BLANKS else t
    raise ValueError(f"expected text or a number, got {type(v).__name__}")


def _flat(cells: Sequence[Any]) -> np.ndarray | None:
    """np.asarray(cells) for the fast paths, or None when a cell holds a list (numpy would
    make it a second axis, or refuse a ragged one): the cell-by-cell path names it."""
    try:
        arr = np.asarray(cells)
    except ValueError:
        return None
    return arr if arr.ndim == 1 else None


def _numbers(cells: Sequence[Any], boolean: bool, name: str, where: Any,
             problems: list[str]) -> np.ndarray:
    text = _flat(cells) if boolean else None
    if text is not None and text.dtype.kind == "U":  # fast path: words only
        low = np.char.lower(np.char.strip(text))
        out = np.full(len(low), np.nan, np.float32)
        out[np.isin(low, list(TRUE_WORDS))] = 1.0
        out[np.isin(low, list(FALSE_WORDS))] = 0.0
        if (np.isin(low, list(TRUE_WORDS | FALSE_WORDS | BLANKS))).all():
            return out
    if not boolean:
        try:  # fast path: every cell a number, numeric text or a blank word
            text = _flat(cells)
            if text is None:
                raise ValueError("not one value a cell")
            if text.dtype.kind == "U":
                low = np.char.lower(np.char.strip(text))
                text = np.where(np.isin(low, list(BLANKS)), "nan", low)
            arr = text.astype(np.float64)
            with np.errstate(invalid="ignore"):
                if (np.abs(arr[~np.isnan(arr)]) <= F32_MAX).all():
                    return arr.astype(np.float32)
        except (ValueError, TypeError):
            pass
    out = np.empty(len(cells), np.float32)
    for i, v in enumerate(cells):
        try:
            out[i] = _number(v, boolean)
        except ValueError as exc:
            problems.append(f"{where(i)}, column {name!r}: {exc}")
            out[i] = math.nan
    return out


def feed_from_columns(art: Artifact, columns: Mapping[str, Sequence[Any]],
                      where: Any = None) -> dict[str, np.ndarray]:
    """The feed {input: [n, 1] array} from cells per column name (other names ignored).

    where(i) names row i in messages (default 'row i+1'). Raises ModelInputError listing
    every unreadable value; a missing column is an error with a did-you-mean that ignores
    case.
    """
    where = where or (lambda i: f"row {i + 1}")
    names = art.feature_names
    missing = [n for n in names if n not in columns]
    if missing:
        given = list(columns)
        shown = ", ".join(f"{n!r}{_did_you_mean(n, given)}" for n in missing)
        raise ModelInputError(f"missing column(s) {shown}; the model needs {len(names)} "
                              f"columns: {', '.join(map(repr, names))}")
    types = art.input_types()
    feed: dict[str, np.ndarray] = {}
    problems: list[str] = []
    for n in names:
        cells = columns[n]
        if types[n] == "BYTES":
            words = _flat(cells)
            if words is not None and words.dtype.kind == "U":  # fast path: text only (CSV)
                stripped = np.char.strip(words)
                blank = np.isin(np.char.lower(stripped), list(BLANKS))
                feed[n] = np.where(blank, "", stripped).astype(object).reshape(-1, 1)
                continue
            out = np.empty(len(cells), dtype=object)
            for i, v in enumerate(cells):
                try:
                    out[i] = _text(v)
                except ValueError as exc:
                    problems.append(f"{where(i)}, column {n!r}: {exc}")
                    out[i] = ""
            feed[n] = out.reshape(-1, 1)
        else:
            boolean = (art.column(n) or {}).get("type") == "boolean"
            feed[n] = _numbers(cells, boolean, n, where, problems).reshape(-1, 1)
    if problems:
        more = f"\n... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise ModelInputError("\n".join(problems[:_SHOWN]) + more)
    if not feed or len(next(iter(feed.values()))) == 0:
        raise ModelInputError("no rows")
    return feed


def feed_from_records(art: Artifact, records: Any) -> dict[str, np.ndarray]:
    """The feed from JSON records [{column: value, ...}]: strings, numbers, booleans and
    nulls; keys that are not feature columns are ignored (ids pass through elsewhere)."""
    if not isinstance(records, list) or not records:
        raise ModelInputError("records must be a non-empty list of objects")
    names = art.feature_names
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise ModelInputError(f"row {i + 1}: expected an object of column: value, got "
                                  f"{type(r).__name__}")
        lost = [n for n in names if n not in r]
        if lost:
            shown = ", ".join(f"{n!r}{_did_you_mean(n, list(r))}" for n in lost)
            raise ModelInputError(f"row {i + 1}: missing column(s) {shown}; the model needs "
                                  f"{', '.join(map(repr, names))} (null for a blank)")
    return feed_from_columns(art, {n: [r[n] for r in records] for n in names})
