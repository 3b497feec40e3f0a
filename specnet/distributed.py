"""Data-parallel training over torch.distributed: rank and world from the environment, the
shard of each epoch's permutation, gradient all-reduce, and rank-0-only writes.

A launcher (`torchrun`, `specnet train --nproc N`, a cluster's own) starts one process per
rank and sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
`join()` reads them and joins the process group (gloo on CPU, nccl on CUDA); without them
it returns `Single`, which changes nothing. The trainer only calls the small interface both
share: `shard`, `local_batch`, `micro_batch`, `sync_grads`, `after_step`, `sync_params`,
`gather_epoch`, `sync_buffers`, `gather_optimizer`, `is_writer`.

Semantics (docs/scale.md):
- every rank draws the same seeded permutation of the training rows each epoch (the
  shuffle generator is seeded by `seed` and advanced once per epoch, so the epoch is in the
  seed); it is padded by repeating its first rows to a multiple of the world size, and rank
  r takes positions r, r + world, ... (torch's DistributedSampler);
- `training.batch_size` is the global batch: each rank steps on ceil(batch_size / world)
  rows and gradients are averaged over ranks, so one step sees the same rows as one step of
  a single process;
- `training.accumulate: k` cuts each rank's rows of a step into k micro-batches whose
  gradients add up before the one all-reduce of the step (what DDP's `no_sync()` does for
  all but the last micro-batch);
- `training.local_sgd: {average_every: k}` replaces the per-step gradient all-reduce by
  torch's PeriodicModelAverager: every rank steps on its own gradients and the parameters
  are averaged every k steps and at the end of every epoch (local SGD; a different
  algorithm, see docs/scale.md); each rank's optimizer state is kept in checkpoints;
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
from .spec.schema import Training

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


def micro_rows(rows: int, accumulate: int) -> int:
    """Rows per micro-batch when a rank's `rows` per step are cut into `accumulate` parts."""
    return max(1, math.ceil(rows / accumulate))


