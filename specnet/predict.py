"""`specnet predict`: read rows from CSV / JSON / NPY, run the model, write CSV / JSON.

Torch-free (onnxruntime only). Input rules:
  CSV   a header row is required; columns are matched to the model's features by name,
        other columns are ignored (and listed in a note); every value must be a number.
  JSON  a list of records [{feature: value}], a list of rows [[v, ...]], or an object
        {"instances": ...} / {"records": [...]} / {"rows": [[...]]}.
  NPY   a numeric array (n, features) or (n, *input_shape); pickled arrays are refused.
Output: CSV (label, then prob_<class> per class; or one column per target) or JSON
(the same object `/predict` of `specnet serve` returns).
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import Artifact
from .errors import ModelInputError
from .runtime import (
    Runtime,
    check_array,
    dumps,
    feed_from_columns,
    feed_from_records,
    loads,
    predictions,
    rows_from_lists,
    rows_from_records,
)

FORMATS = ("csv", "json", "npy")


def input_format(path: str, given: str | None) -> str:
    """The input format: `given`, or from the file's extension."""
    if given:
        return given
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise ModelInputError(f"cannot tell the format from the extension "
                          f"{Path(path).suffix or '(none)'!r}; use .csv, .json or .npy, "
                          "or pass --input-format")


def read_csv(art: Artifact, text: str,
             note: Callable[[str], None] | None = None) -> np.ndarray:
    """Rows (n, features) from CSV text with a header, columns matched by feature name."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise ModelInputError(f"empty CSV; expected a header row naming the "
                              f"features: {', '.join(art.feature_names)}")
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ModelInputError(f"duplicate column(s) {', '.join(map(repr, dupes))}")
    missing = [f for f in art.feature_names if f not in header]
    if missing:
        hint = ""
        if _all_numbers(header):
            hint = " (the first line looks like data: a header row is required)"
        raise ModelInputError(f"missing column(s) {', '.join(map(repr, missing))}"
                              f"{hint}; the model needs {len(art.feature_names)} columns: "
                              f"{', '.join(map(repr, art.feature_names))}")
    extra = [h for h in header if h not in art.feature_names]
    if extra and note is not None:
        note(f"ignoring column(s) the model does not use: {', '.join(map(repr, extra))}")
    index = [header.index(f) for f in art.feature_names]
    rows: list[list[float]] = []
    for line, record in enumerate(reader, start=2):
        if not record or not any(v.strip() for v in record):
            continue  # blank line
        if len(record) != len(header):
            raise ModelInputError(f"line {line} (row {len(rows) + 1}): "
                                  f"{len(record)} fields, the header has {len(header)}")
        row = []
        for j in index:
            value = record[j].strip()
            try:
                row.append(float(value))
            except ValueError:
                raise ModelInputError(f"line {line} (row {len(rows) + 1}), column "
                                      f"{header[j]!r}: {value!r} is not a number") from None
        rows.append(row)
    if not rows:
        raise ModelInputError("no data rows after the header")
    return np.asarray(rows, dtype=np.float64)


def _all_numbers(values: list[str]) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def read_json(art: Artifact, data: Any) -> np.ndarray:
    """Checked rows from parsed JSON: records, rows, or an object holding either."""
    if isinstance(data, dict):
        keys = [k for k in ("instances", "records", "rows") if k in data]
        if len(keys) != 1:
            raise ModelInputError("a JSON object must hold exactly one of 'instances', "
                                  f"'records' or 'rows'; got keys {sorted(data)}")
        data = data[keys[0]]
    if not isinstance(data, list) or not data:
        raise ModelInputError("expected a non-empty list of records or rows")
    if isinstance(data[0], dict):
        return rows_from_records(art, data)
    return rows_from_lists(art, data)


def read_input(art: Artifact, path: str, fmt: str | None = None,
               note: Callable[[str], None] | None = None) -> np.ndarray:
    """Checked model input (n, *input_shape) float32 from a file ('-' reads stdin).

    Raises ModelInputError naming the file, the row and the column of the first problem.
    """
    try:
        return _read(art, path, input_format(path, fmt), note)
    except ModelInputError as exc:
        raise ModelInputError(f"{'<stdin>' if path == '-' else path}: {exc}") from None


def _read(art: Artifact, path: str, kind: str,
          note: Callable[[str], None] | None) -> np.ndarray:
    if kind == "npy":
        if path == "-":
            raise ModelInputError("NPY input cannot come from stdin; give a file")
        try:
            X = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ModelInputError(f"not a readable .npy array ({exc})") from None
        if not isinstance(X, np.ndarray):
            raise ModelInputError("expected one array (.npy), got an archive")
        return check_array(art, X)
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelInputError(f"cannot read it: {exc}") from None
    text = text.removeprefix("\ufeff")  # a byte order mark (Excel's "CSV UTF-8" writes one)
    if kind == "csv":
        return check_array(art, read_csv(art, text, note))
    try:
        data = loads(text)
    except ValueError as exc:
        raise ModelInputError(f"malformed JSON: {exc}") from None
    return read_json(art, data)


def read_feed(art: Artifact, path: str, fmt: str | None = None,
              note: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """The feed of a raw-column model (input_layout "columns") from CSV or JSON rows with
    text, blanks and nulls; ModelInputError naming the file, line / row and column."""
    where = "<stdin>" if path == "-" else path
    try:
        kind = input_format(path, fmt)
        if kind == "npy":
            raise ModelInputError("this model takes raw columns (text and blanks allowed): "
                                  "give CSV or JSON rows, not a NumPy array")
        text = _text(path)
        if kind == "csv":
            return _csv_feed(art, text, note)
        try:
            data = loads(text)
        except ValueError as exc:
            raise ModelInputError(f"malformed JSON: {exc}") from None
        if isinstance(data, dict):
            keys = [k for k in ("instances", "records") if k in data]
            if len(keys) != 1:
                raise ModelInputError("a JSON object must hold exactly one of 'instances' or "
                                      f"'records'; got keys {sorted(data)}")
            data = data[keys[0]]
        return feed_from_records(art, data)
    except ModelInputError as exc:
        raise ModelInputError("\n".join(f"{where}: {line}" for line in str(exc).splitlines())
                              ) from None


def _text(path: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelInputError(f"cannot read it: {exc}") from None
    return text.removeprefix("\ufeff")


def _csv_feed(art: Artifact, text: str,
              note: Callable[[str], None] | None) -> dict[str, np.ndarray]:
    """Columns of a CSV text (header required) -> the feed, cells located by line."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    if not any(header):
        raise ModelInputError("empty CSV; expected a header row naming the columns: "
                              f"{', '.join(art.feature_names)}")
    width = len(header)
    lines: list[int] = []
    rows: list[list[str]] = []
    add_line, add_row = lines.append, rows.append  # the hot loop: 100,000s of rows
    for record in reader:
        if len(record) != width:
            if not record or not any(v.strip() for v in record):
                continue  # a blank line
            raise ModelInputError(f"line {reader.line_num} (row {len(rows) + 1}): "
                                  f"{len(record)} fields, the header has {width}")
        add_line(reader.line_num)
        add_row(record)
    if not rows:
        raise ModelInputError("no data rows after the header")
    used = set(art.feature_names)
    extra = [h for h in header if h not in used]
    unknown = [h for h in extra if art.column(h) is None]  # not in the training file
    if unknown and note is not None:
        note(f"ignoring column(s) the model does not use: {', '.join(map(repr, unknown))}")
    cols = {h: c for h, c in zip(header, zip(*rows, strict=True), strict=True) if h in used}
    return feed_from_columns(art, cols, where=lambda i: f"line {lines[i]} (row {i + 1})")


