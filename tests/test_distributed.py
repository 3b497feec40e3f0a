"""Data-parallel training: the launcher's environment, the shard of each epoch, and real
2-process gloo runs (--nproc and torchrun): a killed rank ends the run with a clear error
and no orphan, --resume continues it, and the result is bit-identical to an uninterrupted
run and scores the full splits exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from torch.utils.data import DistributedSampler

from specnet.checkpoint import load as ckpt_load
from specnet.distributed import Env, _describe, from_env, shard_rows
from specnet.errors import TrainingError
from specnet.trainer import load_run, train

# ---------------------------------------------------------------- environment


def test_no_launcher_variables_means_one_process() -> None:
    assert from_env({}) is None
    assert from_env({"PATH": "/bin"}) is None


def test_a_launcher_environment_is_read() -> None:
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    assert from_env(env) == Env(rank=3, world=4, local_rank=1, local_world=2)


@pytest.mark.parametrize(("env", "match"), [
    ({"RANK": "0", "WORLD_SIZE": "2"}, r"LOCAL_RANK, MASTER_ADDR, MASTER_PORT are missing"),
    ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h",
      "MASTER_PORT": "1"}, r"RANK 2, WORLD_SIZE 2"),
    ({"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h",
      "MASTER_PORT": "1"}, r"bad distributed environment"),
], ids=["missing", "rank-out-of-range", "not-a-number"])
def test_a_broken_launcher_environment_is_a_clear_error(env: dict[str, str], match: str) -> None:
    with pytest.raises(TrainingError, match=match):
        from_env(env)


# ---------------------------------------------------------------- the shard


@pytest.mark.parametrize(("n", "world"), [(10, 2), (11, 2), (7, 3), (2, 4)],
                         ids=["even", "odd", "three", "fewer-rows-than-ranks"])
def test_shards_are_torch_distributed_sampler_shards(n: int, world: int) -> None:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(5))
    shards = [shard_rows(order, r, world) for r in range(world)]
    for r, shard in enumerate(shards):
        sampler = DistributedSampler(order.tolist(), num_replicas=world, rank=r,
                                     shuffle=False)
        assert [int(order[i]) for i in sampler] == shard.tolist()
    assert len({len(s) for s in shards}) == 1  # equal lengths: equal steps on every rank
    assert set(torch.cat(shards).tolist()) == set(range(n))


# ---------------------------------------------------------------- failures


def test_a_killed_rank_is_described_by_rank_pid_and_signal(tmp_path: Path) -> None:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    failure = ProcessFailure(local_rank=1, pid=4242, exitcode=-9,
                             error_file=str(tmp_path / "none.json"))
    text = _describe({1: failure})
    assert text.startswith("rank 1 (pid 4242) was killed by SIGKILL")
    assert "other ranks were stopped" in text


# ---------------------------------------------------------------- real 2-process runs

_SPEC = """\
name: ddp
seed: 0
data: {source: classification, n_samples: 2000, n_features: 20, n_classes: 3,
       split: {validation: 0.2, test: 0.2}}
model:
  - linear: 32
  - batchnorm
  - relu
  - dropout: 0.1
  - linear: auto
optimizer: {type: adam, lr: 0.01}
training:
  epochs: 16
  batch_size: 32
  metrics: [accuracy]
  checkpoint_every: 1
