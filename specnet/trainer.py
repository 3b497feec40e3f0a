"""The generic training loop: one spec in, a trained model, its history and metrics out.

Batches are slices of tensors already in memory (no DataLoader, no per-sample collation),
reordered once per epoch by a permutation from a seeded generator. The loop syncs with the
device once per epoch (the running loss is a sum of detached tensors), so it runs as fast
as a hand-written loop. Same spec and seed give bit-identical weights on CPU, also when a
killed run is resumed from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import random
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch
from torch import Tensor, nn

from . import checkpoint as ckpt
from . import distributed
from . import threads as threads_
from .compile import compile_spec
from .data.prepare import Prepared, Scaler, prepare
from .data.sources import SourceInfo
from .data.stream import SplitRows
from .errors import DataError, ModelInputError, TrainingError
from .io import atomic_write_text, strict_json
from .losses import LossFn, build_loss
from .metrics import compute
from .optim import (
    LRSchedule,
    better,
    build_optimizer,
    monitor_mode,
    penalized_weights,
    penalty,
    set_lr,
)
from .precision import Precision
from .spec.resolve import dump_resolved, spec_hash
from .spec.schema import Spec
from .spec.validate import check, load_spec

if TYPE_CHECKING:
    from .track import Callback

ARTIFACTS = ("spec.yaml", "history.csv", "metrics.json", "learning_curve.png",
             "weights.safetensors", "preprocessing.json")
"""Files of a finished run folder (plus checkpoints/)."""

_EVAL_CHUNK = 8192


@dataclass
class Run:
    """A trained model with everything needed to evaluate, export or resume it.

    model: best weights restored, eval mode, on CPU. history: one row per epoch with
    epoch, loss, val_loss, <metric>, val_<metric>, lr, seconds. metrics: {"train": {...},
    "val": {...}, "test": {...}, "training_time_s": float, "epochs_run": int, ...}.
    """

    spec: Spec
    model: nn.Sequential
    prepared: Prepared
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    run_dir: Path | None
    info: SourceInfo


# ---------------------------------------------------------------- helpers


def _device(name: str) -> torch.device:
    """torch.device for the spec's `device:`; TrainingError when cuda is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        build = torch.__version__
        raise TrainingError(
            f"device: cuda, but no CUDA device is available to torch {build} "
            f"({'a CPU-only build' if torch.version.cuda is None else 'no GPU found'}); "
            "use device: cpu, or device: auto to take a GPU only when there is one")
    return torch.device(name)


def _checked(spec: Spec | str | Path) -> tuple[Spec, SourceInfo, int]:
    """Validate and shape-check; returns the spec, its data info and the output width."""
    checked = load_spec(spec) if isinstance(spec, str | Path) else check(spec)
    out = checked.summary.output_shape
    return checked.spec, checked.info, int(np.prod(out)) if out else 1


@torch.no_grad()
def _outputs(model: nn.Module, X: Tensor) -> Tensor:
    """Model outputs for a whole split in eval-sized chunks: (n, outputs)."""
    if len(X) <= _EVAL_CHUNK:
        return model(X)
    return torch.cat([model(X[i:i + _EVAL_CHUNK]) for i in range(0, len(X), _EVAL_CHUNK)])


def _clone_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"


def _nonfinite_message(epoch: int, what: str, value: float, spec: Spec, lr: float,
                       kept: Path | None) -> str:
    causes = [f"the learning rate is too high (optimizer.lr {spec.optimizer.lr:g}, "
              f"{lr:g} this epoch): try {spec.optimizer.lr / 10:g}"]
    if spec.data.normalize == "none":
        causes.append("inputs are not normalized (data.normalize: none): use standard")
    if spec.task == "regression" and spec.data.target_normalize == "none":  # auto is standard
        causes.append("regression targets are large: set data.target_normalize: standard")
    if spec.regularization.grad_clip is None:
        causes.append("exploding gradients: add regularization.grad_clip: {norm: 1.0}")
    lines = [f"epoch {epoch}: the {what} is {value} (not finite); training stopped.",
             "likely causes: " + "; ".join(causes)]
    if kept is not None:
        lines.append(f"the last good checkpoint is kept: {kept}")
    return "\n".join(lines)


