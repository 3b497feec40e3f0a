"""The exported artifact: where its files are and what its model.onnx metadata says.

An artifact is an export folder (`exports/<name>/`) or a bare `model.onnx`. Everything
`predict` and `serve` need travels inside the model as ONNX `metadata_props` under keys
that start with `specnet.`; this module names those keys and turns them back into typed
data. It imports neither torch nor onnx (the metadata is read through onnxruntime).

Model interface (the same for every exported model):
  input  "input"          float32 (batch, *input_shape), raw features (normalisation is inside)
  output "probabilities"  float32 (batch, classes)  task classification: softmax
         "probabilities"  float32 (batch,)          task binary: P(class_labels[1])
         "values"         float32 (batch, targets)  task regression: original target units
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SpecnetError

PREFIX = "specnet."
INPUT_NAME = "input"
MODEL_FILE = "model.onnx"
VERIFICATION_FILE = "verification.json"
FORMAT_VERSION = "1"

# Files of an export folder, in the order `specnet export` writes them.
FILES = {
    "model": MODEL_FILE,
    "weights": "weights.safetensors",
    "spec": "spec.yaml",
    "preprocessing": "preprocessing.json",
    "metrics": "metrics.json",
    "history": "history.csv",
    "learning_curve": "learning_curve.png",
    "verification": VERIFICATION_FILE,
    "evaluation": "evaluation.json",
}

# Figures of the test-split evaluation (`specnet.evaluate`): which ones an export holds
# depends on the task (classification: the first four; regression: the last two).
EVALUATION_PLOTS = {
    "confusion_matrix": "confusion_matrix.png",
    "roc": "roc_curve.png",
    "precision_recall": "precision_recall_curve.png",
    "calibration": "calibration_curve.png",
    "residuals": "residuals.png",
    "predicted_vs_true": "predicted_vs_true.png",
}

OWNED_FILES = (*FILES.values(), *EVALUATION_PLOTS.values())
"""Every name specnet may write into an export folder (see `io.check_replaceable`)."""


def output_name(task: str) -> str:
    """Name of the model's output tensor for a task."""
    return "values" if task == "regression" else "probabilities"


@dataclass
class Artifact:
    """What a model.onnx says about itself (its `specnet.*` metadata), typed.

    input_shape: one sample, no batch axis. output_shape: likewise ((), for binary).
    verification: the parity report written at export time, or None when absent.
    """

    path: Path
    name: str
    task: str
    feature_names: list[str]
    class_labels: list[str] | None
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_name: str = INPUT_NAME
    output_name: str = "probabilities"
    target_names: list[str] = field(default_factory=list)
    target: str = ""
    """Name of the target column in the training data ('' when unknown): what
    `specnet evaluate` looks for in a labelled file."""
    spec_text: str = ""
    spec_sha256: str = ""
    verification: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    columns: list[dict[str, Any]] = field(default_factory=list)
    """Every column of the training file (tabular sources): {"name", "type", "role"}, and
    "categories" for categorical features. Metadata key `specnet.columns`."""
    input_layout: str = "tensor"
    """"tensor": one float32 input `input_name` (batch, *input_shape). "columns": one input
    per feature column, named as the column (`feature_names`), [batch, 1] float32 (NaN =
    blank) for numeric / boolean columns, [batch, 1] string for categorical ones.
    Metadata key `specnet.input_layout`."""

    def column(self, name: str) -> dict[str, Any] | None:
        """The `columns` entry of `name`, or None."""
        return next((c for c in self.columns if c.get("name") == name), None)

    def input_types(self) -> dict[str, str]:
        """Layout "columns": feature column -> "FP32" or "BYTES" (the tensor datatypes)."""
        return {n: "BYTES" if (self.column(n) or {}).get("type") == "categorical" else "FP32"
                for n in self.feature_names}

    @property
    def n_features(self) -> int:
        """Values per sample: the product of input_shape."""
        return math.prod(self.input_shape)

    @property
    def verified(self) -> bool:
        """True when the export-time onnxruntime-vs-torch check is present and passed."""
        return bool(self.verification and self.verification.get("passed") is True)

    def verification_problem(self) -> str | None:
        """Why this model does not count as verified, or None when it does."""
        if self.verification is None:
            return f"{self.path} carries no verification report"
        if self.verification.get("passed") is not True:
            return (f"{self.path} failed its verification: "
                    f"{self.verification.get('summary', 'see verification.json')}")
        return None

    def check_consistent(self, graph_output: list[Any] | None = None) -> None:
        """SpecnetError when the metadata contradicts itself or the graph: class labels
        that do not match the outputs (predict would index past them, serve answer 500),
        feature names that do not match the input. `graph_output`: the output tensor's
        shape as onnxruntime reports it ([batch, classes], symbolic axes as strings)."""
        where = f"{self.path}: the model's specnet metadata"
        if graph_output is not None:
            dims = tuple(graph_output[1:])
            if all(isinstance(d, int) for d in dims) and dims != self.output_shape:
                raise SpecnetError(f"{where} gives output shape {list(self.output_shape)} but "
                                   f"the graph outputs {list(dims)}; export the model again")
        labels = self.class_labels
        if self.task in ("classification", "binary"):
            want = 2 if self.task == "binary" else math.prod(self.output_shape or (1,))
            if not isinstance(labels, list) or len(labels) != want:
                got = f"{len(labels)} class labels" if isinstance(labels, list) else \
                    f"class labels {labels!r}"
                raise SpecnetError(f"{where} has {got}, but the model outputs {want} classes; "
                                   "the metadata was edited or damaged: export the model again")
            self.class_labels = [str(c) for c in labels]
        if self.feature_names and len(self.feature_names) != self.n_features:
            raise SpecnetError(f"{where} names {len(self.feature_names)} features, but the "
                               f"model takes {self.n_features}; export the model again")

    def describe(self) -> dict[str, Any]:
        """Plain-JSON description for `/metadata` and `specnet predict --info`."""
        return {
            "name": self.name, "task": self.task, "feature_names": self.feature_names,
            "class_labels": self.class_labels, "target_names": self.target_names,
            "target": self.target,
            "input": {"name": self.input_name, "datatype": "FP32",
                      "shape": [-1, *self.input_shape]},
            "output": {"name": self.output_name, "datatype": "FP32",
                       "shape": [-1, *self.output_shape]},
            **({"inputs": [{"name": n, "datatype": t, "shape": [-1, 1]}
                           for n, t in self.input_types().items()]}
               if self.input_layout == "columns" else {}),
            **({"columns": self.columns} if self.columns else {}),
            "spec_sha256": self.spec_sha256, "verified": self.verified,
            "verification": _summary(self.verification), "versions": self.versions,
            "metrics": self.metrics,
        }


