"""Metrics from model outputs, with sklearn.metrics' definitions.

Every epoch, the confusion-matrix and error metrics are computed with NumPy (sklearn's
input checks cost more than the training step on small sets); tests compare each with its
sklearn.metrics counterpart. The final metrics (metrics.json) are sklearn.metrics' own
(`compute(..., reference=True)`). roc_auc always calls sklearn.metrics.roc_auc_score.
A metric that is undefined on the data (roc_auc with one class or non-finite scores,
r2 on one row) is NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]
"""(y_true, y_pred, score) -> value; see `compute`."""


def _confusion(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Confusion matrix over the labels present in y or p (rows: true, columns: predicted)."""
    labels, inv = np.unique(np.concatenate([y, p]), return_inverse=True)
    k = len(labels)
    yi, pi = inv[: len(y)], inv[len(y):]
    return np.bincount(yi * k + pi, minlength=k * k).reshape(k, k).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (sklearn's zero_division=0)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def accuracy(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Fraction of exact matches (sklearn accuracy_score)."""
    return float(np.mean(y == p))


def balanced_accuracy(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Mean recall over the classes present in y (sklearn balanced_accuracy_score)."""
    cm = _confusion(y, p)
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def precision_macro(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Unweighted mean precision over labels in y or p (precision_score average='macro')."""
    cm = _confusion(y, p)
    return float(np.mean(_ratio(np.diag(cm), cm.sum(axis=0))))


def recall_macro(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Unweighted mean recall over labels in y or p (recall_score average='macro')."""
    cm = _confusion(y, p)
    return float(np.mean(_ratio(np.diag(cm), cm.sum(axis=1))))


def f1_macro(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Unweighted mean F1 over labels in y or p (f1_score average='macro')."""
    cm = _confusion(y, p)
    tp = np.diag(cm)
    return float(np.mean(_ratio(2 * tp, cm.sum(axis=0) + cm.sum(axis=1))))


def roc_auc(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of the positive-class score (binary; sklearn roc_auc_score)."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) != 2 or not np.isfinite(score).all():
        return math.nan  # one class, or a diverged model (the trainer reports the loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(roc_auc_score(y, score))


def mse(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Mean squared error, averaged over targets (sklearn mean_squared_error)."""
    return float(np.mean((y.astype(np.float64) - p) ** 2))


def mae(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Mean absolute error, averaged over targets (sklearn mean_absolute_error)."""
    return float(np.mean(np.abs(y.astype(np.float64) - p)))


def rmse(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Root mean squared error per target, averaged (sklearn root_mean_squared_error)."""
    per_target = np.sqrt(np.mean((y.astype(np.float64) - p) ** 2, axis=0))
    return float(np.mean(per_target))


def r2(y: np.ndarray, p: np.ndarray, score: np.ndarray) -> float:
    """Coefficient of determination per target, averaged (sklearn r2_score).

    A constant target scores 1 when predicted exactly, else 0 (sklearn's force_finite).
    """
    if len(y) < 2:
        return math.nan
    y64 = y.astype(np.float64)
    ss_res = np.sum((y64 - p) ** 2, axis=0)
    ss_tot = np.sum((y64 - y64.mean(axis=0)) ** 2, axis=0)
    exact = np.where(ss_res == 0, 1.0, 0.0)
    per_target = np.where(ss_tot > 0, 1 - _ratio(ss_res, ss_tot), exact)
    return float(np.mean(per_target))


METRIC_FNS: dict[str, Metric] = {
    "accuracy": accuracy, "balanced_accuracy": balanced_accuracy, "f1_macro": f1_macro,
    "precision_macro": precision_macro, "recall_macro": recall_macro, "roc_auc": roc_auc,
    "mse": mse, "mae": mae, "rmse": rmse, "r2": r2,
}
"""Metric name (spec.schema.METRICS) -> function."""


def decode(task: str, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, scores) from raw model outputs.

    classification: out (n, classes) -> argmax, and the class-1 logit margin for 2 classes;
    binary: out (n, 1) logits -> (logit > 0) as 0/1, and the logit itself;
    regression: out (n, targets) -> itself (already in user units), twice.
    """
    if task == "regression":
        return out, out
    if task == "binary":
        score = out.reshape(len(out), -1)[:, 0]
        return (score > 0).astype(np.int64), score
    pred = out.argmax(axis=1) if len(out) else np.zeros(0, np.int64)
    score = out[:, 1] - out[:, 0] if out.ndim == 2 and out.shape[1] == 2 else pred
    return pred, score


def _sklearn_fns() -> dict[str, Metric]:
    """The same metrics computed by sklearn.metrics itself (slower; used for final figures)."""
    from sklearn import metrics as skm

    def labels(fn: Callable[..., float], **kw: object) -> Metric:
        return lambda y, p, s: float(fn(y, p, **kw))

    def errors(fn: Callable[..., float]) -> Metric:
        return lambda y, p, s: float(fn(y.astype(np.float64), p.astype(np.float64)))

    def r2_sk(y: np.ndarray, p: np.ndarray, s: np.ndarray) -> float:
        return math.nan if len(y) < 2 else float(skm.r2_score(y, p))

    return {
        "accuracy": labels(skm.accuracy_score),
        "balanced_accuracy": labels(skm.balanced_accuracy_score),
        "f1_macro": labels(skm.f1_score, average="macro", zero_division=0),
        "precision_macro": labels(skm.precision_score, average="macro", zero_division=0),
        "recall_macro": labels(skm.recall_score, average="macro", zero_division=0),
        "roc_auc": roc_auc, "mse": errors(skm.mean_squared_error),
        "mae": errors(skm.mean_absolute_error), "rmse": errors(skm.root_mean_squared_error),
        "r2": r2_sk,
    }


def compute(names: list[str], task: str, y: np.ndarray, out: np.ndarray,
            reference: bool = False) -> dict[str, float]:
    """Every metric in `names` for targets `y` and raw outputs `out` (regression: both in
    user units). Empty dict for an empty split. `reference`: use sklearn.metrics itself."""
    if len(y) == 0:
        return {}
    pred, score = decode(task, out)
    if task == "regression":
        y = y.reshape(pred.shape)
    if not reference:
        return {name: METRIC_FNS[name](y, pred, score) for name in names}
    fns = _sklearn_fns()
    with warnings.catch_warnings():
        # sklearn warns on a class absent from y or the predictions; the value is defined.
        warnings.simplefilter("ignore")
        return {name: fns[name](y, pred, score) for name in names}
