"""Sweeps: paths into specs, expansion (grid, variants, random), located errors before any
training, leak-free folds, serial vs parallel equality, the report files and the CLI."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from specnet.cli import main
from specnet.data.prepare import Scaler
from specnet.errors import SpecError, SpecnetError
from specnet.spec.validate import load_spec
from specnet.sweep import fold_indices, load_sweep, make_jobs, prepare_job, run_sweep
from specnet.sweep.paths import PathError, deep_merge, get_path, parse_path, set_path
from specnet.sweep.runner import _arrays, cores, flat_metrics, plan
from specnet.sweep.selection import holdout_split
from specnet.trainer import train

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ROOT / "specs" / "sweeps"

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


@pytest.fixture
def base(write_spec: Any) -> Path:
    """A tiny XOR spec that trains in a few milliseconds."""
    return write_spec(BASE, "base.yaml")


def sweep_file(write_spec: Any, body: str, name: str = "sw.yaml") -> Path:
    return write_spec("extends: base.yaml\n" + body, name)


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(("text", "want"), [
    ("optimizer.lr", ("optimizer", "lr")),
    ("model[0].units", ("model", 0, "units")),
    ("model[0].layers[1].units", ("model", 0, "layers", 1, "units")),
    ("model.0.units", ("model", 0, "units")),
    ("model__0__units", ("model", 0, "units")),
    ("training.early_stopping.patience", ("training", "early_stopping", "patience")),
], ids=["dotted", "index", "nested-index", "dot-index", "sklearn", "deep"])
def test_parse_path(text: str, want: tuple[Any, ...]) -> None:
    assert parse_path(text) == want


@pytest.mark.parametrize("text", ["", "model[0.units", "optimizer..lr", "0.units", "a-b"],
                         ids=["empty", "unclosed", "empty-part", "leading-index", "dash"])
def test_parse_path_rejects(text: str) -> None:
    with pytest.raises(PathError, match="path"):
        parse_path(text)


def test_set_path_expands_shorthand_on_the_way() -> None:
    data: dict[str, Any] = yaml.safe_load(BASE)
    data["optimizer"] = "adam"
    set_path(data, ("model", 0, "units"), 32)
    set_path(data, ("optimizer", "type"), "sgd")
    set_path(data, ("regularization", "l1"), 0.1)  # a missing mapping is created
    assert data["model"][0] == {"type": "linear", "units": 32}
    assert data["model"][1] == {"type": "tanh"}
    assert data["optimizer"] == {"type": "sgd"}
    assert data["regularization"] == {"l1": 0.1}
    assert get_path(data, ("model", 2, "units")) == 1


@pytest.mark.parametrize(("path", "match"), [
    (("model", 7, "units"), "model has 3 items; index 7 is out of range"),
    (("seed", "x"), "seed is a int, not a mapping"),
    (("optimizer", 0), "optimizer is a dict, not a list"),
    (("layers", 0, "units"), "layers is not set"),
], ids=["index-range", "into-scalar", "index-mapping", "missing-list"])
def test_set_path_errors_name_the_step(path: tuple[Any, ...], match: str) -> None:
    with pytest.raises(PathError, match=match):
        set_path(yaml.safe_load(BASE), path, 1)


def test_deep_merge_replaces_a_section_whose_type_changes() -> None:
    base = {"optimizer": {"type": "adam", "betas": [0.9, 0.9], "lr": 0.1},
            "training": {"epochs": 5, "batch_size": 8}}
    merged, origins = deep_merge(base, {"optimizer": {"type": "sgd"},
                                        "training": {"epochs": 9}})
    assert merged["optimizer"] == {"type": "sgd"}
    assert merged["training"] == {"epochs": 9, "batch_size": 8}
    assert origins == [("optimizer",), ("training", "epochs")]
    same, _ = deep_merge(base, {"optimizer": {"lr": 0.5}})
    assert same["optimizer"] == {"type": "adam", "betas": [0.9, 0.9], "lr": 0.5}


# ---------------------------------------------------------------- expansion


def test_grid_is_the_product_in_order(base: Path, write_spec: Any) -> None:
    path = sweep_file(write_spec, "sweep:\n  grid:\n    model[1].type: [tanh, relu]\n"
                                  "    optimizer.lr: [0.1, 0.01, 0.001]\n  repeats: 2\n")
    sweep = load_sweep(path)
    assert [v.name for v in sweep.variants] == [
        "type=tanh lr=0.1", "type=tanh lr=0.01", "type=tanh lr=0.001",
        "type=relu lr=0.1", "type=relu lr=0.01", "type=relu lr=0.001"]
    assert sweep.variants[4].spec.model[1].type == "relu"
    assert sweep.variants[4].spec.optimizer.lr == 0.01
    assert sweep.metric == "val_accuracy" and sweep.mode == "max"
    jobs = make_jobs(sweep)
    assert len(jobs) == 12
    assert [j.spec.seed for j in jobs[:2]] == [0, 1]


def test_variants_tied_paths_and_labels(base: Path, write_spec: Any) -> None:
    path = sweep_file(write_spec, """\
