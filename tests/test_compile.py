"""specnet.compile: the network matches the summary; seeds and init options take effect."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from specnet.compile import compile_spec
from specnet.errors import SpecError
from specnet.spec.validate import load_spec, validate

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
FAN = 256  # wide enough that weight statistics are tight


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_spec_compiles_to_the_summary(path: Path) -> None:
    checked = load_spec(path)
    net = compile_spec(checked.spec)
    assert isinstance(net, torch.nn.Sequential)
    assert len(net) == len(checked.spec.model)
    assert sum(p.numel() for p in net.parameters()) == checked.summary.trainable
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == \
        checked.summary.trainable
    assert sum(b.numel() for b in net.buffers()) == checked.summary.non_trainable
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(5, *checked.summary.input_shape))
    assert tuple(out.shape) == (5, *checked.summary.output_shape)


def _spec(layers: list[Any], seed: int = 0, **extra: Any) -> Any:
    return validate({"task": "regression", "seed": seed,
                     "data": {"source": "regression", "n_features": FAN, "n_informative": 1},
                     "model": [*layers, {"linear": 1}], **extra})


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_same_seed_same_weights_whatever_ran_before() -> None:
    spec = load_spec(SPECS[0]).spec
    first = _state(compile_spec(spec))
    torch.manual_seed(123)
    torch.randn(1000)  # move the global generator on
    before = torch.get_rng_state()
    second = _state(compile_spec(spec))
    assert torch.equal(torch.get_rng_state(), before)  # compiling leaves it alone
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_different_seed_different_weights() -> None:
    a = _state(compile_spec(_spec([{"linear": 8}], seed=0)))
    b = _state(compile_spec(_spec([{"linear": 8}], seed=1)))
    assert not torch.equal(a["0.weight"], b["0.weight"])


# ---------------------------------------------------------------- initialisation


def _std(name: str) -> float:
    """Expected standard deviation of a (FAN, FAN) weight under each init."""
    fan_in = fan_out = FAN
    return {
        "default": 1 / math.sqrt(3 * fan_in),  # torch: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        "xavier": math.sqrt(2 / (fan_in + fan_out)),
        "xavier_uniform": math.sqrt(2 / (fan_in + fan_out)),
        "xavier_normal": math.sqrt(2 / (fan_in + fan_out)),
        "kaiming": math.sqrt(2 / fan_in),
        "kaiming_uniform": math.sqrt(2 / fan_in),
        "kaiming_normal": math.sqrt(2 / fan_in),
        "orthogonal": 1 / math.sqrt(fan_in),
        "normal": 0.01,
    }[name]


INITS = ["default", "xavier", "xavier_uniform", "xavier_normal", "kaiming", "kaiming_uniform",
         "kaiming_normal", "orthogonal", "normal"]


@pytest.mark.parametrize("init", INITS)
def test_weight_init_per_layer(init: str) -> None:
    net = compile_spec(_spec([{"type": "linear", "units": FAN, "init": init}]))
    w = net[0].weight.detach()
    assert abs(w.mean().item()) < 0.1 * _std(init)
    assert w.std().item() == pytest.approx(_std(init), rel=0.03)
    if init in ("default", "xavier", "xavier_uniform", "kaiming", "kaiming_uniform"):
        bound = math.sqrt(3) * _std(init)
        assert w.abs().max().item() <= bound
        assert w.abs().max().item() > 0.99 * bound
    if init == "orthogonal":
        assert torch.allclose(w @ w.T, torch.eye(FAN), atol=1e-4)


def test_zeros_and_bias_zeros() -> None:
    net = compile_spec(_spec([{"type": "linear", "units": 16, "init": "zeros"},
                              {"type": "linear", "units": 16, "bias_init": "zeros"},
                              {"linear": 16}]))
    assert torch.count_nonzero(net[0].weight) == 0
    assert torch.count_nonzero(net[0].bias) > 0  # bias keeps torch's default
    assert torch.count_nonzero(net[1].bias) == 0
    assert torch.count_nonzero(net[1].weight) == 16 * 16
    assert torch.count_nonzero(net[2].bias) == 16


def test_global_init_applies_and_layers_override_it() -> None:
    spec = _spec([{"linear": FAN}, {"type": "linear", "units": FAN, "init": "xavier_normal"}],
                 init={"weight": "zeros", "bias": "zeros"})
    net = compile_spec(spec)
    assert torch.count_nonzero(net[0].weight) == 0
    assert torch.count_nonzero(net[0].bias) == 0
    assert net[1].weight.std().item() == pytest.approx(_std("xavier_normal"), rel=0.03)
    assert torch.count_nonzero(net[1].bias) == 0  # global bias init still applies
    assert torch.count_nonzero(net[2].weight) == 0  # the output layer follows the global init


def test_init_reaches_conv_layers_and_blocks() -> None:
    spec = validate({"data": {"source": "digits", "as_image": True}, "init": {"bias": "zeros"},
                     "model": [{"conv2d": {"out_channels": 4, "init": "zeros"}},
                               {"block": {"layers": [{"conv2d": {"out_channels": 4,
                                                                 "init": "kaiming_normal"}}],
                                          "repeat": 2}},
                               "flatten", {"linear": "auto"}]})
    net = compile_spec(spec)
    assert torch.count_nonzero(net[0].weight) == 0
    assert torch.count_nonzero(net[0].bias) == 0
    block = net[1]
    assert torch.count_nonzero(block[0].bias) == torch.count_nonzero(block[1].bias) == 0
    assert not torch.equal(block[0].weight, block[1].weight)


def test_batchnorm_and_prelu_are_not_touched_by_init() -> None:
    spec = _spec([{"linear": 8}, "batchnorm", "prelu"], init={"weight": "zeros"})
    net = compile_spec(spec)
    assert torch.equal(net[1].weight, torch.ones(8))
    assert torch.equal(net[2].weight, torch.full((1,), 0.25))


def test_compile_rejects_a_shape_mismatch_with_its_path() -> None:
    spec = validate({"data": "iris", "model": [{"linear": 8}, {"conv2d": 4}, {"linear": 3}]})
    with pytest.raises(SpecError) as exc:
        compile_spec(spec)
    assert str(exc.value).startswith("<spec>: model[1]: conv2d expects [C, H, W]")


def test_auto_width_comes_from_the_data() -> None:
    net = compile_spec(validate({"data": "iris", "model": [{"linear": "auto"}]}))
    assert net[0].out_features == 3


@pytest.mark.parametrize("units", [10**12, 10**26], ids=["beyond-memory", "beyond-int64"])
def test_a_model_too_large_to_build_is_a_spec_error(units: int) -> None:
    spec = validate({"data": "iris", "model": [{"linear": units}, {"linear": "auto"}]})
    with pytest.raises(SpecError, match=r"^<spec>: model: the model holds [\d,]+ parameters "
                                        r"\([\d.]+ GiB as float32\).*; make the layers smaller"):
        compile_spec(spec)
