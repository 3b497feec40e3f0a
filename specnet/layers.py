"""The layer registry: spec name -> (fields, shape rule, torch builder).

Each layer is one pydantic model with a `shape` rule (torch-free, run before any tensor
exists) and a `build` method that makes the torch module. Adding a layer means adding
one class and its entry in `LAYERS`.

Shapes never include the batch axis: `(features,)`, `(channels, length)` or
`(channels, height, width)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, field_validator

from .spec.base import BiasInit, InitName, Shape, Tagged

if TYPE_CHECKING:
    from torch import nn


class ShapeMismatch(ValueError):
    """A layer cannot take the shape it is given; the message says what it expected."""


def fmt_shape(shape: Sequence[int]) -> str:
    """(1, 8, 8) -> '[1, 8, 8]'."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _need_rank(layer: str, shape: Shape, ranks: dict[int, str], fix: str = "") -> None:
    if len(shape) not in ranks:
        want = " or ".join(f"{_fmt_rank(r)} ({d})" for r, d in ranks.items())
        raise ShapeMismatch(f"{layer} expects {want}, got {fmt_shape(shape)}{fix}")


def _fmt_rank(rank: int) -> str:
    return "[" + ", ".join(("C", "L") if rank == 2 else ("C", "H", "W") if rank == 3
                           else ("features",)) + "]"


class Layer(Tagged):
    """Base of every layer. `out_shape` maps input to output shape; `param_count` counts
    weights and buffers; `build` makes the torch module."""

    kind = "layer"
    type: str
    """Layer type, a name in LAYERS."""

    def out_shape(self, inp: Shape) -> Shape:
        """Output shape for an input of shape `inp` (no batch axis)."""
        return inp

    def param_count(self, inp: Shape) -> tuple[int, int]:
        """(trainable parameters, buffer elements) for input shape `inp`; they equal
        `sum(p.numel() for p in m.parameters())` and `sum(b.numel() for b in m.buffers())`
        of the built module `m`."""
        return (0, 0)

    def build(self, inp: Shape) -> nn.Module:
        """The torch module for input shape `inp`."""
        raise NotImplementedError


# ---------------------------------------------------------------- activations


class _Simple(Layer):
    """A parameter-free, shape-preserving module built from `torch.nn` by name."""

    torch_name: ClassVar[str] = ""

    def _kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude={"type"})

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        return getattr(nn, self.torch_name)(**self._kwargs())


class ReLU(_Simple):
    """max(0, x)."""

    type: Literal["relu"] = "relu"
    torch_name = "ReLU"


class LeakyReLU(_Simple):
    """max(negative_slope * x, x)."""

    type: Literal["leaky_relu"] = "leaky_relu"
    primary = "negative_slope"
    torch_name = "LeakyReLU"
    negative_slope: float = Field(0.01, ge=0)
    """Slope for negative inputs (the 'alpha' of leaky ReLU)."""


class Sigmoid(_Simple):
    """1 / (1 + exp(-x))."""

    type: Literal["sigmoid"] = "sigmoid"
    torch_name = "Sigmoid"


class Tanh(_Simple):
    """Hyperbolic tangent."""

    type: Literal["tanh"] = "tanh"
    torch_name = "Tanh"


class GELU(_Simple):
    """Gaussian error linear unit."""

    type: Literal["gelu"] = "gelu"
    primary = "approximate"
    torch_name = "GELU"
    approximate: Literal["none", "tanh"] = "none"
    """'tanh' uses the tanh approximation."""


class ELU(_Simple):
    """Exponential linear unit."""

    type: Literal["elu"] = "elu"
    primary = "alpha"
    torch_name = "ELU"
    alpha: float = Field(1.0, gt=0)
    """Scale of the negative part."""


class SELU(_Simple):
    """Scaled exponential linear unit (self-normalising)."""

    type: Literal["selu"] = "selu"
    torch_name = "SELU"


class SiLU(_Simple):
    """x * sigmoid(x), also called swish."""

    type: Literal["silu"] = "silu"
    torch_name = "SiLU"


class Softplus(_Simple):
    """log(1 + exp(beta * x)) / beta."""

    type: Literal["softplus"] = "softplus"
    primary = "beta"
    torch_name = "Softplus"
    beta: float = Field(1.0, gt=0)
    """Sharpness of the curve."""
    threshold: float = Field(20.0, gt=0)
    """Above beta * x > threshold the layer is linear."""


