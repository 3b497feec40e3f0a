"""`specnet evaluate`: real exported models scored through onnxruntime, every number
checked against sklearn.metrics computed here, the figures opened as images."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _exports import exported, trained
from click.testing import CliRunner
from PIL import Image
from sklearn import metrics as skm

from specnet.cli import main
from specnet.evaluate import calibration, summary
from specnet.runtime import Runtime

IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("iris", tmp_path_factory)


@pytest.fixture(scope="session")
def moons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("moons", tmp_path_factory)


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return exported("diabetes", tmp_path_factory)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _iris_rows() -> tuple[list[str], np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    d = load_iris()
    return list(d.feature_names), d.data, d.target


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["evaluate", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def _is_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_classification_report_matches_sklearn(iris: Path, tmp_path: Path) -> None:
    names, X, y = _iris_rows()
    # Columns in another order, an id column, the label as text; every 3rd row only.
    X, y = X[::3], y[::3]
    header = ["id", "target", *names[::-1]]
    rows = [[f"F{i}", IRIS_CLASSES[t], *x[::-1]] for i, (x, t) in enumerate(zip(X, y,
                                                                              strict=True))]
    data = _write_csv(tmp_path / "labelled.csv", header, rows)
    code, out, err = _run(str(iris), str(data), "-o", str(tmp_path / "ev"))
    assert code == 0, err
    assert "note: ignoring column(s) the model does not use: 'id'" in err  # not the target

    probs = Runtime(iris, threads=1).run(X.astype(np.float32)).astype(np.float64)
    pred = probs.argmax(axis=1)
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["labels"] == IRIS_CLASSES and report["n_rows"] == len(y) == 50
    assert report["target"] == "target"
    m = report["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    # float32 softmax rows sum to 1 within 1e-7; log loss by its definition:
    log_loss = -np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-15, 1.0)))
    assert m["log_loss"] == pytest.approx(log_loss, rel=1e-5)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"))
    assert report["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    expected = skm.classification_report(y, pred, target_names=IRIS_CLASSES,
                                         output_dict=True, zero_division=0)
    for c, label in enumerate(IRIS_CLASSES):
        got, want = report["per_class"][label], expected[label]
        assert got["precision"] == pytest.approx(want["precision"])
        assert got["recall"] == pytest.approx(want["recall"])
        assert got["f1"] == pytest.approx(want["f1-score"])
        assert got["support"] == int(want["support"]) == int(np.sum(y == c))
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y == c, probs[:, c]))
        assert got["average_precision"] == pytest.approx(
            skm.average_precision_score(y == c, probs[:, c]))
    # Calibration: top-label confidence vs correctness in 10 equal bins; ECE by hand.
    conf, hit = probs.max(axis=1), (pred == y).astype(float)
    bins = np.minimum((conf * 10).astype(int), 9)
    ece = sum(np.sum(bins == b) / len(y) * abs(hit[bins == b].mean() - conf[bins == b].mean())
              for b in range(10) if np.any(bins == b))
    assert m["ece"] == pytest.approx(ece, abs=1e-9)
    assert report["calibration"]["kind"] == "top label"
    # The printed summary: the metrics, the per-class table, the confusion matrix.
    assert out.startswith("evaluated iris (classification) on ")
    assert f"accuracy {m['accuracy']:.4f}" in out
    cm = report["confusion_matrix"]
    for label, row in zip(IRIS_CLASSES, cm, strict=True):
        assert any(line.split() == [label, *map(str, row)] for line in out.splitlines())
    files = ["evaluation.json", "confusion_matrix.png", "roc_curve.png",
             "precision_recall_curve.png", "calibration_curve.png"]
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == sorted(files)
    assert report["files"] == files
    for name in files[1:]:
        width, height = _is_png(tmp_path / "ev" / name)
        assert width > 300 and height > 300


def test_binary_threshold_and_calibration_match_sklearn(moons: Path, tmp_path: Path) -> None:
    from sklearn.calibration import calibration_curve  # only here, to check ours
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=120, noise=0.3, random_state=5)
    records = [{"x0": float(a), "x1": float(b), "target": int(t)} for (a, b), t in
               zip(X, y, strict=True)]
    path = tmp_path / "moons.json"
    path.write_text(json.dumps({"records": records}))
    code, out, err = _run(str(moons), str(path), "--threshold", "0.3", "-o",
                          str(tmp_path / "ev"))
    assert code == 0, err
    p1 = Runtime(moons, threads=1).run(X.astype(np.float32)).astype(np.float64)
    pred = (p1 > 0.3).astype(int)
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["threshold"] == 0.3 and "threshold 0.3" in out.splitlines()[0]
    m = report["metrics"]
    assert pred.sum() != (p1 > 0.5).sum()  # the threshold matters on this data
    assert report["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert report["per_class"]["1"]["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, p1))
    observed, predicted = calibration_curve(y, p1, n_bins=10, strategy="uniform")
    cal = report["calibration"]
    np.testing.assert_allclose(cal["observed"], observed)
    np.testing.assert_allclose(cal["predicted"], predicted)
    assert cal["kind"] == "P(1)" and sum(cal["count"]) == len(y)
    gaps = np.abs(np.asarray(cal["observed"]) - cal["predicted"])
    assert m["ece"] == pytest.approx(float(np.sum(np.asarray(cal["count"]) / len(y) * gaps)))
    for name in report["files"][1:]:
        _is_png(tmp_path / "ev" / name)


def test_regression_matches_sklearn(diabetes: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    X, y = d.data[:60], d.target[:60]
    data = _write_csv(tmp_path / "d.csv", [*d.feature_names, "target"],
                      [[*x, t] for x, t in zip(X, y, strict=True)])
    code, out, err = _run(str(diabetes), str(data), "-o", str(tmp_path / "ev"))
    assert code == 0, err
    pred = Runtime(diabetes, threads=1).run(X.astype(np.float32)).astype(np.float64)[:, 0]
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    m = report["metrics"]
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert report["per_target"]["target"]["r2"] == pytest.approx(m["r2"])
    assert report["files"] == ["evaluation.json", "residuals.png", "predicted_vs_true.png"]
    for name in report["files"][1:]:
        _is_png(tmp_path / "ev" / name)
    assert f"rmse {m['rmse']:.4f}" in out and "target" in out


def test_export_writes_the_test_split_evaluation(iris: Path) -> None:
    # `build` and `export` share export_run: the artifact carries the test split's scores.
    report = json.loads((iris / "evaluation.json").read_text())
    assert report["data"] == "test split"
    prepared = trained("iris").prepared
    X = prepared.x_scaler.inverse(prepared.X_test)
    pred = Runtime(iris, threads=1).run(X).argmax(axis=1)
    assert report["n_rows"] == len(prepared.y_test)
    assert report["confusion_matrix"] == skm.confusion_matrix(
        prepared.y_test, pred, labels=[0, 1, 2]).tolist()
    metrics = json.loads((iris / "metrics.json").read_text())["test"]
    assert report["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"])
    for name in report["files"][1:]:
        _is_png(iris / name)


def test_calibration_bins_match_sklearn() -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(0)
    p = rng.random(500)
    p[:5] = [0.0, 0.1, 0.5, 0.9, 1.0]  # bin edges go where sklearn puts them
    y = (rng.random(500) < p).astype(float)
    got = calibration(y, p)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(got["observed"], observed)
    np.testing.assert_allclose(got["predicted"], predicted)


HEADER = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROW = [5.1, 3.5, 1.4, 0.2]
BAD = [
    # (id, file name, content, extra args, message)
    ("no-target", "a.csv", ",".join(HEADER) + "\n5.1,3.5,1.4,0.2\n", [],
     "missing column 'target' (the target); the file has: 'sepal length (cm)'"),
    ("target-case", "a.csv", ",".join([*HEADER, "Target"]) + "\n5.1,3.5,1.4,0.2,setosa\n", [],
     "missing column 'target' (the target) (did you mean 'Target'?)"),
    ("unknown-label", "a.csv", ",".join([*HEADER, "target"]) + "\n"
     + "5.1,3.5,1.4,0.2,setosa\n5.1,3.5,1.4,0.2,setosaa\n5.1,3.5,1.4,0.2,rose\n", [],
     "column 'target' (the target): label(s) the model does not know: 'setosaa' (row 2) "
     "(did you mean 'setosa'?); 'rose' (row 3); the model's classes are 'setosa', "),
    ("missing-label", "a.csv", ",".join([*HEADER, "target"]) + "\n5.1,3.5,1.4,0.2,\n", [],
     "row 1, column 'target' (the target): missing label"),
    ("json-rows", "a.json", json.dumps({"rows": [ROW]}), [],
     "JSON rows name no columns, so 'target' (the target) cannot be read"),
    ("wrong-target-option", "a.csv", ",".join([*HEADER, "species"]) + "\n5.1,3.5,1.4,0.2,x\n",
     ["--target", "specie"], "missing column 'specie' (the target) (did you mean 'species'?)"),
    ("threshold-multiclass", "a.csv", ",".join([*HEADER, "target"]) + "\n5.1,3.5,1.4,0.2,x\n",
     ["--threshold", "0.4"], "--threshold applies to binary models only; 'iris' is a "
                             "classification model"),
    ("bad-feature", "a.csv", ",".join([*HEADER, "target"]) + "\n5.1,x,1.4,0.2,setosa\n", [],
     "line 2 (row 1), column 'sepal width (cm)': 'x' is not a number"),
]


@pytest.mark.parametrize(("name", "content", "args", "message"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_input_is_a_clear_error(iris: Path, tmp_path: Path, name: str, content: str,
                                    args: list[str], message: str) -> None:
    (tmp_path / name).write_text(content)
    code, out, err = _run(str(iris), str(tmp_path / name), *args, "-o", str(tmp_path / "ev"))
    assert code == 1 and out == "", err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "ev").exists()
    if "--threshold" not in args:
        assert err.startswith(f"error: {tmp_path / name}: "), err


def test_regression_target_must_be_numbers(diabetes: Path, tmp_path: Path) -> None:
    names = Runtime(diabetes, threads=1).artifact.feature_names
    data = _write_csv(tmp_path / "d.csv", [*names, "target"],
                      [[0.0] * 10 + [100], [0.0] * 10 + ["n/a"]])
    code, _, err = _run(str(diabetes), str(data))
    assert code == 1
    assert f"error: {data}: row 2, column 'target' (the target): 'n/a' is not a finite " \
           "number" in err


def test_stdin_and_default_folder(iris: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    records = [{**dict(zip(HEADER, ROW, strict=True)), "target": "setosa"}]
    code, out, err = _run(str(iris), "-", stdin=json.dumps(records))
    assert code == 0, err
    report = json.loads((tmp_path / "evaluations" / "iris" / "evaluation.json").read_text())
    assert report["data"] == "<stdin>" and report["n_rows"] == 1
    assert report["per_class"]["versicolor"]["roc_auc"] is None  # one class: undefined
    assert summary(report) == out
    # Run again: the folder is specnet's own, so it is replaced; a stranger's file is not.
    (tmp_path / "evaluations" / "iris" / "notes.txt").write_text("mine")
    code, _, err = _run(str(iris), "-", stdin=json.dumps(records))
    assert code == 1 and "holds files that are not part of a specnet evaluation" in err


def test_evaluate_never_imports_torch(iris: Path, tmp_path: Path) -> None:
    names, X, y = _iris_rows()
    data = _write_csv(tmp_path / "l.csv", [*names, "target"],
                      [[*x, IRIS_CLASSES[t]] for x, t in zip(X[:9], y[:9], strict=True)])
    code = f"""
import sys
from specnet.cli import main
try:
    main(["evaluate", {str(iris)!r}, {str(data)!r}, "-o", {str(tmp_path / 'ev')!r}])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
training = ("torch", "onnx", "onnxscript", "sklearn.linear_model", "sklearn.ensemble",
            "sklearn.neural_network", "sklearn.calibration", "sklearn.model_selection")
print("imported:", sorted(m for m in training if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "imported: []"
    assert (tmp_path / "ev" / "evaluation.json").is_file()
