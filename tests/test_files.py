"""Data files named in a spec: CSV, NPZ and MNIST IDX, read from small files written here."""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specnet.cli import main
from specnet.data.files import csv_info, csv_load, idx_info, idx_load, npz_info, npz_load
from specnet.data.prepare import prepare
from specnet.data.sources import Csv, MnistIdx, Npz
from specnet.errors import DataError, SpecError
from specnet.spec.load import load_file
from specnet.spec.validate import check, load_spec, validate

# ---------------------------------------------------------------- CSV

IRISH = "a,b,species\n1,2,setosa\n3,4,virginica\n5,6,setosa\n7,8,versicolor\n"


def write(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def csv_src(path: Path, **kw: Any) -> Csv:
    return Csv(path=path, target=kw.pop("target", "species"), **kw)


CSV_OK = [
    # (id, text, kwargs, kind, n_classes, feature_names, labels, y)
    ("string-labels", IRISH, {}, "classification", 3, ["a", "b"],
     ["setosa", "versicolor", "virginica"], [0, 2, 0, 1]),
    ("whole-numbers", "a,b,species\n1,2,5\n3,4,1\n5,6,2\n7,8,5\n", {}, "any", 3, ["a", "b"],
     ["1", "2", "5"], [2, 0, 1, 2]),
    ("whole-floats", "a,species\n1,1.0\n3,0.0\n", {}, "any", 2, ["a"], ["0", "1"], [1, 0]),
    ("float-target", "a,b,species\n1,2,0.5\n3,4,1.25\n", {}, "regression", None, ["a", "b"],
     None, [[0.5], [1.25]]),
    ("target-first", "species,a,b\nx,1,2\ny,3,4\n", {}, "classification", 2, ["a", "b"],
     ["x", "y"], [0, 1]),
    ("features-chosen", IRISH, {"features": ["b"]}, "classification", 3, ["b"],
     ["setosa", "versicolor", "virginica"], [0, 2, 0, 1]),
    ("features-reordered", IRISH, {"features": ["b", "a"]}, "classification", 3, ["b", "a"],
     ["setosa", "versicolor", "virginica"], [0, 2, 0, 1]),
    ("semicolon", "a;species\n1;x\n2;y\n", {"delimiter": ";"}, "classification", 2, ["a"],
     ["x", "y"], [0, 1]),
    ("quoted-comma", 'a,species\n1,"big, red"\n2,small\n', {}, "classification", 2, ["a"],
     ["big, red", "small"], [0, 1]),
    ("bom-crlf-blank-lines", "\ufeffa,species\r\n1,x\r\n\r\n2,y\r\n\r\n", {}, "classification",
     2, ["a"], ["x", "y"], [0, 1]),
    ("spaces-around-cells", "a , species\n 1 , x \n2,y\n", {}, "classification", 2, ["a"],
     ["x", "y"], [0, 1]),
    ("unnamed-column-not-used", ",a,species\n0,1,x\n1,2,y\n", {"features": ["a"]},
     "classification", 2, ["a"], ["x", "y"], [0, 1]),
]


@pytest.mark.parametrize(("text", "kw", "kind", "n_classes", "names", "labels", "y"),
                         [c[1:] for c in CSV_OK], ids=[c[0] for c in CSV_OK])
def test_csv_reads(tmp_path: Path, text: str, kw: dict[str, Any], kind: str,
                   n_classes: int | None, names: list[str], labels: list[str] | None,
                   y: list[Any]) -> None:
    src = csv_src(write(tmp_path, text), **kw)
    info = csv_info(src)
    assert (info.kind, info.n_classes, info.input_shape) == (kind, n_classes, (len(names),))
    assert list(info.feature_names) == names
    arrays = csv_load(src)
    assert arrays.X.dtype == np.float32 and arrays.X.shape == (len(y), len(names))
    assert arrays.feature_names == names
    assert arrays.class_labels == labels
    np.testing.assert_array_equal(arrays.y, np.array(y))
    assert arrays.y.dtype == (np.float32 if kind == "regression" else np.int64)


def test_csv_feature_values_follow_the_chosen_columns(tmp_path: Path) -> None:
    arrays = csv_load(csv_src(write(tmp_path, IRISH), features=["b", "a"]))
    np.testing.assert_array_equal(arrays.X, [[2, 1], [4, 3], [6, 5], [8, 7]])


def test_csv_whole_number_targets_keep_their_values(tmp_path: Path) -> None:
    arrays = csv_load(csv_src(write(tmp_path, "a,species\n1,-3\n2,10\n3,7\n4,10\n")))
    assert arrays.class_labels == ["-3", "7", "10"]  # numeric order, not text order
    np.testing.assert_array_equal(arrays.y, [0, 2, 1, 2])
    np.testing.assert_array_equal(arrays.extra["target_values"], [[-3], [10], [7], [10]])


def test_csv_reports_the_line_of_a_row_after_a_multiline_field(tmp_path: Path) -> None:
    path = write(tmp_path, 'a,b,species\n1,2,"two\nlines"\n3,,x\n')
    with pytest.raises(DataError, match=r"line 4, column 'b': missing value"):
        csv_load(csv_src(path))


CSV_BAD = [
    # (id, text, kwargs, stage, message pattern)
    ("empty", "", {}, "info", r"the file is empty; it needs a header row"),
    ("blank-only", "\n\n", {}, "info", r"the file is empty"),
    ("header-only", "a,b,species\n", {}, "info", r"has a header but no data rows"),
    ("no-header", "1,2,3\n4,5,6\n", {}, "info",
     r"line 1 holds numbers \('1', '2', '3'\), not column names: the first row must be a header"),
    ("unknown-target", IRISH, {"target": "specie"}, "info",
     r"target column 'specie' not found \(did you mean 'species'\?\); columns: a, b, species$"),
    ("wrong-delimiter", "a;b;species\n1;2;x\n", {}, "info",
     r"target column 'species' not found: the header is one column 'a;b;species'; "
     r"set `delimiter: ';'`\?$"),
    ("unknown-features", IRISH, {"features": ["aa", "zzz"]}, "info",
     r"feature columns 'aa' \(did you mean 'a'\?\), 'zzz' not found; columns: a, b, species"),
    ("target-in-features", IRISH, {"features": ["a", "species"]}, "info",
     r"the target column 'species' is also listed in `features`"),
    ("features-twice", IRISH, {"features": ["a", "a"]}, "info",
     r"`features` lists 'a' more than once"),
    ("features-empty", IRISH, {"features": []}, "info", r"`features` is empty"),
    ("duplicate-header", "a,a,species\n1,2,x\n", {}, "info",
     r"the header names 'a' more than once"),
    ("pandas-index", ",a,species\n0,1,x\n1,2,y\n", {}, "info",
     r"column 1 has no name in the header; name it or choose columns with `features:`"),
    ("target-only", "species\nx\ny\n", {}, "info", r"the only column is the target 'species'"),
    ("ragged-row", "a,b,species\n1,2,x\n3,y\n", {}, "info",
     r"line 3: 2 fields, but the header has 3"),
    ("missing-target", "a,species\n1,x\n2,\n3,NA\n", {}, "info",
     r"line 3, column 'species' \(the target\): missing value; "
     r"line 4, column 'species' \(the target\): missing value 'NA'"),
    ("infinite-target", "a,species\n1,2.5\n2,inf\n", {}, "info",
     r"line 3, column 'species' \(the target\): 'inf' is not a finite number"),
    ("missing-feature", "a,b,species\n1,2,x\n3,,y\n", {}, "load",
     r"line 3, column 'b': missing value$"),
    ("text-feature", "a,b,species\n1,2,x\n3,4,y\nabc,5,x\n", {}, "load",
     r"line 4, column 'a': 'abc' is not a number$"),
    ("nan-feature", "a,b,species\n1,2,x\n1,nan,x\n", {}, "load",
     r"line 3, column 'b': missing value 'nan'"),
    ("inf-feature", "a,b,species\n1,2,x\n1,-inf,x\n", {}, "load",
     r"line 3, column 'b': '-inf' is not a finite number"),
    ("many-problems", "a,species\n1,x\n,x\n,x\n,x\n,x\n,x\n", {}, "load",
     r"line 3, column 'a': missing value; line 4, .*; line 5, column 'a': missing value "
     r"\(and 2 more\)$"),
    ("text-feature-column", "name,a,species\nann,1,x\nbob,2,y\n", {}, "info",
     r"line 2, column 'name': 'ann' is not a number"),
    ("bad-quote", 'a,species\n1,"x"y\n', {}, "info", r"line 2: not valid CSV"),
]


@pytest.mark.parametrize(("text", "kw", "stage", "match"), [c[1:] for c in CSV_BAD],
                         ids=[c[0] for c in CSV_BAD])
def test_csv_errors(tmp_path: Path, text: str, kw: dict[str, Any], stage: str,
                    match: str) -> None:
    path = write(tmp_path, text)
    src = csv_src(path, **kw)
    if stage == "load":
        csv_info(src)  # info does not parse features: it stays light
    with pytest.raises(DataError, match=match) as exc:
        csv_load(src)
    assert str(exc.value).startswith(f"{path}: ")
    assert "\n" not in str(exc.value)  # one line: it becomes one located spec issue
    if stage == "info":
        with pytest.raises(DataError, match=match):
            csv_info(src)


@pytest.mark.parametrize(("make", "match"), [
    (lambda p: None, r"data.csv: no such file$"),
    (lambda p: p.mkdir(), r"data.csv: is a directory, not a data file$"),
    (lambda p: p.write_bytes(b"a,species\n1,x\n2,\xe9t\xe9\n"),
     r"data.csv: line 3: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"),
], ids=["missing", "directory", "latin-1"])
def test_csv_file_errors(tmp_path: Path, make: Any, match: str) -> None:
    path = tmp_path / "data.csv"
    make(path)
    with pytest.raises(DataError, match=match):
        csv_info(csv_src(path))


# ---------------------------------------------------------------- NPZ


class _Boom:
    """Unpickling this records a call: it proves a loader never unpickled anything."""

    calls: list[str] = []  # noqa: RUF012

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_Boom.calls.append, ("unpickled",))


