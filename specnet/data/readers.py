"""Read a tabular file (CSV or Parquet) whole into raw columns, with located errors.

The parsing is pyarrow's (C++, multi-threaded): numbers, true/false and dates are
recognised per column, text is dictionary-encoded. pyarrow does not say where a malformed
row is, so when it refuses a CSV file the file is scanned again with Python's csv module
(`files._csv_rows`), which names every bad line. Line numbers of cell problems come from
the same scan, run only when there is a problem to report.

Cells that mean "missing": empty, NA, N/A, NaN, null, None, ? (any case, spaces around
ignored).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .table import Col, Table

if TYPE_CHECKING:
    import pyarrow as pa

MISSING = ("", "na", "n/a", "nan", "null", "none", "?", "#n/a", "-nan")
"""Cell texts (lower-cased, stripped) that mean a missing value."""
TRUE = ("true", "yes")
FALSE = ("false", "no")
"""Words of boolean columns (any case); pyarrow itself reads only true / false."""


def _cases(words: tuple[str, ...]) -> list[str]:
    return sorted({v for w in words for v in (w, w.upper(), w.capitalize())})


@dataclass
class Loaded:
    """A file read whole: its header (file order), raw columns, and how to name a row."""

    path: Path
    header: list[str]
    table: Table
    where: Callable[[np.ndarray], list[str]]
    """Row indices -> 'line N' (CSV) or 'row N' (Parquet), for messages."""


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError:  # pragma: no cover - pyarrow is in the train extra
        raise DataError("reading CSV and Parquet files for training needs pyarrow: "
                        "pip install 'specnet[train]'") from None
    return pyarrow


def _col(arr: pa.ChunkedArray, name: str, path: Path) -> Col:
    """One pyarrow column -> a raw Col (number, bool, date, text or empty)."""
    pa = _pyarrow()
    pc = pa.compute
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_null(t):
        return Col("empty", values=np.full(len(arr), np.nan))
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) \
            or pa.types.is_decimal(t):
        values = _numpy(pc.cast(arr, pa.float64()), "float64", np.nan)
        return Col("bool" if pa.types.is_boolean(t) else "number", values=values)
    if pa.types.is_date(t) or pa.types.is_timestamp(t) or pa.types.is_time(t):
        text = _text(pc.cast(arr, pa.string()))
        return Col("date", codes=text.codes, levels=text.levels)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _text(arr)
    raise DataError(f"{path}: column {name!r} has type {t}, which specnet cannot read; "
                    "columns must hold numbers, text, true/false or dates")


def _numpy(arr: pa.ChunkedArray | pa.Array, dtype: str, fill: float) -> np.ndarray:
    """A primitive pyarrow array as numpy `dtype`, nulls as `fill`, read from its buffers
    (pyarrow's own to_numpy imports pandas for arrays with nulls: seconds, for nothing)."""
    pa = _pyarrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    n, off = len(arr), arr.offset
    bufs = arr.buffers()
    if n == 0 or bufs[1] is None:
        return np.full(n, fill, dtype)
    data = np.frombuffer(bufs[1], dtype=dtype, count=n + off)[off:]
    if arr.null_count:
        bits = np.unpackbits(np.frombuffer(bufs[0], np.uint8), bitorder="little")
        return np.where(bits[off:off + n].astype(bool), data, np.asarray(fill, dtype))
    return data.copy()


def _text(arr: pa.ChunkedArray) -> Col:
    """A text column, dictionary-encoded; cells are stripped, missing words become -1."""
    pa = _pyarrow()
    enc = pa.compute.dictionary_encode(arr).combine_chunks()
    raw = _numpy(enc.indices.cast(pa.int32()), "int32", -1)
    words = [str(w).strip() for w in enc.dictionary.to_pylist()]
    if not words:
        return Col("text", codes=raw, levels=[])
    uniq, inv = np.unique(np.array(words, dtype=object), return_inverse=True)
    levels = [str(u) for u in uniq]
    # Map old dictionary slots -> new level index, with missing words -> -1.
    keep = [i for i, w in enumerate(levels) if w.lower() not in MISSING]
    new_index = np.full(len(levels), -1, np.int32)
    new_index[keep] = np.arange(len(keep), dtype=np.int32)
    slot = np.append(new_index[inv], np.int32(-1))  # (len(words) + 1,): -1 stays -1
    codes = slot[raw]
    return Col("text", codes=codes, levels=[levels[i] for i in keep])


def _located_csv_failure(path: Path, delimiter: str, width: int, exc: Exception) -> DataError:
    """pyarrow refused the file: scan it in Python to name every bad line."""
    from .files import _csv_rows, _problems
    from .sources import Csv

    src = Csv.model_construct(path=path, target="", delimiter=delimiter, features=None)
    problems = []
    rows = _csv_rows(src)
    next(rows, None)
    for line, row in rows:  # raises a located DataError itself for bad UTF-8 / quoting
        if len(row) != width:
            problems.append(f"line {line}: {len(row)} fields, but the header has {width}")
    _problems(path, problems)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DataError(f"{path}: not a readable CSV file: {text}")


def _csv_lines(path: Path, delimiter: str) -> Callable[[np.ndarray], list[str]]:
    cache: list[np.ndarray] = []

    def where(rows: np.ndarray) -> list[str]:
        if not cache:
            from .files import _csv_rows
            from .sources import Csv

            src = Csv.model_construct(path=path, target="", delimiter=delimiter,
                                      features=None)
            it = _csv_rows(src)
            next(it, None)
            cache.append(np.array([line for line, _ in it], np.int64))
        lines = cache[0]
        return [f"line {lines[r]}" if r < len(lines) else f"row {r + 1}" for r in rows]

    return where


def read_csv(path: Path, delimiter: str, header: list[str]) -> Loaded:
    """Every row and column of a CSV file whose (checked) header is `header`."""
    pa = _pyarrow()
    pcsv = pa.csv
    nulls = sorted({v for w in MISSING for v in (w, w.upper(), w.capitalize())})
    try:
        tbl = pcsv.read_csv(
            str(path),
            read_options=pcsv.ReadOptions(column_names=[f"c{i}" for i in range(len(header))],
                                          skip_rows=_header_lines(path, delimiter)),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(
                null_values=nulls, true_values=_cases(TRUE[:1]), false_values=_cases(FALSE[:1]),
                strings_can_be_null=True, quoted_strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise _located_csv_failure(path, delimiter, len(header), exc) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    cols = {name: _col(tbl.column(i), name, path) for i, name in enumerate(header)}
    return Loaded(path, header, Table(cols), _csv_lines(path, delimiter))


def _header_lines(path: Path, delimiter: str) -> int:
    """Physical lines up to and including the header (blank lines before it count)."""
    from .files import _csv_rows
    from .sources import Csv

    src = Csv.model_construct(path=path, target="", delimiter=delimiter, features=None)
    it = _csv_rows(src)
    first = next(it, None)
    if first is None:
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows")
    return first[0]


def read_parquet(path: Path) -> Loaded:
    """Every row and column of a Parquet file (row N counts from 1)."""
    pa = _pyarrow()
    import pyarrow.parquet  # noqa: F401 - registers pa.parquet

    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        md = pa.parquet.ParquetFile(str(path)).metadata
        from ..budget import STREAM_HINT, check_bytes

        # Decoded columns (arrow) and their float64 copies: 16 bytes a cell.
        check_bytes(16 * md.num_rows * md.num_columns,
                    f"{path}: reading {md.num_rows:,} rows x {md.num_columns} columns",
                    STREAM_HINT)
        tbl = pa.parquet.read_table(str(path))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file: "
                        f"{str(exc).splitlines()[0] if str(exc) else exc}") from None
    header = [str(n) for n in tbl.column_names]
    if tbl.num_rows == 0:
        raise DataError(f"{path}: the file has columns but no rows")
    cols = {name: _col(tbl.column(i), name, path) for i, name in enumerate(header)}
    return Loaded(path, header, Table(cols),
                  lambda rows: [f"row {int(r) + 1}" for r in rows])


_CACHE: dict[tuple[Any, ...], Loaded] = {}


def cached(key: tuple[Any, ...], path: Path, read: Callable[[], Loaded]) -> Loaded:
    """`read()`, remembered for the file as it is now (path, size, mtime): `validate`,
    `build` and `train` read a file once, not once per step."""
    try:
        st = os.stat(path)
    except OSError:
        return read()
    full = (*key, str(path), st.st_size, st.st_mtime_ns)
    hit = _CACHE.get(full)
    if hit is None:
        hit = read()
        _CACHE.clear()  # one file at a time: a big table is not kept around twice
        _CACHE[full] = hit
    return hit