sweep:
  variants:
    small: {model.0.units: 2}
    wide:
      model: [linear: 64, relu, linear: 1]
  grid:
    model[0].units, optimizer.weight_decay: [3, 5]
  labels: {"model[0].units, optimizer.weight_decay": both}
""")
    sweep = load_sweep(path)
    assert [v.name for v in sweep.variants] == ["small both=3", "small both=5", "wide both=3",
                                                "wide both=5"]
    wide3 = sweep.variants[2].spec
    assert wide3.model[0].units == 3 and wide3.optimizer.weight_decay == 3
    assert [layer.type for layer in wide3.model] == ["linear", "relu", "linear"]


def test_random_search_is_seeded_and_in_bounds(base: Path, write_spec: Any) -> None:
    body = """\
sweep:
  random:
    trials: 12
    seed: 3
    params:
      optimizer.lr: {loguniform: [0.0001, 0.1]}
      model[0].units: {int: [2, 5]}
      optimizer.weight_decay: {uniform: [0.0, 0.5]}
      training.batch_size: [8, 16]
"""
    first = load_sweep(sweep_file(write_spec, body))
    again = load_sweep(sweep_file(write_spec, body, "again.yaml"))
    assert [v.settings for v in first.variants] == [v.settings for v in again.variants]
    specs = [v.spec for v in first.variants]
    assert len(specs) == 12
    assert all(1e-4 <= s.optimizer.lr <= 0.1 for s in specs)
    assert {s.model[0].units for s in specs} <= {2, 3, 4, 5}
    assert all(0 <= s.optimizer.weight_decay <= 0.5 for s in specs)
    assert {s.training.batch_size for s in specs} <= {8, 16}
    other = load_sweep(sweep_file(write_spec, body.replace("seed: 3", "seed: 4"), "o.yaml"))
    assert [v.settings for v in other.variants] != [v.settings for v in first.variants]


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_sweeps_validate(path: Path) -> None:
    sweep = load_sweep(path)
    assert len(sweep.variants) >= 4
    assert 4 <= len(make_jobs(sweep)) <= 80


# ---------------------------------------------------------------- located errors


def _issues(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    return [str(i) for i in info.value.issues]


def test_bad_variant_value_names_the_variant_and_the_line(base: Path, write_spec: Any) -> None:
    path = sweep_file(write_spec, "sweep:\n  grid:\n    optimizer.type: [sgd, momentom]\n"
                                  "    model[0].units: [4, -3]\n")
    issues = _issues(path)
    assert len(issues) == 2
    assert issues[0].startswith(f"{path}:4:27: variants 'type=momentom units=4', "
                                "'type=momentom units=-3': optimizer: unknown optimizer "
                                "'momentom' (did you mean 'momentum'?)")
    assert issues[1].startswith(f"{path}:5:25: variants 'type=sgd units=-3', "
                                "'type=momentom units=-3': model[0].units:")


def test_bad_path_is_located_at_its_key(base: Path, write_spec: Any) -> None:
    path = sweep_file(write_spec, "sweep:\n  grid:\n    model[5].units: [4]\n")
    (issue,) = _issues(path)
    assert issue == (f"{path}:4:5: variant '4': sweep.grid.model[5].units: model has 3 items; "
                     "index 5 is out of range")


def test_every_problem_in_one_pass(base: Path, write_spec: Any) -> None:
    path = sweep_file(write_spec, "training: {epochz: 3}\nsweep:\n  cvv: 3\n  grid:\n"
                                  "    'model[0.units': [3]\n")
    issues = _issues(path)
    assert any(":2:12: training.epochz: unknown key 'epochz' (did you mean 'epochs'?)" in i
               for i in issues)
    assert any(":4:3: sweep.cvv: unknown key 'cvv' (did you mean 'cv'?)" in i for i in issues)
    assert any(":6:5: sweep.grid.model[0.units: bad path" in i for i in issues)


def test_error_in_the_base_spec_points_into_the_base_file(base: Path, write_spec: Any) -> None:
    write_spec(BASE.replace("linear: 4", "linear: {units: 4, bais: true}"), "base.yaml")
    path = sweep_file(write_spec, "sweep:\n  grid:\n    optimizer.lr: [0.1, 0.2]\n")
    (issue,) = _issues(path)
    assert issue.startswith(f"{base}:6:")
    assert "every variant: model[0].bais: unknown key 'bais' (did you mean 'bias'?)" in issue


@pytest.mark.parametrize(("body", "match"), [
    ("sweep: {grid: {optimizer.lr: [0.1]}, metric: cv_accuracy}", "needs cross-validation"),
    ("sweep: {grid: {optimizer.lr: [0.1]}, metric: val_acc}", "did you mean 'val_accuracy'"),
    ("sweep: {grid: {optimizer.lr: []}}", "has no values"),
    ("sweep: {random: {trials: 2, params: {optimizer.lr: {uniform: [1, 0]}}}}",
     "low must be below high"),
    ("sweep: {random: {trials: 2, params: {optimizer.lr: {uniform: [0, 1], int: [0, 1]}}}}",
     "exactly one of"),
    ("sweep: {grid: {optimizer.lr: [0.1]}, labels: {optimizer.lrr: x}}",
     "not a grid or random key"),
    ("sweep: {cv: 1, grid: {optimizer.lr: [0.1]}}", "greater than or equal to 2"),
    ("sweep: 3", "sweep must be a mapping"),
    ("data: {split: {test: 0}}\nsweep: {grid: {optimizer.lr: [0.1]}, metric: test_loss}",
     "no test split"),
], ids=["cv-metric", "metric-typo", "empty-grid", "bounds", "two-kinds", "label", "cv1",
        "scalar", "no-test-split"])
def test_sweep_section_errors(base: Path, write_spec: Any, body: str, match: str) -> None:
    issues = _issues(sweep_file(write_spec, body + "\n"))
    assert any(match in i for i in issues), issues


@pytest.mark.parametrize(("metric", "mode"), [
    ("val_accuracy", "max"), ("val_loss", "min"), ("time_s", "min"),
    # gap = train - validation: accuracy's gap grows with overfitting, the loss's falls.
    ("gap_accuracy", "min"), ("gap_loss", "max"),
])
def test_ranking_mode_follows_the_metric(base: Path, write_spec: Any, metric: str,
                                          mode: str) -> None:
    body = f"sweep: {{grid: {{optimizer.lr: [0.1, 0.01]}}, metric: {metric}}}\n"
    sweep = load_sweep(sweep_file(write_spec, body))
    assert (sweep.metric, sweep.mode) == (metric, mode)


def test_default_ranking_never_falls_back_to_the_test_split(base: Path, write_spec: Any) -> None:
    body = ("data: {split: {validation: 0, test: 0.3}}\n"
            "sweep: {grid: {optimizer.lr: [0.1, 0.01]}}\n")
    issue = _issues(sweep_file(write_spec, body))[0]
    assert "no validation split to rank the variants on" in issue and "sweep.cv" in issue
    # Asked for by name, the test split may rank (the user knows what it means).
    named = body.replace("]}}", "]}, metric: test_accuracy}")
    assert load_sweep(sweep_file(write_spec, named, "named.yaml")).metric == "test_accuracy"


def test_extends_must_name_a_plain_spec(write_spec: Any) -> None:
    missing = write_spec("extends: nope.yaml\nsweep: {cv: 2}\n")
    assert "base spec 'nope.yaml' not found" in _issues(missing)[0]
    write_spec("extends: x.yaml\n", "inner.yaml")
    chained = write_spec("extends: inner.yaml\nsweep: {cv: 2}\n", "outer.yaml")
    assert "has its own `extends:`" in _issues(chained)[0]
    plain = write_spec(BASE, "plain.yaml")
    assert "no `sweep:` section" in _issues(plain)[0]


def test_shape_error_in_one_variant_stops_the_sweep_before_training(
        runner: Any, base: Path, write_spec: Any, tmp_path: Path) -> None:
    path = sweep_file(write_spec, "sweep:\n  grid:\n    model[2].units: [1, 3]\n")
    out = tmp_path / "never"
    result = runner.invoke(main, ["sweep", str(path), "-o", str(out)])
    assert result.exit_code == 1
    assert f"{path}:4:25: variant '3': model[2]: the network outputs [3]" in result.stderr
    assert "variant '1'" not in result.stderr
    assert not out.exists()  # nothing trained, nothing written


def test_cli_error_is_one_line_per_problem(runner: Any, base: Path, write_spec: Any) -> None:
    path = sweep_file(write_spec, "sweep:\n  grid:\n    optimizer.type: [sgd, momentom]\n")
    result = runner.invoke(main, ["sweep", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {path}:4:27: variant 'momentom': optimizer:")


# ---------------------------------------------------------------- leak-free folds


def test_folds_partition_the_data_and_validation_is_inside_training() -> None:
    y = np.repeat([0, 1, 2], [30, 60, 90])
    scored_all = []
    for fold in range(5):
        tr, va, sc = fold_indices(y, 5, fold, seed=1, validation=0.2, stratify=True)
        assert not set(tr) & set(va) and not set(tr) & set(sc) and not set(va) & set(sc)
        assert len(tr) + len(va) + len(sc) == len(y)
        # Stratified: each scored fold keeps the class proportions 1:2:3.
        assert np.bincount(y[sc]).tolist() == [6, 12, 18]
        scored_all.extend(sc)
    assert sorted(scored_all) == list(range(len(y)))  # every row is scored exactly once


def test_regression_folds_are_plain_kfold() -> None:
    y = np.linspace(0, 1, 50)
    tr, va, sc = fold_indices(y, 5, 0, seed=0, validation=0.0, stratify=False)
    assert len(sc) == 10 and len(va) == 0 and len(tr) == 40


def test_scaler_is_fitted_on_the_training_rows_of_the_fold(base: Path, write_spec: Any) -> None:
    path = sweep_file(write_spec, "data: {normalize: standard}\n"
                                  "sweep:\n  grid:\n    optimizer.lr: [0.1]\n  cv: 4\n")
    sweep = load_sweep(path)
    job = make_jobs(sweep)[2]
    arrays = _arrays(job.spec)
    prepared, sizes = prepare_job(job, arrays)
    # The spec's test split (24 of 120 rows) is held out first; 4 folds of the other 96.
    rows, held = holdout_split(arrays.y, job.spec)
    tr, va, sc = (rows[i] for i in fold_indices(arrays.y[rows], 4, 2, seed=0, validation=0.2,
                                                 stratify=True))
    assert sizes == (len(tr), len(va), len(sc)) == (57, 15, 24) and len(held) == 24
    want = Scaler.fit("standard", arrays.X[tr])
    np.testing.assert_array_equal(prepared.x_scaler.offset, want.offset)
    np.testing.assert_array_equal(prepared.x_scaler.scale, want.scale)
    leaky = Scaler.fit("standard", arrays.X[np.concatenate([tr, sc])])
    assert not np.allclose(prepared.x_scaler.offset, leaky.offset)
    # The scored fold is the one the metrics are computed on ("test"), scaled by train stats.
    np.testing.assert_allclose(prepared.X_test, want.transform(arrays.X[sc]))
    np.testing.assert_array_equal(prepared.y_test, arrays.y[sc])


def test_flat_metrics_and_gap() -> None:
    metrics = {"train": {"loss": 0.1, "accuracy": 1.0}, "val": {"loss": 0.3, "accuracy": 0.75},
               "test": {}, "training_time_s": 1.5, "epochs_run": 7}
    flat = flat_metrics(metrics, "val")
    assert flat["gap_accuracy"] == pytest.approx(0.25)
    assert flat["time_s"] == 1.5 and flat["epochs"] == 7
    assert "test_accuracy" not in flat


def test_plan_keeps_processes_times_threads_within_cores() -> None:
    n = cores()
    for jobs, threads in [(1, 1), (2, 1), (0, 4), (64, 64), (2, 64)]:
        procs, per = plan(jobs, threads, 100)
        assert procs * per <= max(n, 1) and procs >= 1 and per >= 1
    assert plan(8, 1, 3)[0] <= 3  # never more processes than trainings


# ---------------------------------------------------------------- running


CV_BODY = """\
sweep:
  grid:
    model[1].type: [tanh, relu]
  cv: 3
  repeats: 2