class _Progress:
    """A tqdm bar on a terminal (one line that fits its width), otherwise a line every
    `every` epochs (default: about 20 lines a run, and always the last epoch), nothing
    when quiet."""

    # percentage, a 16-cell bar, count, times; the postfix gets what is left of the width.
    _FORMAT = "{percentage:3.0f}%|{bar:16}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
    _FIXED = 46

    def __init__(self, total: int, start: int, quiet: bool, stream: TextIO | None = None,
                 every: int | None = None):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.total = total
        self.every = every if every is not None else max(1, total // 20)
        self.bar: Any = None
        if not quiet and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="epoch", file=self.stream,
                            bar_format=self._FORMAT, dynamic_ncols=True, leave=True)

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, file=self.stream, flush=True)

    def _postfix(self, shown: dict[str, float]) -> str:
        """As many `name=value` items as fit the terminal, losses first."""
        width = shutil.get_terminal_size((80, 24)).columns
        if self.bar is not None and self.bar.ncols:
            width = self.bar.ncols
        room = width - self._FIXED
        order = sorted(shown, key=lambda k: (0 if k.endswith("loss") else 1, k.startswith("lr")))
        parts: list[str] = []
        for key in order:
            item = f"{key}={_fmt(shown[key])}"
            if len(", ".join([*parts, item])) + 2 > room:
                break
            parts.append(item)
        return ", ".join(parts)

    def epoch(self, row: dict[str, float]) -> None:
        if self.quiet:
            return
        shown = {k: v for k, v in row.items() if k not in ("epoch", "seconds")}
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(shown), refresh=False)
            self.bar.update(1)
            return
        epoch = int(row["epoch"])
        if epoch % self.every and epoch != self.total:
            return
        parts = "  ".join(f"{k} {_fmt(v)}" for k, v in shown.items())
        print(f"epoch {epoch}/{self.total}  {parts}  {row['seconds']:.2f}s",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------- the trainer


class _Trainer:
    """State of one training run; `fit` runs the epochs, `state`/`restore` checkpoint it."""

    def __init__(self, spec: Spec, info: SourceInfo, n_out: int, prepared: Prepared,
                 device: torch.device, group: distributed.Single | None = None) -> None:
        self.spec = spec
        self.group = group or distributed.Single()
        self.amp = Precision(spec.training.precision, device)
        self.info = info
        self.prepared = prepared
        self.device = device
        self.metrics = spec.metric_names
        self.model = compile_spec(spec, info).to(device)
        self.loss: LossFn = build_loss(spec, prepared.y_train, n_out)
        self.loss.criterion.to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(spec.optimizer, self.params)
        self.schedule = LRSchedule(spec.training.schedule, spec.optimizer.lr,
                                   spec.training.epochs)
        self.penalized = penalized_weights(self.model)
        self.shuffle = torch.Generator().manual_seed(spec.seed)
        self.has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                 for m in self.model.modules())
        # Whole splits on the device once; targets in the form the loss trains on. A
        # streamed set (data.stream) keeps its features in the file: batches are gathered
        # per step and splits evaluated chunk by chunk (specnet.data.stream).
        self.streamed = {s: getattr(prepared, f"X_{s}") for s in ("train", "val", "test")
                         if isinstance(getattr(prepared, f"X_{s}"), SplitRows)}
        self.X = {s: torch.from_numpy(getattr(prepared, f"X_{s}")).to(device)
                  for s in ("train", "val", "test") if s not in self.streamed}
        self.Y = {s: self.loss.target(torch.from_numpy(getattr(prepared, f"y_{s}"))).to(device)
                  for s in ("train", "val", "test")}
        # Targets for the metrics, in user units (regression targets scaled back).
        self.y_user = {s: self._user(getattr(prepared, f"y_{s}")) for s in ("train", "val", "test")}
        es = spec.training.early_stopping
        if es is not None and es.monitor.startswith("val_") and len(prepared.X_val) == 0:
            raise TrainingError(
                f"training.early_stopping.monitor: {es.monitor} watches the validation split, "
                "but the data has no validation rows; monitor loss (or a training metric) "
                "or give data.split.validation > 0")
        self.es_mode = monitor_mode(es.monitor, es.mode) if es is not None else "min"
        # Progress of the run (all of it goes into checkpoints).
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best_score = math.inf if self.es_mode == "min" else -math.inf
        self.best_epoch = 0
        self.best_state: dict[str, Tensor] | None = None
        self.bad_epochs = 0
        self.stopped = False
        self.train_time = 0.0

    def _user(self, y: np.ndarray) -> np.ndarray:
        scaler = self.prepared.y_scaler
        return scaler.inverse(y) if scaler is not None and self.spec.task == "regression" else y

    # ------------------------------------------------------------ one epoch

    def _batches(self, n: int) -> list[tuple[int, int]]:
        bs = self.spec.training.batch_size
        size = n if bs == "full" else min(self.group.local_batch(int(bs)), n)
        spans = [(i, min(i + size, n)) for i in range(0, n, size)]
        # Batchnorm cannot normalise a batch of one row in training mode: drop such a tail.
        if self.has_batchnorm and len(spans) > 1 and spans[-1][1] - spans[-1][0] == 1:
            spans.pop()
        return spans

    def _micro(self, start: int, stop: int, rows: int) -> list[tuple[int, int]]:
        """The micro-batches of the step [start, stop) (`training.accumulate`): spans of
        ceil(rows / accumulate) rows, `rows` being a full step's rows on this rank."""
        k = self.spec.training.accumulate
        if k == 1:
            return [(start, stop)]
        size = distributed.micro_rows(rows, k)
        spans = [(i, min(i + size, stop)) for i in range(start, stop, size)]
        # A one-row micro-batch cannot pass batchnorm in training mode: merge it backwards.
        if self.has_batchnorm and len(spans) > 1 and spans[-1][1] - spans[-1][0] == 1:
            spans[-2:] = [(spans[-2][0], stop)]
        return spans

    def _train_epoch(self) -> tuple[Tensor, int, Tensor, np.ndarray]:
        """One pass over the training split; returns (loss sum, rows, outputs, row order)."""
        model, opt, crit = self.model, self.optimizer, self.loss.criterion
        stream = self.streamed.get("train")
        Y = self.Y["train"]
        n = len(Y)
        if not self.spec.training.shuffle:
            order = self.group.shard(torch.arange(n))
        elif stream is not None:
            order = self.group.shard(stream.epoch_order(self.shuffle))
        else:
            order = self.group.shard(torch.randperm(n, generator=self.shuffle))
        if stream is not None:
            X = None
            Y = Y[order.to(self.device)]
            n = len(order)
        elif self.spec.training.shuffle or len(order) != n:
            on_device = order.to(self.device)
            X, Y = self.X["train"][on_device], Y[on_device]
            n = len(order)
        else:
            X = self.X["train"]
        rows = order.numpy()
        reg = self.spec.regularization
        clip = reg.grad_clip
        total = torch.zeros((), device=self.device)
        outs: list[Tensor] = []
        used = 0
        model.train()
        spans = self._batches(n)
        step_rows = spans[0][1] - spans[0][0] if spans else 0
        for start, stop in spans:
            opt.zero_grad(set_to_none=True)
            micro = self._micro(start, stop, step_rows)
            # Gradients of the micro-batches add up in .grad; weighting each loss by its
            # share of the step's rows makes the sum the gradient of the step's mean loss.
            # No all-reduce until the last one (DDP's no_sync()).
            for a, b in micro:
                if X is None:  # streamed: gather these rows from the file
                    assert stream is not None
                    xb = torch.from_numpy(stream.take(rows[a:b])).to(self.device)
                else:
                    xb = X[a:b]
                yb = Y[a:b]
                with self.amp.autocast():
                    try:
                        out = model(xb)
                    except ValueError as exc:  # batchnorm in training mode on a one-row batch
                        if "more than 1 value per channel" not in str(exc):
                            raise
                        raise TrainingError(
                            f"batchnorm cannot normalise batches of one row (training."
                            f"batch_size: {self.spec.training.batch_size}, accumulate: "
                            f"{self.spec.training.accumulate}, {n} training rows); use a "
                            "larger batch_size or remove the batchnorm layer") from None
                    loss = crit(out, yb)
                objective = loss if len(micro) == 1 else loss * ((b - a) / (stop - start))
                if b == stop:  # the penalty once per step
                    extra = penalty(self.penalized, reg.l1, reg.l2)
                    objective = objective if extra is None else objective + extra
                self.amp.backward(objective)
                total += loss.detach().float() * (b - a)
                outs.append(out.detach())
            self.group.sync_grads(self.params)
            if clip is not None:
                self.amp.unscale(opt)
                if clip.norm is not None:
                    nn.utils.clip_grad_norm_(self.params, clip.norm)
                elif clip.value is not None:
                    nn.utils.clip_grad_value_(self.params, clip.value)
            self.amp.step(opt)
            self.group.after_step(self.params)
            used = stop
        return self.group.gather_epoch(total, used, torch.cat(outs), order[:used].numpy())

    def _evaluate(self, split: str, reference: bool = False) -> dict[str, float]:
        """Loss and metrics of the current model on a split, in eval mode, without grad;
        `reference`: metrics from sklearn.metrics itself (the final figures)."""
        stream = self.streamed.get(split)
        if len(self.Y[split]) == 0:
            return {}
        self.model.eval()
        if stream is not None:
            with torch.no_grad():
                out = torch.cat([self.model(torch.from_numpy(chunk).to(self.device))
                                 for chunk in stream.chunks(_EVAL_CHUNK)])
        else:
            out = _outputs(self.model, self.X[split])
        with torch.no_grad():
            loss = float(self.loss.criterion(out, self.Y[split]))
        return {"loss": loss, **self._metrics(split, out, reference=reference)}

    def _metrics(self, split: str, out: Tensor, order: np.ndarray | None = None,
                 reference: bool = False) -> dict[str, float]:
        y = self.y_user[split]
        if order is not None:
            y = y[order]
        out_np = self._user(out.float().cpu().numpy())
        return compute(self.metrics, self.spec.task, y, out_np, reference)

    def run_epoch(self) -> dict[str, float]:
        """Train one epoch, validate, and return its history row."""
        epoch = self.epoch
        lr = self.schedule.lr(epoch)
        set_lr(self.optimizer, lr)
        t0 = time.perf_counter()
        total, used, outs, order = self._train_epoch()
        self.group.sync_params(self.params)
        self.group.sync_buffers(self.model)
        train_loss = float(total) / max(used, 1)  # the one sync of the epoch
        row: dict[str, float] = {"epoch": float(epoch + 1), "loss": train_loss}
        val = self._evaluate("val")
        if val:
            row["val_loss"] = val["loss"]
        row.update(self._metrics("train", outs, order))
        row.update({f"val_{k}": v for k, v in val.items() if k != "loss"})
        row["lr"] = lr
        row["seconds"] = time.perf_counter() - t0
        return row

    def after_epoch(self, row: dict[str, float]) -> None:
        """Record the row; step the plateau schedule and early stopping."""
        self.history.append(row)
        self.train_time += row["seconds"]
        self.schedule.observe(self.epoch, row)
        self.epoch += 1
        es = self.spec.training.early_stopping
        if es is None:
            return
        value = row.get(es.monitor, math.nan)
        if better(value, self.best_score, self.es_mode, es.min_delta):
            self.best_score, self.best_epoch, self.bad_epochs = value, self.epoch, 0
            if es.restore_best:
                self.best_state = _clone_state(self.model)
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= es.patience:
                self.stopped = True

    @property
    def done(self) -> bool:
        return self.stopped or self.epoch >= self.spec.training.epochs

    # ------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (see checkpoint.py). Every rank
        calls it at every checkpoint (local SGD gathers each rank's optimizer state)."""
        optimizer = self.optimizer.state_dict()
        per_rank = self.group.gather_optimizer(optimizer)
        return {
            "spec_hash": spec_hash(self.spec),
            "model": self.model.state_dict(),
            "optimizer": optimizer,
            **({"rank_optimizers": per_rank, "averager_step": self.group.averager_step()}
               if per_rank is not None else {}),
            "schedule": self.schedule.state_dict(),
            "rng": ckpt.rng_state(self.shuffle),
            "history": self.history,
            "best": {"score": self.best_score, "epoch": self.best_epoch,
                     "state": self.best_state, "bad_epochs": self.bad_epochs},
            "stopped": self.stopped,
            "training_time_s": self.train_time,
            "scaler": self.amp.state_dict(),
        }

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint written by `state` for the same spec."""
        if state.get("spec_hash") != spec_hash(self.spec):
            raise TrainingError(
                f"{path} was written for a different spec (the resolved spec changed since); "
                "train without --resume to start over")
        try:
            self.model.load_state_dict(state["model"])
            per_rank = state.get("rank_optimizers")
            if per_rank is not None:  # local SGD: each rank continues its own state
                self.optimizer.load_state_dict(self.group.own_optimizer(per_rank, path))
                self.group.set_averager_step(int(state["averager_step"]))
            else:
                self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            ckpt.set_rng_state(state["rng"], self.shuffle)
            best = state["best"]
            self.history = [dict(r) for r in state["history"]]
            self.epoch = int(state["epoch"])
            self.best_score = float(best["score"])
            self.best_epoch = int(best["epoch"])
            self.best_state = best["state"]
            self.bad_epochs = int(best["bad_epochs"])
            self.stopped = bool(state["stopped"])
            self.train_time = float(state["training_time_s"])
            self.amp.load_state_dict(state.get("scaler") or {})
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise TrainingError(f"{path}: checkpoint does not fit this spec ({exc})") from None

    # ------------------------------------------------------------ the end

    def finish(self) -> dict[str, Any]:
        """Restore the best weights if asked, move to CPU in eval mode, final metrics."""
        es = self.spec.training.early_stopping
        if es is not None and es.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        metrics: dict[str, Any] = {s: self._evaluate(s, reference=True)
                                   for s in ("train", "val", "test")}
        metrics["training_time_s"] = round(self.train_time, 4)
        metrics["epochs_run"] = self.epoch
        metrics["stopped_early"] = self.stopped
        if es is not None:
            metrics["best_epoch"] = self.best_epoch
            metrics["monitor"] = es.monitor
        metrics["device"] = str(self.device)
        metrics["precision"] = self.spec.training.precision
        metrics.update(self.group.record())
        self.model.to("cpu")
        return metrics


# ---------------------------------------------------------------- run folders


RUN_LAYOUT_FOLDERS = {"checkpoints": r"epoch_\d+\.pt|\.epoch_\d+\.pt\.[A-Za-z0-9_]{8}\.tmp"}
"""What a run folder holds besides ARTIFACTS: checkpoints/ and its (temporary) files."""


def check_run_dir(run_dir: Path, spec_file: Path | None = None) -> None:
    """SpecnetError unless `run_dir` can be a run folder: absent, empty or an earlier run
    (a fresh run replaces its files), writable, and not holding `spec_file`; see
    `specnet.outdir.check_destination`."""
    from .outdir import Layout, check_destination

    layout = Layout("a specnet run", frozenset(ARTIFACTS), RUN_LAYOUT_FOLDERS)
    check_destination(run_dir, layout, spec_file=spec_file, whole=False)


def _clear_run_dir(run_dir: Path) -> None:
    """Remove a previous run's artifacts and checkpoints (a fresh run replaces them)."""
    for name in ARTIFACTS:
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def history_csv(history: list[dict[str, float]]) -> str:
    """The per-epoch history as CSV text: columns in first-seen order, integer epochs,
    floats as repr (so reading it back gives the same numbers)."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: int(v) if k == "epoch" else repr(float(v)) for k, v in row.items()})
    return buf.getvalue()


def _read_history(path: Path) -> list[dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _write_run(run: Run) -> None:
    assert run.run_dir is not None
    d = run.run_dir
    from .checkpoint import save_weights
    from .plot import learning_curve

    atomic_write_text(d / "preprocessing.json", strict_json(run.prepared.record(run.spec.task)))
    atomic_write_text(d / "spec.yaml", dump_resolved(run.spec))
    atomic_write_text(d / "history.csv", history_csv(run.history))
    metric = run.spec.metric_names[0] if run.spec.metric_names else None
    es = run.spec.training.early_stopping
    learning_curve(run.history, metric, d / "learning_curve.png", title=run.spec.name,
                   loss_name=run.spec.loss_name, best_epoch=run.metrics.get("best_epoch"),
                   restored=bool(es and es.restore_best), monitor=es.monitor if es else None)
    save_weights(d / "weights.safetensors", run.model.state_dict())
    # Written last: a folder with metrics.json is a finished run.
    atomic_write_text(d / "metrics.json", strict_json(run.metrics))


# ---------------------------------------------------------------- public API


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed python, numpy and torch; torch's global RNG is restored afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        yield


def train(spec: Spec | str | Path | dict[str, Any], run_dir: Path | str | None = None, *,
          resume: bool = False, quiet: bool = True, prepared: Prepared | None = None,
          callbacks: Sequence[Callback] = (), log_every: int | None = None,
          threads: int | None = None) -> Run:
    """Train the network of `spec` (a Spec or a spec file path) and return the Run.

    run_dir: where to write the run folder (spec.yaml, history.csv, metrics.json,
    learning_curve.png, weights.safetensors, preprocessing.json, checkpoints/); None writes
    nothing. resume: continue from the newest checkpoint in run_dir (starts fresh when there
    is none). prepared: already split and scaled data (from `prepare(spec)`), to skip loading.
    callbacks: each gets `on_epoch_end(row)` after every epoch (see specnet.track); one
    that returns True stops training there, as early stopping does (a sweep scheduler).
    log_every: off a terminal, print a progress line every this many epochs (default:
    about 20 lines a run); on a terminal the bar shows every epoch.
    threads: torch threads, overriding `training.threads` (see specnet.threads).
    Launched as one rank of several (torchrun, `distributed.launch`), it trains its shard and
    only rank 0 writes (see specnet.distributed).
    Raises TrainingError when training diverges or the device is missing.
    """
    if not isinstance(spec, Spec | str | Path):  # a dict, or a wrong type: say which
        from .spec.validate import as_spec

        spec = as_spec(spec, "specnet.train")[0]
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None:
        check_run_dir(run_path, Path(spec) if isinstance(spec, str | Path) else None)
    spec, info, n_out = _checked(spec)
    group = distributed.join(_device(spec.device), spec.training)
    try:
        return _train(spec, info, n_out, run_path, resume, quiet, prepared, threads, group,
                      callbacks, log_every)
    finally:
        group.close()


def _train(spec: Spec, info: SourceInfo, n_out: int, run_path: Path | None, resume: bool,
           quiet: bool, prepared: Prepared | None, threads: int | None,
           group: distributed.Single, callbacks: Sequence[Callback],
           log_every: int | None) -> Run:
    device = group.device(_device(spec.device))
    if prepared is None:
        prepared = prepare(spec)
    ckpt_dir = run_path / "checkpoints" if run_path is not None else None
    plan = threads_.plan(spec, len(prepared.X_train), threads, share=group.local_world)
    with _seeded(spec.seed, device), threads_.using(plan.count):
        trainer = _Trainer(spec, info, n_out, prepared, device, group)
        note = None
        if run_path is not None and ckpt_dir is not None:
            if resume:
                if group.is_writer:
                    ckpt.clean_temporaries(ckpt_dir)
                found = ckpt.list_checkpoints(ckpt_dir)
                if found:
                    trainer.restore(ckpt.load(found[-1], spec.training.epochs), found[-1])
                    note = f"resumed {spec.name} from {found[-1]} (epoch {trainer.epoch})"
                else:
                    note = f"no checkpoint in {ckpt_dir}: starting from epoch 1"
            elif group.is_writer:
                _clear_run_dir(run_path)
        progress = _Progress(spec.training.epochs, trainer.epoch, quiet or not group.is_writer,
                             every=log_every)
        try:
            start = distributed.describe(group, spec.training, len(prepared.X_train))
            for line in (start, note):
                if line is not None:
                    progress.note(line)
            _fit(trainer, progress, ckpt_dir, callbacks, write=group.is_writer)
        finally:
            progress.close()
        metrics = trainer.finish()
    metrics.update(plan.record())
    run = Run(spec, trainer.model, prepared, trainer.history, metrics, run_path, info)
    if run_path is not None and group.is_writer:
        _write_run(run)
    return run


def _fit(trainer: _Trainer, progress: _Progress, ckpt_dir: Path | None,
         callbacks: Sequence[Callback] = (), write: bool = True) -> None:
    """Run the epochs; checkpoint into `ckpt_dir` (None: none) when `write` (rank 0)."""
    spec = trainer.spec
    every = spec.training.checkpoint_every
    found = ckpt.list_checkpoints(ckpt_dir) if ckpt_dir is not None else []
    last_good = found[-1] if found else None
    while not trainer.done:
        row = trainer.run_epoch()
        for what in ("loss", "val_loss"):
            if what in row and not math.isfinite(row[what]):
                raise TrainingError(_nonfinite_message(
                    int(row["epoch"]), "training loss" if what == "loss" else "validation loss",
                    row[what], spec, row["lr"], last_good))
        trainer.after_epoch(row)
        progress.epoch(row)
        for callback in callbacks:
            if callback.on_epoch_end(row) and not trainer.done:
                trainer.stopped = True  # e.g. a sweep scheduler stops it here
        if ckpt_dir is not None and (trainer.epoch % every == 0 or trainer.done):
            state = trainer.state()  # on every rank: it may be a collective
            if write:
                last_good = ckpt.save(ckpt_dir, trainer.epoch, state)
    es = spec.training.early_stopping
    if trainer.stopped and es is not None:
        progress.note(f"early stopping at epoch {trainer.epoch}: best {es.monitor} "
                      f"{_fmt(trainer.best_score)} at epoch {trainer.best_epoch}")


def load_run(run_dir: Path | str) -> Run:
    """Rebuild a finished run from its folder: spec, weights (safetensors), scalers, history,
    metrics. Nothing is unpickled. The data is loaded again to rebuild the (seeded) split.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise TrainingError(f"{d}: no such run folder; train first (specnet train SPEC -o {d})")
    missing = [n for n in ARTIFACTS if n != "learning_curve.png" and not (d / n).is_file()]
    if missing:
        raise TrainingError(f"{d}: not a finished run (missing {', '.join(missing)}); "
                            "train it (or resume it with --resume) first")
    spec, info, _ = _checked(d / "spec.yaml")
    model = compile_spec(spec, info)
    try:
        model.load_state_dict(ckpt.load_weights(d / "weights.safetensors"))
    except RuntimeError as exc:
        raise TrainingError(f"{d / 'weights.safetensors'}: does not fit the spec ({exc})") from None
    model.eval()
    try:
        pre = json.loads((d / "preprocessing.json").read_text(encoding="utf-8"))
        metrics = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
        x_scaler = Scaler.from_dict(pre["x_scaler"])
        y_scaler = Scaler.from_dict(pre["y_scaler"]) if pre.get("y_scaler") else None
    except (OSError, ValueError, KeyError, TypeError, DataError) as exc:
        raise TrainingError(f"{d}: unreadable preprocessing.json or metrics.json ({exc})") from None
    prepared = prepare(spec)
    _same_scalers(d, prepared, x_scaler, y_scaler)
    prepared.x_scaler, prepared.y_scaler = x_scaler, y_scaler
    try:
        history = _read_history(d / "history.csv")
    except (OSError, ValueError, TypeError, AttributeError, csv.Error) as exc:
        raise TrainingError(f"{d / 'history.csv'}: damaged ({exc}); it holds one row of "
                            "numbers per epoch: train again, or restore the file") from None
    return Run(spec, model, prepared, history, metrics, d, info)


def _same_scalers(d: Path, prepared: Prepared, x: Scaler, y: Scaler | None) -> None:
    """TrainingError when preprocessing.json's scalers do not fit the data (edited file)."""
    fresh_y = prepared.y_scaler
    for name, got, want in (("x_scaler", x, prepared.x_scaler), ("y_scaler", y, fresh_y)):
        if (got is None) != (want is None) or (
                got is not None and want is not None and got.offset.shape != want.offset.shape):
            shape = None if got is None else list(got.offset.shape)
            expected = None if want is None else list(want.offset.shape)
            raise TrainingError(f"{d / 'preprocessing.json'}: {name} has shape {shape} but the "
                                f"data needs {expected}: the file was edited or belongs to "
                                "another run; train again")


def predict_torch(run: Run, X_raw: np.ndarray) -> np.ndarray:
    """The model's outputs in user terms from raw (unscaled) features, through torch.

    X_raw: (n, *input_shape), or (n, prod(input_shape)) for image inputs.
    Returns classification: softmax probabilities (n, classes); binary: P(class 1) (n,);
    regression: values in the original units (n, targets). float32.
    """
    shape = run.prepared.input_shape
    X = np.asarray(X_raw, dtype=np.float32)
    if X.ndim >= 1 and X.shape[1:] != shape:
        if X.ndim == 2 and X.shape[1] == int(np.prod(shape)):
            X = X.reshape(len(X), *shape)
        else:
            raise ModelInputError(f"inputs of shape {list(X.shape)} do not fit the model's "
                                  f"input (n, {', '.join(map(str, shape))})")
    X = run.prepared.x_scaler.transform(X)
    run.model.eval()
    out = _outputs(run.model, torch.from_numpy(X))
    if run.spec.task == "classification":
        result = torch.softmax(out, dim=1).numpy()
    elif run.spec.task == "binary":
        result = torch.sigmoid(out.reshape(len(out), -1)[:, 0]).numpy()
    else:
        result = out.numpy()
        if run.prepared.y_scaler is not None:
            result = run.prepared.y_scaler.inverse(result)
    return np.asarray(result, dtype=np.float32)
