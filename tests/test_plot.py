"""Pictures: the learning curve marks the best (restored) epoch and names the loss and the
metric; the sweep plot keeps 24 variants apart (colour and marker) and says where its
axis starts; every plot has a title naming the spec and the metric."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.colors import to_hex

from specnet.plot import learning_curve_figure, loss_label
from specnet.sweep import load_sweep
from specnet.sweep.plot import sweep_figure
from specnet.sweep.report import SweepResult, VariantResult
from specnet.sweep.runner import JobResult
from specnet.trainer import train

HISTORY = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.0 / e + 0.02 * max(0, e - 5),
            "accuracy": 0.7 + 0.02 * e, "val_accuracy": 0.68 + 0.02 * min(e, 5)}
           for e in range(1, 11)]


def texts(ax: Any) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def test_learning_curve_marks_the_restored_epoch_and_names_the_metric() -> None:
    fig = learning_curve_figure(HISTORY, "accuracy", "iris", loss_name="cross_entropy",
                                best_epoch=5, restored=True, monitor="val_loss")
    loss_ax, acc_ax = fig.axes
    assert fig._suptitle is not None and fig._suptitle.get_text() == "iris: learning curves"
    assert loss_ax.get_title() == "iris: cross-entropy loss"
    assert loss_ax.get_ylabel() == "cross-entropy loss" and loss_ax.get_ylim()[0] == 0.0
    assert acc_ax.get_title() == "iris: accuracy"
    # Accuracy is zoomed: the label says where its axis starts.
    assert acc_ax.get_ylabel().startswith("accuracy (axis starts at 0.")
    for ax in (loss_ax, acc_ax):
        assert "best epoch 5 on val loss (weights restored)" in texts(ax)
        vlines = [line for line in ax.get_lines() if list(line.get_xdata()) == [5, 5]]
        assert len(vlines) == 1
    # The point on the validation curve at the best epoch, with its value.
    assert "epoch 5: 0.2" in texts(loss_ax)
    kept = learning_curve_figure(HISTORY, None, "iris", best_epoch=5, restored=False)
    assert "best epoch 5 (best; last epoch's weights kept)" in texts(kept.axes[0])
    assert kept.axes[0].get_ylabel() == "loss" and len(kept.axes) == 1
    assert loss_label("mse") == "mean squared error loss"


def test_training_writes_the_marked_curve(write_spec: Any, tmp_path: Path,
                                          one_torch_thread: None) -> None:
    spec = write_spec("""\
name: es_iris
task: classification
data: {source: iris}
model: [linear: 8, relu, linear: auto]
optimizer: {type: adam, lr: 0.3}
training:
  epochs: 40
  batch_size: 32
  metrics: [accuracy]
  early_stopping: {monitor: val_loss, patience: 3, restore_best: true}
""")
    run = train(spec, tmp_path / "run")
    best = run.metrics["best_epoch"]
    assert 1 <= best < run.metrics["epochs_run"]  # stopped early: a best epoch to mark
    png = tmp_path / "run" / "learning_curve.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    fig = learning_curve_figure(run.history, "accuracy", "es_iris", "cross_entropy", best,
                                True, "val_loss")
    assert f"best epoch {best} on val loss (weights restored)" in texts(fig.axes[0])


@pytest.fixture
def many(write_spec: Any) -> SweepResult:
    """A sweep of 24 variants with synthetic run values (the plot is under test, not the
    training)."""
    write_spec("name: base24\ntask: binary\ndata: {source: xor, n_samples: 60}\n"
               "model: [linear: 4, tanh, linear: 1]\noptimizer: {type: adam, lr: 0.01}\n"
               "training: {epochs: 2, metrics: [accuracy]}\n", "base.yaml")
    path = write_spec("extends: base.yaml\nsweep:\n  grid:\n"
                      "    optimizer.lr: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]\n"
                      "    training.batch_size: [8, 16, 32, 64]\n  repeats: 3\n", "sw24.yaml")
    sweep = load_sweep(path)
    rng = np.random.default_rng(0)
    results = []
    for v, variant in enumerate(sweep.variants):
        runs = []
        for r in range(3):
            acc = 0.86 + 0.004 * v + rng.normal(0, 0.01)
            hist = [{"epoch": e, "loss": 1 / e, "val_loss": (1 + v / 24) / e}
                    for e in range(1, 6)]
            runs.append(JobResult((v, r, 0), r, {"val_accuracy": acc, "val_loss": 1 - acc},
                                  hist, (40, 10, 10)))
        results.append(VariantResult(variant, runs))
    return SweepResult(sweep, results, 1.0, 1, 1)


def test_sweep_plot_keeps_24_variants_apart(many: SweepResult) -> None:
    fig = sweep_figure(many)
    bars_ax, curves_ax = fig.axes[:2]
    assert fig._suptitle is not None
    title = fig._suptitle.get_text()
    assert "sw24" in title and "spec base24" in title and "val accuracy" in title
    lines = [line for line in curves_ax.get_lines() if line.get_label() and
             not line.get_label().startswith("_")]
    assert len(lines) == 24
    styles = {(to_hex(line.get_color()), line.get_marker()) for line in lines}
    assert len(styles) == 24  # no two variants look alike (tab20 x 9 markers)
    assert len({to_hex(line.get_color()) for line in lines[:20]}) == 20
    assert len(curves_ax.get_legend().get_texts()) == 24
    # The bars are zoomed on accuracies near 0.9: the label says where the axis starts.
    low = bars_ax.get_xlim()[0]
    assert low > 0 and f"(axis starts at {low:.3g})" in bars_ax.get_xlabel()
    assert "95% CI" in bars_ax.get_xlabel()
    labels = [t.get_text() for t in bars_ax.get_yticklabels()]
    assert sum(label.endswith("(best)") for label in labels) == 1
    assert curves_ax.get_ylabel() == "validation loss (log scale)"


def test_sweep_plot_of_a_loss_starts_at_zero(many: SweepResult) -> None:
    many.sweep.metric, many.sweep.mode = "val_loss", "min"
    bars_ax = sweep_figure(many).axes[0]
    assert bars_ax.get_xlim()[0] == 0.0 and "axis starts" not in bars_ax.get_xlabel()
    assert not math.isnan(bars_ax.get_xlim()[1])