def npz(tmp_path: Path, name: str = "data.npz", compressed: bool = False,
        **arrays: Any) -> Path:
    path = tmp_path / name
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


X10 = np.arange(40, dtype=np.float64).reshape(10, 4)
Y10 = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])

NPZ_OK = [
    # (id, arrays, kwargs, kind, input_shape, n_classes, n_targets, y dtype)
    ("int-classes", {"X": X10, "y": Y10}, {}, "any", (4,), 3, 1, np.int64),
    ("images", {"X": np.zeros((10, 1, 3, 3)), "y": Y10}, {}, "any", (1, 3, 3), 3, 1,
     np.int64),
    ("float-values", {"X": X10, "y": Y10 + 0.5}, {}, "regression", (4,), None, 1, np.float32),
    ("multi-target", {"X": X10, "y": np.ones((10, 2))}, {}, "regression", (4,), None, 2,
     np.float32),
    ("string-labels", {"X": X10, "y": np.array(list("abcabcabca"))}, {}, "classification",
     (4,), 3, 1, np.int64),
    ("bool-labels", {"X": X10, "y": Y10 == 1}, {}, "any", (4,), 2, 1, np.int64),
    ("hint-regression", {"X": X10, "y": Y10}, {"task_hint": "regression"}, "regression", (4,),
     None, 1, np.float32),
    ("hint-classification", {"X": X10, "y": Y10.astype(float)},
     {"task_hint": "classification"}, "classification", (4,), 3, 1, np.int64),
    ("column-labels", {"X": X10, "y": Y10.reshape(-1, 1)}, {}, "any", (4,), 3, 1, np.int64),
    ("custom-keys", {"feats": X10, "target": Y10}, {"x_key": "feats", "y_key": "target"},
     "any", (4,), 3, 1, np.int64),
]


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
@pytest.mark.parametrize(("arrays", "kw", "kind", "shape", "n_classes", "n_targets", "ydtype"),
                         [c[1:] for c in NPZ_OK], ids=[c[0] for c in NPZ_OK])
