"""Threads, side by side in one run: where more threads start to pay, and `auto` on a busy box.

    python bench/threads.py --line     # time per training step at 1 and 2.. threads against
                                       # the estimated FLOPs per step (where the line is)
    python bench/threads.py            # `specnet train specs/digits.yaml` while two busy
                                       # processes load the cores: default (auto) vs --threads 1
                                       # (goal: auto <= 1.2x one thread), and torch's old default
    python bench/threads.py --quick    # fewer rounds: a smoke run

Times are the best of `--rounds` (the box may be shared). The busy benchmark times training
only (metrics.json training_time_s) and the whole command (wall, with the imports).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from specnet.compile import compile_spec
from specnet.runtime import available_cores
from specnet.spec.validate import check, validate
from specnet.threads import FLOPS_PER_THREAD, auto_threads, step_flops

ROOT = Path(__file__).resolve().parent.parent

# (label, data, model, batch): from a tiny MLP to a convolution stack on 8x8 and 32x32 images
CASES: list[tuple[str, dict[str, Any], list[Any], int]] = [
    ("mlp 32, batch 32", {"source": "digits"}, [{"linear": 32}, "relu", {"linear": 10}], 32),
    ("mlp 128-64, batch 64", {"source": "digits"},
     [{"linear": 128}, "relu", {"linear": 64}, "relu", {"linear": 10}], 64),
    ("mlp 256-256, batch 128", {"source": "digits"},
     [{"linear": 256}, "relu", {"linear": 256}, "relu", {"linear": 10}], 128),
    ("mlp 512-512, batch 256", {"source": "digits"},
     [{"linear": 512}, "relu", {"linear": 512}, "relu", {"linear": 10}], 256),
    ("mlp 1024-1024, batch 512", {"source": "digits"},
     [{"linear": 1024}, "relu", {"linear": 1024}, "relu", {"linear": 10}], 512),
    ("digits_cnn, batch 64", {"source": "digits", "as_image": True},
     [{"conv2d": {"out_channels": 16, "kernel_size": 3, "padding": "same"}}, "relu",
      {"maxpool2d": 2}, {"conv2d": {"out_channels": 32, "kernel_size": 3, "padding": "same"}},
      "relu", {"maxpool2d": 2}, "flatten", {"linear": 64}, "relu", {"linear": 10}], 64),
    ("cnn 32-64, batch 256", {"source": "digits", "as_image": True},
     [{"conv2d": {"out_channels": 32, "kernel_size": 3, "padding": "same"}}, "relu",
      {"conv2d": {"out_channels": 64, "kernel_size": 3, "padding": "same"}}, "relu",
      {"maxpool2d": 2}, "flatten", {"linear": 10}], 256),
]


def _step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, threads: int,
               steps: int, rounds: int) -> float:
    torch.set_num_threads(threads)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def line(rounds: int) -> None:
    """Seconds per training step at 1..cores threads, against the FLOPs estimate."""
    cores = available_cores()
    counts = list(range(1, cores + 1))
    print(f"{cores} cores available; FLOPS_PER_THREAD = {FLOPS_PER_THREAD:.3g}")
    head = " ".join(f"{f'{t} thr ms':>9}" for t in counts)
    print(f"{'case':<26} {'MFLOP/step':>10} {head} {'1/best':>7} {'auto':>5}")
    for label, data, model, batch in CASES:
        spec = validate({"name": "b", "data": data, "model": model,
                         "training": {"batch_size": batch}})
        checked = check(spec)
        flops = step_flops(checked.summary.rows, batch)
        torch.manual_seed(0)
        net = compile_spec(spec, checked.info)
        x = torch.randn(batch, *checked.summary.input_shape)
        y = torch.randint(0, 10, (batch,))
        steps = max(5, min(200, int(2e9 / max(flops, 1))))
        times = [_step_time(net, x, y, t, steps, rounds) for t in counts]
        cells = " ".join(f"{t * 1e3:>9.3f}" for t in times)
        print(f"{label:<26} {flops / 1e6:>10.2f} {cells} {times[0] / min(times):>6.2f}x "
              f"{auto_threads(flops, cores):>5}")


def _busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _train(extra: list[str], out: Path) -> tuple[float, float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)  # what a user gets by default
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "specnet.cli", "train", "specs/digits.yaml", "-q",
                    "-o", str(out), *extra], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text())
    return float(metrics["training_time_s"]), wall, int(metrics["threads"])


def busy(rounds: int) -> None:
    """digits with the default threads vs one thread while two processes load the cores."""
    rows = {"default (auto)": [], "--threads 1": [],
            f"--threads {available_cores()} (torch's default)": []}
    options = [[], ["--threads", "1"], ["--threads", str(available_cores())]]
    hogs = [_busy(), _busy()]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                for results, extra in zip(rows.values(), options, strict=True):
                    results.append(_train(extra, Path(tmp) / f"{r}-{len(results)}"))
    finally:
        for p in hogs:
            p.kill()
            p.wait()
    one = min(t for t, _, _ in rows["--threads 1"])
    one_wall = min(w for _, w, _ in rows["--threads 1"])
    print(f"train specs/digits.yaml, two busy processes on {available_cores()} cores, "
          f"best of {rounds}")
    print(f"{'run':<34} {'threads':>7} {'train s':>8} {'ratio':>6} {'wall s':>7} {'ratio':>6}")
    for name, results in rows.items():
        t = min(x for x, _, _ in results)
        w = min(x for _, x, _ in results)
        print(f"{name:<34} {results[0][2]:>7} {t:>8.2f} {t / one:>5.2f}x {w:>7.2f} "
              f"{w / one_wall:>5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--line", action="store_true", help="measure where more threads pay")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds
    if args.line:
        line(rounds)
    else:
        busy(rounds)


if __name__ == "__main__":
    main()
