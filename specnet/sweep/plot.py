"""The sweep plot: the ranking metric per variant (mean with its 95% interval) and the mean
learning curves, one colour and marker per variant, readable for 20+ variants."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

from ..plot import note_axis_start
from .selection import compare

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .report import SweepResult

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<")
"""9 markers: with 20 colours, (colour, marker) pairs repeat only after 180 variants."""


def styles(n: int) -> list[tuple[tuple[float, float, float, float], str]]:
    """(colour, marker) for n variants: tab20's strong colours first, then its light ones."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return [(cmap(order[i % 20]), MARKERS[i % len(MARKERS)]) for i in range(n)]


def sweep_plot(result: SweepResult) -> bytes:
    """The sweep figure (`sweep_figure`) as PNG bytes."""
    buf = io.BytesIO()
    sweep_figure(result).savefig(buf, format="png")
    return buf.getvalue()


def sweep_figure(result: SweepResult) -> Figure:
    """The sweep figure: left, the ranking metric per variant (bars: mean, whiskers: 95% interval,
    '≈' on variants indistinguishable from the best); right, mean learning curves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s = result.sweep
    names = [r.variant.name for r in result.results]
    comps = compare(result)
    best = result.best
    look = styles(len(names))
    many = len(names) > 6
    fig = Figure(figsize=(16 if many else 12.5, 4.6 + 0.22 * max(0, len(names) - 8)), dpi=100)
    FigureCanvasAgg(fig)
    metric = result.header(s.metric)
    base = s.variants[0].spec.name

    ax = fig.add_subplot(1, 2, 1)
    ys = np.arange(len(names))[::-1]
    means = [c.mean for c in comps]
    err = np.array([[m - c.low if math.isfinite(c.low) else 0.0 for m, c in zip(means, comps,
                                                                                strict=True)],
                    [c.high - m if math.isfinite(c.high) else 0.0 for m, c in zip(means, comps,
                                                                                  strict=True)]])
    bars = ax.barh(ys, [m if math.isfinite(m) else 0.0 for m in means], xerr=err,
                   color=[c for c, _ in look], linewidth=0, alpha=0.9, capsize=3,
                   error_kw={"elinewidth": 1.0, "ecolor": "0.25"})
    for bar, r in zip(bars, result.results, strict=True):
        if r is best:
            bar.set_edgecolor("black")
            bar.set_linewidth(2.0)
    for y, (_color, marker), m in zip(ys, look, means, strict=True):
        if math.isfinite(m):
            ax.plot([m], [y], marker=marker, color="white", markeredgecolor="black",
                    markersize=6, linestyle="none")
    labels = [f"{n}{' (best)' if c.is_best else ' ≈' if c.indistinguishable else ''}"
              for n, c in zip(names, comps, strict=True)]
    ax.set_yticks(ys, labels, fontsize=8 if len(names) > 8 else 10)
    finite = [(c.low if math.isfinite(c.low) else c.mean, c.high if math.isfinite(c.high)
               else c.mean) for c in comps if math.isfinite(c.mean)]
    if finite and s.mode == "max" and min(lo for lo, _ in finite) > 0:
        # Zoom on the spread (the label says where the axis starts); scores end at 1.
        lo, hi = min(lo for lo, _ in finite), max(hi for _, hi in finite)
        if max(c.mean for c in comps if math.isfinite(c.mean)) <= 1.0:
            hi = min(hi, 1.0)
        pad = 0.08 * (hi - lo + 1e-9)
        ax.set_xlim(max(0.0, lo - pad), hi + pad)
    else:
        ax.set_xlim(left=0.0)
    ax.set_xlabel(f"{metric} (mean, 95% CI)")
    note_axis_start(ax, "x")
    ax.set_title(f"{metric} per variant (≈: indistinguishable from the best, p ≥ 0.05)",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)

    ax2 = fig.add_subplot(1, 2, 2)
    from .report import mean_curve

    curve = "val_loss" if result._has("val") else "loss"
    for r, (color, marker) in zip(result.results, look, strict=True):
        mean = mean_curve([run.history for run in r.ok], curve)
        if len(mean):
            ax2.plot(np.arange(1, len(mean) + 1), mean, label=r.variant.name, color=color,
                     marker=marker, markevery=max(1, len(mean) // 8), markersize=5,
                     linewidth=2.6 if r is best else 1.2, zorder=3 if r is best else 2)
    ax2.set_xlabel("epoch")
    words = "validation loss" if curve == "val_loss" else "training loss"
    ax2.set_ylabel(words)
    ax2.set_yscale("log")
    note_axis_start(ax2)
    ax2.set_title(f"learning curves ({words}, mean over runs)", fontsize=10)
    ax2.grid(alpha=0.3)
    if len(names) <= 40:
        ax2.legend(fontsize=7 if many else 8, loc="upper left" if many else "best",
                   bbox_to_anchor=(1.01, 1.0) if many else None,
                   ncol=2 if len(names) > 20 else 1)
    how = f"{s.cv}-fold cv" if s.cv else "train/val/test split"
    fig.suptitle(f"sweep {s.name} (spec {base}, {len(names)} variants, {how}): "
                 f"ranked on {metric}")
    fig.tight_layout()
    return fig
