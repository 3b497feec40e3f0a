"""Spec -> torch.nn.Sequential, with seeded, spec-controlled weight initialisation."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import Issue, SpecError
from .layers import Block, Layer, _Weighted
from .shapes import LocatedShapeError, Summary, infer
from .spec.base import Shape
from .spec.load import format_path
from .spec.schema import Spec
from .spec.validate import LARGE_MODEL_BYTES, output_width, resolve_auto

if TYPE_CHECKING:
    from torch import nn

    from .data.sources import SourceInfo

_INITS = {
    "xavier": "xavier_uniform_", "xavier_uniform": "xavier_uniform_",
    "xavier_normal": "xavier_normal_", "kaiming": "kaiming_uniform_",
    "kaiming_uniform": "kaiming_uniform_", "kaiming_normal": "kaiming_normal_",
    "orthogonal": "orthogonal_", "zeros": "zeros_",
}


def _init(module: nn.Module, layer: _Weighted, spec: Spec) -> None:
    import torch
    from torch import nn

    weight_init = layer.init or spec.init.weight
    bias_init = layer.bias_init or spec.init.bias
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    with torch.no_grad():
        if weight is not None and weight_init != "default":
            if weight_init == "normal":
                nn.init.normal_(weight, 0.0, 0.01)
            elif weight_init.startswith("kaiming"):
                getattr(nn.init, _INITS[weight_init])(weight, nonlinearity="relu")
            else:
                getattr(nn.init, _INITS[weight_init])(weight)
        if bias is not None and bias_init == "zeros":
            nn.init.zeros_(bias)


def _build(layers: list[Layer], inp: Shape, spec: Spec) -> tuple[list[nn.Module], Shape]:
    from torch import nn

    modules: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, Block):
            copies = []
            for _ in range(layer.repeat):
                inner, inp = _build(layer.layers, inp, spec)
                copies.extend(inner)
            modules.append(nn.Sequential(*copies))
            continue
        module = layer.build(inp)
        if isinstance(layer, _Weighted):
            _init(module, layer, spec)
        modules.append(module)
        inp = layer.out_shape(inp)
    return modules, inp


def _memory_bytes() -> int | None:
    """This machine's physical memory, where the OS tells."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _too_large(summary: Summary, why: str) -> NoReturn:
    raise SpecError([Issue("model", f"the model holds {summary.trainable:,} parameters "
                                    f"({summary.size_bytes / 2**30:.1f} GiB as float32), {why}; "
                                    "make the layers smaller")])


def compile_spec(spec: Spec | str | os.PathLike[str] | dict[str, Any],
                 info: SourceInfo | None = None) -> nn.Sequential:
    """Build the network of `spec` as nn.Sequential: input (batch, *input_shape) ->
    output (batch, width).

    `info` (from `spec.data.info()` by default) sizes `units: auto` and the input. The
    same spec and seed always give the same initial weights, whatever ran before (the
    global torch RNG is left as it was). Raises SpecError if a layer cannot take its input.
    """
    import torch
    from torch import nn

    if not isinstance(spec, Spec):  # a path or a dict, from the Python API
        from .spec.validate import as_spec

        spec = as_spec(spec, "specnet.compile_spec")[0]
    info = info or spec.data.info()
    inp: Shape = tuple(spec.input) if spec.input else info.input_shape
    layers = resolve_auto(spec.model, output_width(spec, info))
    try:  # the same shape check as `specnet validate`, so a bad spec fails with its path
        summary = Summary(inp, infer(layers, inp))
    except LocatedShapeError as exc:
        raise SpecError([Issue(format_path(exc.path), str(exc))]) from None
    # `validate` only warns about a huge model; building one must fail with a message, not
    # a torch traceback or the OOM killer.
    memory = _memory_bytes()
    if memory is not None and summary.size_bytes > memory:
        _too_large(summary, f"more than this machine's {memory / 2**30:.1f} GiB of memory")
    # Seed here, not globally, so compiling never depends on what ran before.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        try:
            modules, _ = _build(layers, inp, spec)
        except (RuntimeError, MemoryError, TypeError, OverflowError) as exc:
            if summary.size_bytes <= LARGE_MODEL_BYTES:
                raise  # a small model that fails to build is a bug, not the user's spec
            _too_large(summary, f"too large to build ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200]})")
    return nn.Sequential(*modules)
