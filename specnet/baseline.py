"""Is the trained model better than a constant? The check `train` and `build` end with.

A regressor is compared with predicting the training split's mean (its MSE on the test
split, in target units); a classifier with always predicting the training split's most
frequent class (accuracy on the test split). No test rows: the validation split, else the
training split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .trainer import Run


def _split(run: Run) -> tuple[str, np.ndarray, np.ndarray]:
    p = run.prepared
    for name, X, y in (("test", p.X_test, p.y_test), ("validation", p.X_val, p.y_val),
                       ("train", p.X_train, p.y_train)):
        if len(X):
            return _head(name, X, y)
    return _head("train", p.X_train, p.y_train)


def _head(name: str, X: np.ndarray, y: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    """The split as it is, or the first rows of a streamed one."""
    from .data.stream import head

    rows = head(X)
    return name, rows, y[:len(rows)]


def baseline_warning(run: Run) -> str | None:
    """A one-line warning when the model does no better than the constant baseline."""
    import torch

    p = run.prepared
    name, X, y = _split(run)
    run.model.eval()
    with torch.inference_mode():
        out = run.model(torch.from_numpy(X)).float().numpy()
    task = run.spec.task
    if task == "regression":
        ys = p.y_scaler
        pred = ys.inverse(out) if ys is not None else out
        true = ys.inverse(y) if ys is not None else y
        train = ys.inverse(p.y_train) if ys is not None else p.y_train
        mean = train.astype(np.float64).mean(axis=0)
        mse = float(np.mean((pred.astype(np.float64) - true) ** 2))
        base = float(np.mean((true.astype(np.float64) - mean) ** 2))
        if mse >= base:
            return (f"warning: the model does worse than predicting the training mean on the "
                    f"{name} split (MSE {mse:.4g} vs {base:.4g}, target units); check "
                    "data.target_normalize (auto), the learning rate and the epochs")
        return None
    labels = (out.reshape(-1) > 0).astype(np.int64) if task == "binary" else out.argmax(axis=1)
    counts = np.bincount(p.y_train.astype(np.int64))
    majority = int(counts.argmax())
    acc = float(np.mean(labels == y))
    base = float(np.mean(y == majority))
    if acc <= base:
        cls = (p.class_labels or [])[majority] if p.class_labels else str(majority)
        return (f"warning: the model is no better than always predicting the most frequent "
                f"class {cls!r} on the {name} split (accuracy {acc:.4f} vs {base:.4f})")
    return None


def units_note(run: Run) -> str:
    """Which figures of the summary line are in the user's units."""
    if run.spec.task != "regression":
        return ""
    ys = run.prepared.y_scaler
    if ys is not None and ys.kind != "none":
        return " (loss on standardised targets; other figures in target units)"
    return " (all figures in target units)"
