"""Shape inference and the layer summary, with no tensors built (torch-free)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .layers import Block, Layer, ShapeMismatch, fmt_shape
from .spec.base import Shape

PathT = tuple[str | int, ...]


@dataclass(frozen=True)
class Row:
    """One layer of the summary: where it is in the spec, its output shape and weights.

    `module` is where the layer sits in the compiled nn.Sequential ("2.3" is
    `model[2][3]`, the state_dict prefix `2.3.`); blocks' repeats count on.
    """

    path: PathT
    label: str
    shape: Shape
    params: int
    buffers: int
    depth: int = 0
    module: str = ""


class LocatedShapeError(ShapeMismatch):
    """A ShapeMismatch that knows the spec path of the layer that raised it and the shape
    that reached that layer."""

    def __init__(self, path: PathT, message: str, inp: Shape = ()) -> None:
        super().__init__(message)
        self.path = path
        self.inp = inp


def label(layer: Layer) -> str:
    """Short human name of a layer: `linear(16)`, `dropout(0.2)`, `conv2d(8, stride=2)`."""
    if isinstance(layer, Block):
        return f"block x{layer.repeat}"
    args = layer.model_dump(exclude={"type"}, exclude_defaults=True, exclude_none=True)
    primary = layer.primary
    value = getattr(layer, primary) if primary else None
    shown = []
    if primary and isinstance(value, int | float | list | tuple) and not isinstance(value, bool):
        shown.append(str(list(value) if isinstance(value, tuple) else value))
        args.pop(primary, None)
    shown += [f"{k}={v}" for k, v in args.items()]
    return f"{layer.type}({', '.join(shown)})" if shown else layer.type


MAX_LAYERS = 10_000
"""Most layers a model may expand to (blocks counted with their repeats)."""


def expanded_size(layers: Sequence[Layer]) -> int:
    """How many layers `layers` expand to, blocks times their repeats, without expanding."""
    return sum(layer.repeat * expanded_size(layer.layers) if isinstance(layer, Block) else 1
               for layer in layers)


def infer(layers: Sequence[Layer], inp: Shape, prefix: PathT = ("model",),
          depth: int = 0, module: str = "", offset: int = 0) -> list[Row]:
    """Rows for `layers` applied in order to input shape `inp` (no batch axis).

    Raises LocatedShapeError naming the first layer that cannot take its input, or the
    block that would expand to more than MAX_LAYERS layers. `module` and `offset` place
    nested rows in the compiled network (used for blocks).
    """
    rows: list[Row] = []
    for i, layer in enumerate(layers):
        path = (*prefix, i)
        index = f"{module}{offset + i}"
        if isinstance(layer, Block):
            size = expanded_size([layer])
            if size > MAX_LAYERS:
                raise LocatedShapeError(path, f"block expands to {size:,} layers (repeats "
                                              f"included); the limit is {MAX_LAYERS:,}", inp)
            start = len(rows)
            rows.append(Row(path, label(layer), inp, 0, 0, depth, index))
            for r in range(layer.repeat):
                inner = infer(layer.layers, inp, (*path, "layers"), depth + 1, f"{index}.",
                              r * len(layer.layers))
                rows.extend(inner)
                inp = inner[-1].shape
            kids = [r for r in rows[start + 1:] if r.depth == depth + 1]
            rows[start] = Row(path, label(layer), inp, sum(r.params for r in kids),
                              sum(r.buffers for r in kids), depth, index)
            continue
        try:
            out = layer.out_shape(inp)
            params, buffers = layer.param_count(inp)
        except LocatedShapeError:
            raise
        except ShapeMismatch as exc:
            raise LocatedShapeError(path, str(exc), inp) from None
        rows.append(Row(path, label(layer), out, params, buffers, depth, index))
        inp = out
    return rows


@dataclass(frozen=True)
class Summary:
    """The layer table of a spec: input shape, rows, and totals."""

    input_shape: Shape
    rows: list[Row]

    @property
    def output_shape(self) -> Shape:
        """Shape of the network's output (no batch axis)."""
        return self.rows[-1].shape if self.rows else self.input_shape

    @property
    def trainable(self) -> int:
        """Trainable parameters (equals `sum(p.numel() for p in model.parameters())`)."""
        return sum(r.params for r in self.rows if r.depth == 0)

    @property
    def non_trainable(self) -> int:
        """Buffers such as batch-norm running statistics."""
        return sum(r.buffers for r in self.rows if r.depth == 0)

    @property
    def size_bytes(self) -> int:
        """Approximate size of weights and buffers as float32."""
        return 4 * (self.trainable + self.non_trainable)

    def table(self) -> str:
        """The summary as an aligned text table."""
        head = ("#", "layer", "output shape", "params")
        body = [(r.module, "  " * r.depth + r.label, fmt_shape(r.shape),
                 f"{r.params:,}") for r in self.rows]
        body.insert(0, ("", "input", fmt_shape(self.input_shape), ""))
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(4)]

        def fmt(cells: tuple[str, ...]) -> str:
            return "  ".join(c.rjust(w) if i == 3 else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        rule = "-" * len(fmt(head))
        lines = [fmt(head), rule, *map(fmt, body), rule]
        size = self.size_bytes
        human = f"{size / 1024:.1f} KiB" if size < 1024**2 else f"{size / 1024**2:.2f} MiB"
        lines += [f"trainable params: {self.trainable:,}",
                  f"non-trainable:    {self.non_trainable:,}",
                  f"size (float32):   {human}"]
        return "\n".join(lines)
