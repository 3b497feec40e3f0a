"""Fault injection: kill -9, full disks, read-only folders, memory bombs, signals, and every
output-folder case of issue 10. Each case checks the clean `error:` line, the exit code,
that no process is left behind, and that every file that was there before is unchanged.

Kept small (xor, a few epochs): kills run in forked children of this process, which has
torch imported already; only the signal tests start fresh interpreters.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
import pytest
import torch
from click.testing import CliRunner

import specnet
from specnet.artifact import FILES
from specnet.cli import main
from specnet.errors import SpecnetError
from specnet.outdir import recover
from specnet.runtime import Runtime
from specnet.signals import descendants

ROOT = Path(__file__).resolve().parent.parent
XOR = """name: xor
seed: 0
task: binary
data: {source: xor, n_samples: 64, noise: 0.1}
model: [{linear: 8}, tanh, {linear: 1}]
loss: bce
optimizer: {type: adam, lr: 0.05}
training: {epochs: EPOCHS, batch_size: 16, metrics: [accuracy], checkpoint_every: 1}
"""


class Payload:
    """A class instance: what a pickle checkpoint may carry (and `weights_only` refuses)."""


def xor(epochs: int = 3) -> str:
    return XOR.replace("EPOCHS", str(epochs))


def snapshot(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> dict[str, bytes]:
    """Every file under `root` (not under skipped paths) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not skip(p)}


