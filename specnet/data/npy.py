"""NumPy .npy files as a data source: one (n, columns) array holding features and target,
or a feature file (n, ...) and a target file (n,) / (n, targets).

Every file is opened with `np.load(mmap_mode="r")`: the header is read, the data is not.
`npy_load` then copies the features into memory (the budget checked first); with
`stream: true` they stay mapped and `NpyRows.take` gathers a batch's rows from the map
(the OS pages them in and out). The target is always read into memory (one value a row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from .files import _check_dtype, _fail, _feature_names, _Target, array_target
from .sources import Arrays, SourceInfo

if TYPE_CHECKING:
    import torch

    from .sources import Npy

CHUNK = 65536
"""Rows read at a time by the sequential passes (the target column, the finiteness check)."""


def _open(src: Npy, path: Path, field: str, strings: bool) -> np.ndarray:
    """The array of `path`, memory-mapped (nothing read but the header)."""
    from ..budget import regular_file

    regular_file(path, bounded=not src.stream)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        _fail(path, f"not a readable .npy array ({field}): {exc}")
    if not isinstance(arr, np.ndarray):  # an .npz archive: np.load gives an NpzFile
        arr.close()
        _fail(path, f"an .npz archive, not a single .npy array ({field}); use source: npz, "
                    "or save one array with np.save")
    _check_dtype(path, field, arr.dtype, strings)
    return arr


@dataclass
class Layout:
    """Where a Npy source's features and target are."""

    X: np.ndarray
    """The feature file, memory-mapped: (n, ...), or (n, columns) with the target in it."""
    cols: np.ndarray | None
    """The feature columns of X when one of its columns is the target, else None."""
    y: np.ndarray
    """The raw target (n,) or (n, targets), in memory."""
    y_name: str

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample's features."""
        return (len(self.cols),) if self.cols is not None else tuple(self.X.shape[1:])


def layout(src: Npy) -> Layout:
    """Open the file(s), check the shapes and read the target; DataError naming the file."""
    path = src.path
    X = _open(src, path, "path", strings=False)
    if len(X) == 0:
        _fail(path, "the array holds no samples")
    if src.y_path is not None:
        ym = _open(src, src.y_path, "y_path", strings=True)
        if X.ndim < 2:
            _fail(path, f"has shape {X.shape}; features need (n, features) or (n, ...) (for "
                        "one feature: X.reshape(-1, 1))")
        if ym.ndim not in (1, 2):
            _fail(src.y_path, f"has shape {ym.shape}; targets need (n,) or (n, targets)")
        if len(ym) != len(X):
            _fail(src.y_path, f"has {len(ym):,} rows but {path} has {len(X):,}")
        if 0 in X.shape or 0 in ym.shape:
            _fail(path, f"features {X.shape} or targets {ym.shape} have an empty axis")
        from ..budget import check_bytes

        check_bytes(ym.nbytes, f"{src.y_path}: the targets")
        return Layout(X, None, np.array(ym), "y_path")
    width = X.shape[1] if X.ndim == 2 else 0
    col = -1 if src.target_column is None else src.target_column
    if X.ndim != 2 or width < 2:
        _fail(path, f"has shape {X.shape}; with the target in the same array it needs "
                    "(n, columns) with at least 2 columns, or give the targets in a file of "
                    "their own (y_path)")
    if not -width <= col < width:
        _fail(path, f"target_column {col} is outside the array's {width} columns "
                    f"(0..{width - 1}, or -1 for the last)")
    c = col % width
    y = np.concatenate([np.array(X[i:i + CHUNK, c]) for i in range(0, len(X), CHUNK)])
    cols = np.array([i for i in range(width) if i != c], np.int64)
    return Layout(X, cols, y, f"column {c}")


def target(src: Npy, lay: Layout) -> _Target:
    """The decided target (classes or values), with the source's task_hint."""
    return array_target(src.y_path or src.path, lay.y_name, src.task_hint, lay.y)


def npy_info(src: Npy) -> SourceInfo:
    """Input shape from the header; the target decided from the target values."""
    lay = layout(src)
    t = target(src, lay)
    n_classes = len(t.labels) if t.labels is not None else None
    n_targets = t.values.shape[1] if t.values is not None else 1
    return SourceInfo(lay.shape, t.kind, n_classes, int(n_targets),
                      tuple(_feature_names(lay.shape)))


def npy_load(src: Npy) -> Arrays:
    """X (n, ...) float32 in memory (checked against the budget); y as `npz_load` gives it."""
    from ..budget import STREAM_HINT, check_bytes

    lay = layout(src)
    n = len(lay.X)
    check_bytes(n * math.prod(lay.shape) * (4 + lay.X.dtype.itemsize),
                f"{src.path}: loading {n:,} samples of shape {list(lay.shape)}", STREAM_HINT)
    X = np.array(lay.X) if lay.cols is None else np.array(lay.X[:, lay.cols])
    X32 = X.astype(np.float32)
    del X
    _finite(src.path, X32, 0)
    return target(src, lay).arrays(X32, _feature_names(lay.shape))


def _finite(path: Path, X32: np.ndarray, start: int) -> None:
    bad = np.flatnonzero(~np.isfinite(X32.reshape(len(X32), -1)).all(axis=1))
    if len(bad):
        _fail(path, f"holds NaN or infinity, or numbers too large for float32 (first at "
                    f"sample {start + int(bad[0])})")


class NpyRows:
    """A memory-mapped feature array read by rows: `take(rows)` -> (k, *shape) float32."""

    def __init__(self, src: Npy, lay: Layout) -> None:
        self.path = src.path
        self.X = lay.X
        self.cols = lay.cols
        self.n = len(lay.X)
        self.shape = lay.shape
        self.row_bytes = int(math.prod(lay.X.shape[1:]) * lay.X.dtype.itemsize)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows `rows` (k,) of the features, in that order, as float32 (k, *shape). The map
        is read in ascending row order (a sorted gather), then put in the order asked."""
        rows = np.asarray(rows, np.int64)
        if len(rows) > 1 and not bool(np.all(rows[1:] >= rows[:-1])):
            order = np.argsort(rows, kind="stable")
            out = np.empty((len(rows), *self.shape), np.float32)
            out[order] = self._read(rows[order])
            return out
        return self._read(rows)

    def _read(self, rows: np.ndarray) -> np.ndarray:
        block = self.X[rows]  # a copy of those rows, read from the map in ascending order
        if self.cols is not None:
            block = block[:, self.cols]
        return np.asarray(block, dtype=np.float32)

    def check(self) -> None:
        """One sequential pass: every feature value finite as float32 (DataError naming the
        first bad sample)."""
        for i in range(0, self.n, CHUNK):
            _finite(self.path, self.take(np.arange(i, min(i + CHUNK, self.n))), i)

    def epoch_order(self, rows: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """The epoch's order of a split's rows, as positions 0..len(rows)-1: one seeded
        permutation, the same as in memory (the batch gathers them from the map)."""
        import torch

        return torch.randperm(len(rows), generator=generator)

    def working_bytes(self, batch: int) -> int:
        """Memory the reads take besides the batch itself (none: the OS pages the map)."""
        return 0


def rows(src: Npy) -> tuple[NpyRows, _Target]:
    """The streamed features and the decided target."""
    if src.stream is False:  # pragma: no cover - prepare only streams stream: true sources
        raise DataError("internal: NpyRows for a source that is not streamed")
    lay = layout(src)
    return NpyRows(src, lay), target(src, lay)
