"""The corrected resampled t-test and the t interval: hand computations, scipy's textbook
tests at ratio 0, and scikit-learn's published worked example of the Nadeau-Bengio test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from specnet.sweep.stats import corrected_ttest, corrected_variance, mean_interval


def test_corrected_ttest_by_hand() -> None:
    # Four folds of 4-fold cv: n_test / n_train = 1/3.
    a = [0.90, 0.80, 0.85, 0.95]
    b = [0.85, 0.80, 0.80, 0.90]
    # d = [0.05, 0, 0.05, 0.05]: mean 0.0375, sample variance
    # (3 * 0.0125**2 + 0.0375**2) / 3 = 0.000625; corrected: (1/4 + 1/3) * 0.000625.
    assert corrected_variance(np.subtract(a, b), 1 / 3) == pytest.approx(7 / 12 * 0.000625)
    t, p = corrected_ttest(a, b, 1 / 3)
    assert t == pytest.approx(0.0375 / math.sqrt(7 / 12 * 0.000625))  # 1.9640
    assert t == pytest.approx(1.96396, abs=1e-5)
    # Two-sided p on 3 degrees of freedom: between the table's 0.20 (t 1.638) and 0.10
    # (t 2.353) columns.
    assert 0.10 < p < 0.20
    assert corrected_ttest(b, a, 1 / 3) == pytest.approx((-t, p))  # symmetric


def test_p_is_005_at_the_tabled_critical_value() -> None:
    # t_{0.975, 3} = 3.182446 (every t table): differences whose uncorrected t is exactly
    # that give p = 0.05 at ratio 0.
    d = np.array([1.0, 2.0, 3.0, 4.0])
    shift = 3.182446305284263 * d.std(ddof=1) / 2 - d.mean()  # mean(d + shift) = t * s / 2
    t, p = corrected_ttest(d + shift, np.zeros(4), 0.0)
    assert t == pytest.approx(3.182446305284263)
    assert p == pytest.approx(0.05, abs=1e-9)


def test_ratio_zero_is_scipys_paired_ttest() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.02, 10), rng.normal(0.89, 0.02, 10)
    want = stats.ttest_rel(a, b)
    assert corrected_ttest(a, b, 0.0) == pytest.approx((want.statistic, want.pvalue))
    # The correction only widens: the corrected p of the same numbers is larger.
    assert corrected_ttest(a, b, 1 / 9)[1] > want.pvalue


def test_scikit_learns_worked_example() -> None:
    """scikit-learn's example "Statistical comparison of models using grid search"
    (examples/model_selection/plot_grid_search_stats.py) compares SVC with an rbf and a
    linear kernel over 10 x 10-fold stratified cv (n_train 90, n_test 10) and publishes
    "Corrected t-value: 0.750, Corrected p-value: 0.227" (one-sided)."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score
    from sklearn.svm import SVC

    X, y = make_moons(noise=0.352, random_state=1, n_samples=100)
    cv = RepeatedStratifiedKFold(n_splits=10, n_repeats=10, random_state=0)
    rbf = cross_val_score(SVC(kernel="rbf", random_state=0), X, y, scoring="roc_auc", cv=cv)
    linear = cross_val_score(SVC(kernel="linear", random_state=0), X, y, scoring="roc_auc",
                             cv=cv)
    t, p = corrected_ttest(rbf, linear, 10 / 90)
    assert round(t, 3) == 0.750
    assert round(p / 2, 3) == 0.227  # the example reports the one-sided p


def test_degenerate_inputs() -> None:
    assert corrected_ttest([0.9, 0.8], [0.9, 0.8], 0.5) == (0.0, 1.0)  # identical runs
    t, p = corrected_ttest([1.0, 0.5], [0.75, 0.25], 0.5)  # always 0.25 better
    assert t == math.inf and p == 0.0
    assert all(math.isnan(x) for x in corrected_ttest([0.9], [0.8], 0.5))
    assert all(math.isnan(x) for x in mean_interval([0.9], 0.5))


def test_mean_interval() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    # mean 3, s = sqrt(2.5), t_{0.975, 4} = 2.776445: half width 2.776445 * s / sqrt(5).
    low, high = mean_interval(values, 0.0)
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert (low, high) == pytest.approx((3 - half, 3 + half))
    want = stats.t.interval(0.95, 4, loc=3.0, scale=stats.sem(values))
    assert (low, high) == pytest.approx(want)
    # The correction widens it by sqrt((1/J + ratio) / (1/J)).
    low_c, high_c = mean_interval(values, 0.25)
    assert (high_c - 3) / half == pytest.approx(math.sqrt((0.2 + 0.25) / 0.2))
    assert low_c < low and high_c > high
