"""The loss registry: spec loss -> a torch criterion and the target form it trains on.

Targets are converted once per split (not per batch): class indices stay int64 for
cross_entropy / nll / multi-class hinge; binary targets become float 0/1 for bce and
±1 for hinge; regression targets stay float (n, targets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .spec.schema import BCE, NLL, CrossEntropy, Hinge, Huber, Spec


@dataclass
class LossFn:
    """A criterion `(outputs, targets) -> mean loss` and the target conversion it needs.

    outputs: the model's raw outputs, (batch, classes) or (batch, 1) or (batch, targets).
    `target(y)` maps a whole split's y (as stored in Prepared) to what `criterion` takes.
    """

    name: str
    criterion: nn.Module
    target: Callable[[Tensor], Tensor]


class BinaryHinge(nn.Module):
    """mean(max(0, margin - t * score)) for one output per row and targets t in {-1, +1}."""

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, score: Tensor, target: Tensor) -> Tensor:
        """score, target: (batch, 1) float."""
        return torch.clamp(self.margin - target * score, min=0).mean()


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (classes * count_c) per class, as sklearn's class_weight='balanced' (float32).

    A class absent from `y` gets weight 1 (it never appears as a target anyway).
    """
    counts = np.bincount(y.astype(np.int64), minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return weights.astype(np.float32)


def _class_weights(loss: CrossEntropy | NLL, y_train: np.ndarray,
                   n_classes: int) -> Tensor | None:
    cw = loss.class_weights
    if cw is None:
        return None
    if cw == "balanced":
        return torch.from_numpy(balanced_class_weights(y_train, n_classes))
    return torch.tensor(cw, dtype=torch.float32)


def _as_float_column(y: Tensor) -> Tensor:
    return y.reshape(-1, 1).to(torch.float32)


def _as_signed_column(y: Tensor) -> Tensor:
    return y.reshape(-1, 1).to(torch.float32) * 2 - 1


def _same(y: Tensor) -> Tensor:
    return y


def build_loss(spec: Spec, y_train: np.ndarray, n_outputs: int) -> LossFn:
    """The criterion for `spec.loss_name`, with class / positive weights fitted on `y_train`.

    y_train: the training split's targets (class indices, or values for regression);
    n_outputs: width of the model's output (number of classes for classification).
    """
    name = spec.loss_name
    loss = spec.loss
    if name == "mse":
        return LossFn(name, nn.MSELoss(), _same)
    if name == "mae":
        return LossFn(name, nn.L1Loss(), _same)
    if name == "huber":
        delta = loss.delta if isinstance(loss, Huber) else 1.0
        return LossFn(name, nn.HuberLoss(delta=delta), _same)
    if name == "cross_entropy":
        ce = loss if isinstance(loss, CrossEntropy) else CrossEntropy()
        return LossFn(name, nn.CrossEntropyLoss(weight=_class_weights(ce, y_train, n_outputs),
                                                label_smoothing=ce.label_smoothing), _same)
    if name == "nll":
        nll = loss if isinstance(loss, NLL) else NLL()
        return LossFn(name, nn.NLLLoss(weight=_class_weights(nll, y_train, n_outputs)), _same)
    if name == "bce":
        pw = loss.pos_weight if isinstance(loss, BCE) else None
        pos_weight = None
        if pw == "balanced":
            pos = float((y_train == 1).sum())
            pw = (len(y_train) - pos) / pos if pos > 0 else 1.0
        if pw is not None:
            pos_weight = torch.tensor([float(pw)], dtype=torch.float32)
        return LossFn(name, nn.BCEWithLogitsLoss(pos_weight=pos_weight), _as_float_column)
    if name == "hinge":
        margin = loss.margin if isinstance(loss, Hinge) else 1.0
        if spec.task == "binary":
            return LossFn(name, BinaryHinge(margin), _as_signed_column)
        return LossFn(name, nn.MultiMarginLoss(margin=margin), _same)
    raise ValueError(f"unknown loss {name!r}")  # unreachable: the schema's registry is closed
