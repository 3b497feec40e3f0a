"""Atomic file writes: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from .errors import SpecnetError


def _cannot_write(path: Path, exc: OSError) -> NoReturn:
    raise SpecnetError(f"cannot write {path}: {exc.strerror or exc}; choose another "
                       "path or check its permissions") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the whole new one, never half.

    Raises SpecnetError naming `path` when it cannot be written (a folder, no permission).
    """
    path = Path(path)
    if path.is_dir():
        _cannot_write(path, IsADirectoryError(21, "it is a folder, not a file"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        _cannot_write(path, exc)
    try:
        # mkstemp makes the file private (0600); the result gets the usual umask mode.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            _cannot_write(path, exc)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_replaceable(path: str | Path, owned: Collection[str], what: str) -> None:
    """SpecnetError unless `path` is absent, or a folder holding only files named in `owned`
    (an earlier output of the same kind): `atomic_dir` replaces the folder as a whole, so
    anything else in it would be lost. `what` names the kind of folder, e.g. 'an export'.
    See `specnet.outdir.check_destination` (nested layouts, the spec file, writability)."""
    from .outdir import Layout, check_destination

    check_destination(path, Layout.flat(owned, what))


@contextmanager
def atomic_dir(path: str | Path, owned: Collection[str] | None = None,
               what: str = "an output") -> Iterator[Path]:
    """Yield a temporary folder that replaces `path` as a whole when the block succeeds;
    see `specnet.outdir.atomic_dir` (crash recovery, full disks). With `owned`, an existing
    `path` must pass `check_replaceable` first."""
    from .outdir import Layout
    from .outdir import atomic_dir as _atomic_dir

    with _atomic_dir(path, None if owned is None else Layout.flat(owned, what)) as tmp:
        yield tmp


def finite(obj: Any) -> Any:
    """`obj` (nested dicts / lists) with NaN and infinity replaced by None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def strict_json(obj: Any) -> str:
    """Indented JSON text in which NaN / infinity (an undefined metric) is null: strict JSON
    that any reader accepts."""
    return json.dumps(finite(obj), indent=2, allow_nan=False) + "\n"
