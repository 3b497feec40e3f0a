"""The learning-curve PNG: loss and the main metric per epoch, training vs validation, with
the best epoch (the one early stopping restores) marked."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOSS_NAMES = {"mse": "mean squared error", "mae": "mean absolute error", "huber": "Huber",
              "cross_entropy": "cross-entropy", "nll": "negative log-likelihood",
              "bce": "binary cross-entropy", "hinge": "hinge"}
"""Axis words for the spec's loss names."""


def loss_label(loss_name: str | None) -> str:
    """'cross-entropy loss' for 'cross_entropy'; plain 'loss' when unknown."""
    if not loss_name:
        return "loss"
    return f"{LOSS_NAMES.get(loss_name, loss_name.replace('_', ' '))} loss"


def metric_label(name: str) -> str:
    """'accuracy', 'f1 macro', 'r2': the metric's name for an axis."""
    return name.replace("_", " ")


def note_axis_start(ax: Any, axis: str = "y") -> None:
    """Append '(axis starts at 0.86)' to the axis label when the axis does not start at 0.

    A bar or a curve on an axis that starts above zero exaggerates differences; the label
    says so. Log axes say 'log scale' instead.
    """
    scale = ax.get_yscale() if axis == "y" else ax.get_xscale()
    label = ax.get_ylabel() if axis == "y" else ax.get_xlabel()
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if scale == "log":
        note = "log scale"
    elif min(low, high) > 0:
        note = f"axis starts at {min(low, high):.3g}"
    else:
        return
    (ax.set_ylabel if axis == "y" else ax.set_xlabel)(f"{label} ({note})")


def learning_curve(history: list[dict[str, float]], metric: str | None, path: Path,
                   title: str = "", loss_name: str | None = None,
                   best_epoch: int | None = None, restored: bool = False,
                   monitor: str | None = None) -> None:
    """Draw loss (left) and `metric` (right), train and validation, and write a PNG atomically.

    The arguments are those of `learning_curve_figure`.
    """
    fig = learning_curve_figure(history, metric, title, loss_name, best_epoch, restored,
                                monitor)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def learning_curve_figure(history: list[dict[str, float]], metric: str | None,
                          title: str = "", loss_name: str | None = None,
                          best_epoch: int | None = None, restored: bool = False,
                          monitor: str | None = None) -> Figure:
    """The learning-curve figure: loss (left) and `metric` (right), train and validation.

    loss_name: the spec's loss (labels the axis, e.g. 'cross-entropy loss'). best_epoch:
    the epoch early stopping judged best on `monitor`, marked on both panels, with whether
    its weights were `restored` (the model that is saved) or the last epoch's were kept.
    Uses matplotlib's Agg backend through its object API: no display, no global pyplot state.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    panels = [("loss", loss_label(loss_name))]
    if metric:
        panels.append((metric, metric_label(metric)))
    fig = Figure(figsize=(5.6 * len(panels), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    best = best_epoch if best_epoch and best_epoch in epochs else None
    for i, (name, label) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for column, split, style in ((name, "train", "-"), (f"val_{name}", "validation", "--")):
            values = [row.get(column) for row in history]
            if any(v is not None for v in values):
                ys = [math.nan if v is None else float(v) for v in values]
                ax.plot(epochs, ys, style, label=split)
                if best is not None and split == "validation":
                    y = ys[epochs.index(best)]
                    ax.plot([best], [y], "o", color="tab:red", markersize=7, zorder=5,
                            label=f"epoch {best}: {y:.4g}")
        if best is not None:
            what = "weights restored" if restored else "best; last epoch's weights kept"
            on = f" on {monitor.replace('_', ' ')}" if monitor else ""
            ax.axvline(best, color="tab:red", linestyle=":", linewidth=1.2,
                       label=f"best epoch {best}{on} ({what})")
        if name == "loss" and ax.get_ylim()[0] > 0:
            ax.set_ylim(bottom=0.0)  # losses are >= 0: start there, not at the smallest one
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{title}: {label}" if title else label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        note_axis_start(ax)
    fig.suptitle(f"{title}: learning curves" if title else "learning curves")
    fig.tight_layout()
    return fig
