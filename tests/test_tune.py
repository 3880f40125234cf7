"""`kdlab tune` on a real local Ray: TPE + ASHA on validation metrics, then the winner and the
default re-evaluated on the test set over fresh paired seeds."""

from __future__ import annotations

import json

import pytest
from helpers import TINY_STUDY

from kdlab.cli import main

SEARCH = (
    """
name = "tiny-search"
"""
    + TINY_STUDY
    + """[space]
temperature = { loguniform = [1, 20] }
alpha = { uniform = [0.3, 1.0] }
student_hidden = { choice = [[30], [50]] }
[tune]
num_samples = 3
reeval_seeds = 2
"""
)


def test_a_search_must_select_on_a_validation_split(tmp_path, capsys):
    file = tmp_path / "s.toml"
    file.write_text(SEARCH.replace("val_size = 1000", "val_size = 0").replace('["validation"]', '["fixed"]'))
    assert main(["tune", str(file), "--out", str(tmp_path / "out")]) == 1
    assert "selects on a validation split" in capsys.readouterr().err


@pytest.mark.slow
def test_tune_finds_and_revalidates_a_configuration(shared_data, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'kdlab[ray]')")
    file = tmp_path / "search.toml"
    file.write_text(SEARCH)
    out = tmp_path / "out"
    args = ["tune", str(file), "--out", str(out), "--data-dir", str(shared_data), "--num-cpus", "2"]
    assert main([*args, "--epochs", "2", "--subset", "2000", "--quiet"]) == 0
    result = json.loads((out / "tune.json").read_text())
    assert len(result["trials"]) == 3 and result["objective"] == "val_omitted_after"
    assert {t["epochs"] for t in result["trials"]} <= {1, 2}  # ASHA may stop a trial after epoch 1
    finished = [t for t in result["trials"] if t["epochs"] == 2] or result["trials"]
    assert result["winner"] == max(finished, key=lambda t: t["val_omitted_after"])  # the best trial
    winner, default = result["reeval"]
    assert winner["config"]["temperature"] == pytest.approx(result["winner"]["params"]["temperature"])
    assert default["config"]["temperature"] == 4.0 and default["config"]["alpha"] == 0.9
    for record in (winner, default):  # fresh seeds, not the search's seed 0; test-set metrics
        assert [row["seed"] for row in record["rows"]] == [1, 2]
        point = json.loads((out / "reeval" / "points" / record["point"] / "results.json").read_text())
        after = point["calibration"]["KD No3"]["validation"]["omitted"]
        assert [row["kd_omitted_after"] for row in record["rows"]] == pytest.approx(after, abs=1e-9)
    assert result["comparison"]["seeds"] == [1, 2] and result["comparison"]["n"] == 2
    report = (out / "tune.md").read_text()
    assert "## Winner vs default, re-evaluated on the test set" in report and "Winner minus default" in report


@pytest.mark.slow
def test_the_python_api_returns_the_trials_best_first(shared_data, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'kdlab[ray]')")
    import kdlab

    file = tmp_path / "search.toml"
    file.write_text(SEARCH.replace("num_samples = 3", "num_samples = 2"))
    out = tmp_path / "out"
    frame = kdlab.tune(file, out=out, data_dir=shared_data, num_cpus=2, epochs=1, subset=2000, reeval_seeds=1)
    written = json.loads((out / "tune.json").read_text())
    assert len(frame) == 2 and {"temperature", "alpha", "val_omitted_after"} <= set(frame.columns)
    assert list(frame["val_omitted_after"]) == [t["val_omitted_after"] for t in written["trials"]]
    assert frame["val_omitted_after"].is_monotonic_decreasing


@pytest.mark.parametrize("n", [1, 2, 3])
def test_reevaluation_uses_fresh_seeds_never_the_searched_one(n, tmp_path):
    from kdlab.sweep.options import TuneBudget
    from kdlab.sweep.tune import load_tune_spec, reeval_spec

    file = tmp_path / "s.toml"
    file.write_text(SEARCH)
    spec = load_tune_spec(file, {}, TuneBudget())
    check = reeval_spec(spec, {"temperature": 2.0}, n)
    searched = spec.config({}).seed
    for point in check.points():
        seeds = point.config.student_seeds()
        assert len(seeds) == n and searched not in seeds and len(set(seeds)) == n


def test_validation_metrics_are_the_validation_calibration_and_the_scores_at_its_shift():
    """A trial's metrics: the shift best on the validation split, and the accuracies (overall,
    on the omitted class) before it and after it, as the calibration computes them."""
    import torch

    from kdlab.calibration import accuracy_at, best_shift
    from kdlab.evaluation import Calibration
    from kdlab.sweep.tune import validation_metrics

    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(1, 300, 4, generator=g), torch.randint(0, 4, (300,), generator=g)
    got = validation_metrics(logits, y, (1,), Calibration(torch.zeros(5, 4), 0.0, (torch.zeros(300, 2), y)))
    shift = best_shift(logits[0], y, (1,))
    overall, omitted = accuracy_at(logits[0], y, (1,), torch.tensor([0.0, shift]))
    assert got == {
        "val_accuracy_before": 100 * float(overall[0]),
        "val_omitted_before": 100 * float(omitted[0]),
        "val_accuracy_after": 100 * float(overall[1]),
        "val_omitted_after": 100 * float(omitted[1]),
        "val_shift": shift,
    }