"""


@pytest.fixture
def cv_sweep(base: Path, write_spec: Any) -> Any:
    return load_sweep(sweep_file(write_spec, CV_BODY))


def test_parallel_results_equal_serial(cv_sweep: Any) -> None:
    serial = run_sweep(cv_sweep, jobs=1)
    parallel = run_sweep(cv_sweep, jobs=2)
    if cores() >= 2:
        assert (parallel.processes, parallel.threads) == (2, 1)
        pids = {r.pid for v in parallel.results for r in v.runs}
        assert os.getpid() in pids and len(pids) == 2  # this process and a worker trained
    for a, b in zip(serial.results, parallel.results, strict=True):
        assert [r.key for r in a.runs] == [r.key for r in b.runs]
        for ra, rb in zip(a.runs, b.runs, strict=True):
            va = {k: v for k, v in ra.values.items() if k != "time_s"}
            vb = {k: v for k, v in rb.values.items() if k != "time_s"}
            assert va == vb  # bit-identical metrics
            assert [h["loss"] for h in ra.history] == [h["loss"] for h in rb.history]


def test_report_files_and_best_spec_builds(cv_sweep: Any, tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_sweep(cv_sweep, progress=lines.append)
    assert len(lines) == 3 and lines[0].startswith("[1/2] tanh: cv_accuracy ")
    assert lines[2].startswith("estimates: 1 retraining(s) of ")  # the held-out estimate
    assert [len(r.runs) for r in result.results] == [6, 6]
    assert all(sum(r.sizes) == 96 and r.sizes[2] == 32  # 24 of 120 rows held out
               for v in result.results for r in v.runs)
    out = tmp_path / "out"
    files = result.write(out)
    assert sorted(files) == ["best.yaml", "plot.png", "runs.csv", "summary.csv", "summary.md"]
    assert (out / "plot.png").read_bytes().startswith(b"\x89PNG")
    md = (out / "summary.md").read_text()
    assert "| variant | runs | cv3 accuracy |" in md and "accuracy gap (train - cv)" in md
    best = result.best
    assert best is not None and f"**{best.variant.name}**" in md
    rows = list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))
    assert len(rows) == 12 and {r["fold"] for r in rows} == {"0", "1", "2"}
    summary = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    mean = float(summary[0]["test_accuracy_mean"])
    assert math.isclose(mean, np.mean([float(r["test_accuracy"]) for r in rows[:6]]))
    checked = load_spec(out / "best.yaml")  # a plain spec, no sweep section
    assert checked.spec.name == f"{cv_sweep.name}_best"
    assert checked.spec.model[1].type == best.variant.spec.model[1].type
    run = train(out / "best.yaml")  # and it trains as it is
    assert run.metrics["epochs_run"] == 3
    assert "sweep" not in yaml.safe_load((out / "best.yaml").read_text())
    text = result.text_table()
    assert "cv3 accuracy" in text and f"{best.variant.name} *" in text
    # The folder is replaced as a whole: a previous sweep's output, never anything else.
    assert result.write(out) == files
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    (tmp_path / "a_file").write_text("keep me too")
    for target, match in ((tmp_path / "mine", "notes.txt"), (tmp_path / "a_file", "a file")):
        with pytest.raises(SpecnetError, match=match):
            result.write(target)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "a_file").read_text() == "keep me too"


def test_diverged_runs_are_reported_not_fatal(base: Path, write_spec: Any) -> None:
    path = write_spec("""\
