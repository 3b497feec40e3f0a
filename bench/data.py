"""Tabular data speed and memory, side by side in one run.

1. Load + prepare a generated mixed CSV (default 1,000,000 rows x 30 columns: 20 numeric
   and 9 categorical with ~5% blanks each, a yes/no target): specnet's CSV source + prepare
   (pyarrow read, column inference, split, median imputation and one-hot fitted on train,
   standard scaling) against pandas.read_csv + scikit-learn's ColumnTransformer
   (SimpleImputer(median) + StandardScaler on numbers, SimpleImputer(constant) +
   OneHotEncoder on text), fitted on the same training rows and applied to every row.
2. `specnet predict` on a raw 100,000-row CSV (blanks and text) against pandas.read_csv +
   the same onnxruntime session by hand (feed built from the DataFrame, CSV written with
   pandas). Both run as fresh processes, so both pay their imports; the rounds alternate
   between the two sides, and the ratio is printed against the goal (<= 1.2x), with the
   load average before and after (the figures mean little on a busy machine).

Each side runs in its own subprocess; wall time and peak RSS (ru_maxrss of that process)
are the best of `--rounds`.

    python bench/data.py                 # full size (1,000,000 and 100,000 rows)
    python bench/data.py --rows 20000 --predict-rows 5000 --rounds 1   # a quick look
    python bench/data.py --only predict --rounds 5                      # predict only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NUMERIC = 20
CATEGORICAL = 9
PREDICT_GOAL = 1.2
"""`specnet predict` may take at most this many times pandas + onnxruntime by hand."""

OURS_PREPARE = """
import json, resource, sys, time
t = time.perf_counter()
from specnet.data.sources import Csv
from specnet.data.prepare import prepare_arrays
src = Csv(path=sys.argv[1], target="y")
p = prepare_arrays(src, src.load(0), 0, regression=False)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "shape": list(p.X_train.shape)}))
"""

THEIRS_PREPARE = """
import json, resource, sys, time
t = time.perf_counter()
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
df = pd.read_csv(sys.argv[1])
y = df.pop("y")
num = [c for c in df.columns if c.startswith("n")]
cat = [c for c in df.columns if c.startswith("c")]
ct = ColumnTransformer([
    ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
    ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                          OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                        max_categories=20)), cat)])
idx = np.arange(len(df))
train, rest = train_test_split(idx, test_size=0.4, random_state=0, stratify=y)
ct.fit(df.iloc[train])
X = ct.transform(df).astype(np.float32)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "shape": list(X.shape)}))
"""

THEIRS_PREDICT = """
import json, resource, sys, time
t = time.perf_counter()
import numpy as np
import onnxruntime as ort
import pandas as pd
s = ort.InferenceSession(sys.argv[1] + "/model.onnx", providers=["CPUExecutionProvider"])
df = pd.read_csv(sys.argv[2], keep_default_na=True)
feed = {}
for i in s.get_inputs():
    col = df[i.name]
    if i.type == "tensor(string)":
        feed[i.name] = col.fillna("").astype(str).to_numpy(object).reshape(-1, 1)
    else:
        feed[i.name] = col.to_numpy(np.float32).reshape(-1, 1)
p = s.run(None, feed)[0].reshape(-1)
out = pd.DataFrame({"label": np.where(p > 0.5, "yes", "no"), "prob_no": 1 - p, "prob_yes": p})
out.to_csv(sys.argv[3], index=False)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def generate(path: Path, rows: int, seed: int = 0, target: bool = True) -> None:
    """A mixed CSV: n0..n19 numbers, c0..c8 text categories, ~5% blanks, target y."""
    rng = np.random.default_rng(seed)
    cols: list[np.ndarray] = []
    names = [f"n{i}" for i in range(NUMERIC)] + [f"c{i}" for i in range(CATEGORICAL)]
    for _ in range(NUMERIC):
        v = np.char.mod("%.4f", rng.normal(size=rows)).astype(object)
        v[rng.random(rows) < 0.05] = ""
        cols.append(v)
    for i in range(CATEGORICAL):
        levels = np.array([f"level_{i}_{k}" for k in range(5 + 5 * i)], dtype=object)
        v = levels[rng.integers(0, len(levels), rows)]
        v[rng.random(rows) < 0.05] = ""
        cols.append(v)
    if target:
        names.append("y")
        cols.append(np.where(rng.random(rows) < 0.4, "yes", "no").astype(object))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows(zip(*cols, strict=True))


