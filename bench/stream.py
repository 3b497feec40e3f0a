"""Streamed data (`data.stream: true`) against the in-memory set, side by side in one run.

A generated classification set (default 1,000,000 rows x 64 float32 features, 256 MiB) is
written once as a .npy file (features and target in one array) and as a Parquet file (row
groups of 20,000 rows). Each of the four runs (npy / parquet, in memory / streamed) trains
the same spec (MLP 64, one epoch, batch 512, one thread) in a fresh process and reports:

- prepare s: loading (or opening), splitting and fitting the scaling;
- train s: the training loop (metrics.json training_time_s);
- wall s: the whole process, imports included;
- peak RSS: VmHWM of the process, and the peaks of its anonymous memory (RssAnon: what the
  process itself allocated) and of its file-backed memory (RssFile: pages of the
  memory-mapped file that the kernel may drop again), sampled every 20 ms.

The streamed runs get SPECNET_MAX_MEMORY_MB below the file's size (`--budget`, default
192 MiB), so they show a file bigger than the budget training; the in-memory runs keep the
default budget (4096 MiB). The file is read from the page cache (warm): a set that does
not fit the machine's RAM reads the disk, which this benchmark does not measure.

    python bench/stream.py                       # 1,000,000 rows (about 2 minutes)
    python bench/stream.py --rows 100000         # a quick look
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

import numpy as np

CHILD = r"""
import json, os, sys, threading, time
t0 = time.perf_counter()
peak = {"RssAnon": 0, "RssFile": 0}
done = threading.Event()

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return out

def sample():
    while not done.is_set():
        s = status()
        for k in peak:
            peak[k] = max(peak[k], s.get(k, 0))
        time.sleep(0.02)

threading.Thread(target=sample, daemon=True).start()
import yaml
from specnet.data.prepare import prepare
from specnet.spec.validate import check
from specnet.trainer import train
spec = check(yaml.safe_load(sys.argv[1])).spec
t1 = time.perf_counter()
prepared = prepare(spec)
t2 = time.perf_counter()
run = train(spec, prepared=prepared)
done.set()
s = status()
print(json.dumps({"prepare": t2 - t1, "train": run.metrics["training_time_s"],
                  "wall": time.perf_counter() - t0, "hwm": s["VmHWM"],
                  "anon": max(peak["RssAnon"], s["RssAnon"]),
                  "file": max(peak["RssFile"], s["RssFile"]),
                  "acc": run.metrics["test"]["accuracy"]}))
"""

SPEC = """
name: stream-bench
seed: 0
task: classification
data: {data}
model: [{{linear: 64}}, relu, {{linear: 2}}]
optimizer: {{type: adam, lr: 0.001}}
training: {{epochs: 1, batch_size: 512, threads: 1, metrics: [accuracy]}}
"""


def write(folder: Path, rows: int, features: int, group: int) -> tuple[Path, Path]:
    """The .npy and Parquet files of one generated set, written in blocks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    w = rng.normal(size=features).astype(np.float32)
    npy, parquet = folder / "big.npy", folder / "big.parquet"
    out = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32,
                                    shape=(rows, features + 1))
    names = [f"f{i}" for i in range(features)] + ["label"]
    schema = pa.schema([(n, pa.float32()) for n in names[:-1]] + [("label", pa.int64())])
    with pq.ParquetWriter(parquet, schema) as writer:
        for start in range(0, rows, group):
            stop = min(start + group, rows)
            X = rng.normal(size=(stop - start, features)).astype(np.float32)
            y = (X @ w + rng.normal(scale=0.5, size=stop - start) > 0)
            out[start:stop, :features] = X
            out[start:stop, features] = y
            cols = [pa.array(X[:, i]) for i in range(features)]
            writer.write_table(pa.table([*cols, pa.array(y.astype(np.int64))], schema=schema),
                               row_group_size=group)
    out.flush()
    del out
    return npy, parquet


def child(data: str, budget: int | None) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if budget is not None:
        env["SPECNET_MAX_MEMORY_MB"] = str(budget)
    proc = subprocess.run([sys.executable, "-c", CHILD, SPEC.format(data=data)], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{data}: failed\n{proc.stderr[-3000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--group", type=int, default=20_000, help="Parquet row group rows")
    parser.add_argument("--budget", type=int, default=192,
                        help="SPECNET_MAX_MEMORY_MB of the streamed runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        npy, parquet = write(Path(tmp), args.rows, args.features, args.group)
        print(f"{args.rows:,} x {args.features} float32: {npy.stat().st_size / 2**20:.0f} MiB "
              f".npy, {parquet.stat().st_size / 2**20:.0f} MiB Parquet (row groups of "
              f"{args.group:,}), written in {time.perf_counter() - t:.1f}s")
        runs = [
            ("npy, in memory", f"{{source: npy, path: {npy}}}", None),
            ("npy, stream", f"{{source: npy, path: {npy}, stream: true}}", args.budget),
            ("parquet, in memory", f"{{source: parquet, path: {parquet}, target: label}}",
             None),
            ("parquet, stream", f"{{source: parquet, path: {parquet}, target: label, "
                                f"stream: true}}", args.budget),
        ]
        results = {name: child(data, budget) for name, data, budget in runs}
    print(f"one epoch, MLP 64, batch 512, 1 thread; streamed runs under "
          f"SPECNET_MAX_MEMORY_MB={args.budget}")
    head = (f"{'run':<20}{'prepare s':>10}{'train s':>9}{'ratio':>7}{'wall s':>8}"
            f"{'ratio':>7}{'VmHWM MiB':>11}{'anon MiB':>10}{'file MiB':>10}{'test acc':>9}")
    print(head)
    for name, _, _ in runs:
        r = results[name]
        base = results[name.split(",")[0] + ", in memory"]
        print(f"{name:<20}{r['prepare']:>10.2f}{r['train']:>9.2f}"
              f"{r['train'] / base['train']:>6.2f}x{r['wall']:>8.2f}"
              f"{r['wall'] / base['wall']:>6.2f}x{r['hwm']:>11.0f}{r['anon']:>10.0f}"
              f"{r['file']:>10.0f}{r['acc']:>9.4f}")


if __name__ == "__main__":
    main()
