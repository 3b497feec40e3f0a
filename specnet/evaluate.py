"""`specnet evaluate`: score an exported model on a labelled file, with onnxruntime only.

Classification (and binary): accuracy, per-class precision / recall / F1 / support, the
confusion matrix, ROC and precision-recall curves with their areas (one-vs-rest for more
than two classes), and a calibration curve with its expected calibration error (ECE).
Regression: MAE, RMSE and R², per target and averaged. Every figure is sklearn.metrics'
own; sklearn's training code and torch are never imported.

The same code scores the test split at export time (`export.py`), so every artifact
carries an evaluation.json and its figures.

Calibration: 10 equal-width bins on [0, 1] (sklearn.calibration.calibration_curve with
strategy='uniform'). Binary models: P(class 1) against the fraction of class 1 in each bin;
more classes: the top label's probability (confidence) against its accuracy. ECE is the
row-weighted mean gap |observed - predicted| over the non-empty bins.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .artifact import EVALUATION_PLOTS, FILES, Artifact
from .errors import ModelInputError
from .io import strict_json
from .runtime import predictions

if TYPE_CHECKING:
    from .data.prepare import Prepared

EVALUATION_FILE = FILES["evaluation"]
EVALUATION_FILES = (EVALUATION_FILE, *EVALUATION_PLOTS.values())
"""Every name `specnet evaluate` may write into its output folder."""
CALIBRATION_BINS = 10


@dataclass
class Scored:
    """A model's outputs on labelled rows, and the report computed from them.

    classification: y (n,) class indices, probs (n, classes), pred (n,) class indices.
    regression: y (n, targets) and values (n, targets), in target units.
    report: what evaluation.json holds.
    """

    art: Artifact
    y: np.ndarray
    report: dict[str, Any]
    probs: np.ndarray | None = None
    pred: np.ndarray | None = None
    values: np.ndarray | None = None
    names: list[str] = field(default_factory=list)


def _f(x: Any) -> float | None:
    """A metric as a JSON number (None when undefined)."""
    v = float(x)
    return v if math.isfinite(v) else None


def calibration(y_true: np.ndarray, y_prob: np.ndarray,
                bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability curve and ECE of probabilities y_prob (n,) for outcomes y_true (n,) 0/1.

    Bins as sklearn.calibration.calibration_curve(strategy='uniform'); empty bins dropped.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], y_prob)
    total = np.bincount(ids, minlength=bins)
    sums = np.bincount(ids, weights=y_prob, minlength=bins)
    hits = np.bincount(ids, weights=y_true, minlength=bins)
    nz = total > 0
    observed = hits[nz] / total[nz]
    predicted = sums[nz] / total[nz]
    ece = float(np.sum(total[nz] / len(y_prob) * np.abs(observed - predicted)))
    return {"bins": bins, "predicted": predicted.tolist(), "observed": observed.tolist(),
            "count": total[nz].astype(int).tolist(), "ece": ece}


def score_classification(art: Artifact, out: np.ndarray, y: np.ndarray,
                         threshold: float = 0.5) -> Scored:
    """Score model outputs `out` (what the graph returns) against class indices y (n,)."""
    from sklearn import metrics as skm

    result = predictions(art, out, threshold)
    labels: list[str] = [str(c) for c in result["class_labels"]]
    k = len(labels)
    probs = np.asarray(result["probabilities"], np.float64)
    pred = np.asarray([labels.index(c) for c in result["labels"]], np.int64)
    idx = list(range(k))
    # sklearn warns on undefined metrics (a class never predicted, one row); the report
    # says null (or 0: zero_division=0) there instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f1, support = skm.precision_recall_fscore_support(
            y, pred, labels=idx, zero_division=0)
        per_class: dict[str, dict[str, Any]] = {}
        aucs, aps = [], []
        for c in idx:
            pos = y == c
            both = bool(pos.any() and (~pos).any())
            auc = _f(skm.roc_auc_score(pos, probs[:, c])) if both else None
            ap = _f(skm.average_precision_score(pos, probs[:, c])) if pos.any() else None
            per_class[labels[c]] = {"precision": float(p[c]), "recall": float(r[c]),
                                    "f1": float(f1[c]), "support": int(support[c]),
                                    "roc_auc": auc, "average_precision": ap}
            aucs.append(auc)
            aps.append(ap)
        if k == 2:  # binary: the areas of class 1
            roc_auc, avg_prec = aucs[1], aps[1]
            cal = calibration((y == 1).astype(np.float64), probs[:, 1])
            cal["kind"] = f"P({labels[1]})"
        else:  # macro over the classes present (both sides of one-vs-rest)
            roc_auc = _mean([a for a in aucs if a is not None])
            avg_prec = _mean([a for a in aps if a is not None])
            cal = calibration((pred == y).astype(np.float64), probs.max(axis=1))
            cal["kind"] = "top label"
        metrics = {
            "accuracy": float(skm.accuracy_score(y, pred)),
            "balanced_accuracy": _f(skm.balanced_accuracy_score(y, pred)),
            "precision_macro": float(np.mean(p)), "recall_macro": float(np.mean(r)),
            "f1_macro": float(skm.f1_score(y, pred, labels=idx, average="macro",
                                           zero_division=0)),
            "f1_weighted": float(skm.f1_score(y, pred, labels=idx, average="weighted",
                                              zero_division=0)),
            # float32 softmax rows sum to 1 within float32 rounding; sklearn wants float64's
            "log_loss": _f(skm.log_loss(y, probs / probs.sum(axis=1, keepdims=True),
                                        labels=idx)),
            "roc_auc": roc_auc, "average_precision": avg_prec, "ece": cal["ece"],
        }
        cm = skm.confusion_matrix(y, pred, labels=idx)
    report = {"task": art.task, "model": art.name, "n_rows": len(y), "labels": labels,
              "metrics": metrics, "per_class": per_class,
              "confusion_matrix": cm.astype(int).tolist(), "calibration": cal}
    if art.task == "binary":
        report["threshold"] = threshold
    return Scored(art, y, report, probs=probs, pred=pred, names=labels)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def score_regression(art: Artifact, out: np.ndarray, y: np.ndarray,
                     names: Sequence[str]) -> Scored:
    """Score model outputs `out` (n, targets) against true values y (n, targets)."""
    from sklearn import metrics as skm

    values = np.asarray(out, np.float64).reshape(len(out), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    with warnings.catch_warnings():  # r2 of a constant target: null, not a warning
        warnings.simplefilter("ignore")
        per_target = {}
        for j, name in enumerate(names):
            per_target[name] = {
                "mae": float(skm.mean_absolute_error(y[:, j], values[:, j])),
                "rmse": float(skm.root_mean_squared_error(y[:, j], values[:, j])),
                "r2": _f(skm.r2_score(y[:, j], values[:, j])) if len(y) > 1 else None,
            }
        metrics = {
            "mae": float(skm.mean_absolute_error(y, values)),
            "rmse": float(skm.root_mean_squared_error(y, values)),
            "r2": _f(skm.r2_score(y, values)) if len(y) > 1 else None,
        }
    report = {"task": art.task, "model": art.name, "n_rows": len(y), "targets": list(names),
              "metrics": metrics, "per_target": per_target}
    return Scored(art, y, report, values=values, names=list(names))


def write_evaluation(scored: Scored, folder: Path, title: str = "") -> list[str]:
    """Write evaluation.json and the figures into `folder` (which exists); the names."""
    from . import evaluate_plot as plots

    files = plots.draw(scored, folder, title or scored.art.name)
    report = {**scored.report, "files": [EVALUATION_FILE, *files]}
    (folder / EVALUATION_FILE).write_text(strict_json(report), "utf-8")
    return [EVALUATION_FILE, *files]


# ---------------------------------------------------------------- the test split


def write_split_evaluation(folder: Path, art: Artifact, out: np.ndarray,
                           prepared: Prepared) -> list[str]:
    """At export: score the test split's model outputs `out` and write the evaluation
    into the artifact folder `folder`."""
    if art.task == "regression":
        y = prepared.y_test
        if prepared.y_scaler is not None:
            y = prepared.y_scaler.inverse(y)  # back to target units, as the model outputs
        scored = score_regression(art, out, y, target_columns(art, {}))
    else:
        scored = score_classification(art, out, prepared.y_test.reshape(-1))
    scored.report["data"] = "test split"
    return write_evaluation(scored, folder, f"{art.name} (test split)")


# ---------------------------------------------------------------- a labelled file


def target_columns(art: Artifact, metadata: dict[str, str],
                   given: Sequence[str] = ()) -> list[str]:
    """The label column(s) to score against: `given`, else the model's target column(s)
    (role 'target' in `specnet.columns`, the `specnet.target` name, or the target names
    of a multi-target regressor)."""
    from .passthrough import role_columns

    if given:
        return list(given)
    declared = role_columns(metadata, "target")
    if declared:
        return declared
    if art.task == "regression" and len(art.target_names) > 1:
        return list(art.target_names)
    if art.target:
        return [art.target]
    return list(art.target_names[:1]) or ["target"]


def _number(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def _canonical(v: str) -> str:
    """'1', '1.0' and ' 1 ' are one label; other text as it is (stripped)."""
    x = _number(v)
    if x is not None and math.isfinite(x) and x == int(x):
        return str(int(x))
    return v.strip()


def class_indices(values: list[Any], labels: list[str], column: str) -> np.ndarray:
    """Class indices (n,) for the label values of `column`; every value must name a class
    (numbers match their text: 1, 1.0 and '1' are class '1'). Raises ModelInputError
    listing every unknown label with the rows it is on."""
    exact = {c: i for i, c in enumerate(labels)}
    loose = {_canonical(c): i for i, c in enumerate(labels)}
    out = np.empty(len(values), np.int64)
    unknown: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        text = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
        if text.strip() == "":
            raise ModelInputError(f"row {i + 1}, column {column!r} (the target): missing "
                                  "label; every row to score needs one")
        j = exact.get(text, loose.get(_canonical(text)))
        if j is None:
            unknown.setdefault(text, []).append(i + 1)
        else:
            out[i] = j
    if unknown:
        from .spec.base import did_you_mean

        parts = []
        for text, rows in list(unknown.items())[:5]:
            where = ", ".join(map(str, rows[:3])) + (", ..." if len(rows) > 3 else "")
            parts.append(f"{text!r} (row{'s' if len(rows) > 1 else ''} {where})"
                         f"{did_you_mean(text, labels, 0.6)}")
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ModelInputError(f"column {column!r} (the target): label(s) the model does not "
                              f"know: {'; '.join(parts)}{more}; the model's classes are "
                              f"{', '.join(map(repr, labels))}")
    return out


def target_values(columns: dict[str, list[Any]]) -> np.ndarray:
    """True values (n, targets) float64 of regression target columns; every cell a finite
    number, else ModelInputError naming the row and the column."""
    n = len(next(iter(columns.values())))
    y = np.empty((n, len(columns)), np.float64)
    for j, (name, values) in enumerate(columns.items()):
        for i, v in enumerate(values):
            x = _number(v)
            if x is None or not math.isfinite(x):
                what = "missing value" if v is None or str(v).strip() == "" else \
                    f"{v!r} is not a finite number"
                raise ModelInputError(f"row {i + 1}, column {name!r} (the target): {what}")
            y[i, j] = x
    return y


def evaluate_file(model: str | Path, path: str, *, input_fmt: str | None = None,
                  target: Sequence[str] = (), threshold: float | None = None,
                  note: Callable[[str], None] | None = None) -> Scored:
    """Score `model` on the labelled rows in `path` ('-': stdin), read as `predict` reads
    its input, with the label column(s) `target` (default: the model's target column)."""
    from .passthrough import read_columns
    from .predict import check_threshold, load_input, run_model
    from .runtime import Runtime

    runtime = Runtime(model)
    art = runtime.artifact
    cut = check_threshold(art, threshold)
    src = load_input(path, input_fmt)
    names = target_columns(art, runtime.metadata, target)
    try:
        truth = read_columns(src, names, "the target")
    except ModelInputError as exc:
        hint = "" if target else "; name the label column with --target"
        raise ModelInputError(f"{src.name}: {exc}{hint}") from None
    out = run_model(runtime, src, note, expected=names)
    try:
        if len(out) != len(truth[names[0]]):
            raise ModelInputError(f"{len(truth[names[0]])} labels for {len(out)} rows")
        if art.task == "regression":
            width = int(np.prod(out.shape[1:])) if out.ndim > 1 else 1
            if width != len(names):
                raise ModelInputError(f"the model predicts {width} target(s), "
                                      f"{len(names)} label column(s) given: "
                                      f"{', '.join(map(repr, names))}")
            scored = score_regression(art, out, target_values(truth), names)
        else:
            if len(names) != 1:
                raise ModelInputError(f"a classifier is scored against one label column, "
                                      f"{len(names)} given")
            classes = art.class_labels or [str(i) for i in range(
                max(2, out.shape[-1] if out.ndim > 1 else 2))]  # as `predictions` names them
            y = class_indices(truth[names[0]], list(classes), names[0])
            scored = score_classification(art, out, y, cut)
    except ModelInputError as exc:
        raise ModelInputError(f"{src.name}: {exc}") from None
    scored.report["data"] = src.name
    scored.report["target"] = names if len(names) > 1 else names[0]
    return scored


# ---------------------------------------------------------------- the printed summary


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def summary(report: dict[str, Any]) -> str:
    """The evaluation as text: metrics, then the per-class table and the confusion matrix
    (classification) or the per-target table (regression)."""
    lines = [f"evaluated {report['model']} ({report['task']}) on {report.get('data', '?')}: "
             f"{report['n_rows']} rows"
             + (f", threshold {report['threshold']:g}" if "threshold" in report else "")]
    items = [f"{k} {_fmt(v)}" for k, v in report["metrics"].items()]
    line = " "
    for item in items:  # wrapped to fit 80 columns
        if len(line) + 2 + len(item) > 80:
            lines.append(line)
            line = " "
        line += " " + " " * (line != " ") + item
    lines.append(line)
    if "per_class" in report:
        labels = report["labels"]
        width = max(8, *(len(c) for c in labels))
        lines.append("")
        lines.append(f"{'class':<{width}}  precision  recall      f1  support     auc")
        for c, m in report["per_class"].items():
            lines.append(f"{c:<{width}}  {m['precision']:9.4f}  {m['recall']:6.4f}  "
                         f"{m['f1']:6.4f}  {m['support']:7d}  {_fmt(m['roc_auc']):>6}")
        lines.append("")
        lines.append("confusion matrix (rows: true, columns: predicted)")
        cm = report["confusion_matrix"]
        cell = max(5, *(len(c) for c in labels), *(len(str(v)) for r in cm for v in r))
        lines.append(f"{'':<{width}}  " + " ".join(f"{c:>{cell}}" for c in labels))
        for c, row in zip(labels, cm, strict=True):
            lines.append(f"{c:<{width}}  " + " ".join(f"{v:>{cell}}" for v in row))
    else:
        width = max(8, *(len(t) for t in report["targets"]))
        lines.append("")
        lines.append(f"{'target':<{width}}  {'mae':>10}  {'rmse':>10}  {'r2':>8}")
        for t, m in report["per_target"].items():
            lines.append(f"{t:<{width}}  {m['mae']:10.4g}  {m['rmse']:10.4g}  "
                         f"{_fmt(m['r2']):>8}")
    return "\n".join(lines) + "\n"
