"""specnet.shapes: torch-free shape inference, the summary table, and its limits."""

from __future__ import annotations

from typing import Any

import pytest

from specnet.layers import LAYERS, expand_layer
from specnet.shapes import (
    MAX_LAYERS,
    LocatedShapeError,
    Summary,
    expanded_size,
    infer,
    label,
)
from specnet.spec.validate import check, validate


def _layers(*specs: Any) -> list[Any]:
    return [LAYERS[expand_layer(s)["type"]].model_validate(expand_layer(s)) for s in specs]


CNN = {"data": {"source": "digits", "as_image": True}, "model": [
    {"conv2d": {"out_channels": 4, "padding": "same"}}, "batchnorm",
    {"block": {"layers": [{"conv2d": 4}, "relu"], "repeat": 2}},
    "flatten", {"dropout": 0.5}, {"linear": "auto"}]}


def test_summary_rows_totals_and_table() -> None:
    summary = check(validate(CNN)).summary
    assert summary.input_shape == (1, 8, 8)
    assert summary.output_shape == (10,)
    assert [(r.module, r.shape, r.params, r.buffers) for r in summary.rows] == [
        ("0", (4, 8, 8), 4 * 9 + 4, 0),
        ("1", (4, 8, 8), 8, 9),
        ("2", (4, 4, 4), 2 * (4 * 4 * 9 + 4), 0),
        ("2.0", (4, 6, 6), 148, 0),
        ("2.1", (4, 6, 6), 0, 0),
        ("2.2", (4, 4, 4), 148, 0),
        ("2.3", (4, 4, 4), 0, 0),
        ("3", (64,), 0, 0),
        ("4", (64,), 0, 0),
        ("5", (10,), 650, 0),
    ]
    assert summary.trainable == 40 + 8 + 296 + 650
    assert summary.non_trainable == 9
    assert summary.size_bytes == 4 * (994 + 9)
    assert summary.table() == """\
#    layer                    output shape  params
--------------------------------------------------
     input                    [1, 8, 8]
0    conv2d(4, padding=same)  [4, 8, 8]         40
1    batchnorm                [4, 8, 8]          8
2    block x2                 [4, 4, 4]        296
2.0    conv2d(4)              [4, 6, 6]        148
2.1    relu                   [4, 6, 6]          0
2.2    conv2d(4)              [4, 4, 4]        148
2.3    relu                   [4, 4, 4]          0
3    flatten                  [64]               0
4    dropout(0.5)             [64]               0
5    linear(10)               [10]             650
--------------------------------------------------
trainable params: 994
non-trainable:    9
size (float32):   3.9 KiB"""


def test_size_switches_to_mib() -> None:
    summary = check(validate({"data": "digits", "model": [{"linear": 8192}, {"linear": 64},
                                                         {"linear": "auto"}]})).summary
    assert summary.table().endswith(f"size (float32):   {summary.size_bytes / 1024**2:.2f} MiB")


@pytest.mark.parametrize(("layer", "expected"), [
    ("relu", "relu"),
    ({"linear": 16}, "linear(16)"),
    ({"linear": {"units": 16, "bias": False}}, "linear(16, bias=False)"),
    ({"dropout": 0.2}, "dropout(0.2)"),
    ("dropout", "dropout(0.5)"),
    ({"conv2d": {"out_channels": 8, "stride": 2}}, "conv2d(8, stride=2)"),
    ({"reshape": [1, 8, 8]}, "reshape([1, 8, 8])"),
    ({"maxpool2d": [2, 3]}, "maxpool2d([2, 3])"),
    ({"prelu": True}, "prelu(per_channel=True)"),
    ({"gelu": "tanh"}, "gelu(approximate=tanh)"),
    ({"block": {"layers": ["relu"], "repeat": 4}}, "block x4"),
], ids=lambda v: str(v))
def test_label(layer: Any, expected: str) -> None:
    assert label(_layers(layer)[0]) == expected


def test_located_error_in_a_nested_block_names_its_path_and_input() -> None:
    layers = _layers({"block": {"layers": [{"linear": 4}, {"block": [{"conv1d": 2}]}]}})
    with pytest.raises(LocatedShapeError) as exc:
        infer(layers, (3,))
    assert exc.value.path == ("model", 0, "layers", 1, "layers", 0)
    assert exc.value.inp == (4,)
    assert str(exc.value).startswith("conv1d expects [C, L] (channels, length), got [4]")


def test_block_expansion_is_bounded_without_expanding() -> None:
    inner = {"block": {"layers": ["relu"] * 10, "repeat": 1000}}
    layers = _layers({"block": {"layers": [inner], "repeat": 1000}})
    assert expanded_size(layers) == 10_000_000
    with pytest.raises(LocatedShapeError, match=f"the limit is {MAX_LAYERS:,}"):
        infer(layers, (4,))
    at_limit = _layers({"block": {"layers": ["relu"] * (MAX_LAYERS // 1000), "repeat": 1000}})
    assert len(infer(at_limit, (4,))) == MAX_LAYERS + 1


def test_empty_summary_has_the_input_as_output() -> None:
    assert Summary((4,), []).output_shape == (4,)


def test_shapes_does_not_need_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; from specnet.shapes import infer; from specnet.layers import Linear; "
            "infer([Linear(units=3)], (4,)); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
