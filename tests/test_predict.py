"""`specnet predict`: CSV / JSON / NPY in, CSV / JSON out, clear errors, and no torch."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _exports import exported
from click.testing import CliRunner

from specnet.cli import main
from specnet.runtime import Runtime

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("iris", tmp_path_factory)


@pytest.fixture(scope="session")
def expected(iris: Path) -> np.ndarray:
    """What onnxruntime says for ROWS: (3, 3) probabilities."""
    return Runtime(iris, threads=1).run(np.asarray(ROWS, np.float32))


@pytest.fixture(scope="session")
def names(iris: Path) -> list[str]:
    return Runtime(iris, threads=1).artifact.feature_names


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["predict", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def _probs_from_csv(text: str) -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["label", "prob_setosa", "prob_versicolor", "prob_virginica"]
    return [r[0] for r in rows[1:]], np.asarray([r[1:] for r in rows[1:]], np.float32)


def test_csv_in_csv_out(iris: Path, tmp_path: Path, names: list[str],
                        expected: np.ndarray) -> None:
    # Columns in another order, plus a column the model does not use.
    path = tmp_path / "rows.csv"
    order = [3, 0, 2, 1]
    lines = [",".join(["species"] + [f'"{names[j]}"' for j in order])]
    lines += [",".join(["x"] + [str(r[j]) for j in order]) for r in ROWS]
    path.write_text("\n".join(lines) + "\n")
    code, out, err = _run(str(iris), str(path))
    assert code == 0, err
    labels, probs = _probs_from_csv(out)
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    classes = ["setosa", "versicolor", "virginica"]
    assert labels == [classes[i] for i in expected.argmax(axis=1)]
    assert "note: ignoring column(s) the model does not use: 'species'" in err


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_a_byte_order_mark_is_skipped(suffix: str, iris: Path, tmp_path: Path,
                                      names: list[str], expected: np.ndarray) -> None:
    # Excel's "CSV UTF-8" starts the file with one; training data may have it too.
    text = (",".join(f'"{n}"' for n in names) + "\n"
            + "\n".join(",".join(map(str, r)) for r in ROWS) + "\n"
            if suffix == "csv" else json.dumps({"rows": ROWS}))
    path = tmp_path / f"bom.{suffix}"
    path.write_text("\ufeff" + text, encoding="utf-8")
    code, out, err = _run(str(iris), str(path))
    assert code == 0, err
    np.testing.assert_allclose(_probs_from_csv(out)[1], expected, rtol=1e-6)


@pytest.mark.parametrize("payload", [
    "records", "rows", "instances", "bare-rows",
])
def test_json_forms_give_the_same_answer(payload: str, iris: Path, tmp_path: Path,
                                         names: list[str], expected: np.ndarray) -> None:
    records = [dict(zip(names, r, strict=True)) for r in ROWS]
    body = {"records": {"records": records}, "rows": {"rows": ROWS},
            "instances": {"instances": records}, "bare-rows": ROWS}[payload]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(body))
    code, out, err = _run(str(iris), str(path), "-f", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == "iris" and result["class_labels"][0] == "setosa"
    np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-6)


def test_npy_and_output_file(iris: Path, tmp_path: Path, expected: np.ndarray) -> None:
    np.save(tmp_path / "x.npy", np.asarray(ROWS))
    code, _, err = _run(str(iris), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.json"))
    assert code == 0, err
    result = json.loads((tmp_path / "p.json").read_text())
    np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-6)


def test_bare_model_file_and_stdin(iris: Path, tmp_path: Path, expected: np.ndarray) -> None:
    shutil.copyfile(iris / "model.onnx", tmp_path / "m.onnx")
    code, out, err = _run(str(tmp_path / "m.onnx"), "-", "--input-format", "json",
                          stdin=json.dumps({"rows": ROWS}))
    assert code == 0, err
    np.testing.assert_allclose(_probs_from_csv(out)[1], expected, rtol=1e-6)


def test_regression_writes_values(tmp_path_factory: pytest.TempPathFactory,
                                  tmp_path: Path) -> None:
    model = exported("diabetes", tmp_path_factory)
    np.save(tmp_path / "x.npy", np.zeros((2, 10)))
    code, out, err = _run(str(model), str(tmp_path / "x.npy"))
    assert code == 0, err
    header, *values = out.splitlines()
    assert header == "value" and len(values) == 2
    assert 25 < float(values[0]) < 350  # diabetes progression units, not standardised


def test_image_model_takes_shaped_npy(tmp_path_factory: pytest.TempPathFactory,
                                      tmp_path: Path) -> None:
    model = exported("digits_cnn", tmp_path_factory)
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    code, out, err = _run(str(model), str(tmp_path / "x.npy"))
    assert code == 0, err
    assert out.splitlines()[0].startswith("label,prob_0,prob_1")


HEADER = "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)"
BAD_INPUTS = [
    # (id, file name, content, message)
    ("csv-missing-column", "a.csv", "a,b\n1,2\n", "missing column(s) 'sepal length (cm)'"),
    ("csv-no-header", "a.csv", "1,2,3,4\n5,6,7,8\n", "a header row is required"),
    ("csv-not-a-number", "a.csv", f"{HEADER}\n1,2,3,4\n1,2,x,4\n",
     "line 3 (row 2), column 'petal length (cm)': 'x' is not a number"),
    ("csv-empty-cell", "a.csv", f"{HEADER}\n1,2,,4\n",
     "line 2 (row 1), column 'petal length (cm)': '' is not a number"),
    ("csv-short-line", "a.csv", f"{HEADER}\n1,2,3\n", "line 2 (row 1): 3 fields"),
    ("csv-nan", "a.csv", f"{HEADER}\n1,2,3,nan\n", "row 1, column 'petal width (cm)': nan"),
    ("csv-empty", "a.csv", "", "empty CSV"),
    ("json-wrong-width", "a.json", "[[1, 2, 3]]", "expected 4 per row"),
    ("json-text-value", "a.json", '{"rows": [[1, 2, 3, 4], [1, "b", 3, 4]]}',
     "row 2, column 'sepal width (cm)': expected a number, got 'b'"),
    ("json-malformed", "a.json", "[[1, 2", "malformed JSON"),
    ("json-nan", "a.json", "[[1, 2, 3, NaN]]", "malformed JSON"),
    ("json-wrong-key", "a.json", '{"data": [[1, 2, 3, 4]]}', "exactly one of 'instances'"),
    ("json-missing-feature", "a.json", '[{"sepal length (cm)": 1}]', "missing feature(s)"),
    ("unknown-extension", "a.txt", "1,2,3,4", "cannot tell the format"),
]


@pytest.mark.parametrize(("name", "content", "message"), [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_a_clear_error(iris: Path, tmp_path: Path, name: str, content: str,
                                    message: str) -> None:
    (tmp_path / name).write_text(content)
    code, out, err = _run(str(iris), str(tmp_path / name))
    assert code == 1 and out == ""
    assert err.startswith(f"error: {tmp_path / name}: ") and message in err, err
    assert "Traceback" not in err


def test_pickled_npy_is_refused(iris: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.asarray([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = _run(str(iris), str(tmp_path / "obj.npy"))
    assert code == 1 and "not a readable .npy array" in err


def test_predict_and_serve_never_import_torch(iris: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.asarray(ROWS))
    code = f"""
