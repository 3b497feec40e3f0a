"""Atomic file writes: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import json
import math
import os
import shutil
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
    """SpecnetError unless `path` is absent, or a folder holding only names in `owned` (an
    earlier output of the same kind): `atomic_dir` replaces the folder as a whole, so
    anything else in it would be lost. `what` names the kind of folder, e.g. 'an export'."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise SpecnetError(f"{path}: is a file, not {what} folder; choose another output "
                           "folder (-o)")
    other = sorted(p.name for p in path.iterdir() if p.name not in owned)
    if other:
        shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "")
        raise SpecnetError(f"{path}: holds files that are not part of {what} ({shown}); the "
                           "folder is replaced as a whole: choose another output folder (-o)")


@contextmanager
def atomic_dir(path: str | Path, owned: Collection[str] | None = None,
               what: str = "an output") -> Iterator[Path]:
    """Yield a temporary folder that replaces `path` as a whole when the block succeeds.

    On any error the temporary folder is removed and `path` is left as it was. With
    `owned`, an existing `path` must pass `check_replaceable` first. Raises SpecnetError
    naming `path` when the folder cannot be made there.
    """
    path = Path(path)
    if owned is not None:
        check_replaceable(path, owned, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        _cannot_write(path, exc)
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700)
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
