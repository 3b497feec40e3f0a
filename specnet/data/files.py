"""Read the data files a spec names: CSV, NumPy .npz and MNIST-style IDX.

Each format has an `*_info` that reads as little as it can (CSV: the header and the target
column; NPZ: the array headers and y; IDX: the headers and the labels, never the pixels)
and an `*_load` that returns the arrays. Every problem is a `DataError` whose message
names the file and, where there is one, the line and the column.

Targets that are whole numbers can be classes or values: their `SourceInfo.kind` is
"any" and the spec's task decides. They load as classes (`y` class indices, `class_labels`
the numbers as text) with the numbers kept in `Arrays.extra["target_values"]`, which
`prepare` uses when the task is regression.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

import numpy as np

from ..errors import DataError
from ..spec.base import did_you_mean
from .sources import Arrays, SourceInfo

if TYPE_CHECKING:
    from .sources import Csv, MnistIdx, Npz

Kind = Literal["classification", "regression", "any"]

# Cells that mean "no value here" in CSV files written by spreadsheets and pandas.
_MISSING = frozenset({"", "na", "n/a", "nan", "null", "?"})
# How many problems one error message lists before it only counts the rest.
_SHOWN = 3


# ---------------------------------------------------------------- shared


def _fail(path: Path, message: str) -> NoReturn:
    raise DataError(f"{path}: {message}")


def _check_file(path: Path) -> None:
    from ..budget import regular_file

    regular_file(path)  # exists, a regular file (no FIFO, no device), within the budget


def _did_you_mean(name: str, options: Iterable[str]) -> str:
    # Column and array names are often abbreviated: a looser cutoff than for spec keys.
    return did_you_mean(name, options, cutoff=0.6)


def _problems(path: Path, problems: list[str]) -> None:
    """Raise one DataError listing the first few problems and counting the rest."""
    if problems:
        more = len(problems) - _SHOWN
        rest = f" (and {more} more)" if more > 0 else ""
        _fail(path, "; ".join(problems[:_SHOWN]) + rest)


@dataclass
class _Target:
    """A target column or array, decided: classes, values, or whole numbers (either)."""

    kind: Kind
    y: np.ndarray                # (n,) int64 class indices, or (n, t) float32 values
    labels: list[str] | None     # class names, in class-index order
    values: np.ndarray | None    # (n, t) float32 numbers, when the target is numeric

    def arrays(self, X: np.ndarray, names: list[str]) -> Arrays:
        extra = {"target_values": self.values} if self.kind == "any" else {}
        return Arrays(X, self.y, names, self.labels, extra)


def _numeric_target(values: np.ndarray, hint: str) -> _Target:
    """Decide a numeric target (n, t) float64: whole numbers may be classes."""
    values32 = values.astype(np.float32)
    whole = bool(np.all(values == np.round(values)))
    if hint == "regression" or (hint == "auto" and (values.shape[1] > 1 or not whole)):
        return _Target("regression", values32, None, values32)
    uniq, y = np.unique(values[:, 0], return_inverse=True)  # sorted numbers, class indices
    kind: Kind = "classification" if hint == "classification" else "any"
    return _Target(kind, y.astype(np.int64), [str(int(v)) for v in uniq], values32)


def _label_target(labels: list[str]) -> _Target:
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    return _Target("classification", np.array([index[s] for s in labels], np.int64),
                   names, None)


def _info(target: _Target, shape: tuple[int, ...], names: list[str]) -> SourceInfo:
    n_classes = len(target.labels) if target.labels is not None else None
    n_targets = target.values.shape[1] if target.values is not None else 1
    return SourceInfo(shape, target.kind, n_classes, int(n_targets), tuple(names))


# ---------------------------------------------------------------- CSV


def _csv_rows(src: Csv) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) for every non-blank row, the header first; line is 1-based."""
    path = src.path
    _check_file(path)
    line = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=src.delimiter, strict=True)
            for cells in reader:
                start, line = line + 1, reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                yield start, [c.strip() for c in cells]
    except UnicodeDecodeError:
        _not_utf8(path)
    except csv.Error as exc:
        _fail(path, f"line {line + 1}: not valid CSV: {exc}")
    except OSError as exc:
        _fail(path, f"cannot read: {exc.strerror}")


def _not_utf8(path: Path) -> NoReturn:
    # The text layer decodes in blocks, so find the bad byte's line in the raw bytes.
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        _fail(path, f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the "
                    "file as UTF-8")
    _fail(path, "not UTF-8 text")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    """Whether `text` is a finite number."""
    return _is_float(text) and math.isfinite(float(text))


