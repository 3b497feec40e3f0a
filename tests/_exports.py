"""Small real models, trained for a few epochs and exported once per test session.

Shared by test_export, test_verify, test_runtime, test_predict and test_serve (each
wraps `exported` in a session fixture; the cache here makes the work happen once).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from specnet.spec.schema import Spec
from specnet.spec.validate import validate

if TYPE_CHECKING:
    from torch import nn

    from specnet.trainer import Run

SPECS = Path(__file__).resolve().parent.parent / "specs"
EPOCHS = {"iris": 15, "moons": 6, "diabetes": 8, "digits_cnn": 1}
"""Few epochs: enough for real, distinct weights; the tests check plumbing, not quality."""

PREBUILT = os.environ.get("SPECNET_TEST_EXPORTS")
"""A folder of exports made beforehand by `python tests/_exports.py FOLDER` (.ci/min-versions:
exported with the training stack, then served under the serving floors without training)."""

_runs: dict[str, Run] = {}
_exports: dict[str, Path] = {}


def spec_data(name: str, epochs: int | None = None, **export: Any) -> dict[str, Any]:
    """specs/<name>.yaml as data, shortened to a few epochs (no early stopping)."""
    data: dict[str, Any] = yaml.safe_load((SPECS / f"{name}.yaml").read_text("utf-8"))
    data.setdefault("training", {})
    data["training"]["epochs"] = epochs or EPOCHS[name]
    data["training"].pop("early_stopping", None)
    if export:
        data["export"] = {**data.get("export", {}), **export}
    return data


def fast_spec(name: str, epochs: int | None = None, **export: Any) -> Spec:
    """The validated, shortened spec of specs/<name>.yaml."""
    return validate(spec_data(name, epochs, **export))


def trained(name: str) -> Run:
    """A trained Run of specs/<name>.yaml (cached for the session)."""
    from specnet.trainer import train

    if name not in _runs:
        _runs[name] = train(fast_spec(name))
    return _runs[name]


def exported(name: str, factory: pytest.TempPathFactory) -> Path:
    """The export folder of specs/<name>.yaml (built once per session)."""
    if name not in _exports:
        folder = factory.getbasetemp() / "exports" / name
        if PREBUILT:  # a copy: tests may change the files next to the model
            shutil.copytree(Path(PREBUILT) / name, folder)
        else:
            from specnet.export import export_run

            export_run(trained(name), folder)
        _exports[name] = folder
    return _exports[name]


def torch_model(name: str, noise: float = 0.0) -> nn.Module:
    """The trained model of `name` as raw rows -> outputs (`inference_model`), every weight
    nudged by `noise` (seeded): with noise > 0, a model that disagrees with its export."""
    import copy

    import torch

    from specnet.export import inference_model

    run = trained(name)
    net = copy.deepcopy(run.model)  # a copy: the cached run stays intact
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(noise * torch.randn(p.shape, generator=gen))
    return inference_model(run.spec, net, run.prepared.x_scaler, run.prepared.y_scaler)


if __name__ == "__main__":
    # python tests/_exports.py FOLDER: every model above exported into FOLDER/<name>
    from specnet.export import export_run

    out = Path(sys.argv[1])
    for model in EPOCHS:
        export_run(trained(model), out / model)
        print(out / model)
