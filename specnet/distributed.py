"""Data-parallel training over torch.distributed: rank and world from the environment, the
shard of each epoch's permutation, gradient all-reduce, and rank-0-only writes.

A launcher (`torchrun`, `specnet train --nproc N`, a cluster's own) starts one process per
rank and sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
`join()` reads them and joins the process group (gloo on CPU, nccl on CUDA); without them
it returns `Single`, which changes nothing. The trainer only calls the small interface both
share: `shard`, `local_batch`, `sync_grads`, `gather_epoch`, `sync_buffers`, `is_writer`.

Semantics (docs/scale.md):
- every rank draws the same seeded permutation of the training rows each epoch (the
  shuffle generator is seeded by `seed` and advanced once per epoch, so the epoch is in the
  seed); it is padded by repeating its first rows to a multiple of the world size, and rank
  r takes positions r, r + world, ... (torch's DistributedSampler);
- `training.batch_size` is the global batch: each rank steps on ceil(batch_size / world)
  rows and gradients are averaged over ranks, so one step sees the same rows as one step of
  a single process;
- every rank evaluates the full validation and test splits itself (identical weights give
  identical figures, so early stopping agrees on every rank without messages); the training
  split's per-epoch metrics are gathered from all ranks with padded duplicates dropped;
- batch-norm running statistics are averaged over ranks at the end of every epoch;
- rank 0 alone writes checkpoints and artifacts; every rank reads the checkpoint to resume.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributed.elastic.multiprocessing.errors import record

from .errors import TrainingError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The variables a launcher sets for every rank (LOCAL_WORLD_SIZE is optional)."""

TIMEOUT = timedelta(minutes=10)
"""How long a collective waits for a missing rank before failing."""


@dataclass(frozen=True)
class Env:
    """A rank's place in the job, from the launcher's environment."""

    rank: int
    world: int
    local_rank: int
    local_world: int


def from_env(environ: Mapping[str, str] | None = None) -> Env | None:
    """The Env a launcher set, or None when this process was not launched as one of several.

    Raises TrainingError naming the variables that are missing or not integers.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return None
    missing = [v for v in ENV_VARS if not env.get(v)]
    if missing:
        raise TrainingError(
            f"the environment looks like a distributed launch (RANK/WORLD_SIZE set) but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing; launch "
            "with torchrun or specnet train --nproc N, or unset RANK and WORLD_SIZE")
    try:
        rank, world, local = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
        local_world = int(env.get("LOCAL_WORLD_SIZE") or world)
        int(env["MASTER_PORT"])
    except ValueError as exc:
        raise TrainingError(f"bad distributed environment: {exc}") from None
    if world < 1 or not 0 <= rank < world or not 0 <= local < local_world:
        raise TrainingError(f"bad distributed environment: RANK {rank}, WORLD_SIZE {world}, "
                            f"LOCAL_RANK {local}, LOCAL_WORLD_SIZE {local_world}")
    return Env(rank, world, local, local_world)


def is_writer() -> bool:
    """Whether this process writes (rank 0, or not launched as a rank)."""
    env = from_env()
    return env is None or env.rank == 0


def shard_rows(order: Tensor, rank: int, world: int) -> Tensor:
    """Rank `rank`'s rows of the permutation `order` (n,), as torch's DistributedSampler
    takes them: padded by repeating its first rows to a multiple of `world`, then every
    `world`-th position from `rank`. Every rank gets ceil(n / world) rows."""
    n = len(order)
    total = math.ceil(n / world) * world
    padded = order
    if total > n:
        padded = order.repeat(math.ceil(total / n))[:total]
    return padded[rank::world]


class Single:
    """One process: every method leaves things as they are."""

    rank = 0
    world = 1
    local_world = 1
    is_writer = True

    def device(self, device: torch.device) -> torch.device:
        """The device this rank trains on."""
        return device

    def shard(self, order: Tensor) -> Tensor:
        """This rank's rows of the epoch's permutation `order` (n,)."""
        return order

    def local_batch(self, batch: int) -> int:
        """Rows per step on this rank for the global batch `batch`."""
        return batch

    def sync_grads(self, params: list[nn.Parameter]) -> None:
        """Average gradients over ranks (after backward, before clipping and the step)."""

    def gather_epoch(self, total: Tensor, used: int, outs: Tensor,
                     order: np.ndarray) -> tuple[Tensor, int, Tensor, np.ndarray]:
        """The epoch's loss sum, rows, outputs and their row indices over all ranks."""
        return total, used, outs, order

    def sync_buffers(self, model: nn.Module) -> None:
        """Make buffers (batch-norm running statistics) equal on all ranks."""

    def record(self) -> dict[str, Any]:
        """Keys for metrics.json."""
        return {}

    def close(self) -> None:
        """Leave the process group."""


