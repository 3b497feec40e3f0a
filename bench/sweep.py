"""Sweep throughput: the same 16-variant x 5-fold sweep on digits, serial and in parallel.

The sweep extends specs/digits.yaml (MLP 128-64 with dropout, Adam, batch 64, up to 100
epochs with early stopping on an inner validation split) and varies the first layer's width
in {32, 64, 128, 256} x the learning rate in {0.0003, 0.001, 0.003, 0.01}; each variant is
scored by 5-fold stratified cross-validation: what `specnet sweep` runs for such a file.

    python bench/sweep.py              # 16 variants x 5 folds = 80 trainings
    python bench/sweep.py --quick      # 4 variants x 5 folds, 5 epochs: a smoke run

Rows, in one run on this machine:
- serial, 1 thread: `--jobs 1` (trainings one after another in this process)
- parallel: `--jobs 2` (or --jobs N), one torch thread per process; its wall time includes
  starting the worker pool (this process trains too while the workers start)
- with --with-threads, serial with one torch thread per core (`--jobs 1 --threads <cores>`)
The serial rows are timed after a warm-up training, so they pay no import cost. The script
checks that the parallel results equal the serial ones (same metrics, bit for bit).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from specnet.spec.load import loads
from specnet.sweep import SweepResult, run_sweep, sweep_from_source
from specnet.sweep.runner import cores, make_jobs, run_job

ROOT = Path(__file__).resolve().parent.parent

SWEEP = """\
extends: {root}/specs/digits.yaml
name: bench_sweep
training: {{epochs: {epochs}}}
sweep:
  grid:
    model[0].units: {units}
    optimizer.lr: {lrs}
  cv: 5
  metric: cv_accuracy
"""


def _values(result: SweepResult) -> list[dict[str, float]]:
    return [{k: v for k, v in run.values.items() if k != "time_s"}
            for r in result.results for run in r.runs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 variants, 5 epochs")
    ap.add_argument("--epochs", type=int, default=None,
                    help="most epochs per training (100, early stopping as in digits.yaml)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel row")
    ap.add_argument("--with-threads", action="store_true",
                    help="also time serial with one torch thread per core")
    ap.add_argument("-o", "--out", type=Path, default=Path("bench/results/sweep.json"))
    args = ap.parse_args()
    epochs = args.epochs or (5 if args.quick else 100)
    units = [32, 128] if args.quick else [32, 64, 128, 256]
    lrs = [0.001, 0.01] if args.quick else [0.0003, 0.001, 0.003, 0.01]
    text = SWEEP.format(root=ROOT, epochs=epochs, units=units, lrs=lrs)
    sweep = sweep_from_source(loads(text, "bench_sweep.yaml"))
    n = len(make_jobs(sweep))
    print(f"{len(sweep.variants)} variants x 5 folds = {n} trainings on digits, up to {epochs} "
          f"epochs each; {cores()} cores; load average {os.getloadavg()[0]:.2f}", flush=True)
    run_job(make_jobs(sweep)[0])  # warm-up: imports and first-step costs out of the timings

    rows: list[tuple[str, float, SweepResult]] = []
    plan = [("serial, 1 thread", 1, 1), (f"parallel, --jobs {args.jobs}", args.jobs, 1)]
    if args.with_threads:
        plan.append((f"serial, {cores()} threads", 1, cores()))
    for label, jobs, threads in plan:
        t0 = time.perf_counter()
        result = run_sweep(sweep, jobs=jobs, threads=threads)
        wall = time.perf_counter() - t0
        rows.append((f"{label} ({result.processes} x {result.threads})", wall, result))
        print(f"  {rows[-1][0]}: {wall:.1f}s", flush=True)

    base = rows[0][1]
    same = _values(rows[0][2]) == _values(rows[1][2])
    print()
    print("| run | processes x threads | wall (s) | trainings/s | speed-up vs serial 1 thread |")
    print("|---|---|---:|---:|---:|")
    for label, wall, _result in rows:
        name, _, how = label.partition(" (")
        print(f"| {name} | {how.rstrip(')')} | {wall:.1f} | {n / wall:.2f} | "
              f"{base / wall:.2f}x |")
    best = rows[1][2].best
    print(f"\nparallel results identical to serial: {same}; best variant "
          f"{best.variant.name if best else '-'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "trainings": n, "epochs": epochs, "cores": cores(), "identical": same,
        "rows": [{"run": label, "wall_s": round(wall, 2)} for label, wall, _ in rows],
        "speedup": round(base / rows[1][1], 2)}, indent=2) + "\n")
    if not same:
        runs = [(run.key, run.values) for r in rows[0][2].results for run in r.runs]
        other = [run.values for r in rows[1][2].results for run in r.runs]
        for (key, a), b in zip(runs, other, strict=True):
            diff = sorted(k for k in a if k != "time_s" and a[k] != b.get(k))
            if diff:
                print(f"  differs: variant {key[0]} fold {key[2]}: {', '.join(diff)}")
        raise SystemExit("parallel results differ from serial")


if __name__ == "__main__":
    main()