def cli(*args: str | Path) -> tuple[int, str]:
    """Run the CLI in this process: (exit code, stdout + stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def one_error(output: str) -> str:
    """The output holds `error:` lines and no traceback; returns them joined."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert errors, output
    return "\n".join(errors)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished xor run folder (trained in this process)."""
    folder = tmp_path_factory.mktemp("faults") / "run"
    spec = folder.parent / "xor.yaml"
    spec.write_text(xor())
    torch.set_num_threads(1)
    specnet.train(spec, folder)
    return folder


@pytest.fixture(scope="module")
def artifact(run_dir: Path) -> Path:
    out = run_dir.parent / "exports" / "xor"
    specnet.export_run(run_dir, out)
    return out


# ---------------------------------------------------------------- kill -9


@contextlib.contextmanager
def _no_fork_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork of a threaded process
        yield


def killed_at(delay: float, work: Callable[[], object]) -> None:
    """Run `work` in a forked child and SIGKILL it after `delay` seconds (if still running)."""
    with _no_fork_warning():
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
                    contextlib.redirect_stderr(null):
                work()
        finally:
            os._exit(0)
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_kill9_during_export_never_breaks_the_artifact(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "exports" / "xor"
    (tmp_path / "exports" / "notes.txt").parent.mkdir(parents=True)
    (tmp_path / "exports" / "notes.txt").write_text("mine")
    run = specnet.load_run(run_dir)
    t0 = time.perf_counter()
    specnet.export_run(run, out)
    took = time.perf_counter() - t0
    complete = sorted(p.name for p in out.iterdir())
    assert set(FILES.values()) <= set(complete)
    rng = random.Random(10)
    for _ in range(4):
        killed_at(rng.uniform(0.0, took * 1.2), lambda: specnet.export_run(run, out))
        recover(out)  # what the next command does first
        assert sorted(p.name for p in out.iterdir()) == complete
        assert Runtime(out).artifact.name == "xor"  # complete: old or new, never half
        assert sorted(p.name for p in out.parent.iterdir()) == ["notes.txt", "xor"]
    assert (tmp_path / "exports" / "notes.txt").read_text() == "mine"


def test_kill9_during_build_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("xor.yaml").write_text(xor(6))
    Path("mine.txt").write_text("mine")
    before = snapshot(tmp_path)
    t0 = time.perf_counter()
    code, _ = cli("build", "xor.yaml", "-q", "-o", "first")
    took = time.perf_counter() - t0
    assert code == 0
    complete = sorted(p.name for p in Path("first").iterdir())
    shutil.rmtree("first")
    rng = random.Random(11)
    for _ in range(2):
        killed_at(rng.uniform(0.0, took),
                  lambda: main(["build", "xor.yaml", "-q", "--resume"], standalone_mode=False))
        recover(tmp_path / "exports" / "xor")
        art = Path("exports/xor")
        assert not art.exists() or sorted(p.name for p in art.iterdir()) == complete
    code, output = cli("build", "xor.yaml", "-q", "--resume")
    assert code == 0, output
    assert sorted(p.name for p in Path("exports").iterdir()) == ["xor"]  # no .xor.run left
    assert snapshot(tmp_path, lambda p: "exports" in p.parts) == before


# ---------------------------------------------------------------- full disk, read-only


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A tmpfs mounted at `path` (True), or a plain folder where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    ok = shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _in_child(work: Callable[[], tuple[int, str]], fsize: int | None = None) -> tuple[int, str]:
    """`work()` in a forked child (optionally under RLIMIT_FSIZE, SIGXFSZ ignored)."""
    r, w = os.pipe()
    with _no_fork_warning():
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            data = json.dumps(work()).encode()
        except BaseException as exc:
            data = json.dumps([99, f"Traceback: {exc!r}"]).encode()
        os.write(w, data)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    code, output = json.loads(data)
    return int(code), str(output)


def test_disk_full_during_export_keeps_the_old_artifact(run_dir: Path, artifact: Path,
                                                        tmp_path: Path) -> None:
    mnt = tmp_path / "disk"
    size = sum(p.stat().st_size for p in artifact.iterdir())
    with tmpfs(mnt, f"{(size + size // 2) // 4096 * 4096 + 8192}") as mounted:
        shutil.copytree(artifact, mnt / "xor")
        (mnt / "notes.txt").write_text("mine")
        before = snapshot(mnt)
        code, output = _in_child(lambda: cli("export", run_dir, "-o", mnt / "xor"),
                                 None if mounted else 2048)
        assert code == 1, output
        message = one_error(output)
        why = "No space left on device" if mounted else "File too large"
        assert f"cannot write {mnt / 'xor'}: {why}; the previous folder is unchanged" \
            in message
        assert snapshot(mnt) == before
        assert sorted(p.name for p in mnt.iterdir()) == ["notes.txt", "xor"]  # no temporary


def test_read_only_destination_is_found_before_training(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    spec = tmp_path / "xor.yaml"
    spec.write_text(xor(200))
    with tmpfs(mnt, "1m") as mounted:
        (mnt / "mine.txt").write_text("mine")
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        elif os.geteuid() == 0:
            pytest.skip("running as root without mount: permissions do not stop root, and "
                        "no read-only tmpfs can be made here")
        else:
            mnt.chmod(0o555)
        before = snapshot(mnt)
        t0 = time.perf_counter()
        code, output = cli("train", spec, "-q", "-o", mnt / "run")
        assert code == 1 and time.perf_counter() - t0 < 10  # 200 epochs did not run
        assert "cannot write to" in one_error(output)
        assert "trained" not in output
        assert snapshot(mnt) == before


# ---------------------------------------------------------------- memory bombs


def _limited(args: list[str], cwd: Path, gib: float) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh interpreter whose address space is capped at `gib` GiB."""
    limit = int(gib * 2**30)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, "
            f"({limit}, {limit})); from specnet.cli import main; main(sys.argv[1:])")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_memory_bombs_under_a_memory_limit(tmp_path: Path, artifact: Path) -> None:
    from test_budget import idx_bomb, npz_bomb

    npz_bomb(tmp_path / "d.npz", (60, 2**24))
    idx_bomb(tmp_path / "img.gz", 2**26)
    (tmp_path / "npz.yaml").write_text(xor().replace("{source: xor, n_samples: 64, noise: 0.1}",
                                                     "{source: npz, path: d.npz}"))
    (tmp_path / "gen.yaml").write_text(xor().replace("n_samples: 64", "n_samples: 10000000000"))
    (tmp_path / "wide.yaml").write_text(xor().replace("{linear: 8}", "{linear: 100000000}"))
    before = snapshot(tmp_path)
    found = {"npz.yaml:4:": "claims 3.75 GiB",
             "gen.yaml:4:": "data.n_samples: 10,000,000,000 samples",
             "wide.yaml:5:": "model[0]: training this model",
             "/dev/zero": "is a character device"}
    for args in (["validate", "npz.yaml", "gen.yaml", "wide.yaml"],
                 ["predict", str(artifact), "/dev/zero", "--input-format", "csv"]):
        done = _limited(args, tmp_path, 1.5 if args[0] == "validate" else 2.5)
        assert done.returncode == 1, done.stderr
        message = one_error(done.stderr)
        for where, what in found.items():
            if (where == "/dev/zero") == (args[0] == "predict"):
                assert any(where in m and what in m for m in message.splitlines()), message
        assert "MemoryError" not in done.stderr
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- signals


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "specnet.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for(ready: Callable[[], bool], proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(pid)
        except OSError:
            pass
    return out