def test_npz_reads(tmp_path: Path, compressed: bool, arrays: dict[str, Any],
                   kw: dict[str, Any], kind: str, shape: tuple[int, ...],
                   n_classes: int | None, n_targets: int, ydtype: Any) -> None:
    src = Npz(path=npz(tmp_path, compressed=compressed, **arrays), **kw)
    info = npz_info(src)
    assert (info.kind, info.input_shape, info.n_classes, info.n_targets) == (
        kind, shape, n_classes, n_targets)
    loaded = npz_load(src)
    assert loaded.X.dtype == np.float32 and loaded.X.shape == (10, *shape)
    np.testing.assert_array_equal(loaded.X, arrays[src.x_key])
    assert loaded.y.dtype == ydtype
    if kind == "regression":
        assert loaded.y.shape == (10, n_targets)
    else:
        assert loaded.y.shape == (10,) and loaded.class_labels is not None
        assert len(loaded.class_labels) == n_classes == loaded.y.max() + 1


def test_npz_labels_keep_names_and_numbers(tmp_path: Path) -> None:
    src = Npz(path=npz(tmp_path, X=X10[:4], y=np.array([7, 3, 7, 11])))
    arrays = npz_load(src)
    assert arrays.class_labels == ["3", "7", "11"]
    np.testing.assert_array_equal(arrays.y, [1, 0, 1, 2])
    np.testing.assert_array_equal(arrays.extra["target_values"], [[7], [3], [7], [11]])


