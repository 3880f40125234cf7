"""Confidence intervals and paired tests against values computed by hand."""

import math

import pytest

from kdlab.reporting.stats import mean_ci, paired


def test_mean_ci_known_values():
    mean, hw = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    # sd = sqrt(2.5), t(0.975, 4) = 2.776445
    assert hw == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert mean_ci([7.0]) == (7.0, None)
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 0.0)


def test_mean_ci_level():
    _, hw95 = mean_ci([0.0, 1.0, 2.0, 3.0])
    _, hw99 = mean_ci([0.0, 1.0, 2.0, 3.0], level=0.99)
    assert hw99 > hw95 > 0


def test_paired_known_values():
    a, b = [10.0, 12.0, 14.0], [9.0, 10.0, 11.0]  # differences 1, 2, 3
    result = paired(a, b)
    assert result.mean == pytest.approx(2.0)
    assert result.ci95 == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
    # t = 2 / (1 / sqrt 3) = 3.4641 with 2 degrees of freedom: two-sided p = 0.07418
    assert result.p_value == pytest.approx(0.07418, abs=1e-4)
    assert result.n == 3


def test_paired_degenerate_cases():
    same = paired([1.0, 2.0], [1.0, 2.0])
    assert same.mean == 0.0 and same.p_value == 1.0
    shifted = paired([2.0, 3.0], [1.0, 2.0])
    assert shifted.mean == 1.0 and shifted.ci95 == 0.0 and shifted.p_value == 0.0
    single = paired([5.0], [3.0])
    assert single.mean == 2.0 and single.ci95 is None and single.p_value is None
    with pytest.raises(ValueError):
        paired([1.0], [1.0, 2.0])
