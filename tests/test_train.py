"""The training loop: example quality bars, determinism, resume after SIGKILL, early stopping,
divergence, devices, run folders, load_run / predict_torch, progress output and the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import specnet
from specnet.errors import ModelInputError, TrainingError
from specnet.spec.schema import Spec
from specnet.spec.validate import load_spec, validate
from specnet.trainer import ARTIFACTS, Run, _Progress, load_run, predict_torch, train

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spec(**over: Any) -> Spec:
    """A small, fast spec (blobs, MLP with dropout) with fields overridden."""
    data: dict[str, Any] = {
        "name": "t", "seed": 0, "task": "classification",
        "data": {"source": "blobs", "n_samples": 240, "n_features": 4, "centers": 3},
        "model": [{"linear": 16}, "relu", {"dropout": 0.2}, {"linear": "auto"}],
        "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 5, "batch_size": 32, "metrics": ["accuracy"]},
    }
    for key, value in over.items():
        merge = key == "training" or (key == "data" and "source" not in value)
        data[key] = {**data[key], **value} if merge else value
    return validate(data)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- the example specs


QUALITY = [
    ("xor", "accuracy", 1.0),
    ("moons", "accuracy", 0.95),
    ("circles", "accuracy", 0.95),
    ("iris", "accuracy", 0.93),
    ("digits", "accuracy", 0.95),
    ("digits_cnn", "accuracy", 0.97),
    ("diabetes", "r2", 0.4),
]


@pytest.mark.parametrize(("name", "metric", "bar"), QUALITY, ids=[q[0] for q in QUALITY])
def test_example_spec_reaches_its_quality_bar_on_the_test_split(
        name: str, metric: str, bar: float) -> None:
    run = train(SPECS / f"{name}.yaml")
    assert run.metrics["test"][metric] >= bar, run.metrics


OTHERS = sorted(p.stem for p in SPECS.glob("*.yaml")
                if p.stem.split("_")[0] in ("xor", "moons", "iris", "digits", "overfit")
                and p.stem not in {q[0] for q in QUALITY})


@pytest.mark.parametrize("name", OTHERS)
def test_other_example_specs_train_a_few_epochs(name: str) -> None:
    spec = load_spec(SPECS / f"{name}.yaml").spec
    spec.training.epochs = 2
    run = train(spec)
    assert run.metrics["epochs_run"] == 2
    assert len(run.history) == 2
    assert all(math.isfinite(row["loss"]) for row in run.history)


# ---------------------------------------------------------------- determinism


def test_same_spec_and_seed_give_bit_identical_weights() -> None:
    spec = _spec(model=[{"linear": 16}, {"batchnorm": {}}, "relu", {"dropout": 0.3},
                        {"linear": "auto"}],
                 regularization={"l1": 1e-4, "l2": 1e-4, "grad_clip": {"norm": 1.0}})
    a, b = train(spec), train(spec)
    assert _same_state(a.model, b.model)
    assert a.history == [{**r, "seconds": a.history[i]["seconds"]}
                         for i, r in enumerate(b.history)]
    c = train(_spec(seed=1))
    assert not _same_state(a.model, c.model)


def test_the_loop_equals_a_hand_written_loop_bit_for_bit() -> None:
    """Reference: permute once per epoch from a generator seeded by `seed`, slice batches,
    step; nothing else touches the weights."""
    from specnet.compile import compile_spec

    spec = _spec(model=[{"linear": 16}, "relu", {"linear": "auto"}],
                 training={"epochs": 3, "batch_size": 20})
    run = train(spec)
    model = compile_spec(spec)
    X, y = torch.from_numpy(run.prepared.X_train), torch.from_numpy(run.prepared.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)
    gen = torch.Generator().manual_seed(spec.seed)
    for _ in range(3):
        perm = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), 20):
            loss = torch.nn.functional.cross_entropy(model(X[perm][i:i + 20]),
                                                     y[perm][i:i + 20])
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert _same_state(model, run.model)


def test_training_leaves_the_callers_torch_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(_spec(training={"epochs": 1}))
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- resume after SIGKILL

_RESUME_SPEC = """\
name: killme
seed: 0
task: classification
data: {source: classification, n_samples: 12000, n_features: 20, n_classes: 3}
model:
  - linear: 64
  - batchnorm
  - relu
  - dropout: 0.2
  - linear: 64
  - relu
  - linear: auto