@dataclass
class _Layout:
    """Which columns of a CSV file are the target and the features."""

    columns: list[str]
    target: int
    features: list[int]


def _csv_layout(src: Csv, header: list[str]) -> _Layout:
    path, names = src.path, header
    named = [n for n in names if n]
    listing = f"columns: {', '.join(named[:20])}" + (", ..." if len(named) > 20 else "")
    if all(_is_number(n) for n in names):
        shown = ", ".join(repr(n) for n in names[:4]) + (", ..." if len(names) > 4 else "")
        _fail(path, f"line 1 holds numbers ({shown}), not column names: the first row must "
                    "be a header naming every column")
    dupes = sorted(n for n, c in Counter(named).items() if c > 1)  # linear, not n^2
    if dupes:
        _fail(path, f"the header names {', '.join(map(repr, dupes))} more than once")
    if src.target not in names:
        others = [d for d in (",", ";", "\t", "|") if d != src.delimiter and d in names[0]]
        if len(names) == 1 and others:
            _fail(path, f"target column {src.target!r} not found: the header is one column "
                        f"{names[0]!r}; set `delimiter: {others[0]!r}`?")
        _fail(path, f"target column {src.target!r} not found"
                    f"{_did_you_mean(src.target, named)}; {listing}")
    target = names.index(src.target)
    if src.features is None:
        features = [i for i in range(len(names)) if i != target]
        unnamed = [i + 1 for i in features if not names[i]]
        if unnamed:
            _fail(path, f"column {unnamed[0]} has no name in the header; name it or choose "
                        "columns with `features:` (a pandas index? write with index=False)")
        if not features:
            _fail(path, f"the only column is the target {src.target!r}: no features")
        return _Layout(names, target, features)
    if not src.features:
        _fail(path, "`features` is empty; list columns or leave it out to use every column "
                    "but the target")
    present = set(names)
    unknown = [f"{f!r}{_did_you_mean(f, named)}" for f in src.features if f not in present]
    if unknown:
        _fail(path, f"feature column{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(unknown)} not found; {listing}")
    twice = sorted(f for f, c in Counter(src.features).items() if c > 1)
    if twice:
        _fail(path, f"`features` lists {', '.join(map(repr, twice))} more than once")
    if src.target in src.features:
        _fail(path, f"the target column {src.target!r} is also listed in `features`")
    where = {n: i for i, n in reversed(list(enumerate(names)))}
    return _Layout(names, target, [where[f] for f in src.features])


def _csv_scan(src: Csv, with_features: bool) -> tuple[_Layout, _Target, np.ndarray | None]:
    """Read the file once: the layout, the decided target and (if asked) the features."""
    rows = _csv_rows(src)
    path = src.path
    first = next(rows, None)
    if first is None:
        _fail(path, "the file is empty; it needs a header row and data rows")
    layout = _csv_layout(src, first[1])
    width, t, name = len(layout.columns), layout.target, layout.columns[layout.target]
    problems: list[str] = []
    lines: list[int] = []
    targets: list[str] = []
    cells: list[list[str]] = []
    for line, row in rows:
        if len(row) != width:
            problems.append(f"line {line}: {len(row)} fields, but the header has {width}")
            continue
        if row[t].lower() in _MISSING:
            shown = f" {row[t]!r}" if row[t] else ""
            problems.append(f"line {line}, column {name!r} (the target): missing value{shown}")
        elif not _is_number(row[t]) and _is_float(row[t]):
            problems.append(f"line {line}, column {name!r} (the target): {row[t]!r} is not a "
                            "finite number")
        lines.append(line)
        targets.append(row[t])
        if with_features or len(cells) == 0:
            cells.append([row[i] for i in layout.features])
    _problems(path, problems)
    if not with_features and cells:
        # A text column among the features is the usual mistake: the first data row
        # finds it cheaply, so `specnet validate` catches it.
        _csv_features(src, layout, lines[:1], cells[:1])
    if not targets:
        _fail(path, "the file has a header but no data rows")
    X = _csv_features(src, layout, lines, cells) if with_features else None
    if all(_is_number(v) for v in targets):
        target = _numeric_target(np.array(targets, np.float64).reshape(-1, 1), "auto")
    else:
        target = _label_target(targets)
    return layout, target, X


