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


def test_two_engines_over_teacher_seeds_pool_the_runs_and_pair_them_by_name(tmp_path):
    """A folder of runs (one per teacher seed) is one sample per run and student seed; the
    teacher, one value per run, becomes a seeded comparison too."""
    from kdlab.reporting import engines

    for side, engine, shift in (("a", 1, 0.0), ("b", 2, 1.0)):
        (tmp_path / side).mkdir()
        for i, name in enumerate(("seed0", "seed1", "seed2")):
            _engine_run(tmp_path / side / name, [97.0 + i], [20.0 + 10 * i + shift], engine, seeds=(i,))
    (tmp_path / "b" / "notes").mkdir()  # a folder without results is not a run
    out = engines.render(tmp_path / "a", tmp_path / "b")
    assert "engine 1, cpu" in out and "engine 2, cpu" in out
    lines = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in out.splitlines()}
    omitted = lines[("KD", "on the omitted class (%)")]
    assert "+1.00 ± 0.00" in omitted and omitted.rstrip(" |").endswith("yes")  # paired run by run
    assert ("Teacher", "overall accuracy (%)") in lines  # 3 teachers: a seeded row
    assert "over seeds ['seed0/0', 'seed1/1', 'seed2/2']" in out
    named = engines.render(tmp_path / "a", tmp_path / "b", ("before", "after"))
    assert "before, cpu" in named and "after, cpu" in named
    assert engines.main([str(tmp_path / "a"), str(tmp_path / "b"), "--names", "x", "y"]) == 0


def test_a_folder_of_runs_from_two_engines_is_refused(tmp_path):
    from kdlab.errors import KdlabError
    from kdlab.reporting import engines

    (tmp_path / "mixed").mkdir()
    _engine_run(tmp_path / "mixed" / "seed0", [97.0], [20.0], 1, seeds=(0,))
    _engine_run(tmp_path / "mixed" / "seed1", [97.0], [20.0], 2, seeds=(1,))
    with pytest.raises(KdlabError, match="other devices or engines"):
        engines.load(tmp_path / "mixed")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KdlabError, match=r"no results\.json"):
        engines.load(tmp_path / "empty")
