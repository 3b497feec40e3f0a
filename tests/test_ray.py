"""The Ray backend: the same sweep on Ray gives the local backend's numbers to the last digit
and the same files; ASHA stops poor trainings and the report says which; errors are clean
and no Ray process outlives a sweep. One local Ray (2 CPUs) serves the whole module."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specnet.cli import main
from specnet.errors import SpecError, SpecnetError
from specnet.sweep import load_sweep, run_sweep
from specnet.sweep.asha import AshaPlan, Rungs, milestones
from specnet.sweep.backends import make_backend
from specnet.sweep.backends.ray import _worker_niceness

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent

BASE = """\
name: tiny
seed: 0
task: binary
data: {source: xor, n_samples: 120, noise: 0.1}
model:
  - linear: 4
  - tanh
  - linear: 1
optimizer: {type: adam, lr: 0.05}
training: {epochs: 3, batch_size: 32, metrics: [accuracy]}
"""


def _ray_pids(trials: bool = False) -> set[int]:
    """Processes of any local Ray (its GCS server and raylets; and its training workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"gcs_server" in cmd or b"/raylet" in cmd or (trials and cmd.startswith(b"ray::trial")):
            found.add(int(entry.name))
    return found


def _gone(pids: set[int], within: float = 15.0) -> set[int]:
    """The pids still alive after waiting up to `within` seconds."""
    end = time.monotonic() + within
    alive = set(pids)
    while alive and time.monotonic() < end:
        alive = {p for p in alive if Path(f"/proc/{p}").exists()
                 and b"Z" not in Path(f"/proc/{p}/stat").read_bytes().split(b")")[-1][:3]}
        time.sleep(0.2)
    return alive


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    """One local Ray with 2 CPUs for the module; afterwards none of its processes is left."""
    before = _ray_pids()
    with _worker_niceness():  # workers at this process's priority, as the backend does
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    ours = _ray_pids() - before
    try:
        yield
    finally:
        ray.shutdown()
        assert not _gone(ours), "Ray processes left after ray.shutdown()"


@pytest.fixture
def base(write_spec: Any) -> Path:
    return write_spec(BASE, "base.yaml")


def _strip(text: str, drop: str = "time_s") -> list[list[str]]:
    """CSV rows without the columns that hold training times."""
    rows = list(csv.reader(io.StringIO(text)))
    keep = [i for i, name in enumerate(rows[0]) if drop not in name]
    return [[row[i] for i in keep] for row in rows]


# ---------------------------------------------------------------- identical results


def test_grid_and_cv_results_are_identical_to_the_local_backend(
        base: Path, write_spec: Any, tmp_path: Path) -> None:
    path = write_spec("extends: base.yaml\nsweep:\n  grid: {optimizer.lr: [0.001, 0.05], "
                      "model.0.units: [2, 4]}\n  cv: 3\n", "grid.yaml")
    sweep = load_sweep(path)
    local = run_sweep(sweep, jobs=1)
    lines: list[str] = []
    on_ray = run_sweep(sweep, jobs=0, backend="ray", progress=lines.append)
    assert on_ray.backend == "ray" and on_ray.processes == 2
    for a, b in zip(local.results, on_ray.results, strict=True):
        for x, y in zip(a.runs, b.runs, strict=True):
            assert (x.key, x.seed, x.sizes, x.error) == (y.key, y.seed, y.sizes, y.error)
            assert {k: v for k, v in x.values.items() if k != "time_s"} == \
                   {k: v for k, v in y.values.items() if k != "time_s"}
            assert x.history == y.history  # every epoch, bit for bit
    assert len({run.pid for r in on_ray.results for run in r.runs} - {os.getpid()}) >= 1
    assert _strip(local.runs_csv()) == _strip(on_ray.runs_csv())
    assert _strip(local.summary_csv()) == _strip(on_ray.summary_csv())
    assert local.best_spec_yaml() == on_ray.best_spec_yaml()
    assert len([line for line in lines if "cv_accuracy" in line]) == 4  # one per variant
    assert "on ray, 2 training(s) at once x 1 thread(s)" in on_ray.footer()
    files = on_ray.write(tmp_path / "out")
    assert set(files) == {"summary.md", "summary.csv", "runs.csv", "best.yaml", "plot.png"}
    assert (tmp_path / "out" / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_heldout_and_nested_estimates_train_on_ray_with_the_local_numbers(
        base: Path, write_spec: Any) -> None:
    path = write_spec("extends: base.yaml\ndata: {source: xor, n_samples: 120, noise: 0.1, "
                      "split: {validation: 0.2, test: 0.2}}\nsweep:\n  grid: {optimizer.lr: "
                      "[0.001, 0.05]}\n  cv: {folds: 2, nested: 2}\n", "nested.yaml")
    sweep = load_sweep(path)
    local = run_sweep(sweep, jobs=1)
    on_ray = run_sweep(sweep, jobs=0, backend="ray")
    a, b = local.estimates, on_ray.estimates
    assert a is not None and b is not None and a.heldout is not None and b.heldout is not None
    assert a.heldout.pid == os.getpid() and b.heldout.pid != os.getpid()  # a Ray worker's
    assert {k: v for k, v in a.heldout.values.items() if k != "time_s"} == \
           {k: v for k, v in b.heldout.values.items() if k != "time_s"}
    assert len(a.nested) == len(b.nested) == 2
    for x, y in zip(a.nested, b.nested, strict=True):
        assert (x.winner, x.inner_score, x.score, x.rows, x.error) == \
               (y.winner, y.inner_score, y.score, y.rows, y.error)
    assert a.heldout_score == b.heldout_score and a.nested_score == b.nested_score


def test_cli_sweep_on_ray_writes_the_same_files(base: Path, write_spec: Any, runner: Any,
                                                tmp_path: Path) -> None:
    path = write_spec("extends: base.yaml\nsweep:\n  grid: {optimizer.lr: [0.001, 0.05]}\n"
                      "  repeats: 2\n", "rep.yaml")
    out_local, out_ray = tmp_path / "local", tmp_path / "ray"
    res = runner.invoke(main, ["sweep", str(path), "-q", "-o", str(out_local)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["sweep", str(path), "-q", "-o", str(out_ray), "--backend", "ray"])
    assert res.exit_code == 0, res.output
    assert "on ray" in res.output
    assert sorted(p.name for p in out_ray.iterdir()) == sorted(p.name for p in
                                                              out_local.iterdir())
    for name in ("runs.csv", "summary.csv"):
        assert _strip((out_local / name).read_text()) == _strip((out_ray / name).read_text())
    assert (out_local / "best.yaml").read_text() == (out_ray / "best.yaml").read_text()


# ---------------------------------------------------------------- asha


def test_the_trainers_epoch_hook_sees_every_row_and_can_stop_it(base: Path,
                                                                 one_torch_thread: None) -> None:
    from specnet.spec.validate import load_spec
    from specnet.trainer import train

    spec = load_spec(base).spec
    seen: list[dict[str, float]] = []

    class Hook:
        def __init__(self, stop_at: int | None) -> None:
            self.stop_at = stop_at

        def on_epoch_end(self, row: dict[str, float]) -> bool:
            seen.append(row)
            return self.stop_at is not None and row["epoch"] >= self.stop_at

    run = train(spec, callbacks=[Hook(2)])
    assert [r["epoch"] for r in seen] == [1.0, 2.0] and seen == run.history
    assert run.metrics["epochs_run"] == 2 and run.metrics["stopped_early"] is True
    full = train(spec, callbacks=[Hook(None)])
    assert full.metrics["epochs_run"] == 3

    def strip(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert strip(full.history[:2]) == strip(run.history)  # the hook changes nothing else


@pytest.mark.parametrize(("reports", "stops"), [
    ([(1, 0.5), (2, 0.9), (3, 0.4)], [False, False, True]),   # third below the cut of 2
    ([(1, 0.5), (2, 0.4)], [False, True]),                     # the first always goes on
    ([(1, float("nan")), (2, 0.4)], [False, False]),           # NaN sets no cutoff
], ids=["cut", "first-goes-on", "nan"])
def test_rungs_follow_tunes_asha_rule(reports: list[tuple[int, float]],
                                      stops: list[bool]) -> None:
    rungs = Rungs(AshaPlan("val_accuracy", "max", (3, 9), 3.0))
    got = [rungs.report((v, 0, 0), 3, value) for v, value in reports]
    assert got == stops
    assert rungs.report((9, 0, 0), 2, 0.0) is False  # not a rung epoch
    assert milestones(1, 3, 100) == (1, 3, 9, 27, 81)
    assert milestones(2, 2, 16) == (2, 4, 8, 16)


def test_asha_stops_poor_variants_and_the_report_says_which(
        base: Path, write_spec: Any, tmp_path: Path) -> None:
    path = write_spec("""\
extends: base.yaml
training: {epochs: 9, batch_size: 32, metrics: [accuracy]}
sweep:
  variants:
    good: {optimizer.lr: 0.05}
    bad: {optimizer.lr: 0.00001}
    worse: {optimizer.lr: 0.00002}
  scheduler: {type: asha, metric: val_loss, grace_period: 3, reduction_factor: 3}
""", "asha.yaml")
    sweep = load_sweep(path)
    result = run_sweep(sweep, backend="ray")
    stopped = {r.variant.name: [run.stopped_at for run in r.stopped] for r in result.results}
    assert stopped["good"] == []
    assert stopped["worse"] == [3]
    assert result.best is not None and result.best.variant.name == "good"
    worse = next(r for r in result.results if r.variant.name == "worse")
    assert worse.runs[0].values["epochs"] == 3.0
    text = result.text_table()
    assert "stopped early by asha: worse (1 of 1 runs, at epoch 3)" in text
    assert "stopped early by asha: worse" in result.markdown()
    rows = list(csv.DictReader(io.StringIO(result.runs_csv())))
    assert {r["variant"]: r["stopped_at_epoch"] for r in rows}["worse"] == "3"
    assert {r["variant"]: r["stopped_at_epoch"] for r in rows}["good"] == ""


def test_scheduler_is_validated_with_locations(base: Path, write_spec: Any) -> None:
    bad_metric = write_spec("extends: base.yaml\nsweep:\n  grid: {optimizer.lr: [0.1, 0.2]}\n"
                            "  scheduler: {type: asha, metric: val_acuracy}\n", "m.yaml")
    with pytest.raises(SpecError, match=r"m.yaml:4:\d+: .*val_acuracy.*did you mean "
                                        r"'val_accuracy'"):
        load_sweep(bad_metric)
    bad_key = write_spec("extends: base.yaml\nsweep:\n  grid: {optimizer.lr: [0.1, 0.2]}\n"
                         "  scheduler: {type: asha, grace: 2}\n", "k.yaml")
    with pytest.raises(SpecError, match=r"unknown key 'grace'.*grace_period"):
        load_sweep(bad_key)


# ---------------------------------------------------------------- errors


def test_local_backend_refuses_a_scheduler_and_an_address(base: Path, write_spec: Any,
                                                         runner: Any) -> None:
    path = write_spec("extends: base.yaml\nsweep:\n  grid: {optimizer.lr: [0.1, 0.2]}\n"
                      "  scheduler: {type: asha}\n", "s.yaml")
    dry = runner.invoke(main, ["sweep", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "early termination: asha on val_accuracy (max): rungs at epochs 1, 3; the best 1/3 " \
           "go on at each" in dry.output  # 3 epochs
    res = runner.invoke(main, ["sweep", str(path), "-q"])
    assert res.exit_code == 1
    assert "error: sweep.scheduler (asha) stops trainings early on the Ray backend only: " \
           "run with --backend ray" in res.output
    with pytest.raises(SpecnetError, match="--address names a Ray cluster"):
        make_backend("local", 1, 1, 4, address="auto")


def test_missing_ray_names_the_install_command(base: Path, write_spec: Any, runner: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_spec("extends: base.yaml\nsweep:\n  grid: {optimizer.lr: [0.1, 0.2]}\n",
                      "g.yaml")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    res = runner.invoke(main, ["sweep", str(path), "-q", "--backend", "ray"])
    assert res.exit_code == 1
    assert "error: --backend ray needs Ray, which is not installed: " \
           "pip install 'specnet[ray]'" in res.output


def test_a_gpu_spec_on_a_cluster_without_gpus_is_a_clean_error(base: Path,
                                                                write_spec: Any) -> None:
    path = write_spec("extends: base.yaml\ndevice: cuda\nsweep:\n  grid: {optimizer.lr: "
                      "[0.1, 0.2]}\n", "gpu.yaml")
    with pytest.raises(SpecnetError, match="device: cuda but the Ray cluster has no GPU"):
        run_sweep(load_sweep(path), backend="ray")
    assert ray.is_initialized()  # a Ray this call did not start is left running


def test_ctrl_c_stops_a_sweep_and_its_own_ray_with_a_clean_error(base: Path, write_spec: Any,
                                                                 tmp_path: Path) -> None:
    """A CLI sweep starts its own Ray; Ctrl-C while trainings run: `error: interrupted`,
    exit 130, no output folder, and none of that Ray's processes left."""
    path = write_spec("extends: base.yaml\ntraining: {epochs: 5000}\nsweep:\n  grid: "
                      "{optimizer.lr: [0.001, 0.01, 0.05]}\n", "long.yaml")
    before = _ray_pids()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "specnet.cli", "sweep", str(path), "-q",
                             "--backend", "ray", "-o", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        end = time.monotonic() + 240
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.5)
            if _training(_ray_pids(trials=True) - before):
                break
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted (SIGINT): nothing was written")
    assert not (tmp_path / "out").exists()
    assert not _gone(_ray_pids(trials=True) - before), "Ray processes left after Ctrl-C"


def _training(pids: set[int]) -> bool:
    """Whether one of `pids` is a Ray worker running a training task."""
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::trial"):
                return True
        except OSError:
            continue
    return False