class PReLU(Layer):
    """Leaky ReLU with a learned negative slope (one, or one per channel)."""

    type: Literal["prelu"] = "prelu"
    primary = "per_channel"
    per_channel: bool = False
    """Learn one slope per channel (the first non-batch axis) instead of one in all."""
    init: float = 0.25
    """Initial negative slope."""

    def param_count(self, inp: Shape) -> tuple[int, int]:
        return (inp[0] if self.per_channel else 1, 0)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        return nn.PReLU(self.param_count(inp)[0], init=self.init)


class _SoftmaxBase(_Simple):
    primary = "dim"
    dim: int = -1
    """Axis to normalise over, counting the batch axis as 0 (-1: the last axis; 0, the
    batch axis, is not allowed)."""

    def out_shape(self, inp: Shape) -> Shape:
        axes = len(inp) + 1
        if not -axes <= self.dim < axes:
            raise ShapeMismatch(f"{self.type} dim {self.dim} is out of range for input "
                                f"{fmt_shape(inp)} (batch axis included: {axes} axes, so dim is "
                                f"1..{axes - 1} or -1..-{axes - 1})")
        if self.dim % axes == 0:
            # Normalising over the batch would make each prediction depend on the others.
            raise ShapeMismatch(f"{self.type} dim {self.dim} is the batch axis; use dim 1 "
                                "(or -1) to normalise over the features")
        return inp


class Softmax(_SoftmaxBase):
    """exp(x) / sum(exp(x)) along `dim`: class probabilities."""

    type: Literal["softmax"] = "softmax"
    torch_name = "Softmax"


class LogSoftmax(_SoftmaxBase):
    """log(softmax(x)) along `dim`."""

    type: Literal["log_softmax"] = "log_softmax"
    torch_name = "LogSoftmax"


class Identity(_Simple):
    """Passes its input through unchanged."""

    type: Literal["identity"] = "identity"
    torch_name = "Identity"


class Dropout(Layer):
    """Zeroes each input with probability p during training."""

    type: Literal["dropout"] = "dropout"
    primary = "p"
    p: float = Field(0.5, ge=0, lt=1)
    """Drop probability."""

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        return nn.Dropout(self.p)


# ---------------------------------------------------------------- weighted layers


class _Weighted(Layer):
    init: InitName | None = None
    """Weight initialisation; unset uses the spec's global `init.weight`."""
    bias_init: BiasInit | None = None
    """Bias initialisation; unset uses the spec's global `init.bias`."""


class Linear(_Weighted):
    """Fully connected layer: y = x W^T + b."""

    type: Literal["linear"] = "linear"
    primary = "units"
    units: Annotated[int, Field(ge=1)] | Literal["auto"]
    """Output width; `auto` sizes it from the data (classes or target width)."""
    bias: bool = True
    """Learn an additive bias."""

    def _units(self) -> int:
        if not isinstance(self.units, int):
            raise ShapeMismatch("`units: auto` could not be sized: the data source does not "
                                "say how many classes or targets it has; give a number")
        return self.units

    def out_shape(self, inp: Shape) -> Shape:
        _need_rank("linear", inp, {1: "flat features"},
                   "; add `- flatten` before it" if len(inp) > 1 else "")
        return (self._units(),)

    def param_count(self, inp: Shape) -> tuple[int, int]:
        return (inp[0] * self._units() + (self._units() if self.bias else 0), 0)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        return nn.Linear(inp[0], self._units(), bias=self.bias)


PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
IntOrPair = PosInt | tuple[PosInt, PosInt]
"""A positive size, or [height, width] for the 2-d layers."""
PadOrPair = NonNegInt | tuple[NonNegInt, NonNegInt]


def _pair(v: int | tuple[int, ...], n: int) -> tuple[int, ...]:
    return (v,) * n if isinstance(v, int) else tuple(v)


_AXES = {2: "channels, length", 3: "channels, height, width"}


