"""MLflow target: an MLflow model directory with the onnx flavor (and pyfunc).

Written with `mlflow.onnx.save_model`, with a tensor signature (input `input` float32
(-1, *input_shape) -> the model's output) and specnet's description of the model under
the MLmodel `metadata` key. Then loaded back with `mlflow.pyfunc.load_model` and its
predictions compared with specnet's own onnxruntime session on the same rows.

    model = mlflow.pyfunc.load_model("deploy/iris-mlflow")
    model.predict(np.array(rows, dtype=np.float32))   # {"probabilities": (n, classes)}

Needs the `mlflow` extra (mlflow-skinny, onnx, pandas); torch-free.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpecnetError
from ..runtime import Runtime
from ._layout import Layout, check_layout

LAYOUT: Layout = {
    "MLmodel": None, "model.onnx": None, "conda.yaml": None, "python_env.yaml": None,
    "requirements.txt": None, "input_example.json": None,
    "serving_input_example.json": None, "metadata": {"*": None},
}
"""What mlflow.onnx.save_model writes (the files of an earlier output of this target)."""
CHECK_ROWS = 16


def _imports() -> tuple[Any, Any, Any]:
    try:
        with warnings.catch_warnings():
            # mlflow 3.x warns about its own type hints while importing pyfunc; nothing a
            # specnet user can act on
            warnings.simplefilter("ignore", UserWarning)
            import mlflow.onnx
            import mlflow.pyfunc
        import onnx
    except ImportError as exc:
        raise SpecnetError(f"the MLflow target needs mlflow, onnx and pandas ({exc.name} is "
                           "missing): pip install 'specnet[mlflow]'") from None
    return mlflow.onnx, mlflow.pyfunc, onnx


def check_rows(runtime: Runtime, n: int = CHECK_ROWS) -> np.ndarray:
    """Seeded rows (n, *input_shape) float32 to compare two runtimes on."""
    shape = runtime.artifact.input_shape
    return np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32)


def export_mlflow(runtime: Runtime, out: Path) -> tuple[Path, list[str]]:
    """Write the MLflow model directory `out` (replacing an earlier one as a whole), load it
    with `mlflow.pyfunc.load_model` and check its predictions; the files written."""
    mlflow_onnx, pyfunc, onnx = _imports()
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from ..io import atomic_dir

    check_layout(out, LAYOUT, "an MLflow model")
    art = runtime.artifact
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *art.input_shape),
                                  art.input_name)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *art.output_shape),
                                   art.output_name)]))
    described = art.describe()
    metadata = {"specnet": {k: described[k] for k in (
        "name", "task", "feature_names", "class_labels", "target_names", "input", "output",
        "spec_sha256", "verified")}}
    model = onnx.load(str(runtime.path))
    with atomic_dir(out) as tmp:
        try:
            mlflow_onnx.save_model(model, str(tmp), signature=signature, metadata=metadata,
                                   onnx_execution_providers=["CPUExecutionProvider"],
                                   save_as_external_data=False,
                                   # given, so mlflow does not infer them by loading the
                                   # model in a subprocess (seconds)
                                   pip_requirements=mlflow_onnx.get_default_pip_requirements())
        except Exception as exc:  # mlflow raises MlflowException and others
            raise SpecnetError(f"mlflow could not save the model: {exc}") from None
        loaded = pyfunc.load_model(str(tmp))
        rows = check_rows(runtime)
        got = np.asarray(loaded.predict(rows)[art.output_name])
        want = runtime.run(rows)
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-6):
            raise SpecnetError(f"the MLflow model predicts differently from {runtime.path} "
                               f"(shapes {list(got.shape)} / {list(want.shape)}, max abs "
                               f"difference {_max_diff(got, want)})")
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    return out, files


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return math.inf
    return float(np.abs(a - b).max())