NPZ_BAD = [
    # (id, arrays, kwargs, message pattern)
    ("missing-x", {"x": X10, "y": Y10}, {},
     r"no array 'X' \(x_key\) \(did you mean 'x'\?\); arrays in the file: x, y"),
    ("missing-y", {"X": X10, "labels": Y10}, {},
     r"no array 'y' \(y_key\); arrays in the file: X, labels"),
    ("object-x", {"X": np.array([_Boom()] * 10, dtype=object), "y": Y10}, {},
     r"array 'X' holds Python objects \(dtype object\), which specnet never unpickles"),
    ("object-y", {"X": X10, "y": np.array([_Boom()] * 10, dtype=object)}, {},
     r"array 'y' holds Python objects"),
    ("text-x", {"X": np.array([["a"]] * 10), "y": Y10}, {},
     r"array 'X' has dtype <U1; it must hold numbers$"),
    ("complex-y", {"X": X10, "y": Y10 + 1j}, {},
     r"array 'y' has dtype complex128; it must hold numbers or strings"),
    ("flat-x", {"X": np.arange(10.0), "y": Y10}, {},
     r"'X' has shape \(10,\); it needs \(n, features\) .*X.reshape\(-1, 1\)"),
    ("3d-y", {"X": X10, "y": np.zeros((10, 2, 2))}, {},
     r"'y' has shape \(10, 2, 2\); it needs \(n,\) or \(n, targets\)"),
    ("row-mismatch", {"X": X10, "y": Y10[:9]}, {}, r"'X' has 10 rows but 'y' has 9"),
    ("no-rows", {"X": np.zeros((0, 4)), "y": np.zeros(0)}, {}, r"the arrays hold no samples"),
    ("nan-y", {"X": X10, "y": np.where(Y10 == 2, np.nan, 1.0)}, {},
     r"'y' holds NaN or infinity \(first at sample 2\)"),
    ("hint-classification-fractions", {"X": X10, "y": Y10 * 0.5},
     {"task_hint": "classification"}, r"task_hint classification but 'y' holds non-whole"),
    ("hint-classification-2d", {"X": X10, "y": np.ones((10, 2))},
     {"task_hint": "classification"}, r"task_hint classification needs 'y' of shape \(n,\)"),
    ("hint-regression-text", {"X": X10, "y": np.array(list("abcabcabca"))},
     {"task_hint": "regression"}, r"'y' holds text but task_hint is regression"),
]


@pytest.mark.parametrize(("arrays", "kw", "match"), [c[1:] for c in NPZ_BAD],
                         ids=[c[0] for c in NPZ_BAD])
def test_npz_errors(tmp_path: Path, arrays: dict[str, Any], kw: dict[str, Any],
                    match: str) -> None:
    _Boom.calls.clear()
    src = Npz(path=npz(tmp_path, **arrays), **kw)
    for read in (npz_info, npz_load):
        with pytest.raises(DataError, match=match):
            read(src)
    assert _Boom.calls == []  # nothing was unpickled