def _csv_features(src: Csv, layout: _Layout, lines: list[int],
                  cells: list[list[str]]) -> np.ndarray:
    """(n, features) float32; a bad cell is an error naming its line and column."""
    try:
        X = np.asarray(cells, dtype=np.float64)
        if np.isfinite(X).all():
            return X.astype(np.float32)
    except ValueError:
        pass
    # Slow path: parse cell by cell to say exactly where the file is wrong.
    X = np.zeros((len(cells), len(layout.features)))
    problems = []
    for r, (line, row) in enumerate(zip(lines, cells, strict=True)):
        for c, (col, cell) in enumerate(zip(layout.features, row, strict=True)):
            if _is_number(cell):
                X[r, c] = float(cell)
                continue
            where = f"line {line}, column {layout.columns[col]!r}"
            if cell.lower() in _MISSING:
                problems.append(f"{where}: missing value{f' {cell!r}' if cell else ''}")
            else:
                what = "a finite number" if _is_float(cell) else "a number"
                problems.append(f"{where}: {cell!r} is not {what}")
    _problems(src.path, problems)
    return X.astype(np.float32)


def csv_info(src: Csv) -> SourceInfo:
    """Input width, feature names and the kind of target, from the header and the
    target column (of the features only the first row is parsed)."""
    layout, target, _ = _csv_scan(src, with_features=False)
    names = [layout.columns[i] for i in layout.features]
    return _info(target, (len(names),), names)


def csv_load(src: Csv) -> Arrays:
    """X (n, features) float32; y class indices (labels or whole numbers) or (n, 1) values."""
    layout, target, X = _csv_scan(src, with_features=True)
    assert X is not None  # with_features=True always parses them
    return target.arrays(X, [layout.columns[i] for i in layout.features])


# ---------------------------------------------------------------- NPZ


_NUMERIC = "biuf"  # bool, signed and unsigned integers, floats


def _npz_open(path: Path) -> zipfile.ZipFile:
    _check_file(path)
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with path.open("rb") as f:
            npy = f.read(6) == b"\x93NUMPY"
        what = "a single .npy array" if npy else "not a .npz archive"
        _fail(path, f"{what}; save X and y together with np.savez(path, X=X, y=y)")
    except OSError as exc:
        _fail(path, f"cannot read: {exc.strerror}")


def _npz_member(path: Path, zf: zipfile.ZipFile, key: str, field: str) -> str:
    keys = [n.removesuffix(".npy") for n in zf.namelist() if n.endswith(".npy")]
    if key not in keys:
        _fail(path, f"no array {key!r} ({field}){_did_you_mean(key, keys)}; arrays in the "
                    f"file: {', '.join(keys) or 'none'}")
    return key + ".npy"