optimizer: {type: adam, lr: 0.003}
training:
  epochs: 14
  batch_size: 32
  schedule: {type: cosine, warmup_epochs: 2}
  early_stopping: {monitor: val_loss, patience: 13, restore_best: true}
  metrics: [accuracy]
  checkpoint_every: 1
"""


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "specnet.cli", "train", *map(str, args)]


def test_resume_after_sigkill_reaches_the_same_weights_bit_for_bit(tmp_path: Path) -> None:
    spec = tmp_path / "killme.yaml"
    spec.write_text(_RESUME_SPEC)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    proc = subprocess.Popen(_cli(spec, "-o", killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    ckpts = killed / "checkpoints"
    while time.monotonic() < deadline and proc.poll() is None:
        names = sorted(p.name for p in ckpts.glob("epoch_*.pt")) if ckpts.is_dir() else []
        if names and int(names[-1][6:11]) >= 2:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "weights.safetensors").exists()
    stopped_at = int(sorted(p.name for p in ckpts.glob("epoch_*.pt"))[-1][6:11])
    assert 2 <= stopped_at < 14

    resumed = subprocess.run(_cli(spec, "-o", killed, "--resume"), env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed killme from" in resumed.stdout
    assert f"epoch {stopped_at + 1}/14" in resumed.stdout

    train(spec, clean)  # uninterrupted, in this process (also on one thread)
    assert (killed / "weights.safetensors").read_bytes() == \
        (clean / "weights.safetensors").read_bytes()
    history = (killed / "history.csv").read_text().splitlines()
    assert len(history) == 15
    # Same numbers in every column but the wall-clock seconds.
    strip = [line.rsplit(",", 1)[0] for line in history]
    assert strip == [line.rsplit(",", 1)[0] for line in
                     (clean / "history.csv").read_text().splitlines()]


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    spec = _spec()
    first = train(spec, tmp_path / "r")
    again = train(spec, tmp_path / "r", resume=True)
    assert _same_state(first.model, again.model)
    assert again.metrics["epochs_run"] == 5
    assert [r["loss"] for r in again.history] == [r["loss"] for r in first.history]


def test_resume_without_a_checkpoint_starts_fresh(tmp_path: Path) -> None:
    spec = _spec()
    run = train(spec, tmp_path / "r", resume=True)
    assert _same_state(run.model, train(spec).model)


def test_resume_refuses_a_checkpoint_of_another_spec(tmp_path: Path) -> None:
    train(_spec(), tmp_path / "r")
    with pytest.raises(TrainingError, match=r"different spec.*without --resume"):
        train(_spec(optimizer={"type": "adam", "lr": 0.02}), tmp_path / "r", resume=True)


def test_a_fresh_run_replaces_the_previous_runs_files(tmp_path: Path) -> None:
    train(_spec(training={"epochs": 6, "checkpoint_every": 1}), tmp_path / "r")
    train(_spec(training={"epochs": 2, "checkpoint_every": 1}), tmp_path / "r")
    assert [p.name for p in (tmp_path / "r" / "checkpoints").iterdir()] == ["epoch_00002.pt"]


# ---------------------------------------------------------------- early stopping


def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    spec = _spec(training={"epochs": 200, "early_stopping": {"patience": 3}})
    run = train(spec)
    m = run.metrics
    losses = [r["val_loss"] for r in run.history]
    assert m["stopped_early"] and m["epochs_run"] < 200
    assert m["best_epoch"] == int(np.argmin(losses)) + 1
    assert m["epochs_run"] == m["best_epoch"] + 3
    # The restored weights are those of the best epoch: same val loss, exactly.
    assert m["val"]["loss"] == min(losses)


def test_restore_best_also_applies_when_training_reaches_max_epochs() -> None:
    spec = _spec(data={"n_samples": 150, "cluster_std": 4.0},
                 training={"epochs": 25, "early_stopping": {"patience": 100}})
    run = train(spec)
    losses = [r["val_loss"] for r in run.history]
    assert not run.metrics["stopped_early"] and run.metrics["epochs_run"] == 25
    assert run.metrics["best_epoch"] < 25, "pick a spec whose last epoch is not its best"
    assert run.metrics["val"]["loss"] == min(losses)
    no_restore = train(_spec(data={"n_samples": 150, "cluster_std": 4.0}, training={
        "epochs": 25, "early_stopping": {"patience": 100, "restore_best": False}}))
    assert no_restore.metrics["val"]["loss"] == losses[-1]


@pytest.mark.parametrize(("monitor", "expect"), [("val_accuracy", "max"), ("val_loss", "min")],
                         ids=["accuracy-max", "loss-min"])
def test_early_stopping_auto_mode_follows_the_monitored_column(monitor: str,
                                                               expect: str) -> None:
    run = train(_spec(training={"epochs": 40, "early_stopping": {"monitor": monitor,
                                                                 "patience": 4}}))
    values = [r[monitor] for r in run.history]
    best = max(values) if expect == "max" else min(values)
    pick = values.index(best) + 1  # first epoch reaching the best value
    assert run.metrics["best_epoch"] == pick


def test_min_delta_ignores_tiny_improvements() -> None:
    run = train(_spec(training={"epochs": 100, "early_stopping": {"patience": 2,
                                                                  "min_delta": 10.0}}))
    assert run.metrics["best_epoch"] == 1 and run.metrics["epochs_run"] == 3


# ---------------------------------------------------------------- the loop itself


def test_train_and_eval_modes_are_switched(monkeypatch: pytest.MonkeyPatch) -> None:
    module = sys.modules["specnet.trainer"]
    original = module.compile_spec
    seen: list[tuple[bool, int]] = []

    def compile_with_hook(*args: Any, **kwargs: Any) -> torch.nn.Sequential:
        model = original(*args, **kwargs)
        model.register_forward_hook(lambda m, i, o: seen.append((m.training, len(i[0]))))
        return model

    monkeypatch.setattr(module, "compile_spec", compile_with_hook)
    run = train(_spec(training={"epochs": 2, "batch_size": 100}))
    n_train, n_val = len(run.prepared.X_train), len(run.prepared.X_val)
    per_epoch = [(True, 100), (True, n_train - 100), (False, n_val)]
    assert seen[:6] == per_epoch * 2
    assert seen[6:] and all(not training for training, _ in seen[6:])  # final metrics
    assert not run.model.training


def test_full_batch_takes_one_gradient_step_on_the_whole_split_per_epoch() -> None:
    from specnet.compile import compile_spec

    spec = _spec(model=[{"linear": 8}, "relu", {"linear": "auto"}],
                 optimizer={"type": "sgd", "lr": 0.1},
                 training={"epochs": 1, "batch_size": "full"})
    run = train(spec)
    model = compile_spec(spec)
    X, y = torch.from_numpy(run.prepared.X_train), torch.from_numpy(run.prepared.y_train)
    torch.nn.functional.cross_entropy(model(X), y).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    for a, b in zip(model.parameters(), run.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_batchnorm_model_drops_a_one_row_tail_batch() -> None:
    from specnet.data.prepare import prepare

    spec = _spec(model=[{"linear": 8}, {"batchnorm": {}}, "relu", {"linear": "auto"}])
    n = len(prepare(spec).X_train)
    spec.training.batch_size = n - 1  # one full batch and a tail of one row
    assert n % spec.training.batch_size == 1
    run = train(spec)  # BatchNorm1d would raise on the one-row batch in training mode
    assert run.metrics["epochs_run"] == 5


def test_batchnorm_with_one_row_batches_is_a_clear_error() -> None:
    spec = _spec(model=[{"linear": 8}, {"batchnorm": {}}, "relu", {"linear": "auto"}],
                 training={"batch_size": 1})
    with pytest.raises(TrainingError, match=r"batchnorm.*training\.batch_size: 1"):
        train(spec)


def test_run_dir_none_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = train(_spec())
    assert run.run_dir is None
    assert list(tmp_path.iterdir()) == []


def test_train_reuses_prepared_data() -> None:
    from specnet.data.prepare import prepare

    spec = _spec()
    prepared = prepare(spec)
    run = train(spec, prepared=prepared)
    assert run.prepared is prepared
    assert _same_state(run.model, train(spec).model)


def test_a_val_monitor_without_validation_rows_is_a_clear_error() -> None:
    from specnet.data.prepare import prepare

    spec = _spec(training={"early_stopping": {"monitor": "val_loss", "patience": 2}})
    prepared = prepare(spec)
    prepared.X_val, prepared.y_val = prepared.X_val[:0], prepared.y_val[:0]
    with pytest.raises(TrainingError, match=r"monitor: val_loss.*no validation rows"):
        train(spec, prepared=prepared)


def test_package_level_train_works_before_and_after_importing_the_module() -> None:
    run = specnet.train(_spec(training={"epochs": 1}))
    assert isinstance(run, Run)
    import specnet.trainer as module

    assert isinstance(module.train(_spec(training={"epochs": 1})), Run)
    assert isinstance(specnet.train(_spec(training={"epochs": 1})), Run)


# ---------------------------------------------------------------- failures


_DIVERGE = {"task": "regression", "data": {"source": "regression", "n_samples": 200,
                                           "noise": 1.0, "normalize": "none",
                                           "target_normalize": "none"},
            "model": [{"linear": 32}, "relu", {"linear": "auto"}], "loss": "mse",
            "optimizer": {"type": "sgd", "lr": 0.05},
            "training": {"epochs": 50, "batch_size": 16, "metrics": ["r2"],
                         "schedule": {"type": "constant", "warmup_epochs": 49}}}


def test_a_diverging_loss_stops_with_advice_and_keeps_the_last_good_checkpoint(
        tmp_path: Path) -> None:
    spec = _spec(**_DIVERGE)
    with pytest.raises(TrainingError) as err:
        train(spec, tmp_path / "r")
    text = str(err.value)
    assert "not finite" in text and "learning rate is too high" in text
    assert "not normalized" in text and "target_normalize" in text
    bad_epoch = int(text.split(":")[0].split()[-1])
    kept = list((tmp_path / "r" / "checkpoints").glob("epoch_*.pt"))
    assert [p.name for p in kept] == [f"epoch_{bad_epoch - 1:05d}.pt"]
    assert str(kept[0]) in text
    assert not any((tmp_path / "r" / name).exists() for name in ARTIFACTS)
    state = torch.load(kept[0], weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_a_diverging_binary_model_with_roc_auc_stops_with_advice() -> None:
    spec = _spec(task="binary", data={"source": "moons", "n_samples": 200, "normalize": "none"},
                 model=[{"linear": 8}, "relu", {"linear": 1}], loss="bce",
                 optimizer={"type": "sgd", "lr": 10.0}, regularization={"l2": 1000.0},
                 training={"metrics": ["roc_auc"]})
    with pytest.raises(TrainingError, match="not finite"):
        train(spec)


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrainingError, match=r"no CUDA device.*device: cpu"):
        train(_spec(device="cuda"))
    run = train(_spec(device="auto", training={"epochs": 1}))
    assert run.metrics["device"] == "cpu"


def test_load_run_of_a_missing_or_unfinished_folder_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no such run folder"):
        load_run(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "spec.yaml").write_text("x")
    with pytest.raises(TrainingError, match=r"not a finished run.*weights.safetensors"):
        load_run(tmp_path / "half")


# ---------------------------------------------------------------- run folder, load_run, predict


def test_run_folder_holds_every_artifact_and_load_run_rebuilds_it(tmp_path: Path) -> None:
    run = train(_spec(training={"epochs": 4, "checkpoint_every": 2}), tmp_path / "r")
    d = tmp_path / "r"
    assert sorted(p.name for p in d.iterdir()) == sorted([*ARTIFACTS, "checkpoints"])
    assert [p.name for p in (d / "checkpoints").iterdir()] == ["epoch_00004.pt"]
    assert (d / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((d / "metrics.json").read_text())
    assert set(metrics) >= {"train", "val", "test", "training_time_s", "epochs_run"}
    assert metrics["test"]["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    header = (d / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,loss,val_loss,accuracy,val_accuracy,lr,seconds"
    pre = json.loads((d / "preprocessing.json").read_text())
    assert pre["task"] == "classification" and pre["input_shape"] == [4]
    assert yaml.safe_load((d / "spec.yaml").read_text())["loss"] == {
        "type": "cross_entropy", "label_smoothing": 0.0}

    loaded = load_run(d)
    assert _same_state(loaded.model, run.model)
    assert len(loaded.history) == len(run.history)
    assert all(a == pytest.approx(b) for a, b in zip(loaded.history, run.history, strict=True))
    assert loaded.spec == run.spec
    np.testing.assert_array_equal(loaded.prepared.X_test, run.prepared.X_test)
    X_raw = run.prepared.x_scaler.inverse(run.prepared.X_test)
    np.testing.assert_array_equal(predict_torch(loaded, X_raw), predict_torch(run, X_raw))


def test_predict_torch_gives_outputs_in_user_terms(tmp_path: Path) -> None:
    clf = train(_spec(training={"epochs": 3}))
    X = clf.prepared.x_scaler.inverse(clf.prepared.X_test)
    proba = predict_torch(clf, X)
    assert proba.shape == (len(X), 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    acc = float(np.mean(proba.argmax(1) == clf.prepared.y_test))
    assert acc == pytest.approx(clf.metrics["test"]["accuracy"])

    binary = train(SPECS / "xor.yaml")
    Xb = binary.prepared.x_scaler.inverse(binary.prepared.X_test)
    p1 = predict_torch(binary, Xb)
    assert p1.shape == (len(Xb),)
    assert float(np.mean((p1 > 0.5) == binary.prepared.y_test)) == 1.0

    reg = train(SPECS / "diabetes.yaml")
    Xr = reg.prepared.x_scaler.inverse(reg.prepared.X_test)
    values = predict_torch(reg, Xr)
    y = reg.prepared.y_scaler.inverse(reg.prepared.y_test)  # original units
    assert values.shape == y.shape == (len(Xr), 1)
    from sklearn.metrics import r2_score

    assert r2_score(y, values) == pytest.approx(reg.metrics["test"]["r2"], abs=1e-4)

    with pytest.raises(ModelInputError, match="do not fit"):
        predict_torch(clf, np.zeros((2, 5), np.float32))


def test_image_models_accept_flat_rows_in_predict_torch() -> None:
    spec = load_spec(SPECS / "digits_cnn.yaml").spec
    spec.training.epochs = 1
    run = train(spec)
    X = run.prepared.x_scaler.inverse(run.prepared.X_test[:5])
    np.testing.assert_array_equal(predict_torch(run, X.reshape(5, 64)), predict_torch(run, X))


# ---------------------------------------------------------------- progress and CLI


def _on_a_terminal(columns: int, rows: list[dict[str, float]], total: int) -> str:
    """What a progress bar over `rows` shows on a pty `columns` wide."""
    import fcntl
    import pty
    import struct
    import termios

    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    with os.fdopen(child, "w") as tty:
        bar = _Progress(total, 0, quiet=False, stream=tty)
        assert bar.bar is not None
        for row in rows:
            bar.epoch(row)
        bar.close()
    # The bar is written in several pieces; read until the closed terminal reports EOF.
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 10_000)
        except OSError:  # EIO: the other end is closed and everything has been read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    return b"".join(chunks).decode()


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(tmp_path: Path) -> None:
    row = {"epoch": 1.0, "loss": 0.5, "accuracy": 0.75, "lr": 0.01, "seconds": 0.1}
    out = _on_a_terminal(120, [row], 3)
    assert "loss=0.5" in out and "accuracy=0.75" in out and "1/3" in out

    with (tmp_path / "log").open("w") as f:
        lines = _Progress(3, 0, quiet=False, stream=f)
        assert lines.bar is None
        lines.epoch({"epoch": 1.0, "loss": 0.5, "lr": 0.01, "seconds": 0.1})
    assert (tmp_path / "log").read_text() == "epoch 1/3  loss 0.5  lr 0.01  0.10s\n"


def test_the_bar_fits_an_80_column_terminal_losses_first() -> None:
    import re

    rows = [{"epoch": float(e), "loss": 0.0123456, "val_loss": 0.0639123,
             "accuracy": 0.9876, "val_accuracy": 0.9612, "f1_macro": 0.95,
             "val_f1_macro": 0.94, "lr": 0.001, "seconds": 0.1} for e in range(1, 301)]
    out = _on_a_terminal(80, rows, 300)
    shown = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line)
             for line in re.split(r"[\r\n]", out) if line.strip()]
    assert shown and max(len(line) for line in shown) <= 80, max(shown, key=len)
    assert "loss=0.01235, val_loss=0.06391" in shown[-1]
    assert "300/300" in shown[-1]


def test_off_a_terminal_a_line_every_n_epochs(tmp_path: Path) -> None:
    def printed(total: int, every: int | None) -> list[int]:
        with (tmp_path / "log").open("w") as f:
            p = _Progress(total, 0, quiet=False, stream=f, every=every)
            for e in range(1, total + 1):
                p.epoch({"epoch": float(e), "loss": 0.5, "seconds": 0.1})
        return [int(line.split()[1].split("/")[0])
                for line in (tmp_path / "log").read_text().splitlines()]

    assert printed(300, None) == list(range(15, 301, 15))  # about 20 lines by default
    assert printed(10, 4) == [4, 8, 10]                     # and always the last epoch
    assert printed(3, None) == [1, 2, 3]


def test_cli_train_writes_runs_name_by_default(runner: Any, write_spec: Any,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from specnet.cli import main

    spec = write_spec(yaml.safe_dump(_spec(training={"epochs": 3}).model_dump(
        mode="json", exclude_none=True)), "cli.yaml")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["train", str(spec)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines[:3]] == [
        "epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "trained t: 3 epochs" in result.stdout
    assert "run folder: runs/t" in result.stdout
    assert (tmp_path / "runs" / "t" / "weights.safetensors").is_file()

    quiet = runner.invoke(main, ["train", str(spec), "--quiet", "-o", "elsewhere"])
    assert quiet.exit_code == 0
    assert "epoch 1/3" not in quiet.stdout and "trained t" in quiet.stdout
    assert (tmp_path / "elsewhere" / "metrics.json").is_file()


def test_cli_train_errors_are_one_line_and_exit_1(runner: Any, write_spec: Any,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from specnet.cli import main

    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(main, ["train", "nope.yaml"])
    assert missing.exit_code == 1 and "error: nope.yaml" in missing.stderr
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = write_spec("data: iris\nmodel: [{linear: auto}]\ndevice: cuda\n", "gpu.yaml")
    gpu = runner.invoke(main, ["train", str(spec)])
    assert gpu.exit_code == 1
    assert gpu.stderr.startswith("error: device: cuda")
    assert "Traceback" not in gpu.output


def test_cli_train_refuses_run_folders_that_would_clobber_files(
        runner: Any, write_spec: Any, tmp_path: Path) -> None:
    from specnet.cli import main

    text = "# my notes\ndata: iris\nmodel: [{linear: auto}]\ntraining: {epochs: 1}\n"
    spec = write_spec(text, "spec.yaml")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    for folder, match in ((a_file, "is a file"), (tmp_path, "would replace")):
        result = runner.invoke(main, ["train", str(spec), "-o", str(folder)])
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("error: ") and match in result.stderr
        assert "Traceback" not in result.output
    assert a_file.read_text() == "keep" and spec.read_text() == text
    # A folder of the user's own files (one named like an artifact) is not a run folder;
    # an earlier run's folder is, and a fresh run replaces it.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "history.csv").write_text("my data")
    (mine / "notes.txt").write_text("keep")
    result = runner.invoke(main, ["train", str(spec), "-o", str(mine)])
    assert result.exit_code == 1 and "not part of a specnet run (notes.txt)" in result.stderr
    assert (mine / "history.csv").read_text() == "my data"
    for _ in range(2):
        result = runner.invoke(main, ["train", str(spec), "-o", str(tmp_path / "run"), "-q"])
        assert result.exit_code == 0, result.output


def test_import_specnet_stays_torch_free() -> None:
    code = "import sys, specnet; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