def test_npz_nan_in_x_is_found_at_load(tmp_path: Path) -> None:
    X = X10.copy()
    X[6, 1] = np.inf
    src = Npz(path=npz(tmp_path, X=X, y=Y10))
    npz_info(src)  # info reads X's header only
    with pytest.raises(DataError, match=r"'X' holds NaN or infinity.*first at sample 6"):
        npz_load(src)


@pytest.mark.parametrize(("content", "match"), [
    (None, r"no such file"),
    (b"X,y\n1,2\n", r"not a .npz archive; save X and y together with np.savez"),
    ("npy", r"a single .npy array; save X and y together with np.savez\(path, X=X, y=y\)"),
], ids=["missing", "text-file", "npy-file"])
def test_npz_file_errors(tmp_path: Path, content: bytes | str | None, match: str) -> None:
    path = tmp_path / "data.npz"
    if content == "npy":
        with path.open("wb") as f:
            np.save(f, X10)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        npz_info(Npz(path=path))


# ---------------------------------------------------------------- MNIST IDX


def idx(array: np.ndarray, code: int = 0x08, dtype: str = ">u1") -> bytes:
    """An IDX file's bytes: magic, big-endian dimension sizes, then the data."""
    head = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.astype(dtype).tobytes()


IMAGES = np.arange(6 * 5 * 4).reshape(6, 5, 4) % 256  # 6 images of 5 x 4 pixels
LABELS = np.array([3, 0, 4, 1, 4, 3])


def idx_files(tmp_path: Path, images: bytes | None = None, labels: bytes | None = None,
              gz: tuple[bool, bool] = (False, False),
              names: tuple[str, str] = ("images-idx3-ubyte", "labels-idx1-ubyte"),
              **kw: Any) -> MnistIdx:
    paths = []
    for name, data, zipped in zip(names, (images if images is not None else idx(IMAGES),
                                          labels if labels is not None else idx(LABELS)),
                                  gz, strict=True):
        path = tmp_path / name
        path.write_bytes(gzip.compress(data) if zipped else data)
        paths.append(path)
    return MnistIdx(images=paths[0], labels=paths[1], **kw)


IDX_OK = [
    # (id, files kwargs, source kwargs, input shape, samples)
    ("raw-flat", {}, {}, (20,), 6),
    ("raw-image", {}, {"as_image": True}, (1, 5, 4), 6),
    ("gzip", {"gz": (True, True), "names": ("i.gz", "l.gz")}, {}, (20,), 6),
    ("gzip-without-extension", {"gz": (True, False)}, {}, (20,), 6),
    ("raw-named-gz", {"names": ("i.gz", "l.gz")}, {}, (20,), 6),
    ("limit", {"gz": (True, True)}, {"limit": 4, "as_image": True}, (1, 5, 4), 4),
    ("limit-above-count", {}, {"limit": 100}, (20,), 6),
    ("int32-pixels", {"images": idx(IMAGES, 0x0C, ">i4")}, {}, (20,), 6),
]


@pytest.mark.parametrize(("files", "kw", "shape", "n"), [c[1:] for c in IDX_OK],
                         ids=[c[0] for c in IDX_OK])
def test_idx_reads(tmp_path: Path, files: dict[str, Any], kw: dict[str, Any],
                   shape: tuple[int, ...], n: int) -> None:
    src = idx_files(tmp_path, **files, **kw)
    info = idx_info(src)
    assert (info.kind, info.input_shape, info.n_classes) == ("classification", shape, 5)
    assert info.feature_names[:2] == ("pixel_0_0", "pixel_0_1") and len(info.feature_names) == 20
    arrays = idx_load(src)
    assert arrays.X.dtype == np.float32 and arrays.X.shape == (n, *shape)
    np.testing.assert_array_equal(arrays.X.reshape(n, 5, 4), IMAGES[:n])  # 0..255, unscaled
    np.testing.assert_array_equal(arrays.y, LABELS[:n])
    assert arrays.y.dtype == np.int64
    # Labels are the classes themselves: digit 2 (absent here) still has its place.
    assert arrays.class_labels == ["0", "1", "2", "3", "4"]


