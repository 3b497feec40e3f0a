"""Deployment targets: hand an exported model to Triton, KServe or MLflow as they expect it.

Each target writes its folder atomically (refusing to replace a folder holding anything it
did not write) and checks the result with the platform's own parser or loader:

  triton   <dir>/<name>/config.pbtxt + <dir>/<name>/1/model.onnx  (deploy.triton)
  kserve   <dir>/inferenceservice.yaml + <dir>/repository/<name>/  (deploy.kserve)
  mlflow   <dir>/ an MLflow model with the onnx flavor              (deploy.mlflow)

Torch-free: the model is read with onnxruntime (specnet.runtime).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..runtime import Runtime

TARGETS = ("triton", "kserve", "mlflow")


@dataclass(frozen=True)
class Deployed:
    """What `export_target` wrote: the target, its folder, its files, how it was checked,
    and why the model does not count as verified (None when it does)."""

    target: str
    folder: Path
    files: list[str]
    checked: str
    warning: str | None = None


CHECKS = {
    "triton": "config.pbtxt parsed with model_config.proto and matched against model.onnx",
    "kserve": "manifest checked against the InferenceService v1beta1 fields; model "
              "repository as for triton",
    "mlflow": "loaded with mlflow.pyfunc.load_model; predictions equal onnxruntime's",
}


def export_target(model: str | Path, target: str, out: str | Path, *,
                  max_batch_size: int | None = None,
                  storage_uri: str | None = None) -> Deployed:
    """Write the exported `model` (folder or model.onnx) for `target` into `out`.

    max_batch_size: Triton's max_batch_size (triton, kserve). storage_uri: where the KServe
    model repository is uploaded (kserve).
    """
    from .triton import DEFAULT_MAX_BATCH_SIZE

    runtime = Runtime(model, threads=1)
    out = Path(out)
    batch = max_batch_size or DEFAULT_MAX_BATCH_SIZE
    if target == "triton":
        from .triton import export_triton

        folder, files = export_triton(runtime, out, max_batch_size=batch)
    elif target == "kserve":
        from .kserve import export_kserve

        folder, files = export_kserve(runtime, out, storage_uri=storage_uri,
                                      max_batch_size=batch)
    elif target == "mlflow":
        from .mlflow import export_mlflow

        folder, files = export_mlflow(runtime, out)
    else:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    return Deployed(target, folder, files, CHECKS[target],
                    runtime.artifact.verification_problem())
