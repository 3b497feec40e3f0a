"""Honest model selection: held-out rows that no selection training sees (checked with real
row indices through the real preparation code), nested cv, the figures the report names,
best.yaml whose build tests on exactly the held-out rows, and the comparisons with the best."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from specnet.data.prepare import prepare_arrays
from specnet.data.sources import Arrays
from specnet.errors import SpecError
from specnet.spec.schema import Spec
from specnet.spec.validate import load_spec
from specnet.sweep import load_sweep, make_jobs, prepare_job, run_sweep
from specnet.sweep.runner import _arrays
from specnet.sweep.selection import Scheme, compare, split_ratio
from specnet.sweep.stats import corrected_ttest, mean_interval
from specnet.trainer import train

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ROOT / "specs" / "sweeps"


def with_row_ids(arrays: Arrays) -> Arrays:
    """The arrays with X replaced by each row's index, so that the prepared splits name
    the rows they hold (with normalize: none)."""
    ids = np.arange(len(arrays.y), dtype=np.float32)[:, None]
    return dataclasses.replace(arrays, X=ids, feature_names=["row"])


def unscaled(spec: Spec) -> Spec:
    return spec.model_copy(update={"data": spec.data.model_copy(update={"normalize": "none"})})


def build_test_rows(spec: Spec, arrays: Arrays) -> set[int]:
    """The rows `specnet build` of `spec` tests on: the path build takes (prepare_arrays
    with the spec's own split), read back through the row ids."""
    prepared = prepare_arrays(unscaled(spec).data, with_row_ids(arrays), spec.seed,
                              spec.task == "regression")
    return {int(x) for x in prepared.X_test[:, 0]}


def job_rows(job: Any, arrays: Arrays) -> tuple[set[int], set[int], set[int]]:
    """(train, validation, scored) rows of a sweep job, through the runner's prepare_job."""
    job = dataclasses.replace(job, spec=unscaled(job.spec))
    prepared, _ = prepare_job(job, with_row_ids(arrays))
    return tuple({int(x) for x in part[:, 0]}  # type: ignore[return-value]
                 for part in (prepared.X_train, prepared.X_val, prepared.X_test))


# ---------------------------------------------------------------- rows


def test_cv_tuning_iris_never_selects_on_the_build_test_rows() -> None:
    sweep = load_sweep(SWEEPS / "cv_tuning_iris.yaml")
    jobs = make_jobs(sweep)
    arrays = _arrays(jobs[0].spec)
    held = build_test_rows(sweep.variants[0].spec, arrays)
    assert len(held) == 30  # data.split.test 0.2 of iris's 150 rows
    seen: set[int] = set()
    for variant_index in range(len(sweep.variants)):
        scored: list[int] = []
        for job in (j for j in jobs if j.variant == variant_index):
            tr, va, sc = job_rows(job, arrays)
            assert not (tr & va or tr & sc or va & sc)
            seen |= tr | va | sc
            scored += sorted(sc)
        # The 5 scored folds partition the 120 selection rows: each scored exactly once.
        assert sorted(scored) == sorted(set(range(150)) - held)
    assert not seen & held  # no selection training saw a held-out row
    # ...and building any variant (best.yaml is one) tests on exactly those rows.
    assert all(build_test_rows(v.spec, arrays) == held for v in sweep.variants)


def test_without_holdout_every_test_row_is_scored(write_spec: Any) -> None:
    """What happened before: the folds covered every row, the build's test rows too."""
    base = (SWEEPS / "cv_tuning_iris.yaml").read_text().replace("extends: ../iris.yaml",
                                                                 f"extends: {ROOT}/specs/iris.yaml")
    path = write_spec(base.replace("  cv: 5", "  cv: {folds: 5, holdout: false}"))
    sweep = load_sweep(path)
    jobs = [j for j in make_jobs(sweep) if j.variant == 0]
    arrays = _arrays(jobs[0].spec)
    scored = set().union(*(job_rows(j, arrays)[2] for j in jobs))
    assert scored == set(range(150))
    assert build_test_rows(sweep.variants[0].spec, arrays) <= scored


def test_nested_rows() -> None:
    spec = load_spec(ROOT / "specs" / "iris.yaml").spec
    arrays = _arrays(spec)
    held = build_test_rows(spec, arrays)
    job = make_jobs(load_sweep(SWEEPS / "cv_tuning_iris.yaml"))[0]
    outer_scored: list[int] = []
    for o in range(3):
        refit = dataclasses.replace(job, scheme=Scheme(5, 0, True, spec.seed, 3, o, True))
        rtr, rva, rsc = job_rows(refit, arrays)
        outer_scored += sorted(rsc)
        inner: set[int] = set()
        for f in range(5):
            inner_job = dataclasses.replace(job, fold=f, scheme=Scheme(5, f, True, spec.seed,
                                                                       3, o))
            tr, va, sc = job_rows(inner_job, arrays)
            inner |= tr | va | sc
        # The inner selection of outer fold o sees exactly its outer training rows.
        assert inner == rtr | rva and not inner & rsc and not inner & held
    assert sorted(outer_scored) == sorted(set(range(150)) - held)


# ---------------------------------------------------------------- running

TINY = """\
name: tiny_iris
seed: 0
task: classification
data: {source: iris, split: {validation: 0.2, test: 0.2}}
model: [linear: 8, tanh, linear: auto]
optimizer: {type: adam, lr: 0.05}
training: {epochs: 8, batch_size: 32, metrics: [accuracy]}
sweep:
  grid:
    model[1].type: [tanh, relu]
  cv: {folds: 3, nested: 2}
"""


def test_cv_sweep_reports_honest_figures_and_best_yaml_builds_on_the_held_out_rows(
        write_spec: Any, tmp_path: Path, one_torch_thread: None) -> None:
    sweep = load_sweep(write_spec(TINY, "tiny.yaml"))
    lines: list[str] = []
    result = run_sweep(sweep, progress=lines.append)
    est = result.estimates
    assert est is not None and (est.selection_rows, est.heldout_rows) == (120, 30)
    assert est.heldout is not None and est.heldout.sizes[2] == 30
    assert [f.rows for f in est.nested] == [60, 60]
    assert all(0 <= f.score <= 1 for f in est.nested)
    assert any(line.startswith("nested cv: 12 inner trainings") for line in lines)
    text = result.text_table()
    assert "selection score: cv3 accuracy" in text
    assert f"held-out estimate: test accuracy {est.heldout_score:.3f}" in text
    assert "30 held-out rows that no selection saw" in text
    assert "nested estimate: accuracy" in text and "over 2 outer folds" in text
    out = tmp_path / "out"
    result.write(out)
    md = (out / "summary.md").read_text()
    assert "- selection score:" in md and "- held-out estimate:" in md
    best_yaml = (out / "best.yaml").read_text()
    assert "exactly the 30 held-out rows that no selection saw" in best_yaml
    # build of best.yaml: trained on the selection rows, tested on the held-out rows; the
    # same training as the held-out estimate, so the same figures.
    run = train(out / "best.yaml")
    assert run.metrics["test"]["accuracy"] == pytest.approx(est.heldout_score, abs=1e-12)
    assert run.metrics["test"]["loss"] == pytest.approx(est.heldout.values["test_loss"],
                                                        rel=1e-5)
    assert len(run.prepared.X_test) == 30


def test_without_held_out_rows_best_yaml_has_no_test_split(write_spec: Any,
                                                           tmp_path: Path) -> None:
    text = TINY.replace("cv: {folds: 3, nested: 2}", "cv: {folds: 3, holdout: false}")
    text = text.replace("epochs: 8", "epochs: 2")
    result = run_sweep(load_sweep(write_spec(text, "tiny.yaml")))
    assert result.estimates is not None and result.estimates.heldout is None
    assert "held-out estimate: none (no held-out rows: sweep.cv.holdout is false)" in \
        result.text_table()
    best = yaml.safe_load(result.best_spec_yaml() or "")
    assert best["data"]["split"]["test"] == 0.0
    assert "Every row took part in the selection" in (result.best_spec_yaml() or "")
    result.write(tmp_path / "out")
    assert load_spec(tmp_path / "out" / "best.yaml").spec.data.split.test == 0.0


def test_comparisons_pair_the_same_folds_and_seeds(write_spec: Any) -> None:
    text = TINY.replace("cv: {folds: 3, nested: 2}", "cv: 3\n  repeats: 2")
    text = text.replace("[tanh, relu]", "[tanh, relu, sigmoid]").replace("epochs: 8",
                                                                           "epochs: 4")
    result = run_sweep(load_sweep(write_spec(text, "tiny.yaml")))
    comps = compare(result)
    best = result.best
    assert best is not None
    ratio = split_ratio(result)
    assert ratio == pytest.approx(40 / 80)  # 3 folds of 120 selection rows: 40 scored, 80 not
    ref = {r.key[1:]: r.values["test_accuracy"] for r in best.runs}
    for vr, c in zip(result.results, comps, strict=True):
        mine = {r.key[1:]: r.values["test_accuracy"] for r in vr.runs}
        assert c.pairs == 6 and set(mine) == set(ref)
        keys = sorted(mine)
        want = corrected_ttest([mine[k] for k in keys], [ref[k] for k in keys], ratio)[1]
        assert (c.p == 1.0) if vr is best else (c.p == pytest.approx(want) or
                                                 (math.isnan(want) and math.isnan(c.p)))
        assert (c.low, c.high) == pytest.approx(mean_interval(list(mine.values()), ratio),
                                                nan_ok=True)
        assert c.indistinguishable == (vr is best or c.p >= 0.05)
    rows = result.rows()
    assert rows[0][2:5] == ["cv3 accuracy", "95% CI", "p vs best"]
    assert [r[4] for r in rows[1:]].count("best") == 1
    summary = result.summary_csv().splitlines()
    assert summary[0].endswith("ci95_low,ci95_high,p_vs_best,indistinguishable_from_best")


# ---------------------------------------------------------------- the cv section


@pytest.mark.parametrize(("cv", "match"), [
    ("{folds: 3, nestd: 2}", "sweep.cv.nestd: unknown key 'nestd' (did you mean 'nested'?)"),
    ("{folds: 3, nested: 1}", "greater than or equal to 2"),
    ("{nested: 3}", "folds"),
], ids=["typo", "nested1", "no-folds"])
def test_cv_section_errors(write_spec: Any, cv: str, match: str) -> None:
    with pytest.raises(SpecError, match=re.escape(match)):
        load_sweep(write_spec(TINY.replace("{folds: 3, nested: 2}", cv), "tiny.yaml"))


def test_cv_variants_must_share_their_rows(write_spec: Any) -> None:
    text = TINY.replace("model[1].type: [tanh, relu]", "seed: [0, 1]")
    with pytest.raises(SpecError, match=r"sweep\.cv: variant '1' changes the seed"):
        load_sweep(write_spec(text, "tiny.yaml"))
    # Scaling is free to vary: it does not change which rows are which.
    load_sweep(write_spec(TINY.replace("model[1].type: [tanh, relu]",
                                       "data.normalize: [standard, minmax]"), "tiny.yaml"))