import sys
from specnet.cli import main
try:
    main(["predict", {str(iris)!r}, {str(tmp_path / 'x.npy')!r}, "-o", {str(tmp_path / 'o.csv')!r}])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
from specnet.serve import create_app
create_app({str(iris)!r})
heavy = sorted(m for m in ("torch", "onnx", "sklearn", "onnxscript") if m in sys.modules)
print("imported:", heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported: []"
    assert (tmp_path / "o.csv").read_text().startswith("label,")


# ---------------------------------------------------------------- stdin, ids, threshold


def _csv_text(names: list[str], rows: list[list[float]], extra: dict[str, list[str]] | None
              = None) -> str:
    extra = extra or {}
    lines = [",".join([*extra, *(f'"{n}"' for n in names)])]
    lines += [",".join([*(v[i] for v in extra.values()), *map(str, r)])
              for i, r in enumerate(rows)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["csv", "json-records", "json-rows", "npy"])
def test_stdin_format_is_told_by_its_content(kind: str, iris: Path, names: list[str],
                                             expected: np.ndarray) -> None:
    if kind == "npy":
        buf = io.BytesIO()
        np.save(buf, np.asarray(ROWS, np.float32))
        stdin: str | bytes = buf.getvalue()
    elif kind == "csv":
        stdin = _csv_text(names, ROWS)
    elif kind == "json-records":
        stdin = "\n  " + json.dumps([dict(zip(names, r, strict=True)) for r in ROWS])
    else:
        stdin = json.dumps({"rows": ROWS})
    result = CliRunner().invoke(main, ["predict", str(iris), "-"], input=stdin)
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(_probs_from_csv(result.stdout)[1], expected, rtol=1e-6)


def test_empty_stdin_is_a_clear_error(iris: Path) -> None:
    code, out, err = _run(str(iris), "-", stdin="  \n")
    assert code == 1 and out == "" and err == "error: <stdin>: no input on stdin\n"


def test_keep_passes_columns_through_first_in_input_order(iris: Path, names: list[str],
                                                          expected: np.ndarray) -> None:
    text = _csv_text(names, ROWS, {"order": ["b", "a", "c"], "shop": ["x", "", "z"]})
    code, out, err = _run(str(iris), "-", "--keep", "shop", "--keep", "order", stdin=text)
    assert code == 0, err
    assert "note" not in err  # kept columns are not 'ignored'
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["order", "shop", "label"]  # the input's order, not the option's
    assert [r[:2] for r in rows[1:]] == [["b", "x"], ["a", ""], ["c", "z"]]
    np.testing.assert_allclose(np.asarray([r[3:] for r in rows[1:]], np.float32), expected,
                               rtol=1e-6)
    # JSON records in, JSON out: the kept values as given.
    records = [{"id": i * 10, **dict(zip(names, r, strict=True))} for i, r in enumerate(ROWS)]
    code, out, err = _run(str(iris), "-", "--keep", "id", "-f", "json",
                          stdin=json.dumps(records))
    assert code == 0, err
    result = json.loads(out)
    assert list(result)[:2] == ["model", "columns"] and result["columns"] == {"id": [0, 10, 20]}


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["--keep", "Shop"], "shop,a\n1,2\n", "missing column 'Shop' (--keep) (did you mean 'shop'?)"),
    (["--keep", "id"], json.dumps({"rows": ROWS}), "JSON rows name no columns, so 'id' "
                                                   "(--keep) cannot be read"),
    (["--keep", "label"], None, "passed-through column(s) 'label' would clash"),
], ids=["missing", "json-rows", "clash"])
def test_keep_errors(iris: Path, names: list[str], args: list[str], stdin: str | None,
                     message: str) -> None:
    text = stdin or _csv_text(names, ROWS, {"label": ["a", "b", "c"]})
    code, out, err = _run(str(iris), "-", *args, stdin=text)
    assert code == 1 and out == "" and message in err, err


