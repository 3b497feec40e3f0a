"""A messy CSV (ids, text categories, blanks, a date) from spec to raw-row predictions:
`specnet build` with nothing but path and target, the exported model's raw-column inputs
and metadata, `specnet predict` on CSV / JSON rows with blanks and unseen categories,
`specnet inspect`, and the regression / baseline checks at the end of training."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specnet.artifact import Artifact
from specnet.cli import main
from specnet.errors import ModelInputError
from specnet.runtime import Runtime, feed_from_records

SPEC = """\
name: cust
task: binary
data: {source: csv, path: c.csv, target: churn}
model: [{linear: 8}, relu, {linear: 1}]
optimizer: {type: adam, lr: 0.01}
training: {epochs: 3, batch_size: 16}
"""


def customers(folder: Path, n: int = 90) -> Path:
    rng = np.random.default_rng(1)
    lines = ["customer_id,Age,plan,active,signup,income,churn"]
    for i in range(n):
        plan = ["basic", "pro", "team"][i % 3] if i % 11 != 5 else ""
        income = "" if i % 7 == 3 else f"{30000 + 700 * i}"
        churn = "yes" if (plan == "basic") ^ (rng.random() < 0.15) else "no"
        lines.append(f"C{i:04d},{20 + i % 50},{plan},{'yes' if i % 2 else 'no'},"
                     f"2023-02-{1 + i % 28:02d},{income},{churn}")
    path = folder / "c.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small build of the customers CSV: the export folder."""
    import torch
    from click.testing import CliRunner

    folder = tmp_path_factory.mktemp("tabular")
    customers(folder)
    (folder / "spec.yaml").write_text(SPEC, encoding="utf-8")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(main, ["build", str(folder / "spec.yaml"), "-o",
                                           str(folder / "out")])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    assert re.search(r"customer_id\s+categorical\s+id \(text distinct on nearly every row\)",
                     result.output), result.output
    assert re.search(r"signup\s+datetime\s+ignore \(dates are not features", result.output)
    assert "verified: onnxruntime matches torch" in result.output
    return folder


def test_the_model_takes_raw_columns_and_says_so(built: Path) -> None:
    rt = Runtime(built / "out")
    art = rt.artifact
    assert art.input_layout == "columns"
    assert [(i.name, i.type, i.shape) for i in rt.session.get_inputs()] == [
        ("Age", "tensor(float)", ["batch", 1]), ("plan", "tensor(string)", ["batch", 1]),
        ("active", "tensor(float)", ["batch", 1]), ("income", "tensor(float)", ["batch", 1])]
    meta = rt.session.get_modelmeta().custom_metadata_map
    assert meta["specnet.input_layout"] == "columns"
    assert json.loads(meta["specnet.columns"]) == art.columns == [
        {"name": "customer_id", "type": "categorical", "role": "id"},
        {"name": "Age", "type": "numeric", "role": "feature"},
        {"name": "plan", "type": "categorical", "role": "feature",
         "categories": ["basic", "pro", "team"]},
        {"name": "active", "type": "boolean", "role": "feature"},
        {"name": "signup", "type": "datetime", "role": "ignore"},
        {"name": "income", "type": "numeric", "role": "feature"},
        {"name": "churn", "type": "boolean", "role": "target"}]
    assert art.describe()["inputs"][1] == {"name": "plan", "datatype": "BYTES",
                                           "shape": [-1, 1]}
    report = json.loads((built / "out" / "verification.json").read_text())
    assert set(report["data"]) == {"test", "random"} and report["passed"] is True


