"""Mixed precision: bf16 autocast trains on the CPU, fp16 asks for a GPU, fp32 is unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from specnet.errors import SpecError, TrainingError
from specnet.precision import Precision
from specnet.spec.validate import validate
from specnet.trainer import train

_SPEC: dict[str, Any] = {
    "name": "amp", "seed": 0,
    "data": {"source": "digits", "as_image": True, "split": {"validation": 0.2, "test": 0.2}},
    "model": [{"conv2d": {"out_channels": 8, "kernel_size": 3, "padding": "same"}}, "relu",
              {"maxpool2d": 2}, "flatten", {"linear": 32}, "relu", {"linear": "auto"}],
    "optimizer": {"type": "adam", "lr": 0.003},
    "training": {"epochs": 4, "batch_size": 64, "metrics": ["accuracy"]},
}


def _with(precision: str) -> Any:
    return validate({**_SPEC, "training": {**_SPEC["training"], "precision": precision}})


def test_bf16_on_the_cpu_trains_in_bfloat16_and_keeps_fp32_weights(tmp_path: Path) -> None:
    bf16 = train(_with("bf16"), tmp_path / "r")
    fp32 = train(_with("fp32"))
    assert bf16.metrics["precision"] == "bf16"
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    assert bf16.metrics["test"]["accuracy"] > 0.8
    assert abs(bf16.metrics["test"]["accuracy"] - fp32.metrics["test"]["accuracy"]) < 0.05
    # It really ran in bfloat16: the weights differ from the fp32 run's.
    a, b = bf16.model.state_dict(), fp32.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_bf16_is_deterministic_on_the_cpu() -> None:
    a = train(_with("bf16"), threads=1).model.state_dict()
    b = train(_with("bf16"), threads=1).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fp16_on_the_cpu_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match=r"precision: fp16 needs a CUDA device.*bf16"):
        train(_with("fp16"))


def test_fp32_needs_no_scaler_and_has_no_autocast() -> None:
    amp = Precision("fp32", torch.device("cpu"))
    assert amp.scaler is None and amp.state_dict() == {}
    with amp.autocast():
        assert not torch.is_autocast_enabled("cpu")
    with Precision("bf16", torch.device("cpu")).autocast():
        assert torch.is_autocast_enabled("cpu")


def test_an_unknown_precision_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"training\.precision"):
        _with("fp8")
