"""Data-parallel training step by step: milliseconds per 1,000 training rows for one process
and for 2 gloo ranks, on the MLP of bench/distributed.py (50-128-64-2, Adam, 1 thread per
process), at several global batch sizes, with gradient accumulation and with local SGD.

    python bench/distributed_steps.py                # every case, best of 15 windows
    python bench/distributed_steps.py --windows 5    # quicker

A micro-benchmark for a shared machine: each figure is the best of many short windows of
steps, so it shows the cost of the work and of the synchronisation rather than of the
other jobs on the box; bench/distributed.py times whole `specnet train` runs. The steps do
what specnet's trainer does (specnet.distributed): one `dist.all_reduce` of the flattened
gradients per optimizer step, no all-reduce on the micro-batches before the last
(accumulation), or torch's PeriodicModelAverager after the step (local SGD). The latency of
a bare gloo all_reduce is printed first.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

CASES = [  # name, global batch, accumulate, average_every (0: gradients every step)
    ("batch 512", 512, 1, 0),
    ("batch 1024", 1024, 1, 0),
    ("batch 2048", 2048, 1, 0),
    ("batch 4096", 4096, 1, 0),
    ("batch 8192", 8192, 1, 0),
    ("batch 4096 = 8 x 512 accumulated", 4096, 8, 0),
    ("batch 512, local_sgd every 8", 512, 1, 8),
    ("batch 512, local_sgd every 32", 512, 1, 32),
]


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(50, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 2))


def _best(step: Callable[[], None], steps: int, windows: int, world: int) -> float:
    """Best seconds per step over `windows` windows of `steps` steps (ranks in step)."""
    times = []
    for _ in range(windows):
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps)
    if world > 1:  # a window counts at the pace of the slower rank
        t = torch.tensor(times)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        times = t.tolist()
    return min(times)


def _stepper(rows: int, accumulate: int, average_every: int,
             world: int) -> Callable[[], None]:
    model = _mlp()
    params = list(model.parameters())
    opt = torch.optim.Adam(params, 1e-3)
    crit = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(rows, 50, generator=g), torch.randint(0, 2, (rows,), generator=g)
    micro = -(-rows // accumulate)
    averager = None
    if world > 1 and average_every:
        from torch.distributed.algorithms.model_averaging.averagers import (
            PeriodicModelAverager,
        )

        averager = PeriodicModelAverager(period=average_every)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        for a in range(0, rows, micro):
            b = min(a + micro, rows)
            loss = crit(model(X[a:b]), Y[a:b])
            (loss if accumulate == 1 else loss * ((b - a) / rows)).backward()
        if world > 1 and averager is None:
            flat = torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])
            dist.all_reduce(flat)
            flat.div_(world)
            offset = 0
            for p in params:
                assert p.grad is not None
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
        opt.step()
        if averager is not None:
            averager.average_parameters(params)

    return step


def _cases(world: int, windows: int) -> dict[str, float]:
    """Case name -> best ms per 1,000 training rows."""
    out = {}
    for name, batch, accumulate, average_every in CASES:
        rows = batch // world
        step = _stepper(rows, accumulate, average_every, world)
        for _ in range(3):
            step()  # warm up
        steps = max(2, 40_000 // batch)
        if average_every:  # whole periods
            steps = -(-steps // average_every) * average_every
        out[name] = _best(step, steps, windows, world) * 1e3 / batch * 1000
    return out


def _latency(windows: int) -> dict[str, float]:
    one, many = torch.ones(1), torch.ones(15_000)
    return {f"gloo all_reduce {n} ms": _best(lambda x=x: dist.all_reduce(x), 200, windows, 2)
            * 1e3 for n, x in (("1 float", one), ("15,000 floats", many))}


def _rank(rank: int, port: int, windows: int, box: dict[str, float]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        latency = _latency(windows)
        result = _cases(2, windows)
        if rank == 0:
            box.update(latency)
            box.update({f"2 ranks: {k}": v for k, v in result.items()})
    finally:
        dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        box = manager.dict()
        mp.spawn(_rank, args=(port, args.windows, box), nprocs=2)
        ddp = dict(box)
    single = _cases(1, args.windows)
    print(f"MLP 50-128-64-2, Adam, 1 thread per process, best of {args.windows} windows; "
          f"load average {load0:.2f} before, {os.getloadavg()[0]:.2f} after")
    for k in ("gloo all_reduce 1 float ms", "gloo all_reduce 15,000 floats ms"):
        print(f"{k:<36} {ddp[k]:.3f}")
    print(f"{'ms per 1,000 rows':<36} {'1 process':>9} {'2 ranks':>8} {'speed-up':>8}")
    for name, *_ in CASES:
        one, two = single[name], ddp[f"2 ranks: {name}"]
        print(f"{name:<36} {one:>9.3f} {two:>8.3f} {one / two:>7.2f}x")


if __name__ == "__main__":
    main()