def test_predict_raw_csv_rows_with_blanks_and_unseen_categories(built: Path,
                                                                runner: Any) -> None:
    rows = built / "new.csv"
    rows.write_text("customer_id,Age,plan,active,signup,income,extra\n"
                    "X1,30,basic,yes,2024-01-01,,1\n"
                    "X2,,enterprise,NO,,50000,2\n"
                    "X3,55,,,,NA,3\n", encoding="utf-8")
    result = runner.invoke(main, ["predict", str(built / "out"), str(rows)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if not ln.startswith("note")]
    # The id column leads the output, in input order (specnet.columns marks it an id).
    assert lines[0] == "customer_id,label,prob_no,prob_yes" and len(lines) == 4
    assert [ln.split(",")[0] for ln in lines[1:]] == ["X1", "X2", "X3"]
    assert "note: ignoring column(s) the model does not use: 'extra'" in result.output
    # The same rows through the runtime layer serve will call (JSON records with nulls).
    rt = Runtime(built / "out")
    feed = feed_from_records(rt.artifact, [
        {"Age": 30, "plan": "basic", "active": True, "income": None},
        {"Age": None, "plan": "enterprise", "active": "NO", "income": "50000"},
        {"Age": "55", "plan": None, "active": None, "income": "NA"}])
    probs = rt.run_feed(feed)
    from_csv = np.array([[float(v) for v in ln.split(",")[3:]] for ln in lines[1:]])
    np.testing.assert_allclose(probs, from_csv[:, 0], rtol=1e-6)


@pytest.mark.parametrize(("records", "message"), [
    ([{"age": 3, "plan": "a", "active": 1, "income": 2}],
     "row 1: missing column(s) 'Age' (did you mean 'age'?); the model needs 'Age', 'plan', "
     "'active', 'income' (null for a blank)"),
    ([{"Age": "x", "plan": [1], "active": "maybe", "income": 1e39}],
     "row 1, column 'Age': 'x' is not a number\n"
     "row 1, column 'plan': expected text or a number, got list\n"
     "row 1, column 'active': 'maybe' is not true/false (or yes/no, 1/0)\n"
     "row 1, column 'income': 1e+39 is outside the float32 range (about ±3.4e38)"),
], ids=["case-did-you-mean", "every-bad-value"])
def test_bad_raw_records(built: Path, records: list[dict[str, Any]], message: str) -> None:
    art = Runtime(built / "out").artifact
    with pytest.raises(ModelInputError) as err:
        feed_from_records(art, records)
    assert str(err.value) == message


def test_predict_names_the_line_of_a_bad_cell(built: Path, runner: Any) -> None:
    rows = built / "bad.csv"
    rows.write_text("Age,plan,active,income\n30,basic,yes,1\n31,pro,no,1e39\n", "utf-8")
    result = runner.invoke(main, ["predict", str(built / "out"), str(rows)])
    assert result.exit_code == 1
    assert (f"error: {rows}: line 3 (row 2), column 'income': 1e+39 is outside the float32 "
            "range (about ±3.4e38)") in result.output


def test_inspect_prints_the_table_and_a_spec_that_validates(tmp_path: Path,
                                                            runner: Any) -> None:
    customers(tmp_path)
    result = runner.invoke(main, ["inspect", str(tmp_path / "c.csv")])
    assert result.exit_code == 0, result.output
    spec = result.stdout
    assert "task: binary" in spec and "target: \"churn\"" in spec
    assert re.search(r"plan\s+categorical\s+feature\s+", result.stderr)
    (tmp_path / "s.yaml").write_text(spec, encoding="utf-8")
    ok = runner.invoke(main, ["validate", str(tmp_path / "s.yaml")])
    assert ok.exit_code == 0 and "input [8] -> output [1]" in ok.output, ok.output


def test_regression_targets_standardise_by_default_and_baselines_warn(
        tmp_path: Path, one_torch_thread: None) -> None:
    from specnet.baseline import baseline_warning, units_note
    from specnet.spec.validate import load_spec
    from specnet.trainer import train

    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    lines = ["x,noise,price"] + [f"{a:.4f},{rng.normal():.4f},{300000 + 50000 * a:.0f}"
                                 for a in x]
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = tmp_path / "r.yaml"
    spec.write_text("name: r\ntask: regression\ndata: {source: csv, path: p.csv, target: price}\n"
                    "model: [{linear: 1}]\noptimizer: {type: adam, lr: 0.05}\n"
                    "training: {epochs: 40, batch_size: 32}\n", encoding="utf-8")
    run = train(load_spec(spec).spec)  # target_normalize: auto
    assert run.prepared.y_scaler is not None and run.prepared.y_scaler.kind == "standard"
    assert units_note(run) == " (loss on standardised targets; other figures in target units)"
    assert baseline_warning(run) is None
    # Raw targets around 300,000 left unscaled (the case): far worse than the mean.
    spec.write_text(spec.read_text().replace("target: price}", "target: price, "
                                             "target_normalize: none}")
                    .replace("epochs: 40", "epochs: 1"), encoding="utf-8")
    run = train(load_spec(spec).spec)
    assert units_note(run) == " (all figures in target units)"
    warning = baseline_warning(run)
    assert warning is not None and re.match(
        r"warning: the model does worse than predicting the training mean on the test split "
        r"\(MSE [0-9.e+]+ vs [0-9.e+]+, target units\); check data.target_normalize", warning
    ), warning


def test_a_classifier_no_better_than_the_majority_class_warns(
        tmp_path: Path, one_torch_thread: None) -> None:
    from specnet.baseline import baseline_warning
    from specnet.spec.validate import load_spec
    from specnet.trainer import train

    rng = np.random.default_rng(0)
    lines = ["a,b,y"] + [f"{rng.normal():.3f},{rng.normal():.3f},{'no' if i % 5 else 'yes'}"
                         for i in range(100)]
    (tmp_path / "n.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = tmp_path / "n.yaml"
    spec.write_text("name: n\ntask: binary\ndata: {source: csv, path: n.csv, target: y}\n"
                    "model: [{linear: 1}]\noptimizer: {type: sgd, lr: 0.000001}\n"
                    "training: {epochs: 1, batch_size: 32}\n", encoding="utf-8")
    warning = baseline_warning(train(load_spec(spec).spec))
    assert warning is not None and warning.startswith(
        "warning: the model is no better than always predicting the most frequent class "
        "'no' on the test split"), warning


def test_artifact_metadata_round_trip_of_columns() -> None:
    from specnet.artifact import from_metadata, metadata_props

    art = Artifact(path=Path("m.onnx"), name="m", task="binary", feature_names=["a", "k"],
                   class_labels=["0", "1"], input_shape=(2,), output_shape=(),
                   columns=[{"name": "a", "type": "numeric", "role": "feature"},
                            {"name": "k", "type": "categorical", "role": "feature",
                             "categories": ["x"]}], input_layout="columns")
    back = from_metadata(Path("m.onnx"), metadata_props(art))
    assert back.columns == art.columns and back.input_layout == "columns"
    assert back.input_types() == {"a": "FP32", "k": "BYTES"}


RECORDS = [{"Age": 31, "plan": "basic", "active": "yes", "income": None},
           {"Age": 44, "plan": "enterprise", "active": False, "income": 52000}]


def _column_inputs(infer_input: Any) -> list[Any]:
    """RECORDS as one tritonclient InferInput per column (http or grpc's class)."""
    columns = {"Age": np.array([[31.0], [44.0]], np.float32),
               "plan": np.array([[b"basic"], [b"enterprise"]], dtype=object),
               "active": np.array([[1.0], [0.0]], np.float32),
               "income": np.array([[np.nan], [52000.0]], np.float32)}
    inputs = []
    for name, arr in columns.items():
        tensor = infer_input(name, list(arr.shape), "BYTES" if arr.dtype == object else "FP32")
        tensor.set_data_from_numpy(arr)
        inputs.append(tensor)
    return inputs


def test_serve_takes_raw_records_and_bytes_tensors(built: Path) -> None:
    """`specnet serve` of a raw-column model: /predict records with text and nulls, and
    tritonclient.http (default binary tensors) with one BYTES / FP32 tensor per column."""
    import httpx
    import tritonclient.http as httpclient
    from _server import start

    records = RECORDS
    from specnet.runtime import dumps, predictions

    rt = Runtime(built / "out")
    want = rt.run_feed(feed_from_records(rt.artifact, records))
    expected = json.loads(dumps({"model": "cust", **predictions(rt.artifact, want)}))
    server = start(built / "out")
    try:
        got = httpx.post(f"{server.url}/predict", json={"records": records}, timeout=30)
        assert got.status_code == 200, got.text
        assert got.json() == expected
        rows = httpx.post(f"{server.url}/predict", json={"rows": [[1, 2, 3, 4]]}, timeout=30)
        assert rows.status_code == 400 and "send 'records'" in rows.json()["error"]

        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        meta = client.get_model_metadata("cust")
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("Age", "FP32"), ("plan", "BYTES"), ("active", "FP32"), ("income", "FP32")]
        inputs = _column_inputs(httpclient.InferInput)
        result = client.infer("cust", inputs)
        np.testing.assert_allclose(result.as_numpy(meta["outputs"][0]["name"]).reshape(-1),
                                   want.reshape(-1), rtol=1e-6)
        client.close()
    finally:
        server.stop()


# ---------------------------------------------------------------- fast and careful CSV paths

FAST_CSV = [
    # (id, text after the header "customer_id,Age,plan,active,income,extra")
    ("plain", "C1,30,basic,yes,100,a\nC2,41,pro,no,2.5e4,b\n"),
    ("blank-words-any-case", 'C1, NA ,N/A,Null,nan,\nC2,?,"",NONE,-NaN,\nC3,,none,,#N/A,\n'),
    ("spaces-and-quotes", 'C1, 3e1 ," te,am ",  True ,  -0 ,"x ""y"""\n'),
    ("unseen-and-numbers-as-text", "C1,1.,enterprise,1,.5,\nC2,+2,42,0.0,1E3,\n"),
    ("blank-lines-and-crlf", "C1,30,basic,yes,1,\r\n\r\nC2,31,pro,no,2,\r\n"),
    ("a-row-of-blanks", "C1,30,basic,yes,1,\n,,,,,\n"),
    ("underscore-digits", "C1,1_000,basic,yes,1,\n"),  # Python reads it, pyarrow does not
]


def _feeds_agree(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].shape == b[name].shape and a[name].dtype == b[name].dtype, name
        if a[name].dtype == object:
            assert a[name].tolist() == b[name].tolist(), name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("body", [c[1] for c in FAST_CSV], ids=[c[0] for c in FAST_CSV])
def test_fast_and_careful_csv_paths_give_the_same_feed(built: Path, body: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from specnet import columnar
    from specnet.passthrough import read_columns
    from specnet.predict import Input, feed_rows

    art = Runtime(built / "out").artifact
    src = Input("x.csv", "csv", text="customer_id,Age,plan,active,income,extra\n" + body)
    fast, ids = feed_rows(art, src), read_columns(src, ["customer_id", "extra"])
    if "_" not in body and columnar._pyarrow() is not None:  # the fast path took it
        # (underscore digits are the careful path's)
        assert columnar.feed(art, src.text) is not None
    monkeypatch.setattr(columnar, "_pyarrow", lambda: None)  # the base install
    _feeds_agree(fast, feed_rows(art, src))
    assert ids == read_columns(src, ["customer_id", "extra"])


BAD_CSV = [
    ("short-line", "Age,plan,active,income\n30,basic,yes,1\n31,pro\n",
     "line 3 (row 2): 2 fields, the header has 4"),
    ("bad-cells", "Age,plan,active,income\n30,basic,maybe,1\n\nx,pro,no,inf\n",
     "line 4 (row 2), column 'Age': 'x' is not a number\n"  # every problem, column by column
     "x.csv: line 2 (row 1), column 'active': 'maybe' is not true/false (or yes/no, 1/0)\n"
     "x.csv: line 4 (row 2), column 'income': inf is not a finite number"),
    ("beyond-float32", "Age,plan,active,income\n30,basic,yes,-1e39\n",
     "line 2 (row 1), column 'income': -1e+39 is outside the float32 range"),
    ("missing-column", "age,plan,active,income\n30,basic,yes,1\n", "missing column(s) 'Age'"),
    ("header-only", "Age,plan,active,income\n", "no data rows after the header"),
    ("empty", "\n", "empty CSV"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD_CSV],
                         ids=[c[0] for c in BAD_CSV])
def test_csv_errors_are_the_same_with_and_without_pyarrow(
        built: Path, text: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from specnet import columnar
    from specnet.predict import Input, feed_rows

    art = Runtime(built / "out").artifact
    src = Input("x.csv", "csv", text=text)
    with pytest.raises(ModelInputError) as fast:
        feed_rows(art, src)
    monkeypatch.setattr(columnar, "_pyarrow", lambda: None)
    with pytest.raises(ModelInputError) as careful:
        feed_rows(art, src)
    assert str(fast.value) == str(careful.value)
    assert str(fast.value).startswith("x.csv: ") and message in str(fast.value)


def test_grpc_takes_one_tensor_per_column(built: Path) -> None:
    """The gRPC server decodes with the same protocol core as HTTP: a raw-column model
    takes one tensor per column (BYTES for text) from tritonclient.grpc's defaults."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from specnet.serve.grpc import serve_model

    records = RECORDS
    rt = Runtime(built / "out")
    want = rt.run_feed(feed_from_records(rt.artifact, records))
    server = serve_model(built / "out", port=0, threads=1)
    try:
        with grpcclient.InferenceServerClient(f"127.0.0.1:{server.port}") as client:
            meta = client.get_model_metadata("cust", as_json=True)
            assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
                ("Age", "FP32"), ("plan", "BYTES"), ("active", "FP32"), ("income", "FP32")]
            inputs = _column_inputs(grpcclient.InferInput)
            result = client.infer("cust", inputs)
            out = result.as_numpy(meta["outputs"][0]["name"])
            np.testing.assert_allclose(out.reshape(-1), want.reshape(-1), rtol=1e-6)
            with pytest.raises(InferenceServerException, match="missing input tensor"):
                client.infer("cust", inputs[:2])
    finally:
        server.stop(grace=1)


def test_triton_export_of_a_raw_column_model(built: Path, tmp_path: Path) -> None:
    """`--target triton` of a raw-column model: one [N, 1] input per feature column, FP32
    or STRING (text), in a config.pbtxt that Triton's own model_config.proto parses and
    that matches the ONNX graph as the onnx package reads it."""
    import onnx
    from click.testing import CliRunner
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    repo = tmp_path / "repo"
    result = CliRunner().invoke(main, ["export", str(built / "out"), "--target", "triton",
                                       "-o", str(repo)])
    assert result.exit_code == 0, result.output
    config = text_format.Parse((repo / "cust" / "config.pbtxt").read_text("utf-8"),
                               model_config_pb2.ModelConfig())
    graph = onnx.load(str(repo / "cust" / "1" / "model.onnx")).graph
    onnx_types = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.STRING: "TYPE_STRING"}
    want = [(v.name, onnx_types[v.type.tensor_type.elem_type],
             [d.dim_value for d in v.type.tensor_type.shape.dim[1:]]) for v in graph.input]
    got = [(t.name, model_config_pb2.DataType.Name(t.data_type), list(t.dims))
           for t in config.input]
    assert got == want
    assert got == [("Age", "TYPE_FP32", [1]), ("plan", "TYPE_STRING", [1]),
                   ("active", "TYPE_FP32", [1]), ("income", "TYPE_FP32", [1])]
    art = Runtime(built / "out").artifact
    assert {n: t for n, t, _ in got} == {
        n: {"FP32": "TYPE_FP32", "BYTES": "TYPE_STRING"}[t] for n, t in art.input_types().items()}
    assert [(o.name, list(o.dims)) for o in config.output] == [
        (graph.output[0].name, [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim[1:]]
         or [1])]
    assert config.max_batch_size >= 1 and config.HasField("dynamic_batching")


def test_openapi_of_a_raw_column_model_names_and_types_its_columns(built: Path,
                                                                   tmp_path: Path) -> None:
    """/openapi.json of a raw-column model: /predict takes records with every column,
    typed as specnet reads it; v2 infer one tensor per column; schemathesis (all checks)
    finds nothing against it."""
    import httpx
    from _server import schemathesis, start

    server = start(built / "out", "--threads", "1", "--max-rows", "50")
    try:
        doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
        body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
        record = body["schema"]["properties"]["records"]["items"]
        assert record["required"] == ["Age", "plan", "active", "income"]
        cells = record["properties"]
        assert cells["plan"]["type"] == ["string", "number", "boolean", "null"]
        assert "'basic'" in cells["plan"]["description"]
        assert {"type": "boolean"} in cells["active"]["anyOf"]
        assert {"type": "null"} in cells["income"]["anyOf"]
        assert any(c.get("type") == "number" for c in cells["Age"]["anyOf"])
        infer = doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
        tensor = infer["application/json"]["schema"]["properties"]["inputs"]["items"]
        assert tensor["properties"]["name"]["enum"] == ["Age", "plan", "active", "income"]
        assert "BYTES" in tensor["properties"]["datatype"]["enum"]
        # a list in a cell is a 400 naming it (it used to reach onnxruntime: a 500)
        for column, cell in (("income", [None, None]), ("plan", ["a", "b"]),
                             ("active", ["yes", 1])):
            record = {**RECORDS[0], column: cell}
            r = httpx.post(server.url + "/predict", json={"records": [record, RECORDS[1]]},
                           timeout=30)
            assert r.status_code == 400, r.text
            assert f"row 1, column {column!r}: expected" in r.json()["error"]
        schemathesis(server.url, tmp_path)
    finally:
        server.stop()