def _interrupt(proc: subprocess.Popen[str], sig: int, group: bool) -> tuple[int, str, list[int]]:
    """Send `sig` (to the whole process group, as a terminal's Ctrl-C does, when `group`);
    returns the exit code, stderr, and the processes below it that are still alive."""
    below = descendants(proc.pid)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(below) and time.monotonic() < deadline:
        time.sleep(0.1)
    return int(proc.returncode), err, _alive(below)


SWEEP = xor(2000).replace("checkpoint_every: 1", "checkpoint_every: 1000") + \
    "sweep:\n  grid: {optimizer.lr: [0.01, 0.02, 0.03, 0.04]}\n"


@pytest.mark.parametrize(("sig", "group", "code"), [
    pytest.param(signal.SIGINT, True, 130, id="ctrl-c"),
    # The same path as Ctrl-C but for the signal number; `pytest -m slow` runs it.
    pytest.param(signal.SIGTERM, False, 143, id="sigterm", marks=pytest.mark.slow)])
def test_signal_to_sweep_with_workers(tmp_path: Path, sig: int, group: bool, code: int) -> None:
    (tmp_path / "sw.yaml").write_text(SWEEP)
    before = snapshot(tmp_path)
    proc = _start(["sweep", "sw.yaml", "--jobs", "2", "-q"], tmp_path)

    def worker_started() -> bool:  # a grandchild: a worker forked by the forkserver
        kids = descendants(proc.pid)
        return len(kids) >= 3

    _wait_for(worker_started, proc, 90)
    rc, err, left = _interrupt(proc, sig, group)
    assert rc == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines() == [
        f"error: interrupted ({signal.Signals(sig).name}): nothing was written to sweeps/sw "
        "(a sweep does not checkpoint); run the same command again to start over"]
    assert left == []
    assert snapshot(tmp_path) == before and not (tmp_path / "sweeps").exists()


def test_sigterm_to_train_keeps_checkpoints_and_resumes(tmp_path: Path) -> None:
    (tmp_path / "xor.yaml").write_text(xor(3000))
    proc = _start(["train", "xor.yaml", "-o", "runs/x", "-q"], tmp_path)
    _wait_for(lambda: any((tmp_path / "runs/x/checkpoints").glob("epoch_*.pt")), proc, 90)
    rc, err, left = _interrupt(proc, signal.SIGTERM, False)
    assert rc == 143 and left == [] and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: interrupted (SIGTERM): kept runs/x/checkpoints/epoch_")
    assert line.endswith("; resume with: specnet train xor.yaml -o runs/x --resume")


def test_sigterm_to_serve_exits_cleanly(artifact: Path, tmp_path: Path) -> None:
    proc = _start(["serve", str(artifact), "--port", "0", "--log-level", "info"], tmp_path)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 60
    while "Uvicorn running" not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert "Uvicorn running" in seen, seen
    rc, err, left = _interrupt(proc, signal.SIGTERM, False)
    assert rc == 143 and left == [], seen + err
    assert "Traceback" not in err
    assert "error: interrupted (SIGTERM): the server stopped; nothing to resume" in err


# ---------------------------------------------------------------- output folders (issue 10)


def test_build_into_the_specs_own_folder_is_refused(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "spec.yaml").write_text("# my comments\n" + xor())
    before = snapshot(tmp_path)
    code, output = cli("build", proj / "spec.yaml", "-o", proj)
    assert code == 1 and "would replace this spec" in one_error(output)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("cmd", "make", "match"), [
    ("train", lambda d: (d / "checkpoints").mkdir(parents=True) or
     (d / "checkpoints" / "mine.txt").write_text("precious"), "checkpoints/mine.txt"),
    ("build", lambda d: (d / "model.onnx").mkdir(parents=True) or
     (d / "model.onnx" / "thesis.txt").write_text("thesis"), "model.onnx (a folder"),
], ids=["user-file-in-checkpoints", "user-folder-named-model.onnx"])
def test_nested_user_files_are_never_touched(tmp_path: Path, cmd: str, make, match: str) -> None:
    (tmp_path / "t.yaml").write_text(xor())
    make(tmp_path / "out")
    before = snapshot(tmp_path)
    code, output = cli(cmd, tmp_path / "t.yaml", "-o", tmp_path / "out")
    assert code == 1 and match in one_error(output)
    assert snapshot(tmp_path) == before