class Single:
    """One process: every method leaves things as they are."""

    rank = 0
    world = 1
    local_world = 1
    is_writer = True

    def __init__(self, training: Training | None = None) -> None:
        self._training = training

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

    def after_step(self, params: list[nn.Parameter]) -> None:
        """After each optimizer step (local SGD averages the parameters every k steps)."""

    def sync_params(self, params: list[nn.Parameter]) -> None:
        """At the end of an epoch: make parameters equal on all ranks (local SGD)."""

    def gather_optimizer(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Every rank's optimizer state on rank 0 when ranks keep their own (local SGD),
        else None; a collective: every rank calls it at every checkpoint."""
        return None

    def own_optimizer(self, states: list[dict[str, Any]], path: Path) -> dict[str, Any]:
        """This rank's optimizer state out of a checkpoint's per-rank states."""
        if len(states) != self.world:
            raise TrainingError(
                f"{path} holds the optimizer states of {len(states)} ranks (local_sgd keeps "
                f"one per rank) but this run has {self.world}; resume with --nproc "
                f"{len(states)}, or train without --resume to start over")
        return states[self.rank]

    def averager_step(self) -> int:
        """Optimizer steps the model averager has counted (0 without local SGD)."""
        return 0

    def set_averager_step(self, step: int) -> None:
        """Continue the model averager's count from a checkpoint."""

    def gather_epoch(self, total: Tensor, used: int, outs: Tensor,
                     order: np.ndarray) -> tuple[Tensor, int, Tensor, np.ndarray]:
        """The epoch's loss sum, rows, outputs and their row indices over all ranks."""
        return total, used, outs, order

    def sync_buffers(self, model: nn.Module) -> None:
        """Make buffers (batch-norm running statistics) equal on all ranks."""

    def record(self) -> dict[str, Any]:
        """Keys for metrics.json."""
        t = self._training
        if t is None or t.accumulate == 1:
            return {}
        out: dict[str, Any] = {"global_batch_size": t.batch_size, "accumulate": t.accumulate}
        if isinstance(t.batch_size, int):
            out["micro_batch_size"] = micro_rows(t.batch_size, t.accumulate)
        return out

    def close(self) -> None:
        """Leave the process group."""


class Group(Single):
    """This process as rank `env.rank` of `env.world`, in an initialised process group."""

    _training: Training

    def __init__(self, env: Env, device: torch.device, training: Training) -> None:
        import torch.distributed as dist

        self.env = env
        self.rank, self.world, self.local_world = env.rank, env.world, env.local_world
        self.is_writer = env.rank == 0
        self._training = training
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
        self._averager: Any = None
        if training.local_sgd is not None:
            from torch.distributed.algorithms.model_averaging.averagers import (
                PeriodicModelAverager,
            )

            self._averager = PeriodicModelAverager(period=training.local_sgd.average_every)

    def device(self, device: torch.device) -> torch.device:
        return self._device

    def shard(self, order: Tensor) -> Tensor:
        return shard_rows(order, self.rank, self.world)

    def local_batch(self, batch: int) -> int:
        return max(1, math.ceil(batch / self.world))

    def sync_grads(self, params: list[nn.Parameter]) -> None:
        import torch.distributed as dist

        if self._averager is not None:  # local SGD: each rank steps on its own gradients
            return
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

    def after_step(self, params: list[nn.Parameter]) -> None:
        if self._averager is not None:
            self._averager.average_parameters(params)  # every `period`-th call

    def sync_params(self, params: list[nn.Parameter]) -> None:
        if self._averager is not None:
            from torch.distributed.algorithms.model_averaging.utils import average_parameters

            average_parameters(iter(params), None)  # type: ignore[arg-type]

    def gather_optimizer(self, state: dict[str, Any]) -> list[dict[str, Any]] | None:
        import torch.distributed as dist

        if self._averager is None:
            return None
        states: list[Any] | None = [None] * self.world if self.is_writer else None
        dist.gather_object(state, states, dst=0)
        return states

    def averager_step(self) -> int:
        return int(self._averager.step) if self._averager is not None else 0

    def set_averager_step(self, step: int) -> None:
        if self._averager is not None:
            self._averager.step = step

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
        t = self._training
        bs = t.batch_size
        per_rank = bs if bs == "full" else self.local_batch(int(bs))
        out: dict[str, Any] = {"world_size": self.world, "backend": self.backend,
                               "global_batch_size": bs, "per_rank_batch_size": per_rank}
        if t.accumulate > 1:
            out["accumulate"] = t.accumulate
            if isinstance(per_rank, int):
                out["micro_batch_size"] = micro_rows(per_rank, t.accumulate)
        if t.local_sgd is not None:
            out["sync"] = "local_sgd"
            out["average_every"] = t.local_sgd.average_every
        else:
            out["sync"] = "gradients"
        return out

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def join(device: torch.device, training: Training) -> Single:
    """Group when this process was launched as a rank (see `from_env`), else Single."""
    env = from_env()
    if env is None or env.world == 1:
        return Single(training)
    return Group(env, device, training)


def describe(group: Single, training: Training, train_rows: int) -> str | None:
    """The startup line of a data-parallel or accumulating run (None for a plain one):
    rows per optimizer step and how they are split over ranks and micro-batches."""
    k = training.accumulate
    if group.world == 1 and k == 1:
        return None
    bs = training.batch_size
    step = train_rows if bs == "full" else int(bs)
    per_rank = min(group.local_batch(step), math.ceil(train_rows / group.world))
    parts = []
    if group.world > 1:
        parts.append(f"{group.world} ranks x {per_rank} rows")
    if k > 1:
        parts.append(f"{k} micro-batches of {micro_rows(per_rank, k)} rows"
                     + (" per rank" if group.world > 1 else ""))
    line = f"{step} rows per optimizer step = {', '.join(parts)}"
    if group.world > 1:
        ls = training.local_sgd
        line += (f"; parameters averaged every {ls.average_every} steps (local SGD)"
                 if ls is not None else "; gradients all-reduced every step")
    return line


# ---------------------------------------------------------------- --nproc

_LAUNCHER_LOGGERS = ("torch.distributed.elastic", "torch.multiprocessing.spawn",
                     "torch.distributed.launcher")


@record
def _worker(spec: str, run_dir: str, resume: bool, quiet: bool, threads: int | None,
            tensorboard: str | None = None, mlflow: str | None = None
            ) -> dict[str, Any] | None:
    """One rank of `launch`: train and return the metrics (rank 0) or None. Rank 0 alone
    logs to the trackers asked for (`--tensorboard`, `--mlflow`)."""
    from .track import tracking
    from .trainer import train

    writer = is_writer()
    checked = None
    if writer and (tensorboard is not None or mlflow is not None):
        from .spec.validate import load_spec

        checked = load_spec(spec).spec
    with tracking(name=checked.name if checked else "", run_name="train",
                  tensorboard=tensorboard if checked else None,
                  mlflow=mlflow if checked else None, spec=checked) as trackers:
        run = train(spec, run_dir, resume=resume, quiet=quiet or not writer, threads=threads,
                    callbacks=[trackers])
        trackers.run_done(run)  # nothing to log on other ranks: no trackers there
    return run.metrics if writer else None


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
           quiet: bool = False, threads: int | None = None,
           tensorboard: str | Path | None = None, mlflow: str | None = None) -> dict[str, Any]:
    """Train `spec` on `nproc` local processes through torch's elastic launcher (gloo on
    CPU, nccl on CUDA); returns rank 0's metrics. `tensorboard` / `mlflow`: where rank 0
    logs the run (as `specnet train --tensorboard DIR --mlflow URI`).

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
            str(spec), str(run_dir), resume, quiet, threads,
            None if tensorboard is None else str(tensorboard), mlflow)
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