def _summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    keys = ("passed", "rtol", "atol", "max_abs_err", "max_rel_err", "argmax_agreement",
            "batch_sizes", "summary")
    return {k: report[k] for k in keys if k in report}


def metadata_props(art: Artifact) -> dict[str, str]:
    """The `specnet.*` metadata_props (string -> string) that describe `art`."""
    props = {
        "format_version": FORMAT_VERSION,
        "name": art.name,
        "task": art.task,
        "feature_names": json.dumps(art.feature_names),
        "class_labels": json.dumps(art.class_labels),
        "target_names": json.dumps(art.target_names),
        "target": art.target,
        "input_name": art.input_name,
        "output_name": art.output_name,
        "input_shape": json.dumps(list(art.input_shape)),
        "output_shape": json.dumps(list(art.output_shape)),
        "spec": art.spec_text,
        "spec_sha256": art.spec_sha256,
        "versions": json.dumps(art.versions, sort_keys=True),
        "metrics": json.dumps(art.metrics, sort_keys=True, allow_nan=False),
    }
    if art.columns:
        props["columns"] = json.dumps(art.columns)
    if art.input_layout != "tensor":
        props["input_layout"] = art.input_layout
    if art.verification is not None:
        props["verification"] = json.dumps(art.verification, sort_keys=True, allow_nan=False)
    return {PREFIX + k: v for k, v in props.items()}


def from_metadata(path: Path, meta: dict[str, str]) -> Artifact:
    """Rebuild an Artifact from a model's metadata map; SpecnetError if it is not ours."""
    got = {k[len(PREFIX):]: v for k, v in meta.items() if k.startswith(PREFIX)}
    if "task" not in got:
        raise SpecnetError(f"{path} has no specnet metadata: export it with `specnet export` "
                           "or `specnet build`")
    version = got.get("format_version", "?")
    if version != FORMAT_VERSION:
        raise SpecnetError(f"{path}: specnet metadata format {version!r} is not supported "
                           f"(this specnet reads {FORMAT_VERSION!r})")
    try:
        def js(key: str, default: Any = None) -> Any:
            return json.loads(got[key]) if key in got else default

        return Artifact(
            path=path, name=got.get("name", path.stem), task=got["task"],
            feature_names=[str(n) for n in js("feature_names", [])],
            class_labels=js("class_labels"),
            input_shape=tuple(int(d) for d in js("input_shape", [])),
            output_shape=tuple(int(d) for d in js("output_shape", [])),
            input_name=got.get("input_name", INPUT_NAME),
            output_name=got.get("output_name", output_name(got["task"])),
            target_names=[str(n) for n in js("target_names", [])],
            target=got.get("target", ""),
            spec_text=got.get("spec", ""), spec_sha256=got.get("spec_sha256", ""),
            verification=js("verification"), versions=js("versions", {}),
            metrics=js("metrics", {}), columns=list(js("columns", [])),
            input_layout=got.get("input_layout", "tensor"))
    except (ValueError, TypeError) as exc:
        raise SpecnetError(f"{path}: unreadable specnet metadata: {exc}") from None


def model_path(path: str | Path) -> Path:
    """The model.onnx of an export folder, or `path` itself when it is a model file."""
    path = Path(path)
    if path.is_dir():
        model = path / MODEL_FILE
        if not model.is_file():
            raise SpecnetError(f"{path} is not an export folder: no {MODEL_FILE} in it "
                               "(make one with `specnet build SPEC` or `specnet export RUN`)")
        return model
    if not path.exists():
        raise SpecnetError(f"{path} does not exist: give an export folder or a model.onnx")
    if path.suffix != ".onnx":
        raise SpecnetError(f"{path} is not a model: give an export folder or a .onnx file")
    return path
