"""Atomic writes: whole new file or old file, never half; folders replaced as a whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from specnet.errors import SpecnetError
from specnet.io import atomic_dir, atomic_write_bytes, atomic_write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]


def test_write_gets_umask_mode_not_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "a").write_text("a")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "f.bin") == 0o644
    assert _mode(tmp_path / "d") == 0o755


class _Boom(Exception):
    pass


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def fail(*args: object) -> None:
        raise _Boom

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(_Boom):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_atomic_dir_replaces_whole_folder(tmp_path: Path) -> None:
    out = tmp_path / "art"
    with atomic_dir(out) as d:
        (d / "a").write_text("1")
        (d / "b").write_text("1")
    with atomic_dir(out) as d:
        (d / "a").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    assert (out / "a").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_atomic_dir_error_keeps_old_folder_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "art"
    with atomic_dir(out) as d:
        (d / "a").write_text("good")
    with pytest.raises(_Boom), atomic_dir(out) as d:
        (d / "a").write_text("half")
        raise _Boom
    assert (out / "a").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_atomic_dir_error_with_no_old_folder_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(_Boom), atomic_dir(tmp_path / "new") as d:
        (d / "a").write_text("half")
        raise _Boom
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["folder", "under-a-file"])
def test_unwritable_target_is_a_specnet_error_naming_the_path(tmp_path: Path,
                                                              kind: str) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "plain").write_text("x")
    target = tmp_path / ("taken" if kind == "folder" else "plain/f.txt")
    with pytest.raises(SpecnetError, match=f"cannot write {target}: "):
        atomic_write_text(target, "new")
    with pytest.raises(SpecnetError, match="cannot write"), atomic_dir(tmp_path / "plain/d"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "taken"]
    assert list((tmp_path / "taken").iterdir()) == []


def test_strict_json_writes_nan_and_infinity_as_null() -> None:
    import json
    import math

    from specnet.io import strict_json

    text = strict_json({"a": math.nan, "b": [1.0, math.inf], "c": (2, -math.inf), "d": "x"})
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": [2, None], "d": "x"}
    assert text.endswith("\n")