class Group(Single):
    """This process as rank `env.rank` of `env.world`, in an initialised process group."""

    def __init__(self, env: Env, device: torch.device, batch_size: int | str) -> None:
        import torch.distributed as dist

        self.env = env
        self.rank, self.world, self.local_world = env.rank, env.world, env.local_world
        self.is_writer = env.rank == 0
        self._batch_size = batch_size
        self._device = device
        if device.type == "cuda":
            self._device = torch.device("cuda", env.local_rank % max(1, torch.cuda.device_count()))
            torch.cuda.set_device(self._device)
        backend = "nccl" if self._device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            try:
                dist.init_process_group(backend, init_method="env://", timeout=TIMEOUT,
                                        rank=env.rank, world_size=env.world)
            except (RuntimeError, ValueError) as exc:
                raise TrainingError(
                    f"rank {env.rank} of {env.world} could not join the process group at "
                    f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} "
                    f"({backend}): {exc}") from None
        self.backend = backend

    def device(self, device: torch.device) -> torch.device:
        return self._device

    def shard(self, order: Tensor) -> Tensor:
        return shard_rows(order, self.rank, self.world)

    def local_batch(self, batch: int) -> int:
        return max(1, math.ceil(batch / self.world))

    def sync_grads(self, params: list[nn.Parameter]) -> None:
        import torch.distributed as dist

        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def gather_epoch(self, total: Tensor, used: int, outs: Tensor,
                     order: np.ndarray) -> tuple[Tensor, int, Tensor, np.ndarray]:
        import torch.distributed as dist

        sums = torch.stack([total.float(), torch.tensor(float(used), device=total.device)])
        dist.all_reduce(sums)
        outs = outs.float().contiguous()
        rows = torch.from_numpy(np.ascontiguousarray(order, dtype=np.int64)).to(outs.device)
        # Every rank ran the same number of steps on shards of equal length: equal shapes.
        all_outs = [torch.empty_like(outs) for _ in range(self.world)]
        all_rows = [torch.empty_like(rows) for _ in range(self.world)]
        dist.all_gather(all_outs, outs)
        dist.all_gather(all_rows, rows)
        merged = torch.cat(all_rows).cpu().numpy()
        _, first = np.unique(merged, return_index=True)  # drop the padded repeats
        keep = np.sort(first)
        out = torch.cat(all_outs)[torch.from_numpy(keep).to(outs.device)]
        return sums[0], int(sums[1].item()), out, merged[keep]

    def sync_buffers(self, model: nn.Module) -> None:
        import torch.distributed as dist

        for buf in model.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf)
                buf.div_(self.world)

    def record(self) -> dict[str, Any]:
        bs = self._batch_size
        return {"world_size": self.world, "backend": self.backend,
                "global_batch_size": bs,
                "per_rank_batch_size": bs if bs == "full" else self.local_batch(int(bs))}

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def join(device: torch.device, batch_size: int | str) -> Single:
    """Group when this process was launched as a rank (see `from_env`), else Single."""
    env = from_env()
    if env is None or env.world == 1:
        return Single()
    return Group(env, device, batch_size)


# ---------------------------------------------------------------- --nproc

_LAUNCHER_LOGGERS = ("torch.distributed.elastic", "torch.multiprocessing.spawn",
                     "torch.distributed.launcher")


@record
def _worker(spec: str, run_dir: str, resume: bool, quiet: bool,
            threads: int | None) -> dict[str, Any] | None:
    """One rank of `launch`: train and return the metrics (rank 0) or None."""
    from .trainer import train

    run = train(spec, run_dir, resume=resume, quiet=quiet or not is_writer(), threads=threads)
    return run.metrics if is_writer() else None


def _describe(failures: Mapping[int, Any]) -> str:
    """The first failure of a ChildFailedError as one line."""
    rank, failure = min(failures.items(), key=lambda kv: kv[1].timestamp)
    message = str(getattr(failure, "message", "") or "")
    if isinstance(failure.message, dict):
        message = str(failure.message.get("message", ""))
    if failure.exitcode < 0 or not message or message.startswith("To enable traceback"):
        how = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0
               else f"exited with code {failure.exitcode}")
        return (f"rank {rank} (pid {failure.pid}) {how}; the other ranks were stopped "
                "and nothing more was written")
    # "TrainingError: epoch 3: ..." -> the message without the class name
    head, _, rest = message.partition(": ")
    text = rest if head.endswith("Error") and rest else message
    return f"rank {rank} failed: {text}"


def launch(spec: str | Path, nproc: int, run_dir: str | Path, *, resume: bool = False,
           quiet: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Train `spec` on `nproc` local processes through torch's elastic launcher (gloo on
    CPU, nccl on CUDA); returns rank 0's metrics.

    A rank that fails ends the run: the launcher stops the others, and TrainingError names
    the rank and why. No process outlives the call.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"specnet-{uuid.uuid4().hex}",
        rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0,
        monitor_interval=0.1, start_method="spawn")
    # The launcher logs each failure with its traceback; the error below says it in a line.
    loggers = [logging.getLogger(name) for name in _LAUNCHER_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        results = elastic_launch(config, _worker)(
            str(spec), str(run_dir), resume, quiet, threads)
    except ChildFailedError as exc:
        raise TrainingError(_describe(exc.failures)) from None
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    sys.stdout.flush()
    metrics = results.get(0)
    if not isinstance(metrics, dict):
        raise TrainingError("rank 0 returned no metrics")
    return metrics
