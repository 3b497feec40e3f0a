"""Named columns of an input file besides the model's inputs: ids to pass through to the
predictions, and the labels `specnet evaluate` scores against.

Torch-free. Works on an input read once by `predict.load_input` (a file or stdin), so the
rows line up with the ones the model sees: CSV rows in file order with blank lines skipped
(as `predict.read_csv` does), JSON records in list order. JSON given as bare rows of
numbers carries no column names and cannot pass columns through.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ModelInputError
from .runtime import loads

if TYPE_CHECKING:
    from .predict import Input

COLUMNS_KEY = "specnet.columns"
"""Metadata key: JSON list of {name, type, role, categories}, one per input column."""


def id_columns(metadata: Mapping[str, str]) -> list[str]:
    """Names of the columns whose role is 'id' in the model's `specnet.columns` metadata
    (none when the key is absent or unreadable)."""
    return [c["name"] for c in _columns(metadata) if c.get("role") == "id"]


def role_columns(metadata: Mapping[str, str], role: str) -> list[str]:
    """Names of the columns with `role` in the model's `specnet.columns` metadata."""
    return [c["name"] for c in _columns(metadata) if c.get("role") == role]


def _columns(metadata: Mapping[str, str]) -> list[dict[str, Any]]:
    try:
        cols = json.loads(metadata.get(COLUMNS_KEY, "[]"))
    except ValueError:
        return []
    if not isinstance(cols, list):
        return []
    return [c for c in cols if isinstance(c, dict) and isinstance(c.get("name"), str)]


def _json_records(src: Input) -> list[Any] | None:
    """The records of a JSON input ([{column: value}]), or None when it holds bare rows."""
    try:
        data = loads(src.text)
    except ValueError as exc:
        raise ModelInputError(f"malformed JSON: {exc}") from None
    if isinstance(data, dict):
        keys = [k for k in ("instances", "records", "rows") if k in data]
        data = data[keys[0]] if len(keys) == 1 else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    return data


def _csv_rows(text: str) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    rows = [r for r in reader if r and any(v.strip() for v in r)]  # blank lines skipped
    return header, rows


def header(src: Input) -> list[str] | None:
    """Column names of a CSV input (its header) or of JSON records (keys in order of first
    appearance); None for JSON rows and NPY, which name no columns."""
    if src.kind == "csv":
        from .columnar import header as csv_header

        return csv_header(src.text)[0]  # the first record only, not every row
    if src.kind != "json":
        return None
    records = _json_records(src)
    if records is None:
        return None
    names: dict[str, None] = {}
    for r in records:
        if isinstance(r, dict):
            names.update(dict.fromkeys(r))
    return list(names)


def missing_column(name: str, have: Iterable[str], what: str) -> ModelInputError:
    """The error for a column that is not in the file, with a did-you-mean that ignores
    case and the file's columns."""
    from .spec.base import did_you_mean

    have = list(have)
    shown = ", ".join(map(repr, have[:12])) + (", ..." if len(have) > 12 else "")
    return ModelInputError(f"missing column {name!r} ({what}){did_you_mean(name, have, 0.6)}; "
                           f"the file has: {shown}")


def read_columns(src: Input, names: Sequence[str], what: str = "asked for") -> dict[
        str, list[Any]]:
    """Values of the named columns, one per data row, in row order (CSV: stripped text;
    JSON: the values as given, null as None). `what` says why a column is wanted, for the
    message when it is missing. Raises ModelInputError (not yet naming the file)."""
    if not names:
        return {}
    if src.kind == "csv":
        from . import columnar

        fast = columnar.read(src.text, names, empty_rows=False)
        if fast is not None:  # else: pyarrow is missing, or a line is for the rules below
            return {n: columnar.stripped(fast.cells[n]) for n in names}
        head, rows = _csv_rows(src.text)
        for n in names:
            if n not in head:
                raise missing_column(n, head, what)
        index = {n: head.index(n) for n in names}
        return {n: [r[j].strip() if j < len(r) else "" for r in rows]
                for n, j in index.items()}
    records = _json_records(src) if src.kind == "json" else None
    if records is None:
        raise ModelInputError(f"{'NPY arrays' if src.kind == 'npy' else 'JSON rows'} name no "
                              f"columns, so {', '.join(map(repr, names))} ({what}) cannot be "
                              "read: give CSV with a header or JSON records "
                              "[{column: value, ...}]")
    out: dict[str, list[Any]] = {n: [] for n in names}
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ModelInputError(f"row {i + 1}: expected an object of column: value, got "
                                  f"{type(r).__name__}")
        for n in names:
            if n not in r:
                if i == 0:
                    raise missing_column(n, list(r), what)
                raise ModelInputError(f"row {i + 1}: missing column {n!r} ({what})")
            out[n].append(r[n])
    return out


def passed_through(src: Input, ids: Sequence[str], keep: Sequence[str]) -> list[str]:
    """The columns to pass through, in the input's column order: the model's id columns
    that the file holds, and every `keep` column (each must be in the file)."""
    head = header(src)
    if head is None:
        if keep:
            read_columns(src, keep, "--keep")  # raises: these inputs name no columns
        return []
    for n in keep:
        if n not in head:
            raise missing_column(n, head, "--keep")
    wanted = set(keep) | {n for n in ids if n in head}
    return [n for n in head if n in wanted]
