"""Column types and roles, imputation, one-hot encoding and located data errors on real
CSV / Parquet files; the encoder's ONNX graph against its numpy twin in onnxruntime."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specnet.data import encode
from specnet.data.columns import Column
from specnet.data.prepare import prepare_arrays
from specnet.data.sources import Csv, Parquet
from specnet.data.table import Col, Table, text_col
from specnet.data.tabular import describe, info, load
from specnet.errors import DataError

HEADER = "customer_id,Age,plan,active,signup,income,empty,churn"


def customers(tmp_path: Path, n: int = 60, name: str = "c.csv", seed: int = 0) -> Path:
    """A small messy CSV: a string id, text categories, yes/no, a date, blanks."""
    rng = np.random.default_rng(seed)
    lines = [HEADER]
    for i in range(n):
        plan = ["basic", "pro", "team"][i % 3] if i % 10 != 4 else ""
        income = "" if i % 7 == 3 else f"{40000 + 500 * i}"
        lines.append(f"C{i:04d},{20 + i % 50},{plan},{'yes' if i % 2 else 'no'},"
                     f"2023-01-{1 + i % 28:02d},{income},,{'yes' if rng.random() < 0.4 else 'no'}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def by_name(columns: list[Column]) -> dict[str, Column]:
    return {c.name: c for c in columns}


# ---------------------------------------------------------------- inference


def test_types_and_roles_are_inferred_from_the_whole_file(tmp_path: Path) -> None:
    d = describe(Csv(path=customers(tmp_path), target="churn"))
    got = {c.name: (c.type, c.role, c.why) for c in d.columns}
    assert got == {
        "customer_id": ("categorical", "id", "text distinct on nearly every row"),
        "Age": ("numeric", "feature", ""),
        "plan": ("categorical", "feature", ""),
        "active": ("boolean", "feature", ""),
        "signup": ("datetime", "ignore",
                   "dates are not features; derive a number column to use one"),
        "income": ("numeric", "feature", ""),
        "empty": ("numeric", "ignore", "every value is missing"),
        "churn": ("boolean", "target", ""),
    }
    c = by_name(d.columns)
    assert (c["plan"].missing, c["plan"].distinct) == (6, 3)
    assert c["plan"].categories == ["basic", "pro", "team"]  # most frequent first, ties by name
    table = d.table().splitlines()
    assert table[0].split() == ["column", "type", "role", "missing", "distinct", "example"]
    assert re.match(r"income\s+numeric\s+feature\s+15\.0%\s+51\s+'40000'$", table[6]), table[6]


def test_numeric_ids_by_name_and_spec_overrides(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    rows = ["order_id,zip,notes,x,y"] + [f"{100 + i},{10000 + i % 3},n{i % 4},{i * 0.5},{i % 2}"
                                         for i in range(30)]
    path.write_text("\n".join(rows) + "\n")
    plain = by_name(describe(Csv(path=path, target="y")).columns)
    assert (plain["order_id"].role, plain["zip"].type, plain["notes"].type) == (
        "id", "numeric", "categorical")
    src = Csv.model_validate({"path": path, "target": "y", "columns": {
        "order_id": "feature", "zip": "categorical", "notes": "ignore",
        "x": {"impute": "mean", "missing_indicator": True}}})
    c = by_name(describe(src).columns)
    assert (c["order_id"].role, c["order_id"].why) == ("feature", "set in the spec")
    assert (c["zip"].type, c["zip"].categories) == ("categorical", ["10000", "10001", "10002"])
    assert c["notes"].role == "ignore"
    assert (c["x"].impute, c["x"].missing_indicator) == ("mean", True)
    assert info(src).feature_names == ("order_id", "zip=10000", "zip=10001", "zip=10002",
                                       "zip=<other>", "x", "x_missing")


@pytest.mark.parametrize(("value", "match"), [
    ("idd", r"unknown column setting 'idd' \(did you mean 'id'\?\)"),
    ("target", r"the target is set with `data.target`"),
], ids=["typo", "target"])
def test_bad_column_settings(tmp_path: Path, value: str, match: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=match):
        Csv.model_validate({"path": tmp_path / "x.csv", "target": "y",
                            "columns": {"a": value}})


# ---------------------------------------------------------------- errors


def write(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_bad_cell_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    rows = ["a,b,y"] + [f"{i},{i * 2},{i % 2}" for i in range(40)]
    rows[5] = "4,abc,0"
    rows[9] = "1e39,16,0"   # beyond float32 in a feature
    rows[12] = "\n11,xyz,1"  # a blank line before it: line numbers count it
    rows[20] = "19,38,-1e40"  # beyond float32 in the target
    path = write(tmp_path, "\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        describe(Csv(path=path, target="y"))
    hint = ("is not a number (the column's other values are; mark it `categorical` in "
            "data.columns to read it as text)")
    assert str(err.value).splitlines() == [
        f"{path}: line 6, column 'b': 'abc' {hint}",
        f"{path}: line 10, column 'a': 1e+39 is outside the float32 range (about ±3.4e38)",
        f"{path}: line 14, column 'b': 'xyz' {hint}",
        f"{path}: line 22, column 'y': -1e+40 is outside the float32 range (about ±3.4e38)",
    ]


@pytest.mark.parametrize(("text", "kw", "match"), [
    ("Age,y\n1,0\n2,1\n", {"target": "Y"},
     r"target column 'Y' not found \(did you mean 'y'\?\)"),
    ("Age,y\n1,0\n2,1\n", {"target": "y", "features": ["age"]},
     r"feature column 'age' \(did you mean 'Age'\?\) not found"),
    ("Age,y\n1,0\n2,1\n", {"target": "y", "columns": {"AGE": "id"}},
     r"data.columns names column\(s\) not in the file: 'AGE' \(did you mean 'Age'\?\)"),
    ("a,b,y\n1,2,0\n1,2\n3,4,1\n5\n", {"target": "y"},
     r"line 3: 2 fields, but the header has 3; line 5: 1 fields, but the header has 3"),
    ("a,y\n1,\n2,\n", {"target": "y"}, r"every row's target 'y' is missing"),
    ("id,y\nx1,1\nx2,0\n", {"target": "y", "columns": {"id": "id"}},
     r"no feature columns are left"),
], ids=["target-case", "feature-case", "columns-case", "field-counts", "no-targets",
        "no-features"])
def test_file_errors(tmp_path: Path, text: str, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(DataError, match=match):
        describe(Csv(path=write(tmp_path, text), **kw))


def test_rows_with_a_missing_target_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = ["a,y"] + [f"{i},{'' if i in (3, 8) else i % 2}" for i in range(20)]
    src = Csv(path=write(tmp_path, "\n".join(rows) + "\n"), target="y")
    d = describe(src)
    assert d.notes == ["note: dropped 2 row(s) whose target 'y' is missing (line 5, line 10)"]
    assert len(load(src).y) == 18


# ---------------------------------------------------------------- imputation and encoding


def test_imputation_is_fitted_on_the_training_split_only(tmp_path: Path) -> None:
    src = Csv(path=customers(tmp_path), target="churn")
    arrays = load(src)
    p = prepare_arrays(src, arrays, 0, regression=False)
    assert p.encoder is not None and p.raw is not None
    train = p.raw["train"].columns["income"].values
    assert train is not None
    step = next(s for s in p.encoder.steps if s.name == "income")
    assert step.fill == pytest.approx(np.nanmedian(train))
    whole = arrays.extra["table"].columns["income"].values
    assert step.fill != pytest.approx(np.nanmedian(whole))  # not the whole file's median
    assert p.feature_names == ["Age", "plan=basic", "plan=pro", "plan=team", "plan=<missing>",
                               "plan=<other>", "active", "income"]
    assert p.X_train.shape == (len(p.raw["train"]), 8)


@pytest.mark.parametrize(("impute", "fill"), [("mean", 2.0), ("constant", -1.0),
                                              ("median", 1.5)])
def test_impute_modes_and_missing_indicator(impute: str, fill: float) -> None:
    col = Column("x", "numeric", "feature", Col("number", values=np.array([1.0, 2, np.nan, 3.0])),
                 4, 1, 3, "1", impute=impute, fill_value=-1.0, missing_indicator=True)
    table = Table({"x": col.col})
    enc = encode.fit([col], table[np.array([0, 2, 3, 1])] if impute != "median" else
                     table[np.array([0, 1, 2])])
    assert enc.steps[0].fill == fill
    X = enc.transform(table)
    assert X.tolist() == [[1, 0], [2, 0], [fill, 1], [3, 0]]


def test_category_cap_missing_slot_and_unseen_categories() -> None:
    words = ["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"] + [""]
    col = Column("k", "categorical", "feature", text_col(words), 13, 1, 4, "a",
                 max_categories=2, categories=["a", "b"])
    enc = encode.fit([col], Table({"k": col.col}))
    assert enc.feature_names == ["k=a", "k=b", "k=<missing>", "k=<other>"]
    X = enc.transform(Table({"k": text_col(["b", "c", "", "never seen", "a"])}))
    assert X.argmax(axis=1).tolist() == [1, 3, 2, 3, 0]
    assert X.sum(axis=1).tolist() == [1.0] * 5


def test_encoder_graph_matches_numpy_in_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime as ort

    src = Csv(path=customers(tmp_path), target="churn")
    p = prepare_arrays(src, load(src), 0, regression=False)
    assert p.encoder is not None
    model = encode.graph(p.encoder, 20, "features")
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("Age", "tensor(float)"), ("plan", "tensor(string)"), ("active", "tensor(float)"),
        ("income", "tensor(float)")]
    raw = Table({"Age": Col("number", values=np.array([30.0, np.nan, 1e6, 41])),
                 "plan": text_col(["pro", "", "enterprise", "NA"]),
                 "active": Col("bool", values=np.array([1.0, 0.0, np.nan, 1.0])),
                 "income": Col("number", values=np.array([np.nan, 5e4, 0.0, np.nan]))})
    got = session.run(None, encode.feed(p.encoder, raw))[0]
    want = p.encoder.transform(raw)
    np.testing.assert_array_equal(got, want)
    assert got[:, 1:6].argmax(axis=1).tolist() == [1, 3, 4, 3]  # pro, <missing>, <other>, NA


# ---------------------------------------------------------------- parquet and legacy


def test_parquet_reads_like_the_same_csv(tmp_path: Path) -> None:
    import pyarrow.csv
    import pyarrow.parquet

    path = customers(tmp_path)
    pyarrow.parquet.write_table(pyarrow.csv.read_csv(path), tmp_path / "c.parquet")
    a = load(Csv(path=path, target="churn"))
    b = load(Parquet(path=tmp_path / "c.parquet", target="churn"))
    assert a.feature_names == b.feature_names and a.class_labels == b.class_labels
    np.testing.assert_array_equal(a.y, b.y)
    with pytest.raises(DataError, match=r"c.parquet: target column 'Churn' not found "
                                        r"\(did you mean 'churn'\?\)"):
        describe(Parquet(path=tmp_path / "c.parquet", target="Churn"))


def test_all_numeric_files_without_blanks_keep_the_float_matrix(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,y\n" + "".join(f"{i},{i / 2},{i % 2}\n" for i in range(10)))
    arrays = load(Csv(path=path, target="y"))
    assert arrays.X.shape == (10, 2) and "table" not in arrays.extra
    assert [c.meta() for c in arrays.extra["columns"]] == [
        {"name": "a", "type": "numeric", "role": "feature"},
        {"name": "b", "type": "numeric", "role": "feature"},
        {"name": "y", "type": "numeric", "role": "target"}]
