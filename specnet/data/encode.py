"""Encode raw feature columns into the float matrix a network trains on, and emit the
same encoding as ONNX nodes so the exported model takes the raw columns.

Per feature column, in file order:
- numeric / boolean: the value, missing cells filled with the training split's median
  (or mean, or a constant); with `missing_indicator`, a second 0/1 column `<name>_missing`.
- categorical: one-hot over the kept categories (`<name>=<value>`), then `<name>=<missing>`
  when the file has blanks in the column, then `<name>=<other>`, which takes rare
  categories and every category never seen in training (never an error).

Which categories keep a column comes from the whole file (so the input width is known at
`specnet validate`, before any split); every fitted number (fill values, and the scaling
applied afterwards) comes from the training split only.

ONNX form (ai.onnx + ai.onnx.ml, run by onnxruntime): numbers: IsNaN -> Where(fill) [and
Cast(IsNaN) for the indicator]; categories: ai.onnx.ml LabelEncoder (string -> slot, the
`<other>` slot as default; '', NA, null, ... -> the `<missing>` slot) -> Equal(arange) ->
Cast; then one Concat into the network's `input`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .table import Col, Table

if TYPE_CHECKING:
    from .columns import Column

OTHER = "<other>"
MISSING = "<missing>"
MISSING_WORDS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?", "na", "n/a")
"""Texts the graph maps to the <missing> slot of a categorical column."""


@dataclass
class Step:
    """The encoding of one feature column."""

    name: str
    type: str                      # numeric | boolean | categorical
    fill: float = 0.0              # numeric / boolean: the value for missing cells
    indicator: bool = False        # numeric / boolean: add <name>_missing
    categories: list[str] = field(default_factory=list)
    missing_slot: bool = False     # categorical: <missing> has a column of its own

    @property
    def names(self) -> list[str]:
        """Names of the encoded features this step makes."""
        if self.type == "categorical":
            return ([f"{self.name}={c}" for c in self.categories]
                    + ([f"{self.name}={MISSING}"] if self.missing_slot else [])
                    + [f"{self.name}={OTHER}"])
        return [self.name] + ([f"{self.name}_missing"] if self.indicator else [])

    @property
    def width(self) -> int:
        """Number of encoded features."""
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {"name": self.name, "type": self.type, "fill": self.fill,
                "indicator": self.indicator, "categories": self.categories,
                "missing_slot": self.missing_slot}


@dataclass
class Encoder:
    """Raw columns -> (n, width) float32 features, fitted (see the module docstring)."""

    steps: list[Step]

    @property
    def feature_names(self) -> list[str]:
        """Encoded feature names, in column order."""
        return [n for s in self.steps for n in s.names]

    @property
    def width(self) -> int:
        """Encoded features per row."""
        return sum(s.width for s in self.steps)

    def transform(self, table: Table) -> np.ndarray:
        """(n, width) float32 from raw columns (numbers: NaN = missing; text: codes)."""
        n = len(table)
        X = np.zeros((n, self.width), np.float32)
        j = 0
        for s in self.steps:
            col = table.columns[s.name]
            if s.type == "categorical":
                X[np.arange(n), j + _slots(s, col)] = 1.0
            else:
                v = _values(col)
                miss = np.isnan(v)
                X[:, j] = np.where(miss, s.fill, v)
                if s.indicator:
                    X[:, j + 1] = miss
            j += s.width
        return X

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, for preprocessing.json."""
        return {"steps": [s.to_dict() for s in self.steps],
                "feature_names": self.feature_names}


def _values(col: Col) -> np.ndarray:
    if col.values is None:  # text where a number was expected: read what parses
        from .columns import _as_numbers

        col = _as_numbers(col)[0]
    assert col.values is not None
    return col.values.astype(np.float64)


def _slots(step: Step, col: Col) -> np.ndarray:
    """(n,) slot index of each row: its category, <missing> or <other>."""
    other = step.width - 1
    missing = len(step.categories) if step.missing_slot else other
    if col.codes is None:
        from .columns import _as_text

        col = _as_text(col)
    assert col.codes is not None
    index = {c: i for i, c in enumerate(step.categories)}
    words = set(MISSING_WORDS)
    lookup = np.array([index.get(w, missing if w in words else other) for w in col.levels]
                      + [missing], np.int64)
    return lookup[col.codes]


