"""CSV prediction input read column-wise with pyarrow: the fast path of `predict`.

pyarrow (C++, multi-threaded) splits the text into string columns; each column is then
converted whole (pyarrow compute, numpy), never row by row in Python. The rules are the
careful path's (`predict.read_csv`, `predict._csv_feed`, `feed.feed_from_columns`,
`passthrough.read_columns`); this module only ever answers "here are the columns" or
None. None when pyarrow is not installed (it comes with the `train` extra:
`pip install 'specnet[train]'`), when pyarrow refuses the text (a short line, a stray
quote), and when a cell is not plainly readable (a bad number, a value beyond float32,
a row with nothing in it). The caller then takes the careful stdlib path, which reads the
same rows by the same rules and names the line, row and column of each problem, so an
error message never depends on whether pyarrow is installed or which path ran.

Cell rules kept exact:
- text cells are stripped and matched against the blank words with Python's own
  `str.strip` / `str.lower`, applied to each distinct value (dictionary encoding), not
  to each cell;
- numbers are parsed by pyarrow only after an ASCII-whitespace trim; every text pyarrow
  reads as a number Python's `float` reads as the same number (the converse does not
  hold: '1_000', ' 1' with a no-break space, Arabic digits; those take the careful path).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .feed import BLANKS, F32_MAX, _number

if TYPE_CHECKING:
    from .artifact import Artifact

_EMPTY_ROW = re.compile(r'\n(?:[^\S\n]|[,"])+(?:\n|\Z)')
"""A line of nothing but commas, quotes and spaces (a row that may be all blanks)."""


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
    except ImportError:  # the base install: the careful path reads the file
        return None
    return pyarrow


@dataclass
class CsvColumns:
    """Columns of a CSV text, as pyarrow strings (cells not yet stripped)."""

    header: list[str]
    """Column names of the header row, stripped, in file order."""
    rows: int
    cells: dict[str, Any]
    """name -> pyarrow ChunkedArray of strings (one cell per data row)."""


def header(text: str) -> tuple[list[str], int]:
    """The header record of CSV text (names stripped; [] when there is none) and the
    offset in `text` where the data rows start. Reads the first lines only: the record
    ends within a prefix when the csv module stops before the prefix's end."""
    size = 1 << 16
    while True:
        buf = io.StringIO(text[:size])
        try:
            first = next(csv.reader(buf), [])
        except csv.Error:  # a quoted field cut by the prefix: read more
            first = None
        if size >= len(text) or (first is not None and buf.tell() < size):
            break
        size *= 4
    if first is None:  # the whole text: the careful path says what is wrong
        return [], len(text)
    return [h.strip() for h in first], buf.tell()


def read(text: str, names: Collection[str], *, empty_rows: bool = True) -> CsvColumns | None:
    """The named columns of CSV `text` (header row first), or None (see the module).

    A name the header repeats is read from its last column (as the careful path's dict
    of columns does). empty_rows=False: None when a line may be a row of blanks only,
    which the careful path of `passthrough` skips (a rule the fast path leaves to it).
    """
    pa = _pyarrow()
    if pa is None:
        return None
    head, start = header(text)
    index = {h: i for i, h in enumerate(head)}
    if not any(head) or any(n not in index for n in names):
        return None
    body = text[start:]
    if not empty_rows and _EMPTY_ROW.search("\n" + body):
        return None
    wanted = {f"c{index[n]}": n for n in names}
    try:
        table = pa.csv.read_csv(
            pa.py_buffer(body.encode("utf-8")),
            read_options=pa.csv.ReadOptions(column_names=[f"c{i}" for i in range(len(head))]),
            parse_options=pa.csv.ParseOptions(newlines_in_values=True),
            convert_options=pa.csv.ConvertOptions(
                include_columns=list(wanted), column_types=dict.fromkeys(wanted, pa.string()),
                strings_can_be_null=False, quoted_strings_can_be_null=False,
                check_utf8=False))
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows == 0:
        return None
    cells = {n: table.column(c) for c, n in wanted.items()}
    return CsvColumns(head, table.num_rows, cells)


