"""Output folders: the whole tree is checked before work; the atomic swap survives kills."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from specnet.errors import SpecnetError
from specnet.outdir import Layout, atomic_dir, check_destination, recover

EXPORT = Layout.flat(["model.onnx", "spec.yaml", "metrics.json"], "a specnet export")
RUN = Layout("a specnet run", frozenset(["spec.yaml", "metrics.json"]),
             {"checkpoints": r"epoch_\d+\.pt"})


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for folders)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("make", "layout", "match"), [
    (lambda d: (d / "checkpoints").mkdir() or (d / "checkpoints" / "mine.txt").write_text("x"),
     RUN, r"checkpoints/mine\.txt"),
    (lambda d: (d / "model.onnx").mkdir() or (d / "model.onnx" / "thesis.txt").write_text("x"),
     EXPORT, r"model\.onnx \(a folder; specnet writes a file there\)"),
    (lambda d: (d / "checkpoints").write_text("x"), RUN,
     r"checkpoints \(a file; specnet writes a folder there\)"),
    (lambda d: (d / "notes.txt").write_text("x"), EXPORT, r"not part of a specnet export "
                                                          r"\(notes\.txt\)"),
    (lambda d: os.symlink("/etc/hostname", d / "spec.yaml"), EXPORT, r"a symbolic link"),
    (lambda d: (d / "checkpoints").mkdir() or os.mkfifo(d / "checkpoints" / "epoch_1.pt"),
     RUN, r"checkpoints/epoch_1\.pt \(a special file\)"),
], ids=["nested-user-file", "folder-named-model.onnx", "file-named-checkpoints", "user-file",
        "symlink-named-spec", "fifo-named-checkpoint"])
def test_foreign_entries_are_refused_and_kept(tmp_path: Path, make, layout, match) -> None:
    out = tmp_path / "out"
    out.mkdir()
    make(out)
    before = _snapshot(tmp_path)
    with pytest.raises(SpecnetError, match=match):
        check_destination(out, layout, whole=layout is EXPORT)
    assert _snapshot(tmp_path) == before


def test_own_outputs_pass(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "epoch_00003.pt").write_bytes(b"x")
    (out / "spec.yaml").write_text("name: x\n")
    assert check_destination(out, RUN, whole=False) == out
    assert check_destination(tmp_path / "new" / "deeper", EXPORT) == tmp_path / "new" / "deeper"


def test_spec_inside_destination_is_refused(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    spec = proj / "spec.yaml"
    spec.write_text("# my comments\nname: x\n")
    with pytest.raises(SpecnetError, match="would replace this spec"):
        check_destination(proj, EXPORT, spec_file=spec)
    assert spec.read_text() == "# my comments\nname: x\n"


def test_current_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for given in (".", "", "./", str(tmp_path)):
        with pytest.raises(SpecnetError, match="is the current folder"):
            check_destination(given, EXPORT)


def test_symlink_loop_is_named(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    with pytest.raises(SpecnetError, match="symbolic link loop"):
        check_destination(tmp_path / "a" / "out", EXPORT)


def test_file_on_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(SpecnetError, match=r"plain is a file, not a folder"):
        check_destination(tmp_path / "plain" / "out", EXPORT)


# ---------------------------------------------------------------- the swap and its recovery


def _folder(path: Path, text: str) -> None:
    path.mkdir(parents=True)
    (path / "model.onnx").write_text(text)


def test_kill_between_renames_is_rolled_back(tmp_path: Path) -> None:
    # State after `os.replace(dest, old)` and before `os.replace(tmp, dest)`.
    _folder(tmp_path / ".art.old", "old")
    _folder(tmp_path / ".art.999999999.abcd_123.tmp", "half")
    done = recover(tmp_path / "art")
    assert (tmp_path / "art" / "model.onnx").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    assert any("restored" in d for d in done)


def test_kill_after_second_rename_finishes(tmp_path: Path) -> None:
    _folder(tmp_path / "art", "new")
    _folder(tmp_path / ".art.old", "old")
    recover(tmp_path / "art")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    assert (tmp_path / "art" / "model.onnx").read_text() == "new"


def test_live_temporaries_and_other_names_are_kept(tmp_path: Path) -> None:
    _folder(tmp_path / f".art.{os.getppid()}.abcd_123.tmp", "a live process's")
    _folder(tmp_path / ".art.notes", "user")
    _folder(tmp_path / ".other.abcdefgh.tmp", "another artifact's")
    (tmp_path / ".art.abcdefgh.tmp").write_text("a file, not ours")
    before = _snapshot(tmp_path)
    recover(tmp_path / "art")
    assert _snapshot(tmp_path) == before


def test_disk_errors_in_the_block_keep_the_old_folder(tmp_path: Path) -> None:
    _folder(tmp_path / "art", "old")
    with pytest.raises(SpecnetError, match=r"No space left on device.*previous folder is "
                                           "unchanged"), atomic_dir(tmp_path / "art") as tmp:
        (tmp / "model.onnx").write_text("new")
        raise OSError(28, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    assert (tmp_path / "art" / "model.onnx").read_text() == "old"


def test_atomic_dir_cleans_what_a_killed_run_left(tmp_path: Path) -> None:
    _folder(tmp_path / ".art.999999999.zzzz_999.tmp", "stale")
    _folder(tmp_path / ".art.abcdefgh.tmp", "stale, from an older specnet")
    with atomic_dir(tmp_path / "art") as tmp:
        (tmp / "model.onnx").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
