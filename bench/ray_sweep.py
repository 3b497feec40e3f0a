"""Ray backend against the local backend: the 16-variant x 5-fold digits sweep of
bench/sweep.py, on the same machine, side by side in one run.

    python bench/ray_sweep.py              # 16 variants x 5 folds = 80 trainings, each way
    python bench/ray_sweep.py --quick      # 4 variants x 5 folds, 5 epochs: a smoke run
    python bench/ray_sweep.py --rounds 2   # local, ray, local, ray: the median of each

Rows:
- local: `specnet sweep --jobs <cores>` (this process + worker processes, 1 torch thread each)
- ray: `specnet sweep --backend ray` on a local Ray started for the row (`ray.init(num_cpus=
  <cores>)`), one task per training with 1 CPU and 1 torch thread; its wall time includes
  starting and stopping Ray.
Both rows pay their start-up costs (worker processes importing torch). Where the Ray time
goes is measured apart: `ray.init`, `ray.shutdown`, the round trip of an empty task (per-
task overhead), and `ray.put` of the data set (shipped once). The script checks that both
backends give the same metrics, bit for bit. Goal: ray at most 1.25x the local wall time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import time
from pathlib import Path

import ray

from specnet.spec.load import loads
from specnet.sweep import SweepResult, run_sweep, sweep_from_source
from specnet.sweep.runner import cores, make_jobs, run_job

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "bench" / "sweep.py")
assert _spec is not None and _spec.loader is not None
bench_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_sweep)


def _values(result: SweepResult) -> list[dict[str, float]]:
    return [{k: v for k, v in run.values.items() if k != "time_s"}
            for r in result.results for run in r.runs]


def _init(n: int) -> float:
    os.environ.setdefault("RAY_worker_niceness", "0")  # as the Ray backend starts it
    t0 = time.perf_counter()
    ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    return time.perf_counter() - t0


def _noop() -> int:
    return 0


def overheads(n: int, sweep_data: object) -> dict[str, float]:
    """Ray's own costs on this machine: start, an empty task's round trip, ray.put, stop."""
    out = {"init_s": _init(n)}
    noop = ray.remote(num_cpus=1)(_noop)
    ray.get([noop.remote() for _ in range(n)])  # workers up
    t0 = time.perf_counter()
    for _ in range(50):
        ray.get(noop.remote())
    out["task_roundtrip_ms"] = (time.perf_counter() - t0) / 50 * 1000
    t0 = time.perf_counter()
    ray.put(sweep_data)
    out["put_data_ms"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    ray.shutdown()
    out["shutdown_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 variants, 5 epochs")
    ap.add_argument("--epochs", type=int, default=None,
                    help="most epochs per training (100, early stopping as in digits.yaml)")
    ap.add_argument("--rounds", type=int, default=1, help="alternate local/ray this often")
    ap.add_argument("-o", "--out", type=Path, default=Path("bench/results/ray_sweep.json"))
    args = ap.parse_args()
    epochs = args.epochs or (5 if args.quick else 100)
    units = [32, 128] if args.quick else [32, 64, 128, 256]
    lrs = [0.001, 0.01] if args.quick else [0.0003, 0.001, 0.003, 0.01]
    text = bench_sweep.SWEEP.format(root=ROOT, epochs=epochs, units=units, lrs=lrs)
    sweep = sweep_from_source(loads(text, "bench_sweep.yaml"))
    jobs = make_jobs(sweep)
    n = cores()
    print(f"{len(sweep.variants)} variants x 5 folds = {len(jobs)} trainings on digits, up to "
          f"{epochs} epochs each; {n} cores; load average {os.getloadavg()[0]:.2f}", flush=True)
    run_job(jobs[0])  # warm-up of this process: imports and first-step costs

    walls: dict[str, list[float]] = {"local": [], "ray": []}
    results: dict[str, SweepResult] = {}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        results["local"] = run_sweep(sweep, jobs=n, threads=1)
        walls["local"].append(time.perf_counter() - t0)
        print(f"  local, --jobs {n}: {walls['local'][-1]:.1f}s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
        t0 = time.perf_counter()  # Ray's start and stop are part of the row
        results["ray"] = run_sweep(sweep, jobs=0, threads=1, backend="ray")
        walls["ray"].append(time.perf_counter() - t0)
        print(f"  ray, {n} CPUs: {walls['ray'][-1]:.1f}s (load {os.getloadavg()[0]:.1f})",
              flush=True)
    cost = overheads(n, sweep.variants[0].spec.data.load(sweep.variants[0].spec.seed))
    local, on_ray = (statistics.median(walls[k]) for k in ("local", "ray"))
    same = _values(results["local"]) == _values(results["ray"])
    ratio = on_ray / local
    print()
    print("| backend | trainings at once x threads | wall (s) | trainings/s | vs local |")
    print("|---|---|---:|---:|---:|")
    for name, wall in (("local", local), ("ray", on_ray)):
        r = results[name]
        print(f"| {name} | {r.processes} x {r.threads} | {wall:.1f} | {len(jobs) / wall:.2f} | "
              f"{wall / local:.2f}x |")
    print(f"\nray / local = {ratio:.2f}x (goal <= 1.25x: {'met' if ratio <= 1.25 else 'missed'}); "
          f"results identical: {same}")
    print(f"Ray's own costs here: ray.init {cost['init_s']:.1f}s, ray.shutdown "
          f"{cost['shutdown_s']:.1f}s, empty task round trip {cost['task_roundtrip_ms']:.1f} ms "
          f"(x {len(jobs)} tasks), ray.put of the data {cost['put_data_ms']:.1f} ms (once)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "trainings": len(jobs), "epochs": epochs, "cores": n, "identical": same,
        "walls_s": {k: [round(w, 2) for w in v] for k, v in walls.items()},
        "ratio_ray_over_local": round(ratio, 3),
        "ray_costs": {k: round(v, 3) for k, v in cost.items()}}, indent=2) + "\n")
    if not same:
        raise SystemExit("the Ray backend's results differ from the local backend's")


if __name__ == "__main__":
    main()
