"""Ownership of the folders specnet writes: run folders, export folders, sweep folders.

Each kind of folder has a `Layout`: the manifest of every name specnet writes there, its
type (file or folder) and, for nested folders such as `checkpoints/`, the names it writes
inside. Before any work, `check_destination` walks the whole tree that a command would
write and refuses (a SpecnetError naming each path) when it would replace or delete
anything specnet did not write: a user file, a folder where specnet writes a file, a
link, the spec file itself. It also proves the destination writable (a real probe, so a
read-only mount is found before training, also for root).

`atomic_dir` writes a folder as a whole: into `.NAME.<pid>.<random>.tmp` beside it, then
two renames (NAME -> .NAME.old, tmp -> NAME). `recover` repairs what a kill at any point
leaves: NAME missing but .NAME.old present -> the old folder is put back; both present ->
.NAME.old is removed; temporary folders of processes that no longer run are removed.
Every command that writes a folder calls it first (through `check_destination`).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from .errors import SpecnetError

_SHOWN = 5
_TMP_FILE = re.compile(r"^\.(.+)\.[A-Za-z0-9_]{8}\.tmp$")
"""A temporary file of `io.atomic_write_bytes`: `.NAME.xxxxxxxx.tmp` beside NAME."""


@dataclass(frozen=True)
class Layout:
    """What specnet writes in one kind of folder.

    files: names of the files it writes at the top. folders: nested folder name -> regular
    expression of the file names it writes inside (e.g. checkpoints/ -> epoch_00012.pt).
    what: the kind, for messages ('a specnet export').
    """

    what: str
    files: frozenset[str]
    folders: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def flat(cls, owned: Collection[str], what: str) -> Layout:
        """A layout of files only (no nested folders)."""
        return cls(what, frozenset(owned))


def _fail(message: str) -> NoReturn:
    raise SpecnetError(message)


def absolute(path: str | Path) -> Path:
    """`path` made absolute without following links ('.', '..' and '' resolved), so that
    `-o .` names a real folder; SpecnetError for a symlink loop on the way."""
    text = os.path.abspath(os.fspath(path) or ".")
    p = Path(text)
    try:
        p.resolve(strict=False)
    except RuntimeError:  # python < 3.13: symlink loop
        _fail(f"{path}: a symbolic link loop; choose another output folder (-o)")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _fail(f"{path}: a symbolic link loop; choose another output folder (-o)")
    return p


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    return "a special file"


def _foreign(root: Path, layout: Layout) -> list[str]:
    """Entries under `root` that specnet would replace or delete but did not write."""
    found: list[str] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        mode = entry.stat(follow_symlinks=False).st_mode
        name = entry.name
        own_tmp = _TMP_FILE.match(name)
        if own_tmp and own_tmp.group(1) in layout.files and stat.S_ISREG(mode):
            continue  # a file being written atomically (or left by a kill): ours
        if name in layout.files:
            if not stat.S_ISREG(mode):
                found.append(f"{name} ({_kind(mode)}; specnet writes a file there)")
        elif name in layout.folders:
            if not stat.S_ISDIR(mode):
                found.append(f"{name} ({_kind(mode)}; specnet writes a folder there)")
                continue
            pattern = re.compile(layout.folders[name])
            for inner in sorted(os.scandir(entry.path), key=lambda e: e.name):
                imode = inner.stat(follow_symlinks=False).st_mode
                if not (pattern.fullmatch(inner.name) and stat.S_ISREG(imode)):
                    found.append(f"{name}/{inner.name}"
                                 + ("" if stat.S_ISREG(imode) else f" ({_kind(imode)})"))
        else:
            found.append(name + ("" if stat.S_ISREG(mode) else f" ({_kind(mode)})"))
    return found


def _inside(child: Path, folder: Path) -> bool:
    try:
        child.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _existing_ancestor(p: Path) -> Path:
    q = p
    while not os.path.lexists(q) and q != q.parent:
        q = q.parent
    return q


def _probe(folder: Path, dest: Path) -> None:
    """Create and remove a folder in `folder`: the write test that read-only mounts and
    permissions answer truly (os.access says yes to root on some of them)."""
    if not folder.is_dir():
        _fail(f"{dest}: cannot be made: {folder} is {_kind(os.lstat(folder).st_mode)}, "
              "not a folder; choose another output folder (-o)")
    try:
        probe = tempfile.mkdtemp(prefix=".specnet-probe.", dir=folder)
        os.rmdir(probe)
    except OSError as exc:
        _fail(f"{dest}: cannot write to {folder}: {exc.strerror or exc}; choose another "
              "output folder (-o) or check its permissions")


def check_destination(path: str | Path, layout: Layout, *, spec_file: str | Path | None = None,
                      whole: bool = True) -> Path:
    """Refuse (SpecnetError) unless writing `layout` at `path` loses nothing a user made.

    whole: the folder is replaced as a whole (export, sweep); otherwise its files are
    written in place (run folder). `spec_file`: the spec being built, which must not lie in
    the destination. Repairs a half-done swap first (`recover`). Returns `path` made absolute.
    """
    dest = absolute(path)
    recover(dest)
    shown = os.fspath(path) or "."
    if spec_file is not None and _inside(Path(spec_file), dest):
        _fail(f"{spec_file}: the output folder {shown} would replace this spec (it lies "
              f"inside the folder, which specnet {'replaces as a whole' if whole else 'writes'}"
              "); choose another output folder (-o)")
    if whole and _inside(Path.cwd(), dest):
        _fail(f"{shown}: is the current folder or holds it, and {layout.what} folder is "
              "replaced as a whole; choose a new folder, e.g. -o exports/NAME")
    if os.path.lexists(dest):
        mode = os.lstat(dest).st_mode
        if stat.S_ISLNK(mode):
            _fail(f"{shown}: is a symbolic link, not {layout.what} folder; give the folder it "
                  "points to, or another output folder (-o)")
        if not stat.S_ISDIR(mode):
            _fail(f"{shown}: is {_kind(mode)}, not {layout.what} folder; choose another output "
                  "folder (-o)")
        try:
            foreign = _foreign(dest, layout)
        except OSError as exc:
            _fail(f"{shown}: cannot be read: {exc.strerror or exc}; choose another output "
                  "folder (-o)")
        if foreign:
            more = f", and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else ""
            how = "replaced as a whole" if whole else "cleared for a fresh run"
            _fail(f"{shown}: holds files that are not part of {layout.what} "
                  f"({', '.join(foreign[:_SHOWN])}{more}); the folder is {how}: move them or "
                  "choose another output folder (-o)")
    target = dest if (not whole and dest.is_dir()) else dest.parent
    _probe(_existing_ancestor(target), Path(shown))
    return dest


# ---------------------------------------------------------------- the atomic swap

_TMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[A-Za-z0-9_]{8}\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(path: str | Path) -> list[str]:
    """Repair what a killed `atomic_dir` left beside `path`; returns what it did.

    `.NAME.old` without NAME: the kill fell between the two renames, the old folder is put
    back. Both: the swap finished, `.NAME.old` is removed. `.NAME.<pid>.xxxxxxxx.tmp`
    folders of processes no longer running (and pid-less ones of older versions) are
    removed. Nothing else is touched.
    """
    dest = absolute(path)
    parent, name = dest.parent, dest.name
    done: list[str] = []
    if not parent.is_dir() or not name:
        return done
    old = parent / f".{name}.old"
    if old.is_dir() and not old.is_symlink():
        if not os.path.lexists(dest):
            os.replace(old, dest)
            done.append(f"restored {dest} from {old.name}")
        else:
            shutil.rmtree(old, ignore_errors=True)
            done.append(f"removed {old.name}")
    prefix = f".{name}."
    for entry in os.scandir(parent):
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        m = _TMP.match(entry.name)
        if m is None or m.group("name") != name:
            continue
        pid = m.group("pid")
        if pid is not None and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        done.append(f"removed {entry.name}")
    return done


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cannot_write(path: Path, exc: OSError) -> NoReturn:
    extra = "; the previous folder is unchanged" if os.path.lexists(path) else ""
    raise SpecnetError(f"cannot write {path}: {exc.strerror or exc}{extra}; free some space, "
                       "choose another path or check its permissions") from None


@contextmanager
def atomic_dir(path: str | Path, layout: Layout | None = None) -> Iterator[Path]:
    """Yield a temporary folder that replaces `path` as a whole when the block succeeds.

    On any error the temporary folder is removed and `path` is left as it was (an OSError
    in the block, such as a full disk, becomes a SpecnetError). With `layout`, `path` must
    pass `check_destination` first. A kill at any point is repaired by `recover`, which
    the next `atomic_dir` or `check_destination` on the same path runs.
    """
    shown = Path(path)
    if layout is not None:
        check_destination(path, layout)
    dest = absolute(path)
    recover(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=dest.parent))
    except OSError as exc:
        _cannot_write(shown, exc)
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700)
        try:
            yield tmp
        except OSError as exc:
            _cannot_write(shown, exc)
        old = None
        if os.path.lexists(dest):
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(tmp, dest)  # a kill between the two renames: `recover` puts old back
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