def _npy_header(path: Path, zf: zipfile.ZipFile, key: str, field: str) -> tuple[
        tuple[int, ...], np.dtype]:
    """Shape and dtype of one array, from its .npy header only."""
    member = _npz_member(path, zf, key, field)
    fmt = np.lib.format
    try:
        with zf.open(member) as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                _fail(path, f"array {key!r} uses .npy format {version}; save with numpy's "
                            "default format")
    except (ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        _fail(path, f"array {key!r} is not a readable .npy array: {exc}")
    _check_dtype(path, key, dtype, strings=field == "y_key")
    from ..budget import check_claimed

    info = zf.getinfo(member)
    check_claimed(path, math.prod(shape) * dtype.itemsize, info.compress_size,
                  info.compress_type != zipfile.ZIP_STORED, f"array {key!r} of shape {shape}")
    return tuple(shape), dtype


def _check_dtype(path: Path, key: str, dtype: np.dtype, strings: bool) -> None:
    if dtype.hasobject:
        _fail(path, f"array {key!r} holds Python objects (dtype object), which specnet "
                    "never unpickles; save a numeric array, e.g. X.astype('float32')")
    if dtype.kind not in _NUMERIC and not (strings and dtype.kind in "US"):
        allowed = "numbers or strings" if strings else "numbers"
        _fail(path, f"array {key!r} has dtype {dtype}; it must hold {allowed}")


def _npz_shapes(src: Npz, x: tuple[int, ...], y: tuple[int, ...]) -> None:
    path, xk, yk = src.path, src.x_key, src.y_key
    if len(x) < 2:
        _fail(path, f"{xk!r} has shape {x}; it needs (n, features) or (n, ...) "
                    f"(for one feature: {xk}.reshape(-1, 1))")
    if len(y) not in (1, 2):
        _fail(path, f"{yk!r} has shape {y}; it needs (n,) or (n, targets)")
    if x[0] != y[0]:
        _fail(path, f"{xk!r} has {x[0]} rows but {yk!r} has {y[0]}")
    if x[0] == 0:
        _fail(path, "the arrays hold no samples")
    if 0 in x or 0 in y:
        _fail(path, f"{xk!r} {x} or {yk!r} {y} has an empty axis")


def _npz_target(src: Npz, y: np.ndarray) -> _Target:
    return array_target(src.path, src.y_key, src.task_hint, y)


def array_target(path: Path, yk: str, hint: str, y: np.ndarray) -> _Target:
    """Decide a target array y (n,) or (n, targets) of numbers or strings (`yk` names it
    in messages); `hint` is the source's task_hint."""
    if y.dtype.kind in "US":
        if hint == "regression":
            _fail(path, f"{yk!r} holds text but task_hint is regression")
        if y.ndim == 2 and y.shape[1] != 1:
            _fail(path, f"class labels {yk!r} must have shape (n,), got {y.shape}")
        return _label_target([str(v) for v in y.reshape(-1)])
    values = y.astype(np.float64).reshape(len(y), -1)  # (n, targets)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        _fail(path, f"{yk!r} holds NaN or infinity (first at sample {int(bad[0])})")
    if hint == "classification":
        if values.shape[1] != 1:
            _fail(path, f"task_hint classification needs {yk!r} of shape (n,), "
                        f"got {y.shape}")
        if not np.all(values == np.round(values)):
            _fail(path, f"task_hint classification but {yk!r} holds non-whole numbers; "
                        "class labels must be integers or strings")
    return _numeric_target(values, hint)


def _load_array(path: Path, key: str, field: str) -> np.ndarray:
    with _npz_open(path) as zf:
        _npy_header(path, zf, key, field)  # the dtype checks, before any data is read
    try:
        with np.load(path, allow_pickle=False) as npz:
            return np.asarray(npz[key])
    except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        _fail(path, f"cannot read array {key!r}: {exc}")


def _feature_names(shape: tuple[int, ...]) -> list[str]:
    return [f"x{i}" for i in range(math.prod(shape))]


def npz_info(src: Npz) -> SourceInfo:
    """Input shape from X's header; targets decided from y (read whole: it is small)."""
    with _npz_open(src.path) as zf:
        x_shape, _ = _npy_header(src.path, zf, src.x_key, "x_key")
        y_shape, _ = _npy_header(src.path, zf, src.y_key, "y_key")
    _npz_shapes(src, x_shape, y_shape)
    target = _npz_target(src, _load_array(src.path, src.y_key, "y_key"))
    return _info(target, x_shape[1:], _feature_names(x_shape[1:]))


def npz_load(src: Npz) -> Arrays:
    """X (n, ...) float32 as stored; y class indices or (n, targets) float32 values."""
    X = _load_array(src.path, src.x_key, "x_key")
    y = _load_array(src.path, src.y_key, "y_key")
    _npz_shapes(src, X.shape, y.shape)
    X32 = X.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(X32.reshape(len(X), -1)).all(axis=1))
    if len(bad):
        _fail(src.path, f"{src.x_key!r} holds NaN or infinity, or numbers too large for "
                        f"float32 (first at sample {int(bad[0])})")
    return _npz_target(src, y).arrays(X32, _feature_names(X.shape[1:]))


# ---------------------------------------------------------------- MNIST IDX

# IDX type byte -> (numpy dtype, big-endian, as the format stores it; name).
_IDX_TYPES = {0x08: (">u1", "unsigned byte"), 0x09: (">i1", "signed byte"),
              0x0B: (">i2", "int16"), 0x0C: (">i4", "int32"), 0x0D: (">f4", "float32"),
              0x0E: (">f8", "float64")}


@dataclass
class _Idx:
    """An IDX file's header: item type, dimensions, and where the data starts."""

    path: Path
    dtype: np.dtype
    dims: tuple[int, ...]
    gzipped: bool
    offset: int

    @property
    def item_bytes(self) -> int:
        """Bytes per sample (one image, one label)."""
        return math.prod(self.dims[1:]) * self.dtype.itemsize

    def open(self) -> io.BufferedIOBase:
        """The file's (decompressed) byte stream, positioned at the start."""
        return gzip.open(self.path, "rb") if self.gzipped else self.path.open("rb")

    def read(self, count: int) -> np.ndarray:
        """The first `count` samples, shape (count, *dims[1:])."""
        want = count * self.item_bytes
        from ..budget import check_bytes

        check_bytes(want, f"{self.path}: reading {count:,} samples")
        with _idx_errors(self.path), self.open() as f:
            f.read(self.offset)
            data = f.read(want)
        if len(data) < want:
            _fail(self.path, f"truncated: {count:,} samples need {want:,} bytes after the "
                             f"header, the file has {len(data):,}")
        return np.frombuffer(data, self.dtype).reshape(count, *self.dims[1:])