"""


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def _train_cmd(spec: Path, out: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "specnet", "train", str(spec), "-o", str(out), *more]


def _ranks(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    kids = psutil.Process(proc.pid).children(recursive=True)
    return [k for k in kids if "resource_tracker" not in " ".join(k.cmdline())]


def test_two_gloo_processes_kill_resume_and_match_an_uninterrupted_run(
        tmp_path: Path) -> None:
    spec = tmp_path / "ddp.yaml"
    spec.write_text(_SPEC)
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    # 1. --nproc 2, one rank killed after the second checkpoint: a clear error, no orphan.
    proc = subprocess.Popen(_train_cmd(spec, killed, "--nproc", "2", "-q"), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpts = killed / "checkpoints"
    deadline = time.monotonic() + 300
    reached = False
    while time.monotonic() < deadline and proc.poll() is None and not reached:
        names = sorted(p.name for p in ckpts.glob("epoch_*.pt")) if ckpts.is_dir() else []
        reached = bool(names) and int(names[-1][6:11]) >= 2
        time.sleep(0.01)
    assert reached, "no second checkpoint: the run ended or did not get that far"
    ranks = _ranks(proc)
    assert len(ranks) == 2, [r.cmdline() for r in ranks]
    victim = ranks[-1]
    victim.kill()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert f"(pid {victim.pid}) was killed by SIGKILL" in err
    assert "error: rank " in err and "Traceback" not in err
    _, alive = psutil.wait_procs(ranks, timeout=20)
    assert not alive, f"orphan ranks: {alive}"
    assert not (killed / "weights.safetensors").exists()
    stopped_at = int(sorted(p.name for p in ckpts.glob("epoch_*.pt"))[-1][6:11])
    assert 2 <= stopped_at < 16

    # 2. --resume continues from the checkpoint.
    resumed = subprocess.run(_train_cmd(spec, killed, "--nproc", "2", "--resume"),
                             env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed ddp from" in resumed.stdout
    assert f"epoch {stopped_at + 1}/16" in resumed.stdout

    # 3. The same job uninterrupted under torchrun: bit-identical weights.
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "specnet", "train", str(spec),
                          "-o", str(clean), "-q"],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("trained ddp: 16 epochs") == 1  # rank 0 alone reports
    assert (killed / "weights.safetensors").read_bytes() == \
        (clean / "weights.safetensors").read_bytes()
    assert [line.rsplit(",", 1)[0] for line in (killed / "history.csv").read_text().split()] \
        == [line.rsplit(",", 1)[0] for line in (clean / "history.csv").read_text().split()]

    # 4. The figures are those of the saved model over the full splits, each row once.
    metrics = json.loads((clean / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo"
    assert metrics["global_batch_size"] == 32 and metrics["per_rank_batch_size"] == 16
    loaded = load_run(clean)
    p = loaded.prepared
    for split in ("val", "test"):
        X, y = getattr(p, f"X_{split}"), getattr(p, f"y_{split}")
        assert len(y) == 400
        with torch.no_grad():
            out = loaded.model(torch.from_numpy(X)).numpy()
        accuracy = float(np.mean(out.argmax(1) == y))
        assert metrics[split]["accuracy"] == pytest.approx(accuracy, abs=1e-12)

    # 5. Two processes reach the quality of one.
    single = train(spec)
    assert single.metrics["test"]["accuracy"] > 0.75
    assert abs(metrics["test"]["accuracy"] - single.metrics["test"]["accuracy"]) < 0.05


# ---------------------------------------------------------------- fewer synchronisations

_PLAIN = """\
name: acc
seed: 0
data: {source: classification, n_samples: 1200, n_features: 12, n_classes: 2,
       split: {validation: 0.2, test: 0.2}}
