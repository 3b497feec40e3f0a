"""Experiment tracking: TensorBoard event files and MLflow runs.

The trainer knows nothing of either: it calls `on_epoch_end(row)` on the callbacks it is
given, once per epoch, with the history row (`epoch`, `loss`, `val_loss`, metrics, `lr`).
The CLI opens the trackers, hands them to `train`, and tells them what else came of the
command (a run, an export, a sweep). Both writers are optional extras, imported here only.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import SpecnetError

if TYPE_CHECKING:
    from .export import Exported
    from .spec.schema import Spec
    from .sweep.report import SweepResult
    from .trainer import Run

MLFLOW_DEFAULT = "mlruns"
"""`--mlflow` with no URI: a local folder, ./mlruns, as `mlflow ui` reads it."""

# A history row's own bookkeeping, not a curve.
_NOT_SCALARS = ("epoch", "seconds")


class Callback(Protocol):
    """What `specnet.train` calls once per epoch."""

    def on_epoch_end(self, row: Mapping[str, float]) -> bool | None:
        """row: the epoch's history row (epoch counts from 1). True stops the training
        there, as early stopping would (a sweep scheduler's use); trackers return None."""


class Tracker:
    """A tracker that records nothing; the real ones override what they record."""

    def on_epoch_end(self, row: Mapping[str, float]) -> None:
        """Per-epoch scalars (a `Callback`)."""

    def run_done(self, run: Run) -> None:
        """Final metrics of a training, and its run folder when it wrote one."""

    def exported(self, exported: Exported) -> None:
        """The artifact folder and its model.onnx."""

    def sweep_done(self, result: SweepResult) -> None:
        """Every variant of a finished sweep with its settings and scores."""

    def close(self, ok: bool = True) -> None:
        """Flush and end; `ok` False marks the run failed or interrupted."""


def _missing(extra: str, package: str) -> SpecnetError:
    return SpecnetError(f"{package} is not installed: pip install 'specnet[{extra}]'")


def require(tensorboard: object = None, mlflow: object = None) -> None:
    """Raise the missing-extra error now for a tracker that could not open later (in a
    launched rank, say); None: not asked for."""
    import importlib.util

    if tensorboard is not None and importlib.util.find_spec("tensorboardX") is None:
        raise _missing("tensorboard", "tensorboardX")
    if mlflow is not None and importlib.util.find_spec("mlflow") is None:
        raise _missing("mlflow", "mlflow")


def _split(row: Mapping[str, float]) -> Iterator[tuple[str, str, float]]:
    """(side, name, value) per scalar of a history row: side 'train' or 'validation'."""
    for key, value in row.items():
        if key in _NOT_SCALARS or not math.isfinite(value):
            continue
        if key.startswith("val_"):
            yield "validation", key[4:], value
        elif key == "lr":
            yield "train", "learning_rate", value
        else:
            yield "train", key, value


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as one level of dotted keys: {'model.0.units': 16, ...}."""
    if isinstance(data, Mapping):
        items: Iterator[tuple[str, Any]] = ((str(k), v) for k, v in data.items())
    elif isinstance(data, list | tuple):
        items = ((str(i), v) for i, v in enumerate(data))
    else:
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return out


def _hparam(value: Any) -> bool | float | str:
    """A value the HParams plugin takes (bool, number or text)."""
    if isinstance(value, bool | int | float):
        return value
    return str(value)


# ---------------------------------------------------------------- TensorBoard


class TensorBoardTracker(Tracker):
    """Event files under `log_dir/<name>/`: `train/` and `validation/` side by side (the
    layout Keras uses, so TensorBoard overlays the two curves of each metric under one tag
    `epoch_<metric>`), and for a sweep one folder per variant plus its HParams record."""

    def __init__(self, log_dir: str | Path, name: str) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboardX") from None
        self._writer_type = SummaryWriter
        self.root = Path(log_dir) / name
        self._writers: dict[str, Any] = {}

    def _writer(self, sub: str) -> Any:
        if sub not in self._writers:
            self._writers[sub] = self._writer_type(str(self.root / sub))
        return self._writers[sub]

    def _log(self, row: Mapping[str, float], step: int, prefix: str = "") -> None:
        for side, name, value in _split(row):
            self._writer(f"{prefix}{side}").add_scalar(f"epoch_{name}", value, step)

    def on_epoch_end(self, row: Mapping[str, float]) -> None:
        self._log(row, int(row["epoch"]))

    def sweep_done(self, result: SweepResult) -> None:
        from .sweep.report import mean_curve

        s = result.sweep
        for vr in result.results:
            histories = [run.history for run in vr.ok]
            columns = {k for h in histories for row in h for k in row} - set(_NOT_SCALARS)
            curves = {c: mean_curve(histories, c) for c in sorted(columns)}
            length = max((len(c) for c in curves.values()), default=0)
            for e in range(length):
                row = {c: float(v[e]) for c, v in curves.items() if e < len(v)}
                self._log(row, e + 1, prefix=f"{vr.variant.name}/")
            mean, sd = vr.stat(s.metric)
            hparams = {k: _hparam(v) for k, v in vr.variant.settings.items()}
            # add_hparams writes its own record under the variant's folder.
            self._writer(vr.variant.name).add_hparams(
                hparams or {"variant": vr.variant.name},
                {f"hparam/{s.metric}": mean, f"hparam/{s.metric}_sd": sd},
                name="hparams")

    def close(self, ok: bool = True) -> None:
        for w in self._writers.values():
            w.close()


# ---------------------------------------------------------------- MLflow


def _mlflow_key(path: str) -> str:
    """A sweep path (`model[1].type`) as MLflow allows names: `model.1.type`."""
    dotted = re.sub(r"\[(\d+)\]", r".\1", path)
    return re.sub(r"[^\w\-. :/]", "_", dotted)


def _mlflow_uri(uri: str) -> str:
    """A plain folder becomes a file store (which MLflow 3 only opens when asked to);
    anything with a scheme (sqlite:///..., http://...) is MLflow's to read."""
    if "://" in uri or uri.startswith("file:"):
        return uri
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return Path(uri).resolve().as_uri()


class MLflowTracker(Tracker):
    """One MLflow run per command in the experiment named after the spec (or the sweep):
    the resolved spec as parameters, per-epoch metrics with their step, the final metrics,
    the run or artifact folder as artifacts, the model in the onnx flavor. A sweep is a
    parent run with one nested run per variant."""

    def __init__(self, uri: str, experiment: str, run_name: str,
                 params: Mapping[str, Any] | None = None) -> None:
        try:
            import mlflow
        except ImportError:
            raise _missing("mlflow", "mlflow") from None
        self.mlflow = mlflow
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # specnet says where it logged
        mlflow.set_tracking_uri(_mlflow_uri(uri))
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment)
        self.run = mlflow.start_run(run_name=run_name)
        if params:
            self._params(params)

    @property
    def run_id(self) -> str:
        return str(self.run.info.run_id)

    def _params(self, params: Mapping[str, Any]) -> None:
        # MLflow keeps parameter values as text of at most 6000 characters.
        self.mlflow.log_params({_mlflow_key(k): str(v)[:6000] for k, v in params.items()})

    def on_epoch_end(self, row: Mapping[str, float]) -> None:
        values = {k: v for k, v in row.items() if k not in _NOT_SCALARS and math.isfinite(v)}
        self.mlflow.log_metrics(values, step=int(row["epoch"]))

    def run_done(self, run: Run) -> None:
        final = {f"{split}_{k}": v for split, values in run.metrics.items()
                 if isinstance(values, dict) for k, v in values.items()
                 if isinstance(v, float) and math.isfinite(v)}
        self.mlflow.log_metrics(final)
        if run.run_dir is not None:
            for path in sorted(run.run_dir.iterdir()):
                if path.is_file():
                    self.mlflow.log_artifact(str(path), artifact_path="run")

    def exported(self, exported: Exported) -> None:
        import onnx

        self.mlflow.log_artifacts(str(exported.folder), artifact_path="artifact")
        with warnings.catch_warnings():
            # MLflow's notes on type hints it infers for itself; nothing for a user to act on.
            warnings.simplefilter("ignore", UserWarning)
            self.mlflow.onnx.log_model(onnx.load(str(exported.model_path)), name="model")

    def sweep_done(self, result: SweepResult) -> None:
        s = result.sweep
        best = result.best
        for vr in result.results:
            with self.mlflow.start_run(run_name=vr.variant.name, nested=True):
                self._params({"variant": vr.variant.name, **vr.variant.settings})
                for column in _columns(vr.runs):
                    mean, sd = vr.stat(column)
                    if math.isfinite(mean):
                        self.mlflow.log_metrics({f"{column}_mean": mean, f"{column}_sd": sd})
                for i, run in enumerate(vr.ok):
                    self.mlflow.log_metric(s.metric, run.values.get(s.metric, math.nan),
                                           step=i)
                self.mlflow.set_tag("best", str(vr is best).lower())
        if best is not None:
            self.mlflow.set_tag("best_variant", best.variant.name)
            self.mlflow.log_metric(f"best_{s.metric}", best.stat(s.metric)[0])
        if result.out_dir is not None:
            self.mlflow.log_artifacts(str(result.out_dir), artifact_path="sweep")

    def close(self, ok: bool = True) -> None:
        self.mlflow.end_run(status="FINISHED" if ok else "FAILED")


def _columns(runs: Sequence[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(run.values))
    return list(seen)


# ---------------------------------------------------------------- opening them


class Trackers(Tracker):
    """Every tracker a command asked for, called in turn."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def on_epoch_end(self, row: Mapping[str, float]) -> None:
        for t in self.trackers:
            t.on_epoch_end(row)

    def run_done(self, run: Run) -> None:
        for t in self.trackers:
            t.run_done(run)

    def exported(self, exported: Exported) -> None:
        for t in self.trackers:
            t.exported(exported)

    def sweep_done(self, result: SweepResult) -> None:
        for t in self.trackers:
            t.sweep_done(result)

    def close(self, ok: bool = True) -> None:
        for t in self.trackers:
            t.close(ok)


def open_trackers(*, name: str, run_name: str, tensorboard: str | Path | None = None,
                  mlflow: str | None = None, spec: Spec | None = None,
                  params: Mapping[str, Any] | None = None) -> Trackers:
    """The trackers a command asked for (none: a Trackers that records nothing).

    name: the TensorBoard folder and MLflow experiment (the spec's or the sweep's name);
    run_name: the MLflow run's name; spec: logged as parameters (its resolved form), or
    `params` as given.
    """
    found: list[Tracker] = []
    if tensorboard is not None:
        found.append(TensorBoardTracker(tensorboard, name))
    if mlflow is not None:
        if spec is not None:
            params = flatten(spec.model_dump(mode="json", exclude_none=True))
        found.append(MLflowTracker(mlflow, name, run_name, params))
    return Trackers(found)


@contextlib.contextmanager
def tracking(**how: Any) -> Iterator[Trackers]:
    """`open_trackers(**how)` for the length of a block, closed as failed (`FAILED` in
    MLflow) when the block raises."""
    trackers = open_trackers(**how)
    ok = False
    try:
        yield trackers
        ok = True
    finally:
        trackers.close(ok)
