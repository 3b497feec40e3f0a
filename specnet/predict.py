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
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import columnar
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
NPY_MAGIC = b"\x93NUMPY"


@dataclass
class Input:
    """An input file, read once: its name for messages, its format and its content.

    text: the CSV / JSON text (byte order mark removed). data: NPY bytes read from stdin.
    An NPY file is left on disk (`path`) and loaded when its rows are asked for.
    """

    path: str
    kind: str
    text: str = ""
    data: bytes = b""

    @property
    def name(self) -> str:
        """The path, or '<stdin>'."""
        return "<stdin>" if self.path == "-" else self.path


def sniff(data: bytes) -> str:
    """The format of stdin, from its content: NPY (magic bytes), JSON ('[' or '{' first),
    else CSV."""
    if data.startswith(NPY_MAGIC):
        return "npy"
    start = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]
    if not start:
        raise ModelInputError("no input on stdin")
    return "json" if start in (b"[", b"{") else "csv"


def input_format(path: str, given: str | None) -> str:
    """The input format: `given`, or from the file's extension ('-': from its content,
    told by `sniff` once read: returns 'auto')."""
    if given:
        return given
    if path == "-":
        return "auto"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise ModelInputError(f"cannot tell the format from the extension "
                          f"{Path(path).suffix or '(none)'!r}; use .csv, .json or .npy, "
                          "or pass --input-format")


def read_csv(art: Artifact, text: str, note: Callable[[str], None] | None = None,
             expected: Collection[str] = ()) -> np.ndarray:
    """Rows (n, features) from CSV text with a header, columns matched by feature name.

    expected: other columns the caller uses (a target, ids): not noted as ignored.
    """
    header = columnar.header(text)[0]
    if not any(header):
        raise ModelInputError(f"empty CSV; expected a header row naming the "
                              f"features: {', '.join(art.feature_names)}")
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
    extra = [h for h in header if h not in art.feature_names and h not in expected]
    if extra and note is not None:
        note(f"ignoring column(s) the model does not use: {', '.join(map(repr, extra))}")
    fast = columnar.rows(art, text)  # None: pyarrow missing, or a problem to locate below
    if fast is not None:
        return fast
    index = [header.index(f) for f in art.feature_names]
    reader = csv.reader(io.StringIO(text))
    next(reader, None)  # the header
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
    return input_rows(art, load_input(path, fmt), note)


