"""`specnet inspect DATA`: the column table of a bare data file and a starter spec.

The starter spec names only the file and the target (everything else is inferred), picks
the task from the target column, and validates as written when saved next to the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError
from .columns import Column


def _task(target: Column) -> tuple[str, str, str]:
    """(task, last layer units, loss comment) from the target column."""
    if target.type == "numeric" and not (target.distinct <= 10 and _whole(target)):
        return "regression", "auto", ""
    if target.distinct == 2:
        return "binary", "1", ""
    return "classification", "auto", ""


def _whole(c: Column) -> bool:
    import numpy as np

    v = c.col.values
    if v is None:
        return False
    v = v[~np.isnan(v)]
    return bool(np.all(v == np.round(v)))


def _header(path: Path, delimiter: str) -> list[str]:
    if path.suffix.lower() in (".parquet", ".pq"):
        from .readers import read_parquet

        return read_parquet(path).header
    from .files import _csv_rows
    from .sources import Csv

    first = next(_csv_rows(Csv.model_construct(path=path, target="", delimiter=delimiter,
                                               features=None)), None)
    if first is None:
        raise DataError(f"{path}: the file is empty; it needs a header row and data rows")
    return first[1]


def inspect_file(path: Path, target: str | None, delimiter: str = ",") -> tuple[str, str]:
    """(column table with notes, starter spec YAML) for a CSV or Parquet file."""
    from .sources import Csv, Parquet
    from .tabular import describe

    header = _header(path, delimiter)
    target = target if target is not None else header[-1]
    parquet = path.suffix.lower() in (".parquet", ".pq")
    src = (Parquet(path=path, target=target) if parquet
           else Csv(path=path, target=target, delimiter=delimiter))
    d = describe(src)
    col = next(c for c in d.columns if c.role == "target")
    task, units, _ = _task(col)
    source = "parquet" if parquet else "csv"
    extra = f", delimiter: {delimiter!r}" if delimiter != "," else ""
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in path.stem) or "model"
    spec = (f"# Starter spec from `specnet inspect {path.name}`: save it next to "
            f"{path.name} (paths are relative to the spec).\n"
            f"name: {name}\n"
            f"task: {task}\n"
            f"data: {{source: {source}, path: {path.name}, target: {json.dumps(target)}{extra}}}\n"
            "model:\n  - linear: 32\n  - relu\n  - linear: 32\n  - relu\n"
            f"  - linear: {units}\n"
            "training: {epochs: 100, batch_size: 32}\n")
    return d.table(), spec