def test_id_columns_of_the_metadata_lead_the_output(iris: Path, tmp_path: Path,
                                                    names: list[str],
                                                    expected: np.ndarray) -> None:
    import onnx

    model = onnx.load(str(iris / "model.onnx"))
    columns = [{"name": "customer_id", "type": "categorical", "role": "id", "categories": []},
               *({"name": n, "type": "numeric", "role": "feature", "categories": None}
                 for n in names)]
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                        "specnet.columns": json.dumps(columns)})
    onnx.save(model, str(tmp_path / "m.onnx"))
    text = _csv_text(names, ROWS, {"region": ["n", "s", "e"], "customer_id": ["C2", "C0", "C1"]})
    code, out, err = _run(str(tmp_path / "m.onnx"), "-", stdin=text)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:2] == ["customer_id", "label"]
    assert [r[0] for r in rows[1:]] == ["C2", "C0", "C1"]
    assert "ignoring column(s) the model does not use: 'region'" in err
    # An id column the input lacks is no error: there is nothing to pass through.
    code, out, err = _run(str(tmp_path / "m.onnx"), "-", stdin=_csv_text(names, ROWS))
    assert code == 0 and out.startswith("label,"), err


def test_threshold_moves_the_binary_decision(tmp_path_factory: pytest.TempPathFactory) -> None:
    model = exported("moons", tmp_path_factory)
    rng = np.random.default_rng(3)
    X = rng.uniform(-1.5, 2.5, (200, 2)).astype(np.float32)
    p1 = Runtime(model, threads=1).run(X)
    body = json.dumps({"rows": X.tolist()})
    for threshold in ("0", "0.2", "0.5", "0.8", "1"):
        args = ["--threshold", threshold] if threshold != "0.5" else []
        code, out, err = _run(str(model), "-", *args, stdin=body)
        assert code == 0, err
        labels = [r[0] for r in list(csv.reader(io.StringIO(out)))[1:]]
        assert labels == ["1" if p > float(threshold) else "0" for p in p1], threshold
    assert int(np.sum(p1 > 0.2)) > int(np.sum(p1 > 0.8))  # the cut changed something


@pytest.mark.parametrize(("threshold", "code", "message"), [
    ("1.5", 2, "1.5 is not in the range 0.0<=x<=1.0"),
    ("-0.1", 2, "-0.1 is not in the range 0.0<=x<=1.0"),
], ids=["above", "below"])
def test_threshold_outside_0_1_is_refused(iris: Path, threshold: str, code: int,
                                          message: str) -> None:
    got, _, err = _run(str(iris), "-", "--threshold", threshold, stdin="[[1, 2, 3, 4]]")
    assert got == code and message in err, err