model: [linear: 16, relu, linear: auto]
optimizer: {type: sgd, lr: 0.1}
training: {epochs: 3, batch_size: 64, accumulate: ACC, metrics: [accuracy]}
"""


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from specnet.checkpoint import load_weights

    return load_weights(run_dir / "weights.safetensors")


@pytest.mark.parametrize(("bad", "match"), [
    ("accumulate: 65", r"\.yaml:\d+:\d+: training\.accumulate: 65 micro-batches per step do "
                       r"not fit batch_size 64 .*use accumulate <= 64"),
    ("accumulate: 0", r"\.yaml:\d+:\d+: training\.accumulate: must be at least 1, got 0"),
    ("local_sgd: {average_every: 1}",
     r"\.yaml:\d+:\d+: training\.local_sgd\.average_every: must be at least 2, got 1"),
    ("local_sgd: {every: 8}", r"training\.local_sgd\.every: unknown key 'every'"),
], ids=["more-micro-batches-than-rows", "zero", "average-every-step", "unknown-key"])
def test_bad_accumulate_and_local_sgd_settings_are_located_errors(
        tmp_path: Path, bad: str, match: str) -> None:
    from specnet.errors import SpecError
    from specnet.spec.validate import load_spec

    spec = tmp_path / "bad.yaml"
    spec.write_text(_PLAIN.replace("accumulate: ACC", bad))
    with pytest.raises(SpecError, match=match):
        load_spec(spec)


def test_accumulation_steps_on_the_same_rows_as_one_big_batch(tmp_path: Path) -> None:
    # One process, batch 64 in 4 micro-batches of 16 against batch 64 at once: the same
    # rows per step and, in exact arithmetic, the same gradient (the micro-batch losses are
    # weighted by their share of the step); in float32 the sums are added in another order,
    # so the weights agree to rounding, not to the bit.
    one = train(_spec_file(tmp_path, "one", _PLAIN, 1))
    four = train(_spec_file(tmp_path, "four", _PLAIN, 4))
    assert four.metrics["accumulate"] == 4 and four.metrics["micro_batch_size"] == 16
    assert four.metrics["global_batch_size"] == 64
    assert "accumulate" not in one.metrics
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(four.model.state_dict()[k], v, atol=2e-5, rtol=0)


def _assert_tracked_once(tmp_path: Path, epochs: int) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb" / "acc" / "train"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("epoch_loss")] == list(range(1, epochs + 1))
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # as specnet.track sets it
    client = MlflowClient(tracking_uri=(tmp_path / "ml").resolve().as_uri())
    (logged,) = client.search_runs([client.get_experiment_by_name("acc").experiment_id])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "train"
    steps = [m.step for m in client.get_metric_history(logged.info.run_id, "loss")]
    assert steps == list(range(1, epochs + 1)), steps


def _spec_file(tmp_path: Path, name: str, text: str, accumulate: int) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("ACC", str(accumulate)))
    return path


def test_two_processes_accumulating_match_one_process_stepping_on_the_whole_batch(
        tmp_path: Path) -> None:
    # 2 ranks x 2 micro-batches of 16 rows, one all-reduce per step, against one process
    # on batches of 64: the same rows per step, the same weights up to float rounding.
    # Rank 0 alone logs the run to TensorBoard and MLflow (each epoch once).
    spec = _spec_file(tmp_path, "acc", _PLAIN, 2)
    out = tmp_path / "ddp"
    run = subprocess.run(_train_cmd(spec, out, "--nproc", "2", "--tensorboard",
                                    str(tmp_path / "tb"), "--mlflow", str(tmp_path / "ml")),
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "tracked in TensorBoard" in run.stderr
    _assert_tracked_once(tmp_path, epochs=3)
    assert ("64 rows per optimizer step = 2 ranks x 32 rows, 2 micro-batches of 16 rows per "
            "rank; gradients all-reduced every step") in run.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_batch_size"] == 64 and metrics["per_rank_batch_size"] == 32
    assert metrics["accumulate"] == 2 and metrics["micro_batch_size"] == 16
    assert metrics["sync"] == "gradients"
    single = train(_spec_file(tmp_path, "one", _PLAIN, 1))
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(_weights(out)[k], v, atol=2e-5, rtol=0)


_LOCAL_SGD = _SPEC.replace("epochs: 16", "epochs: 8").replace(
    "batch_size: 32", "batch_size: 32\n  accumulate: 2\n  local_sgd: {average_every: 4}")


@pytest.mark.slow  # three 2-process launches (~1 min): `pytest -m slow`
def test_local_sgd_with_accumulation_repeats_bit_identically_and_resumes(
        tmp_path: Path) -> None:
    spec = tmp_path / "lsgd.yaml"
    spec.write_text(_LOCAL_SGD)
    first, killed = tmp_path / "first", tmp_path / "killed"
    run = subprocess.run(_train_cmd(spec, first, "--nproc", "2"), env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "parameters averaged every 4 steps (local SGD)" in run.stdout
    metrics = json.loads((first / "metrics.json").read_text())
    assert metrics["sync"] == "local_sgd" and metrics["average_every"] == 4
    assert metrics["accumulate"] == 2 and metrics["micro_batch_size"] == 8
    assert metrics["test"]["accuracy"] > 0.7

    # The same job again, one rank killed after its second checkpoint, then resumed: the
    # bytes of the uninterrupted run. Every rank continues its own optimizer state and the
    # averager's step count from the checkpoint.
    proc = subprocess.Popen(_train_cmd(spec, killed, "--nproc", "2", "-q"), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpts = killed / "checkpoints"
    deadline, stopped_at = time.monotonic() + 300, 0
    while time.monotonic() < deadline and proc.poll() is None and stopped_at < 2:
        names = sorted(p.name for p in ckpts.glob("epoch_*.pt")) if ckpts.is_dir() else []
        stopped_at = int(names[-1][6:11]) if names else 0
        time.sleep(0.01)
    assert stopped_at >= 2, "no second checkpoint: the run ended or did not get that far"
    _ranks(proc)[-1].kill()
    proc.communicate(timeout=120)
    assert proc.returncode == 1
    newest = sorted(ckpts.glob("epoch_*.pt"))[-1]
    stopped_at = int(newest.name[6:11])
    assert 2 <= stopped_at < 8
    state = ckpt_load(newest, 8)
    assert len(state["rank_optimizers"]) == 2 and state["averager_step"] > 0
    run = subprocess.run(_train_cmd(spec, killed, "--nproc", "2", "--resume"), env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "resumed ddp from" in run.stdout and f"epoch {stopped_at + 1}/8" in run.stdout
    assert (killed / "weights.safetensors").read_bytes() == \
        (first / "weights.safetensors").read_bytes()

    # Resuming with another number of processes is refused: the optimizer states are per rank.
    (killed / "metrics.json").unlink()
    with pytest.raises(TrainingError, match=r"optimizer states of 2 ranks .* resume with "
                                            r"--nproc 2"):
        train(spec, killed, resume=True)
