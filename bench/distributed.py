"""Data-parallel training, side by side in one run: `specnet train --nproc 2` against one
process, on a 1,000,000 x 50 make_classification MLP for 2 epochs (goal: >= 1.5x faster on
2 cores), for the default setting and for each lever that cuts synchronisation.

    python bench/distributed.py                          # 1,000,000 rows, best of 2 rounds
    python bench/distributed.py --rows 100000 --rounds 1 # a smoke run
    python bench/distributed.py --rows 200000 --batches 1024,2048,4096,8192 \\
        --accumulate 0 --average-every 0                 # the batch-size crossover only

Cases (every one trained by 1 process and by `--nproc 2`, same spec):
- default: global batch 512 (256 rows per rank), gradients all-reduced every step;
- batch B: a larger global batch (fewer steps, so fewer all-reduces per epoch);
- accumulate k: batch 512 x k cut into k micro-batches (one all-reduce per k micro-batches);
- local_sgd k: batch 512, parameters averaged every k steps (a different algorithm).

Every process uses one torch thread. Times: training only (metrics.json training_time_s,
rank 0's clock: the epochs including their validation pass) and the whole command (wall:
imports, data, launch). `ratio` is the 1-process time of the same case over the --nproc
time (> 1: --nproc is faster); `vs default` compares with the 1-process default case.
Test accuracy of every run shows the quality each lever keeps.
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
training: {{epochs: 2, batch_size: {batch}, metrics: [accuracy], threads: 1{extra}}}
"""

Result = tuple[float, float, float]  # training s, wall s, test accuracy


def _run(spec: Path, out: Path, extra: list[str]) -> Result:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "specnet", "train", str(spec), "-q", "-o", str(out),
                    *extra], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    return float(m["training_time_s"]), wall, float(m["test"]["accuracy"])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip() and int(x) > 0]


def _cases(args: argparse.Namespace) -> dict[str, tuple[int, str]]:
    """Case name -> (global batch, extra training keys)."""
    cases = {"default (batch 512)": (512, "")}
    for b in _ints(args.batches):
        cases[f"batch {b}"] = (b, "")
    for k in _ints(args.accumulate):
        cases[f"accumulate {k} (batch {512 * k})"] = (512 * k, f", accumulate: {k}")
    for k in _ints(args.average_every):
        cases[f"local_sgd every {k}"] = (512, f", local_sgd: {{average_every: {k}}}")
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", default="4096",
                    help="larger global batches, comma-separated (0: none) [4096]")
    ap.add_argument("--accumulate", default="8",
                    help="micro-batches per step at 512 rows each, comma-separated [8]")
    ap.add_argument("--average-every", default="8,32",
                    help="local_sgd periods at batch 512, comma-separated [8,32]")
    args = ap.parse_args()
    cases = _cases(args)
    ddp = f"--nproc {args.nproc}"
    runs: dict[tuple[str, str], list[Result]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (case, (batch, extra)) in enumerate(cases.items()):
            spec = Path(tmp) / f"case{i}.yaml"
            spec.write_text(SPEC.format(rows=args.rows, batch=batch, extra=extra))
            for r in range(args.rounds):  # alternate, so a change of load hits both
                for how, more in (("1 process", []), (ddp, ["--nproc", str(args.nproc)])):
                    out = Path(tmp) / f"c{i}-{'one' if more == [] else 'ddp'}{r}"
                    runs.setdefault((case, how), []).append(_run(spec, out, more))
            print(f"  done: {case}  (load {os.getloadavg()[0]:.2f})", file=sys.stderr,
                  flush=True)

    def best(case: str, how: str) -> Result:
        res = runs[(case, how)]
        return min(t for t, _, _ in res), min(w for _, w, _ in res), res[0][2]

    base_t = best(next(iter(cases)), "1 process")[0]
    print(f"{args.rows:,} x 50 MLP 128-64, 2 epochs, 1 thread per process, best of "
          f"{args.rounds}; load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'case':<28} {'1 proc s':>8} {ddp + ' s':>10} {'ratio':>6} {'vs default':>10} "
          f"{'wall 1/N s':>13} {'test acc 1/N':>15}")
    for case in cases:
        t1, w1, a1 = best(case, "1 process")
        tn, wn, an = best(case, ddp)
        print(f"{case:<28} {t1:>8.2f} {tn:>10.2f} {t1 / tn:>5.2f}x {base_t / tn:>9.2f}x "
              f"{w1:>6.1f}/{wn:<6.1f} {a1:>7.4f}/{an:<7.4f}")


if __name__ == "__main__":
    main()
