"""The figures of an evaluation (PNG): confusion matrix, ROC and precision-recall curves,
calibration curve; residuals and predicted-vs-true for regression.

Curves are sklearn.metrics' own (roc_curve, precision_recall_curve); drawing uses
matplotlib's Agg backend through its object API (no display, no pyplot global state).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .artifact import EVALUATION_PLOTS
from .io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .evaluate import Scored

MAX_CURVES = 20
"""One-vs-rest curves drawn at most (the classes with the most rows); all are scored."""


def _figure(width: float, height: float,
            layout: Literal["constrained"] | None = None) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def draw(scored: Scored, folder: Path, title: str) -> list[str]:
    """Write the task's figures into `folder`; returns their file names."""
    if scored.probs is not None:
        jobs = [("confusion_matrix", _confusion), ("roc", _roc),
                ("precision_recall", _precision_recall), ("calibration", _calibration)]
    else:
        jobs = [("residuals", _residuals), ("predicted_vs_true", _predicted_vs_true)]
    names = []
    for key, fn in jobs:
        name = EVALUATION_PLOTS[key]
        fn(scored, folder / name, title)
        names.append(name)
    return names


def _confusion(scored: Scored, path: Path, title: str) -> None:
    cm = np.asarray(scored.report["confusion_matrix"])
    labels = scored.names
    k = len(labels)
    size = min(12.0, 3.0 + 0.45 * k)
    fig = _figure(size + 1.5, size, layout="constrained")  # room for the colour bar
    ax = fig.add_subplot(1, 1, 1)
    # Colour by the share of each true class (row), so small classes show their errors.
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the true class")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else
                  "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = scored.report["metrics"]["accuracy"]
    ax.set_title(f"{title}: confusion matrix (accuracy {acc:.3f}, n={len(scored.y)})")
    _save(fig, path)


def _one_vs_rest(scored: Scored) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, is-this-class (n,), score (n,)) per curve: class 1 for a binary model,
    else every class that has rows on both sides (the MAX_CURVES largest)."""
    assert scored.probs is not None
    if len(scored.names) == 2:
        return [(scored.names[1], scored.y == 1, scored.probs[:, 1])]
    counts = np.bincount(scored.y, minlength=len(scored.names))
    order = [c for c in np.argsort(-counts, kind="stable") if 0 < counts[c] < len(scored.y)]
    return [(scored.names[c], scored.y == c, scored.probs[:, c])
            for c in sorted(order[:MAX_CURVES])]


def _legend(ax: Any, n: int) -> None:
    if n:
        ax.legend(fontsize=8 if n <= 10 else 6, loc="lower right" if n <= 10 else "best")


def _roc(scored: Scored, path: Path, title: str) -> None:
    from sklearn.metrics import roc_curve

    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    curves = _one_vs_rest(scored)
    per_class = scored.report["per_class"]
    for label, pos, score in curves:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fpr, tpr, _ = roc_curve(pos, score)
        auc = per_class[label]["roc_auc"]
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})" if auc is not None else label)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    auc = scored.report["metrics"]["roc_auc"]
    kind = "" if len(scored.names) == 2 else "one-vs-rest, macro "
    ax.set_title(f"{title}: ROC ({kind}AUC {auc:.3f})" if auc is not None else
                 f"{title}: ROC")
    ax.grid(alpha=0.3)
    _legend(ax, len(curves) + 1)
    _save(fig, path)


def _precision_recall(scored: Scored, path: Path, title: str) -> None:
    from sklearn.metrics import precision_recall_curve

    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    curves = _one_vs_rest(scored)
    per_class = scored.report["per_class"]
    for label, pos, score in curves:
        precision, recall, _ = precision_recall_curve(pos, score)
        ap = per_class[label]["average_precision"]
        line = ax.plot(recall, precision, drawstyle="steps-post",
                       label=f"{label} (AP {ap:.3f})" if ap is not None else label)
        # Chance level of this class: its share of the rows.
        ax.axhline(float(np.mean(pos)), ls=":", lw=0.8, color=line[0].get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ap = scored.report["metrics"]["average_precision"]
    kind = "" if len(scored.names) == 2 else "one-vs-rest, macro "
    ax.set_title(f"{title}: precision-recall ({kind}AP {ap:.3f})" if ap is not None else
                 f"{title}: precision-recall")
    ax.grid(alpha=0.3)
    _legend(ax, len(curves))
    _save(fig, path)


def _calibration(scored: Scored, path: Path, title: str) -> None:
    cal = scored.report["calibration"]
    fig = _figure(5.5, 6.0)
    ax = fig.add_axes((0.13, 0.36, 0.82, 0.56))
    hist = fig.add_axes((0.13, 0.08, 0.82, 0.18), sharex=ax)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    ax.plot(cal["predicted"], cal["observed"], "o-", label=f"model (ECE {cal['ece']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    binary = len(scored.names) == 2
    ax.set_ylabel(f"fraction that is {scored.names[1]}" if binary else
                  "accuracy of the top label")
    ax.set_title(f"{title}: calibration ({cal['kind']}, {cal['bins']} bins)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    assert scored.probs is not None
    conf = scored.probs[:, 1] if binary else scored.probs.max(axis=1)
    hist.hist(conf, bins=np.linspace(0, 1, cal["bins"] + 1).tolist(), rwidth=0.9, color="grey")
    hist.set_xlabel(f"predicted {cal['kind']}" if binary else "predicted probability of the "
                    "top label")
    hist.set_ylabel("rows")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return (n + cols - 1) // cols, cols


def _residuals(scored: Scored, path: Path, title: str) -> None:
    assert scored.values is not None
    rows, cols = _grid(len(scored.names))
    fig = _figure(5.0 * cols, 4.0 * rows)
    for j, name in enumerate(scored.names):
        ax = fig.add_subplot(rows, cols, j + 1)
        pred, resid = scored.values[:, j], scored.y[:, j] - scored.values[:, j]
        ax.scatter(pred, resid, s=10, alpha=0.6)
        ax.axhline(0.0, color="grey", ls=":")
        ax.set_xlabel(f"predicted {name}")
        ax.set_ylabel("residual (true - predicted)")
        m = scored.report["per_target"][name]
        ax.set_title(f"{name}: MAE {m['mae']:.4g}, RMSE {m['rmse']:.4g}", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: residuals (n={len(scored.y)})")
    _save(fig, path)


def _predicted_vs_true(scored: Scored, path: Path, title: str) -> None:
    assert scored.values is not None
    rows, cols = _grid(len(scored.names))
    fig = _figure(5.0 * cols, 4.6 * rows)
    for j, name in enumerate(scored.names):
        ax = fig.add_subplot(rows, cols, j + 1)
        true, pred = scored.y[:, j], scored.values[:, j]
        ax.scatter(true, pred, s=10, alpha=0.6)
        lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], ":", color="grey", label="predicted = true")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
        r2 = scored.report["per_target"][name]["r2"]
        ax.set_title(f"{name}: R² {r2:.3f}" if r2 is not None else name, fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{title}: predicted vs true (n={len(scored.y)})")
    _save(fig, path)
