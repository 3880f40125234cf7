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


def _engine_run(folder, accuracy, omitted, engine, seeds=(0, 1, 2)):
    import json

    folder.mkdir()
    overall = {"KD": {"per_seed_accuracy": accuracy, "per_seed_omitted_accuracy": omitted}}
    overall["Teacher"] = {"per_seed_accuracy": [98.0], "per_seed_omitted_accuracy": [97.0]}
    (folder / "results.json").write_text(
        json.dumps({"seeds": list(seeds), "overall": overall, "device": "cpu"})
    )
    (folder / "reproduce.json").write_text(json.dumps({"engine": engine}))
    return folder


def test_two_engines_agree_when_each_mean_is_within_the_others_interval(tmp_path):
    from kdlab.reporting import engines

    a = _engine_run(tmp_path / "a", [97.0, 97.4, 97.2], [20.0, 30.0, 25.0], 1)
    b = _engine_run(tmp_path / "b", [97.1, 97.3, 97.2], [60.0, 61.0, 62.0], 2)
    out = engines.render(a, b)
    assert "engine 1, cpu" in out and "engine 2, cpu" in out
    lines = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in out.splitlines()}
    assert lines[("KD", "overall accuracy (%)")].rstrip(" |").endswith("yes")
    assert lines[("KD", "on the omitted class (%)")].rstrip(" |").endswith("**no**")
    assert "+36.00" in lines[("KD", "on the omitted class (%)")]  # after − before, seed by seed
    assert "1 of 2 seeded comparisons agree" in out


def test_two_engines_need_the_same_seeds(tmp_path):
    from kdlab.errors import KdlabError
    from kdlab.reporting import engines

    a = _engine_run(tmp_path / "a", [97.0, 97.4], [20.0, 30.0], 1, seeds=(0, 1))
    b = _engine_run(tmp_path / "b", [97.1, 97.3], [21.0, 29.0], 2, seeds=(1, 2))
    with pytest.raises(KdlabError, match="other seeds"):
        engines.render(a, b)
    assert engines.main([str(a)]) == 2 and engines.main([str(a), str(tmp_path / "missing")]) == 1