name: blowup
task: regression
data: {source: regression, n_samples: 60, n_features: 3, n_informative: 3, normalize: none}
model: [linear: 1]
optimizer: {type: sgd, lr: 10}
training: {epochs: 20, batch_size: 60}
sweep:
  grid:
    optimizer.lr: [0.001, 10]
""", "blowup.yaml")
    result = run_sweep(load_sweep(path))
    ok, bad = result.results
    assert len(ok.ok) == 1 and len(bad.ok) == 0
    assert "not finite" in (bad.runs[0].error or "")
    assert "1 failed" in result.text_table() or "0 (1 failed)" in result.text_table()
    assert result.best is ok


def test_cli_sweep_dry_run_and_run(runner: Any, base: Path, write_spec: Any,
                                   tmp_path: Path) -> None:
    path = sweep_file(write_spec, "sweep:\n  grid:\n    model[1].type: [tanh, relu]\n")
    dry = runner.invoke(main, ["sweep", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("sw: 2 variants x 1 runs")
    assert "  relu: model[1].type=\"relu\"" in dry.stdout
    out = tmp_path / "res"
    result = runner.invoke(main, ["sweep", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "val accuracy" in result.stdout and "[2/2] relu:" in result.stderr
    assert (out / "best.yaml").is_file()
    # An output path that is not a sweep's folder is refused before anything trains.
    result = runner.invoke(main, ["sweep", str(path), "-o", str(path)])
    assert result.exit_code == 1 and "error:" in result.stderr
    assert "[1/2]" not in result.stderr and path.read_text().startswith("extends:")