class _Conv(_Weighted):
    primary = "out_channels"
    rank: ClassVar[int] = 3
    out_channels: int = Field(..., ge=1)
    """Number of output channels (filters)."""
    kernel_size: IntOrPair = 3
    """Kernel size (int, or [h, w] for conv2d)."""
    stride: IntOrPair = 1
    """Step between kernel positions."""
    padding: PadOrPair | Literal["same", "valid"] = 0
    """Zero padding on each side, or 'same' (output size = input size, stride 1), or
    'valid' (no padding)."""
    dilation: IntOrPair = 1
    """Spacing between kernel elements."""
    groups: int = Field(1, ge=1)
    """Blocked connections from input to output channels; must divide both channel counts."""
    bias: bool = True
    """Learn an additive bias."""

    def _dims(self) -> int:
        return self.rank - 1

    def out_shape(self, inp: Shape) -> Shape:
        _need_rank(self.type, inp, {self.rank: _AXES[self.rank]},
                   "; add `- reshape: [...]` before it" if len(inp) == 1 else "")
        if inp[0] % self.groups or self.out_channels % self.groups:
            raise ShapeMismatch(f"groups={self.groups} must divide in_channels={inp[0]} and "
                                f"out_channels={self.out_channels}")
        n = self._dims()
        k, s, d = _pair(self.kernel_size, n), _pair(self.stride, n), _pair(self.dilation, n)
        if self.padding == "same":
            if any(x != 1 for x in s):
                raise ShapeMismatch("padding 'same' needs stride 1; give a number instead")
            return (self.out_channels, *inp[1:])
        p = (0,) * n if self.padding == "valid" else _pair(self.padding, n)
        # torch's formula: floor((size + 2p - d(k-1) - 1) / s) + 1, per spatial axis
        out = tuple((size + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1
                    for i, size in enumerate(inp[1:]))
        if any(o < 1 for o in out):
            raise ShapeMismatch(f"kernel {fmt_shape(k)} does not fit input {fmt_shape(inp)} "
                                f"(output would be {fmt_shape((self.out_channels, *out))}); "
                                "use a smaller kernel or add padding")
        return (self.out_channels, *out)

    def param_count(self, inp: Shape) -> tuple[int, int]:
        k = math.prod(_pair(self.kernel_size, self._dims()))
        w = self.out_channels * (inp[0] // self.groups) * k
        return (w + (self.out_channels if self.bias else 0), 0)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        cls: Any = nn.Conv1d if self.rank == 2 else nn.Conv2d
        padding: Any = self.padding
        if padding == "same":
            n = self._dims()
            total = [d * (k - 1) for k, d in zip(_pair(self.kernel_size, n),
                                                 _pair(self.dilation, n), strict=True)]
            if all(t % 2 == 0 for t in total):
                # symmetric: plain numbers, the same result without torch's 'same' path
                padding = tuple(t // 2 for t in total)
        return cls(inp[0], self.out_channels, self.kernel_size, stride=self.stride,
                   padding=padding, dilation=self.dilation, groups=self.groups,
                   bias=self.bias)


class Conv1d(_Conv):
    """1-D convolution over (channels, length)."""

    type: Literal["conv1d"] = "conv1d"
    rank = 2
    kernel_size: int = Field(3, ge=1)
    """Kernel length."""
    stride: int = Field(1, ge=1)
    """Step between kernel positions."""
    padding: NonNegInt | Literal["same", "valid"] = 0
    """Zero padding on each side, or 'same' (output length = input length, stride 1), or
    'valid' (no padding)."""
    dilation: int = Field(1, ge=1)
    """Spacing between kernel elements."""


class Conv2d(_Conv):
    """2-D convolution over (channels, height, width)."""

    type: Literal["conv2d"] = "conv2d"
    rank = 3


class _Pool(Layer):
    primary = "kernel_size"
    rank: ClassVar[int] = 3
    kernel_size: IntOrPair = 2
    """Pooling window (int, or [h, w] for the 2-d pools)."""
    stride: IntOrPair | None = None
    """Step between windows (default: the window size)."""
    padding: PadOrPair = 0
    """Implicit padding on each side (at most half the window)."""

    def out_shape(self, inp: Shape) -> Shape:
        _need_rank(self.type, inp, {self.rank: _AXES[self.rank]})
        n = self.rank - 1
        k = _pair(self.kernel_size, n)
        s = _pair(self.stride, n) if self.stride is not None else k
        p = _pair(self.padding, n)
        if any(2 * p[i] > k[i] for i in range(n)):
            raise ShapeMismatch(f"padding {fmt_shape(p)} must be at most half the window {fmt_shape(k)}")
        out = tuple((size + 2 * p[i] - k[i]) // s[i] + 1 for i, size in enumerate(inp[1:]))
        if any(o < 1 for o in out):
            raise ShapeMismatch(f"window {fmt_shape(k)} does not fit input {fmt_shape(inp)}; "
                                "use a smaller window")
        return (inp[0], *out)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        name = ("Max" if self.type.startswith("max") else "Avg") + f"Pool{self.rank - 1}d"
        return getattr(nn, name)(self.kernel_size, stride=self.stride,
                                 padding=self.padding)


class _Pool1d(_Pool):
    rank = 2
    kernel_size: int = Field(2, ge=1)
    """Pooling window length."""
    stride: int | None = Field(None, ge=1)
    """Step between windows (default: the window length)."""
    padding: int = Field(0, ge=0)
    """Implicit padding on each side (at most half the window)."""


class MaxPool2d(_Pool):
    """Maximum over each window of (channels, height, width)."""

    type: Literal["maxpool2d"] = "maxpool2d"


class AvgPool2d(_Pool):
    """Mean over each window of (channels, height, width)."""

    type: Literal["avgpool2d"] = "avgpool2d"


class MaxPool1d(_Pool1d):
    """Maximum over each window of (channels, length)."""

    type: Literal["maxpool1d"] = "maxpool1d"


class AvgPool1d(_Pool1d):
    """Mean over each window of (channels, length)."""

    type: Literal["avgpool1d"] = "avgpool1d"


class AdaptiveAvgPool2d(Layer):
    """Mean-pools (channels, height, width) to a fixed output size."""

    type: Literal["adaptive_avgpool2d"] = "adaptive_avgpool2d"
    primary = "output_size"
    output_size: IntOrPair = 1
    """Output height and width (int, or [h, w])."""

    def out_shape(self, inp: Shape) -> Shape:
        _need_rank(self.type, inp, {3: _AXES[3]})
        return (inp[0], *_pair(self.output_size, 2))

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        return nn.AdaptiveAvgPool2d(self.output_size)


class AdaptiveAvgPool1d(Layer):
    """Mean-pools (channels, length) to a fixed length."""

    type: Literal["adaptive_avgpool1d"] = "adaptive_avgpool1d"
    primary = "output_size"
    output_size: int = Field(1, ge=1)
    """Output length."""

    def out_shape(self, inp: Shape) -> Shape:
        _need_rank(self.type, inp, {2: _AXES[2]})
        return (inp[0], self.output_size)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        return nn.AdaptiveAvgPool1d(self.output_size)


# ---------------------------------------------------------------- normalisation


class BatchNorm(Layer):
    """Batch normalisation: 1d for (features) or (C, L), 2d for (C, H, W)."""

    type: Literal["batchnorm"] = "batchnorm"
    momentum: float = Field(0.1, gt=0, le=1)
    """Weight of the newest batch in the running statistics."""
    eps: float = Field(1e-5, gt=0)
    """Added to the variance for numerical stability."""
    affine: bool = True
    """Learn a scale and shift."""

    def out_shape(self, inp: Shape) -> Shape:
        _need_rank("batchnorm", inp, {1: "features", 2: "channels, length",
                                      3: "channels, height, width"})
        return inp

    def param_count(self, inp: Shape) -> tuple[int, int]:
        # buffers: running mean and variance per channel, plus the num_batches_tracked count
        return (2 * inp[0] if self.affine else 0, 2 * inp[0] + 1)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        cls = nn.BatchNorm2d if len(inp) == 3 else nn.BatchNorm1d
        return cls(inp[0], eps=self.eps, momentum=self.momentum, affine=self.affine)


class LayerNorm(Layer):
    """Layer normalisation over the last axis (or all non-batch axes)."""

    type: Literal["layernorm"] = "layernorm"
    over: Literal["last", "all"] = "last"
    """Normalise over the last axis only, or over every non-batch axis."""
    eps: float = Field(1e-5, gt=0)
    """Added to the variance for numerical stability."""
    elementwise_affine: bool = True
    """Learn a per-element scale and shift."""

    def _norm_shape(self, inp: Shape) -> Shape:
        return inp[-1:] if self.over == "last" else inp

    def param_count(self, inp: Shape) -> tuple[int, int]:
        return (2 * math.prod(self._norm_shape(inp)) if self.elementwise_affine else 0, 0)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        return nn.LayerNorm(list(self._norm_shape(inp)), eps=self.eps,
                            elementwise_affine=self.elementwise_affine)


# ---------------------------------------------------------------- reshaping


class Flatten(Layer):
    """Flattens every non-batch axis into one: (C, H, W) -> (C*H*W)."""

    type: Literal["flatten"] = "flatten"

    def out_shape(self, inp: Shape) -> Shape:
        return (math.prod(inp),)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        return nn.Flatten()


class Reshape(Layer):
    """Reshapes the non-batch axes: (64) -> (1, 8, 8)."""

    type: Literal["reshape"] = "reshape"
    primary = "shape"
    shape: list[Annotated[int, Field(ge=1)]] = Field(..., min_length=1)
    """Target shape without the batch axis, e.g. [1, 8, 8]."""

    def out_shape(self, inp: Shape) -> Shape:
        if math.prod(self.shape) != math.prod(inp):
            raise ShapeMismatch(f"cannot reshape {fmt_shape(inp)} ({math.prod(inp)} values) to "
                                f"{fmt_shape(tuple(self.shape))} ({math.prod(self.shape)} values)")
        return tuple(self.shape)

    def build(self, inp: Shape) -> nn.Module:
        from torch import nn

        unflatten = nn.Unflatten(1, tuple(self.shape))
        return unflatten if len(inp) == 1 else nn.Sequential(nn.Flatten(), unflatten)


class Unflatten(Reshape):
    """Alias of `reshape`: unflattens (features) into the given shape."""

    type: Literal["unflatten"] = "unflatten"  # type: ignore[assignment]


class Block(Layer):
    """A nested sequence of layers, repeated `repeat` times (each copy has its own weights)."""

    type: Literal["block"] = "block"
    primary = "layers"
    layers: list[AnyLayer] = Field(..., min_length=1)
    """The layers of one repetition, in order."""
    repeat: int = Field(1, ge=1, le=1000)
    """How many copies to stack."""

    @field_validator("layers", mode="before")
    @classmethod
    def _expand(cls, v: Any) -> Any:
        return [expand_layer(x) for x in v] if isinstance(v, list) else v

    def out_shape(self, inp: Shape) -> Shape:
        from .shapes import infer

        return infer([self], inp)[-1].shape

    def param_count(self, inp: Shape) -> tuple[int, int]:
        from .shapes import infer

        rows = infer(self.layers * self.repeat, inp)
        return (sum(r.params for r in rows if r.depth == 0),
                sum(r.buffers for r in rows if r.depth == 0))

    def build(self, inp: Shape) -> nn.Module:
        raise NotImplementedError("blocks are built by specnet.compile")


LAYER_CLASSES: tuple[type[Layer], ...] = (
    Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax, GELU, ELU, SELU, SiLU,
    Softplus, PReLU, Dropout, BatchNorm, LayerNorm, Flatten, Reshape, Unflatten, Conv1d,
    Conv2d, MaxPool1d, AvgPool1d, MaxPool2d, AvgPool2d, AdaptiveAvgPool1d, AdaptiveAvgPool2d,
    Identity, Block,
)

LAYERS: dict[str, type[Layer]] = {
    cls.model_fields["type"].default: cls for cls in LAYER_CLASSES
}
"""The closed registry of layer types: spec name -> layer model."""

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "selu", "silu",
               "softplus", "prelu")

if TYPE_CHECKING:
    AnyLayer = Layer
else:
    AnyLayer = Annotated[Union[LAYER_CLASSES], Field(discriminator="type")]  # noqa: UP007


def expand_layer(value: Any) -> Any:
    """Shorthand (`relu`, `{linear: 16}`, `{dropout: {p: 0.2}}`) to full form."""
    from .spec.base import expand_shorthand

    return expand_shorthand(value, "type", LAYERS)  # type: ignore[arg-type]


Block.model_rebuild()
