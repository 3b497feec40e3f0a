"""Statistics for comparing sweep variants over the same folds and seeds.

Scores from k-fold cross-validation are not independent: every two folds share most of
their training rows, so the plain sample variance of the scores underestimates the
variance of their mean, and a plain paired t-test finds "significant" differences that
are noise. Nadeau and Bengio (2003, "Inference for the generalization error", Machine
Learning 52) correct the variance of a mean over J resampled train/test splits:

    var(mean) = (1/J + n_test/n_train) * s^2        instead of  s^2 / J

(Bouckaert and Frank 2004 use it for repeated k-fold, J = k x repeats). With
`ratio = n_test / n_train = 0` both reduce to the textbook paired t-test and t interval,
which is right for runs that share one fixed split and differ only by their seed.

    t, p = corrected_ttest(a, b, ratio=1 / 4)       # 5-fold: n_test/n_train = 1/4
    low, high = mean_interval(a, ratio=1 / 4)       # 95% interval on the mean of a
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ALPHA = 0.05
"""Two-sided level: p >= ALPHA marks a variant as indistinguishable from the best."""


def corrected_variance(values: Sequence[float] | np.ndarray, ratio: float) -> float:
    """Corrected variance of the mean of `values` (J >= 2): (1/J + ratio) * s^2.

    s^2 is the sample variance (ddof 1); `ratio` is n_test / n_train of each split
    (0 for runs on one fixed split).
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return math.nan
    return (1.0 / len(v) + ratio) * float(v.var(ddof=1))


def corrected_ttest(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                    ratio: float) -> tuple[float, float]:
    """(t, two-sided p) of the corrected resampled paired t-test of a against b.

    a and b: scores of two variants on the same J splits, in the same order (J >= 2).
    t = mean(d) / sqrt((1/J + ratio) * var(d)) with d = a - b, on J - 1 degrees of
    freedom. Identical scores give (0, 1); differences that never vary but are not 0
    give (±inf, 0). NaN for fewer than two pairs.
    """
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        return math.nan, math.nan
    mean = float(d.mean())
    var = corrected_variance(d, ratio)
    if var <= 0.0:
        if mean == 0.0:
            return 0.0, 1.0
        return math.copysign(math.inf, mean), 0.0
    t = mean / math.sqrt(var)
    p = 2.0 * float(stats.t.sf(abs(t), len(d) - 1))
    return t, min(p, 1.0)


def mean_interval(values: Sequence[float] | np.ndarray, ratio: float,
                  level: float = 0.95) -> tuple[float, float]:
    """`level` confidence interval on the mean of `values` from the t distribution.

    mean ± t_{(1+level)/2, J-1} * sqrt((1/J + ratio) * s^2); NaNs for fewer than two values.
    """
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2.0, len(v) - 1)) * math.sqrt(
        corrected_variance(v, ratio))
    mean = float(v.mean())
    return mean - half, mean + half