def test_build_into_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t.yaml").write_text(xor())
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    code, output = cli("build", "../t.yaml", "-o", ".")
    assert code == 1 and "is the current folder" in one_error(output)
    assert sorted(os.listdir(tmp_path)) == ["t.yaml", "work"]
    assert os.listdir(tmp_path / "work") == []


@pytest.mark.parametrize(("name", "damage", "match"), [
    ("preprocessing.json", lambda t: t.replace('"offset"', '"offsets"'),
     "unreadable preprocessing.json"),
    ("preprocessing.json", lambda t: json.dumps({**json.loads(t), "x_scaler": {
        **json.loads(t)["x_scaler"], "offset": [0.0], "scale": [1.0]}}),
     "x_scaler has shape [1] but the data needs [2]"),
    ("history.csv", lambda t: t.replace("\n1,", "\none,", 1), "history.csv: damaged"),
], ids=["scaler-key", "scaler-shape", "history-text"])
def test_export_of_a_tampered_run(run_dir: Path, tmp_path: Path, name: str, damage,
                                  match: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / name).write_text(damage((run / name).read_text()))
    before = snapshot(tmp_path)
    code, output = cli("export", run, "-o", tmp_path / "out")
    assert code == 1 and match in one_error(output), output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("labels", ['["0"]', '["0", "1", "2"]', '"yes"'],
                         ids=["shorter", "longer", "not-a-list"])
def test_class_labels_that_do_not_fit_the_outputs(artifact: Path, tmp_path: Path,
                                                  labels: str) -> None:
    model = onnx.load(str(artifact / FILES["model"]))
    for prop in model.metadata_props:
        if prop.key == "specnet.class_labels":
            prop.value = labels
    onnx.save(model, str(tmp_path / "model.onnx"))
    (tmp_path / "rows.csv").write_text("x0,x1\n0,1\n")
    for args in (["predict", tmp_path / "model.onnx", tmp_path / "rows.csv"],
                 ["serve", tmp_path / "model.onnx", "--allow-unverified"]):
        code, output = cli(*args)
        assert code == 1 and "class labels" in one_error(output) and \
            "export the model again" in output, output


def test_checkpoints_specnet_did_not_write(run_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "xor.yaml"
    spec.write_text(xor())
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)

    torch.save({"format": 1, "payload": Payload()}, ckpts / "epoch_00001.pt")
    code, output = cli("train", spec, "-q", "-o", tmp_path / "run", "--resume")
    assert code == 1 and "pickled Python objects, which specnet never loads" in one_error(output)
    assert "weights_only" not in output
    state = torch.load(next((run_dir / "checkpoints").glob("*.pt")), weights_only=True)
    for epoch in (10**9, -5):
        torch.save({**state, "epoch": epoch}, ckpts / "epoch_00001.pt")
        code, output = cli("train", spec, "-q", "-o", tmp_path / "run", "--resume")
        assert code == 1 and f"epoch {epoch} (expected 0..3" in one_error(output), output


def test_hostile_text_is_escaped(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a\x1b[2J\x07,b\ny\n1,2\n")
    spec = tmp_path / "s.yaml"
    spec.write_text(xor().replace("{source: xor, n_samples: 64, noise: 0.1}",
                                  "{source: csv, path: d.csv, target: \"t\\e[31m\"}"))
    code, output = cli("validate", spec)
    assert code == 1
    assert "\x1b" not in output and "\x07" not in output
    assert "\\x1b[2J\\x07" in output and "\\x1b[31m" in output


def test_python_api_takes_a_spec_a_path_or_a_dict(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load(xor(1))
    (tmp_path / "x.yaml").write_text(xor(1))
    assert specnet.check(data).spec.name == "xor"
    assert specnet.check(tmp_path / "x.yaml").spec.name == "xor"
    assert len(specnet.compile_spec(data)) == 3
    assert specnet.train(data).metrics["epochs_run"] == 1
    for fn in (specnet.check, specnet.compile_spec, specnet.train):
        with pytest.raises(SpecnetError, match=r"expected a Spec, a spec file path or a dict "
                                               r"of spec data, got int 42"):
            fn(42)  # type: ignore[arg-type]
    with pytest.raises(SpecnetError, match=r"expected a Run .* got list"):
        specnet.export_run([], tmp_path / "out")  # type: ignore[arg-type]
