"""Raw-column models: the encoder graph in front of the exported network, and its checks.

A model trained on a tabular file with text, booleans or blanks takes one input per
feature column (see docs/tabular-data.md, "Model inputs"): [batch, 1] float32 (NaN for a
blank) for numeric and boolean columns, [batch, 1] string for categorical ones. The
encoding (imputation, one-hot, <other>) runs inside the graph, before the network's own
scaling, so onnxruntime alone turns raw rows into predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .data.encode import Encoder, feed, graph
from .data.table import Col, Table, text_col
from .errors import ExportError

ENCODED = "specnet_encode/features"
"""Name of the encoded features between the encoder graph and the network."""
UNSEEN = "<never seen in training>"


def merge(net: Any, enc: Encoder, net_input: str) -> Any:
    """onnx.ModelProto: raw columns -> encoder -> `net` (whose input is `net_input`)."""
    import onnx
    from onnx import compose

    opset = next(o.version for o in net.opset_import if o.domain in ("", "ai.onnx"))
    pre = graph(enc, opset, ENCODED)
    pre.ir_version = net.ir_version
    try:
        model = compose.merge_models(pre, net, io_map=[(ENCODED, net_input)])
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises ValueError / ValidationError / others
        raise ExportError(f"cannot join the column encoder to the network: {exc}") from None
    model.graph.name = net.graph.name or "specnet"
    return model


def table_runner(model: bytes, enc: Encoder) -> Callable[[Table], np.ndarray]:
    """Run a merged model on raw tables with onnxruntime (CPU), as verification does."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(table: Table) -> np.ndarray:
        out: np.ndarray = session.run(None, feed(enc, table))[0]
        return out

    return run


def encoded_runner(reference: Callable[[np.ndarray], np.ndarray],
                   enc: Encoder) -> Callable[[Table], np.ndarray]:
    """The torch side on raw tables: encode in numpy, then the reference (raw features)."""

    def run(table: Table) -> np.ndarray:
        return reference(enc.transform(table))

    return run


def random_table(enc: Encoder, train: Table, n: int, seed: int) -> Table:
    """n raw rows drawn from the training columns, with about 10% blanks in every column
    and, in categorical ones, about 10% categories never seen in training."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Col] = {}
    m = len(train)
    for s in enc.steps:
        col = train.columns[s.name].take(rng.integers(0, m, n))
        blank = rng.random(n) < 0.1
        if s.type == "categorical":
            if col.codes is None:
                from .data.columns import _as_text

                col = _as_text(col)
            words = col.strings()
            words = np.where(blank, "", words)
            words = np.where(~blank & (rng.random(n) < 0.1), UNSEEN, words)
            cols[s.name] = text_col(words)
        else:
            values = col.values if col.values is not None else np.zeros(n)
            cols[s.name] = Col("number", values=np.where(blank, np.nan, values))
    return Table(cols)


def verification_tables(raw: dict[str, Table], enc: Encoder, rows: int,
                        seed: int) -> dict[str, Table]:
    """Raw rows to verify on: the first non-empty of test / validation / train, and random
    rows with blanks and unseen categories."""
    name, real = next((k, t) for k, t in (("test", raw["test"]),
                                           ("validation", raw["validation"]),
                                           ("train", raw["train"])) if len(t))
    return {name: real, "random": random_table(enc, raw["train"], rows, seed)}
