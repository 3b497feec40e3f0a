"""Data-parallel training, side by side in one run: `specnet train --nproc 2` against one
process, on a 1,000,000 x 50 make_classification MLP for 2 epochs (goal: >= 1.5x faster on
2 cores).

    python bench/distributed.py                 # 1,000,000 rows, best of 2 rounds
    python bench/distributed.py --rows 100000   # a smoke run

Both runs use one torch thread per process and the same global batch (`--batch`, default
512: 256 rows per rank and step with 2 processes). Times: training only (metrics.json
training_time_s, rank 0's clock) and the whole command (wall: imports, data, launch).
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

ROOT = Path(__file__).resolve().parent.parent

SPEC = """\
name: ddp_bench
seed: 0
data: {{source: classification, n_samples: {rows}, n_features: 50, n_informative: 20,
       n_classes: 2, split: {{validation: 0.1, test: 0.1}}}}
model:
  - linear: 128
  - relu
  - linear: 64
  - relu
  - linear: auto
optimizer: {{type: adam, lr: 0.001}}
training: {{epochs: 2, batch_size: {batch}, metrics: [accuracy], threads: 1}}
"""


def _run(spec: Path, out: Path, extra: list[str]) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "specnet", "train", str(spec), "-q", "-o", str(out),
                    *extra], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    return float(m["training_time_s"]), wall, float(m["test"]["accuracy"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "ddp_bench.yaml"
        spec.write_text(SPEC.format(rows=args.rows, batch=args.batch))
        runs: dict[str, list[tuple[float, float, float]]] = {"1 process": [],
                                                             f"--nproc {args.nproc}": []}
        for r in range(args.rounds):
            runs["1 process"].append(_run(spec, Path(tmp) / f"one{r}", []))
            runs[f"--nproc {args.nproc}"].append(
                _run(spec, Path(tmp) / f"ddp{r}", ["--nproc", str(args.nproc)]))
    base_t = min(t for t, _, _ in runs["1 process"])
    base_w = min(w for _, w, _ in runs["1 process"])
    print(f"{args.rows:,} x 50 MLP 128-64, 2 epochs, global batch {args.batch}, "
          f"best of {args.rounds}")
    print(f"{'run':<12} {'train s':>8} {'speed-up':>8} {'wall s':>7} {'speed-up':>8} "
          f"{'test acc':>8}")
    for name, results in runs.items():
        t = min(x for x, _, _ in results)
        w = min(x for _, x, _ in results)
        print(f"{name:<12} {t:>8.2f} {base_t / t:>7.2f}x {w:>7.2f} {base_w / w:>7.2f}x "
              f"{results[0][2]:>8.4f}")


if __name__ == "__main__":
    main()
