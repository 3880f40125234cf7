"""Statistics over seeds: Student-t confidence intervals and paired comparisons."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float | None]:
    """Mean and half-width of its `level` Student-t confidence interval (None for one value)."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()), None
    sem = a.std(ddof=1) / math.sqrt(len(a))
    return float(a.mean()), float(stats.t.ppf(0.5 + level / 2, len(a) - 1) * sem)


@dataclass(frozen=True)
class PairedComparison:
    """`a - b` over seeds that share data order and initialisation."""

    mean: float
    ci95: float | None
    p_value: float | None  # two-sided paired t-test; None with fewer than 2 seeds
    n: int

    def as_dict(self) -> dict:
        return {"mean_diff": self.mean, "ci95": self.ci95, "p_value": self.p_value, "n": self.n}


def paired(a: list[float], b: list[float]) -> PairedComparison:
    if len(a) != len(b):
        raise ValueError("paired comparison needs one value per seed on both sides")
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean, hw = mean_ci(list(diff))
    p = None
    if len(diff) >= 2:
        no_spread = bool(np.all(diff == diff[0]))  # then the t statistic is 0 or infinite
        p = (1.0 if diff[0] == 0 else 0.0) if no_spread else float(stats.ttest_rel(a, b).pvalue)
    return PairedComparison(mean, hw, p, len(diff))