@contextmanager
def _idx_errors(path: Path) -> Iterator[None]:
    """Turn gzip and I/O failures while reading an IDX file into DataErrors."""
    try:
        yield
    except EOFError:
        _fail(path, "truncated gzip data (was the download cut short?)")
    except (gzip.BadGzipFile, zlib.error) as exc:
        _fail(path, f"corrupt gzip data: {exc}")
    except OSError as exc:
        _fail(path, f"cannot read: {exc.strerror or exc}")


def _idx_header(path: Path, ndim: int, what: str) -> _Idx:
    """Read and check the header of an IDX file with `ndim` dimensions."""
    _check_file(path)
    with _idx_errors(path), path.open("rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"  # gzip's magic bytes, whatever the extension
    idx = _Idx(path, np.dtype(">u1"), (), gzipped, 0)
    with _idx_errors(path), idx.open() as f:
        magic = f.read(4)
        if len(magic) < 4:
            _fail(path, f"too short to be an IDX {what} file ({len(magic)} bytes)")
        if magic[:2] != b"\0\0":
            _fail(path, f"not an IDX {what} file: it starts with bytes "
                        f"{magic[0]:#04x} {magic[1]:#04x}, IDX files with 0x00 0x00")
        if magic[2] not in _IDX_TYPES:
            known = ", ".join(f"{k:#04x} ({n})" for k, (_, n) in _IDX_TYPES.items())
            _fail(path, f"unknown IDX data type {magic[2]:#04x}; known: {known}")
        if magic[3] != ndim:
            swapped = " (are `images` and `labels` swapped?)" if magic[3] in (1, 3) else ""
            _fail(path, f"is an IDX file with {magic[3]} dimension(s) but {what} need "
                        f"{ndim}{swapped}")
        raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        _fail(path, f"truncated header: {ndim} dimension sizes need {4 * ndim} bytes")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4"))
    if 0 in dims:
        _fail(path, f"the header gives dimensions {dims}: no {what}")
    idx = _Idx(path, np.dtype(_IDX_TYPES[magic[2]][0]), dims, gzipped, 4 + 4 * ndim)
    if gzipped:  # deflate expands ~1032:1 at most: the header cannot claim more
        from ..budget import check_claimed

        check_claimed(path, idx.offset + dims[0] * idx.item_bytes, path.stat().st_size, True,
                      f"the header ({dims[0]:,} {what} of shape {list(dims[1:])})")
    else:  # a raw file's size tells truncation without reading it
        want, have = idx.offset + dims[0] * idx.item_bytes, path.stat().st_size
        if have < want:
            _fail(path, f"truncated: the header promises {dims[0]:,} {what} of shape "
                        f"{list(dims[1:])} ({want:,} bytes), the file has {have:,}")
    return idx


def _idx_pair(src: MnistIdx) -> tuple[_Idx, _Idx, int, np.ndarray]:
    """Both headers, the number of samples used, and those labels (n,) int64."""
    images = _idx_header(src.images, 3, "images")
    labels = _idx_header(src.labels, 1, "labels")
    if images.dims[0] != labels.dims[0]:
        _fail(src.labels, f"has {labels.dims[0]:,} labels but {src.images} has "
                          f"{images.dims[0]:,} images (files from different sets?)")
    if labels.dtype.kind not in "iu":
        _fail(src.labels, f"labels must be integers, the file holds {labels.dtype.name}")
    n = min(src.limit or images.dims[0], images.dims[0])
    y = labels.read(n).astype(np.int64)
    if y.min() < 0:
        _fail(src.labels, f"label {int(y.min())} at sample {int(np.argmin(y))} is negative")
    return images, labels, n, y


def _pixel_names(rows: int, cols: int) -> list[str]:
    return [f"pixel_{r}_{c}" for r in range(rows) for c in range(cols)]


def idx_info(src: MnistIdx) -> SourceInfo:
    """Shape from the image header; classes 0..max label (labels read, pixels not)."""
    images, _, _, y = _idx_pair(src)
    rows, cols = images.dims[1:]
    shape = (1, rows, cols) if src.as_image else (rows * cols,)
    return SourceInfo(shape, "classification", int(y.max()) + 1,
                      feature_names=tuple(_pixel_names(rows, cols)))


def idx_load(src: MnistIdx) -> Arrays:
    """X (n, 1, H, W) or (n, H*W) float32 pixels as stored (0..255); y (n,) the labels."""
    images, _, n, y = _idx_pair(src)
    rows, cols = images.dims[1:]
    X = images.read(n).astype(np.float32)  # (n, H, W)
    X = X.reshape(n, 1, rows, cols) if src.as_image else X.reshape(n, rows * cols)
    return Arrays(X, y, _pixel_names(rows, cols), [str(c) for c in range(int(y.max()) + 1)])
