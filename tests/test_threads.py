"""Thread counts: the cores a process may use (affinity, cgroup v1/v2 quota), the FLOPs
estimate, `training.threads: auto`, the --threads options, and what is deterministic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from specnet.cli import main
from specnet.errors import SpecError
from specnet.runtime import available_cores, cgroup_cpu_limit
from specnet.spec.validate import check, validate
from specnet.threads import FLOPS_PER_THREAD, auto_threads, plan, step_flops
from specnet.trainer import train

# ---------------------------------------------------------------- cores


def _cgroup(tmp_path: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = tmp_path / "cgroup"
    proc.write_text(membership)
    return root, proc


@pytest.mark.parametrize(("membership", "files", "expected"), [
    ("0::/job\n", {"job/cpu.max": "150000 100000\n"}, 1.5),
    ("0::/job\n", {"job/cpu.max": "max 100000\n"}, None),
    ("0::/\n", {"cpu.max": "200000 100000\n"}, 2.0),
    ("4:cpu,cpuacct:/docker/a\n", {"cpu,cpuacct/docker/a/cpu.cfs_quota_us": "50000\n",
                                   "cpu,cpuacct/docker/a/cpu.cfs_period_us": "100000\n"}, 0.5),
    ("4:cpu,cpuacct:/docker/a\n", {"cpu,cpuacct/docker/a/cpu.cfs_quota_us": "-1\n",
                                   "cpu,cpuacct/docker/a/cpu.cfs_period_us": "100000\n"}, None),
    ("0::/\n", {}, None),
], ids=["v2-quota", "v2-max", "v2-root", "v1-quota", "v1-unlimited", "none"])
def test_cgroup_cpu_quota(tmp_path: Path, membership: str, files: dict[str, str],
                          expected: float | None) -> None:
    root, proc = _cgroup(tmp_path, membership, files)
    assert cgroup_cpu_limit(root, proc) == expected


def test_available_cores_is_within_the_affinity() -> None:
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- FLOPs and auto


def _spec(model: list[object], batch: int | str = 64, **training: object) -> object:
    return validate({"name": "t", "data": {"source": "digits", "as_image": True},
                     "model": model, "training": {"batch_size": batch, **training}})


def test_flops_of_an_mlp_are_twice_its_weights_per_row_times_three() -> None:
    spec = _spec(["flatten", {"linear": 32}, "relu", {"linear": 10}], batch=8)
    rows = check(spec).summary.rows  # type: ignore[arg-type]
    weights = (64 * 32 + 32) + (32 * 10 + 10)
    activations = 64 + 32 + 32 + 10
    assert step_flops(rows, 8) == 3 * 8 * (2 * weights + activations)


def test_a_convolution_counts_its_weights_at_every_output_pixel() -> None:
    conv = _spec([{"conv2d": {"out_channels": 4, "kernel_size": 3, "padding": "same"}},
                  "flatten", {"linear": 10}])
    rows = check(conv).summary.rows  # type: ignore[arg-type]
    head = 256 + 2 * (256 * 10 + 10) + 10  # flatten, then linear(10) once per row
    assert step_flops(rows, 1) == 3 * (2 * (4 * 9 + 4) * 64 + 4 * 64 + head)


@pytest.mark.parametrize(("flops", "cores", "expected"), [
    (0.0, 8, 1), (FLOPS_PER_THREAD * 0.99, 8, 1), (FLOPS_PER_THREAD * 2, 8, 2),
    (FLOPS_PER_THREAD * 100, 8, 8), (FLOPS_PER_THREAD * 100, 1, 1),
], ids=["nothing", "below-the-line", "twice-the-line", "capped-by-cores", "one-core"])
def test_auto_threads(flops: float, cores: int, expected: int) -> None:
    assert auto_threads(flops, cores) == expected


def test_plan_takes_the_option_then_the_spec_then_auto() -> None:
    small = _spec(["flatten", {"linear": 10}])
    assert plan(small, 1000).source == "auto"  # type: ignore[arg-type]
    assert plan(small, 1000).count == 1  # type: ignore[arg-type]
    fixed = _spec(["flatten", {"linear": 10}], threads=1)
    assert (plan(fixed, 1000).count, plan(fixed, 1000).source) == (1, "spec")  # type: ignore
    huge = plan(small, 1000, override=10_000)  # type: ignore[arg-type]
    assert (huge.count, huge.source) == (available_cores(), "option")
    full = _spec(["flatten", {"linear": 10}], batch="full")
    assert plan(full, 1000).flops == pytest.approx(  # type: ignore[arg-type]
        1000 / 64 * plan(small, 1000).flops)  # type: ignore[arg-type]


@pytest.mark.parametrize("threads", [0, -1, "many", 2.5], ids=["zero", "negative", "word",
                                                                 "fraction"])
def test_training_threads_must_be_auto_or_a_positive_count(threads: object) -> None:
    with pytest.raises(SpecError, match=r"training\.threads"):
        _spec(["flatten", {"linear": 10}], threads=threads)


# ---------------------------------------------------------------- training


_TINY = {"name": "tiny", "seed": 3, "data": {"source": "iris"},
         "model": [{"linear": 64}, "relu", {"linear": 64}, "relu", {"linear": "auto"}],
         "training": {"epochs": 6, "batch_size": 16}}


def test_the_count_used_is_recorded_and_torch_is_put_back(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    run = train(validate(_TINY), tmp_path / "r")
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["threads"] == 1 and metrics["threads_source"] == "auto"
    assert metrics["flops_per_step"] == pytest.approx(run.metrics["flops_per_step"])
    assert torch.get_num_threads() == before


def _weights(threads: int) -> dict[str, torch.Tensor]:
    return train(validate(_TINY), threads=threads).model.state_dict()


def test_same_spec_seed_and_thread_count_give_identical_weights() -> None:
    for threads in (1, 2):
        a, b = _weights(threads), _weights(threads)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_threads_options(tmp_path: Path, runner: CliRunner) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(json.dumps(_TINY))
    out = runner.invoke(main, ["train", str(spec), "-q", "-o", str(tmp_path / "r"),
                               "--threads", "1"])
    assert out.exit_code == 0, out.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert (metrics["threads"], metrics["threads_source"]) == (1, "option")
    bad = runner.invoke(main, ["train", str(spec), "--threads", "0"])
    assert bad.exit_code == 2 and "--threads" in bad.output
    for command in ("build", "predict", "serve", "sweep"):
        helped = runner.invoke(main, [command, "--help"])
        assert "--threads" in helped.output, command
