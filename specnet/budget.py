"""Resource budgets, checked before the work: sweep size, array bytes, memory, file reads.

Every check here runs on sizes (a sweep section's lengths, a file header's shape, a spec's
layer widths), never on the allocation itself, so a small hostile input is refused in
microseconds with a message that names the limit and how to raise it:

- memory: `SPECNET_MAX_MEMORY_MB` (default 4096) bounds any one array a file header or
  a generated data set asks for, and a model's parameters + gradients + optimizer state +
  activations of one batch;
- sweep size: `sweep.max_trainings` (default 10,000) bounds variants x folds x repeats;
- file reads: data files and prediction input must be regular files (FIFOs, devices,
  folders are refused) no larger than the memory budget.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import DataError

if TYPE_CHECKING:
    from .data.sources import SourceInfo
    from .shapes import Summary
    from .spec.load import Path_
    from .spec.schema import Spec

DEFAULT_MEMORY_MB = 4096
MEMORY_ENV = "SPECNET_MAX_MEMORY_MB"
MAX_TRAININGS = 10_000
"""Default cap on the trainings of one sweep (`sweep.max_trainings` raises it)."""

DEFLATE_MAX_RATIO = 1032
"""deflate (zip, gzip) never expands more than ~1032:1; a header that claims more data
than its compressed bytes can hold is lying."""


class BudgetError(DataError):
    """A resource budget would be exceeded (memory, file size), or a file that cannot be
    read within one (a FIFO, a device)."""


def memory_budget() -> int:
    """The memory budget in bytes: $SPECNET_MAX_MEMORY_MB MiB (default 4096)."""
    raw = os.environ.get(MEMORY_ENV, "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_MEMORY_MB
    except ValueError:
        raise BudgetError(f"{MEMORY_ENV}={raw!r} is not a number of MiB (e.g. "
                          f"{MEMORY_ENV}=8192)") from None
    if not mb > 0:
        raise BudgetError(f"{MEMORY_ENV}={raw!r} must be above 0")
    return int(mb * 2**20)


def size_text(n: float) -> str:
    """Bytes as a short human figure: '3.75 GiB'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}" if n / scale < 1000 else f"{n / scale:,.0f} {unit}"
    return f"{int(n)} bytes"


def raise_hint() -> str:
    """How to raise the memory budget, for messages."""
    return (f"the memory budget is {size_text(memory_budget())}; raise it with "
            f"{MEMORY_ENV}=<MiB> if the machine has the memory")


def over_memory(nbytes: float) -> bool:
    """True when `nbytes` exceed the memory budget."""
    return nbytes > memory_budget()


def check_bytes(nbytes: float, what: str, hint: str = "") -> None:
    """BudgetError when `what` would take more than the memory budget; `hint` is added
    to the message."""
    if over_memory(nbytes):
        raise BudgetError(f"{what} would take {size_text(nbytes)}; {raise_hint()}"
                          f"{', ' + hint if hint else ''}")


# ---------------------------------------------------------------- files


STREAM_HINT = ("or set data.stream: true (npy and parquet sources) to read the file "
               "batch by batch")
"""How to train on a data file bigger than the budget, for messages."""