def _num(v: Any) -> str:
    return str(np.float32(v))


def to_csv(result: dict[str, Any]) -> str:
    """Predictions as CSV text: label + prob_<class> columns, or one column per target."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if "values" in result:
        names = result["target_names"] or [f"value_{i}" for i in
                                          range(result["values"].shape[1])]
        w.writerow(names)
        w.writerows([_num(v) for v in row] for row in result["values"])
    else:
        w.writerow(["label", *(f"prob_{c}" for c in result["class_labels"])])
        w.writerows([label, *(_num(v) for v in row)]
                    for label, row in zip(result["labels"], result["probabilities"],
                                          strict=True))
    return buf.getvalue()


def predict_file(model: str | Path, path: str, *, input_fmt: str | None = None,
                 output_fmt: str = "csv",
                 note: Callable[[str], None] | None = None) -> tuple[Artifact, str]:
    """Run `model` on the rows in `path`; returns the artifact and the output text."""
    runtime = Runtime(model)
    art = runtime.artifact
    if art.input_layout == "columns":
        result = predictions(art, runtime.run_feed(read_feed(art, path, input_fmt, note)))
    else:
        X = read_input(art, path, input_fmt, note)
        result = predictions(art, runtime.run(X))
    if output_fmt == "json":
        return art, dumps({"model": art.name, **result}).decode() + "\n"
    return art, to_csv(result)
