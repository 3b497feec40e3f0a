"""specnet.spec.schema and the JSON Schema: every field typed, defaulted and described; the
committed schema is current; every shipped spec validates against it."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from specnet.data.sources import SOURCES
from specnet.layers import LAYERS
from specnet.spec.resolve import dump_resolved, json_schema
from specnet.spec.schema import LOSSES, METRICS, OPTIMIZERS, SCHEDULES, Spec
from specnet.spec.validate import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SCHEMA_FILE = ROOT / "specs" / "specnet.schema.json"

# Fields that have no default on purpose: the spec cannot mean anything without them.
REQUIRED = {
    "Spec.data", "Spec.model", "Linear.units", "Conv1d.out_channels", "Conv2d.out_channels",
    "Reshape.shape", "Unflatten.shape", "Block.layers", "Csv.path", "Csv.target", "Parquet.path", "Parquet.target", "Npz.path",
    "Npy.path", "MnistIdx.images", "MnistIdx.labels", "InMemory.shape", "LocalSGD.average_every",
}


def _models_in(ann: Any) -> list[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in typing.get_args(ann) for m in _models_in(a)]


def _all_models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for info in model.model_fields.values():
            for sub in _models_in(info.annotation):
                walk(sub)

    walk(Spec)
    return seen


MODELS = _all_models()
FIELDS = [(m, name) for m in MODELS for name in m.model_fields]


def test_walk_reaches_every_registry_entry() -> None:
    for registry in (LAYERS, LOSSES, OPTIMIZERS, SCHEDULES, SOURCES):
        assert set(registry.values()) <= set(MODELS)


@pytest.mark.parametrize(("model", "name"), FIELDS,
                         ids=[f"{m.__name__}.{n}" for m, n in FIELDS])
def test_every_field_is_described_typed_and_defaulted(model: type[BaseModel], name: str) -> None:
    info = model.model_fields[name]
    assert info.description, f"{model.__name__}.{name} has no description"
    assert len(info.description.split(". ")) <= 3 and len(info.description) <= 200
    assert info.annotation is not Any
    qualified = f"{model.__name__}.{name}"
    assert info.is_required() == (qualified in REQUIRED)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_every_model_has_a_docstring(model: type[BaseModel]) -> None:
    assert model.__doc__ and model.__doc__.strip()


def test_every_property_in_the_json_schema_has_a_description() -> None:
    schema = json_schema()
    missing = [f"{name}.{prop}" for name, d in schema["$defs"].items()
               for prop, body in d.get("properties", {}).items() if "description" not in body]
    missing += [p for p, body in schema["properties"].items() if "description" not in body]
    assert missing == []


def test_registries_hold_what_the_language_promises() -> None:
    assert set(LOSSES) >= {"mse", "mae", "huber", "cross_entropy", "bce", "hinge"}
    assert set(OPTIMIZERS) >= {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw",
                               "adagrad"}
    assert set(LAYERS) >= {
        "linear", "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "gelu",
        "elu", "selu", "silu", "softplus", "prelu", "dropout", "batchnorm", "layernorm",
        "flatten", "unflatten", "reshape", "conv1d", "conv2d", "maxpool2d", "avgpool2d",
        "adaptive_avgpool2d", "identity", "block"}
    for registry in (LAYERS, LOSSES, OPTIMIZERS, SCHEDULES, SOURCES):
        assert type(registry) is dict and all(isinstance(k, str) for k in registry)
    assert isinstance(METRICS, tuple)


# ---------------------------------------------------------------- JSON Schema for editors


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_current() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == json_schema(), (
        "specs/specnet.schema.json is stale: run `specnet schema -o specs/specnet.schema.json`")
    assert SCHEMA_FILE.read_text() == json.dumps(json_schema(), indent=2) + "\n"


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_spec_validates_against_the_schema(
        path: Path, validator: jsonschema.Draft202012Validator) -> None:
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=specnet.schema.json\n")
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(text))]
    assert errors == []
    resolved = yaml.safe_load(dump_resolved(load_spec(path).spec))
    assert [e.message for e in validator.iter_errors(resolved)] == []


@pytest.mark.parametrize("doc", [
    {"data": "iris", "model": ["relu2"]},
    {"data": "iris", "model": [{"linear": 16, "bias": False}]},
    {"data": "iris", "model": [{"linear": {"units": 16, "bais": False}}]},
    {"data": "iris", "model": [{"linear": 0}]},
    {"data": "iris", "model": [{"type": "linear"}]},
    {"data": "iris", "model": ["relu"], "optimiser": "adam"},
    {"data": "iris", "model": ["relu"], "loss": "crossentropy"},
    {"data": {"source": "iris", "normalise": "standard"}, "model": ["relu"]},
    {"data": "iris", "model": ["relu"], "optimizer": {"type": "adam", "lr": -1}},
    {"model": ["relu"]},
], ids=["unknown-layer", "two-keys", "unknown-layer-key", "units-zero", "units-missing",
        "unknown-top-key", "unknown-loss", "unknown-data-key", "negative-lr", "no-data"])
def test_schema_rejects_what_validation_rejects(
        doc: dict[str, Any], validator: jsonschema.Draft202012Validator) -> None:
    assert not validator.is_valid(doc)


@pytest.mark.parametrize("doc", [
    {"data": "iris", "model": ["relu", {"linear": 16}, {"dropout": 0.2}, {"linear": "auto"}]},
    {"data": {"digits": {"as_image": True}}, "model": [{"conv2d": 8}, "flatten",
                                                        {"linear": "auto"}]},
    {"data": "iris", "model": [{"type": "linear", "units": 3, "init": "kaiming"}],
     "loss": {"huber": 0.5}, "optimizer": "sgd", "training": {"schedule": {"step": 5}}},
], ids=["shorthand-layers", "shorthand-source", "full-form"])
def test_schema_accepts_shorthand_and_full_form(
        doc: dict[str, Any], validator: jsonschema.Draft202012Validator) -> None:
    assert [e.message for e in validator.iter_errors(doc)] == []