def regular_file(path: str | Path, what: str = "data file",
                 bounded: bool = True) -> os.stat_result:
    """stat of `path`, refusing anything but a regular file within the memory budget
    (`bounded`; a streamed data file may be any size).

    FIFOs, devices (/dev/zero), sockets and folders are refused with their kind named; a
    symbolic link loop and a missing file get their own messages.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BudgetError(f"{path}: a symbolic link loop, not a {what}") from None
        if exc.errno == errno.ENOENT:
            raise BudgetError(f"{path}: no such file") from None
        raise BudgetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise BudgetError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
                "a character device" if stat.S_ISCHR(mode) else
                "a block device" if stat.S_ISBLK(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise BudgetError(f"{path}: is {kind}; specnet reads {what}s from regular files only "
                          "(its size must be known before reading)")
    if bounded and over_memory(st.st_size):
        hint = f", {STREAM_HINT}" if what == "data file" else ""
        raise BudgetError(f"{path}: the file is {size_text(st.st_size)}, over the memory "
                          f"budget; {raise_hint()}{hint}")
    return st


def read_bounded(stream: IO[Any], what: str, limit: int | None = None) -> Any:
    """Read a whole stream (stdin, say) but at most `limit` bytes (default: the budget)."""
    limit = memory_budget() if limit is None else limit
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise BudgetError(f"{what}: more than {size_text(limit)} of input; {raise_hint()}")
    return data


def check_claimed(path: str | Path, claimed: int, stored: int, compressed: bool,
                  what: str) -> None:
    """A file header claims `claimed` bytes of data held in `stored` bytes on disk.

    Refuses a claim the stored bytes cannot hold (more than deflate's ratio when
    compressed, more than the bytes themselves otherwise), and any claim over the memory
    budget, before the array is allocated.
    """
    room = stored * DEFLATE_MAX_RATIO + 1024 if compressed else stored
    if claimed > room:
        raise BudgetError(f"{path}: {what} claims {size_text(claimed)} of data but the file "
                          f"holds only {size_text(stored)}"
                          f"{' compressed' if compressed else ''}: a corrupt or hostile "
                          "header")
    if over_memory(claimed):
        raise BudgetError(f"{path}: {what} needs {size_text(claimed)} in memory; "
                          f"{raise_hint()}")


# ---------------------------------------------------------------- spec estimates


def sweep_trainings(variants: int, grid: Iterable[int], trials: int, folds: int,
                    repeats: int) -> int:
    """Trainings of a sweep from its section's lengths, without expanding anything."""
    return max(variants, 1) * math.prod(grid) * max(trials, 1) * folds * repeats


def data_bytes(n_samples: int, n_values: int) -> int:
    """Memory of a generated float64 data set of `n_samples` x `n_values` (sklearn)."""
    return 8 * n_samples * max(n_values, 1)


def model_bytes(params: int, activations: int, batch: int) -> int:
    """Training memory of a model: float32 parameters x 4 (weights, gradients, two
    optimizer moments) + activations of one batch, kept for the backward pass (x 2)."""
    return 4 * (4 * params + 2 * batch * activations)


def spec_issues(spec: Spec, info: SourceInfo, summary: Summary) -> list[tuple[Path_, str]]:
    """(spec path, message) for each memory estimate of `spec` over the budget: generated
    data (n_samples x features) and training the model (parameters, activations)."""
    out: list[tuple[Path_, str]] = []
    n = getattr(spec.data, "n_samples", None)
    width = math.prod(info.input_shape) if info.input_shape else 1
    if isinstance(n, int):
        need = data_bytes(n, width)
        if over_memory(need):
            feats = getattr(spec.data, "n_features", None)
            where = ("data", "n_features") if isinstance(feats, int) and feats > n else \
                ("data", "n_samples")
            out.append((where, f"{n:,} samples x {width:,} features of generated data would "
                               f"take {size_text(need)}; {raise_hint()}"))
    top = [r for r in summary.rows if r.depth == 0]
    if not top:
        return out
    bs = spec.training.batch_size
    batch = (n if isinstance(n, int) else 1024) if bs == "full" else int(bs)
    params = summary.trainable + summary.non_trainable
    acts = sum(math.prod(r.shape) for r in top)
    need = model_bytes(params, acts, batch)
    if over_memory(need):
        big = max(top, key=lambda r: 4 * r.params + 2 * batch * math.prod(r.shape))
        out.append((tuple(big.path), f"training this model would take {size_text(need)} "
                                     f"({params:,} parameters, {acts:,} activations per "
                                     f"row x batch {batch:,}); the largest layer is "
                                     f"{big.label}; {raise_hint()}"))
    return out


def check_npy_file(path: str | Path) -> None:
    """A loose .npy file's header against its real size and the budget, before loading."""
    import numpy as np

    fmt = np.lib.format
    size = os.stat(path).st_size
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            shape, _, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0)
                               else fmt.read_array_header_2_0(f))
            offset = f.tell()
    except (ValueError, OSError, EOFError):
        return  # not a .npy array: np.load says why
    check_claimed(path, math.prod(shape) * dtype.itemsize, size - offset, False,
                  f"the array of shape {tuple(shape)}")
