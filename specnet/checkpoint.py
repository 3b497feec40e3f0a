"""Resumable training checkpoints and the final weights file, loadable without unpickling code.

A checkpoint is one `torch.save` file of plain containers, tensors and numbers, read back
with `torch.load(weights_only=True)` (no classes, no code). It is written atomically:
`checkpoints/epoch_00012.pt` is either absent or complete. Only the newest is kept.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import TrainingError
from .io import atomic_write_bytes

FORMAT = 1
_NAME = re.compile(r"^epoch_(\d+)\.pt$")


def rng_state(shuffle: torch.Generator) -> dict[str, Any]:
    """Every random state training touches: python, numpy, torch (+cuda), the shuffle order."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [str(kind), torch.from_numpy(np.asarray(keys, np.int64)), int(pos),
                  int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    """Inverse of `rng_state`."""
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    shuffle.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    """Lists back to tuples (random.setstate wants nested tuples)."""
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def to_bytes(obj: Any) -> bytes:
    """`torch.save` into memory."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def checkpoint_path(folder: Path, epoch: int) -> Path:
    """checkpoints/epoch_00012.pt for `epoch` completed epochs."""
    return folder / f"epoch_{epoch:05d}.pt"


def save(folder: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Write the checkpoint after `epoch` completed epochs atomically; drop older ones."""
    path = checkpoint_path(folder, epoch)
    atomic_write_bytes(path, to_bytes({"format": FORMAT, "epoch": epoch, **state}))
    for old in list_checkpoints(folder):
        if old != path:
            old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in `folder`, oldest first (temporary files are not listed)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


_KEYS = {"format": int, "epoch": int, "spec_hash": str, "model": dict, "optimizer": dict,
         "schedule": dict, "rng": dict, "history": list, "best": dict, "stopped": bool,
         "training_time_s": float}


def load(path: Path, max_epoch: int | None = None) -> dict[str, Any]:
    """Read a checkpoint without unpickling code; TrainingError if it is not one.

    With `max_epoch` (the spec's training.epochs), also checks the keys the trainer reads
    and their types, and that `epoch` is in 0..max_epoch and matches the history's length.
    Shapes are checked when the state is loaded into the model.
    """
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's text suggests weights_only=False: never, a pickle may run code.
        raise TrainingError(f"{path}: not a specnet checkpoint: it holds pickled Python "
                            "objects, which specnet never loads (they could run code); "
                            "remove it and train without --resume") from None
    except Exception as exc:  # a truncated or foreign file: say which and why
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrainingError(f"{path}: not a readable specnet checkpoint ({text})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TrainingError(f"{path}: not a specnet checkpoint (format {FORMAT})")
    if max_epoch is not None:
        _check_contents(state, path, max_epoch)
    return state


def _check_contents(state: dict[str, Any], path: Path, top: int) -> None:
    """TrainingError unless the checkpoint has every key the trainer reads, with its type,
    and an epoch in 0..top that matches its history."""
    bad = [f"{k} ({'missing' if k not in state else type(state[k]).__name__})"
           for k, t in _KEYS.items()
           if not isinstance(state.get(k), t if t is not float else (float, int))
           or (t is int and isinstance(state.get(k), bool))]
    if bad:
        raise TrainingError(f"{path}: a damaged specnet checkpoint: {', '.join(bad)}; remove it "
                            "and train without --resume")
    epoch = state["epoch"]
    if not 0 <= epoch <= top or len(state["history"]) != epoch:
        raise TrainingError(f"{path}: a damaged specnet checkpoint: epoch {epoch} (expected "
                            f"0..{top}, with one history row per epoch, got "
                            f"{len(state['history'])}); remove it and train without --resume")


def clean_temporaries(folder: Path) -> None:
    """Remove half-written temporary files a killed process left behind."""
    if folder.is_dir():
        for p in folder.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def save_weights(path: Path, state_dict: dict[str, Tensor]) -> None:
    """Write a state_dict (parameters and buffers) as safetensors, atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors))


def load_weights(path: Path) -> dict[str, Tensor]:
    """Read a safetensors state_dict; TrainingError naming the file if it cannot be read."""
    from safetensors.torch import load

    try:
        return load(path.read_bytes())
    except Exception as exc:  # OSError, or safetensors' own error on a bad header
        raise TrainingError(f"{path}: cannot read weights ({exc})") from None
