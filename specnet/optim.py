"""Optimizers, learning-rate schedules and the explicit L1 / L2 penalties.

The schedule is computed by specnet (not torch.optim.lr_scheduler) so that warm-up combines
with any schedule and its whole state is a few numbers in the checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .spec.schema import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    CosineLR,
    ExponentialLR,
    Momentum,
    Nesterov,
    Optimizer,
    PlateauLR,
    RMSprop,
    Schedule,
    StepLR,
)


def build_optimizer(opt: Optimizer, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The torch optimizer for the spec's `optimizer:` section over `params`.

    SGD (all three kinds), Adam, AdamW and Adagrad use torch's fused kernels (one kernel per
    parameter instead of a dozen small ops): about a third less time per step for the small
    networks specs describe, deterministic, same update rule. RMSprop has no fused kernel.
    """
    wd = opt.weight_decay
    fused = {"fused": True} if _fusable(params) else {}
    if isinstance(opt, Momentum):
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum,
                               dampening=opt.dampening, weight_decay=wd, **fused)
    if isinstance(opt, Nesterov):
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, nesterov=True,
                               weight_decay=wd, **fused)
    if isinstance(opt, SGD):
        return torch.optim.SGD(params, lr=opt.lr, weight_decay=wd, **fused)
    if isinstance(opt, RMSprop):
        return torch.optim.RMSprop(params, lr=opt.lr, alpha=opt.alpha, eps=opt.eps,
                                   momentum=opt.momentum, centered=opt.centered,
                                   weight_decay=wd)
    if isinstance(opt, AdamW):
        return torch.optim.AdamW(params, lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                 amsgrad=opt.amsgrad, weight_decay=wd, **fused)
    if isinstance(opt, Adam):
        return torch.optim.Adam(params, lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                amsgrad=opt.amsgrad, weight_decay=wd, **fused)
    if isinstance(opt, Adagrad):
        return torch.optim.Adagrad(params, lr=opt.lr, lr_decay=opt.lr_decay, eps=opt.eps,
                                   weight_decay=wd, **fused)
    raise ValueError(f"unknown optimizer {opt.type!r}")  # unreachable: closed registry


def _fusable(params: list[nn.Parameter]) -> bool:
    """Fused kernels need float parameters on CPU or CUDA (and torch >= 2.4 for CPU)."""
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def penalized_weights(model: nn.Module) -> list[Tensor]:
    """The weights the L1 / L2 penalties apply to: linear and conv kernels only.

    Biases, batchnorm / layernorm scales and PReLU slopes are left alone, as usual.
    """
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [m.weight for m in model.modules() if isinstance(m, kinds)]


def penalty(weights: list[Tensor], l1: float, l2: float) -> Tensor | None:
    """l1 * sum(|w|) + l2 * sum(w**2) over `weights`, or None when both are zero.

    This is an explicit term added to the loss, so its gradient flows through the optimizer
    (Adam rescales it); `optimizer.weight_decay` instead decays weights inside the step.
    """
    if not weights or (l1 == 0 and l2 == 0):
        return None
    total: Tensor | None = None
    if l2 > 0:
        total = l2 * sum(w.pow(2).sum() for w in weights)  # type: ignore[assignment]
    if l1 > 0:
        term = l1 * sum(w.abs().sum() for w in weights)
        total = term if total is None else total + term  # type: ignore[assignment]
    return total


def better(value: float, best: float, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` improves on `best` by more than `min_delta` ('min' or 'max' mode).

    NaN never improves; anything finite improves on an infinite `best`.
    """
    if math.isnan(value):
        return False
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


_SMALLER_IS_BETTER = ("loss", "mse", "mae", "rmse")


def monitor_mode(name: str, mode: str = "auto") -> str:
    """'min' or 'max' for a history column; auto: min for losses and errors, else max."""
    if mode != "auto":
        return mode
    return "min" if name.removeprefix("val_") in _SMALLER_IS_BETTER else "max"


class LRSchedule:
    """Per-epoch learning rate: linear warm-up, then constant / step / exponential / cosine /
    plateau. Epochs count from 0; `lr(epoch)` is the rate used during that epoch.

    Warm-up rises linearly from lr / (warmup + 1) to lr over `warmup_epochs` epochs; the
    schedule proper then starts at its epoch 0.
    """

    def __init__(self, schedule: Schedule | None, base_lr: float, epochs: int) -> None:
        self.schedule = schedule
        self.base_lr = base_lr
        self.warmup = schedule.warmup_epochs if schedule is not None else 0
        self.epochs = epochs
        # Plateau state (the only schedule with memory).
        self.scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0
        self.mode = "min"
        if isinstance(schedule, PlateauLR):
            self.mode = monitor_mode(schedule.monitor)
            self.best = math.inf if self.mode == "min" else -math.inf

    def lr(self, epoch: int) -> float:
        """The learning rate for `epoch` (0-based)."""
        s = self.schedule
        if epoch < self.warmup:
            return self.base_lr * (epoch + 1) / (self.warmup + 1)
        t = epoch - self.warmup
        if isinstance(s, StepLR):
            return self.base_lr * s.gamma ** (t // s.step_size)
        if isinstance(s, ExponentialLR):
            return self.base_lr * s.gamma ** t
        if isinstance(s, CosineLR):
            span = s.t_max or max(1, self.epochs - self.warmup)
            frac = min(t, span) / span
            return s.eta_min + (self.base_lr - s.eta_min) * (1 + math.cos(math.pi * frac)) / 2
        if isinstance(s, PlateauLR):
            return max(self.base_lr * self.scale, s.min_lr)
        return self.base_lr

    def observe(self, epoch: int, row: dict[str, float]) -> None:
        """Feed the end-of-epoch history row (plateau watches its monitor column)."""
        s = self.schedule
        if not isinstance(s, PlateauLR) or epoch < self.warmup:
            return
        value = row.get(s.monitor, math.nan)
        if better(value, self.best, self.mode):
            self.best = value
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > s.patience:
            self.scale *= s.factor
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        """The plateau state (plain floats and ints)."""
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
