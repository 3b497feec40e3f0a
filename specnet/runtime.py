"""Run an exported model with onnxruntime, and check input rows before they reach it.

Torch-free: `predict` and `serve` use this module and never import torch. Every input
problem raises ModelInputError naming the row (1-based) and the column (by feature name),
so a CLI user gets `error: row 3, column 'petal width (cm)': ...` and an HTTP client a 400.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import Artifact, from_metadata, model_path
from .errors import ModelInputError, SpecnetError
from .feed import feed_from_columns as feed_from_columns
from .feed import feed_from_records as feed_from_records


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"),
                     membership: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (2.5 = 250 ms per 100 ms), or None
    when there is no quota. Reads cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us` /
    `cpu.cfs_period_us`), in the process's own cgroup and then at the hierarchy's root."""
    v2: list[Path] = []
    v1: list[Path] = []
    try:
        for line in membership.read_text(encoding="utf-8").splitlines():
            _, controllers, rel = line.split(":", 2)
            rel = rel.lstrip("/")
            if controllers == "":
                v2.append(root / rel)
            elif "cpu" in controllers.split(","):
                for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                    v1.append(root / name / rel)
    except (OSError, ValueError):
        pass
    limits: list[float] = []
    for folder in [*v2, root]:
        try:
            quota, period = (folder / "cpu.max").read_text(encoding="utf-8").split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max" and float(period) > 0:
            limits.append(float(quota) / float(period))
        break
    for folder in [*v1, root / "cpu", root / "cpu,cpuacct"]:
        try:
            quota_us = float((folder / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
            period_us = float((folder / "cpu.cfs_period_us").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if quota_us > 0 and period_us > 0:
            limits.append(quota_us / period_us)
        break
    return min(limits) if limits else None


def available_cores() -> int:
    """CPU cores this process may use: its CPU affinity, capped by its cgroup's CPU quota
    (rounded up; a container limited to 1.5 CPUs gets 2), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, math.ceil(quota - 1e-9))
    return max(1, cores)


def default_threads(workers: int = 1) -> int:
    """onnxruntime intra-op threads per worker so that workers x threads <= cores."""
    return max(1, available_cores() // max(1, workers))


class Runtime:
    """An onnxruntime session over one exported model, with its metadata.

    threads: intra-op threads (default: all cores). The session runs on the CPU.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = model_path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle pool threads would otherwise spin for a while after every call, taking a
        # core from the web server's event loop (and from other workers) for nothing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (unexported) error types
            raise SpecnetError(f"cannot load {self.path}: {str(exc).strip()}") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata: dict[str, str] = meta
        """The model's metadata map as stored (`specnet.*` keys and any others)."""
        self.artifact: Artifact = from_metadata(self.path, meta)
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        art = self.artifact
        if art.input_layout == "columns":
            if sorted(inputs) != sorted(art.feature_names) or art.output_name not in outputs:
                raise SpecnetError(f"{self.path}: the graph has inputs {inputs} and outputs "
                                   f"{outputs}, but its metadata names the columns "
                                   f"{art.feature_names} -> {art.output_name!r}")
        elif inputs != [art.input_name] or art.output_name not in outputs:
            raise SpecnetError(f"{self.path}: the graph has inputs {inputs} and outputs "
                               f"{outputs}, but its metadata names {art.input_name!r} -> "
                               f"{art.output_name!r}")
        art.check_consistent(next(o.shape for o in self.session.get_outputs()
                                  if o.name == art.output_name))

    def run(self, X: np.ndarray) -> np.ndarray:
        """Model outputs for checked rows X (n, *input_shape) float32 (see `check_array`)."""
        art = self.artifact
        out: np.ndarray = self.session.run([art.output_name], {art.input_name: X})[0]
        return out

    def run_feed(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Model outputs for a checked feed {input name: array} (see `feed_from_records`)."""
        out: np.ndarray = self.session.run([self.artifact.output_name], feed)[0]
        return out

    def predict(self, X: np.ndarray) -> dict[str, Any]:
        """`check_array` + `run` + `predictions`, in one call."""
        return predictions(self.artifact, self.run(check_array(self.artifact, X)))


# ---------------------------------------------------------------- input checks


def _column(art: Artifact, j: int) -> str:
    names = art.feature_names
    return f"column {names[j]!r}" if j < len(names) else f"column {j + 1}"


def _shape_text(art: Artifact) -> str:
    flat = f"[n, {art.n_features}]"
    if len(art.input_shape) > 1:
        return f"{flat} or [n, {', '.join(map(str, art.input_shape))}]"
    return flat


def check_array(art: Artifact, X: np.ndarray) -> np.ndarray:
    """Rows X as the model takes them: float32 (n, *input_shape), finite, numeric.

    Accepts (n, n_features) flat rows or (n, *input_shape). Raises ModelInputError naming
    the first bad row and column.
    """
    if X.dtype.kind not in "iuf":
        what = "true/false" if X.dtype.kind == "b" else f"dtype {X.dtype}"
        raise ModelInputError(f"input values must be numbers; got {what}")
    if X.ndim == 0 or len(X) == 0:
        raise ModelInputError(f"no rows: expected shape {_shape_text(art)}, got "
                              f"{list(X.shape)}")
    n = len(X)
    if X.shape[1:] == art.input_shape:
        pass
    elif X.ndim == 2 and X.shape[1] == art.n_features:
        X = X.reshape(n, *art.input_shape)  # (n, features) -> (n, *input_shape)
    else:
        got = X.shape[1] if X.ndim == 2 else list(X.shape[1:])
        raise ModelInputError(f"wrong number of features: expected {art.n_features} per row "
                              f"(shape {_shape_text(art)}), got {got} (shape {list(X.shape)})")
    with np.errstate(over="ignore"):  # beyond float32 -> inf, reported just below
        X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X)
    if not finite.all():
        flat = finite.reshape(n, -1)
        row, col = (int(i) for i in np.argwhere(~flat)[0])
        value = X.reshape(n, -1)[row, col]
        raise ModelInputError(f"row {row + 1}, {_column(art, col)}: {value} is not a finite "
                              "number (NaN, infinity, or beyond the float32 range)")
    return X


def _first_bad(art: Artifact, rows: Sequence[Any]) -> str:
    """Locate the first value that keeps `rows` (nested lists) from being a numeric array."""
    width = art.n_features
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)):
            return f"row {i + 1}: expected a list of {width} numbers, got {type(row).__name__}"
        if len(row) != width and not (len(art.input_shape) > 1 and len(row) == art.input_shape[0]):
            return f"row {i + 1}: expected {width} values, got {len(row)}"
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                if isinstance(v, (list, tuple)):
                    break  # nested image rows: leave it to numpy's shape check
                return f"row {i + 1}, {_column(art, j)}: expected a number, got {v!r}"
    return "rows must be lists of numbers of equal length"


def rows_from_lists(art: Artifact, rows: Any) -> np.ndarray:
    """Checked model input from nested lists (JSON `rows`), row-major."""
    if not isinstance(rows, list):
        raise ModelInputError(f"rows must be a list of rows, got {type(rows).__name__}")
    try:
        X = np.asarray(rows)
    except (ValueError, TypeError):
        raise ModelInputError(_first_bad(art, rows)) from None
    if X.dtype.kind not in "iuf":
        raise ModelInputError(_first_bad(art, rows) if X.ndim >= 1 and len(X) else
                              "no rows")
    return check_array(art, X)


def rows_from_records(art: Artifact, records: Any) -> np.ndarray:
    """Checked model input from records [{feature: value, ...}, ...] matched by name.

    Keys that are not features are ignored; a missing feature is an error.
    """
    if not isinstance(records, list):
        raise ModelInputError(f"records must be a list of objects, got {type(records).__name__}")
    names = art.feature_names
    try:
        rows = [[r[f] for f in names] for r in records]
    except (KeyError, TypeError):
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise ModelInputError(f"row {i + 1}: expected an object of feature: value, "
                                      f"got {type(r).__name__}") from None
            missing = [f for f in names if f not in r]
            if missing:
                raise ModelInputError(
                    f"row {i + 1}: missing feature(s) {', '.join(map(repr, missing))}; "
                    f"expected {len(names)} features: {', '.join(map(repr, names))}") from None
        raise  # pragma: no cover - the loop above always finds the culprit
    return rows_from_lists(art, rows)


# ---------------------------------------------------------------- outputs


def predictions(art: Artifact, out: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Model outputs in user terms.

    classification / binary: {"labels": [n], "probabilities": (n, classes), "class_labels"}
    (binary: the graph gives P(class 1); both columns are returned here, and the label is
    class 1 when P(class 1) > threshold).
    regression: {"values": (n, targets), "target_names"}.
    """
    if art.task == "regression":
        values = out.reshape(len(out), -1)
        return {"values": values, "target_names": art.target_names}
    labels = np.asarray(art.class_labels or [str(i) for i in range(max(2, out.shape[-1]))])
    if art.task == "binary":
        p1 = out.reshape(-1)
        probs = np.stack([1.0 - p1, p1], axis=1).astype(np.float32)
        idx = (p1 > threshold).astype(np.int64)  # P > 0.5 <=> logit > 0
    else:
        probs = out
        idx = out.argmax(axis=1)
    return {"labels": labels[idx].tolist(), "probabilities": probs,
            "class_labels": labels.tolist()}


# ---------------------------------------------------------------- JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use a finite number)")


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


try:
    import orjson

    def loads(data: bytes | str) -> Any:
        """Parse JSON (strict: no NaN / Infinity); ValueError when malformed."""
        return orjson.loads(data)

    def dumps(obj: Any) -> bytes:
        """Serialise to JSON bytes; numpy arrays and scalars allowed (float32 kept short)."""
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)

except ImportError:  # pragma: no cover - orjson is in the serve extra
    import json

    def loads(data: bytes | str) -> Any:
        """Parse JSON (strict: no NaN / Infinity); ValueError when malformed."""
        return json.loads(data, parse_constant=_reject_constant)

    def dumps(obj: Any) -> bytes:
        """Serialise to JSON bytes; numpy arrays and scalars allowed."""
        return json.dumps(obj, default=_default, allow_nan=False).encode()

