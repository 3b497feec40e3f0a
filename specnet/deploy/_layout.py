"""Ownership of deployment output folders: what a target writes, checked before replacing.

A layout maps a name to None (a file) or to a nested layout (a folder); the key "*"
matches any name. `check_layout` refuses a folder holding anything else, so a user's
files are never swept away when an earlier output is replaced as a whole (io.atomic_dir).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Union

from ..errors import SpecnetError

Layout = Mapping[str, Union["Layout", None]]


def _foreign(folder: Path, layout: Layout, prefix: str) -> list[str]:
    found: list[str] = []
    for child in sorted(folder.iterdir()):
        key = child.name if child.name in layout else "*"
        if key not in layout:
            found.append(prefix + child.name)
            continue
        sub = layout[key]
        if sub is None:
            if not child.is_file() or child.is_symlink():
                found.append(prefix + child.name + ("/" if child.is_dir() else ""))
        elif not child.is_dir() or child.is_symlink():
            found.append(prefix + child.name)
        else:
            found += _foreign(child, sub, prefix + child.name + "/")
    return found


def check_layout(path: Path, layout: Layout, what: str) -> None:
    """SpecnetError unless `path` is absent or holds only what `layout` allows (an earlier
    output of the same kind), since the folder is replaced as a whole."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise SpecnetError(f"{path}: is a file, not {what} folder; choose another output "
                           "folder (-o)")
    other = _foreign(path, layout, "")
    if other:
        shown = ", ".join(other[:5]) + (", ..." if len(other) > 5 else "")
        raise SpecnetError(f"{path}: holds files that are not part of {what} ({shown}); the "
                           "folder is replaced as a whole: choose another output folder (-o)")
