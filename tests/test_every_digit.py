"""The every-digit study end to end on the real MNIST at a reduced budget."""

import json

import pytest
from helpers import budget

from kdlab.cli import main
from kdlab.reporting.table import cell

SMALL = budget(1, 3000, (300, 300), "--val-size", "2000", "--seeds", "2")


@pytest.mark.slow
def test_every_digit_rows_calibration_and_reuse(shared_data, tmp_path):
    out = tmp_path / "ed"
    args = [
        "run",
        "every-digit",
        "--data-dir",
        str(shared_data),
        "--out",
        str(out),
        *SMALL,
        "--classes",
        "3",
        "7",
    ]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert [row["class"] for row in results["rows"]] == ["3", "7"]
    for row in results["rows"]:
        assert row["before"]["Norm"] == [0.0, 0.0]  # a hard-label student never predicts an unseen class
        assert set(row["calibration"]["KD"]) == {"validation", "fixed", "prior-matching", "oracle-test"}
        assert [c["fixed"]["shift"] for c in row["calibration"].values()] == [[3.5, 3.5]] * 2
        summary = row["summary"]["validation"]
        kd_after = row["calibration"]["KD"]["validation"]["omitted"]
        assert summary["after"]["KD"][0] == pytest.approx(sum(kd_after) / 2)
        assert summary["kd_minus_norm_after"]["n"] == 2
        # the effect: raising the bias of a class KD never saw brings out its images
        assert summary["after"]["KD"][0] > summary["before"]["KD"][0] + 10
    assert results["teacher_accuracy"] > 80  # clearly above chance (10%)
    table = (out / "table.md").read_text()
    for row in results["rows"]:  # the table shows each class's own numbers, KD after in its column
        s = row["summary"]["validation"]
        line = next(line for line in table.splitlines() if line.startswith(f"| {row['class']} "))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == cell(*s["before"]["KD"], 1) and cells[4] == cell(*s["after"]["KD"], 1)
    assert (out / "figures" / "every_digit.png").read_bytes()[:4] == b"\x89PNG"
    # a rerun reuses every model and reproduces the numbers
    assert main(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert all(row["reused"] for row in again["rows"])
    assert [r["calibration"] for r in again["rows"]] == [r["calibration"] for r in results["rows"]]


def test_every_digit_rejects_unknown_class(shared_data, tmp_path, capsys):
    out = tmp_path / "bad"
    assert (
        main(["run", "every-digit", "--data-dir", str(shared_data), "--out", str(out), "--classes", "x"]) != 0
    )
    assert "unknown class 'x'" in capsys.readouterr().err
    assert not out.exists()
