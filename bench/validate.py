"""Benchmark: `specnet validate SPEC` against `python -c "import torch"`, side by side.

Both run as fresh processes, interleaved (so machine load hits both alike), repeated, and
compared by their medians. The goal: validating a spec takes at most a quarter of the time
torch takes just to import, because `specnet validate` never imports torch.

    python bench/validate.py                 # specs/iris.yaml, 15 runs each
    python bench/validate.py --repeat 30 specs/digits_cnn.yaml
    python bench/validate.py --check         # exit 1 if the goal is missed
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 0.25
ROOT = Path(__file__).resolve().parent.parent


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("spec", nargs="?", default="specs/iris.yaml", help="spec to validate")
    parser.add_argument("--repeat", type=int, default=15, help="runs of each command")
    parser.add_argument("--check", action="store_true", help="exit 1 if the goal is missed")
    args = parser.parse_args(argv)

    script = shutil.which("specnet")
    specnet = [script] if script else [sys.executable, "-m", "specnet.cli"]
    commands = {
        f"specnet validate {args.spec}": [*specnet, "validate", "-q", args.spec],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the file cache once, untimed
        _time(cmd)
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))

    width = max(map(len, commands))
    print(f"{'command':<{width}}  {'median':>8}  {'min':>8}  {'max':>8}   ({args.repeat} runs)")
    for name, xs in times.items():
        print(f"{name:<{width}}  {statistics.median(xs):7.3f}s  {min(xs):7.3f}s  "
              f"{max(xs):7.3f}s")
    validate, torch = (statistics.median(xs) for xs in times.values())
    ratio = validate / torch
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"ratio validate / import torch: {ratio:.2f} ({verdict} the goal of <= {GOAL:.2f})")
    return 1 if args.check and ratio > GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