def test_idx_info_reads_only_headers_and_labels(tmp_path: Path) -> None:
    # Pixels cut off inside a gzip stream: the header is readable, the data is not.
    whole = gzip.compress(idx(np.random.default_rng(0).integers(0, 256, (600, 28, 28))))
    src = idx_files(tmp_path, images=b"", labels=idx(np.zeros(600, int)), gz=(False, False))
    src.images.write_bytes(whole[: len(whole) // 2])
    assert idx_info(src).input_shape == (784,)
    with pytest.raises(DataError, match=r"truncated gzip data \(was the download cut short\?\)"):
        idx_load(src)


IDX_BAD = [
    # (id, images bytes, labels bytes, message pattern)
    ("bad-magic", b"\x12\x34\x08\x03" + b"\0" * 20, None,
     r"images-idx3-ubyte: not an IDX images file: it starts with bytes 0x12 0x34"),
    ("swapped", idx(LABELS), idx(IMAGES),
     r"is an IDX file with 1 dimension\(s\) but images need 3 \(are `images` and `labels` "
     r"swapped\?\)"),
    ("unknown-type", bytes([0, 0, 0x07, 3]) + b"\0" * 12, None,
     r"unknown IDX data type 0x07; known: 0x08 \(unsigned byte\)"),
    ("too-short", b"\0\0", None, r"too short to be an IDX images file \(2 bytes\)"),
    ("truncated-header", bytes([0, 0, 8, 3, 0, 0, 0, 6]), None,
     r"truncated header: 3 dimension sizes need 12 bytes"),
    ("no-images", idx(np.zeros((0, 5, 4))), idx(np.zeros(0)),
     r"the header gives dimensions \(0, 5, 4\): no images"),
    ("truncated-raw", idx(IMAGES)[:-7], None,  # raw files only: size from the file system
     r"truncated: the header promises 6 images of shape \[5, 4\] \(136 bytes\), the file "
     r"has 129"),
    ("count-mismatch", None, idx(LABELS[:5]),
     r"labels-idx1-ubyte: has 5 labels but .*images-idx3-ubyte has 6 images \(files from "
     r"different sets\?\)"),
    ("float-labels", None, idx(LABELS, 0x0D, ">f4"),
     r"labels must be integers, the file holds float32"),
    ("negative-label", None, idx(np.array([1, 2, -1, 0, 0, 0]), 0x09, ">i1"),
     r"label -1 at sample 2 is negative"),
]


@pytest.mark.parametrize(("images", "labels", "match"), [c[1:] for c in IDX_BAD],
                         ids=[c[0] for c in IDX_BAD])
def test_idx_errors(tmp_path: Path, images: bytes | None, labels: bytes | None,
                    match: str) -> None:
    for gz in (False, True) if "truncated:" not in match else (False,):
        src = idx_files(tmp_path, images, labels, gz=(gz, gz))
        for read in (idx_info, idx_load):
            with pytest.raises(DataError, match=match):
                read(src)


def test_idx_truncated_gzip_data_is_found_at_load(tmp_path: Path) -> None:
    src = idx_files(tmp_path, idx(IMAGES)[:-7], gz=(True, False))
    idx_info(src)  # a gzip file's length is unknown until it is read
    with pytest.raises(DataError, match=r"truncated: 6 samples need 120 bytes after the "
                                         r"header, the file has 113"):
        idx_load(src)


@pytest.mark.parametrize(("make", "match"), [
    (lambda p: None, r"no such file"),
    (lambda p: p.write_bytes(b"\x1f\x8b" + b"garbage" * 4), r"corrupt gzip data"),
], ids=["missing", "corrupt-gzip"])
def test_idx_file_errors(tmp_path: Path, make: Any, match: str) -> None:
    src = idx_files(tmp_path)
    src.images.unlink()
    make(src.images)
    with pytest.raises(DataError, match=match):
        idx_info(src)


# ---------------------------------------------------------------- specs end to end

SPEC = """\
name: {name}
task: {task}
data: {{source: csv, path: {path}, target: {target}, features: [f1, f2, f3],
        split: {{validation: 0.25, test: 0.25}}}}
model:
  - linear: 8
  - relu
  - linear: auto
"""


def table(tmp_path: Path, n: int = 40, target: str = "label") -> Path:
    rng = np.random.default_rng(0)
    rows = ["f1,f2,f3,label,count,size"]
    for i in range(n):
        f = rng.normal(size=3)
        rows.append(f"{f[0]:.4f},{f[1]:.4f},{f[2]:.4f},{'ab'[i % 2]},{i % 4},{f[0] * 2:.4f}")
    path = tmp_path / "data" / "table.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_csv_spec_validates_and_prepares(tmp_path: Path, runner: Any, write_spec: Any) -> None:
    table(tmp_path)
    spec = write_spec(SPEC.format(name="t", task="classification", path="data/table.csv",
                                  target="label"))
    result = runner.invoke(main, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "input [3] -> output [2]" in result.output
    checked = load_spec(spec)
    prepared = prepare(checked.spec)
    assert prepared.X_train.shape == (20, 3) and prepared.X_val.shape == (10, 3)
    assert prepared.X_test.shape == (10, 3)
    assert prepared.class_labels == ["a", "b"]
    assert prepared.feature_names == ["f1", "f2", "f3"]
    assert sorted(np.bincount(prepared.y_test)) == [5, 5]  # stratified


def test_text_feature_column_is_categorical(tmp_path: Path, runner: Any,
                                            write_spec: Any) -> None:
    # A text column among the features is one-hot encoded (f1..f3, size, label=a, label=b,
    # label=<other>), not an error; validate prints the column table.
    table(tmp_path)
    spec = write_spec(SPEC.format(name="t", task="regression", path="data/table.csv",
                                  target="count").replace("features: [f1, f2, f3],", ""))
    result = runner.invoke(main, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "input [7] -> output [1]" in result.output
    assert re.search(r"label\s+categorical\s+feature\s+0.0%\s+2\s+'a'", result.output), \
        result.output


@pytest.mark.parametrize(("task", "target", "ok", "output"), [
    ("classification", "count", True, "output [4]"),
    ("regression", "count", True, "output [1]"),
    ("binary", "label", True, "output [1]"),
    ("regression", "size", True, "output [1]"),
    ("binary", "count", False,
     r"data.csv.yaml:2:1: task: .*binary.* 4 classes"),
    ("regression", "label", False,
     r":2:1: task: .*regression.* classification"),
    ("classification", "size", False,
     r":2:1: task: .*classification.* continuous"),
    ("classification", "nope", False,
     r":3:21: data.path: .*table.csv: target column 'nope' not found; columns: f1, f2"),
], ids=["count-as-classes", "count-as-values", "binary-labels", "float-values",
        "binary-too-many", "regression-on-labels", "classes-from-floats", "bad-target"])
def test_csv_task_is_decided_by_the_spec(tmp_path: Path, runner: Any, write_spec: Any,
                                         task: str, target: str, ok: bool,
                                         output: str) -> None:
    table(tmp_path)
    spec = write_spec(SPEC.format(name="t", task=task, path="data/table.csv", target=target),
                      name="data.csv.yaml")
    result = runner.invoke(main, ["validate", str(spec)])
    assert result.exit_code == (0 if ok else 1), result.output
    if ok:
        assert output in result.output
    else:
        assert "Traceback" not in result.output
        assert any(line.startswith("error: ") for line in result.output.splitlines())
        assert re.search(output, result.output), result.output


def test_csv_whole_numbers_train_as_values_for_regression(tmp_path: Path,
                                                          write_spec: Any) -> None:
    table(tmp_path)
    spec = write_spec(SPEC.format(name="t", task="regression", path="data/table.csv",
                                  target="count").replace("split:", "target_normalize: none, "
                                                                    "split:"))
    prepared = prepare(load_spec(spec).spec)
    assert prepared.y_train.dtype == np.float32 and prepared.y_train.shape == (20, 1)
    assert prepared.class_labels is None
    all_y = np.concatenate([prepared.y_train, prepared.y_val, prepared.y_test])
    assert sorted(all_y.ravel().tolist()) == sorted([i % 4 for i in range(40)])


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path, runner: Any,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    (tmp_path / "project").mkdir()
    table(tmp_path / "project")
    spec = tmp_path / "project" / "spec.yaml"
    spec.write_text(SPEC.format(name="t", task="classification", path="data/table.csv",
                                target="label"), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    checked = load_spec(spec)
    assert checked.spec.data.path == tmp_path / "project" / "data" / "table.csv"  # type: ignore[attr-defined]
    assert prepare(checked.spec).X_train.shape == (20, 3)
    result = runner.invoke(main, ["validate", "../project/spec.yaml"])
    assert result.exit_code == 0, result.output
    # Loaded from text with no file, a path is relative to the working folder.
    with pytest.raises(SpecError, match=r"elsewhere/data/table.csv: no such file"):
        check(validate(load_file(spec).data))


def test_mnist_idx_spec_validates_as_images(tmp_path: Path, runner: Any,
                                                  write_spec: Any) -> None:
    idx_files(tmp_path, gz=(True, True), names=("train-images.gz", "train-labels.gz"))
    spec = write_spec("""\
task: classification
data: {source: mnist_idx, images: train-images.gz, labels: train-labels.gz, as_image: true}
model:
  - flatten
  - linear: auto
""")
    result = runner.invoke(main, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "input [1, 5, 4] -> output [5]" in result.output


def test_bad_idx_file_is_a_located_spec_error(tmp_path: Path, runner: Any,
                                              write_spec: Any) -> None:
    idx_files(tmp_path, images=idx(LABELS))
    spec = write_spec("""\
data:
  source: mnist_idx
  images: images-idx3-ubyte
  labels: labels-idx1-ubyte
model: [linear: auto]
""")
    result = runner.invoke(main, ["validate", str(spec)])
    assert result.exit_code == 1
    assert "spec.yaml:3:3: data.images: " in result.output
    assert "swapped?" in result.output and "Traceback" not in result.output


def test_info_imports_nothing_heavy(tmp_path: Path) -> None:
    # `specnet validate` calls info(): it must not pull in torch, sklearn or pandas.
    write(tmp_path, IRISH)
    np.savez(tmp_path / "d.npz", X=X10, y=Y10)
    idx_files(tmp_path, gz=(True, False))
    code = f"""
import sys
from pathlib import Path
from specnet.data.sources import Csv, Npz, MnistIdx
t = Path({str(tmp_path)!r})
Csv(path=t / "data.csv", target="species").info()
Npz(path=t / "d.npz").info()
MnistIdx(images=t / "images-idx3-ubyte", labels=t / "labels-idx1-ubyte").info()
print(sorted(m for m in ("torch", "sklearn", "pandas") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_bad_labels_file_is_located_at_the_labels_key(tmp_path: Path, runner: Any,
                                                        write_spec: Any) -> None:
    idx_files(tmp_path, gz=(False, False))
    spec = write_spec("data:\n  source: mnist_idx\n  images: images-idx3-ubyte\n"
                      "  labels: missing-labels\nmodel: [flatten, {linear: auto}]\n",
                      name="idx.yaml")
    result = runner.invoke(main, ["validate", str(spec)])
    assert result.exit_code == 1
    assert re.search(r"idx.yaml:4:3: data.labels: .*missing-labels: no such file",
                     result.output), result.output


def test_spec_hash_and_portable_spec_do_not_depend_on_where_the_spec_lies(
        tmp_path: Path) -> None:
    from specnet.spec.resolve import dump_resolved, resolved_dict, spec_hash
    from specnet.spec.validate import load_spec

    specs = []
    for place in ("one", "two"):
        folder = tmp_path / place
        folder.mkdir()
        table(folder)
        path = folder / "t.yaml"
        path.write_text(SPEC.format(name="t", task="classification", path="data/table.csv",
                                    target="label"), encoding="utf-8")
        specs.append(load_spec(path).spec)
    a, b = specs
    # Loading uses the resolved (absolute) path; hashes and portable dumps use it as written.
    assert a.data.path == tmp_path / "one" / "data" / "table.csv"  # type: ignore[attr-defined]
    assert resolved_dict(a)["data"]["path"] != resolved_dict(b)["data"]["path"]
    assert resolved_dict(a, portable=True) == resolved_dict(b, portable=True)
    assert resolved_dict(a, portable=True)["data"]["path"] == "data/table.csv"
    assert spec_hash(a) == spec_hash(b)
    assert str(tmp_path) not in dump_resolved(a, portable=True)
    # Copies (as sweeps and `units: auto` make) keep the paths as written.
    assert spec_hash(a.model_copy(deep=True)) == spec_hash(a)