def fit(columns: list[Column], train: Table) -> Encoder:
    """Fit the encoding of the feature columns on the training split's raw columns."""
    steps = []
    for c in columns:
        if c.role != "feature":
            continue
        if c.type == "categorical":
            steps.append(Step(c.name, "categorical", categories=list(c.categories),
                              missing_slot=c.missing > 0))
            continue
        v = _values(train.columns[c.name])
        v = v[~np.isnan(v)]
        if c.impute == "constant" or not len(v):
            fill = c.fill_value
        elif c.impute == "mean":
            fill = float(v.mean())
        else:
            fill = float(np.median(v))
        steps.append(Step(c.name, c.type, fill=float(np.float32(fill)),
                          indicator=c.missing_indicator))
    return Encoder(steps)


def width(columns: list[Column]) -> int:
    """Encoded width of the feature columns, before fitting (what `fit` will make)."""
    total = 0
    for c in columns:
        if c.role != "feature":
            continue
        if c.type == "categorical":
            total += len(c.categories) + (1 if c.missing > 0 else 0) + 1
        else:
            total += 2 if c.missing_indicator else 1
    return total


def needs_columns(columns: list[Column]) -> bool:
    """Whether the model must take raw columns: a non-numeric feature, a missing cell in
    a feature, or a missing-indicator. Otherwise it keeps the single float `input`."""
    return any(c.role == "feature" and (c.type != "numeric" or c.missing > 0
                                        or c.missing_indicator) for c in columns)


# ---------------------------------------------------------------- ONNX


def graph(enc: Encoder, opset: int, output: str) -> Any:
    """An onnx.ModelProto: one input per feature column ([batch, 1] float32 for numeric
    and boolean columns, [batch, 1] string for categorical ones), named as the column,
    -> `output` float32 [batch, width], the encoded features (unscaled)."""
    import onnx
    from onnx import TensorProto, helper

    nodes: list[Any] = []
    inits: list[Any] = []
    inputs: list[Any] = []
    parts: list[str] = []
    p = "specnet_encode/"
    for k, s in enumerate(enc.steps):
        q = f"{p}{k}/"
        if s.type == "categorical":
            inputs.append(helper.make_tensor_value_info(s.name, TensorProto.STRING,
                                                        ["batch", 1]))
            other = s.width - 1
            missing = len(s.categories) if s.missing_slot else other
            keys = list(s.categories) + [w for w in MISSING_WORDS if w not in s.categories]
            vals = list(range(len(s.categories))) + [missing] * (len(keys) - len(s.categories))
            nodes.append(helper.make_node(
                "LabelEncoder", [s.name], [q + "slot"], domain="ai.onnx.ml",
                keys_strings=keys, values_int64s=vals, default_int64=other))
            inits.append(helper.make_tensor(q + "arange", TensorProto.INT64, [s.width],
                                            list(range(s.width))))
            nodes.append(helper.make_node("Equal", [q + "slot", q + "arange"], [q + "hot"]))
            nodes.append(helper.make_node("Cast", [q + "hot"], [q + "out"],
                                          to=TensorProto.FLOAT))
            parts.append(q + "out")
            continue
        inputs.append(helper.make_tensor_value_info(s.name, TensorProto.FLOAT, ["batch", 1]))
        inits.append(helper.make_tensor(q + "fill", TensorProto.FLOAT, [], [s.fill]))
        nodes.append(helper.make_node("IsNaN", [s.name], [q + "nan"]))
        nodes.append(helper.make_node("Where", [q + "nan", q + "fill", s.name], [q + "out"]))
        parts.append(q + "out")
        if s.indicator:
            nodes.append(helper.make_node("Cast", [q + "nan"], [q + "ind"],
                                          to=TensorProto.FLOAT))
            parts.append(q + "ind")
    nodes.append(helper.make_node("Concat", parts, [output], axis=1))
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", enc.width])
    g = helper.make_graph(nodes, "specnet_encode", inputs, [out], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                                helper.make_opsetid("ai.onnx.ml", 3)])
    onnx.checker.check_model(model)
    return model


def feed(enc: Encoder, table: Table) -> dict[str, np.ndarray]:
    """The onnxruntime feed of raw columns for `graph`: {column: [n, 1] array}."""
    out: dict[str, np.ndarray] = {}
    for s in enc.steps:
        col = table.columns[s.name]
        if s.type == "categorical":
            if col.codes is None:
                from .columns import _as_text

                col = _as_text(col)
            out[s.name] = col.strings().astype(object).reshape(-1, 1)
        else:
            out[s.name] = _values(col).astype(np.float32).reshape(-1, 1)
    return out