def test_threshold_is_refused_for_a_multiclass_model(iris: Path) -> None:
    code, out, err = _run(str(iris), "-", "--threshold", "0.3", stdin=json.dumps([ROWS[0]]))
    assert code == 1 and out == ""
    assert err == ("error: --threshold applies to binary models only; 'iris' is a "
                   "classification model\n")


# ---------------------------------------------------------------- fast and careful CSV paths


@pytest.mark.parametrize("body", [
    "1,2,3,4\n5.5,6e0, 7 ,+8\n",
    "1,2,3,4\r\n\r\n-0,.5,1.,1E-3\r\n",
    '"1",2,3,"4"\n',
    "1_0,2,3,4\n",  # Python reads it, pyarrow does not: the careful path
], ids=["plain", "crlf-and-blank-line", "quoted", "underscore-digits"])
def test_fast_and_careful_csv_paths_give_the_same_rows(iris: Path, body: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from specnet import columnar
    from specnet.predict import read_csv

    art = Runtime(iris, threads=1).artifact
    text = f"{HEADER}\n{body}"
    fast = read_csv(art, text)
    # Which path ran: the careful one for underscore digits, or where pyarrow cannot load
    # (the serving floors' numpy is older than the one pyarrow was built for).
    assert (columnar.rows(art, text) is None) == ("_" in body or columnar._pyarrow() is None)
    monkeypatch.setattr(columnar, "_pyarrow", lambda: None)  # the base install
    careful = read_csv(art, text)
    np.testing.assert_array_equal(fast, careful)
    assert fast.dtype == careful.dtype == np.float64


@pytest.mark.parametrize("name", [c[0] for c in BAD_INPUTS if c[0].startswith("csv")])
def test_csv_errors_are_the_same_without_pyarrow(iris: Path, tmp_path: Path, name: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from specnet import columnar

    _, file, content, _ = next(c for c in BAD_INPUTS if c[0] == name)
    (tmp_path / file).write_text(content)
    fast = _run(str(iris), str(tmp_path / file))
    monkeypatch.setattr(columnar, "_pyarrow", lambda: None)
    assert _run(str(iris), str(tmp_path / file)) == fast


def test_csv_output_is_each_number_as_float32_text() -> None:
    """to_csv formats columns in bulk; the text is what `str(np.float32(v))` gives each
    value, and the csv module quotes the cells that need it."""
    from specnet.predict import to_csv

    values = np.array([0.39984196, 1e-5, 1e-4, 1 / 3, 123456789.0, 1e16, 0.0, -0.0,
                       np.nan, np.inf, 3.4e38, -2.5e-30], np.float32)
    probs = np.stack([values, 1 - values], axis=1)
    labels = ["a,b", 'say "hi"', "x"] * 4
    kept = {"id": [f"id {i}" for i in range(11)] + [None], "note": ["", " ", "a\nb"] * 4}
    with np.errstate(invalid="ignore", over="ignore"):
        text = to_csv({"labels": labels, "probabilities": probs,
                       "class_labels": ["p", "q"]}, kept)
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["id", "note", "label", "prob_p", "prob_q"]
        assert rows[1:] == [["" if k is None else k, n, lab, str(p), str(q)] for k, n, lab, (p, q)
                            in zip(kept["id"], kept["note"], labels, probs, strict=True)]
        old = io.StringIO()  # the writer as it was: one row, one value at a time
        w = csv.writer(old, lineterminator="\n")
        w.writerow(rows[0])
        w.writerows(["" if k is None else str(k), n, lab, *(str(np.float32(v)) for v in row)]
                    for k, n, lab, row in zip(kept["id"], kept["note"], labels, probs,
                                              strict=True))
        assert text == old.getvalue()
        text = to_csv({"values": values.astype(np.float64).reshape(-1, 2),
                       "target_names": None})
    assert text.splitlines()[0] == "value_0,value_1"
    assert text.splitlines()[1:] == [f"{np.float32(a)!s},{np.float32(b)!s}"
                                     for a, b in values.reshape(-1, 2)]


def test_predict_on_csv_imports_neither_torch_nor_pandas(iris: Path, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text(f"{HEADER}\n1,2,3,4\n")
    code = f"""
import sys
from specnet.cli import main
try:
    main(["predict", {str(iris)!r}, {str(tmp_path / 'x.csv')!r}])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
heavy = sorted(m for m in ("torch", "pandas") if m in sys.modules)
print("imported:", heavy)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "imported: []"
