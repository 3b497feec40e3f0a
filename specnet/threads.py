"""How many CPU threads torch trains with: `training.threads: auto` or a fixed count.

More threads only pay when each batch carries enough arithmetic to split: torch's
intra-op pool wakes, splits and joins its threads on every op, so a small model on a
small batch runs slower on two threads than on one, and far slower when the other cores
are busy (the pool's threads wait on each other while the scheduler runs someone else).
`auto` therefore estimates the floating-point operations of one training step from the
layer shapes (`specnet.shapes`) and the batch size, and takes one thread per
`FLOPS_PER_THREAD` of work, never more than the cores this process may use
(`specnet.runtime.available_cores`: CPU affinity and cgroup quota). The figure comes from
`bench/threads.py --line` on the development machine (see docs/scale.md).

The count depends only on the spec, the training rows and the machine's available cores,
never on the load at the moment, so on one machine a spec always trains with the same count.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from .runtime import available_cores
from .shapes import Row
from .spec.schema import Spec

FLOPS_PER_THREAD = 200e6
"""Training FLOPs per step below which one thread is fastest; each further multiple of it
earns one more thread (measured with `python bench/threads.py --line`, docs/scale.md)."""

ThreadSource = Literal["option", "spec", "auto"]


@dataclass(frozen=True)
class ThreadPlan:
    """The thread count a training uses, where it came from, and the work estimate.

    count: torch intra-op threads. source: 'option' (--threads / the API), 'spec'
    (training.threads: N) or 'auto'. flops: estimated FLOPs of one training step
    (forward and backward) at the spec's batch size. cores: cores available.
    """

    count: int
    source: ThreadSource
    flops: float
    cores: int

    def record(self) -> dict[str, object]:
        """The keys written to metrics.json."""
        return {"threads": self.count, "threads_source": self.source,
                "flops_per_step": float(f"{self.flops:.4g}")}


def _prod(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 1


def step_flops(rows: Sequence[Row], batch: int) -> float:
    """Estimated FLOPs of one training step (forward + backward, ~3x forward) on `batch` rows.

    Per sample: a layer with weights does 2 FLOPs per weight per position it is applied
    at (a convolution at every output pixel, a linear at every leading position), and every
    layer touches each of its outputs once (activations, pooling, norms).
    """
    total = 0.0
    for row in rows:
        if row.label.startswith("block "):  # its layers follow as rows of their own
            continue
        out = row.shape
        positions = 1
        if row.params:
            if row.label.startswith("conv") and len(out) >= 2:
                positions = _prod(out[1:])
            elif row.label.startswith(("linear", "rnn", "lstm", "gru")) and len(out) >= 2:
                positions = _prod(out[:-1])
        total += 2.0 * row.params * positions + _prod(out)
    return 3.0 * total * batch


def auto_threads(flops: float, cores: int) -> int:
    """One thread per FLOPS_PER_THREAD of work per step, between 1 and `cores`."""
    return max(1, min(cores, int(flops // FLOPS_PER_THREAD)))


def plan(spec: Spec, train_rows: int, override: int | None = None,
         share: int = 1) -> ThreadPlan:
    """The ThreadPlan for training `spec` on `train_rows` rows.

    override (the --threads option) wins over the spec's `training.threads`; a fixed
    count is capped at the available cores too. share: processes on this machine that
    split the cores (data-parallel ranks); each gets cores // share.
    """
    from .spec.validate import check

    summary = check(spec).summary
    bs = spec.training.batch_size
    batch = max(1, train_rows if bs == "full" else min(int(bs), max(train_rows, 1)))
    flops = step_flops(summary.rows, batch)
    cores = max(1, available_cores() // max(1, share))
    wanted = spec.training.threads
    if override is not None:
        return ThreadPlan(max(1, min(override, cores)), "option", flops, cores)
    if wanted != "auto":
        return ThreadPlan(max(1, min(int(wanted), cores)), "spec", flops, cores)
    return ThreadPlan(auto_threads(flops, cores), "auto", flops, cores)


@contextlib.contextmanager
def using(count: int) -> Iterator[None]:
    """Run the body with `count` torch intra-op threads; the previous count is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
