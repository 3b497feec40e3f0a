"""specnet.layers: a conformance test over every registered layer.

Each case validates inside a whole spec, and its torch-free shape rule and parameter count
must agree with the real torch module on a random input. A layer added to LAYERS without a
case here fails `test_every_layer_has_a_case`.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from specnet.compile import compile_spec
from specnet.layers import LAYERS, Block, Layer, ShapeMismatch, expand_layer
from specnet.spec.validate import check, validate

Shape = tuple[int, ...]

# (id, layer as written in a spec, input shape without the batch axis)
CASES: list[tuple[str, Any, Shape]] = [
    ("linear", {"linear": 5}, (4,)),
    ("linear-no-bias", {"linear": {"units": 5, "bias": False}}, (4,)),
    ("linear-init", {"type": "linear", "units": 3, "init": "orthogonal", "bias_init": "zeros"},
     (6,)),
    ("relu", "relu", (4,)),
    ("relu-image", "relu", (3, 5, 5)),
    ("leaky_relu", {"leaky_relu": 0.2}, (4,)),
    ("sigmoid", "sigmoid", (4,)),
    ("tanh", "tanh", (2, 6)),
    ("softmax", "softmax", (4,)),
    ("softmax-dim1-channels", {"softmax": 1}, (3, 5)),
    ("softmax-dim2", {"softmax": {"dim": 2}}, (3, 5)),
    ("softmax-dim-negative", {"softmax": -2}, (3, 4, 4)),
    ("log_softmax", {"log_softmax": 1}, (4,)),
    ("log_softmax-last", "log_softmax", (2, 3, 4)),
    ("gelu", "gelu", (4,)),
    ("gelu-tanh", {"gelu": "tanh"}, (4,)),
    ("elu", {"elu": 0.5}, (4,)),
    ("selu", "selu", (4,)),
    ("silu", "silu", (4,)),
    ("softplus", {"softplus": {"beta": 2, "threshold": 10}}, (4,)),
    ("prelu", "prelu", (4,)),
    ("prelu-per-channel-features", {"prelu": True}, (4,)),
    ("prelu-per-channel-image", {"prelu": {"per_channel": True, "init": 0.1}}, (3, 5, 5)),
    ("dropout", {"dropout": 0.3}, (4,)),
    ("batchnorm-1d-features", "batchnorm", (4,)),
    ("batchnorm-1d-sequence", "batchnorm", (3, 7)),
    ("batchnorm-2d", "batchnorm", (3, 5, 5)),
    ("batchnorm-no-affine", {"batchnorm": {"affine": False, "momentum": 0.2}}, (3, 5, 5)),
    ("layernorm-last", "layernorm", (3, 5, 6)),
    ("layernorm-all", {"layernorm": {"over": "all"}}, (3, 5, 6)),
    ("layernorm-no-affine", {"layernorm": {"elementwise_affine": False}}, (4,)),
    ("flatten", "flatten", (3, 4, 4)),
    ("reshape-to-image", {"reshape": [3, 2, 2]}, (12,)),
    ("reshape-image-to-sequence", {"reshape": [3, 4]}, (3, 2, 2)),
    ("unflatten", {"unflatten": [1, 8, 8]}, (64,)),
    ("conv1d", {"conv1d": 4}, (2, 10)),
    ("conv1d-same", {"conv1d": {"out_channels": 4, "kernel_size": 4, "padding": "same"}},
     (2, 10)),
    ("conv1d-same-odd-kernel", {"conv1d": {"out_channels": 4, "kernel_size": 5,
                                           "padding": "same", "dilation": 2}}, (2, 10)),
    ("conv1d-valid", {"conv1d": {"out_channels": 4, "kernel_size": 5, "padding": "valid"}},
     (2, 10)),
    ("conv1d-stride", {"conv1d": {"out_channels": 4, "kernel_size": 3, "stride": 2,
                                  "padding": 1}}, (2, 11)),
    ("conv1d-dilation", {"conv1d": {"out_channels": 4, "kernel_size": 3, "dilation": 2}},
     (2, 12)),
    ("conv1d-groups", {"conv1d": {"out_channels": 6, "groups": 2, "bias": False}}, (4, 9)),
    ("conv2d", {"conv2d": 4}, (1, 8, 8)),
    ("conv2d-same-even-kernel", {"conv2d": {"out_channels": 4, "kernel_size": 4,
                                            "padding": "same"}}, (2, 7, 7)),
    ("conv2d-valid", {"conv2d": {"out_channels": 4, "padding": "valid"}}, (2, 7, 7)),
    ("conv2d-pairs", {"conv2d": {"out_channels": 3, "kernel_size": [3, 5], "stride": [2, 1],
                                 "padding": [1, 2], "dilation": [1, 2]}}, (2, 9, 11)),
    ("conv2d-stride-dilation", {"conv2d": {"out_channels": 4, "kernel_size": 3, "stride": 2,
                                           "dilation": 2}}, (1, 12, 12)),
    ("conv2d-groups", {"conv2d": {"out_channels": 6, "groups": 3}}, (3, 6, 6)),
    ("maxpool1d", {"maxpool1d": 2}, (2, 9)),
    ("maxpool1d-stride-padding", {"maxpool1d": {"kernel_size": 3, "stride": 2, "padding": 1}},
     (2, 10)),
    ("avgpool1d", {"avgpool1d": 3}, (2, 10)),
    ("maxpool2d", {"maxpool2d": 2}, (3, 8, 8)),
    ("maxpool2d-stride-padding", {"maxpool2d": {"kernel_size": 3, "stride": 2, "padding": 1}},
     (3, 9, 9)),
    ("maxpool2d-pair", {"maxpool2d": [2, 3]}, (3, 8, 9)),
    ("avgpool2d", {"avgpool2d": 2}, (3, 7, 7)),
    ("avgpool2d-padding", {"avgpool2d": {"kernel_size": 2, "padding": 1}}, (3, 7, 7)),
    ("adaptive_avgpool1d", {"adaptive_avgpool1d": 4}, (2, 10)),
    ("adaptive_avgpool2d", "adaptive_avgpool2d", (3, 7, 7)),
    ("adaptive_avgpool2d-pair", {"adaptive_avgpool2d": [2, 3]}, (3, 7, 7)),
    ("identity", "identity", (3, 4)),
    ("block", {"block": [{"linear": 4}, "relu"]}, (6,)),
    ("block-repeat", {"block": {"layers": [{"linear": 4}, "tanh", {"dropout": 0.1}],
                                "repeat": 3}}, (4,)),
    ("block-conv-batchnorm", {"block": {"layers": [{"conv2d": {"out_channels": 2,
                                                               "padding": "same"}},
                                                   "batchnorm", "relu"], "repeat": 2}},
     (2, 6, 6)),
    ("block-nested", {"block": {"layers": [{"block": {"layers": [{"linear": 3}],
                                                      "repeat": 2}}, "relu"], "repeat": 2}},
     (3,)),
]


# torch pads even kernels asymmetrically for 'same' and warns that it copies the input
_EVEN_SAME = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"
                                        ":UserWarning")
MARKS = {"conv1d-same": _EVEN_SAME, "conv2d-same-even-kernel": _EVEN_SAME}
PARAMS = [pytest.param(layer, inp, id=name, marks=MARKS.get(name, ()))
          for name, layer, inp in CASES]


def _type(layer: Any) -> str:
    full = expand_layer(layer)
    return str(full["type"])


def _spec(layer: Any, inp: Shape, seed: int = 0) -> dict[str, Any]:
    """A whole spec around `layer`: flat regression data reshaped to `inp` first."""
    n = math.prod(inp)
    model: list[Any] = [{"reshape": list(inp)}] if len(inp) > 1 else []
    return {"task": "regression", "seed": seed,
            "data": {"source": "regression", "n_features": n, "n_informative": 1},
            "model": [*model, layer, "flatten", {"linear": 1}]}


def test_every_layer_has_a_case() -> None:
    assert {_type(layer) for _, layer, _ in CASES} == set(LAYERS)


@pytest.mark.parametrize(("layer", "inp"), PARAMS)
def test_layer_conformance(layer: Any, inp: Shape) -> None:
    # 1. it validates, in shorthand and in a whole spec, and its shape rule runs
    model = LAYERS[_type(layer)].model_validate(expand_layer(layer))
    checked = check(validate(_spec(layer, inp)))
    index = 1 if len(inp) > 1 else 0
    row = next(r for r in checked.summary.rows if r.path == ("model", index))
    out = model.out_shape(inp)
    assert row.shape == out
    params, buffers = model.param_count(inp)
    assert (row.params, row.buffers) == (params, buffers)

    # 2. it compiles, and the module agrees with the shape rule and the counts
    net = compile_spec(checked.spec)
    module = net[index]
    assert sum(p.numel() for p in module.parameters()) == params
    assert sum(b.numel() for b in module.buffers()) == buffers
    module.eval()
    with torch.no_grad():
        y = module(torch.randn(2, *inp))
    assert tuple(y.shape) == (2, *out)
    assert torch.isfinite(y).all()
    if not isinstance(model, Block):
        direct = model.build(inp)
        assert type(direct) is type(module)
        assert sum(p.numel() for p in direct.parameters()) == params

    # 3. the whole network runs, and its counts equal the summary's
    with torch.no_grad():
        assert tuple(net(torch.randn(3, math.prod(inp))).shape) == (3, 1)
    assert sum(p.numel() for p in net.parameters()) == checked.summary.trainable
    assert sum(b.numel() for b in net.buffers()) == checked.summary.non_trainable


def test_batchnorm_picks_1d_or_2d_from_the_shape() -> None:
    bn = LAYERS["batchnorm"]()
    assert type(bn.build((4,))) is torch.nn.BatchNorm1d
    assert type(bn.build((3, 7))) is torch.nn.BatchNorm1d
    assert type(bn.build((3, 5, 5))) is torch.nn.BatchNorm2d


def test_block_repeats_have_their_own_weights() -> None:
    spec = validate(_spec({"block": {"layers": [{"linear": 4}], "repeat": 2}}, (4,)))
    block = compile_spec(spec)[0]
    assert isinstance(block, torch.nn.Sequential) and len(block) == 2
    assert not torch.equal(block[0].weight, block[1].weight)


# ---------------------------------------------------------------- shape rules that refuse

MISMATCHES: list[tuple[str, Any, Shape, str]] = [
    ("linear-on-image", {"linear": 3}, (2, 4, 4),
     "linear expects [features] (flat features), got [2, 4, 4]; add `- flatten` before it"),
    ("conv1d-on-features", {"conv1d": 3}, (8,),
     "conv1d expects [C, L] (channels, length), got [8]; add `- reshape: [...]` before it"),
    ("conv2d-on-sequence", {"conv2d": 3}, (2, 8),
     "conv2d expects [C, H, W] (channels, height, width), got [2, 8]"),
    ("conv-kernel-too-big", {"conv1d": {"out_channels": 2, "kernel_size": 5}}, (1, 4),
     "kernel [5] does not fit input [1, 4] (output would be [2, 0]); use a smaller kernel or "
     "add padding"),
    ("conv-groups", {"conv2d": {"out_channels": 3, "groups": 2}}, (2, 5, 5),
     "groups=2 must divide in_channels=2 and out_channels=3"),
    ("conv-same-stride", {"conv1d": {"out_channels": 2, "padding": "same", "stride": 2}},
     (1, 8), "padding 'same' needs stride 1; give a number instead"),
    ("pool-on-features", {"maxpool2d": 2}, (4,),
     "maxpool2d expects [C, H, W] (channels, height, width), got [4]"),
    ("pool1d-on-image", {"avgpool1d": 2}, (1, 4, 4),
     "avgpool1d expects [C, L] (channels, length), got [1, 4, 4]"),
    ("pool-padding", {"maxpool2d": {"kernel_size": 2, "padding": 2}}, (1, 8, 8),
     "padding [2, 2] must be at most half the window [2, 2]"),
    ("pool-window", {"avgpool2d": 5}, (1, 4, 4),
     "window [5, 5] does not fit input [1, 4, 4]; use a smaller window"),
    ("adaptive-on-features", "adaptive_avgpool2d", (4,),
     "adaptive_avgpool2d expects [C, H, W] (channels, height, width), got [4]"),
    ("adaptive1d-on-image", "adaptive_avgpool1d", (1, 4, 4),
     "adaptive_avgpool1d expects [C, L] (channels, length), got [1, 4, 4]"),
    ("reshape-count", {"reshape": [2, 3]}, (5,),
     "cannot reshape [5] (5 values) to [2, 3] (6 values)"),
    ("softmax-dim-range", {"softmax": 3}, (4,),
     "softmax dim 3 is out of range for input [4] (batch axis included: 2 axes, so dim is "
     "1..1 or -1..-1)"),
    ("softmax-batch-axis", {"log_softmax": -3}, (2, 4),
     "log_softmax dim -3 is the batch axis; use dim 1 (or -1) to normalise over the features"),
    ("units-auto-unsized", {"linear": "auto"}, (4,),
     "`units: auto` could not be sized: the data source does not say how many classes or "
     "targets it has; give a number"),
]


@pytest.mark.parametrize(("layer", "inp", "message"), [c[1:] for c in MISMATCHES],
                         ids=[c[0] for c in MISMATCHES])
def test_shape_rule_refuses_with_expected_and_got(layer: Any, inp: Shape, message: str) -> None:
    model: Layer = LAYERS[_type(layer)].model_validate(expand_layer(layer))
    with pytest.raises(ShapeMismatch) as exc:
        model.out_shape(inp)
    assert str(exc.value) == message


def test_same_padding_with_an_odd_kernel_matches_torch() -> None:
    layer = LAYERS["conv2d"].model_validate({"type": "conv2d", "out_channels": 3,
                                             "kernel_size": [3, 5], "padding": "same",
                                             "dilation": [2, 1]})
    ours = layer.build((2, 9, 9))
    ref = torch.nn.Conv2d(2, 3, (3, 5), padding="same", dilation=(2, 1))
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 9, 9)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x))