def _numpy(chunks: Iterable[Any], dtype: Any) -> np.ndarray:
    """pyarrow arrays without nulls, of a fixed-width type, joined as numpy `dtype`, read
    from their buffers (pyarrow's own to_numpy imports pandas: a second, for nothing)."""
    parts = [np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c) + c.offset)[c.offset:]
             for c in chunks if len(c)]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _distinct(arr: Any, convert: Callable[[str], Any], dtype: Any) -> np.ndarray:
    """`convert` applied to each distinct cell of a string array, spread back to every
    row: (rows,) of `dtype`. ValueError from `convert` passes through."""
    pa = _pyarrow()
    enc = pa.compute.dictionary_encode(arr).unify_dictionaries()  # one dictionary
    if not enc.num_chunks:
        return np.empty(0, dtype)
    words = enc.chunk(0).dictionary.to_pylist()
    values = np.array([convert(w) for w in words], dtype=dtype)
    codes = _numpy((c.indices for c in enc.chunks), np.int32)
    out: np.ndarray = values[codes]
    return out


def _word(v: str) -> str:
    t = v.strip()
    return "" if t.lower() in BLANKS else t


def texts(arr: Any) -> np.ndarray:
    """A categorical column: (rows,) object array of stripped text, '' for a blank."""
    return _distinct(arr, _word, object)


def stripped(arr: Any) -> list[str]:
    """A passed-through column: its cells stripped, one str per row."""
    out: list[str] = _distinct(arr, str.strip, object).tolist()
    return out


def booleans(arr: Any, convert: Callable[[str], float]) -> np.ndarray | None:
    """A boolean column: (rows,) float32 from `convert` of each distinct cell; None when
    `convert` refuses a cell (ValueError)."""
    try:
        return _distinct(arr, convert, np.float32)
    except ValueError:
        return None


_BLANK = "^(?:" + "|".join(re.escape(w) for w in sorted(BLANKS)) + ")$"


def numbers(arr: Any, blanks: bool) -> np.ndarray | None:
    """A numeric column: (rows,) float64, NaN for a blank word when `blanks`; None when a
    cell is not a number pyarrow reads, or is beyond the float32 range (the careful path
    says which)."""
    pa = _pyarrow()
    pc = pa.compute
    try:
        words = pc.ascii_trim_whitespace(arr)
        if blanks:  # blank words (any case) -> 'nan'; case does not change a number
            words = pc.replace_substring_regex(pc.ascii_lower(words), pattern=_BLANK,
                                               replacement="nan")
        values = pc.cast(words, pa.float64())
    except (pa.ArrowException, ValueError):
        return None
    out = _numpy(values.chunks, np.float64)
    with np.errstate(invalid="ignore"):
        if (np.abs(out) > F32_MAX).any():
            return None
    return out


def rows(art: Artifact, text: str) -> np.ndarray | None:
    """Rows (n, features) float64 of a model that takes numbers only, or None (see the
    module): every cell a number, blanks not allowed (`predict.read_csv`'s rules)."""
    cols = read(text, art.feature_names)
    if cols is None:
        return None
    out = []
    for name in art.feature_names:
        x = numbers(cols.cells[name], blanks=False)
        if x is None:
            return None
        out.append(x)
    return np.stack(out, axis=1)  # n x (rows,) -> (n, features)


def feed(art: Artifact, text: str) -> dict[str, np.ndarray] | None:
    """The feed {input: [n, 1] array} of a raw-column model, or None (see the module), by
    `feed.feed_from_columns`'s rules: float32 (NaN for a blank) for numeric and boolean
    columns, stripped text ('' for a blank) for categorical ones."""
    cols = read(text, art.feature_names)
    if cols is None:
        return None
    types = art.input_types()
    out: dict[str, np.ndarray] = {}
    for name in art.feature_names:
        cells = cols.cells[name]
        x: np.ndarray | None
        if types[name] == "BYTES":
            x = texts(cells)
        elif (art.column(name) or {}).get("type") == "boolean":
            x = booleans(cells, _boolean)
        else:
            x = numbers(cells, blanks=True)
        if x is None:
            return None
        out[name] = x.astype(np.float32, copy=False).reshape(-1, 1) if x.dtype != object \
            else x.reshape(-1, 1)
    return out


def _boolean(v: str) -> float:
    return _number(v, True)