def load_input(path: str, fmt: str | None = None) -> Input:
    """Read the file `path` ('-': stdin, its format told by its content) once.

    Only a regular file (no FIFO, no /dev/zero) within the memory budget is read, and at
    most the budget from stdin. Raises ModelInputError naming the file when it cannot be
    read.
    """
    from .budget import BudgetError, check_npy_file, read_bounded, regular_file

    name = "<stdin>" if path == "-" else path
    try:
        kind = input_format(path, fmt)
        if path != "-":
            regular_file(path, "input file")
            if kind == "npy":
                check_npy_file(path)
                return Input(path, kind)
            data = Path(path).read_bytes()
        else:
            stdin = getattr(sys.stdin, "buffer", None)
            raw = read_bounded(stdin if stdin is not None else sys.stdin, name)
            data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
            if kind == "auto":
                kind = sniff(data)
            if kind == "npy":
                return Input(path, kind, data=data)
        text = data.decode("utf-8")
    except BudgetError as exc:
        raise ModelInputError(f"{name}: {str(exc).removeprefix(f'{name}: ')}") from None
    except ModelInputError as exc:
        raise ModelInputError(f"{name}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelInputError(f"{name}: cannot read it: {exc}") from None
    # A byte order mark (Excel's "CSV UTF-8" writes one).
    return Input(path, kind, text=text.removeprefix("\ufeff"))


def input_rows(art: Artifact, src: Input, note: Callable[[str], None] | None = None,
               expected: Collection[str] = ()) -> np.ndarray:
    """Checked model input (n, *input_shape) float32 from a loaded input.

    expected: columns besides the features that the caller uses (not noted as ignored).
    Raises ModelInputError naming the file, the row and the column of the first problem.
    """
    try:
        return _read(art, src, note, expected)
    except ModelInputError as exc:
        raise ModelInputError(f"{src.name}: {exc}") from None


def _read(art: Artifact, src: Input, note: Callable[[str], None] | None,
          expected: Collection[str]) -> np.ndarray:
    if src.kind == "npy":
        try:
            X = np.load(io.BytesIO(src.data) if src.path == "-" else src.path,
                        allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ModelInputError(f"not a readable .npy array ({exc})") from None
        if not isinstance(X, np.ndarray):
            raise ModelInputError("expected one array (.npy), got an archive")
        return check_array(art, X)
    if src.kind == "csv":
        return check_array(art, read_csv(art, src.text, note, expected))
    try:
        data = loads(src.text)
    except ValueError as exc:
        raise ModelInputError(f"malformed JSON: {exc}") from None
    return read_json(art, data)


def run_model(runtime: Runtime, src: Input, note: Callable[[str], None] | None = None,
              expected: Collection[str] = ()) -> np.ndarray:
    """The model's outputs for a loaded input: a raw-column model gets its feed (text,
    blanks), any other model the checked array. expected: see `input_rows`."""
    art = runtime.artifact
    if art.input_layout == "columns":
        return runtime.run_feed(feed_rows(art, src, note))
    return runtime.run(input_rows(art, src, note, expected=expected))


def feed_rows(art: Artifact, src: Input,
              note: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """The feed of a raw-column model (input_layout "columns") from loaded CSV or JSON rows
    with text, blanks and nulls; ModelInputError naming the file, line / row and column."""
    try:
        if src.kind == "npy":
            raise ModelInputError("this model takes raw columns (text and blanks allowed): "
                                  "give CSV or JSON rows, not a NumPy array")
        if src.kind == "csv":
            return _csv_feed(art, src.text, note)
        try:
            data = loads(src.text)
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
        raise ModelInputError("\n".join(f"{src.name}: {line}" for line in str(exc).splitlines())
                              ) from None


def _csv_feed(art: Artifact, text: str,
              note: Callable[[str], None] | None) -> dict[str, np.ndarray]:
    """Columns of a CSV text (header required) -> the feed, cells located by line."""
    header = columnar.header(text)[0]
    if not any(header):
        raise ModelInputError("empty CSV; expected a header row naming the columns: "
                              f"{', '.join(art.feature_names)}")
    fast = columnar.feed(art, text)  # None: pyarrow missing, or a problem to locate below
    if fast is not None:
        _note_unknown(art, header, note)
        return fast
    reader = csv.reader(io.StringIO(text))
    next(reader, None)  # the header
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
    _note_unknown(art, header, note)
    used = set(art.feature_names)
    cols = {h: c for h, c in zip(header, zip(*rows, strict=True), strict=True) if h in used}
    return feed_from_columns(art, cols, where=lambda i: f"line {lines[i]} (row {i + 1})")


def _note_unknown(art: Artifact, header: list[str], note: Callable[[str], None] | None) -> None:
    """Note the columns that are neither features nor in the training file (ids, targets
    and other training columns are expected in a raw-column model's input)."""
    used = set(art.feature_names)
    unknown = [h for h in header if h not in used and art.column(h) is None]
    if unknown and note is not None:
        note(f"ignoring column(s) the model does not use: {', '.join(map(repr, unknown))}")


def _texts(values: np.ndarray) -> list[str]:
    """Numbers as float32 text, as `str(np.float32(v))` writes each (shortest text that
    reads back as the same float32: '0.39984196', '1e-05'), in one numpy call."""
    with np.errstate(over="ignore"):
        out: list[str] = np.asarray(values, dtype=np.float32).astype(str).tolist()
    return out


def to_csv(result: dict[str, Any], kept: dict[str, list[Any]] | None = None) -> str:
    """Predictions as CSV text: the `kept` input columns first (ids), then label +
    prob_<class> columns, or one column per target.

    Built column by column (numbers formatted in bulk); the csv module only joins and
    quotes the cells.
    """
    kept = kept or {}
    if "values" in result:
        values = np.asarray(result["values"])
        names = result["target_names"] or [f"value_{i}" for i in range(values.shape[1])]
        body = [_texts(values[:, j]) for j in range(values.shape[1])]
    else:
        probs = np.asarray(result["probabilities"])
        names = ["label", *(f"prob_{c}" for c in result["class_labels"])]
        body = [list(result["labels"]), *(_texts(probs[:, j]) for j in range(probs.shape[1]))]
    clash = [n for n in kept if n in names]
    if clash:
        raise ModelInputError(f"passed-through column(s) {', '.join(map(repr, clash))} would "
                              "clash with the output column(s) of the same name; rename them "
                              "in the input")
    columns = [["" if v is None else str(v) for v in values] for values in kept.values()]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*kept, *names])
    w.writerows(zip(*columns, *body, strict=True))
    return buf.getvalue()


def check_threshold(art: Artifact, threshold: float | None) -> float:
    """The decision threshold on P(class 1) for `art`: 0.5 unless given; given, it must be
    in [0, 1] and the model binary."""
    if threshold is None:
        return 0.5
    if art.task != "binary":
        raise ModelInputError(f"--threshold applies to binary models only; {art.name!r} is a "
                              f"{art.task} model")
    if not 0.0 <= threshold <= 1.0:
        raise ModelInputError(f"--threshold must be between 0 and 1, got {threshold}")
    return float(threshold)


def predict_file(model: str | Path, path: str, *, input_fmt: str | None = None,
                 output_fmt: str = "csv",
                 note: Callable[[str], None] | None = None, threshold: float | None = None,
                 keep: Collection[str] = (), threads: int | None = None
                 ) -> tuple[Artifact, str]:
    """Run `model` on the rows in `path` ('-': stdin) with `threads` onnxruntime threads
    (default: the available cores); returns the artifact and the output text.

    The model's id columns (role 'id' in its `specnet.columns` metadata) that the input
    holds, and the `keep` columns, lead the output in input order. threshold: binary
    models only, P(class 1) above it is class 1 (default 0.5).
    """
    from .passthrough import id_columns, passed_through, read_columns

    runtime = Runtime(model, threads=threads)
    art = runtime.artifact
    cut = check_threshold(art, threshold)
    src = load_input(path, input_fmt)
    try:
        pass_names = passed_through(src, id_columns(runtime.metadata), list(keep))
    except ModelInputError as exc:
        raise ModelInputError(f"{src.name}: {exc}") from None
    result = predictions(art, run_model(runtime, src, note, pass_names), cut)
    try:
        kept = read_columns(src, pass_names, "to pass through")
        n = len(result["values"] if "values" in result else result["labels"])
        if any(len(v) != n for v in kept.values()):
            raise ModelInputError(f"the passed-through columns have {len(kept[pass_names[0]])} "
                                  f"rows, the model input {n}")
    except ModelInputError as exc:
        raise ModelInputError(f"{src.name}: {exc}") from None
    if output_fmt == "json":
        extra = {"columns": kept} if kept else {}
        return art, dumps({"model": art.name, **extra, **result}).decode() + "\n"
    return art, to_csv(result, kept)
