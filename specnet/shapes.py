"""Shape inference and the layer summary, with no tensors built (torch-free)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .layers import Block, Layer, ShapeMismatch
from .spec.base import Shape

PathT = tuple[str | int, ...]


@dataclass(frozen=True)
class Row:
    """One layer of the summary: where it is in the spec, its output shape and weights."""

    path: PathT
    label: str
    shape: Shape
    params: int
    buffers: int
    depth: int = 0


class LocatedShapeError(ShapeMismatch):
    """A ShapeMismatch that knows the spec path of the layer that raised it."""

    def __init__(self, path: PathT, message: str) -> None:
        super().__init__(message)
        self.path = path


def label(layer: Layer) -> str:
    """Short human name of a layer: `linear(16)`, `dropout(p=0.2)`, `relu`."""
    args = layer.model_dump(exclude={"type"}, exclude_defaults=True, exclude_none=True)
    primary = layer.primary
    if isinstance(layer, Block):
        return f"block x{layer.repeat}"
    if primary and primary in args and len(args) == 1:
        return f"{layer.type}({args[primary]})"
    if primary and hasattr(layer, primary) and getattr(layer, primary) is not None \
            and layer.model_fields[primary].is_required():
        rest = ", ".join(f"{k}={v}" for k, v in args.items() if k != primary)
        return f"{layer.type}({getattr(layer, primary)}{', ' + rest if rest else ''})"
    if args:
        return f"{layer.type}(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
    return layer.type


def infer(layers: Sequence[Layer], inp: Shape, prefix: PathT = ("model",),
          depth: int = 0) -> list[Row]:
    """Rows for `layers` applied in order to input shape `inp` (no batch axis).

    Raises LocatedShapeError naming the first layer that cannot take its input.
    """
    rows: list[Row] = []
    for i, layer in enumerate(layers):
        path = (*prefix, i)
        if isinstance(layer, Block):
            start = len(rows)
            rows.append(Row(path, label(layer), inp, 0, 0, depth))
            for _ in range(layer.repeat):
                inner = infer(layer.layers, inp, (*path, "layers"), depth + 1)
                rows.extend(inner)
                inp = inner[-1].shape
            kids = [r for r in rows[start + 1:] if r.depth == depth + 1]
            rows[start] = Row(path, label(layer), inp, sum(r.params for r in kids),
                              sum(r.buffers for r in kids), depth)
            continue
        try:
            out = layer.out_shape(inp)
            params, buffers = layer.param_count(inp)
        except LocatedShapeError:
            raise
        except ShapeMismatch as exc:
            raise LocatedShapeError(path, str(exc)) from None
        rows.append(Row(path, label(layer), out, params, buffers, depth))
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
        body = [(".".join(str(p) for p in r.path[1:] if isinstance(p, int)),
                 "  " * r.depth + r.label, "[" + ", ".join(map(str, r.shape)) + "]",
                 f"{r.params:,}") for r in self.rows]
        body.insert(0, ("", "input", "[" + ", ".join(map(str, self.input_shape)) + "]", ""))
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(4)]

        def fmt(cells: tuple[str, ...]) -> str:
            return "  ".join(c.rjust(w) if i in (0, 3) else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        rule = "-" * len(fmt(head))
        lines = [fmt(head), rule, *map(fmt, body), rule]
        size = self.size_bytes
        human = f"{size / 1024:.1f} KiB" if size < 1024**2 else f"{size / 1024**2:.2f} MiB"
        lines += [f"trainable params: {self.trainable:,}",
                  f"non-trainable:    {self.non_trainable:,}",
                  f"size (float32):   {human}"]
        return "\n".join(lines)
