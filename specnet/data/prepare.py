"""Split the data (seeded, stratified) and fit the preprocessing on the training split only."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .sources import Arrays, DataSource, Split

if TYPE_CHECKING:
    from .encode import Encoder
    from .table import Table

if TYPE_CHECKING:
    from ..spec.schema import Spec


_KINDS = ("none", "standard", "minmax")


_CHUNK = 65536


def _mean_std(X: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of X (n, *shape) (or of its rows `rows`) in
    float64, two passes over row chunks (no float64 copy of the whole array)."""
    idx = np.arange(len(X)) if rows is None else rows
    n = len(idx)
    total = np.zeros(X.shape[1:], np.float64)
    for i in range(0, n, _CHUNK):
        total += X[idx[i:i + _CHUNK]].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(X.shape[1:], np.float64)
    for i in range(0, n, _CHUNK):
        sq += ((X[idx[i:i + _CHUNK]].astype(np.float64) - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(sq / n)


@dataclass
class Scaler:
    """A fitted affine scaling `(x - offset) / scale`, stored with the model (JSON-able).

    offset, scale: shape of one sample (input_shape, or (targets,) for regression targets).
    """

    kind: str
    offset: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, X: np.ndarray, rows: np.ndarray | None = None) -> Scaler:
        """Fit on `X` (n, *shape), or on its rows `rows`: 'standard', 'minmax' or 'none'."""
        shape = X.shape[1:]
        if kind == "none" or len(X) == 0 or (rows is not None and len(rows) == 0):
            return cls("none", np.zeros(shape, np.float32), np.ones(shape, np.float32))
        if kind == "standard":
            offset, scale = _mean_std(X, rows)
        elif kind == "minmax":
            X = X if rows is None else X[rows]
            lo, hi = X.min(axis=0).astype(np.float64), X.max(axis=0).astype(np.float64)
            offset, scale = lo, hi - lo
        else:
            raise DataError(f"unknown normalization {kind!r}")
        # A constant feature would divide by zero: leave it unscaled.
        scale = np.where(scale < 1e-12, 1.0, scale)
        return cls(kind, offset.astype(np.float32), scale.astype(np.float32))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled copy of X (n, *shape), float32: (X - offset) / scale, computed in place
        on the one copy (a million-row table is not held three times over)."""
        out = np.array(X, dtype=np.float32, copy=True)
        out -= self.offset
        out /= self.scale
        return out

    def transform_rows(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """`transform(X[idx])`, scaling the one copy that indexing makes in place."""
        out = X[idx].astype(np.float32, copy=False)
        out -= self.offset
        out /= self.scale
        return out

    def inverse(self, Y: np.ndarray) -> np.ndarray:
        """Undo `transform`."""
        return (Y * self.scale + self.offset).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (lists), for the artifact and checkpoints."""
        return {"kind": self.kind, "offset": self.offset.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        """Inverse of `to_dict`; a damaged record is a DataError, not a crash later."""
        try:
            kind = d["kind"]
            offset = np.asarray(d["offset"], np.float32)
            scale = np.asarray(d["scale"], np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"bad scaler record (needs kind, offset, scale): {exc!r}") from None
        if kind not in _KINDS:
            raise DataError(f"bad scaler record: kind {kind!r}, expected one of "
                            f"{', '.join(_KINDS)}")
        if offset.shape != scale.shape:
            raise DataError(f"bad scaler record: offset {offset.shape} and scale "
                            f"{scale.shape} differ in shape")
        if not (np.isfinite(offset).all() and np.isfinite(scale).all() and scale.all()):
            raise DataError("bad scaler record: offset and scale must be finite, scale "
                            "nonzero")
        return cls(kind, offset, scale)


@dataclass
class Prepared:
    """Train / validation / test arrays, already scaled, with the fitted scalers.

    X_*: (n, *input_shape) float32, scaled. y_*: (n,) int64 class indices, or
    (n, targets) float32 (scaled when target_normalize is set) for regression.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    x_scaler: Scaler
    y_scaler: Scaler | None
    feature_names: list[str]
    class_labels: list[str] | None
    encoder: Encoder | None = None
    """Raw columns -> features, fitted on train (tabular files with text or blanks)."""
    columns: list[dict[str, Any]] | None = None
    """Every column of a tabular file: name, type, role (categories), for the metadata."""
    raw: dict[str, Table] | None = None
    """The raw feature columns of each split ("train", "validation", "test")."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (no batch axis)."""
        return tuple(self.X_train.shape[1:])

    def record(self, task: str) -> dict[str, Any]:
        """What serving needs of the preprocessing, as plain JSON data (preprocessing.json):
        task, input shape, the fitted scalers, feature names and class labels."""
        return {
            "task": task,
            "input_shape": list(self.input_shape),
            "x_scaler": self.x_scaler.to_dict(),
            "y_scaler": self.y_scaler.to_dict() if self.y_scaler is not None else None,
            "feature_names": list(self.feature_names),
            "class_labels": self.class_labels,
            **({"columns": self.columns} if self.columns is not None else {}),
            **({"encoder": self.encoder.to_dict()} if self.encoder is not None else {}),
        }


def split_indices(n: int, split: Split, seed: int, y: np.ndarray | None) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (train, val, test) index arrays; stratified on `y` when it is given.

    Each held-out part gets ceil(fraction * n) rows, counted on the whole set.
    """
    from sklearn.model_selection import train_test_split

    where = f"cannot split {n} rows into train / validation {split.validation:g} / test " \
            f"{split.test:g}"
    if n == 0:
        raise DataError(f"{where}: the data set is empty")
    # Integer counts: a fraction of the remainder (0.1 / 0.7) can round up one too many.
    counts = [math.ceil(frac * n - 1e-9) for frac in (split.test, split.validation)]
    if sum(counts) >= n:
        raise DataError(f"{where}: {counts[0]} test and {counts[1]} validation rows leave "
                        "none to train on; add rows or lower the fractions")
    idx = np.arange(n)
    parts: list[np.ndarray] = []
    rest, rest_y = idx, y
    for count in counts:
        if count <= 0:
            parts.append(idx[:0])
            continue
        try:
            rest, held = train_test_split(rest, test_size=count, random_state=seed,
                                          stratify=rest_y)
        except ValueError as exc:
            hint = ("; with stratify every class needs rows in every split: add rows, or "
                    "set data.split.stratify: false") if y is not None else ""
            raise DataError(f"{where}: {exc}{hint}") from None
        rest_y = y[rest] if y is not None else None
        parts.append(held)
    return np.sort(rest), np.sort(parts[1]), np.sort(parts[0])


def _check_strata(y: np.ndarray, labels: list[str] | None) -> None:
    """A stratified split needs two rows of every class; name the classes that lack them."""
    counts = np.bincount(y)
    names = labels if labels and len(labels) == len(counts) else [str(c) for c in
                                                                  range(len(counts))]
    rare = [names[c] for c, k in enumerate(counts) if k == 1]
    if rare:
        shown = ", ".join(map(repr, rare[:5])) + (", ..." if len(rare) > 5 else "")
        raise DataError(f"a stratified split needs at least 2 rows of every class; "
                        f"{len(rare)} class(es) have 1 row: {shown}; add rows, or set "
                        "data.split.stratify: false")


def for_task(arrays: Arrays, regression: bool) -> Arrays:
    """The arrays with targets in the form the task trains on.

    Whole-number targets of CSV and NPZ files load as classes and keep their numbers in
    `extra["target_values"]`; for regression those numbers become y (n, targets) float32.
    """
    y = arrays.y
    if regression:
        if y.dtype.kind == "f":
            return replace(arrays, y=y.reshape(len(y), -1).astype(np.float32),
                           class_labels=None)
        values = arrays.extra.get("target_values")
        if values is None:
            raise DataError("the task is regression but the targets are class labels; "
                            "use task: classification (or binary)")
        return replace(arrays, y=values, class_labels=None)
    if y.dtype.kind == "f":
        raise DataError("the task is classification but the targets are continuous values; "
                        "use task: regression")
    return arrays


def prepare_arrays(data: DataSource, arrays: Arrays, seed: int, regression: bool,
                   train_idx: np.ndarray | None = None, val_idx: np.ndarray | None = None,
                   test_idx: np.ndarray | None = None) -> Prepared:
    """Split `arrays` (or use the given indices) and scale with statistics of train only."""
    arrays = for_task(arrays, regression)
    X, y = arrays.X, arrays.y
    if train_idx is None:
        strat = y if data.split.stratify and not regression else None
        if strat is not None and (data.split.test or data.split.validation):
            _check_strata(strat, arrays.class_labels)
        train_idx, val_idx, test_idx = split_indices(len(X), data.split, seed, strat)
    none = np.arange(0)
    val_idx = none if val_idx is None else val_idx
    test_idx = none if test_idx is None else test_idx
    if len(train_idx) == 0:
        raise DataError("the training split is empty")
    encoder, raw, columns = _encode(arrays, train_idx, val_idx, test_idx)  # raw: lazy splits
    if encoder is not None:
        X = encoder.transform(arrays.extra["table"])  # (n, encoded features)
    x_scaler = Scaler.fit(data.normalize, X, train_idx)
    y_scaler = None
    if regression:
        kind = "standard" if data.target_normalize == "auto" else data.target_normalize
        y_scaler = Scaler.fit(kind, y[train_idx])
    ys = y_scaler.transform if y_scaler is not None else (lambda a: a)
    return Prepared(
        x_scaler.transform_rows(X, train_idx), ys(y[train_idx]),
        x_scaler.transform_rows(X, val_idx), ys(y[val_idx]),
        x_scaler.transform_rows(X, test_idx), ys(y[test_idx]),
        x_scaler, y_scaler, arrays.feature_names, arrays.class_labels,
        encoder, columns, raw)


def _encode(arrays: Arrays, train_idx: np.ndarray, val_idx: np.ndarray,
            test_idx: np.ndarray) -> tuple[Encoder | None, RawSplits | None,
                                           list[dict[str, Any]] | None]:
    """The raw-column encoder fitted on the training rows, and the raw splits, for tabular
    files that need one; the column records whenever the source is a tabular file."""
    cols = arrays.extra.get("columns")
    if cols is None:
        return None, None, None
    records = [c.meta() for c in cols]
    table = arrays.extra.get("table")
    if table is None:
        return None, None, records
    from .encode import fit

    encoder = fit(cols, table[train_idx])
    raw = RawSplits(table, {"train": train_idx, "validation": val_idx, "test": test_idx})
    return encoder, raw, records


class RawSplits(dict[str, "Table"]):
    """The raw columns of each split ("train", "validation", "test"), cut from the whole
    table when asked for (export verification), not copied up front."""

    def __init__(self, table: Table, index: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.table, self.index = table, index

    def __missing__(self, key: str) -> Table:
        return self.table[self.index[key]]


def prepare(spec: Spec) -> Prepared:
    """Load the spec's data source and split and scale it (seeded by `spec.seed`); a
    `stream: true` source is split and fitted without loading (`stream.prepare_streamed`)."""
    if getattr(spec.data, "stream", False):
        from .stream import prepare_streamed

        return prepare_streamed(spec)
    arrays = spec.data.load(spec.seed)
    return prepare_arrays(spec.data, arrays, spec.seed, spec.task == "regression")
