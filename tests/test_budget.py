"""Resource budgets: refused from sizes and headers, before anything is allocated."""

from __future__ import annotations

import gzip
import io
import os
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from specnet.budget import (
    BudgetError,
    check_claimed,
    memory_budget,
    read_bounded,
    regular_file,
    sweep_trainings,
)
from specnet.errors import SpecError
from specnet.spec.validate import load_spec
from specnet.sweep import load_sweep

XOR = """name: x
task: binary
data: {source: xor, n_samples: 40}
model: [{linear: 4}, tanh, {linear: 1}]
loss: bce
training: {epochs: 1}
"""


def npz_bomb(path: Path, shape: tuple[int, ...]) -> None:
    """An .npz whose X header claims `shape` (float32) but holds a few bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X.npy", header.getvalue() + b"\0" * 4096)
        buf = io.BytesIO()
        np.save(buf, np.zeros(shape[0], np.int64))
        zf.writestr("y.npy", buf.getvalue())


def idx_bomb(path: Path, images: int) -> None:
    """A gzip IDX image file whose header claims `images` 28x28 images."""
    with gzip.open(path, "wb") as f:
        f.write(b"\0\0\x08\x03" + struct.pack(">III", images, 28, 28) + b"\0" * 1000)


def test_npz_header_claiming_more_than_the_file_holds(tmp_path: Path, write_spec) -> None:
    npz_bomb(tmp_path / "d.npz", (60, 2**24))
    spec = write_spec(XOR.replace("{source: xor, n_samples: 40}",
                                  "{source: npz, path: d.npz}").replace("binary", "regression")
                      .replace("bce", "mse"))
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"spec\.yaml:3:\d+: data\.path: .*d\.npz: array 'X' "
                                        r"of shape \(60, 16777216\) claims 3\.75 GiB"):
        load_spec(spec)
    assert time.perf_counter() - t0 < 5


def test_gzip_idx_header_claiming_2_26_images(tmp_path: Path, write_spec) -> None:
    idx_bomb(tmp_path / "img.gz", 2**26)
    with gzip.open(tmp_path / "lab.gz", "wb") as f:
        f.write(b"\0\0\x08\x01" + struct.pack(">I", 2**26) + b"\0" * 100)
    spec = write_spec(XOR.replace("{source: xor, n_samples: 40}",
                                  "{source: mnist_idx, images: img.gz, labels: lab.gz}")
                      .replace("binary", "classification").replace("bce", "cross_entropy")
                      .replace("{linear: 1}", "{linear: auto}"))
    with pytest.raises(SpecError, match=r"img\.gz: the header \(67,108,864 images .*\) claims "
                                        r"49 GiB of data but the file holds only"):
        load_spec(spec)


def test_memory_budget_is_named_and_raisable(monkeypatch: pytest.MonkeyPatch) -> None:
    check_claimed("f", 3 * 2**30, 2**30, True, "X")  # within the default 4 GiB
    monkeypatch.setenv("SPECNET_MAX_MEMORY_MB", "1024")
    assert memory_budget() == 2**30
    with pytest.raises(BudgetError, match=r"f: X needs 3 GiB in memory; the memory budget is "
                                          r"1 GiB; raise it with SPECNET_MAX_MEMORY_MB=<MiB>"):
        check_claimed("f", 3 * 2**30, 2**30, True, "X")
    monkeypatch.setenv("SPECNET_MAX_MEMORY_MB", "lots")
    with pytest.raises(BudgetError, match="not a number of MiB"):
        memory_budget()


@pytest.mark.parametrize(("data", "where", "match"), [
    ("{source: moons, n_samples: 1000000000000}", r"3:\d+: data\.n_samples",
     r"1,000,000,000,000 samples x 2 features of generated data would take 14,901 GiB"),
    ("{source: classification, n_features: 1000000000}", r"3:\d+: data\.n_features",
     r"1,000 samples x 1,000,000,000 features"),
], ids=["moons-samples", "classification-features"])
def test_generated_data_is_sized_from_the_spec(write_spec, data: str, where: str,
                                               match: str) -> None:
    spec = write_spec(XOR.replace("{source: xor, n_samples: 40}", data)
                      .replace("binary", "classification").replace("bce", "cross_entropy")
                      .replace("{linear: 1}", "{linear: auto}"))
    with pytest.raises(SpecError, match=where + ": " + match):
        load_spec(spec)


def test_model_memory_is_located_at_the_layer(write_spec) -> None:
    spec = write_spec(XOR.replace("{linear: 4}", "{linear: 100000000}"))
    with pytest.raises(SpecError, match=r"spec\.yaml:4:\d+: model\[0\]: training this model "
                                        r"would take .* GiB .*SPECNET_MAX_MEMORY_MB"):
        load_spec(spec)


def test_sweep_size_is_counted_without_expanding(write_spec) -> None:
    keys = "\n".join(f"    p{i},model[0].units: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
                     for i in range(10))
    spec = write_spec(XOR + f"sweep:\n  grid:\n{keys}\n")
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=r"spec\.yaml:7:1: sweep: the sweep holds "
                                        r"10,000,000,000 trainings .*max_trainings"):
        load_sweep(spec)
    assert time.perf_counter() - t0 < 5
    assert sweep_trainings(5000, [10], 0, 1, 1) == 50_000
    ok = write_spec(XOR + "sweep:\n  max_trainings: 3\n  repeats: 2\n  cv: 2\n", "ok.yaml")
    with pytest.raises(SpecError, match="4 trainings"):
        load_sweep(ok)


@pytest.mark.parametrize(("make", "match"), [
    (lambda p: os.mkfifo(p), "is a FIFO"),
    (lambda p: os.symlink("/dev/zero", p), "is a character device"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: os.symlink(p, p), "symbolic link loop"),
    (lambda p: None, "no such file"),
], ids=["fifo", "dev-zero", "folder", "symlink-loop", "missing"])
def test_only_regular_files_are_read(tmp_path: Path, make, match: str) -> None:
    path = tmp_path / "data.csv"
    make(path)
    with pytest.raises(BudgetError, match=match):
        regular_file(path)


def test_bounded_read() -> None:
    assert read_bounded(io.BytesIO(b"abc"), "x", limit=3) == b"abc"
    with pytest.raises(BudgetError, match="more than 3 bytes"):
        read_bounded(io.BytesIO(b"abcd"), "x", limit=3)


def test_csv_header_check_is_linear(tmp_path: Path, write_spec) -> None:
    names = [f"c{i}" for i in range(200_000)] + ["c7"]
    (tmp_path / "wide.csv").write_text(",".join(names) + ",y\n" + ",".join("1" * len(names))
                                       + ",0\n")
    spec = write_spec(XOR.replace("{source: xor, n_samples: 40}",
                                  "{source: csv, path: wide.csv, target: y}"))
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match="the header names 'c7' more than once"):
        load_spec(spec)
    assert time.perf_counter() - t0 < 10  # quadratic: minutes
