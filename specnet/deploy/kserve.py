"""KServe target: an `InferenceService` manifest and the model repository it serves.

Layout of the output folder:
  inferenceservice.yaml          serving.kserve.io/v1beta1 InferenceService: predictor.model
                                 with modelFormat onnx, protocolVersion v2, storageUri
  repository/<name>/...          a Triton model repository (see deploy.triton): KServe's
                                 runtime for onnx + v2 (kserve-tritonserver) serves it after
                                 the storage initializer copies storageUri to /mnt/models

Upload `repository/` to the storage behind --storage-uri, then `kubectl apply -f
inferenceservice.yaml`. The manifest is checked here against the CRD's fields and rules
(resource name a DNS-1035 label, modelFormat, protocolVersion in {v1, v2}); the tests also
load it with the KServe SDK's own model classes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecnetError
from ..io import atomic_dir, atomic_write_text
from ..runtime import Runtime
from ._layout import Layout, check_layout
from .triton import DEFAULT_MAX_BATCH_SIZE, MODEL_LAYOUT, check_name, write_model

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
MANIFEST = "inferenceservice.yaml"
REPOSITORY = "repository"
LAYOUT: Layout = {MANIFEST: None, REPOSITORY: {"*": MODEL_LAYOUT}}
_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_URI = re.compile(r"[a-z][a-z0-9+.-]*://\S+")


def service_name(name: str) -> str:
    """The InferenceService name for a model name: a DNS-1035 label (lowercase letters,
    digits and '-', starting with a letter, at most 63 characters, as Kubernetes needs)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not label or not label[0].isalpha():
        label = f"model-{label}".rstrip("-")
    return label[:63].rstrip("-")


def manifest(runtime: Runtime, storage_uri: str | None = None) -> dict[str, Any]:
    """The InferenceService object (plain data) for the model."""
    art = runtime.artifact
    model: dict[str, Any] = {"modelFormat": {"name": "onnx"}, "protocolVersion": "v2"}
    if storage_uri is not None:
        model["storageUri"] = storage_uri
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": service_name(art.name),
            "labels": {"app.kubernetes.io/name": service_name(art.name),
                       "app.kubernetes.io/managed-by": "specnet"},
            "annotations": {"specnet/model-name": art.name,
                            "specnet/spec-sha256": art.spec_sha256},
        },
        "spec": {"predictor": {"model": model}},
    }


def check_manifest(obj: Any) -> None:
    """SpecnetError unless `obj` is a v1beta1 InferenceService with an onnx / v2 model
    predictor, by the CRD's field names and rules."""
    problems: list[str] = []

    def get(path: str) -> Any:
        node = obj
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                problems.append(f"missing {path}")
                return None
            node = node[key]
        return node

    if get("apiVersion") not in (None, API_VERSION):
        problems.append(f"apiVersion is not {API_VERSION}")
    if get("kind") not in (None, KIND):
        problems.append(f"kind is not {KIND}")
    name = get("metadata.name")
    if name is not None and (not isinstance(name, str) or len(name) > 63
                             or not _DNS_1035.fullmatch(name)):
        problems.append(f"metadata.name {name!r} is not a DNS-1035 label")
    model = get("spec.predictor.model")
    if isinstance(model, dict):
        allowed = {"modelFormat", "protocolVersion", "storageUri", "runtime", "resources"}
        problems += [f"unknown field spec.predictor.model.{k}" for k in sorted(model)
                     if k not in allowed]
        if get("spec.predictor.model.modelFormat.name") not in (None, "onnx"):
            problems.append("spec.predictor.model.modelFormat.name is not 'onnx'")
        if get("spec.predictor.model.protocolVersion") not in (None, "v2"):
            problems.append("spec.predictor.model.protocolVersion is not 'v2'")
        uri = model.get("storageUri")
        if uri is not None and (not isinstance(uri, str) or not _URI.fullmatch(uri)):
            problems.append(f"spec.predictor.model.storageUri {uri!r} is not a URI "
                            "(like s3://bucket/path, gs://..., pvc://claim/path)")
    if problems:
        raise SpecnetError(f"{MANIFEST} is not a valid InferenceService:\n"
                           + "\n".join(f"  {p}" for p in problems))


def export_kserve(runtime: Runtime, out: Path, *, storage_uri: str | None = None,
                  max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> tuple[Path, list[str]]:
    """Write `out/inferenceservice.yaml` and `out/repository/<name>/` (replacing an earlier
    output of this target as a whole); the files written, relative to `out`."""
    name = check_name(runtime.artifact.name)
    if storage_uri is not None and not _URI.fullmatch(storage_uri):
        raise SpecnetError(f"--storage-uri {storage_uri!r} is not a URI: give where "
                           f"{out}/{REPOSITORY}/ will be uploaded, like s3://bucket/models")
    check_layout(out, LAYOUT, "a specnet KServe export")
    obj = manifest(runtime, storage_uri)
    text = yaml.safe_dump(obj, sort_keys=False)
    with atomic_dir(out) as tmp:
        (tmp / REPOSITORY / name).mkdir(parents=True)
        files = write_model(runtime, tmp / REPOSITORY / name, max_batch_size=max_batch_size)
        atomic_write_text(tmp / MANIFEST, text)
        check_manifest(yaml.safe_load((tmp / MANIFEST).read_text("utf-8")))
    return out, [MANIFEST, *(f"{REPOSITORY}/{name}/{f}" for f in files)]
