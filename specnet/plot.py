"""The learning-curve PNG: loss and the main metric per epoch, training vs validation."""

from __future__ import annotations

import io
from pathlib import Path

from .io import atomic_write_bytes


def learning_curve(history: list[dict[str, float]], metric: str | None, path: Path,
                   title: str = "") -> None:
    """Draw loss (left) and `metric` (right), train and validation, and write a PNG atomically.

    Uses matplotlib's Agg backend through its object API: no display, no global pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    panels = ["loss"] + ([metric] if metric else [])
    fig = Figure(figsize=(5 * len(panels), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, name in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for column, label, style in ((name, "train", "-"), (f"val_{name}", "validation", "--")):
            values = [row.get(column) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [float("nan") if v is None else v for v in values], style,
                        label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