def _run(code_or_cmd: list[str], rounds: int) -> dict[str, float]:
    """Best wall and peak RSS of `rounds` runs of a command printing its JSON figures."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        t = time.perf_counter()
        out = subprocess.run(code_or_cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        figures = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() \
            .startswith("{") else {}
        figures.setdefault("wall", wall)
        figures["process_wall"] = wall
        for k in ("wall", "process_wall", "rss_mb"):
            if k in figures:
                best[k] = min(best.get(k, float("inf")), float(figures[k]))
    return best


def _best(best: dict[str, float], figures: dict[str, float]) -> None:
    for k, v in figures.items():
        best[k] = min(best.get(k, float("inf")), v)


def _load() -> str:
    """The 1, 5 and 15 minute load averages, for the record next to the figures."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _rss_cmd(cmd: list[str]) -> list[str]:
    """Wrap a command so it prints its own wall and peak RSS (children) as JSON."""
    code = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(json.dumps({'wall': time.perf_counter() - t, 'rss_mb': "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")
    return [sys.executable, "-c", code, *cmd]


def _model(folder: Path) -> Path:
    """A small binary model trained on 5,000 rows of the same generator (raw columns)."""
    from specnet.export import export_run
    from specnet.spec.validate import validate
    from specnet.trainer import train

    generate(folder / "small.csv", 5000, seed=1)
    spec = validate({"name": "bench", "task": "binary",
                     "data": {"source": "csv", "path": str(folder / "small.csv"), "target": "y"},
                     "model": [{"linear": 32}, "relu", {"linear": 1}],
                     "training": {"epochs": 1, "batch_size": 256}})
    export_run(train(spec), folder / "model")
    return folder / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--predict-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["prepare", "predict"], default=None,
                        help="Run one of the two comparisons.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "mixed.csv"
        if args.only != "predict":
            generate(data, args.rows)
            mb = data.stat().st_size / 2**20
            print(f"load + prepare: {args.rows:,} rows x {NUMERIC + CATEGORICAL + 1} columns "
                  f"({mb:.0f} MiB), best of {args.rounds}")
            ours = _run([sys.executable, "-c", OURS_PREPARE, str(data)], args.rounds)
            theirs = _run([sys.executable, "-c", THEIRS_PREPARE, str(data)], args.rounds)
            _report("specnet Csv + prepare", "pandas + ColumnTransformer", ours, theirs)
        if args.only == "prepare":
            return
        model = _model(folder)
        rows = folder / "raw.csv"
        generate(rows, args.predict_rows, seed=2, target=False)
        print(f"predict: {args.predict_rows:,} raw rows, best of {args.rounds} (whole process, "
              f"the two sides alternating); load average before: {_load()}")
        ours_cmd = _rss_cmd([sys.executable, "-m", "specnet.cli", "predict", str(model),
                             str(rows), "-o", str(folder / "ours.csv")])
        theirs_cmd = [sys.executable, "-c", THEIRS_PREDICT, str(model), str(rows),
                      str(folder / "theirs.csv")]
        ours: dict[str, float] = {}
        theirs: dict[str, float] = {}
        for _ in range(args.rounds):  # alternate, so that load changes hit both sides
            _best(ours, _run(ours_cmd, 1))
            _best(theirs, _run(theirs_cmd, 1))
        ours["wall"] = ours["process_wall"]
        theirs["wall"] = theirs["process_wall"]
        _report("specnet predict", "pandas + onnxruntime by hand", ours, theirs)
        ratio = ours["wall"] / theirs["wall"]
        same = (folder / "ours.csv").read_bytes() == (folder / "theirs.csv").read_bytes()
        print(f"  goal: <= {PREDICT_GOAL}x wall: {'met' if ratio <= PREDICT_GOAL else 'missed'} "
              f"({ratio:.2f}x); the two output files are "
              f"{'identical' if same else 'different'}; load average after: {_load()}")


def _report(a: str, b: str, ours: dict[str, float], theirs: dict[str, float]) -> None:
    print(f"  {a:<30} {ours['wall']:7.2f} s  {ours.get('rss_mb', float('nan')):8.0f} MiB")
    print(f"  {b:<30} {theirs['wall']:7.2f} s  {theirs.get('rss_mb', float('nan')):8.0f} MiB")
    print(f"  ratio (specnet / theirs)       {ours['wall'] / theirs['wall']:7.2f}x "
          f"{ours.get('rss_mb', 0) / theirs.get('rss_mb', 1):8.2f}x")


if __name__ == "__main__":
    main()
