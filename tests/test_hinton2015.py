"""The paper's numbers protocol at the quick budget on the real MNIST: rows, artefacts, reuse."""

import json

import pytest

from kdlab import KdlabError
from kdlab.cli import main
from kdlab.protocols.hinton2015 import Hinton2015Config

QUICK = ["--budget", "quick", "--quiet", "--subset", "3000", "--sweep-temperatures", "1", "4", "20"]


@pytest.fixture(scope="module")
def quick_run(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("h15") / "out"
    assert main(["run", "hinton2015", "--data-dir", str(shared_data), "--out", str(out), *QUICK]) == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_every_paper_row_is_measured(quick_run):
    out, results = quick_run
    rows = {r["experiment"]: r for r in results["rows"]}
    papers = [r["paper"] for r in results["rows"]]
    for value in (67, 146, 74, 206, 133, 109, 14, 47.3, 13.2):
        assert value in papers
    for row in results["rows"]:
        assert row["unit"] in ("errors", "% error", "T")
        assert row["stage_seconds"] >= 0
        if isinstance(row["paper"], (int, float)):
            assert row["difference"] == pytest.approx(row["kdlab"] - row["paper"])
    teacher = next(r for r in results["rows"] if r["paper"] == 67)
    assert 0 < teacher["kdlab"] < 10_000  # counted on the 10,000 test images
    assert any("(best on test)" in name for name in rows)
    assert results["shifts"]["3"]["paper"] == 3.5 and results["shifts"]["7,8"]["paper"] == -7.6
    assert set(results["sweep"]) == {"300", "30"}
    assert results["sweep"]["30"]["temperature"] == [1.0, 4.0, 20.0]
    for name in ("table.md", "report.md", "figures/temperature_sweep.png", "figures/learning_curves.png"):
        assert (out / name).stat().st_size > 0
    assert results["config"]["budget"] == "quick" and results["versions"]["torch"]


@pytest.mark.slow
def test_the_best_shift_is_no_worse_than_the_papers(quick_run):
    _, results = quick_run
    by_how = {}
    for row in results["rows"]:
        if row["experiment"].startswith("… bias of 3 raised") and not row["experiment"].endswith("3s"):
            by_how[row["experiment"].split("(")[-1]] = row["kdlab"]
    assert by_how["best on test)"] <= by_how["paper)"]


@pytest.mark.slow
def test_a_rerun_reuses_every_model(quick_run, shared_data):
    out, first = quick_run
    assert main(["run", "hinton2015", "--data-dir", str(shared_data), "--out", str(out), *QUICK]) == 0
    again = json.loads((out / "results.json").read_text())
    assert all(stage["reused"] for stage in again["stages"].values())
    assert [r["kdlab"] for r in again["rows"]] == [r["kdlab"] for r in first["rows"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget": "huge"}, "budget must be one of"),
        ({"max_norm": -1.0}, "--max-norm must be >= 0"),
        ({"jitter": -2}, "jitter"),
        ({"alpha": 0.0}, "alpha"),
        ({"schedule": "step"}, "schedule"),
        ({"teacher_optimizer": "rmsprop"}, "--teacher-optimizer must be one of"),
        ({"sweep_temperatures": (4.0,)}, "needs at least 2"),
        ({"sweep_widths": (30, 30)}, "must not repeat"),
    ],
)
def test_invalid_settings_are_refused(change, message):
    with pytest.raises(KdlabError, match=message):
        Hinton2015Config(**change)


def test_prior_matching_without_a_shift_is_reported_not_raised():
    import torch

    from kdlab.protocols.hinton2015 import prior_matching_or_none

    teacher = torch.tensor([[0.0, 0.0, 0.0]]).repeat(4, 1)  # a third of the mass on class 2
    student = torch.tensor([[0.0, 0.0, -1000.0]]).repeat(4, 1)  # +100 never lifts class 2
    assert prior_matching_or_none(student, teacher, (2,)) is None
    assert prior_matching_or_none(torch.zeros(4, 3), teacher, (2,)) == pytest.approx(0.0, abs=1e-6)
