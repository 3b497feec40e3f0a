"""Data sets read while training (`data.stream: true`): bigger than memory, bounded memory.

The file stays on disk. What is held in memory is one value a row (the target, the split's
row indices, each epoch's order) and a working set of a few batches:

- `.npy` (`npy.NpyRows`): memory-mapped; a step's rows are gathered from the map in
  ascending order. Each epoch's order is the same seeded permutation as in memory, so a
  streamed run trains to the same weights as an in-memory one.
- Parquet (`ParquetRows`): decoded by row group (pyarrow), at most `stream_groups` + 1
  groups held. Each epoch visits the row groups in a seeded order, `stream_groups` at a
  time, and shuffles the rows of those groups together (a block shuffle: reads stay
  sequential). With `stream_groups` at least the file's row group count the order is the
  in-memory one.

The split is the in-memory one (`prepare.split_indices` on the targets, stratified), kept
as row indices. The input scaling is fitted on the training rows in the same chunked
passes as in memory (`prepare._mean_std`), so its figures are identical. Evaluation reads
each split in `_EVAL_CHUNK`-row chunks.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from ..errors import DataError
from .prepare import _CHUNK, Prepared, Scaler, _check_strata, for_task, split_indices
from .sources import SourceInfo

if TYPE_CHECKING:
    import torch

    from ..spec.schema import Spec
    from .files import _Target
    from .sources import Npy, Parquet

EVAL_ROWS = 8192
"""Rows per evaluation chunk (the trainer's `_EVAL_CHUNK`)."""
VERIFY_ROWS = 1024
"""Rows of a streamed split that export verification and the baseline check read."""


class Rows(Protocol):
    """A data file read by rows: the one interface the streamed formats share."""

    path: Path
    n: int
    shape: tuple[int, ...]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows `rows` (k,) in that order -> (k, *shape) float32."""

    def check(self) -> None:
        """One pass over the file: DataError at the first value that cannot train."""

    def epoch_order(self, rows: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """One epoch's order of the (sorted) file rows `rows`, as positions into `rows`."""

    def working_bytes(self, batch: int) -> int:
        """Memory the reader holds besides the batches (decoded row groups)."""


class SplitRows:
    """One split of a streamed data set, standing where `Prepared.X_<split>` holds an
    array: `len`, `shape`, and rows gathered from the file and scaled when asked for."""

    dtype = np.dtype(np.float32)

    def __init__(self, store: Rows, rows: np.ndarray, scaler: Scaler) -> None:
        self.store = store
        self.rows = rows  # (n,) int64 file rows, ascending
        self.scaler = scaler

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        """(rows, *sample shape), as an array's."""
        return (len(self.rows), *self.store.shape)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Scaled rows at `positions` (k,) of this split: (k, *shape) float32."""
        out = self.store.take(self.rows[positions])
        out -= self.scaler.offset  # as Scaler.transform_rows, on the one copy
        out /= self.scaler.scale
        return out

    def chunks(self, size: int = EVAL_ROWS) -> Iterator[np.ndarray]:
        """The whole split, scaled, in file order, `size` rows at a time."""
        for i in range(0, len(self.rows), size):
            yield self.take(np.arange(i, min(i + size, len(self.rows))))

    def head(self, k: int = VERIFY_ROWS) -> np.ndarray:
        """The first `k` rows, scaled."""
        return self.take(np.arange(min(k, len(self.rows))))

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """This epoch's order of the split's rows (positions), drawn from `generator`."""
        return self.store.epoch_order(self.rows, generator)


def head(X: np.ndarray | SplitRows) -> np.ndarray:
    """An array as it is, or the first VERIFY_ROWS rows of a streamed split."""
    return X.head() if isinstance(X, SplitRows) else X


class _Raw:
    """Unscaled file rows by index, shaped like an array for `Scaler.fit`."""

    def __init__(self, store: Rows) -> None:
        self.store = store
        self.shape = (store.n, *store.shape)

    def __len__(self) -> int:
        return self.store.n

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.store.take(rows)


def _fit_scaler(kind: str, store: Rows, rows: np.ndarray) -> Scaler:
    """`Scaler.fit(kind, X, rows)` without loading X: the same chunked passes, the same
    figures (min / max are exact in any order; the mean and deviation sum the same chunks)."""
    raw = cast(Any, _Raw(store))
    if kind != "minmax" or len(rows) == 0:
        return Scaler.fit(kind, raw, rows)
    lo = hi = None
    for i in range(0, len(rows), _CHUNK):
        block = store.take(rows[i:i + _CHUNK])
        lo = block.min(axis=0) if lo is None else np.minimum(lo, block.min(axis=0))
        hi = block.max(axis=0) if hi is None else np.maximum(hi, block.max(axis=0))
    assert lo is not None and hi is not None
    offset, scale = lo.astype(np.float64), hi.astype(np.float64) - lo.astype(np.float64)
    scale = np.where(scale < 1e-12, 1.0, scale)
    return Scaler(kind, offset.astype(np.float32), scale.astype(np.float32))


# ---------------------------------------------------------------- Parquet


def _pyarrow() -> Any:
    from .readers import _pyarrow as load

    return load()


@dataclass
class _ParquetLayout:
    """A streamed Parquet file's feature columns, target and column records."""

    features: list[str]
    target: _Target
    keep: np.ndarray | None
    """Rows with a target, when some have none (they are dropped, as in memory)."""
    records: list[dict[str, Any]]


_ID_HINT = ("streaming does not read whole columns to decide; say what it is in "
            "data.columns (`{name}: id` or `{name}: feature`) or list the features")


def _parquet_layout(src: Parquet) -> _ParquetLayout:
    """Feature columns from the schema (numeric and boolean only), the target read whole."""
    pa = _pyarrow()
    from .columns import _ID_NAME, _as_text
    from .files import _label_target, _numeric_target
    from .readers import _col
    from .tabular import _check_names

    path = src.path
    from ..budget import regular_file

    regular_file(path, bounded=False)
    try:
        pf = pa.parquet.ParquetFile(str(path))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file: "
                        f"{str(exc).splitlines()[0] if str(exc) else exc}") from None
    schema = pf.schema_arrow
    header = [str(n) for n in schema.names]
    _check_names(src, header)
    problems: list[str] = []
    roles: dict[str, str] = {}
    for name, cs in src.columns.items():
        if name not in header:
            problems.append(f"data.columns names {name!r}, which is not in the file")
        elif cs.role in ("id", "ignore", "feature") and cs.model_fields_set <= {"role"}:
            roles[name] = cs.role
        else:
            problems.append(f"data.columns.{name}: streamed files take only a role here "
                            "(id, ignore, feature); types, imputation and categories need "
                            "the whole column: set stream: false")
    features: list[str] = []
    records: list[dict[str, Any]] = []
    for name in header:
        t = schema.field(name).type
        numeric = (pa.types.is_integer(t) or pa.types.is_floating(t)
                   or pa.types.is_decimal(t))
        ctype = "boolean" if pa.types.is_boolean(t) else "numeric" if numeric else str(t)
        role = roles.get(name)
        if name == src.target:
            role = "target"
        elif src.features is not None and name not in src.features and role is None:
            role = "ignore"
        elif role is None and pa.types.is_integer(t) and _ID_NAME.search(name) \
                and src.features is None:
            problems.append(f"column {name!r} is named like an id; "
                            + _ID_HINT.format(name=name))
        role = role or "feature"
        if role == "feature":
            if ctype not in ("numeric", "boolean"):
                problems.append(f"column {name!r} has type {t}: streaming reads numeric and "
                                "boolean feature columns only (categories need the whole "
                                f"column); mark it `{name}: ignore` in data.columns, or set "
                                "stream: false")
            features.append(name)
        records.append({"name": name, "type": ctype, "role": role})
    if problems:
        raise DataError(f"{path}: " + "; ".join(problems))
    if not features:
        raise DataError(f"{path}: no feature columns are left (every column is the target, "
                        "an id or ignored)")
    try:
        raw = _col(pf.read(columns=[src.target]).column(0), src.target, path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read column {src.target!r}: {exc}") from None
    missing = raw.missing
    keep = np.flatnonzero(~missing) if missing.any() else None
    if keep is not None and not len(keep):
        raise DataError(f"{path}: every row's target {src.target!r} is missing")
    col = raw.take(keep) if keep is not None else raw
    if raw.kind == "date":
        raise DataError(f"{path}: a date column cannot be the target")
    if raw.kind == "number":
        assert col.values is not None
        if not np.all(np.abs(col.values) <= np.finfo(np.float32).max):
            raise DataError(f"{path}: column {src.target!r} (the target) holds a value "
                            "that is not a finite float32 number")
        target = _numeric_target(col.values.reshape(-1, 1), "auto")
    elif raw.kind == "bool":
        target = _label_target(list(_as_text(col).strings()))
    else:
        target = _label_target(list(col.strings()))
    return _ParquetLayout(features, target, keep, records)


def parquet_info(src: Parquet) -> SourceInfo:
    """Input width and target of a streamed Parquet file (the schema and the target column)."""
    lay = _parquet_layout(src)
    t = lay.target
    n_classes = len(t.labels) if t.labels is not None else None
    return SourceInfo((len(lay.features),), t.kind, n_classes, 1, tuple(lay.features))


class ParquetRows:
    """A Parquet file's feature columns read by row group; `take(rows)` decodes the groups
    that hold `rows`, keeping the `window` + 1 most recently used."""

    def __init__(self, src: Parquet, features: list[str]) -> None:
        pa = _pyarrow()
        self.path = src.path
        self.pf = pa.parquet.ParquetFile(str(src.path))
        md = self.pf.metadata
        sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.n = int(self.starts[-1])
        self.columns = features
        self.shape: tuple[int, ...] = (len(features),)
        self.window = src.stream_groups
        self.largest = max(sizes, default=0)
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def _group(self, g: int) -> np.ndarray:
        """Row group `g`'s features (rows, features) float32; DataError at a blank cell."""
        hit = self.cache.get(g)
        if hit is not None:
            self.cache.move_to_end(g)
            return hit
        pa = _pyarrow()
        from .columns import F32_MAX
        from .readers import _numpy

        try:
            tbl = self.pf.read_row_group(g, columns=self.columns)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.path}: cannot read row group {g}: {exc}") from None
        block = np.empty((tbl.num_rows, len(self.columns)), np.float32)
        for j, name in enumerate(self.columns):
            values = _numpy(pa.compute.cast(tbl.column(j), pa.float64()), "float64", np.nan)
            with np.errstate(invalid="ignore"):
                bad = np.flatnonzero(~(np.abs(values) <= F32_MAX))
            if len(bad):
                r, v = int(self.starts[g] + bad[0]), values[bad[0]]
                what = ("missing value" if np.isnan(v) else
                        f"{v:g} is not a finite float32 number")
                raise DataError(f"{self.path}: row {r + 1}, column {name!r}: {what}; a "
                                "streamed file cannot be imputed (the fill value needs the "
                                "whole column): fill the blanks, or set stream: false")
            block[:, j] = values
        self.cache[g] = block
        while len(self.cache) > self.window + 1:
            self.cache.popitem(last=False)
        return block

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        group = np.searchsorted(self.starts, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape), np.float32)
        for g in np.unique(group):
            here = group == g
            out[here] = self._group(int(g))[rows[here] - self.starts[g]]
        return out

    def check(self) -> None:
        for g in range(len(self.starts) - 1):
            self._group(g)

    def epoch_order(self, rows: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        import torch

        groups = len(self.starts) - 1
        if self.window >= groups:  # one window holds the file: the in-memory order
            return torch.randperm(len(rows), generator=generator)
        perm = torch.randperm(groups, generator=generator).numpy()
        lo = np.searchsorted(rows, self.starts[:-1])  # positions of each group's rows
        hi = np.searchsorted(rows, self.starts[1:])
        pieces = []
        for w in range(0, groups, self.window):
            pos = np.concatenate([np.arange(lo[g], hi[g]) for g in perm[w:w + self.window]])
            pieces.append(pos[torch.randperm(len(pos), generator=generator).numpy()])
        return torch.from_numpy(np.concatenate(pieces))

    def working_bytes(self, batch: int) -> int:
        # The held groups as float32, and one group's decode (arrow columns, float64).
        return (self.window + 1) * self.largest * 4 * len(self.columns) \
            + self.largest * 16 * len(self.columns)


# ---------------------------------------------------------------- prepare


@dataclass
class StreamedPrepared(Prepared):
    """`Prepared` whose X_train / X_val / X_test are `SplitRows` read from the file; the
    targets are arrays in memory."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X_train.shape[1:])


def _open(data: Npy | Parquet) -> tuple[Rows, _Target, list[str], np.ndarray | None,
                                        list[dict[str, Any]] | None]:
    from .sources import Npy

    if isinstance(data, Npy):
        from .files import _feature_names
        from .npy import NpyRows, layout, target

        lay = layout(data)
        return NpyRows(data, lay), target(data, lay), _feature_names(lay.shape), None, None
    pl = _parquet_layout(data)
    return ParquetRows(data, pl.features), pl.target, pl.features, pl.keep, pl.records


def _check_working_set(spec: Spec, store: Rows, n: int, width: int) -> None:
    """The budget counts a streamed set by what it holds: per-row bookkeeping (indices,
    targets, the epoch's order and outputs) and a working set of batches, never the file."""
    from ..budget import check_bytes, size_text

    bs = spec.training.batch_size
    if bs == "full":
        raise DataError("training.batch_size: full would read the whole training split every "
                        "step; give a batch size (e.g. 512) with data.stream: true")
    sample = 4 * math.prod(store.shape)
    per_row = 64 + 8 * width
    working = 4 * int(bs) * sample + 3 * EVAL_ROWS * sample + store.working_bytes(int(bs))
    check_bytes(per_row * n + working,
                f"{store.path}: streaming {n:,} rows ({per_row} bytes a row for indices, "
                f"targets and outputs, and a working set of {size_text(working)} for "
                f"batches of {bs} and row groups)",
                "or lower training.batch_size (or data.stream_groups)")


def prepare_streamed(spec: Spec) -> StreamedPrepared:
    """Split and fit the scaling of a `stream: true` source without loading its features."""
    data = cast("Npy | Parquet", spec.data)
    regression = spec.task == "regression"
    store, target, names, keep, records = _open(data)
    placeholder = np.zeros((len(target.y), 0), np.float32)  # no features in memory
    arrays = for_task(target.arrays(placeholder, names), regression)
    y = arrays.y
    n = len(y)
    width = y.shape[1] if y.ndim == 2 else (len(arrays.class_labels or ()) or 1)
    _check_working_set(spec, store, n, width)
    strat = y if data.split.stratify and not regression else None
    if strat is not None and (data.split.test or data.split.validation):
        _check_strata(strat, arrays.class_labels)
    train_idx, val_idx, test_idx = split_indices(n, data.split, spec.seed, strat)
    if len(train_idx) == 0:
        raise DataError("the training split is empty")
    store.check()
    file_rows = [keep[i] if keep is not None else i for i in (train_idx, val_idx, test_idx)]
    x_scaler = _fit_scaler(data.normalize, store, file_rows[0])
    y_scaler = None
    if regression:
        kind = "standard" if data.target_normalize == "auto" else data.target_normalize
        y_scaler = Scaler.fit(kind, y[train_idx])
    ys = y_scaler.transform if y_scaler is not None else (lambda a: a)
    X = [cast(Any, SplitRows(store, rows, x_scaler)) for rows in file_rows]
    return StreamedPrepared(X[0], ys(y[train_idx]), X[1], ys(y[val_idx]), X[2],
                            ys(y[test_idx]), x_scaler, y_scaler, arrays.feature_names,
                            arrays.class_labels, None, records, None)
