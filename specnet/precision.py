"""Mixed precision for the training step: `training.precision: fp32 | bf16 | fp16`.

fp32 does nothing. bf16 runs the forward pass and the loss under `torch.autocast` in
bfloat16 (CPU and GPU; bfloat16 has fp32's range, so no loss scaling is needed). fp16 runs
them in float16 on CUDA with a `GradScaler`: the loss is scaled before backward, gradients
are unscaled before clipping, and a step whose gradients overflowed is skipped while the
scale shrinks. Weights, optimizer state, evaluation and the exported model stay fp32.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from .errors import TrainingError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The autocast context and (for fp16) the loss scaler of one training run."""

    def __init__(self, name: str, device: torch.device) -> None:
        self.name = name
        self.device = device
        self.dtype = _DTYPES.get(name)
        self.scaler: Any = None
        if name == "fp16":
            if device.type != "cuda":
                raise TrainingError(
                    f"training.precision: fp16 needs a CUDA device (this run trains on "
                    f"{device.type}); on a CPU use precision: bf16, or fp32")
            self.scaler = torch.amp.GradScaler("cuda")
        elif name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainingError(
                f"training.precision: bf16 is not supported by "
                f"{torch.cuda.get_device_name(device)}; use fp16 (with loss scaling) or fp32")

    def autocast(self) -> AbstractContextManager[Any]:
        """Context for the forward pass and the loss."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, objective: Tensor) -> None:
        """objective.backward(), scaled for fp16."""
        (objective if self.scaler is None else self.scaler.scale(objective)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring fp16-scaled gradients back to their true size (before clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(); for fp16 skipped when gradients overflowed, then the scale
        is updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The loss scaler's state ({} unless fp16), for checkpoints."""
        return dict(self.scaler.state_dict()) if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
