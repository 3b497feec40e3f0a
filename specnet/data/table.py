"""Raw columns of a tabular file, before encoding: numbers with NaN, text as codes.

Torch-free and numpy-only: training (`readers`, `encode`) and the verification use it.
A text column is kept dictionary-encoded (codes into a list of distinct values), which is
what one-hot encoding needs and far lighter than one Python string per cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["number", "text", "bool", "date", "empty"]
"""What a reader found in a column: numbers, text, true/false, dates, or nothing at all."""


@dataclass
class Col:
    """One raw column of n rows.

    values: (n,) float64, NaN where the cell is missing (number, bool as 0/1, date as days
    since 1970-01-01). codes: (n,) int32 indexes into `levels`, -1 where missing (text).
    """

    kind: Kind
    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    levels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        arr = self.values if self.values is not None else self.codes
        return 0 if arr is None else len(arr)

    @property
    def missing(self) -> np.ndarray:
        """(n,) bool: where the cell is missing."""
        if self.codes is not None:
            return self.codes < 0
        assert self.values is not None
        return np.isnan(self.values)

    def take(self, idx: np.ndarray) -> Col:
        """The rows `idx`, same levels."""
        return Col(self.kind, None if self.values is None else self.values[idx],
                   None if self.codes is None else self.codes[idx], self.levels)

    def strings(self) -> np.ndarray:
        """(n,) object array of the cells as text, '' where missing (text columns)."""
        assert self.codes is not None
        lv = np.array([*self.levels, ""], dtype=object)
        return lv[self.codes]  # -1 picks the trailing ''

    def example(self) -> str:
        """The first non-missing cell as text ('' when every cell is missing)."""
        ok = np.flatnonzero(~self.missing)
        if not len(ok):
            return ""
        i = int(ok[0])
        if self.codes is not None:
            return self.levels[int(self.codes[i])]
        assert self.values is not None
        if self.kind == "bool":
            return "true" if self.values[i] > 0.5 else "false"
        return f"{self.values[i]:g}"

    def distinct(self) -> int:
        """Number of distinct non-missing values."""
        if self.codes is not None:
            return len(np.unique(self.codes[self.codes >= 0]))
        assert self.values is not None
        v = self.values[~np.isnan(self.values)]
        return len(np.unique(v))


def text_col(cells: list[str] | np.ndarray) -> Col:
    """A text column from cells ('' or None = missing), dictionary-encoded."""
    arr = np.array(["" if c is None else str(c) for c in cells], dtype=object)
    levels, codes = np.unique(arr, return_inverse=True)
    lv = [str(v) for v in levels]
    codes = codes.astype(np.int32)
    if lv and lv[0] == "":
        codes = codes - 1  # '' sorts first: it becomes -1, missing
        lv = lv[1:]
    return Col("text", codes=codes, levels=lv)


@dataclass
class Table:
    """Named raw columns of equal length, in file order."""

    columns: dict[str, Col]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, idx: np.ndarray) -> Table:
        return Table({k: c.take(np.asarray(idx)) for k, c in self.columns.items()})
